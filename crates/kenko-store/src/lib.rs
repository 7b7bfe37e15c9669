//! The record store: residents (as tokens), vaccination records and the intake ledger, in
//! SQLite (the embedded default) or PostgreSQL (in the cluster). Both adapters implement
//! [`Store`] with the same schema and the same semantics, and the same tests run on both.
//!
//! The store never sees plaintext names, addresses or My Numbers: the agent hands it keyed
//! tokens and AES-GCM ciphertexts. An intake is one transaction ([`IntakeTx`]): the ledger
//! row, the accepted records and the months whose fee summaries must be rebuilt commit
//! together or not at all.
//!
//! The register is replaced whole by a full extract ([`Store::replace_residents`]) or changed
//! by a delta file (異動データ, [`Store::apply_register_delta`], numbered so two agents never
//! apply one twice). The facts that change over time (name, address, My Number) keep their
//! earlier versions in a history ([`StoredHistory`]), as tokens too.

mod postgres_store;
mod sqlite_store;
mod tls;

use chrono::NaiveDate;
use kenko_intake::Token;
use zeroize::{Zeroize, ZeroizeOnDrop};

pub use postgres_store::PostgresStore;
pub use sqlite_store::SqliteStore;

/// Store errors. `reason()` is stable and used in metrics labels and logs. Messages carry
/// the driver's text, which never includes bound values (we only bind tokens and ciphertexts
/// for personal fields anyway).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {target}: {message}")]
    Open { target: String, message: String },
    #[error("the store's schema could not be created or upgraded: {0}")]
    Migrate(String),
    #[error("store query failed ({context}): {message}")]
    Query {
        context: &'static str,
        message: String,
    },
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// The register was replaced or changed by a delta after the file was checked against
    /// it: the commit would record outcomes the current register may not give.
    #[error("the resident register changed while the file was being checked (generation {checked}, now {now}); nothing of the file was committed, and it is checked again against the new register")]
    RegisterChanged { checked: i64, now: i64 },
}

impl StoreError {
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "store_unavailable",
            StoreError::Migrate(_) => "store_migration_failed",
            StoreError::Query { .. } => "store_query_failed",
            StoreError::UnsupportedUrl(_) => "store_url_invalid",
            StoreError::RegisterChanged { .. } => "register_changed",
        }
    }

    pub(crate) fn query(context: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Query {
            context,
            message: e.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One resident of the register extract, as stored: tokens and ciphertext, not values.
#[derive(Debug, Clone, Zeroize, ZeroizeOnDrop)]
pub struct StoredResident {
    pub resident_no: i64,
    pub mynumber_token: Option<Token>,
    pub mynumber_ct: Option<Vec<u8>>,
    pub name_token: Token,
    /// 1 male, 2 female.
    pub sex: i16,
    /// `YYYY-MM-DD`.
    pub birth: String,
    pub address_token: Token,
    /// 1 deceased, 2 moved out.
    pub loss_kind: Option<i16>,
    /// `YYYY-MM-DD`.
    pub loss_on: Option<String>,
}

/// A resident as [`Store::for_each_resident`] lends it.
#[derive(Debug, Clone, Copy)]
pub struct ResidentRow<'a> {
    pub resident_no: i64,
    pub mynumber_token: Option<&'a [u8]>,
    pub name_token: &'a [u8],
    pub sex: i16,
    /// `YYYY-MM-DD`.
    pub birth: &'a str,
    pub address_token: &'a [u8],
    pub loss_kind: Option<i16>,
    pub loss_on: Option<&'a str>,
}

/// A resident's facts as they were before a change (異動): valid on days before `until`
/// (`YYYY-MM-DD`, exclusive), tokens only (never a clear value, like [`StoredResident`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHistory {
    pub resident_no: i64,
    /// The first day this version no longer held, `YYYY-MM-DD`.
    pub until: String,
    pub mynumber_token: Option<Token>,
    pub name_token: Token,
    pub address_token: Token,
}

/// A history row as [`Store::for_each_history`] lends it (the fields of [`StoredHistory`],
/// borrowed), like [`ResidentRow`] for residents.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRow<'a> {
    pub resident_no: i64,
    /// `YYYY-MM-DD`, exclusive.
    pub until: &'a str,
    pub mynumber_token: Option<&'a [u8]>,
    pub name_token: &'a [u8],
    pub address_token: &'a [u8],
}

