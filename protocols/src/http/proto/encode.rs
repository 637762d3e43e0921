//! HTTP/1.1 message encoding (sans-IO): start lines, fields and chunked framing into a
//! [`BytesMut`].
//!
//! Owns: the wire form of heads and chunks, and the check that no field a caller supplies
//! can split a message (CR, LF or NUL in a value, a name that is not a token).
//! Does not: decide framing (the server and client adapters pick Content-Length, chunked
//! or close) or write to sockets.
//! Spec: RFC 9112 §4 (status line), §3 (request line), §5 (fields), §7.1 (chunked).

use bytes::{BufMut, BytesMut};

use crate::http::proto::error::H1Error;
use crate::http::proto::head::{Headers, Method, Version, reason_phrase};

/// The last chunk of a chunked body with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Writes a status line: `HTTP/1.1 200 OK\r\n`. An empty `reason` sends the standard one.
///
/// # Errors
/// [`H1Error::InvalidResponseHeader`] for a status outside 100..=999 or a reason with
/// control bytes.
pub fn write_status_line(
    dst: &mut BytesMut,
    version: Version,
    status: u16,
    reason: &[u8],
) -> Result<(), H1Error> {
    if status == 200 && reason.is_empty() {
        // Most answers: one copy of the whole line.
        let line: &[u8] = match version {
            Version::Http10 => b"HTTP/1.0 200 OK\r\n",
            Version::Http11 => b"HTTP/1.1 200 OK\r\n",
            Version::Http2 => b"HTTP/2 200 OK\r\n",
        };
        dst.extend_from_slice(line);
        return Ok(());
    }
    if !(100..=999).contains(&status) {
        return Err(H1Error::InvalidResponseHeader {
            what: "status outside 100..=999",
        });
    }
    // RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
    if reason
        .iter()
        .any(|&b| b != b'\t' && (b < b' ' || b == 0x7f))
    {
        return Err(H1Error::InvalidResponseHeader {
            what: "control byte in the reason phrase",
        });
    }
    let reason = if reason.is_empty() {
        reason_phrase(status).as_bytes()
    } else {
        reason
    };
    dst.reserve(16 + reason.len());
    dst.put_slice(version.as_str().as_bytes());
    dst.put_u8(b' ');
    let digits = [
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    dst.put_slice(&digits);
    dst.put_u8(b' ');
    dst.put_slice(reason);
    dst.put_slice(b"\r\n");
    Ok(())
}

/// Writes a request line: `GET /path HTTP/1.1\r\n`.
///
/// # Errors
/// [`H1Error::BadTarget`] when the target is empty or holds whitespace or control bytes.
pub fn write_request_line(
    dst: &mut BytesMut,
    method: &Method,
    target: &[u8],
    version: Version,
) -> Result<(), H1Error> {
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(H1Error::BadTarget {
            reason: "empty, or whitespace or control bytes in the target",
        });
    }
    dst.reserve(method.as_bytes().len() + target.len() + 12);
    dst.put_slice(method.as_bytes());
    dst.put_u8(b' ');
    dst.put_slice(target);
    dst.put_u8(b' ');
    dst.put_slice(version.as_str().as_bytes());
    dst.put_slice(b"\r\n");
    Ok(())
}

/// Writes one field line, `name: value\r\n`.
///
/// # Errors
/// [`H1Error::InvalidResponseHeader`] for a name that is not a token or a value with CR,
/// LF or NUL (which would let a value end the head and start another message: RFC 9110
/// §5.5, field values MUST NOT contain CR, LF or NUL).
pub fn write_field(dst: &mut BytesMut, name: &[u8], value: &[u8]) -> Result<(), H1Error> {
    check_field(name, value)?;
    dst.reserve(name.len() + value.len() + 4);
    dst.put_slice(name);
    dst.put_slice(b": ");
    dst.put_slice(value);
    dst.put_slice(b"\r\n");
    Ok(())
}

/// Writes every field of `headers`; on error `dst` is left as it was.
///
/// # Errors
/// As [`write_field`].
pub fn write_fields(dst: &mut BytesMut, headers: &Headers) -> Result<(), H1Error> {
    let start = dst.len();
    for (name, value) in headers.iter() {
        if let Err(e) = write_field(dst, name, value) {
            dst.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

/// Writes `Content-Length: n\r\n`.
pub fn write_content_length(dst: &mut BytesMut, n: u64) {
    dst.put_slice(b"Content-Length: ");
    write_decimal(dst, n);
    dst.put_slice(b"\r\n");
}

/// Writes the size line of a chunk of `len` bytes (`len` > 0): `1a\r\n`.
pub fn write_chunk_size(dst: &mut BytesMut, len: usize) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[n % 16];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[at..]);
    dst.put_slice(b"\r\n");
}

/// Writes the last chunk and a trailer section.
///
/// # Errors
/// As [`write_field`], for a trailer field; `dst` is left as it was.
pub fn write_last_chunk(dst: &mut BytesMut, trailers: &Headers) -> Result<(), H1Error> {
    let start = dst.len();
    dst.put_slice(b"0\r\n");
    if let Err(e) = write_fields(dst, trailers) {
        dst.truncate(start);
        return Err(e);
    }
    dst.put_slice(b"\r\n");
    Ok(())
}

/// Writes `n` in decimal.
pub fn write_decimal(dst: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[at..]);
}

