//! `kenko-controller`: `run` (the HealthStack controller) and `crdgen` (writes the CRDs
//! generated from `kenko-api` into `manifests/crds/`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "kenko-controller", version, about)]
enum Cli {
    /// Run the controller (leader-elected; metrics and probes on --metrics-addr).
    Run {
        #[arg(long, env = "KENKO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
        metrics_addr: SocketAddr,
        /// Namespace of the leader-election Lease.
        #[arg(long, env = "POD_NAMESPACE", default_value = "kenko-system")]
        lease_namespace: String,
        /// This replica's identity in the Lease.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// The agent image each HealthStack's intake (`NAME-intake`) runs; the manifests set
        /// it from the agent DaemonSet's image.
        #[arg(long, env = "KENKO_AGENT_IMAGE", default_value = "kenko-agent")]
        agent_image: String,
    },
    /// Write the CRDs generated from the API types (one file per CRD).
    Crdgen {
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
                // A developer's regeneration of committed files: a torn file fails the drift
                // test, so no atomic write is needed.
                #[allow(
                    clippy::disallowed_methods,
                    reason = "crdgen output, checked by the drift test"
                )]
                std::fs::write(&path, yaml)?;
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cli::Run {
            metrics_addr,
            lease_namespace,
            identity,
            agent_image,
        } => {
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("KENKO_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let identity = identity.unwrap_or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "kenko-controller".into())
            });
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let settings = kenko_controller::run::Settings {
                metrics_addr,
                lease_namespace,
                identity,
                agent_image,
            };
            match rt.block_on(kenko_controller::run::run(settings)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    let reason = e
                        .downcast_ref::<kenko_controller::run::StartError>()
                        .map_or("Failed", |s| s.reason());
                    eprintln!("kenko-controller: {e} [reason: {reason}]");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
