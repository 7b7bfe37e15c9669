//! The rules, one test each, on hand-made events and generated normal weeks.

use std::borrow::Cow;

use super::*;
use crate::calendar::{parse_rfc3339, Date};
use crate::event::Source;

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
        object: None,
        stack: None,
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
        object: None,
        stack: None,
    }
}

/// A normal working day of one person: login at 08:40, ~`per_hour` views of a few
/// residents at a time in their caseload, lunch, a few prints, last event before 17:15.
fn normal_day(actor: &str, date: Date, per_hour: u32, residents_from: u32) -> Vec<Event<'static>> {
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
        if d.cal().is_business_day(day.days()) {
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
        if d.cal().is_business_day(day.days()) {
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
            if d.cal().is_business_day(day.days()) {
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

#[test]
fn patterns_take_a_star_anywhere() {
    use crate::event::glob;
    assert!(glob("*-db-*", "hachioji-db-0"));
    assert!(glob("hachioji/*-db-*", "hachioji/hachioji-db-0"));
    assert!(!glob("*-db-*", "hachioji-app-5d9c"));
    assert!(glob(
        "*-records-*",
        "kenko-prod-records-111122223333-ap-northeast-1"
    ));
    assert!(glob("kenko-records*", "kenko-records"));
    assert!(glob("a*b*c", "aXbYbZc"));
    assert!(!glob("a*b*c", "aXbYbZ"));
    assert!(glob("exact", "exact") && !glob("exact", "exact2") && !glob("exact", "exac"));
    assert!(glob("*", "") && glob("**", "x"));
}

/// The defaults know the names kenko itself gives: the controller's `STACK-db-0` and the
/// Terraform buckets `NAME-records-ACCOUNT-REGION`, `NAME-intake-ACCOUNT-REGION`.
#[test]
fn the_defaults_match_kenkos_own_names() {
    let t = at("2026-11-10T10:00:00+09:00");
    let op = ActorKind::CloudOperator;
    let evs = [
        cloud("OP1", op, t, Action::PodExec, "hachioji/hachioji-db-0"),
        cloud(
            "OP1",
            op,
            t + 1,
            Action::ObjectRead,
            "kenko-prod-records-111122223333-ap-northeast-1",
        ),
        cloud(
            "OP1",
            op,
            t + 2,
            Action::ObjectRead,
            "kenko-prod-intake-111122223333-ap-northeast-1",
        ),
    ];
    let mut d = detector();
    let alerts = run(&mut d, &evs);
    let details: Vec<&str> = alerts.iter().map(|a| a.detail).collect();
    assert!(details.contains(&"db_pod_exec"), "{alerts:#?}");
    assert_eq!(
        details.iter().filter(|d| **d == "s3_object_read").count(),
        1,
        "two reads by one actor group into one alert: {alerts:#?}"
    );
    assert_eq!(
        alerts
            .iter()
            .find(|a| a.detail == "s3_object_read")
            .unwrap()
            .count,
        2
    );
}

fn two_stacks() -> Config {
    let scope = |ns: &str, prefix: &str, hours: Option<&str>| StackScope {
        stack: format!("{ns}/{ns}"),
        namespace: ns.into(),
        db_pods: vec![format!("{ns}/{ns}-db-*")],
        records: vec![format!("city-records-111122223333-ap-northeast-1/{prefix}")],
        kms_keys: vec![format!("arn:aws:kms:ap-northeast-1:111122223333:key/{ns}")],
        office_hours: hours.and_then(crate::calendar::OfficeHours::parse),
    };
    Config {
        // Nothing from the defaults: the stacks' own names only.
        records_buckets: vec![],
        records_kms_keys: vec![],
        db_pods: vec![],
        stacks: vec![
            scope("hachioji", "hachioji/", None),
            scope("fuchu", "fuchu/", Some("10:00-12:00")),
        ],
        ..Config::default()
    }
}

#[test]
fn alerts_name_the_stack_an_event_concerns() {
    let t = at("2026-11-10T10:00:00+09:00");
    let op = ActorKind::CloudOperator;
    let s3 = |stack: &str, time: i64| {
        let mut e = cloud(
            "OP1",
            op,
            time,
            Action::ObjectRead,
            "city-records-111122223333-ap-northeast-1",
        );
        e.object = Some(Cow::Owned(format!("{stack}/records/2026/x")));
        e
    };
    let k8s = |time: i64, pod: &str| Event {
        source: Source::K8sAudit,
        ..cloud("OP1", op, time, Action::PodExec, pod)
    };
    let evs = [
        k8s(t, "fuchu/fuchu-db-0"),
        k8s(t + 1, "fuchu/fuchu-app-1"),
        s3("hachioji", t + 2),
        s3("fuchu", t + 3),
        s3("elsewhere", t + 4),
        cloud(
            "OP1",
            op,
            t + 5,
            Action::KmsDecrypt,
            "arn:aws:kms:ap-northeast-1:111122223333:key/hachioji",
        ),
        cloud("OP1", op, t + 6, Action::IamChange, "AttachRolePolicy"),
    ];
    let mut d = Detector::new(
        two_stacks(),
        Roster::parse(ROSTER).unwrap(),
        Calendar::default(),
    );
    let alerts = run(&mut d, &evs);
    let mut got: Vec<(&str, &str, &str, u64)> = alerts
        .iter()
        .map(|a| (a.rule_id, a.stack.as_str(), a.detail, a.count))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            // The exec into fuchu's database (its app pod is no database); the IAM change is
            // no stack's.
            ("access.privilege_change", "", "iam_change", 1),
            ("access.privilege_change", "fuchu/fuchu", "db_pod_exec", 1),
            // Same rule and actor, three stacks: three alerts. A key outside every stack's
            // prefix of the shared bucket is still a read of business data, of no one stack.
            ("access.provider_data_read", "", "s3_object_read", 1),
            (
                "access.provider_data_read",
                "fuchu/fuchu",
                "s3_object_read",
                1
            ),
            // hachioji's read and its key's decrypt, one alert.
            (
                "access.provider_data_read",
                "hachioji/hachioji",
                "s3_object_read",
                2
            ),
        ],
        "{alerts:#?}"
    );
    // The stack survives a checkpoint.
    let mut d = Detector::new(
        two_stacks(),
        Roster::parse(ROSTER).unwrap(),
        Calendar::default(),
    );
    for e in &evs[..1] {
        d.observe(e);
    }
    let saved = d.save_state();
    let mut r = Detector::restore(
        two_stacks(),
        Roster::parse(ROSTER).unwrap(),
        Calendar::default(),
        &saved,
    )
    .unwrap();
    r.observe(&k8s(t + 60, "fuchu/fuchu-db-1"));
    let open: Vec<&Alert> = r.open_alerts().collect();
    assert_eq!(open.len(), 1, "the restored group took the second exec");
    assert_eq!(
        (open[0].stack.as_str(), open[0].firings),
        ("fuchu/fuchu", 2)
    );
}

#[test]
fn a_stacks_office_hours_judge_its_own_staff() {
    // 14:30 on a Tuesday: inside the default hours (08:30-17:15), but past fuchu's 10:00-12:00
    // and its two hours of grace.
    let t = at("2026-11-10T14:30:00+09:00");
    let mut d = Detector::new(
        two_stacks(),
        Roster::parse(ROSTER).unwrap(),
        Calendar::default(),
    );
    let mut a = view("N1", t, 1);
    a.stack = Some(Cow::Borrowed("hachioji/hachioji"));
    let mut b = view("N2", t, 2);
    b.stack = Some(Cow::Borrowed("fuchu/fuchu"));
    let alerts = run(&mut d, &[a, b]);
    let off: Vec<(&str, &str)> = alerts
        .iter()
        .filter(|x| x.rule == Rule::OffHours)
        .map(|x| (x.actor.as_str(), x.stack.as_str()))
        .collect();
    assert_eq!(off, vec![("N2", "fuchu/fuchu")], "{alerts:#?}");
}
