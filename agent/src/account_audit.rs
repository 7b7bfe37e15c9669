//! The account audit (the agent's side of `kenko_aws::audit`): the `residency audit`
//! command, the `[residency]` configuration section, the scheduled audit inside
//! `kenko-agent run`, and its metrics.
//!
//! Exit codes of `residency audit`: 0 every finding Compliant, 1 any Violation, 2 some Unknown
//! (a region or API did not answer) and no Violation; 3 the command could not start (bad
//! flags or configuration).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use kenko_api::residency::StackLocations;
use kenko_aws::audit::{self, AuditOptions, Clients, Policy, Report, Rule, Status};
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGaugeVec, Opts};

use crate::metrics::METRICS;
use crate::shutdown::Shutdown;

/// `kenko-agent residency audit`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuditArgs {
    /// Comma-separated regions to sweep [default: every public AWS region].
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Print the JSON report (docs/residency-report.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Remove replication rules and backup copy actions that point outside Japan. Without it
    /// the planned actions are only printed.
    #[arg(long)]
    pub remediate: bool,
    /// The bucket holding erasure certificates (must have Object Lock). Buckets tagged
    /// kenko:data=certificates by Terraform are checked too.
    #[arg(long)]
    pub certificate_bucket: Option<String>,
    /// Buckets or region services read at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Backups must be kept at least this many years (x 365 days).
    #[arg(long, default_value_t = 20)]
    pub retention_years: u32,
    /// The tag marking the stack's VPCs: KEY or KEY=VALUE [default: kenko:stack].
    #[arg(long)]
    pub vpc_tag: Option<String>,
    /// The stacks whose backups `backup.coverage` checks: a JSON list of their locations
    /// (docs/residency-report.md), or `kubectl get healthstacks -A -o json` [default: none,
    /// the rule is not evaluated].
    #[arg(long, value_name = "FILE")]
    pub stacks: Option<std::path::PathBuf>,
    /// Per-region endpoint overrides REGION=URL,... (for tests and emulators).
    #[arg(long, env = "KENKO_AWS_REGION_ENDPOINTS", hide = true)]
    pub region_endpoints: Option<String>,
}

pub use crate::config::ResidencyConfig;

#[derive(Debug, thiserror::Error)]
pub enum ResidencyError {
    #[error("residency audit: {0}")]
    Config(String),
    #[error("residency audit: {0}")]
    Runtime(#[from] std::io::Error),
}

impl ResidencyError {
    pub fn reason(&self) -> &'static str {
        match self {
            ResidencyError::Config(_) => "config_invalid",
            ResidencyError::Runtime(_) => "io_failed",
        }
    }
}

fn parse_vpc_tag(text: Option<&str>) -> Result<(String, Option<String>), ResidencyError> {
    match text.map(str::trim) {
        None => Ok((audit::STACK_TAG.into(), None)),
        Some(t) => {
            let (k, v) = match t.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (t, None),
            };
            if k.is_empty() {
                return Err(ResidencyError::Config(format!(
                    "--vpc-tag {t:?}: expected KEY or KEY=VALUE"
                )));
            }
            Ok((k.to_string(), v))
        }
    }
}

fn options(
    regions: &[String],
    concurrency: usize,
    retention_years: u32,
    certificate_bucket: Option<String>,
    vpc_tag: Option<&str>,
) -> Result<AuditOptions, ResidencyError> {
    let regions: Vec<String> = if regions.is_empty() {
        audit::ALL_REGIONS.iter().map(|r| r.to_string()).collect()
    } else {
        regions.iter().map(|r| r.trim().to_string()).collect()
    };
    if let Some(bad) = regions.iter().find(|r| {
        r.is_empty()
            || !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }) {
        return Err(ResidencyError::Config(format!(
            "region {bad:?}: expected a region name like ap-northeast-1"
        )));
    }
    if concurrency == 0 {
        return Err(ResidencyError::Config(
            "concurrency must be at least 1".into(),
        ));
    }
    Ok(AuditOptions {
        regions,
        concurrency,
        stacks: Ok(Vec::new()),
        policy: Policy {
            retention_years,
            certificate_bucket,
            vpc_tag: parse_vpc_tag(vpc_tag)?,
            ..Policy::default()
        },
    })
}

