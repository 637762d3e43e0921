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

/// What the framing rules read of a head's fields, gathered in one pass over them
/// ([`FramingFields::read`]) instead of one lookup per rule: the Host count, Content-Length,
/// Transfer-Encoding, the Connection tokens and the first Expect value. Field errors are
/// kept (the first in field order) and raised by the caller in its own order of checks.
pub(crate) struct FramingFields<'a> {
    /// Host fields (RFC 9112 §3.2: exactly one in HTTP/1.1).
    pub(crate) hosts: usize,
    /// The checked Content-Length ([`content_length`]'s result).
    pub(crate) length: Result<Option<u64>, H1Error>,
    /// The checked Transfer-Encoding ([`transfer_encoding_is_chunked`]'s result).
    pub(crate) chunked: Result<bool, H1Error>,
    /// A Connection field holds `close`.
    pub(crate) close: bool,
    /// A Connection field holds `keep-alive`.
    pub(crate) keep_alive: bool,
    /// The first Expect value.
    pub(crate) expect: Option<&'a [u8]>,
    /// An Upgrade field is present and a Connection field holds `upgrade` (RFC 9110 §7.8).
    pub(crate) upgrade: bool,
}

impl<'a> FramingFields<'a> {
    /// Reads `fields` (name, value) in order.
    pub(crate) fn read(fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let mut length = LengthFields::default();
        let mut coding = CodingFields::default();
        let mut out = Self {
            hosts: 0,
            length: Ok(None),
            chunked: Ok(false),
            close: false,
            keep_alive: false,
            expect: None,
            upgrade: false,
        };
        let (mut upgrade_field, mut upgrade_token) = (false, false);
        for (name, value) in fields {
            // The length picks the one name it can be (most fields are none of these).
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => out.hosts += 1,
                7 if name.eq_ignore_ascii_case(b"upgrade") => upgrade_field = true,
                6 if name.eq_ignore_ascii_case(b"expect") => {
                    out.expect = out.expect.or(Some(value));
                }
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    for item in value.split(|&b| b == b',').map(trim) {
                        out.close |= item.eq_ignore_ascii_case(b"close");
                        out.keep_alive |= item.eq_ignore_ascii_case(b"keep-alive");
                        upgrade_token |= item.eq_ignore_ascii_case(b"upgrade");
                    }
                }
                14 if name.eq_ignore_ascii_case(b"content-length") => length.add(value),
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => coding.add(value),
                _ => {}
            }
        }
        out.upgrade = upgrade_field && upgrade_token;
        out.length = length.finish();
        out.chunked = coding.finish();
        out
    }
}

/// Content-Length values seen so far, or the first error.
#[derive(Default)]
struct LengthFields {
    length: Option<u64>,
    error: Option<H1Error>,
}

impl LengthFields {
    fn add(&mut self, value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let value = trim(value);
        if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
            self.error = Some(H1Error::BadContentLength);
            return;
        }
        let n = value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        match self.length {
            Some(previous) if previous != n => {
                self.error = Some(H1Error::ConflictingContentLength);
            }
            _ => self.length = Some(n),
        }
    }

    fn finish(self) -> Result<Option<u64>, H1Error> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.length),
        }
    }
}

/// Transfer-Encoding codings seen so far, or the first error.
#[derive(Default)]
struct CodingFields {
    present: bool,
    codings: usize,
    last_is_chunked: bool,
    chunked_seen: bool,
    other_seen: bool,
    error: Option<H1Error>,
}

impl CodingFields {
    fn add(&mut self, value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.present = true;
        for coding in value.split(|&b| b == b',').map(trim) {
            // RFC 9110 §5.6.1: empty list elements are ignored.
            if coding.is_empty() {
                continue;
            }
            self.codings += 1;
            let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if is_chunked {
                if self.chunked_seen {
                    self.error = Some(H1Error::BadTransferEncoding {
                        reason: "chunked applied twice",
                    });
                    return;
                }
                self.chunked_seen = true;
            } else if coding.len() >= 7 && coding[..7].eq_ignore_ascii_case(b"chunked") {
                self.error = Some(H1Error::BadTransferEncoding {
                    reason: "chunked takes no parameters",
                });
                return;
            } else {
                self.other_seen = true;
            }
            self.last_is_chunked = is_chunked;
        }
    }

    fn finish(self) -> Result<bool, H1Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if !self.present {
            return Ok(false);
        }
        if self.codings == 0 {
            return Err(H1Error::BadTransferEncoding {
                reason: "empty field",
            });
        }
        if !self.last_is_chunked {
            return Err(H1Error::BadTransferEncoding {
                reason: "final coding is not chunked",
            });
        }
        if self.other_seen {
            return Err(H1Error::UnsupportedTransferCoding);
        }
        Ok(true)
    }
}

/// httparse's fields as [`Headers`] holding `owned` (a copy of `buf`, which httparse's
/// slices point into) and each field's place in it.
pub(crate) fn collect_headers(
    buf: &[u8],
    owned: bytes::Bytes,
    fields: &[httparse::Header<'_>],
) -> Headers {
    let fields = fields
        .iter()
        .map(|field| (field.name.as_bytes(), field.value));
    Headers::parsed(owned, buf, fields)
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
