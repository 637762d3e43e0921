//! Fuzz target for `parse_response`: no panic, `consumed <= input.len()`, bounded heads,
//! split insensitivity, every error mapped to a 4xx/5xx, and parse(encode(head)) == head.
//!
//! Input: `[flags, cut, response...]`. `flags & 1` selects tiny limits; `flags >> 1` picks
//! the request method (GET, HEAD, CONNECT, POST), which decides some body lengths; `cut`
//! picks where the input is split (scaled to its length).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::{
    BodyKind, H1Error, H1Limits, Method, ParsedResponse, Status, Version, encode, parse_response,
    parse_response_framing, reason_phrase,
};

/// Everything a parse decides, in comparable form.
#[derive(Debug, Eq, PartialEq)]
struct Summary {
    status: u16,
    reason: Vec<u8>,
    version: Version,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: BodyKind,
    keep_alive: bool,
}

fn summary(r: &ParsedResponse) -> Summary {
    Summary {
        status: r.head.status,
        reason: r.head.reason.to_vec(),
        version: r.head.version,
        headers: r
            .head
            .headers
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        body: r.body,
        keep_alive: r.keep_alive,
    }
}

type Outcome = Result<Option<(Summary, usize)>, H1Error>;

fn parse(input: &[u8], limits: &H1Limits, method: &Method) -> Outcome {
    let outcome = match parse_response(input, limits, method) {
        Ok(Status::Complete(r)) => Ok(Some((summary(&r), r.consumed))),
        Ok(Status::Partial) => Ok(None),
        Err(e) => Err(e),
    };
    // The copy-free framing (ringwork-load's) agrees with the full parse.
    let framed = match parse_response_framing(input, limits, method) {
        Ok(Status::Complete(f)) => Ok(Some((f.status, f.body, f.keep_alive, f.consumed))),
        Ok(Status::Partial) => Ok(None),
        Err(e) => Err(e),
    };
    let expected = match &outcome {
        Ok(Some((s, consumed))) => Ok(Some((s.status, s.body, s.keep_alive, *consumed))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.clone()),
    };
    assert_eq!(framed, expected);
    outcome
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
    let method = match (flags >> 1) % 4 {
        0 => Method::Get,
        1 => Method::Head,
        2 => Method::Connect,
        _ => Method::Post,
    };
    let cut = usize::from(*cut) * input.len() / 255;

    let part = parse(&input[..cut], &limits, &method);
    let whole = parse(input, &limits, &method);
    assert_eq!(whole, parse(input, &limits, &method));

    let end = match &whole {
        Ok(Some((_, consumed))) => {
            assert!(*consumed > 0 && *consumed <= input.len());
            assert!(*consumed <= limits.max_head, "{consumed} > max_head");
            *consumed
        }
        Ok(None) => {
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
        match (parse(&input[..n], &limits, &method), &whole) {
            (Ok(None), _) => {}
            (Err(e), Err(w)) => assert_eq!(&e, w, "prefix {n}"),
            (got, _) => panic!("prefix {n} of {end}: {got:?}, whole: {whole:?}"),
        }
    }
    match (&part, &whole) {
        (Ok(None), _) => {}
        (Err(e), Err(w)) => assert_eq!(e, w),
        (Ok(Some(p)), Ok(Some(w))) => assert_eq!(p, w),
        (got, _) => panic!("cut at {cut}: {got:?}, whole: {whole:?}"),
    }

    // Round trip: re-encode the head (an empty reason is sent as the standard phrase) and
    // parse it again, with the head limits lifted.
    let Ok(Some((mut parsed, _))) = whole else {
        return;
    };
    let Ok(Status::Complete(response)) = parse_response(input, &limits, &method) else {
        unreachable!("parsed above");
    };
    let head = &response.head;
    let mut out = BytesMut::new();
    encode::write_status_line(&mut out, head.version, head.status, &head.reason)
        .expect("a parsed status line can be written");
    encode::write_fields(&mut out, &head.headers).expect("parsed fields can be written");
    out.extend_from_slice(b"\r\n");
    if parsed.reason.is_empty() {
        parsed.reason = reason_phrase(parsed.status).as_bytes().to_vec();
    }
    let mut relaxed = limits.clone();
    relaxed.max_request_line = 64 * 1024;
    relaxed.max_head = 64 * 1024;
    match parse(&out, &relaxed, &method) {
        Ok(Some((again, consumed))) => {
            assert_eq!(again, parsed, "{:?}", String::from_utf8_lossy(&out));
            assert_eq!(consumed, out.len());
        }
        other => panic!("{:?} reparsed as {other:?}", String::from_utf8_lossy(&out)),
    }
});
