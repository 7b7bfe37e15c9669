//! Reason codes: one stable snake_case code per check, with a Japanese message for the
//! institution and an English one for maintainers. The code is what metrics labels, the JSON
//! summary, the return report and logs carry; never rename one (add a new one instead).
//! Messages name the field and what was expected, never the value that was in it.

use serde::Serialize;

/// Every reason a file or a row can be turned back (plus `DuplicateDelivery`, a skip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // file level
    UndecodableBytes,
    EmptyFile,
    MissingColumn,
    UnknownColumn,
    DuplicateColumn,
    NoDataRows,
    DuplicateDelivery,
    NoHeaderRow,
    // row level
    WrongFieldCount,
    RowTooLong,
    MissingField,
    MalformedField,
    ImpossibleDate,
    VaccinatedInFuture,
    VaccinatedAfterClaimMonth,
    BornAfterVaccination,
    AgeMismatch,
    MynumberCheckDigit,
    ResidentNotFound,
    ResidentDeceased,
    ResidentMovedOut,
    MynumberMismatch,
    NameMismatch,
    SexMismatch,
    BirthDateMismatch,
    AddressMismatch,
    UnknownVaccine,
    DoseNotAllowed,
    PrescreenWithLotOrDose,
    FeeMismatch,
    DuplicateInFile,
    DuplicateOfLoaded,
}

