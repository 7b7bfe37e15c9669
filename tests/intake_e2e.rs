//! End-to-end tests of the monthly intake: the real `kenko-agent` binary, real files, SQLite
//! and the local PostgreSQL, real `kill -9`.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kenko_sample::SampleEncoding;

fn count(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Every injected error is found with its reason, on the right row; every clean row is in.
/// Compares two sorted line lists and reports the first difference, not both lists.
fn assert_same_lines(got: &[String], want: &[String], what: &str) {
    if got != want {
        let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).take(3).collect();
        let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).take(3).collect();
        panic!(
            "{what}: {} lines, expected {}; missing {missing:?}; unexpected {extra:?}",
            got.len(),
            want.len()
        );
    }
}

fn check_against_injected(ws: &Workspace, summary: &serde_json::Value, g: &Generated, file: &str) {
    assert_eq!(count(summary, "failed"), 0, "{summary}");
    let fs = &summary["file_summaries"][0];
    assert_eq!(fs["disposition"], "loaded", "{fs}");
    assert_eq!(count(fs, "rows"), g.stats.rows as u64);
    assert_eq!(
        count(fs, "rejected"),
        g.stats.injected_total() as u64,
        "{fs}"
    );
    assert_eq!(count(fs, "accepted"), g.stats.valid_rows as u64, "{fs}");
    for (code, n) in &g.stats.injected {
        assert_eq!(
            fs["reasons"][code].as_u64(),
            Some(*n as u64),
            "reason {code} in {fs}"
        );
    }
    // The return report lists exactly the injected rows, each with its reason.
    let report = ws.data.join(fs["return_report"].as_str().unwrap());
    let bytes = std::fs::read(&report).unwrap();
    let text = match fs["encoding"].as_str().unwrap() {
        "cp932" => {
            let (t, _, bad) = encoding_rs::SHIFT_JIS.decode(&bytes);
            assert!(!bad, "the return report is valid CP932");
            assert!(t.contains("\r\n"), "CP932 input → CRLF report");
            t.into_owned()
        }
        _ => String::from_utf8(bytes).unwrap(),
    };
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("行番号,宛名番号,項目,理由コード,内容"));
    let mut seen = std::collections::BTreeMap::new();
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        let mut codes: Vec<&str> = cols[3].split(';').collect();
        codes.dedup();
        seen.insert(cols[0].parse::<u64>().unwrap(), codes.join(";"));
    }
    let expected: std::collections::BTreeMap<u64, String> = g
        .injected
        .iter()
        .map(|(r, c)| (*r, c.to_string()))
        .collect();
    assert_eq!(seen, expected, "return report rows of {file}");
}

#[test]
fn cp932_month_with_errors_is_checked_loaded_and_returned_on_sqlite() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(3_000, 7);
    let g = generate(&residents, 1_500, SampleEncoding::Cp932, 0.2, 11);
    assert!(
        g.stats.injected.len() >= 10,
        "a spread of injected errors: {:?}",
        g.stats.injected
    );
    ws.deliver("2024-10_clinic.csv", &g.bytes);
    let summary = ws.run_once_json();
    check_against_injected(&ws, &summary, &g, "2024-10_clinic.csv");
    assert!(ws.data.join("processed/2024-10_clinic.csv").exists());
    assert!(!ws.inbox().join("2024-10_clinic.csv").exists());

    // The fee summary adds up to what was accepted.
    let fees = std::fs::read_to_string(ws.data.join("reports/fees/fees-2024-10.csv")).unwrap();
    assert!(fees.starts_with("\u{FEFF}請求年月,接種場所,ワクチン,件数,委託料合計"));
    let total_line = fees.lines().last().unwrap();
    let total_count: u64 = total_line.split(',').nth(3).unwrap().parse().unwrap();
    assert_eq!(total_count, g.stats.valid_rows as u64);

    // Delivered again, byte for byte: skipped, nothing changes in the store.
    let before = kenko_store::open(&ws.database_url)
        .unwrap()
        .record_lines()
        .unwrap();
    ws.deliver("2024-10_clinic-again.csv", &g.bytes);
    let again = ws.run_once_json();
    assert_eq!(count(&again, "duplicates"), 1, "{again}");
    assert_eq!(count(&again, "accepted"), 0);
    let after = kenko_store::open(&ws.database_url)
        .unwrap()
        .record_lines()
        .unwrap();
    assert_eq!(before, after);
    assert!(ws
        .data
        .join("processed/duplicates/2024-10_clinic-again.csv")
        .exists());

    // The same rows in a different file (another encoding): every row is a duplicate of a
    // loaded record or returned for its own error; nothing new is stored.
    let g8 = generate(&residents, 1_500, SampleEncoding::Utf8, 0.2, 11);
    ws.deliver("2024-10_clinic-utf8.csv", &g8.bytes);
    let s = ws.run_once_json();
    let fs = &s["file_summaries"][0];
    assert_eq!(count(fs, "accepted"), 0, "{fs}");
    assert_eq!(fs["disposition"], "returned");
    // A row repeated inside the file repeats a loaded record too, so it counts as that.
    let repeats = g8
        .stats
        .injected
        .get("duplicate_in_file")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        fs["reasons"]["duplicate_of_loaded"].as_u64(),
        Some((g8.stats.valid_rows + repeats) as u64),
        "{fs}"
    );
    let after2 = kenko_store::open(&ws.database_url)
        .unwrap()
        .record_lines()
        .unwrap();
    assert_eq!(before, after2);
}

