//! The head scanner and the framing fields shared by the request and response parsers.
//!
//! Owns: finding the end of a message head while enforcing the size limits and the
//! byte-level rules httparse is lenient about (bare CR, bare LF, NUL, obs-fold, whitespace
//! before the colon), and the strict reading of Content-Length and Transfer-Encoding.
//! Does not: tokenize the start line or fields (httparse does, after this scan).
//! Spec: RFC 9112 §2.2, §5.1, §5.2, §6.1, §6.3; RFC 9110 §8.6.

use crate::http::proto::error::H1Error;
use crate::http::proto::head::{Headers, Status, trim};

/// Bytes the scanner must look at: NUL, CR, LF and the colon.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    table[0] = true;
    table[b'\r' as usize] = true;
    table[b'\n' as usize] = true;
    table[b':' as usize] = true;
    table
};

/// Skips the empty lines (CRLF) a peer may send before a request line; returns how many
/// bytes they take.
///
/// RFC 9112 §2.2: a server that is expecting to receive and parse a request-line SHOULD
/// ignore at least one empty line (CRLF) received prior to the request-line.
pub(crate) fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    while buf.len() >= at + 2 && buf[at] == b'\r' && buf[at + 1] == b'\n' {
        at += 2;
    }
    at
}

/// Finds the end of the head that starts at `buf[0]`: `Complete(len)` with `len` counting
/// the final empty line, or `Partial`.
///
/// # Errors
/// - RFC 9112 §2.2: a bare CR (a CR not followed by LF) MUST be rejected or replaced by SP
///   (it is rejected: [`H1Error::BareCr`]); a bare LF is rejected too ([`H1Error::BareLf`]),
///   because a server MAY recognize it but intermediaries disagree about it (smuggling).
/// - NUL anywhere in the head ([`H1Error::Nul`]); RFC 9110 §5.5: a field value containing
///   NUL MUST be rejected.
/// - RFC 9112 §5.2: obs-fold in a request MUST be rejected (400) ([`H1Error::ObsFold`]);
///   RFC 9112 §2.2: whitespace between the start line and the first field MUST be rejected
///   (same error).
/// - RFC 9112 §5.1: no whitespace is allowed between the field name and colon; a server
///   MUST reject such a message with 400 ([`H1Error::SpaceBeforeColon`]).
/// - A start line longer than `max_start_line` ([`H1Error::RequestLineTooLong`]) or a head
///   longer than `max_head` ([`H1Error::HeadTooLarge`]), checked on partial input too.
pub(crate) fn scan_head(
    buf: &[u8],
    max_start_line: usize,
    max_head: usize,
) -> Result<Status<usize>, H1Error> {
    let mut line_start = 0;
    let mut first_line = true;
    let mut colon_seen = false;
    let mut i = 0;
    let limit = buf.len().min(max_head);
    while i < limit {
        let b = buf[i];
        if !SPECIAL[b as usize] {
            i += 1;
            continue;
        }
        // The limits are judged on the bytes up to `i` alone, as on a partial input, so
        // the error does not depend on how the input was split (fuzz/http_request).
        if first_line && i > max_start_line + 1 {
            return Err(H1Error::RequestLineTooLong {
                limit: max_start_line,
            });
        }
        match b {
            0 => return Err(H1Error::Nul { offset: i }),
            b'\r' => match buf[..limit].get(i + 1) {
                Some(b'\n') => {}
                Some(_) => return Err(H1Error::BareCr { offset: i }),
                None => break,
            },
            b'\n' => {
                if i == 0 || buf[i - 1] != b'\r' {
                    return Err(H1Error::BareLf { offset: i });
                }
                let line_len = i - 1 - line_start;
                if first_line && line_len > max_start_line {
                    return Err(H1Error::RequestLineTooLong {
                        limit: max_start_line,
                    });
                }
                if line_len == 0 && !first_line {
                    return Ok(Status::Complete(i + 1));
                }
                first_line = false;
                colon_seen = false;
                line_start = i + 1;
                if let Some(&(b' ' | b'\t')) = buf[..limit].get(line_start) {
                    return Err(H1Error::ObsFold { offset: line_start });
                }
            }
            _ => {
                // b':'
                if !first_line && !colon_seen {
                    colon_seen = true;
                    if i > line_start && matches!(buf[i - 1], b' ' | b'\t') {
                        return Err(H1Error::SpaceBeforeColon { offset: i - 1 });
                    }
                }
            }
        }
        i += 1;
    }
    if first_line && buf.len().min(limit) > max_start_line + 2 {
        return Err(H1Error::RequestLineTooLong {
            limit: max_start_line,
        });
    }
    if buf.len() >= max_head {
        return Err(H1Error::HeadTooLarge { limit: max_head });
    }
    Ok(Status::Partial)
}

