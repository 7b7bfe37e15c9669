//! AWS Backup recovery points: a backup is a copy of the data, so a decommissioned stack's
//! recovery points are erased too, in whichever Japanese region their vault lives.
//!
//! A recovery point in a vault under Vault Lock cannot be deleted before the lock's minimum
//! retention has passed; it is reported as blocked with the date it becomes deletable, never
//! as erased.

use std::collections::BTreeMap;

use aws_sdk_backup::error::ProvideErrorMetadata;

use crate::{api, AwsError, Endpoint};

pub use aws_sdk_backup;

/// An AWS Backup client for `region`.
pub async fn backup_client(ep: &Endpoint, region: &str) -> aws_sdk_backup::Client {
    aws_sdk_backup::Client::new(&crate::sdk_config(ep, "backup", region).await)
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

/// A vault's lock, as it bears on deleting: `None` when the vault is not locked.
async fn vault_lock(
    client: &aws_sdk_backup::Client,
    vault_name: &str,
) -> Result<Option<i64>, AwsError> {
    let vault = client
        .describe_backup_vault()
        .backup_vault_name(vault_name)
        .send()
        .await
        .map_err(api("DescribeBackupVault", vault_name))?;
    Ok(vault
        .locked()
        .unwrap_or(false)
        .then(|| vault.min_retention_days().unwrap_or(0)))
}

/// Whether DescribeRecoveryPoint says a point is gone (not found, or deleting/expired).
async fn point_gone(client: &aws_sdk_backup::Client, vault_name: &str, arn: &str) -> bool {
    match client
        .describe_recovery_point()
        .backup_vault_name(vault_name)
        .recovery_point_arn(arn)
        .send()
        .await
    {
        Ok(p) => p
            .status()
            .is_some_and(|s| matches!(s.as_str(), "DELETING" | "EXPIRED" | "DELETED")),
        Err(e) => e.code() == Some("ResourceNotFoundException"),
    }
}

/// Deletes one recovery point unless the vault's lock still keeps it, and checks it is gone.
async fn erase_point(
    client: &aws_sdk_backup::Client,
    region: &str,
    vault_name: &str,
    lock_days: Option<i64>,
    point: &ListedPoint,
    now_epoch: i64,
) -> Result<RecoveryPointErased, AwsError> {
    let (arn, created, bytes) = (point.arn.as_str(), point.created, point.bytes);
    let mut out = RecoveryPointErased {
        region: region.to_string(),
        vault_name: vault_name.to_string(),
        recovery_point_arn: arn.to_string(),
        bytes,
        blocked_until: None,
        gone_after: false,
    };
    if let Some(min_days) = lock_days {
        let created = created.ok_or_else(|| AwsError::Api {
            operation: "DescribeRecoveryPoint",
            resource: arn.to_string(),
            message: "no creation date, so the Vault Lock retention cannot be worked out".into(),
        })?;
        if let Some(until) = locked_until(created, min_days, now_epoch) {
            out.blocked_until = Some(fmt(&aws_sdk_backup::primitives::DateTime::from_secs(until)));
            return Ok(out);
        }
    }
    client
        .delete_recovery_point()
        .backup_vault_name(vault_name)
        .recovery_point_arn(arn)
        .send()
        .await
        .map_err(api("DeleteRecoveryPoint", arn))?;
    out.gone_after = point_gone(client, vault_name, arn).await;
    Ok(out)
}

/// Deletes a recovery point and checks it is gone; a point Vault Lock still protects is
/// reported blocked, untouched.
pub async fn erase_recovery_point(
    ep: &Endpoint,
    region: &str,
    vault_name: &str,
    recovery_point_arn: &str,
    now_epoch: i64,
) -> Result<RecoveryPointErased, AwsError> {
    let client = backup_client(ep, region).await;
    let lock = vault_lock(&client, vault_name).await?;
    let point = client
        .describe_recovery_point()
        .backup_vault_name(vault_name)
        .recovery_point_arn(recovery_point_arn)
        .send()
        .await
        .map_err(api("DescribeRecoveryPoint", recovery_point_arn))?;
    let listed = ListedPoint {
        arn: recovery_point_arn.to_string(),
        created: point.creation_date().map(|d| d.secs()),
        bytes: point.backup_size_in_bytes().unwrap_or(0).max(0) as u64,
        status: point
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        tags: BTreeMap::new(),
    };
    erase_point(&client, region, vault_name, lock, &listed, now_epoch).await
}

/// A recovery point as a vault lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPoint {
    pub arn: String,
    pub created: Option<i64>,
    pub bytes: u64,
    /// `COMPLETED`, `DELETING`, `EXPIRED`...
    pub status: String,
    pub tags: BTreeMap<String, String>,
}

