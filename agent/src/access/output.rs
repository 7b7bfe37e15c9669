//! Where alerts go: a JSON-lines alert file (idempotent across restarts: every alert has a
//! deterministic id, and a line already written is not written again), the Alertmanager v2 API
//! (a sender thread with retries and backoff that never holds up ingestion), and Prometheus
//! metrics in the agent's registry. Alerts carry the rule, severity, actor (an account id), a
//! window, counts and the runbook link, never a resident token or other personal value.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use kenko_access::calendar::format_utc;
use kenko_access::Alert;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::telemetry::AccessEvent;
use super::AccessError;

/// The access monitor's metrics, registered in the agent's registry on first use.
pub struct AccessMetrics {
    pub events: IntCounterVec,
    pub alerts: IntCounterVec,
    pub lag: IntGaugeVec,
    pub parse_errors: IntCounterVec,
    pub failures: IntCounterVec,
    pub file_changes: IntCounterVec,
    pub alertmanager: IntCounterVec,
    pub running: IntGauge,
    pub last_checkpoint: IntGauge,
    pub chain_undigested: IntGauge,
    pub pod_logs: IntGauge,
}

pub static ACCESS_METRICS: LazyLock<AccessMetrics> = LazyLock::new(|| {
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
        crate::metrics::METRICS
            .registry
            .register(Box::new(c.clone()))
            .expect("register");
        c
    };
    let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
        let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
        crate::metrics::METRICS
            .registry
            .register(Box::new(g.clone()))
            .expect("register");
        g
    };
    let gauge = |name: &str, help: &str| {
        let g = IntGauge::new(name, help).expect("metric");
        crate::metrics::METRICS
            .registry
            .register(Box::new(g.clone()))
            .expect("register");
        g
    };
    AccessMetrics {
        events: counter(
            "kenko_access_events_total",
            "Access events taken in, by source (health, k8s_audit, cloudtrail); continues across restarts from the checkpoint.",
            &["source"],
        ),
        alerts: counter(
            "kenko_access_alerts_total",
            "Access alerts opened, by rule and severity.",
            &["rule", "severity"],
        ),
        lag: gauge_vec(
            "kenko_access_lag_seconds",
            "Seconds the monitor has been behind the end of an input (0 when caught up), by source.",
            &["source"],
        ),
        parse_errors: counter(
            "kenko_access_parse_errors_total",
            "Lines or CloudTrail files that could not be read, by source and reason.",
            &["source", "reason"],
        ),
        failures: counter(
            "kenko_access_failures_total",
            "Access monitor failures (the monitor retries), by reason.",
            &["reason"],
        ),
        file_changes: counter(
            "kenko_access_file_changes_total",
            "Followed files rotated, truncated in place, or lost while the agent was down, by source and kind.",
            &["source", "kind"],
        ),
        alertmanager: counter(
            "kenko_access_alertmanager_posts_total",
            "Posts to Alertmanager, by outcome (sent, failed, rejected, dropped).",
            &["outcome"],
        ),
        running: gauge(
            "kenko_access_monitor_running",
            "1 while the access monitor runs.",
        ),
        last_checkpoint: gauge(
            "kenko_access_checkpoint_timestamp_seconds",
            "Unix time of the last checkpoint.",
        ),
        chain_undigested: gauge(
            "kenko_access_chain_undigested_segments",
            "Chained segments not yet covered by a daily digest.",
        ),
        pod_logs: gauge(
            "kenko_access_pod_logs",
            "App pod logs (container logs of the stacks' app pods on this node) being followed.",
        ),
    }
});

