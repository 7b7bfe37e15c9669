//! The row checks: every field's format, the cross-field rules, the person against the
//! resident register (My Number plus the four basic facts: name, sex, date of birth, address)
//! and the vaccine master. Duplicates are the pipeline's job (they need the store).
//!
//! The register is seen only through keyed tokens: the caller's `Tokenizer` turns a
//! normalised name, address or My Number into a token, and the `Register` holds tokens, so
//! the checker never compares or keeps plaintext register values.

use std::borrow::Cow;

use chrono::NaiveDate;
use zeroize::Zeroize;

use crate::age::age_on;
use crate::date::{self, DateError};
use crate::master;
use crate::mynumber::MyNumberError;
use crate::normalize::{self, nfkc_trim};
use crate::{Column, Header, MyNumber, Reason, VaccineMaster, YearMonth};

/// A keyed hash of a normalised value (truncated HMAC-SHA-256; see `kenko-agent::crypto`).
pub type Token = [u8; 16];

/// What a token is of; the tokenizer keys each domain apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    MyNumber,
    Name,
    Address,
    BirthDate,
}

/// The token of a birth date (of its `YYYY-MM-DD` form): the register keeps no birth date in
/// clear, like the other three facts.
pub fn birth_token(tokenizer: &dyn Tokenizer, day: NaiveDate) -> Token {
    use std::fmt::Write;
    let mut iso = String::with_capacity(10);
    let _ = write!(iso, "{}", day.format("%Y-%m-%d"));
    tokenizer.token(Domain::BirthDate, iso.as_bytes())
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
    /// The birth date's token ([`birth_token`]), never the date.
    pub birth: Token,
    pub address: Token,
    pub loss: Option<Loss>,
    /// The earlier versions of the facts that change (異動: a move, a name change, a new My
    /// Number), oldest first; empty for most residents. A row is checked against the facts
    /// valid on its 接種日 ([`RegisterEntry::facts_on`]).
    pub history: Box<[PastFacts]>,
}

/// What a resident's changing facts were before a change: valid on days before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastFacts {
    pub until: NaiveDate,
    pub mynumber: Option<Token>,
    pub name: Token,
    pub address: Token,
}

/// The facts a row is compared with: those valid on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub mynumber: Option<Token>,
    pub name: Token,
    pub address: Token,
}

impl RegisterEntry {
    /// The facts valid on `day`: the oldest earlier version that had not ended by then, else
    /// the current ones (also when the day is unknown: a row with a broken date is returned
    /// for that anyway). A change on the vaccination day itself is already in force.
    pub fn facts_on(&self, day: Option<NaiveDate>) -> Facts {
        let past = day.and_then(|d| self.history.iter().find(|p| d < p.until));
        match past {
            Some(p) => Facts {
                mynumber: p.mynumber,
                name: p.name,
                address: p.address,
            },
            None => Facts {
                mynumber: self.mynumber,
                name: self.name,
                address: self.address,
            },
        }
    }
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
    /// The My Number's keyed token, computed for the register comparison (so the store need
    /// not compute it again).
    pub mynumber_token: Option<Token>,
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

