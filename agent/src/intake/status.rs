//! What the running intake reports at `/intake/status` (kenko_api::intake::IntakeReport): the
//! last round's outcome as an `IntakeHealthy` reason, and counts since the agent started. The
//! controller reads it into the HealthStack's status. Reason codes and counts only: never a
//! file's content or any personal value.

use std::sync::{LazyLock, Mutex};

use kenko_api::intake::IntakeReport;
use kenko_api::reasons::reason;

use super::RunSummary;

static STATUS: LazyLock<Mutex<IntakeReport>> = LazyLock::new(|| {
    Mutex::new(IntakeReport {
        reason: reason::INTAKE_STARTING.into(),
        message: "no round has finished yet".into(),
        ..Default::default()
    })
});

fn now() -> String {
    kenko_intake::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `IntakeHealthy` reason of a round that failed with the agent's reason code.
pub fn healthy_reason(code: &str) -> &'static str {
    match code {
        "register_empty" => reason::REGISTER_MISSING,
        "store_unavailable" | "store_query_failed" | "store_migration_failed" => {
            reason::DATABASE_UNREACHABLE
        }
        "inbox_unreachable" => reason::INBOX_UNREACHABLE,
        _ => reason::INTAKE_FAILING,
    }
}

/// Counts a finished round and says whether the intake is healthy.
pub fn after_round(summary: &RunSummary) {
    let mut s = STATUS.lock().unwrap_or_else(|p| p.into_inner());
    s.files_loaded += summary.loaded;
    s.files_returned += summary.returned;
    s.rows_accepted += summary.accepted;
    s.rows_rejected += summary.rejected;
    s.last_round_at = Some(now());
    if summary.files > 0 {
        s.last_file_at = s.last_round_at.clone();
    }
    let rows = s.rows_accepted + s.rows_rejected;
    if rows >= 100 && s.rows_rejected * 5 > rows {
        s.reason = reason::HIGH_RETURN_RATE.into();
        s.message = format!(
            "{} of {rows} rows returned since the intake started",
            s.rows_rejected
        );
    } else if let Some(f) = summary.failures.first() {
        s.reason = healthy_reason(f.reason).into();
        s.message = format!("{} file(s) failed ({})", summary.failures.len(), f.reason);
    } else {
        s.reason = reason::INTAKE_OK.into();
        s.message = format!(
            "{} file(s) loaded, {} returned since the intake started",
            s.files_loaded, s.files_returned
        );
    }
}

/// Records a round that could not run.
pub fn after_failure(code: &str) {
    let mut s = STATUS.lock().unwrap_or_else(|p| p.into_inner());
    s.last_round_at = Some(now());
    s.reason = healthy_reason(code).into();
    s.message = format!("the last round failed ({code})");
}

/// The report `/intake/status` serves.
pub fn report() -> IntakeReport {
    STATUS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
