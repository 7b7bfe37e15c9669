//! The intake against careless and hostile inputs, with the real binary and real files: a file
//! without its header, an inbox entry swapped for a link or a FIFO between the scan and the
//! open, a file that grows or is replaced while it is taken, names that try to forge log
//! lines, a row of hundreds of megabytes, a NUL byte on PostgreSQL, a store failure on one
//! file. Each reproduces a case an adversarial run found, and fails on the code before it.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};

use common::*;
use kenko_sample::SampleEncoding;

/// The values of a generated file's first data row that identify a resident (宛名番号,
/// 個人番号, 氏名, 生年月日, 住所): none may appear in anything kenko writes or prints.
fn identity_values(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).unwrap();
    let row = text.lines().nth(1).unwrap();
    let fields: Vec<&str> = row.split(',').collect();
    [0, 1, 2, 4, 5]
        .iter()
        .map(|&i| fields[i].trim_matches('"').to_string())
        .filter(|v| v.chars().count() >= 4)
        .collect()
}

/// Every file under the data directory but the inbox and the originals, as text.
fn everything_written(ws: &Workspace) -> String {
    let snap = ws.snapshot();
    snap.files
        .iter()
        .filter(|(k, _)| k.starts_with("reports/"))
        .map(|(k, v)| format!("{k}\n{}\n", String::from_utf8_lossy(v)))
        .collect()
}

/// `run-once` stopped at a pause point: the test changes the world, then [`Paused::go`].
struct Paused {
    child: Child,
    stderr_rest: std::thread::JoinHandle<String>,
}

