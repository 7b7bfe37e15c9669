//! The resident register extract's contract (住民記録の抽出), beside the intake file's: its
//! columns, and what each field of a row must be. The agent's import (which tokenises a row
//! for the store) and the sample generator's reader (which reads back the extracts it wrote)
//! both parse rows here, so the two cannot accept different files.
//!
//! The header is exactly [`COLUMNS`] in that order (compared after normalisation). 異動事由 is
//! empty for a current resident, [`LOSS_DECEASED`] or [`LOSS_MOVED_OUT`], and 異動日 the date of
//! that event. Problems name the field and what was expected, never the value.

use chrono::NaiveDate;

use crate::{date, normalize, Loss, LossKind, MyNumber, Sex};

/// The extract's columns, in order.
pub const COLUMNS: [&str; 8] = [
    "宛名番号",
    "個人番号",
    "氏名",
    "性別",
    "生年月日",
    "住所",
    "異動事由",
    "異動日",
];

/// The header line as written (UTF-8).
pub const HEADER: &str = "宛名番号,個人番号,氏名,性別,生年月日,住所,異動事由,異動日";

/// 異動事由 of a resident who died.
pub const LOSS_DECEASED: &str = "死亡";
/// 異動事由 of a resident who moved out of the city.
pub const LOSS_MOVED_OUT: &str = "転出";

/// Whether a header row is the extract's: `Err` says what was found, by position only when a
/// cell is not a column name (a headerless file's first row is personal data).
pub fn check_header<S: AsRef<str>>(cells: &[S]) -> Result<(), String> {
    check_columns(&COLUMNS, cells)
}

/// Whether `cells` are exactly `columns` in order (after normalisation); the register's files
/// (the extract, the delta) share it.
pub(crate) fn check_columns<S: AsRef<str>>(columns: &[&str], cells: &[S]) -> Result<(), String> {
    let mut normal = String::new();
    for (i, cell) in cells.iter().enumerate() {
        normal.clear();
        normalize::compact_into(cell.as_ref(), &mut normal);
        match columns.get(i) {
            Some(c) if *c == normal => {}
            Some(c) => {
                return Err(match columns.iter().position(|k| *k == normal) {
                    Some(_) => format!("column {} is {normal}, expected {c}", i + 1),
                    None => format!("column {} is not {c} (nor any column of the file)", i + 1),
                })
            }
            None => {
                return Err(format!(
                    "{} columns, expected {}",
                    cells.len(),
                    columns.len()
                ))
            }
        }
    }
    if cells.len() < columns.len() {
        return Err(format!(
            "{} columns, expected {} (missing {})",
            cells.len(),
            columns.len(),
            columns[cells.len()]
        ));
    }
    Ok(())
}

/// One row of the extract, checked. Name and address are the fields as written (callers
/// normalise them as they need: tokens for the store, text for a sample delivery).
#[derive(Debug)]
pub struct ExtractRow<'a> {
    pub resident_no: u64,
    pub mynumber: Option<MyNumber>,
    pub name: &'a str,
    pub sex: Sex,
    pub birth: NaiveDate,
    pub address: &'a str,
    pub loss: Option<Loss>,
}

/// A field that is not what the contract says: the column and what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub expected: &'static str,
}

const fn problem(field: &'static str, expected: &'static str) -> FieldProblem {
    FieldProblem { field, expected }
}