/// The stacks of `--stacks FILE`: a JSON list of [`StackLocations`], or a Kubernetes list of
/// HealthStacks (`kubectl get healthstacks -A -o json`), each read as the cluster agent reads
/// it ([`StackLocations::of`]; stacks being deleted left out).
pub fn read_stacks(path: &std::path::Path) -> Result<Vec<StackLocations>, ResidencyError> {
    let bad = |e: String| ResidencyError::Config(format!("--stacks {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if v.is_array() {
        return serde_json::from_value(v).map_err(|e| bad(e.to_string()));
    }
    match v.get("items") {
        Some(items) => {
            let stacks: Vec<kenko_api::HealthStack> = serde_json::from_value(items.clone())
                .map_err(|e| bad(format!("not a list of HealthStacks: {e}")))?;
            Ok(stacks
                .iter()
                .filter(|s| s.metadata.deletion_timestamp.is_none())
                .map(StackLocations::of)
                .collect())
        }
        None => Err(bad(
            "expected a JSON list of stack locations or a Kubernetes list of HealthStacks".into(),
        )),
    }
}

fn overrides(text: Option<&str>) -> Result<BTreeMap<String, String>, ResidencyError> {
    audit::parse_endpoint_overrides(text.unwrap_or_default())
        .map_err(|e| ResidencyError::Config(format!("KENKO_AWS_REGION_ENDPOINTS: {e}")))
}

/// Runs `residency audit`, prints the report and returns the exit code (0, 1 or 2).
pub fn audit_command(args: &AuditArgs) -> Result<u8, ResidencyError> {
    let mut opts = options(
        &args.regions,
        args.concurrency,
        args.retention_years,
        args.certificate_bucket.clone(),
        args.vpc_tag.as_deref(),
    )?;
    if let Some(path) = &args.stacks {
        opts.stacks = Ok(read_stacks(path)?);
    }
    let overrides = overrides(args.region_endpoints.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let clients = Clients::new(&kenko_aws::Endpoint::from_env(), overrides).await;
        audit::run(&clients, &opts, args.remediate).await.0
    });
    log_report(&report);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serialises")
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.exit_code())
}

fn log_report(report: &Report) {
    for f in report
        .findings
        .iter()
        .filter(|f| f.status != Status::Compliant)
    {
        tracing::warn!(
            rule = f.rule.as_str(),
            status = f.status.as_str(),
            region = %f.region,
            resource = %f.resource,
            detail = %f.detail,
            "residency finding"
        );
    }
    tracing::info!(
        compliant = report.summary.compliant,
        violation = report.summary.violation,
        unknown = report.summary.unknown,
        api_calls = report.api_calls,
        "residency audit finished"
    );
}

/// The audit's metrics, registered in the agent's registry on first use.
pub struct ResidencyMetrics {
    pub findings: IntGaugeVec,
    pub last_complete: Gauge,
    pub last_run: Gauge,
    pub api_calls: IntCounter,
    pub audits: IntCounterVec,
    pub duration: Gauge,
}

