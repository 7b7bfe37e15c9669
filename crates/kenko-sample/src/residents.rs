//! The synthetic resident register (住民基本台帳 extract) that `kenko-agent residents import`
//! reads: `宛名番号,個人番号,氏名,性別,生年月日,住所,異動事由,異動日`, UTF-8, LF.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::Path;

use chrono::{Datelike, Days, NaiveDate};
use kenko_intake::register_extract;
use kenko_intake::{Loss, LossKind, MyNumber, Sex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::csv::{parse_records, push_field};
use super::names::{BUILDINGS, FAMILY_NAMES, FEMALE_GIVEN_NAMES, MALE_GIVEN_NAMES, TOWNS};

/// The register extract's header, in the order it is written (the contract's).
pub use kenko_intake::register_extract::HEADER as RESIDENT_HEADER;
pub use kenko_intake::register_extract::{LOSS_DECEASED, LOSS_MOVED_OUT};

/// The first 宛名番号 handed out.
pub const FIRST_RESIDENT_NO: u64 = 100_000_001;

/// One synthetic resident as the register extract lists them. All of it is made up, so it is
/// plain data (no zeroizing): nothing here is a real person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleResident {
    /// 宛名番号
    pub resident_no: u64,
    /// 個人番号, 12 ASCII digits with a valid check digit; `None` when the extract has none.
    pub mynumber: Option<String>,
    /// 氏名: family name, U+3000, given name.
    pub name: String,
    pub sex: Sex,
    pub birth: NaiveDate,
    /// 住所, starting with 埼玉県越谷市.
    pub address: String,
    /// 異動事由 and 異動日: death or moving out, if the register records one.
    pub loss: Option<Loss>,
}

/// What register to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentSpec {
    pub count: usize,
    pub seed: u64,
    /// The extract's date: ages are spread as of this day, and deaths and moves out fall in
    /// the three years before it.
    pub as_of: NaiveDate,
}

/// The `as_of` of [`ResidentSpec::new`]: a fixed day (the start of fiscal 令和7) rather than
/// today, so that the same seed gives the same bytes whenever it runs.
pub const DEFAULT_AS_OF: NaiveDate = match NaiveDate::from_ymd_opt(2025, 4, 1) {
    Some(d) => d,
    None => panic!("valid date"),
};

impl ResidentSpec {
    pub fn new(count: usize, seed: u64) -> ResidentSpec {
        ResidentSpec {
            count,
            seed,
            as_of: DEFAULT_AS_OF,
        }
    }

    /// The residents. Their 宛名番号 run from [`FIRST_RESIDENT_NO`] without gaps but in a
    /// shuffled order, as an extract sorted by another key shows them.
    pub fn generate(&self) -> Vec<SampleResident> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut numbers: Vec<u64> = (0..self.count as u64)
            .map(|i| FIRST_RESIDENT_NO + i)
            .collect();
        // Fisher–Yates by hand: `SliceRandom::shuffle` would do, but spelling it out keeps the
        // byte stream independent of rand's internal choice of algorithm across versions.
        for i in (1..numbers.len()).rev() {
            let j = rng.gen_range(0..=i);
            numbers.swap(i, j);
        }
        let mut used_mynumbers: HashSet<u64> = HashSet::with_capacity(self.count);
        let mut household: Option<(usize, String, u32)> = None;
        let mut out = Vec::with_capacity(self.count);
        for resident_no in numbers {
            // Households: people who share a family name and an address, as a register shows.
            let (family, address) = match household.take() {
                Some((family, address, left)) if left > 0 => {
                    household = Some((family, address.clone(), left - 1));
                    (family, address)
                }
                _ => {
                    let family = rng.gen_range(0..FAMILY_NAMES.len());
                    let address = random_address(&mut rng);
                    let size = household_size(&mut rng);
                    household = Some((family, address.clone(), size - 1));
                    (family, address)
                }
            };
            let sex = if rng.gen_bool(0.5) {
                Sex::Male
            } else {
                Sex::Female
            };
            let given = random_given_name(&mut rng, sex);
            let mut name = String::with_capacity(24);
            name.push_str(FAMILY_NAMES[family]);
            name.push('\u{3000}');
            name.push_str(given);
            let age = random_age(&mut rng);
            let birth = random_birth(&mut rng, self.as_of, age);
            let loss = random_loss(&mut rng, self.as_of, birth, age);
            let mynumber = loop {
                let mut first = [0u8; 11];
                let mut key = 0u64;
                for d in first.iter_mut() {
                    *d = rng.gen_range(0..10);
                    key = key * 10 + u64::from(*d);
                }
                // Register numbers are unique; eleven random digits collide a few times in a
                // million draws.
                if used_mynumbers.insert(key) {
                    let ascii = MyNumber::from_first_11(first).ascii();
                    break String::from_utf8(ascii.to_vec()).expect("ASCII digits");
                }
            };
            out.push(SampleResident {
                resident_no,
                mynumber: Some(mynumber),
                name,
                sex,
                birth,
                address,
                loss,
            });
        }
        out
    }
}

