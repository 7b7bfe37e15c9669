//! Reading the three logs: line files (the health system's access log, the Kubernetes audit
//! log) followed as they grow, rotate (rename and a new file at the same path) or are
//! truncated in place (copytruncate), and a folder of gzipped CloudTrail log files. Only
//! complete lines are taken; each read is one *segment* (a byte range of one file) that the
//! pipeline chains for tamper evidence before parsing it.
//!
//! Memory is bounded whatever the inputs hold: a line past [`MAX_LINE_BYTES`] is read through
//! in small pieces, hashed for the chain without being held, and handed on as one line too
//! long; a CloudTrail file is un-gzipped to at most [`MAX_CLOUDTRAIL_JSON_BYTES`] and refused
//! beyond (a gzip bomb of a few kilobytes can expand to gigabytes).
//!
//! A file is known by its identity (device and inode), not its path, so a checkpoint names the
//! exact file it stopped in: after a restart, a file rotated while the agent was down is found
//! again by its identity next to the path and read to its end before the new file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kenko_access::chain::{SegmentDigest, SegmentHasher};
pub use kenko_access::feed::MAX_LINE_BYTES;
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
    /// A line past [`MAX_LINE_BYTES`], read through: `bytes` is empty and the chain takes this
    /// digest of the line's bytes instead.
    pub too_long: Option<SegmentDigest>,
}

/// A line past [`MAX_LINE_BYTES`] being read through: hashed piece by piece, never held.
#[derive(Debug, Default)]
struct LongLine {
    hasher: SegmentHasher,
    /// Physical lines it covers so far (a CRI record's P parts).
    lines: u64,
    /// The first bytes of the physical line being read (enough for a CRI line's tag).
    head: Vec<u8>,
}

/// How much of a physical line's start is kept to read its CRI tag.
const CRI_HEAD: usize = 128;
/// The piece a long line is read through in.
const LONG_CHUNK: usize = 64 << 10;

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
    /// A line past the limit being read through (from `pos.offset`).
    long: Option<LongLine>,
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
            long: None,
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
            self.long = None;
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
            self.long = None;
        }
        if self
            .long
            .as_ref()
            .is_some_and(|l| meta.len() < self.pos.offset + l.hasher.len())
        {
            // Cut inside the long line being read through: read it again from its start.
            self.long = None;
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
        let last = self.read_lines(&mut f, id, max, true)?;
        if last.is_some() && !self.at_end {
            // More of the old file is left than one read takes: the rest at the next poll.
            self.file = Some((f, id));
            return Ok(last);
        }
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
        if self.long.is_some() {
            return self.read_long(f, id, len, final_read);
        }
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
        let at_eof = self.pos.offset + got as u64 >= len;
        let keep = if final_read && at_eof {
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
            if got > MAX_LINE_BYTES {
                // Already past the limit without its end: read it through without holding it.
                drop(buf);
                self.long = Some(LongLine::default());
                return self.read_long(f, id, len, final_read);
            }
            // A line longer than `max` (but within the limit), or one still being written.
            if got == want && want == max {
                let more = max.saturating_mul(2).min(MAX_LINE_BYTES + 1);
                return self.read_lines(f, id, more, final_read);
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
            too_long: None,
        };
        self.pos.offset += keep as u64;
        self.pos.lines += lines;
        self.at_end = self.pos.offset >= len;
        Ok(Some(seg))
    }
}

