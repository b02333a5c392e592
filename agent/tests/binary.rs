//! The `skyfleet-agent` binary around shell-script commands, against the
//! stub manager, as a static machine (bootstrap and secret from files).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skyfleet_core::protocol::{Action, Activity};
use support::manager::Stub;
use support::wait_for;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

const STATIC_SECRET: &str = "static-secret-4f1d9c";
const LIMIT: Duration = Duration::from_secs(20);

/// A test's files: bootstrap, secret, config, status, markers.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(root_url: &str, secret: &str) -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let boot = json!({"rootUrl": root_url, "workerPoolId": "ci/linux",
            "providerId": "static", "workerGroup": "lab", "workerId": "w-agent-1",
            "launchConfigId": "lc-1", "workerConfig": {}});
        std::fs::write(dir.path().join("bootstrap.json"), boot.to_string()).unwrap();
        std::fs::write(dir.path().join("secret"), format!("{secret}\n")).unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The agent running `script` (sh) with `extra` options.
fn agent(files: &Files, extra: &[&str], script: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skyfleet-agent"));
    cmd.args(["--cloud", "static", "--bootstrap-file"])
        .arg(files.path("bootstrap.json"))
        .arg("--secret-file")
        .arg(files.path("secret"))
        .arg("--config-out")
        .arg(files.path("worker.json"))
        .arg("--status-file")
        .arg(files.path("status"))
        .args(extra)
        .args(["--", "sh", "-c", script])
        .env("RUST_LOG", "debug")
        .env("MARK_DIR", files.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().expect("the agent starts")
}

/// Waits for the agent's exit (bounded); its status and stderr.
async fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut stderr = child.stderr.take().expect("piped");
    let mut text = String::new();
    let read = async {
        let _ = stderr.read_to_string(&mut text).await;
    };
    let (status, ()) = tokio::time::timeout(LIMIT, async { tokio::join!(child.wait(), read) })
        .await
        .expect("the agent exits in time");
    (status.expect("wait"), text)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("file")).expect("JSON")
}

fn last_state(stub: &Stub) -> Option<(Activity, u64)> {
    stub.book()
        .heartbeats
        .last()
        .map(|(h, _)| (h.state, h.tasks_completed))
}

/// A script that records TERM in `$MARK_DIR/term` (after a second) and
/// otherwise waits.
const TRAPS_TERM: &str =
    r#"trap 'sleep 1; echo term > "$MARK_DIR/term"; exit 0' TERM; sleep 60 & wait $!; sleep 60"#;

#[tokio::test]
async fn registers_writes_a_private_config_and_terminates_cleanly() {
    let stub = Stub::start(STATIC_SECRET).await;
    let files = Files::new(&stub.url, STATIC_SECRET);
    let script = r#"env > "$MARK_DIR/env"; echo "$@" > "$MARK_DIR/argv"; cp "$SKYFLEET_WORKER_CONFIG" "$MARK_DIR/seen.json"; trap 'echo term > "$MARK_DIR/term"; exit 0' TERM; sleep 60 & wait $!"#;
    let child = agent(&files, &[], script);
    wait_for("the command to read its config", LIMIT, || {
        files.path("seen.json").exists()
    })
    .await;
    let secret = stub.book().secret.clone().expect("registered");
    {
        let b = stub.book();
        assert_eq!(b.registers.len(), 1);
        assert_eq!(b.registers[0].0.worker_id, "w-agent-1");
        assert_eq!(b.registers[0].0.worker_pool_id, "ci/linux");
    }
    let config = files.path("worker.json");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the config file is private");
    let v = read_json(&files.path("seen.json"));
    assert_eq!(v["secret"], secret.as_str());
    assert_eq!(v["workerConfig"], json!({"threads": 4, "queue": "ci"}));
    assert_eq!(v["workerId"], "w-agent-1");
    assert_eq!(v["rootUrl"], stub.url.as_str());
    let env = std::fs::read_to_string(files.path("env")).unwrap();
    assert!(
        env.contains(&format!("SKYFLEET_WORKER_CONFIG={}", config.display())),
        "{env}"
    );
    assert!(
        !env.contains(&secret) && !env.contains(STATIC_SECRET),
        "no secret in the environment"
    );
    wait_for("a heartbeat", LIMIT, || !stub.book().heartbeats.is_empty()).await;
    stub.book().action = Action::Terminate;
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(files.path("term").exists(), "the command got SIGTERM");
    assert!(stub.book().drained.is_empty(), "terminate is not a drain");
    // Debug logs name neither the static secret nor the worker secret.
    assert!(stderr.contains("registered"), "{stderr}");
    assert!(
        !stderr.contains(&secret) && !stderr.contains(STATIC_SECRET),
        "{stderr}"
    );
}

