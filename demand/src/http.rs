//! [`HttpDemand`]: demand from a JSON endpoint.

use async_trait::async_trait;
use serde::Deserialize;
use skyfleet_core::fleet::{Demand, PoolDemand};
use skyfleet_core::{Error, Result};

use crate::fetch;

/// Demand from a JSON endpoint: `GET {url}?pool={pool_id}` answering
/// `{"pending": N, "claimed": M}` (`claimed` optional, default 0).
#[derive(Debug, Clone)]
pub struct HttpDemand {
    url: String,
    client: reqwest::Client,
}

impl HttpDemand {
    /// A source polling `url` with a 10 s timeout.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Ok(HttpDemand {
            url: url.into(),
            client: fetch::client(fetch::TIMEOUT)?,
        })
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
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::invalid_config("demand.url", format!("{e}")))?;
        url.query_pairs_mut().append_pair("pool", pool_id);
        let a: HttpAnswer = fetch::get_json(&self.client, url.as_str()).await?;
        Ok(PoolDemand {
            pending: a.pending,
            claimed: a.claimed,
        })
    }
}

#[cfg(test)]
mod tests {
    use skyfleet_core::ErrorKind;

    use super::*;
    use crate::fetch::test_server::serve;

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
        let lines = s.requests.lock().unwrap().clone();
        assert_eq!(lines, vec!["GET /demand?pool=prov%2Flinux HTTP/1.1"]);
    }

    #[tokio::test]
    async fn claimed_defaults_to_zero() {
        let s = serve(200, r#"{"pending": 4}"#).await;
        let got = HttpDemand::new(s.base).unwrap().demand("p").await.unwrap();
        assert_eq!(got.pending, 4);
        assert_eq!(got.claimed, 0);
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
}
