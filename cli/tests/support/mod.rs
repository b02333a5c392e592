//! Helpers of the CLI's end-to-end tests: the `skyfleet` binary as a child
//! process (killed when dropped), `skyfleet mock` sped up, a running fleet
//! whose standard error is collected, and a minimal loopback HTTP client.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_skyfleet");

/// Kills (and reaps) a child when dropped, so a failing test leaves no
/// process behind.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `skyfleet mock` on a free port, its time sped up 100 times.
pub fn start_mock() -> (Reaped, String) {
    let mut child = Command::new(BIN)
        .args(["mock", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start skyfleet mock");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the mock prints its URL");
    let url = line.trim().trim_end_matches('/').to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let body = r#"{"time_scale": 0.01}"#;
    http("PUT", &format!("{url}/_mock/config"), Some(body)).expect("configure the mock");
    (Reaped(child), url)
}

/// A minimal HTTP/1.1 exchange on loopback (no client crate needed): the
/// response body on a 2xx.
pub fn http(method: &str, url: &str, body: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let rest = url.strip_prefix("http://").ok_or("http only")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head.starts_with("HTTP/1.1 2") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(rest));
    }
    Ok(rest.to_string())
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `skyfleet run` whose standard error is collected.
pub struct Fleet {
    child: Reaped,
    stderr: Arc<Mutex<String>>,
}

impl Fleet {
    pub fn start(config: &Path, metrics_port: u16, format: &str) -> Fleet {
        Fleet::start_with_log(config, metrics_port, format, None)
    }

    /// With `RUST_LOG` set to `rust_log` (unset when `None`).
    pub fn start_with_log(
        config: &Path,
        metrics_port: u16,
        format: &str,
        rust_log: Option<&str>,
    ) -> Fleet {
        let mut command = Command::new(BIN);
        command.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
            .args(["run", "--config"])
            .arg(config)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(["--log-format", format])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start skyfleet run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Fleet {
            child: Reaped(child),
            stderr,
        }
    }

    pub fn running(&self) -> bool {
        // `try_wait` needs `&mut`; a clone of the handle is not available,
        // so ask the OS whether the process is still there.
        Path::new(&format!("/proc/{}", self.child.0.id())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.child.0.id()))
                .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (`TERM`, `INT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.0.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid}: {sent}");
    }

    /// Waits up to `limit` for the process to exit: its status, or `None`
    /// if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT, then waits for the process to stop and its output to drain.
    pub fn stop(mut self) -> String {
        let pid = self.child.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                assert!(
                    status.success(),
                    "skyfleet run exited {status}: {}",
                    self.stderr()
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        self.stderr()
    }
}

pub fn skyfleet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run skyfleet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
