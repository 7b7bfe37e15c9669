//! End-to-end tests of access monitoring: the real `kenko-agent` binary following real files
//! (growth, rotation), killed with `kill -9` and restarted, posting to a real Alertmanager on
//! loopback, and `audit-log verify` against logs changed on disk. Every wait polls a condition
//! (a file's content, the metrics endpoint) with a deadline.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kenko_agent::access::output::{http_request, AlertRecord};

const ROSTER: &str = "\
id,role,status,retired_on,scope,terminals
N1,public_health_nurse,active,,D01,T1
N2,public_health_nurse,active,,D02,T2
SV,supervisor,active,,*,T3
OLD,clerk,retired,2026-10-31,D01,T4
OP1,operator,active,,,*
";

fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kenko-agent"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 50 ms until it holds or `secs` pass (then panics with `what`).
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

/// One health-log line (JST time of 2026-11-02 unless the time has a date).
fn health(
    time: &str,
    staff: &str,
    terminal: &str,
    action: &str,
    resident: u32,
    district: &str,
) -> String {
    let t = if time.len() <= 8 {
        format!("2026-11-02T{time}+09:00")
    } else {
        time.to_string()
    };
    let subject = if matches!(action, "login" | "login_failed") {
        String::new()
    } else {
        format!(",\"subject\":\"rtok{resident:08x}\",\"district\":\"{district}\"")
    };
    let outcome = if action == "login_failed" {
        "denied"
    } else {
        "success"
    };
    format!(
        "{{\"time\":\"{t}\",\"staff_id\":\"{staff}\",\"terminal\":\"{terminal}\",\"action\":\"{action}\"{subject},\"records\":1,\"outcome\":\"{outcome}\"}}\n"
    )
}