fn pause_at(ws: &Workspace, point: &str) -> Paused {
    let mut child = ws
        .cmd()
        .env("KENKO_TEST_PAUSE", point)
        .args(["intake", "run-once", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        match lines.next() {
            Some(line) => {
                let line = line.unwrap();
                if line == format!("kenko-pause: {point}") {
                    break;
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            None => panic!("the agent never reached pause point {point}:\n{seen}"),
        }
    }
    let stderr_rest = std::thread::spawn(move || {
        let mut rest = seen;
        for l in lines {
            rest.push_str(&l.unwrap());
            rest.push('\n');
        }
        rest
    });
    Paused { child, stderr_rest }
}

impl Paused {
    /// Lets the agent go on; its output and its whole log.
    fn finish(mut self) -> (std::process::Output, String) {
        self.child.stdin.take().unwrap().write_all(b"\n").unwrap();
        let out = self.child.wait_with_output().unwrap();
        let log = self.stderr_rest.join().unwrap();
        (out, log)
    }

    /// Lets the agent go on; its summary and its log.
    fn go(self) -> (serde_json::Value, String) {
        let (out, log) = self.finish();
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON ({e}): {}\n{log}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (json, log)
    }
}

fn ledger_rows(ws: &Workspace) -> Vec<kenko_store::LedgerEntry> {
    kenko_store::open(&ws.database_url)
        .unwrap()
        .ledger_all()
        .unwrap()
}

fn record_count(ws: &Workspace) -> usize {
    kenko_store::open(&ws.database_url)
        .unwrap()
        .record_lines()
        .unwrap()
        .len()
}

/// The two stores hold the same vaccination records (whichever file and row each came from).
fn same_records(a: &Workspace, b: &Workspace) -> bool {
    let facts = |ws: &Workspace| {
        let mut v: Vec<String> = ws
            .snapshot()
            .records
            .into_iter()
            .map(|l| l.splitn(3, '|').nth(2).unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let (x, y) = (facts(a), facts(b));
    if x != y {
        eprintln!("{} records against {}", x.len(), y.len());
    }
    x == y
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A generated file with `value` in `column` of the first data row where that column is not
/// empty.
fn edit_one_row(bytes: &[u8], column: &str, value: &str) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines[0].split(',').position(|h| h == column).unwrap();
    let row = (1..lines.len())
        .find(|&i| !lines[i].split(',').nth(at).unwrap().is_empty())
        .unwrap();
    let mut fields: Vec<String> = lines[row].split(',').map(str::to_string).collect();
    fields[at] = value.to_string();
    lines[row] = fields.join(",");
    format!("{}\n", lines.join("\n")).into_bytes()
}

/// The data rows of a generated file without its header.
fn data_rows(bytes: &[u8]) -> &[u8] {
    let nl = bytes.iter().position(|&b| b == b'\n').unwrap();
    &bytes[nl + 1..]
}

#[test]
fn a_headerless_intake_file_is_no_header_row_and_quotes_nothing_of_its_first_row() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let g = generate(&residents, 50, SampleEncoding::Utf8, 0.0, 8);
    let values = identity_values(&g.bytes);
    assert!(values.len() >= 3, "{values:?}");
    ws.deliver("2026-11_noheader.csv", data_rows(&g.bytes));
    let out = ws.run_ok(&["intake", "run-once", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["returned"], 1, "{json:#}");
    assert_eq!(json["reasons"], serde_json::json!({"no_header_row": 1}));
    let check = ws.run(&[
        "intake",
        "check",
        "--json",
        ws.data
            .join("returned/2026-11_noheader.csv")
            .to_str()
            .unwrap(),
    ]);
    let shown = format!(
        "{}{}{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr),
        everything_written(&ws)
    );
    assert!(shown.contains("no_header_row"), "{shown}");
    for v in &values {
        assert!(
            !shown.contains(v.as_str()),
            "a first-row value reached an output"
        );
    }
}

#[test]
fn a_headerless_register_extract_names_no_value() {
    let ws = Workspace::sqlite();
    let residents = kenko_sample::generate_residents(50, 3);
    let mut full = Vec::new();
    kenko_sample::write_resident_csv(&mut full, &residents).unwrap();
    let path = ws.dir.path().join("register.csv");
    std::fs::write(&path, data_rows(&full)).unwrap();
    let out = ws.run(&["residents", "import", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("register_bad_header"), "{stderr}");
    let first = &residents[0];
    let mut values = vec![
        first.resident_no.to_string(),
        first.name.clone(),
        first.address.clone(),
        first.birth.format("%Y%m%d").to_string(),
        first.birth.format("%Y-%m-%d").to_string(),
    ];
    values.extend(first.mynumber.clone());
    let shown = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    for v in &values {
        assert!(
            !shown.contains(v.as_str()),
            "a register value reached the output"
        );
    }
}

#[test]
fn a_link_swapped_in_after_the_scan_is_not_followed() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let inside = generate(&residents, 40, SampleEncoding::Utf8, 0.0, 1);
    // A valid intake file outside the inbox, and a secret of the node's.
    let outside = generate(&residents, 40, SampleEncoding::Utf8, 0.0, 2);
    let outside_path = ws.dir.path().join("outside.csv");
    std::fs::write(&outside_path, &outside.bytes).unwrap();
    let secret = ws.dir.path().join("shadow");
    std::fs::write(&secret, "root:$6$SECRETHASH:19000:0:99999:7:::\n").unwrap();
    let a = ws.deliver("2026-11_a.csv", &inside.bytes);
    let b = ws.deliver("2026-11_b.csv", &inside.bytes[..inside.bytes.len() / 2]);
    let p = pause_at(&ws, "scanned");
    std::fs::remove_file(&a).unwrap();
    std::os::unix::fs::symlink(&outside_path, &a).unwrap();
    std::fs::remove_file(&b).unwrap();
    std::os::unix::fs::symlink(&secret, &b).unwrap();
    let (json, log) = p.go();
    assert_eq!(json["loaded"], 0, "{json:#}");
    let reasons: Vec<&str> = json["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["inbox_symlink", "inbox_symlink"],
        "{json:#}\n{log}"
    );
    assert_eq!(record_count(&ws), 0);
    assert!(ledger_rows(&ws).is_empty());
    assert!(!everything_written(&ws).contains("SECRETHASH"));
    assert!(!format!("{json}{log}").contains("SECRETHASH"));
    assert_eq!(std::fs::read(&outside_path).unwrap(), outside.bytes);
    // The links stay, named in the next scan with their reason.
    let json = ws.run_once_json();
    let ignored: Vec<(&str, &str)> = json["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["entry"].as_str().unwrap(), i["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ignored,
        [
            ("2026-11_a.csv", "inbox_symlink"),
            ("2026-11_b.csv", "inbox_symlink")
        ]
    );
}

#[test]
fn a_fifo_swapped_in_blocks_nothing_and_the_next_file_is_taken() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let g = generate(&residents, 40, SampleEncoding::Utf8, 0.0, 1);
    let a = ws.deliver("2026-11_a.csv", &g.bytes);
    let g2 = generate(&residents, 30, SampleEncoding::Utf8, 0.0, 2);
    ws.deliver("2026-11_b.csv", &g2.bytes);
    let p = pause_at(&ws, "scanned");
    std::fs::remove_file(&a).unwrap();
    nix::unistd::mkfifo(&a, nix::sys::stat::Mode::S_IRWXU).unwrap();
    // No writer ever opens the FIFO: a blocking open would wait forever here.
    let (json, _) = p.go();
    assert_eq!(json["failures"][0]["reason"], "inbox_not_regular_file");
    assert_eq!(json["loaded"], 1, "{json:#}");
    assert_eq!(json["file_summaries"][0]["file"], "2026-11_b.csv");
}

#[test]
fn entries_that_are_no_delivery_are_reported_once_each_and_good_files_still_taken() {
    use std::os::unix::ffi::OsStrExt;
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let g = generate(&residents, 40, SampleEncoding::Utf8, 0.0, 1);
    ws.deliver("2026-11_good.csv", &g.bytes);
    let inbox = ws.inbox();
    std::os::unix::fs::symlink("/etc/hostname", inbox.join("link.csv")).unwrap();
    nix::unistd::mkfifo(&inbox.join("pipe.csv"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::fs::create_dir(inbox.join("folder")).unwrap();
    std::fs::write(inbox.join("lost.csv.done"), "").unwrap();
    std::fs::write(
        inbox.join(std::ffi::OsStr::from_bytes(b"\x93\xfa\x96\x7b.csv")),
        &g.bytes,
    )
    .unwrap();
    let out = ws.run_ok(&["intake", "run-once", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["loaded"], 1, "{json:#}");
    let ignored: Vec<(&str, &str)> = json["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["entry"].as_str().unwrap(), i["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ignored,
        [
            ("\\x93\\xfa\\x96{.csv", "inbox_name_not_utf8"),
            ("folder", "inbox_not_regular_file"),
            ("link.csv", "inbox_symlink"),
            ("lost.csv.done", "inbox_orphan_marker"),
            ("pipe.csv", "inbox_not_regular_file"),
        ]
    );
    let log = String::from_utf8_lossy(&out.stderr);
    for (entry, _) in &ignored {
        assert_eq!(
            log.lines()
                .filter(|l| l.contains("is not taken") && l.contains(entry))
                .count(),
            1,
            "{entry}: {log}"
        );
    }
}

#[test]
fn a_file_that_grows_while_it_is_read_is_left_whole_and_taken_whole() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 5);
    let g = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 1);
    let more = generate(&residents, 60, SampleEncoding::Utf8, 0.0, 2);
    let path = ws.deliver("2026-11_a.csv", &g.bytes);
    let p = pause_at(&ws, "file-read");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(data_rows(&more.bytes))
        .unwrap();
    let (json, _) = p.go();
    assert_eq!(json["failures"][0]["reason"], "file_changed", "{json:#}");
    assert_eq!(record_count(&ws), 0);
    assert!(ledger_rows(&ws).is_empty());
    assert!(path.exists());
    assert!(!ws.data.join("processed/2026-11_a.csv").exists());
    // Taken whole next time: both parts' rows, and the ledger names the bytes moved.
    let json = ws.run_once_json();
    assert_eq!(json["loaded"], 1, "{json:#}");
    assert_eq!(json["rows"], 160);
    let moved = std::fs::read(ws.data.join("processed/2026-11_a.csv")).unwrap();
    assert_eq!(ledger_rows(&ws)[0].sha256, sha256_hex(&moved));
}

#[test]
fn a_file_replaced_while_it_is_read_is_left_for_its_own_intake() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 5);
    let first = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 1);
    let second = generate(&residents, 70, SampleEncoding::Utf8, 0.0, 2);
    let path = ws.deliver("2026-11_a.csv", &first.bytes);
    let p = pause_at(&ws, "file-read");
    let tmp = ws.inbox().join(".swap.part");
    std::fs::write(&tmp, &second.bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let (json, _) = p.go();
    assert_eq!(json["failures"][0]["reason"], "file_changed", "{json:#}");
    assert_eq!(record_count(&ws), 0);
    let json = ws.run_once_json();
    assert_eq!(json["rows"], 70, "{json:#}");
    let moved = std::fs::read(ws.data.join("processed/2026-11_a.csv")).unwrap();
    assert_eq!(moved, second.bytes);
    assert_eq!(ledger_rows(&ws)[0].sha256, sha256_hex(&second.bytes));
}

#[test]
fn rows_appended_after_the_commit_come_back_as_a_new_delivery_and_nothing_is_lost() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 5);
    let g = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 1);
    let more = generate(&residents, 60, SampleEncoding::Utf8, 0.0, 2);
    let path = ws.deliver("2026-11_a.csv", &g.bytes);
    let p = pause_at(&ws, "after-commit");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(data_rows(&more.bytes))
        .unwrap();
    let (json, log) = p.go();
    assert_eq!(json["loaded"], 1, "{json:#}");
    assert!(log.contains("changed after its check"), "{log}");
    // The original kept is exactly what the ledger committed.
    let kept = std::fs::read(ws.data.join("processed/2026-11_a.csv")).unwrap();
    assert_eq!(kept, g.bytes);
    assert_eq!(ledger_rows(&ws)[0].sha256, sha256_hex(&g.bytes));
    // The file as it is now is back in the inbox; its new rows load, the rest are duplicates.
    let mut whole = g.bytes.clone();
    whole.extend_from_slice(data_rows(&more.bytes));
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    let json = ws.run_once_json();
    assert_eq!(json["rows"], 160, "{json:#}");
    assert!(json["reasons"]["duplicate_of_loaded"].as_u64().unwrap() >= 100);
    // The same records as a delivery of the whole file at once.
    let reference = Workspace::sqlite();
    reference.import_residents(300, 5);
    reference.deliver("2026-11_a.csv", &whole);
    reference.run_once_json();
    assert!(
        same_records(&ws, &reference),
        "the records differ from one intake of the whole file"
    );
}

