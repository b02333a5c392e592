//! The one HTTP GET every source makes: a JSON body, errors classified by
//! core's [`ErrorKind`].

use std::time::Duration;

use skyfleet_core::{Error, ErrorKind, Result};

/// How long one demand query may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest demand answer read (they are a few dozen bytes).
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// A client whose every request is bounded by `timeout`.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| Error::internal(format!("demand: building HTTP client: {e}")))
}

/// `GET url`, decoding the JSON body as `T`. Timeouts come back as
/// [`ErrorKind::Timeout`], connection failures and 5xx as
/// [`ErrorKind::Transient`], other statuses and bad bodies as
/// [`ErrorKind::Internal`].
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T> {
    let resp = client.get(url).send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Transient
        };
        Error::new(kind, format!("demand: GET {url}: {e}"))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::new(
            if status.is_server_error() {
                ErrorKind::Transient
            } else {
                ErrorKind::Internal
            },
            format!("demand: GET {url}: HTTP {status}"),
        ));
    }
    let body = read_capped(resp, MAX_BODY, url).await?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::internal(format!("demand: GET {url}: unexpected body: {e}")))
}

/// The body, at most `max` bytes: a longer `Content-Length` is refused
/// before reading, a longer stream when it passes `max`.
async fn read_capped(mut resp: reqwest::Response, max: usize, url: &str) -> Result<Vec<u8>> {
    let too_large =
        || Error::internal(format!("demand: GET {url}: answer larger than {max} bytes"));
    if resp
        .content_length()
        .is_some_and(|l| l > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::new(ErrorKind::Transient, format!("demand: GET {url}: {e}")))?
    {
        if chunk.len() > max - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A one-shot HTTP server for the sources' tests: answers every request
    //! with a fixed status and body and records the request lines.

    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// The server's base URL and the request lines it has seen.
    pub(crate) struct Served {
        pub(crate) base: String,
        pub(crate) requests: Arc<Mutex<Vec<String>>>,
    }

    /// Serves `status` with `body` to every connection.
    pub(crate) async fn serve(status: u16, body: &'static str) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = text.lines().next().unwrap_or("").to_string();
                seen.lock().expect("lock").push(line);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        Served { base, requests }
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::serve;
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Answer {
        n: u64,
    }

    #[tokio::test]
    async fn decodes_json_body() {
        let s = serve(200, r#"{"n": 3}"#).await;
        let a: Answer = get_json(&client(TIMEOUT).unwrap(), &s.base).await.unwrap();
        assert_eq!(a.n, 3);
    }

    #[tokio::test]
    async fn server_error_is_transient_client_error_internal() {
        let s = serve(503, "{}").await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &s.base)
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Transient));
        let s = serve(404, "{}").await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &s.base)
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Internal));
    }

    #[tokio::test]
    async fn an_answer_over_the_body_limit_is_refused() {
        let big = format!(r#"{{"n": 3, "pad": "{}"}}"#, "x".repeat(MAX_BODY));
        let s = serve(200, Box::leak(big.into_boxed_str())).await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &s.base)
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Internal));
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[tokio::test]
    async fn bad_body_is_internal() {
        let s = serve(200, "not json").await;
        let e = get_json::<Answer>(&client(TIMEOUT).unwrap(), &s.base)
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Internal));
    }
}
