//! What the intake and the erasure engine do that an operator watches, as typed events. `emit` writes the log line
//! and moves the metric together, so the two cannot disagree (a failure counted once by the
//! file and again by the watcher's round, say). Call sites say what happened; this module
//! says how it is told. Fields are counts, reason codes and file names chosen by the
//! institution's software; never a value from inside a file.

use std::time::Duration;

use crate::intake::{Disposition, FileSummary};
use crate::metrics::METRICS;

/// One thing that happened in the intake.
#[derive(Debug)]
pub enum Event<'a> {
    /// A file was checked and committed (loaded or returned) and moved out of the inbox.
    FileTaken {
        summary: &'a FileSummary,
        elapsed: Duration,
        store_busy: Duration,
    },
    /// Bytes already in the ledger arrived again: skipped, moved to `processed/duplicates`.
    DuplicateSkipped { first_delivery: &'a str },
    /// A file whose commit happened before a crash: only its move was finished.
    FileRecovered,
    /// A file could not be taken; it stays in the inbox and is tried again.
    FileFailed {
        file: &'a str,
        reason: &'static str,
        error: &'a dyn std::error::Error,
        retry_in: Option<Duration>,
    },
    /// The register index the checks use was (re)loaded from the store.
    RegisterLoaded { residents: usize },
    /// A round of the watcher could not run at all (store down, register unreadable); the
    /// files in the inbox were not looked at, so none of them is counted.
    RoundFailed {
        reason: &'static str,
        error: &'a dyn std::error::Error,
    },
    /// Files waiting in the inbox (complete or still being written) at a scan, and the
    /// entries that are no delivery.
    InboxScanned {
        waiting: usize,
        ignored: &'a [crate::intake::inbox::Ignored],
    },
    /// A file was written to or replaced after its check: the checked bytes stay in
    /// `processed/` or `returned/`, and what is there now went back into the inbox as a new
    /// delivery.
    FileChangedAfterCheck {
        replaced: bool,
        redelivered_as: &'a str,
    },
}

/// Inbox entries already warned about, so a watcher says it once, not every round.
static WARNED: std::sync::Mutex<Option<std::collections::HashSet<(String, &'static str)>>> =
    std::sync::Mutex::new(None);

/// Whether this is the first time the process meets `entry` for `reason`.
fn first_time(entry: &str, reason: &'static str) -> bool {
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    warned
        .get_or_insert_with(Default::default)
        .insert((entry.to_string(), reason))
}

impl Event<'_> {
    /// Logs the event and updates its metrics.
    pub fn emit(&self) {
        match self {
            Event::FileTaken {
                summary: s,
                elapsed,
                store_busy,
            } => {
                METRICS
                    .files
                    .with_label_values(&[s.disposition.as_str()])
                    .inc();
                METRICS
                    .rows
                    .with_label_values(&["accepted"])
                    .inc_by(s.accepted);
                METRICS
                    .rows
                    .with_label_values(&["rejected"])
                    .inc_by(s.rejected);
                for (reason, n) in &s.reasons {
                    METRICS.rejections.with_label_values(&[reason]).inc_by(*n);
                }
                METRICS.duration.observe(elapsed.as_secs_f64());
                if s.disposition == Disposition::Loaded {
                    METRICS
                        .last_success
                        .set(kenko_intake::clock::now().timestamp() as f64);
                }
                tracing::info!(
                    disposition = %s.disposition,
                    rows = s.rows,
                    accepted = s.accepted,
                    rejected = s.rejected,
                    encoding = %s.encoding,
                    elapsed_ms = elapsed.as_millis() as u64,
                    store_busy_ms = store_busy.as_millis() as u64,
                    "intake finished"
                );
            }
            Event::DuplicateSkipped { first_delivery } => {
                METRICS
                    .files
                    .with_label_values(&[Disposition::Duplicate.as_str()])
                    .inc();
                tracing::info!(
                    first_delivery = %first_delivery,
                    "duplicate delivery skipped: these bytes were already taken in"
                );
            }
            Event::FileRecovered => {
                METRICS
                    .files
                    .with_label_values(&[Disposition::Recovered.as_str()])
                    .inc();
                tracing::info!("finished an intake interrupted after its commit");
            }
            Event::FileFailed {
                file,
                reason,
                error,
                retry_in,
            } => {
                METRICS.failures.with_label_values(&[reason]).inc();
                match retry_in {
                    Some(d) => tracing::error!(
                        file = %file, reason = *reason, error = %error, retry_in_s = d.as_secs(),
                        "intake failed; the file stays in the inbox"
                    ),
                    None => tracing::error!(
                        file = %file, reason = *reason, error = %error,
                        "intake failed; the file stays in the inbox"
                    ),
                }
            }
            Event::RegisterLoaded { residents } => {
                METRICS.register_residents.set(*residents as i64);
                tracing::info!(residents = *residents, "resident register loaded");
            }
            Event::RoundFailed { reason, error } => {
                METRICS.failures.with_label_values(&[reason]).inc();
                tracing::error!(reason = *reason, error = %error, "intake round failed; retrying");
            }
            Event::InboxScanned { waiting, ignored } => {
                METRICS.inbox_files.set(*waiting as i64);
                METRICS.inbox_ignored.reset();
                for i in *ignored {
                    METRICS.inbox_ignored.with_label_values(&[i.reason]).inc();
                    if first_time(&i.entry, i.reason) {
                        tracing::warn!(
                            entry = %i.entry, reason = i.reason,
                            "inbox entry is no delivery and is not taken; remove it or deliver a regular file"
                        );
                    }
                }
            }
            Event::FileChangedAfterCheck {
                replaced,
                redelivered_as,
            } => {
                let how = if *replaced { "replaced" } else { "written" };
                METRICS.changed_after_check.with_label_values(&[how]).inc();
                tracing::error!(
                    reason = "file_changed", how, redelivered_as = %redelivered_as,
                    "the file changed after its check: the checked bytes were kept, and the file as it is now went back into the inbox as a new delivery"
                );
            }
        }
    }
}

/// One thing that happened to an erasure job (on the command line or in the cluster).
#[derive(Debug)]
pub enum EraseEvent<'a> {
    /// The job finished and its signed certificate was written.
    Certified {
        job: &'a str,
        certificate: &'a std::path::Path,
        targets: usize,
        bytes: u64,
        /// Items kept by Object Lock or Vault Lock (the certificate names them).
        blocked: usize,
        resumed: u32,
    },
    /// The job stopped without a certificate; run again with the same job id to resume.
    Failed {
        job: &'a str,
        reason: &'static str,
        error: &'a dyn std::error::Error,
    },
}

impl EraseEvent<'_> {
    /// Logs the event and updates its metrics.
    pub fn emit(&self) {
        match self {
            EraseEvent::Certified {
                job,
                certificate,
                targets,
                bytes,
                blocked,
                resumed,
            } => {
                let outcome = if *blocked > 0 { "blocked" } else { "certified" };
                METRICS
                    .erase_certificates
                    .with_label_values(&[outcome])
                    .inc();
                tracing::info!(
                    job,
                    certificate = %certificate.display(),
                    targets,
                    bytes,
                    blocked,
                    resumed,
                    outcome,
                    "erasure certified"
                );
            }
            EraseEvent::Failed { job, reason, error } => {
                METRICS.erase_failures.with_label_values(&[reason]).inc();
                tracing::error!(job, reason, error = %error, "erasure failed");
            }
        }
    }
}
