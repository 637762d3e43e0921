use std::time::Duration;

use super::*;
use crate::http::date::format_http_date;
use crate::http::static_files::test_support::TempDir;

const ETAG: &str = "\"5f5e100-0-3e8\"";

/// Last-Modified of the representation: Sun, 06 Nov 1994 08:49:37 GMT, plus 0.5 s (which
/// date comparisons must ignore).
fn last_modified() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(784_111_777_500)
}

const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

/// Header values for one case: (If-Match, If-None-Match, If-Modified-Since,
/// If-Unmodified-Since).
type Headers = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

fn pre(h: Headers) -> Preconditions<'static> {
    Preconditions {
        if_match: h.0.map(str::as_bytes),
        if_none_match: h.1.map(str::as_bytes),
        if_modified_since: h.2.map(str::as_bytes),
        if_unmodified_since: h.3.map(str::as_bytes),
        if_range: None,
    }
}

/// (headers, outcome for GET/HEAD, outcome for other methods)
fn cases() -> Vec<(Headers, Precondition, Precondition)> {
    use Precondition::{Failed, NotModified, Proceed};
    vec![
        // Nothing conditional.
        ((None, None, None, None), Proceed, Proceed),
        // If-Match: strong comparison; `*`; lists; W/ never matches.
        ((Some(ETAG), None, None, None), Proceed, Proceed),
        ((Some("*"), None, None, None), Proceed, Proceed),
        (
            (Some("\"x\", \"5f5e100-0-3e8\""), None, None, None),
            Proceed,
            Proceed,
        ),
        ((Some("\"x\""), None, None, None), Failed, Failed),
        (
            (Some("W/\"5f5e100-0-3e8\""), None, None, None),
            Failed,
            Failed,
        ),
        ((Some("5f5e100-0-3e8"), None, None, None), Failed, Failed),
        ((Some(""), None, None, None), Failed, Failed),
        // If-Unmodified-Since, only without If-Match.
        ((None, None, None, Some(LM)), Proceed, Proceed),
        ((None, None, None, Some(AFTER)), Proceed, Proceed),
        ((None, None, None, Some(BEFORE)), Failed, Failed),
        ((None, None, None, Some("yesterday")), Proceed, Proceed),
        ((Some(ETAG), None, None, Some(BEFORE)), Proceed, Proceed),
        ((Some("\"x\""), None, None, Some(AFTER)), Failed, Failed),
        // If-None-Match: weak comparison; 304 for GET/HEAD, 412 otherwise.
        ((None, Some(ETAG), None, None), NotModified, Failed),
        (
            (None, Some("W/\"5f5e100-0-3e8\""), None, None),
            NotModified,
            Failed,
        ),
        ((None, Some("*"), None, None), NotModified, Failed),
        (
            (None, Some(" \"a\" ,, W/\"5f5e100-0-3e8\" "), None, None),
            NotModified,
            Failed,
        ),
        ((None, Some("\"a\", \"b\""), None, None), Proceed, Proceed),
        // Malformed list: no match past the bad member.
        (
            (None, Some("\"a\" junk, \"5f5e100-0-3e8\""), None, None),
            Proceed,
            Proceed,
        ),
        ((None, Some("\"a"), None, None), Proceed, Proceed),
        // If-Modified-Since: GET/HEAD only, second granularity.
        ((None, None, Some(LM), None), NotModified, Proceed),
        ((None, None, Some(AFTER), None), NotModified, Proceed),
        ((None, None, Some(BEFORE), None), Proceed, Proceed),
        (
            (None, None, Some(" Sun, 06 Nov 1994 08:49:37 GMT "), None),
            NotModified,
            Proceed,
        ),
        (
            (None, None, Some("Sunday, 06-Nov-94 08:49:37 GMT"), None),
            NotModified,
            Proceed,
        ),
        (
            (None, None, Some("Sun Nov  6 08:49:37 1994"), None),
            NotModified,
            Proceed,
        ),
        ((None, None, Some("not a date"), None), Proceed, Proceed),
        // If-None-Match takes precedence over If-Modified-Since.
        (
            (None, Some("\"other\""), Some(AFTER), None),
            Proceed,
            Proceed,
        ),
        ((None, Some(ETAG), Some(BEFORE), None), NotModified, Failed),
        // If-Match failing wins over If-None-Match.
        ((Some("\"x\""), Some(ETAG), None, None), Failed, Failed),
        ((Some(ETAG), Some(ETAG), None, None), NotModified, Failed),
        // If-Unmodified-Since failing wins over If-Modified-Since.
        ((None, None, Some(AFTER), Some(BEFORE)), Failed, Failed),
    ]
}

#[test]
fn evaluates_in_rfc_9110_order() {
    for (headers, get, other) in cases() {
        let p = pre(headers);
        assert_eq!(
            p.evaluate(true, ETAG, last_modified()),
            get,
            "GET {headers:?}"
        );
        assert_eq!(
            p.evaluate(false, ETAG, last_modified()),
            other,
            "other {headers:?}"
        );
    }
}

/// (If-Range, allowed)
const IF_RANGE_CASES: &[(Option<&str>, bool)] = &[
    (None, true),
    (Some(ETAG), true),
    (Some(" \"5f5e100-0-3e8\" "), true),
    (Some("W/\"5f5e100-0-3e8\""), false),
    (Some("\"other\""), false),
    (Some("\"5f5e100-0-3e8\", \"x\""), false),
    (Some("\"5f5e100-0-3e8"), false),
    (Some(LM), true),
    (Some(BEFORE), false),
    (Some(AFTER), false),
    (Some("garbage"), false),
    (Some(""), false),
];

#[test]
fn if_range() {
    for &(value, want) in IF_RANGE_CASES {
        let p = Preconditions {
            if_range: value.map(str::as_bytes),
            ..Preconditions::default()
        };
        assert_eq!(p.if_range_allows(ETAG, last_modified()), want, "{value:?}");
    }
    // A weak ETag of ours never allows a range by tag.
    let p = Preconditions {
        if_range: Some(b"W/\"a\""),
        ..Preconditions::default()
    };
    assert!(!p.if_range_allows("W/\"a\"", last_modified()));
}

#[test]
fn second_granularity_before_epoch() {
    let t = UNIX_EPOCH - Duration::from_millis(500);
    assert_eq!(unix_secs(t), -1);
    assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(1)), -1);
    assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(999)), 0);
}

#[test]
fn etag_from_metadata() {
    let tmp = TempDir::new("etag");
    let path = tmp.file("f.txt", &[b'x'; 1000]);
    let mtime = UNIX_EPOCH + Duration::new(100_000_000, 123);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(mtime).unwrap();
    let md = std::fs::metadata(&path).unwrap();
    // Filesystems may round the nanoseconds; rebuild from what was stored.
    let stored = md.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(stored.as_secs(), 100_000_000);
    let want = format!("\"5f5e100-{:x}-3e8\"", stored.subsec_nanos());
    assert_eq!(etag_for(&md), want);
    // It is a strong tag that matches itself.
    let p = Preconditions {
        if_match: Some(want.as_bytes()),
        if_range: Some(want.as_bytes()),
        ..Preconditions::default()
    };
    let lm = md.modified().unwrap();
    assert_eq!(p.evaluate(true, &want, lm), Precondition::Proceed);
    assert!(p.if_range_allows(&want, lm));
    // And If-Modified-Since with the formatted Last-Modified gives 304.
    let date = format_http_date(lm);
    let p = Preconditions {
        if_modified_since: Some(&date),
        ..Preconditions::default()
    };
    assert_eq!(p.evaluate(true, &want, lm), Precondition::NotModified);
}