#[test]
fn postgres_and_sqlite_end_with_the_same_records_ledger_and_reports() {
    let sqlite = Workspace::sqlite();
    let pg = Workspace::postgres();
    let mut snaps = Vec::new();
    for ws in [&sqlite, &pg] {
        let residents = ws.import_residents(2_000, 3);
        let g = generate(&residents, 5_000, SampleEncoding::Cp932, 0.1, 5);
        ws.deliver("a.csv", &g.bytes);
        let g2 = generate(&residents, 800, SampleEncoding::Utf8, 0.1, 6);
        ws.deliver("b.csv", &g2.bytes);
        let s = ws.run_once_json();
        assert_eq!(count(&s, "files"), 2, "{s}");
        assert_eq!(count(&s, "failed"), 0, "{s}");
        snaps.push(ws.snapshot());
    }
    let (a, b) = (&snaps[0], &snaps[1]);
    assert!(a.records.len() > 4_000);
    assert_same_lines(&a.records, &b.records, "SQLite vs PostgreSQL records");
    assert_eq!(a.ledger, b.ledger);
    assert_eq!(
        a.files.keys().collect::<Vec<_>>(),
        b.files.keys().collect::<Vec<_>>()
    );
    assert!(
        a.files == b.files,
        "report contents differ between SQLite and PostgreSQL"
    );
}

fn broken_case(name: &str, bytes: &[u8], reason: &str) -> (Workspace, serde_json::Value) {
    let ws = Workspace::sqlite();
    ws.import_residents(200, 1);
    ws.deliver(name, bytes);
    let s = ws.run_once_json();
    let fs = s["file_summaries"][0].clone();
    assert_eq!(fs["disposition"], "returned", "{fs}");
    assert_eq!(count(&fs, "accepted"), 0);
    assert_eq!(fs["file_errors"][0]["reason"], reason, "{fs}");
    assert!(ws.data.join("returned").join(name).exists());
    assert_eq!(
        kenko_store::open(&ws.database_url)
            .unwrap()
            .record_count()
            .unwrap(),
        0,
        "nothing loaded from a rejected file"
    );
    (ws, fs)
}

