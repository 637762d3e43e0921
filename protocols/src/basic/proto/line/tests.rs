use super::*;

/// What a decoder produced for some input: lines, concatenated raw bytes, and the error.
#[derive(Debug, Default, Eq, PartialEq)]
struct Outcome {
    lines: Vec<Vec<u8>>,
    error: Option<LineError>,
}

fn drain(d: &mut LineDecoder, out: &mut Outcome) {
    loop {
        match d.poll_event() {
            Ok(Some(LineEvent::Line(l))) => out.lines.push(l.to_vec()),
            Ok(Some(LineEvent::Raw(r))) => panic!("unexpected raw {r:?}"),
            Ok(None) => return,
            Err(e) => {
                out.error = Some(e);
                return;
            }
        }
    }
}

fn decode_chunks(delimiter: Delimiter, max: usize, chunks: &[&[u8]]) -> Outcome {
    let mut d = LineDecoder::with_config(delimiter, LineLimits::new(max));
    let mut out = Outcome::default();
    for c in chunks {
        d.handle_input(c);
        drain(&mut d, &mut out);
    }
    out
}

fn ok(lines: &[&str]) -> Outcome {
    Outcome {
        lines: lines.iter().map(|l| l.as_bytes().to_vec()).collect(),
        error: None,
    }
}

fn too_long(lines: &[&str], limit: usize) -> Outcome {
    Outcome {
        error: Some(LineError::LineTooLong { limit }),
        ..ok(lines)
    }
}

/// (delimiter, max_line, input, expected)
fn cases() -> Vec<(Delimiter, usize, &'static [u8], Outcome)> {
    use Delimiter::{CrLf, Lf};
    vec![
        (Lf, 16, b"", ok(&[])),
        (Lf, 16, b"partial", ok(&[])),
        (Lf, 16, b"a\n", ok(&["a"])),
        (Lf, 16, b"a\r\n", ok(&["a"])),
        (Lf, 16, b"a\nb\r\nc", ok(&["a", "b"])),
        (Lf, 16, b"\n\r\n", ok(&["", ""])),
        (Lf, 16, b"a\r\r\n", ok(&["a\r"])),
        (Lf, 16, b"a\rb\n", ok(&["a\rb"])),
        (CrLf, 16, b"a\r\nb\nc\r\n", ok(&["a", "b\nc"])),
        (CrLf, 16, b"a\n", ok(&[])),
        (CrLf, 16, b"\r\n", ok(&[""])),
        (CrLf, 16, b"a\r\r\n", ok(&["a\r"])),
        // Exactly at the limit, with and without CR.
        (Lf, 3, b"abc\nabc\r\n", ok(&["abc", "abc"])),
        (CrLf, 3, b"abc\r\n", ok(&["abc"])),
        (Lf, 0, b"\n\r\n", ok(&[""; 2])),
        // Over the limit: delivered lines first, then the error.
        (Lf, 3, b"abcd\n", too_long(&[], 3)),
        (Lf, 3, b"ok\nabcd", too_long(&["ok"], 3)),
        (Lf, 3, b"abc\r\r\n", too_long(&[], 3)),
        (Lf, 3, b"abc\rx", too_long(&[], 3)),
        (CrLf, 3, b"ab\nc\r\n", too_long(&[], 3)),
        (CrLf, 3, b"abc\n", too_long(&[], 3)),
        (Lf, 0, b"x", too_long(&[], 0)),
        // Input after the error is ignored.
        (Lf, 3, b"abcd\nok\n", too_long(&[], 3)),
    ]
}

#[test]
fn table() {
    for (delim, max, input, want) in cases() {
        let got = decode_chunks(delim, max, &[input]);
        assert_eq!(got, want, "{delim:?} max={max} input={input:?}");
    }
}

#[test]
fn split_points() {
    for (delim, max, input, want) in cases() {
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let got = decode_chunks(delim, max, &[a, b]);
            assert_eq!(got, want, "{delim:?} max={max} input={input:?} cut={cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            decode_chunks(delim, max, &bytes),
            want,
            "bytewise {input:?}"
        );
    }
}