/// `count` residents as of [`DEFAULT_AS_OF`].
pub fn generate_residents(count: usize, seed: u64) -> Vec<SampleResident> {
    ResidentSpec::new(count, seed).generate()
}

/// Writes `count` generated residents (as of [`DEFAULT_AS_OF`]) as a register extract.
pub fn write_residents<W: Write>(out: W, count: usize, seed: u64) -> io::Result<()> {
    write_resident_csv(out, &generate_residents(count, seed))
}

/// Writes residents as a register extract: UTF-8 without BOM, LF line ends.
pub fn write_resident_csv<W: Write>(out: W, residents: &[SampleResident]) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(1 << 16, out);
    out.write_all(RESIDENT_HEADER.as_bytes())?;
    out.write_all(b"\n")?;
    let mut line = String::with_capacity(256);
    for r in residents {
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(line, "{},", r.resident_no);
        line.push_str(r.mynumber.as_deref().unwrap_or(""));
        line.push(',');
        push_field(&mut line, &r.name);
        let _ = write!(line, ",{},", r.sex.code());
        push_ymd(&mut line, r.birth);
        line.push(',');
        push_field(&mut line, &r.address);
        match r.loss {
            Some(loss) => {
                let reason = match loss.kind {
                    LossKind::Deceased => LOSS_DECEASED,
                    LossKind::MovedOut => LOSS_MOVED_OUT,
                };
                let _ = write!(line, ",{reason},");
                push_ymd(&mut line, loss.on);
            }
            None => line.push_str(",,"),
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

/// Why a register extract could not be read. Messages name the line and column, never the
/// value, like the intake's own messages.
#[derive(Debug, thiserror::Error)]
pub enum ResidentsError {
    #[error("cannot read the resident extract: {0}")]
    Io(#[from] io::Error),
    #[error("the resident extract is not UTF-8")]
    NotUtf8,
    #[error("the resident extract has no header row")]
    Empty,
    #[error("the resident extract's header: {0}")]
    Header(String),
    #[error("line {line}: a quoted field is not closed")]
    Unterminated { line: usize },
    #[error("line {line}: expected {expected} fields")]
    FieldCount { line: usize, expected: usize },
    #[error("line {line}: the column {column} is not valid")]
    BadField { line: usize, column: &'static str },
    #[error("line {line}: the 宛名番号 appears earlier in the file")]
    DuplicateResident { line: usize },
}

/// Reads a register extract written by [`write_resident_csv`] (the contract's columns, UTF-8
/// with or without BOM, CRLF or LF), so a sample intake can be made for a register made earlier.
pub fn read_residents(path: impl AsRef<Path>) -> Result<Vec<SampleResident>, ResidentsError> {
    let bytes = std::fs::read(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ResidentsError::NotUtf8)?;
    parse_residents(text)
}

/// [`read_residents`] for text already in memory.
pub fn parse_residents(text: &str) -> Result<Vec<SampleResident>, ResidentsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = parse_records(text).map_err(|e| ResidentsError::Unterminated { line: e.line })?;
    let mut records = records.into_iter();
    let header = records.next().ok_or(ResidentsError::Empty)?;
    register_extract::check_header(&header.fields).map_err(ResidentsError::Header)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for rec in records {
        let line = rec.line;
        let fields: Vec<&str> = rec.fields.iter().map(String::as_str).collect();
        let r = register_extract::parse_row(&fields).map_err(|p| {
            if p.field == "(row)" {
                ResidentsError::FieldCount {
                    line,
                    expected: register_extract::COLUMNS.len(),
                }
            } else {
                ResidentsError::BadField {
                    line,
                    column: p.field,
                }
            }
        })?;
        if !seen.insert(r.resident_no) {
            return Err(ResidentsError::DuplicateResident { line });
        }
        out.push(SampleResident {
            resident_no: r.resident_no,
            mynumber: r
                .mynumber
                .map(|n| String::from_utf8_lossy(&n.ascii()).into_owned()),
            name: r.name.trim().to_owned(),
            sex: r.sex,
            birth: r.birth,
            address: r.address.trim().to_owned(),
            loss: r.loss,
        });
    }
    Ok(out)
}

/// `YYYYMMDD` (chrono's `format` parses its pattern on every call; this is the hot loop).
fn push_ymd(out: &mut String, d: NaiveDate) {
    use std::fmt::Write as _;
    let _ = write!(out, "{:04}{:02}{:02}", d.year(), d.month(), d.day());
}

pub(crate) fn random_given_name(rng: &mut ChaCha8Rng, sex: Sex) -> &'static str {
    let list = match sex {
        Sex::Male => MALE_GIVEN_NAMES,
        Sex::Female => FEMALE_GIVEN_NAMES,
    };
    list[rng.gen_range(0..list.len())]
}

/// 埼玉県越谷市 + town + N丁目N番N号, a fifth with a building and room.
pub(crate) fn random_address(rng: &mut ChaCha8Rng) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(64);
    s.push_str("埼玉県越谷市");
    s.push_str(TOWNS[rng.gen_range(0..TOWNS.len())]);
    // Low 丁目 are more common: most towns have only a few.
    let chome = 1 + rng.gen_range(0..3) + rng.gen_range(0..3);
    let _ = write!(
        s,
        "{chome}丁目{}番{}号",
        rng.gen_range(1..=30),
        rng.gen_range(1..=25)
    );
    if rng.gen_bool(0.2) {
        let building = BUILDINGS[rng.gen_range(0..BUILDINGS.len())];
        let _ = write!(
            s,
            "\u{3000}{building}{}{:02}",
            rng.gen_range(1..=5),
            rng.gen_range(1..=8)
        );
    }
    s
}

/// 1 to 5 people: singles and couples are the most common households.
fn household_size(rng: &mut ChaCha8Rng) -> u32 {
    match rng.gen_range(0..100) {
        0..=37 => 1,
        38..=65 => 2,
        66..=83 => 3,
        84..=95 => 4,
        _ => 5,
    }
}

/// An age 0–100 shaped like a Japanese city's population: few children, most people 40–80.
fn random_age(rng: &mut ChaCha8Rng) -> u32 {
    // Share (per mille) of each ten-year band, 0–9 through 90–100.
    const BANDS: [u32; 10] = [75, 85, 100, 115, 140, 140, 125, 130, 70, 20];
    let mut x = rng.gen_range(0..BANDS.iter().sum::<u32>());
    for (i, share) in BANDS.iter().enumerate() {
        if x < *share {
            let top = if i == 9 { 11 } else { 10 };
            return i as u32 * 10 + rng.gen_range(0..top);
        }
        x -= share;
    }
    unreachable!("x is below the sum of the bands")
}

/// A birth date giving `age` on `as_of`; now and then 29 February, so age arithmetic around
/// leap days is exercised downstream.
fn random_birth(rng: &mut ChaCha8Rng, as_of: NaiveDate, age: u32) -> NaiveDate {
    let latest = as_of
        .checked_sub_months(chrono::Months::new(12 * age))
        .expect("in range");
    if rng.gen_bool(0.004) {
        // The nearest leap year at or before the year that age implies.
        let mut y = latest.year() - 1;
        while NaiveDate::from_ymd_opt(y, 2, 29).is_none() {
            y -= 1;
        }
        return NaiveDate::from_ymd_opt(y, 2, 29).expect("leap year");
    }
    // Under one: born before as_of, not on it, so the age is 0 and not "not born yet".
    let back = if age == 0 {
        rng.gen_range(1..365)
    } else {
        rng.gen_range(0..365)
    };
    latest - Days::new(back)
}

/// Deaths (~1%, mostly the old) and moves out (~2%, mostly young adults) in the three years
/// before `as_of`, never before birth.
fn random_loss(rng: &mut ChaCha8Rng, as_of: NaiveDate, birth: NaiveDate, age: u32) -> Option<Loss> {
    let p_death = match age {
        80.. => 0.06,
        65..=79 => 0.015,
        _ => 0.001,
    };
    let p_move = match age {
        18..=40 => 0.05,
        _ => 0.01,
    };
    let x: f64 = rng.gen();
    let kind = if x < p_death {
        LossKind::Deceased
    } else if x < p_death + p_move {
        LossKind::MovedOut
    } else {
        return None;
    };
    let earliest = (as_of - Days::new(3 * 365)).max(birth + Days::new(1));
    if earliest > as_of {
        return None;
    }
    let span = (as_of - earliest).num_days() as u64;
    Some(Loss {
        kind,
        on: earliest + Days::new(rng.gen_range(0..=span)),
    })
}
