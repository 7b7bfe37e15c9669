//! Publishing the account audit to the cluster: the agent holding the `kenko-agent-cloud`
//! Lease writes the summary of each complete `residency audit` into the status of the
//! ResidencyPolicy `default`, where the controller turns it into every HealthStack's
//! ResidencyCompliant condition (so a bucket abroad shows on the stacks, not only in a log).

use kenko_api::{AccountAudit, ResidencyPolicy};
use kube::api::{Api, Patch, PatchParams};

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

/// The status summary of a residency report: the counts in full, and the findings that are
/// not compliant (violations first) up to the status's limit.
pub fn summary(report: &kenko_aws::audit::Report, auditor: &str) -> AccountAudit {
    use kenko_aws::audit::Status;
    let mut findings: Vec<&kenko_aws::audit::Finding> = report
        .findings
        .iter()
        .filter(|f| f.status != Status::Compliant)
        .collect();
    findings.sort_by_key(|f| f.status != Status::Violation);
    AccountAudit {
        completed_at: report.finished_at.clone(),
        auditor: kenko_api::one_line(auditor, 253),
        regions: report.regions.clone(),
        compliant: report.summary.compliant as u32,
        violations: report.summary.violation as u32,
        unknown: report.summary.unknown as u32,
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
    mut reports: tokio::sync::watch::Receiver<Option<std::sync::Arc<kenko_aws::audit::Report>>>,
) {
    while reports.changed().await.is_ok() {
        let Some(report) = reports.borrow_and_update().clone() else {
            continue;
        };
        match publish(&client, &summary(&report, &auditor)).await {
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
    use kenko_aws::audit::{Finding, Policy, Report, Rule, Status};

    fn finding(rule: Rule, status: Status, resource: &str) -> Finding {
        Finding {
            resource: resource.into(),
            region: "ap-northeast-1".into(),
            rule,
            status,
            detail: String::new(),
        }
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
        let s = summary(&report, "node-a");
        assert_eq!((s.compliant, s.violations, s.unknown), (1, 1, 60));
        assert_eq!(s.findings.len(), kenko_api::MAX_STATUS_FINDINGS);
        assert_eq!(s.findings[0].status, "Violation");
        assert_eq!(s.findings[0].resource, "igw-1");
        assert!(s.findings[1..].iter().all(|f| f.status == "Unknown"));
        assert_eq!(s.auditor, "node-a");
    }
}
