//! The monthly intake: take complete files from the inbox, check every row, load the good
//! rows and the ledger entry in one transaction, write the return report and summaries, move
//! the input out of the inbox, rebuild the touched months' fee summaries.
//!
//! Crash safety comes from the order of steps, each of which is idempotent:
//! 1. reports are written (atomically, deterministic content) before the commit under hidden
//!    pending names, so a crash before the commit just reruns the file and rewrites identical
//!    reports, and they are put in place after the commit (by the recovery too), so none
//!    claims an outcome that did not commit;
//! 2. the ledger row commits with the records; a file whose SHA-256 is in the ledger is never
//!    loaded again;
//! 3. the input moves after the commit; a ledger row not yet marked `moved` means "finish the
//!    move", not "duplicate delivery";
//! 4. the months to rebuild are marked dirty in the same commit and cleared only after their
//!    fee summary is written.
//!
//! Checking runs on one thread and the store on another, with batches between them, so the
//! two cores of a small node both work.

pub mod cli;
pub mod decode;
pub mod inbox;
pub mod report;
pub mod s3inbox;
pub mod schedule;
pub mod session;
pub mod status;
pub mod watch;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use kenko_intake::{Checker, Column, Header, Issue, Reason, Record, VaccineMaster};
use kenko_store::{InsertOutcome, LedgerEntry, LedgerStatus, Store, StoreError, StoredRecord};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crashpoint;
use crate::crypto::DataKey;
use crate::fsutil::{self, at, PathError};
use crate::register::RegisterIndex;
use crate::telemetry::Event;
use decode::{DecodeError, RecordReader};
pub use inbox::Dirs;
pub use report::Disposition;
pub use report::FileSummary;
use report::{FileProblem, Rejection};

/// Why an intake could not be completed (the file stays in the inbox and is retried). A file
/// with bad content is not an error: it is returned with a report.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Io(#[from] PathError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{file}: the file changed while it was being read (written to, or replaced); nothing of it was loaded, and it will be taken again once complete"
    )]
    Changed { file: PathBuf },
    /// The inbox entry is not a regular file of one name (a link swapped in, a FIFO).
    #[error("{file}: {what}; it is not read and stays where it is")]
    Refused {
        file: PathBuf,
        reason: &'static str,
        what: &'static str,
    },
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A report could not be handed to where it is picked up (the S3 inbox's bucket).
    #[error("{0}")]
    Publish(String),
}

impl IntakeError {
    /// Stable reason for metrics, logs and runbooks.
    pub fn reason(&self) -> &'static str {
        match self {
            IntakeError::Io(_) | IntakeError::Read { .. } => "io_failed",
            IntakeError::Store(e) => e.reason(),
            IntakeError::Changed { .. } => "file_changed",
            IntakeError::Refused { reason, .. } => reason,
            IntakeError::Publish(_) => "inbox_unreachable",
        }
    }
}

/// Everything an intake needs.
pub struct Env<'a> {
    pub store: &'a mut dyn Store,
    pub register: &'a RegisterIndex,
    pub master: &'a VaccineMaster,
    pub key: &'a DataKey,
    pub dirs: &'a Dirs,
    /// Today in Asia/Tokyo: vaccination dates after it are rejected.
    pub today: NaiveDate,
    /// Where reports go besides the data directory, when somewhere does (the S3 inbox).
    pub publish: Option<&'a dyn Publish>,
}

/// Where reports are picked up when that is not the data directory (the S3 inbox's bucket),
/// so a working directory that does not survive a restart (a pod's `emptyDir`) loses nothing.
/// Paths are relative to the data directory (`reports/...`).
pub trait Publish {
    /// A file's report, written before its commit: kept aside, out of the institutions'
    /// sight, until the commit is known (a report never claims an outcome that did not commit).
    fn pending(&self, relative: &str, bytes: &[u8]) -> Result<(), IntakeError>;
    /// A fee summary rebuilt from the store: published before its month stops being dirty,
    /// so a crash in between rebuilds and publishes it again.
    fn fee_report(&self, relative: &str, bytes: &[u8]) -> Result<(), IntakeError>;
}

/// What `intake run-once --json` prints.
#[derive(Debug, Default, Serialize)]
pub struct RunSummary {
    pub files: u64,
    pub loaded: u64,
    pub returned: u64,
    pub duplicates: u64,
    pub recovered: u64,
    pub failed: u64,
    /// Ready files left for a later round (they failed lately and are backing off).
    #[serde(skip_serializing_if = "is_zero")]
    pub deferred: u64,
    /// A file failed because the store is unavailable (the round stopped there).
    #[serde(skip)]
    pub store_down: bool,
    pub rows: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub reasons: BTreeMap<String, u64>,
    pub file_summaries: Vec<FileSummary>,
    pub failures: Vec<Failure>,
    /// Inbox entries that are no delivery (links, FIFOs, folders, orphan markers, names
    /// that are not UTF-8), named with why: never silently skipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<inbox::Ignored>,
    pub fee_reports: Vec<String>,
    /// Peak resident memory of this process so far (KiB), from /proc/self/status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The process's peak resident set size (VmHWM) in KiB, where /proc is available.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub file: String,
    pub reason: &'static str,
    pub message: String,
}

impl RunSummary {
    fn add(&mut self, s: FileSummary) {
        self.files += 1;
        match s.disposition {
            Disposition::Loaded => self.loaded += 1,
            Disposition::Returned => self.returned += 1,
            Disposition::Duplicate => self.duplicates += 1,
            Disposition::Recovered => self.recovered += 1,
        }
        if s.disposition != Disposition::Duplicate {
            self.rows += s.rows;
            self.accepted += s.accepted;
            self.rejected += s.rejected;
            for (k, v) in &s.reasons {
                *self.reasons.entry(k.clone()).or_default() += v;
            }
        }
        self.file_summaries.push(s);
    }
}

