//! `evidence build`: gathers the period's evidence from where the agent keeps it into a staging
//! folder, writes the summary, signs the manifest last, and renames the folder into place.
//!
//! | part | from | into the bundle |
//! |---|---|---|
//! | erasure certificates | `DATA_DIR/certificates` | the period's files byte for byte; the chain verification of the whole folder |
//! | residency audits | `--residency FILE` (`residency audit --json`) | the files byte for byte; their summaries |
//! | access alerts | the monitor's alert file | the lines whose window starts in the period |
//! | tamper evidence | the monitor's `chain/` | `audit-log verify`'s result |
//! | exports and prints | the health access logs the monitor reads (and rotated siblings) | counts per staff id and JST month |
//! | retirements | the monitor's staff roster | staff id, role, retirement day, last access, accesses after it |
//! | intake | the store's ledger | per JST month: files loaded and returned, rows accepted and rejected |

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use kenko_access::event::parse_health_line;
use kenko_access::{Action, Outcome};
use serde::Serialize;
use serde_json::{json, Value};

use super::manifest::{sha256_hex, walk, FileEntry, Manifest, PeriodRef};
use super::period::{jst_month, Period};
use super::summary::{self, Finding, Summary};
use super::{EvidenceError, FORMAT, MANIFEST};
use crate::access::output::AlertRecord;
use crate::config::Config;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub period: Period,
    pub out: PathBuf,
    /// `residency audit --json` outputs.
    pub residency: Vec<PathBuf>,
    /// Health access logs read besides the configured one (and its rotated siblings).
    pub access_logs: Vec<PathBuf>,
    /// The PDF's font [default: the certificates' default fonts].
    pub font: Option<PathBuf>,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct Built {
    pub out: PathBuf,
    pub files: usize,
    pub findings: usize,
    pub signer: String,
    pub manifest_sha256: String,
}

fn src(path: &Path) -> impl FnOnce(std::io::Error) -> EvidenceError + '_ {
    move |e| EvidenceError::Source {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The staging folder, written file by file.
struct Stage {
    dir: PathBuf,
}

impl Stage {
    fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), EvidenceError> {
        let p = self.dir.join(rel);
        let out = |e: std::io::Error| EvidenceError::Output {
            path: p.clone(),
            message: e.to_string(),
        };
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(out)?;
        }
        crate::fsutil::atomic_write(&p, bytes).map_err(out)
    }

    fn json<T: Serialize>(&self, rel: &str, value: &T) -> Result<(), EvidenceError> {
        let mut bytes = serde_json::to_vec_pretty(value).expect("serialises");
        bytes.push(b'\n');
        self.write(rel, &bytes)
    }
}

