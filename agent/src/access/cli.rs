//! `kenko-agent access run|check` and `kenko-agent audit-log verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use kenko_access::event::parse_cloudtrail_file;
use kenko_access::{Detector, Severity, Source};

use super::output::AlertRecord;
use super::settings::AccessSettings;
use super::{chainlog, feed, load_roster, source_label, AccessError, LineBatch};
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum AccessCommand {
    /// Follow the logs named in [access] until SIGTERM: checkpoints, tamper-evidence chain,
    /// alert file, Alertmanager, metrics on --metrics-addr.
    Run,
    /// Read log files once (health access log, Kubernetes audit log, CloudTrail `.json.gz` or
    /// JSON lines; the kind is recognised from the content), print every alert and exit: 0 when
    /// no critical alert, 3 when there is one.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The staff roster [default: roster in [access]].
        #[arg(long)]
        roster: Option<PathBuf>,
        /// Print one JSON object per alert.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditLogCommand {
    /// Check the access monitor's tamper-evidence chain (DIR: its state or chain directory)
    /// against the logs it names: exits non-zero naming every changed, removed or reordered
    /// segment and every altered, removed or reordered chain record or daily digest.
    Verify { dir: PathBuf },
}

/// The resolved `[access]` settings of the agent's configuration.
pub fn settings(config: &Config) -> Result<AccessSettings, AccessError> {
    Ok(config.access.resolve(&config.data_dir)?)
}

pub fn access(cmd: AccessCommand, config: &Config) -> Result<ExitCode, AccessError> {
    match cmd {
        AccessCommand::Run => run(config),
        AccessCommand::Check {
            files,
            roster,
            json,
        } => check(config, &files, roster, json),
    }
}

fn run(config: &Config) -> Result<ExitCode, AccessError> {
    let s = settings(config)?;
    let stop = crate::shutdown::Shutdown::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| AccessError::NotConfigured(format!("cannot start the runtime: {e}")))?;
    let addr = config.metrics_addr;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop_server = stop.clone();
    rt.spawn(async move {
        let mut rx = rx;
        if let Err(e) = crate::metrics::serve(addr, async move {
            let _ = rx.wait_for(|v| *v).await;
        })
        .await
        {
            tracing::error!(%addr, error = %e, "cannot serve metrics; stopping");
            stop_server.trigger();
        }
    });
    stop.trigger_on_signals(
        rt.handle(),
        "stopping the access monitor after a last checkpoint",
    );
    let result = super::run_supervised(s, &stop.flag(), None, None);
    let _ = tx.send(true);
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result.map(|_| ExitCode::SUCCESS)
}

/// Which log a file is, from its name and first line.
fn kind_of(path: &Path, bytes: &[u8]) -> Result<(Source, bool), AccessError> {
    if path.extension().is_some_and(|e| e == "gz") {
        return Ok((Source::CloudTrail, true));
    }
    let first = bytes
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .unwrap_or_default();
    let has = |k: &str| first.windows(k.len()).any(|w| w == k.as_bytes());
    if has("\"Records\"") {
        Ok((Source::CloudTrail, true))
    } else if has("\"eventSource\"") || has("\"eventName\"") {
        Ok((Source::CloudTrail, false))
    } else if has("\"auditID\"") || has("audit.k8s.io") {
        Ok((Source::K8sAudit, false))
    } else if has("\"staff_id\"") {
        Ok((Source::Health, false))
    } else {
        Err(AccessError::Input {
            path: path.display().to_string(),
            message: "cannot tell which log this is: expected health access log lines (staff_id), Kubernetes audit events (auditID) or CloudTrail (Records, eventSource)".into(),
        })
    }
}

