//! Secure erasure of files and folders to NIST SP 800-88 Rev.1 "Clear": overwrite every byte
//! (a ChaCha8 keystream regenerated from the job's seed to verify, never stored, or zeros),
//! writes that bypass the page cache (`O_DIRECT`, or synced and dropped from the cache where
//! the file system has no direct I/O), verification that reads the media (full, or sampled as
//! section 4.7.3 describes), then each file renamed to a random name and unlinked, since file
//! names can be personal data too. Only a passed verification yields a certificate.
//!
//! A job checkpoints (target, file, offset) to disk as it runs; a killed job run again with
//! the same job id resumes where it stopped, and its certificate counts the resumptions.
//! Devices are overwritten or purged, cloud objects (S3 versions, EBS snapshots and volumes,
//! recovery points, a stack's recovery points in a vault) deleted and listed again, keys
//! destroyed. Targets are [`kenko_api::Target`]s: the engine matches on the kind, so a kind
//! the controller can plan and the engine cannot erase does not compile. Certificates are
//! issued by [`certificate`], one issuer per signer's chain.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use kenko_api::names::StackSelector;
pub use kenko_api::{ErasureMethod, Pattern, Target as EraseTarget, TargetClass, VerifyMode};
use kenko_cert::{Certificate, Media, Person, Sanitization, Target, Verification, FORMAT};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crashpoint;
use crate::fsutil;

pub mod certificate;
mod purge;

/// Block size for direct I/O alignment and sampling.
const BLOCK: usize = 4096;
/// Bytes per write (and per read when verifying); 16 MiB measured slower than 4 MiB here.
const CHUNK: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    UnsupportedTarget(#[from] kenko_api::TargetError),
    #[error("target {0}: a cluster target, resolved by the agent in the cluster (its volume or path); erase what it resolves to")]
    ClusterTarget(String),
    #[error("target {0}: the stack whose recovery points to erase is not named (--stack NAMESPACE/NAME)")]
    NoStack(String),
    #[error("method {0:?} does not fit the targets: clear (overwrite) is for files, folders, devices and cloud objects, purge for whole devices with a secure erase of their own, crypto for kms:KEY and datakey:NAME; purge is never claimed for an overwrite")]
    UnsupportedMethod(String),
    #[error("device {path}: cannot be purged: {detail}. Overwriting it would be Clear, not Purge (on flash, remapped blocks keep old data); erase it with --method clear and destroy it physically if Purge is required")]
    PurgeUnsupported { path: PathBuf, detail: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("verification failed for {target}: {details}; no certificate was issued")]
    VerificationFailed { target: String, details: String },
    #[error("device {path}: {problem}; refusing to erase it")]
    DeviceInUse { path: PathBuf, problem: String },
    #[error("job {job}: the checkpoint belongs to a different job definition (targets, pattern or verification differ); use another job id")]
    CheckpointMismatch { job: String },
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),
    #[error(transparent)]
    Aws(#[from] kenko_aws::AwsError),
    #[error("{path}: {source}")]
    Certificate {
        path: PathBuf,
        source: kenko_cert::CertError,
    },
    #[error("the certificate has no KMS key to finalize")]
    NothingToFinalize,
    #[error("key {key} is still pending deletion until {until}; finalize after that date")]
    FinalizePending { key: String, until: String },
    #[error("key {key} is no longer pending deletion (state {state}): its deletion was cancelled; treat the erasure as not done")]
    DeletionCancelled { key: String, state: String },
}

