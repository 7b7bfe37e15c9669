//! The resident register extract (住民記録の抽出): importing it into the store as tokens, and
//! the in-memory index the checks use.
//!
//! The extract is a CSV (UTF-8 or CP932, detected like intake files) with the header
//! `宛名番号,個人番号,氏名,性別,生年月日,住所,異動事由,異動日`, where 異動事由 is empty for a
//! current resident, `死亡` (deceased) or `転出` (moved out), and 異動日 the date of that event.
//! Names and addresses are stored only as keyed tokens of their normalised form; the My Number
//! as a token and an AES-GCM ciphertext. An import replaces the register atomically: a broken
//! extract changes nothing.

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};

use kenko_intake::{
    date, normalize, Domain, Loss, LossKind, MyNumber, Register, RegisterEntry, Sex, Tokenizer,
};
use kenko_store::{ReplaceError, Store, StoredResident};
use zeroize::Zeroizing;

use crate::crypto::DataKey;
use crate::intake::decode::{DecodeError, RecordReader};

const COLUMNS: [&str; 8] = [
    "宛名番号",
    "個人番号",
    "氏名",
    "性別",
    "生年月日",
    "住所",
    "異動事由",
    "異動日",
];

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
}

impl RegisterError {
    pub fn reason(&self) -> &'static str {
        match self {
            RegisterError::Read {
                source: DecodeError::Io(_),
                ..
            }
            | RegisterError::Open { .. } => "register_unreadable",
            RegisterError::Read { .. } => "register_undecodable",
            RegisterError::Header { .. } => "register_bad_header",
            RegisterError::Row { .. } | RegisterError::Rejected { .. } => "register_bad_row",
            RegisterError::Store(e) => e.reason(),
            RegisterError::Empty => "register_empty",
        }
    }
}

/// Imports a register extract, replacing the stored register in one transaction.
pub fn import(store: &mut dyn Store, key: &DataKey, file: &Path) -> Result<usize, RegisterError> {
    let f = std::fs::File::open(file).map_err(|source| RegisterError::Open {
        file: file.to_path_buf(),
        source,
    })?;
    let read_err = |source| RegisterError::Read {
        file: file.to_path_buf(),
        source,
    };
    let mut reader =
        RecordReader::new(std::io::BufReader::with_capacity(1 << 16, f)).map_err(read_err)?;
    let header_problem = |problem: String| RegisterError::Header {
        file: file.to_path_buf(),
        expected: COLUMNS.join(","),
        problem,
    };
    if !reader.advance().map_err(read_err)? {
        return Err(header_problem("the file is empty".into()));
    }
    let header: Vec<String> = reader
        .fields()
        .iter()
        .map(|c| {
            let mut s = String::new();
            normalize::compact_into(c, &mut s);
            s
        })
        .collect();
    if header != COLUMNS {
        return Err(header_problem(format!("found {}", header.join(","))));
    }
    // The iterator hands rows to the store as it reads them, so memory stays flat; an error
    // part-way aborts the store's transaction.
    let mut failure: Option<RegisterError> = None;
    let mut rows = std::iter::from_fn(|| {
        if failure.is_some() {
            return None;
        }
        match reader.advance() {
            Ok(false) => None,
            Ok(true) => {
                let row = reader.row();
                let fields = reader.fields();
                match parse_row(key, &fields, row) {
                    Ok(r) => Some(Ok(r)),
                    Err((field, expected)) => {
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
        Ok(n) => Ok(n),
        Err(ReplaceError::Store(e)) => Err(e.into()),
        Err(ReplaceError::Input(message)) => Err(RegisterError::Rejected {
            file: file.to_path_buf(),
            message,
        }),
    }
}

type FieldProblem = (&'static str, &'static str);

fn parse_row(key: &DataKey, f: &[&str], _row: u64) -> Result<StoredResident, FieldProblem> {
    if f.len() != COLUMNS.len() {
        return Err(("(row)", "8 fields, as many as the header"));
    }
    let resident_no = normalize::nfkc_trim(f[0]);
    let resident_no: i64 = (!resident_no.is_empty()
        && resident_no.len() <= 15
        && resident_no.bytes().all(|b| b.is_ascii_digit()))
    .then(|| resident_no.parse().ok())
    .flatten()
    .ok_or(("宛名番号", "1 to 15 digits"))?;

    let mn = normalize::nfkc_trim(f[1]);
    let (mynumber_token, mynumber_ct) = if mn.is_empty() {
        (None, None)
    } else {
        let n =
            MyNumber::parse(&mn).map_err(|_| ("個人番号", "12 digits with a valid check digit"))?;
        let ascii = Zeroizing::new(n.ascii());
        (
            Some(key.token(Domain::MyNumber, &ascii[..])),
            Some(key.seal(resident_no, &ascii[..])),
        )
    };

    let mut scratch = Zeroizing::new(String::with_capacity(128));
    normalize::compact_into(f[2], &mut scratch);
    if scratch.is_empty() {
        return Err(("氏名", "a name"));
    }
    let name_token = key.token(Domain::Name, scratch.as_bytes());

    let sex = Sex::parse(&normalize::nfkc_trim(f[3])).ok_or(("性別", "1 (男) or 2 (女)"))?;
    let birth = date::parse_date(&normalize::nfkc_trim(f[4])).map_err(|_| {
        (
            "生年月日",
            "a date (YYYYMMDD, YYYY-MM-DD, YYYY/MM/DD or an era date)",
        )
    })?;

    scratch.clear();
    normalize::compact_into(f[5], &mut scratch);
    if scratch.is_empty() {
        return Err(("住所", "an address"));
    }
    let address_token = key.token(Domain::Address, scratch.as_bytes());

    let kind = match normalize::nfkc_trim(f[6]).as_ref() {
        "" => None,
        "死亡" => Some(1i16),
        "転出" => Some(2i16),
        _ => return Err(("異動事由", "empty, 死亡 or 転出")),
    };
    let loss_on = match (kind, normalize::nfkc_trim(f[7]).as_ref()) {
        (None, "") => None,
        (None, _) => return Err(("異動日", "empty when 異動事由 is empty")),
        (Some(_), s) => Some(
            date::parse_date(s)
                .map_err(|_| ("異動日", "a date when 異動事由 is 死亡 or 転出"))?
                .format("%Y-%m-%d")
                .to_string(),
        ),
    };
    Ok(StoredResident {
        resident_no,
        mynumber_token,
        mynumber_ct,
        name_token,
        sex: i16::from(sex.code()),
        birth: birth.format("%Y-%m-%d").to_string(),
        address_token,
        loss_kind: kind,
        loss_on,
    })
}

/// The register in memory: tokens only, about 70 bytes a resident.
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
    pub fn load(store: &mut dyn Store) -> Result<RegisterIndex, RegisterError> {
        let generation = store.register_generation()?;
        let mut entries = FxHashMap::default();
        let mut bad = 0usize;
        let token = |b: &[u8]| kenko_store::token_from(b);
        store.for_each_resident(&mut |r| {
            let (Some(birth), Ok(no)) = (
                kenko_store::parse_iso_date(r.birth),
                u64::try_from(r.resident_no),
            ) else {
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
