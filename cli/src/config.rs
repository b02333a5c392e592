//! `fleet.toml`: the configuration `skyfleet run` reads.
//!
//! ```toml
//! [fleet]
//! manager_id = "my-manager"          # required, unique per deployment
//! store = "sqlite:fleet.db"          # or postgres://..., memory:
//! root_url = "https://manager.example" # the manager's API URL, written
//!                                    # into each worker's bootstrap document
//! step_timeout = 60                  # optional runtime settings, seconds
//! concurrency_per_partition = 32     # (see FleetSection)
//!
//! [demand]
//! kind = "fixed"                     # fixed | http | taskcluster
//! pending = { "ci/linux" = 5 }       # fixed
//! # url = "http://..."               # http: GET url?pool=ID -> {"pending":N,"claimed":M}
//! # root_url = "https://tc.example"  # taskcluster
//!
//! [providers.local]
//! kind = "testing"                   # testing | aws | gcp | azure | static
//!
//! [[pools]]
//! pool_id = "ci/linux"
//! provider_id = "local"
//! max_capacity = 10
//! launch_configs = [{ id = "a", launch = { size = "small" } }]
//! ```
//!
//! Errors name the file, the key path and what was expected.

use std::collections::BTreeMap;
use std::path::Path;

use std::time::Duration;

use serde::Deserialize;
use skyfleet_core::fleet::FleetConfig;
use skyfleet_core::PoolConfig;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Runtime settings.
    #[serde(default)]
    pub fleet: FleetSection,
    /// Where demand comes from.
    #[serde(default)]
    pub demand: DemandSection,
    /// Providers by id.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSection>,
    /// Pools.
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
}

/// `[fleet]`.
///
/// Beside the manager id and store, the runtime's settings
/// ([`FleetConfig`]) may be tuned here; each is optional and keeps its
/// default when absent. Durations are seconds (fractions allowed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// The manager id in ownership tags. Required (an empty value when
    /// absent, which [`parse`] refuses): the orphan sweeper deletes what
    /// carries it, so two deployments must never share one by default.
    #[serde(default)]
    pub manager_id: String,
    /// The store URL (overridden by `--store`).
    #[serde(default = "default_store")]
    pub store: StoreUrl,
    /// How long a claimed worker stays leased to this replica.
    #[serde(default)]
    pub lease: Option<f64>,
    /// How long this replica holds a pool's provisioning lease.
    #[serde(default)]
    pub pool_lease: Option<f64>,
    /// The timeout of one step; the step is cancelled when it fires.
    #[serde(default)]
    pub step_timeout: Option<f64>,
    /// Sleep of a scanner that found nothing due.
    #[serde(default)]
    pub scan_interval: Option<f64>,
    /// How often each provider looks for new or emptied partitions.
    #[serde(default)]
    pub partition_interval: Option<f64>,
    /// Time between provisioning passes.
    #[serde(default)]
    pub provision_interval: Option<f64>,
    /// Time between orphan sweeps.
    #[serde(default)]
    pub sweep_interval: Option<f64>,
    /// Age below which an orphan is left alone; a store younger than this
    /// deletes nothing.
    #[serde(default)]
    pub sweep_grace: Option<f64>,
    /// Most orphans one sweep deletes (default: 10 % of the live workers,
    /// at least 1).
    #[serde(default)]
    pub sweep_max_delete: Option<usize>,
    /// List what a sweep would delete without deleting it.
    #[serde(default)]
    pub sweep_dry_run: bool,
    /// How long a stopped or failed worker's record, and a pool error, is
    /// kept (default 7 days).
    #[serde(default)]
    pub retention: Option<f64>,
    /// Pool errors kept per pool, the latest (default 100).
    #[serde(default)]
    pub pool_errors_kept: Option<usize>,
    /// How long an offering stays marked unavailable after a capacity
    /// error (default 180; 1 to 86400).
    #[serde(default)]
    pub offering_ttl_capacity: Option<f64>,
    /// How long offerings stay marked unavailable after a quota error
    /// (default 900; 1 to 86400).
    #[serde(default)]
    pub offering_ttl_quota: Option<f64>,
    /// How long an offering stays marked unavailable after an interruption
    /// (default 180; 1 to 86400).
    #[serde(default)]
    pub offering_ttl_interruption: Option<f64>,
    /// Workers claimed per store round trip.
    #[serde(default)]
    pub claim_batch: Option<usize>,
    /// Workers per batched step call.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Concurrent steps per provider partition (region, zone).
    #[serde(default)]
    pub concurrency_per_partition: Option<usize>,
    /// The manager's API URL, given to every provider: each writes it as
    /// `rootUrl` into its workers' bootstrap documents (AWS UserData, the
    /// GCE metadata item `taskcluster`, Azure `userData`), and GCP takes it
    /// as the identity tokens' audience.
    #[serde(default)]
    pub root_url: Option<String>,
}

fn default_store() -> StoreUrl {
    StoreUrl("sqlite:skyfleet.db".into())
}

/// A store URL as the config gives it; `Debug` shows no password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store_url::redacted(&self.0))
    }
}

impl Default for FleetSection {
    fn default() -> Self {
        FleetSection {
            manager_id: String::new(),
            store: default_store(),
            lease: None,
            pool_lease: None,
            step_timeout: None,
            scan_interval: None,
            partition_interval: None,
            provision_interval: None,
            sweep_interval: None,
            sweep_grace: None,
            sweep_max_delete: None,
            sweep_dry_run: false,
            retention: None,
            pool_errors_kept: None,
            offering_ttl_capacity: None,
            offering_ttl_quota: None,
            offering_ttl_interruption: None,
            claim_batch: None,
            batch_size: None,
            concurrency_per_partition: None,
            root_url: None,
        }
    }
}