impl Reason {
    /// All reasons, in declaration order.
    pub const ALL: &'static [Reason] = &[
        Reason::UndecodableBytes,
        Reason::EmptyFile,
        Reason::MissingColumn,
        Reason::UnknownColumn,
        Reason::DuplicateColumn,
        Reason::NoDataRows,
        Reason::DuplicateDelivery,
        Reason::NoHeaderRow,
        Reason::WrongFieldCount,
        Reason::RowTooLong,
        Reason::MissingField,
        Reason::MalformedField,
        Reason::ImpossibleDate,
        Reason::VaccinatedInFuture,
        Reason::VaccinatedAfterClaimMonth,
        Reason::BornAfterVaccination,
        Reason::AgeMismatch,
        Reason::MynumberCheckDigit,
        Reason::ResidentNotFound,
        Reason::ResidentDeceased,
        Reason::ResidentMovedOut,
        Reason::MynumberMismatch,
        Reason::NameMismatch,
        Reason::SexMismatch,
        Reason::BirthDateMismatch,
        Reason::AddressMismatch,
        Reason::UnknownVaccine,
        Reason::DoseNotAllowed,
        Reason::PrescreenWithLotOrDose,
        Reason::FeeMismatch,
        Reason::DuplicateInFile,
        Reason::DuplicateOfLoaded,
    ];

    /// The stable code, e.g. `"age_mismatch"`.
    pub fn code(self) -> &'static str {
        // Spelled out rather than derived so that renaming a variant cannot change a code.
        match self {
            Reason::UndecodableBytes => "undecodable_bytes",
            Reason::EmptyFile => "empty_file",
            Reason::MissingColumn => "missing_column",
            Reason::UnknownColumn => "unknown_column",
            Reason::DuplicateColumn => "duplicate_column",
            Reason::NoDataRows => "no_data_rows",
            Reason::DuplicateDelivery => "duplicate_delivery",
            Reason::NoHeaderRow => "no_header_row",
            Reason::WrongFieldCount => "wrong_field_count",
            Reason::RowTooLong => "row_too_long",
            Reason::MissingField => "missing_field",
            Reason::MalformedField => "malformed_field",
            Reason::ImpossibleDate => "impossible_date",
            Reason::VaccinatedInFuture => "vaccinated_in_future",
            Reason::VaccinatedAfterClaimMonth => "vaccinated_after_claim_month",
            Reason::BornAfterVaccination => "born_after_vaccination",
            Reason::AgeMismatch => "age_mismatch",
            Reason::MynumberCheckDigit => "mynumber_check_digit",
            Reason::ResidentNotFound => "resident_not_found",
            Reason::ResidentDeceased => "resident_deceased",
            Reason::ResidentMovedOut => "resident_moved_out",
            Reason::MynumberMismatch => "mynumber_mismatch",
            Reason::NameMismatch => "name_mismatch",
            Reason::SexMismatch => "sex_mismatch",
            Reason::BirthDateMismatch => "birth_date_mismatch",
            Reason::AddressMismatch => "address_mismatch",
            Reason::UnknownVaccine => "unknown_vaccine",
            Reason::DoseNotAllowed => "dose_not_allowed",
            Reason::PrescreenWithLotOrDose => "prescreen_with_lot_or_dose",
            Reason::FeeMismatch => "fee_mismatch",
            Reason::DuplicateInFile => "duplicate_in_file",
            Reason::DuplicateOfLoaded => "duplicate_of_loaded",
        }
    }

    /// The reason for a code, for reading reports back.
    pub fn from_code(code: &str) -> Option<Reason> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// Japanese message for the institution (what was expected; never the value).
    pub fn ja(self) -> &'static str {
        match self {
            Reason::UndecodableBytes => {
                "ファイルの文字コードを読み取れません。UTF-8またはShift_JIS（CP932）で作成してください"
            }
            Reason::EmptyFile => "ファイルが空か、見出し行がありません",
            Reason::MissingColumn => "必須の列がありません。見出し行に所定の列名を含めてください",
            Reason::UnknownColumn => {
                "所定の列名ではない列があります。取込ファイルの様式に定める列のみとしてください"
            }
            Reason::DuplicateColumn => "同じ列が複数あります。各列は一度だけ含めてください",
            Reason::NoDataRows => "見出し行のみで、データ行がありません",
            Reason::DuplicateDelivery => {
                "同じ内容のファイルが既に取り込まれているため、処理を省略しました"
            }
            Reason::NoHeaderRow => {
                "1行目が見出し行ではなくデータ行のようです。1行目に所定の列名の見出し行を入れてください"
            }
            Reason::WrongFieldCount => "項目の数が見出し行の列数と一致しません",
            Reason::RowTooLong => {
                "行が長すぎます（1行65,536バイト・256項目まで）。改行や引用符（\"）の閉じ忘れがないか確認してください"
            }
            Reason::MissingField => "必須の項目が入力されていません",
            Reason::MalformedField => {
                "項目の形式が正しくありません。取込ファイルの様式に定める形式で入力してください"
            }
            Reason::ImpossibleDate => "存在しない日付（または年月）です",
            Reason::VaccinatedInFuture => "接種日が本日より後の日付です",
            Reason::VaccinatedAfterClaimMonth => "接種日が請求年月の末日より後の日付です",
            Reason::BornAfterVaccination => "生年月日が接種日より後の日付です",
            Reason::AgeMismatch => {
                "接種時年齢が生年月日と接種日から計算した年齢（年齢計算ニ関スル法律による）と一致しません"
            }
            Reason::MynumberCheckDigit => {
                "個人番号のチェックデジット（末尾の検査用数字）が正しくありません"
            }
            Reason::ResidentNotFound => "宛名番号が住民記録にありません",
            Reason::ResidentDeceased => "住民記録では接種日より前に死亡されています",
            Reason::ResidentMovedOut => "住民記録では接種日より前に転出されています",
            Reason::MynumberMismatch => "個人番号が住民記録と一致しません",
            Reason::NameMismatch => "氏名が住民記録と一致しません",
            Reason::SexMismatch => "性別が住民記録と一致しません",
            Reason::BirthDateMismatch => "生年月日が住民記録と一致しません",
            Reason::AddressMismatch => "住所が住民記録と一致しません",
            Reason::UnknownVaccine => "ワクチンのコードがワクチンマスタにありません",
            Reason::DoseNotAllowed => "接種量がこのワクチンに定められた量ではありません",
            Reason::PrescreenWithLotOrDose => {
                "診察区分が予診のみの場合は、LOT-NOと接種量を空欄にしてください"
            }
            Reason::FeeMismatch => {
                "委託料がワクチンと診察区分に応じた金額と一致しません（自費の場合は0としてください）"
            }
            Reason::DuplicateInFile => {
                "同じ方・接種日・ワクチン・診察区分の記録がファイル内の前の行にあります"
            }
            Reason::DuplicateOfLoaded => {
                "同じ方・接種日・ワクチン・診察区分の記録が既に取り込まれています"
            }
        }
    }

    /// English message for maintainers (what was expected; never the value).
    pub fn en(self) -> &'static str {
        match self {
            Reason::UndecodableBytes => "bytes not valid in the detected encoding (UTF-8 or CP932)",
            Reason::EmptyFile => "the file is empty or has no header row",
            Reason::MissingColumn => "a required column is absent from the header",
            Reason::UnknownColumn => "a header cell is not one of the contract's columns",
            Reason::DuplicateColumn => "the same column appears more than once in the header",
            Reason::NoDataRows => "the file has a header but no data rows",
            Reason::DuplicateDelivery => "the same bytes were already taken in; skipped",
            Reason::NoHeaderRow => {
                "the first row looks like data (digits, a date, a long name), not the header row"
            }
            Reason::WrongFieldCount => "the row has more or fewer fields than the header",
            Reason::RowTooLong => {
                "the row is longer than 65,536 bytes or 256 fields (often an unclosed quote)"
            }
            Reason::MissingField => "a required value is empty",
            Reason::MalformedField => "the value is not in the contract's format for the field",
            Reason::ImpossibleDate => "a well-formed date or month that does not exist",
            Reason::VaccinatedInFuture => "the vaccination date is after today (Asia/Tokyo)",
            Reason::VaccinatedAfterClaimMonth => {
                "the vaccination date is after the last day of the claim month"
            }
            Reason::BornAfterVaccination => "the birth date is after the vaccination date",
            Reason::AgeMismatch => {
                "the age is not the age on the vaccination date under the Act on Calculation of Age"
            }
            Reason::MynumberCheckDigit => "the My Number check digit is wrong",
            Reason::ResidentNotFound => "the resident number is not in the resident register",
            Reason::ResidentDeceased => "the register records death before the vaccination date",
            Reason::ResidentMovedOut => {
                "the register records moving out before the vaccination date"
            }
            Reason::MynumberMismatch => "the My Number is not the register's for this resident",
            Reason::NameMismatch => "the name differs from the register (after normalisation)",
            Reason::SexMismatch => "the sex differs from the register",
            Reason::BirthDateMismatch => "the birth date differs from the register",
            Reason::AddressMismatch => {
                "the address differs from the register (after normalisation)"
            }
            Reason::UnknownVaccine => "the vaccine code is not in the vaccine master",
            Reason::DoseNotAllowed => "the dose is not one of the master's doses for the vaccine",
            Reason::PrescreenWithLotOrDose => {
                "a pre-screening-only row must have an empty lot number and dose"
            }
            Reason::FeeMismatch => {
                "the fee is not the master's public fee for the vaccine and exam category, or not 0 when self-paid"
            }
            Reason::DuplicateInFile => {
                "same resident, date, vaccine and exam category earlier in the file"
            }
            Reason::DuplicateOfLoaded => {
                "same resident, date, vaccine and exam category already loaded from an earlier file"
            }
        }
    }

    /// True for reasons that reject (or skip) the whole file.
    pub fn is_file_level(self) -> bool {
        matches!(
            self,
            Reason::UndecodableBytes
                | Reason::EmptyFile
                | Reason::MissingColumn
                | Reason::UnknownColumn
                | Reason::DuplicateColumn
                | Reason::NoDataRows
                | Reason::DuplicateDelivery
                | Reason::NoHeaderRow
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant_once_in_order() {
        // The match in `code` is exhaustive; the last variant's position pins the length.
        assert_eq!(Reason::ALL.len(), Reason::DuplicateOfLoaded as usize + 1);
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} out of place");
        }
    }

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &r in Reason::ALL {
            let c = r.code();
            assert!(seen.insert(c), "duplicate code {c}");
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
            assert_eq!(Reason::from_code(c), Some(r));
            assert_eq!(r.to_string(), c);
        }
        assert_eq!(Reason::MynumberCheckDigit.code(), "mynumber_check_digit");
        assert_eq!(Reason::DuplicateOfLoaded.code(), "duplicate_of_loaded");
        assert_eq!(Reason::from_code("no_such_reason"), None);
    }

    #[test]
    fn serde_serialises_to_the_code() {
        #[derive(Serialize)]
        struct Wrap {
            r: Reason,
        }
        for &r in Reason::ALL {
            let text = toml::to_string(&Wrap { r }).unwrap();
            assert_eq!(text.trim(), format!("r = \"{}\"", r.code()));
        }
    }

    #[test]
    fn messages_are_present() {
        for &r in Reason::ALL {
            assert!(!r.ja().is_empty() && !r.en().is_empty(), "{r:?}");
        }
    }

    #[test]
    fn file_level_reasons_come_first() {
        let n = Reason::ALL.iter().filter(|r| r.is_file_level()).count();
        assert_eq!(n, 8);
        assert!(Reason::ALL[..n].iter().all(|r| r.is_file_level()));
    }
}
