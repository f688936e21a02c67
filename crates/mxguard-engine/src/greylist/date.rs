//! The date in the `X-Greylist:` header, formatted without a time-zone database.
//!
//! postgrey writes `strftime("%a, %d %b %Y %T %Z", localtime)`; the engine has no time zone,
//! so mxguard writes the same shape in UTC (`Tue, 24 Nov 2026 09:05:00 UTC`).

use crate::clock::UnixTime;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Civil date (year, month 1-12, day 1-31) of a day count since 1970-01-01; Howard Hinnant's
/// `civil_from_days` algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, usize, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `Www, DD Mon YYYY HH:MM:SS UTC`.
pub fn header_date_utc(t: UnixTime) -> String {
    let secs = t.0;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[(days % 7) as usize];
    let month_name = MONTHS.get(month.wrapping_sub(1)).copied().unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(
            header_date_utc(UnixTime(0)),
            "Thu, 01 Jan 1970 00:00:00 UTC"
        );
        // 2000-02-29 (leap day) 12:34:56.
        assert_eq!(
            header_date_utc(UnixTime(951_827_696)),
            "Tue, 29 Feb 2000 12:34:56 UTC"
        );
        // 2026-11-24 00:05:00.
        assert_eq!(
            header_date_utc(UnixTime(1_795_478_700)),
            "Tue, 24 Nov 2026 00:05:00 UTC"
        );
    }
}
