//! End-to-end tests of `kenko-agent incident report`: real alerts from the real binary (the
//! monitor following a health access log with a bulk read in it, and `access check --json`),
//! then the draft of the report to the Personal Information Protection Commission from them
//! and from incident files: every required item present, deadlines for both causes, values
//! from the alert, blanks marked, no resident value, and each failure with its reason.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kenko_agent::access::output::AlertRecord;

const ROSTER: &str = "\
id,role,status,retired_on,scope,terminals
N1,public_health_nurse,active,,D01,T1
OLD,clerk,retired,2026-10-31,D01,T4
";

/// Every item the draft must have (the 速報 and 確報 items and the parts of the 概要), as the
/// Markdown heads them: written out here, not taken from the code, so removing one fails.
const REQUIRED: &[(&str, &str)] = &[
    ("summary", "事案の概要"),
    ("discovered_at", "発覚日時"),
    ("occurred_at", "発生日時"),
    ("detection", "発覚の経緯"),
    ("reportable", "報告対象事態の該当性"),
    ("entrusted", "委託先の関与"),
    (
        "data_items",
        "漏えい等が発生し又は発生したおそれがある個人情報の項目",
    ),
    ("specific_personal_information", "特定個人情報"),
    (
        "people",
        "漏えい等が発生し又は発生したおそれがある個人情報に係る本人の数",
    ),
    ("cause", "原因"),
    ("improper_purpose", "不正の目的をもって行われたおそれの有無"),
    (
        "secondary_damage",
        "二次被害又はそのおそれの有無及びその内容",
    ),
    ("response_to_individuals", "本人への対応の実施状況"),
    ("publication", "公表の実施状況"),
    ("prevention", "再発防止のための措置"),
    ("other", "その他参考となる事項"),
];

