//! The resident register extract (住民記録の抽出): importing it into the store as tokens, and
//! the in-memory index the checks use.
//!
//! The extract is a CSV (UTF-8 or CP932, detected like intake files); its columns and fields
//! are the contract in [`kenko_intake::register_extract`]. Names and addresses are stored only as keyed tokens of their normalised form; the My Number
//! as a token and an AES-GCM ciphertext. An import replaces the register atomically: a broken
//! extract changes nothing. Deltas (異動データ) between extracts are applied by [`delta`], which
//! keeps the facts each change ended, so the index holds each resident's history too.

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

use kenko_intake::register_extract::{self, FieldProblem, COLUMNS};
use kenko_intake::{
    normalize, Domain, Loss, LossKind, PastFacts, Register, RegisterEntry, Sex, Tokenizer,
};
use kenko_store::{ReplaceError, Store, StoredResident};
use zeroize::Zeroizing;

use crate::crypto::DataKey;
use crate::intake::decode::{DecodeError, RecordReader};

pub mod delta;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: DecodeError,
    },
    #[error("{file}: cannot open: {source}")]
    Open {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the header must be exactly {expected}; {problem}")]
    Header {
        file: PathBuf,
        expected: String,
        problem: String,
    },
    #[error("{file} row {row}, field {field}: expected {expected}")]
    Row {
        file: PathBuf,
        row: u64,
        field: &'static str,
        expected: &'static str,
    },
    #[error("{file}: {message}")]
    Rejected { file: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] kenko_store::StoreError),
    #[error(
        "the resident register is empty: import it first with `kenko-agent residents import FILE`"
    )]
    Empty,
    #[error("{file}: the register has applied the deltas up to 連番 {applied}, and this file's first new row is 連番 {first}: the deltas in between are missing; apply them first (nothing was changed)")]
    DeltaGap {
        file: PathBuf,
        applied: i64,
        first: u64,
    },
    #[error("{file}: another delta was applied to the register meanwhile; nothing was changed: apply this file again")]
    DeltaRaced { file: PathBuf },
    #[error("{file}: the extract would remove {removed} of the register's {before} residents (added {added}, changed {changed}), more than the {max_percent}% allowed: is it truncated or header-only? Nothing was changed; if the removal is meant, import it with --allow-shrink")]
    Shrinks {
        file: PathBuf,
        before: usize,
        added: usize,
        removed: usize,
        changed: usize,
        max_percent: u8,
    },
}

/// How much smaller a full extract may make the register before it is refused: an extract
/// cut short (at a line end, so every row is valid) or holding only its header would
/// otherwise replace the register, and the next month's rows would all be returned as
/// `resident_not_found`.
#[derive(Debug, Clone, Copy)]
pub struct ShrinkGuard {
    /// Most residents an extract may remove, in percent of the stored register.
    pub max_percent: u8,
    /// `--allow-shrink`: the operator means it (a register cleaned of old entries).
    pub allow: bool,
}

impl Default for ShrinkGuard {
    fn default() -> Self {
        ShrinkGuard {
            max_percent: DEFAULT_MAX_SHRINK_PERCENT,
            allow: false,
        }
    }
}

/// The default of `[intake] register_max_shrink_percent`.
pub const DEFAULT_MAX_SHRINK_PERCENT: u8 = 5;

/// What an import did to the register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// Residents in the register now.
    pub residents: usize,
    /// Residents in the register before.
    pub before: usize,
    /// In the extract, not in the register before.
    pub added: usize,
    /// In the register before, not in the extract.
    pub removed: usize,
    /// In both, with a fact changed (name, address, My Number, sex, birth date, loss).
    pub changed: usize,
}

/// A fingerprint of a resident's stored facts, to count changed residents without keeping
/// their tokens twice in memory (16 bytes a resident while an import runs).
#[allow(clippy::too_many_arguments, reason = "the facts, one by one")]
fn facts_fingerprint(
    mynumber: Option<&[u8]>,
    name: &[u8],
    sex: i16,
    birth: &str,
    address: &[u8],
    loss_kind: Option<i16>,
    loss_on: Option<&str>,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (mynumber, name, sex, birth, address, loss_kind, loss_on).hash(&mut h);
    h.finish()
}

