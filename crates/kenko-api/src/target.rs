//! The erasure vocabulary every part shares: what can be erased ([`Target`], by
//! [`TargetKind`]), how ([`ErasureMethod`]), how it is verified ([`VerifyMode`]) and with which
//! overwrite pattern ([`Pattern`]).
//!
//! The controller plans targets ([`Target`] values), the API server admits them (the CEL rule
//! [`targets_cel_rule`] is built from the same kinds), the agent resolves the cluster-level
//! kinds (a PVC, the stack's recovery points in a vault) into engine targets and the engine
//! dispatches on the kind. A kind one side can emit and the other cannot handle is a missing
//! `match` arm, a compile error, not a runtime refusal.
//!
//! On the wire (ErasureRequest and ErasureCertificate resources, certificates, the CLI) a
//! target is its [`Display`](std::fmt::Display) form, e.g. `pvc:hachioji-data` or
//! `backup-vault:ap-northeast-3/kenko-prod-osaka`; [`FromStr`] parses exactly what `Display`
//! writes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest target the API accepts (a path, a bucket and prefix, two ARNs).
pub const MAX_TARGET_LEN: usize = 1024;

/// AWS region names (`ap-northeast-1`), as an RE2 fragment.
const REGION: &str = "[a-z]{2}(-[a-z]+)+-[0-9]{1,2}";
/// AWS Backup vault names: 2 to 50 letters, digits, `-`, `_` and `.`.
const VAULT: &str = "[A-Za-z0-9_.-]{2,50}";

/// The kinds of target. Cluster kinds name something in the cluster that the agent resolves
/// (a PVC of the request's namespace, the stack's recovery points in a vault); engine kinds
/// are erased as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetKind {
    /// `pvc:NAME`: a PersistentVolumeClaim in the request's namespace.
    Pvc,
    /// `backup-vault:REGION/VAULT`: every recovery point of the request's stack in that vault.
    BackupVault,
    /// `file:/PATH`.
    File,
    /// `dir:/PATH`: a folder and everything under it.
    Dir,
    /// `device:/dev/...`: a whole block device.
    Device,
    /// `s3://BUCKET[/PREFIX]`: every version and delete marker.
    S3,
    /// `ebs-snapshot:REGION/snap-...`.
    EbsSnapshot,
    /// `ebs-volume:REGION/vol-...`: an EBS volume (a PVC of the EBS CSI driver).
    EbsVolume,
    /// `backup-rp:VAULT_ARN/RECOVERY_POINT_ARN`: one recovery point.
    BackupRecoveryPoint,
    /// `kms:KEY` (key id, key ARN or alias): scheduled for deletion.
    Kms,
    /// `datakey:NAME`: a data key the agent holds, destroyed.
    DataKey,
}

/// How a target's erasure is certified: one job (and one certificate) never mixes classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetClass {
    /// Media on a node: overwritten (Clear) or purged.
    Media,
    /// Cloud objects: deleted and listed again.
    Cloud,
    /// Keys: cryptographic erase.
    Key,
}

impl TargetClass {
    pub fn label(self) -> &'static str {
        match self {
            TargetClass::Media => "media",
            TargetClass::Cloud => "cloud",
            TargetClass::Key => "keys",
        }
    }
}

impl TargetKind {
    /// Every kind, in the order the CEL rule lists them.
    pub const ALL: [TargetKind; 11] = [
        TargetKind::Pvc,
        TargetKind::BackupVault,
        TargetKind::File,
        TargetKind::Dir,
        TargetKind::Device,
        TargetKind::S3,
        TargetKind::EbsSnapshot,
        TargetKind::EbsVolume,
        TargetKind::BackupRecoveryPoint,
        TargetKind::Kms,
        TargetKind::DataKey,
    ];

