//! Names two parts of kenko must agree on, defined once: the children the controller creates
//! for a stack (the agent finds the stack's volumes by them) and the tags by which a stack's
//! recovery points are known in AWS Backup.

use std::collections::BTreeMap;

/// Names of a stack's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackNames {
    pub app: String,
    pub db: String,
    /// The app's data volume.
    pub data_pvc: String,
    /// The managed database's volume: the StatefulSet `NAME-db`'s claim template `data`,
    /// ordinal 0.
    pub db_pvc: String,
    /// The agent's configuration for the stack (rendered by [`crate::intake::agent_config`]).
    pub agent_config: String,
    /// What takes in the stack's deliveries: a Deployment, its ServiceAccount and
    /// NetworkPolicy.
    pub intake: String,
    /// The managed database's credentials (`username`, `password`), generated once by the
    /// controller; an external database names its own Secret.
    pub db_credentials: String,
    /// The stack's data key (32 random bytes under `records.key`), generated once by the
    /// controller: the key of its tokens and My Number ciphertexts.
    pub data_key: String,
}

impl StackNames {
    pub fn of(stack: &str) -> StackNames {
        StackNames {
            app: format!("{stack}-app"),
            db: format!("{stack}-db"),
            data_pvc: format!("{stack}-data"),
            db_pvc: format!("data-{stack}-db-0"),
            agent_config: format!("{stack}-agent"),
            intake: format!("{stack}-intake"),
            db_credentials: format!("{stack}-db-credentials"),
            data_key: format!("{stack}-data-key"),
        }
    }

    /// Every volume claim the stack can have (the database's only when it is managed).
    pub fn pvcs(&self, managed_database: bool) -> Vec<String> {
        let mut out = vec![self.data_pvc.clone()];
        if managed_database {
            out.push(self.db_pvc.clone());
        }
        out
    }
}

/// The tag the EBS CSI driver puts on every volume it creates for a claim (its
/// `--extra-create-metadata`, on in the EKS add-on): the claim's namespace. AWS Backup copies
/// a volume's tags onto its recovery points, and a copy to the other region keeps them.
pub const PVC_NAMESPACE_TAG: &str = "kubernetes.io/created-for/pvc/namespace";
/// The claim's name, likewise.
pub const PVC_NAME_TAG: &str = "kubernetes.io/created-for/pvc/name";

/// The tag that puts a resource into the AWS Backup plan, as (key, value): Terraform's
/// selection (`terraform/modules/backup`, `selection_tag` with the value `"true"`), the sample
/// StorageClass's `tagSpecification_1` on every EBS volume it creates, and the records bucket
/// (`terraform/modules/storage`). `tests/infra` fails when the three drift apart.
pub const BACKUP_SELECTION_TAG: (&str, &str) = ("kenko:backup", "true");

/// Which recovery points of a vault belong to a stack: those of its volumes, by the tags the
/// CSI driver set on them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StackSelector {
    pub namespace: String,
    pub stack: String,
    /// The stack's volume claims ([`StackNames::pvcs`]).
    pub pvcs: Vec<String>,
}

impl StackSelector {
    /// The selector of a stack named `stack` in `namespace`. Both claim names are listed:
    /// a stack whose database was managed once and is external now still has its old
    /// recovery points.
    pub fn of(namespace: &str, stack: &str) -> StackSelector {
        StackSelector {
            namespace: namespace.to_string(),
            stack: stack.to_string(),
            pvcs: StackNames::of(stack).pvcs(true),
        }
    }

    /// Whether a recovery point with these tags is one of the stack's.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(PVC_NAMESPACE_TAG) == Some(&self.namespace)
            && tags
                .get(PVC_NAME_TAG)
                .is_some_and(|n| self.pvcs.contains(n))
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn a_stacks_recovery_points_are_those_of_its_own_volumes() {
        let sel = StackSelector::of("hachioji", "hachioji");
        let tags = |ns: &str, pvc: &str| {
            BTreeMap::from([
                (PVC_NAMESPACE_TAG.to_string(), ns.to_string()),
                (PVC_NAME_TAG.to_string(), pvc.to_string()),
            ])
        };
        assert!(sel.matches(&tags("hachioji", "hachioji-data")));
        assert!(sel.matches(&tags("hachioji", "data-hachioji-db-0")));
        assert!(
            !sel.matches(&tags("hachioji", "other-data")),
            "another stack's volume"
        );
        assert!(
            !sel.matches(&tags("fuchu", "hachioji-data")),
            "another namespace"
        );
        assert!(!sel.matches(&BTreeMap::new()), "untagged");
    }
}
