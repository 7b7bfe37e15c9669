//! The register delta's contract (異動データ), beside the full extract's: the resident-record
//! system's changes as they happen, each with its sequence number and the day it took effect.
//! The agent applies a delta file in one transaction and keeps the facts each change ended, so
//! a delivery is checked against the register as it was on each row's 接種日.
//!
//! The header is exactly [`COLUMNS`] in that order. Which fields a row carries depends on its
//! 異動区分 ([`ChangeKind::fields`]); the others must be empty, so a change is never half read.
//! Problems name the field and what was expected, never the value.

use chrono::NaiveDate;

use crate::register_extract::{check_columns, FieldProblem};
use crate::{date, normalize, MyNumber, Sex};

/// The delta's columns, in order.
pub const COLUMNS: [&str; 9] = [
    "連番",
    "異動区分",
    "異動日",
    "宛名番号",
    "個人番号",
    "氏名",
    "性別",
    "生年月日",
    "住所",
];

/// The header line as written (UTF-8).
pub const HEADER: &str = "連番,異動区分,異動日,宛名番号,個人番号,氏名,性別,生年月日,住所";

/// Whether a header row is the delta's (by position only when a cell is not a column name).
pub fn check_header<S: AsRef<str>>(cells: &[S]) -> Result<(), String> {
    check_columns(&COLUMNS, cells)
}

/// What changed (異動区分).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// 転入: a new resident (or one who came back); every fact is given.
    MoveIn,
    /// 転出: moved out of the city on 異動日.
    MoveOut,
    /// 死亡: died on 異動日.
    Death,
    /// 転居: a new address within the city from 異動日.
    Relocation,
    /// 氏名変更: a new name from 異動日 (marriage, say).
    NameChange,
    /// 個人番号変更: a new My Number from 異動日.
    MyNumberChange,
    /// 付番: a My Number for a resident who had none.
    MyNumberAssigned,
    /// 訂正: a recording error fixed; the given facts were always so (no history is kept).
    Correction,
}

/// A field a change can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    MyNumber,
    Name,
    Sex,
    Birth,
    Address,
}

impl Field {
    pub fn column(self) -> &'static str {
        match self {
            Field::MyNumber => "個人番号",
            Field::Name => "氏名",
            Field::Sex => "性別",
            Field::Birth => "生年月日",
            Field::Address => "住所",
        }
    }
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::MoveIn,
        ChangeKind::MoveOut,
        ChangeKind::Death,
        ChangeKind::Relocation,
        ChangeKind::NameChange,
        ChangeKind::MyNumberChange,
        ChangeKind::MyNumberAssigned,
        ChangeKind::Correction,
    ];

    /// 異動区分 as the resident-record system writes it.
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::MoveIn => "転入",
            ChangeKind::MoveOut => "転出",
            ChangeKind::Death => "死亡",
            ChangeKind::Relocation => "転居",
            ChangeKind::NameChange => "氏名変更",
            ChangeKind::MyNumberChange => "個人番号変更",
            ChangeKind::MyNumberAssigned => "付番",
            ChangeKind::Correction => "訂正",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.label() == s)
    }

    /// The fields the change must carry (`required`) and may carry (`allowed`); every other
    /// field must be empty. A correction carries at least one of its allowed fields.
    pub fn fields(self) -> (&'static [Field], &'static [Field]) {
        use Field::*;
        match self {
            ChangeKind::MoveIn => (
                &[Name, Sex, Birth, Address],
                &[MyNumber, Name, Sex, Birth, Address],
            ),
            ChangeKind::MoveOut | ChangeKind::Death => (&[], &[]),
            ChangeKind::Relocation => (&[Address], &[Address]),
            ChangeKind::NameChange => (&[Name], &[Name]),
            ChangeKind::MyNumberChange | ChangeKind::MyNumberAssigned => (&[MyNumber], &[MyNumber]),
            ChangeKind::Correction => (&[], &[MyNumber, Name, Sex, Birth, Address]),
        }
    }

    /// Whether the change ends a version of the facts that change over time (name, address,
    /// My Number), which is then kept as history valid before 異動日.
    pub fn keeps_history(self) -> bool {
        matches!(
            self,
            ChangeKind::MoveIn
                | ChangeKind::Relocation
                | ChangeKind::NameChange
                | ChangeKind::MyNumberChange
                | ChangeKind::MyNumberAssigned
        )
    }
}

/// One row of a delta, checked. Name and address are the fields as written (the agent
/// tokenises them); absent fields are `None`.
#[derive(Debug)]
pub struct DeltaRow<'a> {
    pub seq: u64,
    pub kind: ChangeKind,
    pub on: NaiveDate,
    pub resident_no: u64,
    pub mynumber: Option<MyNumber>,
    pub name: Option<&'a str>,
    pub sex: Option<Sex>,
    pub birth: Option<NaiveDate>,
    pub address: Option<&'a str>,
}

const fn problem(field: &'static str, expected: &'static str) -> FieldProblem {
    FieldProblem { field, expected }
}