/// Processes every complete file in the inbox once, after finishing anything a crash left.
pub fn run_once(env: &mut Env<'_>, settle: Duration) -> Result<RunSummary, IntakeError> {
    run_round(env, settle, &mut TakeAll)
}

/// Which ready files a round takes, and what a failure of one means for the next rounds. The
/// watcher backs off per file; `run-once` takes everything.
pub trait Gate {
    /// Whether to take this ready file now.
    fn take(&mut self, file: &str) -> bool;
    /// The file failed (not for want of the store); returns when it will be tried again.
    fn failed(&mut self, file: &str) -> Option<Duration>;
    /// The file was taken in (or skipped as a duplicate): forget its failures.
    fn taken(&mut self, file: &str);
}

/// Takes every ready file; the gate of `run-once`.
#[derive(Debug)]
pub struct TakeAll;

impl Gate for TakeAll {
    fn take(&mut self, _: &str) -> bool {
        true
    }
    fn failed(&mut self, _: &str) -> Option<Duration> {
        None
    }
    fn taken(&mut self, _: &str) {}
}

/// [`run_once`] with a gate: ready files the gate holds back are counted in
/// `RunSummary::deferred` and left for a later round.
pub fn run_round(
    env: &mut Env<'_>,
    settle: Duration,
    gate: &mut dyn Gate,
) -> Result<RunSummary, IntakeError> {
    let mut summary = RunSummary::default();
    recover(env)?;
    summary.fee_reports.extend(rebuild_fee_reports(env)?);
    summary.fee_reports.extend(write_missing_fee_reports(env)?);
    let scan = inbox::scan(&env.dirs.inbox, settle).map_err(at(&env.dirs.inbox))?;
    Event::InboxScanned {
        waiting: scan.ready.len() + scan.settling.len(),
        ignored: &scan.ignored,
    }
    .emit();
    summary.ignored = scan.ignored;
    crashpoint::pause("scanned");
    for path in scan.ready {
        let name = file_name(&path);
        if !gate.take(&name) {
            summary.deferred += 1;
            continue;
        }
        match process_file(env, &path) {
            Ok(s) => {
                gate.taken(&name);
                summary.add(s);
            }
            // Gone between the scan and the open: another process on this inbox took it.
            Err(IntakeError::Io(e))
                if e.source.kind() == std::io::ErrorKind::NotFound && e.path == path =>
            {
                tracing::info!(file = %name, "taken by another process meanwhile");
            }
            Err(e) => {
                // A store error on one file (a row the database refused) stops nothing else;
                // only a store that no longer answers ends the round.
                let store_down =
                    matches!(e, IntakeError::Store(_)) && env.store.dirty_months().is_err();
                // A store that is gone is not this file's fault: no back-off for it.
                let retry_in = if store_down { None } else { gate.failed(&name) };
                Event::FileFailed {
                    file: &name,
                    reason: e.reason(),
                    error: &e,
                    retry_in,
                }
                .emit();
                summary.failed += 1;
                summary.store_down |= store_down;
                summary.failures.push(Failure {
                    file: name,
                    reason: e.reason(),
                    message: e.to_string(),
                });
                if store_down {
                    // The other files would fail the same way.
                    break;
                }
            }
        }
        summary.fee_reports.extend(rebuild_fee_reports(env)?);
    }
    summary.fee_reports.sort();
    summary.fee_reports.dedup();
    summary.peak_rss_kib = peak_rss_kib();
    Ok(summary)
}

/// Marks as moved the ledger entries whose input already left the inbox (a crash between the
/// move and the mark). Entries whose input is still in the inbox are finished by
/// `process_file` when it meets the file.
pub fn recover(env: &mut Env<'_>) -> Result<(), IntakeError> {
    let holder = env.dirs.holder().map_err(at(&env.dirs.keys))?;
    for e in env.store.ledger_unmoved()? {
        // Another agent's local file (one database under several agents): its own recovery
        // finishes it; that the file is not in this inbox says nothing.
        if e.origin.is_none() && e.holder.as_ref().is_some_and(|h| *h != holder) {
            continue;
        }
        if !env.dirs.inbox.join(&e.file_name).exists()
            || env.dirs.root.join(&e.destination).exists()
        {
            tracing::info!(sha256 = %e.sha256, "ledger entry completed after a restart");
            env.store.ledger_mark_moved(&e.sha256)?;
        }
    }
    Ok(())
}

/// Rewrites the fee summary of every month marked dirty; returns the paths written.
pub fn rebuild_fee_reports(env: &mut Env<'_>) -> Result<Vec<String>, IntakeError> {
    let mut written = Vec::new();
    for month in env.store.dirty_months()? {
        crashpoint::hit("before-fee-report");
        written.push(write_fee_report(env, &month)?);
        env.store.clear_dirty_month(&month)?;
    }
    Ok(written)
}

/// Writes the fee summary of every month this data directory lacks: another agent on the
/// same database may have rebuilt and cleared it. Once per round.
fn write_missing_fee_reports(env: &mut Env<'_>) -> Result<Vec<String>, IntakeError> {
    let mut written = Vec::new();
    for month in env.store.fee_months()? {
        if !report::fee_report_path(&env.dirs.reports, &month).exists() {
            written.push(write_fee_report(env, &month)?);
        }
    }
    Ok(written)
}

