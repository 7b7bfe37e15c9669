//! `ErasureRequest` (two people: it runs only once approved by someone other than the
//! requester) and `ErasureCertificate` (the agent's signed certificate, immutable).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::target::{ErasureMethod, VerifyMode};
pub use crate::{one_line, status_message};

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
#[x_kube(validation = Rule::new("has(self.stack) == has(oldSelf.stack) && (!has(self.stack) || self.stack == oldSelf.stack) && has(self.stackUid) == has(oldSelf.stackUid) && (!has(self.stackUid) || self.stackUid == oldSelf.stackUid)").message("stack and stackUid cannot change after the request is made"))]
#[x_kube(validation = Rule::new("!has(oldSelf.approvedBy) || (has(self.approvedBy) && self.approvedBy == oldSelf.approvedBy)").message("an approval cannot be changed or withdrawn; delete the request instead"))]
#[serde(rename_all = "camelCase")]
pub struct ErasureRequestSpec {
    /// What to erase, in the syntax of [`crate::target::Target`]: `pvc:NAME` (a volume of the
    /// request's namespace), `backup-vault:REGION/VAULT` (every recovery point of the stack in
    /// that vault), `file:`, `dir:`, `device:`, `s3://`, `ebs-snapshot:`, `ebs-volume:`,
    /// `backup-rp:`, `kms:` or `datakey:`. Kept as strings on the wire (a malformed one is one
    /// failed target, never an object the agents cannot read); the CEL rule admits exactly
    /// the syntax the agent parses.
    #[schemars(length(min = 1, max = 64), inner(length(max = 1024)))]
    #[x_kube(validation = Rule::new(crate::target::targets_cel_rule()).message(crate::target::targets_cel_message().as_str()))]
    pub targets: Vec<String>,
    /// clear or purge for the media targets; key targets (`kms:`, `datakey:`) are always
    /// erased cryptographically, cloud objects deleted. `crypto` for a request of key targets
    /// only.
    pub method: ErasureMethod,
    #[serde(default)]
    pub verification: VerifyMode,
    /// Who asked for the erasure (their Kubernetes user name).
    #[schemars(length(min = 1, max = 253))]
    pub requested_by: String,
    /// Who approved it; never the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub approved_by: Option<String>,
    /// The HealthStack being decommissioned, if any (in the request's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub stack: Option<String>,
    /// That HealthStack's `metadata.uid`: certificates name it in their signed body, so one
    /// issued for an earlier stack of the same name never releases this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub stack_uid: Option<String>,
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
    /// One result per target of the spec.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub targets: Vec<TargetResult>,
    /// Names of the ErasureCertificates issued for it (one per target: each target's erasure
    /// is its own job, so one failure never hides another target's outcome).
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub certificates: Vec<String>,
    /// Why the request failed or is blocked: the stable reason of the first failed (or
    /// blocked) target in spec order, and a one-line message naming how many targets failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetResult {
    #[schemars(length(max = 1024))]
    pub target: String,
    pub phase: ErasurePhase,
    /// The node whose agent runs it (cloud targets: the elected agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub node: Option<String>,
    #[serde(default)]
    pub bytes_erased: i64,
    #[serde(default)]
    pub objects_erased: i64,
    /// The stable reason of a failed or blocked target (the agent's erasure reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub reason: Option<String>,
    /// One line for people; details are in the agent's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

/// The longest certificate file a resource carries (a certificate lists its targets and every
/// item Object Lock or Vault Lock kept; etcd's limit for a whole object is 1.5 MiB).
pub const MAX_CERTIFICATE_BYTES: usize = 1 << 20;

/// A signed erasure certificate, as the agent issued it. Immutable once created. The
/// controller and auditors trust only the signed file (`certificate`), verified against the
/// trusted signers; the other fields are copies for listing.
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
    #[schemars(length(max = 253))]
    pub job_id: String,
    /// `namespace/name` of the ErasureRequest.
    #[schemars(length(max = 512))]
    pub request: String,
    /// `namespace/name` of the HealthStack, if the erasure decommissioned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub stack: Option<String>,
    /// Every target the certificate covers, as written in the request.
    #[schemars(length(max = 64), inner(length(max = 1024)))]
    pub targets: Vec<String>,
    pub target_count: i64,
    pub blocked_count: i64,
    /// The signer's Ed25519 public key (hex).
    #[schemars(length(max = 64))]
    pub signer: String,
    /// SHA-256 of the certificate file (hex): what auditors compare.
    #[schemars(length(max = 64))]
    pub sha256: String,
    #[schemars(length(max = 64))]
    pub issued_at: String,
    /// The certificate file itself: canonical JSON, signed. The evidence.
    #[schemars(length(max = 1048576))]
    pub certificate: String,
}

/// Label on an ErasureCertificate: the `metadata.uid` of the HealthStack it decommissioned,
/// so the controller finds every certificate of a stack, including those of an earlier,
/// failed request. Only an index: the controller believes the signed body, not the label.
pub const STACK_UID_LABEL: &str = "kenko.io/stack-uid";

/// The ConfigMap (in the controller's namespace) listing the erasure certificate signers the
/// operator trusts: each key a name for the signer (its node, say), each value the signer's
/// Ed25519 public key in hex. Written by people (an admission policy refuses every
/// ServiceAccount, the agents' included); read by the controller before it releases a stack
/// and by `kubectl kenko signers` for auditors.
pub const TRUSTED_SIGNERS_CONFIGMAP: &str = "kenko-erasure-signers";
