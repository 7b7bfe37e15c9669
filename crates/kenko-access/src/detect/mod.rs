//! Every detection rule in one [`Detector`], fed events in time order.
//!
//! | rule | fires when | severity |
//! |---|---|---|
//! | `access.bulk_read` | a staff member touched more distinct residents in a sliding window (default 60 min) than `bulk_threshold` (300), or, once their baseline is learned, more than `bulk_baseline_factor` (4) times their usual daily peak (and at least `bulk_baseline_min`, 100) | warning |
//! | `access.export_volume` | records exported or printed by one person in one JST day exceed `export_records_per_day` (1,000) | warning |
//! | `access.off_hours` | health-system use outside office hours of a business day (weekend, holiday, 29 Dec–3 Jan, or more than `off_hours_grace_before_min` (60) before the start / `off_hours_grace_after_min` (120) after the end) | warning |
//! | `access.retired_account` | any event by an account the roster marks retired | critical |
//! | `access.unknown_account` | any event (except a failed login) by a staff or operator account not in the roster | critical |
//! | `access.unregistered_terminal` | health-system use from a terminal not registered for that person, or with no terminal | warning |
//! | `access.outside_caseload` | a resident outside the person's caseload (district) read or changed without a case reference | warning |
//! | `access.failed_login_burst` | `failed_login_count` (5) failed logins of one account within `failed_login_window_secs` (600 s) | warning |
//! | `access.privilege_change` | by a person or the provider: an RBAC change, an IAM change, exec into a database pod, a secret read (people only) | warning |
//! | `access.provider_data_read` | a cloud operator or provider principal reads business data: an S3 object in a records bucket, a KMS Decrypt with a records key, or any use of the health system by an operator | critical |
//! | `access.volume_anomaly` | a person's events in one hour exceed their learned hour-of-week baseline (after a `volume_warmup_days` (14) warm-up) | warning |
//!
//! Account checks (retired, unknown, terminal, off-hours, provider read, privilege) look at
//! every outcome, because an attempt is what matters; volumes (bulk, export, caseload, volume
//! anomaly) count successful actions only.
//!
//! Alerts carry the rule, severity, actor, a window, counts and the runbook, never a resident
//! token or any other personal value. A firing for the same (rule, actor) within
//! `group_interval_secs` of the last one updates that alert (its count, window end and number
//! of firings) instead of raising a new one.
//!
//! Memory is bounded: per actor, a per-minute ring for the sliding window and at most
//! `distinct_cap` resident hashes, 168 hour-of-week slots and a few counters; at most
//! `max_actors` actors (any beyond share one overflow actor, `(other)`).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};

use rustc_hash::{FxBuildHasher, FxHashMap};
use serde::{Deserialize, Serialize};

use crate::calendar::{jst_day, jst_second_of_day, weekday_of_days, Calendar};
use crate::event::{glob, matches_any, Action, ActorKind, Event, Outcome, Source};
use crate::roster::{PersonKind, Roster};

mod rules;
mod state;
#[cfg(test)]
mod tests;

use crate::{Rule, Severity};
pub use state::{DetectorState, SavedAlert, StateError, DETAILS};

