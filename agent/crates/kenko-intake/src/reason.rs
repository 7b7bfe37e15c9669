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
    // row level
    WrongFieldCount,
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
    pub const ALL: &'static [Reason] = &[]; // TODO(helper): list every variant

    /// The stable code, e.g. `"age_mismatch"`.
    pub fn code(self) -> &'static str {
        todo!()
    }

    /// The reason for a code, for reading reports back.
    pub fn from_code(code: &str) -> Option<Reason> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// Japanese message for the institution (what was expected; never the value).
    pub fn ja(self) -> &'static str {
        todo!()
    }

    /// English message for maintainers (what was expected; never the value).
    pub fn en(self) -> &'static str {
        todo!()
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
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}
