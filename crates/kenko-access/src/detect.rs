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
use crate::event::{
    matches_any, parse_cloudtrail_line, parse_health_line, parse_k8s_line, Action, ActorKind,
    Event, Outcome, ParseError, Principals, Source,
};
use crate::roster::{PersonKind, Roster};
use crate::{Rule, Severity};

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
    /// S3 buckets holding business data (patterns: exact, or prefix ending in `*`).
    /// Default `kenko-records*`, `kenko-backup*`.
    pub records_buckets: Vec<String>,
    /// KMS keys protecting business data (key ARN patterns). Default `*` (every key).
    pub records_kms_keys: Vec<String>,
    /// Database pods (`namespace/name` patterns; a pattern without `/` matches the name in any
    /// namespace). Default `postgres*`, `kenko-db*`.
    pub db_pods: Vec<String>,
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
            records_buckets: vec!["kenko-records*".into(), "kenko-backup*".into()],
            records_kms_keys: vec!["*".into()],
            db_pods: vec!["postgres*".into(), "kenko-db*".into()],
            check_operators: true,
            group_interval_secs: 4 * 3600,
            max_actors: 65_536,
        }
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
    cal: Calendar,
    ids: FxHashMap<Box<str>, u32>,
    actors: Vec<ActorState>,
    groups: FxHashMap<(Rule, u32), Group>,
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

