//! `kubectl kenko`: flags, connection, printing. The commands are in the library.
//!
//! Exit codes: 0 success; 1 the command failed (cluster unreachable, not found, approval
//! refused, a certificate that is not genuine and complete, a usage error); 2 `status` found a
//! stack that is not Ready or not ResidencyCompliant.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kubectl_kenko::{certificates, connect, erasure, status, ClusterTarget, PluginError, Scope};

#[derive(Parser)]
#[command(
    name = "kubectl-kenko",
    bin_name = "kubectl kenko",
    version,
    about = "kenko for ASP maintainers and auditors: stack status, erasure approval, erasure certificates"
)]
struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(
        short = 'A',
        long = "all-namespaces",
        global = true,
        conflicts_with = "namespace"
    )]
    all_namespaces: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Each HealthStack's conditions; exits 2 when one is not Ready or not ResidencyCompliant.
    Status,
    /// Erasure requests: list them, approve one as a second person.
    #[command(subcommand)]
    Erasure(ErasureCommand),
    /// Erasure certificates: list, get, export the signed file, verify it offline.
    #[command(subcommand, alias = "certificate", alias = "certs")]
    Certificates(CertificatesCommand),
    /// The certificate signers the controller trusts (ConfigMap kenko-erasure-signers).
    #[command(subcommand)]
    Signers(SignersCommand),
}

