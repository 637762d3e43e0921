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
    let head_len = match scan::scan_head(buf, limits.max_request_line, limits.max_head)? {
        Status::Complete(len) => len,
        Status::Partial => return Ok(Status::Partial),
    };
    let input = &buf[..head_len];
    let max_headers = limits.max_headers.min(H1Limits::HEADERS_CAP);
    let mut fields = [MaybeUninit::<httparse::Header<'_>>::uninit(); H1Limits::HEADERS_CAP];
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
    let (Some(minor), Some(status)) = (response.version, response.code) else {
        return Err(H1Error::Malformed {
            what: "status line",
        });
    };
    if !(100..=999).contains(&status) {
        return Err(H1Error::Malformed {
            what: "status code",
        });
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let owned = Bytes::copy_from_slice(input);
    let reason = match response.reason {
        Some(reason) if !reason.is_empty() => {
            let at = reason.as_ptr() as usize - input.as_ptr() as usize;
            owned.slice(at..at + reason.len())
        }
        _ => Bytes::new(),
    };
    let headers = scan::collect_headers(input, &owned, response.headers);
    let head = ResponseHead {
        status,
        reason,
        version,
        headers,
    };
    let body = body_kind(&head, method)?;
    let keep_alive = body != BodyKind::CloseDelimited
        && !head.headers.has_token("connection", "close")
        && (version == Version::Http11 || head.headers.has_token("connection", "keep-alive"));
    Ok(Status::Complete(ParsedResponse {
        head,
        consumed: head_len,
        body,
        keep_alive,
    }))
}

/// RFC 9112 §6.3: the length of a response body.
fn body_kind(head: &ResponseHead, method: &Method) -> Result<BodyKind, H1Error> {
    // (1) Responses to HEAD and 1xx, 204 and 304 responses end at the head.
    if *method == Method::Head || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(BodyKind::Empty);
    }
    // (2) A 2xx answer to CONNECT turns the connection into a tunnel: no body.
    if *method == Method::Connect && (200..300).contains(&head.status) {
        return Ok(BodyKind::Empty);
    }
    let chunked = scan::transfer_encoding_is_chunked(&head.headers)?;
    let length = scan::content_length(&head.headers)?;
    if chunked {
        if head.version == Version::Http10 {
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
