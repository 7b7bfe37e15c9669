//! The Kubernetes audit log from CloudWatch Logs (`[access] k8s_audit_cloudwatch`, on EKS
//! `/aws/eks/CLUSTER/cluster`): a thread that pages through every audit stream with forward
//! tokens and appends the events, one JSON line each, to a spool file the monitor follows as
//! its `k8s_audit_log` (default `STATE_DIR/k8s-audit-cloudwatch/audit.jsonl`). Downloading
//! apart from reading keeps the monitor's checkpoint and chain rules as they are for a file,
//! and a slow CloudWatch never stalls the other logs.
//!
//! **Exactly once.** Beside the spool, `cursor.json` (written atomically) holds each stream's
//! next token and the spool's committed length. Before a page is appended the cursor records
//! the append it is about to make (stream, token, length); after the append is synced, the
//! new token and length. After a crash between the two, the page is read again from the same
//! token and the events already in the spool after that length (complete lines; a torn last
//! line, which the monitor never reads, is cut) are skipped, so every event is in the spool
//! once and the spool only ever grows. Past `ROTATE_BYTES` the spool is rotated like a log
//! (`audit.jsonl.1`, `.2`; the monitor reads a rotated file to its end by its identity).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};

use prometheus::{IntCounter, Opts};
use serde::{Deserialize, Serialize};

use super::settings::AccessSettings;
use super::telemetry::AccessEvent;

static EVENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    let c = IntCounter::with_opts(Opts::new(
        "kenko_access_cloudwatch_events_total",
        "Kubernetes audit events read from CloudWatch Logs into the monitor's spool.",
    ))
    .expect("metric");
    crate::metrics::METRICS
        .registry
        .register(Box::new(c.clone()))
        .expect("register");
    c
});

/// Events asked for per page.
const PAGE: i32 = 1000;
/// The spool is rotated past this size.
const ROTATE_BYTES: u64 = 256 << 20;

/// An append about to be made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub stream: String,
    pub from: Option<String>,
    /// The spool's length before the append.
    pub at: u64,
}

/// Where the download stands (`cursor.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The spool's inode (a different one at the path means it was rotated).
    pub ino: Option<u64>,
    /// Committed length of the spool.
    pub len: u64,
    /// Each stream's next forward token.
    pub streams: BTreeMap<String, String>,
    pub pending: Option<Pending>,
}

/// Why the spool could not be kept (never a log line's content).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Aws(#[from] kenko_aws::AwsError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SpoolError + '_ {
    move |e| SpoolError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The spool file and its cursor.
#[derive(Debug)]
pub struct Spool {
    pub path: PathBuf,
    cursor_path: PathBuf,
    pub cursor: Cursor,
    /// The spool is rotated past this size ([`ROTATE_BYTES`]).
    pub rotate_bytes: u64,
}