#[test]
fn a_file_replaced_after_the_commit_keeps_the_checked_bytes_and_is_taken_on_its_own() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 5);
    let first = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 1);
    let second = generate(&residents, 70, SampleEncoding::Utf8, 0.0, 2);
    let path = ws.deliver("2026-11_a.csv", &first.bytes);
    let p = pause_at(&ws, "after-commit");
    let tmp = ws.inbox().join(".swap.part");
    std::fs::write(&tmp, &second.bytes).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let (json, _) = p.go();
    assert_eq!(json["loaded"], 1, "{json:#}");
    assert_eq!(
        std::fs::read(ws.data.join("processed/2026-11_a.csv")).unwrap(),
        first.bytes
    );
    assert_eq!(std::fs::read(&path).unwrap(), second.bytes);
    let json = ws.run_once_json();
    assert_eq!(json["loaded"], 1, "{json:#}");
    assert_eq!(json["rows"], 70);
    // The same records as the two files delivered one after the other.
    let reference = Workspace::sqlite();
    reference.import_residents(300, 5);
    reference.deliver("2026-11_a.csv", &first.bytes);
    reference.run_once_json();
    reference.deliver("2026-11_b.csv", &second.bytes);
    reference.run_once_json();
    assert!(same_records(&ws, &reference));
}

