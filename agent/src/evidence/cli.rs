//! `kenko-agent evidence build|verify`.
//!
//! Exit codes: `build` 0 built, 1 not built (the reason on stderr); `verify` 0 genuine and
//! complete, 1 the bundle does not verify (a changed, missing or added file, a bad signature,
//! another signer), 3 it could not be checked (no such folder, an unusable --public-key).

use std::path::PathBuf;
use std::process::ExitCode;

use super::build::{build, BuildOptions};
use super::{EvidenceError, Period};
use crate::config::Config;

/// The evidence pack's commands.
#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCommand {
    /// Build the period's evidence pack into a new folder: certificates with their chain
    /// verification, residency reports, access alerts and the tamper-evidence chain's
    /// verification, exports and prints per staff id and month, retirements, the intake ledger
    /// per month, a Japanese summary (HTML and PDF) and the signed manifest. Exit 0 built, 1 not.
    Build {
        /// The calendar year (Asia/Tokyo), e.g. 2026.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        year: Option<i32>,
        /// First day, YYYY-MM-DD (Asia/Tokyo), with --to.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (Asia/Tokyo), included.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// The folder to create (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// A `residency audit --json` output to include (repeatable).
        #[arg(long, num_args = 1..)]
        residency: Vec<PathBuf>,
        /// A health access log to count exports and prints from, besides [access] health_log
        /// and its rotated files (repeatable).
        #[arg(long = "access-log", num_args = 1..)]
        access_logs: Vec<PathBuf>,
        /// The summary PDF's font (as `certificate render --font`).
        #[arg(long, env = "KENKO_RENDER_FONT")]
        font: Option<PathBuf>,
    },
    /// Verify a bundle offline: the manifest's signature (by the key inside it and, with
    /// --public-key, that it is the expected key), every file's SHA-256 and size, nothing
    /// missing or added. Exit 0 genuine, 1 does not verify, 3 could not be checked.
    Verify {
        bundle: PathBuf,
        /// The expected signer: the agent's public key (hex, or a file holding it; see
        /// `certificate public-key`).
        #[arg(long)]
        public_key: Option<String>,
    },
}

fn parse_key(arg: &str) -> Result<String, EvidenceError> {
    crate::certs::parse_public_key(arg).map_err(|_| EvidenceError::PublicKey(arg.to_string()))
}

/// Runs an `evidence` command.
pub fn evidence(cmd: EvidenceCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        EvidenceCommand::Build {
            year,
            from,
            to,
            out,
            residency,
            access_logs,
            font,
        } => {
            let result =
                Period::from_args(year, from.as_deref(), to.as_deref()).and_then(|period| {
                    build(
                        config,
                        &BuildOptions {
                            period,
                            out,
                            residency,
                            access_logs,
                            font,
                        },
                    )
                });
            match result {
                Ok(b) => {
                    println!(
                        "built: {} ({} files, {} finding(s)); manifest sha256 {}, signed by {}",
                        b.out.display(),
                        b.files,
                        b.findings,
                        b.manifest_sha256,
                        b.signer
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("kenko-agent: evidence build: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        EvidenceCommand::Verify { bundle, public_key } => {
            let result = public_key
                .as_deref()
                .map(parse_key)
                .transpose()
                .and_then(|k| super::verify(&bundle, k.as_deref()));
            match result {
                Ok(v) => {
                    println!(
                        "OK: {} is genuine and complete: {} file(s) of {} – {}, signed by {}; manifest sha256 {}",
                        bundle.display(),
                        v.manifest.files.len(),
                        v.manifest.period.from,
                        v.manifest.period.to,
                        v.signer,
                        v.sha256
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) if e.is_verification_failure() => {
                    eprintln!("INVALID: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    eprintln!("kenko-agent: evidence verify: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::from(3))
                }
            }
        }
    }
}
