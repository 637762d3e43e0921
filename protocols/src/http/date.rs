//! HTTP-date formatting and parsing (sans-IO).
//!
//! Owns: [`format_http_date`] (IMF-fixdate) and [`parse_http_date`] /
//! [`parse_http_date_at`] (IMF-fixdate plus the obsolete RFC 850 and asctime forms), with
//! the proleptic-Gregorian day arithmetic they share.
//! Contract: time arrives as an argument; nothing here reads the clock. Dates are whole
//! seconds, UTC (`GMT`); formatting clamps to 1970-01-01T00:00:00 .. 9999-12-31T23:59:59.
//! Does not: cache the formatted `Date` header (the engine adapter does, once per second).
//! Spec: RFC 9110 §5.6.7. Tests: `date/tests.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECS_PER_DAY: i64 = 86_400;

/// The last second a four-digit year can show: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

const DAY_NAMES: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const LONG_DAY_NAMES: [&[u8]; 7] = [
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
];
const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Formats `t` as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
///
/// Sub-second precision is dropped. Times before 1970 are clamped to the epoch and times
/// after 9999-12-31T23:59:59Z to that second (the format has a four-digit year).
#[must_use]
pub fn format_http_date(t: SystemTime) -> [u8; 29] {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS);
    // Both fit in i64: secs <= MAX_SECS.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
    let weekday = (days + 4).rem_euclid(7) as usize;

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAY_NAMES[weekday]);
    put_2(&mut out[5..7], u64::from(day));
    out[8..11].copy_from_slice(MONTH_NAMES[(month - 1) as usize]);
    // 1970 <= year <= 9999 by the clamp above.
    let year = year as u64;
    put_2(&mut out[12..14], year / 100);
    put_2(&mut out[14..16], year % 100);
    put_2(&mut out[17..19], rem / 3600);
    put_2(&mut out[20..22], rem / 60 % 60);
    put_2(&mut out[23..25], rem % 60);
    out
}

