//! The one certificate issuer, and what a certificate says. [`for_job`] assembles a finished
//! job's certificate (method, verification and media per target, from the checkpoint);
//! [`finalization`] the one that confirms a KMS deletion; [`issue`] chains, signs and writes
//! either. Every certificate a signer issues is chained to the one
//! before it (its sequence number and the SHA-256 of the previous file), so reading the
//! chain's tail, signing and writing the new file is one critical section: an exclusive lock
//! on the certificate folder (`flock` on `.issuer.lock`, which excludes other threads of this
//! process as well as other processes, such as a CLI `erase` beside `run --cluster`) is held
//! across the three. The lock file sits beside the folder (`certificates.lock`), so the folder
//! holds certificates only. Without it, two jobs finishing together take the same sequence number and
//! the same previous hash, and the chain forks.

use std::path::{Path, PathBuf};

use kenko_cert::{
    Certificate, MethodType, Sanitization, Target, Verification, VerificationMethod, FORMAT,
};
use sha2::{Digest, Sha256};

use super::target::{
    apply_media, media_of, NotOverwritten, Progress, RecoveryPointDone, TargetState,
};
use super::{
    hostname, io, now, sanitize, Checkpoint, EraseContext, EraseError, ErasureMethod, JobSpec,
    Pattern, VerifyMode,
};
use crate::fsutil;

/// The lock file beside a certificate folder.
pub fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    dir.with_file_name(name)
}

/// The signer's public key (hex), the key made first if there is none yet, under the chain's
/// lock like every issue. The agent logs it at start-up: the operator registers it in the
/// trusted signers (README, runbooks/certificate-invalid.md).
pub fn public_key(ctx: &EraseContext) -> Result<String, EraseError> {
    let _lock = lock(&ctx.certificates)?;
    let key = crate::certs::signing_key(&ctx.signing_key)?;
    Ok(crate::certs::public_key_hex(&key))
}

fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, EraseError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = lock_path(dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| {
        EraseError::Io {
            path: lock_path.clone(),
            message: format!("cannot lock the certificate chain: {errno}"),
        }
    })
}

/// Chains, signs and writes `cert` (its `sequence` and `previous_sha256` are set here) as
/// `SEQUENCE-JOB.json` in the signer's folder; returns the path and the signed certificate.
pub fn issue(
    ctx: &EraseContext,
    mut cert: Certificate,
) -> Result<(PathBuf, Certificate), EraseError> {
    let dir = &ctx.certificates;
    // Released when `_lock` drops, after the rename below is durable.
    let _lock = lock(dir)?;
    // The key is read (or made, the first time) inside the lock too: two first certificates
    // must not make two keys.
    let key = crate::certs::signing_key(&ctx.signing_key)?;
    let (sequence, previous) = chain_tail(dir)?;
    cert.sequence = sequence;
    cert.previous_sha256 = previous;
    let mut cert = presentable(cert);
    cert.sign(&key, &now());
    let path = dir.join(format!("{sequence:06}-{}.json", sanitize(&cert.job_id)));
    let bytes = cert.to_file_bytes();
    // Never a certificate that would not verify: it would hold up a decommission with a
    // file nobody can trust.
    kenko_cert::verify(&bytes, None).map_err(|source| EraseError::Certificate {
        path: path.clone(),
        source,
    })?;
    fsutil::atomic_write(&path, &bytes).map_err(io(&path))?;
    Ok((path, cert))
}

/// Every string of the certificate as [`kenko_cert::presentable`] writes it.
fn presentable(cert: Certificate) -> Certificate {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = kenko_cert::presentable(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&cert).expect("a certificate serialises");
    walk(&mut v);
    serde_json::from_value(v).unwrap_or(cert)
}

/// The next sequence number and the previous certificate's SHA-256 in the chain folder.
pub fn chain_tail(dir: &Path) -> Result<(u64, Option<String>), EraseError> {
    let mut last: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        let Some(n) = p
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(".json"))
            .and_then(|n| n.split('-').next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if last.as_ref().is_none_or(|(m, _)| n > *m) {
            last = Some((n, p));
        }
    }
    match last {
        None => Ok((1, None)),
        Some((n, p)) => {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            Ok((n + 1, Some(hex::encode(Sha256::digest(&bytes)))))
        }
    }
}

