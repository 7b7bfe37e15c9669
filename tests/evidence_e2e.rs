//! End-to-end tests of the auditor's evidence pack, with the real binary: a period with real
//! erasure certificates (`erase`), real alerts and a real tamper-evidence chain (`access run`
//! following a log), a real intake ledger (`residents import`, `intake run-once`), built into a
//! bundle by `evidence build`, verified by `evidence verify`; then every kind of change to the
//! bundle is refused naming the file, and no generated personal value is anywhere in it.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Workspace;
use kenko_sample::{SampleEncoding, SampleResident};

const ROSTER: &str = "\
id,role,status,retired_on,scope,terminals
N1,public_health_nurse,active,,D01,T1
N2,public_health_nurse,active,,D02,T2
OLD,clerk,retired,2026-10-31,D01,T4
OP1,operator,active,,,*
";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn line(
    time: &str,
    staff: &str,
    terminal: &str,
    action: &str,
    resident: u32,
    records: u32,
) -> String {
    format!(
        "{{\"time\":\"{time}\",\"staff_id\":\"{staff}\",\"terminal\":\"{terminal}\",\"action\":\"{action}\",\"subject\":\"rtok{resident:08x}\",\"district\":\"D01\",\"records\":{records},\"outcome\":\"success\"}}\n"
    )
}

/// The period's health access log: a working morning of N1 with exports and prints, N2's
/// print in December, and the retired OLD looking at a record (an alert).
fn access_log() -> String {
    let mut s = String::new();
    for i in 0..30 {
        s.push_str(&line(
            &format!("2026-11-02T09:{:02}:{:02}+09:00", i / 2, i % 60),
            "N1",
            "T1",
            "view",
            i,
            1,
        ));
    }
    s.push_str(&line(
        "2026-11-02T10:00:00+09:00",
        "N1",
        "T1",
        "export",
        1,
        40,
    ));
    s.push_str(&line(
        "2026-11-02T10:05:00+09:00",
        "N1",
        "T1",
        "export",
        2,
        2,
    ));
    s.push_str(&line(
        "2026-11-02T10:10:00+09:00",
        "N1",
        "T1",
        "print",
        3,
        5,
    ));
    s.push_str(&line(
        "2026-11-02T11:00:00+09:00",
        "OLD",
        "T4",
        "view",
        4,
        1,
    ));
    s.push_str(&line(
        "2026-12-01T10:00:00+09:00",
        "N2",
        "T2",
        "print",
        5,
        3,
    ));
    // Outside the period: not counted.
    s.push_str(&line(
        "2025-12-01T10:00:00+09:00",
        "N2",
        "T2",
        "export",
        6,
        9,
    ));
    s
}

struct Env {
    ws: Workspace,
    config: PathBuf,
    residents: Vec<SampleResident>,
}

impl Env {
    fn p(&self, rel: &str) -> PathBuf {
        self.ws.dir.path().join(rel)
    }

    fn cmd(&self) -> Command {
        let mut c = self.ws.cmd();
        c.arg("--config").arg(&self.config);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kenko-agent {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn public_key(&self) -> String {
        let out = self.run_ok(&["certificate", "public-key"]);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A machine with a period's evidence, made by the real commands.
fn machine() -> Env {
    let ws = Workspace::sqlite();
    std::fs::create_dir_all(ws.dir.path().join("logs")).unwrap();
    let roster = ws.dir.path().join("roster.csv");
    std::fs::write(&roster, ROSTER).unwrap();
    let log = ws.dir.path().join("logs/access.jsonl");
    let config = ws.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[access]\nhealth_log = \"{}\"\nroster = \"{}\"\npoll_ms = 100\ncheckpoint_secs = 0\n",
            log.display(),
            roster.display()
        ),
    )
    .unwrap();
    let mut env = Env {
        ws,
        config,
        residents: Vec::new(),
    };

    // The intake ledger: a register and a delivery with some rows rejected.
    env.residents = env.ws.import_residents(300, 5);
    let g = common::generate(&env.residents, 400, SampleEncoding::Utf8, 0.1, 3);
    env.ws.deliver("2024-10_clinic.csv", &g.bytes);
    let s = env.ws.run_once_json();
    assert!(s.to_string().contains("accepted"), "{s}");

    // Two chained erasure certificates.
    for i in 0..2 {
        let f = env.p(&format!("old-{i}.db"));
        std::fs::write(&f, vec![0x5a; 8192]).unwrap();
        env.run_ok(&[
            "erase",
            "--name",
            "検証 担当",
            "--organization",
            "健康市",
            "--target",
            &format!("file:{}", f.display()),
        ]);
    }

    // The access monitor follows the log: alerts and the tamper-evidence chain.
    let port = free_port();
    let mut child = env
        .cmd()
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "access",
            "run",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.p("access.log")).unwrap())
        .spawn()
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    f.write_all(access_log().as_bytes()).unwrap();
    drop(f);
    let alerts = env.ws.data.join("access/alerts.jsonl");
    wait_for(60, "the retired account's alert", || {
        std::fs::read_to_string(&alerts).is_ok_and(|t| t.contains("access.retired_account"))
    });
    std::thread::sleep(Duration::from_millis(500));
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success(), "the monitor stops cleanly");
    env
}