/// Writes (and publishes) one month's fee summary from the store; its relative path.
fn write_fee_report(env: &mut Env<'_>, month: &str) -> Result<String, IntakeError> {
    let lines = env.store.fee_summary(month)?;
    let path = report::fee_report_path(&env.dirs.reports, month);
    let bytes = report::fee_report_bytes(&lines);
    fsutil::atomic_write(&path, &bytes).map_err(at(&path))?;
    if let Some(out) = env.publish {
        out.fee_report(&env.dirs.relative(&path), &bytes)?;
    }
    Ok(env.dirs.relative(&path))
}

/// Why `intake retry` refused.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("{file}: only files in {returned} can be retried")]
    NotReturned { file: PathBuf, returned: PathBuf },
    #[error("{file}: these bytes were loaded (ledger status {status}); a loaded file is never taken twice")]
    Loaded {
        file: PathBuf,
        status: kenko_store::LedgerStatus,
    },
    #[error(transparent)]
    Intake(#[from] IntakeError),
}

impl RetryError {
    pub fn reason(&self) -> &'static str {
        match self {
            RetryError::NotReturned { .. } => "retry_not_returned",
            RetryError::Loaded { .. } => "retry_already_loaded",
            RetryError::Intake(e) => e.reason(),
        }
    }
}