#[test]
fn file_names_cannot_forge_log_lines_in_either_log_format() {
    for format in ["text", "json"] {
        let ws = Workspace::sqlite();
        ws.import_residents(50, 5);
        let name = "x\n2026-12-07T00:00:00Z ERROR forged: all files lost\u{1b}[2J.csv";
        ws.deliver(name, b"not,an,intake,file\n1,2,3,4\n");
        let out = ws
            .cmd()
            .env("KENKO_LOG_FORMAT", format)
            .args(["intake", "run-once"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains("forged"),
            "{format}: the name is in the log: {log}"
        );
        for line in log.lines() {
            assert!(
                !line.starts_with("2026-12-07T00:00:00Z ERROR forged"),
                "{format}: a forged line: {log}"
            );
        }
        assert!(
            !log.contains('\u{1b}'),
            "{format}: a raw escape code: {log}"
        );
    }
}

#[test]
fn a_row_of_hundreds_of_megabytes_is_returned_and_memory_stays_flat() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let g = generate(&residents, 50, SampleEncoding::Utf8, 0.0, 1);
    // Header, 50 rows, one row whose 備考 is 256 MiB (an unclosed quote), then a good file.
    let path = ws.inbox().join("2026-11_a.csv");
    std::fs::create_dir_all(ws.inbox()).unwrap();
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(&g.bytes).unwrap();
        f.write_all(b"1,\"").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..256 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b"\"\n").unwrap();
    }
    let g2 = generate(&residents, 30, SampleEncoding::Utf8, 0.0, 2);
    ws.deliver("2026-11_b.csv", &g2.bytes);
    let json = ws.run_once_json();
    assert_eq!(json["loaded"], 2, "{json:#}");
    let a = &json["file_summaries"][0];
    assert_eq!(a["rows"], 51);
    assert_eq!(a["accepted"], 50);
    assert_eq!(a["reasons"], serde_json::json!({"row_too_long": 1}));
    let peak = json["peak_rss_kib"].as_u64().unwrap();
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB for a 256 MiB row");
    // A header row past the bound returns the file.
    ws.deliver("2026-11_c.csv", &vec![b'y'; 100_000]);
    let json = ws.run_once_json();
    assert_eq!(json["reasons"], serde_json::json!({"row_too_long": 1}));
    assert_eq!(json["returned"], 1);
}