/// Thresholds; every default is documented on its field and in the runbooks.
#[derive(Clone, Debug)]
pub struct Config {
    /// Sliding window for distinct residents, minutes. Default 60.
    pub bulk_window_minutes: u32,
    /// Distinct residents per window that always fire. Default 300.
    pub bulk_threshold: u32,
    /// Fire when distinct residents per window exceed this many times the person's learned
    /// daily peak. Default 4.0.
    pub bulk_baseline_factor: f32,
    /// ... but never below this many distinct residents. Default 100.
    pub bulk_baseline_min: u32,
    /// Active days before the personal bulk baseline is used. Default 5.
    pub bulk_baseline_days: u32,
    /// Most resident hashes kept per person (beyond it the count saturates; it is above every
    /// threshold by then). Default 4096.
    pub distinct_cap: u32,
    /// Records exported or printed per person per JST day that fire. Default 1000.
    pub export_records_per_day: u64,
    /// Minutes before office hours that still count as normal (early arrivals). Default 60.
    pub off_hours_grace_before_min: u32,
    /// Minutes after office hours that still count as normal (overtime). Default 120.
    pub off_hours_grace_after_min: u32,
    /// Failed logins that make a burst. Default 5.
    pub failed_login_count: u32,
    /// ... within this many seconds. Default 600.
    pub failed_login_window_secs: i64,
    /// Days from a person's first activity before volume anomalies are raised. Default 14.
    pub volume_warmup_days: u32,
    /// ... and at least this many active days. Default 5.
    pub volume_min_active_days: u32,
    /// An hour fires above `volume_factor` × its expected count. Default 3.0.
    pub volume_factor: f32,
    /// ... and above the slot's mean + `volume_sigmas` standard deviations. Default 5.0.
    pub volume_sigmas: f32,
    /// The expected count of a slot is at least this share of the person's busy-hour rate, so
    /// a first evening of overtime is not an anomaly. Default 0.5.
    pub volume_floor: f32,
    /// ... and an hour never fires below this many events. Default 100.
    pub volume_min_events: u32,
    /// S3 buckets holding business data (glob patterns, `*` anywhere). Default: the names
    /// kenko's Terraform gives them, `*-records-*` (`NAME-records-ACCOUNT-REGION` and its
    /// Osaka replica) and `*-intake-*` (the deliveries, with names and My Numbers), and the
    /// older `kenko-records*`, `kenko-backup*`.
    pub records_buckets: Vec<String>,
    /// KMS keys protecting business data (key ARN patterns). Default `*` (every key).
    pub records_kms_keys: Vec<String>,
    /// Database pods (`namespace/name` patterns; a pattern without `/` matches the name in any
    /// namespace). Default: the controller's name for a stack's database pod, `*-db-*`
    /// (`STACK-db-0`), and `postgres*`, `kenko-db*`.
    pub db_pods: Vec<String>,
    /// The HealthStacks watched (in the cluster: one per HealthStack, from its spec and the
    /// names the controller gives its children). Their patterns add to the ones above, alerts
    /// name the stack an event concerns, and a stack's office hours judge its own staff.
    pub stacks: Vec<StackScope>,
    /// Check Kubernetes and AWS people against the roster too. Default true.
    pub check_operators: bool,
    /// Repeated firings for one (rule, actor) within this many seconds update one alert.
    /// Default 4 hours.
    pub group_interval_secs: i64,
    /// Most actors tracked. Default 65,536.
    pub max_actors: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bulk_window_minutes: 60,
            bulk_threshold: 300,
            bulk_baseline_factor: 4.0,
            bulk_baseline_min: 100,
            bulk_baseline_days: 5,
            distinct_cap: 4096,
            export_records_per_day: 1000,
            off_hours_grace_before_min: 60,
            off_hours_grace_after_min: 120,
            failed_login_count: 5,
            failed_login_window_secs: 600,
            volume_warmup_days: 14,
            volume_min_active_days: 5,
            volume_factor: 3.0,
            volume_sigmas: 5.0,
            volume_floor: 0.5,
            volume_min_events: 100,
            records_buckets: vec![
                "*-records-*".into(),
                "*-intake-*".into(),
                "kenko-records*".into(),
                "kenko-backup*".into(),
            ],
            records_kms_keys: vec!["*".into()],
            db_pods: vec!["*-db-*".into(), "postgres*".into(), "kenko-db*".into()],
            stacks: Vec::new(),
            check_operators: true,
            group_interval_secs: 4 * 3600,
            max_actors: 65_536,
        }
    }
}

/// One HealthStack as the monitor knows it: where its data is and what its pods are called.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackScope {
    /// `namespace/name`: what alerts name.
    pub stack: String,
    pub namespace: String,
    /// Its database pods (`namespace/name` globs, e.g. `hachioji/hachioji-db-*`).
    pub db_pods: Vec<String>,
    /// Where its records are: `bucket` or `bucket/prefix` (an S3 event on that bucket under
    /// that key prefix is the stack's).
    pub records: Vec<String>,
    /// Its KMS keys (ARN globs).
    pub kms_keys: Vec<String>,
    /// Its office hours (the default calendar's when None).
    pub office_hours: Option<crate::calendar::OfficeHours>,
}

impl StackScope {
    fn holds_object(&self, bucket: &str, key: Option<&str>) -> bool {
        self.records.iter().any(|r| match r.split_once('/') {
            None => glob(r, bucket),
            Some((b, prefix)) => {
                glob(b, bucket) && key.is_some_and(|k| k.starts_with(prefix.trim_end_matches('*')))
            }
        })
    }

