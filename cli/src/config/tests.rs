//! Tests of the config file's parsing, defaults, errors and redaction.

use super::*;

#[test]
fn fleet_settings_apply_over_defaults() {
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\nstep_timeout = 2.5\nconcurrency_per_partition = 8\n",
        "fleet.toml",
    )
    .unwrap();
    let c = f.fleet.to_config().unwrap();
    assert_eq!(c.step_timeout, Duration::from_millis(2500));
    assert_eq!(c.concurrency_per_partition, 8);
    assert_eq!(
        c.lease,
        FleetConfig::default().lease,
        "others keep defaults"
    );
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\nsweep_grace = -3\n",
        "fleet.toml",
    )
    .unwrap();
    let e = f.fleet.to_config().unwrap_err().to_string();
    assert!(e.contains("fleet.sweep_grace"), "{e}");
    let e = parse("[fleet]\nstep_timeot = 3\n", "fleet.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("step_timeot"), "{e}");
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\nroot_url = \"https://m.example/\"\n",
        "f.toml",
    )
    .unwrap();
    assert_eq!(
        f.fleet.root_url().unwrap().as_deref(),
        Some("https://m.example")
    );
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\nroot_url = \"m.example\"\n",
        "f.toml",
    )
    .unwrap();
    let e = f.fleet.root_url().unwrap_err().to_string();
    assert!(e.contains("fleet.root_url"), "{e}");
    assert_eq!(
        parse("[fleet]\nmanager_id = \"m\"\n", "f.toml")
            .unwrap()
            .fleet
            .root_url()
            .unwrap(),
        None
    );
}

#[test]
fn parses_a_full_file() {
    let f = parse(
        r#"
[fleet]
manager_id = "m"
[demand]
kind = "fixed"
pending = { "p" = 3 }
[providers.local]
kind = "testing"
[[pools]]
pool_id = "p"
provider_id = "local"
max_capacity = 4
launch_configs = [{ id = "a", launch = { size = "small" } }]
"#,
        "fleet.toml",
    )
    .unwrap();
    assert_eq!(f.pools[0].max_capacity, 4);
    assert_eq!(f.providers["local"].kind, "testing");
}

#[tokio::test]
async fn every_provider_kind_builds_from_a_section() {
    let f = parse(
        r#"
[fleet]
manager_id = "m"
[providers.local]
kind = "testing"
[providers.machines]
kind = "static"
[providers.aws]
kind = "aws"
regions = ["us-east-1"]
endpoint_url = "http://127.0.0.1:1"
access_key_id = "AKIDTEST"
secret_access_key = "secret"
[providers.gcp]
kind = "gcp"
project = "p"
zones = ["europe-west1-b"]
static_token = "t"
[providers.azure]
kind = "azure"
subscription_id = "00000000-0000-0000-0000-000000000001"
resource_groups = ["rg"]
credential = { kind = "static_token", token = "t" }
"#,
        "fleet.toml",
    )
    .unwrap();
    for (id, section) in &f.providers {
        let p = crate::providers::from_config(id, section, Some("https://m.example"))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(p.id(), id);
    }
    let bad = parse(
        "[fleet]\nmanager_id = \"m\"\n[providers.x]\nkind = \"static\"\nfoo = 1\n",
        "f.toml",
    )
    .unwrap();
    let e = crate::providers::from_config("x", &bad.providers["x"], None)
        .await
        .err()
        .unwrap();
    assert!(e.contains("foo"), "{e}");
}

#[test]
fn errors_name_file_and_key_path() {
    let e = parse(
        "[[pools]]\npool_id = \"p\"\nprovider_id = \"x\"\nmax_capacity = \"ten\"\nlaunch_configs = []\n",
        "fleet.toml",
    )
    .unwrap_err();
    assert!(e.0.starts_with("fleet.toml"), "{e}");
    assert!(e.0.contains("pools[0].max_capacity"), "{e}");
    let e = parse("[fleet]\nmanger_id = \"x\"\n", "f.toml").unwrap_err();
    assert!(e.0.contains("manger_id"), "{e}");
}

#[test]
fn manager_id_is_required() {
    for text in [
        "",
        "[fleet]\nstore = \"memory:\"\n",
        "[fleet]\nmanager_id = \"  \"\n",
    ] {
        let e = parse(text, "fleet.toml").unwrap_err().to_string();
        assert!(e.starts_with("fleet.toml"), "{text:?}: {e}");
        assert!(
            e.contains("`fleet.manager_id` is required"),
            "{text:?}: {e}"
        );
    }
    let f = parse("[fleet]\nmanager_id = \"prod-eu\"\n", "fleet.toml").unwrap();
    assert_eq!(f.fleet.to_config().unwrap().manager_id, "prod-eu");
}