#[test]
fn error_is_sticky() {
    let mut d = LineDecoder::with_config(Delimiter::Lf, LineLimits::new(2));
    d.handle_input(b"abc");
    let e = LineError::LineTooLong { limit: 2 };
    assert_eq!(d.poll_event(), Err(e.clone()));
    d.handle_input(b"\nok\n");
    assert_eq!(d.poll_event(), Err(e));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn no_unbounded_buffering() {
    let limit = LineLimits::default().max_line;
    let chunk = vec![b'x'; 16 * 1024];
    let mut d = LineDecoder::new();
    let mut error = None;
    for _ in 0..(10 * 1024 * 1024 / chunk.len()) {
        d.handle_input(&chunk);
        assert!(d.buffered() <= limit + chunk.len(), "{}", d.buffered());
        match d.poll_event() {
            Ok(None) => {}
            Ok(Some(ev)) => panic!("unexpected {ev:?}"),
            Err(e) => error = Some(e),
        }
    }
    assert_eq!(error, Some(LineError::LineTooLong { limit }));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn raw_mode_mid_buffer() {
    let mut d = LineDecoder::new();
    d.handle_input(b"head\r\nRAWBYTES\nmore");
    assert_eq!(d.poll_event(), Ok(Some(LineEvent::Line("head".into()))));
    d.set_raw(true);
    assert!(d.is_raw());
    assert_eq!(
        d.poll_event(),
        Ok(Some(LineEvent::Raw("RAWBYTES\nmore".into())))
    );
    assert_eq!(d.poll_event(), Ok(None));
    d.handle_input(b"x\ny");
    assert_eq!(d.poll_event(), Ok(Some(LineEvent::Raw("x\ny".into()))));
    // Back to line mode: buffered bytes (none here) and new ones are lines again.
    d.set_raw(false);
    d.handle_input(b"tail\n");
    assert_eq!(d.poll_event(), Ok(Some(LineEvent::Line("tail".into()))));
}

#[test]
fn line_mode_redelivers_buffered_bytes() {
    let mut d = LineDecoder::new();
    d.set_raw(true);
    d.handle_input(b"");
    assert_eq!(d.poll_event(), Ok(None));
    // Raw mode is set before the bytes are polled; switching back re-delivers them as lines.
    d.handle_input(b"a\nb\n");
    d.set_raw(false);
    assert_eq!(d.poll_event(), Ok(Some(LineEvent::Line("a".into()))));
    d.set_raw(true);
    assert_eq!(d.poll_event(), Ok(Some(LineEvent::Raw("b\n".into()))));
}

#[test]
fn set_line_mode_with_extra() {
    let mut d = LineDecoder::new();
    d.set_raw(true);
    d.handle_input(b"12345\n");
    let Ok(Some(LineEvent::Raw(chunk))) = d.poll_event() else {
        panic!("raw chunk expected")
    };
    d.handle_input(b"next\n");
    // The consumer wanted 3 raw bytes; the rest goes back in front, in line mode.
    d.set_line_mode_with(&chunk[3..]);
    assert_eq!(d.poll_event(), Ok(Some(LineEvent::Line("45".into()))));
    assert_eq!(d.poll_event(), Ok(Some(LineEvent::Line("next".into()))));
}

#[test]
fn partial_cr_then_lf() {
    // CRLF split across reads, strict mode.
    let got = decode_chunks(Delimiter::CrLf, 8, &[b"ab\r", b"\n"]);
    assert_eq!(got, ok(&["ab"]));
}

#[test]
fn round_trip() {
    let lines: &[&[u8]] = &[b"", b"a", b"hello world", b"x\ry", b"\x00\xff"];
    for delim in [Delimiter::Lf, Delimiter::CrLf] {
        let mut out = BytesMut::new();
        for l in lines {
            encode_line(l, delim, &mut out);
        }
        let got = decode_chunks(delim, 64, &[&out]);
        assert_eq!(
            got.lines,
            lines.iter().map(|l| l.to_vec()).collect::<Vec<_>>()
        );
        assert_eq!(got.error, None);
    }
}

#[test]
fn zero_copy_slices_buffer() {
    let mut d = LineDecoder::new();
    d.handle_input(b"abc\ndef\n");
    let Ok(Some(LineEvent::Line(a))) = d.poll_event() else {
        panic!()
    };
    assert_eq!(&a[..], b"abc");
    assert_eq!(d.buffered(), 4);
}
