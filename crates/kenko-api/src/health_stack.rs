//! `HealthStack`: one municipality's health management stack. The controller makes the cluster
//! match it and, on deletion, holds it until every place its data lived is erased and
//! certified.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The desired stack.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kenko.io",
    version = "v1alpha1",
    kind = "HealthStack",
    plural = "healthstacks",
    shortname = "hs",
    namespaced,
    status = "HealthStackStatus",
    cel,
    printcolumn = r#"{"name":"Municipality","type":"string","jsonPath":".spec.municipality.name"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.storage.region"}"#,
    printcolumn = r#"{"name":"Backup","type":"string","jsonPath":".spec.backup.region"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Residency","type":"string","jsonPath":".status.conditions[?(@.type==\"ResidencyCompliant\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.backup.region != self.storage.region").message("backup.region must be a different region from storage.region: backups live in another Japanese data centre than production"))]
#[serde(rename_all = "camelCase")]
pub struct HealthStackSpec {
    pub municipality: Municipality,
    pub app: AppSpec,
    pub database: DatabaseSpec,
    pub storage: StorageSpec,
    pub backup: BackupSpec,
    #[serde(default)]
    pub intake: IntakeSpec,
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    #[serde(default)]
    pub network: NetworkSpec,
    /// Stops every write: the app and the database scale to zero and intake pauses. Shown as
    /// the `Ready=False` condition with reason `Suspended`.
    #[serde(default)]
    pub suspend: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Municipality {
    /// 全国地方公共団体コード: six digits, check digit included (e.g. 132012 for Hachioji).
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{6}$')").message("municipality.code must be the six-digit local government code"))]
    #[schemars(length(max = 6))]
    pub code: String,
    /// The municipality's name as written (e.g. 八王子市).
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// The health management application's image (repository and tag).
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// `sha256:...`: pins the image by digest (recommended; the tag is then informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^sha256:[a-f0-9]{64}$')").message("app.digest must be sha256: followed by 64 lowercase hex digits"))]
    #[schemars(length(max = 71))]
    pub digest: Option<String>,
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::resources")]
    pub resources: Option<ResourceRequirements>,
}

fn default_replicas() -> i32 {
    2
}

/// Either a PostgreSQL the controller runs (a StatefulSet with its volume) or an external one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("database needs exactly one of managed or external"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDatabase {
    /// PostgreSQL image [default: postgres:16, pinned by the operator's registry mirror].
    #[serde(default = "default_pg_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Size of the database volume (e.g. 100Gi).
    #[schemars(length(min = 1, max = 32))]
    pub storage_size: String,
}

fn default_pg_image() -> String {
    "postgres:16".into()
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    #[serde(default = "default_pg_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// A Secret in the stack's namespace with `username` and `password`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Where the database is (its subnets, private ranges only): the stack's NetworkPolicy
    /// lets the app reach these on `port`, and nothing else outside the namespace but DNS
    /// and the VPC endpoints.
    #[schemars(length(min = 1, max = 8), inner(length(max = 43)))]
    #[x_kube(validation = Rule::new(crate::private_cidrs_rule()).message("database.external.cidrs must be private CIDRs (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 or fc00::/7)"))]
    pub cidrs: Vec<String>,
}

fn default_pg_port() -> i32 {
    5432
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// StorageClass of the stack's volumes; its region and topology must be in Japan.
    #[schemars(length(min = 1, max = 253))]
    pub class: String,
    /// Size of the app's data volume (e.g. 50Gi).
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// Production region.
    #[x_kube(validation = Rule::new("self in ['ap-northeast-1', 'ap-northeast-3']").message("storage.region must be in Japan: ap-northeast-1 (Tokyo) or ap-northeast-3 (Osaka)"))]
    #[schemars(length(max = 32))]
    pub region: String,
    /// `s3://bucket[/prefix]` where the stack keeps records and exports (erased on
    /// decommissioning, every version): terraform/modules/storage's `records_bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(crate::s3_location_rule()).message("storage.recordsBucket must be s3://bucket[/prefix]"))]
    #[schemars(length(max = 1024))]
    pub records_bucket: Option<String>,
    /// Where the records bucket replicates to (the other Japanese region):
    /// terraform/modules/storage's `records_replica_bucket`. Erased on decommissioning too:
    /// a replica is a copy of the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(crate::s3_location_rule()).message("storage.recordsReplicaBucket must be s3://bucket[/prefix]"))]
    #[schemars(length(max = 1024))]
    pub records_replica_bucket: Option<String>,
    /// The KMS key (ARN) that encrypts the stack's volumes, buckets and backups: scheduled for
    /// deletion on decommissioning (cryptographic erase of every copy, backups included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws[a-z-]*:kms:ap-northeast-[13]:[0-9]{12}:key/[A-Za-z0-9-]+$')").message("storage.kmsKeyArn must be a KMS key ARN in ap-northeast-1 or ap-northeast-3"))]
    #[schemars(length(max = 256))]
    pub kms_key_arn: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Region of the backup copies: Japan, and not the production region.
    #[x_kube(validation = Rule::new("self in ['ap-northeast-1', 'ap-northeast-3']").message("backup.region must be in Japan: ap-northeast-1 (Tokyo) or ap-northeast-3 (Osaka)"))]
    #[schemars(length(max = 32))]
    pub region: String,
    /// The AWS Backup vault in `backup.region` that holds the copies
    /// (terraform/modules/backup's `NAME-osaka`).
    #[schemars(length(min = 2, max = 50))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{2,50}$')").message("backup.vault must be an AWS Backup vault name (2 to 50 letters, digits, -, _ or .)"))]
    pub vault: String,
    /// The vault in `storage.region` where the backups are first taken
    /// (terraform/modules/backup's `NAME-tokyo`). Both are erased on decommissioning.
    #[schemars(length(min = 2, max = 50))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{2,50}$')").message("backup.sourceVault must be an AWS Backup vault name (2 to 50 letters, digits, -, _ or .)"))]
    pub source_vault: String,
    /// Cron schedule of backups.
    #[serde(default = "default_backup_schedule")]
    #[schemars(length(min = 1, max = 64))]
    pub schedule: String,
    /// Years backups are kept (the city keeps vaccination records 20 years).
    #[serde(default = "default_retention")]
    #[x_kube(validation = Rule::new("self >= 20").message("backup.retentionYears must be at least 20"))]
    pub retention_years: i32,
}

