//! Dates and months as institutions write them: `YYYYMMDD`, `YYYY-MM-DD`, `YYYY/MM/DD`, and
//! Japanese eras (明治, 大正, 昭和, 平成, 令和, or M/T/S/H/R), with 元年 for year 1.

use chrono::{Datelike, NaiveDate};

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
        (1..=12)
            .contains(&month)
            .then_some(YearMonth { year, month })
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    pub fn last_day(self) -> NaiveDate {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1)
            .expect("valid month")
            .pred_opt()
            .expect("not min date")
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

/// A Japanese era: its names and the span of days kenko accepts in it.
struct Era {
    kanji: &'static str,
    /// Upper-case initial (M, T, S, H, R).
    initial: char,
    /// Gregorian year of the era's year 1 (元年).
    first_year: i32,
    /// First accepted day: the era's start, except 明治, which is accepted only from the
    /// adoption of the Gregorian calendar (明治6年1月1日); earlier 明治 dates were lunar.
    from: (i32, u32, u32),
}

/// In order; each era ends the day before the next one's `from`.
const ERAS: [Era; 5] = [
    Era {
        kanji: "明治",
        initial: 'M',
        first_year: 1868,
        from: (1873, 1, 1),
    },
    Era {
        kanji: "大正",
        initial: 'T',
        first_year: 1912,
        from: (1912, 7, 30),
    },
    Era {
        kanji: "昭和",
        initial: 'S',
        first_year: 1926,
        from: (1926, 12, 25),
    },
    Era {
        kanji: "平成",
        initial: 'H',
        first_year: 1989,
        from: (1989, 1, 8),
    },
    Era {
        kanji: "令和",
        initial: 'R',
        first_year: 2019,
        from: (2019, 5, 1),
    },
];

fn era_from(era: usize) -> NaiveDate {
    let (y, m, d) = ERAS[era].from;
    NaiveDate::from_ymd_opt(y, m, d).expect("valid era start")
}

/// The first day after the era, if it has ended.
fn era_until(era: usize) -> Option<NaiveDate> {
    (era + 1 < ERAS.len()).then(|| era_from(era + 1))
}

/// The Gregorian year of an era year, or `None` for year 0 (there is none).
fn gregorian_year(era: usize, year: u32) -> Option<i32> {
    let offset = i32::try_from(year.checked_sub(1)?).ok()?;
    ERAS[era].first_year.checked_add(offset)
}

