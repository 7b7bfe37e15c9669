//! AWS Backup facts of one region: the vaults (with their recovery-point counts) and every
//! plan's rules, copy actions, retention and schedule; where a stack's data is, each plan's
//! selections too. And, for `backup.coverage`, one resource's recent recovery points in a
//! region's vaults and the copy jobs of its recovery points.
//!
//! Recovery points are not listed one by one: a recovery point is stored in its vault's
//! region, so the vault's region and `NumberOfRecoveryPoints` (from ListBackupVaults) answer
//! `backup.recovery_point_region` with one call per region instead of one per vault and page.
//! (It also keeps the audit working against emulators without ListRecoveryPointsByBackupVault,
//! as moto 5.1.22 is.)
//!
//! moto 5.1.22 has no backup selections, no recovery points and no copy jobs either: there,
//! those reads fail, and `backup.coverage` is Unknown (AuditIncomplete), never covered. Their
//! logic is tested on recorded answers (`coverage/tests.rs`, `tests/common/backup_audit_stub.rs`).

use aws_sdk_backup::primitives::DateTime;

use super::clients::{err_text, Clients};
use super::coverage::{
    condition_key, ConditionOp, CopyJobFacts, PointFacts, SelectionFacts, TagCondition,
};
use super::{BackupFacts, CopyFacts, Fact, PlanFacts, PlanRuleFacts, VaultFacts};

/// The region's vaults and plans; with `selections`, each plan's backup selections too.
pub(super) async fn collect(c: &Clients, region: &str, selections: bool) -> Fact<BackupFacts> {
    let client = c.backup(region);
    let mut facts = BackupFacts::default();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_backup_vaults()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("ListBackupVaults", e))?;
        for v in page.backup_vault_list() {
            facts.vaults.push(VaultFacts {
                arn: v.backup_vault_arn().unwrap_or_default().to_string(),
                name: v.backup_vault_name().unwrap_or_default().to_string(),
                recovery_points: v.number_of_recovery_points(),
            });
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut token: Option<String> = None;
    let mut plans = Vec::new();
    loop {
        let page = client
            .list_backup_plans()
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("ListBackupPlans", e))?;
        for p in page.backup_plans_list() {
            plans.push((
                p.backup_plan_id().unwrap_or_default().to_string(),
                p.backup_plan_arn().unwrap_or_default().to_string(),
            ));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    for (id, arn) in plans {
        let rules = client
            .get_backup_plan()
            .backup_plan_id(&id)
            .send()
            .await
            .map_err(|e| err_text("GetBackupPlan", e))
            .map(|o| {
                o.backup_plan()
                    .map(|p| {
                        p.rules()
                            .iter()
                            .map(|r| PlanRuleFacts {
                                name: r.rule_name().to_string(),
                                delete_after_days: r
                                    .lifecycle()
                                    .and_then(|l| l.delete_after_days()),
                                copies: r
                                    .copy_actions()
                                    .iter()
                                    .map(|c| CopyFacts {
                                        destination_vault_arn: c
                                            .destination_backup_vault_arn()
                                            .to_string(),
                                        delete_after_days: c
                                            .lifecycle()
                                            .and_then(|l| l.delete_after_days()),
                                    })
                                    .collect(),
                                schedule: r.schedule_expression().map(String::from),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
        let selections = if selections {
            Some(plan_selections(&client, &id).await)
        } else {
            None
        };
        facts.plans.push(PlanFacts {
            id,
            arn,
            rules,
            selections,
        });
    }
    facts.vaults.sort_by(|a, b| a.arn.cmp(&b.arn));
    Ok(facts)
}

/// A plan's backup selections (ListBackupSelections, then GetBackupSelection for each).
async fn plan_selections(
    client: &aws_sdk_backup::Client,
    plan_id: &str,
) -> Fact<Vec<SelectionFacts>> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_backup_selections()
            .backup_plan_id(plan_id)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("ListBackupSelections", e))?;
        ids.extend(
            page.backup_selections_list()
                .iter()
                .filter_map(|m| m.selection_id().map(String::from)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for id in ids {
        let got = client
            .get_backup_selection()
            .backup_plan_id(plan_id)
            .selection_id(&id)
            .send()
            .await
            .map_err(|e| err_text("GetBackupSelection", e))?;
        let Some(sel) = got.backup_selection() else {
            return Err(format!(
                "GetBackupSelection {id}: no selection in the answer"
            ));
        };
        let mut conditions = Vec::new();
        if let Some(c) = sel.conditions() {
            for (op, params) in [
                (ConditionOp::StringEquals, c.string_equals()),
                (ConditionOp::StringNotEquals, c.string_not_equals()),
                (ConditionOp::StringLike, c.string_like()),
                (ConditionOp::StringNotLike, c.string_not_like()),
            ] {
                for p in params {
                    conditions.push(TagCondition {
                        op,
                        key: condition_key(p.condition_key().unwrap_or_default()),
                        value: p.condition_value().unwrap_or_default().to_string(),
                    });
                }
            }
        }
        out.push(SelectionFacts {
            name: sel.selection_name().to_string(),
            resources: sel.resources().to_vec(),
            not_resources: sel.not_resources().to_vec(),
            list_of_tags: sel
                .list_of_tags()
                .iter()
                .map(|t| {
                    (
                        condition_key(t.condition_key()),
                        t.condition_value().to_string(),
                    )
                })
                .collect(),
            conditions,
        });
    }
    Ok(out)
}

/// The recovery points of `resource_arn` created since `since` (Unix seconds) in each of
/// `vaults` of `region` (ListRecoveryPointsByBackupVault, filtered by resource and date).
pub(super) async fn resource_points(
    c: &Clients,
    region: &str,
    vaults: &[String],
    resource_arn: &str,
    since: i64,
) -> Fact<Vec<PointFacts>> {
    let client = c.backup(region);
    let mut out = Vec::new();
    for vault in vaults {
        let mut token: Option<String> = None;
        loop {
            let page = client
                .list_recovery_points_by_backup_vault()
                .backup_vault_name(vault)
                .by_resource_arn(resource_arn)
                .by_created_after(DateTime::from_secs(since))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| err_text("ListRecoveryPointsByBackupVault", e))?;
            out.extend(page.recovery_points().iter().filter_map(|p| {
                Some(PointFacts {
                    arn: p.recovery_point_arn()?.to_string(),
                    vault_arn: p.backup_vault_arn().unwrap_or_default().to_string(),
                    source_vault_arn: p.source_backup_vault_arn().map(String::from),
                    created: p.creation_date()?.secs(),
                    status: p
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                })
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(out)
}

/// The copy jobs of `resource_arn`'s recovery points started in `region` since `since`.
pub(super) async fn copy_jobs(
    c: &Clients,
    region: &str,
    resource_arn: &str,
    since: i64,
) -> Fact<Vec<CopyJobFacts>> {
    let client = c.backup(region);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_copy_jobs()
            .by_resource_arn(resource_arn)
            .by_created_after(DateTime::from_secs(since))
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| err_text("ListCopyJobs", e))?;
        out.extend(page.copy_jobs().iter().map(|j| {
            CopyJobFacts {
                source_point_arn: j
                    .source_recovery_point_arn()
                    .unwrap_or_default()
                    .to_string(),
                destination_vault_arn: j
                    .destination_backup_vault_arn()
                    .unwrap_or_default()
                    .to_string(),
                state: j
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            }
        }));
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}