/// Puts a returned file back into the inbox so it is checked again (after its cause, such as
/// a stale register, was fixed). Safe to repeat: the ledger entry is forgotten first, then
/// the file moves; a crash between the two leaves a file that `retry` takes again.
pub fn retry(env: &mut Env<'_>, file: &Path) -> Result<PathBuf, RetryError> {
    let returned = env
        .dirs
        .returned
        .canonicalize()
        .map_err(|e| IntakeError::from(at(&env.dirs.returned)(e)))?;
    let canon = file
        .canonicalize()
        .map_err(|e| IntakeError::from(at(file)(e)))?;
    if canon.parent() != Some(returned.as_path()) {
        return Err(RetryError::NotReturned {
            file: file.to_path_buf(),
            returned,
        });
    }
    let sha256 = hash_file(&canon)?;
    if let Some(e) = env.store.ledger_get(&sha256).map_err(IntakeError::from)? {
        if e.status != LedgerStatus::Rejected {
            return Err(RetryError::Loaded {
                file: file.to_path_buf(),
                status: e.status,
            });
        }
        env.store
            .ledger_forget_rejected(&sha256)
            .map_err(IntakeError::from)?;
    }
    let dest = env.dirs.inbox.join(file_name(&canon));
    fsutil::move_file(&canon, &dest).map_err(|e| IntakeError::from(at(&canon)(e)))?;
    tracing::info!(sha = %&sha256[..12], "returned file put back into the inbox");
    Ok(dest)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// SHA-256 of a file, streaming.
pub fn hash_file(path: &Path) -> Result<String, IntakeError> {
    let mut f = std::fs::File::open(path).map_err(at(path))?;
    let mut h = Sha256::new();
    let mut buf = Zeroizing::new(vec![0u8; 1 << 16]);
    loop {
        let n = f.read(&mut buf).map_err(at(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Hashes and counts what passes through, to prove the file read for checking is the file
/// hashed, and how long it was.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Opens an inbox file for the intake ([`inbox::Opened::open`]: no link followed, no FIFO
/// waited on, nothing but a regular file of one name).
fn open_inbox_file(path: &Path) -> Result<inbox::Opened, IntakeError> {
    crashpoint::pause("before-open");
    inbox::Opened::open(path).map_err(|e| match e {
        inbox::OpenError::Refused { reason, what } => IntakeError::Refused {
            file: path.to_path_buf(),
            reason,
            what,
        },
        inbox::OpenError::Io(e) => at(path)(e).into(),
    })
}

/// Where an input goes: `dir/NAME`, or `dir/STEM.h.EXT` when a different file of the same name
/// is already there.
fn destination(dir: &Path, name: &str, short: &str) -> PathBuf {
    let plain = dir.join(name);
    if !plain.exists() {
        return plain;
    }
    let p = Path::new(name);
    let stem = p.file_stem().unwrap_or_default().to_string_lossy();
    match p.extension() {
        Some(ext) => dir.join(format!("{stem}.{short}.{}", ext.to_string_lossy())),
        None => dir.join(format!("{stem}.{short}")),
    }
}

/// What the checking thread hands back at the end.
struct Checked {
    rows: u64,
    /// Rows with no value in any field (blank lines, a spreadsheet's rows of commas):
    /// skipped, not rows.
    empty_rows: u64,
    rejections: Vec<Rejection>,
    problems: Vec<FileProblem>,
}

/// Fees of the records a file added, per claim month, institution and vaccine.
#[derive(Default)]
struct FeeTally {
    by_key: std::collections::HashMap<String, (i64, i64)>,
    key: String,
}

impl FeeTally {
    fn add(&mut self, r: &StoredRecord) {
        // One reused key buffer: no allocation per row once a group exists.
        self.key.clear();
        for part in [&r.claim_month, &r.institution, &r.vaccine] {
            self.key.push_str(part);
            self.key.push('\u{1f}');
        }
        match self.by_key.get_mut(self.key.as_str()) {
            Some((n, total)) => {
                *n += 1;
                *total += r.fee;
            }
            None => {
                self.by_key.insert(self.key.clone(), (1, r.fee));
            }
        }
    }

    fn lines(&self) -> Vec<kenko_store::FeeLine> {
        let mut out: Vec<kenko_store::FeeLine> = self
            .by_key
            .iter()
            .map(|(k, &(count, total_fee))| {
                let mut parts = k.split('\u{1f}');
                let mut next = || parts.next().unwrap_or_default().to_string();
                kenko_store::FeeLine {
                    claim_month: next(),
                    institution: next(),
                    vaccine: next(),
                    count,
                    total_fee,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.claim_month, &a.institution, &a.vaccine).cmp(&(
                &b.claim_month,
                &b.institution,
                &b.vaccine,
            ))
        });
        out
    }
}

/// Processes one complete file.
pub fn process_file(env: &mut Env<'_>, path: &Path) -> Result<FileSummary, IntakeError> {
    let started = Instant::now();
    let name = file_name(path);
    let span = tracing::info_span!("intake", file = %name);
    let _guard = span.enter();

    let opened = open_inbox_file(path)?;
    let mut hashing = HashingReader {
        inner: std::io::BufReader::with_capacity(1 << 16, &opened.file),
        hasher: Sha256::new(),
        read: 0,
    };
    let mut reader = RecordReader::new(&mut hashing).map_err(|e| read_error(path, e))?;
    let encoding = reader.encoding();
    let crlf = reader.crlf();

    // The header decides whether there is anything to check at all.
    let (header, problems) = read_header(&mut reader, path)?;

    // One pass over the file: the hash is known at the end, and a file whose bytes turn out
    // to be in the ledger is rolled back before anything is written for it.
    let batch_rows = env.store.batch_rows().max(1);
    let mut tx = env.store.begin_intake(&name)?;
    let mut checked = Checked {
        rows: 0,
        empty_rows: 0,
        rejections: Vec::new(),
        problems,
    };
    let mut accepted = 0u64;
    let mut dup_rejections = Vec::new();
    let mut fees = FeeTally::default();
    // Time the store spent inserting, for the log: tells a slow database from slow checking.
    let mut store_busy = Duration::ZERO;
    if let Some(header) = header {
        let (register, master, key, today) = (env.register, env.master, env.key, env.today);
        let result: Result<Checked, IntakeError> = std::thread::scope(|s| {
            let (send, recv) = mpsc::sync_channel::<Vec<StoredRecord>>(2);
            // Stored batches go back to the checker to be refilled in place: no allocation
            // per row once the first few batches exist.
            let (give_back, recycled) = mpsc::sync_channel::<Vec<StoredRecord>>(4);
            let checker = std::thread::Builder::new()
                .name("intake-check".into())
                .spawn_scoped(s, move || {
                    let mut checker = Checker::new(header, master, register, key, today);
                    check_rows(&mut reader, &mut checker, key, batch_rows, send, recycled)
                })
                .map_err(|e| IntakeError::Read {
                    file: PathBuf::new(),
                    source: e,
                })?;
            let mut batches = 0u64;
            for batch in recv {
                let t = Instant::now();
                let outcomes = tx.insert_batch(&batch)?;
                store_busy += t.elapsed();
                for (rec, outcome) in batch.iter().zip(outcomes) {
                    let reason = match outcome {
                        InsertOutcome::Inserted => {
                            accepted += 1;
                            fees.add(rec);
                            continue;
                        }
                        InsertOutcome::DuplicateInFile => Reason::DuplicateInFile,
                        InsertOutcome::DuplicateOfLoaded => Reason::DuplicateOfLoaded,
                    };
                    dup_rejections.push(Rejection {
                        row: rec.row_no as u64,
                        resident_no: u64::try_from(rec.resident_no).ok(),
                        issues: vec![Issue {
                            reason,
                            column: Some(Column::VaccinatedOn),
                        }],
                    });
                }
                let _ = give_back.try_send(batch);
                batches += 1;
                if batches == 1 {
                    crashpoint::hit("rows-inserted");
                }
            }
            checker.join().expect("the checking thread does not panic")
        });
        let mut c = result.map_err(|e| match e {
            IntakeError::Read { source, .. } => IntakeError::Read {
                file: path.to_path_buf(),
                source,
            },
            e => e,
        })?;
        c.problems.splice(0..0, checked.problems.drain(..));
        checked = c;
    }
    // The rest of the file (after a file-level problem) still counts for the hash.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(at(path))?;
    let sha256 = hex::encode(std::mem::take(&mut hashing.hasher).finalize());
    let read = hashing.read;
    let short = &sha256[..12];
    crashpoint::pause("file-read");
    // What was checked must be what is committed and moved: a file written to or replaced
    // while it was read is left in the inbox, nothing of it loaded (the transaction rolls
    // back), and taken whole once it is complete.
    if !opened.unchanged(path, read).map_err(at(path))? {
        return Err(IntakeError::Changed {
            file: path.to_path_buf(),
        });
    }
    if let Some(entry) = tx.known(&sha256)? {
        drop(tx);
        return finish_known(env, path, &opened, &name, entry);
    }
    tracing::info!(sha = %short, "file read");

    let file_rejected = !checked.problems.is_empty();
    let mut rejections = checked.rejections;
    rejections.extend(dup_rejections);
    rejections.sort_by_key(|r| r.row);
    let rows = checked.rows;
    if file_rejected {
        accepted = 0;
    }
    let rejected = if file_rejected {
        rows
    } else {
        rejections.len() as u64
    };
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for p in &checked.problems {
        *reasons.entry(p.reason.code().to_string()).or_default() += 1;
    }
    if !file_rejected {
        // Rows per reason: a row with two problems of one kind (a lot and a dose on a
        // pre-screening row) counts once for it.
        for r in &rejections {
            let mut kinds: Vec<Reason> = r.issues.iter().map(|i| i.reason).collect();
            kinds.sort();
            kinds.dedup();
            for k in kinds {
                *reasons.entry(k.code().to_string()).or_default() += 1;
            }
        }
    }
    let loaded = accepted > 0;
    let dest_dir = if loaded {
        &env.dirs.processed
    } else {
        &env.dirs.returned
    };
    let dest = destination(dest_dir, &name, short);
    let stem = Path::new(&name)
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();

    // 1. Reports, before the commit.
    let return_report = (rejected > 0 || file_rejected).then(|| {
        env.dirs
            .reports
            .join("returns")
            .join(format!("{stem}.{short}.return.csv"))
    });
    if let Some(p) = &return_report {
        let bytes = if file_rejected {
            report::return_report_bytes(&[], &checked.problems, encoding, crlf)
        } else {
            report::return_report_bytes(&rejections, &[], encoding, crlf)
        };
        // Under a hidden name until the commit: a report never claims an outcome that did
        // not commit (a full disk, a register changed meanwhile).
        let pending = pending_path(p);
        fsutil::atomic_write(&pending, &bytes).map_err(at(&pending))?;
        if let Some(out) = env.publish {
            out.pending(&env.dirs.relative(p), &bytes)?;
        }
    }
    let summary = FileSummary {
        file: name.clone(),
        sha256: sha256.clone(),
        encoding: encoding.label().to_string(),
        disposition: if loaded {
            Disposition::Loaded
        } else {
            Disposition::Returned
        },
        destination: env.dirs.relative(&dest),
        rows,
        accepted,
        rejected,
        reasons,
        empty_rows: checked.empty_rows,
        file_errors: checked.problems,
        return_report: return_report.as_ref().map(|p| env.dirs.relative(p)),
    };
    let summary_path = env
        .dirs
        .reports
        .join("intake")
        .join(format!("{stem}.{short}.json"));
    let json = serde_json::to_vec_pretty(&summary).expect("summary serialises");
    let pending = pending_path(&summary_path);
    fsutil::atomic_write(&pending, &json).map_err(at(&pending))?;
    if let Some(out) = env.publish {
        out.pending(&env.dirs.relative(&summary_path), &json)?;
    }
    crashpoint::hit("after-reports");

    // 2. The commit.
    let entry = LedgerEntry {
        sha256: sha256.clone(),
        file_name: name.clone(),
        status: if loaded {
            LedgerStatus::Loaded
        } else {
            LedgerStatus::Rejected
        },
        encoding: encoding.label().to_string(),
        rows: rows as i64,
        accepted: accepted as i64,
        rejected: rejected as i64,
        reasons_json: serde_json::to_string(&summary.reasons).expect("map serialises"),
        destination: summary.destination.clone(),
        moved: false,
        origin: s3inbox::origin_of(path),
        register_generation: Some(env.register.generation()),
        holder: Some(env.dirs.holder().map_err(at(&env.dirs.keys))?),
    };
    if file_rejected {
        drop(tx);
        env.store.ledger_insert_rejected(&entry)?;
    } else {
        tx.commit(&entry, &fees.lines())?;
    }
    crashpoint::hit("after-commit");
    publish_reports(env, &name, short)?;

    // 3. The move.
    crashpoint::pause("after-commit");
    move_input(env, path, &opened, &sha256, &dest)?;
    crashpoint::hit("after-move");
    env.store.ledger_mark_moved(&sha256)?;

    Event::FileTaken {
        summary: &summary,
        elapsed: started.elapsed(),
        store_busy,
    }
    .emit();
    Ok(summary)
}

/// What `intake check` found in a file without loading it.
#[derive(Debug, Serialize)]
pub struct CheckSummary {
    pub file: String,
    pub encoding: String,
    pub rows: u64,
    /// Rows that pass every check that does not need the store (duplicates are not looked for).
    pub passing: u64,
    pub rejected: u64,
    pub reasons: BTreeMap<String, u64>,
    /// Rows with no value in any field, skipped.
    #[serde(skip_serializing_if = "is_zero")]
    pub empty_rows: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_errors: Vec<FileProblem>,
}

/// Checks a file against the register and master without loading anything (for a maintainer
/// who wants to know what an institution's file would return, and to measure the checking
/// alone). Duplicates are not detected: that needs the store.
pub fn check_file(
    register: &RegisterIndex,
    master: &VaccineMaster,
    key: &DataKey,
    today: NaiveDate,
    path: &Path,
) -> Result<CheckSummary, IntakeError> {
    let file = std::fs::File::open(path).map_err(at(path))?;
    let mut reader = RecordReader::new(std::io::BufReader::with_capacity(1 << 16, file))
        .map_err(|e| read_error(path, e))?;
    let encoding = reader.encoding().label().to_string();
    let (header, mut problems) = read_header(&mut reader, path)?;
    let mut checked = Checked {
        rows: 0,
        empty_rows: 0,
        rejections: Vec::new(),
        problems: Vec::new(),
    };
    let mut passing = 0u64;
    if let Some(header) = header {
        let c: Result<Checked, IntakeError> = std::thread::scope(|s| {
            let (send, recv) = mpsc::sync_channel::<Vec<StoredRecord>>(2);
            let (give_back, recycled) = mpsc::sync_channel::<Vec<StoredRecord>>(4);
            let drain = s.spawn(move || {
                let mut n = 0u64;
                for batch in recv {
                    n += batch.len() as u64;
                    let _ = give_back.try_send(batch);
                }
                n
            });
            let mut checker = Checker::new(header, master, register, key, today);
            let c = check_rows(&mut reader, &mut checker, key, 2048, send, recycled);
            passing = drain.join().expect("the drain thread does not panic");
            c
        });
        checked = c?;
    }
    problems.extend(checked.problems);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for p in &problems {
        *reasons.entry(p.reason.code().to_string()).or_default() += 1;
    }
    for r in &checked.rejections {
        let mut kinds: Vec<Reason> = r.issues.iter().map(|i| i.reason).collect();
        kinds.sort();
        kinds.dedup();
        for k in kinds {
            *reasons.entry(k.code().to_string()).or_default() += 1;
        }
    }
    Ok(CheckSummary {
        file: file_name(path),
        encoding,
        rows: checked.rows,
        passing,
        rejected: checked.rejections.len() as u64,
        reasons,
        empty_rows: checked.empty_rows,
        file_errors: problems,
    })
}

/// Reads the header row: the column map, or the file-level problems that stop the file.
fn read_header<R: Read>(
    reader: &mut RecordReader<R>,
    path: &Path,
) -> Result<(Option<Header>, Vec<FileProblem>), IntakeError> {
    match reader.advance() {
        Ok(false) => Ok((None, vec![FileProblem::of(Reason::EmptyFile)])),
        Ok(true) => match Header::resolve(reader.fields()) {
            Ok(h) => Ok((Some(h), Vec::new())),
            Err(hp) => Ok((
                None,
                hp.into_iter()
                    .map(|p| FileProblem {
                        reason: p.reason,
                        column: Some(p.column).filter(|c| !c.is_empty()),
                        offset: None,
                        line: None,
                        row: Some(1),
                    })
                    .collect(),
            )),
        },
        Err(DecodeError::Undecodable {
            offset, line, row, ..
        }) => Ok((None, vec![undecodable(offset, line, row)])),
        Err(DecodeError::TooLong { row }) => Ok((
            None,
            vec![FileProblem {
                row: Some(row),
                ..FileProblem::of(Reason::RowTooLong)
            }],
        )),
        Err(DecodeError::Io(e)) => Err(IntakeError::Read {
            file: path.to_path_buf(),
            source: e,
        }),
    }
}

fn undecodable(offset: u64, line: u64, row: u64) -> FileProblem {
    FileProblem {
        reason: Reason::UndecodableBytes,
        column: None,
        offset: Some(offset),
        line: Some(line),
        row: Some(row),
    }
}

fn read_error(path: &Path, e: DecodeError) -> IntakeError {
    match e {
        DecodeError::Io(source) => IntakeError::Read {
            file: path.to_path_buf(),
            source,
        },
        // Only reading can fail before any byte is decoded.
        DecodeError::Undecodable { .. } | DecodeError::TooLong { .. } => IntakeError::Read {
            file: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        },
    }
}

/// Moves the file the intake read (`opened`, whose checked bytes hash to `sha256`) from the
/// inbox to `dest`. The rename goes by path, so what it moved is checked against the
/// descriptor: a file swapped in after the check goes back to the inbox to be taken on its
/// own and `dest` gets the checked bytes from the descriptor; a file written to after the
/// check goes back whole as a new delivery (its rows already loaded are then duplicates, the
/// new ones are loaded) and `dest` keeps the checked bytes. Nothing is lost either way.
fn move_input(
    env: &Env<'_>,
    path: &Path,
    opened: &inbox::Opened,
    sha256: &str,
    dest: &Path,
) -> Result<(), IntakeError> {
    fsutil::move_file(path, dest).map_err(at(path))?;
    if !opened.is_at(dest).map_err(at(dest))? {
        let back = put_back(env, dest, path)?;
        copy_checked_bytes(opened, sha256, dest)?;
        Event::FileChangedAfterCheck {
            replaced: true,
            redelivered_as: &file_name(&back),
        }
        .emit();
    } else if !opened.same_content(opened.opened_len()).map_err(at(dest))? {
        let back = redeliver_copy(env, dest, path)?;
        keep_checked_prefix(opened, sha256, dest)?;
        Event::FileChangedAfterCheck {
            replaced: false,
            redelivered_as: &file_name(&back),
        }
        .emit();
    }
    // Retention counts an original's period from when kenko took it, not from whatever time
    // the uploader left on it (a copy with times preserved can be years old). A file kenko
    // may not re-time (another owner) keeps its own; that never stops the intake.
    // The original holds names, addresses and My Numbers in clear: the agent's alone (0600),
    // whatever mode the uploader gave it.
    if let Err(e) = std::fs::File::open(dest).and_then(|f| {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.set_modified(std::time::SystemTime::now())
    }) {
        tracing::warn!(error = %e, "the original's mode and time were not set (another owner); retention counts from the time it has");
    }
    // The marker, and the origin of a file staged from the S3 inbox (in the ledger by now).
    for side in [inbox::done_marker(path), s3inbox::origin_path(path)] {
        match std::fs::remove_file(&side) {
            Ok(()) => fsutil::sync_dir(&env.dirs.inbox).map_err(at(&env.dirs.inbox))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&side)(e).into()),
        }
    }
    Ok(())
}

/// Where a report waits for its file's commit: `.NAME.pending` beside it (hidden, so no one
/// picks it up as final).
fn pending_path(report: &Path) -> PathBuf {
    let name = report.file_name().unwrap_or_default().to_string_lossy();
    report.with_file_name(format!(".{name}.pending"))
}

/// Puts the committed file's pending reports (its summary, its return report) in place.
fn publish_reports(env: &Env<'_>, file_name: &str, short: &str) -> Result<(), IntakeError> {
    let stem = Path::new(file_name)
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    for report in [
        env.dirs
            .reports
            .join("returns")
            .join(format!("{stem}.{short}.return.csv")),
        env.dirs
            .reports
            .join("intake")
            .join(format!("{stem}.{short}.json")),
    ] {
        let pending = pending_path(&report);
        match fsutil::move_file(&pending, &report) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&pending)(e).into()),
        }
    }
    Ok(())
}

