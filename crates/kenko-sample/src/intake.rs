//! The synthetic monthly intake file (予防接種記録 取込ファイル, `docs/intake-format.md`):
//! valid rows for residents of a register, written the many ways institutions write them,
//! plus rows with exactly one injected error each, so the checker and the return report can
//! be exercised and benchmarked on files of any size.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Write};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use encoding_rs::{EncoderResult, SHIFT_JIS};
use kenko_intake::age::age_on;
use kenko_intake::date::format_era;
use kenko_intake::{
    Column, ExamCategory, LossKind, MyNumber, Payment, Reason, Sex, VaccineMaster, YearMonth,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::csv::push_field;
use super::names::{FAMILY_NAMES, REMARKS};
use super::residents::{random_address, random_given_name, SampleResident};

/// The intake header in canonical (`Column::ALL`) order.
pub const INTAKE_HEADER: &str = "宛名番号,個人番号,氏名,性別,生年月日,住所,接種日,接種場所,\
接種時年齢,請求年月,診察区分,LOT-NO,ワクチン,転入前接種,予診医師名,接種医師名,公費自費区分,委託料,\
接種量,備考1,備考2,備考3";

/// The bytes of a generated intake file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SampleEncoding {
    /// UTF-8 without BOM, LF line ends.
    #[default]
    Utf8,
    /// CP932 (Windows Shift_JIS), CRLF line ends: what most clinic systems export.
    Cp932,
}

impl SampleEncoding {
    /// `utf-8`/`utf8` or `cp932`/`sjis`/`shift_jis` (any case).
    pub fn parse(s: &str) -> Option<SampleEncoding> {
        match s.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(SampleEncoding::Utf8),
            "cp932" | "sjis" | "shift_jis" | "shift-jis" | "windows-31j" => {
                Some(SampleEncoding::Cp932)
            }
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SampleEncoding::Utf8 => "utf-8",
            SampleEncoding::Cp932 => "cp932",
        }
    }

    fn line_end(self) -> &'static str {
        match self {
            SampleEncoding::Utf8 => "\n",
            SampleEncoding::Cp932 => "\r\n",
        }
    }
}

/// What intake file to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeSpec {
    /// Data rows (the header is extra).
    pub records: usize,
    /// The claim month (請求年月); vaccination dates fall in it.
    pub month: YearMonth,
    pub encoding: SampleEncoding,
    /// Probability (0–1) that a row carries one injected error.
    pub error_rate: f64,
    pub seed: u64,
    /// One institution's 10-digit code, or `None` for a delivery from the doctors'
    /// association covering several institutions.
    pub institution: Option<String>,
    /// No vaccination date is after this day (the checker's "today").
    pub today: NaiveDate,
}

impl IntakeSpec {
    /// UTF-8, no errors, seed 0, several institutions.
    pub fn new(records: usize, month: YearMonth, today: NaiveDate) -> IntakeSpec {
        IntakeSpec {
            records,
            month,
            encoding: SampleEncoding::Utf8,
            error_rate: 0.0,
            seed: 0,
            institution: None,
            today,
        }
    }
}

/// An error the generator can put in a row. Each row gets at most one, and the row is built
/// so that this is the reason the checker (or, for `DuplicateInFile`, the pipeline) rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InjectedError {
    MynumberCheckDigit,
    NameMismatch,
    AddressMismatch,
    BirthDateMismatch,
    SexMismatch,
    AgeMismatch,
    ImpossibleDate,
    VaccinatedAfterClaimMonth,
    UnknownVaccine,
    DoseNotAllowed,
    FeeMismatch,
    PrescreenWithLotOrDose,
    MissingField,
    MalformedField,
    ResidentNotFound,
    ResidentDeceased,
    DuplicateInFile,
}

impl InjectedError {
    pub const ALL: [InjectedError; 17] = [
        InjectedError::MynumberCheckDigit,
        InjectedError::NameMismatch,
        InjectedError::AddressMismatch,
        InjectedError::BirthDateMismatch,
        InjectedError::SexMismatch,
        InjectedError::AgeMismatch,
        InjectedError::ImpossibleDate,
        InjectedError::VaccinatedAfterClaimMonth,
        InjectedError::UnknownVaccine,
        InjectedError::DoseNotAllowed,
        InjectedError::FeeMismatch,
        InjectedError::PrescreenWithLotOrDose,
        InjectedError::MissingField,
        InjectedError::MalformedField,
        InjectedError::ResidentNotFound,
        InjectedError::ResidentDeceased,
        InjectedError::DuplicateInFile,
    ];