impl Spool {
    /// Opens the spool at `path` (its cursor beside it), creating both.
    pub fn open(path: &Path) -> Result<Spool, SpoolError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let cursor_path = dir.join("cursor.json");
        let cursor = match std::fs::read(&cursor_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| SpoolError::Io {
                path: cursor_path.display().to_string(),
                message: format!(
                    "not a cursor file (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cursor::default(),
            Err(e) => return Err(io(&cursor_path)(e)),
        };
        let mut s = Spool {
            path: path.to_path_buf(),
            cursor_path,
            cursor,
            rotate_bytes: ROTATE_BYTES,
        };
        let f = s.file()?;
        let ino = f.metadata().map_err(io(path))?.ino();
        if s.cursor.ino != Some(ino) {
            // A new spool, or rotated just before a crash: it starts empty.
            s.cursor.ino = Some(ino);
            s.cursor.len = 0;
            s.cursor.pending = None;
            s.store()?;
        }
        Ok(s)
    }

    fn file(&self) -> Result<File, SpoolError> {
        OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))
    }

    fn store(&self) -> Result<(), SpoolError> {
        let bytes = serde_json::to_vec(&self.cursor).expect("a cursor serialises");
        crate::fsutil::atomic_write(&self.cursor_path, &bytes).map_err(io(&self.cursor_path))
    }

    /// Complete lines after `at` (what a crashed append already wrote), cutting a torn last
    /// line.
    fn written_after(&self, f: &mut File, at: u64) -> Result<usize, SpoolError> {
        let len = f.metadata().map_err(io(&self.path))?.len();
        if len <= at {
            return Ok(0);
        }
        let mut tail = Vec::new();
        f.seek(SeekFrom::Start(at)).map_err(io(&self.path))?;
        f.read_to_end(&mut tail).map_err(io(&self.path))?;
        let whole = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < tail.len() {
            f.set_len(at + whole as u64).map_err(io(&self.path))?;
        }
        Ok(tail[..whole].iter().filter(|&&b| b == b'\n').count())
    }

    /// Appends the page read from `pending.from`, skipping what a crashed append already
    /// wrote, and commits the stream's next token. Returns the events appended.
    fn commit_page(
        &mut self,
        pending: Pending,
        page: kenko_aws::cwlogs::Page,
    ) -> Result<u64, SpoolError> {
        let mut f = self.file()?;
        let skip = self.written_after(&mut f, pending.at)?;
        let mut buf = Vec::new();
        for m in page.messages.iter().skip(skip) {
            // One event, one line: a raw newline is JSON white space.
            buf.extend(
                m.trim_end()
                    .bytes()
                    .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            buf.push(b'\n');
        }
        f.write_all(&buf).map_err(io(&self.path))?;
        f.sync_data().map_err(io(&self.path))?;
        crate::crashpoint::hit("cloudwatch-appended");
        self.cursor.len = f.metadata().map_err(io(&self.path))?.len();
        if let Some(t) = page.next_token {
            self.cursor.streams.insert(pending.stream, t);
        }
        self.cursor.pending = None;
        self.store()?;
        Ok(page.messages.len().saturating_sub(skip) as u64)
    }

    /// Rotates the spool past `rotate_bytes` (nothing pending).
    fn rotate_if_large(&mut self) -> Result<(), SpoolError> {
        if self.cursor.len < self.rotate_bytes || self.cursor.pending.is_some() {
            return Ok(());
        }
        let name = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if name(1).exists() {
            crate::fsutil::move_file(&name(1), &name(2)).map_err(io(&name(2)))?;
        }
        crate::fsutil::move_file(&self.path, &name(1)).map_err(io(&self.path))?;
        let ino = self.file()?.metadata().map_err(io(&self.path))?.ino();
        self.cursor.ino = Some(ino);
        self.cursor.len = 0;
        self.store()
    }

    /// One pass: every audit stream of `group` read to its current end into the spool.
    pub async fn pass(
        &mut self,
        client: &kenko_aws::cwlogs::aws_sdk_cloudwatchlogs::Client,
        group: &str,
    ) -> Result<u64, SpoolError> {
        let mut n = 0;
        // An append a crash interrupted is finished first.
        if let Some(p) = self.cursor.pending.clone() {
            let page =
                kenko_aws::cwlogs::page(client, group, &p.stream, p.from.as_deref(), PAGE).await?;
            n += self.commit_page(p, page)?;
        }
        for stream in kenko_aws::cwlogs::audit_streams(client, group).await? {
            loop {
                let from = self.cursor.streams.get(&stream).cloned();
                let page =
                    kenko_aws::cwlogs::page(client, group, &stream, from.as_deref(), PAGE).await?;
                let more = !page.messages.is_empty() && page.next_token != from;
                if page.messages.is_empty() {
                    if let Some(t) = page.next_token.filter(|t| Some(t) != from.as_ref()) {
                        self.cursor.streams.insert(stream.clone(), t);
                        self.store()?;
                    }
                    break;
                }
                let pending = Pending {
                    stream: stream.clone(),
                    from,
                    at: self.cursor.len,
                };
                self.cursor.pending = Some(pending.clone());
                self.store()?;
                crate::crashpoint::hit("cloudwatch-pending");
                n += self.commit_page(pending, page)?;
                self.rotate_if_large()?;
                if !more {
                    break;
                }
            }
        }
        Ok(n)
    }
}