/// Builds the bundle.
pub fn build(config: &Config, o: &BuildOptions) -> Result<Built, EvidenceError> {
    let out_err = |path: &Path, message: String| EvidenceError::Output {
        path: path.to_path_buf(),
        message,
    };
    if o.out.exists() {
        let empty = std::fs::read_dir(&o.out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(out_err(
                &o.out,
                "exists and is not an empty folder; name a new one".into(),
            ));
        }
    }
    // Everything that can fail before anything is written: the key and the font.
    let key = crate::certs::signing_key(&config.signing_key_file)?;
    let (_, font) = crate::certs::load_font(o.font.as_deref(), crate::certs::DEFAULT_FONTS)?;
    let access = config
        .access
        .resolve(&config.data_dir)
        .map_err(|e| EvidenceError::Source {
            path: PathBuf::from("[access]"),
            message: e.to_string(),
        })?;

    let name = o
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "evidence".into());
    let staging = o.out.with_file_name(format!(".{name}.partial"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| out_err(&staging, e.to_string()))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| out_err(&staging, e.to_string()))?;
    let stage = Stage {
        dir: staging.clone(),
    };
    let p = &o.period;
    let mut s = Summary::new(*p);
    let rb = |page: &str| access.runbook_url(page);

    certificates(config, p, &stage, &mut s, &rb)?;
    residency(&o.residency, p, &stage, &mut s, &rb)?;
    let alerts = alerts(&access.alert_file, p, &stage, &mut s, &access)?;
    chain(&access.state_dir, &stage, &mut s, &rb)?;
    let mut logs: Vec<PathBuf> = Vec::new();
    if let Some(h) = &access.health_log {
        logs.extend(with_rotated(h));
    }
    logs.extend(o.access_logs.iter().cloned());
    let activity = exports(&logs, p, &stage, &mut s)?;
    roster(
        access.roster.as_deref(),
        p,
        &activity,
        &alerts,
        &stage,
        &mut s,
        &rb,
    )?;
    ledger(config, p, &stage, &mut s, &rb)?;

    if s.findings.is_empty() {
        s.findings.push(Finding {
            ok: true,
            text: "所見なし No findings: every check passed for the period".into(),
            runbook: rb(super::RUNBOOK),
        });
    }
    let now = kenko_intake::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    s.built_at = now.clone();
    s.signer = crate::certs::public_key_hex(&key);
    stage.write("summary.html", summary::html(&s).as_bytes())?;
    let pdf = summary::pdf(&s, &font).map_err(|source| {
        EvidenceError::Render(crate::certs::CertCommandError::Pdf {
            path: staging.join("summary.pdf"),
            source,
        })
    })?;
    stage.write("summary.pdf", &pdf)?;

    // The manifest, last: every file staged, with its hash and size.
    let (files, other) = walk(&staging).map_err(|e| out_err(&staging, e.to_string()))?;
    if let Some(f) = other.first() {
        return Err(out_err(&staging.join(f), "not a regular file".into()));
    }
    let mut entries = Vec::new();
    for f in &files {
        let bytes = std::fs::read(staging.join(f)).map_err(|e| out_err(&staging, e.to_string()))?;
        entries.push(FileEntry {
            path: f.clone(),
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
        });
    }
    let mut m = Manifest {
        format: FORMAT.into(),
        period: PeriodRef {
            from: p.from.to_string(),
            to: p.to.to_string(),
            time_zone: "Asia/Tokyo".into(),
        },
        built_at: now.clone(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        files: entries,
        signature: None,
    };
    m.sign(&key, &now);
    let manifest = m.to_file_bytes();
    stage.write(MANIFEST, &manifest)?;
    sync_tree(&staging).map_err(|e| out_err(&staging, e.to_string()))?;
    if o.out.exists() {
        std::fs::remove_dir(&o.out).map_err(|e| out_err(&o.out, e.to_string()))?;
    }
    #[allow(
        clippy::disallowed_methods,
        reason = "the staged folder, each file already synced, takes its name in one rename"
    )]
    std::fs::rename(&staging, &o.out).map_err(|e| out_err(&o.out, e.to_string()))?;
    if let Some(parent) = o.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = crate::fsutil::sync_dir(parent);
    }
    Ok(Built {
        out: o.out.clone(),
        files: m.files.len() + 1,
        findings: s.findings.iter().filter(|f| !f.ok).count(),
        signer: crate::certs::public_key_hex(&key),
        manifest_sha256: sha256_hex(&manifest),
    })
}

fn sync_tree(dir: &Path) -> std::io::Result<()> {
    let (files, _) = walk(dir)?;
    for f in files {
        std::fs::File::open(dir.join(f))?.sync_all()?;
    }
    crate::fsutil::sync_dir(dir)
}

