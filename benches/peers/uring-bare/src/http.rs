//! A minimal HTTP/1.x request-head scanner: enough for a correct hello-world server.
//!
//! Finds CRLFCRLF, checks the request line ends in `HTTP/1.0` or `HTTP/1.1`, and reads
//! the `Connection` and `Content-Length` headers (a `Transfer-Encoding` is refused).
//! It does not validate methods, targets or header syntax beyond a colon per line.

/// One request head found at the start of the input.
pub struct Head {
    /// Bytes up to and including CRLFCRLF.
    pub len: usize,
    /// The Content-Length (0 if none): body bytes that follow the head.
    pub body: u64,
    /// Keep-alive: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `keep-alive`.
    pub keep_alive: bool,
}

/// The result of scanning for one request head.
pub enum Scan {
    Complete(Head),
    Partial,
    Bad,
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Scans the head at the start of `buf`.
pub fn scan(buf: &[u8]) -> Scan {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Scan::Partial;
    };
    let head = &buf[..end + 2]; // every line with its CRLF
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut keep_alive = if request_line.ends_with(b" HTTP/1.1") {
        true
    } else if request_line.ends_with(b" HTTP/1.0") {
        false
    } else {
        return Scan::Bad;
    };
    let mut body = 0u64;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Scan::Bad;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"connection") {
            if contains_ci(value, b"close") {
                keep_alive = false;
            } else if contains_ci(value, b"keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) => body = n,
                None => return Scan::Bad,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Scan::Bad; // chunked bodies are out of scope: 400 and close
        }
    }
    Scan::Complete(Head {
        len: end + 4,
        body,
        keep_alive,
    })
}

/// The answer to a head that does not scan; the connection closes after it.
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Appends the hello-world response, with `date` (see [`crate::date`]).
pub fn push_response(out: &mut Vec<u8>, date: &[u8; crate::date::DATE_LEN]) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Length: 13\r\n\r\nHello, World!");
}

#[cfg(test)]
mod tests {
    use super::{scan, Scan};

    /// `len,body,keep_alive`, `partial` or `bad`.
    fn scanned(input: &[u8]) -> String {
        match scan(input) {
            Scan::Complete(h) => format!("{},{},{}", h.len, h.body, h.keep_alive),
            Scan::Partial => "partial".into(),
            Scan::Bad => "bad".into(),
        }
    }

    #[test]
    fn scans_heads() {
        let cases: &[(&[u8], &str)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET", "27,0,true"),
            (b"GET / HTTP/1.0\r\n\r\n", "18,0,false"),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                "42,0,true",
            ),
            (b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n", "37,0,false"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde",
                "38,5,true",
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", "partial"),
            (b"GET / HTTP/2.0\r\n\r\n", "bad"),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "bad"),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "bad",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scanned(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }
}
