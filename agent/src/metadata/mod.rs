//! Who this worker is: its bootstrap document and its cloud's identity
//! proof, read from the cloud's instance-metadata service (or, for static
//! machines, from files).
//!
//! One [`MetadataSource`] per cloud. The base URL is overridable so the
//! agent runs against the mock's per-VM metadata
//! (`{mock}/_imds/aws/{instance-id}` and the like); by default it is the
//! cloud's link-local address. [`MetadataSource::detect`] finds the cloud
//! by probing each with a short timeout.
//!
//! Every request has a timeout, and transient failures (connection errors,
//! 5xx, 429) are retried with a bounded backoff ([`RetryPolicy`]).

mod aws;
mod azure;
mod gcp;
mod http;
pub mod notice;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use skyfleet_core::protocol::InterruptionNotice;
use skyfleet_core::provider::support::Secret;
use skyfleet_core::provider::{Bootstrap, BootstrapError, IdentityProof};

use crate::retry::RetryPolicy;

use self::http::MetadataClient;

/// The real metadata address of AWS and Azure.
pub const LINK_LOCAL_URL: &str = "http://169.254.169.254";
/// The real metadata address of Compute Engine.
pub const GCE_URL: &str = "http://metadata.google.internal";
/// The timeout of each probe of [`MetadataSource::detect`].
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A cloud the agent knows how to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Amazon EC2 (IMDSv2).
    Aws,
    /// Google Compute Engine.
    Gcp,
    /// Microsoft Azure.
    Azure,
    /// A static machine: bootstrap and secret from files.
    Static,
}

impl Cloud {
    /// The stable name (`aws`, `gcp`, `azure`, `static`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
            Cloud::Static => "static",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cloud {
    type Err = MetadataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "aws" | "ec2" => Ok(Cloud::Aws),
            "gcp" | "gce" | "google" => Ok(Cloud::Gcp),
            "azure" => Ok(Cloud::Azure),
            "static" => Ok(Cloud::Static),
            _ => Err(MetadataError::UnknownCloud(s.chars().take(40).collect())),
        }
    }
}

