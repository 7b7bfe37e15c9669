//! The same store contract, checked on SQLite and on the local PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use kenko_store::{
    dup_key, token_from, DeltaApplyError, FeeLine, InsertOutcome, LedgerEntry, LedgerStatus,
    ReplaceError, ResidentChange, Store, StoredHistory, StoredRecord, StoredResident,
};

fn pg_base() -> String {
    std::env::var("KENKO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh database of each kind; the guard drops the PostgreSQL one.
struct Stores {
    _dir: tempfile::TempDir,
    pg_name: String,
    urls: Vec<String>,
}

impl Stores {
    fn new(tag: &str) -> Stores {
        let dir = tempfile::tempdir().unwrap();
        let pg_name = format!("kenko_store_{tag}_{}", std::process::id());
        let mut admin =
            postgres::Client::connect(&format!("{}/postgres", pg_base()), postgres::NoTls)
                .expect("PostgreSQL on 127.0.0.1:5432 (the test command starts it)");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {pg_name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {pg_name}"))
            .unwrap();
        Stores {
            urls: vec![
                format!("sqlite://{}", dir.path().join("k.db").display()),
                format!("{}/{pg_name}", pg_base()),
            ],
            _dir: dir,
            pg_name,
        }
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&format!("{}/postgres", pg_base()), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.pg_name
            ));
        }
    }
}

fn record(resident_no: i64, date: &str, vaccine: &str, row: i64) -> StoredRecord {
    // StoredRecord zeroizes on drop, so it is built field by field, not with `..Default`.
    let mut r = StoredRecord::default();
    r.dup_key = dup_key(resident_no, date, vaccine, 1, 0);
    r.row_no = row;
    r.resident_no = resident_no;
    r.vaccinated_on = date.into();
    r.institution = "1112345678".into();
    r.age = 70;
    r.claim_month = date[..7].into();
    r.exam = 1;
    r.lot_no = "AB12".into();
    r.vaccine = vaccine.into();
    r.prescreen_doctor = "医師".into();
    r.vaccinating_doctor = "医師".into();
    r.payment = 1;
    r.fee = 4730;
    r.dose_centi_ml = Some(50);
    r
}

fn entry(sha: &str, accepted: i64) -> LedgerEntry {
    LedgerEntry {
        sha256: sha.into(),
        file_name: format!("{sha}.csv"),
        status: LedgerStatus::Loaded,
        encoding: "utf-8".into(),
        rows: accepted,
        accepted,
        rejected: 0,
        reasons_json: "{}".into(),
        destination: format!("processed/{sha}.csv"),
        moved: false,
        origin: None,
        register_generation: None,
        holder: None,
    }
}

fn fee(month: &str, count: i64) -> FeeLine {
    FeeLine {
        claim_month: month.into(),
        institution: "1112345678".into(),
        vaccine: "INF".into(),
        count,
        total_fee: 4730 * count,
    }
}

