//! `backup.coverage`: backups that exist, not backups that are configured. For every data
//! location of every stack (its volumes, found by the EBS CSI driver's claim tags, and its
//! records bucket) three facts are checked, in the order AWS Backup Audit Manager's controls
//! check them, with their semantics:
//!
//! 1. `BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN`: a backup plan of the resource's region
//!    selects it, by ARN (`Resources`, `*` wildcards) or by tags (`ListOfTags`: any of them;
//!    `Conditions`: all of them), and `NotResources` does not exclude it. Where AWS combines
//!    `Resources` and tags more generously than with AND, the audit is stricter, never looser;
//!    a selection naming nothing at all (which AWS reads as every opted-in resource type) is not
//!    taken as selecting: the opt-in settings are not read. Else `NoBackupPlan`.
//! 2. `BACKUP_LAST_RECOVERY_POINT_CREATED`: a completed recovery point of it newer than the
//!    selecting plan's schedule plus [`MARGIN_SECS`] (6 hours). The schedule's interval is the
//!    longest gap between two runs of its `cron(...)` ([`max_gap_secs`]): exact for daily and
//!    weekly patterns, a 31-day month for monthly ones; an expression it cannot read (a month
//!    or year restriction, `L`, `W`, `#`) is not guessed at. The most frequent rule of the
//!    selecting plans sets the window (a daily plan: 30 hours). Else `NoRecentRecoveryPoint`.
//! 3. `BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION`: such a recent recovery point has a copy in
//!    the other Japanese region: a completed copy job from it to a vault there, or a completed
//!    recovery point of the resource in a vault there, created within the same window, whose
//!    source vault is in the resource's region. Else `NoCrossRegionCopy`.
//!
//! `BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK` is `backup.retention` (the plan rules' and
//! copy actions' lifecycles, which every point inherits). What Audit Manager cannot see is the
//! stack's own list of locations: a location with no resource at all (a claim whose volume
//! carries no claim tags, a records bucket that does not exist) is reported too, as
//! `NoBackupPlan`. A fact that could not be read (an API error, a region that did not answer,
//! no permission, an API the emulator lacks) makes the location `AuditIncomplete`, Unknown:
//! never covered.

use std::collections::{BTreeMap, BTreeSet};

use kenko_api::names::BACKUP_SELECTION_TAG;
use kenko_api::reasons::reason;
use kenko_api::residency::StackLocations;
use serde::{Deserialize, Serialize};

use super::{arn_region, BackupFacts, Fact, Finding, Inventory, PlanFacts, Rule, Status, JAPAN};

/// Recovery points, copies and copy jobs are read back this far (40 days): longer than any
/// window the audit accepts (a monthly schedule: 31 days and the margin).
pub const LOOKBACK_SECS: i64 = 40 * 86_400;

/// Added to the schedule's interval before a recovery point counts as missed: the start and
/// completion windows of a backup job (Terraform's plan: 1 and 6 hours; the point is dated
/// when its job starts).
pub const MARGIN_SECS: i64 = 6 * 3600;

/// A location's verdict. The names are the BackupConfigured condition's reasons
/// (`kenko_api::reasons::reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Coverage {
    BackupCovered,
    AuditIncomplete,
    NoCrossRegionCopy,
    NoRecentRecoveryPoint,
    NoBackupPlan,
}

impl Coverage {
    /// Worst last: a stack's verdict is the greatest of its locations'.
    pub const ALL: [Coverage; 5] = [
        Coverage::BackupCovered,
        Coverage::AuditIncomplete,
        Coverage::NoCrossRegionCopy,
        Coverage::NoRecentRecoveryPoint,
        Coverage::NoBackupPlan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Coverage::BackupCovered => reason::BACKUP_COVERED,
            Coverage::NoBackupPlan => reason::NO_BACKUP_PLAN,
            Coverage::NoRecentRecoveryPoint => reason::NO_RECENT_RECOVERY_POINT,
            Coverage::NoCrossRegionCopy => reason::NO_CROSS_REGION_COPY,
            Coverage::AuditIncomplete => reason::AUDIT_INCOMPLETE,
        }
    }

    pub fn status(self) -> Status {
        match self {
            Coverage::BackupCovered => Status::Compliant,
            Coverage::AuditIncomplete => Status::Unknown,
            _ => Status::Violation,
        }
    }
}

