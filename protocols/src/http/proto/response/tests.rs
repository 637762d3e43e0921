use super::*;

/// `parse_response`, checking that `parse_response_framing` frames every input the same.
fn parse(input: &[u8], method: &Method) -> Result<Status<ParsedResponse>, H1Error> {
    let limits = H1Limits::default();
    let parsed = parse_response(input, &limits, method);
    let framed = parse_response_framing(input, &limits, method);
    let expected = parsed.as_ref().map(|status| match status {
        Status::Complete(r) => Status::Complete(ResponseFraming {
            status: r.head.status,
            consumed: r.consumed,
            body: r.body,
            keep_alive: r.keep_alive,
        }),
        Status::Partial => Status::Partial,
    });
    assert_eq!(framed.as_ref().ok(), expected.as_ref().ok(), "{input:?}");
    assert_eq!(framed.as_ref().err(), parsed.as_ref().err(), "{input:?}");
    parsed
}

#[test]
fn body_length_rules() {
    // (input, request method, status, body, keep_alive)
    let table: &[(&[u8], Method, u16, BodyKind, bool)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            Method::Get,
            200,
            BodyKind::Length(5),
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            Method::Head,
            200,
            BodyKind::Empty,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            Method::Get,
            200,
            BodyKind::Empty,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::Get,
            200,
            BodyKind::Chunked,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n",
            Method::Get,
            200,
            BodyKind::CloseDelimited,
            false,
        ),
        (
            b"HTTP/1.1 204 No Content\r\n\r\n",
            Method::Get,
            204,
            BodyKind::Empty,
            true,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            Method::Get,
            304,
            BodyKind::Empty,
            true,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\n",
            Method::Post,
            100,
            BodyKind::Empty,
            true,
        ),
        (
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            Method::Connect,
            200,
            BodyKind::Empty,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            Method::Get,
            200,
            BodyKind::Length(5),
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
            Method::Get,
            200,
            BodyKind::Length(5),
            false,
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
            Method::Get,
            200,
            BodyKind::Length(5),
            true,
        ),
        (
            b"HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n",
            Method::Get,
            404,
            BodyKind::Length(1),
            true,
        ),
    ];
    for (input, method, status, body, keep_alive) in table {
        let name = String::from_utf8_lossy(input);
        let Ok(Status::Complete(r)) = parse(input, method) else {
            panic!("{name}: {:?}", parse(input, method));
        };
        assert_eq!(r.head.status, *status, "{name}");
        assert_eq!(r.body, *body, "{name}");
        assert_eq!(r.keep_alive, *keep_alive, "{name}");
        assert_eq!(r.consumed, input.len(), "{name}");
        for cut in 0..input.len() {
            assert!(
                matches!(parse(&input[..cut], method), Ok(Status::Partial)),
                "{name} cut at {cut}"
            );
        }
    }
    let Ok(Status::Complete(r)) = parse(b"HTTP/1.1 418 I'm a teapot\r\nX: y\r\n\r\n", &Method::Get)
    else {
        panic!()
    };
    assert_eq!(&r.head.reason[..], b"I'm a teapot");
    assert_eq!(r.head.headers.get("x"), Some(&b"y"[..]));
}

#[test]
fn rejected_responses() {
    use H1Error::*;
    let table: &[(&[u8], H1Error)] = &[
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            LengthAndTransferEncoding,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ConflictingContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            BadContentLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            BadTransferEncoding {
                reason: "final coding is not chunked",
            },
        ),
        (
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncodingInHttp10,
        ),
        (
            b"HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n",
            BareLf { offset: 15 },
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n",
            ObsFold { offset: 23 },
        ),
        (b"HTTP/2.0 200 OK\r\n\r\n", UnsupportedVersion),
        (
            b"HTTP/1.1 20 OK\r\n\r\n",
            Malformed {
                what: "status line",
            },
        ),
        (
            b"HTTP/1.1 OK\r\n\r\n",
            Malformed {
                what: "status line",
            },
        ),
        (b"SSH-2.0-OpenSSH\r\n\r\n", Malformed { what: "version" }),
    ];
    for (input, error) in table {
        let name = String::from_utf8_lossy(input);
        assert_eq!(
            parse(input, &Method::Get).err().as_ref(),
            Some(error),
            "{name}"
        );
    }
}

/// Found by `fuzz/http_response`: the status line limit wins over a later NUL, as it does
/// on a prefix of the same input.
#[test]
fn limit_errors_do_not_depend_on_the_split() {
    let limits = H1Limits {
        max_request_line: 32,
        ..H1Limits::default()
    };
    let input = format!("HTTP/1.1 200 {}\0\r\n\r\n", "O".repeat(40));
    for input in [&input.as_bytes()[..38], input.as_bytes()] {
        assert_eq!(
            parse_response(input, &limits, &Method::Get).unwrap_err(),
            H1Error::RequestLineTooLong { limit: 32 }
        );
    }
}
