//! `ErasureRequest` (two people: it runs only once approved by someone other than the
//! requester) and `ErasureCertificate` (the agent's signed certificate, immutable).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kenko.io",
    version = "v1alpha1",
    kind = "ErasureRequest",
    plural = "erasurerequests",
    shortname = "er",
    namespaced,
    status = "ErasureRequestStatus",
    cel,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Method","type":"string","jsonPath":".spec.method"}"#,
    printcolumn = r#"{"name":"Requested-By","type":"string","jsonPath":".spec.requestedBy"}"#,
    printcolumn = r#"{"name":"Approved-By","type":"string","jsonPath":".spec.approvedBy"}"#,
    printcolumn = r#"{"name":"Certificates","type":"string","jsonPath":".status.certificates"}"#
)]
#[x_kube(validation = Rule::new("!has(self.approvedBy) || self.approvedBy != self.requestedBy").message("an erasure must be approved by someone other than the person who requested it"))]
#[x_kube(validation = Rule::new("self.targets == oldSelf.targets && self.method == oldSelf.method && self.verification == oldSelf.verification && self.requestedBy == oldSelf.requestedBy").message("targets, method, verification and requestedBy cannot change after the request is made"))]
#[x_kube(validation = Rule::new("!has(oldSelf.approvedBy) || (has(self.approvedBy) && self.approvedBy == oldSelf.approvedBy)").message("an approval cannot be changed or withdrawn; delete the request instead"))]
#[serde(rename_all = "camelCase")]
pub struct ErasureRequestSpec {
    /// Erasure targets in the agent's syntax: `device:`, `dir:`, `s3://`, `ebs-snapshot:`,
    /// `backup-rp:`, `kms:`, `datakey:`; `pvc:NAME` for a volume of the stack;
    /// `backup-vault:REGION/VAULT` for every recovery point of the stack in that vault.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.all(t, t.matches('^(pvc:|device:|dir:|file:|s3://|ebs-snapshot:|backup-rp:|backup-vault:|kms:|datakey:)'))").message("every target must be pvc:, device:, dir:, file:, s3://, ebs-snapshot:, backup-rp:, backup-vault:, kms: or datakey:"))]
    pub targets: Vec<String>,
    /// clear or purge for the media targets; key targets (`kms:`, `datakey:`) are always
    /// erased cryptographically. `crypto` for a request of key targets only.
    #[x_kube(validation = Rule::new("self in ['clear', 'purge', 'crypto']").message("method must be clear, purge or crypto"))]
    #[schemars(length(max = 8))]
    pub method: String,
    #[serde(default = "default_verification")]
    #[x_kube(validation = Rule::new("self in ['full', 'sample']").message("verification must be full or sample"))]
    #[schemars(length(max = 8))]
    pub verification: String,
    /// Who asked for the erasure (their Kubernetes user name).
    #[schemars(length(min = 1, max = 253))]
    pub requested_by: String,
    /// Who approved it; never the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub approved_by: Option<String>,
    /// The HealthStack being decommissioned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub stack: Option<String>,
}

fn default_verification() -> String {
    "full".into()
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum ErasurePhase {
    #[default]
    Pending,
    Approved,
    Running,
    Verifying,
    Certified,
    Failed,
    Blocked,
}

impl ErasurePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasurePhase::Pending => "Pending",
            ErasurePhase::Approved => "Approved",
            ErasurePhase::Running => "Running",
            ErasurePhase::Verifying => "Verifying",
            ErasurePhase::Certified => "Certified",
            ErasurePhase::Failed => "Failed",
            ErasurePhase::Blocked => "Blocked",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErasureRequestStatus {
    #[serde(default)]
    pub phase: ErasurePhase,
    #[serde(default)]
    pub targets: Vec<TargetResult>,
    /// Names of the ErasureCertificates issued for it: one per erasure method (media cleared
    /// or purged, keys crypto-erased), together covering every target.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Why the request failed or is blocked (a stable reason code and a message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    pub target: String,
    pub phase: ErasurePhase,
    /// The node whose agent runs it (cloud targets: the elected agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default)]
    pub bytes_erased: i64,
    #[serde(default)]
    pub objects_erased: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A signed erasure certificate, as the agent issued it. Immutable once created.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kenko.io",
    version = "v1alpha1",
    kind = "ErasureCertificate",
    plural = "erasurecertificates",
    shortname = "ec",
    cel,
    printcolumn = r#"{"name":"Job","type":"string","jsonPath":".spec.jobId"}"#,
    printcolumn = r#"{"name":"Stack","type":"string","jsonPath":".spec.stack"}"#,
    printcolumn = r#"{"name":"Targets","type":"integer","jsonPath":".spec.targetCount"}"#,
    printcolumn = r#"{"name":"Blocked","type":"integer","jsonPath":".spec.blockedCount"}"#,
    printcolumn = r#"{"name":"SHA256","type":"string","jsonPath":".spec.sha256","priority":1}"#,
    printcolumn = r#"{"name":"Issued","type":"string","jsonPath":".spec.issuedAt"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("an ErasureCertificate is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct ErasureCertificateSpec {
    pub job_id: String,
    /// `namespace/name` of the ErasureRequest.
    pub request: String,
    /// `namespace/name` of the HealthStack, if the erasure decommissioned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Every target the certificate covers, as written in the request.
    pub targets: Vec<String>,
    pub target_count: i64,
    pub blocked_count: i64,
    /// The signer's Ed25519 public key (hex).
    pub signer: String,
    /// SHA-256 of the certificate file (hex): what auditors compare.
    pub sha256: String,
    pub issued_at: String,
    /// The certificate file itself: canonical JSON, signed. The evidence.
    pub certificate: String,
}