    /// Checks one data row (`fields` as decoded from the CSV). Returns every problem found:
    /// the fields' formats in column order, then the cross-field rules, the master and the
    /// register, skipping checks whose inputs were already wrong.
    pub fn check<'r>(&mut self, fields: &[&'r str]) -> Result<Record<'r>, RowErrors> {
        use Column as C;

        if fields.len() != self.header.width() {
            return Err(RowErrors {
                resident_no: None,
                issues: vec![Issue {
                    reason: Reason::WrongFieldCount,
                    column: None,
                }],
            });
        }
        let header = &self.header;
        let raw = |c: Column| header.get(c, fields);
        let value = |c: Column| nfkc_trim(raw(c));
        let mut issues = Vec::new();
        let is = &mut issues;

        // 0. A control character is no field's format, and the store may not be able to hold
        // it (PostgreSQL text cannot hold NUL): the row is returned, naming the fields.
        for c in Column::ALL {
            if header.position(c).is_some() && has_control_character(raw(c)) {
                is.push(Issue::at(MALFORMED, c));
            }
        }
        if !is.is_empty() {
            let resident_no = Some(raw(C::ResidentNo))
                .filter(|s| !has_control_character(s))
                .and_then(|s| parse_resident_no(nfkc_trim(s)).ok());
            return Err(RowErrors {
                resident_no,
                issues: std::mem::take(is),
            });
        }

        // 1. Each field on its own.
        let resident_no = field(
            is,
            C::ResidentNo,
            value(C::ResidentNo),
            true,
            parse_resident_no,
        );
        let mynumber = field(is, C::MyNumber, value(C::MyNumber), false, parse_mynumber);
        // Name and address are only compared (as tokens) with the register, so they are not
        // normalised into an unzeroized copy here; `trim` agrees with NFKC-then-trim on
        // emptiness, since NFKC maps nothing but white space to white space.
        let has_name = present(is, C::Name, raw(C::Name).trim(), true);
        let sex = field(is, C::Sex, value(C::Sex), true, |s| {
            Sex::parse(&s).ok_or(MALFORMED)
        });
        let birth = field(
            is,
            C::BirthDate,
            value(C::BirthDate),
            true,
            parse_date_field,
        );
        let has_address = present(is, C::Address, raw(C::Address).trim(), true);
        let vaccinated_on = field(
            is,
            C::VaccinatedOn,
            value(C::VaccinatedOn),
            true,
            parse_date_field,
        );
        let institution = field(is, C::Institution, value(C::Institution), true, |s| {
            valid_if(s, |s| {
                s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
            })
        });
        let age = field(is, C::Age, value(C::Age), true, parse_age);
        let claim_month = field(is, C::ClaimMonth, value(C::ClaimMonth), true, |s| {
            date::parse_month(&s).map_err(date_reason)
        });
        let exam = field(is, C::ExamCategory, value(C::ExamCategory), true, |s| {
            ExamCategory::parse(&s).ok_or(MALFORMED)
        });
        let vaccination = exam == Some(ExamCategory::Vaccination);
        let prescreen = exam == Some(ExamCategory::PrescreenOnly);
        // On a 予診のみ row a lot or dose is wrong whatever its form; step 3 says so once.
        let lot_value = value(C::LotNo);
        let prescreen_lot = prescreen && !lot_value.is_empty();
        let lot_no = if prescreen {
            None
        } else {
            field(is, C::LotNo, lot_value, vaccination, |s| {
                valid_if(s, is_lot_no)
            })
        };
        let vaccine = field(is, C::Vaccine, value(C::Vaccine), true, |s| {
            match self.master.get(&s) {
                Some(v) => Ok((s, v)),
                None => Err(Reason::UnknownVaccine),
            }
        });
        let moved_in = field(is, C::MovedIn, value(C::MovedIn), true, parse_moved_in);
        let prescreen_doctor = field(
            is,
            C::PrescreenDoctor,
            value(C::PrescreenDoctor),
            true,
            |s| valid_if(s, |s| s.chars().count() <= MAX_DOCTOR_CHARS),
        );
        let vaccinating_doctor = field(
            is,
            C::VaccinatingDoctor,
            value(C::VaccinatingDoctor),
            vaccination,
            |s| valid_if(s, |s| s.chars().count() <= MAX_DOCTOR_CHARS),
        );
        let payment = field(is, C::Payment, value(C::Payment), true, |s| {
            Payment::parse(&s).ok_or(MALFORMED)
        });
        let fee = field(is, C::Fee, value(C::Fee), true, parse_fee);
        let dose_value = value(C::Dose);
        let prescreen_dose = prescreen && !dose_value.is_empty();
        let dose = if prescreen {
            None
        } else {
            field(is, C::Dose, dose_value, vaccination, |s| {
                master::parse_dose_centi_ml(&s).ok_or(MALFORMED)
            })
        };
        let remarks = [C::Remarks1, C::Remarks2, C::Remarks3].map(|c| {
            field(is, c, value(c), false, |s| {
                valid_if(s, |s| s.chars().count() <= MAX_REMARKS_CHARS)
            })
            .unwrap_or_default()
        });

        // 2. Fields against each other.
        if let Some(on) = vaccinated_on {
            if on > self.today {
                is.push(Issue::at(Reason::VaccinatedInFuture, C::VaccinatedOn));
            }
            if claim_month.is_some_and(|m| on > m.last_day()) {
                is.push(Issue::at(
                    Reason::VaccinatedAfterClaimMonth,
                    C::VaccinatedOn,
                ));
            }
            if let Some(birth) = birth {
                match age_on(birth, on) {
                    None => is.push(Issue::at(Reason::BornAfterVaccination, C::BirthDate)),
                    Some(years) if age.is_some_and(|age| age != years) => {
                        is.push(Issue::at(Reason::AgeMismatch, C::Age))
                    }
                    Some(_) => {}
                }
            }
        }

        // 3. The vaccine master.
        if prescreen_lot {
            is.push(Issue::at(Reason::PrescreenWithLotOrDose, C::LotNo));
        }
        if prescreen_dose {
            is.push(Issue::at(Reason::PrescreenWithLotOrDose, C::Dose));
        }
        let vaccine_entry = vaccine.as_ref().map(|(_, v)| *v);
        if let (true, Some(v), Some(d)) = (vaccination, vaccine_entry, dose) {
            if !v.doses_centi_ml.contains(&d) {
                is.push(Issue::at(Reason::DoseNotAllowed, C::Dose));
            }
        }
        let expected_fee = match (payment, exam, vaccine_entry) {
            (Some(Payment::SelfPaid), _, _) => Some(0),
            (Some(Payment::Public), Some(ExamCategory::Vaccination), Some(v)) => {
                Some(v.fee_vaccination)
            }
            (Some(Payment::Public), Some(ExamCategory::PrescreenOnly), Some(v)) => {
                Some(v.fee_prescreen)
            }
            _ => None,
        };
        if let (Some(want), Some(got)) = (expected_fee, fee) {
            if want != got {
                is.push(Issue::at(Reason::FeeMismatch, C::Fee));
            }
        }

        // 4. The person against the register, as tokens.
        let mut mynumber_token: Option<Token> = None;
        if let Some(no) = resident_no {
            let register: &'a dyn Register = self.register;
            match register.lookup(no) {
                None => is.push(Issue::at(Reason::ResidentNotFound, C::ResidentNo)),
                Some(entry) => {
                    // Name, address and My Number as they were on the vaccination day: a
                    // resident who moved since was vaccinated at the old address.
                    let facts = entry.facts_on(vaccinated_on);
                    // Leaving on the vaccination day itself still counts as resident that day.
                    if let (Some(loss), Some(on)) = (entry.loss, vaccinated_on) {
                        if loss.on < on {
                            let reason = match loss.kind {
                                LossKind::Deceased => Reason::ResidentDeceased,
                                LossKind::MovedOut => Reason::ResidentMovedOut,
                            };
                            is.push(Issue::at(reason, C::ResidentNo));
                        }
                    }
                    if let Some(n) = &mynumber {
                        let mut ascii = n.ascii();
                        let token = self.tokenizer.token(Domain::MyNumber, &ascii);
                        ascii.zeroize();
                        if facts.mynumber != Some(token) {
                            is.push(Issue::at(Reason::MynumberMismatch, C::MyNumber));
                        }
                        mynumber_token = Some(token);
                    }
                    if has_name
                        && compact_token(
                            self.tokenizer,
                            &mut self.scratch,
                            Domain::Name,
                            raw(C::Name),
                        ) != facts.name
                    {
                        is.push(Issue::at(Reason::NameMismatch, C::Name));
                    }
                    if sex.is_some_and(|s| s != entry.sex) {
                        is.push(Issue::at(Reason::SexMismatch, C::Sex));
                    }
                    if birth.is_some_and(|b| birth_token(self.tokenizer, b) != entry.birth) {
                        is.push(Issue::at(Reason::BirthDateMismatch, C::BirthDate));
                    }
                    if has_address
                        && compact_token(
                            self.tokenizer,
                            &mut self.scratch,
                            Domain::Address,
                            raw(C::Address),
                        ) != facts.address
                    {
                        is.push(Issue::at(Reason::AddressMismatch, C::Address));
                    }
                }
            }
        }

        if !issues.is_empty() {
            return Err(RowErrors {
                resident_no,
                issues,
            });
        }
        // With no issue every required value parsed; the `let … else` only restates that.
        let (
            Some(resident_no),
            Some(vaccinated_on),
            Some(institution),
            Some(age),
            Some(claim_month),
            Some(exam),
            Some((vaccine, _)),
            Some(moved_in),
            Some(prescreen_doctor),
            Some(payment),
            Some(fee),
        ) = (
            resident_no,
            vaccinated_on,
            institution,
            age,
            claim_month,
            exam,
            vaccine,
            moved_in,
            prescreen_doctor,
            payment,
            fee,
        )
        else {
            debug_assert!(false, "a required value is missing without an issue");
            return Err(RowErrors {
                resident_no,
                issues,
            });
        };
        Ok(Record {
            resident_no,
            mynumber,
            mynumber_token,
            vaccinated_on,
            institution,
            age,
            claim_month,
            exam,
            lot_no: lot_no.unwrap_or_default(),
            vaccine,
            moved_in,
            prescreen_doctor,
            vaccinating_doctor: vaccinating_doctor.unwrap_or_default(),
            payment,
            fee,
            dose_centi_ml: dose,
            remarks,
        })
    }
}