impl EraseError {
    pub fn reason(&self) -> &'static str {
        match self {
            EraseError::UnsupportedTarget(_) | EraseError::ClusterTarget(_) => {
                "erase_target_unsupported"
            }
            EraseError::NoStack(_) => "erase_stack_unnamed",
            EraseError::UnsupportedMethod(_) => "erase_method_unsupported",
            EraseError::PurgeUnsupported { .. } => "erase_purge_unsupported",
            EraseError::Io { .. } => "erase_io_failed",
            EraseError::VerificationFailed { .. } => "erase_verification_failed",
            EraseError::CheckpointMismatch { .. } => "erase_checkpoint_mismatch",
            EraseError::DeviceInUse { .. } => "erase_device_in_use",
            EraseError::Key(k) => k.reason(),
            EraseError::Aws(a) => a.reason(),
            EraseError::Certificate { source, .. } => source.reason(),
            EraseError::NothingToFinalize => "certificate_nothing_to_finalize",
            EraseError::FinalizePending { .. } => "certificate_finalize_pending",
            EraseError::DeletionCancelled { .. } => "erase_deletion_cancelled",
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EraseError + '_ {
    move |e| EraseError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// What to erase and what the certificate should say about people and media.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub job_id: String,
    pub targets: Vec<EraseTarget>,
    pub method: ErasureMethod,
    pub pattern: Pattern,
    pub verify: VerifyMode,
    /// The request target every target of the job erases (in the cluster, where one job
    /// erases one request target, e.g. `pvc:NAME` as the folder it resolved to); recorded as
    /// each certificate target's `location`.
    pub location: Option<String>,
    /// The stack whose recovery points a `backup-vault:` target erases.
    pub stack: Option<StackSelector>,
    /// The request, its people and its stack, signed into the certificate (cluster jobs).
    pub authority: Option<kenko_cert::Authority>,
    pub sanitized_by: Person,
    pub classification: String,
    pub media_destination: String,
    pub notes: String,
    /// What the operator knows about the media (manufacturer, model, serial and property
    /// numbers, source, backups); non-empty fields override what kenko detects.
    pub media: Media,
    /// Progress is synced to the checkpoint once this many bytes were written since the last
    /// one and `checkpoint_interval` has passed (each checkpoint costs a few device flushes;
    /// what a crash costs is at most that much rewriting).
    pub checkpoint_bytes: u64,
    pub checkpoint_interval: std::time::Duration,
}

/// One file of a target, as the checkpoint tracks it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct FileState {
    path: PathBuf,
    /// A whole block device: overwritten and verified, but not renamed or unlinked.
    #[serde(default)]
    device: bool,
    size: u64,
    /// Bytes overwritten and synced so far.
    written: u64,
    verified: bool,
    unlinked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct TargetState {
    spec: EraseTarget,
    files: Vec<FileState>,
    /// Folders to remove (deepest first) once their files are gone.
    dirs: Vec<PathBuf>,
    bytes_checked: u64,
    locations_checked: u64,
    #[serde(default)]
    crypto: Option<CryptoEvidence>,
    /// For `s3://` targets: what the deletion did, once done (so a resumed job still knows).
    #[serde(default)]
    s3: Option<S3Done>,
    /// For `kms:` targets: the scheduled deletion, once scheduled.
    #[serde(default)]
    kms: Option<KmsDone>,
    /// For `ebs-snapshot:` targets: the deletion, once done.
    #[serde(default)]
    snapshot: Option<SnapDone>,
    /// For `backup-rp:` targets: the deletion (or the Vault Lock block), once done.
    #[serde(default)]
    recovery_point: Option<RecoveryPointDone>,
    /// For a device purged by its own secure erase.
    #[serde(default)]
    purge: Option<purge::PurgeDone>,
    /// For `ebs-volume:` targets: the deletion, once done.
    #[serde(default)]
    volume: Option<VolumeDone>,
    /// For `backup-vault:` targets: the stack's recovery points, once erased.
    #[serde(default)]
    vault: Option<VaultDone>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct VolumeDone {
    region: String,
    volume_id: String,
    size_gib: i32,
    encrypted: bool,
    kms_key_id: Option<String>,
    gone_after: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct VaultDone {
    region: String,
    vault_name: String,
    points: Vec<RecoveryPointDone>,
    others: u64,
    remaining_after: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct RecoveryPointDone {
    region: String,
    vault_name: String,
    recovery_point_arn: String,
    bytes: u64,
    blocked_until: Option<String>,
    gone_after: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct SnapDone {
    region: String,
    snapshot_id: String,
    volume_gib: i32,
    gone_after: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct KmsDone {
    key_id: String,
    region: String,
    state_before: String,
    deletion_date: String,
    pending_days: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct S3Done {
    region: String,
    versions: u64,
    markers: u64,
    bytes: u64,
    /// (key, version id, reason, retain-until)
    blocked: Vec<(String, String, String, Option<String>)>,
    remaining_after: u64,
    listed_after: u64,
}

/// The synced progress of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Checkpoint {
    job_id: String,
    /// What the job was started with; a rerun with another definition is refused.
    definition: String,
    /// The keystream seed (hex). It only generates the overwrite pattern.
    seed: String,
    resumptions: u32,
    started_at: String,
    targets: Vec<TargetState>,
}

/// The result of a finished job.
#[derive(Debug)]
pub struct Outcome {
    pub certificate_path: PathBuf,
    pub certificate: Certificate,
    pub resumed: u32,
    /// Time spent overwriting and verifying in this run (for throughput reports).
    pub overwrite_secs: f64,
    pub verify_secs: f64,
}

/// Time spent per phase in this run.
#[derive(Default)]
struct Timings {
    overwrite: std::time::Duration,
    verify: std::time::Duration,
}

/// Where jobs keep checkpoints and where certificates are chained.
#[derive(Clone)]
pub struct Places {
    pub jobs: PathBuf,
    pub certificates: PathBuf,
    pub signing_key: PathBuf,
    /// The record store's data key (`datakey:records`); other names are `KEYS/NAME.key`.
    pub data_key: PathBuf,
    pub database_url: String,
    /// Where AWS targets are reached (region to start in, emulator endpoint if any).
    pub aws: kenko_aws::Endpoint,
    /// The waiting period before KMS deletes a key (7 to 30 days).
    pub kms_pending_days: i32,
}

impl Places {
    fn data_key_path(&self, name: &str) -> PathBuf {
        if name == "records" {
            self.data_key.clone()
        } else {
            self.data_key
                .parent()
                .unwrap_or(Path::new("."))
                .join(format!("{name}.key"))
        }
    }
}

/// Evidence for a cryptographic erase, taken before the key is touched (kept in the
/// checkpoint, so a resumed job still has it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CryptoEvidence {
    key_id: String,
    /// Ciphertext locations sampled from the store.
    sampled: u64,
    /// How many of them the key decrypted before the erase.
    decrypted_before: u64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn definition(spec: &JobSpec) -> String {
    let targets: Vec<String> = spec.targets.iter().map(|t| t.to_string()).collect();
    let mut d = format!(
        "{:?}|{}|{:?}|{:?}",
        targets,
        spec.method.as_str(),
        spec.pattern,
        spec.verify
    );
    // Only what changes what is erased; the old form for a job without a stack, so a job
    // checkpointed by an older agent still resumes.
    if let Some(st) = &spec.stack {
        d.push_str(&format!(
            "|stack {}/{} {:?}",
            st.namespace, st.stack, st.pvcs
        ));
    }
    d
}

/// Runs (or resumes) an erasure job to its certificate.
pub fn run(spec: &JobSpec, places: &Places) -> Result<Outcome, EraseError> {
    let crypto = spec.method == ErasureMethod::Crypto;
    let purging = spec.method == ErasureMethod::Purge;
    // Cryptographic erase applies to keys, Purge to whole devices, overwriting to media; never
    // mixed in one job, so a certificate's method describes every target on it.
    for t in &spec.targets {
        if t.kind().is_cluster() && !matches!(t, EraseTarget::BackupVault { .. }) {
            return Err(EraseError::ClusterTarget(t.to_string()));
        }
        let key_target = t.class() == TargetClass::Key;
        let fits = if purging {
            matches!(t, EraseTarget::Device { .. })
        } else {
            key_target == crypto
        };
        if !fits {
            return Err(EraseError::UnsupportedMethod(format!(
                "{} for {t}",
                spec.method
            )));
        }
        if matches!(t, EraseTarget::BackupVault { .. }) && spec.stack.is_none() {
            return Err(EraseError::NoStack(t.to_string()));
        }
    }
    let job_dir = places.jobs.join(&spec.job_id);
    let cp_path = job_dir.join("checkpoint.json");
    let mut cp = match std::fs::read(&cp_path) {
        Ok(bytes) => {
            let mut cp: Checkpoint =
                serde_json::from_slice(&bytes).map_err(|e| EraseError::Io {
                    path: cp_path.clone(),
                    message: format!("unreadable checkpoint: {e}"),
                })?;
            if cp.definition != definition(spec) {
                return Err(EraseError::CheckpointMismatch {
                    job: spec.job_id.clone(),
                });
            }
            cp.resumptions += 1;
            tracing::info!(job = %spec.job_id, resumptions = cp.resumptions, "resuming an interrupted erasure");
            cp
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| EraseError::Io {
                path: cp_path.clone(),
                message: e.to_string(),
            })?;
            Checkpoint {
                job_id: spec.job_id.clone(),
                definition: definition(spec),
                seed: hex::encode(seed),
                resumptions: 0,
                started_at: now(),
                targets: spec
                    .targets
                    .iter()
                    .map(|t| plan_target(t, places))
                    .collect::<Result<_, _>>()?,
            }
        }
        Err(e) => return Err(io(&cp_path)(e)),
    };
    std::fs::create_dir_all(&job_dir).map_err(io(&job_dir))?;
    save(&cp_path, &cp)?;

    let seed: [u8; 32] = hex::decode(&cp.seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EraseError::Io {
            path: cp_path.clone(),
            message: "checkpoint seed is not 32 bytes of hex".into(),
        })?;
    let mut timings = Timings::default();
    for ti in 0..cp.targets.len() {
        if purging {
            purge::run(&mut cp, ti, &seed, &cp_path, &job_dir)?;
            continue;
        }
        for fi in 0..cp.targets[ti].files.len() {
            erase_file(&mut cp, ti, fi, &seed, spec, &cp_path, &mut timings)?;
        }
        for d in cp.targets[ti].dirs.clone() {
            remove_dir_renamed(&d)?;
        }
        cloud_step(&mut cp, ti, spec, places, &cp_path)?;
    }

    // Certificate: signed, chained after the signer's last one by the one issuer.
    let seed_id = hex::encode(&Sha256::digest(seed)[..8]);
    let mut cert = Certificate {
        format: FORMAT.into(),
        job_id: spec.job_id.clone(),
        sequence: 0,
        previous_sha256: None,
        sanitized_by: spec.sanitized_by.clone(),
        sanitization: Sanitization {
            method_type: if crypto || purging { "purge" } else { "clear" }.into(),
            method_used: if crypto {
                "cryptographic erase"
            } else if purging {
                "block erase (the device's own secure erase)"
            } else {
                "overwrite"
            }
            .into(),
            method_details: if purging {
                "the device's secure erase over the whole device, issued through the kernel's \
                 BLKSECDISCARD; verification reads the NIST SP 800-88 4.7.3 sample locations \
                 from the media before and after: each must have changed or read as zeros"
                    .into()
            } else {
                format!(
                    "1 pass; pattern {}; writes with O_DIRECT where the file system supports it, \
                     otherwise synced and dropped from the page cache; verification reads the media; \
                     files renamed to random names before unlinking",
                    match spec.pattern {
                        Pattern::Random => format!("ChaCha8 keystream, seed id {seed_id}"),
                        Pattern::Zeros => "zeros".into(),
                    }
                )
            },
            tool: "kenko-agent".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            verification_method: if crypto {
                "crypto".into()
            } else if purging {
                "sample (before and after)".into()
            } else {
                spec.verify.as_str().into()
            },
            post_sanitization_classification: "unclassified".into(),
            notes: spec.notes.clone(),
        },
        targets: cp
            .targets
            .iter()
            .map(|t| certificate_target(t, spec))
            .collect(),
        media_destination: spec.media_destination.clone(),
        started_at: cp.started_at.clone(),
        finished_at: now(),
        resumptions: cp.resumptions,
        host: hostname(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        authority: spec.authority.clone(),
        signature: None,
        validation: None,
    };
    for t in &mut cert.targets {
        apply_media(&mut t.media, &spec.media);
    }
    let (path, cert) = certificate::issue(places, cert)?;
    std::fs::remove_dir_all(&job_dir).map_err(io(&job_dir))?;
    Ok(Outcome {
        certificate_path: path,
        resumed: cert.resumptions,
        certificate: cert,
        overwrite_secs: timings.overwrite.as_secs_f64(),
        verify_secs: timings.verify.as_secs_f64(),
    })
}

/// The cloud and key part of target `ti`, once: each kind's deletion and its check, saved in
/// the checkpoint so a resumed job knows it was done. Media kinds have nothing here.
fn cloud_step(
    cp: &mut Checkpoint,
    ti: usize,
    spec: &JobSpec,
    places: &Places,
    cp_path: &Path,
) -> Result<(), EraseError> {
    let t = cp.targets[ti].clone();
    let shown = t.spec.to_string();
    let aws = &places.aws;
    match &t.spec {
        // Overwritten or purged above; keys of the store were planned with their evidence.
        EraseTarget::File { .. }
        | EraseTarget::Dir { .. }
        | EraseTarget::Device { .. }
        | EraseTarget::DataKey { .. } => return Ok(()),
        EraseTarget::Pvc { .. } => return Err(EraseError::ClusterTarget(shown)),
        EraseTarget::EbsSnapshot {
            region,
            snapshot_id,
        } if t.snapshot.is_none() => {
            let d =
                runtime(&shown)?.block_on(kenko_aws::delete_snapshot(aws, region, snapshot_id))?;
            cp.targets[ti].snapshot = Some(SnapDone {
                region: d.region,
                snapshot_id: d.snapshot_id,
                volume_gib: d.volume_gib,
                gone_after: d.gone_after,
            });
        }
        EraseTarget::EbsVolume { region, volume_id } if t.volume.is_none() => {
            let d = runtime(&shown)?.block_on(kenko_aws::delete_volume(aws, region, volume_id))?;
            cp.targets[ti].volume = Some(VolumeDone {
                region: d.region,
                volume_id: d.volume_id,
                size_gib: d.size_gib,
                encrypted: d.encrypted,
                kms_key_id: d.kms_key_id,
                gone_after: d.gone_after,
            });
        }
        EraseTarget::BackupRecoveryPoint {
            recovery_point_arn, ..
        } if t.recovery_point.is_none() => {
            let region = t.spec.region(&aws.region).unwrap_or_default();
            let vault = t.spec.vault_name().unwrap_or_default();
            let d = runtime(&shown)?.block_on(kenko_aws::backup::erase_recovery_point(
                aws,
                region,
                vault,
                recovery_point_arn,
                chrono::Utc::now().timestamp(),
            ))?;
            cp.targets[ti].recovery_point = Some(RecoveryPointDone::from(d));
        }
        EraseTarget::BackupVault { region, vault } if t.vault.is_none() => {
            let Some(stack) = &spec.stack else {
                return Err(EraseError::NoStack(shown));
            };
            let belongs = |tags: &std::collections::BTreeMap<String, String>| stack.matches(tags);
            let d = runtime(&shown)?.block_on(kenko_aws::backup::erase_vault(
                aws,
                region,
                vault,
                &belongs,
                chrono::Utc::now().timestamp(),
            ))?;
            cp.targets[ti].vault = Some(VaultDone {
                region: d.region,
                vault_name: d.vault_name,
                points: d.points.into_iter().map(RecoveryPointDone::from).collect(),
                others: d.others,
                remaining_after: d.remaining_after,
            });
        }
        EraseTarget::Kms { key } if t.kms.is_none() => {
            let region = t.spec.region(&aws.region).unwrap_or_default().to_string();
            let k = runtime(&shown)?.block_on(kenko_aws::schedule_key_deletion(
                aws,
                key,
                &region,
                places.kms_pending_days,
            ))?;
            cp.targets[ti].kms = Some(KmsDone {
                key_id: k.key_id,
                region: k.region,
                state_before: k.state_before,
                deletion_date: k.deletion_date,
                pending_days: k.pending_days,
            });
        }
        EraseTarget::S3 { bucket, prefix } if t.s3.is_none() => {
            cp.targets[ti].s3 = Some(erase_s3(bucket, prefix, places)?);
        }
        // Done in an earlier run of the job.
        EraseTarget::EbsSnapshot { .. }
        | EraseTarget::EbsVolume { .. }
        | EraseTarget::BackupRecoveryPoint { .. }
        | EraseTarget::BackupVault { .. }
        | EraseTarget::Kms { .. }
        | EraseTarget::S3 { .. } => return Ok(()),
    }
    save(cp_path, cp)
}

impl From<kenko_aws::backup::RecoveryPointErased> for RecoveryPointDone {
    fn from(d: kenko_aws::backup::RecoveryPointErased) -> Self {
        RecoveryPointDone {
            region: d.region,
            vault_name: d.vault_name,
            recovery_point_arn: d.recovery_point_arn,
            bytes: d.bytes,
            blocked_until: d.blocked_until,
            gone_after: d.gone_after,
        }
    }
}

/// A target as the certificate reports it: what was erased, what was blocked, and how the
/// erasure was verified.
fn certificate_target(t: &TargetState, spec: &JobSpec) -> Target {
    let mut blocked: Vec<kenko_cert::Blocked> =
        t.s3.iter()
            .flat_map(|d| d.blocked.iter())
            .map(|(key, version, reason, until)| kenko_cert::Blocked {
                item: format!(
                    "{}/{key}?versionId={version}",
                    t.spec.to_string().trim_end_matches('/')
                ),
                reason: format!("Object Lock: {reason}"),
                until: until.clone(),
            })
            .collect();
    if let Some(rp) = &t.recovery_point {
        if let Some(until) = &rp.blocked_until {
            blocked.push(kenko_cert::Blocked {
                item: rp.recovery_point_arn.clone(),
                reason: format!("Vault Lock on {} ({})", rp.vault_name, rp.region),
                until: Some(until.clone()),
            });
        }
    }
    for rp in t.vault.iter().flat_map(|v| v.points.iter()) {
        if let Some(until) = &rp.blocked_until {
            blocked.push(kenko_cert::Blocked {
                item: rp.recovery_point_arn.clone(),
                reason: format!("Vault Lock on {} ({})", rp.vault_name, rp.region),
                until: Some(until.clone()),
            });
        }
    }
    let rp_erased: Vec<&RecoveryPointDone> = t
        .recovery_point
        .iter()
        .chain(t.vault.iter().flat_map(|v| v.points.iter()))
        .filter(|rp| rp.blocked_until.is_none())
        .collect();
    Target {
        spec: t.spec.to_string(),
        location: spec.location.clone(),
        media: media_of(t, &spec.classification),
        bytes_erased: t.files.iter().map(|f| f.size).sum::<u64>()
            + t.s3.as_ref().map_or(0, |d| d.bytes)
            + rp_erased.iter().map(|rp| rp.bytes).sum::<u64>()
            + t.volume
                .as_ref()
                .map_or(0, |v| (v.size_gib.max(0) as u64) << 30),
        objects_erased: t.files.len() as u64
            + t.s3.as_ref().map_or(0, |d| d.versions + d.markers)
            + u64::from(t.kms.is_some())
            + u64::from(t.snapshot.is_some())
            + u64::from(t.volume.is_some())
            + rp_erased.len() as u64,
        blocked,
        verification: verification_of(t, spec),
    }
}

fn verification_of(t: &TargetState, spec: &JobSpec) -> Verification {
    if let Some(v) = &t.vault {
        let blocked = v
            .points
            .iter()
            .filter(|p| p.blocked_until.is_some())
            .count();
        let deleted = v.points.len() - blocked;
        let unchecked = v
            .points
            .iter()
            .filter(|p| p.blocked_until.is_none() && !p.gone_after)
            .count();
        return Verification {
            method: "listing".into(),
            passed: v.remaining_after == 0 && unchecked == 0,
            bytes_checked: 0,
            locations_checked: v.points.len() as u64 + 1,
            details: format!(
                "vault {} ({}): {deleted} recovery point(s) of the stack deleted, {blocked} kept by \
                 Vault Lock, {} of other resources left alone; listed again after: {} of the \
                 stack's left unblocked{}",
                v.vault_name,
                v.region,
                v.others,
                v.remaining_after,
                if unchecked > 0 {
                    format!(", {unchecked} STILL DESCRIBED after deletion")
                } else {
                    String::new()
                }
            ),
        };
    }
    if let Some(v) = &t.volume {
        return Verification {
            method: "listing".into(),
            passed: v.gone_after,
            bytes_checked: 0,
            locations_checked: 1,
            details: format!(
                "EBS volume {} ({} GiB, {}) deleted in {}: EBS wipes a deleted volume's blocks \
                 before reuse; DescribeVolumes {}",
                v.volume_id,
                v.size_gib,
                match &v.kms_key_id {
                    Some(k) if v.encrypted => format!("encrypted with {k}"),
                    _ if v.encrypted => "encrypted".to_string(),
                    _ => "not encrypted".to_string(),
                },
                v.region,
                if v.gone_after {
                    "no longer finds it"
                } else {
                    "STILL FINDS IT"
                }
            ),
        };
    }
    if let Some(p) = &t.purge {
        let unchanged = p.unchanged.unwrap_or(u64::MAX);
        return Verification {
            method: "sample (before and after)".into(),
            passed: unchanged == 0 && t.files.iter().all(|f| f.verified),
            bytes_checked: t.bytes_checked,
            locations_checked: t.locations_checked,
            details: format!(
                "{}: {} locations read before and after; {} unchanged; {} read as zeros after",
                p.mechanism,
                p.ranges.len(),
                unchanged,
                p.zeros_after
            ),
        };
    }
    if let Some(rp) = &t.recovery_point {
        return Verification {
            method: "listing".into(),
            passed: rp.gone_after || rp.blocked_until.is_some(),
            bytes_checked: 0,
            locations_checked: 1,
            details: match &rp.blocked_until {
                Some(until) => format!(
                    "recovery point in vault {} ({}) is kept by Vault Lock until {until}; not deleted",
                    rp.vault_name, rp.region
                ),
                None => format!(
                    "recovery point deleted from vault {} ({}); DescribeRecoveryPoint {}",
                    rp.vault_name,
                    rp.region,
                    if rp.gone_after {
                        "no longer finds it"
                    } else {
                        "STILL FINDS IT"
                    }
                ),
            },
        };
    }
    if let Some(d) = &t.snapshot {
        return Verification {
            method: "listing".into(),
            passed: d.gone_after,
            bytes_checked: 0,
            locations_checked: 1,
            details: format!(
                "{} (a snapshot of a {} GiB volume) deleted in {}; DescribeSnapshots {}",
                d.snapshot_id,
                d.volume_gib,
                d.region,
                if d.gone_after {
                    "no longer finds it"
                } else {
                    "STILL FINDS IT"
                }
            ),
        };
    }
    if let Some(k) = &t.kms {
        return Verification {
            method: "crypto".into(),
            passed: true,
            bytes_checked: 0,
            locations_checked: 1,
            details: format!(
                "key {} was {}; deletion scheduled for {} (pending window {} days), \
                 state verified PendingDeletion; `kenko-agent certificate finalize` \
                 confirms the key is gone after that date",
                k.key_id, k.state_before, k.deletion_date, k.pending_days
            ),
        };
    }
    if let Some(d) = &t.s3 {
        return Verification {
            method: "listing".into(),
            passed: d.remaining_after == 0,
            bytes_checked: 0,
            locations_checked: d.listed_after,
            details: format!(
                "{} versions and {} delete markers deleted; listed again after: {} left, {} of them blocked by Object Lock",
                d.versions,
                d.markers,
                d.listed_after,
                d.blocked.len()
            ),
        };
    }
    match &t.crypto {
        None => Verification {
            method: spec.verify.as_str().into(),
            passed: t.files.iter().all(|f| f.verified),
            bytes_checked: t.bytes_checked,
            locations_checked: t.locations_checked,
            details: String::new(),
        },
        Some(e) => {
            // After: every copy the agent holds is gone (the key file was cleared, verified
            // and unlinked), so none of the sampled ciphertexts can be decrypted any more, in
            // the store or in any backup of it.
            let gone = t.files.iter().all(|f| f.verified && !f.path.exists());
            Verification {
                method: "crypto".into(),
                passed: gone && e.decrypted_before == e.sampled,
                bytes_checked: t.bytes_checked,
                locations_checked: e.sampled,
                details: format!(
                    "data key {}: {} of {} sampled My Number ciphertexts decrypted before; \
                     key file overwritten, verified and unlinked ({}); none can be decrypted after",
                    e.key_id,
                    e.decrypted_before,
                    e.sampled,
                    if gone {
                        "no copy left"
                    } else {
                        "A COPY REMAINS"
                    }
                ),
            }
        }
    }
}

/// What kenko knows about a target's medium (Appendix G "Media Information").
fn media_of(t: &TargetState, classification: &str) -> Media {
    let (media_type, source, manufacturer, model) = if let Some(v) = &t.vault {
        let kind = format!("backup recovery points (AWS Backup, {})", v.region);
        (kind, t.spec.to_string(), String::new(), String::new())
    } else if let Some(v) = &t.volume {
        let kind = format!("block storage volume (Amazon EBS, {})", v.region);
        (kind, t.spec.to_string(), String::new(), String::new())
    } else if let Some(rp) = &t.recovery_point {
        let kind = format!("backup recovery point (AWS Backup, {})", rp.region);
        (kind, t.spec.to_string(), String::new(), String::new())
    } else if let Some(d) = &t.snapshot {
        let kind = format!("block storage snapshot (Amazon EBS, {})", d.region);
        (kind, t.spec.to_string(), String::new(), String::new())
    } else if let Some(k) = &t.kms {
        let kind = format!("cryptographic key (AWS KMS, {})", k.region);
        (kind, t.spec.to_string(), String::new(), String::new())
    } else if let Some(d) = &t.s3 {
        let kind = format!("cloud object storage (Amazon S3, {})", d.region);
        (kind, t.spec.to_string(), String::new(), String::new())
    } else if t.crypto.is_some() {
        let kind = "cryptographic key (AES-256-GCM data key of the record store)".to_string();
        (kind, hostname(), String::new(), String::new())
    } else if let Some(f) = t.files.first().filter(|f| f.device) {
        let (manufacturer, model, kind) = device_media(&f.path);
        (kind, hostname(), manufacturer, model)
    } else {
        let kind = if matches!(t.spec, EraseTarget::Dir { .. }) {
            "folder on a file system"
        } else {
            "file"
        };
        (kind.to_string(), hostname(), String::new(), String::new())
    };
    Media {
        manufacturer,
        model,
        media_type,
        source,
        classification: classification.to_string(),
        ..Default::default()
    }
}

/// Overrides detected media fields with what the operator gave (non-empty fields only).
fn apply_media(m: &mut Media, given: &Media) {
    for (dst, src) in [
        (&mut m.manufacturer, &given.manufacturer),
        (&mut m.model, &given.model),
        (&mut m.serial_number, &given.serial_number),
        (&mut m.property_number, &given.property_number),
        (&mut m.media_type, &given.media_type),
        (&mut m.source, &given.source),
        (&mut m.classification, &given.classification),
    ] {
        if !src.is_empty() {
            dst.clone_from(src);
        }
    }
    if given.backed_up {
        m.backed_up = true;
        m.backup_location.clone_from(&given.backup_location);
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn save(path: &Path, cp: &Checkpoint) -> Result<(), EraseError> {
    let bytes = serde_json::to_vec(cp).expect("checkpoint serialises");
    fsutil::atomic_write(path, &bytes).map_err(io(path))
}

impl TargetState {
    /// A target with nothing done yet; kinds fill in their own part.
    fn new(spec: &EraseTarget) -> TargetState {
        TargetState {
            spec: spec.clone(),
            files: vec![],
            dirs: vec![],
            bytes_checked: 0,
            locations_checked: 0,
            crypto: None,
            s3: None,
            kms: None,
            snapshot: None,
            recovery_point: None,
            purge: None,
            volume: None,
            vault: None,
        }
    }
}

fn plan_target(spec: &EraseTarget, places: &Places) -> Result<TargetState, EraseError> {
    let (files, dirs) = match spec {
        EraseTarget::DataKey { name } => return plan_datakey(spec, name, places),
        // Cloud objects and KMS keys: what they hold is read when they are erased.
        EraseTarget::EbsSnapshot { .. }
        | EraseTarget::EbsVolume { .. }
        | EraseTarget::BackupRecoveryPoint { .. }
        | EraseTarget::BackupVault { .. }
        | EraseTarget::Kms { .. }
        | EraseTarget::S3 { .. } => return Ok(TargetState::new(spec)),
        EraseTarget::Pvc { .. } => return Err(EraseError::ClusterTarget(spec.to_string())),
        EraseTarget::File { path } => {
            let path = PathBuf::from(path);
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if !meta.is_file() {
                return Err(EraseError::Io {
                    path,
                    message: "not a regular file".into(),
                });
            }
            (
                vec![FileState {
                    path,
                    device: false,
                    size: meta.len(),
                    written: 0,
                    verified: false,
                    unlinked: false,
                }],
                vec![],
            )
        }
        EraseTarget::Device { path } => {
            let (path, size) = block_device(Path::new(path))?;
            (
                vec![FileState {
                    path,
                    device: true,
                    size,
                    written: 0,
                    verified: false,
                    unlinked: false,
                }],
                vec![],
            )
        }
        EraseTarget::Dir { path } => {
            let mut files = Vec::new();
            let mut dirs = Vec::new();
            walk(Path::new(path), &mut files, &mut dirs)?;
            dirs.reverse();
            (files, dirs)
        }
    };
    Ok(TargetState {
        files,
        dirs,
        ..TargetState::new(spec)
    })
}

/// Whether every scheduled key is gone: the first key still pending, or whose deletion was
/// cancelled, stops the finalization.
fn finalize_decision(states: &[(String, kenko_aws::KeyState)]) -> Result<(), EraseError> {
    if states.is_empty() {
        return Err(EraseError::NothingToFinalize);
    }
    for (key, state) in states {
        match state {
            kenko_aws::KeyState::Gone => {}
            kenko_aws::KeyState::Pending(until) => {
                return Err(EraseError::FinalizePending {
                    key: key.clone(),
                    until: until.clone(),
                })
            }
            kenko_aws::KeyState::Other(s) => {
                return Err(EraseError::DeletionCancelled {
                    key: key.clone(),
                    state: s.clone(),
                })
            }
        }
    }
    Ok(())
}

/// `certificate finalize`: once KMS has deleted every key a certificate scheduled, issues a
/// second certificate (chained, signed) that confirms it. Certificates are immutable, so the
/// confirmation is a new one naming the first by its SHA-256.
pub fn finalize(cert_path: &Path, places: &Places) -> Result<Outcome, EraseError> {
    let bytes = std::fs::read(cert_path).map_err(io(cert_path))?;
    let original = kenko_cert::verify(&bytes, None).map_err(|source| EraseError::Certificate {
        path: cert_path.to_path_buf(),
        source,
    })?;
    let keys: Vec<(&kenko_cert::Target, EraseTarget)> = original
        .certificate
        .targets
        .iter()
        .filter_map(|t| match t.spec.parse::<EraseTarget>() {
            Ok(k @ EraseTarget::Kms { .. }) => Some((t, k)),
            _ => None,
        })
        .collect();
    let rt = runtime("kms")?;
    let mut states = Vec::new();
    for (t, k) in &keys {
        let EraseTarget::Kms { key } = k else {
            continue;
        };
        let region = k.region(&places.aws.region).unwrap_or_default();
        states.push((
            t.spec.clone(),
            rt.block_on(kenko_aws::key_state(&places.aws, key, region))?,
        ));
    }
    finalize_decision(&states)?;
    let confirmed = now();
    let mut cert = original.certificate.clone();
    cert.format = FORMAT.into();
    cert.job_id = format!("{}-finalized", original.certificate.job_id);
    cert.finished_at = confirmed.clone();
    cert.host = hostname();
    cert.agent_version = env!("CARGO_PKG_VERSION").into();
    cert.sanitization.notes = format!(
        "Finalizes certificate sha256 {} (job {}): KMS no longer knows the keys.",
        original.sha256, original.certificate.job_id
    );
    cert.targets = keys
        .into_iter()
        .map(|(t, _)| {
            let mut t = t.clone();
            t.verification.details =
                format!("KMS reports the key no longer exists (checked {confirmed})");
            t
        })
        .collect();
    let (path, cert) = certificate::issue(places, cert)?;
    Ok(Outcome {
        certificate_path: path,
        resumed: 0,
        certificate: cert,
        overwrite_secs: 0.0,
        verify_secs: 0.0,
    })
}

/// Deletes every version and delete marker of an `s3://` target and lists it again.
fn runtime(spec: &str) -> Result<tokio::runtime::Runtime, EraseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EraseError::Io {
            path: PathBuf::from(spec),
            message: e.to_string(),
        })
}

fn erase_s3(bucket: &str, prefix: &str, places: &Places) -> Result<S3Done, EraseError> {
    let rt = runtime(bucket)?;
    let r = rt.block_on(kenko_aws::erase_s3(&places.aws, bucket, prefix, &now()))?;
    Ok(S3Done {
        region: r.region,
        versions: r.versions_deleted,
        markers: r.delete_markers_deleted,
        bytes: r.bytes_deleted,
        blocked: r
            .blocked
            .into_iter()
            .map(|b| (b.key, b.version_id, b.reason, b.until))
            .collect(),
        remaining_after: r.remaining_after,
        listed_after: r.listed_after,
    })
}

/// A data key: the evidence first (the store's ciphertexts decrypt under it now), then the
/// key file is cleared like any file. Reading the key never creates one.
fn plan_datakey(
    spec: &EraseTarget,
    name: &str,
    places: &Places,
) -> Result<TargetState, EraseError> {
    let path = places.data_key_path(name);
    let raw = std::fs::read(&path).map_err(io(&path))?;
    let raw: [u8; 32] = raw.try_into().map_err(|_| EraseError::Io {
        path: path.clone(),
        message: "not a 32-byte data key".into(),
    })?;
    let key = crate::crypto::DataKey::from_bytes(&raw);
    let mut store = kenko_store::open(&places.database_url).map_err(|e| EraseError::Io {
        path: PathBuf::from(kenko_store::redact_url(&places.database_url)),
        message: e.to_string(),
    })?;
    let sample = store.sample_ciphertexts(1000).map_err(|e| EraseError::Io {
        path: PathBuf::from(kenko_store::redact_url(&places.database_url)),
        message: e.to_string(),
    })?;
    let decrypted = sample
        .iter()
        .filter(|(no, ct)| key.open(*no, ct).is_ok())
        .count() as u64;
    let size = std::fs::metadata(&path).map_err(io(&path))?.len();
    Ok(TargetState {
        files: vec![FileState {
            path,
            device: false,
            size,
            written: 0,
            verified: false,
            unlinked: false,
        }],
        crypto: Some(CryptoEvidence {
            key_id: key.id_hex(),
            sampled: sample.len() as u64,
            decrypted_before: decrypted,
        }),
        ..TargetState::new(spec)
    })
}

/// A whole block device's canonical path and size (from sysfs, no ioctl needed), refused when
/// it, or a partition of it, is mounted or held by another device (LVM, RAID, dm-crypt).
fn block_device(p: &Path) -> Result<(PathBuf, u64), EraseError> {
    use std::os::unix::fs::FileTypeExt;
    let path = std::fs::canonicalize(p).map_err(io(p))?;
    let meta = std::fs::metadata(&path).map_err(io(&path))?;
    if !meta.file_type().is_block_device() {
        return Err(EraseError::Io {
            path,
            message: "not a block device".into(),
        });
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let sys = Path::new("/sys/class/block").join(&name);
    let sectors: u64 = std::fs::read_to_string(sys.join("size"))
        .map_err(io(&sys))?
        .trim()
        .parse()
        .map_err(|_| EraseError::Io {
            path: sys.join("size"),
            message: "unreadable size".into(),
        })?;
    let in_use = |problem: String| EraseError::DeviceInUse {
        path: path.clone(),
        problem,
    };
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let source = line.split_whitespace().next().unwrap_or_default();
        let source_name = Path::new(source)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if source.starts_with("/dev/") && source_name.starts_with(&name) {
            return Err(in_use(format!("{source} is mounted")));
        }
    }
    if std::fs::read_dir(sys.join("holders")).is_ok_and(|mut d| d.next().is_some()) {
        return Err(in_use(
            "it is held by another device (LVM, RAID or dm-crypt)".into(),
        ));
    }
    Ok((path, sectors * 512))
}

/// Where the certificate's media description comes from for a device (sysfs, when present).
fn device_media(path: &Path) -> (String, String, String) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let read = |f: &str| {
        std::fs::read_to_string(Path::new("/sys/class/block").join(&name).join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let rotational = read("queue/rotational");
    let kind = match (name.starts_with("loop"), rotational.as_str()) {
        (true, _) => "block device (loop)".to_string(),
        (_, "1") => "block device (magnetic)".to_string(),
        (_, "0") => "block device (flash)".to_string(),
        _ => "block device".to_string(),
    };
    (read("device/vendor"), read("device/model"), kind)
}

fn walk(dir: &Path, files: &mut Vec<FileState>, dirs: &mut Vec<PathBuf>) -> Result<(), EraseError> {
    dirs.push(dir.to_path_buf());
    let shown = Path::new("a folder of the target (names are not shown)");
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(shown))?
        .collect::<Result<_, _>>()
        .map_err(io(shown))?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).map_err(io(Path::new(
            "an entry of the folder target (names are not shown)",
        )))?;
        if meta.is_dir() {
            walk(&p, files, dirs)?;
        } else if meta.is_file() {
            files.push(FileState {
                path: p,
                device: false,
                size: meta.len(),
                written: 0,
                verified: false,
                unlinked: false,
            });
        } else {
            // A symlink or special file holds no data of its own: removed, not overwritten.
            files.push(FileState {
                path: p,
                device: false,
                size: 0,
                written: 0,
                verified: true,
                unlinked: false,
            });
        }
    }
    Ok(())
}

/// The keystream for one file, positioned at `offset` (a multiple of 4).
fn stream(seed: &[u8; 32], file_index: (usize, usize), offset: u64) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed);
    h.update((file_index.0 as u64).to_be_bytes());
    h.update((file_index.1 as u64).to_be_bytes());
    let mut rng = ChaCha8Rng::from_seed(h.finalize().into());
    rng.set_word_pos(u128::from(offset / 4));
    rng
}

fn fill(pattern: Pattern, rng: &mut ChaCha8Rng, buf: &mut [u8]) {
    match pattern {
        Pattern::Random => rng.fill_bytes(buf),
        Pattern::Zeros => buf.fill(0),
    }
}

/// A buffer aligned for direct I/O (safe: only the address is inspected).
struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let storage = vec![0u8; len + BLOCK];
        let addr = storage.as_ptr() as usize;
        let start = (BLOCK - addr % BLOCK) % BLOCK;
        Aligned {
            storage,
            start,
            len,
        }
    }
    fn slice(&mut self, n: usize) -> &mut [u8] {
        &mut self.storage[self.start..self.start + n.min(self.len)]
    }
}