fn default_backup_schedule() -> String {
    "0 18 * * *".into()
}

fn default_retention() -> i32 {
    crate::MIN_RETENTION_YEARS
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IntakeSpec {
    /// When the stack's intake (the Deployment `NAME-intake`) lists an S3 inbox: a 5-field
    /// cron in Asia/Tokyo, each firing one round (default every 10 minutes). A folder inbox
    /// on one machine is watched continuously and ignores it.
    #[schemars(length(min = 1, max = 64))]
    pub schedule: String,
    /// Inbox: `s3://bucket/prefix/` (the Terraform intake bucket; deliveries under
    /// `prefix/inbox/`, results under `processed/`, `returned/` and `reports/`; erased on
    /// decommissioning), or a folder, which only a single-machine agent takes in: the
    /// cluster's intake takes an S3 inbox only.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(format!("!self.startsWith('s3://') || {}", crate::s3_location_rule())).message("intake.inbox must be a folder or s3://bucket[/prefix]"))]
    pub inbox: String,
}

impl Default for IntakeSpec {
    fn default() -> Self {
        IntakeSpec {
            schedule: "*/10 * * * *".into(),
            inbox: "/var/lib/kenko/inbox".into(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Office hours in Asia/Tokyo, `HH:MM-HH:MM`.
    #[x_kube(validation = Rule::new("self.matches('^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$')").message("monitoring.officeHours must be HH:MM-HH:MM"))]
    #[schemars(length(max = 11))]
    pub office_hours: String,
    /// Alertmanager receivers that get this stack's alerts.
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(max = 253)))]
    pub alert_receivers: Vec<String>,
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        MonitoringSpec {
            office_hours: "08:30-17:15".into(),
            alert_receivers: vec![],
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// CIDRs of the VPC endpoints the stack may reach (S3, KMS, Backup...): private ranges
    /// only. Nothing else leaves the namespace but DNS (and an external database); the
    /// internet never.
    #[serde(default)]
    #[x_kube(validation = Rule::new(crate::private_cidrs_rule()).message("network.allowedEgressCIDRs must be private CIDRs (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 or fc00::/7): the internet is never allowed"))]
    #[schemars(length(max = 32), inner(length(max = 43)))]
    #[serde(rename = "allowedEgressCIDRs")]
    pub allowed_egress_cidrs: Vec<String>,
}

/// What the controller observed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthStackStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded, ResidencyCompliant, BackupConfigured, Decommissioning,
    /// IntakeHealthy.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The ErasureRequest created when the stack was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub erasure_request: Option<String>,
    /// The stack's intake as `NAME-intake` last reported it (checked by the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake: Option<IntakeStatus>,
}

/// The last intake of a stack: when its intake last finished a round and took a file, and
/// what its intakes took in for the claim month (files finished since the first of this
/// month, Asia/Tokyo: the deliveries that claim last month), from the stack's ledger.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IntakeStatus {
    /// The claim month the counts are for (`YYYY-MM`: last month, Asia/Tokyo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 7))]
    pub claim_month: Option<String>,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40))]
    pub last_round_at: Option<String>,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40))]
    pub last_file_at: Option<String>,
    #[schemars(range(min = 0))]
    pub files_loaded: i64,
    #[schemars(range(min = 0))]
    pub files_returned: i64,
    #[schemars(range(min = 0))]
    pub rows_accepted: i64,
    #[schemars(range(min = 0))]
    pub rows_rejected: i64,
}
