//! `kenko-agent`: the node agent's command line.

use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(feature = "cloud")]
use std::sync::atomic::AtomicBool;
#[cfg(feature = "cloud")]
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kenko_agent::config::{Config, GlobalFlags};
use kenko_agent::demo::{self, DemoSize};
use kenko_agent::intake;
use kenko_agent::shutdown::Shutdown;
use kenko_intake::YearMonth;
use kenko_sample::{self as sample, IntakeSpec, SampleEncoding};

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
    Erase(kenko_agent::erase::cli::EraseArgs),
    /// Erasure certificates: verify one or a chain, countersign, export the public key.
    #[command(subcommand)]
    Certificate(kenko_agent::certs::cli::CertificateCommand),
    /// Residency and backups of the AWS account.
    #[command(subcommand)]
    Residency(ResidencyCommand),
    /// Access-pattern monitoring: follow the logs (run) or read files once (check).
    #[command(subcommand)]
    Access(kenko_agent::access::cli::AccessCommand),
    /// The access monitor's tamper-evidence chain.
    #[command(subcommand)]
    AuditLog(kenko_agent::access::cli::AuditLogCommand),
    /// Retention: what has passed its period (originals, return reports, records), erased on
    /// `--apply` with a signed certificate.
    #[command(subcommand)]
    Retention(kenko_agent::retention::cli::RetentionCommand),
    /// The auditor's evidence pack: one signed, self-verifying bundle of a period's evidence.
    #[command(subcommand)]
    Evidence(kenko_agent::evidence::cli::EvidenceCommand),
    /// Personal data incidents: the draft of the report to the Personal Information
    /// Protection Commission (個人情報保護委員会).
    #[command(subcommand)]
    Incident(kenko_agent::incident::cli::IncidentCommand),
}

