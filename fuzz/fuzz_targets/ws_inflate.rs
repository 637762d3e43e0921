//! Fuzz target for permessage-deflate's bounded inflater and its compressor: arbitrary
//! compressed input never grows the output past the limit plus one byte (a deflate bomb
//! fails with `TooBig` within that memory), never panics, and compress-then-inflate gives
//! back the input, with or without context takeover, in pieces or whole.
//!
//! Input: `[flags, cut, bytes...]`. `flags & 1`: no context takeover; `flags >> 1`: the limit
//! (in KiB, at least 1); `cut` splits the compressed stream in two pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::websocket::proto::InflateError;
use ringwork_protocols::websocket::proto::deflate::{Deflater, Inflater};

fuzz_target!(|data: &[u8]| {
    let [flags, cut, input @ ..] = data else {
        return;
    };
    let reset = flags & 1 != 0;
    let limit = (usize::from(flags >> 1) + 1) * 1024;
    // Arbitrary bytes as a compressed message.
    let mut inflater = Inflater::new(15, reset);
    let mut out = Vec::new();
    let at = usize::from(*cut) * input.len() / 255;
    let result = inflater
        .inflate(&input[..at], &mut out, limit)
        .and_then(|()| inflater.inflate(&input[at..], &mut out, limit))
        .and_then(|()| inflater.finish(&mut out, limit));
    assert!(out.len() <= limit + 1, "{} > {limit}", out.len());
    assert!(
        out.capacity() <= limit + 1,
        "capacity {} > {limit}",
        out.capacity()
    );
    if let Err(InflateError::TooBig { limit: l }) = result {
        assert_eq!(l, limit);
    }
    // Round trip of the input itself, twice (context carried or not).
    let mut deflater = Deflater::new(6, 15, reset);
    let mut inflater = Inflater::new(15, reset);
    for _ in 0..2 {
        let mut wire = Vec::new();
        deflater.compress(input, &mut wire);
        let mut back = Vec::new();
        let at = usize::from(*cut) * wire.len() / 255;
        inflater
            .inflate(&wire[..at], &mut back, input.len())
            .and_then(|()| inflater.inflate(&wire[at..], &mut back, input.len()))
            .and_then(|()| inflater.finish(&mut back, input.len()))
            .expect("our own compressed data inflates");
        assert_eq!(back, input);
    }
});