#[test]
fn duplicates_and_key_collisions_behave_the_same_on_both_stores() {
    let stores = Stores::new("dup");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        let a = record(1, "2024-10-01", "INF", 2);
        // B is another vaccination forced onto A's key, as a 64-bit collision would.
        let mut b = record(2, "2024-10-02", "INF", 3);
        b.dup_key = a.dup_key;
        let a_again = record(1, "2024-10-01", "INF", 4);
        let mut tx = store.begin_intake("first.csv").unwrap();
        let out = tx.insert_batch(&[a.clone(), b.clone(), a_again]).unwrap();
        assert_eq!(
            out,
            [
                InsertOutcome::Inserted,
                InsertOutcome::Inserted,
                InsertOutcome::DuplicateInFile
            ],
            "{url}"
        );
        tx.commit(&entry("aaaa", 2), &[fee("2024-10", 2)]).unwrap();
        assert_eq!(store.record_count().unwrap(), 2, "{url}");

        // A later file: both are duplicates of loaded records, the collided one included.
        let mut tx = store.begin_intake("second.csv").unwrap();
        let out = tx.insert_batch(&[b, a]).unwrap();
        assert_eq!(
            out,
            [
                InsertOutcome::DuplicateOfLoaded,
                InsertOutcome::DuplicateOfLoaded
            ],
            "{url}"
        );
        assert!(tx.known("aaaa").unwrap().is_some(), "{url}");
        drop(tx); // rollback
        assert_eq!(store.record_count().unwrap(), 2, "{url}");
        assert_eq!(store.ledger_all().unwrap().len(), 1, "rolled back: {url}");

        let fees = store.fee_summary("2024-10").unwrap();
        assert_eq!(fees, vec![fee("2024-10", 2)], "{url}");
        assert_eq!(store.dirty_months().unwrap(), vec!["2024-10"], "{url}");
        store.clear_dirty_month("2024-10").unwrap();
        assert!(store.dirty_months().unwrap().is_empty());
        assert!(store.ledger_get("aaaa").unwrap().is_some());
        assert_eq!(store.ledger_unmoved().unwrap().len(), 1);
        store.ledger_mark_moved("aaaa").unwrap();
        assert!(store.ledger_unmoved().unwrap().is_empty());
        assert!(
            !store.ledger_forget_rejected("aaaa").unwrap(),
            "a loaded entry is never forgotten"
        );
    }
    // Both stores hold the same records.
    let a = kenko_store::open(&stores.urls[0])
        .unwrap()
        .record_lines()
        .unwrap();
    let b = kenko_store::open(&stores.urls[1])
        .unwrap()
        .record_lines()
        .unwrap();
    assert_eq!(a, b);
}

/// Across batches of one file and against earlier files: a row repeating one of an earlier
/// batch, a key collision with an earlier batch, and a batch holding a row loaded by an
/// earlier file half-way through (PostgreSQL copies optimistically and must fall back for
/// that batch alone, keeping the batches before it).
#[test]
fn duplicates_across_batches_and_a_loaded_row_mid_file_end_the_same_on_both_stores() {
    let stores = Stores::new("batches");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        let old = record(9, "2024-09-30", "INF", 2);
        let mut tx = store.begin_intake("september.csv").unwrap();
        assert_eq!(
            tx.insert_batch(std::slice::from_ref(&old)).unwrap(),
            [InsertOutcome::Inserted]
        );
        tx.commit(&entry("old", 1), &[fee("2024-09", 1)]).unwrap();

        let a = record(1, "2024-10-01", "INF", 2);
        let c = record(3, "2024-10-03", "INF", 3);
        let mut tx = store.begin_intake("october.csv").unwrap();
        let first = tx.insert_batch(&[a.clone(), c]).unwrap();
        assert_eq!(first, [InsertOutcome::Inserted; 2], "{url}");
        // Batch 2: A again (a duplicate within the file, found across batches), and B
        // forced onto A's key (a collision with an earlier batch: stored under the next probe).
        let a_again = record(1, "2024-10-01", "INF", 4);
        let mut b = record(2, "2024-10-02", "INF", 5);
        b.dup_key = a.dup_key;
        let d = record(4, "2024-10-04", "INF", 6);
        let second = tx.insert_batch(&[a_again, b, d]).unwrap();
        assert_eq!(
            second,
            [
                InsertOutcome::DuplicateInFile,
                InsertOutcome::Inserted,
                InsertOutcome::Inserted
            ],
            "{url}"
        );
        // Batch 3: new rows around September's row.
        let e = record(5, "2024-10-05", "INF", 7);
        let mut old_again = old.clone();
        old_again.row_no = 8;
        let f = record(6, "2024-10-06", "INF", 9);
        let third = tx.insert_batch(&[e, old_again, f]).unwrap();
        assert_eq!(
            third,
            [
                InsertOutcome::Inserted,
                InsertOutcome::DuplicateOfLoaded,
                InsertOutcome::Inserted
            ],
            "{url}"
        );
        // Batch 4, after the fall-back: still right.
        let g = record(7, "2024-10-07", "INF", 10);
        let c_again = record(3, "2024-10-03", "INF", 11);
        let fourth = tx.insert_batch(&[g, c_again]).unwrap();
        assert_eq!(
            fourth,
            [InsertOutcome::Inserted, InsertOutcome::DuplicateInFile],
            "{url}"
        );
        tx.commit(&entry("oct", 7), &[fee("2024-10", 7)]).unwrap();
        assert_eq!(store.record_count().unwrap(), 8, "{url}");
    }
    let lines = |url: &str| kenko_store::open(url).unwrap().record_lines().unwrap();
    assert_eq!(lines(&stores.urls[0]), lines(&stores.urls[1]));
}