    /// The reason code of `docs/intake-format.md` the row is rejected with.
    pub fn code(self) -> &'static str {
        match self {
            InjectedError::MynumberCheckDigit => "mynumber_check_digit",
            InjectedError::NameMismatch => "name_mismatch",
            InjectedError::AddressMismatch => "address_mismatch",
            InjectedError::BirthDateMismatch => "birth_date_mismatch",
            InjectedError::SexMismatch => "sex_mismatch",
            InjectedError::AgeMismatch => "age_mismatch",
            InjectedError::ImpossibleDate => "impossible_date",
            InjectedError::VaccinatedAfterClaimMonth => "vaccinated_after_claim_month",
            InjectedError::UnknownVaccine => "unknown_vaccine",
            InjectedError::DoseNotAllowed => "dose_not_allowed",
            InjectedError::FeeMismatch => "fee_mismatch",
            InjectedError::PrescreenWithLotOrDose => "prescreen_with_lot_or_dose",
            InjectedError::MissingField => "missing_field",
            InjectedError::MalformedField => "malformed_field",
            InjectedError::ResidentNotFound => "resident_not_found",
            InjectedError::ResidentDeceased => "resident_deceased",
            InjectedError::DuplicateInFile => "duplicate_in_file",
        }
    }

    /// The same as a [`Reason`].
    pub fn reason(self) -> Reason {
        match self {
            InjectedError::MynumberCheckDigit => Reason::MynumberCheckDigit,
            InjectedError::NameMismatch => Reason::NameMismatch,
            InjectedError::AddressMismatch => Reason::AddressMismatch,
            InjectedError::BirthDateMismatch => Reason::BirthDateMismatch,
            InjectedError::SexMismatch => Reason::SexMismatch,
            InjectedError::AgeMismatch => Reason::AgeMismatch,
            InjectedError::ImpossibleDate => Reason::ImpossibleDate,
            InjectedError::VaccinatedAfterClaimMonth => Reason::VaccinatedAfterClaimMonth,
            InjectedError::UnknownVaccine => Reason::UnknownVaccine,
            InjectedError::DoseNotAllowed => Reason::DoseNotAllowed,
            InjectedError::FeeMismatch => Reason::FeeMismatch,
            InjectedError::PrescreenWithLotOrDose => Reason::PrescreenWithLotOrDose,
            InjectedError::MissingField => Reason::MissingField,
            InjectedError::MalformedField => Reason::MalformedField,
            InjectedError::ResidentNotFound => Reason::ResidentNotFound,
            InjectedError::ResidentDeceased => Reason::ResidentDeceased,
            InjectedError::DuplicateInFile => Reason::DuplicateInFile,
        }
    }

    /// The column the rejection names (the return report's 項目).
    pub fn column(self) -> Column {
        match self {
            InjectedError::MynumberCheckDigit => Column::MyNumber,
            InjectedError::NameMismatch => Column::Name,
            InjectedError::AddressMismatch => Column::Address,
            InjectedError::BirthDateMismatch => Column::BirthDate,
            InjectedError::SexMismatch => Column::Sex,
            InjectedError::AgeMismatch => Column::Age,
            InjectedError::ImpossibleDate
            | InjectedError::VaccinatedAfterClaimMonth
            | InjectedError::DuplicateInFile => Column::VaccinatedOn,
            InjectedError::UnknownVaccine => Column::Vaccine,
            InjectedError::DoseNotAllowed => Column::Dose,
            InjectedError::FeeMismatch => Column::Fee,
            // Either LOT-NO or 接種量 (or both) is filled; LOT-NO is the first one checked.
            InjectedError::PrescreenWithLotOrDose => Column::LotNo,
            // Either 氏名 or 接種場所 is emptied.
            InjectedError::MissingField => Column::Name,
            InjectedError::MalformedField => Column::Institution,
            InjectedError::ResidentNotFound | InjectedError::ResidentDeceased => Column::ResidentNo,
        }
    }
}

/// What a generated file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntakeStats {
    /// Data rows written.
    pub rows: usize,
    /// Rows without an injected error.
    pub valid_rows: usize,
    /// Injected errors by reason code (only kinds that occur).
    pub injected: BTreeMap<&'static str, usize>,
}

impl IntakeStats {
    pub fn injected_total(&self) -> usize {
        self.injected.values().sum()
    }
}

/// Writes an intake file for `residents` row by row (memory does not grow with `records`,
/// apart from a compact set of used keys).
pub fn write_intake<W: Write>(
    out: W,
    residents: &[SampleResident],
    spec: &IntakeSpec,
) -> io::Result<IntakeStats> {
    write_intake_observed(out, residents, spec, |_, _| {})
}

/// [`write_intake`], calling `observe(row, injected)` for every data row (`row` counts from 1,
/// the header not included), so a test can tell which rows must fail and why.
pub fn write_intake_observed<W, F>(
    out: W,
    residents: &[SampleResident],
    spec: &IntakeSpec,
    mut observe: F,
) -> io::Result<IntakeStats>
where
    W: Write,
    F: FnMut(u64, Option<InjectedError>),
{
    let mut g = Generator::new(out, residents, spec)?;
    g.emit_text(INTAKE_HEADER)?;
    let mut stats = IntakeStats {
        rows: spec.records,
        ..IntakeStats::default()
    };
    for row in 1..=spec.records as u64 {
        let injected = g.row(spec.error_rate)?;
        if let Some(kind) = injected {
            *stats.injected.entry(kind.code()).or_default() += 1;
        }
        observe(row, injected);
    }
    stats.valid_rows = stats.rows - stats.injected_total();
    g.out.flush()?;
    Ok(stats)
}

fn invalid_input(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned())
}

struct Institution {
    code: String,
    doctors: Vec<String>,
}

/// The facts of one row before it is written out.
#[derive(Clone, Copy)]
struct Base {
    resident: usize,
    date: NaiveDate,
    age: u32,
    vaccine: usize,
    exam: ExamCategory,
    payment: Payment,
}

