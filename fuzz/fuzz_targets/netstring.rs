//! Fuzz target for `NetstringDecoder`: no panic, bounded buffering, split-insensitivity, and
//! decode(encode(x)) == x for payloads under the limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::basic::{
    NetstringDecoder, NetstringError, NetstringLimits, encode_netstring,
};

type Outcome = (Vec<Vec<u8>>, Option<NetstringError>);

fn decode(max: usize, chunks: &[&[u8]]) -> Outcome {
    let mut d = NetstringDecoder::with_limits(NetstringLimits::new(max));
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
        assert!(d.buffered() <= max + 1 + c.len());
    }
    (frames, error)
}

fuzz_target!(|data: &[u8]| {
    let [a, b, input @ ..] = data else { return };
    let max = usize::from(*a);
    let cut = usize::from(*b).min(input.len());

    let whole = decode(max, &[input]);
    for f in &whole.0 {
        assert!(f.len() <= max);
    }
    let consumed: usize = whole.0.iter().map(|f| f.len() + 3).sum();
    assert!(consumed <= input.len());
    let (x, y) = input.split_at(cut);
    assert_eq!(decode(max, &[x, y]), whole);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode(max, &bytes), whole);

    // Round trip: the input cut into payloads of at most `max` bytes.
    let payloads: Vec<Vec<u8>> = if max == 0 {
        vec![Vec::new(); 3]
    } else {
        input.chunks(max).map(<[u8]>::to_vec).collect()
    };
    let mut out = BytesMut::new();
    for p in &payloads {
        encode_netstring(p, &mut out);
    }
    assert_eq!(decode(max, &[&out]), (payloads, None));
});
