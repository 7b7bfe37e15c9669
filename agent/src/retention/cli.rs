//! `kenko-agent retention`: what would expire (the default), and the run that erases it.

use std::process::ExitCode;

use crate::config::Config;

/// The retention commands.
#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// Show what has passed its retention period (the default), or erase it with `--apply`:
    /// originals NIST Clear (overwrite, verify, remove), records deleted in one transaction,
    /// one signed certificate. An interrupted run resumes its plan.
    Run {
        /// Erase what has expired (without it nothing changes).
        #[arg(long, conflicts_with = "dry_run")]
        apply: bool,
        /// Only show what would go (the default; for scripts that say so).
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `retention` command.
pub fn retention(cmd: RetentionCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        RetentionCommand::Run { apply, json, .. } => {
            let report = if apply {
                super::apply(config)
            } else {
                super::dry_run(config)
            };
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
                    return Ok(ExitCode::FAILURE);
                }
            };
            if json {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if report.dry_run {
                "would erase"
            } else {
                "erased"
            };
            println!(
                "retention {} ({}): files last written before {}, records with 接種日 before {}",
                report.job_id,
                if report.dry_run {
                    "dry run: nothing changed; --apply erases"
                } else if report.resumed {
                    "resumed"
                } else {
                    "applied"
                },
                report.files_before,
                report.records_before
            );
            for k in &report.files {
                let range = match (k.oldest, k.newest) {
                    (Some(a), Some(b)) => format!(", {a} to {b}"),
                    _ => String::new(),
                };
                println!(
                    "  {verb} {:>6} {} ({} bytes{range})",
                    k.files, k.kind, k.bytes
                );
            }
            let range = match (&report.records.oldest, &report.records.newest) {
                (Some(a), Some(b)) => format!(" (接種日 {a} to {b})"),
                _ => String::new(),
            };
            println!(
                "  {} {:>6} vaccination records{range}",
                if report.dry_run {
                    "would delete"
                } else {
                    "deleted"
                },
                report.records.count
            );
            if let Some(c) = &report.certificate {
                println!("  certificate: {}", c.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
