//! A stack's access monitoring in the cluster, defined once for the parts that must agree: the
//! controller, which names the stack's pods and containers, and the node agent, which follows
//! the app's container logs on its node and watches the Kubernetes audit log and CloudTrail
//! for the stack's database pods, buckets and keys. [`stack_access`] derives what the monitor
//! needs from the HealthStack and the names the controller gives its children, so no pattern is
//! written by hand; the agent reads the same struct from `[[access.stacks]]` of its
//! configuration file.

use serde::{Deserialize, Serialize};

#[cfg(feature = "crd")]
use crate::names::StackNames;
#[cfg(feature = "crd")]
use crate::HealthStack;

/// Where the kubelet keeps container logs on a node (`NAMESPACE_POD_UID/CONTAINER/N.log`, the
/// CRI log format). The node agent mounts it read-only.
pub const POD_LOG_DIR: &str = "/var/log/pods";
/// The health application's container in the stack's app pods: its stdout is the access log
/// (docs/access-log-format.md).
pub const APP_CONTAINER: &str = "app";
/// The node agent's configuration (`manifests/agent/configmap.yaml`, in the agent's
/// namespace): the cluster's cloud inputs (the audit log group, the trail's prefix), as
/// `terraform output -raw agent_config` renders them; mounted at [`NODE_CONFIG_DIR`], read
/// through `KENKO_CONFIG`.
pub const NODE_CONFIGMAP: &str = "kenko-agent";
pub const NODE_CONFIG_DIR: &str = "/etc/kenko/agent";
pub const NODE_CONFIG_KEY: &str = "kenko.toml";
/// The ConfigMap (in the agent's namespace, written by the city's staff office) holding the
/// staff roster under [`ROSTER_KEY`]; mounted at [`ROSTER_DIR`].
pub const ROSTER_CONFIGMAP: &str = "kenko-staff-roster";
pub const ROSTER_KEY: &str = "roster.csv";
pub const ROSTER_DIR: &str = "/etc/kenko/roster";

/// What the access monitor knows of one stack.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct StackAccess {
    /// `namespace/name` of the HealthStack: what its alerts name.
    pub stack: String,
    pub namespace: String,
    /// Its app pods (a glob of pod names in the namespace): their [`APP_CONTAINER`] logs are
    /// its health access log.
    pub app_pods: String,
    /// Its database pods (`namespace/name` globs).
    #[serde(default)]
    pub db_pods: Vec<String>,
    /// Where its business data is in S3: `bucket` or `bucket/prefix`.
    #[serde(default)]
    pub records: Vec<String>,
    /// Its KMS keys (ARN globs).
    #[serde(default)]
    pub kms_keys: Vec<String>,
    /// `HH:MM-HH:MM`, Asia/Tokyo.
    pub office_hours: String,
    /// Alertmanager receivers of its alerts.
    #[serde(default)]
    pub alert_receivers: Vec<String>,
}

#[cfg(feature = "crd")]
/// `s3://bucket/prefix/` as the monitor matches it: `bucket/prefix/` (or `bucket`).
fn s3_scope(url: &str) -> Option<String> {
    let rest = url.strip_prefix("s3://")?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return None;
    }
    Some(match rest.split_once('/') {
        Some((b, p)) => format!("{b}/{p}/"),
        None => rest.to_string(),
    })
}

#[cfg(feature = "crd")]
/// A KMS key ARN in any region: a multi-Region key's replica (Osaka) has the same key id.
fn any_region(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(5, ':').collect();
    match parts.as_slice() {
        [arn, partition, "kms", _region, rest] => format!("{arn}:{partition}:kms:*:{rest}"),
        _ => arn.to_string(),
    }
}

#[cfg(feature = "crd")]
/// The monitor's view of `stack`: its namespace, the controller's names of its app and
/// database pods, its records bucket, replica and intake inbox, its KMS key (and the Osaka
/// replica of it), office hours and receivers.
pub fn stack_access(stack: &HealthStack) -> StackAccess {
    let name = stack.metadata.name.clone().unwrap_or_default();
    let namespace = stack
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let n = StackNames::of(&name);
    let s = &stack.spec;
    let records = [
        s.storage.records_bucket.as_deref(),
        s.storage.records_replica_bucket.as_deref(),
        Some(s.intake.inbox.as_str()),
    ]
    .into_iter()
    .flatten()
    .filter_map(s3_scope)
    .collect();
    StackAccess {
        stack: format!("{namespace}/{name}"),
        app_pods: format!("{}-*", n.app),
        db_pods: vec![format!("{namespace}/{}-*", n.db)],
        records,
        kms_keys: s
            .storage
            .kms_key_arn
            .iter()
            .map(|a| any_region(a))
            .collect(),
        office_hours: s.monitoring.office_hours.clone(),
        alert_receivers: s.monitoring.alert_receivers.clone(),
        namespace,
    }
}

#[cfg(all(test, feature = "crd"))]
mod tests {
    use super::*;

    #[test]
    fn a_stacks_scope_is_made_of_the_names_kenko_gives() {
        let mut s = crate::samples::hachioji();
        s.spec.storage.records_bucket =
            Some("s3://kenko-prod-records-111122223333-ap-northeast-1/hachioji".into());
        s.spec.storage.records_replica_bucket =
            Some("s3://kenko-prod-records-111122223333-ap-northeast-3/hachioji/".into());
        s.spec.intake.inbox = "s3://kenko-prod-intake-111122223333-ap-northeast-1/hachioji/".into();
        s.spec.storage.kms_key_arn = Some(
            "arn:aws:kms:ap-northeast-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
                .into(),
        );
        s.spec.monitoring.alert_receivers = vec!["city-health".into()];
        s.metadata.namespace = Some("health-hachioji".into());
        let a = stack_access(&s);
        let ns = "health-hachioji";
        assert_eq!(a.stack, format!("{ns}/hachioji"));
        assert_eq!(a.app_pods, "hachioji-app-*");
        assert_eq!(a.db_pods, vec![format!("{ns}/hachioji-db-*")]);
        assert_eq!(
            a.records,
            vec![
                "kenko-prod-records-111122223333-ap-northeast-1/hachioji/",
                "kenko-prod-records-111122223333-ap-northeast-3/hachioji/",
                "kenko-prod-intake-111122223333-ap-northeast-1/hachioji/",
            ]
        );
        assert_eq!(
            a.kms_keys,
            vec!["arn:aws:kms:*:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"]
        );
        assert_eq!(a.alert_receivers, vec!["city-health"]);
        // The database pod the controller creates is one of the patterns.
        let db_pod = format!("{ns}/{}-0", StackNames::of("hachioji").db);
        let pat = &a.db_pods[0];
        assert!(
            db_pod.starts_with(pat.trim_end_matches('*')),
            "{db_pod} vs {pat}"
        );
    }

    #[test]
    fn a_folder_inbox_is_no_s3_location() {
        let s = crate::samples::hachioji();
        let a = stack_access(&s);
        assert!(
            a.records.iter().all(|r| !r.starts_with('/')),
            "{:?}",
            a.records
        );
    }
}