/// Checks one data row (its fields in header order).
pub fn parse_row<'a>(f: &[&'a str]) -> Result<ExtractRow<'a>, FieldProblem> {
    if f.len() != COLUMNS.len() {
        return Err(problem("(row)", "8 fields, as many as the header"));
    }
    let no = normalize::nfkc_trim(f[0]);
    let resident_no: u64 =
        (!no.is_empty() && no.len() <= 15 && no.bytes().all(|b| b.is_ascii_digit()))
            .then(|| no.parse().ok())
            .flatten()
            .ok_or(problem("宛名番号", "1 to 15 digits"))?;

    let mn = normalize::nfkc_trim(f[1]);
    let mynumber = if mn.is_empty() {
        None
    } else {
        Some(
            MyNumber::parse(&mn)
                .map_err(|_| problem("個人番号", "12 digits with a valid check digit"))?,
        )
    };

    let mut scratch = String::new();
    normalize::compact_into(f[2], &mut scratch);
    if scratch.is_empty() {
        return Err(problem("氏名", "a name"));
    }
    let sex = Sex::parse(&normalize::nfkc_trim(f[3])).ok_or(problem("性別", "1 (男) or 2 (女)"))?;
    let birth = date::parse_date(&normalize::nfkc_trim(f[4])).map_err(|_| {
        problem(
            "生年月日",
            "a date (YYYYMMDD, YYYY-MM-DD, YYYY/MM/DD or an era date)",
        )
    })?;
    scratch.clear();
    normalize::compact_into(f[5], &mut scratch);
    if scratch.is_empty() {
        return Err(problem("住所", "an address"));
    }
    // The scratch held a name and an address.
    zeroize::Zeroize::zeroize(&mut scratch);

    let kind = match normalize::nfkc_trim(f[6]).as_ref() {
        "" => None,
        LOSS_DECEASED => Some(LossKind::Deceased),
        LOSS_MOVED_OUT => Some(LossKind::MovedOut),
        _ => return Err(problem("異動事由", "empty, 死亡 or 転出")),
    };
    let loss = match (kind, normalize::nfkc_trim(f[7]).as_ref()) {
        (None, "") => None,
        (None, _) => return Err(problem("異動日", "empty when 異動事由 is empty")),
        (Some(kind), s) => Some(Loss {
            kind,
            on: date::parse_date(s)
                .map_err(|_| problem("異動日", "a date when 異動事由 is 死亡 or 転出"))?,
        }),
    };
    Ok(ExtractRow {
        resident_no,
        mynumber,
        name: f[2],
        sex,
        birth,
        address: f[5],
        loss,
    })
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    const ROW: [&str; 8] = [
        "100000001",
        "123456789018",
        "佐藤\u{3000}花",
        "2",
        "19500101",
        "埼玉県越谷市南越谷1丁目2番3号",
        "",
        "",
    ];

    #[test]
    fn the_header_is_the_columns_in_order_and_the_constant_agrees() {
        assert_eq!(HEADER, COLUMNS.join(","));
        assert!(check_header(&COLUMNS).is_ok());
        let mut swapped = COLUMNS;
        swapped.swap(2, 3);
        assert!(check_header(&swapped).unwrap_err().contains("column 3"));
        // A data row as header: its values are not echoed.
        let e = check_header(&ROW).unwrap_err();
        assert!(!e.contains("100000001"), "{e}");
        assert!(check_header(&COLUMNS[..7])
            .unwrap_err()
            .contains("missing 異動日"));
    }

    #[test]
    fn a_row_is_checked_field_by_field() {
        let r = parse_row(&ROW).unwrap();
        assert_eq!(r.resident_no, 100_000_001);
        assert_eq!(r.name, "佐藤\u{3000}花");
        assert!(r.loss.is_none());
        let with = |i: usize, v: &'static str| {
            let mut row = ROW;
            row[i] = v;
            parse_row(&row).map(|_| ()).unwrap_err().field
        };
        assert_eq!(with(0, "12a"), "宛名番号");
        assert_eq!(with(1, "123456789017"), "個人番号");
        assert_eq!(with(2, " "), "氏名");
        assert_eq!(with(3, "3"), "性別");
        assert_eq!(with(4, "19500230"), "生年月日");
        assert_eq!(with(5, ""), "住所");
        assert_eq!(with(6, "転居"), "異動事由");
        assert_eq!(with(6, "死亡"), "異動日");
        assert_eq!(with(7, "20200101"), "異動日");
        assert_eq!(parse_row(&ROW[..7]).unwrap_err().field, "(row)");
    }
}