fn resident(no: i64) -> StoredResident {
    StoredResident {
        resident_no: no,
        mynumber_token: None,
        mynumber_ct: None,
        name_token: [1; 16],
        sex: 1,
        birth: "1950-01-01".into(),
        address_token: [2; 16],
        loss_kind: None,
        loss_on: None,
    }
}

#[test]
fn a_register_replacement_that_fails_part_way_changes_nothing() {
    let stores = Stores::new("reg");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        let n = store
            .replace_residents(&mut (1..=10).map(|i| Ok(resident(i))))
            .unwrap();
        assert_eq!(n, 10);
        let generation = store.register_generation().unwrap();
        let mut failing = (1..=5)
            .map(|i| Ok(resident(100 + i)))
            .chain(std::iter::once(Err("row 7: bad".to_string())));
        let err = store.replace_residents(&mut failing).unwrap_err();
        assert!(matches!(err, ReplaceError::Input(_)), "{url}");
        let mut dup = vec![Ok(resident(1)), Ok(resident(1))].into_iter();
        assert!(store.replace_residents(&mut dup).is_err(), "{url}");
        let mut seen = Vec::new();
        store
            .for_each_resident(&mut |r| seen.push(r.resident_no))
            .unwrap();
        seen.sort();
        assert_eq!(seen, (1..=10).collect::<Vec<_>>(), "{url}");
        assert_eq!(store.register_generation().unwrap(), generation, "{url}");
    }
}

/// Sets the stored schema version behind the store's back, as an older or newer agent left it.
fn set_schema_version(url: &str, version: &str, drop_origin: bool) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        if drop_origin {
            conn.execute_batch("ALTER TABLE intake_ledger DROP COLUMN origin")
                .unwrap();
        }
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [version],
        )
        .unwrap();
    } else {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        if drop_origin {
            c.batch_execute("ALTER TABLE intake_ledger DROP COLUMN origin")
                .unwrap();
        }
        c.execute(
            "UPDATE kenko_meta SET value = $1 WHERE key = 'schema_version'",
            &[&version],
        )
        .unwrap();
    }
}

