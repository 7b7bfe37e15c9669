//! The residency and backup audit: where every bucket, replica, backup vault,
//! recovery point, snapshot, volume and key of the account lives, whether every backup copy is
//! in Japan and in the other Japanese region, and whether the stack's VPCs have a path to the
//! internet.
//!
//! This module is the pure part: the facts the collectors gathered ([`Inventory`]), the rules
//! ([`Rule`], ids stable), their evaluation into [`Finding`]s and the [`Report`] (stable JSON,
//! documented in `docs/residency-report.md`), and the remediation plan. The per-service files
//! read the facts through aws-sdk-rust; [`run`] sweeps the regions with bounded concurrency.
//!
//! A fact that could not be read is an `Err(reason)`, and a rule evaluated on it is `Unknown`:
//! never `Compliant`.
//!
//! `backup.coverage` ([`coverage`]) checks that the backups of each stack's data locations
//! exist, not only that they are configured: it needs the stacks ([`AuditOptions::stacks`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

mod backup;
mod clients;
pub mod coverage;
mod ec2;
mod kms;
mod network;
mod remediate;
mod s3;
mod sweep;

pub use clients::{parse_endpoint_overrides, Clients};
pub use coverage::{stack_coverage, Coverage, CoverageFacts, StackCoverage, StackRef};
pub use remediate::remediate;
pub use sweep::{collect, run, AuditOptions};

/// The Japanese regions: Tokyo (production) and Osaka (backups).
pub const JAPAN: [&str; 2] = ["ap-northeast-1", "ap-northeast-3"];

/// Every public (commercial partition) AWS region: the default sweep. A region added by AWS
/// after this list is not swept unless named with `--regions`.
pub const ALL_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// The VPC endpoints the stack needs with no internet path: the S3 gateway endpoint and the
/// interface endpoints `terraform/modules/network` creates by default
/// (`interface_endpoint_services`).
pub const REQUIRED_ENDPOINT_SERVICES: &[&str] = &[
    "autoscaling",
    "backup",
    "ec2",
    "ec2messages",
    "ecr.api",
    "ecr.dkr",
    "eks",
    "eks-auth",
    "elasticloadbalancing",
    "kms",
    "logs",
    "monitoring",
    "s3",
    "ssm",
    "ssmmessages",
    "sts",
];

/// The tag the Terraform production environment puts on every resource of the stack
/// (`terraform/envs/production/main.tf`); VPCs carrying it are the stack's.
pub const STACK_TAG: &str = "kenko:stack";

/// The tag `terraform/modules/storage` puts on the certificate buckets (with the value
/// `certificates`).
pub const DATA_TAG: &str = "kenko:data";

pub fn in_japan(region: &str) -> bool {
    JAPAN.contains(&region)
}

/// The region in an ARN (`arn:PARTITION:SERVICE:REGION:...`), if it has one.
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty())
}

/// A residency rule. The ids (`as_str`) are stable: they are metric labels, JSON values and
/// runbook anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rule {
    #[serde(rename = "s3.bucket_region")]
    S3BucketRegion,
    #[serde(rename = "s3.versioning")]
    S3Versioning,
    #[serde(rename = "s3.encryption")]
    S3Encryption,
    #[serde(rename = "s3.replication")]
    S3Replication,
    #[serde(rename = "s3.certificate_object_lock")]
    S3CertificateObjectLock,
    #[serde(rename = "backup.vault_region")]
    BackupVaultRegion,
    #[serde(rename = "backup.recovery_point_region")]
    BackupRecoveryPointRegion,
    #[serde(rename = "backup.plan_copy")]
    BackupPlanCopy,
    #[serde(rename = "backup.retention")]
    BackupRetention,
    #[serde(rename = "backup.coverage")]
    BackupCoverage,
    #[serde(rename = "ec2.volume_region")]
    Ec2VolumeRegion,
    #[serde(rename = "ec2.snapshot_region")]
    Ec2SnapshotRegion,
    #[serde(rename = "kms.key_region")]
    KmsKeyRegion,
    #[serde(rename = "network.internet_gateway")]
    NetworkInternetGateway,
    #[serde(rename = "network.egress_only_gateway")]
    NetworkEgressOnlyGateway,
    #[serde(rename = "network.nat_gateway")]
    NetworkNatGateway,
    #[serde(rename = "network.vpc_endpoints")]
    NetworkVpcEndpoints,
    #[serde(rename = "audit.region_unreachable")]
    AuditRegionUnreachable,
}

