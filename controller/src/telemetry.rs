//! Prometheus metrics (reconciles, errors by reason, duration, ready stacks, each stack's
//! conditions) and the HTTP server for `/metrics`, `/healthz` and `/readyz`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kenko_api::HealthStack;
use kube::ResourceExt;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Per stack (namespace, name): ready or not, and consecutive failures.
type StackStates = HashMap<(String, String), (bool, u32)>;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    ready: IntGauge,
    conditions: IntGaugeVec,
    /// Per stack: ready or not (for the ready gauge), and consecutive failures (for backoff).
    state: Arc<Mutex<StackStates>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "kenko_controller_reconcile_total",
                "Reconciles of HealthStacks by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "kenko_controller_reconcile_errors_total",
                "Failed reconciles by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "kenko_controller_reconcile_duration_seconds",
                "Reconcile duration",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &[],
        )
        .expect("valid metric");
        let ready = IntGauge::new(
            "kenko_controller_stacks_ready",
            "HealthStacks with Ready=True",
        )
        .expect("valid metric");
        let conditions = IntGaugeVec::new(
            Opts::new(
                "kenko_controller_stack_condition",
                "1 for each current condition of each HealthStack",
            ),
            &["namespace", "stack", "type", "status", "reason"],
        )
        .expect("valid metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(ready.clone()),
            Box::new(conditions.clone()),
        ] {
            registry.register(c).expect("registered once");
        }
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            ready,
            conditions,
            state: Arc::default(),
        }
    }
}

fn key(stack: &HealthStack) -> (String, String) {
    (stack.namespace().unwrap_or_default(), stack.name_any())
}

impl Metrics {
    pub fn observe<T>(
        &self,
        stack: &HealthStack,
        result: &Result<T, crate::reconcile::Error>,
        elapsed: Duration,
    ) {
        self.duration
            .with_label_values::<&str>(&[])
            .observe(elapsed.as_secs_f64());
        let mut state = self.state.lock().expect("not poisoned");
        let entry = state.entry(key(stack)).or_default();
        match result {
            Ok(_) => {
                self.reconciles.with_label_values(&["ok"]).inc();
                entry.1 = 0;
            }
            Err(e) => {
                self.reconciles.with_label_values(&["error"]).inc();
                self.errors.with_label_values(&[e.reason()]).inc();
                entry.1 = entry.1.saturating_add(1);
            }
        }
    }

    /// Consecutive failures of a stack's reconcile (0 after a success).
    pub fn failures(&self, stack: &HealthStack) -> u32 {
        self.state
            .lock()
            .expect("not poisoned")
            .get(&key(stack))
            .map_or(0, |s| s.1)
    }

    /// The stack's current conditions, replacing what was exported for it.
    pub fn set_conditions(&self, stack: &HealthStack, conditions: &[Condition]) {
        let (ns, name) = key(stack);
        self.forget_conditions(&ns, &name);
        for c in conditions {
            self.conditions
                .with_label_values(&[&ns, &name, &c.type_, &c.status, &c.reason])
                .set(1);
        }
        let ready = conditions
            .iter()
            .any(|c| c.type_ == kenko_api::reasons::condition::READY && c.status == "True");
        let mut state = self.state.lock().expect("not poisoned");
        state.entry((ns, name)).or_default().0 = ready;
        self.ready
            .set(state.values().filter(|s| s.0).count() as i64);
    }

    fn forget_conditions(&self, ns: &str, name: &str) {
        let families = self.registry.gather();
        for f in families
            .iter()
            .filter(|f| f.name() == "kenko_controller_stack_condition")
        {
            for m in f.get_metric() {
                let l: HashMap<&str, &str> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                if l.get("namespace") == Some(&ns) && l.get("stack") == Some(&name) {
                    let _ = self.conditions.remove_label_values(&[
                        ns,
                        name,
                        l["type"],
                        l["status"],
                        l["reason"],
                    ]);
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }
}

/// Readiness: set once the controller holds the lease and its watches started.
#[derive(Clone, Default)]
pub struct Health {
    pub ready: Arc<AtomicBool>,
}

/// Serves `/metrics`, `/healthz` (the process answers) and `/readyz` (leading and watching).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let m = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move { m.render() }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let h = health.clone();
                async move {
                    if h.ready.load(Ordering::Relaxed) {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not leading")
                    }
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