/// Which stack and location a `backup.coverage` finding is about, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackRef {
    /// `NAMESPACE/NAME`, or empty when the stacks could not be listed.
    pub stack: String,
    /// `pvc:CLAIM` or `s3://bucket[/prefix]`, as the stack names it.
    pub location: String,
    pub reason: Coverage,
}

/// What the sweep read for the stacks' backup coverage.
#[derive(Debug, Clone)]
pub struct CoverageFacts {
    /// When the facts were read (Unix seconds): recovery points are judged against it.
    pub now: i64,
    /// The stacks, or why they could not be listed.
    pub stacks: Fact<Vec<StackFacts>>,
}

impl Default for CoverageFacts {
    fn default() -> Self {
        CoverageFacts {
            now: 0,
            stacks: Ok(Vec::new()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StackFacts {
    pub stack: StackLocations,
    pub locations: Vec<LocationFacts>,
}

/// One location and the AWS resources holding it (none: no volume carries its claim tags, or
/// the bucket does not exist). Every resource must be covered: a volume kept after its claim
/// went still holds the data.
#[derive(Debug, Clone)]
pub struct LocationFacts {
    pub location: String,
    pub resources: Fact<Vec<ResourceFacts>>,
}

#[derive(Debug, Clone)]
pub struct ResourceFacts {
    pub arn: String,
    /// `vol-...` or the bucket's name, for people.
    pub id: String,
    pub region: String,
    /// Read only to match backup selections: never shown.
    pub tags: Fact<BTreeMap<String, String>>,
    /// Its recovery points in the vaults of its own region, created within [`LOOKBACK_SECS`].
    pub points: Fact<Vec<PointFacts>>,
    /// Its recovery points in the vaults of the other Japanese region (copies), likewise.
    pub copies: Fact<Vec<PointFacts>>,
    /// The copy jobs of its recovery points, from its own region, likewise.
    pub copy_jobs: Fact<Vec<CopyJobFacts>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointFacts {
    pub arn: String,
    pub vault_arn: String,
    /// For a copy: the vault it was copied from.
    pub source_vault_arn: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// `COMPLETED`, `PARTIAL`, `EXPIRED`...
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyJobFacts {
    pub source_point_arn: String,
    pub destination_vault_arn: String,
    /// `COMPLETED`, `RUNNING`, `FAILED`...
    pub state: String,
}

/// One backup selection of a plan (GetBackupSelection).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectionFacts {
    pub name: String,
    /// ARNs, `*` a wildcard; any of them.
    pub resources: Vec<String>,
    pub not_resources: Vec<String>,
    /// `ListOfTags` (StringEquals): (key, value); any of them.
    pub list_of_tags: Vec<(String, String)>,
    /// `Conditions`: all of them.
    pub conditions: Vec<TagCondition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCondition {
    pub op: ConditionOp,
    /// The tag key (`aws:ResourceTag/` removed).
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionOp {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
}

impl TagCondition {
    fn holds(&self, tags: &BTreeMap<String, String>) -> bool {
        let v = tags.get(&self.key);
        match self.op {
            ConditionOp::StringEquals => v == Some(&self.value),
            ConditionOp::StringNotEquals => v != Some(&self.value),
            ConditionOp::StringLike => v.is_some_and(|v| glob(&self.value, v)),
            ConditionOp::StringNotLike => !v.is_some_and(|v| glob(&self.value, v)),
        }
    }
}

/// The tag key a selection condition names: `aws:ResourceTag/KEY` in `Conditions`, `KEY` in
/// `ListOfTags`.
pub fn condition_key(key: &str) -> String {
    key.strip_prefix("aws:ResourceTag/")
        .unwrap_or(key)
        .to_string()
}

/// `*` matches any run of characters, `?` one (as AWS Backup's ARN patterns and `StringLike`).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a selection takes a resource: `None` when it depends on tags that could not be read.
pub fn selects(
    sel: &SelectionFacts,
    arn: &str,
    tags: &Fact<BTreeMap<String, String>>,
) -> Option<bool> {
    if sel.not_resources.iter().any(|p| glob(p, arn)) {
        return Some(false);
    }
    if !sel.resources.is_empty() && !sel.resources.iter().any(|p| glob(p, arn)) {
        return Some(false);
    }
    if sel.list_of_tags.is_empty() && sel.conditions.is_empty() {
        return Some(!sel.resources.is_empty());
    }
    let tags = tags.as_ref().ok()?;
    let by_tags =
        sel.list_of_tags.is_empty() || sel.list_of_tags.iter().any(|(k, v)| tags.get(k) == Some(v));
    Some(by_tags && sel.conditions.iter().all(|c| c.holds(tags)))
}

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The values of one cron field between `min` and `max`: `*`, `?`, `N`, `A-B`, `A/S`, `*/S`,
/// `A-B/S` and lists of them; day names for the day of the week.
fn cron_field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<BTreeSet<u32>, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is not understood"))
    };
    let mut out = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<u32>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("step {s:?} is not understood"))?,
                ),
            ),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is outside {min}-{max}"));
        }
        out.extend((lo..=hi).step_by(step.unwrap_or(1) as usize));
    }
    Ok(out)
}

