//! The long-running agent's intake loop: a scan at start-up (files that arrived while the
//! agent was down), then `notify` events on the inbox, with a re-scan after the settle time
//! for files that were still being written. Intake work is blocking (SQLite, PostgreSQL,
//! fsync), so the loop runs on its own thread; tokio serves metrics beside it.
//!
//! A file that fails backs off on its own (doubling from [`FIRST_BACKOFF`] to
//! [`MAX_BACKOFF`]); the other files are still taken as they come. A round that cannot run at
//! all (store down) is one failure, retried after [`ROUND_RETRY`] with a new connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::session::{OpenError, Register, Session};
use super::{Gate, IntakeError, RunSummary};
use crate::config::Config;
use crate::telemetry::Event;

/// How long a failed file waits before its first retry.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest a failing file waits between tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// How long the loop waits after a round that could not run (store down).
pub const ROUND_RETRY: Duration = Duration::from_secs(5);
/// Failures in a row after which a file makes the inbox "stuck": `/readyz` answers 503 and
/// `kenko_intake_files_stuck` counts it, until it is taken or leaves the inbox.
pub const STUCK_AFTER: u32 = 3;

/// Whether an inbox event can make a file ready. The agent's own reads (open, read, close
/// without writing) are events too: waking on them made a failing file's round wake the
/// next one at once.
pub fn wakes(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch the inbox {path}: {message}")]
    Watch { path: String, message: String },
    #[error("cannot create the data folders under {path}: {message}")]
    Dirs { path: String, message: String },
    #[error(transparent)]
    Open(#[from] OpenError),
}

impl WatchError {
    pub fn reason(&self) -> &'static str {
        match self {
            WatchError::Watch { .. } => "inbox_watch_failed",
            WatchError::Dirs { .. } => "io_failed",
            WatchError::Open(e) => e.reason(),
        }
    }
}

/// Why a round of the loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Inbox(#[from] super::s3inbox::S3InboxError),
}

impl RoundError {
    pub fn reason(&self) -> &'static str {
        match self {
            RoundError::Open(e) => e.reason(),
            RoundError::Intake(e) => e.reason(),
            RoundError::Inbox(e) => e.reason(),
        }
    }
}

/// What one round did, for the loop to decide how long to wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    /// Every ready file was taken; `settling` says whether one is still being written.
    Done { settling: bool },
    /// Some files failed and back off; the earliest is due in `next_retry`.
    FilesFailed {
        settling: bool,
        next_retry: Option<Duration>,
    },
    /// A file failed because the store went away: reconnect before the next round.
    StoreLost,
}

/// Per-file back-off: a failed file is left alone until its time comes.
#[derive(Debug)]
pub struct Backoff {
    /// Per file: when it is due, the wait before that, failures in a row.
    files: HashMap<String, (Instant, Duration, u32)>,
    first: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(FIRST_BACKOFF)
    }
}

impl Backoff {
    /// A back-off whose first wait is `first` (`[intake] retry_secs`), doubling to
    /// [`MAX_BACKOFF`].
    pub fn new(first: Duration) -> Backoff {
        Backoff {
            files: HashMap::new(),
            first: first.min(MAX_BACKOFF),
        }
    }

    /// Files that failed [`STUCK_AFTER`] times in a row or more.
    pub fn stuck(&self) -> usize {
        self.files
            .values()
            .filter(|(_, _, n)| *n >= STUCK_AFTER)
            .count()
    }

    /// The soonest a backing-off file is due, from now.
    pub fn next_due(&self) -> Option<Duration> {
        let now = Instant::now();
        self.files
            .values()
            .map(|(due, _, _)| due.saturating_duration_since(now))
            .min()
    }

    /// Files currently backing off.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Forgets files that left the inbox (taken by another agent, removed by an operator).
    pub fn forget_gone(&mut self, ready: &[std::path::PathBuf]) {
        self.files.retain(|name, _| {
            ready
                .iter()
                .any(|p| p.file_name().is_some_and(|n| n == name.as_str()))
        });
    }
}

impl Gate for Backoff {
    fn take(&mut self, file: &str) -> bool {
        self.files
            .get(file)
            .is_none_or(|(due, _, _)| Instant::now() >= *due)
    }

    fn failed(&mut self, file: &str) -> Option<Duration> {
        let (wait, n) = match self.files.get(file) {
            Some((_, last, n)) => ((*last * 2).min(MAX_BACKOFF), n + 1),
            None => (self.first, 1),
        };
        self.files
            .insert(file.to_string(), (Instant::now() + wait, wait, n));
        Some(wait)
    }

    fn taken(&mut self, file: &str) {
        self.files.remove(file);
    }
}

