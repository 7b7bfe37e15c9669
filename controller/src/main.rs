//! `kenko-controller`: the HealthStack controller, and `crdgen`, which writes the CRDs generated
//! from `kenko-api` into `manifests/crds/`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "kenko-controller", version, about)]
enum Cli {
    /// Write the CRDs generated from the API types (one file per CRD).
    Crdgen {
        /// Folder to write to.
        #[arg(long, default_value = "manifests/crds")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse() {
        Cli::Crdgen { out } => {
            std::fs::create_dir_all(&out)?;
            for (name, yaml) in kenko_api::crd_files() {
                let path = out.join(name);
                std::fs::write(&path, yaml)?;
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
