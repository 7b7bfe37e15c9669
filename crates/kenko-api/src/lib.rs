//! kenko's Kubernetes API, as Rust types: the custom resources operators write
//! ([`HealthStack`], [`ResidencyPolicy`], [`ErasureRequest`]) and the one the agent writes
//! ([`ErasureCertificate`]). The CRDs in `manifests/crds/` are generated from these types
//! ([`crd_files`]) and a test fails when they drift.
//!
//! Residency is checked at admission by CEL rules carried in the CRDs (regions in Japan,
//! backups in the other region, retention at least 20 years, no self-approval), and again by
//! the controller against the cluster's [`ResidencyPolicy`].

pub mod access;
pub mod aws;
#[cfg(feature = "crd")]
pub mod erasure;
#[cfg(feature = "crd")]
pub mod health_stack;
pub mod intake;
pub mod names;
pub mod reasons;
#[cfg(feature = "crd")]
pub mod residency;
#[cfg(feature = "crd")]
pub mod samples;
#[cfg(feature = "crd")]
pub mod schema;
pub mod target;

#[cfg(feature = "crd")]
pub use erasure::{
    ErasureCertificate, ErasureCertificateSpec, ErasurePhase, ErasureRequest, ErasureRequestSpec,
    ErasureRequestStatus, TargetResult, MAX_CERTIFICATE_BYTES, STACK_UID_LABEL,
    TRUSTED_SIGNERS_CONFIGMAP,
};
#[cfg(feature = "crd")]
pub use health_stack::{
    AppSpec, BackupSpec, DatabaseSpec, ExternalDatabase, HealthStack, HealthStackSpec,
    HealthStackStatus, IntakeSpec, IntakeStatus, ManagedDatabase, MonitoringSpec, Municipality,
    NetworkSpec, StorageSpec,
};
#[cfg(feature = "crd")]
pub use residency::{
    AccountAudit, AuditFinding, ResidencyPolicy, ResidencyPolicySpec, ResidencyPolicyStatus,
    MAX_STATUS_FINDINGS,
};
pub use target::{
    ErasureMethod, Pattern, Target, TargetClass, TargetError, TargetKind, VerifyMode,
};

/// The API group of every kenko resource.
pub const GROUP: &str = "kenko.io";
/// The Japanese regions: Tokyo and Osaka.
pub const JAPAN_REGIONS: [&str; 2] = ["ap-northeast-1", "ap-northeast-3"];
/// The city's retention rule for vaccination records' backups.
pub const MIN_RETENTION_YEARS: i32 = 20;
/// The longest message kenko writes into a status or an Event (one line; details go to the
/// log). Every status message field of the CRDs allows at least this much.
pub const MAX_MESSAGE: usize = 1024;

/// The private address ranges a stack's egress may name (RFC 1918, the shared address space
/// of RFC 6598 that EKS custom networking uses, and IPv6 unique local addresses). A public
/// range is the internet, whatever its size.
pub const PRIVATE_RANGES: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// The CEL rule on a list of CIDRs: each one is a CIDR inside one of [`PRIVATE_RANGES`].
pub fn private_cidrs_rule() -> String {
    let ranges: Vec<String> = PRIVATE_RANGES.iter().map(|r| format!("'{r}'")).collect();
    format!(
        "self.all(c, isCIDR(c) && [{}].exists(p, cidr(p).containsCIDR(c)))",
        ranges.join(", ")
    )
}

/// Whether `c` is a CIDR inside one of [`PRIVATE_RANGES`] (the controller's own check, the
/// same rule as admission: a stack admitted under an older CRD is checked again).
pub fn is_private_cidr(c: &str) -> bool {
    fn parse(c: &str) -> Option<(std::net::IpAddr, u8)> {
        let (ip, len) = c.split_once('/')?;
        let ip: std::net::IpAddr = ip.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some((ip, len))
    }
    fn bits(ip: std::net::IpAddr) -> (u128, u8) {
        match ip {
            std::net::IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
            std::net::IpAddr::V6(a) => (u128::from(a), 128),
        }
    }
    let Some((ip, len)) = parse(c) else {
        return false;
    };
    PRIVATE_RANGES.iter().any(|r| {
        let (net, net_len) = parse(r).expect("the ranges are CIDRs");
        let ((a, fam_a), (b, fam_b)) = (bits(ip), bits(net));
        if fam_a != fam_b || len < net_len {
            return false;
        }
        // IPv4 sits in the top 32 bits, so both families mask from the top.
        let shift = 128 - u32::from(net_len);
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        a & mask == b & mask
    })
}

/// The CEL rule for a field that is an S3 location: the syntax of an `s3://` target.
pub fn s3_location_rule() -> String {
    format!(
        "self.matches('^{}$')",
        target::TargetKind::S3.pattern().replace('\\', "\\\\")
    )
}

/// Collapses a text to one line for a status, an Event or a terminal: white space runs become
/// one space, and the result is cut (on a character boundary, with `…`) to `max` bytes.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.len() <= max {
        return out;
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    out.push('…');
    out
}

/// [`one_line`] to the length every kenko status message allows.
pub fn status_message(text: &str) -> String {
    one_line(text, MAX_MESSAGE)
}

/// Every CRD as (file name, YAML), as committed in `manifests/crds/`.
#[cfg(feature = "crd")]
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
            "# Generated from crates/kenko-api by `kenko-controller crdgen`; do not edit.\n{}",
            serde_yaml::to_string(&crd).expect("a CRD serialises")
        );
        (format!("{name}.yaml"), yaml)
    })
    .collect()
}

#[cfg(all(test, feature = "crd"))]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
