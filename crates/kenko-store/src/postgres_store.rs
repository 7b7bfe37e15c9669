//! PostgreSQL adapter (the store in the cluster). Records go in by binary `COPY`, batch by
//! batch inside the intake's transaction. A batch is copied without asking the table first,
//! under a savepoint: the unique index on `dup_key` is the duplicate check, and only rows
//! whose key this intake may have inserted already (a fixed-size Bloom filter) are looked up.
//! When the index refuses a batch (a row an earlier file loaded), the savepoint is rolled
//! back and the rest of the file takes the careful path: one set-based lookup per batch,
//! then the copy. Intakes from several agents are serialised by a transaction-scoped
//! advisory lock.

use std::collections::HashMap;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};

use crate::{
    record_line, token_from, DeltaApplyError, FeeLine, HistoryRow, InsertOutcome, IntakeTx,
    LedgerEntry, LedgerStatus, RecordsDeleted, ReplaceError, ResidentChange, ResidentRow, Result,
    Store, StoreError, StoredRecord, StoredResident,
};

const SCHEMA: &str = r#"
SELECT pg_advisory_xact_lock(7346021);
CREATE TABLE IF NOT EXISTS kenko_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS residents (
    resident_no    BIGINT PRIMARY KEY,
    mynumber_token BYTEA,
    mynumber_ct    BYTEA,
    name_token     BYTEA NOT NULL,
    sex            SMALLINT NOT NULL,
    birth          TEXT NOT NULL,
    address_token  BYTEA NOT NULL,
    loss_kind      SMALLINT,
    loss_on        TEXT
);
CREATE TABLE IF NOT EXISTS intake_ledger (
    id           BIGSERIAL PRIMARY KEY,
    sha256       TEXT NOT NULL UNIQUE,
    file_name    TEXT NOT NULL,
    status       TEXT NOT NULL,
    encoding     TEXT NOT NULL DEFAULT '',
    rows         BIGINT NOT NULL DEFAULT 0,
    accepted     BIGINT NOT NULL DEFAULT 0,
    rejected     BIGINT NOT NULL DEFAULT 0,
    reasons_json TEXT NOT NULL DEFAULT '{}',
    disposition  TEXT NOT NULL DEFAULT '',
    moved        BOOLEAN NOT NULL DEFAULT FALSE,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS records (
    id                 BIGSERIAL PRIMARY KEY,
    intake_id          BIGINT NOT NULL,  -- intake_ledger.id; no FOREIGN KEY: its per-row trigger made COPY 5x slower, and records and their ledger row commit together anyway
    dup_key            BIGINT NOT NULL,
    row_no             BIGINT NOT NULL,
    resident_no        BIGINT NOT NULL,
    mynumber_token     BYTEA,
    mynumber_ct        BYTEA,
    vaccinated_on      TEXT NOT NULL,
    institution        TEXT NOT NULL,
    age                INTEGER NOT NULL,
    claim_month        TEXT NOT NULL,
    exam               SMALLINT NOT NULL,
    lot_no             TEXT NOT NULL,
    vaccine            TEXT NOT NULL,
    moved_in           BOOLEAN NOT NULL,
    prescreen_doctor   TEXT NOT NULL,
    vaccinating_doctor TEXT NOT NULL,
    payment            SMALLINT NOT NULL,
    fee                BIGINT NOT NULL,
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
    count       BIGINT NOT NULL,
    total_fee   BIGINT NOT NULL,
    PRIMARY KEY (claim_month, institution, vaccine)
);
CREATE TABLE IF NOT EXISTS dirty_months (
    claim_month TEXT PRIMARY KEY
);
INSERT INTO kenko_meta (key, value) VALUES ('schema_version', '1') ON CONFLICT DO NOTHING;
INSERT INTO kenko_meta (key, value) VALUES ('register_generation', '0') ON CONFLICT DO NOTHING;
"#;

/// Version 3: the register's history (earlier versions of a resident's changing facts,
/// tokens only, valid before `until`).
const MIGRATION_3: &str = r#"
CREATE TABLE IF NOT EXISTS resident_history (
    resident_no    BIGINT NOT NULL,
    until          TEXT NOT NULL,
    mynumber_token BYTEA,
    name_token     BYTEA NOT NULL,
    address_token  BYTEA NOT NULL,
    PRIMARY KEY (resident_no, until)
);
UPDATE kenko_meta SET value = '3' WHERE key = 'schema_version';
"#;

const BUMP_GENERATION: &str =
    "UPDATE kenko_meta SET value = (value::bigint + 1)::text WHERE key = 'register_generation'";

const LEDGER_COLUMNS: &str =
    "sha256, file_name, status, encoding, rows, accepted, rejected, reasons_json, disposition, moved, origin, register_generation, holder";

/// The register generation, with a share lock on its row until the transaction ends: an
/// import or delta (which updates the row) waits for this commit, or this read waits for
/// theirs and sees the new generation.
fn generation_locked(tx: &mut postgres::Transaction<'_>) -> Result<i64> {
    let row = tx
        .query_one(
            "SELECT value::bigint FROM kenko_meta WHERE key = 'register_generation' FOR SHARE",
            &[],
        )
        .map_err(q("read register generation"))?;
    Ok(row.get(0))
}

/// The PostgreSQL store.
pub struct PostgresStore {
    client: Client,
}

fn q(context: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |e| StoreError::query(context, e)
}

fn ledger_from_row(row: &postgres::Row) -> Result<LedgerEntry> {
    Ok(LedgerEntry {
        sha256: row.get(0),
        file_name: row.get(1),
        status: LedgerStatus::parse(row.get(2))?,
        encoding: row.get(3),
        rows: row.get(4),
        accepted: row.get(5),
        rejected: row.get(6),
        reasons_json: row.get(7),
        destination: row.get(8),
        moved: row.get(9),
        origin: row.get(10),
        register_generation: row.get(11),
        holder: row.get(12),
    })
}

impl PostgresStore {
    /// Connects for reading only: every transaction of the session is read only, and the
    /// schema is not created or migrated.
    pub fn connect_read_only(url: &str) -> Result<PostgresStore> {
        let mut client = crate::tls::connect(url)?;
        client
            .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .map_err(q("set read only"))?;
        let version: String = client
            .query_one(
                "SELECT value FROM kenko_meta WHERE key = 'schema_version'",
                &[],
            )
            .map_err(q("read schema version"))?
            .get(0);
        crate::require_current(&version, &crate::redact_url(url))?;
        Ok(PostgresStore { client })
    }

    /// Connects and creates or upgrades the schema.
    pub fn connect(url: &str) -> Result<PostgresStore> {
        let mut client = crate::tls::connect(url)?;
        let mut tx = client
            .transaction()
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        tx.batch_execute(SCHEMA)
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        // Concurrent agents starting together migrate one at a time.
        tx.batch_execute("LOCK TABLE kenko_meta IN EXCLUSIVE MODE")
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let version: String = tx
            .query_one(
                "SELECT value FROM kenko_meta WHERE key = 'schema_version'",
                &[],
            )
            .map_err(|e| StoreError::Migrate(e.to_string()))?
            .get(0);
        let version = crate::check_schema_version(&version)?;
        if version < 2 {
            tx.batch_execute(
                "ALTER TABLE intake_ledger ADD COLUMN IF NOT EXISTS origin TEXT; \
                 UPDATE kenko_meta SET value = '2' WHERE key = 'schema_version';",
            )
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        }
        if version < 3 {
            tx.batch_execute(MIGRATION_3)
                .map_err(|e| StoreError::Migrate(e.to_string()))?;
        }
        if version < 4 {
            tx.batch_execute(
                "ALTER TABLE intake_ledger ADD COLUMN IF NOT EXISTS register_generation BIGINT; \
                 ALTER TABLE intake_ledger ADD COLUMN IF NOT EXISTS holder TEXT; \
                 UPDATE kenko_meta SET value = '4' WHERE key = 'schema_version';",
            )
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        }
        tx.commit()
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(PostgresStore { client })
    }
}

impl Store for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn batch_rows(&self) -> usize {
        8192
    }

    fn replace_residents(
        &mut self,
        residents: &mut dyn Iterator<Item = std::result::Result<StoredResident, String>>,
    ) -> std::result::Result<usize, ReplaceError> {
        let mut tx = self.client.transaction().map_err(q("begin register"))?;
        tx.execute("LOCK TABLE residents IN ACCESS EXCLUSIVE MODE", &[])
            .map_err(q("lock register"))?;
        tx.execute("DELETE FROM residents", &[])
            .map_err(q("clear register"))?;
        let sink = tx
            .copy_in(
                "COPY residents (resident_no, mynumber_token, mynumber_ct, name_token, sex, birth, \
                 address_token, loss_kind, loss_on) FROM STDIN (FORMAT binary)",
            )
            .map_err(q("start register copy"))?;
        let mut w = BinaryCopyInWriter::new(
            sink,
            &[
                Type::INT8,
                Type::BYTEA,
                Type::BYTEA,
                Type::BYTEA,
                Type::INT2,
                Type::TEXT,
                Type::BYTEA,
                Type::INT2,
                Type::TEXT,
            ],
        );
        let mut n = 0usize;
        for r in residents {
            let r = r.map_err(ReplaceError::Input)?;
            let mt = r.mynumber_token.map(|t| t.to_vec());
            w.write(&[
                &r.resident_no,
                &mt,
                &r.mynumber_ct,
                &&r.name_token[..],
                &r.sex,
                &r.birth,
                &&r.address_token[..],
                &r.loss_kind,
                &r.loss_on,
            ])
            .map_err(q("copy resident"))?;
            n += 1;
        }
        w.finish().map_err(|e| match e.as_db_error() {
            Some(db) if db.code() == &postgres::error::SqlState::UNIQUE_VIOLATION => {
                ReplaceError::Input(
                    "a 宛名番号 appears more than once in the register extract".to_string(),
                )
            }
            _ => ReplaceError::Store(StoreError::query("finish register copy", e)),
        })?;
        // The history of residents no longer in the register goes with them.
        tx.execute(
            "DELETE FROM resident_history h WHERE NOT EXISTS \
             (SELECT 1 FROM residents r WHERE r.resident_no = h.resident_no)",
            &[],
        )
        .map_err(q("drop history of removed residents"))?;
        tx.execute(BUMP_GENERATION, &[])
            .map_err(q("bump register generation"))?;
        tx.commit().map_err(q("commit register"))?;
        Ok(n)
    }

    fn resident(&mut self, resident_no: i64) -> Result<Option<StoredResident>> {
        let row = self
            .client
            .query_opt(
                "SELECT resident_no, mynumber_token, mynumber_ct, name_token, sex, birth, \
                 address_token, loss_kind, loss_on FROM residents WHERE resident_no = $1",
                &[&resident_no],
            )
            .map_err(q("read resident"))?;
        Ok(row.map(|row| StoredResident {
            resident_no: row.get(0),
            mynumber_token: row.get::<_, Option<&[u8]>>(1).map(token_from),
            mynumber_ct: row.get(2),
            name_token: token_from(row.get(3)),
            sex: row.get(4),
            birth: row.get(5),
            address_token: token_from(row.get(6)),
            loss_kind: row.get(7),
            loss_on: row.get(8),
        }))
    }

    fn register_delta_seq(&mut self) -> Result<Option<i64>> {
        let row = self
            .client
            .query_opt(
                "SELECT value::bigint FROM kenko_meta WHERE key = 'register_delta_seq'",
                &[],
            )
            .map_err(q("read register delta sequence"))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn apply_register_delta(
        &mut self,
        expected: Option<i64>,
        seq: i64,
        changes: &[ResidentChange],
    ) -> std::result::Result<(), DeltaApplyError> {
        crate::check_changes(changes)?;
        let mut tx = self
            .client
            .transaction()
            .map_err(q("begin register delta"))?;
        // Appliers serialise on the register (SHARE ROW EXCLUSIVE excludes itself and a full
        // replace, not readers), taken before the metadata row as replace_residents does, so
        // the two never deadlock. The sequence row may not exist yet (the first delta), so
        // the table lock, not its row lock, is what makes the read below the latest.
        tx.execute("LOCK TABLE residents IN SHARE ROW EXCLUSIVE MODE", &[])
            .map_err(q("lock register"))?;
        let found: Option<i64> = tx
            .query_opt(
                "SELECT value::bigint FROM kenko_meta WHERE key = 'register_delta_seq' FOR UPDATE",
                &[],
            )
            .map_err(q("read register delta sequence"))?
            .map(|r| r.get(0));
        if found != expected {
            // Dropping the transaction rolls it back (nothing was written).
            return Err(DeltaApplyError::Raced { expected, found });
        }
        let upsert = tx
            .prepare(
                "INSERT INTO residents (resident_no, mynumber_token, mynumber_ct, name_token, \
                 sex, birth, address_token, loss_kind, loss_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (resident_no) DO UPDATE \
                 SET mynumber_token = excluded.mynumber_token, mynumber_ct = excluded.mynumber_ct, \
                 name_token = excluded.name_token, sex = excluded.sex, birth = excluded.birth, \
                 address_token = excluded.address_token, loss_kind = excluded.loss_kind, \
                 loss_on = excluded.loss_on",
            )
            .map_err(q("prepare resident upsert"))?;
        let history = tx
            .prepare(
                "INSERT INTO resident_history (resident_no, until, mynumber_token, name_token, \
                 address_token) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (resident_no, until) DO NOTHING",
            )
            .map_err(q("prepare history insert"))?;
        for c in changes {
            let r = &c.resident;
            let mt = r.mynumber_token.as_ref().map(|t| &t[..]);
            tx.execute(
                &upsert,
                &[
                    &r.resident_no,
                    &mt,
                    &r.mynumber_ct,
                    &&r.name_token[..],
                    &r.sex,
                    &r.birth,
                    &&r.address_token[..],
                    &r.loss_kind,
                    &r.loss_on,
                ],
            )
            .map_err(q("upsert resident"))?;
            if let Some(h) = &c.ended {
                let mt = h.mynumber_token.as_ref().map(|t| &t[..]);
                tx.execute(
                    &history,
                    &[
                        &h.resident_no,
                        &h.until,
                        &mt,
                        &&h.name_token[..],
                        &&h.address_token[..],
                    ],
                )
                .map_err(q("insert history"))?;
            }
        }
        tx.execute(
            "INSERT INTO kenko_meta (key, value) VALUES ('register_delta_seq', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&seq.to_string()],
        )
        .map_err(q("store register delta sequence"))?;
        tx.execute(BUMP_GENERATION, &[])
            .map_err(q("bump register generation"))?;
        tx.commit().map_err(q("commit register delta"))?;
        Ok(())
    }

    fn for_each_history(&mut self, f: &mut dyn FnMut(HistoryRow<'_>)) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let params: [&(dyn ToSql + Sync); 0] = [];
        let mut it = self
            .client
            .query_raw(
                "SELECT resident_no, until, mynumber_token, name_token, address_token \
                 FROM resident_history ORDER BY resident_no, until COLLATE \"C\"",
                params,
            )
            .map_err(q("scan history"))?;
        while let Some(row) = it.next().map_err(q("scan history"))? {
            f(HistoryRow {
                resident_no: row.get(0),
                until: row.get(1),
                mynumber_token: row.get(2),
                name_token: row.get(3),
                address_token: row.get(4),
            });
        }
        Ok(())
    }

    fn for_each_resident(&mut self, f: &mut dyn FnMut(ResidentRow<'_>)) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let params: [&(dyn ToSql + Sync); 0] = [];
        let mut it = self
            .client
            .query_raw(
                "SELECT resident_no, mynumber_token, name_token, sex, birth, address_token, \
                 loss_kind, loss_on FROM residents",
                params,
            )
            .map_err(q("scan register"))?;
        while let Some(row) = it.next().map_err(q("scan register"))? {
            f(ResidentRow {
                resident_no: row.get(0),
                mynumber_token: row.get(1),
                name_token: row.get(2),
                sex: row.get(3),
                birth: row.get(4),
                address_token: row.get(5),
                loss_kind: row.get(6),
                loss_on: row.get(7),
            });
        }
        Ok(())
    }

    fn register_generation(&mut self) -> Result<i64> {
        let row = self
            .client
            .query_one(
                "SELECT value::bigint FROM kenko_meta WHERE key = 'register_generation'",
                &[],
            )
            .map_err(q("read register generation"))?;
        Ok(row.get(0))
    }

    fn ledger_get(&mut self, sha256: &str) -> Result<Option<LedgerEntry>> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT {LEDGER_COLUMNS} FROM intake_ledger WHERE sha256 = $1 AND status <> 'loading'"),
                &[&sha256],
            )
            .map_err(q("read ledger"))?;
        row.as_ref().map(ledger_from_row).transpose()
    }

    fn ledger_unmoved(&mut self) -> Result<Vec<LedgerEntry>> {
        let rows = self
            .client
            .query(
                &format!("SELECT {LEDGER_COLUMNS} FROM intake_ledger WHERE NOT moved AND status <> 'loading' ORDER BY id"),
                &[],
            )
            .map_err(q("scan ledger"))?;
        rows.iter().map(ledger_from_row).collect()
    }

    fn ledger_mark_moved(&mut self, sha256: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE intake_ledger SET moved = TRUE WHERE sha256 = $1",
                &[&sha256],
            )
            .map_err(q("mark ledger moved"))?;
        Ok(())
    }

    fn ledger_all(&mut self) -> Result<Vec<LedgerEntry>> {
        let rows = self
            .client
            .query(
                &format!("SELECT {LEDGER_COLUMNS} FROM intake_ledger WHERE status <> 'loading' ORDER BY id"),
                &[],
            )
            .map_err(q("scan ledger"))?;
        rows.iter().map(ledger_from_row).collect()
    }

    fn ledger_forget_rejected(&mut self, sha256: &str) -> Result<bool> {
        let n = self
            .client
            .execute(
                "DELETE FROM intake_ledger WHERE sha256 = $1 AND status = 'rejected'",
                &[&sha256],
            )
            .map_err(q("forget rejected ledger entry"))?;
        Ok(n == 1)
    }

    fn ledger_insert_rejected(&mut self, e: &LedgerEntry) -> Result<()> {
        let mut tx = self
            .client
            .transaction()
            .map_err(q("begin rejected ledger entry"))?;
        let now = generation_locked(&mut tx)?;
        crate::same_register(e, now)?;
        tx.execute(
            "INSERT INTO intake_ledger (sha256, file_name, status, encoding, rows, accepted, \
                 rejected, reasons_json, disposition, moved, finished_at, origin, \
                 register_generation, holder) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, FALSE, now(), $10, $11, $12) \
                 ON CONFLICT (sha256) DO NOTHING",
            &[
                &e.sha256,
                &e.file_name,
                &e.status.as_str(),
                &e.encoding,
                &e.rows,
                &e.accepted,
                &e.rejected,
                &e.reasons_json,
                &e.destination,
                &e.origin,
                &e.register_generation,
                &e.holder,
            ],
        )
        .map_err(q("insert rejected ledger entry"))?;
        tx.commit().map_err(q("commit rejected ledger entry"))?;
        Ok(())
    }

    fn begin_intake<'s>(&'s mut self, file_name: &str) -> Result<Box<dyn IntakeTx + 's>> {
        let mut tx = self.client.transaction().map_err(q("begin intake"))?;
        tx.execute("SELECT pg_advisory_xact_lock(7346022)", &[])
            .map_err(q("take intake lock"))?;
        let row = tx
            .query_one(
                "INSERT INTO intake_ledger (sha256, file_name, status) \
                 VALUES ('loading:' || md5(random()::text || clock_timestamp()::text), $1, 'loading') \
                 RETURNING id",
                &[&file_name],
            )
            .map_err(q("insert ledger entry"))?;
        let intake_id: i64 = row.get(0);
        Ok(Box::new(PostgresIntake {
            tx,
            intake_id,
            inserted: Bloom::new(),
            optimistic: true,
        }))
    }

    fn rewrite_births(&mut self, f: &mut dyn FnMut(&str) -> Option<String>) -> Result<usize> {
        let mut tx = self
            .client
            .transaction()
            .map_err(q("begin birth rewrite"))?;
        let rows = tx
            .query(
                "SELECT resident_no, birth FROM residents WHERE birth NOT LIKE 't:%' FOR UPDATE",
                &[],
            )
            .map_err(q("read births"))?;
        let mut n = 0;
        for r in rows {
            let (no, birth): (i64, String) = (r.get(0), r.get(1));
            if let Some(new) = f(&birth) {
                tx.execute(
                    "UPDATE residents SET birth = $2 WHERE resident_no = $1",
                    &[&no, &new],
                )
                .map_err(q("rewrite birth"))?;
                n += 1;
            }
        }
        tx.commit().map_err(q("commit birth rewrite"))?;
        Ok(n)
    }

    fn fee_months(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT claim_month FROM fee_totals ORDER BY claim_month",
                &[],
            )
            .map_err(q("read fee months"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn dirty_months(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT claim_month FROM dirty_months ORDER BY claim_month",
                &[],
            )
            .map_err(q("read dirty months"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn clear_dirty_month(&mut self, month: &str) -> Result<()> {
        self.client
            .execute("DELETE FROM dirty_months WHERE claim_month = $1", &[&month])
            .map_err(q("clear dirty month"))?;
        Ok(())
    }

    fn fee_summary(&mut self, month: &str) -> Result<Vec<FeeLine>> {
        let rows = self
            .client
            .query(
                "SELECT claim_month, institution, vaccine, count, total_fee FROM fee_totals \
                 WHERE claim_month = $1 ORDER BY institution COLLATE \"C\", vaccine COLLATE \"C\"",
                &[&month],
            )
            .map_err(q("fee summary"))?;
        Ok(rows
            .iter()
            .map(|r| FeeLine {
                claim_month: r.get(0),
                institution: r.get(1),
                vaccine: r.get(2),
                count: r.get(3),
                total_fee: r.get(4),
            })
            .collect())
    }

    fn record_lines(&mut self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT l.sha256, r.row_no, r.resident_no, r.mynumber_token, r.mynumber_ct, \
                 r.vaccinated_on, r.institution, r.age, r.claim_month, r.exam, r.lot_no, \
                 r.vaccine, r.moved_in, r.prescreen_doctor, r.vaccinating_doctor, r.payment, \
                 r.fee, r.dose_centi_ml, r.remarks1, r.remarks2, r.remarks3 \
                 FROM records r JOIN intake_ledger l ON l.id = r.intake_id",
                &[],
            )
            .map_err(q("record dump"))?;
        let mut out: Vec<String> = rows
            .iter()
            .map(|row| {
                let sha: String = row.get(0);
                let token: Option<&[u8]> = row.get(3);
                let ct: Option<&[u8]> = row.get(4);
                let rec = StoredRecord {
                    dup_key: 0,
                    row_no: row.get(1),
                    resident_no: row.get(2),
                    mynumber_token: None,
                    mynumber_ct: None,
                    vaccinated_on: row.get(5),
                    institution: row.get(6),
                    age: row.get(7),
                    claim_month: row.get(8),
                    exam: row.get(9),
                    lot_no: row.get(10),
                    vaccine: row.get(11),
                    moved_in: row.get(12),
                    prescreen_doctor: row.get(13),
                    vaccinating_doctor: row.get(14),
                    payment: row.get(15),
                    fee: row.get(16),
                    dose_centi_ml: row.get(17),
                    remarks: [row.get(18), row.get(19), row.get(20)],
                };
                record_line(
                    &rec,
                    &sha,
                    ct.map_or(0, <[u8]>::len),
                    token.map_or(0, |t| t.len()),
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn record_count(&mut self) -> Result<i64> {
        let row = self
            .client
            .query_one("SELECT COUNT(*)::bigint FROM records", &[])
            .map_err(q("count records"))?;
        Ok(row.get(0))
    }

    fn sample_ciphertexts(&mut self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = self
            .client
            .query(
                "SELECT resident_no, mynumber_ct FROM (\
                 SELECT resident_no, mynumber_ct, 0 AS src FROM records WHERE mynumber_ct IS NOT NULL \
                 UNION ALL \
                 SELECT resident_no, mynumber_ct, 1 FROM residents WHERE mynumber_ct IS NOT NULL) s \
                 ORDER BY src LIMIT $1",
                &[&limit],
            )
            .map_err(q("ciphertext sample"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt("SELECT value FROM kenko_meta WHERE key = $1", &[&key])
            .map_err(q("read metadata"))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn count_records_before(&mut self, before: &str) -> Result<RecordsDeleted> {
        let row = self
            .client
            .query_one(
                "SELECT COUNT(*)::bigint, MIN(vaccinated_on), MAX(vaccinated_on) FROM records \
                 WHERE vaccinated_on < $1",
                &[&before],
            )
            .map_err(q("count expired records"))?;
        let count: i64 = row.get(0);
        Ok(RecordsDeleted {
            count: count as u64,
            oldest: row.get(1),
            newest: row.get(2),
        })
    }

    fn delete_records_before(&mut self, before: &str, job: &str) -> Result<RecordsDeleted> {
        let key = format!("retention:{job}");
        let mut tx = self.client.transaction().map_err(q("begin retention"))?;
        // One retention job at a time: the second waits here and then finds the first's record.
        tx.execute("LOCK TABLE records IN SHARE ROW EXCLUSIVE MODE", &[])
            .map_err(q("lock records"))?;
        if let Some(row) = tx
            .query_opt("SELECT value FROM kenko_meta WHERE key = $1", &[&key])
            .map_err(q("read retention record"))?
        {
            let done: String = row.get(0);
            return serde_json::from_str(&done)
                .map_err(|e| StoreError::query("read retention record", e));
        }
        let row = tx
            .query_one(
                "SELECT COUNT(*)::bigint, MIN(vaccinated_on), MAX(vaccinated_on) FROM records \
                 WHERE vaccinated_on < $1",
                &[&before],
            )
            .map_err(q("count expired records"))?;
        let count: i64 = row.get(0);
        tx.execute("DELETE FROM records WHERE vaccinated_on < $1", &[&before])
            .map_err(q("delete expired records"))?;
        let out = RecordsDeleted {
            count: count as u64,
            oldest: row.get(1),
            newest: row.get(2),
        };
        let json = serde_json::to_string(&out).expect("a summary serialises");
        tx.execute(
            "INSERT INTO kenko_meta (key, value) VALUES ($1, $2)",
            &[&key, &json],
        )
        .map_err(q("record retention"))?;
        tx.commit().map_err(q("commit retention"))?;
        Ok(out)
    }

    fn meta_insert(&mut self, key: &str, value: &str) -> Result<String> {
        self.client
            .execute(
                "INSERT INTO kenko_meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&key, &value],
            )
            .map_err(q("write metadata"))?;
        self.meta(key)?
            .ok_or_else(|| StoreError::query("read metadata", "the value just stored is gone"))
    }

    fn ledger_totals_since(
        &mut self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::LedgerTotals> {
        let since = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let row = self
            .client
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE status = 'loaded'), \
                 COUNT(*) FILTER (WHERE status = 'rejected'), \
                 COALESCE(SUM(accepted), 0)::bigint, COALESCE(SUM(rejected), 0)::bigint \
                 FROM intake_ledger WHERE status <> 'loading' AND finished_at >= $1::text::timestamptz",
                &[&since],
            )
            .map_err(q("ledger totals"))?;
        Ok(crate::LedgerTotals {
            files_loaded: row.get(0),
            files_returned: row.get(1),
            rows_accepted: row.get(2),
            rows_rejected: row.get(3),
        })
    }

    fn connection_encrypted(&mut self) -> Result<Option<bool>> {
        let row = self
            .client
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .map_err(q("read connection state"))?;
        Ok(Some(row.is_some_and(|r| r.get::<_, bool>(0))))
    }

    fn holds_data(&mut self) -> Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM residents) \
                 OR EXISTS (SELECT 1 FROM resident_history)",
                &[],
            )
            .map_err(q("look for stored data"))?;
        Ok(row.get(0))
    }
}

struct PostgresIntake<'s> {
    tx: Transaction<'s>,
    intake_id: i64,
    /// The duplicate keys this intake inserted, as a Bloom filter of fixed size: a row
    /// whose key it does not hold cannot be a duplicate within the file.
    inserted: Bloom,
    /// Whether batches are copied without asking the table first (see `insert_optimistic`).
    optimistic: bool,
}

/// A Bloom filter over duplicate keys (already uniform 64-bit hashes), 2^25 bits (4 MiB)
/// and 3 probes: about 1 false "maybe" in 1,400 keys after a million rows. A "maybe" only
/// costs an index probe; memory does not grow with the file.
struct Bloom {
    bits: Vec<u64>,
}

impl Bloom {
    const BITS_LOG2: u32 = 25;

    fn new() -> Bloom {
        Bloom { bits: Vec::new() }
    }

    fn probes(key: i64) -> [usize; 3] {
        // Independent bit positions from one 64-bit hash: two multiplicative remixes.
        let k = key as u64;
        let h2 = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h3 = k.rotate_left(29).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let shift = 64 - Self::BITS_LOG2;
        [
            (k >> shift) as usize,
            (h2 >> shift) as usize,
            (h3 >> shift) as usize,
        ]
    }

    fn insert(&mut self, key: i64) {
        if self.bits.is_empty() {
            self.bits = vec![0u64; 1 << (Self::BITS_LOG2 - 6)];
        }
        for b in Self::probes(key) {
            self.bits[b >> 6] |= 1 << (b & 63);
        }
    }

    fn may_contain(&self, key: i64) -> bool {
        !self.bits.is_empty()
            && Self::probes(key)
                .iter()
                .all(|&b| self.bits[b >> 6] & (1 << (b & 63)) != 0)
    }
}

/// A key found in the table: (index in the batch, owning intake, the row's identity).
type Found = Vec<(usize, i64, (i64, String, String, i16))>;

impl PostgresIntake<'_> {
    /// The common case, a file of new rows, costs no lookup: the batch is copied under a
    /// savepoint, and the unique index on `dup_key` is the check. Only rows whose key this
    /// intake may already have inserted (the Bloom filter says "maybe") are looked up first.
    /// `None` when the index refused the batch (a row loaded by an earlier file): the
    /// savepoint is rolled back and the caller takes the careful path.
    fn insert_optimistic(
        &mut self,
        records: &[StoredRecord],
    ) -> Result<Option<Vec<InsertOutcome>>> {
        let mut keys: Vec<i64> = records.iter().map(|r| r.dup_key).collect();
        let mut out = vec![InsertOutcome::Inserted; records.len()];
        let maybe: Vec<usize> = (0..records.len())
            .filter(|&i| self.inserted.may_contain(keys[i]))
            .collect();
        let found = if maybe.is_empty() {
            Vec::new()
        } else {
            self.lookup(records, &maybe)?
        };
        self.resolve(records, &mut keys, &mut out, found)?;
        let mut sp = self.tx.savepoint("kenko_batch").map_err(q("savepoint"))?;
        match copy_records(&mut sp, self.intake_id, records, &keys, &out) {
            Ok(()) => {
                sp.commit().map_err(q("release savepoint"))?;
                self.remember(&keys, &out);
                Ok(Some(out))
            }
            Err(CopyError::Duplicate) => {
                sp.rollback().map_err(q("roll back to savepoint"))?;
                Ok(None)
            }
            Err(CopyError::Store(e)) => Err(e),
        }
    }

    /// Looks up the keys of `which` rows in the table (this intake's earlier batches
    /// included: same transaction), in one indexed query.
    fn lookup(&mut self, records: &[StoredRecord], which: &[usize]) -> Result<Found> {
        let keys: Vec<i64> = which.iter().map(|&i| records[i].dup_key).collect();
        let rows = self
            .tx
            .query(
                // LATERAL ... LIMIT 1 pins the plan to one index probe per key; a plain join
                // drifts to a hash join over the whole table as it grows.
                "SELECT k.ord, r.intake_id, r.resident_no, r.vaccinated_on, r.vaccine, r.exam \
                 FROM unnest($1::int8[]) WITH ORDINALITY AS k(key, ord) \
                 CROSS JOIN LATERAL (SELECT intake_id, resident_no, vaccinated_on, vaccine, exam \
                 FROM records WHERE dup_key = k.key LIMIT 1) r",
                &[&keys],
            )
            .map_err(q("duplicate lookup"))?;
        Ok(rows
            .iter()
            .map(|row| {
                let i = which[(row.get::<_, i64>(0) - 1) as usize];
                (
                    i,
                    row.get::<_, i64>(1),
                    (
                        row.get::<_, i64>(2),
                        row.get::<_, String>(3),
                        row.get::<_, String>(4),
                        row.get::<_, i16>(5),
                    ),
                )
            })
            .collect())
    }

    /// Decides each row's outcome from what the table holds (`found`) and the batch itself,
    /// and moves the rare colliding key (a different identity with the same 64-bit key) to
    /// its next free probe.
    fn resolve(
        &mut self,
        records: &[StoredRecord],
        keys: &mut [i64],
        out: &mut [InsertOutcome],
        found: Found,
    ) -> Result<()> {
        let mut collided = Vec::new();
        for (i, owner, identity) in found {
            let r = &records[i];
            let (no, on, vaccine, exam) = r.key();
            if identity == (no, on.to_string(), vaccine.to_string(), exam) {
                out[i] = if owner == self.intake_id {
                    InsertOutcome::DuplicateInFile
                } else {
                    InsertOutcome::DuplicateOfLoaded
                };
            } else {
                collided.push(i);
            }
        }
        // Inside the batch: the first occurrence of an identity wins.
        let mut seen: HashMap<i64, usize> = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if out[i] != InsertOutcome::Inserted || collided.contains(&i) {
                continue;
            }
            if let Some(&first) = seen.get(&keys[i]) {
                if records[first].key() == r.key() {
                    out[i] = InsertOutcome::DuplicateInFile;
                } else {
                    collided.push(i);
                }
            } else {
                seen.insert(keys[i], i);
            }
        }
        // Key collisions (about 1 in 2^64): walk the probes until a free key or the same
        // identity turns up.
        for i in collided {
            let r = &records[i];
            let mut probe = 0u32;
            loop {
                probe += 1;
                let key =
                    crate::dup_key(r.resident_no, &r.vaccinated_on, &r.vaccine, r.exam, probe);
                let row = self
                    .tx
                    .query_opt(
                        "SELECT intake_id, resident_no, vaccinated_on, vaccine, exam FROM records \
                         WHERE dup_key = $1",
                        &[&key],
                    )
                    .map_err(q("duplicate probe"))?;
                match row {
                    Some(row)
                        if (
                            row.get::<_, i64>(1),
                            row.get::<_, &str>(2),
                            row.get::<_, &str>(3),
                            row.get::<_, i16>(4),
                        ) == r.key() =>
                    {
                        out[i] = if row.get::<_, i64>(0) == self.intake_id {
                            InsertOutcome::DuplicateInFile
                        } else {
                            InsertOutcome::DuplicateOfLoaded
                        };
                        break;
                    }
                    Some(_) => continue,
                    None if seen.contains_key(&key) => continue,
                    None => {
                        keys[i] = key;
                        seen.insert(key, i);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn remember(&mut self, keys: &[i64], out: &[InsertOutcome]) {
        for (k, o) in keys.iter().zip(out) {
            if *o == InsertOutcome::Inserted {
                self.inserted.insert(*k);
            }
        }
    }
}

/// Why a record copy failed.
enum CopyError {
    /// A key already in the table (the unique index refused the batch).
    Duplicate,
    Store(StoreError),
}

impl From<StoreError> for CopyError {
    fn from(e: StoreError) -> CopyError {
        CopyError::Store(e)
    }
}

/// Copies the rows to insert by binary `COPY`.
fn copy_records(
    tx: &mut Transaction<'_>,
    intake_id: i64,
    records: &[StoredRecord],
    keys: &[i64],
    out: &[InsertOutcome],
) -> std::result::Result<(), CopyError> {
    let dup = |context: &'static str| {
        move |e: postgres::Error| match e.as_db_error() {
            Some(db) if db.code() == &postgres::error::SqlState::UNIQUE_VIOLATION => {
                CopyError::Duplicate
            }
            _ => CopyError::Store(StoreError::query(context, e)),
        }
    };
    let sink = tx.copy_in(COPY_RECORDS).map_err(q("start record copy"))?;
    let mut w = BinaryCopyInWriter::new(sink, &COPY_TYPES);
    for (i, r) in records.iter().enumerate() {
        if out[i] != InsertOutcome::Inserted {
            continue;
        }
        let token = r.mynumber_token.as_ref().map(|t| &t[..]);
        w.write(&[
            &intake_id,
            &r.row_no,
            &r.resident_no,
            &token,
            &r.mynumber_ct,
            &r.vaccinated_on,
            &r.institution,
            &r.age,
            &r.claim_month,
            &r.exam,
            &r.lot_no,
            &r.vaccine,
            &r.moved_in,
            &r.prescreen_doctor,
            &r.vaccinating_doctor,
            &r.payment,
            &r.fee,
            &r.dose_centi_ml,
            &r.remarks[0],
            &r.remarks[1],
            &r.remarks[2],
            &keys[i],
        ])
        .map_err(dup("copy record"))?;
    }
    w.finish().map_err(dup("finish record copy"))?;
    Ok(())
}

const COPY_RECORDS: &str = "COPY records (intake_id, row_no, resident_no, mynumber_token, \
    mynumber_ct, vaccinated_on, institution, age, claim_month, exam, lot_no, vaccine, moved_in, \
    prescreen_doctor, vaccinating_doctor, payment, fee, dose_centi_ml, remarks1, remarks2, \
    remarks3, dup_key) FROM STDIN (FORMAT binary)";

const COPY_TYPES: [Type; 22] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BYTEA,
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::INT2,
    Type::INT8,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
];

impl IntakeTx for PostgresIntake<'_> {
    fn insert_batch(&mut self, records: &[StoredRecord]) -> Result<Vec<InsertOutcome>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if self.optimistic {
            match self.insert_optimistic(records)? {
                Some(out) => return Ok(out),
                // A row of this batch was loaded before: the rest of the file asks first.
                None => self.optimistic = false,
            }
        }
        let mut keys: Vec<i64> = records.iter().map(|r| r.dup_key).collect();
        let all: Vec<usize> = (0..records.len()).collect();
        let mut out = vec![InsertOutcome::Inserted; records.len()];
        let found = self.lookup(records, &all)?;
        self.resolve(records, &mut keys, &mut out, found)?;
        match copy_records(&mut self.tx, self.intake_id, records, &keys, &out) {
            Ok(()) => {}
            Err(CopyError::Store(e)) => return Err(e),
            // Every key was looked up: only a concurrent writer could have taken one, and
            // the intake lock excludes those.
            Err(CopyError::Duplicate) => {
                return Err(StoreError::query(
                    "copy records",
                    "a duplicate key appeared after the lookup",
                ))
            }
        }
        self.remember(&keys, &out);
        Ok(out)
    }

    fn known(&mut self, sha256: &str) -> Result<Option<LedgerEntry>> {
        let row = self
            .tx
            .query_opt(
                &format!("SELECT {LEDGER_COLUMNS} FROM intake_ledger WHERE sha256 = $1 AND status <> 'loading'"),
                &[&sha256],
            )
            .map_err(q("read ledger"))?;
        row.as_ref().map(ledger_from_row).transpose()
    }

    fn commit(self: Box<Self>, e: &LedgerEntry, fees: &[FeeLine]) -> Result<()> {
        let PostgresIntake {
            mut tx, intake_id, ..
        } = *self;
        let now = generation_locked(&mut tx)?;
        crate::same_register(e, now)?;
        tx.execute(
            "UPDATE intake_ledger SET status = $2, encoding = $3, rows = $4, accepted = $5, \
             rejected = $6, reasons_json = $7, disposition = $8, finished_at = now(), \
             sha256 = $9, origin = $10, register_generation = $11, holder = $12 WHERE id = $1",
            &[
                &intake_id,
                &e.status.as_str(),
                &e.encoding,
                &e.rows,
                &e.accepted,
                &e.rejected,
                &e.reasons_json,
                &e.destination,
                &e.sha256,
                &e.origin,
                &e.register_generation,
                &e.holder,
            ],
        )
        .map_err(q("complete ledger entry"))?;
        for f in fees {
            tx.execute(
                "INSERT INTO fee_totals (claim_month, institution, vaccine, count, total_fee) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (claim_month, institution, vaccine) \
                 DO UPDATE SET count = fee_totals.count + excluded.count, \
                 total_fee = fee_totals.total_fee + excluded.total_fee",
                &[
                    &f.claim_month,
                    &f.institution,
                    &f.vaccine,
                    &f.count,
                    &f.total_fee,
                ],
            )
            .map_err(q("add fee totals"))?;
        }
        for m in &crate::months_of(fees) {
            tx.execute(
                "INSERT INTO dirty_months (claim_month) VALUES ($1) ON CONFLICT DO NOTHING",
                &[m],
            )
            .map_err(q("mark dirty month"))?;
        }
        tx.commit().map_err(q("commit intake"))
    }
}
