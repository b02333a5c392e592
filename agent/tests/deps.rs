//! The agent runs on every worker: its normal dependencies include neither
//! an AWS SDK, nor a provider crate, nor the mock.

use std::process::Command;

const FORBIDDEN: [&str; 6] = [
    "aws-sdk-",
    "skyfleet-aws",
    "skyfleet-gcp",
    "skyfleet-azure",
    "skyfleet-static",
    "skyfleet-mock",
];

fn tree(offline: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "tree",
        "-p",
        "skyfleet-agent",
        "-e",
        "normal",
        "--prefix",
        "none",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if offline {
        cmd.arg("--offline");
    }
    cmd.output().expect("cargo runs")
}

#[test]
fn the_agent_depends_on_no_sdk_provider_or_mock() {
    let mut out = tree(true);
    if !out.status.success() {
        out = tree(false);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The tree names the agent and what it needs (it is not empty).
    assert!(text.contains("skyfleet-agent v"), "{text}");
    assert!(text.contains("skyfleet-core v"), "{text}");
    assert!(text.contains("reqwest v"), "{text}");
    for line in text.lines() {
        for bad in FORBIDDEN {
            assert!(
                !line.starts_with(bad),
                "the agent depends on {line:?} (forbidden: {bad})"
            );
        }
    }
}