const SECTIONS: &[&str] = &[
    "## 1. 概要",
    "## 2. 漏えい等が発生し又は発生したおそれがある個人情報の項目",
    "## 3. 本人の数",
    "## 4. 原因",
    "## 5. 二次被害又はそのおそれの有無及びその内容",
    "## 6. 本人への対応の実施状況",
    "## 7. 公表の実施状況",
    "## 8. 再発防止のための措置",
    "## 9. その他参考となる事項",
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// The resident token of resident `n` in the generated log: it must never reach a draft.
fn token(n: u32) -> String {
    format!("rtok{n:08x}")
}

/// One health-log line at `secs` after 09:00 JST on Monday 2026-11-02.
fn health(secs: u32, staff: &str, terminal: &str, resident: u32) -> String {
    let s = 9 * 3600 + secs;
    format!(
        "{{\"time\":\"2026-11-02T{:02}:{:02}:{:02}+09:00\",\"staff_id\":\"{staff}\",\"terminal\":\"{terminal}\",\"action\":\"view\",\"subject\":\"{}\",\"district\":\"D01\",\"records\":1,\"outcome\":\"success\"}}\n",
        s / 3600,
        s / 60 % 60,
        s % 60,
        token(resident)
    )
}

/// N1 views 400 distinct residents in 34 minutes (a bulk read, above the 300 threshold) and a
/// retired account views one.
fn incident_log() -> String {
    let mut s: String = (0..400).map(|i| health(i * 5, "N1", "T1", i)).collect();
    s.push_str(&health(2500, "OLD", "T4", 7));
    s
}

struct Ws {
    dir: tempfile::TempDir,
    port: u16,
}

impl Ws {
    fn new() -> Ws {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("roster.csv"), ROSTER).unwrap();
        let ws = Ws {
            dir,
            port: free_port(),
        };
        std::fs::write(
            ws.p("agent.toml"),
            format!(
                "[access]\nhealth_log = \"{}\"\nroster = \"{}\"\npoll_ms = 100\ncheckpoint_secs = 0\n",
                ws.p("logs/access.jsonl").display(),
                ws.p("roster.csv").display()
            ),
        )
        .unwrap();
        ws
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(common::agent_bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KENKO_LOG", "info")
            .arg("--config")
            .arg(self.p("agent.toml"))
            .arg("--data-dir")
            .arg(self.p("data"))
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", self.port));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kenko-agent {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn alert_file(&self) -> PathBuf {
        self.p("data/access/alerts.jsonl")
    }

    fn alerts(&self) -> Vec<AlertRecord> {
        std::fs::read_to_string(self.alert_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn start(&self) -> Child {
        self.cmd()
            .args(["access", "run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.p("agent.log")).unwrap())
            .spawn()
            .unwrap()
    }

    /// The monitor follows the log and writes its alerts; stopped with SIGTERM.
    fn monitor_the_incident(&self) -> Vec<AlertRecord> {
        let mut agent = self.start();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.p("logs/access.jsonl"))
            .unwrap();
        f.write_all(incident_log().as_bytes()).unwrap();
        drop(f);
        wait_for(60, "the bulk read and retired account alerts", || {
            let a = self.alerts();
            a.iter().any(|a| a.rule == "access.bulk_read")
                && a.iter().any(|a| a.rule == "access.retired_account")
        });
        let ok = Command::new("kill")
            .args(["-TERM", &agent.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        assert!(agent.wait().unwrap().success());
        self.alerts()
    }

    /// `access check --json` of the incident log, as an alert file.
    fn checked_alerts(&self) -> (PathBuf, Vec<AlertRecord>) {
        let log = self.p("day.jsonl");
        std::fs::write(&log, incident_log()).unwrap();
        let out = self.run(&[
            "access",
            "check",
            "--json",
            "--roster",
            self.p("roster.csv").to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        // A retired account is critical: exit 3.
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        let path = self.p("checked.jsonl");
        std::fs::write(&path, &out.stdout).unwrap();
        let alerts = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (path, alerts)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.p(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn id_of<'a>(alerts: &'a [AlertRecord], rule: &str) -> &'a AlertRecord {
    alerts.iter().find(|a| a.rule == rule).unwrap()
}

fn tokyo(rfc3339: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
}

fn jst(rfc3339: &str) -> String {
    tokyo(rfc3339)
        .format("%Y-%m-%d %H:%M:%S (日本時間)")
        .to_string()
}

fn jst_rfc3339(rfc3339: &str) -> String {
    tokyo(rfc3339).to_rfc3339()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

fn item<'a>(j: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    j["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no item {key} in {j}"))
}

/// No resident token of the generated log, and no district, terminal of others, nor anything
/// of a resident's record is in a draft.
fn assert_no_personal_value(text: &str) {
    for n in 0..400 {
        assert!(!text.contains(&token(n)), "resident token {n} in the draft");
    }
    assert!(!text.contains("rtok"), "a resident token in the draft");
    assert!(!text.contains("\"subject\""));
}

/// The monitor's own alert file: the draft has every item, the alert's values, the blanks
/// and the deadlines, and nothing of a resident.
#[test]
fn a_draft_from_the_monitors_alert_has_every_item_and_the_alerts_values() {
    let ws = Ws::new();
    let alerts = ws.monitor_the_incident();
    let bulk = id_of(&alerts, "access.bulk_read");
    assert_eq!(bulk.status, "firing");
    assert!(bulk.count > 300, "{bulk:?}");

    let md = ws.run_ok(&["incident", "report", "--alert", &bulk.id]);
    for (_, label) in REQUIRED {
        assert!(
            md.lines()
                .any(|l| l.starts_with("### ") && l.contains(label)),
            "the draft lacks the item {label}:\n{md}"
        );
    }
    for s in SECTIONS {
        assert!(md.lines().any(|l| l == *s), "the draft lacks {s}");
    }
    // Values from the alert.
    assert!(md.contains(&format!("アラート ID: {}", bulk.id)));
    assert!(md.contains("規則: access.bulk_read (重大度 warning)"));
    assert!(md.contains("操作者 ID(職員又は主体の ID): N1"));
    assert!(md.contains(&format!("推計 {} 人以上", bulk.count)), "{md}");
    assert!(md.contains("runbook: runbooks/access-bulk-read.md"));
    // The window and the detection (the firing line's end) in Tokyo time.
    assert!(
        md.contains(&format!(
            "期間: {} 〜 {}",
            jst(&bulk.window_start),
            jst(&bulk.window_end)
        )),
        "{md}"
    );
    // The items of a bulk read of health records.
    for l in [
        "氏名: 発生したおそれあり",
        "生年月日: 発生したおそれあり",
        "住所: 発生したおそれあり",
        "予防接種記録",
        "個人番号: 要確認",
    ] {
        assert!(md.contains(l), "{l} missing:\n{md}");
    }
    // What only people know is blank.
    let blanks = md.matches("【要記入】").count();
    assert!(blanks >= 9, "{blanks} blanks:\n{md}");
    for key in [
        "summary",
        "cause",
        "secondary_damage",
        "response_to_individuals",
        "publication",
        "prevention",
        "improper_purpose",
    ] {
        let label = REQUIRED.iter().find(|(k, _)| *k == key).unwrap().1;
        let after = md.split(&format!("### {label}")).nth(1).unwrap();
        assert!(
            after.trim_start().starts_with("【要記入】") || after.contains("\n【要記入】"),
            "{key} is not blank"
        );
    }
    // Deadlines: the detection on 2026-11-02 (JST) is day 1; purpose unknown shows both.
    assert!(md.contains("発覚日: 2026-11-02"));
    assert!(md.contains("| 速報 | 2026-11-05 を目標(遅くとも概ね 2026-11-07)"));
    assert!(md.contains("| 確報(30日) | 2026-12-01 |"), "{md}");
    assert!(md.contains("| 確報(60日) | 2026-12-31 |"));
    assert!(md.contains("30日(2026-12-01)と60日(2026-12-31)の両方"));
    assert_no_personal_value(&md);

    // The machine form: every item, with its value or null.
    let j = json(&ws.run_ok(&["incident", "report", "--alert", &bulk.id, "--json"]));
    for (key, _) in REQUIRED {
        let i = item(&j, key);
        assert_eq!(i["blank"], i["value"].is_null(), "{key}");
    }
    assert_eq!(j["items"].as_array().unwrap().len(), REQUIRED.len());
    assert!(item(&j, "cause")["value"].is_null());
    assert!(item(&j, "summary")["value"].is_null());
    assert_eq!(item(&j, "detection")["origin"], "alert");
    assert_eq!(item(&j, "people")["origin"], "alert");
    assert_eq!(j["alert"]["actor"], "N1");
    assert_eq!(j["alert"]["count"], bulk.count);
    assert_eq!(j["deadlines"]["discovered_on"], "2026-11-02");
    assert_eq!(
        j["deadlines"]["discovered_at"],
        jst_rfc3339(&bulk.window_end).as_str()
    );
    assert_eq!(item(&j, "discovered_at")["origin"], "alert");
    assert_eq!(j["deadlines"]["final"], serde_json::Value::Null);
    assert_eq!(j["deadlines"]["improper_purpose"], "unknown");
    assert_no_personal_value(&j.to_string());

    // --out writes the same draft.
    let out = ws.p("draft.md");
    ws.run_ok(&[
        "incident",
        "report",
        "--alert",
        &bulk.id,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), md);

    // The retired account's alert: every item possible, no estimate of people from events.
    let old = id_of(&alerts, "access.retired_account");
    let j = json(&ws.run_ok(&["incident", "report", "--alert", &old.id, "--json"]));
    assert!(item(&j, "people")["value"].is_null());
    assert!(item(&j, "data_items")["value"]
        .as_str()
        .unwrap()
        .contains("個人番号: 要確認"));
}

/// Deadlines follow the cause: 60 days for an improper purpose, 30 otherwise, from the
/// incident file's 発覚日時; its fields win over the alert's.
#[test]
fn deadlines_follow_the_cause_and_the_incident_files_discovery() {
    let ws = Ws::new();
    let (alerts_path, alerts) = ws.checked_alerts();
    let bulk = id_of(&alerts, "access.bulk_read");
    let alert_file = alerts_path.to_str().unwrap();
    let with = |purpose: &str| {
        ws.write(
            &format!("inc-{purpose}.toml"),
            &format!(
                "[incident]\nid = \"KOSHIGAYA-2026-07\"\nalert = \"{}\"\n\
                 discovered_at = \"2026-11-04T18:30:00+09:00\"\nimproper_purpose = \"{purpose}\"\n\
                 summary = \"職員アカウントによる大量閲覧を検知した。\"\ncause = \"調査中\"\npeople = 402\npeople_estimate = true\n\
                 data_items = [\"name\", \"birth_date\", \"address\", \"vaccination_record\"]\n",
                bulk.id
            ),
        )
    };
    let improper = with("yes");
    let j = json(&ws.run_ok(&[
        "incident",
        "report",
        "--file",
        improper.to_str().unwrap(),
        "--alert-file",
        alert_file,
        "--json",
    ]));
    assert_eq!(j["alert_id"], bulk.id.as_str());
    assert_eq!(j["deadlines"]["discovered_on"], "2026-11-04");
    assert_eq!(j["deadlines"]["preliminary_target"], "2026-11-07");
    assert_eq!(j["deadlines"]["final"]["days"], 60);
    assert_eq!(j["deadlines"]["final"]["date"], "2027-01-02");
    assert_eq!(
        item(&j, "discovered_at")["value"],
        "2026-11-04T18:30:00+09:00"
    );
    assert_eq!(item(&j, "discovered_at")["origin"], "incident_file");
    assert_eq!(item(&j, "people")["value"], "約 402 人(概数)");
    assert_eq!(item(&j, "cause")["value"], "調査中");
    assert_eq!(
        item(&j, "specific_personal_information")["value"],
        "該当しない(個人番号を含まない)"
    );
    // The alert still fills in what the file does not say.
    assert_eq!(item(&j, "detection")["origin"], "alert");

    let proper = with("no");
    let md = ws.run_ok(&[
        "incident",
        "report",
        "--file",
        proper.to_str().unwrap(),
        "--alert-file",
        alert_file,
    ]);
    assert!(md.contains("確報の期限: 2026-12-03(30日以内)"), "{md}");
    assert!(md.contains("| 確報(30日) | 2026-12-03(適用) |"));
    assert!(md.contains("| 確報(60日) | 2027-01-02(不適用) |"));
    assert!(md.contains("事案番号: KOSHIGAYA-2026-07"));
    assert_no_personal_value(&md);

    // Without a firing line (access check writes resolved ones), the detection is the
    // earliest possible time: the window's start.
    let j = json(&ws.run_ok(&[
        "incident",
        "report",
        "--alert",
        &bulk.id,
        "--alert-file",
        alert_file,
        "--json",
    ]));
    assert_eq!(
        j["deadlines"]["discovered_at"],
        jst_rfc3339(&bulk.window_start).as_str()
    );
}

/// A file alone (no alert) is a draft too; a My Number in its text is refused.
#[test]
fn an_incident_file_alone_makes_a_draft_and_a_my_number_is_refused() {
    let ws = Ws::new();
    let f = ws.write(
        "inc.toml",
        "[incident]\ndiscovered_at = 2026-12-28T10:00:00+09:00\ndata_items = [\"my_number\", \"name\"]\n",
    );
    let j = json(&ws.run_ok(&[
        "incident",
        "report",
        "--file",
        f.to_str().unwrap(),
        "--json",
    ]));
    assert!(j["alert_id"].is_null());
    assert!(item(&j, "detection")["value"].is_null());
    assert!(item(&j, "people")["value"].is_null());
    assert!(item(&j, "specific_personal_information")["value"]
        .as_str()
        .unwrap()
        .starts_with("該当する"));
    assert_eq!(j["deadlines"]["final_30_days"], "2027-01-26");

    let f = ws.write(
        "mynumber.toml",
        "[incident]\ndiscovered_at = \"2026-12-01T10:00:00+09:00\"\n\ncause = \"番号 123456789018 の住民\"\n",
    );
    let out = ws.run(&["incident", "report", "--file", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("[reason: incident_file_invalid]"), "{err}");
    assert!(err.contains("line 4") && err.contains("`cause`"), "{err}");
    assert!(!err.contains("123456789018"), "{err}");
    assert!(out.stdout.is_empty());
}

fn fails_with(out: &Output, reason: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("[reason: {reason}]")),
        "expected {reason}: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(out.stdout.is_empty());
    err
}

#[test]
fn each_failure_is_one_line_with_its_reason_and_never_a_value() {
    let ws = Ws::new();
    let (alerts_path, _) = ws.checked_alerts();
    let alert_file = alerts_path.to_str().unwrap();

    let err = fails_with(
        &ws.run(&[
            "incident",
            "report",
            "--alert",
            "00000000deadbeef",
            "--alert-file",
            alert_file,
        ]),
        "incident_alert_unknown",
    );
    assert!(err.contains("00000000deadbeef"));
    let err = fails_with(
        &ws.run(&["incident", "report", "--alert", "Taro Yamada 1990-01-01"]),
        "incident_alert_unknown",
    );
    assert!(!err.contains("Yamada"), "{err}");
    // The default alert file of a monitor that never ran.
    fails_with(
        &ws.run(&["incident", "report", "--alert", "00000000deadbeef"]),
        "incident_alert_file_unreadable",
    );
    fails_with(
        &ws.run(&[
            "incident",
            "report",
            "--file",
            ws.p("missing.toml").to_str().unwrap(),
        ]),
        "incident_file_unreadable",
    );
    let bad = ws.write(
        "bad.toml",
        "[incident]\ndiscovered_at = \"2026-11-02T10:00:00+09:00\"\npeople = \"Hanako Suzuki\"\n",
    );
    let err = fails_with(
        &ws.run(&["incident", "report", "--file", bad.to_str().unwrap()]),
        "incident_file_invalid",
    );
    assert!(
        err.contains("bad.toml") && err.contains("line 3") && err.contains("`people`"),
        "{err}"
    );
    assert!(err.contains("integer") && !err.contains("Suzuki"), "{err}");
    let syntax = ws.write("syntax.toml", "[incident]\nsummary = \"Hanako Suzuki\n");
    let err = fails_with(
        &ws.run(&["incident", "report", "--file", syntax.to_str().unwrap()]),
        "incident_file_invalid",
    );
    assert!(err.contains("line 2") && !err.contains("Suzuki"), "{err}");
    let no_time = ws.write("notime.toml", "[incident]\nsummary = \"x\"\n");
    let err = fails_with(
        &ws.run(&["incident", "report", "--file", no_time.to_str().unwrap()]),
        "incident_file_invalid",
    );
    assert!(err.contains("discovered_at"), "{err}");
    let other = ws.write(
        "other.toml",
        "[incident]\nalert = \"0123456789abcdef\"\ndiscovered_at = \"2026-11-02T10:00:00+09:00\"\n",
    );
    fails_with(
        &ws.run(&[
            "incident",
            "report",
            "--file",
            other.to_str().unwrap(),
            "--alert",
            "fedcba9876543210",
        ]),
        "incident_file_invalid",
    );
    let ok = ws.write(
        "ok.toml",
        "[incident]\ndiscovered_at = \"2026-11-02T10:00:00+09:00\"\n",
    );
    fails_with(
        &ws.run(&[
            "incident",
            "report",
            "--file",
            ok.to_str().unwrap(),
            "--out",
            // Under a regular file: no folder can be made there.
            ws.p("ok.toml/draft.md").to_str().unwrap(),
        ]),
        "incident_output_failed",
    );
    // Neither an alert nor a file: a usage error.
    let out = ws.run(&["incident", "report"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The reasons are listed in the agent's FAILURE_REASONS once the engineer adds them; until
/// then this checks the runbook explains each.
#[test]
fn every_incident_reason_is_in_the_runbook() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks/incident-report.md"),
    )
    .unwrap();
    for r in kenko_agent::incident::REASONS {
        assert!(page.contains(&format!("`{r}`")), "runbook lacks `{r}`");
    }
}
