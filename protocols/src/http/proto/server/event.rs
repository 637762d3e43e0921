//! What a [`ServerConn`] tells its application ([`ServerEvent`], with the [`RequestLog`] of
//! a request for access logs) and why it refuses an answer ([`SendError`]).

use std::time::Instant;

use bytes::Bytes;

use super::RequestId;
#[cfg(doc)]
use super::{ServerConfig, ServerConn};
use crate::http::proto::{H1Error, Headers, Method, RequestHead, Version};

/// What a [`ServerConn`] tells its application.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request head arrived. Answer it (now or later). When `has_body`, the body follows
    /// as [`ServerEvent::Body`] pieces; when the client also waits for `100 Continue`
    /// (`expect_continue`), it is sent once the application asks for the body
    /// ([`ServerConn::continue_body`]), and a complete answer given before that closes the
    /// connection after it instead of reading a body nobody wants.
    Request {
        /// The request.
        id: RequestId,
        /// Its head.
        head: RequestHead,
        /// Whether a body follows.
        has_body: bool,
        /// Whether the client waits for `100 Continue` before sending the body.
        expect_continue: bool,
    },
    /// A piece of the body of request `id` (release it with [`ServerConn::release_body`]).
    Body {
        /// The request.
        id: RequestId,
        /// The bytes.
        data: Bytes,
    },
    /// The body of request `id` ended.
    BodyEnd {
        /// The request.
        id: RequestId,
        /// Trailer fields of a chunked body.
        trailers: Option<Headers>,
    },
    /// The body of request `id` will not end well: it broke a rule or a limit
    /// ([`H1Error::status`] was sent, unless the request was answered already), or it will
    /// not be read to its end ([`H1Error::UnexpectedEof`]: the client stopped sending, the
    /// connection closes after an answer, or it was lost). The connection is closing.
    BodyError {
        /// The request.
        id: RequestId,
        /// Why.
        error: H1Error,
    },
    /// The `101 Switching Protocols` answer to upgrade request `id` left: the connection
    /// belongs to the new protocol from here on, with `rest` (bytes the client sent after the
    /// request, held unparsed) as its first input. The machine does nothing more.
    Upgraded {
        /// The request.
        id: RequestId,
        /// Bytes read after the request's head.
        rest: Bytes,
        /// The client had already ended its side (the new protocol sees its end of input).
        eof: bool,
    },
    /// The answer to a request left in full (for access logs and metrics; only when
    /// [`ServerConfig::report_sent`]).
    Sent {
        /// The request, or `None` for an error reply to input that never became a request.
        id: Option<RequestId>,
        /// The status sent.
        status: u16,
        /// Bytes sent for it (head and body as framed).
        bytes: u64,
        /// What an access log line says of the request, when [`ServerConfig::access_log`]
        /// is on.
        request: Option<Box<RequestLog>>,
        /// When the request's head was read (`None` for an error reply to input that
        /// never became a request): the request time ends now.
        started: Option<Instant>,
    },
}

/// What an access log line says of a request (kept from its head until its answer is
/// sent, when [`ServerConfig::access_log`] is on).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct RequestLog {
    /// The method.
    pub method: Method,
    /// The request target as sent (peer bytes: escape before printing).
    pub target: Bytes,
    /// The HTTP version.
    pub version: Version,
    /// The `Referer` field (peer bytes).
    pub referer: Option<Bytes>,
    /// The `User-Agent` field (peer bytes).
    pub user_agent: Option<Bytes>,
}

impl RequestLog {
    /// The record of the request with `head`.
    #[must_use]
    pub fn of(head: &RequestHead) -> Self {
        Self {
            method: head.method.clone(),
            target: head.target.clone(),
            version: head.version,
            referer: head.headers.get("referer").map(Bytes::copy_from_slice),
            user_agent: head.headers.get("user-agent").map(Bytes::copy_from_slice),
        }
    }
}

/// Why an answer was not taken as given.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The request is answered already (or unknown, or its connection is closing).
    #[error("request already answered or gone")]
    NotPending,
    /// Body or finish for a request whose answer is not streaming.
    #[error("request is not streaming a body")]
    NotStreaming,
    /// The response could not be framed (a field the wire cannot carry); 500 was sent
    /// instead and the connection closes after it.
    #[error("response not sendable ({0}); answered 500")]
    Invalid(H1Error),
    /// A body piece went past the declared Content-Length; the excess was dropped and the
    /// connection closes after the response.
    #[error("{dropped} bytes past the declared Content-Length dropped")]
    PastLength {
        /// Bytes dropped.
        dropped: usize,
    },
    /// The body ended before its declared length (or its writer gave up): the connection
    /// closes after it, so the client sees a truncated body.
    #[error("response body ended early; closing the connection")]
    Truncated,
    /// Invalid trailer fields were dropped.
    #[error("invalid trailer fields dropped")]
    TrailersDropped,
}
