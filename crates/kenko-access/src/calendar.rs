//! The city's business calendar in Asia/Tokyo: civil dates, Japanese national holidays computed
//! by rule for 2000–2099, the year-end closure (29 December – 3 January), weekends and office
//! hours. Japan has no daylight saving time, so local time is UTC+9 all year.
//!
//! Holidays follow the Act on National Holidays (国民の祝日に関する法律) as amended:
//! fixed-date holidays, the Happy Monday holidays (2000 onward: Coming of Age Day and Sports Day;
//! 2003 onward: Marine Day and Respect for the Aged Day), the equinoxes by the standard formula
//! (valid 1980–2099; the official date is announced each February for the next year and has
//! matched the formula throughout this range so far), substitute holidays (振替休日: the next
//! non-holiday after a holiday falling on Sunday; before 2007 only the following Monday),
//! citizens' holidays (国民の休日: a day between two holidays), the 2019 enthronement days and
//! the Olympic moves of 2020 and 2021.

use std::fmt;

/// Seconds east of UTC of Japan Standard Time.
pub const JST_OFFSET_SECS: i64 = 9 * 3600;

/// A civil (proleptic Gregorian) date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// Day of the week, Monday first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// 0 for Monday … 6 for Sunday.
    pub fn index(self) -> u8 {
        self as u8
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_len(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> Date {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    Date {
        year: y as i32,
        month: m,
        day: d,
    }
}

/// The weekday of a day number.
pub fn weekday_of_days(days: i64) -> Weekday {
    // 1970-01-01 was a Thursday.
    match (days + 3).rem_euclid(7) {
        0 => Weekday::Mon,
        1 => Weekday::Tue,
        2 => Weekday::Wed,
        3 => Weekday::Thu,
        4 => Weekday::Fri,
        5 => Weekday::Sat,
        _ => Weekday::Sun,
    }
}

impl Date {
    /// A valid date, or None.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        ((1..=12).contains(&month) && day >= 1 && day <= month_len(year, month)).then_some(Date {
            year,
            month,
            day,
        })
    }

    /// `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let y = digits(&b[0..4])? as i32;
        let m = digits(&b[5..7])? as u8;
        let d = digits(&b[8..10])? as u8;
        Date::new(y, m, d)
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    pub fn from_days(days: i64) -> Date {
        civil_from_days(days)
    }

    pub fn weekday(self) -> Weekday {
        weekday_of_days(self.days())
    }

    pub fn succ(self) -> Date {
        Date::from_days(self.days() + 1)
    }

    /// UTC epoch seconds of 00:00 JST on this date.
    pub fn jst_midnight_epoch(self) -> i64 {
        self.days() * 86_400 - JST_OFFSET_SECS
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// The JST day number (days since 1970-01-01 in Japan) of a UTC epoch second.
#[inline]
pub fn jst_day(epoch: i64) -> i64 {
    (epoch + JST_OFFSET_SECS).div_euclid(86_400)
}

/// Seconds since 00:00 JST of a UTC epoch second.
#[inline]
pub fn jst_second_of_day(epoch: i64) -> u32 {
    (epoch + JST_OFFSET_SECS).rem_euclid(86_400) as u32
}

/// Parses an RFC 3339 / ISO 8601 timestamp with a `Z` or `±HH:MM` offset
/// (`2026-11-02T09:12:33.120+09:00`, `2026-11-02T00:12:33.123456Z`) into UTC epoch seconds
/// (fractions are truncated). None when it is not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let y = digits(&b[0..4])? as i32;
    let mo = digits(&b[5..7])? as u8;
    let d = digits(&b[8..10])? as u8;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let se = digits(&b[17..19])?;
    if !(1..=12).contains(&mo) || d == 0 || d > month_len(y, mo) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = i64::from(digits(&b[i + 1..i + 3])?);
            let om = i64::from(digits(&b[i + 4..i + 6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *c == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se) - offset)
}

/// Formats UTC epoch seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(epoch: i64) -> String {
    let d = Date::from_days(epoch.div_euclid(86_400));
    let s = epoch.rem_euclid(86_400);
    format!("{d}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Formats UTC epoch seconds as JST `YYYY-MM-DDTHH:MM:SS+09:00`.
pub fn format_jst(epoch: i64) -> String {
    let d = Date::from_days(jst_day(epoch));
    let s = jst_second_of_day(epoch);
    format!("{d}T{:02}:{:02}:{:02}+09:00", s / 3600, s / 60 % 60, s % 60)
}

/// Why a day is a holiday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolidayKind {
    /// A national holiday (国民の祝日).
    National,
    /// 振替休日: replaces a national holiday that fell on a Sunday.
    Substitute,
    /// 国民の休日: a day between two national holidays.
    Citizens,
}

/// One holiday of the Japanese calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holiday {
    pub date: Date,
    pub name: &'static str,
    pub name_en: &'static str,
    pub kind: HolidayKind,
}

