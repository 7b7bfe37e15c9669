//! `ResidencyPolicy`: the cluster's rules for where a stack's data may live. The CRD's CEL
//! rules hold the city's floor (Japan only, 20 years); a policy may be stricter, and the
//! controller checks every stack against it.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kenko.io",
    version = "v1alpha1",
    kind = "ResidencyPolicy",
    plural = "residencypolicies",
    shortname = "rp",
    status = "ResidencyPolicyStatus",
    cel,
    printcolumn = r#"{"name":"Regions","type":"string","jsonPath":".spec.allowedRegions"}"#,
    printcolumn = r#"{"name":"MinRetention","type":"integer","jsonPath":".spec.minRetentionYears"}"#,
    printcolumn = r#"{"name":"Audited","type":"date","jsonPath":".status.audit.completedAt"}"#,
    printcolumn = r#"{"name":"Violations","type":"integer","jsonPath":".status.audit.violations"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ResidencyPolicySpec {
    /// Regions a stack's storage and backups may use.
    #[serde(default = "default_regions")]
    #[x_kube(validation = Rule::new("size(self) > 0 && self.all(r, r in ['ap-northeast-1', 'ap-northeast-3'])").message("allowedRegions may only hold ap-northeast-1 (Tokyo) and ap-northeast-3 (Osaka)"))]
    #[schemars(length(max = 2), inner(length(max = 32)))]
    pub allowed_regions: Vec<String>,
    /// Backups must live in a different region from production.
    #[serde(default = "yes")]
    #[x_kube(validation = Rule::new("self == true").message("backupsInDifferentRegion cannot be turned off: the city promised a different data centre"))]
    pub backups_in_different_region: bool,
    #[serde(default = "default_retention")]
    #[x_kube(validation = Rule::new("self >= 20").message("minRetentionYears must be at least 20"))]
    pub min_retention_years: i32,
    /// StorageClasses stacks may use (empty: any whose region and topology are in Japan).
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(max = 253)))]
    pub allowed_storage_classes: Vec<String>,
}

fn default_regions() -> Vec<String> {
    crate::JAPAN_REGIONS.iter().map(|s| s.to_string()).collect()
}

fn yes() -> bool {
    true
}

fn default_retention() -> i32 {
    crate::MIN_RETENTION_YEARS
}

impl Default for ResidencyPolicySpec {
    fn default() -> Self {
        ResidencyPolicySpec {
            allowed_regions: default_regions(),
            backups_in_different_region: true,
            min_retention_years: crate::MIN_RETENTION_YEARS,
            allowed_storage_classes: vec![],
        }
    }
}

/// What the last account audit found. The agent holding the cloud lease writes it after every
/// complete `residency audit` sweep; the controller turns it into each HealthStack's
/// ResidencyCompliant condition, so an operator sees a copy outside Japan on the stack itself.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResidencyPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AccountAudit>,
}

/// The summary of one audit of the AWS account (no personal data: resources are AWS ids).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccountAudit {
    /// When the audit finished (RFC 3339).
    #[schemars(length(max = 64))]
    pub completed_at: String,
    /// Who ran it (the agent's pod).
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub auditor: String,
    /// Regions swept.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 32)))]
    pub regions: Vec<String>,
    pub compliant: u32,
    pub violations: u32,
    /// Checks that could not be made (a region or API that did not answer); never compliant.
    pub unknown: u32,
    /// The findings that are not compliant, violations first (at most 50; the counts above
    /// are complete). Backup coverage (`backup.coverage`) is not among them nor in the
    /// counts: it concerns one stack, not the account, and is in `backups`.
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub findings: Vec<AuditFinding>,
    /// How often the agent audits, in seconds: the controller takes an audit older than
    /// twice this (at most two days) as stale.
    #[serde(default)]
    pub interval_secs: u32,
    /// Each stack's backup coverage (`backup.coverage`): the stacks the audit checked, at
    /// most 200. The controller sets each HealthStack's BackupConfigured from its entry; a
    /// stack without one is `AuditIncomplete`.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub backups: Vec<StackBackup>,
}

/// One stack's backup coverage, as the account audit found it: the worst reason over its
/// data locations, and a one-line message naming the locations that are not covered.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StackBackup {
    #[schemars(length(max = 63))]
    pub namespace: String,
    #[schemars(length(max = 253))]
    pub name: String,
    /// One of [`crate::reasons::reason::BACKUP_REPORTED`].
    #[schemars(length(max = 32))]
    pub reason: String,
    /// One line: each location that is not covered and why (AWS ids only).
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub message: String,
    /// When the stack's locations were checked (RFC 3339).
    #[schemars(length(max = 64))]
    pub checked_at: String,
}

/// At most this many stacks' backup results are kept in the status.
pub const MAX_STATUS_BACKUPS: usize = 200;

/// Where one stack's data lives, as the backup-coverage audit (`backup.coverage`) checks it:
/// its volumes (found in `region` by the EBS CSI driver's claim tags) and its records bucket,
/// with the regions and vaults its backups are taken in and copied to. Built from a
/// HealthStack by [`StackLocations::of`]; `kenko-agent residency audit --stacks FILE` reads a
/// JSON list of these.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackLocations {
    pub namespace: String,
    pub name: String,
    /// Production (`spec.storage.region`).
    pub region: String,
    /// Where the copies are kept (`spec.backup.region`).
    pub backup_region: String,
    /// `spec.backup.vault`, in `backup_region`.
    pub vault: String,
    /// `spec.backup.sourceVault`, in `region`.
    pub source_vault: String,
    /// `spec.storage.recordsBucket` as written (`s3://bucket[/prefix]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_bucket: Option<String>,
    /// The stack's volume claims ([`crate::names::StackNames::pvcs`]).
    pub claims: Vec<String>,
}

impl StackLocations {
    /// The locations of a stack: the claims the controller creates for it (the database's
    /// only when it is managed) and its records bucket.
    pub fn of(stack: &crate::HealthStack) -> StackLocations {
        let s = &stack.spec;
        let name = stack.metadata.name.clone().unwrap_or_default();
        StackLocations {
            namespace: stack.metadata.namespace.clone().unwrap_or_default(),
            claims: crate::names::StackNames::of(&name).pvcs(s.database.managed.is_some()),
            name,
            region: s.storage.region.clone(),
            backup_region: s.backup.region.clone(),
            vault: s.backup.vault.clone(),
            source_vault: s.backup.source_vault.clone(),
            records_bucket: s.storage.records_bucket.clone(),
        }
    }

    /// `NAMESPACE/NAME`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The records bucket's name (the location without `s3://` and the prefix).
    pub fn records_bucket_name(&self) -> Option<&str> {
        let rest = self.records_bucket.as_deref()?.strip_prefix("s3://")?;
        let bucket = rest.split('/').next().unwrap_or(rest);
        (!bucket.is_empty()).then_some(bucket)
    }
}

/// One finding that is not compliant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuditFinding {
    /// The stable rule id (`s3.replication`, `network.internet_gateway`...).
    #[schemars(length(max = 64))]
    pub rule: String,
    /// `Violation` or `Unknown`.
    #[schemars(length(max = 16))]
    pub status: String,
    #[schemars(length(max = 1024))]
    pub resource: String,
    #[schemars(length(max = 32))]
    pub region: String,
}

/// At most this many findings are kept in the status.
pub const MAX_STATUS_FINDINGS: usize = 50;
