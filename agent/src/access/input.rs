//! Reading the three logs: line files (the health system's access log, the Kubernetes audit
//! log) followed as they grow, rotate (rename and a new file at the same path) or are
//! truncated in place (copytruncate), and a folder of gzipped CloudTrail log files. Only
//! complete lines are taken; each read is one *segment* (a byte range of one file) that the
//! pipeline chains for tamper evidence before parsing it.
//!
//! A file is known by its identity (device and inode), not its path, so a checkpoint names the
//! exact file it stopped in: after a restart, a file rotated while the agent was down is found
//! again by its identity next to the path and read to its end before the new file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kenko_access::Source;
use serde::{Deserialize, Serialize};

use super::AccessError;

/// A file's identity: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The name a segment of `path` (with this identity) gets in the chain: the path and the
/// identity, so `audit-log verify` finds the file again after it was rotated.
pub fn chain_name(path: &Path, id: FileId) -> String {
    format!("{}@{}:{}", path.display(), id.dev, id.ino)
}

/// Splits a chain name back into (path, identity).
pub fn parse_chain_name(name: &str) -> Option<(PathBuf, FileId)> {
    let (path, id) = name.rsplit_once('@')?;
    let (dev, ino) = id.split_once(':')?;
    Some((
        PathBuf::from(path),
        FileId {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
        },
    ))
}

/// Finds the file with identity `id`: at `path`, or next to it (rotated, e.g. `access.log.1`).
pub fn find_by_id(path: &Path, id: FileId) -> Option<PathBuf> {
    if std::fs::metadata(path).is_ok_and(|m| FileId::of(&m) == id) {
        return Some(path.to_path_buf());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && FileId::of(&m) == id)
        })
        .map(|e| e.path())
}

/// Bytes read from one file: complete lines only (except a rotated file's unterminated end).
#[derive(Debug)]
pub struct Segment {
    pub source: Source,
    /// The chain name ([`chain_name`]).
    pub name: String,
    /// Byte offset of `bytes` in the file.
    pub start: u64,
    /// Lines of the file before this segment (line numbers in errors continue from it).
    pub first_line: u64,
    pub bytes: Vec<u8>,
    /// The stack whose input this is (a stack's app pod log).
    pub stack: Option<String>,
    /// The bytes are CRI log lines (a container log), to unwrap before parsing.
    pub cri: bool,
}

/// Where a line input stands (saved in the checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinePosition {
    /// The file being read (None before the first open).
    pub file: Option<FileId>,
    /// Bytes of it consumed (always at a line end).
    pub offset: u64,
    /// Lines of it consumed.
    pub lines: u64,
}

/// What happened to a followed file, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Rotated,
    Truncated,
    /// The checkpointed file is gone (rotated away and deleted while the agent was down).
    Lost,
}

/// A followed line file.
#[derive(Debug)]
pub struct LineInput {
    pub source: Source,
    pub path: PathBuf,
    pub pos: LinePosition,
    /// The stack this input belongs to (a stack's app pod log); None for a configured file.
    pub stack: Option<String>,
    /// A container log in the CRI format: only whole records (a line's P parts with their F)
    /// are taken.
    pub cri: bool,
    file: Option<(File, FileId)>,
    /// Events of what happened since the last call to [`LineInput::take_changes`].
    changes: Vec<Change>,
    /// Whether the last read reached the end of the file.
    pub at_end: bool,
    pub size: u64,
}

impl LineInput {
    pub fn new(source: Source, path: PathBuf, pos: LinePosition) -> LineInput {
        LineInput {
            source,
            path,
            pos,
            stack: None,
            cri: false,
            file: None,
            changes: Vec::new(),
            at_end: false,
            size: 0,
        }
    }

