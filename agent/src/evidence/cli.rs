//! `kenko-agent evidence`: build and verify the evidence pack.

use std::process::ExitCode;

use crate::config::Config;

/// The evidence pack's commands.
#[derive(Debug, clap::Subcommand)]
pub enum EvidenceCommand {
    /// Verify a bundle offline.
    Verify { bundle: std::path::PathBuf },
}

/// Runs an `evidence` command.
pub fn evidence(cmd: EvidenceCommand, _config: &Config) -> anyhow::Result<ExitCode> {
    match cmd {
        EvidenceCommand::Verify { bundle } => {
            anyhow::bail!("{}: the evidence pack is not built yet", bundle.display())
        }
    }
}