    fn holds_bucket(&self, bucket: &str) -> bool {
        self.records
            .iter()
            .any(|r| glob(r.split_once('/').map_or(r.as_str(), |(b, _)| b), bucket))
    }
}

/// One alert: counts only, never a personal value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub rule_id: &'static str,
    #[serde(skip)]
    pub rule: Rule,
    pub severity: Severity,
    /// The account (staff id, Kubernetes user, AWS principal).
    pub actor: String,
    /// The HealthStack (`namespace/name`) the events concern; empty when none can be told
    /// (an IAM change, a cluster-wide role).
    pub stack: String,
    /// A fixed word that narrows the rule (e.g. `rbac_change`, `s3_object_read`, `print`).
    pub detail: &'static str,
    /// UTC epoch seconds.
    pub window_start: i64,
    pub window_end: i64,
    /// What was counted: distinct residents, records, events or failed logins.
    pub count: u64,
    /// The threshold the count exceeded (0 for rules where any event fires).
    pub threshold: u64,
    /// How many firings this alert groups.
    pub firings: u64,
    /// `runbooks/access-*.md`.
    pub runbook: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Agg {
    /// The count is a level (distinct residents, records in a day): keep the highest.
    Max,
    /// The count is events: add them up.
    Sum,
}

struct Group {
    alert: Alert,
    last: i64,
}

/// Distinct residents in a sliding window, per minute, with at most `cap` hashes.
struct DistinctWindow {
    last: FxHashMap<u64, u32>,
    ring: Box<[u32]>,
    head: u32,
    in_window: u32,
}

impl DistinctWindow {
    fn new(minutes: u32) -> Self {
        DistinctWindow {
            last: FxHashMap::default(),
            ring: vec![0; minutes.max(1) as usize].into_boxed_slice(),
            head: 0,
            in_window: 0,
        }
    }

    fn advance(&mut self, minute: u32) {
        if minute <= self.head {
            return;
        }
        let w = self.ring.len() as u32;
        if minute - self.head >= w {
            self.ring.fill(0);
            self.in_window = 0;
        } else {
            for m in self.head + 1..=minute {
                let s = (m % w) as usize;
                self.in_window -= self.ring[s];
                self.ring[s] = 0;
            }
        }
        self.head = minute;
    }

    fn sweep(&mut self) {
        let (w, head) = (self.ring.len() as u32, self.head);
        self.last.retain(|_, m| *m + w > head);
    }

    /// Records a resident; returns the distinct residents in the window.
    fn insert(&mut self, h: u64, minute: u32, cap: u32) -> u32 {
        self.advance(minute);
        let minute = self.head;
        let w = self.ring.len() as u32;
        match self.last.get_mut(&h) {
            Some(m) if *m + w > minute => {
                if *m != minute {
                    self.ring[(*m % w) as usize] -= 1;
                    self.ring[(minute % w) as usize] += 1;
                    *m = minute;
                }
            }
            Some(m) => {
                *m = minute;
                self.ring[(minute % w) as usize] += 1;
                self.in_window += 1;
            }
            None => {
                if self.last.len() >= cap as usize {
                    self.sweep();
                }
                if self.last.len() < cap as usize {
                    self.last.insert(h, minute);
                    self.ring[(minute % w) as usize] += 1;
                    self.in_window += 1;
                }
            }
        }
        if self.last.len() > 2 * self.in_window as usize + 1024 {
            self.sweep();
        }
        self.in_window
    }
}

#[derive(Clone, Copy, Default)]
struct Slot {
    n: u16,
    mean: f32,
    var: f32,
}

impl Slot {
    fn learn(&mut self, x: f32) {
        self.n = self.n.saturating_add(1);
        let diff = x - self.mean;
        if self.n <= 4 {
            let n = f32::from(self.n);
            self.mean += diff / n;
            self.var = ((n - 1.0) * self.var + diff * (x - self.mean)) / n;
        } else {
            const A: f32 = 0.25;
            let incr = A * diff;
            self.mean += incr;
            self.var = (1.0 - A) * (self.var + diff * incr);
        }
    }
}

/// Hour-of-week baseline of one person.
struct Volume {
    first_day: i64,
    active_days: u32,
    hours: [u32; 24],
    slots: Box<[Slot; 168]>,
    /// EWMA of the mean of the day's four busiest hours.
    busy: f32,
    cur_hour: u32,
    cur_limit: u32,
}