/// One resident's change from a delta: the new current facts, and the version the change
/// ended (`None` for a change that keeps no history: a move out, a death, a correction).
/// `ended`, when given, is the same resident's (same 宛名番号).
#[derive(Debug, Clone)]
pub struct ResidentChange {
    pub resident: StoredResident,
    pub ended: Option<StoredHistory>,
}

/// Why [`Store::apply_register_delta`] could not apply a delta.
#[derive(Debug, thiserror::Error)]
pub enum DeltaApplyError {
    /// Another process applied a delta since the caller read the sequence: nothing changed;
    /// read again.
    #[error("the register's delta sequence is {found:?}, not {expected:?}: another delta was applied meanwhile; nothing changed")]
    Raced {
        expected: Option<i64>,
        found: Option<i64>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DeltaApplyError {
    /// A stable reason code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DeltaApplyError::Raced { .. } => "register_delta_raced",
            DeltaApplyError::Store(e) => e.reason(),
        }
    }
}

/// Refuses a delta the store must not take: an ended version of another resident than the
/// change's, or an `until` that is not a `YYYY-MM-DD` date (history is ordered by its text).
pub(crate) fn check_changes(changes: &[ResidentChange]) -> Result<()> {
    for c in changes {
        if let Some(h) = &c.ended {
            if h.resident_no != c.resident.resident_no {
                return Err(StoreError::query(
                    "apply register delta",
                    "a change's ended version belongs to another 宛名番号 than the change",
                ));
            }
            if parse_iso_date(&h.until).is_none() {
                return Err(StoreError::query(
                    "apply register delta",
                    "an ended version's until is not a YYYY-MM-DD date",
                ));
            }
        }
    }
    Ok(())
}

/// One accepted vaccination record, ready to insert.
#[derive(Debug, Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct StoredRecord {
    /// [`dup_key`] of the record (probe 0), computed by the caller so the hashing happens on
    /// the checking thread, not the store's.
    pub dup_key: i64,
    /// The row number in the input file (header = 1).
    pub row_no: i64,
    pub resident_no: i64,
    pub mynumber_token: Option<Token>,
    pub mynumber_ct: Option<Vec<u8>>,
    /// `YYYY-MM-DD`.
    pub vaccinated_on: String,
    pub institution: String,
    pub age: i32,
    /// `YYYY-MM`.
    pub claim_month: String,
    /// 1 接種, 2 予診のみ.
    pub exam: i16,
    pub lot_no: String,
    pub vaccine: String,
    pub moved_in: bool,
    pub prescreen_doctor: String,
    pub vaccinating_doctor: String,
    /// 1 公費, 2 自費.
    pub payment: i16,
    pub fee: i64,
    pub dose_centi_ml: Option<i32>,
    pub remarks: [String; 3],
}

impl StoredRecord {
    /// What makes two records the same vaccination: resident, date, vaccine and examination
    /// category.
    pub fn key(&self) -> (i64, &str, &str, i16) {
        (
            self.resident_no,
            &self.vaccinated_on,
            &self.vaccine,
            self.exam,
        )
    }
}

/// The 64-bit duplicate key of a record's identity, for probe `n` (0 first). Stored in a
/// unique integer index: a small index keeps a million-row intake in the page cache where a
/// composite text index would not. Two different identities can share a key (about 1 in
/// 2^64 per pair); the store then compares the identity itself and moves the newcomer to the
/// next probe, so a collision never rejects a record.
pub fn dup_key(resident_no: i64, vaccinated_on: &str, vaccine: &str, exam: i16, probe: u32) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(resident_no.to_be_bytes());
    h.update(vaccinated_on.as_bytes());
    h.update([0x1f]);
    h.update(vaccine.as_bytes());
    h.update([0x1f]);
    h.update(exam.to_be_bytes());
    h.update(probe.to_be_bytes());
    let d = h.finalize();
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// What became of a record handed to [`IntakeTx::insert_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// An earlier row of the same file has the same key.
    DuplicateInFile,
    /// A record with the same key was loaded from an earlier file.
    DuplicateOfLoaded,
}

/// A ledger entry's outcome, stored as `loaded` or `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerStatus {
    /// Some or all rows are in the store.
    Loaded,
    /// Nothing went in: the whole file was returned.
    Rejected,
}

impl LedgerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerStatus::Loaded => "loaded",
            LedgerStatus::Rejected => "rejected",
        }
    }

    /// The stored form back; anything else is a store that kenko did not write.
    pub fn parse(s: &str) -> Result<LedgerStatus> {
        match s {
            "loaded" => Ok(LedgerStatus::Loaded),
            "rejected" => Ok(LedgerStatus::Rejected),
            _ => Err(StoreError::Query {
                context: "ledger status",
                message: "a ledger row has a status other than loaded or rejected".into(),
            }),
        }
    }
}

