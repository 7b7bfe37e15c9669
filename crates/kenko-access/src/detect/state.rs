//! The detector's learned state as data: saved in the access monitor's checkpoint and restored
//! on restart, so baselines, windows and open alerts survive it. A saved state that does not
//! fit this version is refused by name, never by value.

use super::*;

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
    /// The stack (`namespace/name`; empty for none, and in checkpoints older than stacks).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stack: String,
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
            stack: a.stack.clone(),
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
            stack: self.stack.clone(),
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
            .map(|(&(_, actor, _), g)| SavedGroup {
                actor,
                last: g.last,
                alert: SavedAlert::from_alert(&g.alert),
            })
            .collect();
        groups.sort_by(|a, b| {
            (a.actor, &a.alert.rule, &a.alert.stack).cmp(&(b.actor, &b.alert.rule, &b.alert.stack))
        });
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
            let stack = d.stack_index(&alert.stack);
            d.groups.insert(
                (alert.rule, g.actor, stack),
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