/// Why the worker's identity could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// `--cloud` named no cloud the agent knows.
    #[error("unknown cloud {0:?} (expected aws, gcp, azure or static)")]
    UnknownCloud(String),
    /// No probe answered as a metadata service.
    #[error("no cloud metadata service answered at {tried}; pass --cloud (and --metadata-url)")]
    NoCloudDetected {
        /// The URLs probed.
        tried: String,
    },
    /// The metadata service could not be reached (after retries).
    #[error("{cloud} metadata: {what}: cannot reach {url}: {reason}")]
    Unreachable {
        /// The cloud.
        cloud: Cloud,
        /// What was being read.
        what: &'static str,
        /// The URL (without query).
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The metadata service answered with an error status.
    #[error("{cloud} metadata: {what}: HTTP {status} from {url}")]
    Status {
        /// The cloud.
        cloud: Cloud,
        /// What was being read.
        what: &'static str,
        /// The URL (without query).
        url: String,
        /// The status.
        status: u16,
    },
    /// An answer was not what the cloud serves.
    #[error("{cloud} metadata: {what}: {reason}")]
    Malformed {
        /// The cloud.
        cloud: Cloud,
        /// What was being read.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The bootstrap document did not parse (it names the field).
    #[error("{cloud} metadata: bootstrap document: {source}")]
    Bootstrap {
        /// The cloud.
        cloud: Cloud,
        /// The parse error.
        source: BootstrapError,
    },
    /// A static machine's file could not be read.
    #[error("static: cannot read {what} from {path}: {source}")]
    File {
        /// Which file (`bootstrap`, `secret`).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A static machine's config was incomplete.
    #[error("static: {0}")]
    StaticConfig(&'static str),
}

/// What the worker learned about itself: who it is and where its manager
/// is, and the proof it registers with.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// The cloud it was read from.
    pub cloud: Cloud,
    /// The bootstrap document.
    pub bootstrap: Bootstrap,
    /// The proof (its `Debug` shows only sizes).
    pub proof: IdentityProof,
}

/// Where a worker's identity is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataSource {
    /// EC2's IMDSv2 at `base_url` (an IMDSv2 token, then `/latest/user-data`
    /// and the signed instance identity document).
    Aws {
        /// The service's base URL.
        base_url: String,
    },
    /// Compute Engine's metadata server at `base_url` (the `taskcluster`
    /// attribute and an identity token for the manager's root URL).
    Gcp {
        /// The service's base URL.
        base_url: String,
    },
    /// Azure's IMDS at `base_url` (`userData` and the attested document).
    Azure {
        /// The service's base URL.
        base_url: String,
    },
    /// A static machine: the bootstrap JSON and the worker's secret in
    /// files.
    Static {
        /// The bootstrap document (JSON).
        bootstrap: PathBuf,
        /// The static secret (surrounding whitespace ignored).
        secret: PathBuf,
    },
}

impl MetadataSource {
    /// The source of `cloud` at `base_url` (the cloud's real address when
    /// `None`). Static machines need [`MetadataSource::Static`] directly.
    pub fn for_cloud(cloud: Cloud, base_url: Option<&str>) -> Result<Self, MetadataError> {
        let url = |default: &str| {
            base_url
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_string()
        };
        match cloud {
            Cloud::Aws => Ok(MetadataSource::Aws {
                base_url: url(LINK_LOCAL_URL),
            }),
            Cloud::Gcp => Ok(MetadataSource::Gcp {
                base_url: url(GCE_URL),
            }),
            Cloud::Azure => Ok(MetadataSource::Azure {
                base_url: url(LINK_LOCAL_URL),
            }),
            Cloud::Static => Err(MetadataError::StaticConfig(
                "a static machine needs its bootstrap and secret files",
            )),
        }
    }

    /// The cloud of this source.
    pub fn cloud(&self) -> Cloud {
        match self {
            MetadataSource::Aws { .. } => Cloud::Aws,
            MetadataSource::Gcp { .. } => Cloud::Gcp,
            MetadataSource::Azure { .. } => Cloud::Azure,
            MetadataSource::Static { .. } => Cloud::Static,
        }
    }

    /// Finds the cloud by probing each service (at `base_url`, or at each
    /// cloud's real address), each probe with a [`PROBE_TIMEOUT`].
    pub async fn detect(base_url: Option<&str>) -> Result<Self, MetadataError> {
        let candidates: Vec<MetadataSource> = [Cloud::Aws, Cloud::Gcp, Cloud::Azure]
            .into_iter()
            .map(|c| MetadataSource::for_cloud(c, base_url))
            .collect::<Result<_, _>>()?;
        let client = MetadataClient::new(Cloud::Aws, RetryPolicy::default(), PROBE_TIMEOUT)?;
        let (a, g, z) = tokio::join!(
            aws::probe(&client, candidates[0].base_url()),
            gcp::probe(&client, candidates[1].base_url()),
            azure::probe(&client, candidates[2].base_url()),
        );
        for (found, source) in [a, g, z].into_iter().zip(candidates.iter()) {
            if found {
                tracing::info!(cloud = %source.cloud(), url = source.base_url(), "metadata service detected");
                return Ok(source.clone());
            }
        }
        let mut tried: Vec<&str> = candidates.iter().map(|c| c.base_url()).collect();
        tried.dedup();
        Err(MetadataError::NoCloudDetected {
            tried: tried.join(", "),
        })
    }

    fn base_url(&self) -> &str {
        match self {
            MetadataSource::Aws { base_url }
            | MetadataSource::Gcp { base_url }
            | MetadataSource::Azure { base_url } => base_url,
            MetadataSource::Static { .. } => "",
        }
    }

    /// Reads the bootstrap document and a fresh proof. `timeout` bounds
    /// each request; `retry` the retries of transient failures.
    pub async fn identity(
        &self,
        retry: RetryPolicy,
        timeout: Duration,
    ) -> Result<WorkerIdentity, MetadataError> {
        let cloud = self.cloud();
        let (bootstrap, proof) = match self {
            MetadataSource::Static { bootstrap, secret } => read_static(bootstrap, secret).await?,
            _ => {
                let client = MetadataClient::new(cloud, retry, timeout)?;
                let base = self.base_url();
                match cloud {
                    Cloud::Aws => aws::identity(&client, base).await?,
                    Cloud::Gcp => gcp::identity(&client, base).await?,
                    _ => azure::identity(&client, base).await?,
                }
            }
        };
        tracing::info!(
            %cloud,
            worker = %bootstrap.worker_id,
            pool = %bootstrap.worker_pool_id,
            proof = proof.kind(),
            "identity read"
        );
        Ok(WorkerIdentity {
            cloud,
            bootstrap,
            proof,
        })
    }
}

impl MetadataSource {
    /// The cloud's interruption notice for this VM, if one is posted
    /// ([`notice`] says where each cloud posts it). A static machine is
    /// never interrupted. `timeout` bounds each request; `retry` the
    /// retries of transient failures.
    pub async fn interruption(
        &self,
        retry: RetryPolicy,
        timeout: Duration,
    ) -> Result<Option<InterruptionNotice>, MetadataError> {
        let cloud = self.cloud();
        if cloud == Cloud::Static {
            return Ok(None);
        }
        let client = MetadataClient::new(cloud, retry, timeout)?;
        let base = self.base_url();
        match cloud {
            Cloud::Aws => aws::notice(&client, base).await,
            Cloud::Gcp => gcp::notice(&client, base).await,
            _ => azure::notice(&client, base).await,
        }
    }
}

async fn read_static(
    bootstrap: &PathBuf,
    secret: &PathBuf,
) -> Result<(Bootstrap, IdentityProof), MetadataError> {
    let raw = tokio::fs::read(bootstrap)
        .await
        .map_err(|source| MetadataError::File {
            what: "bootstrap",
            path: bootstrap.clone(),
            source,
        })?;
    let doc = Bootstrap::parse(&raw).map_err(|source| MetadataError::Bootstrap {
        cloud: Cloud::Static,
        source,
    })?;
    let text = tokio::fs::read_to_string(secret)
        .await
        .map_err(|source| MetadataError::File {
            what: "secret",
            path: secret.clone(),
            source,
        })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(MetadataError::StaticConfig("the secret file is empty"));
    }
    Ok((
        doc,
        IdentityProof::StaticSecret {
            secret: Secret::new(value),
        },
    ))
}

