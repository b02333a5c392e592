//! The worker config file: the registration written for a command to read,
//! with mode 0600 from its creation (never widened then narrowed), replaced
//! atomically when the secret rotates.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::work::Registration;

/// The file's JSON: `workerConfig`, `secret`, `workerId`, `rootUrl`,
/// `workerPoolId` and `expires` (RFC 3339).
pub fn contents(reg: &Registration) -> Vec<u8> {
    let doc = json!({
        "workerConfig": reg.worker_config,
        "secret": reg.secret.expose(),
        "workerId": reg.worker_id,
        "workerPoolId": reg.worker_pool_id,
        "rootUrl": reg.root_url,
        "expires": reg.expires.format(&Rfc3339).unwrap_or_default(),
    });
    // A `Value` of strings and a JSON object always serializes.
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Writes `bytes` to `path` readable by its owner only: a temporary file
/// created with mode 0600 next to it, then renamed over it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    // A leftover of a crash; `create_new` below refuses to follow it.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "worker-config".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use skyfleet_core::provider::support::Secret;
    use time::OffsetDateTime;

    fn reg(secret: &str) -> Registration {
        Registration {
            worker_id: "w-1".into(),
            worker_pool_id: "ci/linux".into(),
            root_url: "https://m.example".into(),
            worker_config: json!({"threads": 4}),
            secret: Secret::new(secret),
            expires: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        }
    }

    #[test]
    fn the_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.json");
        // A file someone left world-readable is replaced by a private one.
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, &contents(&reg("s3cret-1"))).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["secret"], "s3cret-1");
        assert_eq!(v["workerConfig"]["threads"], 4);
        assert_eq!(v["workerId"], "w-1");
        assert_eq!(v["rootUrl"], "https://m.example");
        assert_eq!(v["expires"], "2027-01-15T08:00:00Z");
        write_private(&path, &contents(&reg("s3cret-2"))).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["secret"], "s3cret-2");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        assert!(!format!("{:?}", reg("s3cret-3")).contains("s3cret-3"));
    }
}
