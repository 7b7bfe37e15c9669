//! Age under the Act on Calculation of Age (年齢計算ニ関スル法律, 1902) and Civil Code
//! article 143: a person reaches a year of age at the end of the day before the birthday.
//! So on the birthday itself the new age holds; someone born on 29 February reaches it at the
//! end of 28 February, i.e. holds it from 1 March in a common year.

use chrono::NaiveDate;

/// Completed years of age on `on`, or `None` when `on` is before `birth`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    let _ = (birth, on);
    todo!()
}
