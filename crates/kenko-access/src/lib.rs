//! Access-pattern monitoring as pure logic (no file or network I/O).
//!
//! The city promises continuous monitoring of data access patterns and account behaviour, that
//! only authorised staff use the system, that retired staff lose access at once, and that
//! neither the state nor the cloud provider touches the business data. This crate decides what
//! breaks those promises:
//!
//! - [`event`]: the three inputs (the health system's access log, the Kubernetes audit log,
//!   CloudTrail) parsed from one JSON line each into one [`Event`] (borrowing, no allocation per
//!   line in the common case);
//! - [`roster`]: who may use the system (id, role, active or retired, caseload, terminals);
//! - [`calendar`]: Japanese national holidays by rule, the year-end closure, office hours;
//! - [`detect`]: every rule ([`Rule`]) in one [`Detector`], fed events in time order, emitting
//!   grouped [`Alert`]s that carry counts and never a personal value;
//! - [`chain`]: tamper evidence, a SHA-256 chain over ingested segments with daily digests;
//! - [`generate`]: a seeded month of a 340,000-resident city's activity with injected anomalies
//!   and their ground truth, and the scoring of alerts against it.
//!
//! The agent (`kenko-agent`) adds the I/O around it: following files, checkpoints, Alertmanager
//! and Kubernetes outputs. The log format is `docs/access-log-format.md`; every rule has a
//! runbook page `runbooks/access-*.md`.

pub mod calendar;
pub mod chain;
pub mod cri;
pub mod detect;
pub mod event;
pub mod feed;
pub mod generate;
pub mod roster;

pub use calendar::{Calendar, Date, OfficeHours};
pub use chain::{Chain, DailyDigest, Finding, SegmentRecord};
pub use detect::{Alert, Config, Detector, DetectorState, StackScope};
pub use event::{Action, ActorKind, Event, Outcome, ParseError, Principals, Source};
pub use roster::{Person, Roster, RosterError};

use serde::Serialize;

/// How urgent an alert is (the Alertmanager `severity` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Every detection rule. The id is stable: metrics labels, alert labels and runbooks use it;
/// never rename one (add a new one instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Rule {
    BulkRead,
    ExportVolume,
    OffHours,
    RetiredAccount,
    UnknownAccount,
    UnregisteredTerminal,
    OutsideCaseload,
    FailedLoginBurst,
    PrivilegeChange,
    ProviderDataRead,
    VolumeAnomaly,
}

/// (rule id, severity, runbook page under `runbooks/`) of every rule, in [`Rule::ALL`] order.
pub const RULES: &[(&str, Severity, &str)] = &[
    ("access.bulk_read", Severity::Warning, "access-bulk-read.md"),
    (
        "access.export_volume",
        Severity::Warning,
        "access-export-volume.md",
    ),
    ("access.off_hours", Severity::Warning, "access-off-hours.md"),
    (
        "access.retired_account",
        Severity::Critical,
        "access-retired-account.md",
    ),
    (
        "access.unknown_account",
        Severity::Critical,
        "access-unknown-account.md",
    ),
    (
        "access.unregistered_terminal",
        Severity::Warning,
        "access-unregistered-terminal.md",
    ),
    (
        "access.outside_caseload",
        Severity::Warning,
        "access-outside-caseload.md",
    ),
    (
        "access.failed_login_burst",
        Severity::Warning,
        "access-failed-login-burst.md",
    ),
    (
        "access.privilege_change",
        Severity::Warning,
        "access-privilege-change.md",
    ),
    (
        "access.provider_data_read",
        Severity::Critical,
        "access-provider-data-read.md",
    ),
    (
        "access.volume_anomaly",
        Severity::Warning,
        "access-volume-anomaly.md",
    ),
];

impl Rule {
    pub const ALL: [Rule; 11] = [
        Rule::BulkRead,
        Rule::ExportVolume,
        Rule::OffHours,
        Rule::RetiredAccount,
        Rule::UnknownAccount,
        Rule::UnregisteredTerminal,
        Rule::OutsideCaseload,
        Rule::FailedLoginBurst,
        Rule::PrivilegeChange,
        Rule::ProviderDataRead,
        Rule::VolumeAnomaly,
    ];

    /// The stable id, e.g. `access.bulk_read`.
    pub fn id(self) -> &'static str {
        RULES[self as usize].0
    }

    pub fn severity(self) -> Severity {
        RULES[self as usize].1
    }

    /// The runbook path relative to the repository root, e.g. `runbooks/access-bulk-read.md`.
    pub fn runbook(self) -> &'static str {
        RUNBOOK_PATHS[self as usize]
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }
}

const RUNBOOK_PATHS: [&str; 11] = [
    "runbooks/access-bulk-read.md",
    "runbooks/access-export-volume.md",
    "runbooks/access-off-hours.md",
    "runbooks/access-retired-account.md",
    "runbooks/access-unknown-account.md",
    "runbooks/access-unregistered-terminal.md",
    "runbooks/access-outside-caseload.md",
    "runbooks/access-failed-login-burst.md",
    "runbooks/access-privilege-change.md",
    "runbooks/access-provider-data-read.md",
    "runbooks/access-volume-anomaly.md",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_table_is_consistent() {
        assert_eq!(RULES.len(), Rule::ALL.len());
        for (i, r) in Rule::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
            assert_eq!(Rule::from_id(r.id()), Some(r));
            assert_eq!(r.runbook(), format!("runbooks/{}", RULES[i].2));
            assert!(r.id().starts_with("access."));
        }
    }
}
