//! The metadata services against the official Python clients (botocore's
//! IMDS fetcher, google-auth's compute-engine credentials, requests for
//! Azure's IMDS): `tests-python/run.sh` with this build's `skyfleet-mock`.
//!
//! The script installs its pinned clients into a cached virtualenv; where
//! Python or pip cannot provide them it prints "python imds tests skipped:
//! REASON" and exits 0, which this test passes through. A failing pytest
//! run fails this test with pytest's output.

use std::path::Path;
use std::process::Command;

#[test]
fn official_python_clients_read_the_metadata_services() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests-python/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("SKYFLEET_MOCK_BIN", env!("CARGO_BIN_EXE_skyfleet-mock"))
        .output()
        .expect("bash runs tests-python/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "tests-python/run.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Either pytest ran and reported passes, or the script said why not.
    assert!(
        stdout.contains("passed") || stdout.contains("python imds tests skipped:"),
        "tests-python/run.sh printed neither a pytest summary nor a skip reason:\n{stdout}"
    );
}