#[test]
fn a_nul_byte_is_a_malformed_field_on_postgresql_and_a_store_failure_stops_no_other_file() {
    let ws = Workspace::postgres();
    let residents = ws.import_residents(300, 5);
    let g = generate(&residents, 80, SampleEncoding::Utf8, 0.0, 1);
    // A NUL in 予診医師名 of one row.
    ws.deliver(
        "2026-11_a.csv",
        &edit_one_row(&g.bytes, "予診医師名", "山田\u{0}医師"),
    );
    let json = ws.run_once_json();
    assert_eq!(json["loaded"], 1, "{json:#}");
    assert_eq!(json["accepted"], 79);
    assert_eq!(json["reasons"], serde_json::json!({"malformed_field": 1}));

    // The database refuses one file's rows (a trigger stands in for any row-level refusal);
    // the file after it in the same round is still taken.
    let mut pg = postgres::Client::connect(&ws.database_url, postgres::NoTls).unwrap();
    pg.batch_execute(
        "CREATE FUNCTION refuse_lot() RETURNS trigger AS $$ BEGIN \
           IF NEW.lot_no = 'REFUSED1' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
           RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_lot BEFORE INSERT ON records \
           FOR EACH ROW EXECUTE FUNCTION refuse_lot();",
    )
    .unwrap();
    let b = generate(&residents, 40, SampleEncoding::Utf8, 0.0, 2);
    ws.deliver(
        "2026-11_b.csv",
        &edit_one_row(&b.bytes, "LOT-NO", "REFUSED1"),
    );
    let c = generate(&residents, 30, SampleEncoding::Utf8, 0.0, 3);
    ws.deliver("2026-11_c.csv", &c.bytes);
    let out = ws.run(&["intake", "run-once", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failures"][0]["file"], "2026-11_b.csv", "{json:#}");
    assert_eq!(json["failures"][0]["reason"], "store_query_failed");
    assert_eq!(json["loaded"], 1);
    assert_eq!(json["file_summaries"][0]["file"], "2026-11_c.csv");
    assert!(ws.inbox().join("2026-11_b.csv").exists());
}

/// The summaries and return reports anyone would pick up (not the hidden pending ones).
fn visible_reports(ws: &Workspace) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["reports/intake", "reports/returns"] {
        let Ok(rd) = std::fs::read_dir(ws.data.join(sub)) else {
            continue;
        };
        for e in rd {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                out.push(format!("{sub}/{name}"));
            }
        }
    }
    out
}

#[test]
fn a_second_process_on_the_inbox_that_finds_a_file_taken_reports_no_failure() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 5);
    let g = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 1);
    ws.deliver("2026-11_a.csv", &g.bytes);
    // The first has committed and not yet moved the file; the second finishes the move.
    let first = pause_at(&ws, "after-commit");
    let second = ws.run_once_json();
    assert_eq!(second["failed"], 0, "{second:#}");
    assert_eq!(second["recovered"], 1, "{second:#}");
    // The first finds the file gone: taken, not a failure.
    let (out, log) = first.finish();
    assert!(out.status.success(), "{log}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failed"], 0, "{json:#}");
    assert!(!log.contains("io_failed"), "{log}");
    assert_eq!(record_count(&ws), 100);
    assert!(ws.data.join("processed/2026-11_a.csv").exists());
}

#[test]
fn the_log_level_is_kenko_log_else_rust_log() {
    let ws = Workspace::sqlite();
    ws.import_residents(50, 5);
    let info_lines = |kenko: Option<&str>, rust: Option<&str>| {
        let mut c = ws.cmd();
        c.env_remove("KENKO_LOG");
        if let Some(v) = kenko {
            c.env("KENKO_LOG", v);
        }
        if let Some(v) = rust {
            c.env("RUST_LOG", v);
        }
        let out = c.args(["intake", "run-once"]).output().unwrap();
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains(" INFO "))
            .count()
    };
    assert!(info_lines(None, None) > 0, "info by default");
    assert_eq!(info_lines(None, Some("warn")), 0, "RUST_LOG is read");
    assert!(
        info_lines(Some("info"), Some("warn")) > 0,
        "KENKO_LOG first"
    );
    assert_eq!(
        info_lines(Some("error"), Some("info")),
        0,
        "KENKO_LOG first"
    );
}