#[tokio::test]
async fn heartbeats_follow_the_status_file_and_the_command_exit() {
    let stub = Stub::start(STATIC_SECRET).await;
    let files = Files::new(&stub.url, STATIC_SECRET);
    // A stale file from an earlier run must not make the worker idle.
    std::fs::write(files.path("status"), "idle").unwrap();
    let script = r#"while [ ! -e "$MARK_DIR/go" ]; do sleep 0.1; done; exit 0"#;
    let child = agent(&files, &[], script);
    wait_for("heartbeats", LIMIT, || stub.book().heartbeats.len() >= 2).await;
    assert_eq!(
        last_state(&stub),
        Some((Activity::Busy, 0)),
        "no status file: busy"
    );
    std::fs::write(files.path("status"), "busy").unwrap();
    let n = stub.book().heartbeats.len();
    wait_for("another heartbeat", LIMIT, || {
        stub.book().heartbeats.len() > n
    })
    .await;
    assert_eq!(last_state(&stub), Some((Activity::Busy, 0)));
    std::fs::write(
        files.path("status"),
        r#"{"state":"idle","running":0,"tasksCompleted":3}"#,
    )
    .unwrap();
    wait_for("an idle heartbeat", LIMIT, || {
        last_state(&stub) == Some((Activity::Idle, 3))
    })
    .await;
    std::fs::write(files.path("status"), "not a status").unwrap();
    wait_for("busy again", LIMIT, || {
        last_state(&stub).is_some_and(|(a, _)| a == Activity::Busy)
    })
    .await;
    // The command exits: idle, its exit counted.
    std::fs::write(files.path("go"), "").unwrap();
    wait_for("idle after the exit", LIMIT, || {
        last_state(&stub) == Some((Activity::Idle, 4))
    })
    .await;
    stub.book().action = Action::Terminate;
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
}

#[tokio::test]
async fn drain_terms_the_command_then_confirms_drained() {
    let stub = Stub::start(STATIC_SECRET).await;
    let files = Files::new(&stub.url, STATIC_SECRET);
    stub.book().marker = Some(files.path("term"));
    let child = agent(&files, &["--drain-grace", "10"], TRAPS_TERM);
    wait_for("a heartbeat", LIMIT, || !stub.book().heartbeats.is_empty()).await;
    stub.book().action = Action::Drain;
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
    let b = stub.book();
    assert_eq!(b.drained.len(), 1, "drained once");
    assert!(b.drained[0].1, "drained only after the command exited");
    assert!(
        b.heartbeats
            .iter()
            .any(|(h, _)| h.state == Activity::Draining),
        "reported draining while the command stopped"
    );
    assert!(files.path("term").exists());
}

