//! Access-pattern monitoring in the agent: the I/O around `kenko_access` (the pure rules).
//!
//! - [`settings`]: the `[access]` configuration section;
//! - [`input`]: following the health access log and the Kubernetes audit log through growth,
//!   rotation and truncation, and a folder of gzipped CloudTrail files;
//! - [`checkpoint`]: where each input stopped and what the detector learned, synced atomically;
//! - [`chainlog`]: the SHA-256 chain over every ingested segment, daily digests, and
//!   `audit-log verify`;
//! - [`output`]: the alert file, Alertmanager, metrics;
//! - [`cli`]: `kenko-agent access run|check` and `kenko-agent audit-log verify`.
//!
//! One [`Monitor`] reads what is new in every input (a *step*), chains the segments, parses and
//! feeds the events to one detector in time order (merged across inputs within the step), and
//! writes alerts; every few seconds and at shutdown it checkpoints. Any failure inside a step
//! reopens the monitor from its last checkpoint, the same path a crash takes, so a failure can
//! neither lose nor double-count an event.

pub mod chainlog;
pub mod checkpoint;
pub mod cli;
#[cfg(feature = "cloud")]
pub mod cwinput;
pub mod input;
pub mod kube_events;
pub mod output;
#[cfg(feature = "cloud")]
pub mod s3input;
pub mod settings;
pub mod telemetry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kenko_access::event::parse_cloudtrail_file;
pub use kenko_access::feed::{feed, src_index, FeedCounts, LineBatch, SOURCES};
use kenko_access::{Alert, Detector, ParseError, Roster, RosterError, Source};

use self::chainlog::ChainLog;
use self::checkpoint::{Checkpoint, FORMAT};
use self::input::{Change, CloudTrailDir, LineInput};
use self::output::{AlertFile, AlertRecord, Alertmanager, ACCESS_METRICS};
use self::settings::{AccessSettings, SettingsError};
use self::telemetry::AccessEvent;

/// Why the access monitor or one of its commands failed. Never carries a log line's content.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("access monitoring is not configured: {0}")]
    NotConfigured(String),
    #[error("access log input {path}: {message}")]
    Input { path: String, message: String },
    #[error("access checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },
    #[error("writing the access checkpoint {path}: {message}")]
    CheckpointWrite { path: String, message: String },
    #[error("tamper-evidence chain {path}: {message}")]
    Chain { path: String, message: String },
    #[error("alert file {path}: {message}")]
    AlertOutput { path: String, message: String },
    #[error("staff roster {path}: {source}")]
    Roster {
        path: String,
        #[source]
        source: RosterError,
    },
    #[error("staff roster {path}: {message}")]
    RosterUnreadable { path: String, message: String },
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Parse(ParseError),
}

impl AccessError {
    pub fn reason(&self) -> &'static str {
        match self {
            AccessError::NotConfigured(_) => "access_not_configured",
            AccessError::Input { .. } => "access_input_failed",
            AccessError::Checkpoint { .. } => "access_checkpoint_invalid",
            AccessError::CheckpointWrite { .. } => "access_checkpoint_failed",
            AccessError::Chain { .. } => "access_chain_failed",
            AccessError::AlertOutput { .. } => "access_alert_output_failed",
            AccessError::Roster { source, .. } => source.reason(),
            AccessError::RosterUnreadable { .. } => "roster_invalid",
            AccessError::Settings(e) => e.reason(),
            AccessError::Parse(e) => e.reason(),
        }
    }
}

/// The metrics label of a source.
pub fn source_label(s: Source) -> &'static str {
    match s {
        Source::Health => "health",
        Source::K8sAudit => "k8s_audit",
        Source::CloudTrail => "cloudtrail",
    }
}