/// A register extract of `residents`, as text lines (header first).
fn register_lines(residents: &[kenko_sample::SampleResident]) -> Vec<String> {
    let mut bytes = Vec::new();
    kenko_sample::write_resident_csv(&mut bytes, residents).unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn stored_residents(ws: &Workspace) -> usize {
    let mut store = kenko_store::open(&ws.database_url).unwrap();
    let mut n = 0;
    store.for_each_resident(&mut |_| n += 1).unwrap();
    n
}

#[test]
fn a_register_extract_that_shrinks_the_register_is_refused_unless_allowed() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(2_000, 9);
    let lines = register_lines(&residents);
    let write = |name: &str, lines: &[String]| {
        let p = ws.dir.path().join(name);
        std::fs::write(&p, format!("{}\n", lines.join("\n"))).unwrap();
        p
    };
    // Header only, and cut at a line end after 99 residents: refused, the register unchanged.
    for (name, keep) in [("header-only.csv", 1), ("truncated.csv", 100)] {
        let p = write(name, &lines[..keep]);
        let out = ws.run(&["residents", "import", p.to_str().unwrap()]);
        assert!(!out.status.success(), "{name} was imported");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("[reason: register_shrinks]"), "{err}");
        let removed = 2_000 - (keep - 1);
        assert!(
            err.contains(&format!(
                "remove {removed} of the register's 2000 residents"
            )),
            "{err}"
        );
        assert_eq!(stored_residents(&ws), 2_000);
    }
    // 1% removed and 10 addresses changed: within the guard, and counted.
    let mut fresh: Vec<String> = lines[..lines.len() - 20].to_vec();
    for line in fresh.iter_mut().skip(1).take(10) {
        let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
        f[5] = format!("{}1", f[5]);
        *line = f.join(",");
    }
    let p = write("fresh.csv", &fresh);
    let out = ws.run_ok(&["residents", "import", "--json", p.to_str().unwrap()]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        s,
        serde_json::json!({"residents": 1980, "before": 2000, "added": 0, "removed": 20, "changed": 10})
    );
    // The operator who means it.
    let p = write("truncated.csv", &lines[..100]);
    let out = ws.run_ok(&[
        "residents",
        "import",
        "--allow-shrink",
        "--json",
        p.to_str().unwrap(),
    ]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["residents"], 99);
    assert_eq!(s["removed"], 1881);
}

#[test]
fn an_import_during_an_intake_fails_its_commit_and_the_file_is_checked_again() {
    for ws in [Workspace::sqlite(), Workspace::postgres()] {
        let residents = ws.import_residents(300, 5);
        let g = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 1);
        let path = ws.deliver("2026-11_a.csv", &g.bytes);
        // A fresh extract in which every address changed: the file's rows no longer match.
        let mut lines = register_lines(&residents);
        for line in lines.iter_mut().skip(1) {
            let mut f: Vec<String> = line.split(',').map(str::to_string).collect();
            f[5] = format!("{}1", f[5]);
            *line = f.join(",");
        }
        let extract = ws.dir.path().join("moved.csv");
        std::fs::write(&extract, format!("{}\n", lines.join("\n"))).unwrap();
        // The intake has loaded the register it checks against; the import completes now.
        let p = pause_at(&ws, "scanned");
        ws.run_ok(&["residents", "import", extract.to_str().unwrap()]);
        let (json, _) = p.go();
        assert_eq!(
            json["failures"][0]["reason"], "register_changed",
            "{json:#}"
        );
        assert_eq!(record_count(&ws), 0);
        assert!(ledger_rows(&ws).is_empty());
        assert!(path.exists());
        // No report claims an outcome that did not commit.
        assert!(
            visible_reports(&ws).is_empty(),
            "{:?}",
            visible_reports(&ws)
        );
        // Checked again, against the register now in force.
        let json = ws.run_once_json();
        assert_eq!(json["accepted"], 0, "{json:#}");
        assert_eq!(json["reasons"]["address_mismatch"], 100);
        let entry = &ledger_rows(&ws)[0];
        assert!(entry.register_generation.is_some());
    }
}