/// How a row may be chosen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Any,
    Vaccination,
    Prescreen,
}

struct Generator<'a, W: Write> {
    out: io::BufWriter<W>,
    rng: ChaCha8Rng,
    residents: &'a [SampleResident],
    month: YearMonth,
    encoding: SampleEncoding,
    master: VaccineMaster,
    /// Vaccine indices by age group (see `complete`).
    groups: VaccineGroups,
    /// Three lots per vaccine (a clinic uses few lots in a month).
    lots: Vec<[String; 3]>,
    institutions: Vec<Institution>,
    first_day: NaiveDate,
    last_day: NaiveDate,
    /// Residents who died before `last_day`, for `resident_deceased`.
    deceased: Vec<usize>,
    max_resident_no: u64,
    /// (resident, day, vaccine, category) of every row so far, packed into a u64. A collision
    /// (only possible for 宛名番号 above 2^50 or more than 16 vaccines) merely skips a free key.
    used: HashSet<u64>,
    /// A valid row to repeat for `duplicate_in_file`.
    remembered: String,
    fields: [String; Column::COUNT],
    line: String,
    bytes: Vec<u8>,
    cp932: Cp932,
}

struct VaccineGroups {
    infant: Vec<usize>,
    toddler: Vec<usize>,
    child: Vec<usize>,
    hpv: Vec<usize>,
    elderly: Vec<usize>,
    adult: Vec<usize>,
}

impl VaccineGroups {
    fn new(master: &VaccineMaster) -> VaccineGroups {
        let all: Vec<usize> = (0..master.vaccines().len()).collect();
        let pick = |codes: &[&str]| -> Vec<usize> {
            let found: Vec<usize> = codes
                .iter()
                .filter_map(|c| master.vaccines().iter().position(|v| v.code == *c))
                .collect();
            // A master without these codes still yields rows, just less realistic ones.
            if found.is_empty() {
                all.clone()
            } else {
                found
            }
        };
        VaccineGroups {
            infant: pick(&["HIB", "PCV15", "HBV", "DPT-IPV-HIB", "BCG"]),
            toddler: pick(&["MR", "VAR"]),
            child: pick(&["JE"]),
            hpv: pick(&["HPV"]),
            // INF listed thrice: most older people's rows in a season are influenza.
            elderly: pick(&["INF", "INF", "INF", "PCV", "COV"]),
            adult: pick(&["COV"]),
        }
    }
}