#[test]
fn debug_output_shows_no_credential_or_store_password() {
    let f = parse(
        r#"
[fleet]
manager_id = "m"
store = "postgres://fleet:pg-pass-1@db/fleet"
[providers.aws]
kind = "aws"
regions = ["us-east-1"]
access_key_id = "AKIDDEBUG1"
secret_access_key = "aws-secret-1"
[providers.gcp]
kind = "gcp"
project = "p"
static_token = "gcp-token-1"
[providers.azure]
kind = "azure"
subscription_id = "s"
resource_groups = ["rg"]
credential = { kind = "client_secret", tenant_id = "t", client_id = "c", client_secret = "az-secret-1" }
"#,
        "fleet.toml",
    )
    .unwrap();
    let shown = format!("{f:?}");
    for secret in [
        "pg-pass-1",
        "AKIDDEBUG1",
        "aws-secret-1",
        "gcp-token-1",
        "az-secret-1",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    // What is not secret still shows.
    for visible in [
        "fleet:REDACTED@db",
        "us-east-1",
        "client_secret",
        "tenant_id",
    ] {
        assert!(shown.contains(visible), "{visible} not in {shown}");
    }
}

#[test]
fn sweep_limits_are_read() {
    let f = parse("[fleet]\nmanager_id = \"m\"\n", "fleet.toml").unwrap();
    let c = f.fleet.to_config().unwrap();
    assert_eq!((c.sweep_max_delete, c.sweep_dry_run), (None, false));
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\nsweep_max_delete = 3\nsweep_dry_run = true\n",
        "fleet.toml",
    )
    .unwrap();
    let c = f.fleet.to_config().unwrap();
    assert_eq!((c.sweep_max_delete, c.sweep_dry_run), (Some(3), true));
}

#[test]
fn retention_settings_are_read_and_default_to_7_days_and_100_errors() {
    let f = parse("[fleet]\nmanager_id = \"m\"\n", "fleet.toml").unwrap();
    let c = f.fleet.to_config().unwrap();
    assert_eq!(c.retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(c.pool_errors_kept, 100);
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\nretention = 86400\npool_errors_kept = 5\n",
        "fleet.toml",
    )
    .unwrap();
    let c = f.fleet.to_config().unwrap();
    assert_eq!(c.retention, Duration::from_secs(86400));
    assert_eq!(c.pool_errors_kept, 5);
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\nretention = -1\n",
        "fleet.toml",
    )
    .unwrap();
    let e = f.fleet.to_config().unwrap_err();
    assert!(e.to_string().contains("fleet.retention"), "{e}");
}

#[test]
fn offering_ttls_are_read_default_per_class_and_out_of_range_names_the_key() {
    let f = parse("[fleet]\nmanager_id = \"m\"\n", "fleet.toml").unwrap();
    let c = f.fleet.to_config().unwrap();
    assert_eq!(c.offering_ttl_capacity, Duration::from_secs(180));
    assert_eq!(c.offering_ttl_quota, Duration::from_secs(900));
    assert_eq!(c.offering_ttl_interruption, Duration::from_secs(180));
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\noffering_ttl_capacity = 30\noffering_ttl_quota = 3600\n\
         offering_ttl_interruption = 60\n",
        "fleet.toml",
    )
    .unwrap();
    let c = f.fleet.to_config().unwrap();
    assert_eq!(c.offering_ttl_capacity, Duration::from_secs(30));
    assert_eq!(c.offering_ttl_quota, Duration::from_secs(3600));
    assert_eq!(c.offering_ttl_interruption, Duration::from_secs(60));
    c.validate().unwrap();
    for (key, value) in [
        ("offering_ttl_capacity", "0.5"),
        ("offering_ttl_quota", "86401"),
        ("offering_ttl_interruption", "0"),
    ] {
        let f = parse(
            &format!("[fleet]\nmanager_id = \"m\"\n{key} = {value}\n"),
            "fleet.toml",
        )
        .unwrap();
        let e = f.fleet.to_config().unwrap().validate().unwrap_err();
        assert!(e.to_string().contains(&format!("fleet.{key}")), "{e}");
    }
    let f = parse(
        "[fleet]\nmanager_id = \"m\"\noffering_ttl_quota = -1\n",
        "fleet.toml",
    )
    .unwrap();
    let e = f.fleet.to_config().unwrap_err();
    assert!(e.to_string().contains("fleet.offering_ttl_quota"), "{e}");
}