/// Today in Asia/Tokyo: certificates and the ledger are made now, the access log in 2026-11/12.
fn today_jst() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(9))
        .format("%Y-%m-%d")
        .to_string()
}

/// The period from 2026-01-01 to today: the log's events and what the commands made now.
fn build(env: &Env, out: &Path, extra: &[&str]) -> Output {
    let to = today_jst();
    let mut args = vec![
        "evidence",
        "build",
        "--from",
        "2026-01-01",
        "--to",
        &to,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn verify(env: &Env, bundle: &Path, key: Option<&str>) -> Output {
    let mut args = vec!["evidence", "verify", bundle.to_str().unwrap()];
    if let Some(k) = key {
        args.extend_from_slice(&["--public-key", k]);
    }
    env.run(&args)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn json(bundle: &Path, rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join(rel)).unwrap())
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `verify` fails with exit 1 and one line naming `file` with `reason`.
fn assert_refused(out: &Output, file: &str, reason: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {} stderr {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("[reason:")).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains(file) && lines[0].contains(&format!("[reason: {reason}]")),
        "expected {file} and {reason}: {err}"
    );
}

#[test]
fn a_period_is_packed_verified_and_every_change_to_it_is_refused() {
    let env = machine();
    let key = env.public_key();
    let residency = env.p("residency-2026-11-26.json");
    std::fs::write(
        &residency,
        r#"{"schema":"kenko.residency-report/v1","started_at":"2026-11-26T03:00:00Z","finished_at":"2026-11-26T03:00:41Z","complete":true,"summary":{"compliant":40,"violation":1,"unknown":0},"findings":[{"resource":"arn:aws:s3:::stray-bucket","region":"us-east-1","rule":"s3.bucket_region","status":"violation","detail":"bucket is in us-east-1"}]}"#,
    )
    .unwrap();
    let bundle = env.p("pack-2026");
    let out = build(&env, &bundle, &["--residency", residency.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What is in it.
    let all = files(&bundle);
    let certs: Vec<&String> = all
        .iter()
        .filter(|f| f.starts_with("certificates/") && !f.ends_with("verification.json"))
        .collect();
    assert_eq!(certs.len(), 2, "{all:?}");
    for c in &certs {
        // Byte for byte the agent's certificate.
        let name = Path::new(c.as_str()).file_name().unwrap();
        assert_eq!(
            std::fs::read(bundle.join(c.as_str())).unwrap(),
            std::fs::read(env.ws.data.join("certificates").join(name)).unwrap()
        );
    }
    for f in [
        "manifest.json",
        "summary.html",
        "summary.pdf",
        "certificates/verification.json",
        "residency/01-residency-2026-11-26.json",
        "residency/summary.json",
        "access/alerts.jsonl",
        "access/chain-verification.json",
        "access/exports-prints.json",
        "access/roster-changes.json",
        "intake/ledger-summary.json",
    ] {
        assert!(all.contains(&f.to_string()), "{f} missing from {all:?}");
    }
    let v = json(&bundle, "certificates/verification.json");
    assert_eq!(v["chain"]["result"], "verified", "{v}");
    assert_eq!(v["chain"]["signers"][0]["public_key"], key.as_str());
    assert_eq!(v["chain"]["signers"][0]["certificates"], 2);
    let alerts = std::fs::read_to_string(bundle.join("access/alerts.jsonl")).unwrap();
    assert!(alerts.contains("access.retired_account"), "{alerts}");
    let chain = json(&bundle, "access/chain-verification.json");
    assert_eq!(chain["result"], "verified", "{chain}");
    assert!(chain["records"].as_u64().unwrap() >= 1, "{chain}");
    let ex = json(&bundle, "access/exports-prints.json");
    let counts = ex["counts"].as_array().unwrap();
    let row = |staff: &str, month: &str| {
        counts
            .iter()
            .find(|r| r["staff_id"] == staff && r["month"] == month)
            .unwrap_or_else(|| panic!("{staff} {month} in {ex}"))
            .clone()
    };
    let n1 = row("N1", "2026-11");
    assert_eq!(
        (n1["exports"].as_u64(), n1["export_records"].as_u64()),
        (Some(2), Some(42))
    );
    assert_eq!(
        (n1["prints"].as_u64(), n1["print_records"].as_u64()),
        (Some(1), Some(5))
    );
    let n2 = row("N2", "2026-12");
    assert_eq!(
        (n2["prints"].as_u64(), n2["exports"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        counts.len(),
        2,
        "the 2025 export is outside the period: {ex}"
    );
    let roster = json(&bundle, "access/roster-changes.json");
    let old = &roster["retirements"][0];
    assert_eq!(old["staff_id"], "OLD", "{roster}");
    assert_eq!(old["retired_on"], "2026-10-31");
    assert_eq!(old["last_access"], "2026-11-02T02:00:00Z");
    assert_eq!(old["accesses_on_or_after_retirement"], 1);
    let ledger = json(&bundle, "intake/ledger-summary.json");
    let months = ledger["months"].as_array().unwrap();
    let to = today_jst();
    let (y, m): (i64, i64) = (to[..4].parse().unwrap(), to[5..7].parse().unwrap());
    assert_eq!(months.len() as i64, (y - 2026) * 12 + m);
    let loaded: i64 = months
        .iter()
        .map(|m| m["files_loaded"].as_i64().unwrap())
        .sum();
    let accepted: i64 = months
        .iter()
        .map(|m| m["rows_accepted"].as_i64().unwrap())
        .sum();
    let rejected: i64 = months
        .iter()
        .map(|m| m["rows_rejected"].as_i64().unwrap())
        .sum();
    assert_eq!(loaded, 1, "{ledger}");
    assert_eq!(accepted + rejected, 400, "{ledger}");
    assert!(rejected > 0 && accepted > 0, "{ledger}");
    let html = std::fs::read_to_string(bundle.join("summary.html")).unwrap();
    for want in [
        "runbooks/access-retired-account.md",
        "runbooks/residency-audit.md",
        "access.retired_account",
        "持ち出し履歴",
        "N1 2026-11",
    ] {
        assert!(html.contains(want), "summary.html lacks {want}");
    }
    let pdf = std::fs::read(bundle.join("summary.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));

    // No personal value anywhere: the register's My Numbers, names, addresses, birth dates,
    // nor the log's resident tokens.
    let mut needles: Vec<String> = vec!["rtok".into()];
    for r in &env.residents {
        if let Some(m) = &r.mynumber {
            needles.push(m.clone());
        }
        needles.push(r.name.clone());
        needles.extend(
            r.name
                .split('\u{3000}')
                .filter(|p| p.chars().count() >= 3)
                .map(str::to_string),
        );
        needles.push(r.address.clone());
        for f in ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"] {
            needles.push(r.birth.format(f).to_string());
        }
    }
    assert!(needles.len() > 300 * 5);
    for f in &all {
        let bytes = std::fs::read(bundle.join(f)).unwrap();
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{f} holds a personal value"
            );
        }
    }

    // It verifies, by the embedded key and against the agent's key.
    let ok = verify(&env, &bundle, Some(&key));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: "));
    let key_file = env.p("kenko.pub");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    assert!(verify(&env, &bundle, Some(key_file.to_str().unwrap()))
        .status
        .success());

    // One flipped byte anywhere fails, naming the file.
    let cert = certs[0].clone();
    for (file, reasons) in [
        (
            "manifest.json",
            &["evidence_manifest_invalid", "evidence_signature_invalid"][..],
        ),
        (cert.as_str(), &["evidence_tampered"][..]),
        ("summary.html", &["evidence_tampered"][..]),
        ("summary.pdf", &["evidence_tampered"][..]),
        ("access/alerts.jsonl", &["evidence_tampered"][..]),
        ("intake/ledger-summary.json", &["evidence_tampered"][..]),
    ] {
        for at in [0.0, 0.5, 0.99] {
            let copy = env.p(&format!("flip-{}-{at}", file.replace('/', "_")));
            copy_dir(&bundle, &copy);
            let p = copy.join(file);
            let mut b = std::fs::read(&p).unwrap();
            let i = ((b.len() - 1) as f64 * at) as usize;
            b[i] ^= 0x01;
            std::fs::write(&p, &b).unwrap();
            let out = verify(&env, &copy, Some(&key));
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{file} byte {i}: {err}");
            assert!(err.contains(file), "{file} byte {i}: {err}");
            assert!(
                reasons
                    .iter()
                    .any(|r| err.contains(&format!("[reason: {r}]"))),
                "{file} byte {i}: {err}"
            );
        }
    }

    // A removed and an added file.
    let copy = env.p("removed");
    copy_dir(&bundle, &copy);
    std::fs::remove_file(copy.join("access/roster-changes.json")).unwrap();
    assert_refused(
        &verify(&env, &copy, None),
        "access/roster-changes.json",
        "evidence_file_missing",
    );
    let copy = env.p("added");
    copy_dir(&bundle, &copy);
    std::fs::write(copy.join("certificates/extra.json"), b"{}\n").unwrap();
    assert_refused(
        &verify(&env, &copy, None),
        "certificates/extra.json",
        "evidence_file_added",
    );
    let copy = env.p("no-manifest");
    copy_dir(&bundle, &copy);
    std::fs::remove_file(copy.join("manifest.json")).unwrap();
    assert_refused(
        &verify(&env, &copy, None),
        "manifest.json",
        "evidence_manifest_invalid",
    );

    // Not a bundle, or an unusable key: exit 3.
    assert_eq!(verify(&env, &env.p("nowhere"), None).status.code(), Some(3));
    assert_eq!(
        verify(&env, &bundle, Some("not-a-key")).status.code(),
        Some(3)
    );

    // A bundle signed by another key verifies by itself but not against the agent's key.
    let other = env.p("other-pack");
    let out = env
        .cmd()
        .args(["--signing-key-file", env.p("other.key").to_str().unwrap()])
        .args([
            "evidence",
            "build",
            "--year",
            "2026",
            "--out",
            other.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(verify(&env, &other, None).status.success());
    assert_refused(
        &verify(&env, &other, Some(&key)),
        "manifest.json",
        "evidence_wrong_signer",
    );
    // ...nor does the other key's manifest over this bundle's files.
    let copy = env.p("swapped");
    copy_dir(&bundle, &copy);
    std::fs::copy(other.join("manifest.json"), copy.join("manifest.json")).unwrap();
    assert_eq!(verify(&env, &copy, None).status.code(), Some(1));

    // An existing folder is never written into; a bad period is refused.
    let out = build(&env, &bundle, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[reason: evidence_output_failed]"));
    assert!(
        verify(&env, &bundle, Some(&key)).status.success(),
        "left as it was"
    );
    let out = env.run(&[
        "evidence",
        "build",
        "--from",
        "2026-12-01",
        "--to",
        "2026-11-01",
        "--out",
        env.p("bad").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[reason: evidence_period_invalid]"));
    assert!(!env.p("bad").exists());
}

#[test]
fn a_shorter_period_holds_only_its_own_evidence() {
    let env = machine();
    // November 2026 only: the December print and everything else outside is left out.
    let bundle = env.p("pack-nov");
    let out = env.run(&[
        "evidence",
        "build",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex = json(&bundle, "access/exports-prints.json");
    let counts = ex["counts"].as_array().unwrap();
    assert_eq!(counts.len(), 1, "{ex}");
    assert_eq!(counts[0]["staff_id"], "N1");
    let ledger = json(&bundle, "intake/ledger-summary.json");
    assert_eq!(ledger["months"].as_array().unwrap().len(), 1);
    // The certificates and the ledger are of today (December): none in November.
    let v = json(&bundle, "certificates/verification.json");
    assert_eq!(v["in_period"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["chain"]["result"], "verified");
    assert_eq!(ledger["months"][0]["files_loaded"], 0, "{ledger}");
    assert!(verify(&env, &bundle, None).status.success());
}

#[test]
fn every_evidence_reason_is_in_the_runbook() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/evidence-pack.md"),
    )
    .unwrap();
    for r in kenko_agent::evidence::REASONS {
        assert!(
            page.contains(&format!("`{r}`")),
            "runbooks/evidence-pack.md lacks `{r}`"
        );
    }
}
