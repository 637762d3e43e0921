//! Fuzz target for `parse_request`: no panic, `consumed <= input.len()`, bounded heads,
//! split insensitivity, every error mapped to a 4xx/5xx, and parse(encode(head)) == head.
//!
//! Input: `[flags, cut, request...]`. `flags & 1` selects tiny limits (so the size limits
//! are reached on short inputs); `cut` picks where the input is split (scaled to its length).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::{
    BodyKind, H1Error, H1Limits, ParsedRequest, Status, Version, encode, parse_request,
};

/// Everything a parse decides, in comparable form.
#[derive(Debug, Eq, PartialEq)]
struct Summary {
    method: Vec<u8>,
    target: Vec<u8>,
    version: Version,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
}

fn summary(r: &ParsedRequest) -> Summary {
    Summary {
        method: r.head.method.as_bytes().to_vec(),
        target: r.head.target.to_vec(),
        version: r.head.version,
        headers: r
            .head
            .headers
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        body: r.body,
        keep_alive: r.keep_alive,
        expect_continue: r.expect_continue,
    }
}

type Outcome = Result<Option<(Summary, usize)>, H1Error>;

fn parse(input: &[u8], limits: &H1Limits) -> Outcome {
    match parse_request(input, limits) {
        Ok(Status::Complete(r)) => Ok(Some((summary(&r), r.consumed))),
        Ok(Status::Partial) => Ok(None),
        Err(e) => Err(e),
    }
}

fn limits(tiny: bool) -> H1Limits {
    let mut limits = H1Limits::default();
    if tiny {
        limits.max_request_line = 48;
        limits.max_head = 128;
        limits.max_headers = 4;
        limits.max_body = 100;
    }
    limits
}

/// The prefix lengths to check: every one for short inputs, else a sample.
fn prefixes(end: usize, cut: usize) -> impl Iterator<Item = usize> {
    let stride = (end / 128).max(1);
    (0..end)
        .step_by(stride)
        .chain([cut.min(end.saturating_sub(1)), end.saturating_sub(1)])
        .filter(move |&n| n < end)
}

fuzz_target!(|data: &[u8]| {
    let [flags, cut, input @ ..] = data else {
        return;
    };
    let limits = limits(flags & 1 == 1);
    let cut = usize::from(*cut) * input.len() / 255;

    // The fuzzer-chosen cut first, then the whole: the parser keeps no state, so the whole
    // gives the same result as it would alone, and the part is Partial or the same error.
    let part = parse(&input[..cut], &limits);
    let whole = parse(input, &limits);
    assert_eq!(whole, parse(input, &limits));

    let end = match &whole {
        Ok(Some((_, consumed))) => {
            assert!(*consumed > 0 && *consumed <= input.len());
            // Bounded memory: a head is never longer than the limit.
            assert!(*consumed <= limits.max_head, "{consumed} > max_head");
            *consumed
        }
        Ok(None) => {
            // Partial only while the input is shorter than the limit: past it, an error.
            assert!(input.len() < limits.max_head, "partial at {}", input.len());
            input.len()
        }
        Err(e) => {
            let status = e.status();
            assert!((400..=505).contains(&status), "{e:?} -> {status}");
            input.len()
        }
    };
    for n in prefixes(end, cut) {
        match (parse(&input[..n], &limits), &whole) {
            (Ok(None), _) => {}
            (Err(e), Err(w)) => assert_eq!(&e, w, "prefix {n}"),
            (got, _) => panic!("prefix {n} of {end}: {got:?}, whole: {whole:?}"),
        }
    }
    match (&part, &whole) {
        (Ok(None), _) => {}
        (Err(e), Err(w)) => assert_eq!(e, w),
        // A cut past the head parses the same head.
        (Ok(Some(p)), Ok(Some(w))) => assert_eq!(p, w),
        (got, _) => panic!("cut at {cut}: {got:?}, whole: {whole:?}"),
    }

    // Round trip: re-encode the head and parse it again. The encoded form may be longer
    // (": " after each name), so the head limits are lifted; the body limit stays.
    let Ok(Some((parsed, _))) = whole else {
        return;
    };
    let Ok(Status::Complete(request)) = parse_request(input, &limits) else {
        unreachable!("parsed above");
    };
    let head = &request.head;
    let mut out = BytesMut::new();
    encode::write_request_line(&mut out, &head.method, &head.target, head.version)
        .expect("a parsed target can be written");
    encode::write_fields(&mut out, &head.headers).expect("parsed fields can be written");
    out.extend_from_slice(b"\r\n");
    let mut relaxed = limits.clone();
    relaxed.max_request_line = 64 * 1024;
    relaxed.max_head = 64 * 1024;
    match parse(&out, &relaxed) {
        Ok(Some((again, consumed))) => {
            assert_eq!(again, parsed, "{:?}", String::from_utf8_lossy(&out));
            assert_eq!(consumed, out.len());
        }
        other => panic!("{:?} reparsed as {other:?}", String::from_utf8_lossy(&out)),
    }
});