/// A normal working morning of N1: views of residents of D01 from T1.
fn normal_lines(n: u32, from: u32) -> String {
    (0..n)
        .map(|i| {
            let s = 9 * 3600 + (from + i) % 7 * 60 + i % 60;
            let t = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
            health(&t, "N1", "T1", "view", (from + i) % 40, "D01")
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn k8s(
    time: &str,
    user: &str,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    group: &str,
    ns: &str,
    name: &str,
) -> String {
    let mut obj =
        format!("{{\"resource\":\"{resource}\",\"namespace\":\"{ns}\",\"name\":\"{name}\"");
    if let Some(s) = sub {
        obj.push_str(&format!(",\"subresource\":\"{s}\""));
    }
    if !group.is_empty() {
        obj.push_str(&format!(",\"apiGroup\":\"{group}\""));
    }
    obj.push('}');
    format!(
        "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":\"a-{time}\",\"stage\":\"ResponseComplete\",\"verb\":\"{verb}\",\"user\":{{\"username\":\"{user}\"}},\"objectRef\":{obj},\"responseStatus\":{{\"code\":200}},\"requestReceivedTimestamp\":\"{time}\",\"stageTimestamp\":\"{time}\"}}\n"
    )
}

fn ct_record(
    time: &str,
    identity: &str,
    source: &str,
    name: &str,
    params: &str,
    resources: &str,
) -> String {
    format!(
        "{{\"eventVersion\":\"1.09\",\"userIdentity\":{identity},\"eventTime\":\"{time}\",\"eventSource\":\"{source}\",\"eventName\":\"{name}\",\"awsRegion\":\"ap-northeast-1\",\"requestParameters\":{params},\"responseElements\":null,\"resources\":{resources},\"eventType\":\"AwsApiCall\",\"recipientAccountId\":\"111122223333\"}}"
    )
}

fn sso(session: &str) -> String {
    format!("{{\"type\":\"AssumedRole\",\"principalId\":\"AROAEXAMPLE:{session}\",\"arn\":\"arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_KenkoOperator_5f1c2d/{session}\",\"accountId\":\"111122223333\",\"sessionContext\":{{\"sessionIssuer\":{{\"type\":\"Role\",\"userName\":\"AWSReservedSSO_KenkoOperator_5f1c2d\"}}}}}}")
}

fn provider_role() -> String {
    "{\"type\":\"AssumedRole\",\"principalId\":\"AROAX:support\",\"arn\":\"arn:aws:sts::111122223333:assumed-role/OrganizationAccountAccessRole/support\",\"accountId\":\"111122223333\",\"sessionContext\":{\"sessionIssuer\":{\"type\":\"Role\",\"userName\":\"OrganizationAccountAccessRole\"}}}".to_string()
}

/// A gzipped CloudTrail log file of these records.
fn cloudtrail_gz(records: &[String]) -> Vec<u8> {
    let json = format!("{{\"Records\":[{}]}}", records.join(","));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(json.as_bytes()).unwrap();
    enc.finish().unwrap()
}

/// Writes a file the way a delivery should appear: whole, by rename.
fn deliver(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A test's directory, configuration and agent.
struct Ws {
    dir: tempfile::TempDir,
    port: u16,
    extra: String,
}

impl Ws {
    fn new(extra: &str) -> Ws {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::create_dir_all(dir.path().join("cloudtrail")).unwrap();
        std::fs::write(dir.path().join("roster.csv"), ROSTER).unwrap();
        let ws = Ws {
            dir,
            port: free_port(),
            extra: extra.to_string(),
        };
        ws.write_config();
        ws
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn health_log(&self) -> PathBuf {
        self.p("logs/access.jsonl")
    }

    fn write_config(&self) {
        let cfg = format!(
            "[access]\nhealth_log = \"{}\"\nk8s_audit_log = \"{}\"\ncloudtrail_dir = \"{}\"\nroster = \"{}\"\npoll_ms = 100\n{}{}\n",
            self.health_log().display(),
            self.p("logs/audit.jsonl").display(),
            self.p("cloudtrail").display(),
            self.p("roster.csv").display(),
            self.extra,
            if self.extra.contains("checkpoint_secs") {
                ""
            } else {
                "checkpoint_secs = 0\n"
            }
        );
        std::fs::write(self.p("agent.toml"), cfg).unwrap();
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(agent_bin());
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

    fn start(&self) -> Child {
        self.cmd()
            .args(["access", "run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.p("agent.log")).unwrap())
            .spawn()
            .unwrap()
    }

    fn state(&self) -> PathBuf {
        self.p("data/access")
    }

    fn checkpoint(&self) -> Option<serde_json::Value> {
        let b = std::fs::read(self.state().join("checkpoint.json")).ok()?;
        serde_json::from_slice(&b).ok()
    }

    fn checkpoint_events(&self, source: &str) -> u64 {
        self.checkpoint()
            .and_then(|c| c["events"][source].as_u64())
            .unwrap_or(0)
    }

    fn alerts(&self) -> Vec<AlertRecord> {
        std::fs::read_to_string(self.state().join("alerts.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line {l:?}: {e}")))
            .collect()
    }

    fn alert_rules(&self) -> BTreeSet<String> {
        self.alerts().into_iter().map(|a| a.rule).collect()
    }

    /// The value of a metric line on the metrics endpoint, if it is there.
    fn metric(&self, series: &str) -> Option<f64> {
        let (code, body) = http_request(
            "GET",
            &format!("http://127.0.0.1:{}/metrics", self.port),
            None,
        )
        .ok()?;
        if code != 200 {
            return None;
        }
        String::from_utf8(body).ok()?.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }
}

fn sigterm(child: &mut Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the agent stops cleanly on SIGTERM: {status}"
    );
}

fn kill9(child: &mut Child) {
    // Child::kill sends SIGKILL: kill -9.
    child.kill().unwrap();
    let _ = child.wait();
}

/// Each detector fed through `access check` fires on its crafted lines, and a normal day is
/// quiet. (The volume anomaly needs weeks of baseline: kenko-access tests it.)
#[test]
fn check_fires_each_rule_and_a_normal_day_is_quiet() {
    let ws = Ws::new("");
    let normal = ws.p("normal.jsonl");
    std::fs::write(&normal, normal_lines(500, 0)).unwrap();
    let out = ws.run(&["access", "check", normal.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.trim().is_empty(),
        "a normal morning raises nothing: {stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("500 events"));

    let mut h = normal_lines(50, 0);
    h += &health("22:30:00", "N1", "T1", "view", 1, "D01"); // off hours
    h += &health("10:00:00", "OLD", "T4", "view", 2, "D01"); // retired
    h += &health("10:00:01", "GHOST", "T9", "view", 3, "D01"); // unknown
    h += &health("10:00:02", "N2", "T9", "view", 4, "D02"); // unregistered terminal
    h += &health("10:00:03", "N2", "T2", "view", 5, "D05"); // outside caseload
    for i in 0..6 {
        h += &health(&format!("08:50:0{i}"), "SV", "T3", "login_failed", 0, "");
    }
    h += &health("11:00:00", "SV", "T3", "export", 6, "D01")
        .replace("\"records\":1", "\"records\":1500");
    for i in 0..320u32 {
        let s = 13 * 3600 + i * 10;
        let t = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
        h += &health(&t, "N2", "T2", "view", 1000 + i, "D02");
    }
    // Lines in time order (the log's contract).
    let mut lines: Vec<&str> = h.lines().collect();
    lines.sort_by_key(|l| l[9..34].to_string());
    let h: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let hp = ws.p("crafted.jsonl");
    std::fs::write(&hp, &h).unwrap();
    let kp = ws.p("audit.jsonl");
    std::fs::write(
        &kp,
        [
            k8s(
                "2026-11-02T01:00:00.000000Z",
                "OP1",
                "create",
                "pods",
                Some("exec"),
                "",
                "kenko",
                "postgres-0",
            ),
            k8s(
                "2026-11-02T01:00:05.000000Z",
                "OP1",
                "get",
                "secrets",
                None,
                "",
                "kenko",
                "db",
            ),
            k8s(
                "2026-11-02T01:00:09.000000Z",
                "system:serviceaccount:kenko:app",
                "get",
                "secrets",
                None,
                "",
                "kenko",
                "db",
            ),
        ]
        .concat(),
    )
    .unwrap();
    let cp = ws.p("ct.json.gz");
    std::fs::write(
        &cp,
        cloudtrail_gz(&[
            ct_record(
                "2026-11-02T02:00:00Z",
                &sso("OP1"),
                "s3.amazonaws.com",
                "GetObject",
                "{\"bucketName\":\"kenko-records\",\"key\":\"x\"}",
                "[]",
            ),
            ct_record(
                "2026-11-02T02:00:01Z",
                &provider_role(),
                "iam.amazonaws.com",
                "CreateUser",
                "{\"userName\":\"x\"}",
                "[]",
            ),
        ]),
    )
    .unwrap();
    let out = ws.run(&[
        "access",
        "check",
        "--json",
        hp.to_str().unwrap(),
        kp.to_str().unwrap(),
        cp.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(3),
        "critical alerts → exit 3: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts: Vec<AlertRecord> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: BTreeSet<(String, String)> = alerts
        .iter()
        .map(|a| (a.rule.clone(), a.actor.clone()))
        .collect();
    for (rule, actor) in [
        ("access.off_hours", "N1"),
        ("access.retired_account", "OLD"),
        ("access.unknown_account", "GHOST"),
        ("access.unregistered_terminal", "N2"),
        ("access.outside_caseload", "N2"),
        ("access.failed_login_burst", "SV"),
        ("access.export_volume", "SV"),
        ("access.bulk_read", "N2"),
        ("access.privilege_change", "OP1"),
        ("access.provider_data_read", "OP1"),
        (
            "access.privilege_change",
            "OrganizationAccountAccessRole/support",
        ),
    ] {
        assert!(
            got.contains(&(rule.to_string(), actor.to_string())),
            "{rule} by {actor} missing in {got:?}"
        );
    }
    // Nothing fires for the service account, and no resident token reaches an alert.
    assert!(!stdout.contains("system:serviceaccount"), "{stdout}");
    assert!(!stdout.contains("rtok"), "{stdout}");
    for a in &alerts {
        assert!(a.runbook_url.starts_with("runbooks/access-"), "{a:?}");
    }
}

/// `access run` follows the three inputs as they grow: each produces its alerts in the alert
/// file, the metrics count every event by source, and SIGTERM leaves a checkpoint.
#[test]
fn run_follows_the_three_inputs() {
    let ws = Ws::new("");
    let mut agent = ws.start();
    wait_for(30, "the metrics endpoint", || {
        ws.metric("kenko_access_monitor_running").is_some()
    });
    append(&ws.health_log(), &normal_lines(100, 0));
    append(
        &ws.health_log(),
        &health("10:00:00", "OLD", "T4", "view", 2, "D01"),
    );
    append(
        &ws.p("logs/audit.jsonl"),
        &k8s(
            "2026-11-02T01:00:00.000000Z",
            "OP1",
            "patch",
            "clusterrolebindings",
            None,
            "rbac.authorization.k8s.io",
            "",
            "admin",
        ),
    );
    deliver(
        &ws.p("cloudtrail/AWSLogs/111122223333/CloudTrail/ap-northeast-1/2026/11/02/a.json.gz"),
        &cloudtrail_gz(&[ct_record(
            "2026-11-02T02:00:00Z",
            &sso("OP1"),
            "s3.amazonaws.com",
            "GetObject",
            "{\"bucketName\":\"kenko-records\",\"key\":\"x\"}",
            "[]",
        )]),
    );
    wait_for(30, "alerts from all three inputs", || {
        let r = ws.alert_rules();
        r.contains("access.retired_account")
            && r.contains("access.privilege_change")
            && r.contains("access.provider_data_read")
    });
    wait_for(30, "events counted by source", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(101.0)
            && ws.metric("kenko_access_events_total{source=\"k8s_audit\"}") == Some(1.0)
            && ws.metric("kenko_access_events_total{source=\"cloudtrail\"}") == Some(1.0)
    });
    assert_eq!(
        ws.metric(
            "kenko_access_alerts_total{rule=\"access.retired_account\",severity=\"critical\"}"
        ),
        Some(1.0)
    );
    sigterm(&mut agent);
    assert_eq!(ws.checkpoint_events("health"), 101);
    assert_eq!(ws.checkpoint_events("cloudtrail"), 1);
    let text = std::fs::read_to_string(ws.state().join("alerts.jsonl")).unwrap();
    assert!(
        !text.contains("rtok"),
        "no resident token in alerts: {text}"
    );
    // A restart reads nothing again and writes no alert twice.
    let before = ws.alerts();
    let mut agent = ws.start();
    wait_for(30, "the restarted agent", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(101.0)
    });
    append(&ws.health_log(), &normal_lines(10, 100));
    wait_for(30, "the new lines", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(111.0)
    });
    sigterm(&mut agent);
    assert_eq!(ws.alerts(), before);
    assert_eq!(ws.checkpoint_events("health"), 111);
}

/// A log with alerts all along it, written while the agent reads; `kill -9` mid-stream, then a
/// restart: every line is counted exactly once and every alert is in the file exactly once,
/// the same alerts a one-shot `access check` finds.
#[test]
fn kill_9_mid_stream_counts_every_event_once() {
    let ws = Ws::new("checkpoint_secs = 1\n");
    // 60,000 lines over many days, with off-hours and retired-account events sprinkled in.
    let mut text = String::new();
    let mut n = 0u64;
    for day in 2..=27u32 {
        for i in 0..2300u32 {
            let s = 9 * 3600 + i * 10;
            let t = format!(
                "2026-11-{day:02}T{:02}:{:02}:{:02}+09:00",
                s / 3600,
                s / 60 % 60,
                s % 60
            );
            text += &health(&t, "N1", "T1", "view", i % 40, "D01");
            n += 1;
        }
        let t = format!("2026-11-{day:02}T23:00:00+09:00");
        text += &health(&t, "N2", "T2", "view", 1, "D02");
        text += &health(&t, "OLD", "T4", "view", 1, "D01");
        n += 2;
    }
    let total = n;
    let bytes = text.into_bytes();
    let mut agent = ws.start();
    // A writer appends small pieces all along while the agent reads and checkpoints every
    // second, so the kill lands with work done after the last checkpoint.
    let log = ws.health_log();
    let writer = std::thread::spawn(move || {
        let mut written = 0;
        while written < bytes.len() {
            let mut cut = (written + 16 * 1024).min(bytes.len());
            while bytes[cut - 1] != b'\n' {
                cut += 1;
            }
            append(&log, std::str::from_utf8(&bytes[written..cut]).unwrap());
            written = cut;
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    wait_for(60, "a checkpoint a third of the way", || {
        ws.checkpoint_events("health") > total / 3
    });
    kill9(&mut agent);
    let at_kill = ws.checkpoint_events("health");
    let alerts_at_kill = ws.alerts().len();
    writer.join().unwrap();
    assert!(at_kill < total, "killed mid-stream ({at_kill} of {total})");
    eprintln!("killed at {at_kill} of {total} events, {alerts_at_kill} alert lines");
    let mut agent = ws.start();
    wait_for(120, "every line", || {
        ws.checkpoint_events("health") == total
    });
    wait_for(30, "the metric", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(total as f64)
    });
    sigterm(&mut agent);
    assert_eq!(
        ws.checkpoint_events("health"),
        total,
        "no event counted twice"
    );
    let alerts = ws.alerts();
    let mut keys = BTreeMap::new();
    for a in &alerts {
        *keys.entry((a.id.clone(), a.status.clone())).or_insert(0) += 1;
    }
    assert!(
        keys.values().all(|&n| n == 1),
        "an alert written twice: {keys:?}"
    );
    // The same alerts as one reading of the whole file.
    let out = ws.run(&[
        "access",
        "check",
        "--json",
        ws.health_log().to_str().unwrap(),
    ]);
    let once: BTreeSet<(String, String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<AlertRecord>(l).unwrap())
        .map(|a| (a.id, a.rule, a.actor))
        .collect();
    let followed: BTreeSet<(String, String, String)> = alerts
        .iter()
        .filter(|a| a.status == "firing")
        .map(|a| (a.id.clone(), a.rule.clone(), a.actor.clone()))
        .collect();
    assert_eq!(followed, once);
    assert!(once.len() >= 26, "{once:?}");
}

/// Rotation while running (rename, late lines in the old file, a new file) and while stopped,
/// and truncation in place (copytruncate, with fewer new bytes than were read): nothing is lost.
#[test]
fn rotation_loses_nothing() {
    let ws = Ws::new("");
    let log = ws.health_log();
    let mut agent = ws.start();
    append(&log, &normal_lines(300, 0));
    wait_for(30, "the first lines", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(300.0)
    });
    // The writer still holds the old file when it is renamed, and writes a few more lines.
    let mut old = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, ws.p("logs/access.jsonl.1")).unwrap();
    old.write_all(normal_lines(7, 300).as_bytes()).unwrap();
    drop(old);
    append(&log, &normal_lines(200, 400));
    wait_for(30, "the rotated file's end and the new file", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(507.0)
    });
    assert_eq!(
        ws.metric("kenko_access_file_changes_total{kind=\"rotated\",source=\"health\"}"),
        Some(1.0)
    );
    sigterm(&mut agent);
    // Stopped: more lines, a rotation, a new file.
    append(&log, &normal_lines(11, 700));
    std::fs::rename(&log, ws.p("logs/access.jsonl.2")).unwrap();
    append(&log, &normal_lines(13, 800));
    let mut agent = ws.start();
    wait_for(30, "what was written while stopped", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(531.0)
    });
    // copytruncate: the file is emptied in place and written again from the top.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &normal_lines(5, 900));
    wait_for(30, "the lines after the truncation", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(536.0)
    });
    assert_eq!(
        ws.metric("kenko_access_file_changes_total{kind=\"truncated\",source=\"health\"}"),
        Some(1.0)
    );
    sigterm(&mut agent);
    assert_eq!(ws.checkpoint_events("health"), 536);
    // The chain verifies over the rotated files; what copytruncate threw away is reported as
    // removed (rename rotation keeps the evidence, copytruncate does not).
    let out = ws.run(&["audit-log", "verify", ws.state().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let findings: Vec<&str> = stdout.lines().collect();
    assert!(!findings.is_empty());
    for f in findings {
        assert!(
            f.contains("logs/access.jsonl:") && f.ends_with("[reason: segment_removed]"),
            "only the truncated file's earlier segments are gone: {stdout}"
        );
    }
}

/// Alerts reach a real Alertmanager (Debian's prometheus-alertmanager on loopback) with
/// rule, severity and actor labels and a runbook link, and no personal value.
#[test]
fn alertmanager_receives_the_alerts() {
    let am_bin = Path::new("/usr/bin/prometheus-alertmanager");
    assert!(
        am_bin.exists(),
        "Debian package prometheus-alertmanager is installed"
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("minimal.yml"),
        "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let port = free_port();
    let am = Command::new(am_bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.path={}",
            tmp.path().join("data").display()
        ))
        .arg("--cluster.listen-address=")
        .arg(format!(
            "--config.file={}",
            tmp.path().join("minimal.yml").display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("am.log")).unwrap())
        .spawn()
        .unwrap();
    struct KillOnDrop(Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = KillOnDrop(am);
    let url = format!("http://127.0.0.1:{port}");
    wait_for(30, "Alertmanager ready", || {
        http_request("GET", &format!("{url}/-/ready"), None).is_ok_and(|(c, _)| c == 200)
    });

    let ws = Ws::new(&format!("alertmanager_url = \"{url}\"\nrunbook_base_url = \"https://git.example.invalid/kenko/blob/main\"\n"));
    append(&ws.health_log(), &normal_lines(20, 0));
    // Both stay open (within the 4-hour grouping interval of the last event).
    append(
        &ws.health_log(),
        &health("19:00:00", "OLD", "T4", "view", 77, "D01"),
    );
    append(
        &ws.health_log(),
        &health("22:00:00", "N1", "T1", "view", 78, "D01"),
    );
    let mut agent = ws.start();
    let mut body = String::new();
    wait_for(30, "both alerts in Alertmanager", || {
        let Ok((200, b)) = http_request("GET", &format!("{url}/api/v2/alerts"), None) else {
            return false;
        };
        body = String::from_utf8_lossy(&b).into_owned();
        body.contains("access.retired_account") && body.contains("access.off_hours")
    });
    assert!(
        ws.metric("kenko_access_alertmanager_posts_total{outcome=\"sent\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        ws.metric("kenko_access_alertmanager_posts_total{outcome=\"failed\"}"),
        None
    );
    sigterm(&mut agent);
    let alerts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let retired = alerts
        .iter()
        .find(|a| a["labels"]["rule"] == "access.retired_account")
        .unwrap();
    assert_eq!(retired["labels"]["alertname"], "KenkoAccessRetiredAccount");
    assert_eq!(retired["labels"]["severity"], "critical");
    assert_eq!(retired["labels"]["actor"], "OLD");
    assert_eq!(
        retired["annotations"]["runbook_url"],
        "https://git.example.invalid/kenko/blob/main/runbooks/access-retired-account.md"
    );
    assert_eq!(retired["annotations"]["count"], "1");
    assert_eq!(retired["status"]["state"], "active");
    let off = alerts
        .iter()
        .find(|a| a["labels"]["rule"] == "access.off_hours")
        .unwrap();
    assert_eq!(off["labels"]["severity"], "warning");
    assert_eq!(off["labels"]["actor"], "N1");
    // No resident token, terminal or district anywhere.
    assert!(!body.contains("rtok"), "no resident token: {body}");
}

/// `audit-log verify` passes on intact logs and names a changed, a removed and a reordered
/// segment, and an altered chain record, in real files.
#[test]
fn audit_log_verify_finds_changed_removed_and_reordered_segments() {
    let ws = Ws::new("");
    let log = ws.health_log();
    let mut agent = ws.start();
    // Five segments: each piece is read before the next is written.
    for k in 0..5u32 {
        append(&log, &normal_lines(20 + k, k * 100));
        let want = (0..=k).map(|j| 20 + j).sum::<u32>() as f64;
        wait_for(30, "the piece", || {
            ws.metric("kenko_access_events_total{source=\"health\"}") == Some(want)
        });
    }
    sigterm(&mut agent);
    let state = ws.state();
    let verify = || ws.run(&["audit-log", "verify", state.to_str().unwrap()]);
    let ok = verify();
    assert!(
        ok.status.success(),
        "intact: {}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: "));
    let segs: Vec<(usize, usize)> = std::fs::read_to_string(state.join("chain/segments.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["start"].as_u64().unwrap() as usize,
                v["end"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert!(segs.len() >= 5, "{segs:?}");
    let original = std::fs::read(&log).unwrap();
    let check = |bytes: Vec<u8>, reason: &str, seq: &str| {
        // Written in place: the same file (inode) with other bytes.
        std::fs::write(&log, &bytes).unwrap();
        let out = verify();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{reason}: {stdout}");
        assert!(
            stdout.contains(&format!("[reason: {reason}]")),
            "{reason}: {stdout}"
        );
        assert!(stdout.contains(seq), "{reason}: {stdout}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("audit_log_tampered"));
        std::fs::write(&log, &original).unwrap();
    };
    // Changed: one digit of segment 2.
    let mut changed = original.clone();
    let at = segs[1].0 + 30;
    changed[at] = if changed[at] == b'1' { b'2' } else { b'1' };
    check(changed, "segment_changed", "segment 2");
    // Removed: segment 3's lines gone.
    let mut removed = original[..segs[2].0].to_vec();
    removed.extend_from_slice(&original[segs[2].1..]);
    check(removed, "segment_removed", "segment 3");
    // Reordered: segments 4 and 5 swapped.
    let mut swapped = original[..segs[3].0].to_vec();
    swapped.extend_from_slice(&original[segs[4].0..segs[4].1]);
    swapped.extend_from_slice(&original[segs[3].0..segs[3].1]);
    check(swapped, "segment_reordered", "segment");
    // An altered chain record (a segment's range shifted to hide an edit).
    let chain_path = state.join("chain/segments.jsonl");
    let chain = std::fs::read_to_string(&chain_path).unwrap();
    let tampered = chain.replacen(
        &format!("\"end\":{}", segs[0].1),
        &format!("\"end\":{}", segs[0].1 - 1),
        1,
    );
    assert_ne!(tampered, chain);
    std::fs::write(&chain_path, tampered).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[reason: chain_record_altered]"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `kenko-agent run` runs the monitor beside the intake when `[access] enabled = true`, and
/// stops it with a last checkpoint on SIGTERM; without it the access metrics do not exist.
#[test]
fn agent_run_includes_the_monitor_when_enabled() {
    let ws = Ws::new("");
    let start_run = || {
        ws.cmd()
            .env("KENKO_SETTLE_SECS", "0")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(ws.p("run.log")).unwrap())
            .spawn()
            .unwrap()
    };
    let mut agent = start_run();
    wait_for(30, "the metrics endpoint", || {
        ws.metric("kenko_intake_inbox_files").is_some()
    });
    assert_eq!(ws.metric("kenko_access_monitor_running"), None);
    sigterm(&mut agent);

    std::fs::write(
        ws.p("agent.toml"),
        std::fs::read_to_string(ws.p("agent.toml"))
            .unwrap()
            .replace("[access]\n", "[access]\nenabled = true\n"),
    )
    .unwrap();
    append(
        &ws.health_log(),
        &health("10:00:00", "OLD", "T4", "view", 2, "D01"),
    );
    let mut agent = start_run();
    wait_for(30, "the alert", || {
        ws.alert_rules().contains("access.retired_account")
    });
    assert_eq!(ws.metric("kenko_access_monitor_running"), Some(1.0));
    sigterm(&mut agent);
    assert_eq!(ws.checkpoint_events("health"), 1);
}

/// An Alertmanager that does not answer holds nothing up: events are taken in, alerts written
/// to the file, and the failed posts counted (retried with backoff).
#[test]
fn an_unreachable_alertmanager_does_not_block_ingestion() {
    let closed = free_port();
    let ws = Ws::new(&format!(
        "alertmanager_url = \"http://127.0.0.1:{closed}\"\n"
    ));
    let mut agent = ws.start();
    append(
        &ws.health_log(),
        &health("10:00:00", "OLD", "T4", "view", 2, "D01"),
    );
    append(&ws.health_log(), &normal_lines(50, 0));
    wait_for(30, "events and the alert despite Alertmanager", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(51.0)
            && ws.alert_rules().contains("access.retired_account")
    });
    wait_for(30, "the failed post counted", || {
        ws.metric("kenko_access_alertmanager_posts_total{outcome=\"failed\"}")
            .is_some_and(|n| n >= 1.0)
            && ws
                .metric("kenko_access_failures_total{reason=\"access_alertmanager_failed\"}")
                .is_some_and(|n| n >= 1.0)
    });
    append(&ws.health_log(), &normal_lines(10, 50));
    wait_for(30, "later events", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(61.0)
    });
    sigterm(&mut agent);
}

/// CloudTrail from its S3 prefix (moto_server on loopback): log files already there and files
/// that arrive while the agent runs are downloaded whole into the spool and judged; digest
/// files are left alone.
#[test]
fn cloudtrail_is_read_from_its_s3_prefix() {
    use kenko_aws::aws_sdk_s3 as s3;
    common::moto::credentials();
    let moto = common::moto::start_moto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(kenko_aws::s3_client(
        &kenko_aws::Endpoint {
            region: "ap-northeast-1".into(),
            endpoint_url: Some(moto.url.clone()),
            service_urls: vec![],
        },
        "ap-northeast-1",
    ));
    rt.block_on(
        client
            .create_bucket()
            .bucket("kenko-trail")
            .create_bucket_configuration(
                s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(s3::types::BucketLocationConstraint::ApNortheast1)
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let put = |key: &str, bytes: Vec<u8>| {
        rt.block_on(
            client
                .put_object()
                .bucket("kenko-trail")
                .key(key)
                .body(bytes.into())
                .send(),
        )
        .unwrap();
    };
    let day = "AWSLogs/111122223333/CloudTrail/ap-northeast-1/2026/11/02";
    put(
        &format!("{day}/111122223333_CloudTrail_ap-northeast-1_20261102T0200Z_a.json.gz"),
        cloudtrail_gz(&[ct_record(
            "2026-11-02T02:00:00Z",
            &sso("OP1"),
            "s3.amazonaws.com",
            "GetObject",
            "{\"bucketName\":\"kenko-records\",\"key\":\"x\"}",
            "[]",
        )]),
    );
    // Not a log: CloudTrail's digest files share the suffix.
    put(
        "AWSLogs/111122223333/CloudTrail-Digest/ap-northeast-1/2026/11/02/d.json.gz",
        cloudtrail_gz(&[]),
    );

    let ws =
        Ws::new("cloudtrail_s3 = \"s3://kenko-trail/AWSLogs/\"\ncloudtrail_s3_poll_secs = 1\n");
    let mut agent = ws
        .cmd()
        .args(["access", "run"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "ap-northeast-1")
        .env("KENKO_AWS_ENDPOINT_URL", &moto.url)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(ws.p("agent.log")).unwrap())
        .spawn()
        .unwrap();
    wait_for(60, "the log file already under the prefix", || {
        ws.alert_rules().contains("access.provider_data_read")
    });
    // A file delivered while the agent runs.
    put(
        &format!("{day}/111122223333_CloudTrail_ap-northeast-1_20261102T0205Z_b.json.gz"),
        cloudtrail_gz(&[ct_record(
            "2026-11-02T02:05:00Z",
            &sso("OP2"),
            "s3.amazonaws.com",
            "GetObject",
            "{\"bucketName\":\"kenko-records\",\"key\":\"y\"}",
            "[]",
        )]),
    );
    wait_for(60, "the new file downloaded and judged", || {
        ws.metric("kenko_access_events_total{source=\"cloudtrail\"}") == Some(2.0)
            && ws.alerts().iter().any(|a| a.actor.contains("OP2"))
    });
    assert_eq!(
        ws.metric("kenko_access_cloudtrail_s3_downloads_total"),
        Some(2.0)
    );
    sigterm(&mut agent);
    let spool = ws.p("cloudtrail").join(day);
    let mut files: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        2,
        "{files:?}: whole files only, no temporary file left"
    );
    assert!(!ws
        .p("cloudtrail/AWSLogs/111122223333/CloudTrail-Digest")
        .exists());
    assert_eq!(ws.checkpoint_events("cloudtrail"), 2);
}

/// S3 that does not answer: counted as `access_cloudtrail_s3_failed`, and the other logs are
/// still read.
#[test]
fn an_unreachable_cloudtrail_bucket_is_counted_and_stalls_nothing() {
    let ws =
        Ws::new("cloudtrail_s3 = \"s3://kenko-trail/AWSLogs/\"\ncloudtrail_s3_poll_secs = 1\n");
    let mut agent = ws
        .cmd()
        .args(["access", "run"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "ap-northeast-1")
        .env("KENKO_AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(ws.p("agent.log")).unwrap())
        .spawn()
        .unwrap();
    append(&ws.health_log(), &normal_lines(20, 0));
    wait_for(60, "the failure counted and the health log read", || {
        ws.metric("kenko_access_failures_total{reason=\"access_cloudtrail_s3_failed\"}")
            .is_some_and(|v| v >= 1.0)
            && ws.metric("kenko_access_events_total{source=\"health\"}") == Some(20.0)
    });
    sigterm(&mut agent);
    let log = std::fs::read_to_string(ws.p("agent.log")).unwrap();
    assert!(log.contains("access_cloudtrail_s3_failed"), "{log}");
}

/// A line as the kubelet writes a container's stdout (the CRI log format).
fn cri(stream: &str, text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(&format!(
            "2026-11-02T00:00:00.000000001Z {stream} F {line}\n"
        ));
    }
    out
}

/// In the cluster: the kubelet's container logs of two stacks' app pods (`STACK-app-…`,
/// container `app`, CRI format with a line split in parts), followed through a container
/// restart (`1.log`) and a rotation, each alert naming its stack and carrying its receivers;
/// another pod of the namespace and the app's stderr are not its access log; `kill -9` and a
/// restart count every line once.
#[test]
fn a_stacks_app_pod_logs_are_its_access_log() {
    let extra = "checkpoint_secs = 0\npod_logs = \"PODS\"\n\
        [[access.stacks]]\nstack = \"hachioji/hachioji\"\nnamespace = \"hachioji\"\napp_pods = \"hachioji-app-*\"\noffice_hours = \"08:30-17:15\"\nalert_receivers = [\"hachioji-health\"]\n\
        [[access.stacks]]\nstack = \"fuchu/fuchu\"\nnamespace = \"fuchu\"\napp_pods = \"fuchu-app-*\"\noffice_hours = \"08:30-09:00\"\n";
    let ws = Ws::new("");
    let pods = ws.p("pods");
    let ws = Ws {
        extra: extra.replace("PODS", pods.to_str().unwrap()),
        ..ws
    };
    ws.write_config();
    let dir = |pod: &str| {
        let (ns, _) = pod.split_once('-').unwrap();
        let d = pods.join(format!(
            "{ns}_{pod}_0c9e4a52-3d1f-4d7b-9a51-6f0e2b7c1d10/app"
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let h = dir("hachioji-app-5d9c7b-x2x4k");
    let f = dir("fuchu-app-6b7d8c-q9w2e");
    let other = dir("hachioji-intake-7c8d9e-a1b2c");
    // Before the agent starts: 20 normal views, and a retired clerk's view split in two parts.
    append(&h.join("0.log"), &cri("stdout", &normal_lines(20, 0)));
    let old = health("10:00:00", "OLD", "T4", "view", 2, "D01");
    let (a, b) = old.trim_end().split_at(30);
    append(
        &h.join("0.log"),
        &format!("2026-11-02T01:00:00.1Z stdout P {a}\n2026-11-02T01:00:00.1Z stdout F {b}\n"),
    );
    // The app's stderr and another container of the namespace are not the access log.
    append(
        &h.join("0.log"),
        &cri("stderr", &health("10:01:00", "OLD", "T4", "view", 3, "D01")),
    );
    append(
        &other.join("0.log"),
        &cri("stdout", &health("10:02:00", "OLD", "T4", "view", 4, "D01")),
    );
    // fuchu's office hours end at 09:00 (+2 h grace): N2 at 13:00 is outside them.
    append(
        &f.join("0.log"),
        &cri("stdout", &health("13:00:00", "N2", "T2", "view", 5, "D02")),
    );
    let mut agent = ws.start();
    wait_for(30, "the two stacks' alerts", || {
        let a = ws.alerts();
        a.iter()
            .any(|r| r.rule == "access.retired_account" && r.stack == "hachioji/hachioji")
            && a.iter()
                .any(|r| r.rule == "access.off_hours" && r.stack == "fuchu/fuchu")
    });
    wait_for(30, "every app line once", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(22.0)
    });
    let alerts = ws.alerts();
    let retired: Vec<&AlertRecord> = alerts
        .iter()
        .filter(|r| r.rule == "access.retired_account")
        .collect();
    assert_eq!(
        retired.len(),
        1,
        "stderr and the intake pod are not read: {alerts:?}"
    );
    assert_eq!(retired[0].receivers, vec!["hachioji-health".to_string()]);
    assert!(
        !alerts
            .iter()
            .any(|r| r.rule == "access.off_hours" && r.stack == "hachioji/hachioji"),
        "N1's morning is inside hachioji's hours: {alerts:?}"
    );
    assert_eq!(ws.metric("kenko_access_pod_logs"), Some(2.0));
    // A container restart (1.log beside 0.log), and kubelet's rotation of it.
    append(&h.join("1.log"), &cri("stdout", &normal_lines(10, 100)));
    wait_for(30, "the restarted container's log", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(32.0)
    });
    std::fs::rename(h.join("1.log"), h.join("1.log.20261102-101500")).unwrap();
    append(&h.join("1.log"), &cri("stdout", &normal_lines(5, 200)));
    wait_for(30, "the rotated log's successor", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(37.0)
    });
    // kill -9 while lines arrive, then a restart: each line once.
    append(
        &f.join("0.log"),
        &cri(
            "stdout",
            &normal_lines(7, 300).replace("N1", "N2").replace("T1", "T2"),
        ),
    );
    kill9(&mut agent);
    append(&h.join("1.log"), &cri("stdout", &normal_lines(4, 400)));
    let mut agent = ws.start();
    wait_for(30, "everything once after the restart", || {
        ws.checkpoint_events("health") == 48
            && ws.metric("kenko_access_events_total{source=\"health\"}") == Some(48.0)
    });
    sigterm(&mut agent);
    assert_eq!(ws.checkpoint_events("health"), 48);
    let ids: Vec<(String, String)> = ws.alerts().into_iter().map(|r| (r.id, r.status)).collect();
    let unique: BTreeSet<&(String, String)> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no alert written twice: {ids:?}");
}

/// On EKS the Kubernetes audit log is in CloudWatch Logs (`/aws/eks/CLUSTER/cluster`, streams
/// `kube-apiserver-audit-…`): read from the emulator's streams into the spool the monitor
/// follows, killed with `kill -9` before and after an append's commit, each event lands once;
/// an operator's exec into the stack's database pod alerts with the defaults; the group's other
/// streams (the API server's own log) are not the audit log.
#[test]
fn the_kubernetes_audit_log_is_read_from_cloudwatch_logs_exactly_once() {
    use kenko_aws::cwlogs::aws_sdk_cloudwatchlogs as logs;
    common::moto::credentials();
    let moto = common::moto::start_moto();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(kenko_aws::cwlogs::logs_client(
        &kenko_aws::Endpoint {
            region: "ap-northeast-1".into(),
            endpoint_url: Some(moto.url.clone()),
            service_urls: vec![],
        },
        "ap-northeast-1",
    ));
    let group = kenko_aws::cwlogs::eks_log_group("kenko-prod");
    rt.block_on(client.create_log_group().log_group_name(&group).send())
        .unwrap();
    for s in [
        "kube-apiserver-audit-0a1b2c",
        "kube-apiserver-audit-3d4e5f",
        "kube-apiserver-0a1b2c",
    ] {
        rt.block_on(
            client
                .create_log_stream()
                .log_group_name(&group)
                .log_stream_name(s)
                .send(),
        )
        .unwrap();
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut seq = 0i64;
    let mut put = |stream: &str, lines: Vec<String>| {
        let events: Vec<logs::types::InputLogEvent> = lines
            .iter()
            .map(|l| {
                seq += 1;
                logs::types::InputLogEvent::builder()
                    .timestamp(now_ms + seq)
                    .message(l.trim_end())
                    .build()
                    .unwrap()
            })
            .collect();
        rt.block_on(
            client
                .put_log_events()
                .log_group_name(&group)
                .log_stream_name(stream)
                .set_log_events(Some(events))
                .send(),
        )
        .unwrap();
    };
    let watch = |i: u32| {
        k8s(
            &format!("2026-11-02T01:{:02}:{:02}.000000Z", i / 60 % 60, i % 60),
            "system:serviceaccount:kube-system:coredns",
            "watch",
            "endpoints",
            None,
            "",
            "kube-system",
            "kube-dns",
        )
    };
    put("kube-apiserver-audit-0a1b2c", (0..40).map(watch).collect());
    put(
        "kube-apiserver-audit-3d4e5f",
        vec![k8s(
            "2026-11-02T02:00:00.000000Z",
            "OP1",
            "create",
            "pods",
            Some("exec"),
            "",
            "hachioji",
            "hachioji-db-0",
        )],
    );
    // The API server's own log in the same group is not the audit log.
    put(
        "kube-apiserver-0a1b2c",
        vec!["I1102 02:00:00 handler.go:153] GET /healthz".into()],
    );

    let ws = Ws::new(&format!(
        "k8s_audit_cloudwatch = \"{group}\"\nk8s_audit_cloudwatch_poll_secs = 1\n"
    ));
    let spawn = |crash: Option<&str>| {
        let mut c = ws.cmd();
        c.args(["access", "run"])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "ap-northeast-1")
            .env("KENKO_AWS_ENDPOINT_URL", &moto.url)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(ws.p("agent.log")).unwrap());
        if let Some(point) = crash {
            c.env("KENKO_TEST_CRASHPOINT", point);
        }
        c.spawn().unwrap()
    };
    let spool_lines = || {
        std::fs::read_to_string(ws.p("logs/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    for point in ["cloudwatch-pending", "cloudwatch-appended"] {
        let mut agent = spawn(Some(point));
        wait_for(60, point, || {
            std::fs::read_to_string(ws.p("agent.log"))
                .unwrap_or_default()
                .contains(&format!("kenko-crashpoint: {point}"))
        });
        kill9(&mut agent);
        if point == "cloudwatch-pending" {
            // More events while the agent is down.
            put("kube-apiserver-audit-0a1b2c", (40..50).map(watch).collect());
        }
    }
    let mut agent = spawn(None);
    wait_for(60, "every audit event once", || {
        ws.metric("kenko_access_events_total{source=\"k8s_audit\"}") == Some(51.0)
    });
    assert!(
        ws.alerts()
            .iter()
            .any(|a| a.rule == "access.privilege_change"
                && a.actor == "OP1"
                && a.detail == "db_pod_exec"),
        "the exec into STACK-db-0 alerts with the defaults: {:?}",
        ws.alerts()
    );
    // Events written while the agent runs.
    put("kube-apiserver-audit-3d4e5f", (50..55).map(watch).collect());
    wait_for(60, "the new events", || {
        ws.metric("kenko_access_events_total{source=\"k8s_audit\"}") == Some(56.0)
    });
    sigterm(&mut agent);
    assert_eq!(spool_lines(), 56, "each event once in the spool");
    assert_eq!(ws.checkpoint_events("k8s_audit"), 56);
    let text = std::fs::read_to_string(ws.p("logs/audit.jsonl")).unwrap();
    assert!(!text.contains("healthz"), "only the audit streams");
}

/// The process's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    kb * 1024
}

/// A gzip file of a few megabytes that un-gzips to `gib` GiB of zeros: one member of 1 MiB,
/// repeated (every member is read, as CloudTrail's files may have several).
fn gzip_bomb(gib: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = enc.finish().unwrap();
    member.repeat(gib << 10)
}

/// A CloudTrail file that un-gzips to 4 GiB is refused with its reason, counted and logged,
/// without the memory it would take; the other files are read, and `access check` does the
/// same.
#[test]
fn a_gzip_bomb_among_the_cloudtrail_files_is_refused_and_the_others_are_read() {
    let ws = Ws::new("");
    let day = ws.p("cloudtrail/AWSLogs/111122223333/CloudTrail/ap-northeast-1/2026/11/02");
    let bomb = gzip_bomb(4);
    assert!(bomb.len() < 8 << 20, "a small file: {} bytes", bomb.len());
    deliver(&day.join("a-bomb.json.gz"), &bomb);
    let good = cloudtrail_gz(&[ct_record(
        "2026-11-02T02:00:00Z",
        &provider_role(),
        "s3.amazonaws.com",
        "GetObject",
        "{\"bucketName\":\"kenko-records\",\"key\":\"x\"}",
        "[]",
    )]);
    deliver(&day.join("b-good.json.gz"), &good);
    let mut agent = ws.start();
    wait_for(60, "the good file's alert and the bomb's refusal", || {
        ws.alert_rules().contains("access.provider_data_read")
            && ws.metric(
                "kenko_access_parse_errors_total{reason=\"cloudtrail_file_too_large\",source=\"cloudtrail\"}",
            ) == Some(1.0)
    });
    let peak = peak_rss(agent.id());
    eprintln!("peak RSS of the agent: {} KiB", peak >> 10);
    assert!(peak < 200 << 20, "peak RSS {peak} bytes for a 4 GiB bomb");
    sigterm(&mut agent);
    let done = ws.checkpoint().unwrap()["cloudtrail_done"].clone();
    assert_eq!(done.as_array().unwrap().len(), 2, "both taken in: {done}");
    let log = std::fs::read_to_string(ws.p("agent.log")).unwrap();
    let warning = log
        .lines()
        .find(|l| l.contains("cloudtrail_file_too_large"))
        .unwrap_or_else(|| panic!("a warning: {log}"));
    assert!(
        warning.contains("a-bomb.json.gz") && warning.contains("limit"),
        "{warning}"
    );
    // The chain covers the refused file too, and verifies.
    let out = ws.run(&["audit-log", "verify", ws.state().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = ws.run(&[
        "access",
        "check",
        day.join("a-bomb.json.gz").to_str().unwrap(),
        day.join("b-good.json.gz").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the good file's critical alert: {stderr}"
    );
    assert!(
        stderr.contains("a-bomb.json.gz: the un-gzipped JSON is past the limit of 67108864 bytes")
            && stderr.contains("[reason: cloudtrail_file_too_large]")
            && stderr.contains("1 unreadable"),
        "{stderr}"
    );
}

/// 100,000 levels of nesting on a line of each log: one unreadable line each, with a reason,
/// no crash, and the lines after it are read (by `access check` and by the follower).
#[test]
fn a_deeply_nested_line_is_one_malformed_line_and_the_rest_is_read() {
    let ws = Ws::new("");
    let deep = "[".repeat(100_000);
    let objects = format!("{}1{}\n", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let health_file = ws.p("h.jsonl");
    std::fs::write(
        &health_file,
        normal_lines(3, 0) + &deep + "\n" + &objects + &normal_lines(3, 3),
    )
    .unwrap();
    let audit = |t: &str| k8s(t, "OP1", "get", "pods", None, "", "kenko", "app-0");
    let k8s_file = ws.p("k.jsonl");
    std::fs::write(
        &k8s_file,
        audit("2026-11-02T01:00:00.000000Z")
            + &audit("2026-11-02T01:00:01.000000Z").replacen(
                "\"verb\":\"get\"",
                &format!("\"verb\":{deep}"),
                1,
            )
            + "\n"
            + &audit("2026-11-02T01:00:02.000000Z"),
    )
    .unwrap();
    for (file, events) in [
        (&health_file, "6 events (health 6"),
        (&k8s_file, "2 events (health 0, k8s_audit 2"),
    ] {
        let out = ws.run(&["access", "check", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code().is_some(), "no crash: {stderr}");
        assert!(stderr.contains(events), "{stderr}");
        assert!(stderr.contains("[reason: access_log_"), "{stderr}");
        assert!(!stderr.contains("[[["), "no content quoted: {stderr}");
    }
    let mut agent = ws.start();
    append(
        &ws.health_log(),
        &(normal_lines(2, 0) + &deep + "\n" + &normal_lines(2, 2)),
    );
    wait_for(30, "the lines around the nested one", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(4.0)
            && ws.metric(
                "kenko_access_parse_errors_total{reason=\"access_log_not_json\",source=\"health\"}",
            ) == Some(1.0)
    });
    sigterm(&mut agent);
}

/// A 64 MiB line in the followed health log is read through in small pieces: the monitor's
/// peak memory stays far below it, the line is counted once as too long, the lines around it
/// are read, a restart neither repeats nor loses a line, and the chain covers the line.
#[test]
fn a_64_mib_line_in_a_followed_log_keeps_memory_bounded_and_loses_nothing() {
    let ws = Ws::new("");
    let log = ws.health_log();
    let mut agent = ws.start();
    append(&log, &normal_lines(10, 0));
    wait_for(30, "the first lines", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(10.0)
    });
    // The binary's own pages count in VmHWM: what matters is the growth over the line.
    let before = peak_rss(agent.id());
    // Written in pieces, so the monitor may find it unfinished and go on later.
    let piece = format!(
        "{{\"time\":\"2026-11-02T09:00:00+09:00\",\"staff_id\":\"{}",
        "N".repeat(16 << 20)
    );
    for _ in 0..4 {
        append(&log, &piece);
    }
    append(&log, "\"}\n");
    append(&log, &normal_lines(10, 10));
    wait_for(60, "the lines after the long one", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(20.0)
            && ws.metric(
                "kenko_access_parse_errors_total{reason=\"access_log_line_too_long\",source=\"health\"}",
            ) == Some(1.0)
    });
    let grown = peak_rss(agent.id()) - before;
    eprintln!("peak RSS of the agent grew by {} KiB", grown >> 10);
    assert!(
        grown < 24 << 20,
        "peak RSS grew by {grown} bytes for a 64 MiB line"
    );
    sigterm(&mut agent);
    let size = std::fs::metadata(&log).unwrap().len();
    let cp = ws.checkpoint().unwrap();
    assert_eq!(cp["lines"]["health"]["offset"].as_u64(), Some(size), "{cp}");
    assert_eq!(cp["lines"]["health"]["lines"].as_u64(), Some(21), "{cp}");
    let text = std::fs::read_to_string(ws.p("agent.log")).unwrap();
    assert!(
        text.contains("line 11: longer than 4194304 bytes; skipped unread"),
        "{text}"
    );
    assert!(!text.contains("NNNN"), "no content logged");
    let mut agent = ws.start();
    append(&log, &normal_lines(5, 20));
    wait_for(30, "the lines after the restart", || {
        ws.metric("kenko_access_events_total{source=\"health\"}") == Some(25.0)
    });
    sigterm(&mut agent);
    assert_eq!(ws.checkpoint_events("health"), 25, "none twice, none lost");
    let out = ws.run(&["audit-log", "verify", ws.state().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