/// Runs until `stop` is set. Errors of one round (store down, register missing) are logged
/// and counted, and the loop tries again: an agent that exits on a transient failure pages
/// someone for nothing. A master or key file that cannot be read stops it at start-up.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> Result<(), WatchError> {
    let dirs = config.dirs();
    dirs.create_all().map_err(|e| WatchError::Dirs {
        path: dirs.root.display().to_string(),
        message: e.to_string(),
    })?;
    // Fail fast on what will not fix itself.
    config
        .load_master()
        .map_err(|e| WatchError::Open(e.into()))?;
    // An existing key file is checked here (a missing one is the session's to decide: made
    // for an empty store, refused for one with data); a KMS key is unwrapped by the session.
    if config.kms_key_arn.is_none() && config.data_key_file.exists() {
        config.load_key().map_err(|e| WatchError::Open(e.into()))?;
    }
    let (tx, rx) = mpsc::channel();
    let watch_error = |e: notify::Error| WatchError::Watch {
        path: dirs.inbox.display().to_string(),
        message: e.to_string(),
    };
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.as_ref().is_ok_and(|e| wakes(&e.kind)) {
            let _ = tx.send(true);
        }
    })
    .map_err(watch_error)?;
    watcher
        .watch(&dirs.inbox, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;
    tracing::info!(inbox = %dirs.inbox.display(), "watching the inbox");

    let mut session: Option<Session> = None;
    let mut backoff = Backoff::new(config.retry_first);
    // The folder inbox wakes the loop by its events; an S3 inbox is listed on a schedule.
    let idle_wait = || match (&config.s3_inbox, &config.inbox_schedule) {
        (Some(_), Some(schedule)) => schedule.wait_from(kenko_intake::clock::now()),
        (Some(_), None) => config.inbox_poll,
        (None, _) => Duration::from_secs(60),
    };
    while !stop.load(Ordering::SeqCst) {
        // After a round that could not run, its wait is kept: an inbox event does not end it.
        let mut patient = false;
        let wait = match round(config, &mut session, &mut backoff) {
            Ok(Round::Done { settling: true }) => config.settle.max(Duration::from_millis(200)),
            Ok(Round::Done { settling: false }) => idle_wait(),
            Ok(Round::FilesFailed {
                settling,
                next_retry,
            }) => {
                let idle = if settling {
                    config.settle.max(Duration::from_millis(200))
                } else {
                    idle_wait()
                };
                next_retry.map_or(idle, |d| d.min(idle))
            }
            Ok(Round::StoreLost) => {
                session = None;
                patient = true;
                ROUND_RETRY.max(config.settle)
            }
            Err(e) => {
                patient = true;
                super::status::after_failure(e.reason());
                Event::RoundFailed {
                    reason: e.reason(),
                    error: &e,
                }
                .emit();
                session = None;
                ROUND_RETRY.max(config.settle)
            }
        };
        // Wake on any inbox event, on the timer, or for the stop flag every second. An event
        // wakes the loop early, but a backing-off file is not taken before its time.
        let deadline = Instant::now() + wait;
        loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(_) if patient => continue,
                Ok(_) => {
                    // Let a burst of events (create, write, close, rename) arrive first.
                    while rx.recv_timeout(Duration::from_millis(50)).is_ok() {}
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    tracing::info!("intake loop stopped");
    Ok(())
}

/// One pass over the inbox.
pub fn round(
    config: &Config,
    session: &mut Option<Session>,
    backoff: &mut Backoff,
) -> Result<Round, RoundError> {
    // A data directory that cannot be written makes the agent not ready, naming it.
    let dirs = config.dirs();
    if let Err(e) = dirs.probe_writable() {
        super::status::set_unwritable(Some(e.to_string()));
        return Err(RoundError::Intake(e.into()));
    }
    super::status::set_unwritable(None);
    let s = match session {
        Some(s) => {
            s.refresh_register()?;
            s
        }
        None => session.insert(Session::open(config, Register::Load)?),
    };
    // A long-running agent crosses midnight: "today" is asked every round.
    s.today = config.today();
    let (summary, _) = s.round(config.settle, backoff)?;
    let summary: RunSummary = summary;
    let (month, since) = super::status::claim_window(s.today);
    // Counts from the ledger: the same whichever replica answers, and across restarts.
    match s.store.ledger_totals_since(since) {
        Ok(totals) => super::status::after_round(&summary, &month, totals),
        Err(e) => super::status::after_failure(e.reason()),
    }
    if summary.files > 0 {
        tracing::info!(
            files = summary.files,
            accepted = summary.accepted,
            rejected = summary.rejected,
            duplicates = summary.duplicates,
            "inbox round done"
        );
    }
    if summary.store_down {
        return Ok(Round::StoreLost);
    }
    let scan = super::inbox::scan(&s.dirs.inbox, config.settle)
        .map_err(|e| IntakeError::from(crate::fsutil::at(&s.dirs.inbox)(e)))?;
    backoff.forget_gone(&scan.ready);
    crate::metrics::METRICS
        .files_backing_off
        .set(backoff.len() as i64);
    super::status::set_stuck(backoff.stuck());
    let settling = !scan.settling.is_empty();
    Ok(if backoff.is_empty() {
        Round::Done { settling }
    } else {
        Round::FilesFailed {
            settling,
            next_retry: backoff.next_due(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, MetadataKind, ModifyKind};

    #[test]
    fn the_agents_own_reads_do_not_wake_the_loop() {
        for k in [
            EventKind::Access(AccessKind::Open(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
        ] {
            assert!(!wakes(&k), "{k:?}");
        }
        for k in [
            EventKind::Create(CreateKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::To)),
            EventKind::Modify(ModifyKind::Any),
        ] {
            assert!(wakes(&k), "{k:?}");
        }
    }

    #[test]
    fn a_file_is_stuck_after_three_failures_in_a_row_and_not_after_it_is_taken() {
        let mut b = Backoff::new(Duration::from_secs(1));
        assert_eq!(b.failed("a"), Some(Duration::from_secs(1)));
        assert_eq!(b.failed("a"), Some(Duration::from_secs(2)));
        assert_eq!(b.stuck(), 0);
        assert_eq!(b.failed("a"), Some(Duration::from_secs(4)));
        b.failed("b");
        assert_eq!(b.stuck(), 1);
        b.taken("a");
        assert_eq!(b.stuck(), 0);
        assert_eq!(b.len(), 1);
    }
}
