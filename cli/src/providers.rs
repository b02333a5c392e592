//! Providers built from `fleet.toml`'s `[providers.ID]` sections: the
//! production path of `skyfleet run`.

use std::sync::Arc;

use serde::Deserialize;
use skyfleet_aws::{AwsBuilder, CredentialsSource};
use skyfleet_azure::{AzureBuilder, AzureConfig};
use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::DynProvider;
use skyfleet_gcp::{Credentials, GcpBuilder};

use crate::config::ProviderSection;

/// AWS settings in `fleet.toml`. No `Debug`: it holds the secret key
/// ([`crate::config::ProviderSection`]'s `Debug` shows it redacted).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsSection {
    regions: Vec<String>,
    #[serde(default)]
    endpoint_url: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    #[serde(default)]
    ca_pem_file: Option<String>,
}

/// GCP settings in `fleet.toml`. No `Debug`: it holds the static token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GcpSection {
    project: String,
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    service_account_file: Option<String>,
    #[serde(default)]
    static_token: Option<String>,
    #[serde(default)]
    ca_pem_file: Option<String>,
}

fn transport(ca_pem: Option<&str>) -> Result<Transport, String> {
    let mut cfg = TransportConfig::default();
    if let Some(pem) = ca_pem {
        cfg = cfg.with_root_certificate_pem(pem.as_bytes().to_vec());
    }
    Transport::builder()
        .config(cfg)
        .build()
        .map_err(|e| e.to_string())
}

fn read_pem(path: &Option<String>) -> Result<Option<String>, String> {
    path.as_ref()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("ca_pem_file {p}: {e}")))
        .transpose()
}

fn settings<T: serde::de::DeserializeOwned>(section: &ProviderSection) -> Result<T, String> {
    let v = serde_json::Value::Object(section.settings.clone());
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        format!("at `{path}`: {}", e.into_inner())
    })
}

/// Builds a provider from a `[providers.ID]` section; `root_url` is the
/// manager's API URL (`fleet.root_url`), written into each worker's
/// bootstrap document (an Azure section's own `root_url` wins).
pub async fn from_config(
    id: &str,
    section: &ProviderSection,
    root_url: Option<&str>,
) -> Result<DynProvider, String> {
    match section.kind.as_str() {
        "testing" => Ok(Arc::new(TestingProvider::new(
            id,
            TestingCloud::new(TestingConfig::default()),
        ))),
        "aws" => {
            let s: AwsSection = settings(section)?;
            let mut c = AwsBuilder::new().with_id(id).with_regions(s.regions);
            if let Some(u) = root_url {
                c = c.with_root_url(u);
            }
            if let Some(u) = s.endpoint_url {
                c = c.with_endpoint_url(u);
            }
            if let Some(p) = s.profile {
                c = c.with_profile(p);
            }
            // Half-given keys are refused, not a fall back to the ambient chain.
            c = c.with_credentials(
                CredentialsSource::from_keys(s.access_key_id, s.secret_access_key, None)
                    .map_err(|e| e.to_string())?,
            );
            let t = transport(read_pem(&s.ca_pem_file)?.as_deref())?;
            Ok(Arc::new(
                c.with_transport(t)
                    .build()
                    .await
                    .map_err(|e| e.to_string())?,
            ))
        }
        "gcp" => {
            let s: GcpSection = settings(section)?;
            let mut c = GcpBuilder::new(s.project).with_id(id).with_zones(s.zones);
            if let Some(u) = root_url {
                c = c.with_root_url(u);
            }
            if let Some(e) = s.endpoint {
                c = c.with_endpoint(e);
            }
            c = c.with_credentials(
                Credentials::from_keys(s.static_token, s.service_account_file.map(Into::into))
                    .map_err(|e| e.to_string())?,
            );
            let t = transport(read_pem(&s.ca_pem_file)?.as_deref())?;
            c = c.with_transport(t);
            Ok(Arc::new(c.build().map_err(|e| e.to_string())?))
        }
        "azure" => {
            let mut v = section.settings.clone();
            v.insert("id".into(), serde_json::Value::String(id.into()));
            let mut c: AzureConfig = serde_path_to_error::deserialize(serde_json::Value::Object(v))
                .map_err(|e| {
                    let path = e.path().to_string();
                    format!("at `{path}`: {}", e.into_inner())
                })?;
            if c.root_url.is_none() {
                c.root_url = root_url.map(str::to_string);
            }
            Ok(Arc::new(
                AzureBuilder::from_config(c)
                    .build()
                    .map_err(|e| e.to_string())?,
            ))
        }
        "static" => {
            if let Some(k) = section.settings.keys().next() {
                return Err(format!("at `{k}`: static providers take no settings"));
            }
            Ok(Arc::new(skyfleet_static::StaticBuilder::new(id).build()))
        }
        other => Err(format!(
            "unknown provider kind `{other}` (expected testing, aws, gcp, azure or static)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> ProviderSection {
        toml::from_str(toml_text).expect("a provider section")
    }

    async fn refused(toml_text: &str) -> String {
        match from_config("p", &section(toml_text), None).await {
            Ok(p) => panic!("built {p:?} from half-given credentials"),
            Err(e) => e,
        }
    }

    /// Half-given credentials are a configuration error naming the keys,
    /// never a silent fall back to the ambient credential chain; no
    /// secret is echoed.
    #[tokio::test]
    async fn half_given_credentials_are_refused_naming_the_keys() {
        let aws = "kind = \"aws\"\nregions = [\"us-east-1\"]\n";
        let e = refused(&format!("{aws}access_key_id = \"AKIDHALF\"\n")).await;
        assert!(
            e.contains("access_key_id") && e.contains("secret_access_key"),
            "{e}"
        );
        let e = refused(&format!("{aws}secret_access_key = \"half-secret\"\n")).await;
        assert!(
            e.contains("access_key_id") && e.contains("secret_access_key"),
            "{e}"
        );
        assert!(!e.contains("half-secret"), "{e}");

        let gcp = "kind = \"gcp\"\nproject = \"p\"\nzones = [\"europe-west1-b\"]\n";
        let e = refused(&format!(
            "{gcp}static_token = \"half-token\"\nservice_account_file = \"/k.json\"\n"
        ))
        .await;
        assert!(
            e.contains("static_token") && e.contains("service_account_file"),
            "{e}"
        );
        assert!(!e.contains("half-token"), "{e}");

        let azure = "kind = \"azure\"\nsubscription_id = \"s\"\nresource_groups = [\"rg\"]\n";
        let e = refused(&format!(
            "{azure}credential = {{ kind = \"client_secret\", tenant_id = \"t\", client_id = \"c\" }}\n"
        ))
        .await;
        assert!(e.contains("client_secret"), "{e}");
    }
}