impl std::fmt::Display for LedgerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Files and rows the ledger counts over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub files_loaded: i64,
    pub files_returned: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
}

/// The ledger's view of one delivered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    pub file_name: String,
    /// Whether some rows went in, or none.
    pub status: LedgerStatus,
    /// `utf-8` or `cp932`.
    pub encoding: String,
    pub rows: i64,
    pub accepted: i64,
    pub rejected: i64,
    /// Per reason counts as a JSON object, keys sorted.
    pub reasons_json: String,
    /// Where the input went: `processed/NAME` or `returned/NAME` (the `disposition` column).
    pub destination: String,
    /// True once the input has been moved out of the inbox.
    pub moved: bool,
    /// Where the delivery came from when not a local file: `s3://BUCKET/KEY`, its version id
    /// and ETag (JSON, from the S3 inbox), so a restart knows this object version was taken.
    pub origin: Option<String>,
    /// The register generation ([`Store::register_generation`]) the file was checked against;
    /// the commit fails when the store's is another by then. `None` in rows written before
    /// schema version 4.
    pub register_generation: Option<i64>,
    /// Which agent's local inbox held the file (its data directory's holder id): with one
    /// database under several agents, only the holder finishes or recovers the file's move.
    /// `None` in rows written before schema version 4.
    pub holder: Option<String>,
}

/// Checks that the register generation a file was checked against is the store's `now`.
pub(crate) fn same_register(e: &LedgerEntry, now: i64) -> Result<()> {
    match e.register_generation {
        Some(checked) if checked != now => Err(StoreError::RegisterChanged { checked, now }),
        _ => Ok(()),
    }
}

/// The schema version this build writes; an older database is migrated at open, a newer one
/// is refused (an older agent must not write a schema it does not know).
/// Version 3 added `resident_history` (and the delta sequence in the metadata); version 4 the
/// ledger's `register_generation` and `holder`.
pub const SCHEMA_VERSION: i64 = 4;

/// The stored schema version, refused when it is newer than this build's.
pub(crate) fn check_schema_version(stored: &str) -> Result<i64> {
    let v: i64 = stored
        .parse()
        .map_err(|_| StoreError::Migrate(format!("schema_version {stored:?} is not a number")))?;
    if v > SCHEMA_VERSION {
        return Err(StoreError::Migrate(format!(
            "the database has schema version {v}, newer than this agent's {SCHEMA_VERSION}; run the newer agent"
        )));
    }
    Ok(v)
}

/// One line of a monthly fee summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeLine {
    pub claim_month: String,
    pub institution: String,
    pub vaccine: String,
    pub count: i64,
    pub total_fee: i64,
}

/// The operations kenko needs from a record store.
pub trait Store: Send {
    /// `sqlite` or `postgres`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Records per [`IntakeTx::insert_batch`] call that suit this store: a network round trip
    /// per batch wants larger batches than an in-process library.
    fn batch_rows(&self) -> usize {
        2048
    }

    /// Replaces the whole register in one transaction; returns the number of residents.
    /// The iterator may fail part-way: then nothing changes. The history of residents still
    /// present is kept; that of residents no longer in the extract is deleted in the same
    /// transaction. The delta sequence ([`Store::register_delta_seq`]) is not changed.
    fn replace_residents(
        &mut self,
        residents: &mut dyn Iterator<Item = std::result::Result<StoredResident, String>>,
    ) -> std::result::Result<usize, ReplaceError>;

