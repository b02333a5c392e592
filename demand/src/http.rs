//! [`HttpDemand`]: demand from a JSON endpoint.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use skyfleet_core::fleet::{Demand, PoolDemand};
use skyfleet_core::{Error, Result};

use crate::fetch;

/// Demand from a JSON endpoint: `GET {url}?pool={pool_id}` answering
/// `{"pending": N, "claimed": M}` (`claimed` optional, default 0; both
/// non-negative integers up to `u64::MAX`; other fields ignored).
///
/// Failures are classified as described in the [crate docs](crate); the
/// URL may carry credentials in its user-info or query, which no error
/// message shows.
#[derive(Debug, Clone)]
pub struct HttpDemand {
    url: String,
    client: reqwest::Client,
}

impl HttpDemand {
    /// A source polling `url` with a 10 s timeout per request. The URL is
    /// checked on each query (an invalid one is
    /// [`ErrorKind::InvalidConfig`](skyfleet_core::ErrorKind::InvalidConfig)
    /// for `demand.url`).
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Ok(HttpDemand {
            url: url.into(),
            client: fetch::client(fetch::TIMEOUT)?,
        })
    }

    /// The same source with each request bounded by `timeout` instead of
    /// 10 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self> {
        self.client = fetch::client(timeout)?;
        Ok(self)
    }
}

#[derive(Deserialize)]
struct HttpAnswer {
    pending: u64,
    #[serde(default)]
    claimed: u64,
}

#[async_trait]
impl Demand for HttpDemand {
    async fn demand(&self, pool_id: &str) -> Result<PoolDemand> {
        // The parser's message is about the text, never echoes it (the URL
        // may hold a credential).
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::invalid_config("demand.url", format!("{e}")))?;
        url.query_pairs_mut().append_pair("pool", pool_id);
        let a: HttpAnswer = fetch::get_json(&self.client, &url, None).await?;
        Ok(PoolDemand {
            pending: a.pending,
            claimed: a.claimed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use skyfleet_core::ErrorKind;

    use super::*;
    use crate::fetch::MAX_BODY;
    use crate::test_server::{serve, serve_fn, Reply};

    #[tokio::test]
    async fn asks_for_the_pool_and_reads_counts() {
        let s = serve(200, r#"{"pending": 7, "claimed": 2}"#).await;
        let d = HttpDemand::new(format!("{}/demand", s.base)).unwrap();
        let got = d.demand("prov/linux").await.unwrap();
        assert_eq!(
            got,
            PoolDemand {
                pending: 7,
                claimed: 2
            }
        );
        assert_eq!(s.lines(), vec!["GET /demand?pool=prov%2Flinux HTTP/1.1"]);
    }

    #[tokio::test]
    async fn claimed_defaults_to_zero_and_extra_fields_are_ignored() {
        let s = serve(200, r#"{"pending": 4, "note": "x"}"#).await;
        let got = HttpDemand::new(s.base).unwrap().demand("p").await.unwrap();
        assert_eq!(got.pending, 4);
        assert_eq!(got.claimed, 0);
    }

    #[tokio::test]
    async fn the_largest_count_is_accepted() {
        let s = serve(200, r#"{"pending": 18446744073709551615, "claimed": 0}"#).await;
        let got = HttpDemand::new(s.base).unwrap().demand("p").await.unwrap();
        assert_eq!(got.pending, u64::MAX);
    }

    #[tokio::test]
    async fn bad_url_is_invalid_config() {
        let e = HttpDemand::new("not a url")
            .unwrap()
            .demand("p")
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { .. }));
    }

    #[tokio::test]
    async fn absurd_counts_are_internal_errors() {
        for body in [
            r#"{"pending": -1}"#,
            r#"{"pending": 2.5}"#,
            r#"{"pending": "5"}"#,
            r#"{"pending": 18446744073709551617}"#,
            r#"{"pending": 1, "claimed": -3}"#,
            r#"{"pending": null}"#,
            r#"{"claimed": 1}"#,
            r#"[1, 2]"#,
            "",
        ] {
            let s = serve(200, body).await;
            let e = HttpDemand::new(s.base)
                .unwrap()
                .demand("p")
                .await
                .unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Internal), "{body}: {e}");
            assert!(e.to_string().contains("unexpected answer"), "{body}: {e}");
        }
    }

    #[tokio::test]
    async fn http_errors_are_typed_and_name_the_path_not_the_credentials() {
        for (status, kind) in [
            (404, "not_found"),
            (500, "transient"),
            (401, "unauthenticated"),
        ] {
            let s = serve(status, "{}").await;
            let url = s.base.replacen("http://", "http://me:pw-secret@", 1);
            let d = HttpDemand::new(format!("{url}/demand?key=qs-secret")).unwrap();
            let e = d.demand("p").await.unwrap_err();
            assert_eq!(e.kind().name(), kind, "{status}: {e}");
            let text = e.to_string();
            assert!(
                text.contains("/demand") && text.contains(&status.to_string()),
                "{text}"
            );
            assert!(
                !text.contains("pw-secret") && !text.contains("qs-secret"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let s = serve_fn(|_| Reply::Hang).await;
        let d = HttpDemand::new(s.base)
            .unwrap()
            .with_timeout(Duration::from_millis(300))
            .unwrap();
        let started = Instant::now();
        let e = d.demand("p").await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Timeout), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_slow_answer_within_the_timeout_succeeds() {
        let s =
            serve_fn(|_| Reply::json(200, r#"{"pending": 3}"#).after(Duration::from_millis(300)))
                .await;
        let d = HttpDemand::new(s.base)
            .unwrap()
            .with_timeout(Duration::from_secs(3))
            .unwrap();
        assert_eq!(d.demand("p").await.unwrap().pending, 3);
    }

    #[tokio::test]
    async fn a_huge_answer_is_refused() {
        let s = serve_fn(|_| Reply::unsized_body(200, MAX_BODY * 2)).await;
        let e = HttpDemand::new(s.base)
            .unwrap()
            .demand("p")
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Internal), "{e}");
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
