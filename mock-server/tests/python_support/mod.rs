//! Runs one suite of `tests-python/` through `tests-python/run.sh SUITE`
//! with this build's `skyfleet-mock`.
//!
//! The script installs the suite's pinned clients into a cached virtualenv;
//! where Python or pip cannot provide them it prints "python SUITE tests
//! skipped: REASON" and exits 0, which passes. A failing pytest run fails
//! the calling test with pytest's output.

use std::path::Path;
use std::process::Command;

/// Runs `tests-python/run.sh suite` and asserts it passed or said why it
/// was skipped.
pub fn run_suite(suite: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests-python/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(suite)
        .env("SKYFLEET_MOCK_BIN", env!("CARGO_BIN_EXE_skyfleet-mock"))
        .output()
        .expect("bash runs tests-python/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "tests-python/run.sh {suite} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Either pytest ran and reported passes, or the script said why not.
    let skipped = format!("python {suite} tests skipped:");
    assert!(
        stdout.contains(" passed") || stdout.contains(&skipped),
        "tests-python/run.sh {suite} printed neither a pytest summary nor a skip reason:\n{stdout}"
    );
}