#[tokio::test]
async fn a_command_ignoring_term_is_killed_after_the_grace() {
    let stub = Stub::start(STATIC_SECRET).await;
    let files = Files::new(&stub.url, STATIC_SECRET);
    let script = r#"trap '' TERM; echo $$ > "$MARK_DIR/pid"; while :; do sleep 0.1; done"#;
    let child = agent(&files, &["--drain-grace", "2"], script);
    wait_for("a heartbeat", LIMIT, || !stub.book().heartbeats.is_empty()).await;
    wait_for("the pid", LIMIT, || files.path("pid").exists()).await;
    let asked = Instant::now();
    stub.book().action = Action::Drain;
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
    let b = stub.book();
    assert_eq!(b.drained.len(), 1);
    let waited = b.drained[0].0 - asked;
    assert!(
        waited >= Duration::from_secs(2),
        "the grace was given: {waited:?}"
    );
    assert!(stderr.contains("SIGKILL"), "{stderr}");
    let pid = std::fs::read_to_string(files.path("pid")).unwrap();
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the command is gone"
    );
}

#[tokio::test]
async fn the_secret_is_renewed_before_expiry_and_the_file_rotated() {
    let stub = Stub::start(STATIC_SECRET).await;
    stub.book().lifetime = Duration::from_secs(4);
    let files = Files::new(&stub.url, STATIC_SECRET);
    let child = agent(&files, &[], TRAPS_TERM);
    wait_for("two renewals", LIMIT, || stub.book().reregisters.len() >= 2).await;
    let (first, registered_at) = {
        let b = stub.book();
        (b.reregisters[0], b.registers[0].1)
    };
    let after = first - registered_at;
    assert!(
        after >= Duration::from_millis(2900) && after < Duration::from_secs(4),
        "renewed at 3/4 of the lifetime, before expiry: {after:?}"
    );
    let n = stub.book().heartbeats.len();
    wait_for("heartbeats with the new secret", LIMIT, || {
        stub.book().heartbeats.len() > n + 1
    })
    .await;
    let current = stub.book().secret.clone().unwrap();
    let v = read_json(&files.path("worker.json"));
    assert_eq!(
        v["secret"],
        current.as_str(),
        "the file holds the new secret"
    );
    let mode = std::fs::metadata(files.path("worker.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(stub.book().refused, 0, "never an old secret");
    stub.book().action = Action::Terminate;
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
}

#[tokio::test]
async fn a_refused_registration_exits_with_a_clear_message() {
    let stub = Stub::start(STATIC_SECRET).await;
    let files = Files::new(&stub.url, "not-the-secret");
    let child = agent(&files, &[], r#"touch "$MARK_DIR/started""#);
    let (status, stderr) = finish(child).await;
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("refused this worker's credentials") && stderr.contains("401"),
        "{stderr}"
    );
    assert!(!files.path("started").exists(), "the command never started");
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
    assert_eq!(stub.book().registers.len(), 1, "401 is not retried");
}

#[tokio::test]
async fn a_manager_down_for_a_while_is_retried_until_it_answers() {
    // A port nothing listens on yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let stub = Stub::on(addr, STATIC_SECRET);
    let files = Files::new(&stub.url, STATIC_SECRET);
    let child = agent(&files, &[], TRAPS_TERM);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(stub.book().registers.is_empty());
    stub.listen().await;
    wait_for("registration after the outage", LIMIT, || {
        !stub.book().heartbeats.is_empty()
    })
    .await;
    stub.book().action = Action::Terminate;
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
}

#[tokio::test]
async fn sigterm_to_the_agent_stops_the_command_and_exits() {
    let stub = Stub::start(STATIC_SECRET).await;
    let files = Files::new(&stub.url, STATIC_SECRET);
    let child = agent(&files, &["--drain-grace", "10"], TRAPS_TERM);
    wait_for("a heartbeat", LIMIT, || !stub.book().heartbeats.is_empty()).await;
    let pid = libc::pid_t::try_from(child.id().expect("running")).unwrap();
    // SAFETY: kill(2) with plain integers, to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let (status, stderr) = finish(child).await;
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        files.path("term").exists(),
        "SIGTERM forwarded to the command"
    );
    assert!(stub.book().drained.is_empty());
}