/// The body length from the Content-Length fields, if any.
///
/// # Errors
/// RFC 9112 §6.3 (5): an invalid Content-Length is an unrecoverable framing error; a server
/// MUST respond with 400 and close. Values must be 1*DIGIT ([`H1Error::BadContentLength`]:
/// signs, lists, spaces inside and values past `u64` are invalid); several fields must
/// agree ([`H1Error::ConflictingContentLength`]; RFC 9110 §8.6 lets a recipient reject
/// them).
pub(crate) fn content_length(headers: &Headers) -> Result<Option<u64>, H1Error> {
    let mut length = None;
    for value in headers.get_all("content-length") {
        let value = trim(value);
        if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
            return Err(H1Error::BadContentLength);
        }
        let n = value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        match length {
            Some(previous) if previous != n => return Err(H1Error::ConflictingContentLength),
            _ => length = Some(n),
        }
    }
    Ok(length)
}

/// Checks the Transfer-Encoding fields: `Ok(true)` when present and valid (ending in a
/// single `chunked`), `Ok(false)` when absent.
///
/// # Errors
/// - RFC 9112 §6.3 (4): in a request, if chunked is not the final encoding the server MUST
///   respond with 400 and close ([`H1Error::BadTransferEncoding`]); RFC 9112 §7: a sender
///   MUST NOT apply chunked more than once (same error).
/// - RFC 9112 §6.1: a server that receives a transfer coding it does not understand SHOULD
///   respond with 501 ([`H1Error::UnsupportedTransferCoding`]).
pub(crate) fn transfer_encoding_is_chunked(headers: &Headers) -> Result<bool, H1Error> {
    let mut present = false;
    let mut codings = 0usize;
    let mut last_is_chunked = false;
    let mut chunked_seen = false;
    let mut other_seen = false;
    for value in headers.get_all("transfer-encoding") {
        present = true;
        for coding in value.split(|&b| b == b',').map(trim) {
            // RFC 9110 §5.6.1: empty list elements are ignored.
            if coding.is_empty() {
                continue;
            }
            codings += 1;
            let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if is_chunked {
                if chunked_seen {
                    return Err(H1Error::BadTransferEncoding {
                        reason: "chunked applied twice",
                    });
                }
                chunked_seen = true;
            } else if coding.len() >= 7 && coding[..7].eq_ignore_ascii_case(b"chunked") {
                return Err(H1Error::BadTransferEncoding {
                    reason: "chunked takes no parameters",
                });
            } else {
                other_seen = true;
            }
            last_is_chunked = is_chunked;
        }
    }
    if !present {
        return Ok(false);
    }
    if codings == 0 {
        return Err(H1Error::BadTransferEncoding {
            reason: "empty field",
        });
    }
    if !last_is_chunked {
        return Err(H1Error::BadTransferEncoding {
            reason: "final coding is not chunked",
        });
    }
    if other_seen {
        return Err(H1Error::UnsupportedTransferCoding);
    }
    Ok(true)
}

/// Copies httparse's fields into [`Headers`] whose names and values are slices of `owned`
/// (a copy of `buf`, which httparse's slices point into).
pub(crate) fn collect_headers(
    buf: &[u8],
    owned: &bytes::Bytes,
    fields: &[httparse::Header<'_>],
) -> Headers {
    let base = buf.as_ptr() as usize;
    let slice = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        owned.slice(start..start + part.len())
    };
    let mut headers = Headers::with_capacity(fields.len());
    for field in fields {
        headers.append(slice(field.name.as_bytes()), slice(field.value));
    }
    headers
}

/// The error for an httparse failure.
pub(crate) fn httparse_error(error: httparse::Error, max_headers: usize) -> H1Error {
    match error {
        httparse::Error::HeaderName => H1Error::Malformed {
            what: "header name",
        },
        httparse::Error::HeaderValue => H1Error::Malformed {
            what: "header value",
        },
        httparse::Error::NewLine => H1Error::Malformed {
            what: "line ending",
        },
        httparse::Error::Status => H1Error::Malformed {
            what: "status line",
        },
        httparse::Error::Token => H1Error::Malformed { what: "token" },
        httparse::Error::TooManyHeaders => H1Error::TooManyHeaders { limit: max_headers },
        httparse::Error::Version => H1Error::Malformed { what: "version" },
    }
}

/// Checks httparse's result on a head whose end the scan found (`head_len` bytes):
/// httparse must agree on that length; its errors become [`H1Error`]s, with a version
/// error split into 505 (another HTTP version, read from `version_token`) and 400.
pub(crate) fn check_tokenized<'a>(
    parsed: httparse::Result<usize>,
    head_len: usize,
    max_headers: usize,
    version_token: impl FnOnce() -> &'a [u8],
) -> Result<(), H1Error> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n == head_len => Ok(()),
        // The scan found the end of the head, so httparse must too.
        Ok(_) => Err(H1Error::Malformed { what: "head" }),
        Err(httparse::Error::Version) => Err(if is_other_http_version(version_token()) {
            H1Error::UnsupportedVersion
        } else {
            H1Error::Malformed { what: "version" }
        }),
        Err(e) => Err(httparse_error(e, max_headers)),
    }
}

/// Whether the start line's version token is `HTTP/x.y` with x.y other than 1.0 and 1.1
/// (505), as opposed to garbage (400).
pub(crate) fn is_other_http_version(token: &[u8]) -> bool {
    matches!(token, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit() && *major != b'1')
}