impl Detector {
    pub fn new(cfg: Config, roster: Roster, cal: Calendar) -> Detector {
        Detector {
            cfg,
            roster,
            cal,
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
        if let Some(g) = self.groups.get_mut(&(rule, actor)) {
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
            let g = self.groups.remove(&(rule, actor)).unwrap();
            self.closed.push(g.alert);
        }
        let alert = Alert {
            rule_id: rule.id(),
            rule,
            severity: rule.severity(),
            actor: self.actors[actor as usize].id.to_string(),
            detail,
            window_start: start,
            window_end: end,
            count,
            threshold,
            firings: 1,
            runbook: rule.runbook(),
        };
        self.new.push(alert.clone());
        self.groups.insert((rule, actor), Group { alert, last: t });
    }

    fn expire(&mut self) {
        let limit = self.now - self.cfg.group_interval_secs;
        let mut done: Vec<(Rule, u32)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.last < limit)
            .map(|(k, _)| *k)
            .collect();
        done.sort_unstable();
        for k in done {
            let g = self.groups.remove(&k).unwrap();
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

    fn account_checks(&mut self, ev: &Event<'_>, a: u32, day: i64) -> bool {
        match self.actors[a as usize].person {
            None => {
                if ev.action != Action::LoginFailed {
                    self.fire(
                        Rule::UnknownAccount,
                        a,
                        "not_in_roster",
                        ev.time,
                        ev.time,
                        1,
                        0,
                        Agg::Sum,
                    );
                }
                false
            }
            Some(p) => {
                if self.roster.person(p).is_retired_on_day(day) {
                    self.fire(
                        Rule::RetiredAccount,
                        a,
                        "retired",
                        ev.time,
                        ev.time,
                        1,
                        0,
                        Agg::Sum,
                    );
                }
                true
            }
        }
    }

    fn staff(&mut self, ev: &Event<'_>, a: u32, day: i64) {
        let known = self.account_checks(ev, a, day);
        if ev.action == Action::LoginFailed {
            self.failed_login(ev, a);
            return;
        }
        let t = ev.time;
        let mut is_operator = false;
        if known {
            let p = self.roster.person(self.actors[a as usize].person.unwrap());
            is_operator = p.kind == PersonKind::Operator;
            let registered = ev
                .terminal
                .as_deref()
                .is_some_and(|term| p.terminal_registered(term));
            let outside = ev.action.is_data()
                && ev.outcome == Outcome::Success
                && ev.case_ref.is_none()
                && ev.subject.is_some()
                && ev.district.as_deref().is_some_and(|d| !p.in_scope(d));
            if !registered {
                let detail = if ev.terminal.is_some() {
                    "unregistered"
                } else {
                    "no_terminal"
                };
                self.fire(Rule::UnregisteredTerminal, a, detail, t, t, 1, 0, Agg::Sum);
            }
            if outside {
                self.fire(
                    Rule::OutsideCaseload,
                    a,
                    "no_case_reference",
                    t,
                    t,
                    1,
                    0,
                    Agg::Sum,
                );
            }
        }
        if is_operator && ev.action.is_data() {
            self.fire(
                Rule::ProviderDataRead,
                a,
                "health_app",
                t,
                t,
                1,
                0,
                Agg::Sum,
            );
        }
        if !self.cal.is_within(
            t,
            self.cfg.off_hours_grace_before_min,
            self.cfg.off_hours_grace_after_min,
        ) {
            let detail = if self.cal.is_business_day(day) {
                "outside_office_hours"
            } else {
                "closed_day"
            };
            self.fire(Rule::OffHours, a, detail, t, t, 1, 0, Agg::Sum);
        }
        if !ev.action.is_data() || ev.outcome != Outcome::Success {
            return;
        }
        self.actors[a as usize].active_today = true;
        // Bulk reads: distinct residents in the sliding window.
        if let Some(subject) = ev.subject.as_deref() {
            let mut h = self.hasher.build_hasher();
            h.write(subject.as_bytes());
            let h = h.finish();
            let minute = (t.max(0) / 60) as u32;
            let cfg = &self.cfg;
            let st = &mut self.actors[a as usize];
            let n = st
                .distinct
                .get_or_insert_with(|| Box::new(DistinctWindow::new(cfg.bulk_window_minutes)))
                .insert(h, minute, cfg.distinct_cap);
            st.day_peak = st.day_peak.max(n);
            let limit = if st.bulk_days >= cfg.bulk_baseline_days {
                let rel = (cfg.bulk_baseline_factor * st.bulk_base).ceil() as u32;
                cfg.bulk_threshold.min(rel.max(cfg.bulk_baseline_min))
            } else {
                cfg.bulk_threshold
            };
            if n > limit {
                let w = i64::from(cfg.bulk_window_minutes) * 60;
                self.fire(
                    Rule::BulkRead,
                    a,
                    "distinct_residents",
                    t - w,
                    t,
                    u64::from(n),
                    u64::from(limit),
                    Agg::Max,
                );
            }
        }
        // Export and print volume per JST day.
        if matches!(ev.action, Action::Export | Action::Print) {
            let st = &mut self.actors[a as usize];
            st.export_sum += u64::from(ev.count);
            let sum = st.export_sum;
            if sum > self.cfg.export_records_per_day {
                let detail = if ev.action == Action::Export {
                    "export"
                } else {
                    "print"
                };
                let start = day * 86_400 - crate::calendar::JST_OFFSET_SECS;
                let thr = self.cfg.export_records_per_day;
                if std::mem::replace(&mut st.export_fired, true) {
                    // Already raised today: a later export updates the open alert only.
                    if let Some(g) = self.groups.get_mut(&(Rule::ExportVolume, a)) {
                        if t - g.last <= self.cfg.group_interval_secs {
                            g.alert.count = g.alert.count.max(sum);
                            g.alert.window_end = g.alert.window_end.max(t);
                            g.alert.firings += 1;
                            g.last = t;
                        }
                    }
                } else {
                    self.fire(Rule::ExportVolume, a, detail, start, t, sum, thr, Agg::Max);
                }
            }
        }
        // Volume against the hour-of-week baseline.
        self.volume(a, t, day);
    }

    fn slot_day(&self, day: i64) -> usize {
        if self.cal.is_weekday_closure(day) {
            6
        } else {
            weekday_of_days(day).index() as usize
        }
    }

    fn volume(&mut self, a: u32, t: i64, day: i64) {
        let h = jst_second_of_day(t) / 3600;
        let slot = self.slot_day(day) * 24 + h as usize;
        let cfg = &self.cfg;
        let st = &mut self.actors[a as usize];
        let v = st.vol.get_or_insert_with(|| {
            Box::new(Volume {
                first_day: day,
                active_days: 0,
                hours: [0; 24],
                slots: Box::new([Slot::default(); 168]),
                busy: 0.0,
                cur_hour: u32::MAX,
                cur_limit: u32::MAX,
            })
        });
        v.hours[h as usize] += 1;
        if v.cur_hour != h {
            v.cur_hour = h;
            let warm = day - v.first_day >= i64::from(cfg.volume_warmup_days)
                && v.active_days >= cfg.volume_min_active_days;
            v.cur_limit = if warm {
                let s = v.slots[slot];
                let base = s.mean.max(cfg.volume_floor * v.busy);
                let lim = (cfg.volume_factor * base)
                    .max(s.mean + cfg.volume_sigmas * s.var.max(0.0).sqrt())
                    .max(cfg.volume_min_events as f32);
                lim.ceil() as u32
            } else {
                u32::MAX
            };
        }
        let (n, limit) = (v.hours[h as usize], v.cur_limit);
        if n > limit {
            let start = t - i64::from(jst_second_of_day(t) % 3600);
            self.fire(
                Rule::VolumeAnomaly,
                a,
                "events_per_hour",
                start,
                t,
                u64::from(n),
                u64::from(limit),
                Agg::Max,
            );
        }
    }

    /// Closes the actor's day: learns baselines from an active day, resets daily counters.
    fn roll_day(&mut self, a: u32, day: i64) {
        let prev = self.actors[a as usize].day;
        let slot_day = (prev != i64::MIN).then(|| self.slot_day(prev));
        let st = &mut self.actors[a as usize];
        if st.active_today {
            let peak = st.day_peak as f32;
            st.bulk_base = if st.bulk_days == 0 {
                peak
            } else {
                st.bulk_base + 0.2 * (peak - st.bulk_base)
            };
            st.bulk_days += 1;
            if let (Some(v), Some(sd)) = (st.vol.as_mut(), slot_day) {
                for (h, &n) in v.hours.iter().enumerate() {
                    v.slots[sd * 24 + h].learn(n as f32);
                }
                let mut top = v.hours;
                top.sort_unstable_by(|x, y| y.cmp(x));
                let busy = top[..4].iter().sum::<u32>() as f32 / 4.0;
                v.busy = if v.active_days == 0 {
                    busy
                } else {
                    v.busy + 0.2 * (busy - v.busy)
                };
                v.active_days += 1;
            }
        }
        st.day = day;
        st.active_today = false;
        st.day_peak = 0;
        st.export_sum = 0;
        st.export_fired = false;
        if let Some(v) = st.vol.as_mut() {
            v.hours = [0; 24];
            v.cur_hour = u32::MAX;
        }
    }

    fn failed_login(&mut self, ev: &Event<'_>, a: u32) {
        let n = self.cfg.failed_login_count.max(1) as usize;
        let w = self.cfg.failed_login_window_secs;
        let t = ev.time;
        let st = &mut self.actors[a as usize];
        st.fails.push_back(t);
        while st.fails.len() > n.max(64) || st.fails.front().is_some_and(|&f| f <= t - w) {
            st.fails.pop_front();
        }
        let count = st.fails.len();
        if count >= n {
            let start = *st.fails.front().unwrap();
            self.fire(
                Rule::FailedLoginBurst,
                a,
                "failed_logins",
                start,
                t,
                count as u64,
                n as u64,
                Agg::Max,
            );
        }
    }

    fn operator(&mut self, ev: &Event<'_>, a: u32, day: i64) {
        if self.cfg.check_operators {
            self.account_checks(ev, a, day);
        }
        if ev.action == Action::LoginFailed {
            self.failed_login(ev, a);
            return;
        }
        let t = ev.time;
        let privilege = match ev.action {
            Action::RbacChange => Some("rbac_change"),
            Action::IamChange => Some("iam_change"),
            Action::SecretRead => Some("secret_read"),
            Action::PodExec if self.is_db_pod(ev.resource.as_deref()) => Some("db_pod_exec"),
            _ => None,
        };
        if let Some(detail) = privilege {
            self.fire(Rule::PrivilegeChange, a, detail, t, t, 1, 0, Agg::Sum);
        }
        self.data_read(ev, a);
    }

    fn provider(&mut self, ev: &Event<'_>, a: u32) {
        if ev.action == Action::LoginFailed {
            self.failed_login(ev, a);
            return;
        }
        if ev.action == Action::IamChange {
            let t = ev.time;
            self.fire(Rule::PrivilegeChange, a, "iam_change", t, t, 1, 0, Agg::Sum);
        }
        self.data_read(ev, a);
    }

    fn data_read(&mut self, ev: &Event<'_>, a: u32) {
        let detail = match ev.action {
            Action::ObjectRead
                if ev
                    .resource
                    .as_deref()
                    .is_some_and(|b| matches_any(&self.cfg.records_buckets, b)) =>
            {
                "s3_object_read"
            }
            Action::KmsDecrypt
                if matches_any(
                    &self.cfg.records_kms_keys,
                    ev.resource.as_deref().unwrap_or(""),
                ) =>
            {
                "kms_decrypt"
            }
            _ => return,
        };
        let t = ev.time;
        self.fire(Rule::ProviderDataRead, a, detail, t, t, 1, 0, Agg::Sum);
    }

    fn is_db_pod(&self, resource: Option<&str>) -> bool {
        let Some(r) = resource else { return false };
        let name = r.rsplit_once('/').map_or(r, |(_, n)| n);
        self.cfg.db_pods.iter().any(|p| {
            let target = if p.contains('/') { r } else { name };
            match p.strip_suffix('*') {
                Some(prefix) => target.starts_with(prefix),
                None => p == target,
            }
        })
    }
}

/// Every `detail` word an alert can carry (so a saved alert maps back to the same word).
pub const DETAILS: &[&str] = &[
    "not_in_roster",
    "retired",
    "unregistered",
    "no_terminal",
    "no_case_reference",
    "health_app",
    "outside_office_hours",
    "closed_day",
    "distinct_residents",
    "export",
    "print",
    "events_per_hour",
    "failed_logins",
    "rbac_change",
    "iam_change",
    "secret_read",
    "db_pod_exec",
    "s3_object_read",
    "kms_decrypt",
];

/// An alert as saved in a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedAlert {
    pub rule: String,
    pub actor: String,
    pub detail: String,
    pub window_start: i64,
    pub window_end: i64,
    pub count: u64,
    pub threshold: u64,
    pub firings: u64,
}

impl SavedAlert {
    fn from_alert(a: &Alert) -> SavedAlert {
        SavedAlert {
            rule: a.rule_id.to_string(),
            actor: a.actor.clone(),
            detail: a.detail.to_string(),
            window_start: a.window_start,
            window_end: a.window_end,
            count: a.count,
            threshold: a.threshold,
            firings: a.firings,
        }
    }

