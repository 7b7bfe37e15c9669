//! The row checks: every field's format, the cross-field rules, the person against the
//! resident register (My Number plus the four basic facts: name, sex, date of birth, address)
//! and the vaccine master. Duplicates are the pipeline's job (they need the store).
//!
//! The register is seen only through keyed tokens: the caller's `Tokenizer` turns a
//! normalised name, address or My Number into a token, and the `Register` holds tokens, so
//! the checker never compares or keeps plaintext register values.

use std::borrow::Cow;

use chrono::NaiveDate;

use crate::{Column, Header, MyNumber, Reason, VaccineMaster, YearMonth};

/// A keyed hash of a normalised value (truncated HMAC-SHA-256; see `kenko-agent::crypto`).
pub type Token = [u8; 16];

/// What a token is of; the tokenizer keys each domain apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    MyNumber,
    Name,
    Address,
}

/// Turns normalised values into tokens. Implemented by the agent with its data key.
pub trait Tokenizer {
    fn token(&self, domain: Domain, normalized: &[u8]) -> Token;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// `1`/`男` or `2`/`女` (NFKC-normalised input).
    pub fn parse(s: &str) -> Option<Sex> {
        match s {
            "1" | "男" => Some(Sex::Male),
            "2" | "女" => Some(Sex::Female),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Sex::Male => 1,
            Sex::Female => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    Deceased,
    MovedOut,
}

/// The register's record of a resident leaving (death or moving out) and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub kind: LossKind,
    pub on: NaiveDate,
}

/// One resident as the checker sees the register: tokens, not values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterEntry {
    pub mynumber: Option<Token>,
    pub name: Token,
    pub sex: Sex,
    pub birth: NaiveDate,
    pub address: Token,
    pub loss: Option<Loss>,
}

/// The resident register, looked up by 宛名番号.
pub trait Register {
    fn lookup(&self, resident_no: u64) -> Option<&RegisterEntry>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExamCategory {
    /// 接種: examined and vaccinated.
    Vaccination,
    /// 予診のみ: pre-screening only, no vaccine given.
    PrescreenOnly,
}

impl ExamCategory {
    /// `1`/`接種` or `2`/`予診のみ`.
    pub fn parse(s: &str) -> Option<ExamCategory> {
        match s {
            "1" | "接種" => Some(ExamCategory::Vaccination),
            "2" | "予診のみ" => Some(ExamCategory::PrescreenOnly),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            ExamCategory::Vaccination => 1,
            ExamCategory::PrescreenOnly => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payment {
    /// 公費
    Public,
    /// 自費
    SelfPaid,
}

impl Payment {
    /// `1`/`公費` or `2`/`自費`.
    pub fn parse(s: &str) -> Option<Payment> {
        match s {
            "1" | "公費" => Some(Payment::Public),
            "2" | "自費" => Some(Payment::SelfPaid),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Payment::Public => 1,
            Payment::SelfPaid => 2,
        }
    }
}

/// A row that passed every check, ready to store. String fields borrow from the row when
/// they were already normal. Names, addresses and the birth date are not kept: the register
/// is their source of truth.
#[derive(Debug)]
pub struct Record<'r> {
    pub resident_no: u64,
    pub mynumber: Option<MyNumber>,
    pub vaccinated_on: NaiveDate,
    pub institution: Cow<'r, str>,
    pub age: u32,
    pub claim_month: YearMonth,
    pub exam: ExamCategory,
    pub lot_no: Cow<'r, str>,
    pub vaccine: Cow<'r, str>,
    pub moved_in: bool,
    pub prescreen_doctor: Cow<'r, str>,
    pub vaccinating_doctor: Cow<'r, str>,
    pub payment: Payment,
    pub fee: u32,
    pub dose_centi_ml: Option<u32>,
    pub remarks: [Cow<'r, str>; 3],
}

/// One problem found in a row: the reason and the column it concerns (None for the row as a
/// whole, e.g. a wrong field count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issue {
    pub reason: Reason,
    pub column: Option<Column>,
}

/// Why a row was rejected. `resident_no` is the row's 宛名番号 when it was well-formed (the
/// return report names the row by it); it is the city's identifier, not one of the four facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowErrors {
    pub resident_no: Option<u64>,
    pub issues: Vec<Issue>,
}

/// Checks rows against the header, the master, the register and today's date.
pub struct Checker<'a> {
    header: Header,
    master: &'a VaccineMaster,
    register: &'a dyn Register,
    tokenizer: &'a dyn Tokenizer,
    today: NaiveDate,
    /// Reused, zeroized buffer for normalised personal values.
    scratch: zeroize::Zeroizing<String>,
}

impl<'a> Checker<'a> {
    pub fn new(
        header: Header,
        master: &'a VaccineMaster,
        register: &'a dyn Register,
        tokenizer: &'a dyn Tokenizer,
        today: NaiveDate,
    ) -> Checker<'a> {
        Checker {
            header,
            master,
            register,
            tokenizer,
            today,
            scratch: zeroize::Zeroizing::new(String::with_capacity(256)),
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Checks one data row (`fields` as decoded from the CSV). Returns every problem found,
    /// in column order, skipping checks whose inputs were already wrong.
    pub fn check<'r>(&mut self, fields: &[&'r str]) -> Result<Record<'r>, RowErrors> {
        let _ = (fields, &self.header, self.master, self.register, self.tokenizer, self.today, &mut self.scratch);
        todo!()
    }
}