/// Every recovery point of a vault, with its tags (ListRecoveryPointsByBackupVault, then
/// ListTags for each; both paginated).
pub async fn list_points(
    client: &aws_sdk_backup::Client,
    vault_name: &str,
) -> Result<Vec<ListedPoint>, AwsError> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_recovery_points_by_backup_vault()
            .backup_vault_name(vault_name)
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(api("ListRecoveryPointsByBackupVault", vault_name))?;
        for p in page.recovery_points() {
            let Some(arn) = p.recovery_point_arn() else {
                continue;
            };
            out.push(ListedPoint {
                arn: arn.to_string(),
                created: p.creation_date().map(|d| d.secs()),
                bytes: p.backup_size_in_bytes().unwrap_or(0).max(0) as u64,
                status: p
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                tags: BTreeMap::new(),
            });
        }
        next = page.next_token().map(String::from);
        if next.is_none() {
            break;
        }
    }
    for p in &mut out {
        let mut next: Option<String> = None;
        loop {
            let page = client
                .list_tags()
                .resource_arn(&p.arn)
                .set_next_token(next.clone())
                .send()
                .await
                .map_err(api("ListTags", &p.arn))?;
            for (k, v) in page.tags().into_iter().flatten() {
                p.tags.insert(k.clone(), v.clone());
            }
            next = page.next_token().map(String::from);
            if next.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// What erasing a stack's recovery points from one vault did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultErasure {
    pub region: String,
    pub vault_name: String,
    /// The stack's points: deleted, or kept by Vault Lock.
    pub points: Vec<RecoveryPointErased>,
    /// Points of the vault that are not the stack's (left alone).
    pub others: u64,
    /// Listed again afterwards: the stack's points still there that are not blocked (must
    /// be 0).
    pub remaining_after: u64,
}

/// Deletes every recovery point of `vault_name` (in `region`) whose tags `belongs` accepts,
/// except those Vault Lock still keeps (reported blocked), then lists the vault again: a
/// point of the stack still there and not blocked fails the verification.
pub async fn erase_vault(
    ep: &Endpoint,
    region: &str,
    vault_name: &str,
    belongs: &(dyn Fn(&BTreeMap<String, String>) -> bool + Sync),
    now_epoch: i64,
) -> Result<VaultErasure, AwsError> {
    let client = backup_client(ep, region).await;
    let lock = vault_lock(&client, vault_name).await?;
    let listed = list_points(&client, vault_name).await?;
    let (mine, others): (Vec<ListedPoint>, Vec<ListedPoint>) =
        listed.into_iter().partition(|p| belongs(&p.tags));
    let mut points = Vec::new();
    for p in &mine {
        points.push(erase_point(&client, region, vault_name, lock, p, now_epoch).await?);
    }
    let blocked: Vec<&str> = points
        .iter()
        .filter(|p| p.blocked_until.is_some())
        .map(|p| p.recovery_point_arn.as_str())
        .collect();
    let after = list_points(&client, vault_name).await?;
    let remaining_after = after
        .iter()
        .filter(|p| {
            belongs(&p.tags)
                && !blocked.contains(&p.arn.as_str())
                && !matches!(p.status.as_str(), "DELETING" | "EXPIRED" | "DELETED")
        })
        .count() as u64;
    Ok(VaultErasure {
        region: region.to_string(),
        vault_name: vault_name.to_string(),
        points,
        others: others.len() as u64,
        remaining_after,
    })
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn vault_lock_blocks_until_the_minimum_retention_has_passed() {
        let day = 86_400;
        assert_eq!(locked_until(0, 30, 10 * day), Some(30 * day));
        assert_eq!(locked_until(0, 30, 30 * day), None);
        assert_eq!(locked_until(0, 0, 1), None);
    }
}