/// Leading ASCII digits of `s`, `min` to `max` of them, as a number, and the rest of `s`.
fn digits(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n < min || n > max {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

enum EraStyle {
    /// `令和6年10月1日`
    Kanji,
    /// `R6.10.1`, `R6/10/1`, `R6-10-1`
    Initial,
}

fn split_era(s: &str) -> Option<(usize, EraStyle, &str)> {
    if let Some((i, rest)) = ERAS
        .iter()
        .enumerate()
        .find_map(|(i, e)| Some((i, s.strip_prefix(e.kanji)?)))
    {
        return Some((i, EraStyle::Kanji, rest));
    }
    let mut chars = s.chars();
    let initial = chars.next()?.to_ascii_uppercase();
    let i = ERAS.iter().position(|e| e.initial == initial)?;
    Some((i, EraStyle::Initial, chars.as_str()))
}

/// Splits an era date (or, without `with_day`, an era month) into era, era year, month and
/// day (1 for a month). `None` when the text is not in an era form at all.
fn era_parts(s: &str, with_day: bool) -> Option<(usize, u32, u32, u32)> {
    let (era, style, rest) = split_era(s)?;
    let (year, rest) = match rest.strip_prefix('元') {
        Some(rest) => (1, rest),
        None => digits(rest, 1, 3)?,
    };
    let (month, day, rest) = match style {
        EraStyle::Kanji => {
            let (month, rest) = digits(rest.strip_prefix('年')?, 1, 2)?;
            let rest = rest.strip_prefix('月')?;
            if with_day {
                let (day, rest) = digits(rest, 1, 2)?;
                (month, day, rest.strip_prefix('日')?)
            } else {
                (month, 1, rest)
            }
        }
        EraStyle::Initial => {
            let sep = rest
                .chars()
                .next()
                .filter(|c| matches!(c, '.' | '/' | '-'))?;
            let (month, rest) = digits(&rest[1..], 1, 2)?;
            if with_day {
                let (day, rest) = digits(rest.strip_prefix(sep)?, 1, 2)?;
                (month, day, rest)
            } else {
                (month, 1, rest)
            }
        }
    };
    rest.is_empty().then_some((era, year, month, day))
}

/// Splits `YYYYMMDD`, `YYYY-M-D`, `YYYY/M/D` (or, without `with_day`, `YYYYMM`, `YYYY-M`,
/// `YYYY/M`) into year, month and day (1 for a month).
fn gregorian_parts(s: &str, with_day: bool) -> Option<(i32, u32, u32)> {
    let compact_len = if with_day { 8 } else { 6 };
    if s.len() == compact_len && s.bytes().all(|b| b.is_ascii_digit()) {
        let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
        let day = if with_day { num(6..8)? } else { 1 };
        return Some((i32::try_from(num(0..4)?).ok()?, num(4..6)?, day));
    }
    let (year, rest) = digits(s, 4, 4)?;
    let sep = rest.chars().next().filter(|c| matches!(c, '-' | '/'))?;
    let (month, rest) = digits(&rest[1..], 1, 2)?;
    let (day, rest) = if with_day {
        digits(rest.strip_prefix(sep)?, 1, 2)?
    } else {
        (1, rest)
    };
    rest.is_empty()
        .then_some((i32::try_from(year).ok()?, month, day))
}

/// Parses a date (input already NFKC-normalised and trimmed).
pub fn parse_date(s: &str) -> Result<NaiveDate, DateError> {
    if let Some((era, year, month, day)) = era_parts(s, true) {
        let year = gregorian_year(era, year).ok_or(DateError::Impossible)?;
        let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(DateError::Impossible)?;
        if date < era_from(era) || era_until(era).is_some_and(|until| date >= until) {
            return Err(DateError::Impossible);
        }
        return Ok(date);
    }
    let (year, month, day) = gregorian_parts(s, true).ok_or(DateError::Malformed)?;
    if year == 0 {
        return Err(DateError::Impossible);
    }
    NaiveDate::from_ymd_opt(year, month, day).ok_or(DateError::Impossible)
}

/// Parses a month: `YYYYMM`, `YYYY-MM`, `YYYY/MM`, `令和6年10月`, `R6.10`, `R06.10`.
pub fn parse_month(s: &str) -> Result<YearMonth, DateError> {
    if let Some((era, year, month, _)) = era_parts(s, false) {
        let year = gregorian_year(era, year).ok_or(DateError::Impossible)?;
        let ym = YearMonth::new(year, month).ok_or(DateError::Impossible)?;
        // A month is in an era when any of its days is: 平成元年1月 and 昭和64年1月 both exist.
        if ym.last_day() < era_from(era)
            || era_until(era).is_some_and(|until| ym.first_day() >= until)
        {
            return Err(DateError::Impossible);
        }
        return Ok(ym);
    }
    let (year, month, _) = gregorian_parts(s, false).ok_or(DateError::Malformed)?;
    if year == 0 {
        return Err(DateError::Impossible);
    }
    YearMonth::new(year, month).ok_or(DateError::Impossible)
}

/// Formats a date in an era form (`令和6年10月1日` when `kanji`, else `R6.10.1`); used by the
/// synthetic data generator. Dates before 明治 6 (1873-01-01) are written as Gregorian.
pub fn format_era(date: NaiveDate, kanji: bool) -> String {
    let Some(i) = (0..ERAS.len()).rev().find(|&i| date >= era_from(i)) else {
        return date.format("%Y-%m-%d").to_string();
    };
    let era = &ERAS[i];
    let year = date.year() - era.first_year + 1;
    if kanji {
        let year = if year == 1 {
            "元".to_owned()
        } else {
            year.to_string()
        };
        format!("{}{}年{}月{}日", era.kanji, year, date.month(), date.day())
    } else {
        format!("{}{}.{}.{}", era.initial, year, date.month(), date.day())
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write fixtures and read the clock directly"
)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn ym(year: i32, month: u32) -> YearMonth {
        YearMonth { year, month }
    }

    #[test]
    fn gregorian_forms() {
        for s in [
            "20241001",
            "2024-10-01",
            "2024/10/01",
            "2024/10/1",
            "2024-10-1",
        ] {
            assert_eq!(parse_date(s), Ok(d(2024, 10, 1)), "{s}");
        }
        assert_eq!(parse_date("2024/1/5"), Ok(d(2024, 1, 5)));
        assert_eq!(parse_date("20240229"), Ok(d(2024, 2, 29)));
    }

    #[test]
    fn era_forms() {
        for s in [
            "令和6年10月1日",
            "令和06年10月01日",
            "R6.10.1",
            "R06.10.01",
            "r6.10.1",
            "R6/10/1",
            "R6-10-1",
        ] {
            assert_eq!(parse_date(s), Ok(d(2024, 10, 1)), "{s}");
        }
        assert_eq!(parse_date("令和元年5月1日"), Ok(d(2019, 5, 1)));
        assert_eq!(parse_date("令和1年5月1日"), Ok(d(2019, 5, 1)));
        assert_eq!(parse_date("平成31年4月30日"), Ok(d(2019, 4, 30)));
        assert_eq!(parse_date("H31/4/30"), Ok(d(2019, 4, 30)));
        assert_eq!(parse_date("H31.4.30"), Ok(d(2019, 4, 30)));
        assert_eq!(parse_date("平成元年1月8日"), Ok(d(1989, 1, 8)));
        assert_eq!(parse_date("昭和64年1月7日"), Ok(d(1989, 1, 7)));
        assert_eq!(parse_date("S25.4.1"), Ok(d(1950, 4, 1)));
        assert_eq!(parse_date("昭和元年12月25日"), Ok(d(1926, 12, 25)));
        assert_eq!(parse_date("大正15年12月24日"), Ok(d(1926, 12, 24)));
        assert_eq!(parse_date("T1.7.30"), Ok(d(1912, 7, 30)));
        assert_eq!(parse_date("明治45年7月29日"), Ok(d(1912, 7, 29)));
        assert_eq!(parse_date("m6.1.1"), Ok(d(1873, 1, 1)));
    }

    #[test]
    fn dates_outside_their_era_are_impossible() {
        for s in [
            "平成31年5月1日",
            "平成32年1月1日",
            "令和1年4月30日",
            "令和元年4月30日",
            "昭和64年1月8日",
            "平成元年1月7日",
            "大正15年12月25日",
            "明治45年7月30日",
            "明治5年12月31日",
            "明治元年1月25日",
            "令和0年5月1日",
            "R0.5.1",
            "H31.5.1",
        ] {
            assert_eq!(parse_date(s), Err(DateError::Impossible), "{s}");
        }
    }

    #[test]
    fn nonexistent_days_are_impossible() {
        for s in [
            "20240230",
            "2023-02-29",
            "2024/13/01",
            "2024/00/10",
            "2024/4/31",
            "00000101",
        ] {
            assert_eq!(parse_date(s), Err(DateError::Impossible), "{s}");
        }
        assert_eq!(parse_date("令和5年2月29日"), Err(DateError::Impossible));
    }

    #[test]
    fn garbage_is_malformed() {
        for s in [
            "",
            "2024",
            "202410011",
            "2024.10.01",
            "2024-10/01",
            "24-10-01",
            "2024-100-01",
            "令和6年10月",
            "令和6年10月1",
            "令和6.10.1",
            "R6年10月1日",
            "R6.10/1",
            "R6.10.1日",
            "X6.10.1",
            "R.10.1",
            "Rx.10.1",
            "2024-10-01T00:00",
            "abc",
        ] {
            assert_eq!(parse_date(s), Err(DateError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn months() {
        for s in [
            "202410",
            "2024-10",
            "2024/10",
            "令和6年10月",
            "R6.10",
            "R06.10",
            "r6/10",
        ] {
            assert_eq!(parse_month(s), Ok(ym(2024, 10)), "{s}");
        }
        assert_eq!(parse_month("H31.4"), Ok(ym(2019, 4)));
        assert_eq!(parse_month("令和元年5月"), Ok(ym(2019, 5)));
        assert_eq!(parse_month("平成元年1月"), Ok(ym(1989, 1)));
        assert_eq!(parse_month("昭和64年1月"), Ok(ym(1989, 1)));
        assert_eq!(parse_month("2024-1"), Ok(ym(2024, 1)));
    }

    #[test]
    fn impossible_and_malformed_months() {
        for s in [
            "令和1年4月",
            "平成31年5月",
            "昭和64年2月",
            "202413",
            "2024-00",
            "R0.5",
            "明治5年12月",
        ] {
            assert_eq!(parse_month(s), Err(DateError::Impossible), "{s}");
        }
        for s in [
            "",
            "2024",
            "20241001",
            "2024.10",
            "令和6年",
            "R6",
            "R6.10.1",
            "令和6年10月1日",
        ] {
            assert_eq!(parse_month(s), Err(DateError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn format_era_examples() {
        assert_eq!(format_era(d(2024, 10, 1), true), "令和6年10月1日");
        assert_eq!(format_era(d(2024, 10, 1), false), "R6.10.1");
        assert_eq!(format_era(d(2019, 5, 1), true), "令和元年5月1日");
        assert_eq!(format_era(d(2019, 5, 1), false), "R1.5.1");
        assert_eq!(format_era(d(2019, 4, 30), true), "平成31年4月30日");
        assert_eq!(format_era(d(1989, 1, 7), false), "S64.1.7");
        assert_eq!(format_era(d(1873, 1, 1), true), "明治6年1月1日");
        assert_eq!(format_era(d(1872, 12, 31), true), "1872-12-31");
    }

    #[test]
    fn format_era_round_trips() {
        // Every day, so every era boundary is crossed exactly.
        let mut date = d(1872, 6, 1);
        while date <= d(2100, 12, 31) {
            for kanji in [true, false] {
                let s = format_era(date, kanji);
                assert_eq!(parse_date(&s), Ok(date), "{s}");
            }
            date = date.succ_opt().unwrap();
        }
    }

    #[test]
    fn year_month_helpers() {
        assert_eq!(ym(2024, 2).last_day(), d(2024, 2, 29));
        assert_eq!(ym(2024, 12).last_day(), d(2024, 12, 31));
        assert_eq!(YearMonth::parse_iso("2024-10"), Some(ym(2024, 10)));
        assert_eq!(ym(2024, 1).to_string(), "2024-01");
    }
}
