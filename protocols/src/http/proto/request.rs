//! HTTP/1.1 request-head parser (sans-IO).
//!
//! Owns: request line + field parsing into a [`ParsedRequest`]; enforces [`H1Limits`] and
//! the framing rules that defend against request smuggling.
//! Contract: [`parse_request`] looks at a prefix of its input and returns
//! [`Status::Partial`] until the head is complete; it never holds input itself (the caller
//! keeps unparsed bytes) and copies the head once, into one [`Bytes`], on success. A
//! complete head is read in one pass (httparse, checked strictly on its offsets); the
//! strict byte scan runs first only when that pass does not take the head as it is.
//! Does not: touch sockets, read the clock, or decode bodies (see `body.rs`).
//! Spec: RFC 9112 §2–§3, §5–§6; RFC 9110 §7.2, §10.1.1. Tests: `request/tests.rs`;
//! fuzz target `fuzz/http_request`.

use std::mem::MaybeUninit;

use bytes::Bytes;

use crate::http::proto::error::H1Error;
use crate::http::proto::head::{BodyKind, H1Limits, Method, RequestHead, Status, Version, trim};
use crate::http::proto::scan;

/// A request head and what the connection must do with the rest of the message.
#[derive(Clone, Debug)]
pub struct ParsedRequest {
    /// The head.
    pub head: RequestHead,
    /// Bytes of input the head took (including any empty lines before it).
    pub consumed: usize,
    /// How the body is delimited ([`BodyKind::CloseDelimited`] never occurs in requests).
    pub body: BodyKind,
    /// Whether the connection may carry another request after this one (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body (RFC 9110
    /// §10.1.1; ignored for HTTP/1.0 and for requests without a body).
    pub expect_continue: bool,
    /// Whether the head asks to switch protocols: an Upgrade field and a Connection field
    /// holding `upgrade` (RFC 9110 §7.8; the server decides whether it may).
    pub upgrade: bool,
}

/// Parses the request head at the start of `buf`.
///
/// # Errors
/// Every [`H1Error`] a request head can earn; [`H1Error::status`] gives the reply. The
/// connection must be closed after replying: the input can no longer be framed.
pub fn parse_request(buf: &[u8], limits: &H1Limits) -> Result<Status<ParsedRequest>, H1Error> {
    parse_request_with(buf, limits, Bytes::copy_from_slice)
}

/// [`parse_request`], with the head's bytes copied by `own` (given the head, it returns a
/// [`Bytes`] with the same bytes): a connection that parses many requests keeps one buffer
/// for their heads instead of allocating one per request.
///
/// # Errors
/// As [`parse_request`].
pub fn parse_request_with(
    buf: &[u8],
    limits: &H1Limits,
    own: impl FnOnce(&[u8]) -> Bytes,
) -> Result<Status<ParsedRequest>, H1Error> {
    parse_head(buf, limits, own, true)
}

/// [`parse_request_with`]; `one_pass` false always scans first (the reference the tests
/// compare the one-pass read with).
fn parse_head(
    buf: &[u8],
    limits: &H1Limits,
    own: impl FnOnce(&[u8]) -> Bytes,
    one_pass: bool,
) -> Result<Status<ParsedRequest>, H1Error> {
    let skip = scan::leading_empty_lines(buf);
    let input = &buf[skip..];
    let max_head = limits.max_head.saturating_sub(skip);
    let max_headers = limits.max_headers.min(H1Limits::HEADERS_CAP);
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); H1Limits::HEADERS_CAP];
    let mut strict_fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); H1Limits::HEADERS_CAP];
    let mut request = httparse::Request::new(&mut []);
    // One pass over the bytes: httparse tokenizes a complete head, and what it is lenient
    // about is checked on its offsets (`strict_on_offsets`). Anything else (a partial head,
    // an httparse error, a head those checks refuse) takes the strict scan first, as before,
    // which gives the exact error and the same result however the input is split.
    let config = httparse::ParserConfig::default();
    let quick = one_pass.then(|| {
        config.parse_request_with_uninit_headers(
            &mut request,
            &input[..input.len().min(max_head)],
            &mut fields[..max_headers],
        )
    });
    let head_len = match quick {
        Some(Ok(httparse::Status::Complete(len)))
            if strict_on_offsets(input, len, &request, limits.max_request_line) =>
        {
            len
        }
        _ => {
            let head_len = match scan::scan_head(input, limits.max_request_line, max_head)? {
                Status::Complete(len) => len,
                Status::Partial => return Ok(Status::Partial),
            };
            let head = &input[..head_len];
            request = httparse::Request::new(&mut []);
            let parsed = config.parse_request_with_uninit_headers(
                &mut request,
                head,
                &mut strict_fields[..max_headers],
            );
            scan::check_tokenized(parsed, head_len, max_headers, || {
                // The request line's last word.
                head.split(|&b| b == b'\r')
                    .next()
                    .and_then(|line| line.rsplit(|&b| b == b' ').next())
                    .unwrap_or_default()
            })?;
            head_len
        }
    };
    let input = &input[..head_len];
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(H1Error::Malformed {
            what: "request line",
        });
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let method = Method::from_token(method.as_bytes());
    check_target(&method, target.as_bytes())?;
    let fields = scan::FramingFields::read(
        request
            .headers
            .iter()
            .map(|field| (field.name.as_bytes(), field.value)),
    );
    check_host(fields.hosts, version)?;
    let body = body_kind(&fields, version, limits)?;
    let keep_alive = !fields.close && (version == Version::Http11 || fields.keep_alive);
    let expect_continue = expect_continue(fields.expect, version, body)?;
    let mut owned = own(input);
    if owned.len() != input.len() {
        // Not the head: the fields are sliced out of `owned` by their place in `input`.
        owned = Bytes::copy_from_slice(input);
    }
    let target_at = target.as_ptr() as usize - input.as_ptr() as usize;
    let target = owned.slice(target_at..target_at + target.len());
    let headers = scan::collect_headers(input, owned, request.headers);
    let head = RequestHead {
        method,
        target,
        version,
        headers,
        protocol: None,
    };
    Ok(Status::Complete(ParsedRequest {
        head,
        consumed: skip + head_len,
        body,
        keep_alive,
        expect_continue,
        upgrade: fields.upgrade,
    }))
}

