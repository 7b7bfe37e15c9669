//! The data directory's layout and which inbox files are complete.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// `inbox/`, `processed/`, `returned/`, `reports/` and `keys/` under the data directory.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub root: PathBuf,
    pub inbox: PathBuf,
    pub processed: PathBuf,
    pub returned: PathBuf,
    pub reports: PathBuf,
    pub keys: PathBuf,
}

impl Dirs {
    pub fn new(root: &Path) -> Dirs {
        Dirs {
            root: root.to_path_buf(),
            inbox: root.join("inbox"),
            processed: root.join("processed"),
            returned: root.join("returned"),
            reports: root.join("reports"),
            keys: root.join("keys"),
        }
    }

    /// Creates the layout. Everything kenko keeps (the originals, the reports, the keys) is
    /// the agent's alone: 0700 folders, also when an earlier version made them 0755. The inbox
    /// is left as the operator made it (an uploader of another user writes into it).
    pub fn create_all(&self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::create_dir_all(&self.inbox)?;
        for d in [
            &self.processed,
            &self.returned,
            &self.reports,
            &self.reports.join("returns"),
            &self.reports.join("intake"),
            &self.reports.join("fees"),
            &self.keys,
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// A path relative to the data directory, for reports and logs.
    pub fn relative(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    }
}

/// Names that are never input: hidden files, uploads in progress and markers.
pub fn is_candidate_name(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with(".part")
        || name.ends_with(".tmp")
        || name.ends_with(".done"))
}

/// The marker that says `file` is complete.
pub fn done_marker(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".done");
    file.with_file_name(name)
}

/// Whether a file is complete: it has a `.done` marker, or it has not changed for `settle`.
pub fn is_complete(file: &Path, settle: Duration, now: SystemTime) -> std::io::Result<bool> {
    if done_marker(file).exists() {
        return Ok(true);
    }
    let meta = std::fs::metadata(file)?;
    let modified = meta.modified()?;
    Ok(now.duration_since(modified).unwrap_or_default() >= settle)
}

/// The inbox files that are complete now, by name. Files still settling are returned
/// separately so a watcher knows to look again.
pub fn scan(inbox: &Path, settle: Duration) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let now = SystemTime::now();
    let mut ready = Vec::new();
    let mut settling = Vec::new();
    for entry in std::fs::read_dir(inbox)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !is_candidate_name(name) {
            continue;
        }
        let path = entry.path();
        match is_complete(&path, settle, now) {
            Ok(true) => ready.push(path),
            Ok(false) => settling.push(path),
            // Gone between listing and looking: another process took it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    ready.sort();
    settling.sort();
    Ok((ready, settling))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn markers_temporaries_and_hidden_files_are_not_input() {
        assert!(is_candidate_name("2024-10.csv"));
        for n in [".upload.csv", "a.csv.part", "a.csv.tmp", "a.csv.done"] {
            assert!(!is_candidate_name(n), "{n}");
        }
    }

    #[test]
    fn a_fresh_file_waits_unless_it_has_a_marker() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        std::fs::write(&a, "x").unwrap();
        std::fs::write(&b, "x").unwrap();
        std::fs::write(done_marker(&b), "").unwrap();
        let (ready, settling) = scan(dir.path(), Duration::from_secs(3600)).unwrap();
        assert_eq!(ready, vec![b]);
        assert_eq!(settling, vec![a.clone()]);
        let (ready, _) = scan(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(ready.len(), 2);
    }
}
