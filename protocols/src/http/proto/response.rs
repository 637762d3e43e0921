//! HTTP/1.1 response-head parser (sans-IO), for the client side.
//!
//! Owns: status line + field parsing into a [`ParsedResponse`] with the same byte rules and
//! limits as requests, and the response body-length rules (which depend on the request).
//! Contract: as `parse_request`: a prefix of the input, [`Status::Partial`] until the head
//! is complete, one copy of the head on success.
//! Does not: decode bodies (`body.rs`) or skip interim (1xx) responses (the client does).
//! Spec: RFC 9112 §4, §6.3. Tests: `response/tests.rs`; fuzz target `fuzz/http_response`.

use std::mem::MaybeUninit;

use bytes::Bytes;

use crate::http::proto::error::H1Error;
use crate::http::proto::head::{BodyKind, H1Limits, Method, ResponseHead, Status, Version};
use crate::http::proto::scan;

/// A response head and how its body is delimited.
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// The head.
    pub head: ResponseHead,
    /// Bytes of input the head took.
    pub consumed: usize,
    /// How the body is delimited.
    pub body: BodyKind,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// What a client that only frames a response needs of its head (a load generator that
/// counts responses and drops their bodies): [`parse_response_framing`]'s result.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct ResponseFraming {
    /// The status code.
    pub status: u16,
    /// Bytes of input the head took.
    pub consumed: usize,
    /// How the body is delimited.
    pub body: BodyKind,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf`, answering a `method` request.
///
/// # Errors
/// The [`H1Error`]s of a head, plus the strict framing rules: both Content-Length and
/// Transfer-Encoding, a malformed or conflicting Content-Length, a Transfer-Encoding that
/// is not a single final `chunked` (this client decodes no other coding).
pub fn parse_response(
    buf: &[u8],
    limits: &H1Limits,
    method: &Method,
) -> Result<Status<ParsedResponse>, H1Error> {
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); H1Limits::HEADERS_CAP];
    let Status::Complete(Tokenized {
        framing,
        input,
        response,
    }) = tokenize(buf, limits, method, &mut fields)?
    else {
        return Ok(Status::Partial);
    };
    let owned = Bytes::copy_from_slice(input);
    let reason = match response.reason {
        Some(reason) if !reason.is_empty() => {
            let at = reason.as_ptr() as usize - input.as_ptr() as usize;
            owned.slice(at..at + reason.len())
        }
        _ => Bytes::new(),
    };
    let headers = scan::collect_headers(input, owned, response.headers);
    let head = ResponseHead {
        status: framing.status,
        reason,
        version: version(&response),
        headers,
    };
    Ok(Status::Complete(ParsedResponse {
        head,
        consumed: framing.consumed,
        body: framing.body,
        keep_alive: framing.keep_alive,
    }))
}

/// [`parse_response`] without keeping the head: the same checks and framing, no copy and
/// no allocation (the head's fields are read in place).
///
/// # Errors
/// As [`parse_response`].
pub fn parse_response_framing(
    buf: &[u8],
    limits: &H1Limits,
    method: &Method,
) -> Result<Status<ResponseFraming>, H1Error> {
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); H1Limits::HEADERS_CAP];
    Ok(match tokenize(buf, limits, method, &mut fields)? {
        Status::Complete(tokenized) => Status::Complete(tokenized.framing),
        Status::Partial => Status::Partial,
    })
}

/// The version httparse read (it accepts only 1.0 and 1.1).
fn version(response: &httparse::Response<'_, '_>) -> Version {
    if response.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    }
}

/// A head scanned, tokenized and framed by [`tokenize`].
struct Tokenized<'h, 'b> {
    framing: ResponseFraming,
    /// The head's bytes.
    input: &'b [u8],
    /// httparse's view of them.
    response: httparse::Response<'h, 'b>,
}

/// Scans, tokenizes and frames the head at the start of `buf` (`fields` holds the field
/// slices).
fn tokenize<'b, 'h>(
    buf: &'b [u8],
    limits: &H1Limits,
    method: &Method,
    fields: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Status<Tokenized<'h, 'b>>, H1Error> {
    let head_len = match scan::scan_head(buf, limits.max_request_line, limits.max_head)? {
        Status::Complete(len) => len,
        Status::Partial => return Ok(Status::Partial),
    };
    let input = &buf[..head_len];
    let max_headers = limits
        .max_headers
        .min(H1Limits::HEADERS_CAP)
        .min(fields.len());
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        input,
        &mut fields[..max_headers],
    );
    scan::check_tokenized(parsed, head_len, max_headers, || {
        // The status line's first word.
        input.split(|&b| b == b' ').next().unwrap_or_default()
    })?;
    let (Some(_), Some(status)) = (response.version, response.code) else {
        return Err(H1Error::Malformed {
            what: "status line",
        });
    };
    if !(100..=999).contains(&status) {
        return Err(H1Error::Malformed {
            what: "status code",
        });
    }
    let version = version(&response);
    let fields = scan::FramingFields::read(
        response
            .headers
            .iter()
            .map(|field| (field.name.as_bytes(), field.value)),
    );
    let body = body_kind(status, version, &fields, method)?;
    let keep_alive = body != BodyKind::CloseDelimited
        && !fields.close
        && (version == Version::Http11 || fields.keep_alive);
    let framing = ResponseFraming {
        status,
        consumed: head_len,
        body,
        keep_alive,
    };
    Ok(Status::Complete(Tokenized {
        framing,
        input,
        response,
    }))
}

/// RFC 9112 §6.3: the length of a response body.
fn body_kind(
    status: u16,
    version: Version,
    fields: &scan::FramingFields<'_>,
    method: &Method,
) -> Result<BodyKind, H1Error> {
    // (1) Responses to HEAD and 1xx, 204 and 304 responses end at the head.
    if *method == Method::Head || status < 200 || status == 204 || status == 304 {
        return Ok(BodyKind::Empty);
    }
    // (2) A 2xx answer to CONNECT turns the connection into a tunnel: no body.
    if *method == Method::Connect && (200..300).contains(&status) {
        return Ok(BodyKind::Empty);
    }
    let chunked = fields.chunked.clone()?;
    let length = fields.length.clone()?;
    if chunked {
        if version == Version::Http10 {
            return Err(H1Error::TransferEncodingInHttp10);
        }
        // (3) Both present "ought to be handled as an error": a smuggling attempt.
        if length.is_some() {
            return Err(H1Error::LengthAndTransferEncoding);
        }
        return Ok(BodyKind::Chunked);
    }
    Ok(match length {
        Some(0) => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
        // (8) Otherwise the body runs until the connection closes.
        None => BodyKind::CloseDelimited,
    })
}

#[cfg(test)]
mod tests;