/// A free name in the inbox for a file going back: its own name, else `STEM.again-N.EXT`.
fn free_inbox_name(env: &Env<'_>, path: &Path) -> PathBuf {
    let name = file_name(path);
    let plain = env.dirs.inbox.join(&name);
    if plain.symlink_metadata().is_err() {
        return plain;
    }
    let p = Path::new(&name);
    let stem = p
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let ext = p
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1u32..)
        .map(|n| env.dirs.inbox.join(format!("{stem}.again-{n}{ext}")))
        .find(|p| p.symlink_metadata().is_err())
        .expect("a free name")
}

/// Moves a file that was swapped in after the check from `dest` back into the inbox.
fn put_back(env: &Env<'_>, dest: &Path, path: &Path) -> Result<PathBuf, IntakeError> {
    let back = free_inbox_name(env, path);
    fsutil::move_file(dest, &back).map_err(at(dest))?;
    Ok(back)
}

/// Puts a copy of `dest` as it is now into the inbox: a file written to after its check is a
/// new delivery.
fn redeliver_copy(env: &Env<'_>, dest: &Path, path: &Path) -> Result<PathBuf, IntakeError> {
    let back = free_inbox_name(env, path);
    let mut src = std::fs::File::open(dest).map_err(at(dest))?;
    fsutil::atomic_write_with(&back, 0o600, |w| std::io::copy(&mut src, w).map(|_| ()))
        .map_err(at(&back))?;
    Ok(back)
}

