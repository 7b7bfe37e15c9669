//! The long-running agent's intake loop: a scan at start-up (files that arrived while the
//! agent was down), then `notify` events on the inbox, with a re-scan after the settle time
//! for files that were still being written. Intake work is blocking (SQLite, PostgreSQL,
//! fsync), so the loop runs on its own thread; tokio serves metrics beside it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::config::Config;
use crate::intake::{self, Env};
use crate::metrics::METRICS;
use crate::register::RegisterIndex;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch the inbox {path}: {message}")]
    Watch { path: String, message: String },
}

impl WatchError {
    pub fn reason(&self) -> &'static str {
        "inbox_watch_failed"
    }
}

/// Runs until `stop` is set. Errors of one round (store down, register missing) are logged
/// and counted, and the loop tries again: an agent that exits on a transient failure pages
/// someone for nothing.
pub fn run(config: &Config, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let dirs = config.dirs();
    dirs.create_all()?;
    let master = config.load_master()?;
    let key = config.load_key()?;
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let _ = tx.send(ev.is_ok());
    })
    .map_err(|e| WatchError::Watch {
        path: dirs.inbox.display().to_string(),
        message: e.to_string(),
    })?;
    watcher
        .watch(&dirs.inbox, RecursiveMode::NonRecursive)
        .map_err(|e| WatchError::Watch {
            path: dirs.inbox.display().to_string(),
            message: e.to_string(),
        })?;
    tracing::info!(inbox = %dirs.inbox.display(), "watching the inbox");

    let mut store: Option<Box<dyn kenko_store::Store>> = None;
    let mut register: Option<RegisterIndex> = None;
    let retry = Duration::from_secs(5).max(config.settle);
    while !stop.load(Ordering::SeqCst) {
        let wait = match round(config, &dirs, &master, &key, &mut store, &mut register) {
            Ok(settling) if settling => config.settle.max(Duration::from_millis(200)),
            Ok(_) => Duration::from_secs(60),
            Err(e) => {
                METRICS.failures.with_label_values(&[reason_of(&e)]).inc();
                tracing::error!(error = %e, reason = reason_of(&e), "intake round failed; retrying");
                store = None;
                retry
            }
        };
        // Wake on any inbox event, on the settle timer, or for the stop flag every second.
        let deadline = std::time::Instant::now() + wait;
        loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
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

fn reason_of(e: &anyhow::Error) -> &'static str {
    if let Some(e) = e.downcast_ref::<kenko_store::StoreError>() {
        e.reason()
    } else if let Some(e) = e.downcast_ref::<crate::register::RegisterError>() {
        e.reason()
    } else if let Some(e) = e.downcast_ref::<intake::IntakeError>() {
        e.reason()
    } else {
        "intake_round_failed"
    }
}

/// One pass over the inbox. Returns whether some file is still settling.
fn round(
    config: &Config,
    dirs: &intake::Dirs,
    master: &kenko_intake::VaccineMaster,
    key: &crate::crypto::DataKey,
    store: &mut Option<Box<dyn kenko_store::Store>>,
    register: &mut Option<RegisterIndex>,
) -> anyhow::Result<bool> {
    if store.is_none() {
        *store = Some(kenko_store::open(&config.database_url)?);
    }
    let s = store.as_mut().expect("opened above");
    let generation = s.register_generation()?;
    if register.as_ref().map(RegisterIndex::generation) != Some(generation) {
        let idx = RegisterIndex::load(s.as_mut())?;
        METRICS.register_residents.set(idx.len() as i64);
        tracing::info!(residents = idx.len(), "resident register loaded");
        *register = Some(idx);
    }
    let mut env = Env {
        store: s.as_mut(),
        register: register.as_ref().expect("loaded above"),
        master,
        key,
        dirs,
        today: config.today(),
    };
    let summary = intake::run_once(&mut env, config.settle)?;
    if summary.files > 0 {
        tracing::info!(
            files = summary.files,
            accepted = summary.accepted,
            rejected = summary.rejected,
            duplicates = summary.duplicates,
            "inbox round done"
        );
    }
    if summary.failed > 0 {
        // Each failure was logged and counted with its reason by `run_once`.
        anyhow::bail!(
            "{} file(s) could not be taken in this round",
            summary.failed
        );
    }
    let (_, settling) = intake::inbox::scan(&dirs.inbox, config.settle)?;
    Ok(!settling.is_empty())
}
