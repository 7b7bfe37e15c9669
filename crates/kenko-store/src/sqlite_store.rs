//! SQLite adapter (bundled SQLite, the embedded default).
//!
//! Rollback journal (`TRUNCATE`) with `synchronous=FULL`, 16 KiB pages: an intake is one large
//! transaction, and measured on a million-row intake this is about 40% faster than WAL, which
//! writes every spilled page twice (to the log, then back at checkpoint). A committed intake
//! survives power loss, not only a process crash. The cost: a reader waits while an intake
//! commits (busy timeout), acceptable for the embedded single-agent store.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::{
    record_line, token_from, DeltaApplyError, FeeLine, HistoryRow, InsertOutcome, IntakeTx,
    LedgerEntry, LedgerStatus, RecordsDeleted, ReplaceError, ResidentChange, ResidentRow, Result,
    Store, StoreError, StoredRecord, StoredResident,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS residents (
    resident_no    INTEGER PRIMARY KEY,
    mynumber_token BLOB,
    mynumber_ct    BLOB,
    name_token     BLOB NOT NULL,
    sex            INTEGER NOT NULL,
    birth          TEXT NOT NULL,
    address_token  BLOB NOT NULL,
    loss_kind      INTEGER,
    loss_on        TEXT
);
-- Earlier versions of a resident's changing facts (tokens only), valid before `until`.
CREATE TABLE IF NOT EXISTS resident_history (
    resident_no    INTEGER NOT NULL,
    until          TEXT NOT NULL,
    mynumber_token BLOB,
    name_token     BLOB NOT NULL,
    address_token  BLOB NOT NULL,
    PRIMARY KEY (resident_no, until)
);
CREATE TABLE IF NOT EXISTS intake_ledger (
    id           INTEGER PRIMARY KEY,
    sha256       TEXT NOT NULL UNIQUE,
    file_name    TEXT NOT NULL,
    status       TEXT NOT NULL,
    encoding     TEXT NOT NULL DEFAULT '',
    rows         INTEGER NOT NULL DEFAULT 0,
    accepted     INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0,
    reasons_json TEXT NOT NULL DEFAULT '{}',
    disposition  TEXT NOT NULL DEFAULT '',
    moved        INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE TABLE IF NOT EXISTS records (
    id                 INTEGER PRIMARY KEY,
    intake_id          INTEGER NOT NULL,  -- intake_ledger.id (committed together; no per-row FK check)
    dup_key            INTEGER NOT NULL,
    row_no             INTEGER NOT NULL,
    resident_no        INTEGER NOT NULL,
    mynumber_token     BLOB,
    mynumber_ct        BLOB,
    vaccinated_on      TEXT NOT NULL,
    institution        TEXT NOT NULL,
    age                INTEGER NOT NULL,
    claim_month        TEXT NOT NULL,
    exam               INTEGER NOT NULL,
    lot_no             TEXT NOT NULL,
    vaccine            TEXT NOT NULL,
    moved_in           INTEGER NOT NULL,
    prescreen_doctor   TEXT NOT NULL,
    vaccinating_doctor TEXT NOT NULL,
    payment            INTEGER NOT NULL,
    fee                INTEGER NOT NULL,
    dose_centi_ml      INTEGER,
    remarks1           TEXT NOT NULL,
    remarks2           TEXT NOT NULL,
    remarks3           TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_dup_key ON records (dup_key);
CREATE TABLE IF NOT EXISTS fee_totals (
    claim_month TEXT NOT NULL,
    institution TEXT NOT NULL,
    vaccine     TEXT NOT NULL,
    count       INTEGER NOT NULL,
    total_fee   INTEGER NOT NULL,
    PRIMARY KEY (claim_month, institution, vaccine)
);
CREATE TABLE IF NOT EXISTS dirty_months (
    claim_month TEXT PRIMARY KEY
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
INSERT OR IGNORE INTO meta (key, value) VALUES ('register_generation', '0');
"#;

const UPSERT_RESIDENT: &str = "INSERT INTO residents (resident_no, mynumber_token, mynumber_ct, \
    name_token, sex, birth, address_token, loss_kind, loss_on) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (resident_no) DO UPDATE SET \
    mynumber_token = excluded.mynumber_token, mynumber_ct = excluded.mynumber_ct, \
    name_token = excluded.name_token, sex = excluded.sex, birth = excluded.birth, \
    address_token = excluded.address_token, loss_kind = excluded.loss_kind, \
    loss_on = excluded.loss_on";

const INSERT_HISTORY: &str = "INSERT INTO resident_history (resident_no, until, mynumber_token, \
    name_token, address_token) VALUES (?1, ?2, ?3, ?4, ?5) \
    ON CONFLICT (resident_no, until) DO NOTHING";

/// The stored delta sequence, read in the caller's connection or transaction.
fn delta_seq(conn: &Connection) -> Result<Option<i64>> {
    conn.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'register_delta_seq'",
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(q("read register delta sequence"))
}

const INSERT_RECORD: &str = "INSERT INTO records (intake_id, row_no, resident_no, mynumber_token, \
    mynumber_ct, vaccinated_on, institution, age, claim_month, exam, lot_no, vaccine, moved_in, \
    prescreen_doctor, vaccinating_doctor, payment, fee, dose_centi_ml, remarks1, remarks2, remarks3, \
    dup_key) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
    ?20, ?21, ?22) ON CONFLICT (dup_key) DO NOTHING";

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
}

fn q(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::query(context, e)
}

fn now() -> String {
    kenko_intake::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl SqliteStore {
    /// Ledger entries matching a fixed condition, oldest first.
    fn ledger_where(&self, condition: &str) -> Result<Vec<LedgerEntry>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {LEDGER_COLUMNS} FROM intake_ledger WHERE {condition} ORDER BY id"
            ))
            .map_err(q("prepare ledger scan"))?;
        let rows = stmt
            .query_map([], ledger_from_row)
            .map_err(q("scan ledger"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(q("scan ledger"))
    }

    /// Opens (creating if needed) the database file and its schema.
    /// Opens an existing database for reading only (`intake ledger` on a read-only data
    /// directory): nothing is created, tightened or migrated.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            target: path.display().to_string(),
            message: e.to_string(),
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(open_err)?;
        let version: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(open_err)?;
        crate::require_current(&version, &path.display().to_string())?;
        Ok(SqliteStore { conn })
    }

    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                target: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        // The file holds the register's tokens and sealed My Numbers: the agent's alone
        // (0600, also for a file made by an earlier version), and SQLite gives its journal
        // the file's mode.
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let tighten = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o600)));
            tighten.map_err(|e| StoreError::Open {
                target: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            target: path.display().to_string(),
            message: e.to_string(),
        })?;
        // 32 MiB of page cache keeps the duplicate-key index hot during a large intake
        // without breaking the agent's memory budget.
        // page_size only takes effect on a new, empty database.
        conn.execute_batch(
            "PRAGMA page_size = 16384; PRAGMA journal_mode = TRUNCATE; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768; PRAGMA busy_timeout = 10000;",
        )
        .map_err(|e| StoreError::Open {
            target: path.display().to_string(),
            message: e.to_string(),
        })?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let migrate = |e: rusqlite::Error| StoreError::Migrate(e.to_string());
        // IMMEDIATE: two agents opening one file migrate one at a time.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(migrate)?;
        let version: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(migrate)?;
        let version = match crate::check_schema_version(&version) {
            Ok(v) => v,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        };
        if version < 2 {
            conn.execute_batch(
                "ALTER TABLE intake_ledger ADD COLUMN origin TEXT; \
                 UPDATE meta SET value = '2' WHERE key = 'schema_version';",
            )
            .map_err(migrate)?;
        }
        if version < 3 {
            // resident_history is created by SCHEMA above (IF NOT EXISTS).
            conn.execute_batch("UPDATE meta SET value = '3' WHERE key = 'schema_version';")
                .map_err(migrate)?;
        }
        if version < 4 {
            // SQLite has no ADD COLUMN IF NOT EXISTS: a column already there (a migration
            // that ran before its version was recorded) is left as it is.
            let has: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_info('intake_ledger')")
                .and_then(|mut st| {
                    st.query_map([], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .map_err(migrate)?;
            for (column, ty) in [("register_generation", "INTEGER"), ("holder", "TEXT")] {
                if !has.iter().any(|c| c == column) {
                    conn.execute_batch(&format!(
                        "ALTER TABLE intake_ledger ADD COLUMN {column} {ty};"
                    ))
                    .map_err(migrate)?;
                }
            }
            conn.execute_batch("UPDATE meta SET value = '4' WHERE key = 'schema_version';")
                .map_err(migrate)?;
        }
        conn.execute_batch("COMMIT").map_err(migrate)?;
        Ok(SqliteStore { conn })
    }
}

fn ledger_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        sha256: row.get(0)?,
        file_name: row.get(1)?,
        status: LedgerStatus::parse(&row.get::<_, String>(2)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        encoding: row.get(3)?,
        rows: row.get(4)?,
        accepted: row.get(5)?,
        rejected: row.get(6)?,
        reasons_json: row.get(7)?,
        destination: row.get(8)?,
        moved: row.get::<_, i64>(9)? != 0,
        origin: row.get(10)?,
        register_generation: row.get(11)?,
        holder: row.get(12)?,
    })
}