/// Writes the checked bytes, read again from the descriptor, to `dest` (whose file was
/// swapped for another after the check). They must still hash to what was committed.
fn copy_checked_bytes(
    opened: &inbox::Opened,
    sha256: &str,
    dest: &Path,
) -> Result<(), IntakeError> {
    let mut h = Sha256::new();
    let mut src = std::io::Read::take(&opened.file, opened.opened_len());
    std::io::Seek::rewind(&mut &opened.file).map_err(at(dest))?;
    fsutil::atomic_write_with(dest, 0o600, |w| {
        let mut buf = Zeroizing::new(vec![0u8; 1 << 16]);
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            h.update(&buf[..n]);
            std::io::Write::write_all(w, &buf[..n])?;
        }
    })
    .map_err(at(dest))?;
    if hex::encode(h.finalize()) != sha256 {
        tracing::error!(file = %file_name(dest), "the original in processed/ differs from the bytes that were checked (the file was written to as well as replaced)");
    }
    Ok(())
}

/// Cuts `dest` (written to after its check) back to the checked length when its first bytes
/// are still the checked ones (the usual case: rows appended); otherwise leaves it and says so.
fn keep_checked_prefix(
    opened: &inbox::Opened,
    sha256: &str,
    dest: &Path,
) -> Result<(), IntakeError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dest)
        .map_err(at(dest))?;
    let mut h = Sha256::new();
    let mut src = std::io::Read::take(&f, opened.opened_len());
    let mut buf = Zeroizing::new(vec![0u8; 1 << 16]);
    loop {
        let n = src.read(&mut buf).map_err(at(dest))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    if hex::encode(h.finalize()) == sha256 {
        f.set_len(opened.opened_len()).map_err(at(dest))?;
        f.sync_all().map_err(at(dest))?;
    } else {
        tracing::error!(file = %file_name(dest), "the original in processed/ differs from the bytes that were checked (it was rewritten, not appended to)");
    }
    Ok(())
}