/// Opens for direct I/O when the file system allows it, else normally (then the page cache
/// is flushed and dropped explicitly).
fn open_direct(path: &Path, shown: &Path, write: bool) -> Result<(File, bool), EraseError> {
    let direct = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(path);
    match direct {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
            let f = OpenOptions::new()
                .read(true)
                .write(write)
                .open(path)
                .map_err(io(shown))?;
            Ok((f, false))
        }
        Err(e) => Err(io(shown)(e)),
    }
}

fn drop_cache(f: &File) {
    let _ = nix::fcntl::posix_fadvise(
        f.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

fn erase_file(
    cp: &mut Checkpoint,
    ti: usize,
    fi: usize,
    seed: &[u8; 32],
    spec: &JobSpec,
    cp_path: &Path,
    timings: &mut Timings,
) -> Result<(), EraseError> {
    let state = cp.targets[ti].files[fi].clone();
    if state.unlinked {
        return Ok(());
    }
    let path = state.path.clone();
    // Errors name the file by its place in the target, not by its name: names inside a folder
    // can be personal data too.
    let shown = PathBuf::from(format!("file #{} of {}", fi + 1, cp.targets[ti].spec));
    let size = state.size;
    if !state.verified {
        // 1. Overwrite from where the checkpoint says.
        let t = std::time::Instant::now();
        let (mut f, direct) = open_direct(&path, &shown, true)?;
        let aligned_end = size - size % BLOCK as u64;
        let mut offset = state.written - state.written % BLOCK as u64;
        let mut since_checkpoint = 0u64;
        f.seek(SeekFrom::Start(offset)).map_err(io(&shown))?;
        // The pattern is generated on another thread while this one waits on the disk, so
        // the overwrite runs at the speed of the slower of the two, not their sum.
        let pattern = spec.pattern;
        let result: Result<u64, EraseError> = std::thread::scope(|s| {
            // Two workers fill alternate chunks (the keystream is addressable), so pattern
            // generation keeps ahead of a fast disk; the writer takes chunks in order.
            const WORKERS: usize = 2;
            let start = offset;
            let mut full = Vec::new();
            let mut free = Vec::new();
            for w in 0..WORKERS {
                let (full_tx, full_rx) = mpsc::sync_channel::<(Aligned, usize)>(2);
                let (free_tx, free_rx) = mpsc::sync_channel::<Aligned>(3);
                for _ in 0..2 {
                    let _ = free_tx.send(Aligned::new(CHUNK));
                }
                full.push(full_rx);
                free.push(free_tx);
                s.spawn(move || {
                    let mut off = start + (w * CHUNK) as u64;
                    while off < aligned_end {
                        let n = (aligned_end - off).min(CHUNK as u64) as usize;
                        let Ok(mut buf) = free_rx.recv() else { return };
                        let mut rng = stream(seed, (ti, fi), off);
                        fill(pattern, &mut rng, buf.slice(n));
                        if full_tx.send((buf, n)).is_err() {
                            return;
                        }
                        off += (WORKERS * CHUNK) as u64;
                    }
                });
            }
            let mut last_checkpoint = std::time::Instant::now();
            let mut w = 0;
            while offset < aligned_end {
                let (mut buf, n) = full[w].recv().map_err(|_| EraseError::Io {
                    path: path.clone(),
                    message: "the pattern generator stopped".into(),
                })?;
                f.write_all(buf.slice(n)).map_err(io(&shown))?;
                let _ = free[w].send(buf);
                w = (w + 1) % WORKERS;
                offset += n as u64;
                since_checkpoint += n as u64;
                // A checkpoint costs a few device flushes: taken once enough was written and
                // enough time passed, which bounds both the flushes and the rework after a
                // crash.
                if since_checkpoint >= spec.checkpoint_bytes
                    && last_checkpoint.elapsed() >= spec.checkpoint_interval
                {
                    f.sync_data().map_err(io(&shown))?;
                    cp.targets[ti].files[fi].written = offset;
                    save(cp_path, cp)?;
                    since_checkpoint = 0;
                    last_checkpoint = std::time::Instant::now();
                    crashpoint::hit("erase-checkpointed");
                }
            }
            Ok(offset)
        });
        offset = result?;
        let mut rng = stream(seed, (ti, fi), offset);
        if offset < size {
            // The tail shorter than a block: direct I/O cannot write it, so it goes through
            // the page cache and is synced.
            let tail = (size - offset) as usize;
            let mut bytes = vec![0u8; tail];
            fill(spec.pattern, &mut rng, &mut bytes);
            let mut g = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io(&shown))?;
            g.seek(SeekFrom::Start(offset)).map_err(io(&shown))?;
            g.write_all(&bytes).map_err(io(&shown))?;
            g.sync_data().map_err(io(&shown))?;
            drop_cache(&g);
        }
        f.sync_all().map_err(io(&shown))?;
        if !direct {
            drop_cache(&f);
        }
        cp.targets[ti].files[fi].written = size;
        save(cp_path, cp)?;
        timings.overwrite += t.elapsed();

        // 2. Verify from the media.
        let t = std::time::Instant::now();
        let (checked, locations) = verify_file(&path, &shown, size, seed, (ti, fi), spec)?;
        timings.verify += t.elapsed();
        cp.targets[ti].bytes_checked += checked;
        cp.targets[ti].locations_checked += locations;
        cp.targets[ti].files[fi].verified = true;
        save(cp_path, cp)?;
    }
    // 3. The name goes too: rename to random, sync the folder, unlink, sync again. (A device
    // stays: the device node is not the data.)
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if !state.device && path.exists() {
        let random = dir.join(format!("{:016x}", rand::thread_rng().gen::<u64>()));
        std::fs::rename(&path, &random).map_err(io(&shown))?;
        fsutil::sync_dir(&dir).map_err(io(&dir))?;
        std::fs::remove_file(&random).map_err(io(&shown))?;
        fsutil::sync_dir(&dir).map_err(io(&dir))?;
    }
    cp.targets[ti].files[fi].unlinked = true;
    save(cp_path, cp)
}

/// Reads back what was written. Full: every byte. Sample (NIST SP 800-88 Rev.1 4.7.3): the
/// first and last block plus two random blocks-runs in each of at least 1,000 subsections,
/// covering at least 10% of the media. Returns (bytes checked, locations checked).
fn verify_file(
    path: &Path,
    shown: &Path,
    size: u64,
    seed: &[u8; 32],
    index: (usize, usize),
    spec: &JobSpec,
) -> Result<(u64, u64), EraseError> {
    if size == 0 {
        return Ok((0, 0));
    }
    let (mut f, direct) = open_direct(path, shown, false)?;
    if !direct {
        drop_cache(&f);
    }
    let ranges = match spec.verify {
        VerifyMode::Full => vec![(0, size)],
        VerifyMode::Sample => sample_ranges(size, seed, index),
    };

    let aligned_end = size - size % BLOCK as u64;
    // Pieces of at most a chunk, in order; the expected bytes for each are generated on
    // another thread while this one reads.
    let mut pieces = Vec::new();
    for &(start, len) in &ranges {
        let mut pos = start;
        while pos < start + len {
            let n = (start + len - pos).min(CHUNK as u64) as usize;
            pieces.push((pos, n));
            pos += n as u64;
        }
    }
    let pattern = spec.pattern;
    let pieces_for_gen = pieces.clone();
    let pieces_for_cmp = pieces.clone();
    let mismatch: Result<u64, EraseError> = std::thread::scope(|s| {
        // Three stages so the disk never waits for the CPU: this thread reads, one thread
        // regenerates the expected bytes, one compares.
        let (exp_tx, exp_rx) = mpsc::sync_channel::<Vec<u8>>(2);
        let (exp_free_tx, exp_free_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let (got_tx, got_rx) = mpsc::sync_channel::<Aligned>(2);
        let (got_free_tx, got_free_rx) = mpsc::sync_channel::<Aligned>(4);
        for _ in 0..3 {
            let _ = exp_free_tx.send(vec![0u8; CHUNK]);
            let _ = got_free_tx.send(Aligned::new(CHUNK));
        }
        s.spawn(move || {
            let mut rng: Option<(u64, ChaCha8Rng)> = None;
            for (pos, n) in pieces_for_gen {
                let Ok(mut buf) = exp_free_rx.recv() else {
                    return;
                };
                // Reuse the running generator when pieces are contiguous.
                let mut r = match rng.take() {
                    Some((next, r)) if next == pos => r,
                    _ => stream(seed, index, pos),
                };
                fill(pattern, &mut r, &mut buf[..n]);
                rng = Some((pos + n as u64, r));
                if exp_tx.send(buf).is_err() {
                    return;
                }
            }
        });
        let comparer = s.spawn(move || -> Result<u64, EraseError> {
            let mut checked = 0u64;
            for (pos, n) in pieces_for_cmp {
                let (Ok(mut got), Ok(expected)) = (got_rx.recv(), exp_rx.recv()) else {
                    return Err(EraseError::VerificationFailed {
                        target: format!("a file of target {}", index.0 + 1),
                        details: "verification stopped before the end".into(),
                    });
                };
                let same = got.slice(n)[..] == expected[..n];
                let _ = got_free_tx.send(got);
                let _ = exp_free_tx.send(expected);
                if !same {
                    return Err(EraseError::VerificationFailed {
                        target: format!("a file of target {}", index.0 + 1),
                        details: format!("bytes at offset {pos} differ from what was written"),
                    });
                }
                checked += n as u64;
            }
            Ok(checked)
        });
        for (pos, n) in pieces {
            let Ok(mut buf) = got_free_rx.recv() else {
                break;
            };
            if direct && pos + n as u64 <= aligned_end {
                f.seek(SeekFrom::Start(pos)).map_err(io(shown))?;
                f.read_exact(buf.slice(n)).map_err(io(shown))?;
            } else {
                // The unaligned tail, read through a normal handle after dropping its cache.
                let mut g = File::open(path).map_err(io(shown))?;
                drop_cache(&g);
                g.seek(SeekFrom::Start(pos)).map_err(io(shown))?;
                g.read_exact(buf.slice(n)).map_err(io(shown))?;
            }
            if got_tx.send(buf).is_err() {
                break;
            }
        }
        drop(got_tx);
        comparer.join().expect("the comparer does not panic")
    });
    let checked = mismatch?;
    Ok((checked, ranges.len() as u64))
}

/// Sample locations per NIST SP 800-88 Rev.1 4.7.3, aligned to blocks.
fn sample_ranges(size: u64, seed: &[u8; 32], index: (usize, usize)) -> Vec<(u64, u64)> {
    let blocks = size.div_ceil(BLOCK as u64);
    // Small media: a full read is cheaper than sampling and proves more.
    if blocks < 20_000 {
        return vec![(0, size)];
    }
    let subsections = 1000u64;
    let per = blocks / subsections;
    // Two samples per subsection covering at least 10% together: each 5% (at least a block).
    let sample_blocks = per.div_ceil(20).max(1);
    let mut rng = stream(seed, (usize::MAX, index.0 ^ (index.1 << 16)), 0);
    let mut out = vec![(0, BLOCK as u64)];
    for s in 0..subsections {
        let base = s * per;
        for _ in 0..2 {
            let within = rng.gen_range(0..=per.saturating_sub(sample_blocks));
            out.push(((base + within) * BLOCK as u64, sample_blocks * BLOCK as u64));
        }
    }
    let last = (blocks - 1) * BLOCK as u64;
    out.push((last, size - last));
    out
}

/// Removes an emptied folder under a random name (its name may be personal data too).
fn remove_dir_renamed(dir: &Path) -> Result<(), EraseError> {
    if !dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
    let random = parent.join(format!("{:016x}", rand::thread_rng().gen::<u64>()));
    std::fs::rename(dir, &random).map_err(io(Path::new(
        "a folder of the target (names are not shown)",
    )))?;
    std::fs::remove_dir(&random).map_err(io(&random))?;
    fsutil::sync_dir(&parent).map_err(io(&parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_meets_nist_4_7_3() {
        let size = 1u64 << 30;
        let ranges = sample_ranges(size, &[1; 32], (0, 0));
        let covered: u64 = ranges.iter().map(|r| r.1).sum();
        assert!(ranges.len() >= 2 * 1000 + 2);
        assert!(covered * 10 >= size, "covers {covered} of {size}");
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().0 + ranges.last().unwrap().1, size);
        assert!(ranges
            .iter()
            .all(|(s, l)| s + l <= size && s % BLOCK as u64 == 0));
    }

    #[test]
    fn finalize_waits_for_every_key_and_refuses_a_cancelled_deletion() {
        use kenko_aws::KeyState;
        assert_eq!(
            finalize_decision(&[]).unwrap_err().reason(),
            "certificate_nothing_to_finalize"
        );
        assert!(finalize_decision(&[("kms:a".into(), KeyState::Gone)]).is_ok());
        let e = finalize_decision(&[
            ("kms:a".into(), KeyState::Gone),
            (
                "kms:b".into(),
                KeyState::Pending("2026-12-02T00:00:00Z".into()),
            ),
        ])
        .unwrap_err();
        assert_eq!(e.reason(), "certificate_finalize_pending");
        assert!(e.to_string().contains("2026-12-02"));
        let e =
            finalize_decision(&[("kms:a".into(), KeyState::Other("Enabled".into()))]).unwrap_err();
        assert_eq!(e.reason(), "erase_deletion_cancelled");
    }

    #[test]
    fn the_keystream_is_addressable() {
        let mut whole = vec![0u8; 3 * BLOCK];
        stream(&[7; 32], (1, 2), 0).fill_bytes(&mut whole);
        let mut tail = vec![0u8; BLOCK];
        stream(&[7; 32], (1, 2), 2 * BLOCK as u64).fill_bytes(&mut tail);
        assert_eq!(&whole[2 * BLOCK..], &tail[..]);
    }
}
