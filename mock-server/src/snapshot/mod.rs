//! Snapshots: the whole cloud state as one versioned JSON document, taken
//! with `POST /_mock/snapshot`, restored with `PUT /_mock/snapshot`, and
//! loaded and saved by the binary's `--state FILE`.
//!
//! ```text
//! {"format": "skyfleet-mock-snapshot", "version": 1, "mock_version": "0.1.0",
//!  "taken_at": "2026-01-01T00:00:00.000Z", "ids": {"seed": 7, "drawn": 12},
//!  "ec2": {"partitions": [...]}, "arm": {"subscriptions": [...]},
//!  "gce": {"projects": [...]}}
//! ```
//!
//! Instants are offsets from the moment the snapshot was taken (see
//! [`clock`]), so a resource still being created finishes after the time it
//! had left. A restore parses and checks the whole document before it
//! changes anything. Fault rules, throttle buckets, the request journal,
//! capacity settings and the configuration are not part of a snapshot.

pub mod clock;
mod ec2;
mod arm;
pub(crate) mod gce;
mod routes;

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::Shared;

pub use routes::router;

/// The `format` every snapshot carries.
pub const FORMAT: &str = "skyfleet-mock-snapshot";

/// The snapshot format version this mock writes and reads. A snapshot with
/// another version is refused.
pub const VERSION: u64 = 1;

/// The largest snapshot `PUT /_mock/snapshot` takes (64 MiB); a larger body
/// is answered 413.
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not JSON, or not a JSON object.
    #[error("the snapshot is not valid JSON: {0}")]
    Syntax(String),
    /// `format` is missing or is not [`FORMAT`].
    #[error("format: expected \"{FORMAT}\", found {found}")]
    Format {
        /// What the document has (JSON), `missing` when absent.
        found: String,
    },
    /// `version` is not [`VERSION`].
    #[error(
        "version: this mock reads snapshot version {expected}, found version {found}; take a new snapshot with this mock"
    )]
    Version {
        /// What the document has (JSON), `missing` when absent.
        found: String,
        /// [`VERSION`].
        expected: u64,
    },
    /// A field has the wrong shape or an impossible value.
    #[error("{field}: {message}")]
    Field {
        /// Where, as a path (`ec2.partitions[0].state.next_seq`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl SnapshotError {
    /// The HTTP status a restore answers with: 409 for a version mismatch,
    /// 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            SnapshotError::Version { .. } => 409,
            _ => 400,
        }
    }

    /// The control API's error body: `{"error": message}` plus `field`,
    /// or `found` and `expected`.
    pub fn body(&self) -> Value {
        let mut body = serde_json::json!({ "error": self.to_string() });
        match self {
            SnapshotError::Syntax(_) => {}
            SnapshotError::Format { found } => {
                body["field"] = "format".into();
                body["found"] = found.as_str().into();
                body["expected"] = FORMAT.into();
            }
            SnapshotError::Version { found, expected } => {
                body["field"] = "version".into();
                body["found"] = found.as_str().into();
                body["expected"] = (*expected).into();
            }
            SnapshotError::Field { field, .. } => body["field"] = field.as_str().into(),
        }
        body
    }

    fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        SnapshotError::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The id stream's position (see [`crate::ctx::Ctx::id_stream`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ids {
    seed: u64,
    drawn: u64,
}

/// A whole snapshot, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[allow(dead_code)] // checked by `Header` first
    format: String,
    #[allow(dead_code)] // checked by `Header` first
    version: u64,
    #[allow(dead_code)] // informative
    mock_version: String,
    #[allow(dead_code)] // informative
    taken_at: String,
    ids: Ids,
    ec2: ec2::Section,
    arm: arm::Section,
    gce: gce::Section,
}

/// `format` and `version`, read before the rest so that a snapshot of
/// another version is refused as such rather than for its fields.
#[derive(Deserialize)]
struct Header {
    format: Option<Value>,
    version: Option<Value>,
}

/// A snapshot parsed and checked, ready to replace the state.
pub struct Restore {
    ids: Ids,
    ec2: ec2::Checked,
    arm: arm::Checked,
    gce: gce::Checked,
}

impl std::fmt::Debug for Restore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restore").finish_non_exhaustive()
    }
}

/// Parses and checks a snapshot; instants are placed relative to now.
/// Nothing is changed: apply the result with [`restore`].
pub fn parse(body: &[u8]) -> Result<Restore, SnapshotError> {
    let header: Header =
        serde_json::from_slice(body).map_err(|e| SnapshotError::Syntax(e.to_string()))?;
    let shown = |v: &Option<Value>| v.as_ref().map_or("missing".to_string(), Value::to_string);
    if header.format.as_ref().and_then(Value::as_str) != Some(FORMAT) {
        return Err(SnapshotError::Format {
            found: shown(&header.format),
        });
    }
    if header.version.as_ref().and_then(Value::as_u64) != Some(VERSION) {
        return Err(SnapshotError::Version {
            found: shown(&header.version),
            expected: VERSION,
        });
    }
    let doc: Document = clock::with_reference(Instant::now(), || {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de)
    })
    .map_err(|e| {
        let path = e.path().to_string();
        SnapshotError::field(path, e.inner().to_string())
    })?;
    Ok(Restore {
        ids: doc.ids,
        ec2: ec2::check(doc.ec2)?,
        arm: arm::check(doc.arm)?,
        gce: gce::check(doc.gce)?,
    })
}

/// Replaces the whole state with a checked snapshot's, and moves the id
/// stream past the snapshot's so that new ids do not repeat restored ones.
pub fn restore(shared: &Shared, r: Restore) {
    ec2::apply(&shared.ec2, r.ec2);
    arm::apply(&shared.arm, r.arm);
    gce::apply(&shared.gce, r.gce);
    shared.ctx.reseed_ids((r.ids.seed, r.ids.drawn));
}

/// Takes a snapshot of the whole state, as JSON.
pub fn take(shared: &Shared) -> Result<Vec<u8>, serde_json::Error> {
    let (seed, drawn) = shared.ctx.id_stream();
    clock::with_reference(Instant::now(), || {
        let doc = serde_json::json!({
            "format": FORMAT,
            "version": VERSION,
            "mock_version": env!("CARGO_PKG_VERSION"),
            "taken_at": crate::now_rfc3339(),
            "ids": Ids { seed, drawn },
            "ec2": ec2::take(&shared.ec2)?,
            "arm": arm::take(&shared.arm)?,
            "gce": gce::take(&shared.gce)?,
        });
        serde_json::to_vec(&doc)
    })
}

/// Reads a snapshot file: `Ok(None)` when there is none yet.
pub fn load_file(path: &Path) -> Result<Option<Restore>, String> {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
    };
    parse(&body)
        .map(Some)
        .map_err(|e| format!("state file {}: {e}", path.display()))
}

/// Writes a snapshot to `path` atomically: into a temporary file in the
/// same directory, then renamed over `path`.
pub fn save_file(shared: &Shared, path: &Path) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write state file {}: {e}", path.display());
    let body = take(shared).map_err(|e| fail(&e))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| fail(&"the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(&e));
    }
    Ok(())
}