/// Checks that a field can be sent as is.
///
/// # Errors
/// See [`write_field`].
pub fn check_field(name: &[u8], value: &[u8]) -> Result<(), H1Error> {
    if name.is_empty() || !name.iter().all(|&b| TOKEN[usize::from(b)]) {
        return Err(H1Error::InvalidResponseHeader {
            what: "field name is not a token",
        });
    }
    if value.iter().any(|&b| SPLITS[usize::from(b)]) {
        return Err(H1Error::InvalidResponseHeader {
            what: "CR, LF or NUL in a field value",
        });
    }
    Ok(())
}

/// RFC 9110 §5.6.2 tchar: the bytes a field name may hold (one lookup per byte: this runs
/// for every field of every response).
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let symbols = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < symbols.len() {
        table[symbols[i] as usize] = true;
        i += 1;
    }
    table
};

/// The bytes that would end a field value early (CR, LF, NUL).
const SPLITS: [bool; 256] = {
    let mut table = [false; 256];
    table[0] = true;
    table[b'\r' as usize] = true;
    table[b'\n' as usize] = true;
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let mut dst = BytesMut::new();
        write_status_line(&mut dst, Version::Http11, 200, b"").unwrap();
        write_status_line(&mut dst, Version::Http10, 404, b"Nope").unwrap();
        write_status_line(&mut dst, Version::Http11, 599, b"").unwrap();
        write_status_line(&mut dst, Version::Http10, 200, b"").unwrap();
        write_status_line(&mut dst, Version::Http11, 200, b"Fine").unwrap();
        assert_eq!(
            &dst[..],
            &b"HTTP/1.1 200 OK\r\nHTTP/1.0 404 Nope\r\nHTTP/1.1 599 \r\nHTTP/1.0 200 OK\r\nHTTP/1.1 200 Fine\r\n"[..]
        );
        for bad in [0, 99, 1000] {
            assert!(write_status_line(&mut dst, Version::Http11, bad, b"").is_err());
        }
        assert!(write_status_line(&mut dst, Version::Http11, 200, b"O\r\nK").is_err());
    }

    #[test]
    fn fields_cannot_split_a_message() {
        let mut dst = BytesMut::new();
        write_field(&mut dst, b"X-Ok", b"a b\tc").unwrap();
        for (name, value) in [
            (&b"X"[..], &b"a\r\nSet-Cookie: x"[..]),
            (b"X", b"a\nb"),
            (b"X", b"a\rb"),
            (b"X", b"a\0b"),
            (b"X Y", b"v"),
            (b"X:", b"v"),
            (b"", b"v"),
        ] {
            assert!(
                write_field(&mut dst, name, value).is_err(),
                "{name:?}: {value:?}"
            );
        }
        assert_eq!(&dst[..], b"X-Ok: a b\tc\r\n");
        let mut headers = Headers::new();
        headers.append("A", "1");
        headers.append("B", "2\r\n");
        assert!(write_fields(&mut dst, &headers).is_err());
        assert_eq!(
            &dst[..],
            b"X-Ok: a b\tc\r\n",
            "a failed write leaves nothing"
        );
    }

    #[test]
    fn numbers() {
        let mut dst = BytesMut::new();
        for n in [1usize, 9, 10, 15, 16, 255, 4096, usize::MAX] {
            dst.clear();
            write_chunk_size(&mut dst, n);
            assert_eq!(dst, format!("{n:x}\r\n").as_bytes());
        }
        for n in [0u64, 7, 10, 13, 1_000_000, u64::MAX] {
            dst.clear();
            write_content_length(&mut dst, n);
            assert_eq!(dst, format!("Content-Length: {n}\r\n").as_bytes());
        }
    }

    #[test]
    fn request_lines() {
        let mut dst = BytesMut::new();
        write_request_line(&mut dst, &Method::Get, b"/a?b=c", Version::Http11).unwrap();
        assert_eq!(&dst[..], b"GET /a?b=c HTTP/1.1\r\n");
        for bad in [&b""[..], b"/a b", b"/a\r\n", b"/\x7f"] {
            assert!(write_request_line(&mut dst, &Method::Get, bad, Version::Http11).is_err());
        }
    }

    #[test]
    fn last_chunk_with_trailers() {
        let mut dst = BytesMut::new();
        write_last_chunk(&mut dst, &Headers::new()).unwrap();
        assert_eq!(&dst[..], LAST_CHUNK);
        dst.clear();
        let mut trailers = Headers::new();
        trailers.append("Digest", "x");
        write_last_chunk(&mut dst, &trailers).unwrap();
        assert_eq!(&dst[..], b"0\r\nDigest: x\r\n\r\n");
    }
}