/// Checks one data row (its fields in header order).
pub fn parse_row<'a>(f: &[&'a str]) -> Result<DeltaRow<'a>, FieldProblem> {
    if f.len() != COLUMNS.len() {
        return Err(problem("(row)", "9 fields, as many as the header"));
    }
    let digits = |s: &str, max: usize| {
        (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let seq = digits(&normalize::nfkc_trim(f[0]), 18).ok_or(problem("連番", "1 to 18 digits"))?;
    let kind = ChangeKind::parse(&normalize::nfkc_trim(f[1])).ok_or(problem(
        "異動区分",
        "転入, 転出, 死亡, 転居, 氏名変更, 個人番号変更, 付番 or 訂正",
    ))?;
    let on = date::parse_date(&normalize::nfkc_trim(f[2])).map_err(|_| {
        problem(
            "異動日",
            "a date (YYYYMMDD, YYYY-MM-DD, YYYY/MM/DD or an era date)",
        )
    })?;
    let resident_no =
        digits(&normalize::nfkc_trim(f[3]), 15).ok_or(problem("宛名番号", "1 to 15 digits"))?;

    let (required, allowed) = kind.fields();
    let mut scratch = String::new();
    let mut present = |field: Field, raw: &str| -> Result<bool, FieldProblem> {
        scratch.clear();
        normalize::compact_into(raw, &mut scratch);
        let given = !scratch.is_empty();
        zeroize::Zeroize::zeroize(&mut scratch);
        if given && !allowed.contains(&field) {
            return Err(problem(
                field.column(),
                "empty: this 異動区分 does not change it",
            ));
        }
        if !given && required.contains(&field) {
            return Err(problem(field.column(), "a value for this 異動区分"));
        }
        Ok(given)
    };
    let has_mynumber = present(Field::MyNumber, f[4])?;
    let has_name = present(Field::Name, f[5])?;
    let has_sex = present(Field::Sex, f[6])?;
    let has_birth = present(Field::Birth, f[7])?;
    let has_address = present(Field::Address, f[8])?;
    if kind == ChangeKind::Correction
        && !(has_mynumber || has_name || has_sex || has_birth || has_address)
    {
        return Err(problem("(row)", "a 訂正 with at least one corrected field"));
    }
    let mynumber = if has_mynumber {
        Some(
            MyNumber::parse(&normalize::nfkc_trim(f[4]))
                .map_err(|_| problem("個人番号", "12 digits with a valid check digit"))?,
        )
    } else {
        None
    };
    let sex = if has_sex {
        Some(Sex::parse(&normalize::nfkc_trim(f[6])).ok_or(problem("性別", "1 (男) or 2 (女)"))?)
    } else {
        None
    };
    let birth = if has_birth {
        Some(date::parse_date(&normalize::nfkc_trim(f[7])).map_err(|_| {
            problem(
                "生年月日",
                "a date (YYYYMMDD, YYYY-MM-DD, YYYY/MM/DD or an era date)",
            )
        })?)
    } else {
        None
    };
    Ok(DeltaRow {
        seq,
        kind,
        on,
        resident_no,
        mynumber,
        name: has_name.then_some(f[5]),
        sex,
        birth,
        address: has_address.then_some(f[8]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &'static str, fields: [&'static str; 5]) -> [&'static str; 9] {
        [
            "42",
            kind,
            "20241010",
            "100000001",
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            fields[4],
        ]
    }

    #[test]
    fn the_header_is_the_columns_in_order() {
        assert_eq!(HEADER, COLUMNS.join(","));
        assert!(check_header(&COLUMNS).is_ok());
        // An extract is not a delta.
        let e = check_header(&crate::register_extract::COLUMNS).unwrap_err();
        assert!(e.contains("column 1"), "{e}");
    }

    #[test]
    fn each_kind_carries_exactly_its_fields() {
        let r = parse_row(&row("転居", ["", "", "", "", "八王子市元本郷町3-24-1"])).unwrap();
        assert_eq!(
            (r.seq, r.kind, r.resident_no),
            (42, ChangeKind::Relocation, 100_000_001)
        );
        assert_eq!(r.on, NaiveDate::from_ymd_opt(2024, 10, 10).unwrap());
        assert!(r.address.is_some() && r.name.is_none());
        let field = |kind, fields| parse_row(&row(kind, fields)).unwrap_err().field;
        assert_eq!(field("転居", ["", "", "", "", ""]), "住所");
        assert_eq!(field("転居", ["", "鈴木太郎", "", "", "X"]), "氏名");
        assert_eq!(field("氏名変更", ["", "", "", "", ""]), "氏名");
        assert_eq!(field("付番", ["123456789017", "", "", "", ""]), "個人番号");
        assert_eq!(field("転出", ["", "", "1", "", ""]), "性別");
        assert_eq!(field("転入", ["", "鈴木", "1", "", "X"]), "生年月日");
        assert_eq!(field("訂正", ["", "", "", "", ""]), "(row)");
        assert_eq!(field("引越", ["", "", "", "", ""]), "異動区分");
        let mut bad = row("死亡", ["", "", "", "", ""]);
        bad[0] = "4a";
        assert_eq!(parse_row(&bad).unwrap_err().field, "連番");
        bad[0] = "1";
        bad[2] = "20241301";
        assert_eq!(parse_row(&bad).unwrap_err().field, "異動日");
        let c = parse_row(&row("訂正", ["", "", "", "19500102", ""])).unwrap();
        assert_eq!(c.birth, NaiveDate::from_ymd_opt(1950, 1, 2));
        assert!(parse_row(&row("転入", ["", "鈴木太郎", "2", "19900101", "X"])).is_ok());
    }

    #[test]
    fn every_kind_has_a_label_that_parses_back() {
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.label()), Some(k));
        }
    }
}
