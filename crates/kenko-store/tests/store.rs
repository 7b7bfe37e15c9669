//! The same store contract, checked on SQLite and on the local PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "test code: a failure is the answer, and tests set up files, clocks and environment directly"
)]

use kenko_store::{
    dup_key, FeeLine, InsertOutcome, LedgerEntry, LedgerStatus, ReplaceError, StoredRecord,
    StoredResident,
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
