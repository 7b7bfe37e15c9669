//! The rules themselves: what each kind of actor's event is checked for (account checks,
//! staff volumes and caseload, failed logins, operators and the provider), firing through
//! [`Detector::fire`]. The rule table is in the module above.

use super::*;

impl Detector {
    pub(super) fn account_checks(&mut self, ev: &Event<'_>, a: u32, day: i64) -> bool {
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

    pub(super) fn staff(&mut self, ev: &Event<'_>, a: u32, day: i64) {
        let known = self.account_checks(ev, a, day);
        if ev.action == Action::LoginFailed {
            self.failed_login(ev, a);
            return;
        }
        let t = ev.time;
        let mut is_operator = false;
        if known {
            let p = self.roster.person(
                self.actors[a as usize]
                    .person
                    .expect("known, so in the roster"),
            );
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
        if !self.cal().is_within(
            t,
            self.cfg.off_hours_grace_before_min,
            self.cfg.off_hours_grace_after_min,
        ) {
            let detail = if self.cal().is_business_day(day) {
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
                    if let Some(g) = self
                        .groups
                        .get_mut(&(Rule::ExportVolume, a, self.cur_stack))
                    {
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

    pub(super) fn slot_day(&self, day: i64) -> usize {
        if self.cal().is_weekday_closure(day) {
            6
        } else {
            weekday_of_days(day).index() as usize
        }
    }

    pub(super) fn volume(&mut self, a: u32, t: i64, day: i64) {
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
    pub(super) fn roll_day(&mut self, a: u32, day: i64) {
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

    pub(super) fn failed_login(&mut self, ev: &Event<'_>, a: u32) {
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
            let start = *st.fails.front().expect("count >= n >= 1");
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

    pub(super) fn operator(&mut self, ev: &Event<'_>, a: u32, day: i64) {
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

    pub(super) fn provider(&mut self, ev: &Event<'_>, a: u32) {
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

    pub(super) fn data_read(&mut self, ev: &Event<'_>, a: u32) {
        let detail = match ev.action {
            Action::ObjectRead
                if ev.resource.as_deref().is_some_and(|b| {
                    matches_any(&self.cfg.records_buckets, b)
                        || self.cfg.stacks.iter().any(|s| s.holds_bucket(b))
                }) =>
            {
                "s3_object_read"
            }
            Action::KmsDecrypt
                if {
                    let k = ev.resource.as_deref().unwrap_or("");
                    matches_any(&self.cfg.records_kms_keys, k)
                        || self
                            .cfg
                            .stacks
                            .iter()
                            .any(|s| s.kms_keys.iter().any(|p| glob(p, k)))
                } =>
            {
                "kms_decrypt"
            }
            _ => return,
        };
        let t = ev.time;
        self.fire(Rule::ProviderDataRead, a, detail, t, t, 1, 0, Agg::Sum);
    }

    pub(super) fn is_db_pod(&self, resource: Option<&str>) -> bool {
        let Some(r) = resource else { return false };
        let name = r.rsplit_once('/').map_or(r, |(_, n)| n);
        let stack_pods = self.cfg.stacks.iter().flat_map(|s| s.db_pods.iter());
        self.cfg.db_pods.iter().chain(stack_pods).any(|p| {
            let target = if p.contains('/') { r } else { name };
            glob(p, target)
        })
    }
}