#[test]
fn an_older_schema_is_migrated_keeping_its_ledger_and_a_newer_one_is_refused() {
    let stores = Stores::new("schema");
    for url in &stores.urls {
        {
            let mut store = kenko_store::open(url).unwrap();
            let tx = store.begin_intake("old.csv").unwrap();
            tx.commit(&entry("bbbb", 0), &[]).unwrap();
        }
        // The database as a version-1 agent left it: no origin column.
        set_schema_version(url, "1", true);
        {
            let mut store = kenko_store::open(url).unwrap();
            let old = store.ledger_get("bbbb").unwrap().expect("the ledger kept");
            assert_eq!(old.origin, None, "{url}");
            let mut e = entry("cccc", 0);
            e.origin = Some(r#"{"uri":"s3://b/inbox/x.csv","etag":"\"e\""}"#.into());
            let tx = store.begin_intake("new.csv").unwrap();
            tx.commit(&e, &[]).unwrap();
            assert_eq!(
                store.ledger_get("cccc").unwrap().unwrap().origin,
                e.origin,
                "{url}: the migrated ledger stores origins"
            );
        }
        // Opening again is a no-op.
        kenko_store::open(url).unwrap();

        set_schema_version(url, "9", false);
        let err = kenko_store::open(url)
            .err()
            .expect("a newer schema is refused");
        assert!(err.to_string().contains("schema version 9"), "{url}: {err}");
        assert_eq!(err.reason(), "store_migration_failed", "{url}");
    }
}

/// TLS to the local PostgreSQL (Debian's, `ssl = on` with its snakeoil certificate for
/// `localhost`): encrypted by default where the server offers it, verified against a root
/// certificate with `verify-full`, refused when the name or the root does not match, and
/// plain only when asked.
#[test]
fn the_database_connection_is_encrypted_where_the_server_offers_tls_and_verified_when_asked() {
    let mut admin = postgres::Client::connect(&format!("{}/postgres", pg_base()), postgres::NoTls)
        .expect("PostgreSQL on 127.0.0.1:5432 (the test command starts it)");
    let ssl: String = admin.query_one("SHOW ssl", &[]).unwrap().get(0);
    let cert: String = admin.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    let stores = Stores::new("tls");
    let url = &stores.urls[1];
    if ssl != "on" {
        // Without TLS on the server: prefer falls back to plain, require refuses.
        assert!(
            std::env::var("CI").is_err(),
            "CI's PostgreSQL must offer TLS (Debian's default)"
        );
        let mut s = kenko_store::open(url).unwrap();
        assert_eq!(s.connection_encrypted().unwrap(), Some(false));
        assert!(kenko_store::open(&format!("{url}?sslmode=require")).is_err());
        return;
    }
    let mut s = kenko_store::open(url).unwrap();
    assert_eq!(
        s.connection_encrypted().unwrap(),
        Some(true),
        "prefer: encrypted"
    );
    let mut s = kenko_store::open(&format!("{url}?sslmode=disable")).unwrap();
    assert_eq!(
        s.connection_encrypted().unwrap(),
        Some(false),
        "disable: plain"
    );

    // verify-full against the server's own certificate as the root, by the name it bears.
    let by_name = url.replace("127.0.0.1", "localhost");
    let mut s =
        kenko_store::open(&format!("{by_name}?sslmode=verify-full&sslrootcert={cert}")).unwrap();
    assert_eq!(s.connection_encrypted().unwrap(), Some(true));
    // ... refused for an address the certificate does not name,
    let e = kenko_store::open(&format!("{url}?sslmode=verify-full&sslrootcert={cert}"))
        .err()
        .expect("a certificate for localhost is not one for 127.0.0.1");
    assert_eq!(e.reason(), "store_unavailable", "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // ... and for a root that did not sign it.
    let other = stores._dir.path().join("other-root.pem");
    std::fs::write(&other, OTHER_ROOT).unwrap();
    let e = kenko_store::open(&format!(
        "{by_name}?sslmode=verify-full&sslrootcert={}",
        other.display()
    ))
    .err()
    .expect("an unrelated root");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // A missing root file is named.
    let e = kenko_store::open(&format!(
        "{by_name}?sslmode=verify-full&sslrootcert=/nonexistent.pem"
    ))
    .err()
    .unwrap();
    assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
}

/// A self-signed CA certificate that signed nothing here.
const OTHER_ROOT: &str = include_str!("fixtures/other-root.pem");

// ---- the register's history and deltas (異動データ) ----

/// A resident whose every token and ciphertext says which version `v` it is.
fn person(no: i64, v: u8) -> StoredResident {
    StoredResident {
        resident_no: no,
        mynumber_token: Some([v; 16]),
        mynumber_ct: Some(vec![v; 44]),
        name_token: [v.wrapping_add(100); 16],
        sex: 2,
        birth: "1948-03-04".into(),
        address_token: [v.wrapping_add(200); 16],
        loss_kind: None,
        loss_on: None,
    }
}

/// The facts of `person(no, v)` as a version that ended on `until`.
fn version(no: i64, until: &str, v: u8) -> StoredHistory {
    let p = person(no, v);
    StoredHistory {
        resident_no: no,
        until: until.into(),
        mynumber_token: p.mynumber_token,
        name_token: p.name_token,
        address_token: p.address_token,
    }
}

/// Resident `no` becomes version `v`; `ended` is the version that ended, if any.
fn change(no: i64, v: u8, ended: Option<(&str, u8)>) -> ResidentChange {
    ResidentChange {
        resident: person(no, v),
        ended: ended.map(|(until, old)| version(no, until, old)),
    }
}

fn history(store: &mut dyn Store) -> Vec<StoredHistory> {
    let mut out = Vec::new();
    store
        .for_each_history(&mut |h| {
            out.push(StoredHistory {
                resident_no: h.resident_no,
                until: h.until.to_string(),
                mynumber_token: h.mynumber_token.map(token_from),
                name_token: token_from(h.name_token),
                address_token: token_from(h.address_token),
            })
        })
        .unwrap();
    out
}

/// Every resident's number and name token, sorted.
fn register(store: &mut dyn Store) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    store
        .for_each_resident(&mut |r| out.push((r.resident_no, r.name_token.to_vec())))
        .unwrap();
    out.sort();
    out
}

fn same_resident(a: &StoredResident, b: &StoredResident) -> bool {
    (
        a.resident_no,
        a.mynumber_token,
        &a.mynumber_ct,
        a.name_token,
        a.sex,
        &a.birth,
        a.address_token,
        a.loss_kind,
        &a.loss_on,
    ) == (
        b.resident_no,
        b.mynumber_token,
        &b.mynumber_ct,
        b.name_token,
        b.sex,
        &b.birth,
        b.address_token,
        b.loss_kind,
        &b.loss_on,
    )
}

#[test]
fn deltas_are_numbered_and_a_stale_applier_changes_nothing() {
    let stores = Stores::new("delta_seq");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        assert_eq!(store.register_delta_seq().unwrap(), None, "{url}: fresh");
        let g0 = store.register_generation().unwrap();

        store
            .apply_register_delta(None, 7, &[change(1, 2, Some(("2024-04-01", 1)))])
            .unwrap();
        assert_eq!(store.register_delta_seq().unwrap(), Some(7), "{url}");
        assert_eq!(store.register_generation().unwrap(), g0 + 1, "{url}");

        let before = (
            register(&mut *store),
            history(&mut *store),
            store.register_delta_seq().unwrap(),
            store.register_generation().unwrap(),
        );
        assert_eq!(before.0, vec![(1, vec![102; 16])], "{url}");
        assert_eq!(before.1, vec![version(1, "2024-04-01", 1)], "{url}");
        // Stale appliers: one that read no sequence, one that read another.
        for stale in [None, Some(6), Some(8)] {
            let err = store
                .apply_register_delta(
                    stale,
                    8,
                    &[
                        change(1, 3, Some(("2024-05-01", 2))),
                        change(2, 1, Some(("2024-05-01", 9))),
                    ],
                )
                .unwrap_err();
            match &err {
                DeltaApplyError::Raced { expected, found } => {
                    assert_eq!((*expected, *found), (stale, Some(7)), "{url}")
                }
                other => panic!("{url}: {other:?}"),
            }
            assert_eq!(err.reason(), "register_delta_raced");
            let after = (
                register(&mut *store),
                history(&mut *store),
                store.register_delta_seq().unwrap(),
                store.register_generation().unwrap(),
            );
            assert_eq!(after, before, "{url}: a raced delta changes nothing");
        }

        // An empty delta still records its number, and the register is reloaded.
        store.apply_register_delta(Some(7), 8, &[]).unwrap();
        assert_eq!(store.register_delta_seq().unwrap(), Some(8), "{url}");
        assert_eq!(store.register_generation().unwrap(), g0 + 2, "{url}");
        assert_eq!(register(&mut *store), before.0, "{url}");

        // The sequence survives a reopen, and a full extract does not change it.
        drop(store);
        let mut store = kenko_store::open(url).unwrap();
        assert_eq!(store.register_delta_seq().unwrap(), Some(8), "{url}");
        store
            .replace_residents(&mut std::iter::once(Ok(person(1, 5))))
            .unwrap();
        assert_eq!(store.register_delta_seq().unwrap(), Some(8), "{url}");
        assert_eq!(store.register_generation().unwrap(), g0 + 3, "{url}");
    }
}

