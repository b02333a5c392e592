//! Browser tests of the mock's dashboard (`/_mock/ui`), in a real headless
//! Chromium driven over WebDriver by chromedriver.
//!
//! The tests are in `tests/dashboard.rs`. They need:
//!
//! - the `chromium` feature, which builds the WebDriver client (off by
//!   default, so `cargo test --workspace` builds no browser driver);
//! - Debian's `chromium` and `chromium-driver` packages (or the
//!   `SKYFLEET_CHROMIUM` and `SKYFLEET_CHROMEDRIVER` variables naming the
//!   binaries).
//!
//! Without either, each test prints `browser test skipped: ...` and
//! passes.
//!
//! ```sh
//! apt-get install -y chromium chromium-driver
//! cargo test --workspace --features skyfleet-tests-browser/chromium --test dashboard -- --nocapture
//! ```

#![warn(missing_docs)]

pub mod clouds;
#[cfg(feature = "chromium")]
pub mod driver;

/// Prints why a browser test did not run, in the form CI logs are searched
/// for. Written to stderr directly, past the test harness's capture, so it
/// shows in a plain `cargo test` run.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "browser test skipped: {why}");
}