const MALFORMED: Reason = Reason::MalformedField;
const MAX_DOCTOR_CHARS: usize = 50;
const MAX_REMARKS_CHARS: usize = 200;
const MAX_AGE: u32 = 130;

impl Issue {
    fn at(reason: Reason, column: Column) -> Issue {
        Issue {
            reason,
            column: Some(column),
        }
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.column {
            Some(c) => write!(f, "{} ({})", self.reason, c.en()),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// Names the row by 宛名番号 and lists reason codes and columns; never a field's value.
impl std::fmt::Display for RowErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.resident_no {
            Some(no) => write!(f, "row of resident {no} rejected: ")?,
            None => f.write_str("row rejected: ")?,
        }
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RowErrors {}

/// Records `MissingField` for an empty required value; true when there is a value.
fn present(issues: &mut Vec<Issue>, column: Column, value: &str, required: bool) -> bool {
    if value.is_empty() && required {
        issues.push(Issue::at(Reason::MissingField, column));
    }
    !value.is_empty()
}

/// Parses one field, recording why it failed. `None` when the value is empty (an issue if
/// `required`) or wrong (always an issue).
fn field<'r, T>(
    issues: &mut Vec<Issue>,
    column: Column,
    value: Cow<'r, str>,
    required: bool,
    parse: impl FnOnce(Cow<'r, str>) -> Result<T, Reason>,
) -> Option<T> {
    if !present(issues, column, &value, required) {
        return None;
    }
    parse(value)
        .map_err(|reason| issues.push(Issue::at(reason, column)))
        .ok()
}

fn valid_if<'r>(
    value: Cow<'r, str>,
    ok: impl FnOnce(&str) -> bool,
) -> Result<Cow<'r, str>, Reason> {
    if ok(&value) {
        Ok(value)
    } else {
        Err(MALFORMED)
    }
}

/// A C0 control other than tab, line feed and carriage return (a quoted field may hold line
/// breaks), DEL, or a C1 control. Bytes, not chars: this runs on every field of every row, and
/// each of these is one byte in UTF-8 but the C1 controls (`C2 80`..=`C2 9F`).
pub fn has_control_character(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'))
            || c == 0x7f
            || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

fn parse_resident_no(s: Cow<'_, str>) -> Result<u64, Reason> {
    if !(1..=15).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MALFORMED);
    }
    s.parse().map_err(|_| MALFORMED)
}