    /// The prefix that names the kind on the wire.
    pub fn prefix(self) -> &'static str {
        match self {
            TargetKind::Pvc => "pvc:",
            TargetKind::BackupVault => "backup-vault:",
            TargetKind::File => "file:",
            TargetKind::Dir => "dir:",
            TargetKind::Device => "device:",
            TargetKind::S3 => "s3://",
            TargetKind::EbsSnapshot => "ebs-snapshot:",
            TargetKind::EbsVolume => "ebs-volume:",
            TargetKind::BackupRecoveryPoint => "backup-rp:",
            TargetKind::Kms => "kms:",
            TargetKind::DataKey => "datakey:",
        }
    }

    /// The syntax, for people (error messages, docs).
    pub fn syntax(self) -> &'static str {
        match self {
            TargetKind::Pvc => "pvc:NAME",
            TargetKind::BackupVault => "backup-vault:REGION/VAULT",
            TargetKind::File => "file:/PATH",
            TargetKind::Dir => "dir:/PATH",
            TargetKind::Device => "device:/dev/NAME",
            TargetKind::S3 => "s3://BUCKET[/PREFIX]",
            TargetKind::EbsSnapshot => "ebs-snapshot:REGION/snap-ID",
            TargetKind::EbsVolume => "ebs-volume:REGION/vol-ID",
            TargetKind::BackupRecoveryPoint => "backup-rp:VAULT_ARN/RECOVERY_POINT_ARN",
            TargetKind::Kms => "kms:KEY (id, ARN or alias)",
            TargetKind::DataKey => "datakey:NAME",
        }
    }

    /// The whole target's syntax as an RE2 expression (prefix included), as the API server
    /// checks it. Each is at least as strict as [`FromStr`] for the same kind, so whatever
    /// admission lets through the agent can parse.
    pub fn pattern(self) -> String {
        match self {
            TargetKind::Pvc => "pvc:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?".into(),
            TargetKind::BackupVault => format!("backup-vault:{REGION}/{VAULT}"),
            TargetKind::File => "file:/[^\\x00]+".into(),
            TargetKind::Dir => "dir:/[^\\x00]+".into(),
            TargetKind::Device => "device:/dev/[^\\x00]+".into(),
            TargetKind::S3 => "s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\\x00]*)?".into(),
            TargetKind::EbsSnapshot => format!("ebs-snapshot:{REGION}/snap-[0-9a-zA-Z]+"),
            TargetKind::EbsVolume => format!("ebs-volume:{REGION}/vol-[0-9a-zA-Z]+"),
            TargetKind::BackupRecoveryPoint => format!(
                "backup-rp:arn:aws[a-z-]*:backup:{REGION}:[0-9]{{12}}:backup-vault:{VAULT}/arn:[^\\x00]+"
            ),
            TargetKind::Kms => format!(
                "kms:(arn:aws[a-z-]*:kms:{REGION}:[0-9]{{12}}:(key|alias)/[A-Za-z0-9/_-]+|alias/[A-Za-z0-9/_-]+|[A-Za-z0-9-]+)"
            ),
            TargetKind::DataKey => "datakey:[a-z0-9][a-z0-9._-]{0,62}".into(),
        }
    }

    /// Resolved by the agent from the cluster (not erased as written).
    pub fn is_cluster(self) -> bool {
        matches!(self, TargetKind::Pvc | TargetKind::BackupVault)
    }

    pub fn class(self) -> TargetClass {
        match self {
            TargetKind::Pvc | TargetKind::File | TargetKind::Dir | TargetKind::Device => {
                TargetClass::Media
            }
            TargetKind::BackupVault
            | TargetKind::S3
            | TargetKind::EbsSnapshot
            | TargetKind::EbsVolume
            | TargetKind::BackupRecoveryPoint => TargetClass::Cloud,
            TargetKind::Kms | TargetKind::DataKey => TargetClass::Key,
        }
    }

    /// The kind a target string claims by its prefix, if any.
    pub fn of(s: &str) -> Option<TargetKind> {
        TargetKind::ALL
            .into_iter()
            .find(|k| s.starts_with(k.prefix()))
    }
}