const LEDGER_COLUMNS: &str =
    "sha256, file_name, status, encoding, rows, accepted, rejected, reasons_json, disposition, moved, origin, register_generation, holder";

fn generation_in(conn: &rusqlite::Connection) -> Result<i64> {
    conn.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'register_generation'",
        [],
        |r| r.get(0),
    )
    .map_err(q("read register generation"))
}

const BUMP_GENERATION: &str =
    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'register_generation'";

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn replace_residents(
        &mut self,
        residents: &mut dyn Iterator<Item = std::result::Result<StoredResident, String>>,
    ) -> std::result::Result<usize, ReplaceError> {
        let tx = self.conn.transaction().map_err(q("begin register"))?;
        tx.execute("DELETE FROM residents", [])
            .map_err(q("clear register"))?;
        let mut n = 0usize;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO residents (resident_no, mynumber_token, mynumber_ct, name_token, \
                     sex, birth, address_token, loss_kind, loss_on) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(q("prepare register insert"))?;
            for r in residents {
                let r = r.map_err(ReplaceError::Input)?;
                stmt.execute(params![
                    r.resident_no,
                    r.mynumber_token.as_ref().map(|t| &t[..]),
                    r.mynumber_ct,
                    &r.name_token[..],
                    r.sex,
                    r.birth,
                    &r.address_token[..],
                    r.loss_kind,
                    r.loss_on
                ])
                .map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        ReplaceError::Input(format!(
                            "宛名番号 {} appears more than once in the register extract",
                            r.resident_no
                        ))
                    }
                    e => ReplaceError::Store(StoreError::query("insert resident", e)),
                })?;
                n += 1;
            }
        }
        // The history of residents no longer in the register goes with them.
        tx.execute(
            "DELETE FROM resident_history WHERE NOT EXISTS \
             (SELECT 1 FROM residents r WHERE r.resident_no = resident_history.resident_no)",
            [],
        )
        .map_err(q("drop history of removed residents"))?;
        tx.execute(BUMP_GENERATION, [])
            .map_err(q("bump register generation"))?;
        tx.commit().map_err(q("commit register"))?;
        Ok(n)
    }

    fn resident(&mut self, resident_no: i64) -> Result<Option<StoredResident>> {
        self.conn
            .query_row(
                "SELECT resident_no, mynumber_token, mynumber_ct, name_token, sex, birth, \
                 address_token, loss_kind, loss_on FROM residents WHERE resident_no = ?1",
                [resident_no],
                |row| {
                    let token =
                        |i| -> rusqlite::Result<_> { Ok(token_from(row.get_ref(i)?.as_blob()?)) };
                    Ok(StoredResident {
                        resident_no: row.get(0)?,
                        mynumber_token: row.get_ref(1)?.as_blob_or_null()?.map(token_from),
                        mynumber_ct: row.get(2)?,
                        name_token: token(3)?,
                        sex: row.get(4)?,
                        birth: row.get(5)?,
                        address_token: token(6)?,
                        loss_kind: row.get(7)?,
                        loss_on: row.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(q("read resident"))
    }

    fn register_delta_seq(&mut self) -> Result<Option<i64>> {
        delta_seq(&self.conn)
    }

    fn apply_register_delta(
        &mut self,
        expected: Option<i64>,
        seq: i64,
        changes: &[ResidentChange],
    ) -> std::result::Result<(), DeltaApplyError> {
        crate::check_changes(changes)?;
        // IMMEDIATE: the write lock is taken before the sequence is read, so two appliers
        // cannot both see the same sequence.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin register delta"))?;
        let found = delta_seq(&tx)?;
        if found != expected {
            // Dropping the transaction rolls it back (nothing was written).
            return Err(DeltaApplyError::Raced { expected, found });
        }
        {
            let mut upsert = tx
                .prepare(UPSERT_RESIDENT)
                .map_err(q("prepare resident upsert"))?;
            let mut history = tx
                .prepare(INSERT_HISTORY)
                .map_err(q("prepare history insert"))?;
            for c in changes {
                let r = &c.resident;
                upsert
                    .execute(params![
                        r.resident_no,
                        r.mynumber_token.as_ref().map(|t| &t[..]),
                        r.mynumber_ct,
                        &r.name_token[..],
                        r.sex,
                        r.birth,
                        &r.address_token[..],
                        r.loss_kind,
                        r.loss_on
                    ])
                    .map_err(q("upsert resident"))?;
                if let Some(h) = &c.ended {
                    history
                        .execute(params![
                            h.resident_no,
                            h.until,
                            h.mynumber_token.as_ref().map(|t| &t[..]),
                            &h.name_token[..],
                            &h.address_token[..]
                        ])
                        .map_err(q("insert history"))?;
                }
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('register_delta_seq', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [seq.to_string()],
        )
        .map_err(q("store register delta sequence"))?;
        tx.execute(BUMP_GENERATION, [])
            .map_err(q("bump register generation"))?;
        tx.commit().map_err(q("commit register delta"))?;
        Ok(())
    }

    fn for_each_history(&mut self, f: &mut dyn FnMut(HistoryRow<'_>)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT resident_no, until, mynumber_token, name_token, address_token \
                 FROM resident_history ORDER BY resident_no, until",
            )
            .map_err(q("prepare history scan"))?;
        let mut rows = stmt.query([]).map_err(q("scan history"))?;
        while let Some(row) = rows.next().map_err(q("scan history"))? {
            let read = || -> rusqlite::Result<HistoryRow<'_>> {
                Ok(HistoryRow {
                    resident_no: row.get(0)?,
                    until: row.get_ref(1)?.as_str()?,
                    mynumber_token: row.get_ref(2)?.as_blob_or_null()?,
                    name_token: row.get_ref(3)?.as_blob()?,
                    address_token: row.get_ref(4)?.as_blob()?,
                })
            };
            f(read().map_err(q("read history"))?);
        }
        Ok(())
    }

    fn for_each_resident(&mut self, f: &mut dyn FnMut(ResidentRow<'_>)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT resident_no, mynumber_token, name_token, sex, birth, address_token, \
                 loss_kind, loss_on FROM residents",
            )
            .map_err(q("prepare register scan"))?;
        let mut rows = stmt.query([]).map_err(q("scan register"))?;
        while let Some(row) = rows.next().map_err(q("scan register"))? {
            let read = || -> rusqlite::Result<ResidentRow<'_>> {
                let blob = |i| -> rusqlite::Result<&[u8]> { Ok(row.get_ref(i)?.as_blob()?) };
                let text = |i| -> rusqlite::Result<&str> { Ok(row.get_ref(i)?.as_str()?) };
                Ok(ResidentRow {
                    resident_no: row.get(0)?,
                    mynumber_token: row.get_ref(1)?.as_blob_or_null()?,
                    name_token: blob(2)?,
                    sex: row.get(3)?,
                    birth: text(4)?,
                    address_token: blob(5)?,
                    loss_kind: row.get(6)?,
                    loss_on: row.get_ref(7)?.as_str_or_null()?,
                })
            };
            f(read().map_err(q("read resident"))?);
        }
        Ok(())
    }

    fn register_generation(&mut self) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'register_generation'",
                [],
                |r| r.get(0),
            )
            .map_err(q("read register generation"))
    }

    fn ledger_get(&mut self, sha256: &str) -> Result<Option<LedgerEntry>> {
        self.conn
            .query_row(
                &format!("SELECT {LEDGER_COLUMNS} FROM intake_ledger WHERE sha256 = ?1 AND status <> 'loading'"),
                [sha256],
                ledger_from_row,
            )
            .optional()
            .map_err(q("read ledger"))
    }

    fn ledger_unmoved(&mut self) -> Result<Vec<LedgerEntry>> {
        self.ledger_where("moved = 0 AND status <> 'loading'")
    }

    fn ledger_mark_moved(&mut self, sha256: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE intake_ledger SET moved = 1 WHERE sha256 = ?1",
                [sha256],
            )
            .map_err(q("mark ledger moved"))?;
        Ok(())
    }

    fn ledger_all(&mut self) -> Result<Vec<LedgerEntry>> {
        self.ledger_where("status <> 'loading'")
    }

    fn ledger_forget_rejected(&mut self, sha256: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "DELETE FROM intake_ledger WHERE sha256 = ?1 AND status = 'rejected'",
                [sha256],
            )
            .map_err(q("forget rejected ledger entry"))?;
        Ok(n == 1)
    }

    fn ledger_insert_rejected(&mut self, e: &LedgerEntry) -> Result<()> {
        // IMMEDIATE: no import can change the register between the check and the insert.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin rejected ledger entry"))?;
        crate::same_register(e, generation_in(&tx)?)?;
        tx.execute(
            "INSERT INTO intake_ledger (sha256, file_name, status, encoding, rows, accepted, \
                 rejected, reasons_json, disposition, moved, started_at, finished_at, origin, \
                 register_generation, holder) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (sha256) DO NOTHING",
            params![
                e.sha256,
                e.file_name,
                e.status.as_str(),
                e.encoding,
                e.rows,
                e.accepted,
                e.rejected,
                e.reasons_json,
                e.destination,
                now(),
                e.origin,
                e.register_generation,
                e.holder
            ],
        )
        .map_err(q("insert rejected ledger entry"))?;
        tx.commit().map_err(q("commit rejected ledger entry"))?;
        Ok(())
    }

    fn begin_intake<'s>(&'s mut self, file_name: &str) -> Result<Box<dyn IntakeTx + 's>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin intake"))?;
        // The real hash replaces this placeholder at commit; a rollback removes the row.
        tx.execute(
            "INSERT INTO intake_ledger (sha256, file_name, status, started_at) \
             VALUES ('loading:' || lower(hex(randomblob(16))), ?1, 'loading', ?2)",
            params![file_name, now()],
        )
        .map_err(q("insert ledger entry"))?;
        let intake_id = tx.last_insert_rowid();
        Ok(Box::new(SqliteIntake { tx, intake_id }))
    }

    fn rewrite_births(&mut self, f: &mut dyn FnMut(&str) -> Option<String>) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin birth rewrite"))?;
        let rows: Vec<(i64, String)> = {
            let mut st = tx
                .prepare("SELECT resident_no, birth FROM residents WHERE birth NOT LIKE 't:%'")
                .map_err(q("read births"))?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(q("read births"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(q("read births"))?
        };
        let mut n = 0;
        for (no, birth) in rows {
            if let Some(new) = f(&birth) {
                tx.execute(
                    "UPDATE residents SET birth = ?2 WHERE resident_no = ?1",
                    params![no, new],
                )
                .map_err(q("rewrite birth"))?;
                n += 1;
            }
        }
        tx.commit().map_err(q("commit birth rewrite"))?;
        Ok(n)
    }

    fn fee_months(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT claim_month FROM fee_totals ORDER BY claim_month")
            .map_err(q("prepare fee months"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(q("read fee months"))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
            .map_err(q("read fee months"))
    }

    fn dirty_months(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT claim_month FROM dirty_months ORDER BY claim_month")
            .map_err(q("prepare dirty months"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(q("read dirty months"))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
            .map_err(q("read dirty months"))
    }

    fn clear_dirty_month(&mut self, month: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM dirty_months WHERE claim_month = ?1", [month])
            .map_err(q("clear dirty month"))?;
        Ok(())
    }

    fn fee_summary(&mut self, month: &str) -> Result<Vec<FeeLine>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT claim_month, institution, vaccine, count, total_fee FROM fee_totals \
                 WHERE claim_month = ?1 ORDER BY institution, vaccine",
            )
            .map_err(q("prepare fee summary"))?;
        let rows = stmt
            .query_map([month], |r| {
                Ok(FeeLine {
                    claim_month: r.get(0)?,
                    institution: r.get(1)?,
                    vaccine: r.get(2)?,
                    count: r.get(3)?,
                    total_fee: r.get(4)?,
                })
            })
            .map_err(q("fee summary"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(q("fee summary"))
    }

    fn record_lines(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT l.sha256, r.row_no, r.resident_no, r.mynumber_token, r.mynumber_ct, \
                 r.vaccinated_on, r.institution, r.age, r.claim_month, r.exam, r.lot_no, \
                 r.vaccine, r.moved_in, r.prescreen_doctor, r.vaccinating_doctor, r.payment, \
                 r.fee, r.dose_centi_ml, r.remarks1, r.remarks2, r.remarks3 \
                 FROM records r JOIN intake_ledger l ON l.id = r.intake_id",
            )
            .map_err(q("prepare record dump"))?;
        let mut rows = stmt.query([]).map_err(q("record dump"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(q("record dump"))? {
            let read = || -> rusqlite::Result<String> {
                let sha: String = row.get(0)?;
                let token: Option<Vec<u8>> = row.get(3)?;
                let ct: Option<Vec<u8>> = row.get(4)?;
                let rec = StoredRecord {
                    dup_key: 0,
                    row_no: row.get(1)?,
                    resident_no: row.get(2)?,
                    mynumber_token: None,
                    mynumber_ct: None,
                    vaccinated_on: row.get(5)?,
                    institution: row.get(6)?,
                    age: row.get(7)?,
                    claim_month: row.get(8)?,
                    exam: row.get(9)?,
                    lot_no: row.get(10)?,
                    vaccine: row.get(11)?,
                    moved_in: row.get::<_, i64>(12)? != 0,
                    prescreen_doctor: row.get(13)?,
                    vaccinating_doctor: row.get(14)?,
                    payment: row.get(15)?,
                    fee: row.get(16)?,
                    dose_centi_ml: row.get(17)?,
                    remarks: [row.get(18)?, row.get(19)?, row.get(20)?],
                };
                Ok(record_line(
                    &rec,
                    &sha,
                    ct.map_or(0, |c| c.len()),
                    token.map_or(0, |t| t.len()),
                ))
            };
            out.push(read().map_err(q("record dump"))?);
        }
        out.sort();
        Ok(out)
    }

    fn record_count(&mut self) -> Result<i64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
            .map_err(q("count records"))
    }

    fn sample_ciphertexts(&mut self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT resident_no, mynumber_ct FROM (\
                 SELECT resident_no, mynumber_ct, 0 AS src FROM records WHERE mynumber_ct IS NOT NULL \
                 UNION ALL \
                 SELECT resident_no, mynumber_ct, 1 FROM residents WHERE mynumber_ct IS NOT NULL) \
                 ORDER BY src LIMIT ?1",
            )
            .map_err(q("prepare ciphertext sample"))?;
        let rows = stmt
            .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(q("ciphertext sample"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(q("ciphertext sample"))
    }

    fn count_records_before(&mut self, before: &str) -> Result<RecordsDeleted> {
        let (count, oldest, newest): (i64, Option<String>, Option<String>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(vaccinated_on), MAX(vaccinated_on) FROM records \
                 WHERE vaccinated_on < ?1",
                [before],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(q("count expired records"))?;
        Ok(RecordsDeleted {
            count: count as u64,
            oldest,
            newest,
        })
    }

    fn delete_records_before(&mut self, before: &str, job: &str) -> Result<RecordsDeleted> {
        let key = format!("retention:{job}");
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(q("begin retention"))?;
        let done: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(q("read retention record"))?;
        if let Some(done) = done {
            return serde_json::from_str(&done)
                .map_err(|e| StoreError::query("read retention record", e));
        }
        let (count, oldest, newest): (i64, Option<String>, Option<String>) = tx
            .query_row(
                "SELECT COUNT(*), MIN(vaccinated_on), MAX(vaccinated_on) FROM records \
                 WHERE vaccinated_on < ?1",
                [before],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(q("count expired records"))?;
        tx.execute("DELETE FROM records WHERE vaccinated_on < ?1", [before])
            .map_err(q("delete expired records"))?;
        let out = RecordsDeleted {
            count: count as u64,
            oldest,
            newest,
        };
        let json = serde_json::to_string(&out).expect("a summary serialises");
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            [key.as_str(), json.as_str()],
        )
        .map_err(q("record retention"))?;
        tx.commit().map_err(q("commit retention"))?;
        Ok(out)
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(q("read metadata"))
    }

    fn meta_insert(&mut self, key: &str, value: &str) -> Result<String> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map_err(q("write metadata"))?;
        self.meta(key)?
            .ok_or_else(|| StoreError::query("read metadata", "the value just stored is gone"))
    }

    fn ledger_totals_since(
        &mut self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::LedgerTotals> {
        // finished_at is RFC 3339 UTC with milliseconds: text order is time order.
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(status = 'loaded'), 0), COALESCE(SUM(status = 'rejected'), 0), \
                 COALESCE(SUM(accepted), 0), COALESCE(SUM(rejected), 0) \
                 FROM intake_ledger WHERE status <> 'loading' AND finished_at >= ?1",
                [since],
                |r| {
                    Ok(crate::LedgerTotals {
                        files_loaded: r.get(0)?,
                        files_returned: r.get(1)?,
                        rows_accepted: r.get(2)?,
                        rows_rejected: r.get(3)?,
                    })
                },
            )
            .map_err(q("ledger totals"))
    }

    fn holds_data(&mut self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM residents) \
                 OR EXISTS (SELECT 1 FROM resident_history)",
                [],
                |r| r.get(0),
            )
            .map_err(q("look for stored data"))
    }
}

struct SqliteIntake<'s> {
    tx: Transaction<'s>,
    intake_id: i64,
}

impl IntakeTx for SqliteIntake<'_> {
    fn insert_batch(&mut self, records: &[StoredRecord]) -> Result<Vec<InsertOutcome>> {
        let mut insert = self
            .tx
            .prepare_cached(INSERT_RECORD)
            .map_err(q("prepare record insert"))?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let mut key = r.dup_key;
            let mut probe = 0u32;
            let outcome =
                loop {
                    let changed = insert
                        .execute(params![
                            self.intake_id,
                            r.row_no,
                            r.resident_no,
                            r.mynumber_token.as_ref().map(|t| &t[..]),
                            r.mynumber_ct,
                            r.vaccinated_on,
                            r.institution,
                            r.age,
                            r.claim_month,
                            r.exam,
                            r.lot_no,
                            r.vaccine,
                            r.moved_in,
                            r.prescreen_doctor,
                            r.vaccinating_doctor,
                            r.payment,
                            r.fee,
                            r.dose_centi_ml,
                            r.remarks[0],
                            r.remarks[1],
                            r.remarks[2],
                            key,
                        ])
                        .map_err(q("insert record"))?;
                    if changed == 1 {
                        break InsertOutcome::Inserted;
                    }
                    // The key is taken: the same vaccination (a duplicate), or, once in 2^64,
                    // another one whose key collides (then try the next probe).
                    let (owner, res, date, vaccine, exam): (i64, i64, String, String, i16) = self
                    .tx
                    .prepare_cached(
                        "SELECT intake_id, resident_no, vaccinated_on, vaccine, exam FROM records \
                         WHERE dup_key = ?1",
                    )
                    .map_err(q("prepare duplicate lookup"))?
                    .query_row([key], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                    })
                    .map_err(q("duplicate lookup"))?;
                    if (res, date.as_str(), vaccine.as_str(), exam) == r.key() {
                        break if owner == self.intake_id {
                            InsertOutcome::DuplicateInFile
                        } else {
                            InsertOutcome::DuplicateOfLoaded
                        };
                    }
                    probe += 1;
                    key =
                        crate::dup_key(r.resident_no, &r.vaccinated_on, &r.vaccine, r.exam, probe);
                };
            out.push(outcome);
        }
        Ok(out)
    }

    fn known(&mut self, sha256: &str) -> Result<Option<LedgerEntry>> {
        self.tx
            .query_row(
                &format!("SELECT {LEDGER_COLUMNS} FROM intake_ledger WHERE sha256 = ?1 AND status <> 'loading'"),
                [sha256],
                ledger_from_row,
            )
            .optional()
            .map_err(q("read ledger"))
    }

    fn commit(self: Box<Self>, e: &LedgerEntry, fees: &[FeeLine]) -> Result<()> {
        let SqliteIntake { tx, intake_id } = *self;
        // The transaction holds the write lock since it began: the generation read here is
        // the one the commit lands on.
        crate::same_register(e, generation_in(&tx)?)?;
        tx.execute(
            "UPDATE intake_ledger SET status = ?2, encoding = ?3, rows = ?4, accepted = ?5, \
             rejected = ?6, reasons_json = ?7, disposition = ?8, finished_at = ?9, sha256 = ?10, \
             origin = ?11, register_generation = ?12, holder = ?13 WHERE id = ?1",
            params![
                intake_id,
                e.status.as_str(),
                e.encoding,
                e.rows,
                e.accepted,
                e.rejected,
                e.reasons_json,
                e.destination,
                now(),
                e.sha256,
                e.origin,
                e.register_generation,
                e.holder
            ],
        )
        .map_err(q("complete ledger entry"))?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO fee_totals (claim_month, institution, vaccine, count, total_fee) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (claim_month, institution, vaccine) \
                     DO UPDATE SET count = count + excluded.count, \
                     total_fee = total_fee + excluded.total_fee",
                )
                .map_err(q("prepare fee totals"))?;
            for f in fees {
                stmt.execute(params![
                    f.claim_month,
                    f.institution,
                    f.vaccine,
                    f.count,
                    f.total_fee
                ])
                .map_err(q("add fee totals"))?;
            }
            let mut stmt = tx
                .prepare("INSERT OR IGNORE INTO dirty_months (claim_month) VALUES (?1)")
                .map_err(q("prepare dirty month"))?;
            for m in crate::months_of(fees) {
                stmt.execute([m]).map_err(q("mark dirty month"))?;
            }
        }
        tx.commit().map_err(q("commit intake"))
    }
}