#[test]
fn broken_files_are_returned_whole_with_a_clear_reason() {
    broken_case("empty.csv", b"", "empty_file");
    broken_case("header-only.csv", "宛名番号,個人番号,氏名,性別,生年月日,住所,接種日,接種場所,接種時年齢,請求年月,診察区分,LOT-NO,ワクチン,転入前接種,予診医師名,接種医師名,公費自費区分,委託料,接種量\n".as_bytes(), "no_data_rows");

    let residents = kenko_sample::generate_residents(200, 1);
    // A column renamed by hand: unknown and missing, both named.
    let g = generate(&residents, 50, SampleEncoding::Utf8, 0.0, 2);
    let text = String::from_utf8(g.bytes.clone())
        .unwrap()
        .replacen("委託料", "料金", 1);
    let (_, fs) = broken_case("renamed.csv", text.as_bytes(), "unknown_column");
    // Named by position and shape: a header cell's text could be a resident's value.
    let position = String::from_utf8(g.bytes.clone())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "委託料")
        .unwrap()
        + 1;
    assert_eq!(
        fs["file_errors"][0]["column"],
        format!("column {position} (2 characters: kanji)")
    );
    assert_eq!(fs["file_errors"][1]["reason"], "missing_column");
    assert_eq!(fs["file_errors"][1]["column"], "委託料");

    // An undecodable byte deep in a CP932 file (after 2,048-row batches were already
    // inserted): the whole file goes back, with the byte offset and the row.
    let g = generate(&residents, 3_000, SampleEncoding::Cp932, 0.0, 3);
    let mut bytes = g.bytes.clone();
    let mut line_starts = vec![0usize];
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            line_starts.push(i + 1);
        }
    }
    let row = 2_500; // header is row 1
    let offset = line_starts[row - 1] + 3; // inside 宛名番号's digits
    bytes[offset] = 0x81;
    bytes[offset + 1] = 0x20;
    // Remarks may hold quoted line breaks, so the CSV row is the line less those.
    let mut quoted = false;
    let mut breaks_in_quotes = 0;
    for &b in &bytes[..offset] {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if quoted => breaks_in_quotes += 1,
            _ => {}
        }
    }
    let (ws, fs) = broken_case("bad-bytes.csv", &bytes, "undecodable_bytes");
    assert_eq!(
        fs["file_errors"][0]["offset"].as_u64(),
        Some(offset as u64),
        "{fs}"
    );
    assert_eq!(
        fs["file_errors"][0]["line"].as_u64(),
        Some(row as u64),
        "{fs}"
    );
    assert_eq!(
        fs["file_errors"][0]["row"].as_u64(),
        Some((row - breaks_in_quotes) as u64),
        "{fs}"
    );
    let report = std::fs::read(ws.data.join(fs["return_report"].as_str().unwrap())).unwrap();
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&report);
    assert!(!bad);
    assert!(text.contains(&format!("バイト位置 {offset}")), "{text}");
}