/// One erasure target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Pvc {
        name: String,
    },
    BackupVault {
        region: String,
        vault: String,
    },
    File {
        path: String,
    },
    Dir {
        path: String,
    },
    Device {
        path: String,
    },
    S3 {
        bucket: String,
        /// Without a leading `/`; empty for the whole bucket.
        prefix: String,
    },
    EbsSnapshot {
        region: String,
        snapshot_id: String,
    },
    EbsVolume {
        region: String,
        volume_id: String,
    },
    BackupRecoveryPoint {
        /// `arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME`.
        vault_arn: String,
        recovery_point_arn: String,
    },
    Kms {
        /// Key id, key ARN, alias name or alias ARN.
        key: String,
    },
    DataKey {
        name: String,
    },
}

/// A string that is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {shown:?}: expected {expected}")]
pub struct TargetError {
    /// The target as given, cut to 200 characters.
    pub shown: String,
    pub expected: String,
}

impl TargetError {
    /// Stable, shared with the agent's erasure errors.
    pub fn reason(&self) -> &'static str {
        "erase_target_unsupported"
    }
}

fn region_ok(r: &str) -> bool {
    // [a-z]{2}(-[a-z]+)+-[0-9]{1,2}
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && (1..=2).contains(&parts[parts.len() - 1].len())
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

fn vault_ok(v: &str) -> bool {
    (2..=50).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn dns_subdomain_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.as_bytes()[n.len() - 1].is_ascii_alphanumeric()
}

fn bucket_ok(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

fn id_ok(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn path_ok(p: &str) -> bool {
    p.starts_with('/') && p.len() > 1 && !p.contains('\0')
}

/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:REST` split, checked for the service.
fn arn_parts<'a>(arn: &'a str, service: &str) -> Option<Vec<&'a str>> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == service
        && region_ok(parts[3])
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit()))
    .then_some(parts)
}

fn kms_ok(key: &str) -> bool {
    let key_chars = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    };
    if key.starts_with("arn:") {
        return arn_parts(key, "kms").is_some_and(|p| {
            p[5].strip_prefix("key/")
                .or_else(|| p[5].strip_prefix("alias/"))
                .is_some_and(key_chars)
        });
    }
    if let Some(alias) = key.strip_prefix("alias/") {
        return key_chars(alias);
    }
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Pvc { .. } => TargetKind::Pvc,
            Target::BackupVault { .. } => TargetKind::BackupVault,
            Target::File { .. } => TargetKind::File,
            Target::Dir { .. } => TargetKind::Dir,
            Target::Device { .. } => TargetKind::Device,
            Target::S3 { .. } => TargetKind::S3,
            Target::EbsSnapshot { .. } => TargetKind::EbsSnapshot,
            Target::EbsVolume { .. } => TargetKind::EbsVolume,
            Target::BackupRecoveryPoint { .. } => TargetKind::BackupRecoveryPoint,
            Target::Kms { .. } => TargetKind::Kms,
            Target::DataKey { .. } => TargetKind::DataKey,
        }
    }

    pub fn class(&self) -> TargetClass {
        self.kind().class()
    }

    /// The region a cloud target lives in (`default` for a bare KMS key id or alias).
    pub fn region<'a>(&'a self, default: &'a str) -> Option<&'a str> {
        match self {
            Target::BackupVault { region, .. }
            | Target::EbsSnapshot { region, .. }
            | Target::EbsVolume { region, .. } => Some(region),
            Target::BackupRecoveryPoint { vault_arn, .. } => vault_arn.split(':').nth(3),
            Target::Kms { key } if key.starts_with("arn:") => key.split(':').nth(3),
            Target::Kms { .. } => Some(default),
            _ => None,
        }
    }

    /// The vault's name, for a recovery point.
    pub fn vault_name(&self) -> Option<&str> {
        match self {
            Target::BackupVault { vault, .. } => Some(vault),
            Target::BackupRecoveryPoint { vault_arn, .. } => {
                vault_arn.rsplit_once(":backup-vault:").map(|(_, n)| n)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.kind().prefix();
        match self {
            Target::Pvc { name } => write!(f, "{p}{name}"),
            Target::BackupVault { region, vault } => write!(f, "{p}{region}/{vault}"),
            Target::File { path } | Target::Dir { path } | Target::Device { path } => {
                write!(f, "{p}{path}")
            }
            Target::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "{p}{bucket}"),
            Target::S3 { bucket, prefix } => write!(f, "{p}{bucket}/{prefix}"),
            Target::EbsSnapshot {
                region,
                snapshot_id: id,
            }
            | Target::EbsVolume {
                region,
                volume_id: id,
            } => write!(f, "{p}{region}/{id}"),
            Target::BackupRecoveryPoint {
                vault_arn,
                recovery_point_arn,
            } => write!(f, "{p}{vault_arn}/{recovery_point_arn}"),
            Target::Kms { key } => write!(f, "{p}{key}"),
            Target::DataKey { name } => write!(f, "{p}{name}"),
        }
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Target, TargetError> {
        let kind = TargetKind::of(s);
        let err = || TargetError {
            shown: s.chars().take(200).collect(),
            expected: match kind {
                Some(k) => k.syntax().to_string(),
                None => TargetKind::ALL
                    .iter()
                    .map(|k| k.syntax())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        };
        let kind = kind.ok_or_else(err)?;
        if s.len() > MAX_TARGET_LEN {
            return Err(err());
        }
        let rest = &s[kind.prefix().len()..];
        let region_and = |id_prefix: &str| -> Option<(String, String)> {
            let (region, id) = rest.split_once('/')?;
            (region_ok(region) && id_ok(id, id_prefix)).then(|| (region.into(), id.into()))
        };
        let t = match kind {
            TargetKind::Pvc => dns_subdomain_ok(rest).then(|| Target::Pvc { name: rest.into() }),
            TargetKind::BackupVault => rest.split_once('/').and_then(|(region, vault)| {
                (region_ok(region) && vault_ok(vault)).then(|| Target::BackupVault {
                    region: region.into(),
                    vault: vault.into(),
                })
            }),
            TargetKind::File => path_ok(rest).then(|| Target::File { path: rest.into() }),
            TargetKind::Dir => path_ok(rest).then(|| Target::Dir { path: rest.into() }),
            TargetKind::Device => (path_ok(rest) && rest.starts_with("/dev/"))
                .then(|| Target::Device { path: rest.into() }),
            TargetKind::S3 => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                (bucket_ok(bucket) && !prefix.contains('\0')).then(|| Target::S3 {
                    bucket: bucket.into(),
                    prefix: prefix.into(),
                })
            }
            TargetKind::EbsSnapshot => {
                region_and("snap-").map(|(region, snapshot_id)| Target::EbsSnapshot {
                    region,
                    snapshot_id,
                })
            }
            TargetKind::EbsVolume => region_and("vol-")
                .map(|(region, volume_id)| Target::EbsVolume { region, volume_id }),
            // A vault ARN holds no `/`, so the first one separates the two (a recovery point
            // ARN may hold more, as EBS snapshot ARNs do).
            TargetKind::BackupRecoveryPoint => rest.split_once('/').and_then(|(vault, point)| {
                let ok = arn_parts(vault, "backup")
                    .is_some_and(|p| p[5].strip_prefix("backup-vault:").is_some_and(vault_ok))
                    && point.starts_with("arn:")
                    && !point.contains('\0');
                ok.then(|| Target::BackupRecoveryPoint {
                    vault_arn: vault.into(),
                    recovery_point_arn: point.into(),
                })
            }),
            TargetKind::Kms => kms_ok(rest).then(|| Target::Kms { key: rest.into() }),
            TargetKind::DataKey => {
                let ok = !rest.is_empty()
                    && rest.len() <= 63
                    && rest.as_bytes()[0].is_ascii_alphanumeric()
                    && rest.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    });
                ok.then(|| Target::DataKey { name: rest.into() })
            }
        };
        t.ok_or_else(err)
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The CEL rule on a list of targets (`spec.targets`): every element has the syntax of one of
/// the kinds. Built from [`TargetKind::ALL`], so the API server admits exactly the kinds the
/// agent knows.
pub fn targets_cel_rule() -> String {
    let alternatives: Vec<String> = TargetKind::ALL.iter().map(|k| k.pattern()).collect();
    format!(
        "self.all(t, t.matches('^({})$'))",
        alternatives.join("|").replace('\\', "\\\\")
    )
}

/// The message of [`targets_cel_rule`].
pub fn targets_cel_message() -> String {
    let kinds: Vec<&str> = TargetKind::ALL.iter().map(|k| k.syntax()).collect();
    format!("every target must be one of {}", kinds.join(", "))
}

/// How the media targets of a request are erased (NIST SP 800-88 Rev.1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ErasureMethod {
    /// Overwrite files, folders and devices; delete cloud objects and list again.
    #[default]
    Clear,
    /// A whole device's own secure erase; refused where the device has none.
    Purge,
    /// Cryptographic erase: destroy a data key, schedule a KMS key's deletion.
    Crypto,
}

impl ErasureMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureMethod::Clear => "clear",
            ErasureMethod::Purge => "purge",
            ErasureMethod::Crypto => "crypto",
        }
    }

    /// The method a job of this class runs with, when a request asks for `self`: keys are
    /// always crypto-erased, cloud objects deleted (clear), media as asked.
    pub fn for_class(self, class: TargetClass) -> ErasureMethod {
        match (class, self) {
            (TargetClass::Key, _) => ErasureMethod::Crypto,
            (TargetClass::Cloud, _) => ErasureMethod::Clear,
            (TargetClass::Media, ErasureMethod::Purge) => ErasureMethod::Purge,
            (TargetClass::Media, _) => ErasureMethod::Clear,
        }
    }
}

impl fmt::Display for ErasureMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an overwrite is verified (NIST SP 800-88 Rev.1 4.7).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Every byte read back.
    #[default]
    Full,
    /// The sample locations of 4.7.3 (at least 10% of the media).
    Sample,
}

impl VerifyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::Full => "full",
            VerifyMode::Sample => "sample",
        }
    }
}

impl fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The overwrite pattern.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// ChaCha8 keystream from the job's seed (unpredictable without the seed, reproducible
    /// with it, so verification regenerates it instead of storing it).
    #[default]
    Random,
    Zeros,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One well-formed example of every kind.
    pub(crate) fn examples() -> Vec<(TargetKind, &'static str)> {
        vec![
            (TargetKind::Pvc, "pvc:data-hachioji-db-0"),
            (TargetKind::BackupVault, "backup-vault:ap-northeast-3/kenko-prod-osaka"),
            (TargetKind::File, "file:/var/lib/kenko/old.csv"),
            (TargetKind::Dir, "dir:/host/var/lib/kenko/受付"),
            (TargetKind::Device, "device:/dev/nvme1n1"),
            (TargetKind::S3, "s3://kenko-prod-records-123456789012-ap-northeast-1/hachioji/"),
            (TargetKind::EbsSnapshot, "ebs-snapshot:ap-northeast-1/snap-0123456789abcdef0"),
            (TargetKind::EbsVolume, "ebs-volume:ap-northeast-1/vol-0123456789abcdef0"),
            (
                TargetKind::BackupRecoveryPoint,
                "backup-rp:arn:aws:backup:ap-northeast-3:123456789012:backup-vault:kenko-osaka/arn:aws:ec2:ap-northeast-3::snapshot/snap-0abc",
            ),
            (
                TargetKind::Kms,
                "kms:arn:aws:kms:ap-northeast-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            (TargetKind::DataKey, "datakey:records"),
        ]
    }

    #[test]
    fn every_kind_parses_and_prints_back_the_same_string() {
        let ex = examples();
        assert_eq!(
            ex.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            TargetKind::ALL.to_vec(),
            "one example per kind, in order"
        );
        for (kind, s) in ex {
            let t: Target = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(t.kind(), kind);
            assert_eq!(t.to_string(), s);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), t);
        }
        for s in [
            "s3://bucket",
            "kms:1234abcd-12ab",
            "kms:alias/kenko-prod-data",
        ] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn malformed_targets_are_refused_naming_the_expected_syntax() {
        for bad in [
            "nfs:/somewhere",
            "pvc:",
            "pvc:Data_1",
            "backup-vault:ap-northeast-3",
            "backup-vault:tokyo/kenko-osaka",
            "backup-vault:ap-northeast-3/v",
            "file:relative/path",
            "dir:",
            "device:/tmp/x",
            "s3://",
            "s3:///x",
            "s3://UPPER",
            "ebs-snapshot:ap-northeast-1/vol-1",
            "ebs-snapshot:/snap-1",
            "ebs-volume:ap-northeast-1/snap-1",
            "backup-rp:",
            "backup-rp:arn:aws:backup:ap-northeast-1:1:backup-vault:v",
            "backup-rp:arn:aws:s3:ap-northeast-1:123456789012:backup-vault:vault/arn:x",
            "backup-rp:arn:aws:backup::123456789012:backup-vault:vault/arn:x",
            "backup-rp:arn:aws:backup:ap-northeast-1:123456789012:backup-vault:/arn:x",
            "backup-rp:arn:aws:backup:ap-northeast-1:123456789012:backup-vault:vault/snap-1",
            "kms:",
            "kms:arn:aws:kms:ap-northeast-1:1:key/k",
            "datakey:",
            "datakey:../../etc",
        ] {
            let e = bad.parse::<Target>().unwrap_err();
            assert_eq!(e.reason(), "erase_target_unsupported");
            if let Some(k) = TargetKind::of(bad) {
                assert_eq!(e.expected, k.syntax(), "{bad}");
            }
        }
        let long = format!("file:/{}", "a".repeat(MAX_TARGET_LEN));
        assert!(long.parse::<Target>().is_err());
    }

    #[test]
    fn regions_and_vaults_are_read_from_the_target() {
        let t: Target = examples()[8].1.parse().unwrap();
        assert_eq!(t.region("x"), Some("ap-northeast-3"));
        assert_eq!(t.vault_name(), Some("kenko-osaka"));
        let k: Target = "kms:1234abcd".parse().unwrap();
        assert_eq!(k.region("ap-northeast-1"), Some("ap-northeast-1"));
        let k: Target = examples()[9].1.parse().unwrap();
        assert_eq!(k.region("ap-northeast-3"), Some("ap-northeast-1"));
    }

    #[test]
    fn classes_and_methods() {
        assert_eq!(TargetKind::Pvc.class(), TargetClass::Media);
        assert!(TargetKind::Pvc.is_cluster() && TargetKind::BackupVault.is_cluster());
        assert!(!TargetKind::S3.is_cluster());
        assert_eq!(TargetKind::BackupVault.class(), TargetClass::Cloud);
        assert_eq!(TargetKind::DataKey.class(), TargetClass::Key);
        assert_eq!(
            ErasureMethod::Purge.for_class(TargetClass::Media),
            ErasureMethod::Purge
        );
        assert_eq!(
            ErasureMethod::Purge.for_class(TargetClass::Cloud),
            ErasureMethod::Clear
        );
        assert_eq!(
            ErasureMethod::Clear.for_class(TargetClass::Key),
            ErasureMethod::Crypto
        );
    }
}