/// The first year whose holidays are computed.
pub const FIRST_YEAR: i32 = 2000;
/// The last year whose holidays are computed.
pub const LAST_YEAR: i32 = 2099;

/// Day of the month of the n-th (1-based) Monday.
fn nth_monday(y: i32, m: u8, n: u8) -> u8 {
    let first = Date {
        year: y,
        month: m,
        day: 1,
    }
    .weekday()
    .index();
    let first_monday = 1 + (7 - first) % 7;
    first_monday + 7 * (n - 1)
}

fn vernal_equinox(y: i32) -> u8 {
    let n = f64::from(y - 1980);
    (20.8431 + 0.242194 * n - (f64::from((y - 1980).div_euclid(4)))).floor() as u8
}

fn autumnal_equinox(y: i32) -> u8 {
    let n = f64::from(y - 1980);
    (23.2488 + 0.242194 * n - (f64::from((y - 1980).div_euclid(4)))).floor() as u8
}

/// The national holidays (国民の祝日) proper of a year, unsorted, without substitute and
/// citizens' holidays.
fn national(y: i32) -> Vec<(u8, u8, &'static str, &'static str)> {
    let mut v = vec![
        (1, 1, "元日", "New Year's Day"),
        (1, nth_monday(y, 1, 2), "成人の日", "Coming of Age Day"),
        (2, 11, "建国記念の日", "National Foundation Day"),
        (3, vernal_equinox(y), "春分の日", "Vernal Equinox Day"),
        (5, 3, "憲法記念日", "Constitution Memorial Day"),
        (5, 5, "こどもの日", "Children's Day"),
        (9, autumnal_equinox(y), "秋分の日", "Autumnal Equinox Day"),
        (11, 3, "文化の日", "Culture Day"),
        (11, 23, "勤労感謝の日", "Labour Thanksgiving Day"),
    ];
    match y {
        ..=2018 => v.push((12, 23, "天皇誕生日", "Emperor's Birthday")),
        2019 => {
            v.push((5, 1, "即位の日", "Enthronement Day"));
            v.push((10, 22, "即位礼正殿の儀", "Enthronement Ceremony Day"));
        }
        _ => v.push((2, 23, "天皇誕生日", "Emperor's Birthday")),
    }
    if y >= 2007 {
        v.push((4, 29, "昭和の日", "Showa Day"));
        v.push((5, 4, "みどりの日", "Greenery Day"));
    } else {
        v.push((4, 29, "みどりの日", "Greenery Day"));
    }
    match y {
        ..=2002 => v.push((7, 20, "海の日", "Marine Day")),
        2020 => v.push((7, 23, "海の日", "Marine Day")),
        2021 => v.push((7, 22, "海の日", "Marine Day")),
        _ => v.push((7, nth_monday(y, 7, 3), "海の日", "Marine Day")),
    }
    match y {
        ..=2015 => {}
        2020 => v.push((8, 10, "山の日", "Mountain Day")),
        2021 => v.push((8, 8, "山の日", "Mountain Day")),
        _ => v.push((8, 11, "山の日", "Mountain Day")),
    }
    if y <= 2002 {
        v.push((9, 15, "敬老の日", "Respect for the Aged Day"));
    } else {
        v.push((
            9,
            nth_monday(y, 9, 3),
            "敬老の日",
            "Respect for the Aged Day",
        ));
    }
    match y {
        ..=2019 => v.push((
            10,
            nth_monday(y, 10, 2),
            "体育の日",
            "Health and Sports Day",
        )),
        2020 => v.push((7, 24, "スポーツの日", "Sports Day")),
        2021 => v.push((7, 23, "スポーツの日", "Sports Day")),
        _ => v.push((10, nth_monday(y, 10, 2), "スポーツの日", "Sports Day")),
    }
    v
}