/// Kills `run-once` at a crash point.
fn kill_at(ws: &Workspace, point: &str) {
    let mut child = ws
        .cmd()
        .env("KENKO_TEST_CRASHPOINT", point)
        .args(["intake", "run-once"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .any(|l| l.unwrap() == format!("kenko-crashpoint: {point}"));
    assert!(reached, "never reached {point}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn on_one_database_an_agent_recovers_only_the_files_it_holds() {
    let a = Workspace::postgres();
    let residents = a.import_residents(300, 5);
    let b = a.another_agent();
    let g = generate(&residents, 100, SampleEncoding::Utf8, 0.0, 1);
    a.deliver("2026-11_a.csv", &g.bytes);
    // A commits and dies before its move.
    kill_at(&a, "after-commit");
    assert!(!ledger_rows(&a)[0].moved);
    // B's round: A's file is not in B's inbox, and that is none of B's business.
    b.run_once_json();
    assert!(!ledger_rows(&a)[0].moved, "B marked A's entry moved");
    // The same bytes delivered to B are a second delivery, not B's to finish.
    b.deliver("2026-11_a.csv", &g.bytes);
    let json = b.run_once_json();
    assert_eq!(json["duplicates"], 1, "{json:#}");
    assert!(!ledger_rows(&a)[0].moved);
    // A, restarted, finishes its own move, and has the month's fee summary.
    let json = a.run_once_json();
    assert_eq!(json["recovered"], 1, "{json:#}");
    assert!(a.data.join("processed/2026-11_a.csv").exists());
    assert!(!a.data.join("processed/duplicates").exists());
    let entry = &ledger_rows(&a)[0];
    assert!(entry.moved);
    assert_eq!(entry.destination, "processed/2026-11_a.csv");
    let fees: Vec<_> = std::fs::read_dir(a.data.join("reports/fees"))
        .unwrap()
        .collect();
    assert_eq!(fees.len(), 1, "A has no fee summary");
}

#[test]
fn a_spreadsheet_export_names_empty_header_cells_by_position_and_skips_empty_rows() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let g = generate(&residents, 30, SampleEncoding::Utf8, 0.0, 1);
    let text = String::from_utf8(g.bytes.clone()).unwrap();
    let width = text.lines().next().unwrap().split(',').count();
    // Rows of only commas below the data, after a blank line (which the CSV reader skips: it
    // is no record at all).
    let mut padded = text.clone();
    padded.push('\n');
    for _ in 0..5 {
        padded.push_str(&",".repeat(width - 1));
        padded.push('\n');
    }
    ws.deliver("2026-11_a.csv", padded.as_bytes());
    let json = ws.run_once_json();
    let s = &json["file_summaries"][0];
    assert_eq!(s["disposition"], "loaded", "{s:#}");
    assert_eq!(s["rows"], 30);
    assert_eq!(s["empty_rows"], 5);
    // Two empty cells after the header's last column, as a spreadsheet writes them.
    let with_tail: String = text.lines().map(|l| format!("{l},,\n")).collect();
    ws.deliver("2026-11_b.csv", with_tail.as_bytes());
    let json = ws.run_once_json();
    let s = &json["file_summaries"][0];
    assert_eq!(
        s["reasons"],
        serde_json::json!({"unknown_column": 2}),
        "{s:#}"
    );
    let columns: Vec<&str> = s["file_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["column"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            format!("column {} (empty)", width + 1),
            format!("column {} (empty)", width + 2)
        ]
    );
}

/// The failures counted so far for a reason.
fn failures(metrics: &str, reason: &str) -> u64 {
    let key = format!("kenko_intake_failures_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn a_file_that_keeps_failing_backs_off_on_its_own_and_makes_the_agent_not_ready() {
    use sha2::Digest;
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 5);
    let stuck = generate(&residents, 50, SampleEncoding::Utf8, 0.0, 1);
    let sha = hex::encode(sha2::Sha256::digest(&stuck.bytes));
    // The summary's place is taken by a non-empty folder: a real I/O failure of this file only.
    let blocker = ws
        .data
        .join("reports/intake")
        .join(format!("stuck.{}.json", &sha[..12]));
    std::fs::create_dir_all(blocker.join("in-the-way")).unwrap();
    ws.deliver("stuck.csv", &stuck.bytes);
    let port = free_port();
    let mut child = ws
        .cmd()
        .env("KENKO_SETTLE_SECS", "0")
        .env("KENKO_RETRY_SECS", "1")
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = |code: &str| http_get(port, "/readyz").is_some_and(|r| r.contains(code));
    // Three failures in a row (at 0, 1 and 3 seconds): not ready, and said why.
    wait_for(
        "readiness to fail",
        std::time::Duration::from_secs(30),
        || ready(" 503 "),
    );
    let body = http_get(port, "/readyz").unwrap();
    assert!(body.contains("inbox stuck: 1 file(s)"), "{body}");
    let m = http_get(port, "/metrics").unwrap();
    // Not a spin: the agent's own reads of the file do not end its back-off.
    let n = failures(&m, "io_failed");
    assert!((3..=4).contains(&n), "{n} failures:\n{m}");
    assert!(m.contains("kenko_intake_files_backing_off 1\n"), "{m}");
    // The next file is taken meanwhile.
    let next = generate(&residents, 30, SampleEncoding::Utf8, 0.0, 2);
    ws.deliver("next.csv", &next.bytes);
    wait_for("the next file", std::time::Duration::from_secs(20), || {
        ws.data.join("processed/next.csv").exists()
    });
    // The cause fixed, the file is taken at its next try, and the agent is ready again.
    std::fs::remove_dir_all(&blocker).unwrap();
    wait_for("the stuck file", std::time::Duration::from_secs(40), || {
        ws.data.join("processed/stuck.csv").exists()
    });
    wait_for("readiness back", std::time::Duration::from_secs(20), || {
        ready(" 200 ")
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// The data directory bind-mounted read-only onto itself; writable again when dropped.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn mount(dir: &std::path::Path) -> Option<ReadOnly> {
        let run = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        let d = dir.to_str().unwrap();
        if !run(&["--bind", d, d]) {
            return None;
        }
        let ro = ReadOnly(dir.to_path_buf());
        run(&["-o", "remount,bind,ro", d]).then_some(ro)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_data_directory_is_named_the_ledger_still_reads_and_the_agent_is_not_ready() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 5);
    let g = generate(&residents, 30, SampleEncoding::Utf8, 0.0, 1);
    ws.deliver("2026-11_a.csv", &g.bytes);
    ws.run_once_json();
    let g2 = generate(&residents, 20, SampleEncoding::Utf8, 0.0, 2);
    ws.deliver("2026-11_b.csv", &g2.bytes);
    let Some(ro) = ReadOnly::mount(&ws.data) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true promises mounts, but a read-only bind mount failed"
        );
        println!("SKIPPED: no bind mounts here; the read-only data directory was not exercised");
        return;
    };
    // The ledger only reads.
    let out = ws.run(&["intake", "ledger", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2026-11_a.csv"));
    // An intake fails, naming where it could not write.
    let out = ws.run(&["intake", "run-once", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(ws.data.to_str().unwrap()) && err.contains("Read-only file system"),
        "{err}"
    );
    // The running agent says it is not ready, and why.
    let port = free_port();
    let mut child = ws
        .cmd()
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "readiness to fail",
        std::time::Duration::from_secs(30),
        || http_get(port, "/readyz").is_some_and(|r| r.contains(" 503 ")),
    );
    let body = http_get(port, "/readyz").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    drop(ro);
    assert!(
        body.contains("data directory not writable") && body.contains(ws.data.to_str().unwrap()),
        "{body}"
    );
    assert!(ws.inbox().join("2026-11_b.csv").exists());
}

#[test]
fn birth_dates_are_tokens_in_the_store_and_an_earlier_versions_clear_dates_are_rewritten() {
    let ws = Workspace::postgres();
    let residents = ws.import_residents(200, 5);
    let mut pg = postgres::Client::connect(&ws.database_url, postgres::NoTls).unwrap();
    let births = |pg: &mut postgres::Client| -> Vec<String> {
        pg.query("SELECT birth FROM residents", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let clear: Vec<String> = residents
        .iter()
        .map(|r| r.birth.format("%Y-%m-%d").to_string())
        .collect();
    let stored = births(&mut pg);
    assert_eq!(stored.len(), 200);
    assert!(stored.iter().all(|b| b.starts_with("t:")), "{stored:?}");
    // The database as an earlier version left it: dates in clear.
    for (r, iso) in residents.iter().zip(&clear) {
        pg.execute(
            "UPDATE residents SET birth = $1 WHERE resident_no = $2",
            &[iso, &(r.resident_no as i64)],
        )
        .unwrap();
    }
    pg.execute("DELETE FROM kenko_meta WHERE key = 'births_tokenized'", &[])
        .unwrap();
    // The next intake rewrites them, and checks against the tokens.
    let g = generate(&residents, 50, SampleEncoding::Utf8, 0.0, 1);
    ws.deliver(
        "2026-11_a.csv",
        &edit_one_row(&g.bytes, "生年月日", "19010203"),
    );
    let json = ws.run_once_json();
    assert_eq!(json["accepted"], 49, "{json:#}");
    assert_eq!(json["reasons"]["birth_date_mismatch"], 1, "{json:#}");
    let stored = births(&mut pg);
    assert!(stored.iter().all(|b| b.starts_with("t:")), "{stored:?}");
    assert!(!stored.iter().any(|b| clear.contains(b)));
}
