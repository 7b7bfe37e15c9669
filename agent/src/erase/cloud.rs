//! The cloud and key kinds of target: S3 versions, EBS snapshots and volumes, AWS Backup
//! recovery points (one, or a stack's in a vault), KMS keys. Each is deleted (or scheduled
//! for deletion) through `kenko-aws` and then looked up again, and what was found is saved in
//! the checkpoint as the target's [`Progress`], so a resumed job does not delete twice and the
//! certificate reports what the cloud answered.

use std::path::{Path, PathBuf};

use super::target::{
    KmsDone, Progress, RecoveryPointDone, S3Done, SnapDone, VaultDone, VolumeDone,
};
use super::{now, save, Checkpoint, EraseContext, EraseError, EraseTarget, JobSpec, Seal};

/// The cloud and key part of target `ti`, once: each kind's deletion and its check, saved in
/// the checkpoint so a resumed job knows it was done. Media kinds have nothing here.
pub(super) fn cloud_step(
    cp: &mut Checkpoint,
    ti: usize,
    spec: &JobSpec,
    ctx: &EraseContext,
    cp_path: &Path,
    seal: &Seal,
) -> Result<(), EraseError> {
    let t = cp.targets[ti].clone();
    let shown = t.spec.to_string();
    let aws = &ctx.aws;
    match &t.spec {
        // Overwritten or purged above; keys of the store were planned with their evidence.
        EraseTarget::File { .. }
        | EraseTarget::Dir { .. }
        | EraseTarget::Device { .. }
        | EraseTarget::DataKey { .. } => return Ok(()),
        EraseTarget::Pvc { .. } => return Err(EraseError::ClusterTarget(shown)),
        EraseTarget::EbsSnapshot {
            region,
            snapshot_id,
        } if t.progress == Progress::Planned => {
            let d =
                runtime(&shown)?.block_on(kenko_aws::delete_snapshot(aws, region, snapshot_id))?;
            cp.targets[ti].progress = Progress::Snapshot(SnapDone {
                region: d.region,
                snapshot_id: d.snapshot_id,
                volume_gib: d.volume_gib,
                gone_after: d.gone_after,
            });
        }
        EraseTarget::EbsVolume { region, volume_id } if t.progress == Progress::Planned => {
            let d = runtime(&shown)?.block_on(kenko_aws::delete_volume(aws, region, volume_id))?;
            cp.targets[ti].progress = Progress::Volume(VolumeDone {
                region: d.region,
                volume_id: d.volume_id,
                size_gib: d.size_gib,
                encrypted: d.encrypted,
                kms_key_id: d.kms_key_id,
                gone_after: d.gone_after,
            });
        }
        EraseTarget::BackupRecoveryPoint {
            recovery_point_arn, ..
        } if t.progress == Progress::Planned => {
            let region = t.spec.region(&aws.region).unwrap_or_default();
            let vault = t.spec.vault_name().unwrap_or_default();
            let d = runtime(&shown)?.block_on(kenko_aws::backup::erase_recovery_point(
                aws,
                region,
                vault,
                recovery_point_arn,
                kenko_intake::clock::now().timestamp(),
            ))?;
            cp.targets[ti].progress = Progress::RecoveryPoint(RecoveryPointDone::from(d));
        }
        EraseTarget::BackupVault { region, vault } if t.progress == Progress::Planned => {
            let Some(stack) = &spec.stack else {
                return Err(EraseError::NoStack(shown));
            };
            let belongs = |tags: &std::collections::BTreeMap<String, String>| stack.matches(tags);
            let d = runtime(&shown)?.block_on(kenko_aws::backup::erase_vault(
                aws,
                region,
                vault,
                &belongs,
                kenko_intake::clock::now().timestamp(),
            ))?;
            cp.targets[ti].progress = Progress::Vault(VaultDone {
                region: d.region,
                vault_name: d.vault_name,
                points: d.points.into_iter().map(RecoveryPointDone::from).collect(),
                others: d.others,
                remaining_after: d.remaining_after,
            });
        }
        EraseTarget::Kms { key } if t.progress == Progress::Planned => {
            let region = t.spec.region(&aws.region).unwrap_or_default().to_string();
            let k = runtime(&shown)?.block_on(kenko_aws::schedule_key_deletion(
                aws,
                key,
                &region,
                ctx.kms_pending_days,
            ))?;
            cp.targets[ti].progress = Progress::Kms(KmsDone {
                key_id: k.key_id,
                region: k.region,
                state_before: k.state_before,
                deletion_date: k.deletion_date,
                pending_days: k.pending_days,
            });
        }
        EraseTarget::S3 { bucket, prefix } if t.progress == Progress::Planned => {
            cp.targets[ti].progress = Progress::S3(erase_s3(bucket, prefix, ctx)?);
        }
        // Done in an earlier run of the job.
        EraseTarget::EbsSnapshot { .. }
        | EraseTarget::EbsVolume { .. }
        | EraseTarget::BackupRecoveryPoint { .. }
        | EraseTarget::BackupVault { .. }
        | EraseTarget::Kms { .. }
        | EraseTarget::S3 { .. } => return Ok(()),
    }
    save(cp_path, cp, seal)
}

