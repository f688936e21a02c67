//! Timestamps of log lines and the report's time range.
//!
//! Parses, without allocating, the stamps the report meets: traditional syslog
//! (`Dec  7 05:26:33`, local time, no year: the year is inferred from "now", and a date more
//! than a day in the future belongs to the year before, as logs are read after they were
//! written), RFC 3339 / journalctl `short-iso` (`2026-12-07T05:26:33.123456+00:00`, `+0000`,
//! `Z`) and fail2ban.log's `2026-12-07 05:26:33,123` (local time). Local time is converted
//! once per hour of the log (a small cache), so the per-line cost is a few byte compares.
//! It does not read the clock: "now" is given by the caller (`cli::report`, or a test).
//! Also parses the `--since/--from/--to` arguments.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Converts log stamps to Unix seconds; keeps a one-hour cache per stamp kind.
#[derive(Debug)]
pub struct Stamps {
    tz: TimeZone,
    now: i64,
    /// The local year at `now`.
    year: i16,
    /// (year, month, day, hour) -> Unix second of that local hour.
    local_cache: Option<((i16, i8, i8, i8), i64)>,
}

impl Stamps {
    /// `now` (Unix seconds) decides the year of syslog stamps; `tz` is the logs' local zone.
    pub fn new(tz: TimeZone, now: i64) -> Stamps {
        let year = jiff::Timestamp::from_second(now)
            .map(|t| tz.to_datetime(t).year())
            .unwrap_or(1970);
        Stamps {
            tz,
            now,
            year,
            local_cache: None,
        }
    }

    /// The zone local stamps are read in.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// Unix second of a local civil time (cached per hour; `None` if it does not exist).
    fn local(&mut self, y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> Option<i64> {
        let key = (y, mo, d, h);
        let base = match self.local_cache {
            Some((k, v)) if k == key => v,
            _ => {
                let dt = DateTime::new(y, mo, d, h, 0, 0, 0).ok()?;
                let v = self
                    .tz
                    .to_ambiguous_timestamp(dt)
                    .compatible()
                    .ok()?
                    .as_second();
                self.local_cache = Some((key, v));
                v
            }
        };
        Some(base + i64::from(mi) * 60 + i64::from(s))
    }

    /// A syslog stamp at the start of `line` (`Mmm dd HH:MM:SS`, 15 bytes): Unix second.
    pub fn syslog(&mut self, line: &[u8]) -> Option<i64> {
        let b = line.get(..15)?;
        let mo = MONTHS.iter().position(|m| &b[..3] == *m)? as i8 + 1;
        if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
            return None;
        }
        let d = if b[4] == b' ' {
            digit(b[5])?
        } else {
            two(b[4], b[5])?
        };
        let (h, mi, s) = (two(b[7], b[8])?, two(b[10], b[11])?, two(b[13], b[14])?);
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let s = s.min(59);
        let year = self.year;
        let t = self.local(year, mo, d, h, mi, s)?;
        if t > self.now + 86_400 {
            return self.local(year - 1, mo, d, h, mi, s);
        }
        Some(t)
    }

