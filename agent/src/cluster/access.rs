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
