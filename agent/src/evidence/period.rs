//! The period of an evidence pack: whole days in Asia/Tokyo, both ends included.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::EvidenceError;

/// Whole JST days `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// JST midnight of a day, as UTC epoch seconds.
pub fn jst_midnight(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp()
        - 9 * 3600
}

/// The JST month (`YYYY-MM`) of a UTC epoch second.
pub fn jst_month(epoch: i64) -> String {
    let d = DateTime::<Utc>::from_timestamp(epoch + 9 * 3600, 0).unwrap_or_default();
    format!("{:04}-{:02}", d.year(), d.month())
}

impl Period {
    /// From `--year` or `--from`/`--to` (YYYY-MM-DD): exactly one of the two forms.
    pub fn from_args(
        year: Option<i32>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Period, EvidenceError> {
        let date = |flag: &str, s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                EvidenceError::Period(format!(
                    "--{flag} {s:?}: expected a date YYYY-MM-DD (Asia/Tokyo)"
                ))
            })
        };
        let p = match (year, from, to) {
            (Some(y), None, None) => {
                let (Some(from), Some(to)) = (
                    NaiveDate::from_ymd_opt(y, 1, 1),
                    NaiveDate::from_ymd_opt(y, 12, 31),
                ) else {
                    return Err(EvidenceError::Period(format!("--year {y}: not a year")));
                };
                Period { from, to }
            }
            (None, Some(f), Some(t)) => Period {
                from: date("from", f)?,
                to: date("to", t)?,
            },
            (Some(_), _, _) => {
                return Err(EvidenceError::Period(
                    "give either --year or --from and --to, not both".into(),
                ))
            }
            _ => {
                return Err(EvidenceError::Period(
                    "expected --year YYYY, or --from YYYY-MM-DD and --to YYYY-MM-DD".into(),
                ))
            }
        };
        if p.from > p.to {
            return Err(EvidenceError::Period(format!(
                "--from {} is after --to {}",
                p.from, p.to
            )));
        }
        if !(2000..=2099).contains(&p.from.year()) || !(2000..=2099).contains(&p.to.year()) {
            return Err(EvidenceError::Period(
                "expected dates between 2000 and 2099".into(),
            ));
        }
        Ok(p)
    }

    /// The first second of the period (UTC epoch).
    pub fn start(&self) -> i64 {
        jst_midnight(self.from)
    }

    /// The first second after the period (UTC epoch).
    pub fn end(&self) -> i64 {
        jst_midnight(self.to.succ_opt().expect("before 2100"))
    }

    pub fn contains(&self, epoch: i64) -> bool {
        (self.start()..self.end()).contains(&epoch)
    }

    /// Whether an RFC 3339 time falls in the period (an unreadable time does not).
    pub fn contains_rfc3339(&self, t: &str) -> bool {
        DateTime::parse_from_rfc3339(t).is_ok_and(|d| self.contains(d.timestamp()))
    }

    /// The JST months the period touches, each with its first second and the first second
    /// after it, clipped to the period.
    pub fn months(&self) -> Vec<(String, i64, i64)> {
        let mut out = Vec::new();
        let mut first = NaiveDate::from_ymd_opt(self.from.year(), self.from.month(), 1)
            .expect("first of the month");
        while first <= self.to {
            let next = if first.month() == 12 {
                NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
            }
            .expect("first of the month");
            let s = jst_midnight(first).max(self.start());
            let e = jst_midnight(next).min(self.end());
            out.push((format!("{:04}-{:02}", first.year(), first.month()), s, e));
            first = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_is_its_jst_days_and_months() {
        let p = Period::from_args(Some(2026), None, None).unwrap();
        assert_eq!(p.start(), 1_767_193_200); // 2025-12-31T15:00:00Z
        assert!(p.contains_rfc3339("2025-12-31T15:00:00Z"));
        assert!(!p.contains_rfc3339("2025-12-31T14:59:59Z"));
        assert!(p.contains_rfc3339("2026-12-31T14:59:59Z"));
        assert!(!p.contains_rfc3339("2026-12-31T15:00:00Z"));
        let m = p.months();
        assert_eq!(m.len(), 12);
        assert_eq!(m[0].0, "2026-01");
        assert_eq!(m[11].2, p.end());
        assert_eq!(jst_month(p.start()), "2026-01");
    }

    #[test]
    fn a_bad_period_is_refused_with_its_reason() {
        for (y, f, t) in [
            (None, Some("2026-05-01"), Some("2026-04-01")),
            (None, Some("2026-13-01"), Some("2026-12-01")),
            (Some(2026), Some("2026-01-01"), None),
            (None, Some("2026-01-01"), None),
            (None, None, None),
            (Some(1999), None, None),
        ] {
            let e = Period::from_args(y, f, t).unwrap_err();
            assert_eq!(e.reason(), "evidence_period_invalid", "{e}");
        }
        let p = Period::from_args(None, Some("2026-04-15"), Some("2026-05-02")).unwrap();
        let m = p.months();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].1, p.start());
        assert_eq!(m[1].2, p.end());
    }
}