/// The longest time between two runs of a backup rule's schedule, in seconds:
/// `cron(MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR)` (UTC, as AWS Backup reads it) or
/// `rate(N minutes|hours|days)`. Daily and weekly patterns are exact; a monthly one is taken
/// over a 31-day month (days after the 28th, which not every month has, are refused). A
/// month or year restriction, and `L`, `W` or `#`, are refused: the window is never guessed.
pub fn max_gap_secs(expr: &str) -> Result<i64, String> {
    let e = expr.trim();
    if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let (n, unit) = inner
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("{expr:?}: expected rate(N unit)"))?;
        let n: i64 = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{expr:?}: expected a positive count"))?;
        let unit = match unit.trim() {
            "minute" | "minutes" => 60,
            "hour" | "hours" => 3600,
            "day" | "days" => 86_400,
            u => return Err(format!("{expr:?}: unit {u:?} is not understood")),
        };
        return Ok(n * unit);
    }
    let inner = e
        .strip_prefix("cron(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("{expr:?} is neither cron(...) nor rate(...)"))?;
    let f: Vec<&str> = inner.split_whitespace().collect();
    let [minute, hour, dom, month, dow, year] = f.as_slice() else {
        return Err(format!("{expr:?}: expected six cron fields"));
    };
    let any = |s: &str| s == "*" || s == "?";
    let bad = |what: &str, e: String| format!("{expr:?}: {what} {e}");
    if !any(month) || !any(year) {
        return Err(format!(
            "{expr:?}: a month or year restriction is not understood"
        ));
    }
    let minutes = cron_field(minute, 0, 59, &[]).map_err(|e| bad("minute", e))?;
    let hours = cron_field(hour, 0, 23, &[]).map_err(|e| bad("hour", e))?;
    let times: Vec<i64> = hours
        .iter()
        .flat_map(|h| {
            minutes
                .iter()
                .map(move |m| i64::from(*h) * 60 + i64::from(*m))
        })
        .collect();
    let (period, firing): (i64, Vec<i64>) = match (any(dom), any(dow)) {
        (true, true) => (1440, times),
        (true, false) => {
            let days = cron_field(dow, 1, 7, &DAY_NAMES).map_err(|e| bad("day of week", e))?;
            (
                7 * 1440,
                days.iter()
                    .flat_map(|d| times.iter().map(move |t| (i64::from(*d) - 1) * 1440 + t))
                    .collect(),
            )
        }
        (false, true) => {
            let days = cron_field(dom, 1, 31, &[]).map_err(|e| bad("day of month", e))?;
            if days.iter().any(|d| *d > 28) {
                return Err(format!(
                    "{expr:?}: days after the 28th are not in every month"
                ));
            }
            (
                31 * 1440,
                days.iter()
                    .flat_map(|d| times.iter().map(move |t| (i64::from(*d) - 1) * 1440 + t))
                    .collect(),
            )
        }
        (false, false) => {
            return Err(format!(
                "{expr:?}: both a day of the month and a day of the week"
            ))
        }
    };
    let mut firing = firing;
    firing.sort_unstable();
    let (Some(first), Some(last)) = (firing.first(), firing.last()) else {
        return Err(format!("{expr:?} never runs"));
    };
    let wrap = period - last + first;
    let gap = firing
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain([wrap])
        .max()
        .unwrap_or(period);
    Ok(gap * 60)
}

