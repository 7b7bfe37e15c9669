//! Crash-safe file operations: every file kenko writes for others to read appears whole or
//! not at all (written under a temporary name, synced, renamed, directory synced).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Syncs a directory so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically, readable by the agent alone (0600): reports name
/// residents' 宛名番号, and nothing kenko writes is for other local users.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomic_write_with(path, 0o600, |w| w.write_all(bytes))
}

/// Writes `path` atomically from what `fill` writes (streamed through a buffer), creating it
/// with `mode` (0600 for keys): the temporary file, synced, renamed, the directory synced.
pub fn atomic_write_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tmp_name(path);
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    crate::crashpoint::hit("before-rename");
    rename(&tmp, path)?;
    sync_dir(dir)
}

/// The one rename of the crate's atomic writes and moves (callers sync the directories).
#[allow(
    clippy::disallowed_methods,
    reason = "the atomic helpers are where renames happen"
)]
fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)
}

/// The temporary name used while writing `path` (hidden, so no reader takes it as final).
pub fn tmp_name(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Moves a file by rename (same file system) and syncs both directories.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let to_dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(to_dir)?;
    rename(from, to)?;
    sync_dir(to_dir)?;
    if let Some(from_dir) = from.parent() {
        sync_dir(from_dir)?;
    }
    Ok(())
}

/// An I/O error that names the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PathError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Attaches a path to an I/O error.
pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> PathError + '_ {
    move |source| PathError {
        path: path.to_path_buf(),
        source,
    }
}