/// A bootstrap document's parse error, for `cloud`.
fn bootstrap_error(cloud: Cloud) -> impl FnOnce(BootstrapError) -> MetadataError {
    move |source| MetadataError::Bootstrap { cloud, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_static_identity_reads_files_and_debug_hides_the_secret() {
        let dir = std::env::temp_dir().join(format!("skyfleet-agent-ut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let boot = r#"{"rootUrl": "https://m.example", "workerPoolId": "p", "providerId": "s",
            "workerGroup": "g", "workerId": "w-s", "launchConfigId": "l"}"#;
        std::fs::write(dir.join("b.json"), boot).unwrap();
        std::fs::write(dir.join("s"), "  hunter2-static\n").unwrap();
        let source = MetadataSource::Static {
            bootstrap: dir.join("b.json"),
            secret: dir.join("s"),
        };
        let id = source
            .identity(RetryPolicy::default(), Duration::from_secs(1))
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(id.bootstrap.worker_id, "w-s");
        assert!(
            matches!(&id.proof, IdentityProof::StaticSecret { secret } if secret.expose() == "hunter2-static")
        );
        assert!(!format!("{id:?} {source:?}").contains("hunter2"));
    }

    #[test]
    fn clouds_parse_by_name_and_unknown_ones_are_named() {
        assert_eq!("AWS".parse::<Cloud>().unwrap(), Cloud::Aws);
        assert_eq!("gce".parse::<Cloud>().unwrap(), Cloud::Gcp);
        assert_eq!("azure".parse::<Cloud>().unwrap(), Cloud::Azure);
        let e = "openstack".parse::<Cloud>().unwrap_err();
        assert!(e.to_string().contains("\"openstack\""), "{e}");
    }

    #[test]
    fn default_urls_are_the_link_local_ones_and_overrides_drop_the_slash() {
        assert_eq!(
            MetadataSource::for_cloud(Cloud::Gcp, None).unwrap(),
            MetadataSource::Gcp {
                base_url: GCE_URL.into()
            }
        );
        assert_eq!(
            MetadataSource::for_cloud(Cloud::Aws, Some("http://127.0.0.1:9/_imds/aws/i-1/"))
                .unwrap(),
            MetadataSource::Aws {
                base_url: "http://127.0.0.1:9/_imds/aws/i-1".into()
            }
        );
        assert!(MetadataSource::for_cloud(Cloud::Static, None).is_err());
    }
}