/// Every holiday of a year (national, substitute and citizens'), sorted by date. Empty outside
/// 2000–2099.
pub fn holidays(year: i32) -> Vec<Holiday> {
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Vec::new();
    }
    let mut out: Vec<Holiday> = national(year)
        .into_iter()
        .map(|(m, d, name, name_en)| Holiday {
            date: Date {
                year,
                month: m,
                day: d,
            },
            name,
            name_en,
            kind: HolidayKind::National,
        })
        .collect();
    out.sort_by_key(|h| h.date);
    let is_national = |days: i64, out: &[Holiday]| {
        out.iter()
            .any(|h| h.kind == HolidayKind::National && h.date.days() == days)
    };
    // 振替休日.
    let mut subs = Vec::new();
    for h in out.iter().filter(|h| h.date.weekday() == Weekday::Sun) {
        let mut d = h.date.days() + 1;
        if year >= 2007 {
            while is_national(d, &out) {
                d += 1;
            }
        } else if is_national(d, &out) {
            continue;
        }
        subs.push(Holiday {
            date: Date::from_days(d),
            name: "振替休日",
            name_en: "Substitute Holiday",
            kind: HolidayKind::Substitute,
        });
    }
    // 国民の休日: between two national holidays, itself neither a holiday nor a Sunday.
    let mut citizens = Vec::new();
    for h in &out {
        let d = h.date.days() + 1;
        if is_national(d + 1, &out)
            && !is_national(d, &out)
            && weekday_of_days(d) != Weekday::Sun
            && !subs.iter().any(|s: &Holiday| s.date.days() == d)
        {
            citizens.push(Holiday {
                date: Date::from_days(d),
                name: "国民の休日",
                name_en: "Citizens' Holiday",
                kind: HolidayKind::Citizens,
            });
        }
    }
    out.extend(subs.into_iter().filter(|h| h.date.year == year));
    out.extend(citizens.into_iter().filter(|h| h.date.year == year));
    out.sort_by_key(|h| h.date);
    out
}

/// What kind of day a date is for the city's offices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayKind {
    Business,
    Weekend,
    Holiday,
    /// 29 December – 3 January (年末年始).
    YearEnd,
}

/// Office hours, local (JST) minutes after midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfficeHours {
    pub start_min: u16,
    pub end_min: u16,
}

impl Default for OfficeHours {
    /// 08:30–17:15, the usual hours of a Japanese city office.
    fn default() -> Self {
        OfficeHours {
            start_min: 8 * 60 + 30,
            end_min: 17 * 60 + 15,
        }
    }
}

impl OfficeHours {
    /// `HH:MM-HH:MM` (end after start).
    pub fn parse(s: &str) -> Option<OfficeHours> {
        let (a, b) = s.split_once('-')?;
        let hm = |t: &str| {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start_min, end_min) = (hm(a)?, hm(b)?);
        (start_min < end_min).then_some(OfficeHours { start_min, end_min })
    }
}

/// The business calendar: which days are working days, and the office hours.
#[derive(Clone, Debug)]
pub struct Calendar {
    pub office: OfficeHours,
    /// One bit per day from 2000-01-01 to 2099-12-31: set when the day is not a business day.
    closed: Vec<u64>,
    /// One bit per day: set when the day is a holiday or in the year-end closure (not weekend).
    holiday: Vec<u64>,
    base: i64,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar::new(OfficeHours::default())
    }
}

impl Calendar {
    pub fn new(office: OfficeHours) -> Calendar {
        let base = days_from_civil(FIRST_YEAR, 1, 1);
        let end = days_from_civil(LAST_YEAR + 1, 1, 1);
        let n = (end - base) as usize;
        let mut closed = vec![0u64; n.div_ceil(64)];
        let mut holiday = vec![0u64; n.div_ceil(64)];
        let set = |v: &mut Vec<u64>, d: i64| {
            let i = (d - base) as usize;
            v[i / 64] |= 1 << (i % 64);
        };
        for d in base..end {
            if matches!(weekday_of_days(d), Weekday::Sat | Weekday::Sun) {
                set(&mut closed, d);
            }
            if is_year_end(Date::from_days(d)) {
                set(&mut closed, d);
                set(&mut holiday, d);
            }
        }
        for y in FIRST_YEAR..=LAST_YEAR {
            for h in holidays(y) {
                set(&mut closed, h.date.days());
                set(&mut holiday, h.date.days());
            }
        }
        Calendar {
            office,
            closed,
            holiday,
            base,
        }
    }

    fn bit(&self, v: &[u64], days: i64) -> Option<bool> {
        let i = usize::try_from(days - self.base).ok()?;
        v.get(i / 64).map(|w| w >> (i % 64) & 1 == 1)
    }

    /// Whether the day (days since 1970-01-01, in JST) is a working day of the city.
    /// Outside 2000–2099 only weekends and the year-end closure are known.
    #[inline]
    pub fn is_business_day(&self, days: i64) -> bool {
        match self.bit(&self.closed, days) {
            Some(closed) => !closed,
            None => {
                !matches!(weekday_of_days(days), Weekday::Sat | Weekday::Sun)
                    && !is_year_end(Date::from_days(days))
            }
        }
    }