impl RegisterError {
    pub fn reason(&self) -> &'static str {
        match self {
            RegisterError::Read {
                source: DecodeError::Io(_),
                ..
            }
            | RegisterError::Open { .. } => "register_unreadable",
            RegisterError::Read {
                source: DecodeError::TooLong { .. },
                ..
            } => "register_bad_row",
            RegisterError::Read { .. } => "register_undecodable",
            RegisterError::Header { .. } => "register_bad_header",
            RegisterError::Row { .. } | RegisterError::Rejected { .. } => "register_bad_row",
            RegisterError::Store(e) => e.reason(),
            RegisterError::Empty => "register_empty",
            RegisterError::DeltaGap { .. } => "register_delta_gap",
            RegisterError::DeltaRaced { .. } => "register_delta_raced",
            RegisterError::Shrinks { .. } => "register_shrinks",
        }
    }
}

/// The error of a read of `file` that failed part-way.
pub(super) fn read_error(file: &Path) -> impl Fn(DecodeError) -> RegisterError + '_ {
    move |source| RegisterError::Read {
        file: file.to_path_buf(),
        source,
    }
}

/// Opens one of the register's files (extract or delta) and checks its header row with
/// `check` against `columns`; the reader stands on the header.
pub(super) fn open_checked(
    file: &Path,
    columns: &[&str],
    check: impl FnOnce(&[&str]) -> Result<(), String>,
) -> Result<RecordReader<std::io::BufReader<std::fs::File>>, RegisterError> {
    let f = std::fs::File::open(file).map_err(|source| RegisterError::Open {
        file: file.to_path_buf(),
        source,
    })?;
    let read_err = read_error(file);
    let mut reader =
        RecordReader::new(std::io::BufReader::with_capacity(1 << 16, f)).map_err(&read_err)?;
    let header_problem = |problem: String| RegisterError::Header {
        file: file.to_path_buf(),
        expected: columns.join(","),
        problem,
    };
    if !reader.advance().map_err(&read_err)? {
        return Err(header_problem("the file is empty".into()));
    }
    check(&reader.fields()).map_err(header_problem)?;
    Ok(reader)
}