/// The erasure certificates finished in the period, and the chain verification of the whole
/// certificates folder (`certificate verify-chain`).
fn certificates(
    config: &Config,
    p: &Period,
    stage: &Stage,
    s: &mut Summary,
    rb: &dyn Fn(&str) -> String,
) -> Result<(), EvidenceError> {
    let dir = config.data_dir.join("certificates");
    let mut listed = Vec::new();
    let chain = if dir.is_dir() {
        match crate::certs::verify_dir(&dir, &[]) {
            Ok(chains) => json!({
                "result": "verified",
                "signers": chains.iter().map(|(k, n)| json!({"public_key": k, "certificates": n})).collect::<Vec<_>>(),
            }),
            Err(e) => {
                s.findings.push(Finding {
                    ok: false,
                    text: format!(
                        "消去証明書の連鎖の検証に失敗 Certificate chain does not verify: {e} [{}]",
                        e.reason()
                    ),
                    runbook: rb("runbooks/certificate-invalid.md"),
                });
                json!({"result": "failed", "reason": e.reason(), "message": e.to_string()})
            }
        }
    } else {
        json!({"result": "absent", "message": "no certificates folder on this machine"})
    };
    if dir.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(src(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).map_err(src(&path))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match kenko_cert::verify(&bytes, None) {
                Ok(v) => {
                    let c = &v.certificate;
                    if !p.contains_rfc3339(&c.finished_at) {
                        continue;
                    }
                    stage.write(&format!("certificates/{name}"), &bytes)?;
                    listed.push(json!({
                        "file": format!("certificates/{name}"),
                        "job_id": c.job_id,
                        "sequence": c.sequence,
                        "finished_at": c.finished_at,
                        "method": c.sanitization.method_type.as_str(),
                        "targets": c.targets.len(),
                        "signer": v.signer,
                        "validated": v.validated_by.is_some(),
                        "sha256": v.sha256,
                    }));
                }
                Err(e) => {
                    // A certificate that does not verify is evidence too: copied, and a finding.
                    stage.write(&format!("certificates/{name}"), &bytes)?;
                    s.findings.push(Finding {
                        ok: false,
                        text: format!(
                            "消去証明書が検証できない Certificate {name} does not verify: {e} [{}]",
                            e.reason()
                        ),
                        runbook: rb("runbooks/certificate-invalid.md"),
                    });
                    listed.push(json!({
                        "file": format!("certificates/{name}"),
                        "verified": false,
                        "reason": e.reason(),
                        "sha256": sha256_hex(&bytes),
                    }));
                }
            }
        }
    }
    s.certificates = listed.len();
    s.certificate_chain = chain["result"].as_str().unwrap_or("").to_string();
    stage.json(
        "certificates/verification.json",
        &json!({"chain": chain, "in_period": listed}),
    )
}

/// `residency audit --json` outputs given on the command line (the agent keeps none on disk).
fn residency(
    files: &[PathBuf],
    p: &Period,
    stage: &Stage,
    s: &mut Summary,
    rb: &dyn Fn(&str) -> String,
) -> Result<(), EvidenceError> {
    let mut reports = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).map_err(|e| EvidenceError::Residency {
            path: f.clone(),
            message: e.to_string(),
        })?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| EvidenceError::Residency {
            path: f.clone(),
            message: format!("not the JSON of `residency audit --json` ({e})"),
        })?;
        if !v["schema"]
            .as_str()
            .is_some_and(|x| x.starts_with("kenko.residency-report/"))
        {
            return Err(EvidenceError::Residency {
                path: f.clone(),
                message:
                    "no schema kenko.residency-report/v1: not a `residency audit --json` output"
                        .into(),
            });
        }
        let base = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "residency.json".into());
        let rel = format!("residency/{:02}-{base}", i + 1);
        stage.write(&rel, &bytes)?;
        let finished = v["finished_at"].as_str().unwrap_or("").to_string();
        let n = |k: &str| v["summary"][k].as_u64().unwrap_or(0);
        let (violation, unknown) = (n("violation"), n("unknown"));
        let in_period = p.contains_rfc3339(&finished);
        if violation > 0 {
            s.findings.push(Finding {
                ok: false,
                text: format!("居住性監査で違反 Residency audit {rel}: {violation} violation(s)"),
                runbook: rb("runbooks/residency-audit.md"),
            });
        }
        if unknown > 0 || v["complete"] == Value::Bool(false) {
            s.findings.push(Finding {
                ok: false,
                text: format!("居住性監査が未完了 Residency audit {rel}: {unknown} unknown"),
                runbook: rb("runbooks/residency-audit-incomplete.md"),
            });
        }
        reports.push(json!({
            "file": rel,
            "schema": v["schema"],
            "finished_at": finished,
            "in_period": in_period,
            "complete": v["complete"],
            "compliant": n("compliant"),
            "violation": violation,
            "unknown": unknown,
            "sha256": sha256_hex(&bytes),
        }));
    }
    s.residency = reports.len();
    stage.json("residency/summary.json", &json!({ "reports": reports }))
}