/// Appliers in separate connections that all read the same (absent) sequence: exactly one
/// applies, the others are told they raced, and the generation moves once.
#[test]
fn concurrent_appliers_of_the_first_delta_serialise() {
    let stores = Stores::new("delta_race");
    for url in &stores.urls {
        let g0 = kenko_store::open(url)
            .unwrap()
            .register_generation()
            .unwrap();
        let n = 4;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let url = url.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut store = kenko_store::open(&url).unwrap();
                    let seen = store.register_delta_seq().unwrap();
                    barrier.wait();
                    store.apply_register_delta(
                        seen,
                        1,
                        &[change(10 + i as i64, 1, Some(("2024-04-01", 0)))],
                    )
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let applied = results.iter().filter(|r| r.is_ok()).count();
        let raced = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(DeltaApplyError::Raced {
                        expected: None,
                        found: Some(1)
                    })
                )
            })
            .count();
        assert_eq!((applied, raced), (1, n - 1), "{url}: {results:?}");
        let mut store = kenko_store::open(url).unwrap();
        assert_eq!(store.register_delta_seq().unwrap(), Some(1), "{url}");
        assert_eq!(store.register_generation().unwrap(), g0 + 1, "{url}");
        assert_eq!(register(&mut *store).len(), 1, "{url}");
        assert_eq!(history(&mut *store).len(), 1, "{url}");
    }
}

