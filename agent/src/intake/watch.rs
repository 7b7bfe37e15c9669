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
#[derive(Debug, Default)]
pub struct Backoff {
    files: HashMap<String, (Instant, Duration)>,
}

impl Backoff {
    /// The soonest a backing-off file is due, from now.
    pub fn next_due(&self) -> Option<Duration> {
        let now = Instant::now();
        self.files
            .values()
            .map(|(due, _)| due.saturating_duration_since(now))
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
            .is_none_or(|(due, _)| Instant::now() >= *due)
    }

    fn failed(&mut self, file: &str) -> Option<Duration> {
        let wait = match self.files.get(file) {
            Some((_, last)) => (*last * 2).min(MAX_BACKOFF),
            None => FIRST_BACKOFF,
        };
        self.files
            .insert(file.to_string(), (Instant::now() + wait, wait));
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
        let _ = tx.send(ev.is_ok());
    })
    .map_err(watch_error)?;
    watcher
        .watch(&dirs.inbox, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;
    tracing::info!(inbox = %dirs.inbox.display(), "watching the inbox");

    let mut session: Option<Session> = None;
    let mut backoff = Backoff::default();
    // The folder inbox wakes the loop by its events; an S3 inbox is listed on a schedule.
    let idle_wait = || match (&config.s3_inbox, &config.inbox_schedule) {
        (Some(_), Some(schedule)) => schedule.wait_from(kenko_intake::clock::now()),
        (Some(_), None) => config.inbox_poll,
        (None, _) => Duration::from_secs(60),
    };
    while !stop.load(Ordering::SeqCst) {
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
                ROUND_RETRY.max(config.settle)
            }
            Err(e) => {
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
