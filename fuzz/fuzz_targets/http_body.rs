//! Fuzz target for `BodyDecoder` (chunked and Content-Length): no panic, progress on every
//! non-empty input, split insensitivity, the body limit, and decode(encode(x)) == x.
//!
//! Input: `[flags, a, b, c, bytes...]`. `flags & 1` selects tiny limits; `flags & 2`
//! selects Content-Length (of `a * 256 + b` bytes) instead of chunked; `a`, `b`, `c` also
//! pick three cut points (scaled to the input length) and, for the round trip, chunk sizes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::{BodyDecoder, BodyKind, H1Error, H1Limits, Headers, encode};

type Fields = Vec<(Vec<u8>, Vec<u8>)>;
/// (body, trailers, bytes consumed, finished)
type Outcome = Result<(Vec<u8>, Option<Fields>, usize, bool), H1Error>;

fn fields(headers: &Headers) -> Fields {
    headers
        .iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

/// Decodes `input` offered in pieces ending at `cuts` (ascending), as a connection would:
/// unconsumed bytes are offered again together with the next piece.
fn decode(kind: BodyKind, limits: &H1Limits, input: &[u8], cuts: &[usize]) -> Outcome {
    let mut decoder = BodyDecoder::new(kind, limits);
    let (mut body, mut consumed) = (Vec::new(), 0);
    for &end in cuts.iter().chain([&input.len()]) {
        let end = end.max(consumed);
        loop {
            let offered = &input[consumed..end];
            let step = decoder.decode(offered)?;
            assert!(step.consumed <= offered.len());
            body.extend_from_slice(step.data);
            consumed += step.consumed;
            if step.finished {
                assert!(decoder.is_finished());
                let trailers = decoder.take_trailers().map(|t| fields(&t));
                return Ok((body, trailers, consumed, true));
            }
            // "Need more bytes" only once everything offered is used.
            assert!(
                step.consumed > 0 || offered.is_empty(),
                "stalled on {} bytes",
                offered.len()
            );
            if offered.is_empty() {
                break;
            }
        }
    }
    Ok((body, None, consumed, false))
}

fn limits(tiny: bool) -> H1Limits {
    let mut limits = H1Limits::default();
    if tiny {
        limits.max_body = 100;
        limits.max_chunk_ext = 16;
        limits.max_trailers = 64;
    }
    limits
}

/// A field value from arbitrary bytes: only field-vchar, SP and HTAB, without the
/// surrounding whitespace (which the parser drops).
fn value(raw: &[u8]) -> Vec<u8> {
    let kept: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
        .collect();
    let start = kept.iter().position(|&b| b != b' ' && b != b'\t');
    let end = kept.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(s), Some(e)) => kept[s..=e].to_vec(),
        _ => Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, a, b, c, input @ ..] = data else {
        return;
    };
    let limits = limits(flags & 1 == 1);
    let kind = if flags & 2 == 2 {
        BodyKind::Length(u64::from(*a) << 8 | u64::from(*b))
    } else {
        BodyKind::Chunked
    };
    let scale = |x: u8| usize::from(x) * input.len() / 255;
    let mut cuts = [scale(*a), scale(*b), scale(*c)];
    cuts.sort_unstable();

    // Split insensitivity: one piece, three fuzzer-chosen pieces, and (short inputs) byte
    // by byte all give the same body, trailers, consumed count and end, or the same error.
    let whole = decode(kind, &limits, input, &[]);
    assert_eq!(decode(kind, &limits, input, &cuts), whole);
    if input.len() <= 512 {
        let every: Vec<usize> = (1..input.len()).collect();
        assert_eq!(decode(kind, &limits, input, &every), whole);
    }
    match (&whole, kind) {
        (Ok((body, trailers, consumed, finished)), _) => {
            assert!(*consumed <= input.len());
            assert!(trailers.is_none() || kind == BodyKind::Chunked);
            if let BodyKind::Length(n) = kind {
                assert_eq!(body.len() as u64, n.min(input.len() as u64));
                assert_eq!(*finished, body.len() as u64 == n);
            } else {
                assert!(body.len() as u64 <= limits.max_body, "{} bytes", body.len());
            }
        }
        (Err(e), BodyKind::Chunked) => {
            assert!(matches!(e.status(), 400 | 413 | 431), "{e:?}");
        }
        (Err(e), _) => panic!("Content-Length body failed: {e:?}"),
    }

    // Round trip: `input` as chunks of sizes cycling through a, b and c (plus one), and up
    // to four trailer fields made from its first lines.
    let sizes = [
        usize::from(*a) + 1,
        usize::from(*b) * 4 + 1,
        usize::from(*c) * 16 + 1,
    ];
    let mut out = BytesMut::new();
    let (mut at, mut i) = (0, 0);
    while at < input.len() {
        let n = sizes[i % 3].min(input.len() - at);
        encode::write_chunk_size(&mut out, n);
        out.extend_from_slice(&input[at..at + n]);
        out.extend_from_slice(b"\r\n");
        at += n;
        i += 1;
    }
    let mut trailers = Headers::new();
    for (i, line) in input
        .split(|&b| b == b'\n')
        .take(usize::from(*c % 5))
        .enumerate()
    {
        trailers.append(format!("X-T{i}").into_bytes(), value(line));
    }
    encode::write_last_chunk(&mut out, &trailers).expect("valid trailer fields");
    let roomy = H1Limits::default();
    let expected: Outcome = Ok((input.to_vec(), Some(fields(&trailers)), out.len(), true));
    assert_eq!(decode(BodyKind::Chunked, &roomy, &out, &[]), expected);
    let scale = |x: u8| usize::from(x) * out.len() / 255;
    let mut cuts = [scale(*a), scale(*c), scale(*flags)];
    cuts.sort_unstable();
    assert_eq!(decode(BodyKind::Chunked, &roomy, &out, &cuts), expected);
});
