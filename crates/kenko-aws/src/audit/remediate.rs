//! `--remediate`: removes what points outside Japan, and nothing else. Each action re-reads
//! the current configuration and writes it back without the offending entries, so whatever
//! changed since the sweep (and every other rule) is kept as it is. Every action taken is
//! logged; names of buckets, plans and vaults only.

use aws_sdk_backup::types::{BackupPlanInput, BackupRuleInput};
use aws_sdk_s3::types::ReplicationConfiguration;

use super::clients::{err_text, Clients};
use super::{arn_region, in_japan, Action};

/// Carries out the actions, setting each one's outcome (`done` or `failed` with the reason).
pub async fn remediate(c: &Clients, actions: &mut [Action]) {
    for a in actions.iter_mut() {
        let result = match a.kind.as_str() {
            "remove_replication_rules" => remove_replication_rules(c, a).await,
            "remove_copy_actions" => remove_copy_actions(c, a).await,
            other => Err(format!("unknown action {other}")),
        };
        match result {
            Ok(()) => {
                a.outcome = "done".into();
                tracing::warn!(
                    action = %a.kind,
                    resource = %a.resource,
                    region = %a.region,
                    removed = %a.removes.join(", "),
                    "residency remediation: removed what pointed outside Japan"
                );
            }
            Err(e) => {
                tracing::error!(
                    action = %a.kind,
                    resource = %a.resource,
                    region = %a.region,
                    error = %e,
                    "residency remediation failed"
                );
                a.outcome = "failed".into();
                a.error = Some(e);
            }
        }
    }
}

async fn remove_replication_rules(c: &Clients, a: &Action) -> Result<(), String> {
    let bucket = a.resource.trim_start_matches("arn:aws:s3:::");
    let s3 = c.s3(&a.region);
    let current = s3
        .get_bucket_replication()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| err_text("GetBucketReplication", e))?;
    let Some(conf) = current.replication_configuration() else {
        return Err("the bucket has no replication configuration any more".into());
    };
    let (remove, keep): (Vec<_>, Vec<_>) = conf
        .rules()
        .iter()
        .enumerate()
        .partition(|(i, r)| a.removes.contains(&super::s3::rule_id(r.id(), *i)));
    if remove.is_empty() {
        return Err("none of the rules to remove is in the configuration any more".into());
    }
    if keep.is_empty() {
        s3.delete_bucket_replication()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| err_text("DeleteBucketReplication", e))?;
    } else {
        let new = ReplicationConfiguration::builder()
            .role(conf.role())
            .set_rules(Some(keep.into_iter().map(|(_, r)| r.clone()).collect()))
            .build()
            .map_err(|e| format!("building the replication configuration: {e}"))?;
        s3.put_bucket_replication()
            .bucket(bucket)
            .replication_configuration(new)
            .send()
            .await
            .map_err(|e| err_text("PutBucketReplication", e))?;
    }
    Ok(())
}

async fn remove_copy_actions(c: &Clients, a: &Action) -> Result<(), String> {
    let plan_id = a
        .resource
        .rsplit(':')
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: no plan id in the ARN", a.resource))?;
    let backup = c.backup(&a.region);
    let current = backup
        .get_backup_plan()
        .backup_plan_id(plan_id)
        .send()
        .await
        .map_err(|e| err_text("GetBackupPlan", e))?;
    let plan = current
        .backup_plan()
        .ok_or_else(|| "GetBackupPlan returned no plan".to_string())?;
    // Every field of the plan and its rules is carried over; only copy actions to a vault
    // outside Japan are left out.
    let rules: Vec<BackupRuleInput> = plan
        .rules()
        .iter()
        .map(|r| {
            let copies = r
                .copy_actions()
                .iter()
                .filter(|c| arn_region(c.destination_backup_vault_arn()).is_none_or(in_japan))
                .cloned()
                .collect();
            BackupRuleInput::builder()
                .rule_name(r.rule_name())
                .target_backup_vault_name(r.target_backup_vault_name())
                .set_target_logically_air_gapped_backup_vault_arn(
                    r.target_logically_air_gapped_backup_vault_arn()
                        .map(String::from),
                )
                .set_schedule_expression(r.schedule_expression().map(String::from))
                .set_start_window_minutes(r.start_window_minutes())
                .set_completion_window_minutes(r.completion_window_minutes())
                .set_lifecycle(r.lifecycle().cloned())
                .set_recovery_point_tags(r.recovery_point_tags().cloned())
                .set_copy_actions(Some(copies))
                .set_enable_continuous_backup(r.enable_continuous_backup())
                .set_schedule_expression_timezone(
                    r.schedule_expression_timezone().map(String::from),
                )
                .set_index_actions(Some(r.index_actions().to_vec()))
                .set_scan_actions(Some(r.scan_actions().to_vec()))
                .build()
                .map_err(|e| format!("building rule {}: {e}", r.rule_name()))
        })
        .collect::<Result<_, _>>()?;
    let input = BackupPlanInput::builder()
        .backup_plan_name(plan.backup_plan_name())
        .set_rules(Some(rules))
        .set_advanced_backup_settings(Some(plan.advanced_backup_settings().to_vec()))
        .set_scan_settings(Some(plan.scan_settings().to_vec()))
        .build()
        .map_err(|e| format!("building the plan: {e}"))?;
    backup
        .update_backup_plan()
        .backup_plan_id(plan_id)
        .backup_plan(input)
        .send()
        .await
        .map_err(|e| err_text("UpdateBackupPlan", e))?;
    Ok(())
}