/// Appliers that keep reading the sequence and applying the next delta, in separate
/// connections: every applied delta took the sequence it read (none is lost or applied
/// twice), the others raced, and nothing else failed.
#[test]
fn contending_appliers_never_apply_two_deltas_on_one_sequence() {
    let stores = Stores::new("delta_contend");
    for url in &stores.urls {
        let g0 = kenko_store::open(url)
            .unwrap()
            .register_generation()
            .unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4i64)
            .map(|i| {
                let url = url.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut store = kenko_store::open(&url).unwrap();
                    barrier.wait();
                    let (mut applied, mut raced) = (0i64, 0i64);
                    for _ in 0..25 {
                        let seen = store.register_delta_seq().unwrap();
                        let next = seen.map_or(1, |s| s + 1);
                        let until = format!("2024-01-{:02}", 1 + next % 28);
                        match store.apply_register_delta(
                            seen,
                            next,
                            &[change(100 + i, 1, Some((&until, next as u8)))],
                        ) {
                            Ok(()) => applied += 1,
                            Err(DeltaApplyError::Raced { expected, found }) => {
                                assert_eq!(expected, seen);
                                assert_ne!(found, seen);
                                raced += 1;
                            }
                            Err(e) => panic!("{url}: {e}"),
                        }
                    }
                    (applied, raced)
                })
            })
            .collect();
        let outcomes: Vec<(i64, i64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let applied: i64 = outcomes.iter().map(|o| o.0).sum();
        assert!(applied >= 25, "{url}: {outcomes:?}");
        let mut store = kenko_store::open(url).unwrap();
        assert_eq!(store.register_delta_seq().unwrap(), Some(applied), "{url}");
        assert_eq!(store.register_generation().unwrap(), g0 + applied, "{url}");
    }
}

#[test]
fn the_first_version_recorded_before_a_day_stands_and_history_is_ordered() {
    let stores = Stores::new("history");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        store
            .apply_register_delta(
                None,
                1,
                &[
                    change(20, 3, Some(("2024-06-01", 2))),
                    change(3, 2, Some(("2024-06-01", 1))),
                    change(20, 4, Some(("2023-12-31", 1))),
                    change(3, 5, None),
                ],
            )
            .unwrap();
        // The same (resident, until) again, with other facts: the first recorded is kept.
        store
            .apply_register_delta(
                Some(1),
                2,
                &[
                    change(3, 6, Some(("2024-06-01", 9))),
                    change(20, 7, Some(("2024-10-01", 4))),
                ],
            )
            .unwrap();
        assert_eq!(
            history(&mut *store),
            vec![
                version(3, "2024-06-01", 1),
                version(20, "2023-12-31", 1),
                version(20, "2024-06-01", 2),
                version(20, "2024-10-01", 4),
            ],
            "{url}"
        );
        // The current facts are the last change's.
        assert_eq!(
            register(&mut *store),
            vec![(3, vec![106; 16]), (20, vec![107; 16])],
            "{url}"
        );
        // A My Number that was not known then stays unknown in the history.
        let mut c = change(3, 8, Some(("2024-11-01", 6)));
        c.ended.as_mut().unwrap().mynumber_token = None;
        store.apply_register_delta(Some(2), 3, &[c]).unwrap();
        let h = history(&mut *store);
        assert_eq!(h[1].until, "2024-11-01", "{url}");
        assert_eq!(h[1].mynumber_token, None, "{url}");
        assert_eq!(h[1].name_token, [106; 16], "{url}");
    }
}

