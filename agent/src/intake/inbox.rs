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
    /// The holder id once read ([`Dirs::holder`]): asked for every file and every recovery.
    holder: std::sync::OnceLock<String>,
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
            holder: std::sync::OnceLock::new(),
        }
    }

    /// Creates the layout. Everything kenko keeps (the originals, the reports, the keys) is
    /// the agent's alone: 0700 folders, also when an earlier version made them 0755. The inbox
    /// is left as the operator made it (an uploader of another user writes into it).
    pub fn create_all(&self) -> Result<(), crate::fsutil::PathError> {
        use crate::fsutil::at;
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::create_dir_all(&self.inbox).map_err(at(&self.inbox))?;
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
                .create(d)
                .map_err(at(d))?;
            // Only when it is not so already: a read-only data directory is then refused by
            // the first write, naming it, not here.
            let mode = std::fs::metadata(d).map_err(at(d))?.permissions().mode() & 0o777;
            if mode != 0o700 {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                    .map_err(at(d))?;
            }
        }
        Ok(())
    }

    /// Whether the agent can write here now: a hidden file created and removed in the data
    /// directory (a volume remounted read-only, a full disk). The error names the directory.
    pub fn probe_writable(&self) -> Result<(), crate::fsutil::PathError> {
        let probe = self.root.join(".kenko-write-probe");
        // An empty file that is removed at once: nothing to tear.
        std::fs::File::create(&probe)
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(crate::fsutil::at(&self.root))
    }

    /// This data directory's holder id: which agent's local inbox a ledger entry's file is
    /// in, so that with one database under several agents only the holder finishes or
    /// recovers a move. Random, made once (`keys/holder-id`), kept with the directory.
    pub fn holder(&self) -> std::io::Result<String> {
        if let Some(h) = self.holder.get() {
            return Ok(h.clone());
        }
        let id = self.read_or_make_holder()?;
        Ok(self.holder.get_or_init(|| id).clone())
    }

    fn read_or_make_holder(&self) -> std::io::Result<String> {
        let path = self.keys.join("holder-id");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut bytes = [0u8; 12];
        getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
        let id = hex::encode(bytes);
        crate::fsutil::atomic_write(&path, format!("{id}\n").as_bytes())?;
        Ok(id)
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

/// What a scan of the inbox found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Complete files, by name.
    pub ready: Vec<PathBuf>,
    /// Files still being written (a watcher looks again).
    pub settling: Vec<PathBuf>,
    /// Entries that are no delivery kenko can take, each with why.
    pub ignored: Vec<Ignored>,
}

/// An inbox entry kenko does not take, and says so (a warning and a metric) rather than
/// skipping it silently forever: a link to a file outside the inbox is never followed, a FIFO
/// or device never opened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ignored {
    /// The entry's name, control characters and bytes that are not UTF-8 escaped.
    pub entry: String,
    pub reason: &'static str,
}

/// The reasons an entry is not taken (each in `FAILURE_REASONS` and a runbook).
pub const SYMLINK: &str = "inbox_symlink";
pub const NOT_REGULAR: &str = "inbox_not_regular_file";
pub const HARD_LINK: &str = "inbox_hard_link";
pub const ORPHAN_MARKER: &str = "inbox_orphan_marker";
pub const NAME_NOT_UTF8: &str = "inbox_name_not_utf8";

/// What kind of entry a file type is, for a refusal; `None` for a regular file.
fn refusal(ft: std::fs::FileType) -> Option<(&'static str, &'static str)> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        None
    } else if ft.is_symlink() {
        Some((SYMLINK, "a symbolic link"))
    } else if ft.is_dir() {
        Some((NOT_REGULAR, "a directory"))
    } else if ft.is_fifo() {
        Some((NOT_REGULAR, "a FIFO"))
    } else if ft.is_socket() {
        Some((NOT_REGULAR, "a socket"))
    } else {
        Some((NOT_REGULAR, "a device node"))
    }
}