/// Reads the roster (CSV or TOML).
pub fn load_roster(path: &Path) -> Result<Roster, AccessError> {
    let text = std::fs::read_to_string(path).map_err(|e| AccessError::RosterUnreadable {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Roster::parse(&text).map_err(|source| AccessError::Roster {
        path: path.display().to_string(),
        source,
    })
}

/// How many parse errors of one step are logged one by one (the rest only counted).
const LOGGED_ERRORS: usize = 20;

/// Most bytes read from one line input in one step (so a long catch-up still checkpoints).
pub const STEP_BYTES: usize = 8 << 20;
/// How often the kubelet's log folder is looked at for new app pods.
const POD_SCAN: Duration = Duration::from_secs(5);
/// Most CloudTrail files taken in one step.
const STEP_FILES: usize = 64;

/// The stacks the monitor watches, kept current by someone else (the cluster agent, from the
/// HealthStacks): a new generation reopens the monitor from its checkpoint with them.
#[derive(Debug, Default)]
pub struct StackFeed {
    stacks: std::sync::Mutex<Vec<kenko_api::access::StackAccess>>,
    generation: std::sync::atomic::AtomicU64,
}

impl StackFeed {
    /// Replaces the stacks; returns whether they changed.
    pub fn set(&self, mut stacks: Vec<kenko_api::access::StackAccess>) -> bool {
        stacks.sort_by(|a, b| a.stack.cmp(&b.stack));
        let mut cur = self.stacks.lock().unwrap_or_else(|p| p.into_inner());
        if *cur == stacks {
            return false;
        }
        *cur = stacks;
        self.generation.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// The stacks and their generation.
    pub fn current(&self) -> (Vec<kenko_api::access::StackAccess>, u64) {
        let cur = self.stacks.lock().unwrap_or_else(|p| p.into_inner());
        (cur.clone(), self.generation.load(Ordering::SeqCst))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

/// The running access monitor.
pub struct Monitor {
    s: AccessSettings,
    det: Detector,
    lines: Vec<LineInput>,
    /// The stacks' app pod logs being followed, by path (found by [`input::pod_logs`]).
    pods: BTreeMap<PathBuf, LineInput>,
    last_pod_scan: Option<Instant>,
    ct: Option<CloudTrailDir>,
    chain: ChainLog,
    alerts: AlertFile,
    am: Option<Alertmanager>,
    /// Kubernetes Events, in the cluster.
    kube_events: Option<kube_events::EventSink>,
    /// Where the stacks come from, and the generation this monitor was opened with.
    feed: Option<(Arc<StackFeed>, u64)>,
    events: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    roster_stamp: Option<(SystemTime, u64)>,
    behind_since: [Option<Instant>; 3],
    last_checkpoint: Instant,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("detector", &self.det)
            .field("events", &self.events)
            .finish()
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl Monitor {
    /// Opens the monitor from its checkpoint (or from the start of every input).
    pub fn open(s: AccessSettings) -> Result<Monitor, AccessError> {
        LazyMetrics::touch();
        if s.health_log.is_none()
            && s.pod_logs.is_none()
            && s.k8s_audit_log.is_none()
            && s.cloudtrail_dir.is_none()
        {
            return Err(AccessError::NotConfigured(
                "no input: set health_log, pod_logs, k8s_audit_log or cloudtrail_dir in [access]"
                    .into(),
            ));
        }
        let roster_path = s.roster.clone().ok_or_else(|| {
            AccessError::NotConfigured(
                "no staff roster: set roster in [access] (without it every account is unknown)"
                    .into(),
            )
        })?;
        std::fs::create_dir_all(&s.state_dir).map_err(|e| AccessError::CheckpointWrite {
            path: s.state_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let cp = Checkpoint::load(&s.checkpoint_path())?;
        let roster = load_roster(&roster_path)?;
        let roster_stamp = stamp(&roster_path);
        let det = match cp.as_ref().and_then(|c| c.detector.as_ref()) {
            Some(state) => Detector::restore(s.detect.clone(), roster, s.calendar(), state)
                .map_err(|e| AccessError::Checkpoint {
                    path: s.checkpoint_path().display().to_string(),
                    message: e.to_string(),
                })?,
            None => Detector::new(s.detect.clone(), roster, s.calendar()),
        };
        let mut lines = Vec::new();
        for (source, path) in [
            (Source::Health, &s.health_log),
            (Source::K8sAudit, &s.k8s_audit_log),
        ] {
            if let Some(path) = path {
                let label = source_label(source);
                let pos = cp
                    .as_ref()
                    .filter(|c| c.paths.get(label).map(String::as_str) == path.to_str())
                    .and_then(|c| c.lines.get(label).cloned())
                    .unwrap_or_default();
                lines.push(LineInput::new(source, path.clone(), pos));
            }
        }
        // Checkpointed pod logs: their stack is found again by a scan; a log of no stack now
        // (the stack went away) is still read to its end.
        let found = match (&s.pod_logs, &cp) {
            (Some(root), Some(_)) => input::pod_logs(root, &s.stacks).unwrap_or_default(),
            _ => Vec::new(),
        };
        let pods = cp
            .as_ref()
            .map(|c| {
                c.pod_logs
                    .iter()
                    .map(|(path, pos)| {
                        let path = PathBuf::from(path);
                        let stack = found
                            .iter()
                            .find(|(p, _)| *p == path)
                            .map_or_else(String::new, |(_, st)| st.clone());
                        (path.clone(), LineInput::pod_log(stack, path, pos.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ct = s.cloudtrail_dir.as_ref().map(|d| {
            CloudTrailDir::new(
                d.clone(),
                cp.as_ref()
                    .map(|c| c.cloudtrail_done.clone())
                    .unwrap_or_default(),
            )
        });
        let chain = ChainLog::open(&s.chain_dir(), cp.as_ref().map(|c| c.chain_len))?;
        let alerts = AlertFile::open(&s.alert_file, cp.as_ref().map_or(0, |c| c.alert_file_len))?;
        let events = cp.as_ref().map(|c| c.events.clone()).unwrap_or_default();
        let errors = cp.as_ref().map(|c| c.errors.clone()).unwrap_or_default();
        for src in SOURCES {
            let label = source_label(src);
            let c = ACCESS_METRICS.events.with_label_values(&[label]);
            // The counter continues from the checkpoint, so it counts each event once across
            // restarts of this process.
            let want = events.get(label).copied().unwrap_or(0);
            if c.get() < want {
                c.inc_by(want - c.get());
            }
        }
        let am = s.alertmanager_url.clone().map(Alertmanager::start);
        let m = Monitor {
            det,
            lines,
            pods,
            last_pod_scan: None,
            ct,
            chain,
            alerts,
            am,
            kube_events: None,
            feed: None,
            events,
            errors,
            roster_stamp,
            behind_since: [None; 3],
            last_checkpoint: Instant::now(),
            s,
        };
        // Alertmanager forgets alerts nobody refreshes: tell it about the open ones at once.
        m.refresh_alertmanager();
        tracing::info!(
            checkpoint = cp.is_some(),
            events = m.events.values().sum::<u64>(),
            "access monitor started"
        );
        Ok(m)
    }

    pub fn settings(&self) -> &AccessSettings {
        &self.s
    }

    fn refresh_alertmanager(&self) {
        if let Some(am) = &self.am {
            let mut open: Vec<&Alert> = self.det.open_alerts().collect();
            open.sort_by(|a, b| (a.window_start, &a.actor).cmp(&(b.window_start, &b.actor)));
            for a in open {
                am.send(
                    AlertRecord::new(a, false, self.s.runbook_url(a.runbook))
                        .with_receivers(self.s.receivers(&a.stack)),
                );
            }
        }
    }

    fn reload_roster(&mut self) {
        let Some(path) = self.s.roster.clone() else {
            return;
        };
        let now = stamp(&path);
        if now.is_none() || now == self.roster_stamp {
            return;
        }
        self.roster_stamp = now;
        match load_roster(&path) {
            Ok(r) => {
                tracing::info!(people = r.len(), "access monitor: staff roster reloaded");
                self.det.set_roster(r);
            }
            Err(e) => {
                ACCESS_METRICS
                    .failures
                    .with_label_values(&[e.reason()])
                    .inc();
                tracing::error!(error = %e, reason = e.reason(), "access monitor: the changed roster cannot be read; keeping the previous one");
            }
        }
    }

    /// Finds the stacks' app pod logs (at most every [`POD_SCAN`]): a new pod's log is read
    /// from its start; a log whose pod is gone is dropped once it has been read to its end.
    fn scan_pods(&mut self) -> Result<(), AccessError> {
        let Some(root) = self.s.pod_logs.clone() else {
            return Ok(());
        };
        if self.last_pod_scan.is_some_and(|t| t.elapsed() < POD_SCAN) {
            return Ok(());
        }
        self.last_pod_scan = Some(Instant::now());
        let found = input::pod_logs(&root, &self.s.stacks).map_err(|e| AccessError::Input {
            path: root.display().to_string(),
            message: e.to_string(),
        })?;
        self.pods.retain(|path, li| !li.at_end || path.exists());
        for (path, stack) in found {
            self.pods.entry(path.clone()).or_insert_with(|| {
                tracing::info!(path = %path.display(), stack = %stack, "access monitor: following an app pod's log");
                LineInput::pod_log(stack, path, Default::default())
            });
        }
        ACCESS_METRICS.pod_logs.set(self.pods.len() as i64);
        Ok(())
    }

    /// Takes in what is new in every input. Returns whether anything was read.
    pub fn step(&mut self) -> Result<bool, AccessError> {
        self.reload_roster();
        self.scan_pods()?;
        let now = kenko_intake::clock::now().timestamp();
        let mut segs = Vec::new();
        for li in self.lines.iter_mut().chain(self.pods.values_mut()) {
            let seg = li.poll(STEP_BYTES)?;
            for c in li.take_changes() {
                let kind = match c {
                    Change::Rotated => "rotated",
                    Change::Truncated => "truncated",
                    Change::Lost => "lost",
                };
                ACCESS_METRICS
                    .file_changes
                    .with_label_values(&[source_label(li.source), kind])
                    .inc();
                if c == Change::Lost {
                    tracing::error!(path = %li.path.display(), "access monitor: the file being read when the agent stopped is gone (rotated and deleted?); its unread end is lost");
                } else {
                    tracing::info!(path = %li.path.display(), change = kind, "access monitor: followed file changed");
                }
            }
            if let Some(seg) = seg {
                segs.push(seg);
            }
        }
        let ct_files = match &mut self.ct {
            Some(ct) => ct.poll(STEP_FILES)?,
            None => Vec::new(),
        };
        if segs.is_empty() && ct_files.is_empty() {
            self.emit();
            return Ok(false);
        }
        for seg in &segs {
            match seg.too_long {
                Some(d) => self.chain.append_hashed(&seg.name, seg.start, d, now)?,
                None => self.chain.append(&seg.name, seg.start, &seg.bytes, now)?,
            }
        }
        for f in &ct_files {
            match f.digest {
                Some(d) => self.chain.append_hashed(&f.name, 0, d, now)?,
                None => self.chain.append(&f.name, 0, &f.gz, now)?,
            }
        }
        // CloudTrail files: each parsed whole.
        let mut ct_events = Vec::new();
        let mut ct_errors = 0u64;
        for f in &ct_files {
            match &f.json {
                Ok(json) => match parse_cloudtrail_file(json, &self.s.principals) {
                    Ok(recs) => {
                        for e in &recs.errors {
                            ct_errors += 1;
                            AccessEvent::CloudTrailSkipped {
                                file: &f.rel,
                                reason: e.reason(),
                                error: e,
                                whole_file: false,
                            }
                            .emit();
                        }
                        ct_events.extend(recs.events);
                    }
                    Err(e) => {
                        ct_errors += 1;
                        AccessEvent::CloudTrailSkipped {
                            file: &f.rel,
                            reason: e.reason(),
                            error: &e,
                            whole_file: true,
                        }
                        .emit();
                    }
                },
                Err(why) => {
                    ct_errors += 1;
                    AccessEvent::CloudTrailSkipped {
                        file: &f.rel,
                        reason: why.reason(),
                        error: why,
                        whole_file: true,
                    }
                    .emit();
                }
            }
        }
        // Container logs: the app's own lines out of their CRI wrapping (one for one).
        let unwrapped: Vec<Option<Vec<u8>>> = segs
            .iter()
            .map(|s| s.cri.then(|| kenko_access::cri::unwrap(&s.bytes)))
            .collect();
        let batches: Vec<LineBatch<'_>> = segs
            .iter()
            .zip(&unwrapped)
            .map(|(s, u)| LineBatch {
                source: s.source,
                bytes: u.as_deref().unwrap_or(&s.bytes),
                first_line: s.first_line,
                stack: s.stack.as_deref().filter(|st| !st.is_empty()),
            })
            .collect();
        let mut logged = 0;
        // Lines past the limit were read through, not held: counted here, as feed would.
        let mut too_long = [0u64; 3];
        for seg in segs.iter().filter(|s| s.too_long.is_some()) {
            too_long[src_index(seg.source)] += 1;
            let e = ParseError {
                source: seg.source,
                line: seg.first_line + 1,
                record: None,
                field: None,
                problem: kenko_access::event::Problem::LineTooLong,
            };
            let log = logged < LOGGED_ERRORS;
            logged += usize::from(log);
            AccessEvent::LineSkipped {
                source: source_label(e.source),
                reason: e.reason(),
                error: &e,
                log,
            }
            .emit();
        }
        let counts = feed(
            &mut self.det,
            &self.s.principals,
            &batches,
            ct_events,
            |e| {
                let log = logged < LOGGED_ERRORS;
                logged += usize::from(log);
                AccessEvent::LineSkipped {
                    source: source_label(e.source),
                    reason: e.reason(),
                    error: e,
                    log,
                }
                .emit();
            },
        );
        drop(batches);
        if let Some(ct) = &mut self.ct {
            for f in &ct_files {
                ct.done.insert(f.rel.clone());
            }
        }
        let mut counts = counts;
        counts.errors[2] += ct_errors;
        for (i, n) in too_long.into_iter().enumerate() {
            counts.errors[i] += n;
        }
        for src in SOURCES {
            let i = src_index(src);
            let label = source_label(src);
            if counts.events[i] > 0 {
                *self.events.entry(label.into()).or_default() += counts.events[i];
                ACCESS_METRICS
                    .events
                    .with_label_values(&[label])
                    .inc_by(counts.events[i]);
            }
            if counts.errors[i] > 0 {
                *self.errors.entry(label.into()).or_default() += counts.errors[i];
            }
        }
        self.emit();
        Ok(true)
    }

    /// Writes the alerts the detector opened and closed.
    fn emit(&mut self) {
        let new = self.det.take_new();
        let closed = self.det.take_closed();
        for (a, resolved) in new
            .iter()
            .map(|a| (a, false))
            .chain(closed.iter().map(|a| (a, true)))
        {
            let r = AlertRecord::new(a, resolved, self.s.runbook_url(a.runbook))
                .with_receivers(self.s.receivers(&a.stack));
            if !resolved {
                ACCESS_METRICS
                    .alerts
                    .with_label_values(&[a.rule_id, a.severity.as_str()])
                    .inc();
            }
            match self.alerts.write(&r) {
                Ok(true) => {
                    tracing::info!(
                        id = %r.id, rule = %r.rule, severity = %r.severity, actor = %r.actor,
                        status = %r.status, count = r.count, "access alert"
                    );
                    // Only what is new to the alert file: a restart never posts an Event twice.
                    if let Some(k) = &self.kube_events {
                        k.send(&r);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    // Counted and logged; the alert still reaches Alertmanager.
                    AccessEvent::AlertNotWritten {
                        reason: e.reason(),
                        error: &e,
                    }
                    .emit();
                }
            }
            if let Some(am) = &self.am {
                am.send(r);
            }
        }
    }

    /// Syncs the chain and the alert file and stores the checkpoint.
    pub fn checkpoint(&mut self) -> Result<(), AccessError> {
        let now = kenko_intake::clock::now().timestamp();
        let chain_len = self.chain.sync(now)?;
        let alert_file_len = self.alerts.sync()?;
        let mut cp = Checkpoint {
            format: FORMAT,
            written_at: now,
            events: self.events.clone(),
            errors: self.errors.clone(),
            chain_len,
            alert_file_len,
            detector: Some(self.det.save_state()),
            ..Default::default()
        };
        for li in &self.lines {
            let label = source_label(li.source).to_string();
            cp.lines.insert(label.clone(), li.pos.clone());
            cp.paths
                .insert(label, li.path.to_string_lossy().into_owned());
        }
        for (path, li) in &self.pods {
            cp.pod_logs
                .insert(path.to_string_lossy().into_owned(), li.pos.clone());
        }
        if let Some(ct) = &self.ct {
            cp.cloudtrail_done = ct.done.clone();
        }
        let path = self.s.checkpoint_path();
        cp.store(&path).map_err(|e| match e {
            AccessError::Checkpoint { path, message } => {
                AccessError::CheckpointWrite { path, message }
            }
            e => e,
        })?;
        self.chain.committed(chain_len);
        self.alerts.committed();
        self.last_checkpoint = Instant::now();
        ACCESS_METRICS.last_checkpoint.set(now);
        ACCESS_METRICS
            .chain_undigested
            .set(self.chain.undigested() as i64);
        self.refresh_alertmanager();
        Ok(())
    }

    fn update_lag(&mut self) {
        let mut behind = [false; 3];
        for li in self.lines.iter().chain(self.pods.values()) {
            behind[src_index(li.source)] |= !li.at_end;
        }
        if let Some(ct) = &self.ct {
            behind[2] |= ct.pending > 0;
        }
        for src in SOURCES {
            let i = src_index(src);
            let lag = if behind[i] {
                self.behind_since[i]
                    .get_or_insert_with(Instant::now)
                    .elapsed()
            } else {
                self.behind_since[i] = None;
                Duration::ZERO
            };
            ACCESS_METRICS
                .lag
                .with_label_values(&[source_label(src)])
                .set(lag.as_secs() as i64);
        }
    }

    /// Follows the inputs until `stop` is set, checkpointing at intervals and at the end.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), AccessError> {
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher = notify::recommended_watcher(move |_ev: notify::Result<notify::Event>| {
            let _ = tx.send(());
        })
        .ok();
        if let Some(w) = watcher.as_mut() {
            use notify::{RecursiveMode, Watcher};
            let mut dirs: Vec<(PathBuf, RecursiveMode)> = self
                .lines
                .iter()
                .filter_map(|l| l.path.parent().map(Path::to_path_buf))
                .map(|d| (d, RecursiveMode::NonRecursive))
                .collect();
            if let Some(ct) = &self.ct {
                dirs.push((ct.root.clone(), RecursiveMode::Recursive));
            }
            for (d, mode) in dirs {
                if let Err(e) = w.watch(&d, mode) {
                    // Polling still finds everything, only later.
                    tracing::warn!(dir = %d.display(), error = %e, "access monitor: cannot watch; polling only");
                }
            }
        }
        ACCESS_METRICS.running.set(1);
        let result = (|| {
            while !stop.load(Ordering::SeqCst) {
                if let Some((feed, opened)) = &self.feed {
                    if feed.generation() != *opened {
                        // The stacks changed: checkpoint and reopen with them.
                        break;
                    }
                }
                let busy = self.step()?;
                self.update_lag();
                if self.last_checkpoint.elapsed() >= self.s.checkpoint_interval {
                    self.checkpoint()?;
                }
                if !busy {
                    match rx.recv_timeout(self.s.poll_interval) {
                        Ok(()) => while rx.try_recv().is_ok() {},
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            std::thread::sleep(self.s.poll_interval)
                        }
                    }
                }
            }
            self.checkpoint()
        })();
        ACCESS_METRICS.running.set(0);
        if let Some(am) = self.am.take() {
            am.stop();
        }
        result
    }
}

#[cfg(feature = "cloud")]
/// A cloud input's reader (the CloudTrail and CloudWatch downloaders): a thread with its own
/// runtime that builds its client once and calls `step(runtime, client, reading)` every `poll`
/// until `stop`; `reading` is false (and the thread looks again every half second) while
/// another node's agent holds the cloud Lease ([`AccessSettings::reads_cloud`]).
pub(crate) fn spawn_cloud_reader<C: 'static>(
    name: &'static str,
    s: &AccessSettings,
    poll: Duration,
    stop: Arc<AtomicBool>,
    client: impl FnOnce(&tokio::runtime::Runtime) -> C + Send + 'static,
    mut step: impl FnMut(&tokio::runtime::Runtime, &C, bool) + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    let gate = s.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, input = name, "cannot start the input's runtime");
                    return;
                }
            };
            let client = client(&rt);
            while !stop.load(Ordering::SeqCst) {
                if !gate.reads_cloud() {
                    // Another node's agent holds the cloud Lease and reads it; look again
                    // shortly (this agent takes over where its own position stands).
                    step(&rt, &client, false);
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                step(&rt, &client, true);
                let until = Instant::now() + poll;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100).min(poll));
                }
            }
        })
        .ok()
}

/// Forces the registration of the access metrics (so they show before the first event).
struct LazyMetrics;

impl LazyMetrics {
    fn touch() {
        let m = &*ACCESS_METRICS;
        for src in SOURCES {
            m.events.with_label_values(&[source_label(src)]);
            m.lag.with_label_values(&[source_label(src)]);
        }
    }
}

/// Runs the monitor until `stop`, reopening it from its checkpoint after any failure (after a
/// pause that doubles up to a minute): a failure never loses or double-counts an event.
pub fn run_supervised(
    s: AccessSettings,
    stop: &AtomicBool,
    kube_events: Option<kube_events::EventSink>,
    feed: Option<Arc<StackFeed>>,
) -> Result<(), AccessError> {
    let downloader_stop = Arc::new(AtomicBool::new(false));
    // Without the cloud feature the settings refuse the cloud inputs, so there is none to start.
    #[cfg(feature = "cloud")]
    let downloaders: Vec<_> = [
        s3input::spawn(&s, downloader_stop.clone()),
        cwinput::spawn(&s, downloader_stop.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    #[cfg(not(feature = "cloud"))]
    let downloaders: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let result = supervise(&s, stop, kube_events, feed);
    downloader_stop.store(true, Ordering::SeqCst);
    for d in downloaders {
        let _ = d.join();
    }
    result
}

fn supervise(
    s: &AccessSettings,
    stop: &AtomicBool,
    kube_events: Option<kube_events::EventSink>,
    feed: Option<Arc<StackFeed>>,
) -> Result<(), AccessError> {
    let mut pause = Duration::from_secs(1);
    loop {
        let opened = match &feed {
            None => Ok((s.clone(), None)),
            Some(f) => {
                let (stacks, generation) = f.current();
                s.with_stacks(stacks)
                    .map(|s| (s, Some((f.clone(), generation))))
                    .map_err(AccessError::from)
            }
        };
        let outcome = opened.and_then(|(s, feed)| {
            let stacks = s.stacks.len();
            let mut m = Monitor::open(s)?;
            m.kube_events = kube_events.clone();
            if feed.is_some() {
                tracing::info!(
                    stacks,
                    "access monitor: watching the cluster's HealthStacks"
                );
            }
            m.feed = feed;
            m.run(stop)
        });
        match outcome {
            Ok(()) if stop.load(Ordering::SeqCst) || feed.is_none() => return Ok(()),
            // The stacks changed: reopen at once with them.
            Ok(()) => pause = Duration::from_secs(1),
            // Configuration problems do not heal by waiting.
            Err(e @ (AccessError::NotConfigured(_) | AccessError::Settings(_))) => return Err(e),
            Err(e) => {
                AccessEvent::MonitorFailed {
                    reason: e.reason(),
                    error: &e,
                    retry_in: pause,
                }
                .emit();
                let until = Instant::now() + pause;
                while Instant::now() < until {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
}