#[test]
fn a_change_whose_ended_version_is_another_residents_or_undated_is_refused() {
    let stores = Stores::new("delta_bad");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        let mut other = change(1, 2, Some(("2024-04-01", 1)));
        other.ended.as_mut().unwrap().resident_no = 2;
        let mut undated = change(1, 2, Some(("2024-04-01", 1)));
        undated.ended.as_mut().unwrap().until = "20240401".into();
        for bad in [other, undated] {
            let err = store
                .apply_register_delta(None, 1, &[change(5, 1, None), bad])
                .unwrap_err();
            assert_eq!(err.reason(), "store_query_failed", "{url}: {err}");
            assert_eq!(store.register_delta_seq().unwrap(), None, "{url}");
            assert!(register(&mut *store).is_empty(), "{url}");
            assert!(history(&mut *store).is_empty(), "{url}");
        }
    }
}

#[test]
fn a_full_extract_keeps_the_history_of_residents_still_present_and_drops_the_rest() {
    let stores = Stores::new("history_replace");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        store
            .replace_residents(&mut (1..=3).map(|i| Ok(person(i, 1))))
            .unwrap();
        store
            .apply_register_delta(
                None,
                1,
                &[
                    change(1, 2, Some(("2024-04-01", 1))),
                    change(2, 2, Some(("2024-04-01", 1))),
                    change(3, 2, Some(("2024-04-01", 1))),
                ],
            )
            .unwrap();
        store
            .apply_register_delta(Some(1), 2, &[change(2, 3, Some(("2024-05-01", 2)))])
            .unwrap();
        assert_eq!(history(&mut *store).len(), 4, "{url}");
        let g = store.register_generation().unwrap();

        // Resident 2 is not in the new extract; 4 is new.
        let n = store
            .replace_residents(&mut [1, 3, 4].into_iter().map(|i| Ok(person(i, 3))))
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            history(&mut *store),
            vec![version(1, "2024-04-01", 1), version(3, "2024-04-01", 1)],
            "{url}"
        );
        assert_eq!(store.register_delta_seq().unwrap(), Some(2), "{url}");
        assert_eq!(store.register_generation().unwrap(), g + 1, "{url}");

        // A replacement that fails part-way keeps the history too.
        let mut failing =
            std::iter::once(Ok(person(4, 1))).chain(std::iter::once(Err("row 3: bad".to_string())));
        store.replace_residents(&mut failing).unwrap_err();
        assert_eq!(history(&mut *store).len(), 2, "{url}");
        assert_eq!(register(&mut *store).len(), 3, "{url}");
    }
}

#[test]
fn a_resident_reads_back_every_column_as_upserted() {
    let stores = Stores::new("resident");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        store
            .replace_residents(&mut (1..=2).map(|i| Ok(person(i, 1))))
            .unwrap();
        assert!(
            same_resident(&store.resident(2).unwrap().unwrap(), &person(2, 1)),
            "{url}: as the extract stored it"
        );
        assert!(store.resident(99).unwrap().is_none(), "{url}");

        // Every column is replaced, cleared ones included; a new number is inserted.
        let mut moved_out = person(2, 4);
        moved_out.mynumber_token = None;
        moved_out.mynumber_ct = None;
        moved_out.sex = 1;
        moved_out.birth = "1950-12-31".into();
        moved_out.loss_kind = Some(2);
        moved_out.loss_on = Some("2024-07-15".into());
        let changes = [
            ResidentChange {
                resident: moved_out.clone(),
                ended: None,
            },
            change(3, 6, None),
        ];
        store.apply_register_delta(None, 1, &changes).unwrap();
        let got = store.resident(2).unwrap().unwrap();
        assert!(same_resident(&got, &moved_out), "{url}: {got:?}");
        assert!(
            same_resident(&store.resident(3).unwrap().unwrap(), &person(3, 6)),
            "{url}"
        );
        assert!(
            same_resident(&store.resident(1).unwrap().unwrap(), &person(1, 1)),
            "{url}: untouched"
        );
        assert!(store.resident(4).unwrap().is_none(), "{url}");
    }
}