    /// Whether a weekday is closed (holiday or year-end): the anomaly baseline treats such
    /// days like Sundays.
    #[inline]
    pub fn is_weekday_closure(&self, days: i64) -> bool {
        !matches!(weekday_of_days(days), Weekday::Sat | Weekday::Sun)
            && self
                .bit(&self.holiday, days)
                .unwrap_or_else(|| is_year_end(Date::from_days(days)))
    }

    pub fn day_kind(&self, date: Date) -> DayKind {
        let d = date.days();
        if is_year_end(date) {
            DayKind::YearEnd
        } else if self.bit(&self.holiday, d) == Some(true) {
            DayKind::Holiday
        } else if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            DayKind::Weekend
        } else {
            DayKind::Business
        }
    }

    /// Whether the UTC epoch second is within office hours of a business day.
    pub fn is_office_time(&self, epoch: i64) -> bool {
        self.is_within(epoch, 0, 0)
    }

    /// Whether the UTC epoch second is within office hours of a business day, widened by
    /// `before_min` minutes before the start and `after_min` after the end.
    #[inline]
    pub fn is_within(&self, epoch: i64, before_min: u32, after_min: u32) -> bool {
        if !self.is_business_day(jst_day(epoch)) {
            return false;
        }
        let m = jst_second_of_day(epoch) / 60;
        let start = u32::from(self.office.start_min).saturating_sub(before_min);
        let end = u32::from(self.office.end_min) + after_min;
        m >= start && m < end
    }
}