fn check(
    config: &Config,
    files: &[PathBuf],
    roster: Option<PathBuf>,
    json: bool,
) -> Result<ExitCode, AccessError> {
    let s = settings(config)?;
    let roster_path = roster.or(s.roster.clone()).ok_or_else(|| {
        AccessError::NotConfigured(
            "no staff roster: pass --roster or set roster in [access]".into(),
        )
    })?;
    let roster = load_roster(&roster_path)?;
    let mut det = Detector::new(s.detect.clone(), roster, s.calendar());
    let mut contents = Vec::new();
    let mut unreadable = 0u64;
    let limit = super::input::MAX_CLOUDTRAIL_JSON_BYTES;
    for f in files {
        let gz = f.extension().is_some_and(|e| e == "gz");
        let input_err = |message: String| AccessError::Input {
            path: f.display().to_string(),
            message,
        };
        let size = std::fs::metadata(f)
            .map_err(|e| input_err(e.to_string()))?
            .len();
        let bytes = if gz && size > limit {
            Err(super::input::GunzipError::TooLarge {
                what: "the gzip file is",
                limit,
            })
        } else {
            let bytes = std::fs::read(f).map_err(|e| input_err(e.to_string()))?;
            if gz {
                super::input::gunzip_limited(&bytes, limit)
            } else {
                Ok(bytes)
            }
        };
        let bytes = match bytes {
            Ok(b) => b,
            // A bomb is refused and the other files are still read.
            Err(e @ super::input::GunzipError::TooLarge { .. }) => {
                unreadable += 1;
                eprintln!("{}: {e} [reason: {}]", f.display(), e.reason());
                continue;
            }
            Err(e) => return Err(input_err(e.to_string())),
        };
        let (source, whole) = if gz {
            (Source::CloudTrail, true)
        } else {
            kind_of(f, &bytes)?
        };
        contents.push((f, source, whole, bytes));
    }
    let mut ct_events = Vec::new();
    let mut batches = Vec::new();
    for (f, source, whole, bytes) in &contents {
        if *whole {
            match parse_cloudtrail_file(bytes, &s.principals) {
                Ok(recs) => {
                    for e in &recs.errors {
                        unreadable += 1;
                        eprintln!("{}: {e} [reason: {}]", f.display(), e.reason());
                    }
                    ct_events.extend(recs.events);
                }
                Err(e) => {
                    unreadable += 1;
                    eprintln!("{}: {e} [reason: {}]", f.display(), e.reason());
                }
            }
        } else {
            batches.push(LineBatch {
                source: *source,
                bytes,
                first_line: 0,
                stack: None,
            });
        }
    }
    let mut shown = 0;
    let counts = feed(&mut det, &s.principals, &batches, ct_events, |e| {
        if shown < 20 {
            shown += 1;
            eprintln!("{e} [reason: {}]", e.reason());
        }
    });
    let alerts = det.finish();
    let critical = alerts
        .iter()
        .filter(|a| a.severity == Severity::Critical)
        .count();
    for a in &alerts {
        let r = AlertRecord::new(a, true, s.runbook_url(a.runbook));
        if json {
            println!("{}", serde_json::to_string(&r).expect("serialises"));
        } else {
            println!(
                "{:<8} {:<30} actor={} detail={} count={} threshold={} firings={} window={}..{} runbook={}",
                r.severity, r.rule, r.actor, r.detail, r.count, r.threshold, r.firings,
                r.window_start, r.window_end, r.runbook_url
            );
        }
    }
    let errors: u64 = counts.errors.iter().sum::<u64>() + unreadable;
    eprintln!(
        "{} events ({} {}, {} {}, {} {}), {errors} unreadable; {} alert(s), {critical} critical",
        counts.events.iter().sum::<u64>(),
        source_label(Source::Health),
        counts.events[0],
        source_label(Source::K8sAudit),
        counts.events[1],
        source_label(Source::CloudTrail),
        counts.events[2],
        alerts.len()
    );
    Ok(if critical > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn audit_log(cmd: AuditLogCommand) -> Result<ExitCode, AccessError> {
    let AuditLogCommand::Verify { dir } = cmd;
    let v = chainlog::verify_dir(&dir)?;
    if v.findings.is_empty() {
        println!(
            "OK: {} segment record(s) over {} file(s) ({} bytes), {} daily digest(s): the chain is unbroken and every segment is in place",
            v.records, v.files, v.bytes, v.digests
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (f, file) in &v.findings {
        match file {
            Some(file) => println!("TAMPERED: {file}: {f} [reason: {}]", f.reason()),
            None => println!("TAMPERED: chain: {f} [reason: {}]", f.reason()),
        }
    }
    eprintln!(
        "kenko-agent: the access logs or their chain were changed: {} finding(s) [reason: audit_log_tampered]",
        v.findings.len()
    );
    Ok(ExitCode::FAILURE)
}

/// In `kenko-agent run`: starts the monitor on its own thread when `[access] enabled`; it stops
/// with `stop`. A monitor that cannot start shows as `kenko_access_monitor_running` 0.
pub fn spawn_if_enabled(
    config: &Config,
    stop: Arc<AtomicBool>,
    kube_events: Option<super::kube_events::EventSink>,
    cluster: Option<(Arc<super::StackFeed>, Arc<AtomicBool>)>,
) -> Result<Option<std::thread::JoinHandle<()>>, AccessError> {
    let mut s = settings(config)?;
    // In the cluster, the cloud inputs are read by the cloud Lease holder only.
    let feed = cluster.map(|(feed, leader)| {
        s.cloud_gate = Some(leader);
        feed
    });
    if !s.enabled {
        return Ok(None);
    }
    let handle = std::thread::Builder::new()
        .name("access".into())
        .spawn(move || {
            if let Err(e) = super::run_supervised(s, &stop, kube_events, feed) {
                super::output::ACCESS_METRICS
                    .failures
                    .with_label_values(&[e.reason()])
                    .inc();
                tracing::error!(error = %e, reason = e.reason(), "the access monitor stopped");
            }
        })
        .map_err(|e| AccessError::NotConfigured(format!("cannot start its thread: {e}")))?;
    Ok(Some(handle))
}