/// A file whose bytes are already in the ledger: either a crash left its move undone, or it
/// is the very S3 object version the ledger took (another agent on the same inbox committed
/// it first, or a crash came after the commit): finish it; otherwise it is a re-delivery
/// (skip it).
fn finish_known(
    env: &mut Env<'_>,
    path: &Path,
    opened: &inbox::Opened,
    name: &str,
    entry: LedgerEntry,
) -> Result<FileSummary, IntakeError> {
    let short = &entry.sha256[..12];
    let reasons: BTreeMap<String, u64> =
        serde_json::from_str(&entry.reasons_json).unwrap_or_default();
    let origin = s3inbox::origin_of(path);
    let same_delivery = origin.is_some() && entry.origin == origin;
    // Only the agent whose inbox held the file finishes its move; the same bytes in another
    // agent's inbox are a second delivery.
    let ours = match &entry.holder {
        None => true,
        Some(h) => *h == env.dirs.holder().map_err(at(&env.dirs.keys))?,
    };
    let (disposition, dest) = if (!entry.moved && entry.file_name == name && ours) || same_delivery
    {
        // A crash after the commit may have left its reports pending.
        publish_reports(env, &entry.file_name, short)?;
        let dest = env.dirs.root.join(&entry.destination);
        move_input(env, path, opened, &entry.sha256, &dest)?;
        env.store.ledger_mark_moved(&entry.sha256)?;
        Event::FileRecovered.emit();
        (Disposition::Recovered, dest)
    } else {
        let dest = destination(&env.dirs.processed.join("duplicates"), name, short);
        move_input(env, path, opened, &entry.sha256, &dest)?;
        Event::DuplicateSkipped {
            first_delivery: &entry.file_name,
        }
        .emit();
        (Disposition::Duplicate, dest)
    };
    Ok(FileSummary {
        file: name.to_string(),
        sha256: entry.sha256.clone(),
        encoding: entry.encoding,
        disposition,
        destination: env.dirs.relative(&dest),
        rows: entry.rows as u64,
        accepted: entry.accepted as u64,
        rejected: entry.rejected as u64,
        reasons,
        empty_rows: 0,
        file_errors: Vec::new(),
        return_report: None,
    })
}