    /// An ISO stamp at the start of `line`: RFC 3339 with `T` (offset `Z`, `+hh:mm` or
    /// `+hhmm`, optional fraction), or fail2ban's `YYYY-MM-DD HH:MM:SS,mmm` (local time).
    /// Returns the Unix second and the stamp's length in bytes.
    pub fn iso(&mut self, line: &[u8]) -> Option<(i64, usize)> {
        let b = line.get(..19)?;
        if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let y = i16::from(two(b[0], b[1])?) * 100 + i16::from(two(b[2], b[3])?);
        let (mo, d) = (two(b[5], b[6])?, two(b[8], b[9])?);
        let (h, mi, s) = (two(b[11], b[12])?, two(b[14], b[15])?, two(b[17], b[18])?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let s = s.min(59);
        let mut i = 19;
        if b[10] == b' ' {
            // fail2ban: `,mmm` milliseconds, local time.
            if line.get(i) == Some(&b',') {
                i += 1;
                while line.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            return Some((self.local(y, mo, d, h, mi, s)?, i));
        }
        if b[10] != b'T' {
            return None;
        }
        if line.get(i) == Some(&b'.') {
            i += 1;
            while line.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        let civil = days_from_civil(i64::from(y), i64::from(mo), i64::from(d)) * 86_400
            + i64::from(h) * 3600
            + i64::from(mi) * 60
            + i64::from(s);
        match line.get(i) {
            Some(b'Z' | b'z') => Some((civil, i + 1)),
            Some(&sign @ (b'+' | b'-')) => {
                let oh = two(*line.get(i + 1)?, *line.get(i + 2)?)?;
                let mut j = i + 3;
                if line.get(j) == Some(&b':') {
                    j += 1;
                }
                let om = two(*line.get(j)?, *line.get(j + 1)?)?;
                let off = i64::from(oh) * 3600 + i64::from(om) * 60;
                let t = if sign == b'+' {
                    civil - off
                } else {
                    civil + off
                };
                Some((t, j + 2))
            }
            // No offset: local time.
            _ => Some((self.local(y, mo, d, h, mi, s)?, i)),
        }
    }
}

fn digit(c: u8) -> Option<i8> {
    c.is_ascii_digit().then(|| (c - b'0') as i8)
}

fn two(a: u8, b: u8) -> Option<i8> {
    Some(digit(a)? * 10 + digit(b)?)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `--from`/`--to`: RFC 3339 (`2026-12-07T05:00:00Z`), or `YYYY-MM-DD[ HH:MM[:SS]]` (also with
/// `T`) in `tz`. Returns Unix seconds.
pub fn parse_point(text: &str, tz: &TimeZone) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_second());
    }
    let dt: Result<DateTime, _> = if t.len() == 10 {
        t.parse::<jiff::civil::Date>()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    } else {
        t.replacen(' ', "T", 1).parse::<DateTime>()
    };
    let dt = dt.map_err(|_| {
        format!(
            "{t:?} is not a time: write RFC 3339 (2026-12-07T05:00:00Z) or YYYY-MM-DD[ HH:MM[:SS]]"
        )
    })?;
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .map(|ts| ts.as_second())
        .map_err(|e| format!("{t:?}: {e}"))
}

/// Formats a Unix second as RFC 3339 UTC (`2026-12-07T05:00:00Z`).
pub fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(now: &str) -> Stamps {
        Stamps::new(TimeZone::UTC, parse_point(now, &TimeZone::UTC).unwrap())
    }

    #[test]
    fn syslog_year_inferred_from_now() {
        let mut s = utc("2026-12-07T06:00:00Z");
        let t = s.syslog(b"Dec  7 05:26:33 mail x").unwrap();
        assert_eq!(rfc3339(t), "2026-12-07T05:26:33Z");
        // Tomorrow is still this year; two days ahead is last year.
        assert_eq!(
            rfc3339(s.syslog(b"Dec  8 05:00:00").unwrap()),
            "2026-12-08T05:00:00Z"
        );
        assert_eq!(
            rfc3339(s.syslog(b"Dec 10 05:00:00").unwrap()),
            "2025-12-10T05:00:00Z"
        );
        let mut jan = utc("2027-01-02T00:00:00Z");
        assert_eq!(
            rfc3339(jan.syslog(b"Dec 31 23:59:59").unwrap()),
            "2026-12-31T23:59:59Z"
        );
        assert!(s.syslog(b"Foo  7 05:26:33").is_none());
        assert!(s.syslog(b"Dec  7 25:26:33").is_none());
        assert!(s.syslog(b"Dec  7").is_none());
    }

    #[test]
    fn iso_offsets_and_fractions() {
        let mut s = utc("2026-12-07T06:00:00Z");
        let (t, n) = s.iso(b"2026-12-07T05:26:33.123456+00:00 host").unwrap();
        assert_eq!((rfc3339(t).as_str(), n), ("2026-12-07T05:26:33Z", 32));
        let (t, n) = s.iso(b"2026-12-07T07:26:33+0200 host").unwrap();
        assert_eq!((rfc3339(t).as_str(), n), ("2026-12-07T05:26:33Z", 24));
        let (t, _) = s.iso(b"2026-12-07T05:26:33.5Z").unwrap();
        assert_eq!(rfc3339(t), "2026-12-07T05:26:33Z");
        let (t, n) = s.iso(b"2026-12-07 05:26:33,123 fail2ban").unwrap();
        assert_eq!((rfc3339(t).as_str(), n), ("2026-12-07T05:26:33Z", 23));
        assert!(s.iso(b"2026-13-07T05:26:33Z").is_none());
    }

    #[test]
    fn range_points() {
        let tz = TimeZone::UTC;
        assert_eq!(parse_point("1970-01-02", &tz), Ok(86_400));
        assert_eq!(parse_point("1970-01-02 00:01", &tz), Ok(86_460));
        assert_eq!(parse_point("1970-01-02 00:01:05", &tz), Ok(86_465));
        assert_eq!(parse_point("1970-01-02T01:00:00+01:00", &tz), Ok(86_400));
        assert!(parse_point("yesterday", &tz).is_err());
    }
}