/// The alert's deterministic id: the same rule, actor, stack and window start always give the
/// same id, so a restart that sees the same events again produces the same ids. (An alert of
/// no stack has the id it had before alerts named stacks.)
pub fn alert_id(a: &Alert) -> String {
    let mut h = Sha256::new();
    h.update(a.rule_id.as_bytes());
    h.update([0]);
    h.update(a.actor.as_bytes());
    h.update([0]);
    h.update(a.window_start.to_be_bytes());
    if !a.stack.is_empty() {
        h.update([0]);
        h.update(a.stack.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// One line of the alert file (and what Alertmanager gets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: String,
    /// `firing` when the alert opens, `resolved` when its group closes (final counts).
    pub status: String,
    pub rule: String,
    pub severity: String,
    pub actor: String,
    /// The HealthStack (`namespace/name`) the alert concerns; absent when it is no one stack's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stack: String,
    /// The stack's Alertmanager receivers (`spec.monitoring.alertReceivers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
    pub detail: String,
    /// UTC, RFC 3339.
    pub window_start: String,
    pub window_end: String,
    pub count: u64,
    pub threshold: u64,
    pub firings: u64,
    pub runbook_url: String,
}

impl AlertRecord {
    pub fn new(a: &Alert, resolved: bool, runbook_url: String) -> AlertRecord {
        AlertRecord {
            id: alert_id(a),
            status: if resolved { "resolved" } else { "firing" }.into(),
            rule: a.rule_id.into(),
            severity: a.severity.as_str().into(),
            actor: a.actor.clone(),
            stack: a.stack.clone(),
            receivers: Vec::new(),
            detail: a.detail.into(),
            window_start: format_utc(a.window_start),
            window_end: format_utc(a.window_end),
            count: a.count,
            threshold: a.threshold,
            firings: a.firings,
            runbook_url,
        }
    }

    pub fn resolved(&self) -> bool {
        self.status == "resolved"
    }

    /// With the receivers of its stack.
    pub fn with_receivers(mut self, receivers: &[String]) -> AlertRecord {
        self.receivers = receivers.to_vec();
        self
    }
}

/// The JSON-lines alert file.
#[derive(Debug)]
pub struct AlertFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// (id, status) written since the last checkpoint (a replay after a crash skips them).
    seen: HashSet<(String, String)>,
}

impl AlertFile {
    /// Opens for appending. Lines after `committed_len` (written after the last checkpoint) are
    /// remembered so a replay does not write them again; a torn last line is cut off.
    pub fn open(path: &Path, committed_len: u64) -> Result<AlertFile, AccessError> {
        let err = |e: std::io::Error| AccessError::AlertOutput {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let mut len = file.metadata().map_err(err)?.len();
        let mut seen = HashSet::new();
        let from = if committed_len <= len {
            committed_len
        } else {
            0
        };
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(from)).map_err(err)?;
        file.read_to_end(&mut tail).map_err(err)?;
        let whole = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < tail.len() {
            len = from + whole as u64;
            file.set_len(len).map_err(err)?;
        }
        for line in tail[..whole].split(|&b| b == b'\n') {
            if let Ok(r) = serde_json::from_slice::<AlertRecord>(line) {
                seen.insert((r.id, r.status));
            }
        }
        Ok(AlertFile {
            path: path.to_path_buf(),
            file,
            len,
            seen,
        })
    }

    /// Appends the record unless it is already there. Returns whether it was written.
    pub fn write(&mut self, r: &AlertRecord) -> Result<bool, AccessError> {
        if !self.seen.insert((r.id.clone(), r.status.clone())) {
            return Ok(false);
        }
        let mut line = serde_json::to_vec(r).expect("an alert serialises");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(|e| AccessError::AlertOutput {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
        self.len += line.len() as u64;
        Ok(true)
    }

    /// Syncs; returns the length for the checkpoint.
    pub fn sync(&mut self) -> Result<u64, AccessError> {
        self.file
            .sync_data()
            .map_err(|e| AccessError::AlertOutput {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(self.len)
    }

    /// A checkpoint with this file's length is stored: what was written before it will not be
    /// replayed.
    pub fn committed(&mut self) {
        self.seen.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Alertmanager

/// What the ingestion side sends the Alertmanager thread.
#[derive(Debug)]
enum AmMsg {
    Update(Box<AlertRecord>),
    Stop,
}

/// The Alertmanager output: a thread posting to `/api/v2/alerts`.
#[derive(Debug)]
pub struct Alertmanager {
    tx: mpsc::SyncSender<AmMsg>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often open alerts are posted again (Alertmanager resolves an alert nobody refreshes).
pub const RESEND: Duration = Duration::from_secs(60);

impl Alertmanager {
    pub fn start(base_url: String) -> Alertmanager {
        let (tx, rx) = mpsc::sync_channel(4096);
        let thread = std::thread::Builder::new()
            .name("alertmanager".into())
            .spawn(move || sender(&base_url, rx))
            .expect("spawn the Alertmanager thread");
        Alertmanager {
            tx,
            thread: Some(thread),
        }
    }

    /// Queues an alert's current state; never blocks (a full queue drops the update, counted:
    /// the next refresh of open alerts carries the state again).
    pub fn send(&self, r: AlertRecord) {
        if self.tx.try_send(AmMsg::Update(Box::new(r))).is_err() {
            ACCESS_METRICS
                .alertmanager
                .with_label_values(&["dropped"])
                .inc();
        }
    }

    /// Posts what is queued (one try) and stops the thread.
    pub fn stop(mut self) {
        let _ = self.tx.send(AmMsg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sender(base: &str, rx: mpsc::Receiver<AmMsg>) {
    let url = format!("{base}/api/v2/alerts");
    let mut open: BTreeMap<String, AlertRecord> = BTreeMap::new();
    let mut dirty: BTreeMap<String, AlertRecord> = BTreeMap::new();
    let mut backoff = Duration::from_secs(1);
    let mut next_try = Instant::now();
    let mut next_refresh = Instant::now() + RESEND;
    let mut stopping = false;
    loop {
        let now = Instant::now();
        let wake = if dirty.is_empty() {
            next_refresh
        } else {
            next_try.min(next_refresh)
        };
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(AmMsg::Update(r)) => {
                let r = *r;
                if r.resolved() {
                    open.remove(&r.id);
                } else {
                    open.insert(r.id.clone(), r.clone());
                }
                dirty.insert(r.id.clone(), r);
                // Take what else is queued before posting, to post in batches.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        AmMsg::Update(r) => {
                            let r = *r;
                            if r.resolved() {
                                open.remove(&r.id);
                            } else {
                                open.insert(r.id.clone(), r.clone());
                            }
                            dirty.insert(r.id.clone(), r);
                        }
                        AmMsg::Stop => stopping = true,
                    }
                }
            }
            Ok(AmMsg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => stopping = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= next_refresh {
            for (id, r) in &open {
                dirty.entry(id.clone()).or_insert_with(|| r.clone());
            }
            next_refresh = Instant::now() + RESEND;
        }
        if !dirty.is_empty() && (Instant::now() >= next_try || stopping) {
            let batch: Vec<&AlertRecord> = dirty.values().collect();
            let body = alertmanager_body(&batch, kenko_intake::clock::now().timestamp());
            match http_request("POST", &url, Some(body.into_bytes())) {
                Ok((code, _)) if (200..300).contains(&code) => {
                    ACCESS_METRICS
                        .alertmanager
                        .with_label_values(&["sent"])
                        .inc();
                    dirty.clear();
                    backoff = Duration::from_secs(1);
                }
                Ok((code, _)) if (400..500).contains(&code) => {
                    // Retrying the same batch would be refused again.
                    AccessEvent::AlertmanagerFailed {
                        status: Some(code),
                        alerts: dirty.len(),
                        error: &format!("HTTP status {code}"),
                        retry_in: None,
                    }
                    .emit();
                    dirty.clear();
                }
                Ok((code, _)) => {
                    am_failed(&format!("HTTP status {code}"), &mut backoff, &mut next_try)
                }
                Err(e) => am_failed(&e, &mut backoff, &mut next_try),
            }
        }
        if stopping {
            return;
        }
    }
}

fn am_failed(why: &str, backoff: &mut Duration, next_try: &mut Instant) {
    AccessEvent::AlertmanagerFailed {
        status: None,
        alerts: 0,
        error: &why,
        retry_in: Some(*backoff),
    }
    .emit();
    *next_try = Instant::now() + *backoff;
    *backoff = (*backoff * 2).min(Duration::from_secs(60));
}

/// The name of the Alertmanager alert of a rule: `access.bulk_read` → `KenkoAccessBulkRead`.
pub fn alertname(rule_id: &str) -> String {
    let mut out = String::from("KenkoAccess");
    for word in rule_id.trim_start_matches("access.").split('_') {
        let mut c = word.chars();
        if let Some(f) = c.next() {
            out.extend(f.to_uppercase());
            out.push_str(c.as_str());
        }
    }
    out
}

/// The `POST /api/v2/alerts` body. Open alerts end a few refreshes from now (Alertmanager
/// resolves them if the agent stops refreshing); resolved ones end now.
pub fn alertmanager_body(alerts: &[&AlertRecord], now: i64) -> String {
    let arr: Vec<serde_json::Value> = alerts
        .iter()
        .map(|r| {
            let start = kenko_access::calendar::parse_rfc3339(&r.window_start).unwrap_or(now);
            let end = if r.resolved() {
                now.max(start + 1)
            } else {
                (now + 5 * RESEND.as_secs() as i64).max(start + 1)
            };
            let mut labels = serde_json::json!({
                "alertname": alertname(&r.rule),
                "rule": r.rule,
                "severity": r.severity,
                "actor": r.actor,
                "alert_id": r.id,
                "service": "kenko-access",
            });
            if let Some((ns, name)) = r.stack.split_once('/') {
                labels["stack"] = name.into();
                labels["namespace"] = ns.into();
            }
            if !r.receivers.is_empty() {
                // Comma-framed, so a route matches one receiver with
                // `kenko_receivers=~".*,NAME,.*"` (docs/access-log-format.md).
                labels["kenko_receivers"] = format!(",{},", r.receivers.join(",")).into();
            }
            serde_json::json!({
                "labels": labels,
                "annotations": {
                    "summary": format!("{}: {} by {}{} ({} over threshold {}, {} firing(s))", r.rule, r.detail, r.actor, if r.stack.is_empty() { String::new() } else { format!(" on stack {}", r.stack) }, r.count, r.threshold, r.firings),
                    "detail": r.detail,
                    "count": r.count.to_string(),
                    "threshold": r.threshold.to_string(),
                    "firings": r.firings.to_string(),
                    "window_start": r.window_start,
                    "window_end": r.window_end,
                    "runbook_url": r.runbook_url,
                },
                "startsAt": format_utc(start),
                "endsAt": format_utc(end),
            })
        })
        .collect();
    serde_json::Value::Array(arr).to_string()
}

/// One plain-HTTP request (`http://host:port/path`) with a 10-second limit. Returns the status
/// and body.
pub fn http_request(
    method: &str,
    url: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>), String> {
    use http_body_util::{BodyExt, Full};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.to_string();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let fut = async {
            let stream = tokio::net::TcpStream::connect(&authority)
                .await
                .map_err(|e| format!("connecting to {authority}: {e}"))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes()
                .to_vec();
            Ok::<_, String>((status, body))
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .map_err(|_| "no answer within 10 seconds".to_string())?
    })
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn alertnames() {
        assert_eq!(alertname("access.bulk_read"), "KenkoAccessBulkRead");
        assert_eq!(
            alertname("access.provider_data_read"),
            "KenkoAccessProviderDataRead"
        );
    }

    #[test]
    fn alert_file_is_idempotent_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.jsonl");
        let rec = |id: &str| AlertRecord {
            id: id.into(),
            status: "firing".into(),
            rule: "access.off_hours".into(),
            severity: "warning".into(),
            actor: "S1".into(),
            stack: String::new(),
            receivers: vec![],
            detail: "closed_day".into(),
            window_start: "2026-11-07T01:00:00Z".into(),
            window_end: "2026-11-07T01:00:00Z".into(),
            count: 1,
            threshold: 0,
            firings: 1,
            runbook_url: "runbooks/access-off-hours.md".into(),
        };
        let mut f = AlertFile::open(&p, 0).unwrap();
        assert!(f.write(&rec("a")).unwrap());
        let committed = f.sync().unwrap();
        f.committed();
        assert!(f.write(&rec("b")).unwrap());
        f.sync().unwrap();
        drop(f);
        // A crash mid-line, then a restart from the checkpoint that replays "b" and "c".
        let mut raw = OpenOptions::new().append(true).open(&p).unwrap();
        raw.write_all(b"{\"id\":\"c\",\"sta").unwrap();
        drop(raw);
        let mut f = AlertFile::open(&p, committed).unwrap();
        assert!(!f.write(&rec("b")).unwrap());
        assert!(f.write(&rec("c")).unwrap());
        f.sync().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<AlertRecord>(l).unwrap().id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn alerts_of_a_stack_carry_its_name_and_receivers_to_alertmanager() {
        let a = Alert {
            rule_id: "access.privilege_change",
            rule: kenko_access::Rule::PrivilegeChange,
            severity: kenko_access::Severity::Warning,
            actor: "op@example.jp".into(),
            stack: "hachioji/hachioji".into(),
            detail: "db_pod_exec",
            window_start: 1_790_000_000,
            window_end: 1_790_000_000,
            count: 1,
            threshold: 0,
            firings: 1,
            runbook: "access-privilege-change.md",
        };
        let r = AlertRecord::new(&a, false, "runbooks/x.md".into())
            .with_receivers(&["city-health".into(), "asp-oncall".into()]);
        let body: serde_json::Value =
            serde_json::from_str(&alertmanager_body(&[&r], 1_790_000_100)).unwrap();
        let labels = &body[0]["labels"];
        assert_eq!(labels["stack"], "hachioji");
        assert_eq!(labels["namespace"], "hachioji");
        assert_eq!(labels["kenko_receivers"], ",city-health,asp-oncall,");
        assert!(body[0]["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("on stack hachioji/hachioji"));
        // Another stack's same firing is another alert.
        let other = Alert {
            stack: "fuchu/fuchu".into(),
            ..a.clone()
        };
        assert_ne!(alert_id(&a), alert_id(&other));
        let none = Alert {
            stack: String::new(),
            ..a
        };
        let body: serde_json::Value = serde_json::from_str(&alertmanager_body(
            &[&AlertRecord::new(&none, false, String::new())],
            1_790_000_100,
        ))
        .unwrap();
        assert!(body[0]["labels"].get("stack").is_none());
    }
}
