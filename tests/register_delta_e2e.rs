//! End-to-end tests of register deltas (異動データ): the real `kenko-agent` binary applies delta
//! files to a SQLite store, and real deliveries are checked against the register as it was on
//! each row's 接種日.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

mod common;

use common::*;
use kenko_sample::SampleEncoding;

const DELTA_HEADER: &str = "連番,異動区分,異動日,宛名番号,個人番号,氏名,性別,生年月日,住所";
const NEW1: &str = "埼玉県越谷市新町9丁目9番9号";
const NEW2: &str = "埼玉県越谷市大沢4丁目1番2号";

/// A delivery's header and rows, as text cells (the generator writes no quoted fields).
struct Delivery {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Delivery {
    fn parse(bytes: &[u8]) -> Delivery {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let mut lines = text
            .lines()
            .map(|l| l.split(',').map(String::from).collect());
        Delivery {
            header: lines.next().unwrap(),
            rows: lines.collect(),
        }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn file(&self, rows: &[Vec<String>]) -> Vec<u8> {
        let mut out = self.header.join(",");
        for r in rows {
            out.push('\n');
            out.push_str(&r.join(","));
        }
        out.push('\n');
        out.into_bytes()
    }
}

/// A 接種日 as the generator wrote it (any accepted form: era dates too).
fn day_of(cell: &str) -> chrono::NaiveDate {
    kenko_intake::date::parse_date(&kenko_intake::normalize::nfkc_trim(cell)).unwrap()
}

fn day_after(cell: &str) -> String {
    (day_of(cell) + chrono::Duration::days(1))
        .format("%Y%m%d")
        .to_string()
}

fn compact(cell: &str) -> String {
    day_of(cell).format("%Y%m%d").to_string()
}

fn write(ws: &Workspace, name: &str, text: &str) -> String {
    let p = ws.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn apply_json(ws: &Workspace, file: &str) -> serde_json::Value {
    let out = ws.run_ok(&["residents", "apply", file, "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn delta_seq(ws: &Workspace) -> (Option<i64>, i64) {
    let mut store = kenko_store::open(&ws.database_url).unwrap();
    (
        store.register_delta_seq().unwrap(),
        store.register_generation().unwrap(),
    )
}

/// Two residents move (転居). R1 moved the day after an earlier vaccination: that delivery,
/// with the old address, is accepted. R2 moved on the day of a vaccination: the old address is
/// returned as address_mismatch and the new one accepted. Applying the delta again changes
/// nothing; a gap and a broken row are refused, naming row and field, changing nothing; a full
/// extract with the same facts afterwards keeps the history, so the same rows check the same.
#[test]
fn a_moved_residents_earlier_delivery_is_accepted_and_a_later_one_checked_against_the_new_address()
{
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(300, 21);
    let g = generate(&residents, 60, SampleEncoding::Utf8, 0.0, 5);
    assert_eq!(g.stats.valid_rows, g.stats.rows, "an error-free delivery");
    let d = Delivery::parse(&g.bytes);
    let (no, addr, day) = (d.col("宛名番号"), d.col("住所"), d.col("接種日"));
    let r1 = d.rows[0].clone();
    let r2 = d.rows.iter().find(|r| r[no] != r1[no]).unwrap().clone();

    let delta = format!(
        "{DELTA_HEADER}\n101,転居,{},{},,,,,{NEW1}\n102,転居,{},{},,,,,{NEW2}\n",
        day_after(&r1[day]),
        r1[no],
        compact(&r2[day]),
        r2[no],
    );
    let delta = write(&ws, "delta-101.csv", &delta);
    let (_, generation) = delta_seq(&ws);
    let s = apply_json(&ws, &delta);
    assert_eq!(s["applied"]["転居"], 2, "{s}");
    assert_eq!(
        (s["versions_kept"].as_u64(), s["seq"].as_i64()),
        (Some(2), Some(102))
    );
    assert_eq!(delta_seq(&ws), (Some(102), generation + 1));

    // The same delta again: nothing applied, nothing changed.
    let again = apply_json(&ws, &delta);
    assert_eq!(again["already_applied"], 2, "{again}");
    assert_eq!(again["applied"], serde_json::json!({}), "{again}");
    assert_eq!(delta_seq(&ws), (Some(102), generation + 1));

    // R1 at the old address before the move, R2 at the old address on the day of its move.
    let earlier = d.file(&[r1.clone(), r2.clone()]);
    ws.deliver("2026-11_a.csv", &earlier);
    let s = ws.run_once_json();
    let fs = &s["file_summaries"][0];
    assert_eq!(fs["disposition"], "loaded", "{fs}");
    assert_eq!(
        (fs["accepted"].as_u64(), fs["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{fs}"
    );
    assert_eq!(fs["reasons"]["address_mismatch"], 1, "{fs}");
    let report =
        std::fs::read_to_string(ws.data.join(fs["return_report"].as_str().unwrap())).unwrap();
    let returned: Vec<&str> = report.lines().skip(1).collect();
    assert_eq!(returned.len(), 1, "{report}");
    assert!(
        returned[0].starts_with(&format!("3,{},住所,address_mismatch", r2[no])),
        "{report}"
    );

    // R2 at its new address: accepted.
    let mut r2_new = r2.clone();
    r2_new[addr] = NEW2.into();
    ws.deliver("2026-11_b.csv", &d.file(&[r2_new]));
    let s = ws.run_once_json();
    assert_eq!(s["file_summaries"][0]["accepted"], 1, "{s}");

    // A gap in the sequence: refused, naming what the register has, nothing changed.
    let gap = write(
        &ws,
        "delta-105.csv",
        &format!("{DELTA_HEADER}\n105,死亡,20261120,{},,,,,\n", r1[no]),
    );
    let out = ws.run(&["residents", "apply", &gap]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("連番 102") && err.contains("連番 105"),
        "{err}"
    );
    assert!(err.contains("[reason: register_delta_gap]"), "{err}");
    assert_eq!(delta_seq(&ws), (Some(102), generation + 1));

    // A broken row: the file is refused whole (its good first row is not applied either).
    let broken = write(
        &ws,
        "delta-103.csv",
        &format!(
            "{DELTA_HEADER}\n103,死亡,20261120,{},,,,,\n104,転居,20261301,{},,,,,{NEW1}\n",
            r2[no], r2[no]
        ),
    );
    let out = ws.run(&["residents", "apply", &broken]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("delta-103.csv row 3, field 異動日: expected a date"),
        "{err}"
    );
    assert!(
        !err.contains(NEW1) && !err.contains(&r2[no]),
        "no value in {err}"
    );
    assert_eq!(delta_seq(&ws), (Some(102), generation + 1));

    // A full extract with the facts the deltas made: the same state, history included.
    let mut now = residents.clone();
    for r in &mut now {
        if r.resident_no.to_string() == r1[no] {
            r.address = NEW1.into();
        }
        if r.resident_no.to_string() == r2[no] {
            r.address = NEW2.into();
        }
    }
    let mut buf = Vec::new();
    kenko_sample::write_resident_csv(&mut buf, &now).unwrap();
    let extract = write(&ws, "residents-after.csv", &String::from_utf8(buf).unwrap());
    ws.run_ok(&["residents", "import", &extract]);
    let check = write(&ws, "check.csv", &String::from_utf8(earlier).unwrap());
    let out = ws.run_ok(&["intake", "check", &check, "--json"]);
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (c["passing"].as_u64(), c["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{c}"
    );
    let mut store = kenko_store::open(&ws.database_url).unwrap();
    let mut versions = 0;
    store.for_each_history(&mut |_| versions += 1).unwrap();
    assert_eq!(versions, 2);
    assert_eq!(store.register_delta_seq().unwrap(), Some(102));
}

/// A new resident (転入), a name change after marriage and a death, in one file: the new
/// resident's delivery is accepted, the old name is accepted before the change and the new one
/// after, and a delivery after the death is returned.
#[test]
fn move_in_name_change_and_death_are_applied_in_one_transaction() {
    let ws = Workspace::sqlite();
    let residents = ws.import_residents(200, 31);
    let g = generate(&residents, 40, SampleEncoding::Utf8, 0.0, 7);
    let d = Delivery::parse(&g.bytes);
    let (no, name, day) = (d.col("宛名番号"), d.col("氏名"), d.col("接種日"));
    let r1 = d.rows[0].clone();
    let r2 = d.rows.iter().find(|r| r[no] != r1[no]).unwrap().clone();
    // R1 is removed from the register and comes back by 転入 with the same facts.
    let who = residents
        .iter()
        .find(|r| r.resident_no.to_string() == r1[no])
        .unwrap()
        .clone();
    let others: Vec<_> = residents
        .iter()
        .filter(|r| r.resident_no != who.resident_no)
        .cloned()
        .collect();
    let mut buf = Vec::new();
    kenko_sample::write_resident_csv(&mut buf, &others).unwrap();
    let without = write(&ws, "without.csv", &String::from_utf8(buf).unwrap());
    ws.run_ok(&["residents", "import", &without]);
    let delta = format!(
        "{DELTA_HEADER}\n1,転入,20240401,{},{},{},{},{},{}\n2,氏名変更,{},{},,鈴木　花子,,,\n3,死亡,{},{},,,,,\n",
        who.resident_no,
        who.mynumber.clone().unwrap_or_default(),
        who.name,
        who.sex.code(),
        who.birth.format("%Y%m%d"),
        who.address,
        day_after(&r1[day]),
        r1[no],
        compact(&r2[day]),
        r2[no],
    );
    let delta = write(&ws, "delta-1.csv", &delta);
    let s = apply_json(&ws, &delta);
    assert_eq!(
        s["applied"],
        serde_json::json!({"転入": 1, "氏名変更": 1, "死亡": 1}),
        "{s}"
    );
    // R1 (back, old name before its change) accepted; R2 died on its vaccination day: still a
    // resident that day.
    let mut r1_new = r1.clone();
    r1_new[name] = "鈴木　花子".into();
    let mut r1_later = r1_new.clone();
    r1_later[day] = (day_of(&r1[day]) + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let check = |name: &str, rows: &[Vec<String>]| {
        let f = write(&ws, name, &String::from_utf8(d.file(rows)).unwrap());
        let out = ws.run_ok(&["intake", "check", &f, "--json"]);
        let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            c["passing"].as_u64().unwrap(),
            c["rejected"].as_u64().unwrap(),
            c,
        )
    };
    // The old name on its vaccination day, before the change: right.
    let (pass, _, c) = check("old-name.csv", std::slice::from_ref(&r1));
    assert_eq!(pass, 1, "{c}");
    // The new name on that day: wrong.
    let (_, rejected, c) = check("new-name-early.csv", &[r1_new]);
    assert_eq!(rejected, 1, "{c}");
    assert_eq!(c["reasons"]["name_mismatch"], 1, "{c}");
    // The new name the day after, and R2 on the day it died: right.
    let (pass, _, c) = check("later.csv", &[r1_later, r2]);
    assert_eq!(pass, 2, "{c}");
}