impl FleetSection {
    /// The runtime settings: defaults with this section's values applied.
    /// A duration that is negative, not a number or too large is an error
    /// naming its key; ranges between settings are checked by
    /// [`FleetConfig::validate`] when the fleet is built.
    pub fn to_config(&self) -> Result<FleetConfig, ConfigError> {
        let mut c = FleetConfig {
            manager_id: self.manager_id.clone(),
            sweep_max_delete: self.sweep_max_delete,
            sweep_dry_run: self.sweep_dry_run,
            ..FleetConfig::default()
        };
        let durations = [
            ("lease", self.lease, &mut c.lease),
            ("pool_lease", self.pool_lease, &mut c.pool_lease),
            ("step_timeout", self.step_timeout, &mut c.step_timeout),
            ("scan_interval", self.scan_interval, &mut c.scan_interval),
            (
                "partition_interval",
                self.partition_interval,
                &mut c.partition_interval,
            ),
            (
                "provision_interval",
                self.provision_interval,
                &mut c.provision_interval,
            ),
            ("sweep_interval", self.sweep_interval, &mut c.sweep_interval),
            ("sweep_grace", self.sweep_grace, &mut c.sweep_grace),
            ("retention", self.retention, &mut c.retention),
            (
                "offering_ttl_capacity",
                self.offering_ttl_capacity,
                &mut c.offering_ttl_capacity,
            ),
            (
                "offering_ttl_quota",
                self.offering_ttl_quota,
                &mut c.offering_ttl_quota,
            ),
            (
                "offering_ttl_interruption",
                self.offering_ttl_interruption,
                &mut c.offering_ttl_interruption,
            ),
        ];
        for (key, value, slot) in durations {
            if let Some(secs) = value {
                *slot = Duration::try_from_secs_f64(secs).map_err(|_| {
                    ConfigError(format!(
                        "`fleet.{key}`: expected a number of seconds >= 0, found {secs}"
                    ))
                })?;
            }
        }
        let counts = [
            ("claim_batch", self.claim_batch, &mut c.claim_batch),
            (
                "pool_errors_kept",
                self.pool_errors_kept,
                &mut c.pool_errors_kept,
            ),
            ("batch_size", self.batch_size, &mut c.batch_size),
            (
                "concurrency_per_partition",
                self.concurrency_per_partition,
                &mut c.concurrency_per_partition,
            ),
        ];
        for (_, value, slot) in counts {
            if let Some(n) = value {
                *slot = n;
            }
        }
        Ok(c)
    }

    /// The manager's root URL, checked (no trailing slash), if set.
    pub fn root_url(&self) -> Result<Option<String>, ConfigError> {
        self.root_url
            .as_deref()
            .map(|u| {
                skyfleet_core::provider::bootstrap::check_root_url("fleet.root_url", u)
                    .map_err(|e| ConfigError(format!("`fleet.root_url`: {}", e.message())))
            })
            .transpose()
    }
}

/// `[demand]`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DemandSection {
    /// A fixed pending count per pool.
    Fixed {
        /// Pending tasks per pool id.
        #[serde(default)]
        pending: BTreeMap<String, u64>,
    },
    /// A JSON endpoint.
    Http {
        /// The endpoint.
        url: String,
    },
    /// Taskcluster's queue.
    Taskcluster {
        /// The deployment's root URL.
        root_url: String,
    },
}

impl Default for DemandSection {
    fn default() -> Self {
        DemandSection::Fixed {
            pending: BTreeMap::new(),
        }
    }
}

/// `[providers.ID]`: the kind and the provider's own settings. `Debug`
/// shows no credential.
#[derive(Deserialize)]
pub struct ProviderSection {
    /// `testing`, `aws`, `gcp`, `azure` or `static`.
    pub kind: String,
    /// Everything else, passed to the provider's own config type.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for ProviderSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings = redact_secrets(&serde_json::Value::Object(self.settings.clone()));
        f.debug_struct("ProviderSection")
            .field("kind", &self.kind)
            .field("settings", &settings)
            .finish()
    }
}

/// Whether a settings key names a credential (`secret_access_key`,
/// `access_key_id`, `static_token`, `client_secret`, `password`, ...).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "token", "password", "access_key", "private_key"]
        .iter()
        .any(|s| k.contains(s))
}

/// `v` with the value of every credential key, at any depth, replaced by
/// `REDACTED`.
fn redact_secrets(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        Value::String("REDACTED".into())
                    } else {
                        redact_secrets(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact_secrets).collect()),
        other => other.clone(),
    }
}

/// A configuration error: exit code 2, nothing started.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses TOML text; `origin` names the file in errors. A file without
/// `fleet.manager_id` (or with an empty one) is refused.
pub fn parse(text: &str, origin: &str) -> Result<FleetFile, ConfigError> {
    let file = deserialize(text, origin)?;
    if file.fleet.manager_id.trim().is_empty() {
        return Err(ConfigError(format!(
            "{origin}: `fleet.manager_id` is required: a name unique to this deployment \
             (the orphan sweeper deletes cloud resources tagged with it)"
        )));
    }
    Ok(file)
}

fn deserialize(text: &str, origin: &str) -> Result<FleetFile, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.message().to_string();
        let at = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        let line = inner
            .span()
            .map(|s| {
                format!(
                    " (line {})",
                    text[..s.start.min(text.len())].lines().count().max(1)
                )
            })
            .unwrap_or_default();
        ConfigError(format!("{origin}{line}{at}: {msg}"))
    })
}

/// Reads and parses a file.
pub fn load(path: &Path) -> Result<FleetFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests;
