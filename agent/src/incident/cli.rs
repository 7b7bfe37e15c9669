//! `kenko-agent incident report`: draft the report of a personal data incident.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{build, file, find_alert, render, IncidentError, Sources};
use crate::config::Config;

/// The incident commands.
#[derive(Debug, clap::Subcommand)]
pub enum IncidentCommand {
    /// Draft the report to the Personal Information Protection Commission (速報 and 確報 items,
    /// deadlines) from an access alert, an incident file, or both: what kenko knows is filled
    /// in, the rest is marked 【要記入】. Japanese Markdown, or JSON with --json.
    #[command(group(clap::ArgGroup::new("from").required(true).multiple(true).args(["alert", "file"])))]
    Report {
        /// The alert id (16 hex digits), as in the alert file or `access check --json`.
        #[arg(long)]
        alert: Option<String>,
        /// The incident file (TOML, `[incident]`; see runbooks/incident-report.md). With
        /// --alert its fields win over the alert's.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The alert file to look the alert up in [default: alert_file of [access], i.e.
        /// DATA_DIR/access/alerts.jsonl].
        #[arg(long)]
        alert_file: Option<PathBuf>,
        /// Print the machine form (every item with its value or null) instead of Markdown.
        #[arg(long)]
        json: bool,
        /// Write the draft to FILE (atomically) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs an `incident` command; a failure is one line with its reason, exit 1.
pub fn incident(cmd: IncidentCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match run(cmd, config) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn run(cmd: IncidentCommand, config: &Config) -> Result<(), IncidentError> {
    let IncidentCommand::Report {
        alert,
        file: incident_file,
        alert_file,
        json,
        out,
    } = cmd;
    let mut src = Sources::default();
    if let Some(path) = &incident_file {
        let f = file::read(path)?;
        src.file = Some((path.clone(), f));
    }
    let from_file = src.file.as_ref().and_then(|(_, f)| f.alert.clone());
    if let (Some(a), Some(b)) = (&alert, &from_file) {
        if !a.eq_ignore_ascii_case(b) {
            return Err(IncidentError::FileInvalid {
                file: incident_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                line: 0,
                field: "alert".into(),
                expected: "the same alert id as --alert".into(),
            });
        }
    }
    if let Some(id) = alert.or(from_file) {
        let path = match alert_file {
            Some(p) => p,
            None => {
                crate::access::cli::settings(config)
                    .map_err(|e| IncidentError::Settings(e.to_string()))?
                    .alert_file
            }
        };
        let a = find_alert(&path, &id)?;
        src.alert = Some((path, a));
    }
    let draft = build(&src)?;
    let text = if json {
        let mut t = serde_json::to_string_pretty(&render::json(&draft)).expect("serialises");
        t.push('\n');
        t
    } else {
        render::markdown(&draft)
    };
    match out {
        Some(path) => {
            crate::fsutil::atomic_write(&path, text.as_bytes()).map_err(|e| {
                IncidentError::Output {
                    file: path.display().to_string(),
                    error: e.kind().to_string(),
                }
            })?;
            eprintln!(
                "kenko-agent: the draft is in {} ({} blank item(s) to fill in)",
                path.display(),
                draft.items.iter().filter(|i| i.value.is_none()).count()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}
