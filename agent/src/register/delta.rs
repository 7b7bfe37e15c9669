//! Register deltas (異動データ) applied to the store: the resident-record system's changes, as
//! they come, on top of the last full extract. A delta file is read whole (tokenised as it is
//! read: no name, address or My Number is kept in clear), checked, and applied in one
//! transaction; a broken file changes nothing.
//!
//! Order: every row has a 連番 (sequence number), strictly increasing in a file. The store
//! records the last one applied; rows at or below it are skipped (the same delta twice changes
//! nothing), and a file whose first new row is not the next number is refused, naming the
//! missing range (a lost delta is never silently passed over). The first delta after a store
//! was created may start anywhere. A full extract (`residents import`) does not reset it.
//!
//! History: a change of address (転居), name (氏名変更) or My Number (個人番号変更, 付番), and a
//! 転入 of a former resident, keep the facts it ends as a version valid before 異動日, so an
//! intake row is checked against the register as it was on its 接種日. A 訂正 fixes a recording
//! error: the facts were always so, and no version is kept. A change dated before the
//! resident's last recorded change is refused (it would rewrite a version already in use).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use kenko_intake::register_delta::{self, ChangeKind, DeltaRow, COLUMNS};
use kenko_intake::register_extract::FieldProblem;
use kenko_intake::{normalize, Domain, Token, Tokenizer};
use kenko_store::{DeltaApplyError, ResidentChange, Store, StoredHistory, StoredResident};
use zeroize::Zeroizing;

use super::RegisterError;
use crate::crypto::DataKey;

/// What applying a delta file did (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeltaSummary {
    /// Data rows in the file.
    pub rows: u64,
    /// Rows whose 連番 the store had already applied (skipped).
    pub already_applied: u64,
    /// Rows applied now, by 異動区分.
    pub applied: BTreeMap<&'static str, u64>,
    /// Residents changed.
    pub residents: usize,
    /// Earlier versions of facts kept as history.
    pub versions_kept: usize,
    /// The last 連番 the register has applied after this file.
    pub seq: Option<i64>,
}

/// A delta row as the store keeps its facts: tokens and the sealed My Number, never values.
struct Change {
    seq: u64,
    row: u64,
    kind: ChangeKind,
    on: NaiveDate,
    resident_no: i64,
    mynumber: Option<(Token, Vec<u8>)>,
    name: Option<Token>,
    sex: Option<i16>,
    birth: Option<String>,
    address: Option<Token>,
}

fn row_error(file: &Path, row: u64, field: &'static str, expected: &'static str) -> RegisterError {
    RegisterError::Row {
        file: file.to_path_buf(),
        row,
        field,
        expected,
    }
}