/// A name as logs and reports may show it: control characters escaped (a newline or an
/// escape code in a file name must not forge a log line), bytes that are not UTF-8 as `\xNN`.
pub fn shown(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(&crate::logfmt::escape_controls(chunk.valid()));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The inbox files that are complete now, by name, and the entries that are not taken.
pub fn scan(inbox: &Path, settle: Duration) -> std::io::Result<Scan> {
    use std::os::unix::fs::MetadataExt;
    let now = SystemTime::now();
    let mut out = Scan::default();
    let mut markers = Vec::new();
    for entry in std::fs::read_dir(inbox)? {
        let entry = entry?;
        let raw_name = entry.file_name();
        let Some(name) = raw_name.to_str() else {
            out.ignored.push(Ignored {
                entry: shown(&raw_name),
                reason: NAME_NOT_UTF8,
            });
            continue;
        };
        // Hidden files and uploads in progress are nobody's delivery yet.
        if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
            continue;
        }
        let meta = match entry.path().symlink_metadata() {
            Ok(m) => m,
            // Gone between listing and looking: another process took it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Some((reason, _)) = refusal(meta.file_type()) {
            out.ignored.push(Ignored {
                entry: shown(&raw_name),
                reason,
            });
            continue;
        }
        if name.ends_with(".done") {
            markers.push((entry.path(), meta));
            continue;
        }
        // A second name for the same bytes may be outside the inbox (a hard link to a file
        // the uploader could read): never taken.
        if meta.nlink() > 1 {
            out.ignored.push(Ignored {
                entry: shown(&raw_name),
                reason: HARD_LINK,
            });
            continue;
        }
        let path = entry.path();
        match is_complete(&path, settle, now) {
            Ok(true) => out.ready.push(path),
            Ok(false) => out.settling.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // A marker whose file is not there (and not just being written): said once, not kept
    // waiting for forever in silence.
    for (marker, meta) in markers {
        let file = marker.with_extension("");
        let old = meta
            .modified()
            .map(|m| now.duration_since(m).unwrap_or_default() >= settle)
            .unwrap_or(true);
        if old && file.symlink_metadata().is_err() {
            out.ignored.push(Ignored {
                entry: shown(marker.file_name().unwrap_or_default()),
                reason: ORPHAN_MARKER,
            });
        }
    }
    out.ready.sort();
    out.settling.sort();
    out.ignored.sort_by(|a, b| a.entry.cmp(&b.entry));
    Ok(out)
}

/// Why an inbox file was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The entry is (now) something other than a regular file of one name.
    #[error("{what}; it is not read and stays where it is")]
    Refused {
        reason: &'static str,
        what: &'static str,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An inbox file opened for the intake: read, checked and moved through this descriptor and
/// the identity it had when opened, never by its path a second time.
#[derive(Debug)]
pub struct Opened {
    pub file: std::fs::File,
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl Opened {
    /// Opens `path` without following a symbolic link and without blocking (a FIFO swapped in
    /// after the scan would block `open` forever), then checks by `fstat` that what was
    /// opened is a regular file with no second name.
    pub fn open(path: &Path) -> Result<Opened, OpenError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::ELOOP) => OpenError::Refused {
                    reason: SYMLINK,
                    what: "a symbolic link",
                },
                _ => OpenError::Io(e),
            })?;
        let meta = file.metadata()?;
        if let Some((reason, what)) = refusal(meta.file_type()) {
            return Err(OpenError::Refused { reason, what });
        }
        if meta.nlink() > 1 {
            return Err(OpenError::Refused {
                reason: HARD_LINK,
                what: "a file with a second name (a hard link)",
            });
        }
        Ok(Opened {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            file,
        })
    }

    /// Whether the descriptor still holds exactly the `read` bytes it held when opened (not
    /// grown, not written), and `path` still names it (not replaced).
    pub fn unchanged(&self, path: &Path, read: u64) -> std::io::Result<bool> {
        Ok(self.same_content(read)? && self.is_at(path)?)
    }

    /// Whether the descriptor's file still has the `read` bytes and the time it was opened with.
    pub fn same_content(&self, read: u64) -> std::io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let now = self.file.metadata()?;
        Ok(read == self.len
            && now.len() == self.len
            && (now.mtime(), now.mtime_nsec()) == self.mtime)
    }

    /// Whether `path` names this descriptor's file.
    pub fn is_at(&self, path: &Path) -> std::io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        match path.symlink_metadata() {
            Ok(m) => Ok(m.dev() == self.dev && m.ino() == self.ino),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The size it had when opened.
    pub fn opened_len(&self) -> u64 {
        self.len
    }
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
        let s = scan(dir.path(), Duration::from_secs(3600)).unwrap();
        assert_eq!(s.ready, vec![b]);
        assert_eq!(s.settling, vec![a.clone()]);
        assert!(s.ignored.is_empty());
        let s = scan(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(s.ready.len(), 2);
    }

    #[test]
    fn entries_that_are_no_delivery_are_named_with_their_reason() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link.csv")).unwrap();
        nix::unistd::mkfifo(&dir.path().join("fifo.csv"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::create_dir(dir.path().join("folder.csv")).unwrap();
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        std::fs::hard_link(dir.path().join("a.csv"), dir.path().join("b.csv")).unwrap();
        std::fs::write(dir.path().join("gone.csv.done"), "").unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"\xff\n.csv");
        std::fs::write(dir.path().join(bad), "x").unwrap();
        std::fs::write(dir.path().join("ok.csv"), "x").unwrap();
        std::fs::write(dir.path().join("ok.csv.done"), "").unwrap();
        let s = scan(dir.path(), Duration::ZERO).unwrap();
        let got: Vec<(&str, &str)> = s
            .ignored
            .iter()
            .map(|i| (i.entry.as_str(), i.reason))
            .collect();
        assert_eq!(
            got,
            vec![
                ("\\xff\\n.csv", NAME_NOT_UTF8),
                ("a.csv", HARD_LINK),
                ("b.csv", HARD_LINK),
                ("fifo.csv", NOT_REGULAR),
                ("folder.csv", NOT_REGULAR),
                ("gone.csv.done", ORPHAN_MARKER),
                ("link.csv", SYMLINK),
            ]
        );
        assert_eq!(s.ready, vec![dir.path().join("ok.csv")]);
    }

    #[test]
    fn open_refuses_what_was_swapped_in_and_sees_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        let outside = dir.path().join("outside.csv");
        std::fs::write(&outside, "secret").unwrap();
        std::os::unix::fs::symlink(&outside, &p).unwrap();
        assert!(matches!(
            Opened::open(&p),
            Err(OpenError::Refused {
                reason: SYMLINK,
                ..
            })
        ));
        std::fs::remove_file(&p).unwrap();
        // A FIFO with no writer: the open returns at once and is refused.
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            Opened::open(&p),
            Err(OpenError::Refused {
                reason: NOT_REGULAR,
                ..
            })
        ));
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "abc").unwrap();
        let o = Opened::open(&p).unwrap();
        assert!(o.unchanged(&p, 3).unwrap());
        assert!(!o.unchanged(&p, 2).unwrap());
        // Appended to.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"d"))
            .unwrap();
        assert!(!o.unchanged(&p, 3).unwrap());
        // Replaced by another file of the same length.
        let o = Opened::open(&p).unwrap();
        std::fs::write(dir.path().join("new"), "abcd").unwrap();
        std::fs::rename(dir.path().join("new"), &p).unwrap();
        assert!(o.same_content(4).unwrap());
        assert!(!o.unchanged(&p, 4).unwrap());
    }
}
