//! Pure decisions of the in-cluster agent about an ErasureRequest: whether it may run, which
//! of its targets this agent takes, how targets group into erasure jobs (one method per
//! certificate), and the request's overall phase from its targets.

use kenko_api::{ErasurePhase, ErasureRequest, TargetResult};

/// Set on a request to say which node holds its `device:`, `dir:` and `file:` targets.
pub const NODE_ANNOTATION: &str = "kenko.io/node";

/// Whether a request may run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Not approved yet: nothing happens.
    AwaitingApproval,
    /// Approved by its own requester: refused (the CRD and admission refuse it too; the agent
    /// checks again, so a bypassed admission still erases nothing).
    SelfApproved,
    /// Finished (Certified, Failed or Blocked): nothing more to do.
    Finished,
    Run,
}

pub fn gate(r: &ErasureRequest) -> Gate {
    let phase = r.status.as_ref().map(|s| s.phase).unwrap_or_default();
    if matches!(
        phase,
        ErasurePhase::Certified | ErasurePhase::Failed | ErasurePhase::Blocked
    ) {
        return Gate::Finished;
    }
    match &r.spec.approved_by {
        None => Gate::AwaitingApproval,
        Some(a) if a.trim().is_empty() => Gate::AwaitingApproval,
        Some(a) if *a == r.spec.requested_by => Gate::SelfApproved,
        Some(_) => Gate::Run,
    }
}

/// Who runs a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The agent on this node.
    Node(String),
    /// The one elected agent (cloud objects and keys).
    Cloud,
}

/// The erasure method class of a target: one certificate per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// Media on a node: cleared or purged as the request says.
    Media,
    /// Cloud objects (S3 versions, snapshots, recovery points): deleted and listed again.
    Cloud,
    /// Keys: cryptographic erase.
    Keys,
}

impl Group {
    pub fn label(self) -> &'static str {
        match self {
            Group::Media => "media",
            Group::Cloud => "cloud",
            Group::Keys => "keys",
        }
    }

    /// The agent's `--method` for the group.
    pub fn method(self, requested: &str) -> String {
        match self {
            Group::Keys => "crypto".into(),
            Group::Cloud => "clear".into(),
            Group::Media if requested == "purge" => "purge".into(),
            Group::Media => "clear".into(),
        }
    }
}

pub fn group(target: &str) -> Group {
    if target.starts_with("kms:") || target.starts_with("datakey:") {
        Group::Keys
    } else if target.starts_with("s3://")
        || target.starts_with("ebs-snapshot:")
        || target.starts_with("backup-rp:")
        || target.starts_with("backup-vault:")
    {
        Group::Cloud
    } else {
        Group::Media
    }
}

/// Who owns a target; `pvc_node` is the node a `pvc:` target's volume lives on, when known.
pub fn owner(r: &ErasureRequest, target: &str, pvc_node: Option<&str>) -> Option<Owner> {
    match group(target) {
        Group::Cloud | Group::Keys => Some(Owner::Cloud),
        Group::Media if target.starts_with("pvc:") => pvc_node.map(|n| Owner::Node(n.to_string())),
        Group::Media => r
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NODE_ANNOTATION))
            .map(|n| Owner::Node(n.clone())),
    }
}

/// The erasure job id for a request's group on a node: stable, so a restarted agent resumes
/// the same job from its checkpoint.
pub fn job_id(r: &ErasureRequest, group: Group, node: &str) -> String {
    let ns = r.metadata.namespace.clone().unwrap_or_default();
    let name = r.metadata.name.clone().unwrap_or_default();
    let node = if group == Group::Media { node } else { "cloud" };
    format!("{ns}-{name}-{}-{node}", group.label())
}

