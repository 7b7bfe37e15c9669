//! AWS Backup recovery points: a backup is a copy of the data, so a decommissioned stack's
//! recovery points are erased too, in whichever Japanese region their vault lives.
//!
//! A recovery point in a vault under Vault Lock cannot be deleted before the lock's minimum
//! retention has passed; it is reported as blocked with the date it becomes deletable, never
//! as erased.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_backup::error::ProvideErrorMetadata;

use crate::{api, AwsError, Endpoint};

pub use aws_sdk_backup;

/// An AWS Backup client for `region`.
pub async fn backup_client(ep: &Endpoint, region: &str) -> aws_sdk_backup::Client {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_string()));
    if let Some(url) = &ep.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    aws_sdk_backup::Client::new(&loader.load().await)
}

/// A parsed `backup-rp:VAULT_ARN/RECOVERY_POINT_ARN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPointTarget {
    pub region: String,
    pub vault_name: String,
    pub recovery_point_arn: String,
}

/// `backup-rp:arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME/RECOVERY_POINT_ARN`. A vault ARN
/// holds no `/`, so the first one separates the two (a recovery point ARN may hold more, as
/// EBS snapshot ARNs do).
pub fn parse_recovery_point(target: &str) -> Result<RecoveryPointTarget, AwsError> {
    let bad = || AwsError::BadTarget(target.to_string());
    let rest = target.strip_prefix("backup-rp:").ok_or_else(bad)?;
    let (vault_arn, rp_arn) = rest.split_once('/').ok_or_else(bad)?;
    let parts: Vec<&str> = vault_arn.split(':').collect();
    // arn : partition : backup : region : account : backup-vault : name
    if parts.len() != 7
        || parts[0] != "arn"
        || parts[2] != "backup"
        || parts[3].is_empty()
        || parts[5] != "backup-vault"
        || parts[6].is_empty()
        || !rp_arn.starts_with("arn:")
    {
        return Err(bad());
    }
    Ok(RecoveryPointTarget {
        region: parts[3].to_string(),
        vault_name: parts[6].to_string(),
        recovery_point_arn: rp_arn.to_string(),
    })
}

/// What erasing a recovery point did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPointErased {
    pub region: String,
    pub vault_name: String,
    pub recovery_point_arn: String,
    pub bytes: u64,
    /// Set when Vault Lock keeps it: the RFC 3339 date from which it can be deleted.
    pub blocked_until: Option<String>,
    /// DescribeRecoveryPoint no longer finds it (or reports it deleted/expired).
    pub gone_after: bool,
}

fn fmt(d: &aws_sdk_backup::primitives::DateTime) -> String {
    d.fmt(aws_sdk_backup::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

/// When a locked vault lets a recovery point created at `created` (epoch seconds) go, if that
/// is after `now` (epoch seconds).
pub fn locked_until(created: i64, min_retention_days: i64, now: i64) -> Option<i64> {
    let until = created.saturating_add(min_retention_days.saturating_mul(86_400));
    (until > now).then_some(until)
}

/// Deletes a recovery point and checks it is gone; a point Vault Lock still protects is
/// reported blocked, untouched.
pub async fn erase_recovery_point(
    ep: &Endpoint,
    target: &str,
    now_epoch: i64,
) -> Result<RecoveryPointErased, AwsError> {
    let t = parse_recovery_point(target)?;
    let client = backup_client(ep, &t.region).await;
    let vault = client
        .describe_backup_vault()
        .backup_vault_name(&t.vault_name)
        .send()
        .await
        .map_err(api("DescribeBackupVault", &t.vault_name))?;
    let point = client
        .describe_recovery_point()
        .backup_vault_name(&t.vault_name)
        .recovery_point_arn(&t.recovery_point_arn)
        .send()
        .await
        .map_err(api("DescribeRecoveryPoint", &t.recovery_point_arn))?;
    let bytes = point.backup_size_in_bytes().unwrap_or(0).max(0) as u64;
    let mut out = RecoveryPointErased {
        region: t.region.clone(),
        vault_name: t.vault_name.clone(),
        recovery_point_arn: t.recovery_point_arn.clone(),
        bytes,
        blocked_until: None,
        gone_after: false,
    };
    if vault.locked().unwrap_or(false) {
        let created = point
            .creation_date()
            .map(|d| d.secs())
            .ok_or_else(|| AwsError::Api {
                operation: "DescribeRecoveryPoint",
                resource: t.recovery_point_arn.clone(),
                message: "no creation date, so the Vault Lock retention cannot be worked out"
                    .into(),
            })?;
        let min_days = vault.min_retention_days().unwrap_or(0);
        if let Some(until) = locked_until(created, min_days, now_epoch) {
            out.blocked_until = Some(fmt(&aws_sdk_backup::primitives::DateTime::from_secs(until)));
            return Ok(out);
        }
    }
    client
        .delete_recovery_point()
        .backup_vault_name(&t.vault_name)
        .recovery_point_arn(&t.recovery_point_arn)
        .send()
        .await
        .map_err(api("DeleteRecoveryPoint", &t.recovery_point_arn))?;
    out.gone_after = match client
        .describe_recovery_point()
        .backup_vault_name(&t.vault_name)
        .recovery_point_arn(&t.recovery_point_arn)
        .send()
        .await
    {
        Ok(p) => p.status().is_some_and(|s| {
            matches!(s.as_str(), "DELETING" | "EXPIRED") || s.as_str() == "DELETED"
        }),
        Err(e) => e.code() == Some("ResourceNotFoundException"),
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_point_targets_parse_with_slashes_in_the_point() {
        let t = parse_recovery_point(
            "backup-rp:arn:aws:backup:ap-northeast-3:123456789012:backup-vault:kenko-osaka/arn:aws:ec2:ap-northeast-3::snapshot/snap-0abc",
        )
        .unwrap();
        assert_eq!(t.region, "ap-northeast-3");
        assert_eq!(t.vault_name, "kenko-osaka");
        assert_eq!(
            t.recovery_point_arn,
            "arn:aws:ec2:ap-northeast-3::snapshot/snap-0abc"
        );
        for bad in [
            "backup-rp:",
            "backup-rp:arn:aws:backup:ap-northeast-1:1:backup-vault:v",
            "backup-rp:arn:aws:s3:ap-northeast-1:1:backup-vault:v/arn:x",
            "backup-rp:arn:aws:backup::1:backup-vault:v/arn:x",
            "backup-rp:arn:aws:backup:ap-northeast-1:1:backup-vault:/arn:x",
            "backup-rp:arn:aws:backup:ap-northeast-1:1:backup-vault:v/snap-1",
        ] {
            assert!(parse_recovery_point(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vault_lock_blocks_until_the_minimum_retention_has_passed() {
        let day = 86_400;
        assert_eq!(locked_until(0, 30, 10 * day), Some(30 * day));
        assert_eq!(locked_until(0, 30, 30 * day), None);
        assert_eq!(locked_until(0, 0, 1), None);
    }
}
