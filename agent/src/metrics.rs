//! Prometheus metrics (one registry, served on `--metrics-addr` at `/metrics`). Label values
//! are reason codes, outcomes and the stack's name only: never a file name, a resident or any
//! personal value.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    /// Files by outcome: loaded, returned, duplicate, recovered.
    pub files: IntCounterVec,
    /// Rows by outcome: accepted, rejected.
    pub rows: IntCounterVec,
    /// Problems found, by reason code.
    pub rejections: IntCounterVec,
    /// Intakes that could not complete (file left in the inbox), by reason.
    pub failures: IntCounterVec,
    pub duration: Histogram,
    pub last_success: prometheus::Gauge,
    pub inbox_files: IntGauge,
    /// Inbox entries that are no delivery at the last scan, by reason.
    pub inbox_ignored: prometheus::IntGaugeVec,
    /// Inbox files backing off after a failure at the last round.
    pub files_backing_off: IntGauge,
    /// Files changed after their check and put back into the inbox, by how.
    pub changed_after_check: IntCounterVec,
    pub register_residents: IntGauge,
    /// Erasure jobs that issued a certificate, by outcome (certified, blocked).
    pub erase_certificates: IntCounterVec,
    /// Erasure jobs that stopped without a certificate, by reason.
    pub erase_failures: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    // In a stack's intake every series names the stack, so one Prometheus tells stacks apart
    // without relabelling.
    let stack = crate::config::stack_label()
        .map(|s| std::collections::HashMap::from([("stack".to_string(), s)]));
    let registry = Registry::new_custom(None, stack).expect("a valid stack label");
    let files = IntCounterVec::new(
        Opts::new(
            "kenko_intake_files_total",
            "Intake files handled, by outcome.",
        ),
        &["outcome"],
    )
    .expect("metric");
    let rows = IntCounterVec::new(
        Opts::new("kenko_intake_rows_total", "Intake rows, by outcome."),
        &["outcome"],
    )
    .expect("metric");
    let rejections = IntCounterVec::new(
        Opts::new(
            "kenko_intake_rejections_total",
            "Problems found in intake files, by reason code.",
        ),
        &["reason"],
    )
    .expect("metric");
    let failures = IntCounterVec::new(
        Opts::new(
            "kenko_intake_failures_total",
            "Intakes that could not complete (the file stays in the inbox), by reason.",
        ),
        &["reason"],
    )
    .expect("metric");
    let duration = Histogram::with_opts(
        HistogramOpts::new(
            "kenko_intake_file_duration_seconds",
            "Time to process one intake file.",
        )
        .buckets(vec![
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        ]),
    )
    .expect("metric");
    let last_success = prometheus::Gauge::new(
        "kenko_intake_last_success_timestamp_seconds",
        "Unix time of the last file loaded.",
    )
    .expect("metric");
    let inbox_files = IntGauge::new(
        "kenko_intake_inbox_files",
        "Files waiting in the inbox at the last scan.",
    )
    .expect("metric");
    let inbox_ignored = prometheus::IntGaugeVec::new(
        Opts::new(
            "kenko_intake_inbox_ignored",
            "Inbox entries that are no delivery (links, FIFOs, folders, orphan markers, names that are not UTF-8) at the last scan, by reason.",
        ),
        &["reason"],
    )
    .expect("metric");
    let files_backing_off = IntGauge::new(
        "kenko_intake_files_backing_off",
        "Inbox files waiting to be tried again after a failure, at the last round.",
    )
    .expect("metric");
    let changed_after_check = IntCounterVec::new(
        Opts::new(
            "kenko_intake_changed_after_check_total",
            "Files written to or replaced after their check, put back into the inbox as new deliveries, by how (replaced, written).",
        ),
        &["how"],
    )
    .expect("metric");
    let register_residents = IntGauge::new(
        "kenko_intake_register_residents",
        "Residents in the register the checks use.",
    )
    .expect("metric");
    let erase_certificates = IntCounterVec::new(
        Opts::new(
            "kenko_erase_certificates_total",
            "Erasure jobs that issued a signed certificate, by outcome (certified, blocked).",
        ),
        &["outcome"],
    )
    .expect("metric");
    let erase_failures = IntCounterVec::new(
        Opts::new(
            "kenko_erase_failures_total",
            "Erasure jobs that stopped without a certificate, by reason.",
        ),
        &["reason"],
    )
    .expect("metric");
    for c in [
        &files,
        &rows,
        &rejections,
        &failures,
        &erase_certificates,
        &erase_failures,
        &changed_after_check,
    ] {
        registry.register(Box::new(c.clone())).expect("register");
    }
    registry
        .register(Box::new(duration.clone()))
        .expect("register");
    registry
        .register(Box::new(last_success.clone()))
        .expect("register");
    registry
        .register(Box::new(inbox_files.clone()))
        .expect("register");
    registry
        .register(Box::new(register_residents.clone()))
        .expect("register");
    registry
        .register(Box::new(inbox_ignored.clone()))
        .expect("register");
    registry
        .register(Box::new(files_backing_off.clone()))
        .expect("register");
    Metrics {
        registry,
        files,
        rows,
        rejections,
        failures,
        duration,
        last_success,
        inbox_files,
        inbox_ignored,
        files_backing_off,
        changed_after_check,
        register_residents,
        erase_certificates,
        erase_failures,
    }
});

/// The text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut buf)
        .expect("text encoding");
    String::from_utf8(buf).expect("metrics are UTF-8")
}

/// Serves `/metrics`, `/healthz`, `/readyz` and the intake's `/intake/status` until
/// `shutdown` resolves.
pub async fn serve(
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/metrics", get(|| async { render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|| async {
                match crate::intake::status::not_ready() {
                    None => (axum::http::StatusCode::OK, "ok".to_string()),
                    Some(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why),
                }
            }),
        )
        .route(
            kenko_api::intake::STATUS_PATH,
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    serde_json::to_string(&crate::intake::status::report())
                        .expect("a report serialises"),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving metrics");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