impl Rule {
    pub const ALL: [Rule; 18] = [
        Rule::S3BucketRegion,
        Rule::S3Versioning,
        Rule::S3Encryption,
        Rule::S3Replication,
        Rule::S3CertificateObjectLock,
        Rule::BackupVaultRegion,
        Rule::BackupRecoveryPointRegion,
        Rule::BackupPlanCopy,
        Rule::BackupRetention,
        Rule::BackupCoverage,
        Rule::Ec2VolumeRegion,
        Rule::Ec2SnapshotRegion,
        Rule::KmsKeyRegion,
        Rule::NetworkInternetGateway,
        Rule::NetworkEgressOnlyGateway,
        Rule::NetworkNatGateway,
        Rule::NetworkVpcEndpoints,
        Rule::AuditRegionUnreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::S3BucketRegion => "s3.bucket_region",
            Rule::S3Versioning => "s3.versioning",
            Rule::S3Encryption => "s3.encryption",
            Rule::S3Replication => "s3.replication",
            Rule::S3CertificateObjectLock => "s3.certificate_object_lock",
            Rule::BackupVaultRegion => "backup.vault_region",
            Rule::BackupRecoveryPointRegion => "backup.recovery_point_region",
            Rule::BackupPlanCopy => "backup.plan_copy",
            Rule::BackupRetention => "backup.retention",
            Rule::BackupCoverage => "backup.coverage",
            Rule::Ec2VolumeRegion => "ec2.volume_region",
            Rule::Ec2SnapshotRegion => "ec2.snapshot_region",
            Rule::KmsKeyRegion => "kms.key_region",
            Rule::NetworkInternetGateway => "network.internet_gateway",
            Rule::NetworkEgressOnlyGateway => "network.egress_only_gateway",
            Rule::NetworkNatGateway => "network.nat_gateway",
            Rule::NetworkVpcEndpoints => "network.vpc_endpoints",
            Rule::AuditRegionUnreachable => "audit.region_unreachable",
        }
    }

    /// The runbook page (relative to the repository root) explaining this rule's findings.
    pub fn runbook(self) -> &'static str {
        match self {
            Rule::S3BucketRegion
            | Rule::S3Versioning
            | Rule::S3Encryption
            | Rule::S3Replication
            | Rule::S3CertificateObjectLock => "runbooks/residency-s3.md",
            Rule::BackupVaultRegion
            | Rule::BackupRecoveryPointRegion
            | Rule::BackupPlanCopy
            | Rule::BackupRetention => "runbooks/residency-backup.md",
            Rule::BackupCoverage => "runbooks/backup-coverage.md",
            Rule::Ec2VolumeRegion | Rule::Ec2SnapshotRegion | Rule::KmsKeyRegion => {
                "runbooks/residency-ec2-kms.md"
            }
            Rule::NetworkInternetGateway
            | Rule::NetworkEgressOnlyGateway
            | Rule::NetworkNatGateway
            | Rule::NetworkVpcEndpoints => "runbooks/residency-network.md",
            Rule::AuditRegionUnreachable => "runbooks/residency-audit-incomplete.md",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Compliant,
    Violation,
    /// The region or API could not be read: never counted as compliant.
    Unknown,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Compliant, Status::Violation, Status::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Compliant => "compliant",
            Status::Violation => "violation",
            Status::Unknown => "unknown",
        }
    }
}

/// One rule checked on one resource. `detail` names resources, regions and AWS error codes
/// only: never object keys, tag values or anything that could be personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub resource: String,
    pub region: String,
    pub rule: Rule,
    pub status: Status,
    pub detail: String,
    /// `backup.coverage` only: the stack, its location and the location's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<StackRef>,
}

fn finding(
    resource: impl Into<String>,
    region: impl Into<String>,
    rule: Rule,
    status: Status,
    detail: impl Into<String>,
) -> Finding {
    Finding {
        resource: resource.into(),
        region: region.into(),
        rule,
        status,
        detail: detail.into(),
        backup: None,
    }
}

/// What could not be read, and why (an AWS error code and message, or a missing API).
pub type Fact<T> = Result<T, String>;

