use super::*;

use crate::basic::proto::test_support::{self, ok};

type Outcome = test_support::Outcome<LengthPrefixedError>;

fn decode_chunks(prefix: Prefix, max: usize, chunks: &[&[u8]]) -> Outcome {
    test_support::decode_chunks(
        LengthPrefixedDecoder::new(prefix, LengthPrefixedLimits::new(max)),
        chunks,
    )
}

fn too_large(frames: &[&str], len: u64, limit: usize) -> Outcome {
    test_support::err(frames, LengthPrefixedError::FrameTooLarge { len, limit })
}

fn cases() -> Vec<(Prefix, usize, &'static [u8], Outcome)> {
    use Prefix::{U8, U16, U32};
    vec![
        (U8, 16, b"", ok(&[])),
        (U8, 16, b"\x00", ok(&[""])),
        (U8, 16, b"\x02hi\x03abc", ok(&["hi", "abc"])),
        (U8, 16, b"\x05hel", ok(&[])),
        (U16, 16, b"\x00", ok(&[])),
        (U16, 16, b"\x00\x02hi\x00\x00", ok(&["hi", ""])),
        (U32, 16, b"\x00\x00\x00\x02hi", ok(&["hi"])),
        (U32, 16, b"\x00\x00\x00", ok(&[])),
        (U8, 2, b"\x02hi", ok(&["hi"])),
        (U8, 2, b"\x03hey", too_large(&[], 3, 2)),
        (U16, 255, b"\x00\x01a\x01\x00", too_large(&["a"], 256, 255)),
        (
            U32,
            16,
            b"\xff\xff\xff\xff",
            too_large(&[], u64::from(u32::MAX), 16),
        ),
        (U8, 0, b"\x00\x01x\x00", too_large(&[""], 1, 0)),
    ]
}

#[test]
fn table() {
    for (prefix, max, input, want) in cases() {
        assert_eq!(
            decode_chunks(prefix, max, &[input]),
            want,
            "{prefix:?} {input:?}"
        );
    }
}

#[test]
fn split_points() {
    for (prefix, max, input, want) in cases() {
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(
                decode_chunks(prefix, max, &[a, b]),
                want,
                "{input:?} cut={cut}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            decode_chunks(prefix, max, &bytes),
            want,
            "bytewise {input:?}"
        );
    }
}

#[test]
fn error_is_sticky() {
    let mut d = LengthPrefixedDecoder::new(Prefix::U8, LengthPrefixedLimits::new(1));
    d.handle_input(b"\x02ab\x01a");
    let e = LengthPrefixedError::FrameTooLarge { len: 2, limit: 1 };
    assert_eq!(d.poll_event(), Err(e.clone()));
    d.handle_input(b"\x00");
    assert_eq!(d.poll_event(), Err(e));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn no_unbounded_buffering() {
    let limit = LengthPrefixedLimits::default().max_frame;
    let mut d = LengthPrefixedDecoder::new(Prefix::U32, LengthPrefixedLimits::default());
    // A huge declared length fails at once, before any payload is buffered.
    d.handle_input(&(10u32 * 1024 * 1024).to_be_bytes());
    let chunk = vec![b'x'; 16 * 1024];
    d.handle_input(&chunk);
    assert_eq!(
        d.poll_event(),
        Err(LengthPrefixedError::FrameTooLarge {
            len: 10 * 1024 * 1024,
            limit
        })
    );
    for _ in 0..(10 * 1024 * 1024 / chunk.len()) {
        d.handle_input(&chunk);
        assert_eq!(d.buffered(), 0);
    }
    // A frame at the limit is buffered up to the limit plus one read.
    let mut d = LengthPrefixedDecoder::new(Prefix::U32, LengthPrefixedLimits::default());
    d.handle_input(&u32::try_from(limit).unwrap().to_be_bytes());
    let mut frames = 0;
    for _ in 0..limit.div_ceil(chunk.len()) {
        d.handle_input(&chunk);
        assert!(d.buffered() <= limit + chunk.len());
        while let Some(f) = d.poll_event().unwrap() {
            assert_eq!(f.len(), limit);
            frames += 1;
        }
    }
    assert_eq!(frames, 1);
}

#[test]
fn round_trip() {
    for prefix in [Prefix::U8, Prefix::U16, Prefix::U32] {
        let payloads: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![7; 255]];
        let mut out = BytesMut::new();
        for p in &payloads {
            encode_frame(p, prefix, &mut out).unwrap();
        }
        let got = decode_chunks(prefix, 1024, &[&out]);
        assert_eq!(got.frames, payloads, "{prefix:?}");
        assert_eq!(got.error, None);
    }
}

#[test]
fn encoder_rejects_oversized_payloads() {
    let mut out = BytesMut::new();
    assert_eq!(
        encode_frame(&[0; 256], Prefix::U8, &mut out),
        Err(EncodeError::PayloadTooLong {
            len: 256,
            prefix: Prefix::U8,
            max: 255
        })
    );
    assert_eq!(
        encode_frame(&[0; 65_536], Prefix::U16, &mut out),
        Err(EncodeError::PayloadTooLong {
            len: 65_536,
            prefix: Prefix::U16,
            max: 65_535
        })
    );
    assert!(out.is_empty());
    encode_frame(&[0; 65_535], Prefix::U16, &mut out).unwrap();
    assert_eq!(&out[..2], b"\xff\xff");
    assert_eq!(Prefix::U32.max_len(), u64::from(u32::MAX));
}
