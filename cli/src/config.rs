//! `fleet.toml`: the configuration `skyfleet run` reads.
//!
//! ```toml
//! [fleet]
//! manager_id = "my-manager"
//! store = "sqlite:fleet.db"          # or postgres://..., memory:
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

use serde::Deserialize;
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// The manager id in ownership tags.
    #[serde(default = "default_manager")]
    pub manager_id: String,
    /// The store URL (overridden by `--store`).
    #[serde(default = "default_store")]
    pub store: String,
}

fn default_manager() -> String {
    "skyfleet".into()
}
fn default_store() -> String {
    "sqlite:skyfleet.db".into()
}

impl Default for FleetSection {
    fn default() -> Self {
        FleetSection {
            manager_id: default_manager(),
            store: default_store(),
        }
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

/// `[providers.ID]`: the kind and the provider's own settings.
#[derive(Debug, Deserialize)]
pub struct ProviderSection {
    /// `testing`, `aws`, `gcp`, `azure` or `static`.
    pub kind: String,
    /// Everything else, passed to the provider's own config type.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A configuration error: exit code 2, nothing started.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses TOML text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<FleetFile, ConfigError> {
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
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file() {
        let f = parse(
            r#"
[fleet]
manager_id = "m"
[demand]
kind = "fixed"
pending = { "p" = 3 }
[providers.local]
kind = "testing"
[[pools]]
pool_id = "p"
provider_id = "local"
max_capacity = 4
launch_configs = [{ id = "a", launch = { size = "small" } }]
"#,
            "fleet.toml",
        )
        .unwrap();
        assert_eq!(f.pools[0].max_capacity, 4);
        assert_eq!(f.providers["local"].kind, "testing");
    }

    #[tokio::test]
    async fn every_provider_kind_builds_from_a_section() {
        let f = parse(
            r#"
[providers.local]
kind = "testing"
[providers.machines]
kind = "static"
[providers.aws]
kind = "aws"
regions = ["us-east-1"]
endpoint_url = "http://127.0.0.1:1"
access_key_id = "AKIDTEST"
secret_access_key = "secret"
[providers.gcp]
kind = "gcp"
project = "p"
zones = ["europe-west1-b"]
static_token = "t"
[providers.azure]
kind = "azure"
subscription_id = "00000000-0000-0000-0000-000000000001"
resource_groups = ["rg"]
credential = { kind = "static_token", token = "t" }
"#,
            "fleet.toml",
        )
        .unwrap();
        for (id, section) in &f.providers {
            let p = crate::clouds::from_config(id, section)
                .await
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(p.id(), id);
        }
        let bad = parse("[providers.x]\nkind = \"static\"\nfoo = 1\n", "f.toml").unwrap();
        let e = crate::clouds::from_config("x", &bad.providers["x"])
            .await
            .err()
            .unwrap();
        assert!(e.contains("foo"), "{e}");
    }

    #[test]
    fn errors_name_file_and_key_path() {
        let e = parse(
            "[[pools]]\npool_id = \"p\"\nprovider_id = \"x\"\nmax_capacity = \"ten\"\nlaunch_configs = []\n",
            "fleet.toml",
        )
        .unwrap_err();
        assert!(e.0.starts_with("fleet.toml"), "{e}");
        assert!(e.0.contains("pools[0].max_capacity"), "{e}");
        let e = parse("[fleet]\nmanger_id = \"x\"\n", "f.toml").unwrap_err();
        assert!(e.0.contains("manger_id"), "{e}");
    }
}
