//! The mock cloud in a process of its own (`skyfleet mock` as a child), so
//! `bench scale` counts only skyfleet's CPU and memory, not the mock's.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::mock_clouds;

/// How long the child has to print its URL.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one control call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `skyfleet mock` child (killed when dropped).
pub struct MockProcess {
    child: Child,
    /// Its base URL (`https://127.0.0.1:PORT`).
    pub url: String,
    /// Its TLS certificate (PEM).
    pub ca_pem: String,
    http: reqwest::Client,
}

impl MockProcess {
    /// Starts `skyfleet mock --tls` on a free loopback port, its
    /// certificate written under `dir`.
    pub async fn spawn(dir: &Path) -> Result<MockProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("the skyfleet binary: {e}"))?;
        let cert = dir.join("mock.pem");
        let mut child = Command::new(exe)
            .args(["mock", "--listen", "127.0.0.1:0", "--tls", "--cert-out"])
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting the mock: {e}"))?;
        let stdout = child.stdout.take().ok_or("the mock's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| "the mock printed no URL within 30 s".to_string())?
            .map_err(|e| format!("reading the mock's URL: {e}"))?
            .ok_or("the mock exited before printing its URL")?;
        let ca_pem = std::fs::read_to_string(&cert)
            .map_err(|e| format!("the mock's certificate {}: {e}", cert.display()))?;
        let root = reqwest::Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| format!("the mock's certificate: {e}"))?;
        let http = reqwest::Client::builder()
            .add_root_certificate(root)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(MockProcess {
            child,
            url: url.trim().trim_end_matches('/').to_string(),
            ca_pem,
            http,
        })
    }

    /// One call to the mock (control API or ARM), JSON in and out; an
    /// error names the call and the status.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let m =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("{method}: {e}"))?;
        let mut req = self
            .http
            .request(m, format!("{}{path}", self.url))
            .bearer_auth("skyfleet-bench");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: bad JSON: {e}"))
    }

    /// Creates the demo's Azure network ([`mock_clouds::scaffold_requests`]).
    pub async fn scaffold(&self) -> Result<(), String> {
        for (path, body) in mock_clouds::scaffold_requests() {
            self.call("PUT", &path, Some(body)).await?;
        }
        Ok(())
    }

    /// Every live resource (`/_mock/resources`).
    pub async fn resources(&self) -> Result<Vec<Value>, String> {
        match self.call("GET", "/_mock/resources", None).await? {
            Value::Array(v) => Ok(v),
            other => Err(format!("/_mock/resources: expected an array, got {other}")),
        }
    }

    /// Stops the child.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