impl<'a, W: Write> Generator<'a, W> {
    fn new(out: W, residents: &'a [SampleResident], spec: &IntakeSpec) -> io::Result<Self> {
        if !(0.0..=1.0).contains(&spec.error_rate) {
            return Err(invalid_input("error_rate must be between 0 and 1"));
        }
        let first_day = spec.month.first_day();
        let last_day = spec.month.last_day().min(spec.today);
        if spec.records > 0 {
            if residents.is_empty() {
                return Err(invalid_input("the register has no residents"));
            }
            if first_day > last_day {
                return Err(invalid_input("the claim month starts after today"));
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let master = VaccineMaster::default_master();
        let groups = VaccineGroups::new(&master);
        let lots = (0..master.vaccines().len())
            .map(|_| {
                [
                    random_lot(&mut rng),
                    random_lot(&mut rng),
                    random_lot(&mut rng),
                ]
            })
            .collect();
        let institutions = match &spec.institution {
            Some(code) => {
                let code = code.trim();
                if code.len() != 10 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid_input("the institution code must be 10 digits"));
                }
                vec![Institution {
                    code: code.to_owned(),
                    doctors: random_doctors(&mut rng),
                }]
            }
            None => {
                let n = rng.gen_range(6..=10);
                let mut list: Vec<Institution> = Vec::with_capacity(n);
                while list.len() < n {
                    // 11 = Saitama, 1 = medical (医科); the rest is made up.
                    let code = format!("111{:07}", rng.gen_range(0..10_000_000u32));
                    if list.iter().all(|i| i.code != code) {
                        list.push(Institution {
                            code,
                            doctors: random_doctors(&mut rng),
                        });
                    }
                }
                list
            }
        };
        let deceased = residents
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(r.loss, Some(l) if l.kind == LossKind::Deceased && l.on < last_day)
            })
            .map(|(i, _)| i)
            .collect();
        let max_resident_no = residents.iter().map(|r| r.resident_no).max().unwrap_or(0);
        Ok(Generator {
            out: io::BufWriter::with_capacity(1 << 16, out),
            rng,
            residents,
            month: spec.month,
            encoding: spec.encoding,
            master,
            groups,
            lots,
            institutions,
            first_day,
            last_day,
            deceased,
            max_resident_no,
            used: HashSet::with_capacity(spec.records.min(1 << 22)),
            remembered: String::new(),
            fields: Default::default(),
            line: String::with_capacity(512),
            bytes: Vec::with_capacity(1024),
            cp932: Cp932::new(),
        })
    }

    /// Writes one data row; returns the error injected into it, if any.
    fn row(&mut self, error_rate: f64) -> io::Result<Option<InjectedError>> {
        if self.rng.gen_bool(error_rate) {
            loop {
                let kind = InjectedError::ALL[self.rng.gen_range(0..InjectedError::ALL.len())];
                if self.injected_row(kind)? {
                    return Ok(Some(kind));
                }
            }
        }
        let base = self.pick(Want::Any)?;
        self.fill(&base);
        self.join();
        if self.remembered.is_empty() || self.rng.gen_ratio(1, 16) {
            self.remembered.clone_from(&self.line);
        }
        self.emit_line()?;
        Ok(None)
    }

    /// Writes a row with `kind` injected, or returns false (writing nothing) when this file
    /// offers no way to inject it (no deceased resident, no valid row yet to repeat).
    fn injected_row(&mut self, kind: InjectedError) -> io::Result<bool> {
        use InjectedError as E;
        let want = match kind {
            E::DoseNotAllowed => Want::Vaccination,
            E::PrescreenWithLotOrDose => Want::Prescreen,
            _ => Want::Any,
        };
        let base = match kind {
            E::DuplicateInFile => {
                if self.remembered.is_empty() {
                    return Ok(false);
                }
                self.line.clone_from(&self.remembered);
                self.emit_line()?;
                return Ok(true);
            }
            E::ResidentDeceased => match self.pick_deceased() {
                Some(base) => base,
                None => return Ok(false),
            },
            _ => self.pick(want)?,
        };
        self.fill(&base);
        let resident = &self.residents[base.resident];
        let rng = &mut self.rng;
        let f = &mut self.fields;
        match kind {
            E::MynumberCheckDigit => {
                let mut digits: [u8; 12] = match &resident.mynumber {
                    Some(n) if n.len() == 12 => n.as_bytes().try_into().expect("12 bytes"),
                    _ => random_mynumber(rng),
                };
                digits[11] = b'0' + (digits[11] - b'0' + rng.gen_range(1..=9)) % 10;
                set(
                    f,
                    Column::MyNumber,
                    std::str::from_utf8(&digits).expect("ASCII"),
                );
            }
            E::NameMismatch => {
                let name = loop {
                    let mut name = String::with_capacity(24);
                    name.push_str(FAMILY_NAMES[rng.gen_range(0..FAMILY_NAMES.len())]);
                    name.push('\u{3000}');
                    name.push_str(random_given_name(rng, resident.sex));
                    if compact(&name) != compact(&resident.name) {
                        break name;
                    }
                };
                set(f, Column::Name, &name);
            }
            E::AddressMismatch => {
                let address = other_address(&resident.address, rng);
                set(f, Column::Address, &address);
            }
            E::BirthDateMismatch => {
                let (birth, age) = other_birth(resident.birth, base.date, base.age, rng);
                let style = date_style(rng);
                let field = &mut f[Column::BirthDate as usize];
                field.clear();
                push_date(field, birth, style);
                let field = &mut f[Column::Age as usize];
                field.clear();
                let _ = write!(field, "{age}");
            }
            E::SexMismatch => {
                let other = match resident.sex {
                    Sex::Male => Sex::Female,
                    Sex::Female => Sex::Male,
                };
                set(f, Column::Sex, if other == Sex::Male { "1" } else { "2" });
            }
            E::AgeMismatch => {
                let age = if base.age == 0 || rng.gen_bool(0.5) {
                    base.age + 1
                } else {
                    base.age - 1
                };
                let field = &mut f[Column::Age as usize];
                field.clear();
                let _ = write!(field, "{age}");
            }
            E::ImpossibleDate => {
                let y = self.month.year;
                let field = &mut f[Column::VaccinatedOn as usize];
                field.clear();
                match rng.gen_range(0..3) {
                    0 => {
                        let _ = write!(field, "{y:04}0230");
                    }
                    1 => {
                        let _ = write!(field, "{y:04}-04-31");
                    }
                    _ => field.push_str("平成32年1月1日"),
                }
            }
            E::VaccinatedAfterClaimMonth => {
                // An earlier claim month rather than a later date, so the date never lands
                // after today as well.
                let prev = match self.month.month {
                    1 => YearMonth {
                        year: self.month.year - 1,
                        month: 12,
                    },
                    m => YearMonth {
                        year: self.month.year,
                        month: m - 1,
                    },
                };
                let style = month_style(rng);
                let field = &mut f[Column::ClaimMonth as usize];
                field.clear();
                push_month(field, prev, style);
            }
            E::UnknownVaccine => set(f, Column::Vaccine, "XYZ"),
            E::DoseNotAllowed => {
                let allowed = &self.master.vaccines()[base.vaccine].doses_centi_ml;
                let dose = [10u32, 20, 70, 100]
                    .into_iter()
                    .cycle()
                    .skip(rng.gen_range(0..4))
                    .take(4)
                    .find(|d| !allowed.contains(d))
                    .unwrap_or(999);
                let field = &mut f[Column::Dose as usize];
                field.clear();
                push_dose(field, dose);
            }
            E::FeeMismatch => {
                let fee = match base.payment {
                    Payment::Public => fee_of(&self.master, &base) + 110 * rng.gen_range(1..=9),
                    Payment::SelfPaid => self.master.vaccines()[base.vaccine].fee_vaccination,
                };
                let field = &mut f[Column::Fee as usize];
                field.clear();
                let _ = write!(field, "{fee}");
            }
            E::PrescreenWithLotOrDose => {
                let which = rng.gen_range(0..3);
                if which != 1 {
                    let lot = &self.lots[base.vaccine][rng.gen_range(0..3)];
                    set(f, Column::LotNo, lot);
                }
                if which != 0 {
                    let dose = self.master.vaccines()[base.vaccine].doses_centi_ml[0];
                    let field = &mut f[Column::Dose as usize];
                    field.clear();
                    push_dose(field, dose);
                }
            }
            E::MissingField => {
                let column = if rng.gen_bool(0.5) {
                    Column::Name
                } else {
                    Column::Institution
                };
                f[column as usize].clear();
            }
            E::MalformedField => {
                let field = &mut f[Column::Institution as usize];
                field.pop();
            }
            E::ResidentNotFound => {
                let no = absent_resident_no(self.max_resident_no, self.residents, rng);
                let field = &mut f[Column::ResidentNo as usize];
                field.clear();
                let _ = write!(field, "{no}");
            }
            E::ResidentDeceased | E::DuplicateInFile => {}
        }
        self.join();
        self.emit_line()?;
        Ok(true)
    }

    /// A resident who lives in the city on a date of the month, a vaccine for their age, and
    /// a (resident, date, vaccine, category) not used before in this file.
    fn pick(&mut self, want: Want) -> io::Result<Base> {
        let span = (self.last_day - self.first_day).num_days() as u64;
        for _ in 0..100_000 {
            let resident = self.rng.gen_range(0..self.residents.len());
            let r = &self.residents[resident];
            let date = self.first_day + Days::new(self.rng.gen_range(0..=span));
            // Most clinics are closed on Sundays.
            if date.weekday() == Weekday::Sun && self.rng.gen_ratio(9, 10) {
                continue;
            }
            if r.birth >= date || matches!(r.loss, Some(l) if l.on <= date) {
                continue;
            }
            let Some(age) = age_on(r.birth, date) else {
                continue;
            };
            // Vaccinees skew old and very young; the others come in less often.
            let keep = match age {
                0..=2 | 65.. => true,
                3..=16 => self.rng.gen_ratio(2, 5),
                _ => self.rng.gen_ratio(1, 8),
            };
            if !keep {
                continue;
            }
            if let Some(base) = self.complete(resident, date, age, want) {
                return Ok(base);
            }
        }
        Err(io::Error::other(
            "no unused resident, date and vaccine left: the register is too small for this many rows",
        ))
    }

    /// A deceased resident vaccinated after death, or None when nobody died before the
    /// month's last usable day.
    fn pick_deceased(&mut self) -> Option<Base> {
        for _ in 0..32 {
            let resident = *self
                .deceased
                .get(self.rng.gen_range(0..self.deceased.len().max(1)))?;
            let r = &self.residents[resident];
            let died = r.loss.expect("deceased").on;
            let from = self.first_day.max(died + Days::new(1));
            let span = (self.last_day - from).num_days() as u64;
            let date = from + Days::new(self.rng.gen_range(0..=span));
            let age = age_on(r.birth, date)?;
            if let Some(base) = self.complete(resident, date, age, Want::Any) {
                return Some(base);
            }
        }
        None
    }

    /// Chooses the vaccine, category and payment for a resident and date; None when that key
    /// was already used.
    fn complete(&mut self, resident: usize, date: NaiveDate, age: u32, want: Want) -> Option<Base> {
        let r = &self.residents[resident];
        let group = match age {
            0 => &self.groups.infant,
            1..=2 => &self.groups.toddler,
            12 if r.sex == Sex::Female && self.rng.gen_bool(0.5) => &self.groups.hpv,
            3..=12 => &self.groups.child,
            13..=16 if r.sex == Sex::Female => &self.groups.hpv,
            65.. => &self.groups.elderly,
            _ => &self.groups.adult,
        };
        let vaccine = group[self.rng.gen_range(0..group.len())];
        let exam = match want {
            Want::Vaccination => ExamCategory::Vaccination,
            Want::Prescreen => ExamCategory::PrescreenOnly,
            Want::Any if self.rng.gen_ratio(3, 100) => ExamCategory::PrescreenOnly,
            Want::Any => ExamCategory::Vaccination,
        };
        let payment = if exam == ExamCategory::Vaccination && self.rng.gen_ratio(2, 100) {
            Payment::SelfPaid
        } else {
            Payment::Public
        };
        let key = (r.resident_no << 10)
            ^ (u64::from(date.day()) << 5)
            ^ ((vaccine as u64 & 0xF) << 1)
            ^ u64::from(exam.code() - 1);
        if !self.used.insert(key) {
            return None;
        }
        Some(Base {
            resident,
            date,
            age,
            vaccine,
            exam,
            payment,
        })
    }

    /// Writes a valid row for `base` into `fields`, in one of the ways institutions write it.
    fn fill(&mut self, base: &Base) {
        let r = &self.residents[base.resident];
        let vaccine = &self.master.vaccines()[base.vaccine];
        let rng = &mut self.rng;
        for field in self.fields.iter_mut() {
            field.clear();
        }
        let f = &mut self.fields;
        let _ = write!(f[Column::ResidentNo as usize], "{}", r.resident_no);
        if let Some(n) = &r.mynumber {
            if rng.gen_ratio(7, 10) {
                f[Column::MyNumber as usize].push_str(n);
            }
        }
        // Names and addresses as the clinic typed them: same after NFKC and without spaces.
        let name = &mut f[Column::Name as usize];
        match rng.gen_range(0..100) {
            0..=4 => name.extend(
                r.name
                    .chars()
                    .map(|c| if c == '\u{3000}' { ' ' } else { c }),
            ),
            5..=7 => name.extend(r.name.chars().filter(|c| !c.is_whitespace())),
            _ => name.push_str(&r.name),
        }
        let sex = &mut f[Column::Sex as usize];
        match (rng.gen_ratio(1, 20), r.sex) {
            (false, s) => {
                let _ = write!(sex, "{}", s.code());
            }
            (true, Sex::Male) => sex.push('男'),
            (true, Sex::Female) => sex.push('女'),
        }
        let style = date_style(rng);
        push_date(&mut f[Column::BirthDate as usize], r.birth, style);
        let address = &mut f[Column::Address as usize];
        match rng.gen_range(0..100) {
            0..=9 => address.extend(r.address.chars().map(full_width_digit)),
            10..=11 => address.extend(
                r.address
                    .chars()
                    .map(|c| if c == '\u{3000}' { ' ' } else { c }),
            ),
            _ => address.push_str(&r.address),
        }
        let style = date_style(rng);
        push_date(&mut f[Column::VaccinatedOn as usize], base.date, style);
        let institution = &self.institutions[rng.gen_range(0..self.institutions.len())];
        f[Column::Institution as usize].push_str(&institution.code);
        let _ = write!(f[Column::Age as usize], "{}", base.age);
        if rng.gen_ratio(3, 100) {
            f[Column::Age as usize].push('歳');
        }
        let style = month_style(rng);
        push_month(&mut f[Column::ClaimMonth as usize], self.month, style);
        let words = rng.gen_ratio(3, 100);
        f[Column::ExamCategory as usize].push_str(match (base.exam, words) {
            (ExamCategory::Vaccination, false) => "1",
            (ExamCategory::PrescreenOnly, false) => "2",
            (ExamCategory::Vaccination, true) => "接種",
            (ExamCategory::PrescreenOnly, true) => "予診のみ",
        });
        let vaccinated = base.exam == ExamCategory::Vaccination;
        if vaccinated {
            f[Column::LotNo as usize].push_str(&self.lots[base.vaccine][rng.gen_range(0..3)]);
        }
        f[Column::Vaccine as usize].push_str(&vaccine.code);
        f[Column::MovedIn as usize].push_str(match rng.gen_range(0..100) {
            0 => "1",
            1 => "無",
            2 => "いいえ",
            _ => "0",
        });
        let doctors = &institution.doctors;
        let prescreen = rng.gen_range(0..doctors.len());
        f[Column::PrescreenDoctor as usize].push_str(&doctors[prescreen]);
        if vaccinated {
            // Usually the same doctor examines and vaccinates.
            let d = if rng.gen_ratio(4, 5) {
                prescreen
            } else {
                rng.gen_range(0..doctors.len())
            };
            f[Column::VaccinatingDoctor as usize].push_str(&doctors[d]);
        }
        let words = rng.gen_ratio(3, 100);
        f[Column::Payment as usize].push_str(match (base.payment, words) {
            (Payment::Public, false) => "1",
            (Payment::SelfPaid, false) => "2",
            (Payment::Public, true) => "公費",
            (Payment::SelfPaid, true) => "自費",
        });
        let fee = fee_of(&self.master, base);
        let field = &mut f[Column::Fee as usize];
        if fee >= 1000 && rng.gen_ratio(1, 10) {
            let _ = write!(field, "{},{:03}", fee / 1000, fee % 1000);
        } else {
            let _ = write!(field, "{fee}");
        }
        if vaccinated {
            let doses = &vaccine.doses_centi_ml;
            // Children get the smallest dose (HBV, JE: 0.25 under the age limits).
            let dose = if base.age < 10 {
                *doses.iter().min().expect("at least one dose")
            } else if doses.len() > 1 && rng.gen_ratio(1, 5) {
                doses[rng.gen_range(0..doses.len())]
            } else {
                doses[0]
            };
            let field = &mut f[Column::Dose as usize];
            push_dose(field, dose);
            if rng.gen_ratio(1, 10) {
                field.push_str("mL");
            }
        }
        let line_end = self.encoding.line_end();
        for (column, per_mille) in [
            (Column::Remarks1, 100),
            (Column::Remarks2, 30),
            (Column::Remarks3, 10),
        ] {
            if rng.gen_ratio(per_mille, 1000) {
                let remark = REMARKS[rng.gen_range(0..REMARKS.len())];
                // A line break inside a field follows the file's own line ends.
                f[column as usize].push_str(&remark.replace('\n', line_end));
            }
        }
    }

    /// Joins `fields` into `line`, quoting where needed.
    fn join(&mut self) {
        self.line.clear();
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            push_field(&mut self.line, field);
        }
    }

    fn emit_text(&mut self, text: &str) -> io::Result<()> {
        self.line.clear();
        self.line.push_str(text);
        self.emit_line()
    }

    /// Encodes `line` plus the line end and writes it.
    fn emit_line(&mut self) -> io::Result<()> {
        self.line.push_str(self.encoding.line_end());
        match self.encoding {
            SampleEncoding::Utf8 => self.out.write_all(self.line.as_bytes()),
            SampleEncoding::Cp932 => {
                self.bytes.clear();
                match self.cp932.encode(&self.line, &mut self.bytes) {
                    Ok(()) => self.out.write_all(&self.bytes),
                    // The word lists are tested to be CP932; this guards other input, e.g. a
                    // register file read from disk.
                    Err(()) => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a register value has a character that CP932 cannot represent",
                    )),
                }
            }
        }
    }
}

