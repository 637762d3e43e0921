//! Fuzz target for the SSH binary packet decoder (`ssh::cipher::Opener`) under each cipher
//! (none, chacha20-poly1305@openssh.com, aes256-gcm@openssh.com): arbitrary bytes cut
//! anywhere never panic and never yield a packet over the limit; payloads sealed by
//! `Sealer` come back whole and in order however the stream is cut.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::ssh::cipher::{CIPHERS, MAX_PACKET, Opener, Sealer};

fn pair(choice: u8) -> (Sealer, Opener) {
    let key = [0x42u8; 64];
    let iv = [7u8; 12];
    match choice % 3 {
        0 => (Sealer::new(), Opener::new()),
        n => {
            let name = CIPHERS[usize::from(n) - 1];
            (
                Sealer::with_cipher(name, &key, &iv).expect("known cipher"),
                Opener::with_cipher(name, &key, &iv).expect("known cipher"),
            )
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    // Arbitrary bytes, cut by the input's own bytes.
    let (_, mut opener) = pair(choice);
    let mut buf = BytesMut::new();
    let mut input = rest;
    while let Some((&cut, tail)) = input.split_first() {
        let n = usize::from(cut % 64).min(tail.len());
        buf.extend_from_slice(&tail[..n]);
        input = &tail[n..];
        loop {
            match opener.open(&mut buf) {
                Ok(Some((payload, wire))) => {
                    assert!(payload.len() < MAX_PACKET && wire <= MAX_PACKET + 20)
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if n == 0 {
            break;
        }
    }
    // Round trip: payloads from the input, sealed, then opened in cuts.
    let (mut sealer, mut opener) = pair(choice);
    let payloads: Vec<&[u8]> = rest.chunks(97).collect();
    let mut wire = BytesMut::new();
    for p in &payloads {
        sealer.seal(p, &mut wire);
    }
    let mut got = Vec::new();
    let mut buf = BytesMut::new();
    let mut cut = 1usize;
    while !wire.is_empty() {
        let n = cut.min(wire.len());
        buf.extend_from_slice(&wire.split_to(n));
        cut = cut * 7 % 113 + 1;
        while let Some((payload, _)) = opener.open(&mut buf).expect("our own packets open") {
            got.push(payload);
        }
    }
    assert_eq!(got.len(), payloads.len());
    for (a, b) in got.iter().zip(&payloads) {
        assert_eq!(a.as_slice(), *b);
    }
});
