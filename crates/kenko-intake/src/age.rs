//! Age under the Act on Calculation of Age (年齢計算ニ関スル法律, 1902) and Civil Code
//! article 143: a person reaches a year of age at the end of the day before the birthday.
//! So on the birthday itself the new age holds; someone born on 29 February reaches it at the
//! end of 28 February, i.e. holds it from 1 March in a common year.

use chrono::{Datelike, NaiveDate};

/// Completed years of age on `on`, or `None` when `on` is before `birth`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    if on < birth {
        return None;
    }
    let years = u32::try_from(on.year() - birth.year()).ok()?;
    // Comparing (month, day) puts a 29 February birthday after 28 February, so in a common
    // year the new age starts on 1 March, as the Act requires.
    let before_birthday = (on.month(), on.day()) < (birth.month(), birth.day());
    Some(if before_birthday { years - 1 } else { years })
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

    #[test]
    fn birthday_and_the_day_before() {
        let b = d(1950, 4, 1);
        assert_eq!(age_on(b, d(2024, 4, 1)), Some(74));
        assert_eq!(age_on(b, d(2024, 3, 31)), Some(73));
        assert_eq!(age_on(b, d(2024, 12, 31)), Some(74));
        assert_eq!(age_on(b, d(2025, 1, 1)), Some(74));
    }

    #[test]
    fn same_day_is_zero_and_before_birth_is_none() {
        let b = d(2024, 10, 1);
        assert_eq!(age_on(b, b), Some(0));
        assert_eq!(age_on(b, d(2024, 9, 30)), None);
        assert_eq!(age_on(b, d(2025, 9, 30)), Some(0));
        assert_eq!(age_on(b, d(2025, 10, 1)), Some(1));
    }

    #[test]
    fn born_on_29_february() {
        let b = d(2000, 2, 29);
        // common year: the new age from 1 March
        assert_eq!(age_on(b, d(2023, 2, 28)), Some(22));
        assert_eq!(age_on(b, d(2023, 3, 1)), Some(23));
        // leap year: from 29 February
        assert_eq!(age_on(b, d(2024, 2, 28)), Some(23));
        assert_eq!(age_on(b, d(2024, 2, 29)), Some(24));
        assert_eq!(age_on(b, d(2024, 3, 1)), Some(24));
    }
}