    fn to_alert(&self) -> Result<Alert, StateError> {
        let rule = Rule::from_id(&self.rule).ok_or(StateError("unknown rule id"))?;
        let detail = DETAILS
            .iter()
            .copied()
            .find(|d| *d == self.detail)
            .ok_or(StateError("unknown alert detail"))?;
        Ok(Alert {
            rule_id: rule.id(),
            rule,
            severity: rule.severity(),
            actor: self.actor.clone(),
            detail,
            window_start: self.window_start,
            window_end: self.window_end,
            count: self.count,
            threshold: self.threshold,
            firings: self.firings,
            runbook: rule.runbook(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SavedWindow {
    /// (resident hash, minute last seen); 64-bit hashes, never a token.
    last: Vec<(u64, u32)>,
    ring: Vec<u32>,
    head: u32,
    in_window: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SavedVolume {
    first_day: i64,
    active_days: u32,
    hours: Vec<u32>,
    /// (n, mean bits, var bits) per hour-of-week slot: floats as bits, so a restart
    /// continues with exactly the same baseline.
    slots: Vec<(u16, u32, u32)>,
    busy: u32,
    cur_hour: u32,
    cur_limit: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SavedActor {
    id: String,
    day: i64,
    active_today: bool,
    distinct: Option<SavedWindow>,
    day_peak: u32,
    bulk_base: u32,
    bulk_days: u32,
    export_sum: u64,
    export_fired: bool,
    fails: Vec<i64>,
    vol: Option<SavedVolume>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SavedGroup {
    actor: u32,
    last: i64,
    alert: SavedAlert,
}

/// Everything a [`Detector`] learned, for a checkpoint: restoring it with the same
/// configuration continues exactly where the saved detector stopped. The roster, calendar and
/// thresholds are not part of it (they come from the configuration at restart, and a changed
/// roster takes effect at once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    now: i64,
    next_expiry: i64,
    events: u64,
    actors: Vec<SavedActor>,
    groups: Vec<SavedGroup>,
    new: Vec<SavedAlert>,
    closed: Vec<SavedAlert>,
}

/// A saved state that does not fit this version (names what, never a value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("saved detector state: {0}")]
pub struct StateError(&'static str);

impl Detector {
    /// The detector's learned state (see [`DetectorState`]).
    pub fn save_state(&self) -> DetectorState {
        let actors = self
            .actors
            .iter()
            .map(|st| SavedActor {
                id: st.id.to_string(),
                day: st.day,
                active_today: st.active_today,
                distinct: st.distinct.as_ref().map(|w| {
                    let mut last: Vec<(u64, u32)> = w.last.iter().map(|(&h, &m)| (h, m)).collect();
                    last.sort_unstable();
                    SavedWindow {
                        last,
                        ring: w.ring.to_vec(),
                        head: w.head,
                        in_window: w.in_window,
                    }
                }),
                day_peak: st.day_peak,
                bulk_base: st.bulk_base.to_bits(),
                bulk_days: st.bulk_days,
                export_sum: st.export_sum,
                export_fired: st.export_fired,
                fails: st.fails.iter().copied().collect(),
                vol: st.vol.as_ref().map(|v| SavedVolume {
                    first_day: v.first_day,
                    active_days: v.active_days,
                    hours: v.hours.to_vec(),
                    slots: v
                        .slots
                        .iter()
                        .map(|s| (s.n, s.mean.to_bits(), s.var.to_bits()))
                        .collect(),
                    busy: v.busy.to_bits(),
                    cur_hour: v.cur_hour,
                    cur_limit: v.cur_limit,
                }),
            })
            .collect();
        let mut groups: Vec<SavedGroup> = self
            .groups
            .iter()
            .map(|(&(_, actor), g)| SavedGroup {
                actor,
                last: g.last,
                alert: SavedAlert::from_alert(&g.alert),
            })
            .collect();
        groups.sort_by(|a, b| (a.actor, &a.alert.rule).cmp(&(b.actor, &b.alert.rule)));
        DetectorState {
            now: self.now,
            next_expiry: self.next_expiry,
            events: self.events,
            actors,
            groups,
            new: self.new.iter().map(SavedAlert::from_alert).collect(),
            closed: self.closed.iter().map(SavedAlert::from_alert).collect(),
        }
    }

    /// A detector that continues from `state` with this configuration, roster and calendar.
    pub fn restore(
        cfg: Config,
        roster: Roster,
        cal: Calendar,
        state: &DetectorState,
    ) -> Result<Detector, StateError> {
        let mut d = Detector::new(cfg, roster, cal);
        d.now = state.now;
        d.next_expiry = state.next_expiry;
        d.events = state.events;
        for (i, s) in state.actors.iter().enumerate() {
            let distinct = match &s.distinct {
                // A changed window length starts the window afresh.
                Some(w) if w.ring.len() == d.cfg.bulk_window_minutes.max(1) as usize => {
                    Some(Box::new(DistinctWindow {
                        last: w.last.iter().copied().collect(),
                        ring: w.ring.clone().into_boxed_slice(),
                        head: w.head,
                        in_window: w.in_window,
                    }))
                }
                _ => None,
            };
            let vol = match &s.vol {
                Some(v) => {
                    let hours: [u32; 24] = v
                        .hours
                        .as_slice()
                        .try_into()
                        .map_err(|_| StateError("volume hours: expected 24"))?;
                    if v.slots.len() != 168 {
                        return Err(StateError("volume slots: expected 168"));
                    }
                    let mut slots = Box::new([Slot::default(); 168]);
                    for (slot, &(n, mean, var)) in slots.iter_mut().zip(&v.slots) {
                        *slot = Slot {
                            n,
                            mean: f32::from_bits(mean),
                            var: f32::from_bits(var),
                        };
                    }
                    Some(Box::new(Volume {
                        first_day: v.first_day,
                        active_days: v.active_days,
                        hours,
                        slots,
                        busy: f32::from_bits(v.busy),
                        cur_hour: v.cur_hour,
                        cur_limit: v.cur_limit,
                    }))
                }
                None => None,
            };
            let person = d.roster.get(&s.id).map(|(p, _)| p);
            d.ids.insert(s.id.as_str().into(), i as u32);
            d.actors.push(ActorState {
                id: s.id.as_str().into(),
                person,
                day: s.day,
                active_today: s.active_today,
                distinct,
                day_peak: s.day_peak,
                bulk_base: f32::from_bits(s.bulk_base),
                bulk_days: s.bulk_days,
                export_sum: s.export_sum,
                export_fired: s.export_fired,
                fails: s.fails.iter().copied().collect(),
                vol,
            });
        }
        for g in &state.groups {
            if g.actor as usize >= d.actors.len() {
                return Err(StateError("alert group of an unknown actor"));
            }
            let alert = g.alert.to_alert()?;
            d.groups.insert(
                (alert.rule, g.actor),
                Group {
                    alert,
                    last: g.last,
                },
            );
        }
        d.new = state
            .new
            .iter()
            .map(SavedAlert::to_alert)
            .collect::<Result<_, _>>()?;
        d.closed = state
            .closed
            .iter()
            .map(SavedAlert::to_alert)
            .collect::<Result<_, _>>()?;
        Ok(d)
    }

    /// Replaces the roster (HR changed it): every actor is looked up again, so a retirement
    /// counts from the next event on.
    pub fn set_roster(&mut self, roster: Roster) {
        for st in &mut self.actors {
            st.person = roster.get(&st.id).map(|(p, _)| p);
        }
        self.roster = roster;
    }
}

/// Parses in-memory inputs and feeds their events to the detector in time order (a k-way
/// merge; each input must itself be in time order). Returns the events fed. Stops at the first
/// line that cannot be parsed.
pub fn feed_slices<'a>(
    det: &mut Detector,
    inputs: &[(Source, &'a [u8])],
    principals: &Principals,
) -> Result<u64, ParseError> {
    struct Stream<'a> {
        source: Source,
        rest: &'a [u8],
        line_no: u64,
        head: Option<Event<'a>>,
    }
    fn advance<'a>(s: &mut Stream<'a>, p: &Principals) -> Result<(), ParseError> {
        s.head = None;
        while !s.rest.is_empty() {
            let end = s
                .rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(s.rest.len(), |i| i + 1);
            let (line, rest) = s.rest.split_at(end);
            s.rest = rest;
            s.line_no += 1;
            let ev = match s.source {
                Source::Health => parse_health_line(line, s.line_no)?,
                Source::K8sAudit => parse_k8s_line(line, s.line_no, p)?,
                Source::CloudTrail => parse_cloudtrail_line(line, s.line_no, p)?,
            };
            if ev.is_some() {
                s.head = ev;
                return Ok(());
            }
        }
        Ok(())
    }
    let mut streams: Vec<Stream<'a>> = inputs
        .iter()
        .map(|&(source, rest)| Stream {
            source,
            rest,
            line_no: 0,
            head: None,
        })
        .collect();
    for s in &mut streams {
        advance(s, principals)?;
    }
    let mut n = 0;
    loop {
        let next = streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.head.as_ref().map(|e| (e.time, i)))
            .min();
        let Some((_, i)) = next else { break };
        det.observe(streams[i].head.as_ref().unwrap());
        n += 1;
        advance(&mut streams[i], principals)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::calendar::{parse_rfc3339, Date};

    const ROSTER: &str = "\
id,role,status,retired_on,scope,terminals
N1,public_health_nurse,active,,D01,T1;T1b
N2,public_health_nurse,active,,D02,T2
SV,supervisor,active,,*,T3
OLD,clerk,retired,2026-10-31,D01,T4
OP1,operator,active,,,*
OP9,operator,retired,,,*
";

    fn detector() -> Detector {
        Detector::new(
            Config::default(),
            Roster::parse(ROSTER).unwrap(),
            Calendar::default(),
        )
    }

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    fn view(actor: &str, time: i64, resident: u32) -> Event<'static> {
        Event {
            source: Source::Health,
            time,
            actor: Cow::Owned(actor.to_string()),
            actor_kind: ActorKind::Staff,
            role: None,
            action: Action::View,
            subject: Some(Cow::Owned(format!("r{resident:08x}"))),
            district: Some(Cow::Borrowed(match actor {
                "N2" => "D02",
                _ => "D01",
            })),
            count: 1,
            case_ref: None,
            terminal: Some(Cow::Borrowed(match actor {
                "N1" => "T1",
                "N2" => "T2",
                "SV" => "T3",
                "OLD" => "T4",
                _ => "T0",
            })),
            outcome: Outcome::Success,
            resource: None,
        }
    }

    fn cloud(actor: &str, kind: ActorKind, time: i64, action: Action, res: &str) -> Event<'static> {
        Event {
            source: Source::CloudTrail,
            time,
            actor: Cow::Owned(actor.to_string()),
            actor_kind: kind,
            role: None,
            action,
            subject: None,
            district: None,
            count: 1,
            case_ref: None,
            terminal: None,
            outcome: Outcome::Success,
            resource: Some(Cow::Owned(res.to_string())),
        }
    }

    /// A normal working day of one person: login at 08:40, ~`per_hour` views of a few
    /// residents at a time in their caseload, lunch, a few prints, last event before 17:15.
    fn normal_day(
        actor: &str,
        date: Date,
        per_hour: u32,
        residents_from: u32,
    ) -> Vec<Event<'static>> {
        let base = date.jst_midnight_epoch();
        let mut out = Vec::new();
        let mut login = view(actor, base + 8 * 3600 + 40 * 60, 0);
        login.action = Action::Login;
        login.subject = None;
        out.push(login);
        let mut resident = residents_from;
        let mut k = 0u32;
        for hour in 9..17 {
            let n = if hour == 12 { per_hour / 4 } else { per_hour };
            for i in 0..n {
                let t = base + hour * 3600 + i64::from(i) * 3600 / i64::from(n);
                if k.rem_euclid(10) == 0 {
                    resident += 1;
                }
                k += 1;
                let mut e = view(actor, t, resident);
                if k.rem_euclid(97) == 0 {
                    e.action = Action::Print;
                    e.count = 3;
                }
                out.push(e);
            }
        }
        out
    }

    fn run(d: &mut Detector, evs: &[Event<'_>]) -> Vec<Alert> {
        for e in evs {
            d.observe(e);
        }
        d.finish()
    }

    fn rules(alerts: &[Alert]) -> Vec<&'static str> {
        alerts.iter().map(|a| a.rule_id).collect()
    }

    const MON: (i32, u8, u8) = (2026, 11, 2);

    fn mon() -> Date {
        Date::new(MON.0, MON.1, MON.2).unwrap()
    }

    #[test]
    fn a_normal_day_is_quiet() {
        let mut d = detector();
        let mut evs = normal_day("N1", mon(), 300, 0);
        evs.extend(normal_day("N2", mon(), 200, 10_000));
        evs.extend(normal_day("SV", mon(), 50, 20_000));
        evs.sort_by_key(|e| e.time);
        // Normal cloud activity: the app reads records, backup decrypts, an operator logs in
        // and lists pods.
        let t = at("2026-11-02T10:00:00+09:00");
        evs.push(cloud(
            "kenko-app",
            ActorKind::Service,
            t,
            Action::ObjectRead,
            "kenko-records",
        ));
        evs.push(cloud(
            "backup.amazonaws.com",
            ActorKind::Service,
            t,
            Action::KmsDecrypt,
            "arn:k",
        ));
        evs.push(cloud("OP1", ActorKind::CloudOperator, t, Action::Login, ""));
        evs.push(cloud(
            "OP1",
            ActorKind::CloudOperator,
            t,
            Action::Other,
            "pods",
        ));
        evs.push(cloud(
            "OP1",
            ActorKind::CloudOperator,
            t,
            Action::PodExec,
            "kenko/web-7f9",
        ));
        evs.push(cloud(
            "system:serviceaccount:kenko:agent",
            ActorKind::Service,
            t,
            Action::SecretRead,
            "kenko/db",
        ));
        evs.sort_by_key(|e| e.time);
        let alerts = run(&mut d, &evs);
        assert!(alerts.is_empty(), "{alerts:#?}");
    }

    #[test]
    fn bulk_read_fires_over_the_threshold() {
        let mut d = detector();
        let t0 = at("2026-11-02T14:00:00+09:00");
        let evs: Vec<_> = (0..400).map(|i| view("N1", t0 + i * 6, i as u32)).collect();
        let alerts = run(&mut d, &evs);
        assert_eq!(rules(&alerts), ["access.bulk_read"]);
        let a = &alerts[0];
        assert_eq!((a.count, a.threshold, a.actor.as_str()), (400, 300, "N1"));
        assert_eq!(a.firings, 100);
        assert_eq!(a.runbook, "runbooks/access-bulk-read.md");
        // No resident token anywhere in the alert.
        let json = serde_json::to_string(a).unwrap();
        assert!(!json.contains("r000"), "{json}");
    }

    #[test]
    fn bulk_read_window_slides() {
        // 280 residents an hour for three hours: never 300 within any 60 minutes.
        let mut d = detector();
        let t0 = at("2026-11-02T09:00:00+09:00");
        let evs: Vec<_> = (0..840)
            .map(|i| view("N1", t0 + i * 3600 / 280 + 1, i as u32))
            .collect();
        assert!(run(&mut d, &evs).is_empty());
    }

    #[test]
    fn bulk_read_fires_far_over_the_personal_baseline() {
        let mut d = detector();
        let mut evs = Vec::new();
        let mut day = mon();
        for _ in 0..9 {
            if d.cal.is_business_day(day.days()) {
                evs.extend(normal_day("SV", day, 40, day.days() as u32 * 1000));
            }
            day = day.succ();
        }
        // A quiet supervisor (about 4 residents an hour) reads 150 in one hour: under the
        // absolute threshold, far over the baseline.
        let t0 = Date::new(2026, 11, 11).unwrap().jst_midnight_epoch() + 10 * 3600;
        evs.extend((0..150).map(|i| view("SV", t0 + i * 20, 900_000 + i as u32)));
        let alerts = run(&mut d, &evs);
        assert_eq!(rules(&alerts), ["access.bulk_read"]);
        assert_eq!(alerts[0].threshold, 100);
    }

    #[test]
    fn export_volume() {
        let mut d = detector();
        let mut evs = normal_day("N1", mon(), 200, 0);
        let t = at("2026-11-02T15:30:00+09:00");
        for i in 0..3 {
            let mut e = view("N1", t + i, 5);
            e.action = Action::Export;
            e.count = 400;
            evs.push(e);
        }
        evs.sort_by_key(|e| e.time);
        let alerts = run(&mut d, &evs);
        assert_eq!(rules(&alerts), ["access.export_volume"]);
        assert!(alerts[0].count > 1200, "{alerts:?}");
        assert_eq!((alerts[0].detail, alerts[0].threshold), ("export", 1000));
        // A later export the same day, after the alert closed, opens no second alert.
        let mut d = detector();
        let mut evs = Vec::new();
        for (i, h) in [9, 10, 16].into_iter().enumerate() {
            let mut e = view("N1", mon().jst_midnight_epoch() + h * 3600, i as u32);
            e.action = Action::Export;
            e.count = 600;
            evs.push(e);
        }
        let alerts = run(&mut d, &evs);
        assert_eq!(rules(&alerts), ["access.export_volume"]);
        assert_eq!(alerts[0].count, 1200);
        // The same on two days is fine.
        let mut d = detector();
        let mut evs = Vec::new();
        for (i, day) in [mon(), mon().succ().succ()].into_iter().enumerate() {
            let mut e = view("N1", day.jst_midnight_epoch() + 10 * 3600, i as u32);
            e.action = Action::Print;
            e.count = 600;
            evs.push(e);
        }
        assert!(run(&mut d, &evs).is_empty());
    }

    #[test]
    fn off_hours() {
        for (when, detail) in [
            ("2026-11-02T22:10:00+09:00", "outside_office_hours"),
            ("2026-11-02T07:00:00+09:00", "outside_office_hours"),
            ("2026-11-03T10:00:00+09:00", "closed_day"), // Culture Day
            ("2026-11-07T10:00:00+09:00", "closed_day"), // Saturday
            ("2026-12-30T10:00:00+09:00", "closed_day"), // year-end
        ] {
            let mut d = detector();
            let alerts = run(&mut d, &[view("N1", at(when), 1)]);
            assert_eq!(rules(&alerts), ["access.off_hours"], "{when}");
            assert_eq!(alerts[0].detail, detail);
        }
        // Overtime until 19:00 and an early start at 07:45 are normal.
        let mut d = detector();
        let evs = [
            view("N1", at("2026-11-02T07:45:00+09:00"), 1),
            view("N1", at("2026-11-02T19:00:00+09:00"), 1),
        ];
        assert!(run(&mut d, &evs).is_empty());
    }

    #[test]
    fn retired_and_unknown_accounts() {
        let mut d = detector();
        let t = at("2026-11-02T10:00:00+09:00");
        let mut failed = view("NOBODY", t, 1);
        failed.action = Action::LoginFailed;
        let evs = [
            view("OLD", t, 1),
            view("OLD", t + 5, 2),
            view("NOBODY", t + 6, 3),
            failed,
            cloud(
                "OP9",
                ActorKind::CloudOperator,
                t + 7,
                Action::Other,
                "pods",
            ),
            cloud("root", ActorKind::CloudOperator, t + 8, Action::Login, ""),
        ];
        let alerts = run(&mut d, &evs);
        let got: Vec<_> = alerts
            .iter()
            .map(|a| (a.rule_id, a.actor.as_str(), a.count))
            .collect();
        assert_eq!(
            got,
            [
                ("access.retired_account", "OLD", 2),
                ("access.unknown_account", "NOBODY", 1),
                ("access.retired_account", "OP9", 1),
                ("access.unknown_account", "root", 1),
            ]
        );
        assert!(alerts.iter().all(|a| a.severity == Severity::Critical));
        // Before the retirement date the account was fine.
        let mut d = detector();
        assert!(run(&mut d, &[view("OLD", at("2026-10-30T10:00:00+09:00"), 1)]).is_empty());
    }

    #[test]
    fn unregistered_terminal() {
        let mut d = detector();
        let t = at("2026-11-02T10:00:00+09:00");
        let mut e = view("N1", t, 1);
        e.terminal = Some(Cow::Borrowed("T2"));
        let mut none = view("N2", t + 1, 1);
        none.terminal = None;
        let ok = {
            let mut e = view("N1", t + 2, 1);
            e.terminal = Some(Cow::Borrowed("T1b"));
            e
        };
        let alerts = run(&mut d, &[e, none, ok]);
        let got: Vec<_> = alerts
            .iter()
            .map(|a| (a.rule_id, a.actor.as_str(), a.detail))
            .collect();
        assert_eq!(
            got,
            [
                ("access.unregistered_terminal", "N1", "unregistered"),
                ("access.unregistered_terminal", "N2", "no_terminal"),
            ]
        );
    }

    #[test]
    fn outside_caseload() {
        let mut d = detector();
        let t = at("2026-11-02T10:00:00+09:00");
        let mut out = view("N1", t, 1);
        out.district = Some(Cow::Borrowed("D05"));
        let mut with_case = view("N1", t + 1, 2);
        with_case.district = Some(Cow::Borrowed("D05"));
        with_case.case_ref = Some(Cow::Borrowed("C1"));
        let mut sv = view("SV", t + 2, 3);
        sv.district = Some(Cow::Borrowed("D09"));
        let alerts = run(&mut d, &[out, with_case, sv]);
        let got: Vec<_> = alerts
            .iter()
            .map(|a| (a.rule_id, a.actor.as_str(), a.count))
            .collect();
        assert_eq!(got, [("access.outside_caseload", "N1", 1)]);
    }

    #[test]
    fn failed_login_burst() {
        let t = at("2026-11-02T08:40:00+09:00");
        let fail = |actor: &str, dt: i64| {
            let mut e = view(actor, t + dt, 0);
            e.action = Action::LoginFailed;
            e.outcome = Outcome::Denied;
            e.subject = None;
            e
        };
        let mut d = detector();
        // Two typos then success: quiet. Four failures spread over 40 minutes: quiet.
        let quiet = [
            fail("N1", 0),
            fail("N1", 20),
            fail("N2", 0),
            fail("N2", 600),
            fail("N2", 1200),
            fail("N2", 2400),
        ];
        assert!(run(&mut d, &quiet).is_empty());
        let mut d = detector();
        let burst: Vec<_> = (0..8).map(|i| fail("NOBODY", i * 30)).collect();
        let alerts = run(&mut d, &burst);
        assert_eq!(rules(&alerts), ["access.failed_login_burst"]);
        assert_eq!((alerts[0].count, alerts[0].threshold), (8, 5));
    }

    #[test]
    fn privilege_changes() {
        let t = at("2026-11-02T03:00:00Z");
        let op = ActorKind::CloudOperator;
        let evs = [
            cloud("OP1", op, t, Action::RbacChange, "clusterrolebindings/x"),
            cloud("OP1", op, t + 1, Action::PodExec, "kenko/postgres-0"),
            cloud("OP1", op, t + 2, Action::SecretRead, "kenko/db"),
            cloud("OP1", op, t + 3, Action::IamChange, "AttachRolePolicy"),
            cloud(
                "OrganizationAccountAccessRole/x",
                ActorKind::Provider,
                t + 4,
                Action::IamChange,
                "CreateUser",
            ),
        ];
        let mut d = detector();
        let alerts = run(&mut d, &evs);
        let got: Vec<_> = alerts
            .iter()
            .map(|a| (a.rule_id, a.actor.as_str(), a.count, a.detail))
            .collect();
        assert_eq!(
            got,
            [
                ("access.privilege_change", "OP1", 4, "rbac_change"),
                (
                    "access.privilege_change",
                    "OrganizationAccountAccessRole/x",
                    1,
                    "iam_change"
                ),
            ]
        );
        // Service accounts doing the same are quiet.
        let svc: Vec<_> = evs
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.actor_kind = ActorKind::Service;
                e
            })
            .collect();
        assert!(run(&mut detector(), &svc).is_empty());
    }

    #[test]
    fn provider_data_reads() {
        let t = at("2026-11-02T03:00:00Z");
        let evs = [
            cloud(
                "OP1",
                ActorKind::CloudOperator,
                t,
                Action::ObjectRead,
                "kenko-records",
            ),
            cloud(
                "account:999988887777",
                ActorKind::Provider,
                t + 1,
                Action::ObjectRead,
                "kenko-records-osaka",
            ),
            cloud(
                "support.amazonaws.com",
                ActorKind::Provider,
                t + 2,
                Action::KmsDecrypt,
                "arn:aws:kms:k",
            ),
            cloud(
                "OP1",
                ActorKind::CloudOperator,
                t + 3,
                Action::ObjectRead,
                "kenko-terraform-state",
            ),
        ];
        let mut d = detector();
        let alerts = run(&mut d, &evs);
        let got: Vec<_> = alerts
            .iter()
            .map(|a| (a.rule_id, a.actor.as_str(), a.detail))
            .collect();
        assert_eq!(
            got,
            [
                ("access.provider_data_read", "OP1", "s3_object_read"),
                (
                    "access.provider_data_read",
                    "account:999988887777",
                    "s3_object_read"
                ),
                (
                    "access.provider_data_read",
                    "support.amazonaws.com",
                    "kms_decrypt"
                ),
            ]
        );
        // An operator in the health application reads business data too.
        let mut e = view("OP1", at("2026-11-02T10:00:00+09:00"), 1);
        e.terminal = Some(Cow::Borrowed("T1"));
        e.district = None;
        let alerts = run(&mut detector(), &[e]);
        assert_eq!(rules(&alerts), ["access.provider_data_read"]);
        assert_eq!(alerts[0].detail, "health_app");
    }

    /// Three weeks of normal weekdays for N1 (about 300 events an hour).
    fn weeks(d: &mut Detector, from: Date, days: u32) -> Date {
        let mut day = from;
        for i in 0..days {
            if d.cal.is_business_day(day.days()) {
                let per_hour = 280 + (i * 7919 % 40);
                for e in normal_day("N1", day, per_hour, i * 1000) {
                    d.observe(&e);
                }
            }
            day = day.succ();
        }
        day
    }

    #[test]
    fn volume_anomaly_after_warm_up() {
        let mut d = detector();
        let next = weeks(&mut d, mon(), 21);
        // Monday 23 November is a holiday; Tuesday 24 is normal, then a spike at 10:00 on
        // Wednesday 25: 1,200 events on the same few residents (no bulk read).
        assert_eq!(next, Date::new(2026, 11, 23).unwrap());
        let normal = normal_day("N1", Date::new(2026, 11, 24).unwrap(), 300, 0);
        for e in &normal {
            d.observe(e);
        }
        assert!(d.take_new().is_empty());
        let t0 = Date::new(2026, 11, 25).unwrap().jst_midnight_epoch() + 10 * 3600;
        for i in 0..1200 {
            d.observe(&view("N1", t0 + i * 3, (i % 5) as u32));
        }
        let alerts = d.finish();
        assert_eq!(rules(&alerts), ["access.volume_anomaly"], "{alerts:#?}");
        let a = &alerts[0];
        assert!(a.threshold >= 100 && a.threshold < 1200, "{a:?}");
        assert_eq!(a.window_start, t0);
    }

    #[test]
    fn volume_anomaly_waits_for_the_warm_up() {
        let mut d = detector();
        weeks(&mut d, mon(), 7);
        let t0 = Date::new(2026, 11, 10).unwrap().jst_midnight_epoch() + 10 * 3600;
        for i in 0..1200 {
            d.observe(&view("N1", t0 + i * 3, (i % 5) as u32));
        }
        assert!(d.finish().is_empty());
    }

    #[test]
    fn normal_weeks_are_quiet() {
        let mut d = detector();
        weeks(&mut d, mon(), 28);
        assert!(d.finish().is_empty());
    }

    #[test]
    fn grouping_and_expiry() {
        let mut d = detector();
        let t = at("2026-11-02T22:00:00+09:00");
        d.observe(&view("N1", t, 1));
        d.observe(&view("N1", t + 3600, 1));
        assert_eq!(d.take_new().len(), 1);
        assert_eq!(d.open_alerts().next().unwrap().count, 2);
        // Five hours later: the first alert closed, a new one opens.
        d.observe(&view("N1", t + 3600 + 5 * 3600, 1));
        let closed = d.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].count, closed[0].window_end), (2, t + 3600));
        assert_eq!(d.take_new().len(), 1);
        assert_eq!(d.finish().len(), 1);
    }

