//! The request heads, read with httparse (the parser ringwork uses too), and the replies.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// One request head found at the start of the input.
pub struct Head {
    /// Bytes up to and including CRLFCRLF.
    pub len: usize,
    /// The Content-Length (0 if none): body bytes that follow the head.
    pub body: u64,
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
}

/// The result of scanning for one request head.
pub enum Scan {
    Complete(Head),
    Partial,
    /// Malformed, or a `Transfer-Encoding` body (out of scope): 400, then close.
    Bad,
}

/// Parses the head at the start of `buf`.
pub fn scan(buf: &[u8]) -> Scan {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Scan::Partial,
        Err(_) => return Scan::Bad,
    };
    let contains =
        |v: &[u8], word: &[u8]| v.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word));
    let (mut keep_alive, mut body) = (req.version == Some(1), 0);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if contains(h.value, b"close") {
                keep_alive = false;
            } else if contains(h.value, b"keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()) {
                Some(n) => body = n,
                None => return Scan::Bad,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Scan::Bad;
        }
    }
    Scan::Complete(Head { len, body, keep_alive })
}

/// The answer to a head that does not parse; the connection closes after it.
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

thread_local! {
    static DATE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
}

/// The `Date` value (IMF-fixdate, 29 bytes), formatted at most once per second per thread:
/// ringwork, nginx, hyper and Go all send a Date header.
pub fn date() -> [u8; 29] {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cache| match cache.get() {
        (cached, text) if cached == secs => text,
        _ => {
            let mut text = [b' '; 29];
            let formatted = httpdate::fmt_http_date(now);
            text.copy_from_slice(&formatted.as_bytes()[..29]);
            cache.set((secs, text));
            text
        }
    })
}

/// Appends the hello-world response with `date`.
pub fn push_response(out: &mut Vec<u8>, date: &[u8; 29]) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Length: 13\r\n\r\nHello, World!");
}

#[cfg(test)]
mod tests {
    use super::{scan, Scan};

    #[test]
    fn scans_heads() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET", "27,0,true"),
            (b"GET / HTTP/1.0\r\n\r\n", "18,0,false"),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "42,0,true"),
            (b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n", "37,0,false"),
            (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", "38,5,true"),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", "partial"),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "bad"),
            (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "bad"),
        ];
        for (input, want) in cases {
            let got = match scan(input) {
                Scan::Complete(h) => format!("{},{},{}", h.len, h.body, h.keep_alive),
                Scan::Partial => "partial".into(),
                Scan::Bad => "bad".into(),
            };
            assert_eq!(got, *want, "{}", String::from_utf8_lossy(input));
        }
        assert_eq!(super::date().len(), 29);
    }
}