/// A Kubernetes object name from a certificate file name (`000007-job.json`).
pub fn certificate_resource_name(file_name: &str) -> String {
    let stem = file_name.strip_suffix(".json").unwrap_or(file_name);
    let mut out: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(253);
    out.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// The overall phase from per-target results (targets without a result are pending).
pub fn overall(targets: &[String], results: &[TargetResult]) -> ErasurePhase {
    let phase_of = |t: &String| {
        results
            .iter()
            .find(|r| &r.target == t)
            .map(|r| r.phase)
            .unwrap_or(ErasurePhase::Approved)
    };
    let phases: Vec<ErasurePhase> = targets.iter().map(phase_of).collect();
    if phases.contains(&ErasurePhase::Failed) {
        ErasurePhase::Failed
    } else if phases.iter().all(|p| *p == ErasurePhase::Certified) {
        ErasurePhase::Certified
    } else if phases
        .iter()
        .all(|p| matches!(p, ErasurePhase::Certified | ErasurePhase::Blocked))
    {
        ErasurePhase::Blocked
    } else if phases.contains(&ErasurePhase::Verifying) {
        ErasurePhase::Verifying
    } else if phases.iter().any(|p| {
        matches!(
            p,
            ErasurePhase::Running | ErasurePhase::Certified | ErasurePhase::Blocked
        )
    }) {
        ErasurePhase::Running
    } else {
        ErasurePhase::Approved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kenko_api::ErasureRequestSpec;

    fn request(approved_by: Option<&str>) -> ErasureRequest {
        let mut r = ErasureRequest::new(
            "decommission-hachioji",
            ErasureRequestSpec {
                targets: vec![
                    "pvc:hachioji-data".into(),
                    "dir:/var/lib/kenko/old".into(),
                    "s3://hachioji-records".into(),
                    "kms:arn:aws:kms:ap-northeast-1:123456789012:key/k".into(),
                    "datakey:records".into(),
                ],
                method: "clear".into(),
                verification: "full".into(),
                requested_by: "operator-a".into(),
                approved_by: approved_by.map(String::from),
                stack: Some("hachioji".into()),
            },
        );
        r.metadata.namespace = Some("city".into());
        r
    }

    #[test]
    fn only_a_request_approved_by_someone_else_runs() {
        assert_eq!(gate(&request(None)), Gate::AwaitingApproval);
        assert_eq!(gate(&request(Some(" "))), Gate::AwaitingApproval);
        assert_eq!(gate(&request(Some("operator-a"))), Gate::SelfApproved);
        assert_eq!(gate(&request(Some("auditor-b"))), Gate::Run);
        let mut done = request(Some("auditor-b"));
        done.status = Some(kenko_api::ErasureRequestStatus {
            phase: ErasurePhase::Certified,
            ..Default::default()
        });
        assert_eq!(gate(&done), Gate::Finished);
    }

    #[test]
    fn targets_go_to_their_node_or_the_cloud_agent_in_method_groups() {
        let mut r = request(Some("auditor-b"));
        assert_eq!(
            owner(&r, "pvc:hachioji-data", Some("node-1")),
            Some(Owner::Node("node-1".into()))
        );
        assert_eq!(owner(&r, "pvc:hachioji-data", None), None);
        assert_eq!(
            owner(&r, "dir:/var/lib/kenko/old", None),
            None,
            "no node named"
        );
        r.metadata.annotations = Some([(NODE_ANNOTATION.to_string(), "node-2".to_string())].into());
        assert_eq!(
            owner(&r, "dir:/var/lib/kenko/old", None),
            Some(Owner::Node("node-2".into()))
        );
        assert_eq!(owner(&r, "s3://hachioji-records", None), Some(Owner::Cloud));
        assert_eq!(group("kms:x"), Group::Keys);
        assert_eq!(group("datakey:records"), Group::Keys);
        assert_eq!(group("backup-vault:ap-northeast-3/v"), Group::Cloud);
        assert_eq!(group("device:/dev/sdb"), Group::Media);
        assert_eq!(Group::Media.method("purge"), "purge");
        assert_eq!(Group::Keys.method("clear"), "crypto");
        assert_eq!(
            job_id(&r, Group::Media, "node-2"),
            "city-decommission-hachioji-media-node-2"
        );
        assert_eq!(
            job_id(&r, Group::Keys, "node-2"),
            "city-decommission-hachioji-keys-cloud"
        );
        assert_eq!(
            certificate_resource_name("000007-City_Job.json"),
            "000007-city-job"
        );
    }

    #[test]
    fn the_overall_phase_follows_the_targets() {
        let targets = vec!["a".to_string(), "b".to_string()];
        let res = |t: &str, p| TargetResult {
            target: t.into(),
            phase: p,
            ..Default::default()
        };
        assert_eq!(overall(&targets, &[]), ErasurePhase::Approved);
        assert_eq!(
            overall(&targets, &[res("a", ErasurePhase::Running)]),
            ErasurePhase::Running
        );
        assert_eq!(
            overall(&targets, &[res("a", ErasurePhase::Certified)]),
            ErasurePhase::Running,
            "b has not started"
        );
        assert_eq!(
            overall(
                &targets,
                &[
                    res("a", ErasurePhase::Certified),
                    res("b", ErasurePhase::Certified)
                ]
            ),
            ErasurePhase::Certified
        );
        assert_eq!(
            overall(
                &targets,
                &[
                    res("a", ErasurePhase::Certified),
                    res("b", ErasurePhase::Blocked)
                ]
            ),
            ErasurePhase::Blocked
        );
        assert_eq!(
            overall(
                &targets,
                &[
                    res("a", ErasurePhase::Failed),
                    res("b", ErasurePhase::Certified)
                ]
            ),
            ErasurePhase::Failed
        );
    }
}
