use super::*;
use crate::http::proto::head::Headers;

fn limits() -> H1Limits {
    H1Limits::default()
}

fn parse(input: &[u8]) -> Result<Status<ParsedRequest>, H1Error> {
    parse_request(input, &limits())
}

fn ok(input: &[u8]) -> ParsedRequest {
    match parse(input) {
        Ok(Status::Complete(r)) => r,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn err(input: &[u8]) -> H1Error {
    match parse(input) {
        Err(e) => e,
        other => panic!("{:?} parsed: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn header_pairs(headers: &Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// Every prefix of `input` shorter than the head is `Partial` (or, for a bad head, the
/// same error once the bad byte is in), and the whole gives the same result as parsing
/// it in one go: the parser keeps no state between calls.
fn assert_split_insensitive(input: &[u8]) {
    let whole = parse(input);
    for cut in 0..input.len() {
        match (parse(&input[..cut]), &whole) {
            (Ok(Status::Partial), _) => {}
            (Err(e), Err(w)) => assert_eq!(&e, w, "cut at {cut}"),
            (Ok(Status::Complete(r)), Ok(Status::Complete(w))) => {
                // Only a complete head can be complete, and its length cannot change.
                assert_eq!(r.consumed, w.consumed, "cut at {cut}");
            }
            (got, _) => panic!(
                "{:?} cut at {cut}: {got:?}, whole: {whole:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }
}

#[test]
fn valid_requests() {
    // (input, method, target, version, headers, body, keep_alive, expect_continue)
    type Row<'a> = (
        &'a [u8],
        Method,
        &'a str,
        Version,
        usize,
        BodyKind,
        bool,
        bool,
    );
    let table: &[Row<'_>] = &[
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Method::Get,
            "/",
            Version::Http11,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        (
            b"GET /p?q=1 HTTP/1.0\r\n\r\n",
            Method::Get,
            "/p?q=1",
            Version::Http10,
            0,
            BodyKind::Empty,
            false,
            false,
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            Method::Get,
            "/",
            Version::Http10,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n",
            Method::Get,
            "/",
            Version::Http11,
            2,
            BodyKind::Empty,
            false,
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
            Method::Get,
            "/",
            Version::Http11,
            2,
            BodyKind::Empty,
            false,
            false,
        ),
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            Method::Post,
            "/x",
            Version::Http11,
            2,
            BodyKind::Length(5),
            true,
            false,
        ),
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            Method::Post,
            "/x",
            Version::Http11,
            2,
            BodyKind::Empty,
            true,
            false,
        ),
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            Method::Post,
            "/x",
            Version::Http11,
            3,
            BodyKind::Length(5),
            true,
            false,
        ),
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::Post,
            "/x",
            Version::Http11,
            2,
            BodyKind::Chunked,
            true,
            false,
        ),
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,CHUNKED\r\n\r\n",
            Method::Post,
            "/x",
            Version::Http11,
            2,
            BodyKind::Chunked,
            true,
            false,
        ),
        (
            b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n",
            Method::Put,
            "/x",
            Version::Http11,
            3,
            BodyKind::Length(3),
            true,
            true,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            Method::Get,
            "/",
            Version::Http11,
            2,
            BodyKind::Empty,
            true,
            false,
        ),
        (
            b"PUT /x HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            Method::Put,
            "/x",
            Version::Http10,
            2,
            BodyKind::Length(3),
            false,
            false,
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            Method::Options,
            "*",
            Version::Http11,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            Method::Connect,
            "example.com:443",
            Version::Http11,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        (
            b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n",
            Method::Get,
            "http://example.com/a",
            Version::Http11,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        (
            b"PURGE /c HTTP/1.1\r\nHost: a\r\n\r\n",
            Method::Other(Bytes::from_static(b"PURGE")),
            "/c",
            Version::Http11,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        // RFC 9112 §2.2: empty lines before the request line are ignored.
        (
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            Method::Get,
            "/",
            Version::Http11,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        // An empty Host is allowed (the target has no authority).
        (
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            Method::Get,
            "/",
            Version::Http11,
            1,
            BodyKind::Empty,
            true,
            false,
        ),
        // Tabs and obs-text in values.
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xff\r\n\r\n",
            Method::Get,
            "/",
            Version::Http11,
            2,
            BodyKind::Empty,
            true,
            false,
        ),
    ];
    for (input, method, target, version, n_headers, body, keep_alive, expect) in table {
        let r = ok(input);
        let name = String::from_utf8_lossy(input);
        assert_eq!(r.consumed, input.len(), "{name}");
        assert_eq!(&r.head.method, method, "{name}");
        assert_eq!(&r.head.target[..], target.as_bytes(), "{name}");
        assert_eq!(r.head.version, *version, "{name}");
        assert_eq!(r.head.headers.len(), *n_headers, "{name}");
        assert_eq!(r.body, *body, "{name}");
        assert_eq!(r.keep_alive, *keep_alive, "{name}");
        assert_eq!(r.expect_continue, *expect, "{name}");
        assert_split_insensitive(input);
    }
}

#[test]
fn fields_are_slices_in_order() {
    let r = ok(b"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com\r\nAccept:  */*  \r\nX-Two: 1\r\nx-two: 2\r\n\r\nnext");
    assert_eq!(r.consumed, 82);
    assert_eq!(
        header_pairs(&r.head.headers),
        [
            ("Host".into(), "example.com".into()),
            ("Accept".into(), "*/*".into()),
            ("X-Two".into(), "1".into()),
            ("x-two".into(), "2".into()),
        ]
    );
    assert_eq!(r.head.headers.get("HOST"), Some(&b"example.com"[..]));
    assert_eq!(r.head.headers.get_all("X-TWO").count(), 2);
    assert_eq!(r.head.path(), b"/a/b");
    assert_eq!(r.head.query(), Some(&b"c=d&e"[..]));
}

#[test]
fn rejected_requests() {
    use H1Error::*;
    let table: &[(&[u8], H1Error, u16)] = &[
        // Byte-level rules (scan.rs).
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", BareLf { offset: 14 }, 400),
        (b"GET / HTTP/1.1\r\nHost: a\n\r\n", BareLf { offset: 23 }, 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\n", BareLf { offset: 25 }, 400),
        (b"GET / HTTP/1.1\r\nHost: a\rX\r\n\r\n", BareCr { offset: 23 }, 400),
        (b"GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", Nul { offset: 23 }, 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", ObsFold { offset: 31 }, 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", ObsFold { offset: 31 }, 400),
        (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", ObsFold { offset: 16 }, 400),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", SpaceBeforeColon { offset: 20 }, 400),
        (b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", SpaceBeforeColon { offset: 20 }, 400),
        // Grammar (httparse).
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed { what: "token" }, 400),
        (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed { what: "token" }, 400),
        (b"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", Malformed { what: "header name" }, 400),
        (b"GET / HTTP/1.1\r\n: a\r\n\r\n", Malformed { what: "header name" }, 400),
        (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", Malformed { what: "header name" }, 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", UnsupportedVersion, 505),
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", UnsupportedVersion, 505),
        (b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", Malformed { what: "version" }, 400),
        (b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", Malformed { what: "line ending" }, 400),
        // Targets and Host.
        (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget { reason: "not origin-form or absolute-form" }, 400),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget { reason: "* is only for OPTIONS" }, 400),
        (b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget { reason: "CONNECT needs host:port" }, 400),
        (b"GET / HTTP/1.1\r\n\r\n", BadHost { count: 0 }, 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BadHost { count: 2 }, 400),
        (b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", BadHost { count: 2 }, 400),
        // Framing (smuggling).
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", LengthAndTransferEncoding, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", LengthAndTransferEncoding, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", ConflictingContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", BadContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", BadContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", BadContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", BadContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", BadContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", BadContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", BadContentLength, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", BadTransferEncoding { reason: "final coding is not chunked" }, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", BadTransferEncoding { reason: "final coding is not chunked" }, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", BadTransferEncoding { reason: "chunked applied twice" }, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", BadTransferEncoding { reason: "final coding is not chunked" }, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;a=b\r\n\r\n", BadTransferEncoding { reason: "chunked takes no parameters" }, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", BadTransferEncoding { reason: "empty field" }, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", UnsupportedTransferCoding, 501),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingInHttp10, 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 8388609\r\n\r\n", BodyTooLarge { limit: 8 * 1024 * 1024 }, 413),
        (b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", UnsupportedExpectation, 417),
    ];
    for (input, error, status) in table {
        let name = String::from_utf8_lossy(input);
        assert_eq!(&err(input), error, "{name}");
        assert_eq!(error.status(), *status, "{name}");
        assert_split_insensitive(input);
    }
}

#[test]
fn limits_are_enforced_on_partial_input() {
    let limits = H1Limits {
        max_request_line: 32,
        max_head: 128,
        max_headers: 3,
        ..H1Limits::default()
    };
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(40));
    assert_eq!(
        parse_request(long_line.as_bytes(), &limits).unwrap_err(),
        H1Error::RequestLineTooLong { limit: 32 }
    );
    // Without its end: the line is already too long, so waiting cannot help.
    assert_eq!(
        parse_request(&long_line.as_bytes()[..38], &limits).unwrap_err(),
        H1Error::RequestLineTooLong { limit: 32 }
    );
    let exact = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(32 - 15));
    assert!(matches!(
        parse_request(exact.as_bytes(), &limits),
        Ok(Status::Complete(_))
    ));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(120)
    );
    assert_eq!(
        parse_request(big_head.as_bytes(), &limits).unwrap_err(),
        H1Error::HeadTooLarge { limit: 128 }
    );
    assert_eq!(
        parse_request(&big_head.as_bytes()[..130], &limits).unwrap_err(),
        H1Error::HeadTooLarge { limit: 128 }
    );
    let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        parse_request(many, &limits).unwrap_err(),
        H1Error::TooManyHeaders { limit: 3 }
    );
    assert_eq!(H1Error::TooManyHeaders { limit: 3 }.status(), 431);
    assert_eq!(H1Error::RequestLineTooLong { limit: 3 }.status(), 414);
    // An endless stream of bytes without a line end errs once past the limit.
    let endless = vec![b'a'; 4096];
    assert!(parse_request(&endless, &limits).is_err());
}

#[test]
fn pipelined_requests_parse_one_at_a_time() {
    let input = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HT";
    let first = ok(input);
    assert_eq!(&first.head.target[..], b"/1");
    let rest = &input[first.consumed..];
    let second = ok(rest);
    assert_eq!(&second.head.target[..], b"/2");
    assert!(matches!(
        parse(&rest[second.consumed..]),
        Ok(Status::Partial)
    ));
}

/// Found by `fuzz/http_request`: a limit error seen on a prefix must also be the error of
/// the whole input, or the reply (414/431 versus 400) depends on how TCP split the bytes.
#[test]
fn limit_errors_do_not_depend_on_the_split() {
    let limits = H1Limits {
        max_request_line: 32,
        max_head: 128,
        ..H1Limits::default()
    };
    // A NUL after the start line is already too long.
    let long_line = format!("GET /{}\0 HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(40));
    let input = long_line.as_bytes();
    assert_eq!(
        parse_request(&input[..38], &limits).unwrap_err(),
        H1Error::RequestLineTooLong { limit: 32 }
    );
    assert_eq!(
        parse_request(input, &limits).unwrap_err(),
        H1Error::RequestLineTooLong { limit: 32 }
    );
    // A bare CR as the last byte the head limit allows.
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    big.resize(127, b'v');
    big.extend_from_slice(b"\rv\r\n\r\n");
    assert_eq!(
        parse_request(&big[..128], &limits).unwrap_err(),
        H1Error::HeadTooLarge { limit: 128 }
    );
    assert_eq!(
        parse_request(&big, &limits).unwrap_err(),
        H1Error::HeadTooLarge { limit: 128 }
    );
    // A field line ends exactly at the head limit and the next one starts with a space.
    let mut fold = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    fold.resize(126, b'v');
    fold.extend_from_slice(b"\r\n v\r\n\r\n");
    for input in [&fold[..128], &fold[..]] {
        assert_eq!(
            parse_request(input, &limits).unwrap_err(),
            H1Error::HeadTooLarge { limit: 128 }
        );
    }
}

/// The one-pass read of a complete head (httparse, checked on its offsets) takes exactly
/// the heads the strict scan takes: what httparse alone would let through (a bare LF at any
/// line end, empty lines of bare LFs before the request line) and the limits at their
/// edges give the scan's answer.
#[test]
fn one_pass_read_agrees_with_the_strict_scan() {
    let limits = H1Limits {
        max_request_line: 32,
        max_head: 64,
        ..H1Limits::default()
    };
    use H1Error::*;
    for (input, want) in [
        (
            &b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            BareLf { offset: 0 },
        ),
        (
            b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            BareLf { offset: 0 },
        ),
        (b"GET / HTTP/1.1\n\r\n", BareLf { offset: 14 }),
        (b"GET / HTTP/1.1\r\n\n", BareLf { offset: 16 }),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: b\nY: c\r\n\r\n",
            BareLf { offset: 29 },
        ),
    ] {
        assert_eq!(
            parse_request(input, &limits).unwrap_err(),
            want,
            "{input:?}"
        );
    }
    // The request line at its limit and one past it.
    let line = |len: usize| format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(len - 14));
    assert!(parse_request(line(32).as_bytes(), &limits).is_ok_and(|s| !s.is_partial()));
    assert_eq!(
        parse_request(line(33).as_bytes(), &limits).unwrap_err(),
        RequestLineTooLong { limit: 32 }
    );
    // The head at its limit and one past it (also after a skipped empty line).
    let head = |len: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(len - 32)
        )
    };
    let exact = head(64);
    assert_eq!(exact.len(), 64);
    assert!(parse_request(exact.as_bytes(), &limits).is_ok_and(|s| !s.is_partial()));
    for input in [head(65), format!("\r\n{exact}")] {
        let error = parse_request(input.as_bytes(), &limits).unwrap_err();
        assert!(matches!(error, HeadTooLarge { .. }), "{input:?}: {error:?}");
    }
}

/// The one-pass read against the scan-first reference on heads mutated at random (bytes
/// the scan and httparse judge differently put anywhere, bytes cut or doubled): the same
/// result every time, and on every prefix.
#[test]
fn one_pass_read_equals_the_scan_first_read_on_mutated_heads() {
    let limits = H1Limits {
        max_request_line: 40,
        max_head: 96,
        max_headers: 4,
        ..H1Limits::default()
    };
    let seeds: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\nPOST /x?y HTTP/1.0\r\nContent-Length: 3\r\nX: b\tc\r\n\r\nabc",
        b"OPTIONS * HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\n\r\nGET",
        b"GET http://a/b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    let special = b"\r\n :\t\0aH/1\x80";
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let run = |input: &[u8], one_pass: bool| {
        format!(
            "{:?}",
            parse_head(input, &limits, Bytes::copy_from_slice, one_pass)
        )
    };
    for _ in 0..20_000 {
        let mut input = seeds[next(seeds.len())].to_vec();
        for _ in 0..1 + next(3) {
            let at = next(input.len() + 1);
            match next(4) {
                0 => input.insert(at, special[next(special.len())]),
                1 if at < input.len() => input[at] = special[next(special.len())],
                2 if at < input.len() => drop(input.remove(at)),
                _ => {
                    let piece = input[at..]
                        .iter()
                        .take(1 + next(40))
                        .copied()
                        .collect::<Vec<_>>();
                    input.splice(at..at, piece);
                }
            }
        }
        for end in [input.len(), next(input.len() + 1)] {
            let input = &input[..end];
            assert_eq!(
                run(input, true),
                run(input, false),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
