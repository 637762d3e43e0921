//! Fuzz target for `LengthPrefixedDecoder`: no panic, bounded buffering,
//! split-insensitivity, and decode(encode(x)) == x for payloads under the limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::basic::{
    LengthPrefixedDecoder, LengthPrefixedError, LengthPrefixedLimits, Prefix, encode_frame,
};

type Outcome = (Vec<Vec<u8>>, Option<LengthPrefixedError>);

fn decode(prefix: Prefix, max: usize, chunks: &[&[u8]]) -> Outcome {
    let mut d = LengthPrefixedDecoder::new(prefix, LengthPrefixedLimits::new(max));
    let (mut frames, mut error) = (Vec::new(), None);
    for c in chunks {
        d.handle_input(c);
        loop {
            match d.poll_event() {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        assert!(d.buffered() <= max + prefix.size() + c.len());
    }
    (frames, error)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, c, input @ ..] = data else { return };
    let prefix = match a % 3 {
        0 => Prefix::U8,
        1 => Prefix::U16,
        _ => Prefix::U32,
    };
    let max = usize::from(*b) * 4;
    let cut = usize::from(*c).min(input.len());

    let whole = decode(prefix, max, &[input]);
    let consumed: usize = whole.0.iter().map(|f| f.len() + prefix.size()).sum();
    assert!(consumed <= input.len());
    let (x, y) = input.split_at(cut);
    assert_eq!(decode(prefix, max, &[x, y]), whole);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode(prefix, max, &bytes), whole);

    // Round trip: payloads the prefix can express and the limit allows.
    let size = max.min(usize::from(u8::MAX)).max(1);
    let payloads: Vec<Vec<u8>> = input.chunks(size).map(<[u8]>::to_vec).collect();
    let mut out = BytesMut::new();
    for p in &payloads {
        encode_frame(p, prefix, &mut out).expect("payload fits the prefix");
    }
    let max = max.max(1);
    assert_eq!(decode(prefix, max, &[&out]), (payloads, None));
});
