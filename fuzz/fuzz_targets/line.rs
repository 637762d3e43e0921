//! Fuzz target for `LineDecoder`: no panic, bounded buffering, split-insensitivity, and
//! decode(encode(lines)) == lines.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::basic::{
    Delimiter, LineDecoder, LineError, LineEvent, LineLimits, encode_line,
};

type Outcome = (Vec<Vec<u8>>, Option<LineError>);

fn decode(delimiter: Delimiter, max: usize, chunks: &[&[u8]]) -> Outcome {
    let mut d = LineDecoder::with_config(delimiter, LineLimits::new(max));
    let (mut lines, mut error) = (Vec::new(), None);
    for c in chunks {
        d.handle_input(c);
        loop {
            match d.poll_event() {
                Ok(Some(LineEvent::Line(l))) => lines.push(l.to_vec()),
                Ok(Some(LineEvent::Raw(_))) => panic!("raw event in line mode"),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        assert!(d.buffered() <= max + 1 + c.len());
    }
    (lines, error)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, input @ ..] = data else { return };
    let delimiter = if a & 1 == 0 {
        Delimiter::Lf
    } else {
        Delimiter::CrLf
    };
    let max = usize::from(a >> 1);
    let cut = usize::from(*b).min(input.len());

    let whole = decode(delimiter, max, &[input]);
    let consumed: usize = whole.0.iter().map(|l| l.len() + 1).sum();
    assert!(consumed <= input.len());
    let (x, y) = input.split_at(cut);
    assert_eq!(decode(delimiter, max, &[x, y]), whole);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode(delimiter, max, &bytes), whole);

    // Round trip: lines without CR or LF, within the limit.
    let lines: Vec<Vec<u8>> = input
        .split(|&c| c == b'\n')
        .map(|l| {
            l.iter()
                .copied()
                .filter(|&c| c != b'\r')
                .take(max)
                .collect()
        })
        .collect();
    let mut out = BytesMut::new();
    for l in &lines {
        encode_line(l, delimiter, &mut out);
    }
    assert_eq!(decode(delimiter, max, &[&out]), (lines, None));
});