/// A bucket's facts. S3 is global: one list, then each bucket in its own region.
#[derive(Debug, Clone)]
pub struct BucketFacts {
    pub name: String,
    pub region: Fact<String>,
    /// `Enabled`, `Suspended`, or None when never enabled.
    pub versioning: Fact<Option<String>>,
    /// The default-encryption rules: (algorithm, KMS key id or ARN).
    pub encryption: Fact<Vec<(String, Option<String>)>>,
    /// Empty when the bucket has no replication configuration.
    pub replication: Fact<Vec<ReplicationRuleFacts>>,
    /// Only the `kenko:data` tag's value is kept (the only tag the audit reads).
    pub data_tag: Fact<Option<String>>,
    /// Read only for certificate buckets (None: not read).
    pub object_lock: Option<Fact<bool>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationRuleFacts {
    pub id: String,
    pub enabled: bool,
    pub destination_bucket: String,
    pub destination_region: Fact<String>,
}

#[derive(Debug, Clone, Default)]
pub struct BackupFacts {
    pub vaults: Vec<VaultFacts>,
    pub plans: Vec<PlanFacts>,
}

#[derive(Debug, Clone)]
pub struct VaultFacts {
    pub arn: String,
    pub name: String,
    pub recovery_points: i64,
}

#[derive(Debug, Clone)]
pub struct PlanFacts {
    pub id: String,
    pub arn: String,
    pub rules: Fact<Vec<PlanRuleFacts>>,
    /// Its backup selections: read only in the regions where a stack's data is
    /// (`backup.coverage`), else None.
    pub selections: Option<Fact<Vec<coverage::SelectionFacts>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRuleFacts {
    pub name: String,
    /// None: kept forever.
    pub delete_after_days: Option<i64>,
    pub copies: Vec<CopyFacts>,
    /// `cron(...)` (UTC); None for a rule without a schedule.
    pub schedule: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFacts {
    pub destination_vault_arn: String,
    pub delete_after_days: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Ec2Facts {
    pub volumes: Vec<String>,
    pub snapshots: Vec<String>,
    /// The stack's VPCs (by tag) and what is attached to them.
    pub vpcs: Fact<Vec<VpcFacts>>,
}

#[derive(Debug, Clone)]
pub struct VpcFacts {
    pub id: String,
    pub internet_gateways: Fact<Vec<String>>,
    pub egress_only_gateways: Fact<Vec<String>>,
    pub nat_gateways: Fact<Vec<String>>,
    /// The last part of each endpoint's service name (`com.amazonaws.REGION.SERVICE`).
    pub endpoint_services: Fact<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct KeyFacts {
    pub arn: String,
    /// Read (DescribeKey) only for keys outside Japan: `CUSTOMER`/`AWS` and the key state.
    pub described: Option<Fact<(String, String)>>,
}

/// Everything one region answered (or why it did not), per service.
#[derive(Debug, Clone)]
pub struct RegionFacts {
    pub region: String,
    pub ec2: Fact<Ec2Facts>,
    pub kms: Fact<Vec<KeyFacts>>,
    pub backup: Fact<BackupFacts>,
}

/// All facts of one sweep.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The region S3's bucket list was asked in.
    pub s3_region: String,
    pub buckets: Fact<Vec<BucketFacts>>,
    pub regions: Vec<RegionFacts>,
    /// The stacks' data locations and their backups (`backup.coverage`).
    pub coverage: CoverageFacts,
}

/// What the account is held to.
#[derive(Debug, Clone)]
pub struct Policy {
    pub retention_years: u32,
    pub certificate_bucket: Option<String>,
    /// VPCs with this tag key (and value, if set) hold the stack.
    pub vpc_tag: (String, Option<String>),
    pub required_endpoints: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retention_years: 20,
            certificate_bucket: None,
            vpc_tag: (STACK_TAG.into(), None),
            required_endpoints: REQUIRED_ENDPOINT_SERVICES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Policy {
    /// The shortest retention allowed, in days: whole years of 365 days (Terraform keeps
    /// 365.25 per year, so it is always above this floor).
    pub fn min_retention_days(&self) -> i64 {
        i64::from(self.retention_years) * 365
    }

    pub fn vpc_tag_text(&self) -> String {
        match &self.vpc_tag.1 {
            Some(v) => format!("{}={v}", self.vpc_tag.0),
            None => self.vpc_tag.0.clone(),
        }
    }
}

fn japan_text() -> String {
    JAPAN.join(", ")
}

/// Every rule on every resource of the inventory.
pub fn evaluate(inv: &Inventory, policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    match &inv.buckets {
        Ok(buckets) => evaluate_buckets(buckets, policy, &mut out),
        Err(e) => out.push(finding(
            "s3",
            &inv.s3_region,
            Rule::AuditRegionUnreachable,
            Status::Unknown,
            format!("ListBuckets failed, no bucket could be checked: {e}"),
        )),
    }
    let mut stack_vpcs_seen = false;
    let mut vpc_listing_failed = false;
    for r in &inv.regions {
        let region = r.region.as_str();
        for (service, err) in [
            ("ec2", r.ec2.as_ref().err()),
            ("kms", r.kms.as_ref().err()),
            ("backup", r.backup.as_ref().err()),
        ] {
            if let Some(e) = err {
                out.push(finding(
                    service,
                    region,
                    Rule::AuditRegionUnreachable,
                    Status::Unknown,
                    format!("{service} in {region} did not answer: {e}"),
                ));
            }
        }
        if let Ok(ec2) = &r.ec2 {
            evaluate_ec2(region, ec2, &mut out);
            match &ec2.vpcs {
                Ok(vpcs) => {
                    stack_vpcs_seen |= !vpcs.is_empty();
                    for v in vpcs {
                        evaluate_vpc(region, v, policy, &mut out);
                    }
                }
                Err(e) => {
                    vpc_listing_failed = true;
                    for rule in NETWORK_RULES {
                        out.push(finding(
                            "vpc",
                            region,
                            rule,
                            Status::Unknown,
                            format!("the VPCs of {region} could not be listed: {e}"),
                        ));
                    }
                }
            }
        } else {
            vpc_listing_failed = true;
        }
        if let Ok(keys) = &r.kms {
            for k in keys {
                out.push(evaluate_key(region, k));
            }
        }
        if let Ok(b) = &r.backup {
            evaluate_backup(region, b, policy, &mut out);
        }
    }
    coverage::evaluate(inv, &mut out);
    if !stack_vpcs_seen && !vpc_listing_failed {
        // Nothing to check is not a pass: the tag may be wrong, or the VPC in an unswept region.
        for rule in NETWORK_RULES {
            out.push(finding(
                format!("vpc tag {}", policy.vpc_tag_text()),
                "global",
                rule,
                Status::Unknown,
                format!(
                    "no VPC tagged {} in the swept regions: the stack's network could not be checked",
                    policy.vpc_tag_text()
                ),
            ));
        }
    }
    out.sort_by(|a, b| {
        (a.rule, &a.region, &a.resource, &a.detail).cmp(&(
            b.rule,
            &b.region,
            &b.resource,
            &b.detail,
        ))
    });
    out
}

const NETWORK_RULES: [Rule; 4] = [
    Rule::NetworkInternetGateway,
    Rule::NetworkEgressOnlyGateway,
    Rule::NetworkNatGateway,
    Rule::NetworkVpcEndpoints,
];

pub fn bucket_resource(name: &str) -> String {
    format!("arn:aws:s3:::{name}")
}

/// Is this a certificate bucket (named by `--certificate-bucket`, or tagged
/// `kenko:data=certificates` by Terraform)? None when it cannot be told.
fn is_certificate_bucket(b: &BucketFacts, policy: &Policy) -> Option<bool> {
    if policy.certificate_bucket.as_deref() == Some(b.name.as_str()) {
        return Some(true);
    }
    match &b.data_tag {
        Ok(t) => Some(t.as_deref() == Some("certificates")),
        Err(_) => None,
    }
}

/// Does the bucket need its Object Lock read?
pub fn needs_object_lock(b: &BucketFacts, policy: &Policy) -> bool {
    is_certificate_bucket(b, policy) == Some(true)
}

fn evaluate_buckets(buckets: &[BucketFacts], policy: &Policy, out: &mut Vec<Finding>) {
    for b in buckets {
        let res = bucket_resource(&b.name);
        let region = match &b.region {
            Ok(r) => r.clone(),
            Err(e) => {
                for rule in [
                    Rule::S3BucketRegion,
                    Rule::S3Versioning,
                    Rule::S3Encryption,
                    Rule::S3Replication,
                ] {
                    out.push(finding(
                        &res,
                        "unknown",
                        rule,
                        Status::Unknown,
                        format!("the bucket's region could not be read: {e}"),
                    ));
                }
                continue;
            }
        };
        out.push(if in_japan(&region) {
            finding(
                &res,
                &region,
                Rule::S3BucketRegion,
                Status::Compliant,
                format!("in {region}"),
            )
        } else {
            finding(
                &res,
                &region,
                Rule::S3BucketRegion,
                Status::Violation,
                format!("bucket is in {region}; allowed: {}", japan_text()),
            )
        });
        out.push(match &b.versioning {
            Ok(Some(s)) if s == "Enabled" => finding(
                &res,
                &region,
                Rule::S3Versioning,
                Status::Compliant,
                "versioning Enabled",
            ),
            Ok(s) => finding(
                &res,
                &region,
                Rule::S3Versioning,
                Status::Violation,
                format!(
                    "versioning is {}, expected Enabled",
                    s.as_deref().unwrap_or("never enabled")
                ),
            ),
            Err(e) => finding(
                &res,
                &region,
                Rule::S3Versioning,
                Status::Unknown,
                e.clone(),
            ),
        });
        out.push(evaluate_encryption(&res, &region, &b.encryption));
        match &b.replication {
            Ok(rules) if rules.is_empty() => out.push(finding(
                &res,
                &region,
                Rule::S3Replication,
                Status::Compliant,
                "no replication rules",
            )),
            Ok(rules) => {
                for r in rules {
                    out.push(evaluate_replication_rule(&res, &region, r));
                }
            }
            Err(e) => out.push(finding(
                &res,
                &region,
                Rule::S3Replication,
                Status::Unknown,
                e.clone(),
            )),
        }
        match is_certificate_bucket(b, policy) {
            Some(true) => out.push(match &b.object_lock {
                Some(Ok(true)) => finding(
                    &res,
                    &region,
                    Rule::S3CertificateObjectLock,
                    Status::Compliant,
                    "certificate bucket with Object Lock enabled",
                ),
                Some(Ok(false)) => finding(
                    &res,
                    &region,
                    Rule::S3CertificateObjectLock,
                    Status::Violation,
                    "certificate bucket without Object Lock: certificates can be deleted or overwritten",
                ),
                Some(Err(e)) => finding(&res, &region, Rule::S3CertificateObjectLock, Status::Unknown, e.clone()),
                None => finding(
                    &res,
                    &region,
                    Rule::S3CertificateObjectLock,
                    Status::Unknown,
                    "Object Lock configuration was not read",
                ),
            }),
            Some(false) => {}
            None => out.push(finding(
                &res,
                &region,
                Rule::S3CertificateObjectLock,
                Status::Unknown,
                format!(
                    "the bucket's tags could not be read, so whether it holds certificates is unknown: {}",
                    b.data_tag.as_ref().err().cloned().unwrap_or_default()
                ),
            )),
        }
    }
    if let Some(name) = &policy.certificate_bucket {
        if !buckets.iter().any(|b| &b.name == name) {
            out.push(finding(
                bucket_resource(name),
                "global",
                Rule::S3CertificateObjectLock,
                Status::Violation,
                "the certificate bucket named by --certificate-bucket does not exist in this account",
            ));
        }
    }
}

fn evaluate_encryption(
    res: &str,
    region: &str,
    enc: &Fact<Vec<(String, Option<String>)>>,
) -> Finding {
    let rule = Rule::S3Encryption;
    let rules = match enc {
        Ok(r) => r,
        Err(e) => return finding(res, region, rule, Status::Unknown, e.clone()),
    };
    let Some((algorithm, key)) = rules.first() else {
        return finding(
            res,
            region,
            rule,
            Status::Violation,
            "no default encryption",
        );
    };
    if !algorithm.starts_with("aws:kms") {
        return finding(
            res,
            region,
            rule,
            Status::Violation,
            format!("default encryption is {algorithm}, expected aws:kms with a key in Japan"),
        );
    }
    // A bare key id or alias is resolved by S3 in the bucket's own region.
    let key_region = key
        .as_deref()
        .and_then(arn_region)
        .unwrap_or(region)
        .to_string();
    match key {
        None => finding(
            res,
            region,
            rule,
            Status::Violation,
            "aws:kms with the AWS managed key (aws/s3): use a customer managed key in Japan, which crypto-erase can destroy",
        ),
        Some(k) if in_japan(&key_region) => finding(
            res,
            region,
            rule,
            Status::Compliant,
            format!("{algorithm} with key {k} in {key_region}"),
        ),
        Some(k) => finding(
            res,
            region,
            rule,
            Status::Violation,
            format!("{algorithm} with key {k} in {key_region}, outside Japan"),
        ),
    }
}

pub fn replication_resource(bucket: &str, rule_id: &str) -> String {
    format!("arn:aws:s3:::{bucket}#replication/{rule_id}")
}

fn evaluate_replication_rule(bucket_res: &str, region: &str, r: &ReplicationRuleFacts) -> Finding {
    let res = format!("{bucket_res}#replication/{}", r.id);
    let rule = Rule::S3Replication;
    let state = if r.enabled { "" } else { " (rule disabled)" };
    match &r.destination_region {
        Err(e) => finding(
            res,
            region,
            rule,
            Status::Unknown,
            format!("the region of destination bucket {} could not be read: {e}", r.destination_bucket),
        ),
        Ok(d) if !in_japan(d) => finding(
            res,
            region,
            rule,
            Status::Violation,
            format!("replicates to {} in {d}, outside Japan{state}", r.destination_bucket),
        ),
        Ok(d) if d == region => finding(
            res,
            region,
            rule,
            Status::Violation,
            format!(
                "replicates to {} in the same region {d}: the copy must be in the other Japanese region{state}",
                r.destination_bucket
            ),
        ),
        Ok(d) => finding(
            res,
            region,
            rule,
            Status::Compliant,
            format!("replicates to {} in {d}{state}", r.destination_bucket),
        ),
    }
}

fn evaluate_ec2(region: &str, ec2: &Ec2Facts, out: &mut Vec<Finding>) {
    let ok = in_japan(region);
    for (ids, rule, kind) in [
        (&ec2.volumes, Rule::Ec2VolumeRegion, "volume"),
        (&ec2.snapshots, Rule::Ec2SnapshotRegion, "snapshot"),
    ] {
        for id in ids {
            out.push(finding(
                format!("arn:aws:ec2:{region}::{kind}/{id}"),
                region,
                rule,
                if ok {
                    Status::Compliant
                } else {
                    Status::Violation
                },
                if ok {
                    format!("EBS {kind} in {region}")
                } else {
                    format!("EBS {kind} in {region}, outside Japan")
                },
            ));
        }
    }
}

fn evaluate_key(region: &str, k: &KeyFacts) -> Finding {
    if in_japan(region) {
        return finding(
            &k.arn,
            region,
            Rule::KmsKeyRegion,
            Status::Compliant,
            format!("in {region}"),
        );
    }
    let about = match &k.described {
        Some(Ok((manager, state))) => format!(" ({manager} managed, {state})"),
        Some(Err(e)) => format!(" (DescribeKey failed: {e})"),
        None => String::new(),
    };
    finding(
        &k.arn,
        region,
        Rule::KmsKeyRegion,
        Status::Violation,
        format!("KMS key in {region}, outside Japan{about}"),
    )
}

fn evaluate_vpc(region: &str, v: &VpcFacts, policy: &Policy, out: &mut Vec<Finding>) {
    let vpc_res = format!("arn:aws:ec2:{region}::vpc/{}", v.id);
    for (fact, rule, kind, what) in [
        (
            &v.internet_gateways,
            Rule::NetworkInternetGateway,
            "internet-gateway",
            "internet gateway",
        ),
        (
            &v.egress_only_gateways,
            Rule::NetworkEgressOnlyGateway,
            "egress-only-internet-gateway",
            "egress-only internet gateway",
        ),
        (
            &v.nat_gateways,
            Rule::NetworkNatGateway,
            "natgateway",
            "NAT gateway",
        ),
    ] {
        match fact {
            Err(e) => out.push(finding(&vpc_res, region, rule, Status::Unknown, e.clone())),
            Ok(ids) if ids.is_empty() => out.push(finding(
                &vpc_res,
                region,
                rule,
                Status::Compliant,
                format!("no {what} attached to {}", v.id),
            )),
            Ok(ids) => {
                for id in ids {
                    out.push(finding(
                        format!("arn:aws:ec2:{region}::{kind}/{id}"),
                        region,
                        rule,
                        Status::Violation,
                        format!(
                            "{what} {id} attached to the stack's VPC {}: a path to the internet",
                            v.id
                        ),
                    ));
                }
            }
        }
    }
    out.push(match &v.endpoint_services {
        Err(e) => finding(
            &vpc_res,
            region,
            Rule::NetworkVpcEndpoints,
            Status::Unknown,
            e.clone(),
        ),
        Ok(have) => {
            let have: BTreeSet<&str> = have.iter().map(String::as_str).collect();
            let missing: Vec<&str> = policy
                .required_endpoints
                .iter()
                .map(String::as_str)
                .filter(|s| !have.contains(s))
                .collect();
            if missing.is_empty() {
                finding(
                    &vpc_res,
                    region,
                    Rule::NetworkVpcEndpoints,
                    Status::Compliant,
                    format!(
                        "all {} required VPC endpoints present",
                        policy.required_endpoints.len()
                    ),
                )
            } else {
                finding(
                    &vpc_res,
                    region,
                    Rule::NetworkVpcEndpoints,
                    Status::Violation,
                    format!("VPC endpoints missing: {}", missing.join(", ")),
                )
            }
        }
    });
}

fn evaluate_backup(region: &str, b: &BackupFacts, policy: &Policy, out: &mut Vec<Finding>) {
    let ok = in_japan(region);
    for v in &b.vaults {
        out.push(finding(
            &v.arn,
            region,
            Rule::BackupVaultRegion,
            if ok {
                Status::Compliant
            } else {
                Status::Violation
            },
            if ok {
                format!("vault in {region}")
            } else {
                format!("backup vault in {region}, outside Japan")
            },
        ));
        // A recovery point is stored in its vault's region, so the vault's region and its
        // recovery-point count answer this rule without listing every point.
        out.push(if ok || v.recovery_points == 0 {
            finding(
                &v.arn,
                region,
                Rule::BackupRecoveryPointRegion,
                Status::Compliant,
                format!(
                    "{} recovery point(s), stored in {region}",
                    v.recovery_points
                ),
            )
        } else {
            finding(
                &v.arn,
                region,
                Rule::BackupRecoveryPointRegion,
                Status::Violation,
                format!(
                    "{} recovery point(s) stored in {region}, outside Japan",
                    v.recovery_points
                ),
            )
        });
    }
    for p in &b.plans {
        let rules = match &p.rules {
            Ok(r) => r,
            Err(e) => {
                for rule in [Rule::BackupPlanCopy, Rule::BackupRetention] {
                    out.push(finding(&p.arn, region, rule, Status::Unknown, e.clone()));
                }
                continue;
            }
        };
        for r in rules {
            let res = format!("{}#rule/{}", p.arn, r.name);
            out.push(evaluate_plan_copy(&res, region, r));
            out.push(evaluate_retention(&res, region, r, policy));
        }
    }
}

fn evaluate_plan_copy(res: &str, region: &str, r: &PlanRuleFacts) -> Finding {
    let rule = Rule::BackupPlanCopy;
    if r.copies.is_empty() {
        return finding(
            res,
            region,
            rule,
            Status::Violation,
            "no copy action: backups must be copied to the other Japanese region",
        );
    }
    let mut problems = Vec::new();
    let mut good = Vec::new();
    for c in &r.copies {
        match arn_region(&c.destination_vault_arn) {
            None => problems.push(format!(
                "copy destination {} has no region",
                c.destination_vault_arn
            )),
            Some(d) if !in_japan(d) => problems.push(format!(
                "copies to {} in {d}, outside Japan",
                c.destination_vault_arn
            )),
            Some(d) if d == region => problems.push(format!(
                "copies to {} in the same region {d}",
                c.destination_vault_arn
            )),
            Some(_) => good.push(c.destination_vault_arn.clone()),
        }
    }
    if problems.is_empty() {
        finding(
            res,
            region,
            rule,
            Status::Compliant,
            format!("copies to {}", good.join(", ")),
        )
    } else {
        finding(res, region, rule, Status::Violation, problems.join("; "))
    }
}

fn evaluate_retention(res: &str, region: &str, r: &PlanRuleFacts, policy: &Policy) -> Finding {
    let min = policy.min_retention_days();
    let mut short = Vec::new();
    if let Some(d) = r.delete_after_days.filter(|d| *d < min) {
        short.push(format!("recovery points deleted after {d} days"));
    }
    for c in &r.copies {
        if let Some(d) = c.delete_after_days.filter(|d| *d < min) {
            short.push(format!(
                "copies to {} deleted after {d} days",
                c.destination_vault_arn
            ));
        }
    }
    if short.is_empty() {
        finding(
            res,
            region,
            Rule::BackupRetention,
            Status::Compliant,
            format!(
                "kept {} (policy: at least {min} days, {} years)",
                r.delete_after_days
                    .map(|d| format!("{d} days"))
                    .unwrap_or_else(|| "forever".into()),
                policy.retention_years
            ),
        )
    } else {
        finding(
            res,
            region,
            Rule::BackupRetention,
            Status::Violation,
            format!(
                "{}; the policy is at least {min} days ({} years)",
                short.join("; "),
                policy.retention_years
            ),
        )
    }
}

/// A change `--remediate` makes (or, without it, would make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `remove_replication_rules` or `remove_copy_actions`.
    pub kind: String,
    /// The bucket ARN or the backup plan ARN.
    pub resource: String,
    pub region: String,
    /// The replication rule ids, or `RULE_NAME -> DESTINATION_VAULT_ARN` copy actions, removed.
    pub removes: Vec<String>,
    /// `planned` (dry run), `done` or `failed`.
    pub outcome: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The planned remediation: only what points outside Japan is removed (a same-region copy is
/// reported, not removed: the fix is to point it at the other region, which needs a person).
pub fn plan_remediation(inv: &Inventory) -> Vec<Action> {
    let mut out = Vec::new();
    if let Ok(buckets) = &inv.buckets {
        for b in buckets {
            let (Ok(region), Ok(rules)) = (&b.region, &b.replication) else {
                continue;
            };
            let removes: Vec<String> = rules
                .iter()
                .filter(|r| matches!(&r.destination_region, Ok(d) if !in_japan(d)))
                .map(|r| r.id.clone())
                .collect();
            if !removes.is_empty() {
                out.push(Action {
                    kind: "remove_replication_rules".into(),
                    resource: bucket_resource(&b.name),
                    region: region.clone(),
                    removes,
                    outcome: "planned".into(),
                    error: None,
                });
            }
        }
    }
    for r in &inv.regions {
        let Ok(b) = &r.backup else { continue };
        for p in &b.plans {
            let Ok(rules) = &p.rules else { continue };
            let removes: Vec<String> = rules
                .iter()
                .flat_map(|rule| {
                    rule.copies
                        .iter()
                        .filter(|c| {
                            arn_region(&c.destination_vault_arn).is_some_and(|d| !in_japan(d))
                        })
                        .map(move |c| format!("{} -> {}", rule.name, c.destination_vault_arn))
                })
                .collect();
            if !removes.is_empty() {
                out.push(Action {
                    kind: "remove_copy_actions".into(),
                    resource: p.arn.clone(),
                    region: r.region.clone(),
                    removes,
                    outcome: "planned".into(),
                    error: None,
                });
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub compliant: u64,
    pub violation: u64,
    pub unknown: u64,
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Compliant => self.compliant += 1,
            Status::Violation => self.violation += 1,
            Status::Unknown => self.unknown += 1,
        }
    }

    pub fn get(&self, s: Status) -> u64 {
        match s {
            Status::Compliant => self.compliant,
            Status::Violation => self.violation,
            Status::Unknown => self.unknown,
        }
    }
}

/// The report: stable JSON, documented in `docs/residency-report.md`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `kenko.residency-report/v1`.
    pub schema: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub finished_at: String,
    pub regions: Vec<String>,
    pub japan_regions: Vec<String>,
    pub retention_years: u32,
    /// Every region and API answered: no Unknown finding.
    pub complete: bool,
    /// HTTP attempts made to AWS (retries included).
    pub api_calls: u64,
    pub summary: Counts,
    /// Counts per rule id; every rule is listed, with zeros.
    pub rules: BTreeMap<Rule, Counts>,
    pub findings: Vec<Finding>,
    pub remediate: bool,
    pub actions: Vec<Action>,
}

pub const SCHEMA: &str = "kenko.residency-report/v1";

impl Report {
    pub fn new(findings: Vec<Finding>, regions: Vec<String>, policy: &Policy) -> Report {
        let mut summary = Counts::default();
        let mut rules: BTreeMap<Rule, Counts> =
            Rule::ALL.iter().map(|r| (*r, Counts::default())).collect();
        for f in &findings {
            summary.add(f.status);
            rules.entry(f.rule).or_default().add(f.status);
        }
        Report {
            schema: SCHEMA.into(),
            started_at: String::new(),
            finished_at: String::new(),
            regions,
            japan_regions: JAPAN.iter().map(|s| s.to_string()).collect(),
            retention_years: policy.retention_years,
            complete: summary.unknown == 0,
            api_calls: 0,
            summary,
            rules,
            findings,
            remediate: false,
            actions: Vec::new(),
        }
    }

    /// 0 all compliant, 1 any violation, 2 unknowns but no violation.
    pub fn exit_code(&self) -> u8 {
        if self.summary.violation > 0 {
            1
        } else if self.summary.unknown > 0 {
            2
        } else {
            0
        }
    }

    /// The report for people: the problems first, then the counts.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "residency audit {} .. {}: {} region(s), {} API call(s)",
            self.started_at,
            self.finished_at,
            self.regions.len(),
            self.api_calls
        );
        for status in [Status::Violation, Status::Unknown] {
            for f in self.findings.iter().filter(|f| f.status == status) {
                let _ = writeln!(
                    s,
                    "{:<9} {:<28} {:<15} {}\n          {}",
                    status.as_str().to_uppercase(),
                    f.rule.as_str(),
                    f.region,
                    f.resource,
                    f.detail
                );
            }
        }
        let _ = writeln!(
            s,
            "\n{:<28} {:>9} {:>9} {:>9}",
            "rule", "compliant", "violation", "unknown"
        );
        for (rule, c) in &self.rules {
            let _ = writeln!(
                s,
                "{:<28} {:>9} {:>9} {:>9}",
                rule.as_str(),
                c.compliant,
                c.violation,
                c.unknown
            );
        }
        for a in &self.actions {
            let _ = writeln!(
                s,
                "action {} {} ({}): {} [{}]{}",
                a.kind,
                a.resource,
                a.region,
                a.removes.join(", "),
                a.outcome,
                a.error
                    .as_deref()
                    .map(|e| format!(" {e}"))
                    .unwrap_or_default()
            );
        }
        if !self.actions.is_empty() && !self.remediate {
            let _ = writeln!(
                s,
                "(dry run: nothing was changed; --remediate applies the actions)"
            );
        }
        let _ = writeln!(
            s,
            "\n{} compliant, {} violation(s), {} unknown: {}",
            self.summary.compliant,
            self.summary.violation,
            self.summary.unknown,
            match self.exit_code() {
                0 => "COMPLIANT",
                1 => "VIOLATIONS FOUND",
                _ => "INCOMPLETE (some regions or APIs did not answer)",
            }
        );
        s
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