/// CP932 through encoding_rs, one character at a time, remembered per character.
///
/// encoding_rs (without its `fast-kanji-encode` feature, which is not ours to turn on) finds
/// many kanji by a linear search of the JIS X 0208 index: that was more than half the time of a
/// million-row file. Shift_JIS is stateless, so a character's bytes never depend on its
/// neighbours, and encoding_rs's answer for each character can be reused.
pub(crate) struct Cp932 {
    encoder: encoding_rs::Encoder,
    /// CP932 bytes for each BMP character seen so far: `UNKNOWN`, `UNMAPPABLE`, one byte
    /// (below 0x100) or two bytes (lead byte high). Real CP932 bytes are never 0 or 0xFFFF.
    table: Vec<u16>,
}

impl Cp932 {
    const UNKNOWN: u16 = 0;
    const UNMAPPABLE: u16 = 0xFFFF;

    pub(crate) fn new() -> Cp932 {
        Cp932 {
            encoder: SHIFT_JIS.new_encoder(),
            table: vec![Self::UNKNOWN; 0x1_0000],
        }
    }

    /// Appends the CP932 bytes of `s` to `out`; `Err` if a character has none.
    pub(crate) fn encode(&mut self, s: &str, out: &mut Vec<u8>) -> Result<(), ()> {
        out.reserve(s.len());
        for c in s.chars() {
            if c.is_ascii() {
                out.push(c as u8);
                continue;
            }
            let Some(slot) = self.table.get(c as usize).copied() else {
                // Outside the BMP: nothing there is in CP932.
                return Err(());
            };
            let code = if slot == Self::UNKNOWN {
                let code = self.learn(c);
                self.table[c as usize] = code;
                code
            } else {
                slot
            };
            match code {
                Self::UNMAPPABLE => return Err(()),
                0..=0xFF => out.push(code as u8),
                _ => out.extend_from_slice(&code.to_be_bytes()),
            }
        }
        Ok(())
    }

