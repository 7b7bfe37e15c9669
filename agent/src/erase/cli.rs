//! `kenko-agent erase`: the command's arguments and body, beside the engine it drives.
//! `main.rs` only dispatches here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::{EraseContext, JobSpec};
use crate::config::Config;

/// `kenko-agent erase`: the targets, the method, and what the certificate says about people
/// and media.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// file:/PATH, dir:/PATH, device:/dev/NAME (a whole block device), s3://BUCKET[/PREFIX]
    /// (every version and delete marker), ebs-snapshot:REGION/SNAP_ID,
    /// ebs-volume:REGION/VOL_ID (a detached EBS volume), backup-rp:VAULT_ARN/RECOVERY_POINT_ARN,
    /// backup-vault:REGION/VAULT (every recovery point of --stack in the vault), kms:KEY or
    /// datakey:NAME (the record store's data key is datakey:records); repeatable.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// clear (overwrite files, folders, devices; delete S3 versions, snapshots, volumes,
    /// recovery points), purge (a device's own secure erase; refused where the device has
    /// none) or crypto (destroy a datakey:NAME or schedule a kms:KEY deletion).
    #[arg(long, value_enum, default_value_t = kenko_api::ErasureMethod::Clear)]
    method: kenko_api::ErasureMethod,
    /// full or sample (NIST SP 800-88 Rev.1 4.7.3).
    #[arg(long, value_enum, default_value_t = kenko_api::VerifyMode::Full)]
    verify: kenko_api::VerifyMode,
    /// random (ChaCha8 keystream) or zeros.
    #[arg(long, value_enum, default_value_t = kenko_api::Pattern::Random)]
    pattern: kenko_api::Pattern,
    /// NAMESPACE/NAME of the HealthStack whose recovery points a backup-vault: target erases
    /// (those of its volumes, by the tags the EBS CSI driver puts on them).
    #[arg(long)]
    stack: Option<String>,
    /// Job id; the same id resumes an interrupted job [default: a new random id].
    #[arg(long)]
    job_id: Option<String>,
    /// People and media details for the certificate (TOML: [sanitized_by] name, title,
    /// organization, location, phone; [media] manufacturer, model, serial_number,
    /// property_number, media_type, source, classification, backed_up, backup_location;
    /// media_destination, notes). Flags override it.
    #[arg(long)]
    details: Option<PathBuf>,
    /// The person sanitising (Appendix G).
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    organization: Option<String>,
    #[arg(long)]
    location: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    /// Confidentiality category of the data before erasure [default: 特定個人情報].
    #[arg(long)]
    classification: Option<String>,
    /// What happens to the media afterwards (reused, returned, destroyed...) [default: reused].
    #[arg(long)]
    media_destination: Option<String>,
    #[arg(long)]
    notes: Option<String>,
    /// Days KMS waits before deleting a key scheduled for deletion (7 to 30).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i32).range(7..=30))]
    kms_pending_days: i32,
    /// Sync progress to the checkpoint after this many MiB...
    #[arg(long, default_value_t = 1024)]
    checkpoint_mib: u64,
    /// ...and at least this many seconds since the last checkpoint.
    #[arg(long, default_value_t = 5)]
    checkpoint_secs: u64,
}

/// The `--details` file of `erase`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseDetails {
    #[serde(default)]
    sanitized_by: DetailsPerson,
    #[serde(default)]
    media: kenko_cert::Media,
    media_destination: Option<String>,
    notes: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailsPerson {
    name: Option<String>,
    title: Option<String>,
    organization: Option<String>,
    location: Option<String>,
    phone: Option<String>,
}

/// Runs (or resumes) one erasure job from the command line and prints its certificate.
pub fn erase(a: EraseArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let details: EraseDetails = match &a.details {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("{}: not valid erase details", p.display()))?
        }
        None => EraseDetails::default(),
    };
    let pick = |flag: Option<String>, file: Option<String>| flag.or(file).unwrap_or_default();
    let name = pick(a.name, details.sanitized_by.name);
    anyhow::ensure!(
        !name.is_empty(),
        "the person sanitising must be named: --name or [sanitized_by] name in --details"
    );
    let job_id = a.job_id.unwrap_or_else(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        format!("erase-{}", hex::encode(b))
    });
    let mut targets = Vec::new();
    for t in &a.targets {
        match t.parse::<kenko_api::Target>() {
            Ok(t) => targets.push(t),
            Err(e) => {
                eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let stack = match a.stack.as_deref().map(|s| s.split_once('/')) {
        None => None,
        Some(Some((ns, name))) if !ns.is_empty() && !name.is_empty() => {
            Some(kenko_api::names::StackSelector::of(ns, name))
        }
        Some(_) => anyhow::bail!("--stack must be NAMESPACE/NAME"),
    };
    let spec = JobSpec {
        job_id: job_id.clone(),
        targets,
        method: a.method,
        pattern: a.pattern,
        verify: a.verify,
        location: None,
        stack,
        authority: None,
        sanitized_by: kenko_cert::Person {
            name,
            title: pick(a.title, details.sanitized_by.title),
            organization: pick(a.organization, details.sanitized_by.organization),
            location: pick(a.location, details.sanitized_by.location),
            phone: pick(a.phone, details.sanitized_by.phone),
        },
        classification: a
            .classification
            .or((!details.media.classification.is_empty())
                .then(|| details.media.classification.clone()))
            .unwrap_or_else(|| "特定個人情報".into()),
        media_destination: a
            .media_destination
            .or(details.media_destination)
            .unwrap_or_else(|| "reused".into()),
        notes: pick(a.notes, details.notes),
        media: details.media,
        checkpoint_bytes: a.checkpoint_mib.max(1) << 20,
        checkpoint_interval: std::time::Duration::from_secs(a.checkpoint_secs),
    };
    let ctx = EraseContext::from_config(config, a.kms_pending_days);
    match super::run(&spec, &ctx) {
        Ok(o) => {
            println!(
                "erased and verified; certificate {} (job {}, {} resumption(s))",
                o.certificate_path.display(),
                job_id,
                o.resumed
            );
            let bytes: u64 = o.certificate.targets.iter().map(|t| t.bytes_erased).sum();
            let checked: u64 = o
                .certificate
                .targets
                .iter()
                .map(|t| t.verification.bytes_checked)
                .sum();
            println!(
                "overwrite {:.3} s ({:.0} MB/s), verify {:.3} s ({:.0} MB/s)",
                o.overwrite_secs,
                bytes as f64 / 1e6 / o.overwrite_secs.max(1e-9),
                o.verify_secs,
                checked as f64 / 1e6 / o.verify_secs.max(1e-9)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "kenko-agent: erasure job {job_id} failed: {e} [reason: {}]",
                e.reason()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