/// The alert file's lines whose window starts in the period, as written.
fn alerts(
    path: &Path,
    p: &Period,
    stage: &Stage,
    s: &mut Summary,
    access: &crate::access::settings::AccessSettings,
) -> Result<Vec<AlertRecord>, EvidenceError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(src(path)(e)),
    };
    let mut kept = String::new();
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: AlertRecord = serde_json::from_str(line).map_err(|e| EvidenceError::Source {
            path: path.to_path_buf(),
            message: format!("line {}: not an alert record ({e})", i + 1),
        })?;
        if p.contains_rfc3339(&r.window_start) {
            kept.push_str(line);
            kept.push('\n');
            records.push(r);
        }
    }
    stage.write("access/alerts.jsonl", kept.as_bytes())?;
    // Per rule: alerts opened and resolved.
    let mut by_rule: BTreeMap<(String, String), (u64, u64, String)> = BTreeMap::new();
    for r in &records {
        let e = by_rule
            .entry((r.rule.clone(), r.severity.clone()))
            .or_insert((0, 0, String::new()));
        if r.resolved() {
            e.1 += 1;
        } else {
            e.0 += 1;
        }
        e.2 = kenko_access::Rule::from_id(&r.rule)
            .map(|x| access.runbook_url(x.runbook()))
            .unwrap_or_else(|| r.runbook_url.clone());
    }
    let mut rules = Vec::new();
    for ((rule, severity), (opened, resolved, runbook)) in &by_rule {
        s.findings.push(Finding {
            ok: false,
            text: format!("アクセス監視アラート Access alert {rule} ({severity}): {opened} opened, {resolved} resolved"),
            runbook: runbook.clone(),
        });
        rules.push(json!({"rule": rule, "severity": severity, "opened": opened, "resolved": resolved, "runbook": runbook}));
    }
    s.alerts = records.iter().filter(|r| !r.resolved()).count();
    stage.json("access/alerts-summary.json", &json!({ "rules": rules }))?;
    Ok(records)
}

/// `audit-log verify` of the monitor's chain.
fn chain(
    state_dir: &Path,
    stage: &Stage,
    s: &mut Summary,
    rb: &dyn Fn(&str) -> String,
) -> Result<(), EvidenceError> {
    let v = if state_dir.join("chain").exists() {
        match crate::access::chainlog::verify_dir(state_dir) {
            Ok(v) => {
                let findings: Vec<Value> = v
                    .findings
                    .iter()
                    .map(|(f, file)| json!({"reason": f.reason(), "file": file, "message": f.to_string()}))
                    .collect();
                if !findings.is_empty() {
                    s.findings.push(Finding {
                        ok: false,
                        text: format!(
                            "改ざん検知チェーンの不一致 Tamper-evidence chain: {} finding(s) [audit_log_tampered]",
                            findings.len()
                        ),
                        runbook: rb("runbooks/audit-log-tampered.md"),
                    });
                }
                json!({
                    "result": if findings.is_empty() { "verified" } else { "tampered" },
                    "records": v.records, "digests": v.digests, "files": v.files, "bytes": v.bytes,
                    "findings": findings,
                })
            }
            Err(e) => {
                s.findings.push(Finding {
                    ok: false,
                    text: format!(
                        "改ざん検知チェーンを検証できない Tamper-evidence chain cannot be verified: {e} [{}]",
                        e.reason()
                    ),
                    runbook: rb("runbooks/access-monitor-failed.md"),
                });
                json!({"result": "failed", "reason": e.reason(), "message": e.to_string()})
            }
        }
    } else {
        json!({"result": "absent", "message": "no tamper-evidence chain on this machine (the access monitor has not run here)"})
    };
    s.chain = v["result"].as_str().unwrap_or("").to_string();
    stage.json("access/chain-verification.json", &v)
}