/// The checking thread: decode, check, encrypt, and hand batches to the store.
fn check_rows<R: Read>(
    reader: &mut RecordReader<R>,
    checker: &mut Checker<'_>,
    key: &DataKey,
    batch_rows: usize,
    send: mpsc::SyncSender<Vec<StoredRecord>>,
    recycled: mpsc::Receiver<Vec<StoredRecord>>,
) -> Result<Checked, IntakeError> {
    let mut out = Checked {
        rows: 0,
        empty_rows: 0,
        rejections: Vec::new(),
        problems: Vec::new(),
    };
    let mut batch: Vec<StoredRecord> = Vec::with_capacity(batch_rows);
    let mut n = 0usize;
    loop {
        match reader.advance() {
            Ok(true) => {}
            Ok(false) => break,
            Err(DecodeError::Undecodable {
                offset, line, row, ..
            }) => {
                out.problems.push(undecodable(offset, line, row));
                return Ok(out);
            }
            // Skipped by the reader without being held: the row is returned, the rest goes on.
            Err(DecodeError::TooLong { row }) => {
                out.rows += 1;
                out.rejections.push(Rejection {
                    row,
                    resident_no: None,
                    issues: vec![Issue {
                        reason: Reason::RowTooLong,
                        column: None,
                    }],
                });
                continue;
            }
            Err(DecodeError::Io(source)) => {
                return Err(IntakeError::Read {
                    file: PathBuf::new(),
                    source,
                });
            }
        }
        let row = reader.row();
        let mut slots = [""; 32];
        let fields = reader.fields_into(&mut slots);
        // A blank line, or a row of only separators (what a spreadsheet exports below the
        // data), is not a row: skipped and counted.
        if fields.iter().all(|f| f.trim().is_empty()) {
            out.empty_rows += 1;
            continue;
        }
        out.rows += 1;
        match checker.check(&fields) {
            Ok(record) => {
                if n == batch.len() {
                    batch.push(StoredRecord::default());
                }
                fill_stored(&mut batch[n], record, row, key);
                n += 1;
                if n == batch_rows {
                    let next = recycled
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(batch_rows));
                    let full = std::mem::replace(&mut batch, next);
                    n = 0;
                    if send.send(full).is_err() {
                        // The store side stopped (its error is what the caller reports).
                        return Ok(out);
                    }
                }
            }
            Err(e) => out.rejections.push(Rejection {
                row,
                resident_no: e.resident_no,
                issues: e.issues,
            }),
        }
    }
    if out.rows == 0 {
        out.problems.push(FileProblem::of(Reason::NoDataRows));
    }
    batch.truncate(n);
    if !batch.is_empty() {
        let _ = send.send(batch);
    }
    Ok(out)
}

/// Fills a (recycled) stored record from a checked row, reusing its buffers. Whatever a
/// buffer held before is overwritten, and every buffer is zeroized when the record is
/// finally dropped (`ZeroizeOnDrop`).
fn fill_stored(out: &mut StoredRecord, r: Record<'_>, row: u64, key: &DataKey) {
    fn set(dst: &mut String, src: &str) {
        dst.clear();
        dst.push_str(src);
    }
    let resident_no = r.resident_no as i64;
    out.row_no = row as i64;
    out.resident_no = resident_no;
    out.mynumber_token = r.mynumber_token;
    match &r.mynumber {
        Some(n) => {
            let ascii = Zeroizing::new(n.ascii());
            let ct = out.mynumber_ct.get_or_insert_with(Vec::new);
            key.seal_into(resident_no, &ascii[..], ct);
        }
        None => out.mynumber_ct = None,
    }
    write_iso_date(&mut out.vaccinated_on, r.vaccinated_on);
    set(&mut out.institution, &r.institution);
    out.age = r.age as i32;
    write_year_month(
        &mut out.claim_month,
        r.claim_month.year,
        r.claim_month.month,
    );
    out.exam = i16::from(r.exam.code());
    set(&mut out.lot_no, &r.lot_no);
    set(&mut out.vaccine, &r.vaccine);
    out.moved_in = r.moved_in;
    set(&mut out.prescreen_doctor, &r.prescreen_doctor);
    set(&mut out.vaccinating_doctor, &r.vaccinating_doctor);
    out.payment = i16::from(r.payment.code());
    out.fee = i64::from(r.fee);
    out.dose_centi_ml = r.dose_centi_ml.map(|d| d as i32);
    for (dst, src) in out.remarks.iter_mut().zip(&r.remarks) {
        set(dst, src);
    }
    out.dup_key = kenko_store::dup_key(resident_no, &out.vaccinated_on, &out.vaccine, out.exam, 0);
}

/// Writes `YYYY-MM` (as `YearMonth`'s Display does) without a format string.
fn write_year_month(s: &mut String, year: i32, month: u32) {
    s.clear();
    push_digits(s, [(year as u32, 4), (month, 2)]);
}

/// Writes `YYYY-MM-DD` without going through a format string (this runs once per row).
fn write_iso_date(s: &mut String, d: NaiveDate) {
    use chrono::Datelike;
    s.clear();
    push_digits(s, [(d.year() as u32, 4), (d.month(), 2), (d.day(), 2)]);
}

fn push_digits<const N: usize>(s: &mut String, parts: [(u32, usize); N]) {
    for (v, width) in parts {
        if width == 2 {
            s.push('-');
        }
        let digits = [v / 1000 % 10, v / 100 % 10, v / 10 % 10, v % 10];
        for d in &digits[4 - width..] {
            s.push(char::from(b'0' + *d as u8));
        }
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
    fn iso_dates_are_zero_padded() {
        let mut s = String::from("stale");
        write_iso_date(&mut s, NaiveDate::from_ymd_opt(987, 3, 4).unwrap());
        assert_eq!(s, "0987-03-04");
        write_iso_date(&mut s, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap());
        assert_eq!(s, "2024-12-31");
        write_year_month(&mut s, 2024, 3);
        assert_eq!(
            s,
            kenko_intake::YearMonth::new(2024, 3).unwrap().to_string()
        );
    }
}
