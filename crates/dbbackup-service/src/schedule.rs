//! Cron schedules: when a job's operation is due.

use std::time::Duration;

use chrono::TimeZone;
use croner::parser::{CronParser, Seconds, Year};
use dbbackup_core::{Error, ErrorKind, Result};
use time::OffsetDateTime;

/// A cron expression in a time zone: 5 fields (minute hour day-of-month month day-of-week), 6
/// with seconds first, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Occurrences
/// follow the zone's clock across daylight-saving changes: a time that does not exist that day
/// (the spring gap) runs at the first moment after it, one that exists twice runs once.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// `expr` in UTC.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] saying what a cron expression looks like.
    pub fn parse(expr: &str) -> Result<Self> {
        Self::parse_in(expr, "UTC")
    }

    /// `expr` in the IANA time zone `tz` (e.g. `Europe/Berlin`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad expression or an unknown zone.
    pub fn parse_in(expr: &str, tz: &str) -> Result<Self> {
        let zone: chrono_tz::Tz = tz.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("time zone {tz:?} is not an IANA zone name (e.g. UTC, Europe/Berlin)"),
            )
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "schedule {expr:?} is not a cron expression ({e}): give 5 fields \
                         (minute hour day-of-month month day-of-week, e.g. \"*/10 * * * *\"), 6 \
                         with seconds first, or @hourly, @daily, @weekly, @monthly"
                    ),
                )
            })?;
        Ok(Schedule {
            text: expr.to_owned(),
            cron,
            tz: zone,
        })
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence strictly after `t` (`None`: never again).
    pub fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let nanos = i64::try_from(t.unix_timestamp_nanos()).ok()?;
        let local = chrono::Utc.timestamp_nanos(nanos).with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(next.timestamp_nanos_opt()?)).ok()
    }

    /// The time between the two occurrences that follow `t`: how old the newest backup may be
    /// before a job is behind its schedule.
    pub fn interval_after(&self, t: OffsetDateTime) -> Option<Duration> {
        let a = self.next_after(t)?;
        let b = self.next_after(a)?;
        (b - a).try_into().ok()
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.text, self.tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn five_and_six_fields_aliases_and_bad_ones() {
        let s = Schedule::parse("*/10 * * * *").unwrap();
        let t = datetime!(2026-12-03 10:03:07 UTC);
        assert_eq!(s.next_after(t), Some(datetime!(2026-12-03 10:10:00 UTC)));
        assert_eq!(s.interval_after(t), Some(Duration::from_secs(600)));
        let s = Schedule::parse("*/5 * * * * *").unwrap();
        assert_eq!(s.next_after(t), Some(datetime!(2026-12-03 10:03:10 UTC)));
        let s = Schedule::parse("@daily").unwrap();
        assert_eq!(s.next_after(t), Some(datetime!(2026-12-04 00:00:00 UTC)));
        for bad in ["", "every day", "61 * * * *", "* * * *"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("cron expression"), "{e}");
        }
        let e = Schedule::parse_in("@daily", "Mars/Olympus").unwrap_err();
        assert!(e.to_string().contains("IANA"), "{e}");
    }

    #[test]
    fn time_zones_and_daylight_saving_boundaries() {
        // 02:30 every day in Berlin: on 2026-03-29 the clocks jump from 02:00 to 03:00 (no
        // 02:30 that day: it runs at the gap's end, 03:00 CEST = 01:00 UTC); on 2026-10-25
        // 02:30 happens twice (once, at the first).
        let s = Schedule::parse_in("30 2 * * *", "Europe/Berlin").unwrap();
        let before = datetime!(2026-03-28 12:00 UTC);
        assert_eq!(
            s.next_after(before),
            Some(datetime!(2026-03-29 01:00 UTC)),
            "the spring gap"
        );
        let day_after = s.next_after(datetime!(2026-03-29 01:00 UTC)).unwrap();
        assert_eq!(day_after, datetime!(2026-03-30 00:30 UTC), "CEST");
        let first = s.next_after(datetime!(2026-10-24 12:00 UTC)).unwrap();
        assert_eq!(first, datetime!(2026-10-25 00:30 UTC), "02:30 CEST");
        let then = s.next_after(first).unwrap();
        assert_eq!(then, datetime!(2026-10-26 01:30 UTC), "once only, then CET");
        // Winter in Berlin: 02:30 CET = 01:30 UTC.
        assert_eq!(
            s.next_after(datetime!(2026-12-03 12:00 UTC)),
            Some(datetime!(2026-12-04 01:30 UTC))
        );
    }
}
