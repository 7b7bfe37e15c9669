//! What the running intake reports at `/intake/status` (kenko_api::intake::IntakeReport): the
//! last round's outcome as an `IntakeHealthy` reason, and the claim month's counts from the
//! stack's ledger (so every replica and every restart tell the same). The controller reads it
//! into the HealthStack's status. Reason codes and counts only: never a file's content or any
//! personal value.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

/// Files failing [`super::watch::STUCK_AFTER`] times in a row or more at the last round.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// Records how many inbox files are stuck (the watcher, after each round).
pub fn set_stuck(n: usize) {
    STUCK.store(n, Ordering::Relaxed);
}

/// Why the data directory cannot be written, when it cannot (one line, naming it).
static UNWRITABLE: Mutex<Option<String>> = Mutex::new(None);

/// Records whether the data directory can be written (the watcher, before each round).
pub fn set_unwritable(why: Option<String>) {
    *UNWRITABLE.lock().unwrap_or_else(|e| e.into_inner()) = why;
}

/// What `/readyz` answers: `None` when ready, else why not (one line).
pub fn not_ready() -> Option<String> {
    if let Some(why) = UNWRITABLE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        return Some(format!(
            "data directory not writable: {} (runbooks/intake-failed.md, io_failed)",
            crate::logfmt::escape_controls(why)
        ));
    }
    match STUCK.load(Ordering::Relaxed) {
        0 => None,
        n => Some(format!(
            "inbox stuck: {n} file(s) failed {} times in a row (kenko_intake_failures_total says why; runbooks/intake-stalled.md)",
            super::watch::STUCK_AFTER
        )),
    }
}

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

/// The claim month of deliveries taken in on `today` (Asia/Tokyo): last month, and the UTC
/// instant its intake window opened (the first of this month, 00:00 JST).
pub fn claim_window(today: chrono::NaiveDate) -> (String, chrono::DateTime<chrono::Utc>) {
    use chrono::Datelike;
    let first = today.with_day(1).unwrap_or(today);
    let claim = first.pred_opt().unwrap_or(first);
    let start = chrono::FixedOffset::east_opt(9 * 3600)
        .and_then(|jst| first.and_hms_opt(0, 0, 0)?.and_local_timezone(jst).single())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    (format!("{:04}-{:02}", claim.year(), claim.month()), start)
}

/// Records a finished round with the claim month's totals from the ledger, and says whether
/// the intake is healthy.
pub fn after_round(summary: &RunSummary, month: &str, totals: kenko_store::LedgerTotals) {
    let mut s = STATUS.lock().unwrap_or_else(|p| p.into_inner());
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    s.claim_month = Some(month.to_string());
    s.files_loaded = n(totals.files_loaded);
    s.files_returned = n(totals.files_returned);
    s.rows_accepted = n(totals.rows_accepted);
    s.rows_rejected = n(totals.rows_rejected);
    s.last_round_at = Some(now());
    if summary.files > 0 {
        s.last_file_at = s.last_round_at.clone();
    }
    let rows = s.rows_accepted + s.rows_rejected;
    if rows >= 100 && s.rows_rejected * 5 > rows {
        s.reason = reason::HIGH_RETURN_RATE.into();
        s.message = format!(
            "{} of {rows} rows returned for claim month {month}",
            s.rows_rejected
        );
    } else if let Some(f) = summary.failures.first() {
        s.reason = healthy_reason(f.reason).into();
        s.message = format!("{} file(s) failed ({})", summary.failures.len(), f.reason);
    } else {
        s.reason = reason::INTAKE_OK.into();
        s.message = format!(
            "{} file(s) loaded, {} returned for claim month {month}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_of_a_month_claim_the_month_before_from_its_first_day_in_tokyo() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let (month, start) = claim_window(d("2024-11-15"));
        assert_eq!(month, "2024-10");
        assert_eq!(start.to_rfc3339(), "2024-10-31T15:00:00+00:00");
        let (month, _) = claim_window(d("2025-01-01"));
        assert_eq!(month, "2024-12");
    }
}