pub static RESIDENCY_METRICS: LazyLock<ResidencyMetrics> = LazyLock::new(|| {
    let findings = IntGaugeVec::new(
        Opts::new(
            "kenko_residency_findings",
            "Findings of the last residency audit, by rule id and status (compliant, violation, unknown).",
        ),
        &["rule", "status"],
    )
    .expect("metric");
    let last_complete = Gauge::new(
        "kenko_residency_last_complete_audit_timestamp_seconds",
        "Unix time of the last residency audit in which every region and API answered.",
    )
    .expect("metric");
    let last_run = Gauge::new(
        "kenko_residency_last_audit_timestamp_seconds",
        "Unix time of the last residency audit that finished, complete or not.",
    )
    .expect("metric");
    let api_calls = IntCounter::new(
        "kenko_residency_api_calls_total",
        "AWS API attempts made by residency audits.",
    )
    .expect("metric");
    let audits = IntCounterVec::new(
        Opts::new(
            "kenko_residency_audits_total",
            "Residency audits, by result: compliant, violation, incomplete.",
        ),
        &["result"],
    )
    .expect("metric");
    let duration = Gauge::new(
        "kenko_residency_audit_duration_seconds",
        "Wall time of the last residency audit.",
    )
    .expect("metric");
    let r = &METRICS.registry;
    r.register(Box::new(findings.clone())).expect("register");
    r.register(Box::new(last_complete.clone()))
        .expect("register");
    r.register(Box::new(last_run.clone())).expect("register");
    r.register(Box::new(api_calls.clone())).expect("register");
    r.register(Box::new(audits.clone())).expect("register");
    r.register(Box::new(duration.clone())).expect("register");
    ResidencyMetrics {
        findings,
        last_complete,
        last_run,
        api_calls,
        audits,
        duration,
    }
});

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Publishes one report: every rule and status is set (zeros included), so a violation that
/// went away drops to 0 instead of lingering.
pub fn publish(report: &Report, secs: f64) {
    let m = &*RESIDENCY_METRICS;
    for rule in Rule::ALL {
        let counts = report.rules.get(&rule).copied().unwrap_or_default();
        for status in Status::ALL {
            m.findings
                .with_label_values(&[rule.as_str(), status.as_str()])
                .set(counts.get(status) as i64);
        }
    }
    let now = unix_now();
    m.last_run.set(now);
    if report.complete {
        m.last_complete.set(now);
    }
    m.api_calls.inc_by(report.api_calls);
    m.duration.set(secs);
    m.audits
        .with_label_values(&[match report.exit_code() {
            0 => "compliant",
            1 => "violation",
            _ => "incomplete",
        }])
        .inc();
}

/// Where the scheduled audit's reports go besides metrics and logs: in the cluster, to the
/// agent holding the cloud Lease, which publishes them for the controller.
#[derive(Clone)]
pub struct ReportSink {
    /// Audit only while this is set (the cloud Lease): one audit per cluster, not one per node.
    pub gate: Arc<AtomicBool>,
    pub reports: tokio::sync::watch::Sender<Option<Arc<Report>>>,
    /// The cluster, whose HealthStacks are listed before each audit (`backup.coverage`).
    pub client: kube::Client,
}

