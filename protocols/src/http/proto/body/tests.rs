use super::*;

/// Decodes `input` fed in pieces cut at `cuts`: (body, trailers, bytes consumed, finished).
fn decode_in_pieces(
    kind: BodyKind,
    limits: &H1Limits,
    input: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, Option<Headers>, usize, bool), H1Error> {
    let mut decoder = BodyDecoder::new(kind, limits);
    let mut body = Vec::new();
    let mut consumed = 0;
    let mut bounds: Vec<usize> = cuts.to_vec();
    bounds.push(input.len());
    // The caller keeps unconsumed bytes and offers them again with the next piece.
    let mut end_of_piece = 0;
    for end in bounds {
        end_of_piece = end_of_piece.max(end);
        loop {
            let step = decoder.decode(&input[consumed..end_of_piece])?;
            body.extend_from_slice(step.data);
            consumed += step.consumed;
            if step.finished {
                return Ok((body, decoder.take_trailers(), consumed, true));
            }
            if step.consumed == 0 {
                break;
            }
        }
    }
    Ok((body, decoder.take_trailers(), consumed, false))
}

fn decode_all(
    kind: BodyKind,
    input: &[u8],
) -> Result<(Vec<u8>, Option<Headers>, usize, bool), H1Error> {
    decode_in_pieces(kind, &H1Limits::default(), input, &[])
}

/// The same result whatever the split: one cut at every offset, and byte by byte.
fn assert_split_insensitive(kind: BodyKind, input: &[u8]) {
    let limits = H1Limits::default();
    let whole = decode_in_pieces(kind, &limits, input, &[]);
    for cut in 0..=input.len() {
        assert_eq!(
            decode_in_pieces(kind, &limits, input, &[cut]),
            whole,
            "{:?} cut at {cut}",
            String::from_utf8_lossy(input)
        );
    }
    let every: Vec<usize> = (0..input.len()).collect();
    assert_eq!(decode_in_pieces(kind, &limits, input, &every), whole);
}

#[test]
fn content_length_bodies() {
    let (body, _, consumed, finished) = decode_all(BodyKind::Length(5), b"hello, next").unwrap();
    assert_eq!((&body[..], consumed, finished), (&b"hello"[..], 5, true));
    let (body, _, consumed, finished) = decode_all(BodyKind::Length(10), b"hello").unwrap();
    assert_eq!((&body[..], consumed, finished), (&b"hello"[..], 5, false));
    assert_split_insensitive(BodyKind::Length(5), b"hello, next");
    let (body, _, consumed, finished) = decode_all(BodyKind::Empty, b"GET").unwrap();
    assert_eq!((body.len(), consumed, finished), (0, 0, true));
}

#[test]
fn chunked_bodies() {
    // (input, body, trailers, bytes of input that belong to the body)
    type Row<'a> = (&'a [u8], &'a [u8], &'a [(&'a str, &'a str)], usize);
    let table: &[Row<'_>] = &[
        (b"0\r\n\r\n", b"", &[], 5),
        (b"5\r\nhello\r\n0\r\n\r\nGET", b"hello", &[], 15),
        (
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"hello world",
            &[],
            26,
        ),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", &[], 20),
        (b"a\r\n0123456789\r\n0000\r\n\r\n", b"0123456789", &[], 23),
        (b"005\r\nhello\r\n0\r\n\r\n", b"hello", &[], 17),
        // Extensions (RFC 9112 §7.1.1), with BWS before `;` and `=`.
        (b"5;a\r\nhello\r\n0\r\n\r\n", b"hello", &[], 17),
        (
            b"5 ; a = b\r\nhello\r\n0;x=\"q \\\" d\"\r\n\r\n",
            b"hello",
            &[],
            34,
        ),
        (b"5;a=b;c;d=\"\"\r\nhello\r\n0\r\n\r\n", b"hello", &[], 26),
        // Trailers.
        (
            b"5\r\nhello\r\n0\r\nDigest: x\r\nX-T: 1\r\n\r\nrest",
            b"hello",
            &[("Digest", "x"), ("X-T", "1")],
            34,
        ),
    ];
    for (input, body, trailers, used) in table {
        let name = String::from_utf8_lossy(input);
        let (got, got_trailers, consumed, finished) =
            decode_all(BodyKind::Chunked, input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&got[..], *body, "{name}");
        assert!(finished, "{name}");
        assert_eq!(consumed, *used, "{name}");
        let got_trailers: Vec<(String, String)> = got_trailers
            .unwrap_or_default()
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = trailers
            .iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect();
        assert_eq!(got_trailers, want, "{name}");
        assert_split_insensitive(BodyKind::Chunked, input);
    }
}

