//! Publishing the account audit to the cluster: the agent holding the `kenko-agent-cloud`
//! Lease writes the summary of each complete `residency audit` into the status of the
//! ResidencyPolicy `default`, where the controller turns it into every HealthStack's
//! ResidencyCompliant condition (so a bucket abroad shows on the stacks, not only in a log).
//! Before each audit it lists the HealthStacks, whose data locations `backup.coverage` checks;
//! each stack's result goes into the same status (`backups`), from which the controller sets
//! the stack's BackupConfigured condition.

use kenko_api::residency::{StackBackup, StackLocations, MAX_STATUS_BACKUPS};
use kenko_api::{AccountAudit, HealthStack, ResidencyPolicy};
use kube::api::{Api, ListParams, Patch, PatchParams};

use super::{kube_err, ClusterError};

/// The policy the controller reads.
pub const POLICY: &str = "default";

/// Writes `audit` into `ResidencyPolicy/default`'s status. `Ok(false)` when there is no
/// policy to write to (the controller then uses the built-in one and no audit).
pub async fn publish(client: &kube::Client, audit: &AccountAudit) -> Result<bool, ClusterError> {
    let api = Api::<ResidencyPolicy>::all(client.clone());
    let patch = serde_json::json!({ "status": { "audit": audit } });
    match api
        .patch_status(POLICY, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(kube_err(
            "patch",
            format!("ResidencyPolicy/{POLICY}/status"),
        )(e)),
    }
}

/// Every live HealthStack's data locations (`kenko_api::residency::StackLocations::of`): what
/// `backup.coverage` checks. A stack being deleted is left out: its data, backups included,
/// is being erased.
pub async fn stack_locations(client: &kube::Client) -> Result<Vec<StackLocations>, ClusterError> {
    let stacks = Api::<HealthStack>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list", "HealthStacks"))?;
    Ok(stacks
        .items
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .map(StackLocations::of)
        .collect())
}

/// The status summary of a residency report: the counts in full, and the findings that are
/// not compliant (violations first) up to the status's limit; `backup.coverage` apart, as one
/// result per stack (bounded: the CRD refuses a longer status).
pub fn summary(
    report: &kenko_aws::audit::Report,
    auditor: &str,
    interval_secs: u64,
) -> AccountAudit {
    use kenko_aws::audit::{Rule, Status};
    // Backup coverage concerns one stack, not the account: it is in `backups`, not in the
    // counts that decide every stack's ResidencyCompliant.
    let residency = || {
        report
            .findings
            .iter()
            .filter(|f| f.rule != Rule::BackupCoverage)
    };
    let count = |st: Status| residency().filter(|f| f.status == st).count() as u32;
    let mut findings: Vec<&kenko_aws::audit::Finding> = residency()
        .filter(|f| f.status != Status::Compliant)
        .collect();
    findings.sort_by_key(|f| f.status != Status::Violation);
    let backups = kenko_aws::audit::stack_coverage(&report.findings)
        .into_iter()
        .take(MAX_STATUS_BACKUPS)
        .map(|c| StackBackup {
            namespace: kenko_api::one_line(&c.namespace, 63),
            name: kenko_api::one_line(&c.name, 253),
            reason: c.reason.as_str().to_string(),
            message: kenko_api::status_message(&c.message()),
            checked_at: report.finished_at.clone(),
        })
        .collect();
    AccountAudit {
        completed_at: report.finished_at.clone(),
        auditor: kenko_api::one_line(auditor, 253),
        regions: report.regions.clone(),
        compliant: count(Status::Compliant),
        violations: count(Status::Violation),
        unknown: count(Status::Unknown),
        interval_secs: u32::try_from(interval_secs).unwrap_or(u32::MAX),
        backups,
        findings: findings
            .into_iter()
            .take(kenko_api::MAX_STATUS_FINDINGS)
            .map(|f| kenko_api::AuditFinding {
                rule: f.rule.as_str().to_string(),
                status: match f.status {
                    Status::Violation => "Violation",
                    _ => "Unknown",
                }
                .to_string(),
                // The CRD bounds these (the API server refuses a longer status).
                resource: kenko_api::one_line(&f.resource, 1024),
                region: kenko_api::one_line(&f.region, 32),
            })
            .collect(),
    }
}