/// Applies the delta `file` to the register in `store` (see the module's rules).
pub fn apply(
    store: &mut dyn Store,
    key: &DataKey,
    file: &Path,
) -> Result<DeltaSummary, RegisterError> {
    let changes = read(key, file)?;
    let stored = store.register_delta_seq()?;
    let mut summary = DeltaSummary {
        rows: changes.len() as u64,
        seq: stored,
        ..DeltaSummary::default()
    };
    let fresh: Vec<&Change> = changes
        .iter()
        .filter(|c| stored.is_none_or(|s| c.seq as i64 > s))
        .collect();
    summary.already_applied = summary.rows - fresh.len() as u64;
    let Some(first) = fresh.first() else {
        return Ok(summary);
    };
    if let Some(s) = stored {
        if first.seq as i64 != s + 1 {
            return Err(RegisterError::DeltaGap {
                file: file.to_path_buf(),
                applied: s,
                first: first.seq,
            });
        }
    }
    let last_seq = fresh.last().map(|c| c.seq as i64).unwrap_or_default();

    // The residents this file changes, as stored, and the day of each one's last version.
    let numbers: BTreeSet<i64> = fresh.iter().map(|c| c.resident_no).collect();
    let mut last_change: BTreeMap<i64, String> = BTreeMap::new();
    store.for_each_history(&mut |h| {
        if numbers.contains(&h.resident_no) {
            last_change.insert(h.resident_no, h.until.to_string());
        }
    })?;
    let mut current: BTreeMap<i64, Option<StoredResident>> = BTreeMap::new();
    for &no in &numbers {
        current.insert(no, store.resident(no)?);
    }

    let mut out: Vec<ResidentChange> = Vec::with_capacity(fresh.len());
    for c in fresh {
        let on = c.on.format("%Y-%m-%d").to_string();
        let slot = current.get_mut(&c.resident_no).expect("looked up above");
        let before = slot.clone();
        if c.kind.keeps_history() {
            if let (Some(_), Some(last)) = (&before, last_change.get(&c.resident_no)) {
                // ISO dates compare as strings.
                if on < *last {
                    return Err(row_error(
                        file,
                        c.row,
                        "異動日",
                        "a day not before the resident's last recorded change (a late change is sent as 訂正)",
                    ));
                }
            }
        }
        let next = match (c.kind, before.clone()) {
            (ChangeKind::MoveIn, prior) => {
                if prior.as_ref().is_some_and(|p| p.loss_kind.is_none()) {
                    return Err(row_error(
                        file,
                        c.row,
                        "異動区分",
                        "転入 only for a new resident or one who moved out (a current resident's change is 転居, 氏名変更 or 訂正)",
                    ));
                }
                let (mynumber_token, mynumber_ct) = match (&c.mynumber, &prior) {
                    (Some((t, ct)), _) => (Some(*t), Some(ct.clone())),
                    (None, Some(p)) => (p.mynumber_token, p.mynumber_ct.clone()),
                    (None, None) => (None, None),
                };
                StoredResident {
                    resident_no: c.resident_no,
                    mynumber_token,
                    mynumber_ct,
                    name_token: c.name.expect("a 転入 carries a name"),
                    sex: c.sex.expect("a 転入 carries a sex"),
                    birth: c.birth.clone().expect("a 転入 carries a birth date"),
                    address_token: c.address.expect("a 転入 carries an address"),
                    loss_kind: None,
                    loss_on: None,
                }
            }
            (_, None) => {
                return Err(row_error(
                    file,
                    c.row,
                    "宛名番号",
                    "a resident of the register (a new resident comes with 転入)",
                ))
            }
            (kind, Some(mut r)) => {
                match kind {
                    ChangeKind::MoveOut | ChangeKind::Death => {
                        r.loss_kind = Some(if kind == ChangeKind::Death { 1 } else { 2 });
                        r.loss_on = Some(on.clone());
                    }
                    _ => {
                        if let Some((t, ct)) = &c.mynumber {
                            r.mynumber_token = Some(*t);
                            r.mynumber_ct = Some(ct.clone());
                        }
                        if let Some(t) = c.name {
                            r.name_token = t;
                        }
                        if let Some(t) = c.address {
                            r.address_token = t;
                        }
                        if let Some(s) = c.sex {
                            r.sex = s;
                        }
                        if let Some(b) = &c.birth {
                            r.birth = b.clone();
                        }
                    }
                }
                r
            }
        };
        let ended = match (&before, c.kind.keeps_history()) {
            (Some(b), true) => {
                last_change.insert(c.resident_no, on.clone());
                Some(StoredHistory {
                    resident_no: c.resident_no,
                    until: on,
                    mynumber_token: b.mynumber_token,
                    name_token: b.name_token,
                    address_token: b.address_token,
                })
            }
            _ => None,
        };
        summary.versions_kept += usize::from(ended.is_some());
        *summary.applied.entry(c.kind.label()).or_default() += 1;
        *slot = Some(next.clone());
        out.push(ResidentChange {
            resident: next,
            ended,
        });
    }
    summary.residents = numbers.len();
    match store.apply_register_delta(stored, last_seq, &out) {
        Ok(()) => {}
        Err(DeltaApplyError::Raced { .. }) => {
            return Err(RegisterError::DeltaRaced {
                file: file.to_path_buf(),
            })
        }
        Err(DeltaApplyError::Store(e)) => return Err(e.into()),
    }
    summary.seq = Some(last_seq);
    Ok(summary)
}

/// Reads and checks the whole file, tokenising each row as it is read.
fn read(key: &DataKey, file: &Path) -> Result<Vec<Change>, RegisterError> {
    let read_err = super::read_error(file);
    let mut reader =
        super::open_checked(file, &COLUMNS, |cells| register_delta::check_header(cells))?;
    let mut out: Vec<Change> = Vec::new();
    while reader.advance().map_err(&read_err)? {
        let row = reader.row();
        let fields = reader.fields();
        let d = register_delta::parse_row(&fields)
            .map_err(|FieldProblem { field, expected }| row_error(file, row, field, expected))?;
        if out.last().is_some_and(|p| d.seq <= p.seq) {
            return Err(row_error(
                file,
                row,
                "連番",
                "a number greater than the row before's",
            ));
        }
        out.push(tokenise(key, &d, row));
    }
    Ok(out)
}

fn tokenise(key: &DataKey, d: &DeltaRow<'_>, row: u64) -> Change {
    // At most 15 digits, so it fits.
    let resident_no = d.resident_no as i64;
    let mut scratch = Zeroizing::new(String::with_capacity(128));
    let mut compact = |domain: Domain, text: &str| {
        scratch.clear();
        normalize::compact_into(text, &mut scratch);
        key.token(domain, scratch.as_bytes())
    };
    Change {
        seq: d.seq,
        row,
        kind: d.kind,
        on: d.on,
        resident_no,
        mynumber: d.mynumber.as_ref().map(|n| {
            let ascii = Zeroizing::new(n.ascii());
            (
                key.token(Domain::MyNumber, &ascii[..]),
                key.seal(resident_no, &ascii[..]),
            )
        }),
        name: d.name.map(|n| compact(Domain::Name, n)),
        sex: d.sex.map(|s| i16::from(s.code())),
        birth: d.birth.map(|b| super::stored_birth(key, b)),
        address: d.address.map(|a| compact(Domain::Address, a)),
    }
}