    /// Every resident (without the My Number ciphertext), for building the in-memory
    /// register index. Rows are lent, not copied: the register is read at every start.
    fn for_each_resident(&mut self, f: &mut dyn FnMut(ResidentRow<'_>)) -> Result<()>;

    /// A number that changes whenever the register is replaced or a delta is applied (to
    /// know when to reload it).
    fn register_generation(&mut self) -> Result<i64>;

    /// One resident with every column (the My Number ciphertext included); `None` for a
    /// 宛名番号 the register does not hold.
    fn resident(&mut self, resident_no: i64) -> Result<Option<StoredResident>>;

    /// The sequence number of the last delta applied (metadata `register_delta_seq`), `None`
    /// before the first.
    fn register_delta_seq(&mut self) -> Result<Option<i64>>;

    /// Applies a delta in one transaction: when the stored sequence is still `expected`
    /// (read inside the transaction, appliers serialised), upserts each change's resident
    /// (every column), records each `ended` version in the history (an existing version
    /// with the same 宛名番号 and `until` is kept: the earliest one recorded stands), stores
    /// `seq` and bumps the register generation. Otherwise [`DeltaApplyError::Raced`] and
    /// nothing changes. An empty `changes` still records `seq`. A 宛名番号 changed twice in
    /// one delta ends with its last change.
    fn apply_register_delta(
        &mut self,
        expected: Option<i64>,
        seq: i64,
        changes: &[ResidentChange],
    ) -> std::result::Result<(), DeltaApplyError>;

    /// Every history row, ordered by 宛名番号 then `until`. Rows are lent, not copied.
    fn for_each_history(&mut self, f: &mut dyn FnMut(HistoryRow<'_>)) -> Result<()>;

    /// Deletes, in one transaction, the vaccination records whose 接種日 is before `before`
    /// (`YYYY-MM-DD`), once per retention `job`: what was deleted is recorded in the same
    /// transaction (meta `retention:JOB`), and a call for a job already done returns that
    /// record without deleting anything (a resumed job certifies what its first run deleted).
    fn delete_records_before(&mut self, before: &str, job: &str) -> Result<RecordsDeleted>;

    /// What [`Store::delete_records_before`] would delete now (a dry run).
    fn count_records_before(&mut self, before: &str) -> Result<RecordsDeleted>;

    fn ledger_get(&mut self, sha256: &str) -> Result<Option<LedgerEntry>>;

    /// Ledger entries whose input has not been moved out of the inbox yet (crash recovery).
    fn ledger_unmoved(&mut self) -> Result<Vec<LedgerEntry>>;

    fn ledger_mark_moved(&mut self, sha256: &str) -> Result<()>;

    /// Every ledger entry, oldest first.
    fn ledger_all(&mut self) -> Result<Vec<LedgerEntry>>;

    /// Forgets a `rejected` ledger entry (nothing of the file was loaded), so the same bytes
    /// can be taken in again after the cause was fixed (a fresh register, say). Returns
    /// whether an entry was removed; a `loaded` entry is never removed.
    fn ledger_forget_rejected(&mut self, sha256: &str) -> Result<bool>;

    /// Records a file that was rejected as a whole (nothing loaded), in its own transaction.
    /// When another agent recorded the same bytes first, its entry stands and this is a no-op
    /// (two agents on one inbox reject the same file the same way).
    fn ledger_insert_rejected(&mut self, entry: &LedgerEntry) -> Result<()>;

    /// Starts an intake transaction for a file (its hash is known only once it has been read).
    fn begin_intake<'s>(&'s mut self, file_name: &str) -> Result<Box<dyn IntakeTx + 's>>;

    /// Claim months whose fee summary must be rebuilt.
    fn dirty_months(&mut self) -> Result<Vec<String>>;

    fn clear_dirty_month(&mut self, month: &str) -> Result<()>;

    /// The fee summary of a claim month, sorted by institution then vaccine (kept as running
    /// totals, updated in each intake's transaction).
    fn fee_summary(&mut self, month: &str) -> Result<Vec<FeeLine>>;

    /// Rewrites each resident's stored birth date for which `f` returns a new form, in one
    /// transaction; returns how many changed (the agent turns dates an earlier version kept
    /// in clear into tokens).
    fn rewrite_births(&mut self, f: &mut dyn FnMut(&str) -> Option<String>) -> Result<usize>;

    /// Every claim month with fee totals, sorted (to rebuild a data directory's missing fee
    /// summaries when several agents share the database).
    fn fee_months(&mut self) -> Result<Vec<String>>;

    /// Every record as a canonical text line (no ids, no times, no key-dependent bytes),
    /// sorted: for comparing stores in tests. The My Number appears only as the lengths of
    /// its token and ciphertext.
    fn record_lines(&mut self) -> Result<Vec<String>>;

    /// Number of stored records.
    fn record_count(&mut self) -> Result<i64>;

    /// Up to `limit` stored My Number ciphertexts with their 宛名番号 (records first, then
    /// the register): the locations a cryptographic erase reads before and after.
    fn sample_ciphertexts(&mut self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>>;

    /// A metadata value (`kenko_meta`): the data key's id and, under KMS, its wrapped form.
    fn meta(&mut self, key: &str) -> Result<Option<String>>;

    /// Stores a metadata value unless one is there, and returns the one that is: of two
    /// agents racing to record a key, both end with the winner's.
    fn meta_insert(&mut self, key: &str, value: &str) -> Result<String>;

    /// What the intakes finished at or after `since` (UTC) took in: the HealthStack's
    /// status shows this for the claim month.
    fn ledger_totals_since(&mut self, since: chrono::DateTime<chrono::Utc>)
        -> Result<LedgerTotals>;

    /// Whether the connection to the store is encrypted (`None`: an embedded store, no
    /// connection).
    fn connection_encrypted(&mut self) -> Result<Option<bool>> {
        Ok(None)
    }

    /// Whether anything made under a data key is stored (records, a register or its
    /// history): a new key may be made only for a store that holds nothing.
    fn holds_data(&mut self) -> Result<bool>;
}

/// What one retention job deleted from the records (counts and the range of 接種日, never a
/// value).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordsDeleted {
    pub count: u64,
    /// The earliest and latest 接種日 (`YYYY-MM-DD`) among the deleted records.
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// Why [`Store::replace_residents`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Input(String),
}

/// One file's intake transaction. Dropping it without `commit` rolls everything back.
pub trait IntakeTx {
    /// Inserts the records that are not duplicates, in order, and says what became of each.
    fn insert_batch(&mut self, records: &[StoredRecord]) -> Result<Vec<InsertOutcome>>;

    /// The ledger entry for these bytes, if an earlier intake took them in.
    fn known(&mut self, sha256: &str) -> Result<Option<LedgerEntry>>;

    /// Completes the ledger row, adds the file's fees to the monthly totals, marks those
    /// months' fee reports dirty, and commits.
    fn commit(self: Box<Self>, entry: &LedgerEntry, fees: &[FeeLine]) -> Result<()>;
}

/// The claim months of some fee lines, sorted and unique.
pub fn months_of(fees: &[FeeLine]) -> Vec<String> {
    let mut m: Vec<String> = fees.iter().map(|f| f.claim_month.clone()).collect();
    m.sort();
    m.dedup();
    m
}

/// Opens the store a database URL names and creates or upgrades its schema.
/// `sqlite://PATH` (or a bare path ending in `.db`/`.sqlite`) or `postgres://...`.
pub fn open(url: &str) -> Result<Box<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Box::new(SqliteStore::open(std::path::Path::new(path))?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::connect(url)?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Opens the store for reading only, as [`open`] does but creating, changing and migrating
/// nothing: a command that only reads (the ledger) works on a read-only data directory or
/// with a read-only database role.
pub fn open_read_only(url: &str) -> Result<Box<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Box::new(SqliteStore::open_read_only(
            std::path::Path::new(path),
        )?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::connect_read_only(url)?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// A read-only opening needs the schema this build reads: an older one must be migrated by a
/// writing start first.
pub(crate) fn require_current(stored: &str, target: &str) -> Result<()> {
    let v = check_schema_version(stored)?;
    if v < SCHEMA_VERSION {
        return Err(StoreError::Open {
            target: target.to_string(),
            message: format!(
                "the database has schema version {v}, older than this agent's {SCHEMA_VERSION}; start the agent once with write access to upgrade it"
            ),
        });
    }
    Ok(())
}

/// A URL without its password, for errors and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Parses a stored `YYYY-MM-DD` (by hand: it runs for every resident at every start).
pub fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

/// A stored token as the fixed-size array the checks compare.
pub fn token_from(bytes: &[u8]) -> Token {
    let mut t = [0u8; 16];
    let n = bytes.len().min(16);
    t[..n].copy_from_slice(&bytes[..n]);
    t
}

pub(crate) fn record_line(
    r: &StoredRecord,
    file_sha: &str,
    mynumber_ct_len: usize,
    mynumber_token_len: usize,
) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{:?}|{}|{}|{}|{}|{}",
        file_sha,
        r.row_no,
        r.resident_no,
        mynumber_token_len,
        mynumber_ct_len,
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
        r.dose_centi_ml,
        r.fee,
        r.remarks[0],
        r.remarks[1],
        r.remarks[2],
        ""
    )
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(
            parse_iso_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            "2023-02-29",
            "2024-2-29",
            "2024/02/29",
            "20240229xx",
            "abcd-ef-gh",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn redact_url_hides_the_password() {
        assert_eq!(
            redact_url("postgres://kenko:s3cret@db:5432/kenko"),
            "postgres://kenko:***@db:5432/kenko"
        );
        assert_eq!(
            redact_url("postgres://root@127.0.0.1/test"),
            "postgres://root@127.0.0.1/test"
        );
    }
}