/// Writes `n` (< 100) as two ASCII digits.
fn put_2(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Parses an HTTP-date in any of the three forms RFC 9110 §5.6.7 requires recipients to
/// accept; returns `None` for anything else.
///
/// Forms: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). The input must
/// be exactly the date: no surrounding whitespace or trailing bytes. Names are
/// case-sensitive, as the grammar says. Day-of-month is checked against the month (and leap
/// years); hour must be < 24, minute < 60, second < 61, and a leap second (60) is read as 59.
/// The weekday name must be valid but is not checked against the date.
///
/// A two-digit RFC 850 year is resolved without a clock: 00–69 mean 2000–2069 and 70–99 mean
/// 1970–1999. This matches RFC 9110's "more than 50 years in the future" rule only for a
/// receiver living in 2019; use [`parse_http_date_at`] to apply the rule against a real
/// `now`. (RFC 850 dates are obsolete and vanishingly rare.)
///
/// Dates before 1970 are returned as they are when the platform's `SystemTime` can hold
/// them, else `None`.
#[must_use]
pub fn parse_http_date(s: &[u8]) -> Option<SystemTime> {
    parse(s, TwoDigitYear::Pivot1970)
}

/// Like [`parse_http_date`], but resolves an RFC 850 two-digit year against `now`.
///
/// RFC 9110 §5.6.7: "Recipients of a timestamp value in rfc850-date format, which uses a
/// two-digit year, MUST interpret a timestamp that appears to be more than 50 years in the
/// future as representing the most recent year in the past that had the same last two
/// digits."
#[must_use]
pub fn parse_http_date_at(s: &[u8], now: SystemTime) -> Option<SystemTime> {
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (now_year, _, _) = civil_from_days((now_secs / 86_400).min(i64::MAX as u64) as i64);
    parse(s, TwoDigitYear::Relative(now_year))
}

/// How an RFC 850 two-digit year becomes a full year.
#[derive(Clone, Copy, Debug)]
enum TwoDigitYear {
    /// 00–69 → 20xx, 70–99 → 19xx.
    Pivot1970,
    /// RFC 9110's rule against the given current year.
    Relative(i64),
}

impl TwoDigitYear {
    fn resolve(self, yy: i64) -> i64 {
        match self {
            TwoDigitYear::Pivot1970 => {
                if yy < 70 {
                    2000 + yy
                } else {
                    1900 + yy
                }
            }
            TwoDigitYear::Relative(now_year) => {
                // The one year with these last two digits in (now - 50, now + 50]: more than
                // 50 years ahead means the century before; 50 or more years behind means
                // the next century is still within 50 years (e.g. now 2099, yy 01 → 2101).
                let mut y = now_year - now_year.rem_euclid(100) + yy;
                if y > now_year + 50 {
                    y -= 100;
                } else if y <= now_year - 50 {
                    y += 100;
                }
                y
            }
        }
    }
}

/// Broken-down date and time of day, as parsed (before range checks).
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

fn parse(s: &[u8], two_digit: TwoDigitYear) -> Option<SystemTime> {
    let fields = if s.len() == 29 && s.get(3) == Some(&b',') {
        parse_imf_fixdate(s)?
    } else if s.len() == 24 && s.get(3) == Some(&b' ') {
        parse_asctime(s)?
    } else {
        parse_rfc850(s, two_digit)?
    };
    to_system_time(&fields)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(s: &[u8]) -> Option<Fields> {
    day_name(&s[0..3])?;
    expect(&s[3..5], b", ")?;
    let day = digits(&s[5..7])?;
    expect(&s[7..8], b" ")?;
    let month = month(&s[8..11])?;
    expect(&s[11..12], b" ")?;
    let year = i64::from(digits(&s[12..16])?);
    expect(&s[16..17], b" ")?;
    let (hour, minute, second) = time_of_day(&s[17..25])?;
    expect(&s[25..29], b" GMT")?;
    Some(Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn parse_rfc850(s: &[u8], two_digit: TwoDigitYear) -> Option<Fields> {
    let comma = s.iter().position(|&b| b == b',')?;
    let (name, rest) = s.split_at(comma);
    if !LONG_DAY_NAMES.contains(&name) || rest.len() != 24 {
        return None;
    }
    expect(&rest[0..2], b", ")?;
    let day = digits(&rest[2..4])?;
    expect(&rest[4..5], b"-")?;
    let month = month(&rest[5..8])?;
    expect(&rest[8..9], b"-")?;
    let year = two_digit.resolve(i64::from(digits(&rest[9..11])?));
    expect(&rest[11..12], b" ")?;
    let (hour, minute, second) = time_of_day(&rest[12..20])?;
    expect(&rest[20..24], b" GMT")?;
    Some(Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// `Sun Nov  6 08:49:37 1994` (day is `2DIGIT / ( SP DIGIT )`).
fn parse_asctime(s: &[u8]) -> Option<Fields> {
    day_name(&s[0..3])?;
    expect(&s[3..4], b" ")?;
    let month = month(&s[4..7])?;
    expect(&s[7..8], b" ")?;
    let day = if s[8] == b' ' {
        digits(&s[9..10])?
    } else {
        digits(&s[8..10])?
    };
    expect(&s[10..11], b" ")?;
    let (hour, minute, second) = time_of_day(&s[11..19])?;
    expect(&s[19..20], b" ")?;
    let year = i64::from(digits(&s[20..24])?);
    Some(Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

fn expect(got: &[u8], want: &[u8]) -> Option<()> {
    (got == want).then_some(())
}

fn day_name(s: &[u8]) -> Option<()> {
    DAY_NAMES.iter().any(|n| n.as_slice() == s).then_some(())
}

/// The month number, 1–12.
fn month(s: &[u8]) -> Option<u32> {
    let i = MONTH_NAMES.iter().position(|n| n.as_slice() == s)?;
    // i < 12.
    Some(i as u32 + 1)
}

/// `HH:MM:SS`, unchecked ranges.
fn time_of_day(s: &[u8]) -> Option<(u32, u32, u32)> {
    expect(&s[2..3], b":")?;
    expect(&s[5..6], b":")?;
    Some((digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?))
}

/// A non-empty run of ASCII digits (at most 4 here, so no overflow).
fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, &b| n * 10 + u32::from(b - b'0')))
}

fn to_system_time(f: &Fields) -> Option<SystemTime> {
    if !(1..=12).contains(&f.month)
        || f.day < 1
        || f.day > days_in_month(f.year, f.month)
        || f.hour >= 24
        || f.minute >= 60
        || f.second >= 61
    {
        return None;
    }
    // A leap second is read as the second before it.
    let second = f.second.min(59);
    let days = days_from_civil(f.year, f.month, f.day);
    let secs = days * SECS_PER_DAY
        + i64::from(f.hour) * 3600
        + i64::from(f.minute) * 60
        + i64::from(second);
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic-Gregorian date (Howard Hinnant's
/// `days_from_civil`; eras are 400-year cycles of 146 097 days starting 0000-03-01).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let mp = i64::from((month + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic-Gregorian `(year, month, day)` of a day count since 1970-01-01 (the
/// inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    // Both in range by construction: day in [1, 31], month in [1, 12].
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
