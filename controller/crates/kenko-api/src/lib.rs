//! kenko's Kubernetes API, as Rust types: the custom resources operators write
//! ([`HealthStack`], [`ResidencyPolicy`], [`ErasureRequest`]) and the one the agent writes
//! ([`ErasureCertificate`]). The CRDs in `manifests/crds/` are generated from these types
//! ([`crd_files`]) and a test fails when they drift.
//!
//! Residency is checked at admission by CEL rules carried in the CRDs (regions in Japan,
//! backups in the other region, retention at least 20 years, no self-approval), and again by
//! the controller against the cluster's [`ResidencyPolicy`].

pub mod erasure;
pub mod health_stack;
pub mod reasons;
pub mod residency;
pub mod samples;

pub use erasure::{
    ErasureCertificate, ErasureCertificateSpec, ErasurePhase, ErasureRequest, ErasureRequestSpec,
    ErasureRequestStatus, TargetResult,
};
pub use health_stack::{
    AppSpec, BackupSpec, DatabaseSpec, ExternalDatabase, HealthStack, HealthStackSpec,
    HealthStackStatus, IntakeSpec, ManagedDatabase, MonitoringSpec, Municipality, NetworkSpec,
    StorageSpec,
};
pub use residency::{
    AccountAudit, AuditFinding, ResidencyPolicy, ResidencyPolicySpec, ResidencyPolicyStatus,
    MAX_STATUS_FINDINGS,
};

/// The API group of every kenko resource.
pub const GROUP: &str = "kenko.io";
/// The Japanese regions: Tokyo and Osaka.
pub const JAPAN_REGIONS: [&str; 2] = ["ap-northeast-1", "ap-northeast-3"];
/// The city's retention rule for vaccination records' backups.
pub const MIN_RETENTION_YEARS: i32 = 20;

/// Every CRD as (file name, YAML), as committed in `manifests/crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    use kube::CustomResourceExt;
    [
        HealthStack::crd(),
        ResidencyPolicy::crd(),
        ErasureRequest::crd(),
        ErasureCertificate::crd(),
    ]
    .into_iter()
    .map(|crd| {
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        let yaml = format!(
            "# Generated from controller/crates/kenko-api by `kenko-controller crdgen`; do not edit.\n{}",
            serde_yaml::to_string(&crd).expect("a CRD serialises")
        );
        (format!("{name}.yaml"), yaml)
    })
    .collect()
}

#[cfg(test)]
mod tests;
