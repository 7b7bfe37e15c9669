//! Pure decisions of the in-cluster agent about an ErasureRequest: whether it may run, who
//! erases each target (the agent on a node, or the one cloud agent) and as what, each
//! target's job id, and the request's phase and reason from its targets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kenko_api::names::StackSelector;
use kenko_api::{ErasurePhase, ErasureRequest, Target, TargetKind, TargetResult};
use sha2::{Digest, Sha256};

/// Set on a request to say which node holds its `device:`, `dir:` and `file:` targets.
pub const NODE_ANNOTATION: &str = "kenko.io/node";
/// The EBS CSI driver's name, as a PersistentVolume's `spec.csi.driver` carries it.
pub const EBS_CSI_DRIVER: &str = "ebs.csi.aws.com";
/// Zone labels an EBS CSI volume's node affinity may use (the driver's own, and the
/// well-known one).
const ZONE_KEYS: [&str; 2] = [
    "topology.ebs.csi.aws.com/zone",
    "topology.kubernetes.io/zone",
];

/// Whether a request may run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Not approved yet: nothing happens.
    AwaitingApproval,
    /// Approved by its own requester: refused (the CRD and admission refuse it too; the agent
    /// checks again, so a bypassed admission still erases nothing).
    SelfApproved,
    /// Finished (every target Certified, Failed or Blocked): nothing more to do.
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

/// Who erases a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The agent on this node.
    Node(String),
    /// The one agent holding the cloud Lease (cloud objects, keys, detached EBS volumes).
    Cloud,
}

/// What becomes of one target of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Erased by `owner` as `engine` (the target itself, or what a cluster target stands for).
    Erase { owner: Owner, engine: Target },
    /// Cannot be erased as asked; reported Failed (by the cloud agent, so once) with a stable
    /// reason and one line saying why.
    Refuse {
        reason: &'static str,
        message: String,
    },
}

fn refuse(reason: &'static str, message: String) -> Resolved {
    Resolved::Refuse { reason, message }
}

/// What the cluster said about a `pvc:` target's claim and its volume.
#[derive(Debug, Clone, Default)]
pub struct VolumeFacts {
    pub claim: Option<PersistentVolumeClaim>,
    pub volume: Option<PersistentVolume>,
}

/// The region of a zone (`ap-northeast-1a` → `ap-northeast-1`).
fn region_of_zone(zone: &str) -> Option<String> {
    let region = zone.trim_end_matches(|c: char| c.is_ascii_lowercase());
    (region.len() < zone.len() && region.ends_with(|c: char| c.is_ascii_digit()))
        .then(|| region.to_string())
}

/// Where a bound volume lives and so who erases it: a local or hostPath volume by the agent on
/// its node (overwritten as a folder under `host_root`), an EBS CSI volume by the cloud agent
/// (deleted once detached; its region from its zone, else `default_region`).
pub fn resolve_volume(
    pvc: &str,
    facts: &VolumeFacts,
    host_root: &str,
    default_region: &str,
) -> Resolved {
    let Some(claim) = &facts.claim else {
        return refuse(
            "erase_pvc_missing",
            format!("PersistentVolumeClaim {pvc} does not exist, so its volume cannot be found or proven erased"),
        );
    };
    let Some(volume_name) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
        return refuse(
            "erase_pvc_unbound",
            format!("PersistentVolumeClaim {pvc} is not bound to a volume"),
        );
    };
    let Some(pv) = &facts.volume else {
        return refuse(
            "erase_pv_missing",
            format!("PersistentVolume {volume_name} of claim {pvc} does not exist"),
        );
    };
    let spec = pv.spec.clone().unwrap_or_default();
    let terms: Vec<_> = spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default();
    let label = |keys: &[&str]| {
        terms.iter().find_map(|t| {
            t.match_expressions.iter().flatten().find_map(|e| {
                keys.contains(&e.key.as_str())
                    .then(|| e.values.as_ref().and_then(|v| v.first().cloned()))
                    .flatten()
            })
        })
    };
    if let Some(path) = spec
        .local
        .as_ref()
        .map(|l| l.path.clone())
        .or(spec.host_path.as_ref().map(|h| h.path.clone()))
    {
        let Some(node) = label(&["kubernetes.io/hostname"]) else {
            return refuse(
                "erase_volume_no_node",
                format!("PersistentVolume {volume_name} names no node (kubernetes.io/hostname in its node affinity)"),
            );
        };
        return Resolved::Erase {
            owner: Owner::Node(node),
            engine: Target::Dir {
                path: format!("{host_root}{path}"),
            },
        };
    }
    if let Some(csi) = spec.csi.as_ref().filter(|c| c.driver == EBS_CSI_DRIVER) {
        let region = label(&ZONE_KEYS)
            .and_then(|z| region_of_zone(&z))
            .unwrap_or_else(|| default_region.to_string());
        let target = format!("ebs-volume:{region}/{}", csi.volume_handle);
        return match target.parse::<Target>() {
            Ok(engine) => Resolved::Erase {
                owner: Owner::Cloud,
                engine,
            },
            Err(e) => refuse(e.reason(), format!("PersistentVolume {volume_name}: {e}")),
        };
    }
    let kind = spec
        .csi
        .as_ref()
        .map(|c| format!("a {} CSI", c.driver))
        .unwrap_or_else(|| "an unsupported".into());
    refuse(
        "erase_volume_unsupported",
        format!("PersistentVolume {volume_name} is {kind} volume; kenko erases local, hostPath and EBS CSI ({EBS_CSI_DRIVER}) volumes"),
    )
}

