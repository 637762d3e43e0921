use super::*;

use crate::basic::proto::test_support::{self, err, ok};

type Outcome = test_support::Outcome<NetstringError>;

fn decode_chunks(max: usize, chunks: &[&[u8]]) -> Outcome {
    test_support::decode_chunks(
        NetstringDecoder::with_limits(NetstringLimits::new(max)),
        chunks,
    )
}

fn cases() -> Vec<(usize, &'static [u8], Outcome)> {
    use NetstringError::*;
    vec![
        (16, b"", ok(&[])),
        (16, b"0:,", ok(&[""])),
        (16, b"5:hello,", ok(&["hello"])),
        (16, b"5:hello,3:a,b,", ok(&["hello", "a,b"])),
        (16, b"12:hello world!,", ok(&["hello world!"])),
        (16, b"3:a:,,", ok(&["a:,"])),
        (16, b"5:hel", ok(&[])),
        (16, b"5:hello", ok(&[])),
        (5, b"5:hello,", ok(&["hello"])),
        (0, b"0:,0:,", ok(&["", ""])),
        (16, b"00:,", err(&[], LeadingZero)),
        (16, b"05:hello,", err(&[], LeadingZero)),
        (16, b"1:a,01:a,", err(&["a"], LeadingZero)),
        (16, b":,", err(&[], EmptyLength)),
        (16, b"-1:a,", err(&[], InvalidLengthByte { byte: b'-' })),
        (16, b" 1:a,", err(&[], InvalidLengthByte { byte: b' ' })),
        (16, b"1x:a,", err(&[], InvalidLengthByte { byte: b'x' })),
        (16, b"1:a;", err(&[], MissingComma { found: b';' })),
        (16, b"1:ab,", err(&[], MissingComma { found: b'b' })),
        (4, b"5:hello,", err(&[], TooLong { len: 5, limit: 4 })),
        (
            99,
            b"1000000:",
            err(
                &[],
                TooLong {
                    len: 100,
                    limit: 99,
                },
            ),
        ),
        (
            usize::MAX,
            b"99999999999999999999999999:",
            err(
                &[],
                TooLong {
                    len: u64::MAX,
                    limit: usize::MAX,
                },
            ),
        ),
        // Input after an error is ignored.
        (16, b"1:a;1:b,", err(&[], MissingComma { found: b';' })),
    ]
}

#[test]
fn table() {
    for (max, input, want) in cases() {
        assert_eq!(decode_chunks(max, &[input]), want, "max={max} {input:?}");
    }
}

#[test]
fn split_points() {
    for (max, input, want) in cases() {
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(decode_chunks(max, &[a, b]), want, "{input:?} cut={cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(max, &bytes), want, "bytewise {input:?}");
    }
}

#[test]
fn error_is_sticky() {
    let mut d = NetstringDecoder::new();
    d.handle_input(b"x");
    let e = NetstringError::InvalidLengthByte { byte: b'x' };
    assert_eq!(d.poll_event(), Err(e.clone()));
    d.handle_input(b"1:a,");
    assert_eq!(d.poll_event(), Err(e));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn no_unbounded_buffering() {
    let limit = NetstringLimits::default().max_len;
    let mut d = NetstringDecoder::new();
    d.handle_input(format!("{limit}:").as_bytes());
    let chunk = vec![b'x'; 16 * 1024];
    let mut error = None;
    for _ in 0..(10 * 1024 * 1024 / chunk.len()) {
        d.handle_input(&chunk);
        assert!(d.buffered() <= limit + 1 + chunk.len(), "{}", d.buffered());
        match d.poll_event() {
            Ok(None) => {}
            Ok(Some(f)) => panic!("unexpected frame of {}", f.len()),
            Err(e) => error = Some(e),
        }
    }
    assert_eq!(error, Some(NetstringError::MissingComma { found: b'x' }));
}

#[test]
fn round_trip() {
    let payloads: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), b"1:a,".to_vec(), vec![0xff; 300]];
    let mut out = BytesMut::new();
    for p in &payloads {
        encode_netstring(p, &mut out);
    }
    assert_eq!(&out[..8], b"0:,1:a,4");
    let got = decode_chunks(1024, &[&out]);
    assert_eq!(got.frames, payloads);
    assert_eq!(got.error, None);
}