/// Imports a register extract, replacing the stored register in one transaction, unless it
/// removes more residents than `guard` allows (then nothing changes).
pub fn import(
    store: &mut dyn Store,
    key: &DataKey,
    file: &Path,
    guard: ShrinkGuard,
) -> Result<ImportSummary, RegisterError> {
    let read_err = read_error(file);
    let mut reader = open_checked(file, &COLUMNS, |cells| {
        register_extract::check_header(cells)
    })?;
    // The register as it is, by fingerprint: what the extract adds, removes and changes.
    let mut previous: FxHashMap<i64, u64> = FxHashMap::default();
    store.for_each_resident(&mut |r| {
        // The birth date's token, whichever form it was stored in (an earlier version kept
        // it in clear), so the form alone never counts as a change.
        let birth = birth_of(key, r.birth)
            .map(|t| format!("t:{}", hex::encode(t)))
            .unwrap_or_else(|| r.birth.to_string());
        previous.insert(
            r.resident_no,
            facts_fingerprint(
                r.mynumber_token,
                r.name_token,
                r.sex,
                &birth,
                r.address_token,
                r.loss_kind,
                r.loss_on,
            ),
        );
    })?;
    let mut summary = ImportSummary {
        before: previous.len(),
        ..ImportSummary::default()
    };
    // The iterator hands rows to the store as it reads them, so memory stays flat; an error
    // part-way aborts the store's transaction.
    let mut failure: Option<RegisterError> = None;
    let mut rows = std::iter::from_fn(|| {
        if failure.is_some() {
            return None;
        }
        match reader.advance() {
            Ok(false) => {
                // The end: refused here, before the store commits, when it removes too much.
                summary.removed = previous.len();
                let too_many =
                    summary.removed * 100 > summary.before * usize::from(guard.max_percent);
                if too_many && !guard.allow {
                    failure = Some(RegisterError::Shrinks {
                        file: file.to_path_buf(),
                        before: summary.before,
                        added: summary.added,
                        removed: summary.removed,
                        changed: summary.changed,
                        max_percent: guard.max_percent,
                    });
                    return Some(Err(String::new()));
                }
                None
            }
            Ok(true) => {
                let row = reader.row();
                let fields = reader.fields();
                match parse_row(key, &fields, row) {
                    Ok(r) => {
                        let now = facts_fingerprint(
                            r.mynumber_token.as_ref().map(|t| &t[..]),
                            &r.name_token[..],
                            r.sex,
                            &r.birth,
                            &r.address_token[..],
                            r.loss_kind,
                            r.loss_on.as_deref(),
                        );
                        match previous.remove(&r.resident_no) {
                            None => summary.added += 1,
                            Some(before) if before != now => summary.changed += 1,
                            Some(_) => {}
                        }
                        Some(Ok(r))
                    }
                    Err(FieldProblem { field, expected }) => {
                        failure = Some(RegisterError::Row {
                            file: file.to_path_buf(),
                            row,
                            field,
                            expected,
                        });
                        Some(Err(String::new()))
                    }
                }
            }
            Err(e) => {
                failure = Some(read_err(e));
                Some(Err(String::new()))
            }
        }
    });
    let result = store.replace_residents(&mut rows);
    if let Some(f) = failure {
        return Err(f);
    }
    match result {
        Ok(n) => Ok(ImportSummary {
            residents: n,
            ..summary
        }),
        Err(ReplaceError::Store(e)) => Err(e.into()),
        Err(ReplaceError::Input(message)) => Err(RegisterError::Rejected {
            file: file.to_path_buf(),
            message,
        }),
    }
}

/// A checked row of the extract as the store keeps it: tokens, and the My Number sealed.
fn parse_row(key: &DataKey, f: &[&str], _row: u64) -> Result<StoredResident, FieldProblem> {
    let r = register_extract::parse_row(f)?;
    // At most 15 digits, so it fits.
    let resident_no = r.resident_no as i64;
    let (mynumber_token, mynumber_ct) = match &r.mynumber {
        None => (None, None),
        Some(n) => {
            let ascii = Zeroizing::new(n.ascii());
            (
                Some(key.token(Domain::MyNumber, &ascii[..])),
                Some(key.seal(resident_no, &ascii[..])),
            )
        }
    };
    let mut scratch = Zeroizing::new(String::with_capacity(128));
    normalize::compact_into(r.name, &mut scratch);
    let name_token = key.token(Domain::Name, scratch.as_bytes());
    scratch.clear();
    normalize::compact_into(r.address, &mut scratch);
    let address_token = key.token(Domain::Address, scratch.as_bytes());
    let (loss_kind, loss_on) = match r.loss {
        None => (None, None),
        Some(Loss { kind, on }) => (
            Some(match kind {
                LossKind::Deceased => 1i16,
                LossKind::MovedOut => 2i16,
            }),
            Some(on.format("%Y-%m-%d").to_string()),
        ),
    };
    Ok(StoredResident {
        resident_no,
        mynumber_token,
        mynumber_ct,
        name_token,
        sex: i16::from(r.sex.code()),
        birth: stored_birth(key, r.birth),
        address_token,
        loss_kind,
        loss_on,
    })
}

/// How the store keeps a birth date: `t:` and its token in hex, never the date.
pub fn stored_birth(key: &dyn Tokenizer, day: chrono::NaiveDate) -> String {
    format!("t:{}", hex::encode(kenko_intake::birth_token(key, day)))
}

