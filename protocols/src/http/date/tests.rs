use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn secs_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// A slow, obviously-correct calendar: count whole years, then whole months.
fn naive_civil(mut days: i64) -> (i64, u32, u32) {
    let mut year = 1970;
    loop {
        let len = if is_leap_year(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    while days >= i64::from(days_in_month(year, month)) {
        days -= i64::from(days_in_month(year, month));
        month += 1;
    }
    (year, month, days as u32 + 1)
}

fn date(y: i64, mo: u32, d: u32, h: u64, mi: u64, s: u64) -> SystemTime {
    at(days_from_civil(y, mo, d) as u64 * 86_400 + h * 3600 + mi * 60 + s)
}

/// (time, IMF-fixdate)
fn format_cases() -> Vec<(SystemTime, &'static str)> {
    vec![
        (at(0), "Thu, 01 Jan 1970 00:00:00 GMT"),
        (at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT"),
        (date(2000, 2, 29, 12, 0, 0), "Tue, 29 Feb 2000 12:00:00 GMT"),
        (
            date(2100, 2, 28, 23, 59, 59),
            "Sun, 28 Feb 2100 23:59:59 GMT",
        ),
        (date(2100, 3, 1, 0, 0, 0), "Mon, 01 Mar 2100 00:00:00 GMT"),
        (date(2038, 1, 19, 3, 14, 8), "Tue, 19 Jan 2038 03:14:08 GMT"),
        (at(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT"),
        (at(MAX_SECS), "Fri, 31 Dec 9999 23:59:59 GMT"),
        // Sub-second precision is dropped.
        (
            at(784_111_777) + Duration::from_millis(999),
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ),
    ]
}

#[test]
fn formats_imf_fixdate() {
    for (t, want) in format_cases() {
        assert_eq!(
            std::str::from_utf8(&format_http_date(t)).unwrap(),
            want,
            "{t:?}"
        );
    }
}

#[test]
fn format_clamps_out_of_range_times() {
    let before = UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(&format_http_date(before), b"Thu, 01 Jan 1970 00:00:00 GMT");
    let after = at(MAX_SECS + 86_400 * 400);
    assert_eq!(&format_http_date(after), b"Fri, 31 Dec 9999 23:59:59 GMT");
}

#[test]
fn civil_from_days_matches_naive_calendar() {
    // Every day from 1970 to past 2100, plus both leap-rule centuries.
    for days in 0..(days_from_civil(2101, 1, 1)) {
        let want = naive_civil(days);
        assert_eq!(civil_from_days(days), want, "day {days}");
        assert_eq!(days_from_civil(want.0, want.1, want.2), days);
    }
}

#[test]
fn round_trips_every_1e5_seconds_1970_to_2100() {
    let end = days_from_civil(2100, 12, 31) as u64 * 86_400;
    let mut secs = 0;
    while secs < end {
        let t = at(secs);
        let text = format_http_date(t);
        assert_eq!(
            parse_http_date(&text),
            Some(t),
            "{}",
            String::from_utf8_lossy(&text)
        );
        secs += 100_003; // not a divisor of a day, so times of day vary
    }
}

#[test]
fn round_trips_leap_days_and_century_edges() {
    for t in [
        date(2000, 2, 29, 0, 0, 0),
        date(2000, 2, 29, 23, 59, 59),
        date(2100, 2, 28, 23, 59, 59),
        date(2100, 3, 1, 0, 0, 0),
        date(2024, 2, 29, 6, 30, 0),
        date(1972, 2, 29, 0, 0, 1),
        at(MAX_SECS),
    ] {
        assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
    }
}

/// (input, expected seconds since the epoch; `None` = rejected)
fn parse_cases() -> Vec<(&'static [u8], Option<i64>)> {
    vec![
        // The three RFC 9110 §5.6.7 examples.
        (b"Sun, 06 Nov 1994 08:49:37 GMT", Some(784_111_777)),
        (b"Sunday, 06-Nov-94 08:49:37 GMT", Some(784_111_777)),
        (b"Sun Nov  6 08:49:37 1994", Some(784_111_777)),
        // asctime with a two-digit day.
        (b"Thu Nov 24 08:49:37 1994", Some(785_666_977)),
        (b"Thu Nov 06 08:49:37 1994", Some(784_111_777)),
        // Leap days.
        (b"Tue, 29 Feb 2000 00:00:00 GMT", Some(951_782_400)),
        (b"Thu, 29 Feb 2024 00:00:00 GMT", Some(1_709_164_800)),
        // A leap second reads as :59.
        (b"Sat, 31 Dec 2016 23:59:60 GMT", Some(1_483_228_799)),
        // The weekday name is not checked against the date.
        (b"Mon, 06 Nov 1994 08:49:37 GMT", Some(784_111_777)),
        // RFC 850 two-digit years pivot at 70 in parse_http_date.
        (b"Thursday, 01-Jan-70 00:00:00 GMT", Some(0)),
        (b"Friday, 01-Jan-38 00:00:00 GMT", Some(2_145_916_800)),
        // Before 1970 (representable on the test platforms).
        (b"Wed, 31 Dec 1969 23:59:59 GMT", Some(-1)),
        // Rejects: garbage and empty.
        (b"", None),
        (b"garbage", None),
        (b"Sun, 06 Nov 1994 08:49:37 GMX", None),
        // Misspelled or wrong-case names.
        (b"Snu, 06 Nov 1994 08:49:37 GMT", None),
        (b"sun, 06 Nov 1994 08:49:37 GMT", None),
        (b"Sun, 06 Nvo 1994 08:49:37 GMT", None),
        (b"Sun, 06 nov 1994 08:49:37 GMT", None),
        (b"Sundai, 06-Nov-94 08:49:37 GMT", None),
        (b"Sun, 06-Nov-94 08:49:37 GMT", None),
        (b"Sunday, 06 Nov 1994 08:49:37 GMT", None),
        // Out-of-range fields.
        (b"Sun, 00 Nov 1994 08:49:37 GMT", None),
        (b"Sun, 31 Nov 1994 08:49:37 GMT", None),
        (b"Tue, 29 Feb 2100 00:00:00 GMT", None),
        (b"Sat, 29 Feb 2023 00:00:00 GMT", None),
        (b"Sun, 06 Nov 1994 24:00:00 GMT", None),
        (b"Sun, 06 Nov 1994 08:60:37 GMT", None),
        (b"Sun, 06 Nov 1994 08:49:61 GMT", None),
        (b"Sun Nov 32 08:49:37 1994", None),
        (b"Sunday, 06-Nov-94 25:49:37 GMT", None),
        // Trailing, leading or missing bytes.
        (b"Sun, 06 Nov 1994 08:49:37 GMT ", None),
        (b" Sun, 06 Nov 1994 08:49:37 GMT", None),
        (b"Sun, 06 Nov 1994 08:49:37 GMTX", None),
        (b"Sun, 06 Nov 1994 08:49:37", None),
        (b"Sunday, 06-Nov-94 08:49:37 GMT\r", None),
        (b"Sun Nov  6 08:49:37 1994 ", None),
        (b"Sun Nov  6 08:49:37 94", None),
        // Wrong separators and non-digits.
        (b"Sun, 06 Nov 1994 08-49-37 GMT", None),
        (b"Sun, 0x Nov 1994 08:49:37 GMT", None),
        (b"Sun, 06 Nov +994 08:49:37 GMT", None),
        (b"Sun Nov 6  08:49:37 1994", None),
        (b"Sun Nov  + 08:49:37 1994", None),
        (b"Sunday, 06-Nov-94 08:49:37 UTC", None),
        // Non-ASCII must not panic.
        ("Sön, 06 Nov 1994 08:49:37 GMT".as_bytes(), None),
        ("Sunday\u{e9}, 06-Nov-94 08:49:37 GMT".as_bytes(), None),
    ]
}

#[test]
fn parses_and_rejects() {
    for (input, want) in parse_cases() {
        let got = parse_http_date(input).map(secs_of);
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn proper_prefixes_of_valid_dates_are_rejected() {
    for (input, want) in parse_cases() {
        if want.is_none() {
            continue;
        }
        for cut in 0..input.len() {
            assert_eq!(
                parse_http_date(&input[..cut]),
                None,
                "{input:?} cut at {cut}"
            );
        }
    }
}

/// (now's year, two-digit year, resolved year) for RFC 9110's 50-year rule.
const TWO_DIGIT_CASES: &[(i64, i64, i64)] = &[
    (2026, 94, 1994),
    (2026, 76, 2076),
    (2026, 77, 1977),
    (2026, 0, 2000),
    (2026, 26, 2026),
    (2099, 1, 2101),
    (2099, 49, 2149),
    (2099, 50, 2050),
    (1999, 49, 2049),
    (1999, 50, 1950),
];

#[test]
fn rfc850_two_digit_year_relative_to_now() {
    for &(now_year, yy, want) in TWO_DIGIT_CASES {
        assert_eq!(
            TwoDigitYear::Relative(now_year).resolve(yy),
            want,
            "now {now_year}, yy {yy}"
        );
    }
    let now = date(2026, 11, 21, 0, 0, 0);
    assert_eq!(
        parse_http_date_at(b"Sunday, 06-Nov-94 08:49:37 GMT", now),
        Some(at(784_111_777))
    );
    assert_eq!(
        parse_http_date_at(b"Monday, 01-Jan-75 00:00:00 GMT", now),
        Some(date(2075, 1, 1, 0, 0, 0))
    );
    // Other forms ignore `now`.
    assert_eq!(
        parse_http_date_at(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
        Some(at(784_111_777))
    );
}
