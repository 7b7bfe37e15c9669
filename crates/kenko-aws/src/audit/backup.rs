//! AWS Backup facts of one region: the vaults (with their recovery-point counts) and every
//! plan's rules, copy actions and retention.
//!
//! Recovery points are not listed one by one: a recovery point is stored in its vault's
//! region, so the vault's region and `NumberOfRecoveryPoints` (from ListBackupVaults) answer
//! `backup.recovery_point_region` with one call per region instead of one per vault and page.
//! (It also keeps the audit working against emulators without ListRecoveryPointsByBackupVault,
//! as moto 5.1.22 is.)

use super::clients::{err_text, Clients};
use super::{BackupFacts, CopyFacts, Fact, PlanFacts, PlanRuleFacts, VaultFacts};

pub(super) async fn collect(c: &Clients, region: &str) -> Fact<BackupFacts> {
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
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
        facts.plans.push(PlanFacts { id, arn, rules });
    }
    facts.vaults.sort_by(|a, b| a.arn.cmp(&b.arn));
    Ok(facts)
}