#[test]
fn malformed_chunked_bodies() {
    use H1Error::*;
    let table: &[(&[u8], H1Error)] = &[
        (b"\r\n", BadChunkSize),
        (b"x\r\n", BadChunkSize),
        (b"-5\r\nhello\r\n", BadChunkSize),
        (b"0x5\r\nhello\r\n", BadChunkSize),
        (b"5\nhello\r\n", BadChunkSize),
        (b"5\rhello\r\n", BadChunkSize),
        (b" 5\r\nhello\r\n", BadChunkSize),
        (b"5 \r\nhello\r\n", BadChunkSize),
        (b"5 x\r\nhello\r\n", BadChunkSize),
        (b"10000000000000000\r\n", BadChunkSize),
        (b"5;\r\nhello\r\n", BadChunkExtension),
        (b"5;=b\r\nhello\r\n", BadChunkExtension),
        (b"5;a=\r\nhello\r\n", BadChunkExtension),
        (b"5;a \r\nhello\r\n", BadChunkExtension),
        (b"5;a=b \r\nhello\r\n", BadChunkSize),
        (b"5;a=\"b\r\nhello\r\n", BadChunkExtension),
        (b"5;a=\"b\"c\r\nhello\r\n", BadChunkExtension),
        (b"5;a=b\x00\r\nhello\r\n", BadChunkExtension),
        (b"5;a\nhello\r\n", BadChunkExtension),
        (b"5\r\nhelloXX0\r\n\r\n", BadChunkTerminator),
        (b"5\r\nhello\n0\r\n\r\n", BadChunkTerminator),
        (b"5\r\nhello\rX", BadChunkTerminator),
        (b"0\r\nX: 1\n\r\n", BareLf { offset: 4 }),
        (b"0\r\n X: 1\r\n\r\n", ObsFold { offset: 0 }),
        (b"0\r\nX : 1\r\n\r\n", SpaceBeforeColon { offset: 1 }),
        (
            b"0\r\nX 1\r\n\r\n",
            Malformed {
                what: "header name",
            },
        ),
    ];
    for (input, error) in table {
        let name = String::from_utf8_lossy(input);
        assert_eq!(
            decode_all(BodyKind::Chunked, input).as_ref().err(),
            Some(error),
            "{name}"
        );
        assert_split_insensitive(BodyKind::Chunked, input);
        assert_eq!(error.status(), 400, "{name}");
    }
}

#[test]
fn limits() {
    let limits = H1Limits {
        max_body: 10,
        max_chunk_ext: 8,
        max_trailers: 16,
        ..H1Limits::default()
    };
    let decode = |input: &[u8]| decode_in_pieces(BodyKind::Chunked, &limits, input, &[]);
    assert!(decode(b"a\r\n0123456789\r\n0\r\n\r\n").is_ok());
    // A chunk that would pass the limit is refused at its size line, before its data.
    assert_eq!(
        decode(b"b\r\n").unwrap_err(),
        H1Error::BodyTooLarge { limit: 10 }
    );
    assert_eq!(
        decode(b"6\r\n012345\r\n5\r\n").unwrap_err(),
        H1Error::BodyTooLarge { limit: 10 }
    );
    assert_eq!(
        decode(b"1;aaaaaaaaaa\r\n").unwrap_err(),
        H1Error::ChunkExtensionTooLong { limit: 8 }
    );
    assert_eq!(
        decode(b"0\r\nX-Long-Trailer: 0123456789\r\n\r\n").unwrap_err(),
        H1Error::TrailersTooLarge { limit: 16 }
    );
    assert_eq!(H1Error::TrailersTooLarge { limit: 16 }.status(), 431);
    // An endless extension or trailer stream stays bounded.
    let mut endless = b"1;".to_vec();
    endless.extend(std::iter::repeat_n(b'a', 100_000));
    assert!(decode(&endless).is_err());
    let mut endless = b"0\r\nX: ".to_vec();
    endless.extend(std::iter::repeat_n(b'a', 100_000));
    assert!(decode(&endless).is_err());
}

#[test]
fn close_delimited_and_eof() {
    let limits = H1Limits::default();
    let mut decoder = BodyDecoder::new(BodyKind::CloseDelimited, &limits);
    let step = decoder.decode(b"abc").unwrap();
    assert_eq!(
        (step.data, step.consumed, step.finished),
        (&b"abc"[..], 3, false)
    );
    assert!(decoder.finish_at_eof().is_ok());
    assert!(decoder.is_finished());
    let mut decoder = BodyDecoder::new(BodyKind::Length(5), &limits);
    decoder.decode(b"abc").unwrap();
    assert_eq!(decoder.remaining(), Some(2));
    assert_eq!(decoder.finish_at_eof(), Err(H1Error::UnexpectedEof));
    let mut decoder = BodyDecoder::new(BodyKind::Chunked, &limits);
    decoder.decode(b"5\r\nab").unwrap();
    assert_eq!(decoder.finish_at_eof(), Err(H1Error::UnexpectedEof));
    let small = H1Limits {
        max_body: 4,
        ..H1Limits::default()
    };
    let mut decoder = BodyDecoder::new(BodyKind::CloseDelimited, &small);
    assert_eq!(
        decoder.decode(b"abcde").unwrap_err(),
        H1Error::BodyTooLarge { limit: 4 }
    );
}
