//! The access monitor's stacks in the cluster: every agent lists the HealthStacks (its
//! ClusterRole reads them) and gives the monitor each one's scope as
//! `kenko_api::access::stack_access` derives it from the spec and the controller's names, so
//! nothing is configured by hand and a new stack is watched within [`REFRESH`]. Each agent
//! follows the app pod logs on its own node; the cloud inputs (CloudWatch, CloudTrail) are
//! read where `[access]` names them.

use std::sync::Arc;
use std::time::Duration;

use kenko_api::access::{stack_access, StackAccess};
use kenko_api::HealthStack;
use kube::api::{Api, ListParams};

use super::{kube_err, ClusterError};
use crate::access::StackFeed;

/// How often the HealthStacks are listed again.
pub const REFRESH: Duration = Duration::from_secs(30);

/// Every HealthStack's scope, by stack name.
pub async fn stacks(client: &kube::Client) -> Result<Vec<StackAccess>, ClusterError> {
    let api = Api::<HealthStack>::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list", "HealthStacks".to_string()))?;
    let mut out: Vec<StackAccess> = list.items.iter().map(stack_access).collect();
    out.sort_by(|a, b| a.stack.cmp(&b.stack));
    Ok(out)
}

/// Keeps `feed` current until the task is dropped. A failed listing keeps the last stacks
/// (logged; the next listing tries again).
pub async fn follow(client: kube::Client, feed: Arc<StackFeed>) {
    loop {
        match stacks(&client).await {
            Ok(s) => {
                let n = s.len();
                if feed.set(s) {
                    tracing::info!(stacks = n, "access monitor: the HealthStacks changed");
                }
            }
            Err(e) => tracing::warn!(
                reason = e.reason(),
                error = %e,
                "access monitor: cannot list the HealthStacks; keeping the last ones"
            ),
        }
        tokio::time::sleep(REFRESH).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use kenko_access::generate::{
        APP_POD, DATA_KEY_SECRET, DB_POD, DB_SECRET, RECORDS_BUCKET, STACK_NAMESPACE,
    };
    use kenko_api::names::StackNames;

    /// The generated month the access rules are scored on names things as kenko does: the
    /// controller's children of the stack `hachioji` and Terraform's records bucket. If either
    /// renames, this fails, and with it the claim that the defaults know kenko's names.
    #[test]
    fn the_generated_logs_use_the_names_the_controller_and_terraform_give() {
        let n = StackNames::of(STACK_NAMESPACE);
        assert_eq!(DB_POD, format!("{}-0", n.db));
        assert!(APP_POD.starts_with(&format!("{}-", n.app)));
        assert_eq!(DB_SECRET, n.db_credentials);
        assert_eq!(DATA_KEY_SECRET, n.data_key);
        let tf = include_str!("../../../terraform/modules/storage/main.tf");
        let pattern = "${var.name}-records-${local.account_id}-${local.primary_region}";
        assert!(
            tf.contains(&format!("bucket = \"{pattern}\"")),
            "storage's records bucket"
        );
        let named = pattern
            .replace("${var.name}", "kenko-prod")
            .replace("${local.account_id}", "111122223333")
            .replace("${local.primary_region}", "ap-northeast-1");
        assert_eq!(RECORDS_BUCKET, named);
    }
}
