//! A small generated month: every injected anomaly is found, and false alerts stay at or under
//! 0.1% of staff-days.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use kenko_access::feed::{feed, LineBatch};
use kenko_access::generate::{generate, score, Spec};
use kenko_access::{Calendar, Config, Detector, Principals, Rule, Source};

fn run(spec: &Spec) -> (kenko_access::generate::Generated, Vec<kenko_access::Alert>) {
    let (mut h, mut k, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let g = generate(spec, &mut h, &mut k, &mut c).unwrap();
    let mut det = Detector::new(Config::default(), g.roster.clone(), Calendar::default());
    let counts = feed(
        &mut det,
        &Principals::default(),
        &[
            batch(Source::Health, &h),
            batch(Source::K8sAudit, &k),
            batch(Source::CloudTrail, &c),
        ],
        Vec::new(),
        |e| panic!("a generated line does not parse: {e}"),
    );
    assert!(counts.events.iter().sum::<u64>() > 0);
    assert_eq!(counts.errors, [0; 3]);
    (g, det.finish())
}

#[test]
fn every_injected_anomaly_is_found_and_false_alerts_are_rare() {
    let (g, alerts) = run(&Spec::small(20261101));
    assert!(g.truth.len() >= 20, "{}", g.truth.len());
    let injected: std::collections::BTreeSet<Rule> = g.truth.iter().map(|i| i.rule).collect();
    assert_eq!(
        injected.len(),
        Rule::ALL.len(),
        "every rule has an injected anomaly"
    );
    let s = score(&g.truth, &alerts);
    for r in &s.per_rule {
        eprintln!(
            "{:32} injected {:2} found {:2} alerts {:3} true {:3} precision {:.3} recall {:.3}",
            r.rule.id(),
            r.injected,
            r.found,
            r.alerts,
            r.true_alerts,
            r.precision(),
            r.recall()
        );
    }
    eprintln!("false alerts: {:#?}", s.false_alerts);
    assert!(s.missed.is_empty(), "missed: {:#?}", s.missed);
    let limit = g.staff_days() as f64 * 0.001;
    assert!(
        s.false_alerts.len() as f64 <= limit,
        "{} false alerts over {} staff-days: {:#?}",
        s.false_alerts.len(),
        g.staff_days(),
        s.false_alerts
    );
    // No alert carries a resident token (r + 16 hex digits) or a case reference.
    for a in &alerts {
        let json = serde_json::to_string(a).unwrap();
        let b = json.as_bytes();
        let token = (0..b.len().saturating_sub(16))
            .any(|i| b[i] == b'r' && b[i + 1..i + 17].iter().all(u8::is_ascii_hexdigit));
        assert!(!token && !json.contains("\"C0"), "{json}");
    }
}

#[test]
fn a_month_without_anomalies_is_quiet() {
    let spec = Spec {
        inject: false,
        ..Spec::small(99)
    };
    let (g, alerts) = run(&spec);
    assert!(g.truth.is_empty());
    assert!(
        alerts.len() as f64 <= g.staff_days() as f64 * 0.001,
        "{alerts:#?}"
    );
}

#[test]
fn generation_is_deterministic() {
    let spec = Spec {
        days: 3,
        ..Spec::small(5)
    };
    let mut a = (Vec::new(), Vec::new(), Vec::new());
    let mut b = (Vec::new(), Vec::new(), Vec::new());
    generate(&spec, &mut a.0, &mut a.1, &mut a.2).unwrap();
    generate(&spec, &mut b.0, &mut b.1, &mut b.2).unwrap();
    assert_eq!(a, b);
    let other = Spec { seed: 6, ..spec };
    let mut c = (Vec::new(), Vec::new(), Vec::new());
    generate(&other, &mut c.0, &mut c.1, &mut c.2).unwrap();
    assert_ne!(a.0, c.0);
}

fn batch(source: Source, bytes: &[u8]) -> LineBatch<'_> {
    LineBatch {
        source,
        bytes,
        first_line: 0,
        stack: None,
    }
}