/// A finished job's certificate, before it is chained and signed: what was done to each
/// target, read from the job's checkpoint.
pub(super) fn for_job(spec: &JobSpec, cp: &Checkpoint, seed: &[u8; 32]) -> Certificate {
    let crypto = spec.method == ErasureMethod::Crypto;
    let purging = spec.method == ErasureMethod::Purge;
    let seed_id = hex::encode(&Sha256::digest(seed)[..8]);
    let mut cert = Certificate {
        format: FORMAT.into(),
        job_id: spec.job_id.clone(),
        sequence: 0,
        previous_sha256: None,
        sanitized_by: spec.sanitized_by.clone(),
        sanitization: Sanitization {
            method_type: if crypto || purging {
                MethodType::Purge
            } else {
                MethodType::Clear
            },
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
                VerificationMethod::Crypto
            } else if purging {
                VerificationMethod::SampleBeforeAfter
            } else {
                verified_by(spec.verify)
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
    cert
}

#[cfg(feature = "cloud")]
/// The certificate that confirms `original`'s scheduled KMS deletions happened: a new one
/// (certificates are immutable) naming the first by its SHA-256, with only its key targets.
pub(super) fn finalization(
    original: &kenko_cert::Verified,
    keys: Vec<&Target>,
    confirmed: &str,
) -> Certificate {
    let mut cert = original.certificate.clone();
    cert.format = FORMAT.into();
    cert.job_id = format!("{}-finalized", original.certificate.job_id);
    cert.finished_at = confirmed.to_string();
    cert.host = hostname();
    cert.agent_version = env!("CARGO_PKG_VERSION").into();
    cert.sanitization.notes = format!(
        "Finalizes certificate sha256 {} (job {}): KMS no longer knows the keys.",
        original.sha256, original.certificate.job_id
    );
    cert.targets = keys
        .into_iter()
        .map(|t| {
            let mut t = t.clone();
            t.verification.details =
                format!("KMS reports the key no longer exists (checked {confirmed})");
            t
        })
        .collect();
    cert
}

/// A target as the certificate reports it: what was erased, what was blocked, and how the
/// erasure was verified.
fn certificate_target(t: &TargetState, spec: &JobSpec) -> Target {
    let vault_lock = |rp: &RecoveryPointDone| {
        rp.blocked_until.as_ref().map(|until| kenko_cert::Blocked {
            item: rp.recovery_point_arn.clone(),
            reason: format!("Vault Lock on {} ({})", rp.vault_name, rp.region),
            until: Some(until.clone()),
        })
    };
    // Recovery points: the one of a `backup-rp:` target, or the stack's of a vault.
    let points: Vec<&RecoveryPointDone> = match &t.progress {
        Progress::RecoveryPoint(rp) => vec![rp],
        Progress::Vault(v) => v.points.iter().collect(),
        _ => vec![],
    };
    let mut blocked: Vec<kenko_cert::Blocked> = match &t.progress {
        Progress::S3(d) => d
            .blocked
            .iter()
            .map(|(key, version, reason, until)| kenko_cert::Blocked {
                item: format!(
                    "{}/{key}?versionId={version}",
                    t.spec.to_string().trim_end_matches('/')
                ),
                reason: format!("Object Lock: {reason}"),
                until: until.clone(),
            })
            .collect(),
        _ => vec![],
    };
    blocked.extend(points.iter().filter_map(|rp| vault_lock(rp)));
    // Files of the target an overwrite could not reach (a hard link, blocks shared with a
    // copy): named by their place in the target, since names can be personal data.
    blocked.extend(t.files.iter().enumerate().filter_map(|(i, f)| {
        f.not_overwritten
            .filter(|n| n.data_remains())
            .map(|n| kenko_cert::Blocked {
                item: format!("file #{} of {}", i + 1, t.spec),
                reason: n.explain().to_string(),
                until: None,
            })
    }));
    // What was overwritten: not the entries only removed.
    let overwritten = || t.files.iter().filter(|f| f.not_overwritten.is_none());
    let rp_erased: Vec<&&RecoveryPointDone> = points
        .iter()
        .filter(|rp| rp.blocked_until.is_none())
        .collect();
    let (s3_bytes, s3_objects) = match &t.progress {
        Progress::S3(d) => (d.bytes, d.versions + d.markers),
        _ => (0, 0),
    };
    let (volume_bytes, cloud_object) = match &t.progress {
        Progress::Volume(v) => ((v.size_gib.max(0) as u64) << 30, 1),
        Progress::Kms(_) | Progress::Snapshot(_) => (0, 1),
        _ => (0, 0),
    };
    Target {
        spec: t.spec.to_string(),
        location: spec.location.clone(),
        media: media_of(t, &spec.classification),
        bytes_erased: overwritten()
            .map(|f| f.overwritten.unwrap_or(f.size))
            .sum::<u64>()
            + s3_bytes
            + rp_erased.iter().map(|rp| rp.bytes).sum::<u64>()
            + volume_bytes,
        objects_erased: overwritten().count() as u64
            + s3_objects
            + cloud_object
            + rp_erased.len() as u64,
        blocked,
        verification: verification_of(t, spec),
    }
}

fn verification_of(t: &TargetState, spec: &JobSpec) -> Verification {
    match &t.progress {
    Progress::Vault(v) => {
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
        Verification {
            method: VerificationMethod::Listing,
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
        }
    }
    Progress::Volume(v) => {
        Verification {
            method: VerificationMethod::Listing,
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
        }
    }
    Progress::Purge(p) => {
        let unchanged = p.unchanged.unwrap_or(u64::MAX);
        Verification {
            method: VerificationMethod::SampleBeforeAfter,
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
        }
    }
    Progress::RecoveryPoint(rp) => {
        Verification {
            method: VerificationMethod::Listing,
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
        }
    }
    Progress::Snapshot(d) => {
        Verification {
            method: VerificationMethod::Listing,
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
        }
    }
    Progress::Kms(k) => {
        Verification {
            method: VerificationMethod::Crypto,
            passed: true,
            bytes_checked: 0,
            locations_checked: 1,
            details: format!(
                "key {} was {}; deletion scheduled for {} (pending window {} days), \
                 state verified PendingDeletion; `kenko-agent certificate finalize` \
                 confirms the key is gone after that date",
                k.key_id, k.state_before, k.deletion_date, k.pending_days
            ),
        }
    }
    Progress::S3(d) => {
        Verification {
            method: VerificationMethod::Listing,
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
        }
    }
    Progress::Planned => {
            let removed = |kind| {
                t.files
                    .iter()
                    .filter(|f| f.not_overwritten == Some(kind))
                    .count()
            };
            let (links, special) = (removed(NotOverwritten::Link), removed(NotOverwritten::Special));
            Verification {
                method: verified_by(spec.verify),
                passed: t.files.iter().all(|f| f.verified),
                bytes_checked: t.bytes_checked,
                locations_checked: t.locations_checked,
                details: if links + special > 0 {
                    format!(
                        "{links} symbolic link(s) and {special} FIFO, socket or device node(s) removed without being followed or opened (they hold no data of their own)"
                    )
                } else {
                    String::new()
                },
            }
        }
    Progress::DataKey(e) => {
            // After: every copy the agent holds is gone (the key file was cleared, verified
            // and unlinked), so none of the sampled ciphertexts can be decrypted any more, in
            // the store or in any backup of it.
            let gone = t.files.iter().all(|f| f.verified && !f.path.exists());
            Verification {
                method: VerificationMethod::Crypto,
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

/// The certificate's name for a requested verification mode.
fn verified_by(mode: VerifyMode) -> VerificationMethod {
    match mode {
        VerifyMode::Full => VerificationMethod::Full,
        VerifyMode::Sample => VerificationMethod::Sample,
    }
}