impl From<kenko_aws::backup::RecoveryPointErased> for RecoveryPointDone {
    fn from(d: kenko_aws::backup::RecoveryPointErased) -> Self {
        RecoveryPointDone {
            region: d.region,
            vault_name: d.vault_name,
            recovery_point_arn: d.recovery_point_arn,
            bytes: d.bytes,
            blocked_until: d.blocked_until,
            gone_after: d.gone_after,
        }
    }
}

/// A runtime for one blocking AWS call (the engine runs on a blocking thread).
pub(super) fn runtime(spec: &str) -> Result<tokio::runtime::Runtime, EraseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EraseError::Io {
            path: PathBuf::from(spec),
            message: e.to_string(),
        })
}

/// Deletes every version and delete marker of an `s3://` target and lists it again.
fn erase_s3(bucket: &str, prefix: &str, ctx: &EraseContext) -> Result<S3Done, EraseError> {
    let rt = runtime(bucket)?;
    let r = rt.block_on(kenko_aws::erase_s3(&ctx.aws, bucket, prefix, &now()))?;
    Ok(S3Done {
        region: r.region,
        versions: r.versions_deleted,
        markers: r.delete_markers_deleted,
        bytes: r.bytes_deleted,
        blocked: r
            .blocked
            .into_iter()
            .map(|b| (b.key, b.version_id, b.reason, b.until))
            .collect(),
        remaining_after: r.remaining_after,
        listed_after: r.listed_after,
    })
}

/// Whether every scheduled key is gone: the first key still pending, or whose deletion was
/// cancelled, stops the finalization.
pub(super) fn finalize_decision(
    states: &[(String, kenko_aws::KeyState)],
) -> Result<(), EraseError> {
    if states.is_empty() {
        return Err(EraseError::NothingToFinalize);
    }
    for (key, state) in states {
        match state {
            kenko_aws::KeyState::Gone => {}
            kenko_aws::KeyState::Pending(until) => {
                return Err(EraseError::FinalizePending {
                    key: key.clone(),
                    until: until.clone(),
                })
            }
            kenko_aws::KeyState::Other(s) => {
                return Err(EraseError::DeletionCancelled {
                    key: key.clone(),
                    state: s.clone(),
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn finalize_waits_for_every_key_and_refuses_a_cancelled_deletion() {
        use kenko_aws::KeyState;
        assert_eq!(
            finalize_decision(&[]).unwrap_err().reason(),
            "certificate_nothing_to_finalize"
        );
        assert!(finalize_decision(&[("kms:a".into(), KeyState::Gone)]).is_ok());
        let e = finalize_decision(&[
            ("kms:a".into(), KeyState::Gone),
            (
                "kms:b".into(),
                KeyState::Pending("2026-12-02T00:00:00Z".into()),
            ),
        ])
        .unwrap_err();
        assert_eq!(e.reason(), "certificate_finalize_pending");
        assert!(e.to_string().contains("2026-12-02"));
        let e =
            finalize_decision(&[("kms:a".into(), KeyState::Other("Enabled".into()))]).unwrap_err();
        assert_eq!(e.reason(), "erase_deletion_cancelled");
    }
}
