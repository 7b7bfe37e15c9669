//! The one place kenko reads the wall clock (clippy's `disallowed-methods` keeps it so). Time is
//! stored in UTC; "today" for the checks is the date in Asia/Tokyo (UTC+9, no daylight saving),
//! whatever the machine's zone. Reading the clock is the only input this pure crate takes from
//! the world, and it is here so that every crate reads it the same way.

use chrono::{DateTime, NaiveDate, Utc};

/// Now, in UTC.
#[allow(clippy::disallowed_methods, reason = "the one clock")]
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Today's date in Asia/Tokyo.
pub fn today_in_tokyo() -> NaiveDate {
    (now() + chrono::Duration::hours(9)).date_naive()
}