#[derive(Debug, Subcommand)]
enum ResidencyCommand {
    /// Sweep the regions and report where every bucket, replica, vault, recovery point,
    /// snapshot, volume and key lives, and whether the stack's VPCs are closed. Exit code 0 all
    /// compliant, 1 a violation, 2 unknown (a region or API did not answer), 3 bad options.
    #[cfg(feature = "cloud")]
    Audit(kenko_agent::account_audit::AuditArgs),
    /// Needs the `cloud` feature (the AWS SDK): this build says how to get one.
    #[cfg(not(feature = "cloud"))]
    #[command(disable_help_flag = true)]
    Audit {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
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

/// An error as the operator's terminal shows it: one line, whatever a file name in it holds.
fn one_line(e: &dyn std::fmt::Display) -> String {
    kenko_agent::logfmt::escape_controls(&e.to_string()).into_owned()
}

fn init_logging(json: bool) {
    // The PostgreSQL driver logs bound parameters at debug level; whatever KENKO_LOG (or,
    // when it is not set, RUST_LOG) asks for, it stays at warn so no row value can reach a log.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KENKO_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive("tokio_postgres=warn".parse().expect("directive"))
        .add_directive("postgres=warn".parse().expect("directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // No colours: the writer escapes every control byte, so a log line is one line
        // whatever a file name holds (colour codes would be escaped too).
        .with_ansi(false)
        .with_writer(|| kenko_agent::logfmt::OneLine(std::io::stderr()));
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
            eprintln!("kenko-agent: {} [reason: {}]", one_line(&e), e.reason());
            return ExitCode::from(2);
        }
    };
    init_logging(config.json_logs);
    match run(cli.command, &config) {
        Ok(code) => code,
        Err(e) => {
            match reason_of(&e) {
                Some(reason) => {
                    tracing::error!(reason, error = format!("{e:#}"), "kenko-agent failed");
                    eprintln!(
                        "kenko-agent: {} [reason: {reason}]",
                        one_line(&format!("{e:#}"))
                    );
                }
                None => {
                    tracing::error!(error = format!("{e:#}"), "kenko-agent failed");
                    eprintln!("kenko-agent: {}", one_line(&format!("{e:#}")));
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// The stable reason of a failed command, where its error has one (the runbooks name it).
fn reason_of(e: &anyhow::Error) -> Option<&'static str> {
    use kenko_agent::intake::session::OpenError;
    use kenko_agent::keysource::KeySourceError;
    e.chain().find_map(|c| {
        c.downcast_ref::<OpenError>()
            .map(OpenError::reason)
            .or_else(|| {
                c.downcast_ref::<KeySourceError>()
                    .map(KeySourceError::reason)
            })
            .or_else(|| {
                c.downcast_ref::<kenko_store::StoreError>()
                    .map(|e| e.reason())
            })
            .or_else(|| c.downcast_ref::<kenko_agent::NoCloud>().map(|e| e.reason()))
            .or_else(|| {
                c.downcast_ref::<kenko_agent::register::RegisterError>()
                    .map(|e| e.reason())
            })
    })
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
        Command::Certificate(c) => kenko_agent::certs::cli::certificate(c, config),
        Command::Erase(a) => kenko_agent::erase::cli::erase(a, config),
        #[cfg(not(feature = "cloud"))]
        Command::Residency(ResidencyCommand::Audit { .. }) => {
            let e = kenko_agent::NoCloud::new("residency audit");
            eprintln!("kenko-agent: {} [reason: {}]", one_line(&e), e.reason());
            Ok(ExitCode::from(3))
        }
        #[cfg(feature = "cloud")]
        Command::Residency(ResidencyCommand::Audit(a)) => {
            match kenko_agent::account_audit::audit_command(&a) {
                Ok(code) => Ok(ExitCode::from(code)),
                Err(e) => {
                    eprintln!("kenko-agent: {} [reason: {}]", one_line(&e), e.reason());
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Access(c) => access_result(kenko_agent::access::cli::access(c, config)),
        Command::AuditLog(c) => access_result(kenko_agent::access::cli::audit_log(c)),
        Command::Retention(c) => kenko_agent::retention::cli::retention(c, config),
        Command::Evidence(c) => kenko_agent::evidence::cli::evidence(c, config),
        Command::Incident(c) => kenko_agent::incident::cli::incident(c, config),
    }
}

fn access_result(
    r: Result<ExitCode, kenko_agent::access::AccessError>,
) -> anyhow::Result<ExitCode> {
    r.or_else(|e| {
        eprintln!("kenko-agent: {} [reason: {}]", one_line(&e), e.reason());
        Ok(ExitCode::FAILURE)
    })
}

#[cfg(feature = "cloud")]
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

#[cfg(feature = "cloud")]
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
    let places = kenko_agent::erase::EraseContext::from_config(config, 7);
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

/// What the access monitor gets from the cloud parts of `run`.
#[cfg(feature = "cloud")]
type CloudParts<'a> = (
    std::borrow::Cow<'a, Config>,
    Option<kenko_agent::access::kube_events::EventSink>,
    Option<(Arc<kenko_agent::access::StackFeed>, Arc<AtomicBool>)>,
);

/// The cloud parts of `run`: the cluster worker (with `--cluster`), the scheduled residency
/// audit (when enabled), and what the access monitor takes from the cluster.
#[cfg(feature = "cloud")]
fn start_cloud<'a>(
    rt: &tokio::runtime::Runtime,
    config: &'a Config,
    cluster: bool,
    stop: &Shutdown,
) -> anyhow::Result<CloudParts<'a>> {
    let cluster = if cluster {
        Some(start_cluster_worker(rt, config, stop.clone())?)
    } else {
        None
    };
    if config.residency.is_enabled(cluster.is_some()) {
        // In the cluster only the cloud Lease holder audits, and it publishes each report
        // in ResidencyPolicy/default for the controller.
        let sink = cluster.as_ref().map(|c| {
            let (tx, rx) = tokio::sync::watch::channel(None);
            rt.spawn(kenko_agent::cluster::audit::publish_reports(
                c.client.clone(),
                c.node.clone(),
                config.residency.interval_secs,
                rx,
            ));
            kenko_agent::account_audit::ReportSink {
                gate: c.cloud_leader.clone(),
                reports: tx,
                client: c.client.clone(),
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
        kenko_agent::access::kube_events::EventSink::start(
            rt.handle(),
            c.client.clone(),
            kenko_agent::access::kube_events::Regarding {
                namespace: c.namespace.clone(),
                pod: config
                    .pod
                    .pod_name
                    .clone()
                    .unwrap_or_else(|| c.node.clone()),
            },
        )
    });
    // In the cluster the monitor is on by default, follows the app pods' logs on this node
    // and watches every HealthStack, as the API server lists them.
    let (access_config, feed) = match &cluster {
        Some(c) => {
            let mut cfg = config.clone();
            cfg.access = cfg.access.in_cluster();
            let feed = Arc::new(kenko_agent::access::StackFeed::default());
            rt.spawn(kenko_agent::cluster::access::follow(
                c.client.clone(),
                feed.clone(),
            ));
            (
                std::borrow::Cow::Owned(cfg),
                Some((feed, c.cloud_leader.clone())),
            )
        }
        None => (std::borrow::Cow::Borrowed(config), None),
    };
    Ok((access_config, kube_events, feed))
}

fn run_agent(config: &Config, cluster: bool) -> anyhow::Result<ExitCode> {
    // Refused before anything starts (no port bound, no file touched).
    #[cfg(not(feature = "cloud"))]
    {
        if cluster {
            anyhow::bail!(kenko_agent::NoCloud::new("run --cluster"));
        }
        if config.residency.is_enabled(false) {
            anyhow::bail!(kenko_agent::NoCloud::new("[residency] enabled = true"));
        }
    }
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
    #[cfg(not(feature = "cloud"))]
    let (access_config, kube_events, feed) = (std::borrow::Cow::Borrowed(config), None, None);
    #[cfg(feature = "cloud")]
    let (access_config, kube_events, feed) = start_cloud(&rt, config, cluster, &stop)?;
    let access =
        kenko_agent::access::cli::spawn_if_enabled(&access_config, stop.flag(), kube_events, feed)?;
    let cfg = config.clone();
    // Retention on its schedule (`[retention] enabled = true`): erases what has expired.
    let retention = if config.retention.enabled {
        let cfg = config.clone();
        let flag = stop.flag();
        Some(
            std::thread::Builder::new()
                .name("retention".into())
                .spawn(move || kenko_agent::retention::run_scheduled(cfg, flag))?,
        )
    } else {
        None
    };
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
    if let Some(r) = retention {
        let _ = r.join();
    }
    let _ = shutdown_tx.send(true);
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result.map(|_| ExitCode::SUCCESS)
}