impl LineInput {
    /// Reads on through the long line at `pos.offset` (from where an earlier call stopped) in
    /// [`LONG_CHUNK`] pieces: None while its end is not written yet, else the whole line as one
    /// segment without bytes ([`Segment::too_long`]). A CRI record ends at its first physical
    /// line that is not a P part; a rotated file's unterminated end ends it too.
    fn read_long(
        &mut self,
        f: &mut File,
        id: FileId,
        len: u64,
        final_read: bool,
    ) -> Result<Option<Segment>, AccessError> {
        let mut long = self.long.take().unwrap_or_default();
        let mut at = self.pos.offset + long.hasher.len();
        let mut chunk = vec![0u8; LONG_CHUNK];
        let mut ended = false;
        while !ended && at < len {
            let want = ((len - at) as usize).min(LONG_CHUNK);
            f.seek(SeekFrom::Start(at)).map_err(|e| self.io(e))?;
            let n = loop {
                match f.read(&mut chunk[..want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.long = Some(long);
                        return Err(self.io(e));
                    }
                }
            };
            if n == 0 {
                break;
            }
            let mut taken = n;
            let mut from = 0;
            while let Some(i) = chunk[from..n].iter().position(|&b| b == b'\n') {
                let nl = from + i;
                let room = CRI_HEAD.saturating_sub(long.head.len());
                long.head
                    .extend_from_slice(&chunk[from..nl.min(from + room)]);
                long.lines += 1;
                from = nl + 1;
                if !(self.cri && kenko_access::cri::is_part(&long.head)) {
                    taken = from;
                    ended = true;
                    break;
                }
                long.head.clear();
            }
            if !ended {
                let room = CRI_HEAD.saturating_sub(long.head.len());
                long.head
                    .extend_from_slice(&chunk[from..n.min(from + room)]);
            }
            long.hasher.update(&chunk[..taken]);
            at += taken as u64;
        }
        if !ended && !final_read {
            // Its end is not written yet: go on from here at the next poll.
            self.long = Some(long);
            self.at_end = true;
            return Ok(None);
        }
        if !ended && long.hasher.is_empty() {
            return Ok(None);
        }
        if !ended {
            // A rotated file's unterminated end is its last line.
            long.lines += 1;
        }
        let digest = long.hasher.finish();
        let seg = Segment {
            source: self.source,
            name: chain_name(&self.path, id),
            start: self.pos.offset,
            first_line: self.pos.lines,
            bytes: Vec::new(),
            stack: self.stack.clone(),
            cri: self.cri,
            too_long: Some(digest),
        };
        self.pos.offset += digest.len;
        self.pos.lines += long.lines;
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

/// The most JSON one CloudTrail log file may un-gzip to (64 MiB; AWS's files hold at most a
/// few thousand records, a few megabytes), and the most compressed bytes one may have. A file
/// past it is refused (`cloudtrail_file_too_large`) after reading at most this much; a step
/// takes in files up to this much JSON in all.
pub const MAX_CLOUDTRAIL_JSON_BYTES: u64 = 64 << 20;

/// Why a CloudTrail file's JSON cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GunzipError {
    #[error("not a complete gzip file ({0})")]
    Incomplete(String),
    #[error("{what} past the limit of {limit} bytes (a gzip bomb?); refused unread")]
    TooLarge { what: &'static str, limit: u64 },
}

impl GunzipError {
    pub fn reason(&self) -> &'static str {
        match self {
            GunzipError::Incomplete(_) => "cloudtrail_file_unreadable",
            GunzipError::TooLarge { .. } => "cloudtrail_file_too_large",
        }
    }
}

/// Un-gzips `gz` (every member) into at most `limit` bytes: more is [`GunzipError::TooLarge`]
/// after reading `limit + 1`, so a bomb costs no more memory than a file at the limit.
pub fn gunzip_limited(gz: &[u8], limit: u64) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| GunzipError::Incomplete(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(GunzipError::TooLarge {
            what: "the un-gzipped JSON is",
            limit,
        });
    }
    Ok(out)
}

/// One CloudTrail log file, read whole.
#[derive(Debug)]
pub struct CloudTrailFile {
    /// Path relative to the folder (the checkpoint's key).
    pub rel: String,
    /// The chain name.
    pub name: String,
    /// The gzipped bytes as on disk (what the chain hashes); empty for a file past the limit,
    /// which is hashed in pieces into `digest` instead.
    pub gz: Vec<u8>,
    pub digest: Option<SegmentDigest>,
    /// The JSON after un-gzipping, or why it could not be read.
    pub json: Result<Vec<u8>, GunzipError>,
}

/// Hashes a file for the chain piece by piece, without holding it.
fn hash_file(p: &Path) -> std::io::Result<SegmentDigest> {
    let mut f = File::open(p)?;
    let mut h = SegmentHasher::default();
    let mut buf = vec![0u8; LONG_CHUNK];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(h.finish()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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
        let mut taken = 0u64;
        for (rel, p) in todo.into_iter().take(max_files) {
            if taken >= MAX_CLOUDTRAIL_JSON_BYTES {
                // Enough for one step: the rest at the next.
                break;
            }
            let meta = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            if meta.len() > MAX_CLOUDTRAIL_JSON_BYTES {
                let digest = match hash_file(&p) {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(e)),
                };
                out.push(CloudTrailFile {
                    name: chain_name(&p, FileId::of(&meta)),
                    rel,
                    gz: Vec::new(),
                    digest: Some(digest),
                    json: Err(GunzipError::TooLarge {
                        what: "the gzip file is",
                        limit: MAX_CLOUDTRAIL_JSON_BYTES,
                    }),
                });
                continue;
            }
            let gz = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            let un = gunzip_limited(&gz, MAX_CLOUDTRAIL_JSON_BYTES);
            if matches!(un, Err(GunzipError::Incomplete(_))) {
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
            taken += un.as_ref().map_or(0, |j| j.len() as u64);
            out.push(CloudTrailFile {
                name: chain_name(&p, FileId::of(&meta)),
                rel,
                gz,
                digest: None,
                json: un,
            });
        }
        self.pending -= out.len();
        Ok(out)
    }
}