#[derive(Subcommand)]
enum SignersCommand {
    /// `NAME: KEY` per trusted signer.
    List {
        /// The controller's namespace.
        #[arg(long, default_value = "kenko-system")]
        controller_namespace: String,
    },
    /// The same, to a file `certificates verify --public-key` reads.
    Export {
        #[arg(long, default_value = "kenko-system")]
        controller_namespace: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ErasureCommand {
    /// ErasureRequests with their phase, requester and approver.
    List,
    /// Approve an ErasureRequest as the current user (never its requester).
    Approve { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Json,
}

#[derive(Subcommand)]
enum CertificatesCommand {
    /// Every ErasureCertificate: job, stack, targets, blocked items, issue time, SHA-256.
    List,
    /// One ErasureCertificate's fields.
    Get {
        name: String,
        /// `json`: the whole resource.
        #[arg(short = 'o', long, value_enum)]
        output: Option<Output>,
    },
    /// Write the certificate file's exact bytes (their SHA-256 is the resource's sha256).
    Export {
        name: String,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a certificate against your copy of the trusted keys.
    Verify {
        /// The ErasureCertificate in the cluster.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        name: Option<String>,
        /// A certificate file instead (no cluster needed).
        #[arg(long, value_name = "CERT.json")]
        file: Option<PathBuf>,
        /// The agent's public key file (from `kenko-agent certificate public-key`), or a file
        /// of trusted signers (`NAME: KEY` lines, from `kubectl kenko signers export`).
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
}

fn main() -> ExitCode {
    // Usage errors exit 1 like kubectl's (clap's default 2 is `status`'s "not healthy").
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut target: Option<ClusterTarget> = None;
    match runtime.block_on(run(cli, &mut target)) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Plugin(e)) if e.is_invalid_certificate() => {
            eprintln!("INVALID: {} [reason: {}]", e.explain(None), e.reason());
            ExitCode::FAILURE
        }
        Err(Failure::Plugin(e)) => {
            eprintln!("error: {}", e.explain(target.as_ref()));
            ExitCode::FAILURE
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {}", kubectl_kenko::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Plugin(PluginError),
    Other(anyhow::Error),
}

impl From<PluginError> for Failure {
    fn from(e: PluginError) -> Self {
        Failure::Plugin(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(anyhow::Error::new(e).context("cannot write the output"))
    }
}

async fn run(cli: Cli, target: &mut Option<ClusterTarget>) -> Result<u8, Failure> {
    // The auditor's key is read first: a bad key file fails before any cluster is asked.
    let verify_key = match &cli.command {
        Command::Certificates(CertificatesCommand::Verify { public_key, .. }) => {
            Some(certificates::read_public_keys(public_key)?)
        }
        _ => None,
    };
    // Offline verification: no cluster, no kubeconfig read.
    if let (
        Command::Certificates(CertificatesCommand::Verify {
            name: None,
            file: Some(file),
            ..
        }),
        Some(key),
    ) = (&cli.command, &verify_key)
    {
        let v = certificates::verify_file(file, key)?;
        print!(
            "{}",
            certificates::format_verified(&file.display().to_string(), &v)
        );
        return Ok(0);
    }

    let conn = connect(cli.kubeconfig.as_deref(), cli.context.as_deref()).await?;
    *target = Some(conn.target.clone());
    let client = conn.client;
    let default_ns = client.default_namespace().to_string();
    let scope = Scope::from_flags(cli.namespace.as_deref(), cli.all_namespaces, &default_ns);
    let mut stdout = std::io::stdout().lock();

    match cli.command {
        Command::Status => {
            let report = status::status(&client, &scope).await?;
            write!(stdout, "{}", status::format_status(&report))?;
            Ok(report.exit_code())
        }
        Command::Erasure(ErasureCommand::List) => {
            let items = erasure::list(&client, &scope).await?;
            if items.is_empty() {
                writeln!(stdout, "no ErasureRequests")?;
            } else {
                write!(stdout, "{}", erasure::format_list(&items, scope.is_all()))?;
            }
            Ok(0)
        }
        Command::Erasure(ErasureCommand::Approve { name }) => {
            let ns = scope.namespace_or(&default_ns);
            let a = erasure::approve(&client, ns, &name).await?;
            if a.already {
                writeln!(
                    stdout,
                    "erasure request {} was already approved by {}",
                    a.request, a.approved_by
                )?;
            } else {
                writeln!(
                    stdout,
                    "erasure request {} approved by {}",
                    a.request, a.approved_by
                )?;
            }
            Ok(0)
        }
        Command::Certificates(CertificatesCommand::List) => {
            let items = certificates::list(&client).await?;
            if items.is_empty() {
                writeln!(stdout, "no ErasureCertificates")?;
            } else {
                write!(stdout, "{}", certificates::format_list(&items))?;
            }
            Ok(0)
        }
        Command::Certificates(CertificatesCommand::Get { name, output }) => {
            let c = certificates::get(&client, &name).await?;
            match output {
                Some(Output::Json) => {
                    let json = serde_json::to_string_pretty(&c).map_err(|e| {
                        Failure::Other(anyhow::Error::new(e).context("cannot print the resource"))
                    })?;
                    writeln!(stdout, "{json}")?;
                }
                None => write!(stdout, "{}", certificates::format_get(&c))?,
            }
            Ok(0)
        }
        Command::Certificates(CertificatesCommand::Export { name, out }) => {
            let bytes = certificates::export(&client, &name).await?;
            match out {
                Some(path) => {
                    let sha = certificates::write_exact(&path, &bytes)?;
                    eprintln!("wrote {} (sha256 {sha})", path.display());
                }
                None => {
                    stdout.write_all(&bytes)?;
                    stdout.flush()?;
                }
            }
            Ok(0)
        }
        Command::Signers(SignersCommand::List {
            controller_namespace,
        }) => {
            let s = certificates::signers(&client, &controller_namespace).await?;
            write!(
                stdout,
                "{}",
                certificates::format_signers(&controller_namespace, &s)
            )?;
            Ok(if s.is_empty() { 2 } else { 0 })
        }
        Command::Signers(SignersCommand::Export {
            controller_namespace,
            out,
        }) => {
            let s = certificates::signers(&client, &controller_namespace).await?;
            let text = certificates::format_signers(&controller_namespace, &s);
            let sha = certificates::write_exact(&out, text.as_bytes())?;
            eprintln!(
                "wrote {} ({} signer(s), sha256 {sha})",
                out.display(),
                s.len()
            );
            Ok(if s.is_empty() { 2 } else { 0 })
        }
        Command::Certificates(CertificatesCommand::Verify { name, .. }) => {
            // `name` is present here: clap requires it unless --file, handled above.
            let name = name.unwrap_or_default();
            let key = verify_key.unwrap_or_default();
            let v = certificates::verify(&client, &name, &key).await?;
            write!(
                stdout,
                "{}",
                certificates::format_verified(&format!("erasurecertificate {name}"), &v)
            )?;
            Ok(0)
        }
    }
}