    /// A stack's container log (CRI format).
    pub fn pod_log(stack: String, path: PathBuf, pos: LinePosition) -> LineInput {
        LineInput {
            stack: Some(stack),
            cri: true,
            ..LineInput::new(Source::Health, path, pos)
        }
    }

    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    fn io(&self, e: std::io::Error) -> AccessError {
        AccessError::Input {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Opens the file to read: the checkpointed one (wherever it is now), else the one at the
    /// path. Ok(false) when there is nothing to open yet.
    fn open(&mut self) -> Result<bool, AccessError> {
        if let Some(id) = self.pos.file {
            if let Some(p) = find_by_id(&self.path, id) {
                let f = File::open(&p).map_err(|e| self.io(e))?;
                self.file = Some((f, id));
                return Ok(true);
            }
            if self.pos.offset > 0 {
                self.changes.push(Change::Lost);
            }
            self.pos = LinePosition::default();
        }
        match File::open(&self.path) {
            Ok(f) => {
                let id = FileId::of(&f.metadata().map_err(|e| self.io(e))?);
                self.pos = LinePosition {
                    file: Some(id),
                    offset: 0,
                    lines: 0,
                };
                self.file = Some((f, id));
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Reads up to about `max` bytes of complete lines. Handles rotation (the old file is read
    /// to its end first, including an unterminated last line) and truncation in place.
    pub fn poll(&mut self, max: usize) -> Result<Option<Segment>, AccessError> {
        if self.file.is_none() && !self.open()? {
            self.at_end = true;
            return Ok(None);
        }
        let (mut f, id) = self.file.take().expect("opened");
        let meta = f.metadata().map_err(|e| self.io(e))?;
        if meta.len() < self.pos.offset {
            // Truncated in place (copytruncate): what was written between our last read and the
            // truncation is gone; start again at the top.
            self.changes.push(Change::Truncated);
            self.pos.offset = 0;
            self.pos.lines = 0;
        }
        self.size = meta.len();
        let seg = self.read_lines(&mut f, id, max, false)?;
        if seg.is_some() {
            self.file = Some((f, id));
            return Ok(seg);
        }
        // At the end of this file: has the path moved on to a new file?
        let rotated = match std::fs::metadata(&self.path) {
            Ok(m) => FileId::of(&m) != id,
            Err(_) => false,
        };
        if !rotated {
            self.at_end = true;
            self.file = Some((f, id));
            return Ok(None);
        }
        // The writer has switched files; whatever the old one holds now is final.
        let last = self.read_lines(&mut f, id, usize::MAX, true)?;
        self.changes.push(Change::Rotated);
        self.pos = LinePosition::default();
        self.file = None;
        self.at_end = false;
        if last.is_some() {
            return Ok(last);
        }
        self.poll(max)
    }

    fn read_lines(
        &mut self,
        f: &mut File,
        id: FileId,
        max: usize,
        final_read: bool,
    ) -> Result<Option<Segment>, AccessError> {
        let len = f.metadata().map_err(|e| self.io(e))?.len();
        self.size = len;
        if len <= self.pos.offset {
            self.at_end = true;
            return Ok(None);
        }
        let want = ((len - self.pos.offset) as usize).min(max);
        let mut buf = vec![0u8; want];
        f.seek(SeekFrom::Start(self.pos.offset))
            .map_err(|e| self.io(e))?;
        let mut got = 0;
        while got < want {
            match f.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        buf.truncate(got);
        let keep = if final_read {
            buf.len()
        } else if self.cri {
            kenko_access::cri::complete_end(&buf)
        } else {
            match memrchr_newline(&buf) {
                Some(i) => i + 1,
                None => 0,
            }
        };
        if keep == 0 {
            // A line longer than `max`, or one still being written.
            if !final_read && got == want && want == max {
                return self.read_lines(f, id, max.saturating_mul(2), final_read);
            }
            self.at_end = true;
            return Ok(None);
        }
        buf.truncate(keep);
        let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64
            + u64::from(buf.last() != Some(&b'\n'));
        let seg = Segment {
            source: self.source,
            name: chain_name(&self.path, id),
            start: self.pos.offset,
            first_line: self.pos.lines,
            bytes: buf,
            stack: self.stack.clone(),
            cri: self.cri,
        };
        self.pos.offset += keep as u64;
        self.pos.lines += lines;
        self.at_end = self.pos.offset >= len;
        Ok(Some(seg))
    }
}

/// The container logs of the stacks' app pods under the kubelet's log folder: for every pod
/// folder `NAMESPACE_POD_UID` of a stack's namespace whose pod name matches its `app_pods`, the
/// logs `N.log` (one per container restart) of its [`kenko_api::access::APP_CONTAINER`]
/// container, with the stack they belong to. Rotated files (`N.log.DATE`) are found by the
/// followed file's identity instead.
pub fn pod_logs(
    root: &Path,
    stacks: &[kenko_api::access::StackAccess],
) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        // Neither a namespace nor a pod name nor a uid can hold `_`.
        let mut parts = name.split('_');
        let (Some(ns), Some(pod), Some(_uid), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(stack) = stacks
            .iter()
            .find(|s| s.namespace == ns && kenko_access::event::glob(&s.app_pods, pod))
        else {
            continue;
        };
        let dir = e.path().join(kenko_api::access::APP_CONTAINER);
        let files = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for f in files {
            let f = f?;
            let fname = f.file_name();
            let Some(fname) = fname.to_str() else {
                continue;
            };
            let is_log = fname
                .strip_suffix(".log")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if is_log {
                out.push((f.path(), stack.stack.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn memrchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().rposition(|&c| c == b'\n')
}

/// One CloudTrail log file, read whole.
#[derive(Debug)]
pub struct CloudTrailFile {
    /// Path relative to the folder (the checkpoint's key).
    pub rel: String,
    /// The chain name.
    pub name: String,
    /// The gzipped bytes as on disk (what the chain hashes).
    pub gz: Vec<u8>,
    /// The JSON after un-gzipping, or why it could not be read.
    pub json: Result<Vec<u8>, String>,
}

/// A folder of CloudTrail log files (`*.json.gz`, in any sub-folder, as AWS delivers them:
/// `AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/…json.gz`). Files must appear whole (written
/// under another name and renamed, as S3 sync tools do); a file that cannot be un-gzipped is
/// retried until it is `settle_secs` old, then reported.
#[derive(Debug)]
pub struct CloudTrailDir {
    pub root: PathBuf,
    /// Files already taken in (relative paths).
    pub done: BTreeSet<String>,
    pub settle_secs: u64,
    /// Files not taken in at the last scan.
    pub pending: usize,
}

impl CloudTrailDir {
    pub fn new(root: PathBuf, done: BTreeSet<String>) -> CloudTrailDir {
        CloudTrailDir {
            root,
            done,
            settle_secs: 30,
            pending: 0,
        }
    }

    fn scan(&self, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                self.scan(&e.path(), out)?;
            } else if ft.is_file() && name.ends_with(".json.gz") {
                out.push(e.path());
            }
        }
        Ok(())
    }

    /// The next files not yet taken in (name order), at most `max_files`.
    pub fn poll(&mut self, max_files: usize) -> Result<Vec<CloudTrailFile>, AccessError> {
        let root = self.root.display().to_string();
        let io = |e: std::io::Error| AccessError::Input {
            path: root.clone(),
            message: e.to_string(),
        };
        let mut paths = Vec::new();
        self.scan(&self.root, &mut paths).map_err(io)?;
        let mut todo: Vec<(String, PathBuf)> = paths
            .into_iter()
            .filter_map(|p| {
                let rel = p
                    .strip_prefix(&self.root)
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                (!self.done.contains(&rel)).then_some((rel, p))
            })
            .collect();
        todo.sort();
        self.pending = todo.len();
        let mut out = Vec::new();
        for (rel, p) in todo.into_iter().take(max_files) {
            let gz = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            let meta = std::fs::metadata(&p).map_err(io)?;
            let mut json = Vec::new();
            let un = flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut json)
                .map(|_| json)
                .map_err(|e| format!("not a complete gzip file ({e})"));
            if un.is_err() {
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .map_or(0, |d| d.as_secs());
                if age < self.settle_secs {
                    // Perhaps still being written: try again later.
                    continue;
                }
            }
            out.push(CloudTrailFile {
                name: chain_name(&p, FileId::of(&meta)),
                rel,
                gz,
                json: un,
            });
        }
        self.pending -= out.len();
        Ok(out)
    }
}