/// Starts the downloader when `k8s_audit_cloudwatch` is set.
pub fn spawn(s: &AccessSettings, stop: Arc<AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
    let group = s.k8s_audit_cloudwatch.clone()?;
    let spool_path = s.k8s_audit_log.clone()?;
    LazyLock::force(&EVENTS);
    let mut spool: Option<Spool> = None;
    super::spawn_cloud_reader(
        "k8s-audit-cloudwatch",
        s,
        s.k8s_audit_cloudwatch_poll,
        stop,
        |rt| {
            let ep = kenko_aws::Endpoint::from_env();
            rt.block_on(kenko_aws::cwlogs::logs_client(&ep, &ep.region))
        },
        move |rt, client, reading| {
            if !reading {
                // Reopened from the cursor on disk when this agent reads again.
                spool = None;
                return;
            }
            let result = match &mut spool {
                Some(sp) => rt.block_on(sp.pass(client, &group)),
                None => Spool::open(&spool_path).and_then(|sp| {
                    let sp = spool.insert(sp);
                    rt.block_on(sp.pass(client, &group))
                }),
            };
            match result {
                Ok(n) => {
                    EVENTS.inc_by(n);
                    if n > 0 {
                        tracing::debug!(events = n, "k8s_audit_cloudwatch: new audit events");
                    }
                }
                Err(e) => {
                    // Reopened from the cursor at the next poll.
                    spool = None;
                    AccessEvent::CloudWatchFailed { error: &e }.emit();
                }
            }
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use kenko_aws::cwlogs::Page;

    fn page(msgs: &[&str], next: &str) -> Page {
        Page {
            messages: msgs.iter().map(|m| m.to_string()).collect(),
            next_token: Some(next.into()),
        }
    }

    #[test]
    fn a_crashed_append_is_finished_once_and_the_spool_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cw/audit.jsonl");
        let mut sp = Spool::open(&path).unwrap();
        let p = Pending {
            stream: "kube-apiserver-audit-a".into(),
            from: None,
            at: 0,
        };
        assert_eq!(
            sp.commit_page(p, page(&["{\"a\":1}", "{\"a\":2}"], "t1"))
                .unwrap(),
            2
        );
        // A crash after two of three lines of the next page, the third torn.
        let at = sp.cursor.len;
        sp.cursor.pending = Some(Pending {
            stream: "kube-apiserver-audit-a".into(),
            from: Some("t1".into()),
            at,
        });
        sp.store().unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"a\":3}\n{\"a\":4}\n{\"a\":").unwrap();
        drop(f);
        // The restart reads the page again from t1 (now with one more event).
        let mut sp = Spool::open(&path).unwrap();
        let pending = sp.cursor.pending.clone().unwrap();
        let n = sp
            .commit_page(
                pending,
                page(&["{\"a\":3}", "{\"a\":4}", "{\"a\":5}", "{\"a\":6}"], "t2"),
            )
            .unwrap();
        assert_eq!(n, 2, "only what the crashed append had not written");
        let text = std::fs::read_to_string(&path).unwrap();
        let want: String = (1..=6).map(|i| format!("{{\"a\":{i}}}\n")).collect();
        assert_eq!(text, want);
        assert_eq!(sp.cursor.streams["kube-apiserver-audit-a"], "t2");
        assert!(sp.cursor.pending.is_none());
        // Rotation: the full spool moves to .1, a new one starts, a reopen knows it.
        sp.rotate_bytes = 10;
        sp.rotate_if_large().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cw/audit.jsonl.1")).unwrap(),
            want
        );
        let sp = Spool::open(&path).unwrap();
        assert_eq!(sp.cursor.len, 0);
        assert_eq!(
            sp.cursor.streams["kube-apiserver-audit-a"], "t2",
            "tokens survive it"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
