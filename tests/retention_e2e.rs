//! End-to-end tests of retention: the real `kenko-agent` binary, real deliveries, real records
//! in SQLite and PostgreSQL, real `kill -9` in the middle of a run.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::*;
use kenko_sample::SampleEncoding;

/// Twenty-one years after the test month: the month's records are past the 20 years, and the
/// deliveries past their 13 months.
const LATER: &str = "2047-12-01";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// A workspace with a month taken in: two loaded deliveries (one of them recent, by its time),
/// a returned one, their return reports, and the records. Returns the workspace, the files
/// that expire, the one that stays and the record count.
fn taken_in(ws: Workspace) -> (Workspace, Vec<PathBuf>, PathBuf, i64) {
    let residents = ws.import_residents(500, 41);
    let a = generate(&residents, 150, SampleEncoding::Utf8, 0.1, 1);
    let b = generate(&residents, 80, SampleEncoding::Cp932, 0.0, 2);
    ws.deliver("2026-11_a.csv", &a.bytes);
    ws.deliver("2026-11_broken.csv", b"not,an,intake,file\n1,2,3,4\n");
    ws.run_once_json();
    ws.deliver("2026-11_b.csv", &b.bytes);
    ws.run_once_json();
    // The second delivery was taken "recently": a month before LATER.
    let recent = ws.data.join("processed/2026-11_b.csv");
    let keep_until = SystemTime::UNIX_EPOCH + Duration::from_secs(2_456_179_200); // 2047-11-01
    std::fs::File::open(&recent)
        .unwrap()
        .set_modified(keep_until)
        .unwrap();
    let mut expired = Vec::new();
    for dir in ["processed", "returned", "reports/returns"] {
        expired.extend(files_under(&ws.data.join(dir)));
    }
    expired.retain(|p| p != &recent);
    assert!(expired.len() >= 4, "{expired:?}");
    let records = kenko_store::open(&ws.database_url)
        .unwrap()
        .record_count()
        .unwrap();
    assert!(records > 100, "{records}");
    (ws, expired, recent, records)
}

fn retention(ws: &Workspace, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["retention", "run", "--json"];
    all.extend_from_slice(args);
    let out = ws
        .cmd()
        .env("KENKO_TODAY", LATER)
        .args(&all)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "retention {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `retention run --apply` until `point`, and kills it there with SIGKILL.
fn kill_at(ws: &Workspace, point: &str) {
    let mut child = ws
        .cmd()
        .env("KENKO_TODAY", LATER)
        .env("KENKO_TEST_CRASHPOINT", point)
        .args(["retention", "run", "--apply"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reached = BufReader::new(stderr)
        .lines()
        .any(|l| l.unwrap() == format!("kenko-crashpoint: {point}"));
    assert!(reached, "the agent never reached {point}");
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
}

fn certificates(ws: &Workspace) -> Vec<PathBuf> {
    files_under(&ws.data.join("certificates"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect()
}

/// What every finished run must show: the expired files gone (overwritten first: the erasure
/// engine verifies before it removes), the recent one kept, no record left, and one signed
/// certificate that verifies, names every expired file and says how many records went.
fn assert_certified(
    ws: &Workspace,
    report: &serde_json::Value,
    expired: &[PathBuf],
    recent: &Path,
    records: i64,
) {
    for f in expired {
        assert!(!f.exists(), "{} survived", f.display());
    }
    assert!(recent.exists(), "the recent delivery was erased");
    assert_eq!(
        kenko_store::open(&ws.database_url)
            .unwrap()
            .record_count()
            .unwrap(),
        0
    );
    assert_eq!(
        report["records"]["count"].as_i64(),
        Some(records),
        "{report}"
    );
    let certs = certificates(ws);
    assert_eq!(certs.len(), 1, "{certs:?}");
    assert_eq!(
        report["certificate"].as_str().map(PathBuf::from),
        Some(certs[0].clone())
    );
    let out = ws.run(&["certificate", "verify", certs[0].to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&certs[0]).unwrap()).unwrap();
    let text = cert.to_string();
    for f in expired {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(text.contains(&name), "the certificate does not name {name}");
    }
    assert!(
        text.contains(&format!("{records} vaccination records")),
        "the certificate does not count the records: {text}"
    );
    assert!(!ws.data.join("retention/current.json").exists());
}

#[test]
fn a_dry_run_changes_nothing_and_an_interrupted_run_resumes_its_plan_and_certifies_it_once() {
    let (ws, expired, recent, records) = taken_in(Workspace::sqlite());
    // The default is a dry run: it says what would go and changes nothing.
    let dry = retention(&ws, &[]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["records"]["count"].as_i64(), Some(records), "{dry}");
    let planned: u64 = dry["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["files"].as_u64().unwrap())
        .sum();
    assert_eq!(planned, expired.len() as u64, "{dry}");
    assert!(expired.iter().all(|f| f.exists()));
    assert!(certificates(&ws).is_empty());

    // Killed after the records' transaction: no certificate yet, the files still there.
    kill_at(&ws, "retention-records-deleted");
    assert!(certificates(&ws).is_empty(), "certified before erasing");
    assert!(expired.iter().all(|f| f.exists()));
    assert!(ws.data.join("retention/current.json").exists());
    // The rerun resumes that plan; the records it certifies are those the first run deleted.
    let done = retention(&ws, &["--apply"]);
    assert_eq!(done["resumed"], true, "{done}");
    assert_certified(&ws, &done, &expired, &recent, records);

    // Nothing more has expired: a new run erases nothing and certifies nothing.
    let again = retention(&ws, &["--apply"]);
    assert_eq!(again["records"]["count"], 0, "{again}");
    assert!(again["certificate"].is_null(), "{again}");
    assert_eq!(certificates(&ws).len(), 1);
}

#[test]
fn killed_between_two_files_on_postgres_the_rerun_erases_the_rest_and_certifies_all() {
    let (ws, expired, recent, records) = taken_in(Workspace::postgres());
    kill_at(&ws, "erase-target-done");
    assert!(certificates(&ws).is_empty(), "certified before erasing");
    let left = expired.iter().filter(|f| f.exists()).count();
    assert!(left < expired.len(), "the first file was erased");
    assert!(left > 0, "the kill came before the last");
    let done = retention(&ws, &["--apply"]);
    assert_certified(&ws, &done, &expired, &recent, records);
}

#[test]
fn fewer_than_twenty_years_for_records_is_refused() {
    let ws = Workspace::sqlite();
    let cfg = ws.dir.path().join("kenko.toml");
    std::fs::write(&cfg, "[retention]\nrecords_years = 5\n").unwrap();
    let out = ws
        .cmd()
        .args(["--config", cfg.to_str().unwrap(), "retention", "run"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("records_years = 5") && err.contains("at least 20"),
        "{err}"
    );
}
