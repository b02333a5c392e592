//! `skyfleet sweep` against `skyfleet mock`: a fleet's own live VMs are
//! listed as live; the same account swept from a new, empty store lists
//! them as foreign and deletes nothing; two fleets sharing a manager id in
//! one account each keep their own and leave the other's; a listing that
//! fails exits 1.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{free_port, http, skyfleet, start_mock, Fleet};

const POOL: &str = "sweep/linux";

/// A config: one AWS pool on `endpoint` wanting 2 workers, store `db`.
fn write_config(dir: &Path, name: &str, endpoint: &str, db: &str) -> PathBuf {
    let store = dir.join(db);
    let text = format!(
        r#"
[fleet]
manager_id = "sweep-test"
store = "sqlite:{store}"
provision_interval = 0.5
scan_interval = 0.1
sweep_interval = 3600
sweep_grace = 0

[demand]
kind = "fixed"
pending = {{ "{POOL}" = 2 }}

[providers.aws]
kind = "aws"
regions = ["us-east-1"]
endpoint_url = "{endpoint}"
access_key_id = "AKIDSWEEPTEST"
secret_access_key = "sweep-test-secret"

[[pools]]
pool_id = "{POOL}"
provider_id = "aws"
max_capacity = 2
launch_configs = [{{ id = "m5", launch = {{ region = "us-east-1", ImageId = "ami-0123456789abcdef0", InstanceType = "m5.large" }} }}]
"#,
        store = store.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn running_workers(dir: &Path, db: &str) -> usize {
    let store = format!("sqlite:{}", dir.join(db).display());
    let (code, out, _) = skyfleet(&["workers", "--store", &store, "--json"]);
    if code != 0 {
        return 0;
    }
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|w| w["phase"] == "running")
        .count()
}

fn live_instances(mock: &str) -> usize {
    let body = http("GET", &format!("{mock}/_mock/resources?cloud=aws"), None).expect("resources");
    serde_json::from_str::<Value>(&body)
        .expect("resources JSON")
        .as_array()
        .map(|a| a.iter().filter(|r| r["state"] == "running").count())
        .unwrap_or(0)
}

/// The table rows whose verdict column is `what` (cells are separated by
/// at least two spaces; the summary line is not a row).
/// Runs `skyfleet run` on `config` until its store `db` has 2 running
/// workers, then stops it (its workers stay).
fn run_until_two_running(config: &Path, dir: &Path, db: &str) {
    let fleet = Fleet::start(config, free_port(), "text");
    let deadline = Instant::now() + Duration::from_secs(120);
    while running_workers(dir, db) < 2 {
        assert!(fleet.running(), "skyfleet run exited:\n{}", fleet.stderr());
        assert!(Instant::now() < deadline, "2 running:\n{}", fleet.stderr());
        std::thread::sleep(Duration::from_millis(300));
    }
    fleet.stop();
}

fn lines_with<'a>(out: &'a str, what: &str) -> Vec<&'a str> {
    let cell = format!("  {what}");
    out.lines().filter(|l| l.ends_with(&cell)).collect()
}

#[test]
fn sweeps_keep_live_vms_and_never_delete_another_stores_even_from_an_empty_store() {
    let (_mock, url) = start_mock();
    let dir = tempfile::tempdir().unwrap();
    let home = write_config(dir.path(), "a.toml", &url, "a.db");
    run_until_two_running(&home, dir.path(), "a.db");
    assert_eq!(live_instances(&url), 2);

    let (code, out, err) = skyfleet(&["sweep", "--config", home.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("store "), "{out}");
    assert_eq!(lines_with(&out, "live").len(), 2, "{out}");
    assert!(out.contains("PROVIDER  KIND"), "{out}");
    assert!(out.ends_with("seen 2: 2 live\n"), "{out}");

    // The same account from a new, empty store (no grace period): the
    // fleet's VMs are another store's, and stay.
    let stray = write_config(dir.path(), "b.toml", &url, "b.db");
    let (code, out, err) = skyfleet(&["sweep", "--config", stray.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(lines_with(&out, "foreign").len(), 2, "{out}");
    assert!(out.ends_with("seen 2: 2 foreign\n"), "{out}");
    assert_eq!(live_instances(&url), 2, "nothing was deleted");

    // That store now runs a fleet of its own in the same account, with the
    // same manager id: each fleet's sweep keeps its own live VMs and leaves
    // the other's alone.
    run_until_two_running(&stray, dir.path(), "b.db");
    assert_eq!(live_instances(&url), 4);
    for config in [&home, &stray] {
        let (code, out, err) = skyfleet(&["sweep", "--config", config.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}\n{err}");
        assert_eq!(lines_with(&out, "live").len(), 2, "{out}");
        assert_eq!(lines_with(&out, "foreign").len(), 2, "{out}");
        assert!(out.ends_with("seen 4: 2 live, 2 foreign\n"), "{out}");
    }
    assert_eq!(live_instances(&url), 4, "nothing was deleted");
}

#[test]
fn a_failed_listing_exits_1_naming_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = write_config(dir.path(), "a.toml", &dead, "a.db");
    let (code, out, err) = skyfleet(&["sweep", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("listing provider `aws` failed"), "{err}");
    assert!(out.ends_with("seen 0; listing failed: aws\n"), "{out}");
}