/// 12 digits, possibly grouped with spaces or `-`. Every copy of the digits made here is
/// zeroized before returning.
fn parse_mynumber(s: Cow<'_, str>) -> Result<MyNumber, Reason> {
    let mut digits = [0u8; 12];
    let mut len = 0;
    let mut well_formed = true;
    for c in s.chars().filter(|&c| !c.is_whitespace() && c != '-') {
        if len == digits.len() || !c.is_ascii_digit() {
            well_formed = false;
            break;
        }
        digits[len] = c as u8;
        len += 1;
    }
    let result = if well_formed && len == digits.len() {
        match std::str::from_utf8(&digits).map(MyNumber::parse) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(MyNumberError::CheckDigit)) => Err(Reason::MynumberCheckDigit),
            _ => Err(MALFORMED),
        }
    } else {
        Err(MALFORMED)
    };
    digits.zeroize();
    if let Cow::Owned(mut copy) = s {
        copy.zeroize();
    }
    result
}

fn date_reason(e: DateError) -> Reason {
    match e {
        DateError::Malformed => Reason::MalformedField,
        DateError::Impossible => Reason::ImpossibleDate,
    }
}

fn parse_date_field(s: Cow<'_, str>) -> Result<NaiveDate, Reason> {
    date::parse_date(&s).map_err(date_reason)
}

