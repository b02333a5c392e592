//! A Google-shaped issuer: RS256 identity tokens with the `format=full`
//! claims, and the JWKS that verifies them (rotatable).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use time::OffsetDateTime;

use crate::gcp::{GcpExpected, ServiceAccount};

use super::RsaKey;

/// Issues identity tokens for one project.
pub struct GcpIssuer {
    project: String,
    keys: Vec<(String, RsaKey)>,
    /// The service account's numeric id (`sub`).
    pub service_account_id: String,
    /// The service account's email.
    pub service_account_email: String,
}

impl std::fmt::Debug for GcpIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpIssuer")
            .field("project", &self.project)
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

impl GcpIssuer {
    /// An issuer for `project` with a fresh key.
    pub fn new(project: &str) -> Self {
        let mut issuer = GcpIssuer {
            project: project.to_string(),
            keys: Vec::new(),
            service_account_id: "112233445566778899".into(),
            service_account_email: format!("workers@{project}.iam.gserviceaccount.com"),
        };
        issuer.rotate();
        issuer
    }

    /// Signs with a new key (new `kid`) from now on; the key set keeps the
    /// previous key too, as Google's does during a rotation.
    pub fn rotate(&mut self) {
        // Every key of every issuer of the process gets its own kid.
        static KIDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = KIDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kid = format!("test-kid-{}-{n}", std::process::id());
        self.keys.push((kid, RsaKey::generate()));
        if self.keys.len() > 2 {
            self.keys.remove(0);
        }
    }

    /// The current `kid`.
    pub fn kid(&self) -> &str {
        self.keys.last().map(|(k, _)| k.as_str()).unwrap_or("")
    }

    /// The key set document (Google's `oauth2/v3/certs` shape).
    pub fn jwks(&self) -> Vec<u8> {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|(kid, key)| {
                let (n, e) = key.components();
                serde_json::json!({
                    "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                    "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).expect("JSON")
    }

    /// The facts of instance `n` in `zone` (service account by id).
    pub fn instance(&self, n: u64, zone: &str) -> GcpExpected {
        GcpExpected {
            project_id: self.project.clone(),
            instance_id: Some(format!("{}", 4_000_000_000_000_000u64 + n)),
            instance_name: Some(format!("sf-w-{n}")),
            zone: Some(zone.to_string()),
            service_account: Some(ServiceAccount::Id(self.service_account_id.clone())),
        }
    }

    /// The `format=full` claims for `facts`, for `audience`, issued at
    /// `iat` and valid for an hour (Google's lifetime).
    pub fn claims(
        &self,
        facts: &GcpExpected,
        audience: &str,
        iat: OffsetDateTime,
    ) -> serde_json::Value {
        let iat = iat.unix_timestamp();
        serde_json::json!({
            "aud": audience,
            "azp": self.service_account_id,
            "email": self.service_account_email,
            "email_verified": true,
            "exp": iat + 3600,
            "iat": iat,
            "iss": "https://accounts.google.com",
            "sub": self.service_account_id,
            "google": {"compute_engine": {
                "instance_creation_timestamp": iat - 60,
                "instance_id": facts.instance_id.clone().unwrap_or_default(),
                "instance_name": facts.instance_name.clone().unwrap_or_default(),
                "project_id": facts.project_id,
                "project_number": 123456789012u64,
                "zone": facts.zone.clone().unwrap_or_default(),
            }}
        })
    }

    /// A token for `facts` and `audience` issued at `iat`.
    pub fn token(&self, facts: &GcpExpected, audience: &str, iat: OffsetDateTime) -> String {
        self.sign_claims(&self.claims(facts, audience, iat))
    }

    /// Signs arbitrary `claims` with the current key.
    pub fn sign_claims(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "kid": self.kid(), "typ": "JWT"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("JSON")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("JSON"))
        );
        let (_, key) = self.keys.last().expect("a key");
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}