/// Removes the history table and sets schema version 2, as today's agent left a database.
fn make_version_2(url: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "DROP TABLE resident_history; \
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    } else {
        let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
        c.batch_execute(
            "DROP TABLE resident_history; \
             UPDATE kenko_meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    }
}

#[test]
fn a_database_from_before_the_history_opens_and_gets_the_table() {
    let stores = Stores::new("history_schema");
    for url in &stores.urls {
        {
            let mut store = kenko_store::open(url).unwrap();
            store
                .replace_residents(&mut (1..=2).map(|i| Ok(person(i, 1))))
                .unwrap();
        }
        make_version_2(url);
        {
            let mut store = kenko_store::open(url).unwrap();
            assert_eq!(
                store.meta("schema_version").unwrap().as_deref(),
                Some("4"),
                "{url}"
            );
            assert_eq!(register(&mut *store).len(), 2, "{url}: the register kept");
            assert!(history(&mut *store).is_empty(), "{url}");
            store
                .apply_register_delta(None, 1, &[change(1, 2, Some(("2024-04-01", 1)))])
                .unwrap();
            assert_eq!(
                history(&mut *store),
                vec![version(1, "2024-04-01", 1)],
                "{url}"
            );
        }
        // Opening again keeps it.
        let mut store = kenko_store::open(url).unwrap();
        assert_eq!(history(&mut *store).len(), 1, "{url}");
    }
}

/// History rows are made under the data key like the residents' tokens: a store holding only
/// history (residents removed behind its back) still holds data.
#[test]
fn history_counts_as_data_held_under_the_key() {
    let stores = Stores::new("history_holds");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        assert!(!store.holds_data().unwrap(), "{url}: fresh");
        store
            .apply_register_delta(None, 1, &[change(1, 2, Some(("2024-04-01", 1)))])
            .unwrap();
        let sql = |statement: &str| {
            if let Some(path) = url.strip_prefix("sqlite://") {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(statement)
                    .unwrap();
            } else {
                postgres::Client::connect(url, postgres::NoTls)
                    .unwrap()
                    .batch_execute(statement)
                    .unwrap();
            }
        };
        sql("DELETE FROM residents");
        assert!(store.holds_data().unwrap(), "{url}: the history is data");
        sql("DELETE FROM resident_history");
        assert!(!store.holds_data().unwrap(), "{url}");
    }
}

#[test]
fn a_commit_checked_against_an_older_register_is_refused_and_changes_nothing() {
    let stores = Stores::new("register_changed");
    for url in &stores.urls {
        let mut store = kenko_store::open(url).unwrap();
        store
            .replace_residents(&mut (1..=2).map(|i| Ok(person(i, 1))))
            .unwrap();
        let checked = store.register_generation().unwrap();
        store
            .replace_residents(&mut (1..=3).map(|i| Ok(person(i, 1))))
            .unwrap();
        let now = store.register_generation().unwrap();
        assert_ne!(checked, now);
        let mut e = entry("dddd", 0);
        e.register_generation = Some(checked);
        let tx = store.begin_intake("d.csv").unwrap();
        let err = tx.commit(&e, &[]).unwrap_err();
        assert_eq!(err.reason(), "register_changed", "{url}");
        e.status = LedgerStatus::Rejected;
        let err = store.ledger_insert_rejected(&e).unwrap_err();
        assert_eq!(err.reason(), "register_changed", "{url}");
        assert!(store.ledger_get("dddd").unwrap().is_none(), "{url}");
        // Against the register in force it commits, and the ledger keeps the generation and
        // the holder.
        e.status = LedgerStatus::Loaded;
        e.register_generation = Some(now);
        e.holder = Some("h1".into());
        let tx = store.begin_intake("d.csv").unwrap();
        tx.commit(&e, &[]).unwrap();
        let got = store.ledger_get("dddd").unwrap().unwrap();
        assert_eq!(got.register_generation, Some(now), "{url}");
        assert_eq!(got.holder.as_deref(), Some("h1"), "{url}");
    }
}