/// The scheduled audit of `kenko-agent run`: every `interval_secs` until `stop`. It never
/// remediates (that is a person's decision, made with `residency audit --remediate`).
pub async fn run_scheduled(cfg: ResidencyConfig, stop: Shutdown, sink: Option<ReportSink>) {
    // Registered first, so the metrics exist (and the staleness alert can fire) before the
    // first audit finishes, and also when the section is invalid and no audit ever runs.
    LazyLock::force(&RESIDENCY_METRICS);
    let mut opts = match options(
        &cfg.regions,
        cfg.concurrency,
        cfg.retention_years,
        cfg.certificate_bucket.clone(),
        cfg.vpc_tag.as_deref(),
    ) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(reason = e.reason(), error = %e, "the residency audit cannot run");
            return;
        }
    };
    let overrides = match overrides(crate::config::aws_region_endpoints().as_deref()) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(reason = e.reason(), error = %e, "the residency audit cannot run");
            return;
        }
    };
    let clients = Clients::new(&kenko_aws::Endpoint::from_env(), overrides).await;
    let interval = Duration::from_secs(cfg.interval_secs.max(1));
    while !stop.is_set() {
        let leading = sink.as_ref().is_none_or(|s| s.gate.load(Ordering::SeqCst));
        if !leading {
            // Another node's agent holds the cloud Lease and audits; check again shortly.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5).min(interval)) => {}
                _ = stop.wait() => {}
            }
            continue;
        }
        let started = std::time::Instant::now();
        if let Some(s) = &sink {
            // The stacks as they are now; a list that fails makes backup.coverage Unknown.
            opts.stacks = crate::cluster::audit::stack_locations(&s.client)
                .await
                .map_err(|e| {
                    tracing::warn!(reason = e.reason(), error = %e, "listing the HealthStacks for the backup audit");
                    e.to_string()
                });
        }
        let (report, _) = audit::run(&clients, &opts, false).await;
        publish(&report, started.elapsed().as_secs_f64());
        log_report(&report);
        if let Some(s) = &sink {
            let _ = s.reports.send(Some(Arc::new(report)));
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait() => {}
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_every_region_and_the_terraform_tag() {
        let o = options(&[], 8, 20, None, None).unwrap();
        assert_eq!(o.regions.len(), audit::ALL_REGIONS.len());
        assert_eq!(o.policy.vpc_tag, ("kenko:stack".to_string(), None));
        let o = options(&["ap-northeast-1".into()], 1, 25, None, Some("env=prod")).unwrap();
        assert_eq!(o.regions, vec!["ap-northeast-1".to_string()]);
        assert_eq!(
            o.policy.vpc_tag,
            ("env".to_string(), Some("prod".to_string()))
        );
        assert_eq!(o.policy.min_retention_days(), 25 * 365);
        assert!(options(&["Tokyo".into()], 8, 20, None, None).is_err());
        assert!(options(&[], 0, 20, None, None).is_err());
        assert!(options(&[], 8, 20, None, Some("=x")).is_err());
    }

    #[test]
    fn stacks_are_read_from_a_list_of_locations_or_of_healthstacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = kenko_api::samples::hachioji();
        stack.metadata.namespace = Some("hachioji".into());
        let want = StackLocations::of(&stack);
        let list = dir.path().join("list.json");
        std::fs::write(&list, serde_json::to_string(&vec![want.clone()]).unwrap()).unwrap();
        assert_eq!(read_stacks(&list).unwrap(), vec![want.clone()]);
        // `kubectl get healthstacks -A -o json`: the same locations; a stack being deleted is
        // left out.
        let mut gone = stack.clone();
        gone.metadata.name = Some("fuchu".into());
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            ));
        let kube = dir.path().join("kube.json");
        std::fs::write(
            &kube,
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [stack, gone]})
                .to_string(),
        )
        .unwrap();
        assert_eq!(read_stacks(&kube).unwrap(), vec![want]);
        for bad in ["{}", "[{\"namespace\": \"x\"}]", "not json"] {
            std::fs::write(&list, bad).unwrap();
            let e = read_stacks(&list).unwrap_err();
            assert_eq!(e.reason(), "config_invalid", "{bad}: {e}");
            assert!(e.to_string().contains("--stacks"), "{e}");
        }
        assert!(read_stacks(&dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn the_config_section_is_off_by_default_and_on_in_the_cluster() {
        let c: ResidencyConfig = toml::from_str("").unwrap();
        assert!(!c.is_enabled(false));
        assert!(c.is_enabled(true));
        let off: ResidencyConfig = toml::from_str("enabled = false\n").unwrap();
        assert!(!off.is_enabled(true));
        assert_eq!(c.interval_secs, 3600);
        let c: ResidencyConfig =
            toml::from_str("enabled = true\nregions = [\"ap-northeast-1\"]\ninterval_secs = 60\n")
                .unwrap();
        assert!(c.is_enabled(false) && c.regions.len() == 1 && c.interval_secs == 60);
        assert!(toml::from_str::<ResidencyConfig>("enable = true\n").is_err());
    }
}
