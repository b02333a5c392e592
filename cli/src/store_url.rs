//! Store URLs as they may be shown: the kind and the location, never a
//! password.
//!
//! A PostgreSQL URL may carry a password in its user info
//! (`postgres://user:secret@host/db`) or in its query (`?password=...`,
//! `?sslpassword=...`); both are replaced by `REDACTED` wherever the URL is
//! printed (the startup line, error messages).

/// What replaces a secret.
const REDACTED: &str = "REDACTED";

/// Query keys whose values are secrets.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("token")
}

/// A store URL's kind (`memory`, `sqlite`, `postgres` or `unknown`) and its
/// location with any password replaced by `REDACTED`.
pub fn describe(url: &str) -> (&'static str, String) {
    if url == "memory:" {
        return ("memory", url.to_string());
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        return ("sqlite", path.trim_start_matches("//").to_string());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return ("postgres", redact_postgres(url));
    }
    if url.ends_with(".db") {
        return ("sqlite", url.to_string());
    }
    // Unknown: show only the scheme, in case the rest holds a secret.
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    ("unknown", format!("{scheme}:(not shown)"))
}

/// `url` with any password replaced (the user info's and the query's).
pub fn redacted(url: &str) -> String {
    match describe(url) {
        ("postgres", loc) => loc,
        ("sqlite", loc) if url.starts_with("sqlite:") => format!("sqlite:{loc}"),
        (_, loc) => loc,
    }
}

fn redact_postgres(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "postgres://(unparseable URL, not shown)".into();
    };
    if u.password().is_some() && u.set_password(Some(REDACTED)).is_err() {
        return "postgres://(URL not shown)".into();
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_key(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let (kind, loc) = describe(
            "postgres://fleet:hunter2@db.example:5432/fleet?sslmode=require&password=also-secret",
        );
        assert_eq!(kind, "postgres");
        assert!(
            !loc.contains("hunter2") && !loc.contains("also-secret"),
            "{loc}"
        );
        assert!(
            loc.contains("fleet:REDACTED@db.example:5432/fleet"),
            "{loc}"
        );
        assert!(loc.contains("sslmode=require"), "{loc}");
        let (_, loc) = describe("postgresql://fleet@db/fleet");
        assert_eq!(loc, "postgresql://fleet@db/fleet", "nothing to hide");
        assert_eq!(
            describe("sqlite:/var/lib/fleet.db"),
            ("sqlite", "/var/lib/fleet.db".into())
        );
        assert_eq!(describe("sqlite:///tmp/x.db").1, "/tmp/x.db");
        assert_eq!(describe("memory:"), ("memory", "memory:".into()));
        assert_eq!(describe("fleet.db").0, "sqlite");
        let (kind, loc) = describe("mysql://root:pw@h/db");
        assert_eq!(kind, "unknown");
        assert!(!loc.contains("pw"), "{loc}");
        assert!(!redacted("postgres://u:pw@h/d").contains(":pw@"));
        assert_eq!(redacted("sqlite:fleet.db"), "sqlite:fleet.db");
    }
}
