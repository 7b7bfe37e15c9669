//! `kenko-agent incident`: draft the report of a personal data incident.

use std::process::ExitCode;

use crate::config::Config;

/// The incident commands.
#[derive(Debug, clap::Subcommand)]
pub enum IncidentCommand {
    /// Draft the report.
    Report {
        /// The alert id.
        #[arg(long)]
        alert: Option<String>,
    },
}

/// Runs an `incident` command.
pub fn incident(cmd: IncidentCommand, _config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        IncidentCommand::Report { .. } => anyhow::bail!("the incident report is not built yet"),
    }
}