    fn learn(&mut self, c: char) -> u16 {
        let mut utf8 = [0u8; 4];
        let mut bytes = [0u8; 8];
        let (result, _, written) = self.encoder.encode_from_utf8_without_replacement(
            c.encode_utf8(&mut utf8),
            &mut bytes,
            false,
        );
        match (result, written) {
            (EncoderResult::InputEmpty, 1) => u16::from(bytes[0]),
            (EncoderResult::InputEmpty, 2) => u16::from_be_bytes([bytes[0], bytes[1]]),
            _ => Self::UNMAPPABLE,
        }
    }
}

fn set(fields: &mut [String; Column::COUNT], column: Column, value: &str) {
    let field = &mut fields[column as usize];
    field.clear();
    field.push_str(value);
}

fn fee_of(master: &VaccineMaster, base: &Base) -> u32 {
    let v = &master.vaccines()[base.vaccine];
    match (base.payment, base.exam) {
        (Payment::SelfPaid, _) => 0,
        (Payment::Public, ExamCategory::Vaccination) => v.fee_vaccination,
        (Payment::Public, ExamCategory::PrescreenOnly) => v.fee_prescreen,
    }
}

/// White space removed: enough to tell two generated names apart the way the checker would.
fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn full_width_digit(c: char) -> char {
    match c {
        '0'..='9' => char::from_u32(u32::from(c) - u32::from('0') + 0xFF10).expect("in range"),
        _ => c,
    }
}

