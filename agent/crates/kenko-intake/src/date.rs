//! Dates and months as institutions write them: `YYYYMMDD`, `YYYY-MM-DD`, `YYYY/MM/DD`, and
//! Japanese eras (明治, 大正, 昭和, 平成, 令和, or M/T/S/H/R), with 元年 for year 1.

use chrono::NaiveDate;

/// Why a date could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not in any accepted form.
    #[error("not a date in an accepted form")]
    Malformed,
    /// In an accepted form but no such day (20240230, 平成32年1月1日, 令和1年4月30日).
    #[error("no such date")]
    Impossible,
}

/// A calendar month, e.g. the claim month 請求年月.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct YearMonth {
    pub year: i32,
    pub month: u32,
}

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Option<YearMonth> {
        (1..=12).contains(&month).then_some(YearMonth { year, month })
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    pub fn last_day(self) -> NaiveDate {
        let (y, m) = if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
        NaiveDate::from_ymd_opt(y, m, 1).expect("valid month").pred_opt().expect("not min date")
    }

    /// Parses `YYYY-MM` (the form kenko writes).
    pub fn parse_iso(s: &str) -> Option<YearMonth> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        YearMonth::new(y.parse().ok()?, m.parse().ok()?)
    }
}

impl std::fmt::Display for YearMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Parses a date (input already NFKC-normalised and trimmed).
pub fn parse_date(s: &str) -> Result<NaiveDate, DateError> {
    let _ = s;
    todo!()
}

/// Parses a month: `YYYYMM`, `YYYY-MM`, `YYYY/MM`, `令和6年10月`, `R6.10`, `R06.10`.
pub fn parse_month(s: &str) -> Result<YearMonth, DateError> {
    let _ = s;
    todo!()
}

/// Formats a date in an era form (`令和6年10月1日` when `kanji`, else `R6.10.1`); used by the
/// synthetic data generator. Dates before 明治 6 (1873-01-01) are written as Gregorian.
pub fn format_era(date: NaiveDate, kanji: bool) -> String {
    let _ = (date, kanji);
    todo!()
}