    #[test]
    fn saved_state_continues_exactly() {
        // Three weeks of a normal nurse, then a spike: split anywhere, saved and restored
        // through JSON, the alerts are the same as in one run.
        let mut evs = Vec::new();
        {
            let d = detector();
            let mut day = mon();
            for i in 0..23 {
                if d.cal.is_business_day(day.days()) {
                    evs.extend(normal_day("N1", day, 280 + (i * 7919 % 40), i * 1000));
                }
                day = day.succ();
            }
        }
        let t0 = Date::new(2026, 11, 25).unwrap().jst_midnight_epoch() + 10 * 3600;
        evs.extend((0..1200).map(|i| view("N1", t0 + i * 3, (i % 5) as u32)));
        evs.extend((0..400).map(|i| view("N2", t0 + 4000 + i * 6, i as u32)));
        evs.push(view("OLD", t0 + 9000, 1));
        let whole = run(&mut detector(), &evs);
        assert!(whole.len() >= 3, "{whole:?}");
        for split in [1, evs.len() / 3, evs.len() - 700, evs.len() - 1] {
            let mut d = detector();
            for e in &evs[..split] {
                d.observe(e);
            }
            let json = serde_json::to_string(&d.save_state()).unwrap();
            assert!(!json.contains("r000"), "no resident token in the state");
            let state: DetectorState = serde_json::from_str(&json).unwrap();
            let mut d = Detector::restore(
                Config::default(),
                Roster::parse(ROSTER).unwrap(),
                Calendar::default(),
                &state,
            )
            .unwrap();
            assert_eq!(d.save_state(), state);
            for e in &evs[split..] {
                d.observe(e);
            }
            assert_eq!(d.finish(), whole, "split at {split}");
        }
    }

    #[test]
    fn a_new_roster_takes_effect_at_once() {
        let mut d = detector();
        let t = at("2026-11-02T10:00:00+09:00");
        d.observe(&view("N2", t, 1));
        assert!(d.take_new().is_empty());
        d.set_roster(
            Roster::parse(&ROSTER.replace(
                "N2,public_health_nurse,active,,D02,T2",
                "N2,public_health_nurse,retired,2026-11-02,D02,T2",
            ))
            .unwrap(),
        );
        d.observe(&view("N2", t + 60, 2));
        let new = d.take_new();
        assert_eq!(rules(&new), ["access.retired_account"]);
    }

    #[test]
    fn distinct_window_is_bounded() {
        let mut w = DistinctWindow::new(60);
        for i in 0..100_000u64 {
            w.insert(i, (i / 100) as u32, 4096);
        }
        assert!(w.last.len() <= 4096, "{}", w.last.len());
        assert!((4000..=4096).contains(&w.in_window), "{}", w.in_window);
        let mut w = DistinctWindow::new(60);
        for i in 0..10_000u64 {
            assert!(w.insert(i % 7, i as u32, 4096) <= 7);
        }
        assert_eq!(w.in_window, 7);
    }
}