/// The register address with a different 番 (house block), so only the address differs.
fn other_address(address: &str, rng: &mut ChaCha8Rng) -> String {
    if let Some(pos) = address.find('番') {
        let start = address[..pos]
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .len();
        if let Ok(n) = address[start..pos].parse::<u32>() {
            let other = n + rng.gen_range(1..=5);
            return format!("{}{other}{}", &address[..start], &address[pos..]);
        }
    }
    loop {
        let other = random_address(rng);
        if compact(&other) != compact(address) {
            return other;
        }
    }
}

/// A birth date a few days off. The age field stays right for it: preferably the same age,
/// so the age agrees with the register's birth date too and only the birth date is wrong.
fn other_birth(
    birth: NaiveDate,
    on: NaiveDate,
    age: u32,
    rng: &mut ChaCha8Rng,
) -> (NaiveDate, u32) {
    for _ in 0..40 {
        let shift = Days::new(rng.gen_range(1..=20));
        let other = if rng.gen_bool(0.5) {
            birth + shift
        } else {
            birth - shift
        };
        if other < on && age_on(other, on) == Some(age) {
            return (other, age);
        }
    }
    let other = birth - Days::new(366);
    (other, age_on(other, on).expect("born earlier still"))
}

/// A 宛名番号 not in the register: just above the highest, as a number issued after the
/// extract was taken would be.
fn absent_resident_no(max: u64, residents: &[SampleResident], rng: &mut ChaCha8Rng) -> u64 {
    const LIMIT: u64 = 999_999_999_999_999;
    let candidate = max + rng.gen_range(1..=1000);
    if candidate <= LIMIT {
        return candidate;
    }
    loop {
        let candidate = rng.gen_range(1..=LIMIT);
        if residents.iter().all(|r| r.resident_no != candidate) {
            return candidate;
        }
    }
}