/// A log and the rotated files beside it (`NAME.1`, `NAME.2026-11-01`, `NAME.1.gz`...).
fn with_rotated(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return out;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut rotated: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        rotated.sort();
        out.extend(rotated);
    }
    out
}

/// What the health access logs say of each staff id: the last successful access (any time).
#[derive(Debug, Default)]
pub struct Activity {
    /// staff id -> successful access times (UTC epoch), unsorted.
    pub access: BTreeMap<String, Vec<i64>>,
}

#[derive(Default, Serialize)]
struct Counts {
    exports: u64,
    export_records: u64,
    prints: u64,
    print_records: u64,
    denied: u64,
}

/// 持ち出し履歴: exports and prints per staff id and JST month, counts only.
fn exports(
    logs: &[PathBuf],
    p: &Period,
    stage: &Stage,
    s: &mut Summary,
) -> Result<Activity, EvidenceError> {
    let mut counts: BTreeMap<(String, String), Counts> = BTreeMap::new();
    let mut activity = Activity::default();
    let mut sources = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for path in logs {
        if !seen.insert(path.clone()) {
            continue;
        }
        let raw = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(src(path)(e)),
        };
        let bytes = if path.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .map_err(|e| EvidenceError::Source {
                    path: path.clone(),
                    message: format!("not a complete gzip file ({e})"),
                })?;
            out
        } else {
            raw
        };
        let (mut lines, mut unreadable) = (0u64, 0u64);
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            match parse_health_line(line, i as u64 + 1) {
                Ok(Some(ev)) => {
                    lines += 1;
                    if ev.outcome == Outcome::Success {
                        activity
                            .access
                            .entry(ev.actor.to_string())
                            .or_default()
                            .push(ev.time);
                    }
                    if !p.contains(ev.time) || !matches!(ev.action, Action::Export | Action::Print)
                    {
                        continue;
                    }
                    let c = counts
                        .entry((ev.actor.to_string(), jst_month(ev.time)))
                        .or_default();
                    match (ev.outcome, ev.action) {
                        (Outcome::Success, Action::Export) => {
                            c.exports += 1;
                            c.export_records += u64::from(ev.count);
                        }
                        (Outcome::Success, _) => {
                            c.prints += 1;
                            c.print_records += u64::from(ev.count);
                        }
                        _ => c.denied += 1,
                    }
                }
                Ok(None) => {}
                Err(_) => unreadable += 1,
            }
        }
        sources.push(
            json!({"file": path.display().to_string(), "events": lines, "unreadable": unreadable}),
        );
    }
    let rows: Vec<Value> = counts
        .iter()
        .map(|((staff, month), c)| {
            let mut v = serde_json::to_value(c).expect("serialises");
            v["staff_id"] = json!(staff);
            v["month"] = json!(month);
            v
        })
        .collect();
    s.exports = counts
        .iter()
        .map(|((staff, month), c)| {
            (
                staff.clone(),
                month.clone(),
                c.exports,
                c.export_records,
                c.prints,
                c.print_records,
            )
        })
        .collect();
    stage.json(
        "access/exports-prints.json",
        &json!({"sources": sources, "counts": rows}),
    )?;
    Ok(activity)
}