#[test]
fn a_file_returned_for_a_stale_register_is_retried_after_the_register_is_fixed() {
    let ws = Workspace::sqlite();
    let residents = kenko_sample::generate_residents(500, 12);
    // The register in force lacks everyone in the file (a different extract).
    ws.import_residents(100, 13);
    let g = generate(&residents, 200, SampleEncoding::Utf8, 0.0, 4);
    ws.deliver("late.csv", &g.bytes);
    let s = ws.run_once_json();
    assert_eq!(s["file_summaries"][0]["disposition"], "returned", "{s}");
    let returned = ws.data.join("returned/late.csv");
    assert!(returned.exists());
    // Retrying before the fix changes nothing but is allowed; a loaded file is refused.
    ws.import_residents(500, 12);
    ws.run_ok(&["intake", "retry", returned.to_str().unwrap()]);
    assert!(ws.inbox().join("late.csv").exists());
    let s = ws.run_once_json();
    let fs = &s["file_summaries"][0];
    assert_eq!(fs["disposition"], "loaded", "{fs}");
    assert_eq!(count(fs, "accepted"), g.stats.valid_rows as u64);
    let out = ws.run(&[
        "intake",
        "retry",
        ws.data.join("processed/late.csv").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only files in"));
}

#[test]
fn a_broken_register_extract_names_row_and_field_and_changes_nothing() {
    let ws = Workspace::sqlite();
    ws.import_residents(100, 1);
    let residents = kenko_sample::generate_residents(100, 2);
    let mut buf = Vec::new();
    kenko_sample::write_resident_csv(&mut buf, &residents).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Row 40 (header = row 1): an impossible birth date.
    let mut cols: Vec<String> = lines[39].split(',').map(String::from).collect();
    let birth = cols[4].clone();
    cols[4] = "20230230".into();
    lines[39] = cols.join(",");
    let path = ws.dir.path().join("broken-residents.csv");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = ws.run(&["residents", "import", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken-residents.csv row 40, field 生年月日: expected a date"),
        "{err}"
    );
    assert!(!err.contains(&residents[38].name) && !err.contains(&birth));
    // The earlier register is still the one in force.
    let mut store = kenko_store::open(&ws.database_url).unwrap();
    let mut n = 0;
    store.for_each_resident(&mut |_| n += 1).unwrap();
    assert_eq!(n, 100);
    assert_eq!(store.register_generation().unwrap(), 1);
}

/// Runs the agent until it stops at `point`, kills it with SIGKILL, and returns.
fn kill_at(ws: &Workspace, point: &str) {
    let mut child = ws
        .cmd()
        .env("KENKO_TEST_CRASHPOINT", point)
        .args(["intake", "run-once"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reached = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line == format!("kenko-crashpoint: {point}") {
            reached = true;
            break;
        }
    }
    assert!(reached, "the agent never reached crash point {point}");
    // SIGKILL: no destructor, no flush, no rollback by the process itself.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn kill_9_at_any_step_then_restart_ends_exactly_like_an_uninterrupted_run() {
    let residents = kenko_sample::generate_residents(2_000, 9);
    let g = generate(&residents, 5_000, SampleEncoding::Cp932, 0.1, 21);

    let reference = Workspace::sqlite();
    reference.import_residents(2_000, 9);
    reference.deliver("2024-10_a.csv", &g.bytes);
    reference.run_once_json();
    let expected = reference.snapshot();
    assert!(expected.records.len() > 4_000);

    for point in [
        "rows-inserted",
        "before-rename",
        "after-reports",
        "after-commit",
        "after-move",
        "before-fee-report",
    ] {
        let ws = Workspace::sqlite();
        ws.import_residents(2_000, 9);
        ws.deliver("2024-10_a.csv", &g.bytes);
        kill_at(&ws, point);
        let s = ws.run_once_json();
        assert_eq!(count(&s, "failed"), 0, "after a crash at {point}: {s}");
        let got = ws.snapshot();
        assert_same_lines(
            &got.records,
            &expected.records,
            &format!("records after a crash at {point}"),
        );
        assert_eq!(
            got.ledger, expected.ledger,
            "ledger after a crash at {point}"
        );
        assert_eq!(
            got.dirty, expected.dirty,
            "dirty months after a crash at {point}"
        );
        let visible = |s: &Snapshot| {
            s.files
                .iter()
                .filter(|(k, _)| !k.rsplit('/').next().unwrap().starts_with('.'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(
            visible(&got).keys().collect::<Vec<_>>(),
            visible(&expected).keys().collect::<Vec<_>>(),
            "files after a crash at {point}"
        );
        assert!(
            visible(&got) == visible(&expected),
            "file contents after a crash at {point}"
        );
    }
}

#[test]
fn kill_9_on_postgres_mid_file_then_restart_loads_exactly_once() {
    let residents = kenko_sample::generate_residents(2_000, 9);
    let g = generate(&residents, 5_000, SampleEncoding::Utf8, 0.1, 22);
    let reference = Workspace::sqlite();
    reference.import_residents(2_000, 9);
    reference.deliver("m.csv", &g.bytes);
    reference.run_once_json();
    let expected = reference.snapshot();

    let ws = Workspace::postgres();
    ws.import_residents(2_000, 9);
    ws.deliver("m.csv", &g.bytes);
    kill_at(&ws, "rows-inserted");
    ws.run_once_json();
    let got = ws.snapshot();
    assert_same_lines(
        &got.records,
        &expected.records,
        "records on PostgreSQL after a crash",
    );
    assert_eq!(got.ledger, expected.ledger);
    assert!(
        got.files == expected.files,
        "files after a crash on PostgreSQL"
    );
}

#[test]
fn no_personal_value_reaches_logs_output_or_reports() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(500, 4);
    // Every row carries an error, so every row is talked about somewhere.
    let g = generate(&residents, 400, SampleEncoding::Utf8, 1.0, 8);
    ws.deliver("errors.csv", &g.bytes);
    let out = ws
        .cmd()
        .env("KENKO_LOG", "trace")
        .args(["intake", "run-once", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut haystack = String::from_utf8_lossy(&out.stdout).into_owned();
    haystack.push_str(&String::from_utf8_lossy(&out.stderr));
    for (name, bytes) in ws.snapshot().files {
        if name.starts_with("reports/") {
            haystack.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    let metrics_out = ws.run_ok(&["intake", "ledger", "--json"]);
    haystack.push_str(&String::from_utf8_lossy(&metrics_out.stdout));
    assert!(
        haystack.contains("name_mismatch"),
        "the run did report errors"
    );

    // Every personal value in the file, as written and normalised.
    let mut values = std::collections::BTreeSet::new();
    let mut reader = kenko_agent::intake::decode::RecordReader::new(&g.bytes[..]).unwrap();
    assert!(reader.advance().unwrap());
    while reader.advance().unwrap() {
        let cols = reader.fields();
        for idx in [1usize, 2, 4, 5] {
            let v = cols[idx].trim();
            if v.chars().count() >= 4 {
                values.insert(v.to_string());
                values.insert(v.replace(['\u{3000}', ' '], ""));
            }
        }
    }
    for r in &residents {
        values.insert(r.name.clone());
        values.insert(r.address.clone());
        if let Some(m) = &r.mynumber {
            values.insert(m.clone());
        }
    }
    assert!(values.len() > 500);
    for v in &values {
        assert!(
            !haystack.contains(v.as_str()),
            "a personal value leaked into logs, output or reports"
        );
    }
}

#[test]
fn the_running_agent_takes_files_found_at_start_and_watched_and_serves_metrics() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(1_000, 5);
    // Arrived while the agent was down.
    let g1 = generate(&residents, 300, SampleEncoding::Cp932, 0.1, 1);
    ws.deliver("early.csv", &g1.bytes);
    let port = free_port();
    let mut child = ws
        .cmd()
        .env("KENKO_SETTLE_SECS", "1")
        // As a stack's intake Deployment sets it: every series names the stack.
        .env("KENKO_STACK", "hachioji")
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let processed = ws.data.join("processed");
    wait_for(
        "the start-up scan to take early.csv",
        Duration::from_secs(60),
        || processed.join("early.csv").exists(),
    );
    // Renamed in while running.
    let g2 = generate(&residents, 200, SampleEncoding::Utf8, 0.0, 2);
    ws.deliver("watched.csv", &g2.bytes);
    // Written in place with a .done marker.
    let g3 = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 3);
    std::fs::write(ws.inbox().join("marked.csv"), &g3.bytes).unwrap();
    std::fs::write(ws.inbox().join("marked.csv.done"), b"").unwrap();
    wait_for(
        "the watcher to take the new files",
        Duration::from_secs(60),
        || processed.join("watched.csv").exists() && processed.join("marked.csv").exists(),
    );
    assert!(!ws.inbox().join("marked.csv.done").exists());
    let mut metrics = String::new();
    wait_for("metrics", Duration::from_secs(30), || {
        metrics = http_get(port, "/metrics").unwrap_or_default();
        metrics.contains("kenko_intake_files_total{outcome=\"loaded\",stack=\"hachioji\"} 3")
    });
    for name in [
        "kenko_intake_rows_total{outcome=\"accepted\",stack=\"hachioji\"}",
        "kenko_intake_rejections_total{reason=",
        "kenko_intake_file_duration_seconds_bucket{",
        "kenko_intake_last_success_timestamp_seconds{stack=\"hachioji\"}",
        "kenko_intake_register_residents{stack=\"hachioji\"} 1000",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert!(http_get(port, "/healthz").unwrap().ends_with("ok"));
    // What the controller reads into the HealthStack's status. It is written when a round
    // ends, which can be after the last file's metrics moved: wait for the round.
    let mut report = kenko_api::intake::IntakeReport::default();
    wait_for("the round's status", Duration::from_secs(30), || {
        let status = http_get(port, kenko_api::intake::STATUS_PATH).unwrap_or_default();
        let body = status.split("\r\n\r\n").nth(1).unwrap_or(&status);
        if let Ok(r) = serde_json::from_str::<kenko_api::intake::IntakeReport>(body) {
            report = r;
        }
        report.files_loaded == 3
    });
    assert_eq!(report.files_loaded, 3, "{report:?}");
    // KENKO_TODAY is in 2024-11: the ledger's counts for claim month 2024-10.
    assert_eq!(report.claim_month.as_deref(), Some("2024-10"), "{report:?}");
    assert_eq!(report.reason, "IntakeOk", "{report:?}");
    assert!(report.last_file_at.is_some());
    // SIGTERM: the agent stops by itself.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "agent exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

use std::process::Command;

#[test]
fn the_demo_runs_on_embedded_defaults_and_is_safe_to_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(agent_bin())
            .current_dir(dir.path())
            .env_remove("KENKO_DATA_DIR")
            .env_remove("KENKO_DATABASE_URL")
            .args(["demo", "--residents", "3000", "--records", "400"])
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "loaded",
        "returned",
        "fee summary",
        "return report",
        "kenko-data",
        "missing_column",
    ] {
        assert!(text.contains(want), "demo output lacks {want:?}:\n{text}");
    }
    assert!(dir.path().join("kenko-data/kenko.db").exists());
    let out = run();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("skipped as duplicates"), "{text}");
}

#[test]
fn a_replaced_vaccine_master_is_used_and_a_broken_one_is_refused() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(1_000, 6);
    let g = generate(&residents, 600, SampleEncoding::Utf8, 0.0, 9);
    ws.deliver("m.csv", &g.bytes);
    // The city's master: influenza's public fee differs from the built-in one.
    let master = kenko_intake::master::DEFAULT_MASTER_TOML
        .replace("fee = { vaccination = 4730", "fee = { vaccination = 5000");
    let path = ws.dir.path().join("master.toml");
    std::fs::write(&path, master).unwrap();
    let out = ws.run_ok(&[
        "--vaccine-master",
        path.to_str().unwrap(),
        "intake",
        "run-once",
        "--json",
    ]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fs = &s["file_summaries"][0];
    let fee_mismatch = fs["reasons"]["fee_mismatch"].as_u64().unwrap_or(0);
    assert!(
        fee_mismatch > 20,
        "public influenza rows now have the wrong fee: {fs}"
    );

    std::fs::write(&path, "[[vaccine]]\ncode = \"INF\"\n").unwrap();
    ws.deliver(
        "m2.csv",
        &generate(&residents, 10, SampleEncoding::Utf8, 0.0, 10).bytes,
    );
    let out = ws.run(&[
        "--vaccine-master",
        path.to_str().unwrap(),
        "intake",
        "run-once",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master.toml"), "{err}");
    assert!(
        ws.inbox().join("m2.csv").exists(),
        "the file waits for a usable master"
    );
}

#[test]
fn intake_check_reports_what_a_file_would_return_without_loading_it() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(1_000, 8);
    let g = generate(&residents, 500, SampleEncoding::Cp932, 0.2, 12);
    let path = ws.dir.path().join("preview.csv");
    std::fs::write(&path, &g.bytes).unwrap();
    let out = ws.run_ok(&["intake", "check", path.to_str().unwrap(), "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Duplicates need the store, so a repeated row passes the checks here.
    let repeats = g
        .stats
        .injected
        .get("duplicate_in_file")
        .copied()
        .unwrap_or(0);
    assert_eq!(count(&s, "rows"), g.stats.rows as u64);
    assert_eq!(
        count(&s, "rejected"),
        (g.stats.injected_total() - repeats) as u64,
        "{s}"
    );
    assert_eq!(
        count(&s, "passing"),
        (g.stats.valid_rows + repeats) as u64,
        "{s}"
    );
    assert_eq!(
        kenko_store::open(&ws.database_url)
            .unwrap()
            .record_count()
            .unwrap(),
        0
    );
    assert!(kenko_store::open(&ws.database_url)
        .unwrap()
        .ledger_all()
        .unwrap()
        .is_empty());
}

/// Writes records as RFC 4180 CSV (quoting where needed).
fn to_csv(rows: &[Vec<String>], eol: &str) -> String {
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .map(|c| {
                if c.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.clone()
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str(eol);
    }
    out
}

#[test]
fn columns_in_any_order_with_full_width_header_and_bom_load_the_same() {
    let residents = kenko_sample::generate_residents(1_000, 14);
    let g = generate(&residents, 400, SampleEncoding::Utf8, 0.1, 15);
    let mut reader = kenko_agent::intake::decode::RecordReader::new(&g.bytes[..]).unwrap();
    let mut rows = Vec::new();
    while reader.advance().unwrap() {
        rows.push(
            reader
                .fields()
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>(),
        );
    }
    // Reverse the columns, write LOT-NO the way a spreadsheet in full-width mode does, add a BOM
    // and CRLF line ends.
    for r in rows.iter_mut() {
        r.reverse();
    }
    for cell in rows[0].iter_mut() {
        if cell == "LOT-NO" {
            *cell = "ＬＯＴ－ＮＯ".into();
        }
    }
    let shuffled = format!("\u{FEFF}{}", to_csv(&rows, "\r\n"));

    let a = Workspace::sqlite();
    a.import_residents(1_000, 14);
    a.deliver("canonical.csv", &g.bytes);
    let sa = a.run_once_json();
    let b = Workspace::sqlite();
    b.import_residents(1_000, 14);
    b.deliver("canonical.csv", shuffled.as_bytes());
    let sb = b.run_once_json();
    for key in ["accepted", "rejected", "rows"] {
        assert_eq!(sa[key], sb[key], "{key}: {sa} vs {sb}");
    }
    assert_eq!(sa["reasons"], sb["reasons"]);
    // Same records, apart from the file hash each is tagged with.
    let strip = |lines: Vec<String>| -> Vec<String> {
        let mut v: Vec<String> = lines
            .into_iter()
            .map(|l| l.split_once('|').unwrap().1.to_string())
            .collect();
        v.sort();
        v
    };
    assert_same_lines(
        &strip(
            kenko_store::open(&b.database_url)
                .unwrap()
                .record_lines()
                .unwrap(),
        ),
        &strip(
            kenko_store::open(&a.database_url)
                .unwrap()
                .record_lines()
                .unwrap(),
        ),
        "records from reordered columns",
    );
}

/// A file that keeps failing is counted once per try, backs off on its own, and does not stop
/// the watcher from taking the next file. Its summary's place is made a non-empty directory,
/// so writing the report fails for that file only (a real I/O failure, not a simulated one).
#[test]
fn a_failing_file_is_counted_once_and_backs_off_while_the_next_file_is_taken() {
    use sha2::Digest;
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(500, 11);
    let stuck = generate(&residents, 50, SampleEncoding::Utf8, 0.0, 21);
    let sha = hex::encode(sha2::Sha256::digest(&stuck.bytes));
    let blocker = ws
        .data
        .join("reports/intake")
        .join(format!("stuck.{}.json", &sha[..12]));
    std::fs::create_dir_all(blocker.join("in-the-way")).unwrap();
    ws.deliver("stuck.csv", &stuck.bytes);
    let port = free_port();
    let mut child = ws
        .cmd()
        .env("KENKO_SETTLE_SECS", "1")
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let failed_once = "kenko_intake_failures_total{reason=\"io_failed\"} 1\n";
    wait_for("the first failure", Duration::from_secs(60), || {
        http_get(port, "/metrics").is_some_and(|m| m.contains(failed_once))
    });
    // The watcher's own reads and a new delivery wake it; the failing file waits its turn.
    let next = generate(&residents, 50, SampleEncoding::Utf8, 0.0, 22);
    ws.deliver("next.csv", &next.bytes);
    let processed = ws.data.join("processed");
    // The metric moves after the file does: wait for both, or a slow machine reads the
    // metrics in between.
    wait_for("the next file", Duration::from_secs(25), || {
        processed.join("next.csv").exists()
            && http_get(port, "/metrics")
                .is_some_and(|m| m.contains("kenko_intake_files_total{outcome=\"loaded\"} 1\n"))
    });
    let metrics = http_get(port, "/metrics").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(metrics.contains(failed_once), "{metrics}");
    assert!(
        !metrics.contains("intake_round_failed"),
        "the round counted the file's failure again:\n{metrics}"
    );
    assert!(
        metrics.contains("kenko_intake_files_total{outcome=\"loaded\"} 1\n"),
        "{metrics}"
    );
    assert!(
        ws.inbox().join("stuck.csv").exists(),
        "the failing file stays in the inbox"
    );
}

/// What kenko keeps holds personal data: processed/, returned/ and reports/ are the agent's
/// alone (0700), the originals it moved, the reports it wrote and the database file 0600, even
/// when the uploader left a delivery world-readable and an earlier version made the folders
/// 0755.
#[test]
fn originals_reports_and_the_database_are_the_agents_alone() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 9);
    // A layout from before: open folders.
    for d in ["processed", "returned", "reports"] {
        std::fs::create_dir_all(ws.data.join(d)).unwrap();
        std::fs::set_permissions(ws.data.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let g = generate(&residents, 100, SampleEncoding::Utf8, 0.2, 3);
    let good = ws.deliver("2026-11_a.csv", &g.bytes);
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    ws.deliver("2026-11_broken.csv", b"not,an,intake,file\n1,2,3,4\n");
    ws.run_once_json();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for d in [
        "processed",
        "returned",
        "reports",
        "reports/returns",
        "reports/intake",
        "reports/fees",
        "keys",
    ] {
        assert_eq!(mode(&ws.data.join(d)), 0o700, "{d}");
    }
    let mut files = Vec::new();
    for d in ["processed", "returned", "reports/returns", "reports/intake"] {
        for e in std::fs::read_dir(ws.data.join(d)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    assert!(files.len() >= 5, "{files:?}");
    let db = std::path::PathBuf::from(ws.database_url.strip_prefix("sqlite://").unwrap());
    files.push(db);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}