struct ActorState {
    id: Box<str>,
    person: Option<u32>,
    day: i64,
    active_today: bool,
    distinct: Option<Box<DistinctWindow>>,
    day_peak: u32,
    bulk_base: f32,
    bulk_days: u32,
    export_sum: u64,
    /// The day's export volume already raised an alert (later exports only update it).
    export_fired: bool,
    fails: VecDeque<i64>,
    vol: Option<Box<Volume>>,
}

/// All rules over one stream of events.
pub struct Detector {
    cfg: Config,
    roster: Roster,
    /// The calendar of each stack index (0: events of no stack).
    cals: Vec<Calendar>,
    /// Stack names by index (0 is "": no stack); `cfg.stacks[i]` is index `i + 1`.
    stacks: Vec<Box<str>>,
    /// The stack of the event being observed.
    cur_stack: u16,
    ids: FxHashMap<Box<str>, u32>,
    actors: Vec<ActorState>,
    groups: FxHashMap<GroupKey, Group>,
    new: Vec<Alert>,
    closed: Vec<Alert>,
    now: i64,
    next_expiry: i64,
    hasher: FxBuildHasher,
    events: u64,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("actors", &self.actors.len())
            .field("open_alerts", &self.groups.len())
            .field("events", &self.events)
            .finish()
    }
}

const OVERFLOW: &str = "(other)";

/// Most stack names a detector keeps apart (names of stacks gone since a checkpoint included).
const MAX_STACKS: usize = 4096;

/// One open alert per rule, actor and stack.
type GroupKey = (Rule, u32, u16);

impl Detector {
    pub fn new(cfg: Config, roster: Roster, cal: Calendar) -> Detector {
        let mut cals = vec![cal.clone()];
        let mut stacks: Vec<Box<str>> = vec!["".into()];
        for s in &cfg.stacks {
            cals.push(s.office_hours.map_or_else(|| cal.clone(), Calendar::new));
            stacks.push(s.stack.as_str().into());
        }
        Detector {
            cfg,
            roster,
            cals,
            stacks,
            cur_stack: 0,
            ids: FxHashMap::default(),
            actors: Vec::new(),
            groups: FxHashMap::default(),
            new: Vec::new(),
            closed: Vec::new(),
            now: i64::MIN,
            next_expiry: i64::MIN,
            hasher: FxBuildHasher,
            events: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Events seen.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Alerts opened since the last call (their state when they opened).
    pub fn take_new(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.new)
    }

    /// Alerts whose group closed (no firing for `group_interval_secs`) since the last call,
    /// in their final state.
    pub fn take_closed(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.closed)
    }