fn random_mynumber(rng: &mut ChaCha8Rng) -> [u8; 12] {
    let mut first = [0u8; 11];
    for d in first.iter_mut() {
        *d = rng.gen_range(0..10);
    }
    MyNumber::from_first_11(first).ascii()
}

/// A lot number in the shapes manufacturers print: `AB1234`, `E123A`, `KH12-034`.
fn random_lot(rng: &mut ChaCha8Rng) -> String {
    fn letter(s: &mut String, rng: &mut ChaCha8Rng) {
        s.push(char::from(b'A' + rng.gen_range(0..26)));
    }
    let mut s = String::with_capacity(8);
    match rng.gen_range(0..10) {
        0..=5 => {
            letter(&mut s, rng);
            letter(&mut s, rng);
            let _ = write!(s, "{:04}", rng.gen_range(0..10_000));
        }
        6..=7 => {
            letter(&mut s, rng);
            let _ = write!(s, "{:03}", rng.gen_range(0..1000));
            letter(&mut s, rng);
        }
        _ => {
            letter(&mut s, rng);
            letter(&mut s, rng);
            let _ = write!(
                s,
                "{:02}-{:03}",
                rng.gen_range(0..100),
                rng.gen_range(0..1000)
            );
        }
    }
    s
}

/// One to three doctors of an institution (not residents: names from the same lists).
fn random_doctors(rng: &mut ChaCha8Rng) -> Vec<String> {
    (0..rng.gen_range(1..=3))
        .map(|_| {
            let sex = if rng.gen_bool(0.6) {
                Sex::Male
            } else {
                Sex::Female
            };
            let mut name = String::with_capacity(24);
            name.push_str(FAMILY_NAMES[rng.gen_range(0..FAMILY_NAMES.len())]);
            if rng.gen_ratio(4, 5) {
                name.push('\u{3000}');
            }
            name.push_str(random_given_name(rng, sex));
            name
        })
        .collect()
}

#[derive(Clone, Copy)]
enum DateStyle {
    Compact,
    Hyphen,
    Slash,
    EraKanji,
    EraInitial,
}

/// Mostly `YYYYMMDD`, as clinic systems export; the rest as people type dates.
fn date_style(rng: &mut ChaCha8Rng) -> DateStyle {
    match rng.gen_range(0..100) {
        0..=3 => DateStyle::Hyphen,
        4..=6 => DateStyle::Slash,
        7..=9 => DateStyle::EraKanji,
        10..=11 => DateStyle::EraInitial,
        _ => DateStyle::Compact,
    }
}

fn push_date(out: &mut String, d: NaiveDate, style: DateStyle) {
    let (y, m, day) = (d.year(), d.month(), d.day());
    let _ = match style {
        DateStyle::Compact => write!(out, "{y:04}{m:02}{day:02}"),
        DateStyle::Hyphen => write!(out, "{y:04}-{m:02}-{day:02}"),
        DateStyle::Slash => write!(out, "{y:04}/{m:02}/{day:02}"),
        DateStyle::EraKanji => {
            out.push_str(&format_era(d, true));
            Ok(())
        }
        DateStyle::EraInitial => {
            out.push_str(&format_era(d, false));
            Ok(())
        }
    };
}

fn month_style(rng: &mut ChaCha8Rng) -> DateStyle {
    match rng.gen_range(0..100) {
        0..=4 => DateStyle::Hyphen,
        5..=8 => DateStyle::Slash,
        9..=11 => DateStyle::EraKanji,
        12..=14 => DateStyle::EraInitial,
        _ => DateStyle::Compact,
    }
}

fn push_month(out: &mut String, ym: YearMonth, style: DateStyle) {
    let (y, m) = (ym.year, ym.month);
    let _ = match style {
        DateStyle::Compact => write!(out, "{y:04}{m:02}"),
        DateStyle::Hyphen => write!(out, "{y:04}-{m:02}"),
        DateStyle::Slash => write!(out, "{y:04}/{m:02}"),
        // The era forms of a month are the era date of its first day without the day:
        // 令和6年10月1日 -> 令和6年10月, R6.10.1 -> R6.10.
        DateStyle::EraKanji => {
            let date = format_era(ym.first_day(), true);
            let end = date.rfind('月').map_or(date.len(), |i| i + '月'.len_utf8());
            out.push_str(&date[..end]);
            Ok(())
        }
        DateStyle::EraInitial => {
            let date = format_era(ym.first_day(), false);
            let end = date.rfind('.').unwrap_or(date.len());
            out.push_str(&date[..end]);
            Ok(())
        }
    };
}

/// Hundredths of a mL as the shortest decimal: 50 -> `0.5`, 3 -> `0.03`, 100 -> `1`.
fn push_dose(out: &mut String, centi: u32) {
    let _ = write!(out, "{}", centi / 100);
    let frac = centi % 100;
    if frac != 0 {
        let _ = write!(out, ".{frac:02}");
        if out.ends_with('0') {
            out.pop();
        }
    }
}