/// Whole years, optionally followed by 歳.
fn parse_age(s: Cow<'_, str>) -> Result<u32, Reason> {
    let n = s.strip_suffix('歳').map_or(&*s, str::trim_end);
    if !(1..=3).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MALFORMED);
    }
    n.parse()
        .ok()
        .filter(|&age| age <= MAX_AGE)
        .ok_or(MALFORMED)
}

fn is_lot_no(s: &str) -> bool {
    (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn parse_moved_in(s: Cow<'_, str>) -> Result<bool, Reason> {
    match &*s {
        "0" | "いいえ" | "無" | "なし" => Ok(false),
        "1" | "はい" | "有" | "あり" => Ok(true),
        _ => Err(MALFORMED),
    }
}

/// Yen: digits, optionally grouped by thousands with `,`, optionally followed by 円.
fn parse_fee(s: Cow<'_, str>) -> Result<u32, Reason> {
    let n = s.strip_suffix('円').map_or(&*s, str::trim_end);
    let mut groups = n.split(',');
    let first = groups.next().unwrap_or("");
    let digits_only = |g: &str| g.bytes().all(|b| b.is_ascii_digit());
    let grouped = n.contains(',');
    if first.is_empty()
        || !digits_only(first)
        || (grouped && first.len() > 3)
        || !groups.all(|g| g.len() == 3 && digits_only(g))
    {
        return Err(MALFORMED);
    }
    n.replace(',', "").parse().map_err(|_| MALFORMED)
}

/// The token of a name or address after NFKC and white-space removal, built in the checker's
/// zeroized buffer, which is wiped again before returning.
fn compact_token(
    tokenizer: &dyn Tokenizer,
    scratch: &mut String,
    domain: Domain,
    raw: &str,
) -> Token {
    scratch.zeroize();
    normalize::compact_into(raw, scratch);
    let token = tokenizer.token(domain, scratch.as_bytes());
    scratch.zeroize();
    token
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests;
