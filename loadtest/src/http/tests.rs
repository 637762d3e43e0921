//! HttpSession framing: table of response streams, each fed whole and cut at every offset.

use super::*;

fn session(method: &str) -> HttpSession {
    HttpWorkload::new(&["http://127.0.0.1:1/".into()], method, &[], b"")
        .expect("workload")
        .session()
}

/// Feeds `input` in pieces (cut at `cuts`), keeping unconsumed tails as the driver does.
fn feed(s: &mut HttpSession, input: &[u8], cuts: &[usize]) -> Result<Outcome, ResponseError> {
    let (mut done, mut bad, mut close) = (0, 0, false);
    let mut pending: Vec<u8> = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        pending.extend_from_slice(&input[last..cut]);
        last = cut;
        let p = s.on_bytes(&pending)?;
        assert!(p.consumed <= pending.len());
        pending.drain(..p.consumed);
        done += p.completed;
        bad += p.unsuccessful;
        close |= p.close;
    }
    let p = s.on_eof()?;
    Ok((done + p.completed, bad + p.unsuccessful, close || p.close))
}

/// (completed, unsuccessful, close) after the whole stream and its EOF.
type Outcome = (u32, u32, bool);

const CASES: &[(&str, &[u8], Outcome)] = &[
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 No\r\nContent-Length: 0\r\n\r\n", (2, 1, false)),
    ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", (2, 0, false)),
    ("GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", (1, 0, false)),
    ("GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", (1, 0, true)),
    ("GET", b"HTTP/1.0 200 OK\r\n\r\nuntil the end", (1, 0, true)),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", (2, 0, false)),
];

#[test]
fn whole_and_split_at_every_offset() {
    for (method, input, expected) in CASES {
        let whole = feed(&mut session(method), input, &[])
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(input)));
        assert_eq!(whole, *expected, "{}", String::from_utf8_lossy(input));
        for cut in 1..input.len() {
            let split = feed(&mut session(method), input, &[cut]).unwrap_or_else(|e| {
                panic!("cut at {cut}: {e}: {}", String::from_utf8_lossy(input))
            });
            assert_eq!(
                split,
                *expected,
                "cut at {cut}: {}",
                String::from_utf8_lossy(input)
            );
        }
        let bytewise: Vec<usize> = (1..input.len()).collect();
        assert_eq!(
            feed(&mut session(method), input, &bytewise).expect("valid"),
            *expected
        );
    }
}

#[test]
fn garbage_and_truncation_are_errors() {
    assert!(matches!(
        session("GET").on_bytes(b"SSH-2.0-OpenSSH\r\n\r\n"),
        Err(ResponseError::Malformed { .. })
    ));
    assert!(
        session("GET")
            .on_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            .is_err()
    );
    let mut s = session("GET");
    let p = s
        .on_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        .expect("partial body");
    assert_eq!(p.completed, 0);
    // EOF inside a Content-Length body: the driver counts an unexpected close.
    assert_eq!(s.on_eof(), Err(ResponseError::Truncated));
}

#[test]
fn requests_round_robin() {
    let w = HttpWorkload::new(
        &["http://h:8080/a".into(), "http://h:8080/b?x=1".into()],
        "POST",
        &["X-Test: 1".into()],
        b"body",
    );
    // `h` does not resolve here: building fails with a clear message, not a panic.
    if let Ok(w) = w {
        let mut s = w.session();
        let mut out = BytesMut::new();
        s.write_request(&mut out);
        s.write_request(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with(
                "POST /a HTTP/1.1\r\nHost: h:8080\r\nX-Test: 1\r\nContent-Length: 4\r\n\r\nbody"
            ),
            "{text}"
        );
        assert!(text.contains("POST /b?x=1 HTTP/1.1\r\n"), "{text}");
    }
    let w = HttpWorkload::new(
        &["http://127.0.0.1:8080/a".into()],
        "GET",
        &["Bad Header".into()],
        b"",
    );
    assert!(w.unwrap_err().contains("Name: value"));
    let https = Url::parse("https://x/").unwrap();
    assert!(https.tls && https.port == 443 && https.host_header() == "x");
    assert_eq!(Url::parse("https://x:80/").unwrap().host_header(), "x:80");
    assert!(Url::parse("ftp://x/").unwrap_err().contains("https://"));
    assert_eq!(
        Url::parse("http://[::1]:81/p").unwrap().host_header(),
        "[::1]:81"
    );
    assert_eq!(Url::parse("http://a?q").unwrap().target, "/?q");
}

/// Heads that differ from a valid one by little: each must be framed as a fresh session
/// frames it, whatever head the session recognised before.
const HEADS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok!",
    b"HTTP/1.1 500 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 204 OK\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
    // Malformed: a bare LF, NUL, two lengths, a space before the colon.
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: \0\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
];

/// What a session makes of `head` as its first response (or the error, as text).
fn framed(s: &mut HttpSession, head: &[u8]) -> Result<(usize, u32, u32, bool), String> {
    s.on_bytes(head)
        .map(|p| (p.consumed, p.completed, p.unsuccessful, p.close))
        .map_err(|e| e.to_string())
}

#[test]
fn a_recognised_head_frames_as_the_full_parse() {
    for first in HEADS {
        for second in HEADS {
            let expected = framed(&mut session("GET"), second);
            let mut s = session("GET");
            // Twice the first head: the second time it is recognised, not parsed.
            let first_alone = framed(&mut session("GET"), first);
            if first_alone.as_ref().is_ok_and(|f| !f.3) {
                assert_eq!(framed(&mut s, first), first_alone);
                assert_eq!(framed(&mut s, first), first_alone, "recognised");
            }
            assert_eq!(
                framed(&mut s, second),
                expected,
                "{} after {}",
                String::from_utf8_lossy(second),
                String::from_utf8_lossy(first)
            );
        }
    }
}

#[test]
fn a_remembered_head_is_not_matched_by_a_shorter_input() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    let mut s = session("GET");
    let whole = [head, b"ok"].concat();
    assert_eq!(framed(&mut s, &whole), Ok((whole.len(), 1, 0, false)));
    for cut in 0..head.len() {
        // A head cut short is partial (nothing consumed), recognised or not.
        assert_eq!(
            framed(&mut s, &head[..cut]),
            Ok((0, 0, 0, false)),
            "cut {cut}"
        );
    }
    // Responses to HEAD frame differently: a session is for one method, and so is its memory.
    let mut h = session("HEAD");
    assert_eq!(framed(&mut h, head), Ok((head.len(), 1, 0, false)));
    assert_eq!(framed(&mut h, head), Ok((head.len(), 1, 0, false)));
}
