//! A tiny local HTTP/1.1 server for the sources' tests: every connection's
//! request is parsed (request line and headers), recorded, and answered by
//! a closure: a JSON status and body (optionally late), a body with no
//! length, or no answer at all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `GET`.
    pub(crate) method: String,
    /// The request target as sent: path and query, still percent-encoded.
    pub(crate) target: String,
    /// Header names lower-cased, values trimmed.
    pub(crate) headers: Vec<(String, String)>,
}

impl Seen {
    /// The first value of header `name` (lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// A JSON answer with a `Content-Length`, after `delay`.
    Json {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
        delay: Duration,
    },
    /// `len` bytes of body with no `Content-Length` (read until close).
    Unsized { status: u16, len: usize },
    /// Never answer; hold the connection open.
    Hang,
}

impl Reply {
    /// A JSON answer, at once.
    pub(crate) fn json(status: u16, body: &str) -> Reply {
        Reply::Json {
            status,
            body: body.to_string(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// A body of `len` bytes without a length.
    pub(crate) fn unsized_body(status: u16, len: usize) -> Reply {
        Reply::Unsized { status, len }
    }

    /// The same answer with one more header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Json { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// The same answer, sent after `d`.
    pub(crate) fn after(mut self, d: Duration) -> Reply {
        if let Reply::Json { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

/// The server's base URL (`http://127.0.0.1:PORT`) and what it has seen.
pub(crate) struct Served {
    pub(crate) base: String,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

impl Served {
    /// The request lines seen so far (`GET /path HTTP/1.1`).
    pub(crate) fn lines(&self) -> Vec<String> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|s| format!("{} {} HTTP/1.1", s.method, s.target))
            .collect()
    }

    /// Everything seen so far.
    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Serves `status` with `body` to every request.
pub(crate) async fn serve(status: u16, body: &str) -> Served {
    let body = body.to_string();
    serve_fn(move |_| Reply::json(status, &body)).await
}

/// Answers every request with `f(request)`.
pub(crate) async fn serve_fn<F>(f: F) -> Served
where
    F: Fn(&Seen) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let f = Arc::new(f);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let f = f.clone();
            let log = log.clone();
            tokio::spawn(async move { handle(sock, f.as_ref(), &log).await });
        }
    });
    Served { base, seen }
}

async fn handle<F: Fn(&Seen) -> Reply>(mut sock: TcpStream, f: &F, log: &Mutex<Vec<Seen>>) {
    let Some(req) = read_head(&mut sock).await else {
        return;
    };
    log.lock().expect("lock").push(req.clone());
    match f(&req) {
        Reply::Json {
            status,
            body,
            headers,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (n, v) in headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        }
        Reply::Unsized { status, len } => {
            let head = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n\r\n");
            let _ = sock.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                if sock.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
    let _ = sock.shutdown().await;
}

/// Reads up to the blank line ending the head (GETs carry no body).
async fn read_head(sock: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Seen {
        method,
        target,
        headers,
    })
}
