//! A headless Chromium session through chromedriver: launch, script
//! evaluation with waits, console errors (the page's own hook and the
//! browser's log) and screenshots.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

/// Chromium's flags: headless, no sandbox (CI runs as root), and nothing
/// that reaches the network by itself.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1500",
];

/// How long chromedriver may take to answer its status endpoint.
const DRIVER_START: Duration = Duration::from_secs(20);

/// One browser at a time: the tests measure timings, and two Chromiums on
/// a small machine would measure each other.
static TURN: Mutex<()> = Mutex::const_new(());

/// The Chromium and chromedriver binaries, or why the tests cannot run.
pub fn binaries() -> Result<(PathBuf, PathBuf), String> {
    let find = |var: &str, default: &str| {
        let path = std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default));
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} not found (install Debian's chromium and chromium-driver, or set {var})",
                path.display()
            ))
        }
    };
    Ok((
        find("SKYFLEET_CHROMIUM", "/usr/bin/chromium")?,
        find("SKYFLEET_CHROMEDRIVER", "/usr/bin/chromedriver")?,
    ))
}

/// A browser session. Call [`Browser::close`] at the end; dropping it
/// (a failed test) kills chromedriver and the browser it started.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

/// chromedriver's (non-W3C) browser log command: answers and clears the
/// console messages collected so far.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

impl Browser {
    /// Starts chromedriver and a fresh Chromium profile. `None` (after
    /// printing why) when the binaries are not installed; panics when they
    /// are but do not work, because that is a failure, not a skip.
    pub async fn launch() -> Option<Browser> {
        let (chromium, chromedriver) = match binaries() {
            Ok(b) => b,
            Err(why) => {
                crate::skipped(&why);
                return None;
            }
        };
        let turn = TURN.lock().await;
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        wait_for_driver(&base).await;
        let profile = tempfile::tempdir().expect("a temporary Chromium profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&base)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {e}"));
        Some(Browser {
            client,
            driver,
            _profile: profile,
            _turn: turn,
        })
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for the dashboard to finish its first load
    /// (`body[data-ready]`, set once the journal caught up).
    pub async fn open_dashboard(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
        self.wait_js(
            "the dashboard to load",
            Duration::from_secs(10),
            "return document.body && document.body.dataset.ready === 'true'",
        )
        .await;
    }

    /// Runs a script (its `return` value is the answer).
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something other than `null`,
    /// `false`, `0` or `""`; answers that value, or panics after `timeout`
    /// naming `what`.
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if started.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Clicks the element `css` selects. The page redraws panels as events
    /// arrive, so an element found can be replaced before the click lands
    /// ("stale element reference"): then it is found again, up to 5 times.
    pub async fn click(&self, css: &str) {
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let el = self
                .client
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no element {css}: {e}"));
            match el.click().await {
                Ok(_) => return,
                Err(e) if attempt < ATTEMPTS && e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot click {css}: {e}"),
            }
        }
    }

    /// Replaces the text of the input `css` selects, as a user types it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"));
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Picks the option with `value` in the select `css` selects.
    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// What the page's error hook caught (exceptions, rejected promises,
    /// files that failed to load, CSP violations).
    pub async fn page_errors(&self) -> Vec<String> {
        let v = self
            .js("return window.__dashboardErrors || ['the error hook is missing']")
            .await;
        v.as_array()
            .map(|a| a.iter().map(|e| e.to_string()).collect())
            .unwrap_or_default()
    }

    /// The browser console's SEVERE messages since the last call (network
    /// failures and errors the page did not catch included).
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|e| panic!("chromedriver's browser log: {e}"));
        log.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG screenshot of the window.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, which holds the
        // Chromium processes it started: end them all, also when a test
        // failed before `close`.
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--"])
                .arg(format!("-{pid}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A port free right now on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until chromedriver answers `/status` with `ready: true`.
async fn wait_for_driver(base: &str) {
    let http = crate::clouds::http();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/status")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if v["value"]["ready"] == true {
                    return;
                }
            }
        }
        if started.elapsed() > DRIVER_START {
            panic!("chromedriver did not answer on {base} within {DRIVER_START:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
