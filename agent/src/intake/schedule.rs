//! When an S3 inbox is listed: the stack's `intake.schedule`, a 5-field cron read in
//! Asia/Tokyo (fixed +09:00, no daylight saving), one round at each firing.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    pattern: String,
}

fn tokyo() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

impl Schedule {
    /// Parses a 5-field cron; the error is one line naming what is wrong.
    pub fn parse(pattern: &str) -> Result<Schedule, String> {
        if pattern.split_whitespace().count() != 5 {
            return Err(format!(
                "{} fields; expected 5 (minute hour day-of-month month day-of-week)",
                pattern.split_whitespace().count()
            ));
        }
        let cron = croner::Cron::from_str(pattern).map_err(|e| e.to_string())?;
        Ok(Schedule {
            cron,
            pattern: pattern.to_string(),
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// How long from `now` until the next firing (at least one second, so a round that
    /// ends within its own minute does not run again at once).
    pub fn wait_from(&self, now: DateTime<Utc>) -> Duration {
        let local = now.with_timezone(&tokyo());
        match self.cron.find_next_occurrence(&local, false) {
            Ok(next) => (next.with_timezone(&Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1)),
            // A pattern that never fires again (a date that cannot come): once a day.
            Err(_) => Duration::from_secs(86_400),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn firings_are_read_in_tokyo() {
        // 17:59:30 in Tokyo is 08:59:30 UTC; "0 18 * * *" fires 30 s later.
        let s = Schedule::parse("0 18 * * *").unwrap();
        let now = Utc.with_ymd_and_hms(2024, 10, 1, 8, 59, 30).unwrap();
        assert_eq!(s.wait_from(now), Duration::from_secs(30));
        let every10 = Schedule::parse("*/10 * * * *").unwrap();
        let now = Utc.with_ymd_and_hms(2024, 10, 1, 0, 3, 0).unwrap();
        assert_eq!(every10.wait_from(now), Duration::from_secs(7 * 60));
    }

    #[test]
    fn a_malformed_schedule_is_refused_with_what_was_expected() {
        assert!(Schedule::parse("*/10 * * *")
            .unwrap_err()
            .contains("expected 5"));
        assert!(Schedule::parse("61 * * * *").is_err());
    }
}