/// The other Japanese region.
pub fn other_japan(region: &str) -> Option<&'static str> {
    match JAPAN {
        [a, b] if region == a => Some(b),
        [a, b] if region == b => Some(a),
        _ => None,
    }
}

/// `30h`, `4d 6h`, `45m`: a duration for people.
fn human(secs: i64) -> String {
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (h, _) if h >= 72 && h % 24 == 0 => format!("{}d", h / 24),
        (h, _) if h >= 72 => format!("{}d {}h", h / 24, h % 24),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// RFC 3339, UTC, seconds.
pub(crate) fn rfc3339(secs: i64) -> String {
    aws_sdk_s3::primitives::DateTime::from_secs(secs)
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

fn completed(status: &str) -> bool {
    matches!(status, "COMPLETED" | "AVAILABLE")
}

/// One resource of a location: its verdict and why.
fn judge(r: &ResourceFacts, backup: Option<&Fact<BackupFacts>>, now: i64) -> (Coverage, String) {
    let region = r.region.as_str();
    let b = match backup {
        None => {
            return (
                Coverage::AuditIncomplete,
                format!("{region} was not swept, so its backups could not be checked"),
            )
        }
        Some(Err(e)) => {
            return (
                Coverage::AuditIncomplete,
                format!("AWS Backup in {region} did not answer: {e}"),
            )
        }
        Some(Ok(b)) => b,
    };
    // 1. Selected by a plan of its region.
    let mut unread = Vec::new();
    let mut selecting: Vec<(&PlanFacts, &str)> = Vec::new();
    for p in &b.plans {
        match &p.selections {
            None => unread.push(format!("the selections of {} were not read", p.arn)),
            Some(Err(e)) => unread.push(e.clone()),
            Some(Ok(sels)) => {
                let mut depends_on_tags = false;
                for s in sels {
                    match selects(s, &r.arn, &r.tags) {
                        Some(true) => {
                            selecting.push((p, s.name.as_str()));
                            break;
                        }
                        Some(false) => {}
                        None => depends_on_tags = true,
                    }
                }
                if depends_on_tags && !selecting.iter().any(|(q, _)| q.arn == p.arn) {
                    unread.push(format!(
                        "{} selects by tags, and the tags could not be read: {}",
                        p.arn,
                        r.tags.as_ref().err().cloned().unwrap_or_default()
                    ));
                }
            }
        }
    }
    if selecting.is_empty() {
        if !unread.is_empty() {
            return (
                Coverage::AuditIncomplete,
                format!(
                    "whether a backup plan selects it could not be read: {}",
                    unread.join("; ")
                ),
            );
        }
        let (k, v) = BACKUP_SELECTION_TAG;
        return (
            Coverage::NoBackupPlan,
            if b.plans.is_empty() {
                format!("there is no backup plan in {region}")
            } else {
                format!(
                    "none of the {} backup plan(s) in {region} selects it (by its ARN, or by a tag such as {k}={v})",
                    b.plans.len()
                )
            },
        );
    }
    let by = selecting
        .iter()
        .map(|(p, s)| format!("{}#selection/{s}", p.arn))
        .collect::<Vec<_>>()
        .join(", ");
    // 2. A recent completed recovery point: the most frequent rule of the selecting plans.
    let mut windows = Vec::new();
    let mut unread = Vec::new();
    for (p, _) in &selecting {
        match &p.rules {
            Err(e) => unread.push(e.clone()),
            Ok(rules) => {
                for rule in rules {
                    match rule.schedule.as_deref().map(max_gap_secs) {
                        Some(Ok(gap)) => {
                            windows.push((gap, format!("{}#rule/{}", p.arn, rule.name)))
                        }
                        Some(Err(e)) => unread.push(e),
                        None => {}
                    }
                }
            }
        }
    }
    let Some((gap, rule)) = windows.into_iter().min() else {
        return (
            Coverage::AuditIncomplete,
            format!(
                "selected by {by}, but no schedule of it could be read{}",
                if unread.is_empty() {
                    String::new()
                } else {
                    format!(": {}", unread.join("; "))
                }
            ),
        );
    };
    let window = gap + MARGIN_SECS;
    if window > LOOKBACK_SECS {
        return (
            Coverage::AuditIncomplete,
            format!(
                "{rule} runs every {}: longer than the audit looks back ({})",
                human(gap),
                human(LOOKBACK_SECS)
            ),
        );
    }
    let points = match &r.points {
        Ok(p) => p,
        Err(e) => {
            return (
                Coverage::AuditIncomplete,
                format!("selected by {by}; its recovery points could not be read: {e}"),
            )
        }
    };
    let since = now - window;
    let mut recent: Vec<&PointFacts> = points
        .iter()
        .filter(|p| completed(&p.status) && p.created >= since)
        .collect();
    recent.sort_by_key(|p| std::cmp::Reverse(p.created));
    let Some(newest) = recent.first() else {
        let last = points
            .iter()
            .filter(|p| completed(&p.status))
            .map(|p| p.created)
            .max();
        return (
            Coverage::NoRecentRecoveryPoint,
            format!(
                "selected by {by}, but no completed recovery point in the last {} ({rule} runs every {}, plus {}); {}",
                human(window),
                human(gap),
                human(MARGIN_SECS),
                match last {
                    Some(t) => format!("the last one was taken at {}", rfc3339(t)),
                    None => format!("none in the last {}", human(LOOKBACK_SECS)),
                }
            ),
        );
    };
    // 3. A copy of a recent point in the other Japanese region.
    let Some(other) = other_japan(region) else {
        return (
            Coverage::NoCrossRegionCopy,
            format!("it is in {region}, which has no other Japanese region to copy to"),
        );
    };
    let recent_arns: BTreeSet<&str> = recent.iter().map(|p| p.arn.as_str()).collect();
    let by_job = r.copy_jobs.as_ref().map(|jobs| {
        jobs.iter()
            .find(|j| {
                completed(&j.state)
                    && recent_arns.contains(j.source_point_arn.as_str())
                    && arn_region(&j.destination_vault_arn) == Some(other)
            })
            .map(|j| j.destination_vault_arn.clone())
    });
    let by_vault = r.copies.as_ref().map(|copies| {
        copies
            .iter()
            .find(|c| {
                completed(&c.status)
                    && c.created >= since
                    && arn_region(&c.vault_arn) == Some(other)
                    && c.source_vault_arn.as_deref().and_then(arn_region) == Some(region)
            })
            .map(|c| c.vault_arn.clone())
    });
    let taken = format!(
        "recovery point of {} in {}",
        rfc3339(newest.created),
        newest.vault_arn
    );
    match (&by_job, &by_vault) {
        (Ok(Some(v)), _) | (_, Ok(Some(v))) => (
            Coverage::BackupCovered,
            format!("selected by {by}; {taken}, copied to {v}"),
        ),
        (Ok(None), Ok(None)) => (
            Coverage::NoCrossRegionCopy,
            format!(
                "selected by {by}; {taken}, but no completed copy of a recovery point of the last {} is in {other}",
                human(window)
            ),
        ),
        _ => (
            Coverage::AuditIncomplete,
            format!(
                "selected by {by}; {taken}; whether it was copied to {other} could not be read: {}",
                [by_job.err(), by_vault.err()]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    }
}

fn coverage_finding(
    resource: String,
    region: &str,
    stack: &str,
    location: &str,
    reason: Coverage,
    detail: String,
) -> Finding {
    Finding {
        resource,
        region: region.to_string(),
        rule: Rule::BackupCoverage,
        status: reason.status(),
        detail,
        backup: Some(StackRef {
            stack: stack.to_string(),
            location: location.to_string(),
            reason,
        }),
    }
}

/// `backup.coverage` on every location of every stack the inventory holds.
pub(super) fn evaluate(inv: &Inventory, out: &mut Vec<Finding>) {
    let stacks = match &inv.coverage.stacks {
        Ok(s) => s,
        Err(e) => {
            out.push(coverage_finding(
                "healthstacks".into(),
                "global",
                "",
                "",
                Coverage::AuditIncomplete,
                format!("the stacks could not be listed, so no stack's backups were checked: {e}"),
            ));
            return;
        }
    };
    let now = inv.coverage.now;
    for s in stacks {
        let id = s.stack.id();
        for l in &s.locations {
            let resources = match &l.resources {
                Ok(r) => r,
                Err(e) => {
                    out.push(coverage_finding(
                        l.location.clone(),
                        &s.stack.region,
                        &id,
                        &l.location,
                        Coverage::AuditIncomplete,
                        format!(
                            "stack {id}, {}: what holds it could not be read: {e}",
                            l.location
                        ),
                    ));
                    continue;
                }
            };
            if resources.is_empty() {
                let why = match l.location.strip_prefix("pvc:") {
                    Some(claim) => format!(
                        "no EBS volume in {} carries the claim tags {}={}, {}={claim}: nothing holding it is backed up (the EBS CSI driver tags the volumes it creates with --extra-create-metadata)",
                        s.stack.region,
                        kenko_api::names::PVC_NAMESPACE_TAG,
                        s.stack.namespace,
                        kenko_api::names::PVC_NAME_TAG,
                    ),
                    None => "the bucket does not exist in this account".to_string(),
                };
                out.push(coverage_finding(
                    l.location.clone(),
                    &s.stack.region,
                    &id,
                    &l.location,
                    Coverage::NoBackupPlan,
                    format!("stack {id}, {}: {why}", l.location),
                ));
                continue;
            }
            for r in resources {
                let backup = inv
                    .regions
                    .iter()
                    .find(|f| f.region == r.region)
                    .map(|f| &f.backup);
                let (reason, why) = judge(r, backup, now);
                out.push(coverage_finding(
                    r.arn.clone(),
                    &r.region,
                    &id,
                    &l.location,
                    reason,
                    format!("stack {id}, {} ({}): {why}", l.location, r.id),
                ));
            }
        }
    }
}

/// One stack's coverage: the worst of its locations, and the locations that are not covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackCoverage {
    pub namespace: String,
    pub name: String,
    pub reason: Coverage,
    /// (location, its reason, detail) of every location that is not covered, worst first.
    pub problems: Vec<(String, Coverage, String)>,
    /// Resources (or locations without one) checked.
    pub checked: usize,
}

impl StackCoverage {
    /// One line for people: what is not covered and why, or that everything is.
    pub fn message(&self) -> String {
        if self.problems.is_empty() {
            return format!(
                "{} resource(s) of the stack's data locations selected by a backup plan, each with a recent recovery point copied to the other Japanese region",
                self.checked
            );
        }
        let prefix = format!("stack {}/{}, ", self.namespace, self.name);
        self.problems
            .iter()
            .map(|(_, r, d)| format!("{} {}", r.as_str(), d.strip_prefix(&prefix).unwrap_or(d)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The per-stack verdicts of a report's `backup.coverage` findings, by stack.
pub fn stack_coverage(findings: &[Finding]) -> Vec<StackCoverage> {
    let mut by: BTreeMap<&str, StackCoverage> = BTreeMap::new();
    for f in findings {
        let Some(b) = &f.backup else { continue };
        let Some((ns, name)) = b.stack.split_once('/') else {
            continue;
        };
        let s = by.entry(b.stack.as_str()).or_insert_with(|| StackCoverage {
            namespace: ns.to_string(),
            name: name.to_string(),
            reason: Coverage::BackupCovered,
            problems: Vec::new(),
            checked: 0,
        });
        s.checked += 1;
        s.reason = s.reason.max(b.reason);
        if b.reason != Coverage::BackupCovered {
            s.problems
                .push((b.location.clone(), b.reason, f.detail.clone()));
        }
    }
    by.into_values()
        .map(|mut s| {
            s.problems.sort_by_key(|p| std::cmp::Reverse(p.1));
            s
        })
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