/// Publishes every report the scheduled audit sends, until the sender goes away. A failed
/// write is logged and retried with the next report (the audit repeats on its schedule).
pub async fn publish_reports(
    client: kube::Client,
    auditor: String,
    interval_secs: u64,
    mut reports: tokio::sync::watch::Receiver<Option<std::sync::Arc<kenko_aws::audit::Report>>>,
) {
    while reports.changed().await.is_ok() {
        let Some(report) = reports.borrow_and_update().clone() else {
            continue;
        };
        match publish(&client, &summary(&report, &auditor, interval_secs)).await {
            Ok(true) => tracing::info!(
                violations = report.summary.violation,
                unknown = report.summary.unknown,
                "published the account audit in ResidencyPolicy/default"
            ),
            Ok(false) => tracing::warn!(
                "no ResidencyPolicy/default to publish the account audit in; stacks will not show it"
            ),
            Err(e) => {
                tracing::warn!(reason = e.reason(), error = %e, "publishing the account audit")
            }
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
    use kenko_aws::audit::{Coverage, Finding, Policy, Report, Rule, StackRef, Status};

    fn finding(rule: Rule, status: Status, resource: &str) -> Finding {
        Finding {
            resource: resource.into(),
            region: "ap-northeast-1".into(),
            rule,
            status,
            detail: String::new(),
            backup: None,
        }
    }

    fn coverage(stack: &str, location: &str, reason: Coverage) -> Finding {
        Finding {
            detail: format!("stack {stack}, {location} (vol-1): why\nand more"),
            backup: Some(StackRef {
                stack: stack.into(),
                location: location.into(),
                reason,
            }),
            ..finding(Rule::BackupCoverage, reason.status(), "arn:aws:ec2:x")
        }
    }

    #[test]
    fn backup_coverage_is_one_bounded_result_per_stack_and_not_a_residency_finding() {
        let mut findings = vec![
            finding(Rule::S3Versioning, Status::Compliant, "a"),
            coverage("hachioji", "pvc:a", Coverage::BackupCovered),
        ];
        // Backup coverage does not count as the account's residency.
        findings.push(coverage(
            "hachioji/hachioji",
            "pvc:hachioji-data",
            Coverage::BackupCovered,
        ));
        findings.push(coverage(
            "fuchu/fuchu",
            "pvc:fuchu-data",
            Coverage::BackupCovered,
        ));
        findings.push(coverage(
            "fuchu/fuchu",
            "s3://records",
            Coverage::NoCrossRegionCopy,
        ));
        for i in 0..250 {
            findings.push(coverage(
                &format!("ns{i:03}/s"),
                "pvc:s-data",
                Coverage::AuditIncomplete,
            ));
        }
        let report = Report::new(findings, vec!["ap-northeast-1".into()], &Policy::default());
        let s = summary(&report, "node-a", 3600);
        assert_eq!((s.compliant, s.violations, s.unknown), (1, 0, 0));
        assert!(s.findings.is_empty(), "{:?}", s.findings);
        assert_eq!(s.interval_secs, 3600);
        assert_eq!(s.backups.len(), kenko_api::residency::MAX_STATUS_BACKUPS);
        let fuchu = s.backups.iter().find(|b| b.name == "fuchu").unwrap();
        assert_eq!(
            (fuchu.namespace.as_str(), fuchu.reason.as_str()),
            ("fuchu", "NoCrossRegionCopy")
        );
        assert!(
            fuchu
                .message
                .starts_with("NoCrossRegionCopy s3://records (vol-1): why"),
            "{}",
            fuchu.message
        );
        assert!(!fuchu.message.contains('\n'));
        let h = s.backups.iter().find(|b| b.name == "hachioji").unwrap();
        assert_eq!(h.reason, "BackupCovered");
        // A finding without a NAMESPACE/NAME stack is no stack's result.
        assert!(!s
            .backups
            .iter()
            .any(|b| b.namespace == "hachioji" && b.name.is_empty()));
        // Every one fits the CRD's bounds.
        assert!(s
            .backups
            .iter()
            .all(|b| b.message.len() <= kenko_api::MAX_MESSAGE));
    }

    #[test]
    fn the_summary_keeps_full_counts_and_puts_violations_first() {
        let mut findings = vec![finding(Rule::S3Versioning, Status::Compliant, "a")];
        for i in 0..60 {
            findings.push(finding(
                Rule::AuditRegionUnreachable,
                Status::Unknown,
                &format!("u{i}"),
            ));
        }
        findings.push(finding(
            Rule::NetworkInternetGateway,
            Status::Violation,
            "igw-1",
        ));
        let report = Report::new(findings, vec!["ap-northeast-1".into()], &Policy::default());
        let s = summary(&report, "node-a", 3600);
        assert_eq!((s.compliant, s.violations, s.unknown), (1, 1, 60));
        assert_eq!(s.findings.len(), kenko_api::MAX_STATUS_FINDINGS);
        assert_eq!(s.findings[0].status, "Violation");
        assert_eq!(s.findings[0].resource, "igw-1");
        assert!(s.findings[1..].iter().all(|f| f.status == "Unknown"));
        assert_eq!(s.auditor, "node-a");
    }
}
