//! `kenko-agent`: the node agent's command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kenko_agent::config::{Config, GlobalFlags};
use kenko_agent::demo::{self, DemoSize};
use kenko_agent::intake;
use kenko_agent::sample::{self, IntakeSpec, SampleEncoding};
use kenko_agent::shutdown::Shutdown;
use kenko_intake::YearMonth;

#[derive(Debug, Parser)]
#[command(
    name = "kenko-agent",
    version,
    about = "kenko's node agent: monthly vaccination-record intake, with metrics."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a local workspace with synthetic data, take a month of deliveries in, and print
    /// what was accepted, returned and the fee summary.
    Demo {
        /// Residents in the synthetic register.
        #[arg(long, default_value_t = 20_000)]
        residents: usize,
        /// Rows in the doctors' association's delivery (the clinic's is a quarter of it).
        #[arg(long, default_value_t = 2_000)]
        records: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Generate synthetic data (no real person's).
    #[command(subcommand)]
    Sample(SampleCommand),
    /// The resident register.
    #[command(subcommand)]
    Residents(intake::cli::ResidentsCommand),
    /// The monthly intake.
    #[command(subcommand)]
    Intake(intake::cli::IntakeCommand),
    /// The long-running agent: watch the inbox and serve metrics.
    Run {
        /// Also run in the cluster: take this node's ErasureRequest targets (and, when elected,
        /// the cloud ones) and publish ErasureCertificates. Needs NODE_NAME and POD_NAMESPACE.
        #[arg(long)]
        cluster: bool,
    },
    /// Erase to NIST SP 800-88 (Clear, Purge or cryptographic erase), verify, and issue a
    /// signed certificate.
    /// Run again with the same --job-id to resume an interrupted job.
    Erase(EraseArgs),
    /// Erasure certificates: verify one or a chain, countersign, export the public key.
    #[command(subcommand)]
    Certificate(CertificateCommand),
    /// Residency and backups of the AWS account.
    #[command(subcommand)]
    Residency(ResidencyCommand),
    /// Access-pattern monitoring: follow the logs (run) or read files once (check).
    #[command(subcommand)]
    Access(kenko_agent::access::cli::AccessCommand),
    /// The access monitor's tamper-evidence chain.
    #[command(subcommand)]
    AuditLog(kenko_agent::access::cli::AuditLogCommand),
}

#[derive(Debug, Subcommand)]
enum ResidencyCommand {
    /// Sweep the regions and report where every bucket, replica, vault, recovery point,
    /// snapshot, volume and key lives, and whether the stack's VPCs are closed. Exit code 0 all
    /// compliant, 1 a violation, 2 unknown (a region or API did not answer), 3 bad options.
    Audit(kenko_agent::account_audit::AuditArgs),
}

#[derive(Debug, clap::Args)]
struct EraseArgs {
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

#[derive(Debug, Subcommand)]
enum CertificateCommand {
    /// Check a certificate file: canonical form, signature, validation, every target verified.
    /// Exits non-zero with the reason on any change to any byte.
    Verify {
        file: PathBuf,
        /// The signer's public key (hex, or a file holding it) the certificate must carry.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Check every certificate in a directory as chains per signer (a removed, reordered or
    /// altered certificate is found).
    VerifyChain {
        dir: PathBuf,
        /// The last certificate's SHA-256 expected for a signer (finds a removed tail).
        #[arg(long = "head", value_name = "PUBLIC_KEY=SHA256")]
        heads: Vec<String>,
    },
    /// Add the second person's validation (Appendix G), signed with their own key.
    Countersign {
        file: PathBuf,
        /// The validator's key file (created, 0600, if it does not exist).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        title: String,
        #[arg(long, default_value = "")]
        organization: String,
        #[arg(long, default_value = "")]
        location: String,
        #[arg(long, default_value = "")]
        phone: String,
    },
    /// Render a verified certificate for people: HTML, or a printable A4 PDF (Japanese text
    /// as written, extractable). Refuses a certificate that does not verify.
    Render {
        file: PathBuf,
        #[arg(long, default_value = "html", value_parser = ["html", "pdf"])]
        format: String,
        /// Where to write it [default: FILE with .html or .pdf].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The font for the PDF: TrueType/OpenType (or a collection, first font) covering
        /// Japanese [default: the first that exists of IPAGothic (Debian package
        /// fonts-ipafont-gothic), fonts-japanese-gothic.ttf, Noto Sans CJK JP].
        #[arg(long, env = "KENKO_RENDER_FONT")]
        font: Option<PathBuf>,
    },
    /// Once KMS has deleted the keys a certificate scheduled for deletion, issue the
    /// certificate that confirms it (exits non-zero while they are still pending).
    Finalize { file: PathBuf },
    /// Print (or write) this agent's certificate-signing public key, for auditors.
    PublicKey {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum SampleCommand {
    /// A resident register extract.
    Residents {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A month's intake file for residents of a register extract made by `sample residents`.
    Intake {
        #[arg(long)]
        residents: PathBuf,
        #[arg(long)]
        records: usize,
        /// Claim month, YYYY-MM.
        #[arg(long, value_parser = parse_month)]
        month: YearMonth,
        #[arg(long, default_value = "utf8", value_parser = parse_encoding)]
        encoding: SampleEncoding,
        /// Share of rows (0–1) with one injected error.
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One institution's 10-digit code (default: several, as the doctors' association
        /// delivers).
        #[arg(long)]
        institution: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_month(s: &str) -> Result<YearMonth, String> {
    YearMonth::parse_iso(s).ok_or_else(|| format!("{s:?}: expected YYYY-MM"))
}

fn parse_encoding(s: &str) -> Result<SampleEncoding, String> {
    SampleEncoding::parse(s).ok_or_else(|| format!("{s:?}: expected cp932 or utf8"))
}

fn init_logging(json: bool) {
    // The PostgreSQL driver logs bound parameters at debug level; whatever KENKO_LOG asks
    // for, it stays at warn so no row value can reach a log.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KENKO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive("tokio_postgres=warn".parse().expect("directive"))
        .add_directive("postgres=warn".parse().expect("directive"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::resolve(&cli.global) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
            return ExitCode::from(2);
        }
    };
    init_logging(config.json_logs);
    match run(cli.command, &config) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "kenko-agent failed");
            eprintln!("kenko-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo {
            residents,
            records,
            seed,
        } => {
            let mut out = std::io::stdout().lock();
            let summary = demo::run(
                config,
                DemoSize {
                    residents,
                    records,
                    seed,
                },
                &mut out,
            )?;
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Sample(SampleCommand::Residents { count, out, seed }) => {
            demo::write_file_atomically(&out, |w| sample::write_residents(w, count, seed))?;
            eprintln!("wrote {count} synthetic residents to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample(SampleCommand::Intake {
            residents,
            records,
            month,
            encoding,
            error_rate,
            seed,
            institution,
            out,
        }) => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&error_rate),
                "--error-rate {error_rate}: expected a share between 0 and 1"
            );
            let people = sample::read_residents(&residents)
                .with_context(|| format!("reading {}", residents.display()))?;
            let mut spec = IntakeSpec::new(records, month, config.today());
            spec.encoding = encoding;
            spec.error_rate = error_rate;
            spec.seed = seed;
            spec.institution = institution;
            let mut stats = None;
            demo::write_file_atomically(&out, |w| {
                stats = Some(sample::write_intake(w, &people, &spec)?);
                Ok(())
            })?;
            let stats = stats.expect("written");
            eprintln!(
                "wrote {} rows ({} with an injected error) to {}",
                stats.rows,
                stats.injected_total(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Residents(c) => intake::cli::residents(c, config),
        Command::Intake(c) => intake::cli::intake(c, config),
        Command::Run { cluster } => run_agent(config, cluster),
        Command::Certificate(c) => certificate(c, config),
        Command::Erase(a) => erase(a, config),
        Command::Residency(ResidencyCommand::Audit(a)) => {
            match kenko_agent::account_audit::audit_command(&a) {
                Ok(code) => Ok(ExitCode::from(code)),
                Err(e) => {
                    eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Access(c) => access_result(kenko_agent::access::cli::access(c, config)),
        Command::AuditLog(c) => access_result(kenko_agent::access::cli::audit_log(c)),
    }
}

fn access_result(
    r: Result<ExitCode, kenko_agent::access::AccessError>,
) -> anyhow::Result<ExitCode> {
    r.or_else(|e| {
        eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
        Ok(ExitCode::FAILURE)
    })
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

fn erase(a: EraseArgs, config: &Config) -> anyhow::Result<ExitCode> {
    use kenko_agent::erase::{self, JobSpec};
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
    let places = places(config, a.kms_pending_days);
    match erase::run(&spec, &places) {
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
            tracing::error!(job = %job_id, reason = e.reason(), error = %e, "erasure failed");
            eprintln!(
                "kenko-agent: erasure job {job_id} failed: {e} [reason: {}]",
                e.reason()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn places(config: &Config, kms_pending_days: i32) -> kenko_agent::erase::Places {
    kenko_agent::erase::Places {
        jobs: config.data_dir.join("erase"),
        certificates: config.data_dir.join("certificates"),
        signing_key: config.signing_key_file.clone(),
        data_key: config.data_key_file.clone(),
        database_url: config.database_url.clone(),
        aws: kenko_aws::Endpoint::from_env(),
        kms_pending_days,
    }
}

fn certificate(command: CertificateCommand, config: &Config) -> anyhow::Result<ExitCode> {
    use kenko_agent::certs;
    let report = |e: certs::CertCommandError| {
        eprintln!("INVALID: {e} [reason: {}]", e.reason());
        Ok(ExitCode::FAILURE)
    };
    match command {
        CertificateCommand::Verify { file, public_key } => {
            let expected = public_key
                .as_deref()
                .map(certs::parse_public_key)
                .transpose()?;
            match certs::verify_file(&file, expected.as_deref()) {
                Ok(v) => {
                    let c = &v.certificate;
                    println!(
                        "OK: {} is genuine and complete: job {}, sequence {}, {} target(s), signed by {}{}",
                        file.display(),
                        c.job_id,
                        c.sequence,
                        c.targets.len(),
                        v.signer,
                        v.validated_by
                            .map(|k| format!(", validated by {k}"))
                            .unwrap_or_else(|| ", not yet validated by a second person".into())
                    );
                    println!("sha256 {}", v.sha256);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        CertificateCommand::VerifyChain { dir, heads } => {
            let heads = heads
                .iter()
                .map(|h| {
                    h.split_once('=')
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
                        .ok_or_else(|| anyhow::anyhow!("--head {h:?}: expected PUBLIC_KEY=SHA256"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            match certs::verify_dir(&dir, &heads) {
                Ok(chains) => {
                    for (signer, n) in chains {
                        println!("OK: chain of {signer}: {n} certificate(s), unbroken");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        CertificateCommand::Countersign {
            file,
            key,
            name,
            title,
            organization,
            location,
            phone,
        } => {
            let key = certs::signing_key(&key)?;
            let person = kenko_cert::Person {
                name,
                title,
                organization,
                location,
                phone,
            };
            match certs::countersign_file(&file, person, &key) {
                Ok(v) => {
                    println!("validated: {} (sha256 {})", file.display(), v.sha256);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => report(e),
            }
        }
        CertificateCommand::Render {
            file,
            format,
            out,
            font,
        } => {
            let format = match format.as_str() {
                "pdf" => certs::RenderFormat::Pdf,
                _ => certs::RenderFormat::Html,
            };
            match certs::render_file(&file, format, out.as_deref(), font.as_deref()) {
                Ok(out) => {
                    println!("{}", out.display());
                    Ok(ExitCode::SUCCESS)
                }
                // The certificate does not verify.
                Err(e @ certs::CertCommandError::Invalid { .. }) => report(e),
                // A file that cannot be read or written, no usable font, or no PDF.
                Err(e) => {
                    eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CertificateCommand::Finalize { file } => {
            let places = places(config, 7);
            match kenko_agent::erase::finalize(&file, &places) {
                Ok(o) => {
                    println!("finalized: {}", o.certificate_path.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("kenko-agent: {e} [reason: {}]", e.reason());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CertificateCommand::PublicKey { out } => {
            let key = certs::signing_key(&config.signing_key_file)?;
            let hex_key = certs::public_key_hex(&key);
            if let Some(out) = out {
                kenko_agent::fsutil::atomic_write(&out, format!("{hex_key}\n").as_bytes())?;
            }
            println!("{hex_key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Connects to the cluster (a clear error when none is reachable) and starts the ErasureRequest
/// worker on `rt`; it stops with the agent.
/// What the rest of `run` needs from the cluster worker.
struct ClusterHandles {
    client: kube::Client,
    node: String,
    /// The agent's namespace (POD_NAMESPACE).
    namespace: String,
    /// Set while this agent holds the `kenko-agent-cloud` Lease.
    cloud_leader: Arc<AtomicBool>,
}

fn start_cluster_worker(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    stop: Shutdown,
) -> anyhow::Result<ClusterHandles> {
    let node = config
        .pod
        .node_name
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--cluster needs NODE_NAME (from the downward API)"))?;
    let lease_namespace = config
        .pod
        .namespace
        .clone()
        .unwrap_or_else(|| "kenko-node".into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("no Kubernetes cluster is reachable: {e}"))?;
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.apiserver_version(),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("no Kubernetes cluster is reachable: no answer within 10 seconds")
        })?
        .map_err(|e| anyhow::anyhow!("no Kubernetes cluster is reachable: {e}"))?;
        anyhow::Ok(client)
    })?;
    let handles = ClusterHandles {
        client: client.clone(),
        node: node.clone(),
        namespace: lease_namespace.clone(),
        cloud_leader: Arc::default(),
    };
    let places = places(config, 7);
    // The key this agent signs certificates with: the operator registers it as a trusted
    // signer, or the controller counts none of its certificates.
    match kenko_agent::erase::certificate::public_key(&places) {
        Ok(k) => {
            tracing::info!(node = %node, public_key = %k, "erasure certificate signer; register it in the ConfigMap kenko-erasure-signers")
        }
        Err(e) => tracing::error!(reason = e.reason(), error = %e, "no signing key"),
    }
    let worker = kenko_agent::cluster::Worker {
        client,
        node,
        cloud_leader: handles.cloud_leader.clone(),
        places,
        host_root: config.pod.host_root.clone(),
        organization: config.pod.organization.clone(),
    };
    rt.spawn(async move {
        let until_stopped = async move { stop.wait().await };
        if let Err(e) = kenko_agent::cluster::run(worker, lease_namespace, until_stopped).await {
            tracing::error!(reason = e.reason(), error = %e, "the cluster worker stopped");
        }
    });
    Ok(handles)
}

fn run_agent(config: &Config, cluster: bool) -> anyhow::Result<ExitCode> {
    let stop = Shutdown::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let addr = config.metrics_addr;
    let server = rt.spawn(async move {
        let mut rx = shutdown_rx;
        kenko_agent::metrics::serve(addr, async move {
            let _ = rx.wait_for(|v| *v).await;
        })
        .await
    });
    stop.trigger_on_signals(rt.handle(), "stopping after the current file");
    let cluster = if cluster {
        Some(start_cluster_worker(&rt, config, stop.clone())?)
    } else {
        None
    };
    if config.residency.enabled {
        // In the cluster only the cloud Lease holder audits, and it publishes each report
        // in ResidencyPolicy/default for the controller.
        let sink = cluster.as_ref().map(|c| {
            let (tx, rx) = tokio::sync::watch::channel(None);
            rt.spawn(kenko_agent::cluster::audit::publish_reports(
                c.client.clone(),
                c.node.clone(),
                rx,
            ));
            kenko_agent::account_audit::ReportSink {
                gate: c.cloud_leader.clone(),
                reports: tx,
            }
        });
        rt.spawn(kenko_agent::account_audit::run_scheduled(
            config.residency.clone(),
            stop.clone(),
            sink,
        ));
    }
    // In the cluster, access alerts are Kubernetes Events about this agent's Pod as well.
    let kube_events = cluster.as_ref().map(|c| {
        kenko_agent::access::events::EventSink::start(
            rt.handle(),
            c.client.clone(),
            kenko_agent::access::events::Regarding {
                namespace: c.namespace.clone(),
                pod: config
                    .pod
                    .pod_name
                    .clone()
                    .unwrap_or_else(|| c.node.clone()),
            },
        )
    });
    let access = kenko_agent::access::cli::spawn_if_enabled(config, stop.flag(), kube_events)?;
    let cfg = config.clone();
    let loop_stop = stop.flag();
    let intake = std::thread::Builder::new()
        .name("intake".into())
        .spawn(move || kenko_agent::intake::watch::run(&cfg, loop_stop))?;
    // If the metrics port cannot be bound, say so and stop: an agent nobody can scrape is
    // an agent nobody knows is down.
    let result = loop {
        if intake.is_finished() {
            break intake
                .join()
                .expect("intake thread does not panic")
                .map_err(anyhow::Error::from);
        }
        if server.is_finished() {
            stop.trigger();
            let r = rt.block_on(server)?;
            let _ = intake.join();
            r.with_context(|| format!("serving metrics on {addr}"))?;
            break Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // The access monitor writes its last checkpoint before the agent exits.
    stop.trigger();
    if let Some(a) = access {
        let _ = a.join();
    }
    let _ = shutdown_tx.send(true);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result.map(|_| ExitCode::SUCCESS)
}