    /// The current state of every open alert (re-sent to Alertmanager while active).
    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.groups.values().map(|g| &g.alert)
    }

    /// Closes every open alert (end of input) and returns all closed alerts not yet taken.
    pub fn finish(&mut self) -> Vec<Alert> {
        let mut open: Vec<Group> = self.groups.drain().map(|(_, g)| g).collect();
        open.sort_by(|a, b| {
            (a.alert.window_start, a.alert.rule, &a.alert.actor).cmp(&(
                b.alert.window_start,
                b.alert.rule,
                &b.alert.actor,
            ))
        });
        self.closed.extend(open.into_iter().map(|g| g.alert));
        self.take_closed()
    }

    /// The calendar of the event being observed (its stack's office hours).
    pub(super) fn cal(&self) -> &Calendar {
        &self.cals[usize::from(self.cur_stack).min(self.cals.len() - 1)]
    }

    /// The index of a stack name (added when new, up to [`MAX_STACKS`]).
    pub(super) fn stack_index(&mut self, name: &str) -> u16 {
        if let Some(i) = self.stacks.iter().position(|s| &**s == name) {
            return i as u16;
        }
        if self.stacks.len() >= MAX_STACKS {
            return 0;
        }
        self.stacks.push(name.into());
        (self.stacks.len() - 1) as u16
    }

    /// Which stack an event concerns: the one its input belongs to, else the one whose
    /// namespace (a pod, a secret), bucket and key prefix, or KMS key it touches.
    fn resolve_stack(&mut self, ev: &Event<'_>) -> u16 {
        if let Some(s) = ev.stack.as_deref() {
            return self.stack_index(s);
        }
        let Some(res) = ev.resource.as_deref() else {
            return 0;
        };
        let scopes = &self.cfg.stacks;
        let found = match ev.source {
            Source::K8sAudit => match res.split_once('/') {
                // `namespace/name`; an RBAC `resource/name` has no stack namespace.
                Some((ns, _)) => scopes
                    .iter()
                    .position(|s| s.namespace == ns && s.db_pods.iter().any(|p| glob(p, res)))
                    .or_else(|| scopes.iter().position(|s| s.namespace == ns)),
                None => None,
            },
            Source::CloudTrail => match ev.action {
                Action::KmsDecrypt => scopes
                    .iter()
                    .position(|s| s.kms_keys.iter().any(|p| glob(p, res))),
                _ => scopes
                    .iter()
                    .position(|s| s.holds_object(res, ev.object.as_deref()))
                    .or_else(|| {
                        // A bucket of one stack only, whatever the key.
                        let mut m = scopes
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.holds_bucket(res));
                        match (m.next(), m.next()) {
                            (Some((i, _)), None) => Some(i),
                            _ => None,
                        }
                    }),
            },
            Source::Health => None,
        };
        found.map_or(0, |i| (i + 1) as u16)
    }

    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.ids.get(id) {
            return i;
        }
        let id = if self.actors.len() >= self.cfg.max_actors {
            if let Some(&i) = self.ids.get(OVERFLOW) {
                return i;
            }
            OVERFLOW
        } else {
            id
        };
        let i = self.actors.len() as u32;
        let person = self.roster.get(id).map(|(p, _)| p);
        self.actors.push(ActorState {
            id: id.into(),
            person,
            day: i64::MIN,
            active_today: false,
            distinct: None,
            day_peak: 0,
            bulk_base: 0.0,
            bulk_days: 0,
            export_sum: 0,
            export_fired: false,
            fails: VecDeque::new(),
            vol: None,
        });
        self.ids.insert(id.into(), i);
        i
    }

    #[allow(clippy::too_many_arguments)]
    fn fire(
        &mut self,
        rule: Rule,
        actor: u32,
        detail: &'static str,
        start: i64,
        end: i64,
        count: u64,
        threshold: u64,
        agg: Agg,
    ) {
        let t = end;
        let key = (rule, actor, self.cur_stack);
        if let Some(g) = self.groups.get_mut(&key) {
            if t - g.last <= self.cfg.group_interval_secs {
                let a = &mut g.alert;
                a.count = match agg {
                    Agg::Max => a.count.max(count),
                    Agg::Sum => a.count + count,
                };
                a.threshold = a.threshold.max(threshold);
                a.window_end = a.window_end.max(end);
                a.firings += 1;
                g.last = g.last.max(t);
                return;
            }
            let g = self.groups.remove(&key).expect("looked up above");
            self.closed.push(g.alert);
        }
        let alert = Alert {
            rule_id: rule.id(),
            rule,
            severity: rule.severity(),
            actor: self.actors[actor as usize].id.to_string(),
            stack: self.stacks[usize::from(self.cur_stack)].to_string(),
            detail,
            window_start: start,
            window_end: end,
            count,
            threshold,
            firings: 1,
            runbook: rule.runbook(),
        };
        self.new.push(alert.clone());
        self.groups.insert(key, Group { alert, last: t });
    }

    fn expire(&mut self) {
        let limit = self.now - self.cfg.group_interval_secs;
        let mut done: Vec<GroupKey> = self
            .groups
            .iter()
            .filter(|(_, g)| g.last < limit)
            .map(|(k, _)| *k)
            .collect();
        done.sort_unstable();
        for k in done {
            let g = self.groups.remove(&k).expect("collected from the map");
            self.closed.push(g.alert);
        }
    }

    /// Feeds one event. Events should come in time order; a late one is judged at its own
    /// time but cannot move windows back.
    pub fn observe(&mut self, ev: &Event<'_>) {
        self.events += 1;
        if ev.time > self.now {
            self.now = ev.time;
            if self.now >= self.next_expiry {
                self.expire();
                self.next_expiry = self.now + 60;
            }
        }
        self.cur_stack = self.resolve_stack(ev);
        let a = self.intern(&ev.actor);
        let day = jst_day(ev.time);
        let cur = self.actors[a as usize].day;
        if cur == i64::MIN || day > cur {
            self.roll_day(a, day);
        }
        match ev.actor_kind {
            ActorKind::Staff => self.staff(ev, a, day),
            ActorKind::CloudOperator => self.operator(ev, a, day),
            ActorKind::Provider => self.provider(ev, a),
            ActorKind::Service => {}
        }
    }
}