/// Retirements in (or before) the period, and when each account's access ended.
fn roster(
    path: Option<&Path>,
    p: &Period,
    activity: &Activity,
    alerts: &[AlertRecord],
    stage: &Stage,
    s: &mut Summary,
    rb: &dyn Fn(&str) -> String,
) -> Result<(), EvidenceError> {
    let Some(path) = path else {
        s.roster = None;
        return stage.json(
            "access/roster-changes.json",
            &json!({"roster": null, "retirements": []}),
        );
    };
    let roster = crate::access::load_roster(path).map_err(|e| EvidenceError::Source {
        path: path.to_path_buf(),
        message: format!("{e} [{}]", e.reason()),
    })?;
    let mut out = Vec::new();
    for person in roster.people() {
        let retired_from = person.retired_on.map(|d| d.jst_midnight_epoch());
        let retired = person.status == kenko_access::roster::Status::Retired
            || retired_from.is_some_and(|t| t < p.end());
        if !retired {
            continue;
        }
        // Retired before the period's end (or with no date): listed.
        if retired_from.is_some_and(|t| t >= p.end()) {
            continue;
        }
        let times = activity.access.get(&person.id);
        let last = times.and_then(|t| t.iter().max().copied());
        let after = match (times, retired_from) {
            (Some(t), Some(from)) => t.iter().filter(|&&x| x >= from).count(),
            _ => 0,
        };
        let alerts_n = alerts
            .iter()
            .filter(|a| a.rule == "access.retired_account" && a.actor == person.id && !a.resolved())
            .count();
        let retired_on = person.retired_on.map(|d| d.to_string());
        if after > 0 || alerts_n > 0 {
            s.findings.push(Finding {
                ok: false,
                text: format!(
                    "退職者のアクセス Access by retired account {}: {after} access(es) on or after {}",
                    person.id,
                    retired_on.as_deref().unwrap_or("retirement")
                ),
                runbook: rb("runbooks/access-retired-account.md"),
            });
        }
        let last_s = last.map(kenko_access::calendar::format_utc);
        s.retirements.push((
            person.id.clone(),
            retired_on.clone().unwrap_or_else(|| "-".into()),
            last_s.clone().unwrap_or_else(|| "-".into()),
            after,
        ));
        out.push(json!({
            "staff_id": person.id,
            "role": person.role,
            "retired_on": retired_on,
            "retired_in_period": retired_from.is_some_and(|t| p.contains(t)),
            "last_access": last_s,
            "accesses_on_or_after_retirement": after,
            "retired_account_alerts": alerts_n,
        }));
    }
    s.roster = Some(roster.len());
    stage.json(
        "access/roster-changes.json",
        &json!({"roster": path.display().to_string(), "people": roster.len(), "retirements": out}),
    )
}

/// The intake ledger per JST month (files loaded and returned, rows accepted and rejected).
fn ledger(
    config: &Config,
    p: &Period,
    stage: &Stage,
    s: &mut Summary,
    rb: &dyn Fn(&str) -> String,
) -> Result<(), EvidenceError> {
    let url = &config.database_url;
    let kind = if url.starts_with("sqlite://") {
        "sqlite"
    } else {
        "postgresql"
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        if !Path::new(path).exists() {
            s.ledger = None;
            return stage.json(
                "intake/ledger-summary.json",
                &json!({"store": null, "months": []}),
            );
        }
    }
    let mut store = kenko_store::open(url)
        .map_err(|e| EvidenceError::Ledger(format!("{e} [{}]", e.reason())))?;
    let mut since = |t: i64| {
        let at = chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0).unwrap_or_default();
        store
            .ledger_totals_since(at)
            .map_err(|e| EvidenceError::Ledger(format!("{e} [{}]", e.reason())))
    };
    let mut months = Vec::new();
    let mut rows = Vec::new();
    for (month, start, end) in p.months() {
        let (a, b) = (since(start)?, since(end)?);
        let m = (
            month.clone(),
            a.files_loaded - b.files_loaded,
            a.files_returned - b.files_returned,
            a.rows_accepted - b.rows_accepted,
            a.rows_rejected - b.rows_rejected,
        );
        months.push(json!({
            "month": m.0, "files_loaded": m.1, "files_returned": m.2,
            "rows_accepted": m.3, "rows_rejected": m.4,
        }));
        if m.1 + m.2 + m.3 + m.4 > 0 {
            rows.push(m);
        }
    }
    let returned: i64 = rows.iter().map(|r| r.2).sum();
    if returned > 0 {
        s.findings.push(Finding {
            ok: false,
            text: format!("取込で返戻されたファイル Intake files returned whole: {returned}"),
            runbook: rb("runbooks/intake-file-returned.md"),
        });
    }
    s.ledger = Some(rows);
    stage.json(
        "intake/ledger-summary.json",
        &json!({"store": kind, "months": months}),
    )
}