/// Whether a head httparse parsed in full (`len` bytes of `input`) passes the strict scan
/// ([`scan::scan_head`]) too, judged on httparse's offsets instead of every byte.
///
/// httparse refuses NUL, a bare CR, obs-fold, whitespace before a colon and a start line
/// that is not `method SP target SP HTTP/1.x`; it accepts a bare LF as a line end and skips
/// empty lines before the request line. So it is enough that the head starts with the
/// method, that every line ends in CRLF (each field line starts after one, and the head
/// ends with two), and the limits: the request line (the target is followed by
/// `SP HTTP/1.x`) and the head (`len`, cut at the head limit by the caller).
fn strict_on_offsets(
    input: &[u8],
    len: usize,
    request: &httparse::Request<'_, '_>,
    max_request_line: usize,
) -> bool {
    let base = input.as_ptr() as usize;
    let at = |part: &[u8]| part.as_ptr() as usize - base;
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return false;
    };
    let crlf_before = |line_start: usize| {
        line_start
            .checked_sub(2)
            .is_some_and(|cr| input.get(cr) == Some(&b'\r'))
    };
    at(method.as_bytes()) == 0
        && at(target.as_bytes()) + target.len() + " HTTP/1.1".len() <= max_request_line
        && request
            .headers
            .iter()
            .all(|field| crlf_before(at(field.name.as_bytes())))
        && crlf_before(len)
        && crlf_before(len.saturating_sub(2))
}

/// RFC 9112 §3.2: the four target forms, each allowed only with its methods.
fn check_target(method: &Method, target: &[u8]) -> Result<(), H1Error> {
    let is_connect = *method == Method::Connect;
    if is_connect {
        // RFC 9112 §3.2.3: the authority-form is only used for CONNECT requests.
        let authority = !target.is_empty()
            && !target.contains(&b'/')
            && target.contains(&b':')
            && !target.contains(&b'@');
        return if authority {
            Ok(())
        } else {
            Err(H1Error::BadTarget {
                reason: "CONNECT needs host:port",
            })
        };
    }
    if target.first() == Some(&b'/') {
        return Ok(());
    }
    if target == b"*" {
        // RFC 9112 §3.2.4: the asterisk-form is only used for a server-wide OPTIONS.
        return if *method == Method::Options {
            Ok(())
        } else {
            Err(H1Error::BadTarget {
                reason: "* is only for OPTIONS",
            })
        };
    }
    // RFC 9112 §3.2.2: a server MUST accept the absolute-form in requests.
    let lower = |n: usize| target.get(..n).map(<[u8]>::to_ascii_lowercase);
    if lower(7).as_deref() == Some(b"http://") || lower(8).as_deref() == Some(b"https://") {
        return Ok(());
    }
    Err(H1Error::BadTarget {
        reason: "not origin-form or absolute-form",
    })
}

/// RFC 9112 §3.2: a server MUST respond with 400 to any HTTP/1.1 request message that
/// lacks a Host header field and to any request message that contains more than one Host
/// header field.
fn check_host(count: usize, version: Version) -> Result<(), H1Error> {
    if count > 1 || (count == 0 && version == Version::Http11) {
        return Err(H1Error::BadHost { count });
    }
    Ok(())
}

/// RFC 9112 §6.3: how the request body is delimited.
fn body_kind(
    fields: &scan::FramingFields<'_>,
    version: Version,
    limits: &H1Limits,
) -> Result<BodyKind, H1Error> {
    let chunked = fields.chunked.clone()?;
    let length = fields.length.clone()?;
    if chunked {
        // RFC 9112 §6.1: a server that receives a request with Transfer-Encoding in
        // HTTP/1.0 MUST treat the framing as faulty and close the connection.
        if version == Version::Http10 {
            return Err(H1Error::TransferEncodingInHttp10);
        }
        // RFC 9112 §6.1: a sender MUST NOT send Content-Length with Transfer-Encoding;
        // a server MAY reject such a request (this one does: the smuggling vector).
        if length.is_some() {
            return Err(H1Error::LengthAndTransferEncoding);
        }
        return Ok(BodyKind::Chunked);
    }
    match length {
        Some(n) if n > limits.max_body => Err(H1Error::BodyTooLarge {
            limit: limits.max_body,
        }),
        Some(0) | None => Ok(BodyKind::Empty),
        Some(n) => Ok(BodyKind::Length(n)),
    }
}

/// RFC 9110 §10.1.1: `100-continue` is the only expectation; a server MAY answer others
/// with 417, and MUST ignore `100-continue` in HTTP/1.0.
fn expect_continue(
    expect: Option<&[u8]>,
    version: Version,
    body: BodyKind,
) -> Result<bool, H1Error> {
    let Some(expect) = expect else {
        return Ok(false);
    };
    if !trim(expect).eq_ignore_ascii_case(b"100-continue") {
        return Err(H1Error::UnsupportedExpectation);
    }
    Ok(version == Version::Http11 && body != BodyKind::Empty)
}

#[cfg(test)]
mod tests;
