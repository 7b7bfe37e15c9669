//! `kenko-agent intake run-once|check|retry|ledger` and `kenko-agent residents import`: the
//! bodies of the commands, beside the pipeline they drive. `main.rs` only dispatches here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::session::{Register, Session};
use crate::config::Config;
use crate::register;

#[derive(Debug, clap::Subcommand)]
pub enum ResidentsCommand {
    /// Replace the stored register with an extract (atomically: a broken file changes nothing).
    /// The history deltas kept for residents still in it stays. An extract that removes more
    /// than `[intake] register_max_shrink_percent` (default 5%) of the residents is refused.
    Import {
        file: PathBuf,
        /// Import even when the extract removes more residents than the shrink guard allows
        /// (a register cleaned of old entries, not a truncated file).
        #[arg(long)]
        allow_shrink: bool,
        /// Print one JSON summary object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply a delta file of changes (異動: 転入, 転出, 死亡, 転居, 氏名変更, 個人番号変更, 付番,
    /// 訂正) in one transaction; rows already applied (by 連番) are skipped, a gap is refused.
    Apply {
        file: PathBuf,
        /// Print one JSON summary object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum IntakeCommand {
    /// Process every complete file in the inbox, then exit.
    RunOnce {
        /// Print one JSON summary object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a file against the register and master without loading it (duplicates are not
    /// looked for: that needs the store).
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Put a file from returned/ back into the inbox to be checked again (after fixing the
    /// cause, e.g. importing a fresh register).
    Retry { file: PathBuf },
    /// List the intake ledger.
    Ledger {
        #[arg(long)]
        json: bool,
    },
}

pub fn residents(cmd: ResidentsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        ResidentsCommand::Import {
            file,
            allow_shrink,
            json,
        } => {
            let mut store = kenko_store::open(&config.database_url)?;
            let key = crate::keysource::data_key(config, store.as_mut())?;
            let guard = register::ShrinkGuard {
                max_percent: config.register_max_shrink_percent,
                allow: allow_shrink,
            };
            let s = register::import(store.as_mut(), &key, &file, guard)?;
            tracing::info!(
                residents = s.residents,
                before = s.before,
                added = s.added,
                removed = s.removed,
                changed = s.changed,
                "resident register replaced"
            );
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "imported {} residents (before {}: {} added, {} removed, {} changed)",
                    s.residents, s.before, s.added, s.removed, s.changed
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ResidentsCommand::Apply { file, json } => {
            let mut store = kenko_store::open(&config.database_url)?;
            let key = crate::keysource::data_key(config, store.as_mut())?;
            let s = register::delta::apply(store.as_mut(), &key, &file)?;
            let applied: u64 = s.applied.values().sum();
            tracing::info!(
                rows = s.rows,
                applied,
                already_applied = s.already_applied,
                residents = s.residents,
                versions_kept = s.versions_kept,
                seq = s.seq,
                "register delta applied"
            );
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                let kinds: Vec<String> =
                    s.applied.iter().map(|(k, n)| format!("{k} {n}")).collect();
                println!(
                    "applied {applied} of {} changes ({}) to {} residents, {} earlier versions kept; {} already applied; register at 連番 {}",
                    s.rows,
                    if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") },
                    s.residents,
                    s.versions_kept,
                    s.already_applied,
                    s.seq.map_or_else(|| "-".to_string(), |n| n.to_string()),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn intake(cmd: IntakeCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        IntakeCommand::RunOnce { json } => run_once(config, json),
        IntakeCommand::Check { file, json } => check(config, file, json),
        IntakeCommand::Retry { file } => {
            let mut session = Session::open(config, Register::Skip)?;
            let dest = super::retry(&mut session.env(), &file)?;
            println!("{} is back in the inbox", dest.display());
            Ok(ExitCode::SUCCESS)
        }
        IntakeCommand::Ledger { json } => ledger(config, json),
    }
}

fn run_once(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let dirs = config.dirs();
    dirs.create_all()
        .with_context(|| format!("creating {}", dirs.root.display()))?;
    let mut session = Session::open(config, Register::Load)?;
    let (summary, s3) = session.round(config.settle, &mut super::TakeAll)?;
    if let Some(s3) = &s3 {
        tracing::info!(
            listed = s3.listed,
            staged = s3.staged,
            finished = s3.finished,
            recovered = s3.recovered,
            "s3 inbox round"
        );
    }
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        for s in &summary.file_summaries {
            writeln!(
                out,
                "{}: {} (rows {}, accepted {}, returned {})",
                s.file, s.disposition, s.rows, s.accepted, s.rejected
            )?;
        }
        writeln!(
            out,
            "{} file(s): {} loaded, {} returned, {} duplicate, {} failed; {} rows accepted, {} returned",
            summary.files,
            summary.loaded,
            summary.returned,
            summary.duplicates,
            summary.failed,
            summary.accepted,
            summary.rejected
        )?;
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check(config: &Config, file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let session = Session::open(config, Register::Load)?;
    let started = std::time::Instant::now();
    let s = super::check_file(
        &session.register,
        &session.master,
        &session.key,
        session.today,
        &file,
    )?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &s)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{}: {} rows, {} pass the checks, {} would be returned ({:.2}s)",
            s.file,
            s.rows,
            s.passing,
            s.rejected,
            started.elapsed().as_secs_f64()
        )?;
        for (reason, n) in &s.reasons {
            writeln!(out, "  {reason:<32} {n:>7}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ledger(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    // Reading only: works on a read-only data directory (an auditor's copy, a full disk).
    let mut store = kenko_store::open_read_only(&config.database_url)?;
    let entries = store.ledger_all()?;
    let mut out = std::io::stdout().lock();
    for e in entries {
        if json {
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({
                    "sha256": e.sha256, "file": e.file_name, "status": e.status.as_str(),
                    "encoding": e.encoding, "rows": e.rows, "accepted": e.accepted,
                    "rejected": e.rejected, "destination": e.destination, "moved": e.moved,
                }),
            )?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{}  {:<8} {:>7} {:>7} {:>7}  {}",
                &e.sha256[..12],
                e.status,
                e.rows,
                e.accepted,
                e.rejected,
                e.file_name
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
