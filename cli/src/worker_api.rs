//! `skyfleet run --api-listen`: serves the worker API (crate `skyfleet-api`)
//! over the running fleet, on loopback unless told otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use skyfleet_api::{router, serve, ApiConfig, TlsFiles, WorkerService};
use skyfleet_core::fleet::Fleet;
use tokio_util::sync::CancellationToken;

/// Where and how to serve the worker API.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Serve the worker API (register, heartbeat, drain) on this address.
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM) for the worker API.
    #[arg(long, requires = "api_key")]
    pub api_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the worker API.
    #[arg(long, requires = "api_cert")]
    pub api_key: Option<PathBuf>,
    /// Allow a non-loopback --api-listen address (workers on other machines
    /// reach the manager; use TLS).
    #[arg(long)]
    pub api_allow_non_loopback: bool,
}

impl ApiArgs {
    /// Checks the settings before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(addr) = self.api_listen {
            if !addr.ip().is_loopback() && !self.api_allow_non_loopback {
                return Err(format!(
                    "--api-listen {addr} is not a loopback address: pass --api-allow-non-loopback \
                     (with --api-cert/--api-key) to serve workers on other machines"
                ));
            }
        } else if self.api_cert.is_some() {
            return Err("--api-cert/--api-key need --api-listen".into());
        }
        Ok(())
    }

    /// The URL the API is served at, for the startup line.
    pub fn describe(&self) -> String {
        match self.api_listen {
            None => "none".into(),
            Some(a) if self.api_cert.is_some() => format!("https://{a}"),
            Some(a) => format!("http://{a}"),
        }
    }

    /// Binds and starts serving the worker API for `fleet` until `cancel`.
    /// Errors (address in use, unreadable TLS files) are configuration
    /// errors, reported before the fleet starts.
    pub async fn start(
        &self,
        fleet: &Fleet,
        cancel: CancellationToken,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
        let Some(addr) = self.api_listen else {
            return Ok(None);
        };
        let config = ApiConfig::default();
        config.validate().map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("--api-listen {addr}: {e}"))?;
        let tls = match (&self.api_cert, &self.api_key) {
            (Some(c), Some(k)) => {
                for (flag, path) in [("--api-cert", c), ("--api-key", k)] {
                    std::fs::metadata(path)
                        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
                }
                Some(TlsFiles::new(c, k))
            }
            _ => None,
        };
        let service: Arc<dyn WorkerService> = Arc::new(fleet.clone());
        let app = router(service, config);
        Ok(Some(tokio::spawn(async move {
            if let Err(e) = serve(listener, tls, app, cancel).await {
                tracing::error!(target: "skyfleet::run", error = %e, "worker API stopped");
            }
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: Option<&str>, cert: bool, remote: bool) -> ApiArgs {
        ApiArgs {
            api_listen: listen.map(|a| a.parse().unwrap()),
            api_cert: cert.then(|| "cert.pem".into()),
            api_key: cert.then(|| "key.pem".into()),
            api_allow_non_loopback: remote,
        }
    }

    #[test]
    fn non_loopback_needs_to_be_asked_for_and_tls_needs_an_address() {
        assert!(args(None, false, false).validate().is_ok());
        assert!(args(Some("127.0.0.1:8700"), false, false)
            .validate()
            .is_ok());
        assert!(args(Some("[::1]:8700"), true, false).validate().is_ok());
        let e = args(Some("0.0.0.0:8700"), false, false)
            .validate()
            .unwrap_err();
        assert!(e.contains("--api-allow-non-loopback"), "{e}");
        assert!(args(Some("0.0.0.0:8700"), true, true).validate().is_ok());
        let e = args(None, true, false).validate().unwrap_err();
        assert!(e.contains("--api-listen"), "{e}");
        assert_eq!(
            args(Some("127.0.0.1:1"), true, false).describe(),
            "https://127.0.0.1:1"
        );
        assert_eq!(args(None, false, false).describe(), "none");
    }

    #[tokio::test]
    async fn a_missing_certificate_file_is_a_startup_error_naming_the_flag() {
        let store = std::sync::Arc::new(skyfleet_core::store::MemoryStore::new());
        let fleet = Fleet::builder()
            .store(store)
            .demand(std::sync::Arc::new(skyfleet_core::fleet::FixedDemand::new()))
            .build()
            .unwrap();
        let a = ApiArgs {
            api_cert: Some("/nonexistent/cert.pem".into()),
            api_key: Some("/nonexistent/key.pem".into()),
            ..args(Some("127.0.0.1:0"), false, false)
        };
        let e = a.start(&fleet, CancellationToken::new()).await.unwrap_err();
        assert!(e.contains("--api-cert /nonexistent/cert.pem"), "{e}");
        let served = args(Some("127.0.0.1:0"), false, false)
            .start(&fleet, CancellationToken::new())
            .await
            .unwrap();
        assert!(served.is_some());
    }
}
