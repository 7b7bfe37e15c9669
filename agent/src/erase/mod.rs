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
//!
//! Layout: [`target`] plans each target and holds its progress, [`overwrite`] and [`verify`]
//! clear media, [`purge`] purges a device, [`cloud`] deletes cloud objects and keys,
//! [`certificate`] assembles and issues certificates, [`cli`] is `kenko-agent erase`.

use std::path::{Path, PathBuf};

use kenko_api::names::StackSelector;
pub use kenko_api::{ErasureMethod, Pattern, Target as EraseTarget, TargetClass, VerifyMode};
use kenko_cert::{Certificate, Media, Person};
use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::telemetry::EraseEvent;

pub mod certificate;
pub mod cli;
#[cfg(feature = "cloud")]
mod cloud;
mod extents;
mod overwrite;
mod purge;
mod target;
#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
mod verify;

use target::TargetState;

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
    #[error("job {job}: the checkpoint is not the one this agent wrote (edited, or not sealed by its signing key); nothing was erased by this run and no certificate will be issued for the job: start a new job id, which plans what is on disk now")]
    CheckpointTampered { job: String },
    #[error("job {job}: the job was started but its checkpoint is gone; nothing was erased by this run and no certificate will be issued for the job: start a new job id, which plans what is on disk now")]
    CheckpointMissing { job: String },
    #[error("{target}: {what} since the job planned it; it was not erased by this run and no certificate is issued for the job: start a new job id to erase it as it is now")]
    TargetChanged { target: String, what: &'static str },
    #[error("target {target}: on {filesystem}, a copy-on-write file system, an overwrite writes new blocks and leaves the old ones with the data, so Clear cannot be done or claimed; nothing was touched. Use a cryptographic erase of the data's key, or purge or destroy the device")]
    CopyOnWrite { target: String, filesystem: String },
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),
    #[cfg(feature = "cloud")]
    #[error(transparent)]
    Aws(#[from] kenko_aws::AwsError),
    #[error(transparent)]
    NoCloud(#[from] crate::NoCloud),
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
    /// The stable reason code (metrics, Events, conditions, runbooks).
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
            EraseError::CheckpointTampered { .. } => "erase_checkpoint_tampered",
            EraseError::CheckpointMissing { .. } => "erase_checkpoint_missing",
            EraseError::TargetChanged { .. } => "erase_target_changed",
            EraseError::CopyOnWrite { .. } => "erase_copy_on_write",
            EraseError::DeviceInUse { .. } => "erase_device_in_use",
            EraseError::Key(k) => k.reason(),
            #[cfg(feature = "cloud")]
            EraseError::Aws(a) => a.reason(),
            EraseError::NoCloud(e) => e.reason(),
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

/// What every job of this agent erases with: where jobs keep checkpoints and certificates
/// are chained, the keys, the store, and where AWS is reached.
#[derive(Clone)]
pub struct EraseContext {
    pub jobs: PathBuf,
    pub certificates: PathBuf,
    pub signing_key: PathBuf,
    /// The record store's data key (`datakey:records`); other names are `KEYS/NAME.key`.
    pub data_key: PathBuf,
    pub database_url: String,
    /// Where AWS targets are reached (region to start in, emulator endpoint if any).
    pub aws: kenko_api::aws::Endpoint,
    /// The waiting period before KMS deletes a key (7 to 30 days).
    pub kms_pending_days: i32,
}

impl EraseContext {
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

fn now() -> String {
    kenko_intake::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
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

/// Runs (or resumes) an erasure job to its certificate, and tells what happened
/// ([`EraseEvent`]: the log line and the metric).
pub fn run(spec: &JobSpec, ctx: &EraseContext) -> Result<Outcome, EraseError> {
    let result = run_job(spec, ctx);
    match &result {
        Ok(o) => EraseEvent::Certified {
            job: &spec.job_id,
            certificate: &o.certificate_path,
            targets: o.certificate.targets.len(),
            bytes: o.certificate.targets.iter().map(|t| t.bytes_erased).sum(),
            blocked: o.certificate.targets.iter().map(|t| t.blocked.len()).sum(),
            resumed: o.resumed,
        }
        .emit(),
        Err(e) => EraseEvent::Failed {
            job: &spec.job_id,
            reason: e.reason(),
            error: e,
        }
        .emit(),
    }
    result
}

fn run_job(spec: &JobSpec, ctx: &EraseContext) -> Result<Outcome, EraseError> {
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
        // Refused before anything is overwritten: a job is erased whole or not started.
        #[cfg(not(feature = "cloud"))]
        if !matches!(
            t,
            EraseTarget::File { .. }
                | EraseTarget::Dir { .. }
                | EraseTarget::Device { .. }
                | EraseTarget::DataKey { .. }
        ) {
            return Err(crate::NoCloud::new(format!("erasing {t}")).into());
        }
        if matches!(t, EraseTarget::BackupVault { .. }) && spec.stack.is_none() {
            return Err(EraseError::NoStack(t.to_string()));
        }
    }
    let job_dir = ctx.jobs.join(&spec.job_id);
    let cp_path = job_dir.join("checkpoint.json");
    // Checkpoints are signed with the agent's key: one edited to say a file was written or
    // verified would otherwise end in a certificate for data never erased.
    let seal = Seal(crate::certs::signing_key(&ctx.signing_key)?);
    // Beside the job's folder, so a checkpoint deleted alone is noticed.
    let started = ctx.jobs.join(format!("{}.started", spec.job_id));
    let mut cp = match std::fs::read(&cp_path) {
        Ok(bytes) => {
            let mut cp = seal
                .open(&bytes)
                .ok_or_else(|| EraseError::CheckpointTampered {
                    job: spec.job_id.clone(),
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && started.exists() => {
            return Err(EraseError::CheckpointMissing {
                job: spec.job_id.clone(),
            });
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
                    .map(|t| target::plan(t, ctx))
                    .collect::<Result<_, _>>()?,
            }
        }
        Err(e) => return Err(io(&cp_path)(e)),
    };
    std::fs::create_dir_all(&job_dir).map_err(io(&job_dir))?;
    save(&cp_path, &cp, &seal)?;
    if !started.exists() {
        fsutil::atomic_write(&started, b"").map_err(io(&started))?;
    }

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
            purge::run(&mut cp, ti, &seed, &cp_path, &job_dir, &seal)?;
            continue;
        }
        for fi in 0..cp.targets[ti].files.len() {
            overwrite::erase_file(&mut cp, ti, fi, &seed, spec, &cp_path, &seal, &mut timings)?;
        }
        for d in cp.targets[ti].dirs.clone() {
            overwrite::remove_dir_renamed(&d)?;
        }
        #[cfg(feature = "cloud")]
        cloud::cloud_step(&mut cp, ti, spec, ctx, &cp_path, &seal)?;
        crate::crashpoint::hit("erase-target-done");
    }

    // Certificate: signed, chained after the signer's last one by the one issuer.
    let cert = certificate::for_job(spec, &cp, &seed);
    let (path, cert) = certificate::issue(ctx, cert)?;
    std::fs::remove_dir_all(&job_dir).map_err(io(&job_dir))?;
    let _ = std::fs::remove_file(&started);
    Ok(Outcome {
        certificate_path: path,
        resumed: cert.resumptions,
        certificate: cert,
        overwrite_secs: timings.overwrite.as_secs_f64(),
        verify_secs: timings.verify.as_secs_f64(),
    })
}

/// `certificate finalize`: once KMS has deleted every key a certificate scheduled, issues a
/// second certificate (chained, signed) that confirms it. Certificates are immutable, so the
/// confirmation is a new one naming the first by its SHA-256.
#[cfg(not(feature = "cloud"))]
pub fn finalize(cert_path: &Path, _ctx: &EraseContext) -> Result<Outcome, EraseError> {
    Err(crate::NoCloud::new(format!(
        "finalizing {} (asking KMS whether its keys are deleted)",
        cert_path.display()
    ))
    .into())
}

/// `certificate finalize`: once KMS has deleted every key a certificate scheduled, issues a
/// second certificate (chained, signed) that confirms it. Certificates are immutable, so the
/// confirmation is a new one naming the first by its SHA-256.
#[cfg(feature = "cloud")]
pub fn finalize(cert_path: &Path, ctx: &EraseContext) -> Result<Outcome, EraseError> {
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
    let rt = cloud::runtime("kms")?;
    let mut states = Vec::new();
    for (t, k) in &keys {
        let EraseTarget::Kms { key } = k else {
            continue;
        };
        let region = k.region(&ctx.aws.region).unwrap_or_default();
        states.push((
            t.spec.clone(),
            rt.block_on(kenko_aws::key_state(&ctx.aws, key, region))?,
        ));
    }
    cloud::finalize_decision(&states)?;
    let confirmed = now();
    let cert = certificate::finalization(
        &original,
        keys.iter().map(|(t, _)| *t).collect(),
        &confirmed,
    );
    let (path, cert) = certificate::issue(ctx, cert)?;
    Ok(Outcome {
        certificate_path: path,
        resumed: 0,
        certificate: cert,
        overwrite_secs: 0.0,
        verify_secs: 0.0,
    })
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

/// Signs and checks checkpoints with the agent's certificate key.
struct Seal(ed25519_dalek::SigningKey);

/// A checkpoint as written: its JSON and the signature over exactly those bytes.
#[derive(Serialize, Deserialize)]
struct Sealed {
    checkpoint: String,
    signature: String,
}

impl Seal {
    fn seal(&self, cp: &Checkpoint) -> Vec<u8> {
        use ed25519_dalek::Signer;
        let body = serde_json::to_string(cp).expect("checkpoint serialises");
        let signature = hex::encode(self.0.sign(body.as_bytes()).to_bytes());
        let sealed = Sealed {
            checkpoint: body,
            signature,
        };
        serde_json::to_vec(&sealed).expect("a sealed checkpoint serialises")
    }

    /// The checkpoint, when it is exactly what this key sealed.
    fn open(&self, bytes: &[u8]) -> Option<Checkpoint> {
        let sealed: Sealed = serde_json::from_slice(bytes).ok()?;
        let signature: [u8; 64] = hex::decode(&sealed.signature).ok()?.try_into().ok()?;
        self.0
            .verifying_key()
            .verify_strict(
                sealed.checkpoint.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .ok()?;
        serde_json::from_str(&sealed.checkpoint).ok()
    }
}

fn save(path: &Path, cp: &Checkpoint, seal: &Seal) -> Result<(), EraseError> {
    fsutil::atomic_write(path, &seal.seal(cp)).map_err(io(path))
}

impl EraseContext {
    /// The agent's places from its configuration: jobs under `DATA/erase`, certificates
    /// under `DATA/certificates`, the configured keys and store, AWS from the environment.
    pub fn from_config(config: &crate::config::Config, kms_pending_days: i32) -> EraseContext {
        EraseContext {
            jobs: config.data_dir.join("erase"),
            certificates: config.data_dir.join("certificates"),
            signing_key: config.signing_key_file.clone(),
            data_key: config.data_key_file.clone(),
            database_url: config.database_url.clone(),
            aws: kenko_api::aws::Endpoint::from_env(),
            kms_pending_days,
        }
    }
}