/// 29 December to 3 January.
pub fn is_year_end(d: Date) -> bool {
    (d.month == 12 && d.day >= 29) || (d.month == 1 && d.day <= 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(y: i32) -> Vec<String> {
        holidays(y)
            .iter()
            .map(|h| format!("{} {}", h.date, h.name))
            .collect()
    }

    #[test]
    fn civil_round_trip() {
        for d in -1000..100_000 {
            assert_eq!(civil_from_days(d).days(), d);
        }
        assert_eq!(Date::new(1970, 1, 1).unwrap().days(), 0);
        assert_eq!(Date::new(2026, 11, 2).unwrap().weekday(), Weekday::Mon);
        assert_eq!(
            Date::new(2024, 2, 29).unwrap().succ().to_string(),
            "2024-03-01"
        );
        assert!(Date::new(2025, 2, 29).is_none());
    }

    #[test]
    fn rfc3339() {
        let a = parse_rfc3339("2026-11-02T09:12:33.120+09:00").unwrap();
        let b = parse_rfc3339("2026-11-02T00:12:33Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_utc(a), "2026-11-02T00:12:33Z");
        assert_eq!(format_jst(a), "2026-11-02T09:12:33+09:00");
        assert_eq!(
            parse_rfc3339("2026-11-01T23:00:00-05:00").unwrap(),
            parse_rfc3339("2026-11-02T04:00:00Z").unwrap()
        );
        for bad in [
            "",
            "2026-11-02",
            "2026-11-02T09:12:33",
            "2026-13-02T09:12:33Z",
            "2026-02-30T09:12:33Z",
            "2026-11-02T25:12:33Z",
            "2026-11-02T09:12:33.Z",
            "2026-11-02T09:12:33+0900",
            "2026-11-02T09:12:33Zjunk",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn holidays_2025_match_the_cabinet_office_list() {
        assert_eq!(
            list(2025),
            [
                "2025-01-01 元日",
                "2025-01-13 成人の日",
                "2025-02-11 建国記念の日",
                "2025-02-23 天皇誕生日",
                "2025-02-24 振替休日",
                "2025-03-20 春分の日",
                "2025-04-29 昭和の日",
                "2025-05-03 憲法記念日",
                "2025-05-04 みどりの日",
                "2025-05-05 こどもの日",
                "2025-05-06 振替休日",
                "2025-07-21 海の日",
                "2025-08-11 山の日",
                "2025-09-15 敬老の日",
                "2025-09-23 秋分の日",
                "2025-10-13 スポーツの日",
                "2025-11-03 文化の日",
                "2025-11-23 勤労感謝の日",
                "2025-11-24 振替休日",
            ]
        );
    }

    #[test]
    fn holidays_2026_match_the_cabinet_office_list() {
        assert_eq!(
            list(2026),
            [
                "2026-01-01 元日",
                "2026-01-12 成人の日",
                "2026-02-11 建国記念の日",
                "2026-02-23 天皇誕生日",
                "2026-03-20 春分の日",
                "2026-04-29 昭和の日",
                "2026-05-03 憲法記念日",
                "2026-05-04 みどりの日",
                "2026-05-05 こどもの日",
                "2026-05-06 振替休日",
                "2026-07-20 海の日",
                "2026-08-11 山の日",
                "2026-09-21 敬老の日",
                "2026-09-22 国民の休日",
                "2026-09-23 秋分の日",
                "2026-10-12 スポーツの日",
                "2026-11-03 文化の日",
                "2026-11-23 勤労感謝の日",
            ]
        );
    }

    #[test]
    fn special_years() {
        let y2019 = list(2019);
        for d in [
            "2019-04-30 国民の休日",
            "2019-05-01 即位の日",
            "2019-05-02 国民の休日",
            "2019-05-06 振替休日",
            "2019-10-22 即位礼正殿の儀",
        ] {
            assert!(y2019.contains(&d.to_string()), "{d} in {y2019:?}");
        }
        assert!(!y2019.iter().any(|h| h.contains("天皇誕生日")));
        let y2020 = list(2020);
        for d in [
            "2020-02-24 振替休日",
            "2020-07-23 海の日",
            "2020-07-24 スポーツの日",
            "2020-08-10 山の日",
        ] {
            assert!(y2020.contains(&d.to_string()), "{d} in {y2020:?}");
        }
        assert!(!y2020.iter().any(|h| h.starts_with("2020-10")));
        let y2021 = list(2021);
        for d in [
            "2021-07-22 海の日",
            "2021-07-23 スポーツの日",
            "2021-08-08 山の日",
            "2021-08-09 振替休日",
        ] {
            assert!(y2021.contains(&d.to_string()), "{d} in {y2021:?}");
        }
        // Silver Week 2015 and 2009: a citizens' holiday between 敬老の日 and 秋分の日.
        assert!(list(2015).contains(&"2015-09-22 国民の休日".to_string()));
        assert!(list(2009).contains(&"2009-09-22 国民の休日".to_string()));
        // Before 2007: 4 May is a citizens' holiday, 29 April is Greenery Day.
        let y2006 = list(2006);
        assert!(y2006.contains(&"2006-05-04 国民の休日".to_string()));
        assert!(y2006.contains(&"2006-04-29 みどりの日".to_string()));
        // 2008-05-04 (Greenery Day) is a Sunday and 5 May a holiday: 6 May substitutes.
        assert!(list(2008).contains(&"2008-05-06 振替休日".to_string()));
        // Equinoxes at the ends of the range.
        assert!(list(2000).contains(&"2000-03-20 春分の日".to_string()));
        assert!(list(2099).contains(&"2099-09-23 秋分の日".to_string()));
        assert!(holidays(1999).is_empty() && holidays(2100).is_empty());
    }

    #[test]
    fn business_days_and_office_hours() {
        let cal = Calendar::default();
        let day = |y, m, d| Date::new(y, m, d).unwrap();
        assert_eq!(cal.day_kind(day(2026, 11, 2)), DayKind::Business);
        assert_eq!(cal.day_kind(day(2026, 11, 3)), DayKind::Holiday);
        assert_eq!(cal.day_kind(day(2026, 11, 7)), DayKind::Weekend);
        assert_eq!(cal.day_kind(day(2026, 12, 29)), DayKind::YearEnd);
        assert_eq!(cal.day_kind(day(2027, 1, 4)), DayKind::Business);
        assert!(!cal.is_business_day(day(2026, 9, 22).days()));
        assert!(cal.is_weekday_closure(day(2026, 9, 22).days()));
        assert!(!cal.is_weekday_closure(day(2026, 9, 26).days()));
        let at = |s: &str| parse_rfc3339(s).unwrap();
        assert!(cal.is_office_time(at("2026-11-02T08:30:00+09:00")));
        assert!(!cal.is_office_time(at("2026-11-02T08:29:59+09:00")));
        assert!(cal.is_office_time(at("2026-11-02T17:14:59+09:00")));
        assert!(!cal.is_office_time(at("2026-11-02T17:15:00+09:00")));
        assert!(!cal.is_office_time(at("2026-11-03T10:00:00+09:00")));
        assert!(cal.is_within(at("2026-11-02T19:00:00+09:00"), 60, 120));
        assert!(!cal.is_within(at("2026-11-02T19:15:00+09:00"), 60, 120));
        // UTC midnight is 09:00 JST.
        assert!(cal.is_office_time(at("2026-11-02T00:00:00Z")));
        let oh = OfficeHours::parse("09:00-18:00").unwrap();
        assert_eq!((oh.start_min, oh.end_min), (540, 1080));
        assert!(OfficeHours::parse("18:00-09:00").is_none());
        assert!(OfficeHours::parse("9-18").is_none());
    }
}
