//! Publishing the account audit to the cluster: the agent holding the `kenko-agent-cloud`
//! Lease writes the summary of each complete `residency audit` into the status of the
//! ResidencyPolicy `default`, where the controller turns it into every HealthStack's
//! ResidencyCompliant condition (so a bucket abroad shows on the stacks, not only in a log).

use kenko_api::{AccountAudit, ResidencyPolicy};
use kube::api::{Api, Patch, PatchParams};

use super::{kube_err, ClusterError};

/// The policy the controller reads.
pub const POLICY: &str = "default";

/// Writes `audit` into `ResidencyPolicy/default`'s status. `Ok(false)` when there is no
/// policy to write to (the controller then uses the built-in one and no audit).
pub async fn publish(client: &kube::Client, audit: &AccountAudit) -> Result<bool, ClusterError> {
    let api = Api::<ResidencyPolicy>::all(client.clone());
    let patch = serde_json::json!({ "status": { "audit": audit } });
    match api
        .patch_status(POLICY, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(kube_err(
            "patch",
            format!("ResidencyPolicy/{POLICY}/status"),
        )(e)),
    }
}
