use super::*;

use RangeOutcome::{Full, Unsatisfiable};

fn part(start: u64, end_inclusive: u64) -> RangeOutcome {
    RangeOutcome::Partial {
        start,
        end_inclusive,
    }
}

/// (header, length, expected)
fn cases() -> Vec<(&'static [u8], u64, RangeOutcome)> {
    vec![
        // The three forms.
        (b"bytes=0-99", 1000, part(0, 99)),
        (b"bytes=500-", 1000, part(500, 999)),
        (b"bytes=-100", 1000, part(900, 999)),
        (b"bytes=0-0", 1000, part(0, 0)),
        (b"bytes=999-999", 1000, part(999, 999)),
        // The unit is case-insensitive.
        (b"Bytes=0-1", 10, part(0, 1)),
        (b"BYTES=0-1", 10, part(0, 1)),
        // Clamping.
        (b"bytes=0-5000", 1000, part(0, 999)),
        (b"bytes=-5000", 1000, part(0, 999)),
        (b"bytes=990-99999999999999999999999", 1000, part(990, 999)),
        // Unsatisfiable.
        (b"bytes=1000-", 1000, Unsatisfiable),
        (b"bytes=1000-2000", 1000, Unsatisfiable),
        (b"bytes=99999999999999999999999-", 1000, Unsatisfiable),
        (b"bytes=-0", 1000, Unsatisfiable),
        (b"bytes=0-0", 0, Unsatisfiable),
        (b"bytes=0-", 0, Unsatisfiable),
        (b"bytes=-5", 0, Unsatisfiable),
        (b"bytes=1000-,2000-", 1000, Unsatisfiable),
        // Several ranges that coalesce (overlapping, adjacent, out of order, duplicate).
        (b"bytes=0-99,100-199", 1000, part(0, 199)),
        (b"bytes=0-99, 50-149", 1000, part(0, 149)),
        (b"bytes=100-199,0-99", 1000, part(0, 199)),
        (b"bytes=0-9,0-9", 1000, part(0, 9)),
        (b"bytes=0-9 ,\t10-19", 1000, part(0, 19)),
        (b"bytes=900-,-50", 1000, part(900, 999)),
        (b"bytes=0-,5-9", 10, part(0, 9)),
        // Empty list elements are allowed.
        (b"bytes=,0-9,,", 1000, part(0, 9)),
        // Unsatisfiable members are dropped; the rest is served.
        (b"bytes=0-9,5000-6000", 1000, part(0, 9)),
        (b"bytes=-0,0-9", 1000, part(0, 9)),
        // Several ranges with a gap: no multipart, the whole thing.
        (b"bytes=0-9,20-29", 1000, Full),
        (b"bytes=0-0,-1", 1000, Full),
        // Syntactically invalid: ignored.
        (b"", 1000, Full),
        (b"bytes", 1000, Full),
        (b"bytes=", 1000, Full),
        (b"bytes=,", 1000, Full),
        (b"bytes=-", 1000, Full),
        (b"bytes=a-b", 1000, Full),
        (b"bytes=1-2-3", 1000, Full),
        (b"bytes=9-1", 1000, Full),
        (b"bytes=+1-2", 1000, Full),
        (b"bytes=0x1-2", 1000, Full),
        (b"bytes = 0-1", 1000, Full),
        (b"bytes=0 - 1", 1000, Full),
        (b"bytes=0-1;x", 1000, Full),
        (b"items=0-1", 1000, Full),
        (b"=0-1", 1000, Full),
        (b"0-1", 1000, Full),
        // One bad member spoils the header.
        (b"bytes=0-1,x", 1000, Full),
        (b"bytes=0-1,9-1", 1000, Full),
        ("bytes=0-1,\u{e9}".as_bytes(), 1000, Full),
    ]
}

#[test]
fn evaluates_range_headers() {
    for (header, len, want) in cases() {
        assert_eq!(
            parse_range(header, len),
            want,
            "{:?} len {len}",
            String::from_utf8_lossy(header)
        );
    }
}

#[test]
fn range_count_is_capped() {
    let list = |n: usize| {
        let specs: Vec<String> = (0..n).map(|i| format!("{i}-{i}")).collect();
        format!("bytes={}", specs.join(","))
    };
    assert_eq!(
        parse_range(list(MAX_RANGES).as_bytes(), 1000),
        part(0, MAX_RANGES as u64 - 1)
    );
    assert_eq!(parse_range(list(MAX_RANGES + 1).as_bytes(), 1000), Full);
    // Empty elements do not count towards the cap.
    let padded = format!("{}{}", list(MAX_RANGES), ",".repeat(1000));
    assert_eq!(
        parse_range(padded.as_bytes(), 1000),
        part(0, MAX_RANGES as u64 - 1)
    );
}

#[test]
fn every_partial_is_within_bounds() {
    let headers: &[&[u8]] = &[
        b"bytes=0-",
        b"bytes=-1",
        b"bytes=-7",
        b"bytes=3-5",
        b"bytes=6-100",
        b"bytes=0-2,3-4",
    ];
    for len in 0..12 {
        for h in headers {
            if let RangeOutcome::Partial {
                start,
                end_inclusive,
            } = parse_range(h, len)
            {
                assert!(start <= end_inclusive && end_inclusive < len, "{h:?} {len}");
            }
        }
    }
}

#[test]
fn content_range_values() {
    assert_eq!(content_range(0, 99, 1000), "bytes 0-99/1000");
    assert_eq!(content_range(5, 5, 6), "bytes 5-5/6");
    assert_eq!(unsatisfied_range(1000), "bytes */1000");
    assert_eq!(unsatisfied_range(0), "bytes */0");
}