/// A stored birth date's token: the stored token, or for a date an earlier version kept in
/// clear, its token made now (until [`tokenize_stored_births`] rewrote it).
fn birth_of(key: &dyn Tokenizer, stored: &str) -> Option<kenko_intake::Token> {
    match stored.strip_prefix("t:") {
        Some(h) => hex::decode(h).ok()?.try_into().ok(),
        None => kenko_store::parse_iso_date(stored).map(|d| kenko_intake::birth_token(key, d)),
    }
}

/// Rewrites birth dates an earlier version stored in clear as tokens, once (the store then
/// records `births_tokenized`). Returns how many were rewritten.
pub fn tokenize_stored_births(
    store: &mut dyn Store,
    key: &dyn Tokenizer,
) -> Result<usize, RegisterError> {
    if store.meta("births_tokenized")?.is_some() {
        return Ok(0);
    }
    let n = store.rewrite_births(&mut |stored: &str| {
        if stored.starts_with("t:") {
            return None;
        }
        kenko_store::parse_iso_date(stored).map(|d| stored_birth(key, d))
    })?;
    store.meta_insert("births_tokenized", "1")?;
    Ok(n)
}

/// The register in memory: tokens only, about 90 bytes a resident (and 56 bytes for each
/// earlier version of a resident's facts).
/// Keyed with FxHash: 宛名番号 are the city's own numbers, not attacker-chosen, and the lookup
/// runs once per intake row.
#[derive(Debug, Default)]
pub struct RegisterIndex {
    entries: FxHashMap<u64, RegisterEntry>,
    generation: i64,
}

impl RegisterIndex {
    /// Loads the stored register. Fails when it is empty: checking a month's records against
    /// an empty register would return every row, which is an operator error, not data.
    pub fn load(
        store: &mut dyn Store,
        key: &dyn Tokenizer,
    ) -> Result<RegisterIndex, RegisterError> {
        let generation = store.register_generation()?;
        let mut entries = FxHashMap::default();
        let mut bad = 0usize;
        let token = |b: &[u8]| kenko_store::token_from(b);
        // The history first (few rows, oldest first per resident), then each resident takes
        // its own.
        let mut history: FxHashMap<u64, Vec<PastFacts>> = FxHashMap::default();
        store.for_each_history(&mut |h| {
            let (Some(until), Ok(no)) = (
                kenko_store::parse_iso_date(h.until),
                u64::try_from(h.resident_no),
            ) else {
                bad += 1;
                return;
            };
            history.entry(no).or_default().push(PastFacts {
                until,
                mynumber: h.mynumber_token.map(token),
                name: token(h.name_token),
                address: token(h.address_token),
            });
        })?;
        store.for_each_resident(&mut |r| {
            let (Some(birth), Ok(no)) = (birth_of(key, r.birth), u64::try_from(r.resident_no))
            else {
                bad += 1;
                return;
            };
            let loss = match (r.loss_kind, r.loss_on.and_then(kenko_store::parse_iso_date)) {
                (Some(1), Some(on)) => Some(Loss {
                    kind: LossKind::Deceased,
                    on,
                }),
                (Some(2), Some(on)) => Some(Loss {
                    kind: LossKind::MovedOut,
                    on,
                }),
                _ => None,
            };
            entries.insert(
                no,
                RegisterEntry {
                    mynumber: r.mynumber_token.map(token),
                    name: token(r.name_token),
                    sex: if r.sex == 2 { Sex::Female } else { Sex::Male },
                    birth,
                    address: token(r.address_token),
                    loss,
                    history: history
                        .remove(&no)
                        .map(Vec::into_boxed_slice)
                        .unwrap_or_default(),
                },
            );
        })?;
        if bad > 0 {
            tracing::warn!(bad, "register rows with unreadable dates were skipped");
        }
        if entries.is_empty() {
            return Err(RegisterError::Empty);
        }
        Ok(RegisterIndex {
            entries,
            generation,
        })
    }

    pub fn generation(&self) -> i64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Register for RegisterIndex {
    fn lookup(&self, resident_no: u64) -> Option<&RegisterEntry> {
        self.entries.get(&resident_no)
    }
}
