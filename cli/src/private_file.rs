//! Files the CLI writes that must not be read by others or written through
//! a planted link: the SQLite store (created mode 0600 before SQLite opens
//! it; SQLite gives its `-wal` and `-shm` files the same mode) and the mock's
//! certificate (`--cert-out`: written to a new file beside the target, then
//! renamed over it, so a symlink at the target is replaced, never followed).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The file of a SQLite store URL (`sqlite:PATH`, `sqlite://PATH`, or a
/// bare `PATH.db`), without any `?options`; `None` for other stores and for
/// SQLite's in-memory databases.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let path = match url.strip_prefix("sqlite:") {
        Some(p) => p.trim_start_matches("//"),
        None if url.ends_with(".db") && !url.contains("://") => url,
        None => return None,
    };
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Creates the file of a SQLite store URL, empty and readable by its owner
/// only (0600), if it does not exist yet (an empty file is an empty SQLite
/// database). An existing file is left as it is; other stores are ignored.
pub fn create_sqlite_store(url: &str) -> std::io::Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` through a new file in the same directory
/// (created exclusively, so nothing already there is opened or followed)
/// renamed over `path`: a symlink at `path` is replaced, not written
/// through, and readers never see half a file.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}-{:016x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_every_spelling() {
        assert_eq!(sqlite_path("sqlite:/a/b.db"), Some("/a/b.db".into()));
        assert_eq!(sqlite_path("sqlite:///a/b.db"), Some("/a/b.db".into()));
        assert_eq!(sqlite_path("sqlite:f.db?mode=rwc"), Some("f.db".into()));
        assert_eq!(sqlite_path("fleet.db"), Some("fleet.db".into()));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("memory:"), None);
        assert_eq!(sqlite_path("postgres://u:p@h/x.db"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_sqlite_store_file_is_private_and_an_existing_one_untouched() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fleet.db");
        create_sqlite_store(&format!("sqlite:{}", db.display())).unwrap();
        let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        std::fs::write(&db, b"kept").unwrap();
        create_sqlite_store(&format!("sqlite:{}", db.display())).unwrap();
        assert_eq!(std::fs::read(&db).unwrap(), b"kept");
    }

    #[cfg(unix)]
    #[test]
    fn replace_writes_over_a_symlink_instead_of_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let target = dir.path().join("cert.pem");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        replace(&target, b"PEM").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"PEM");
        // Replacing again works, and no temporary file is left behind.
        replace(&target, b"PEM2").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"PEM2");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn replace_into_a_missing_directory_fails_with_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let e = replace(&dir.path().join("no/such/dir/cert.pem"), b"PEM").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