/// Who erases a target that is not a `pvc:` (those need [`resolve_volume`]), and as what.
pub fn resolve(r: &ErasureRequest, target: &Target) -> Resolved {
    match target {
        Target::Pvc { name } => refuse(
            "erase_pvc_missing",
            format!("PersistentVolumeClaim {name} was not looked up"),
        ),
        // The agent's own keys are the agent's, shared by every stack it serves: a stack's
        // data is crypto-erased by its own KMS key, never by destroying one all stacks use.
        Target::DataKey { name } if r.spec.stack.is_some() => refuse(
            "erase_shared_key_refused",
            format!("datakey:{name} is a key of the agent, shared by every stack it serves; a stack's data is crypto-erased by its own KMS key (kms:)"),
        ),
        Target::BackupVault { .. } if r.spec.stack.is_none() => refuse(
            "erase_stack_unnamed",
            "a backup-vault: target erases a stack's recovery points; the request names no stack".into(),
        ),
        Target::File { .. } | Target::Dir { .. } | Target::Device { .. } => match r
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NODE_ANNOTATION))
        {
            Some(n) => Resolved::Erase {
                owner: Owner::Node(n.clone()),
                engine: target.clone(),
            },
            None => refuse(
                "erase_no_node",
                format!("{} targets are erased by the agent on their node; the request has no {NODE_ANNOTATION} annotation", target.kind().prefix()),
            ),
        },
        Target::BackupVault { .. }
        | Target::S3 { .. }
        | Target::EbsSnapshot { .. }
        | Target::EbsVolume { .. }
        | Target::BackupRecoveryPoint { .. }
        | Target::Kms { .. }
        | Target::DataKey { .. } => Resolved::Erase {
            owner: Owner::Cloud,
            engine: target.clone(),
        },
    }
}

/// The stack a request's `backup-vault:` targets select recovery points of.
pub fn stack_selector(r: &ErasureRequest) -> Option<StackSelector> {
    let ns = r.metadata.namespace.as_deref()?;
    Some(StackSelector::of(ns, r.spec.stack.as_deref()?))
}

/// The erasure job id of one target of a request: stable, so a restarted agent resumes the
/// same job from its checkpoint, and distinct per request (by uid), so a new request for the
/// same stack (a retry) never meets an old job's checkpoint.
pub fn job_id(r: &ErasureRequest, target: &str) -> String {
    let ns = r.metadata.namespace.clone().unwrap_or_default();
    let name = r.metadata.name.clone().unwrap_or_default();
    let uid: String = r
        .metadata
        .uid
        .clone()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let t = hex::encode(&Sha256::digest(target.as_bytes())[..4]);
    let kind = TargetKind::of(target)
        .map(|k| k.prefix().trim_end_matches([':', '/']))
        .unwrap_or("target");
    format!("{ns}-{name}-{uid}-{kind}-{t}")
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

fn terminal(p: ErasurePhase) -> bool {
    matches!(
        p,
        ErasurePhase::Certified | ErasurePhase::Failed | ErasurePhase::Blocked
    )
}

/// The overall phase from per-target results (targets without a result are pending). The
/// request is Failed or Blocked only once every target is done: one failed target never
/// stops the others from being erased.
pub fn overall(targets: &[String], results: &[TargetResult]) -> ErasurePhase {
    let phase_of = |t: &String| {
        results
            .iter()
            .find(|r| &r.target == t)
            .map(|r| r.phase)
            .unwrap_or(ErasurePhase::Approved)
    };
    let phases: Vec<ErasurePhase> = targets.iter().map(phase_of).collect();
    if phases.iter().all(|p| terminal(*p)) {
        if phases.contains(&ErasurePhase::Failed) {
            ErasurePhase::Failed
        } else if phases.contains(&ErasurePhase::Blocked) {
            ErasurePhase::Blocked
        } else {
            ErasurePhase::Certified
        }
    } else if phases.contains(&ErasurePhase::Verifying) {
        ErasurePhase::Verifying
    } else if phases.iter().any(|p| *p != ErasurePhase::Approved) {
        ErasurePhase::Running
    } else {
        ErasurePhase::Approved
    }
}

/// The request's reason and message: the first failed target in spec order (else the first
/// blocked one) decides the reason, so the stack's condition and its Event say the same, and
/// the message counts how many failed.
pub fn summary(targets: &[String], results: &[TargetResult]) -> Option<(String, String)> {
    let by_target: BTreeMap<&str, &TargetResult> =
        results.iter().map(|r| (r.target.as_str(), r)).collect();
    let with = |phase: ErasurePhase| -> Vec<&TargetResult> {
        targets
            .iter()
            .filter_map(|t| by_target.get(t.as_str()).copied())
            .filter(|r| r.phase == phase)
            .collect()
    };
    let (list, what) = match (with(ErasurePhase::Failed), with(ErasurePhase::Blocked)) {
        (f, _) if !f.is_empty() => (f, "failed"),
        (_, b) if !b.is_empty() => (b, "blocked"),
        _ => return None,
    };
    let first = list[0];
    let reason = first
        .reason
        .clone()
        .unwrap_or_else(|| format!("erase_{what}"));
    let message = kenko_api::status_message(&format!(
        "{} of {} targets {what}; first {}: {}",
        list.len(),
        targets.len(),
        first.target,
        first.message.clone().unwrap_or_default()
    ));
    Some((reason, message))
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
