//! What a handler receives ([`Request`], with a buffered body or a [`RequestBody`] stream)
//! and what it answers with ([`Response`]).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use ringwork::{ConnId, LocalHandle};

use crate::http::proto::{H1Error, Headers, Method, RequestHead, ResponseHead, Version};

/// A request as the handler sees it: the head, the body (whole, or a stream when the
/// handler asked for one with [`Handler::stream_body`](super::Handler::stream_body)), and
/// where it came from.
pub struct Request {
    pub(crate) head: RequestHead,
    pub(crate) body: Bytes,
    pub(crate) stream: Option<RequestBody>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) tls: bool,
    pub(crate) conn: ConnId,
    pub(crate) handle: LocalHandle,
}

impl Request {
    /// The method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.head.method
    }

    /// The request target as sent (`/path?query` for origin-form).
    #[must_use]
    pub fn target(&self) -> &[u8] {
        &self.head.target
    }

    /// The path of the target (before `?`), not percent-decoded.
    #[must_use]
    pub fn path(&self) -> &[u8] {
        self.head.path()
    }

    /// The query (after `?`), if any.
    #[must_use]
    pub fn query(&self) -> Option<&[u8]> {
        self.head.query()
    }

    /// The version.
    #[must_use]
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The header fields.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The whole head.
    #[must_use]
    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    /// The body, read whole before the handler was called (empty when the body streams:
    /// see [`Request::take_body_stream`]).
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body stream, when the handler asked for one; taken once.
    pub fn take_body_stream(&mut self) -> Option<RequestBody> {
        self.stream.take()
    }

    /// The client's address (`None` for a Unix socket peer): the one a PROXY protocol
    /// header named on a `haproxy:` listener.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Whether the request came over TLS (its scheme is `https`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The connection the request came on.
    #[must_use]
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// This core's reactor, for work that answers later: `handle.spawn_local(..)`,
    /// `handle.sleep(..)`, outbound connections.
    #[must_use]
    pub fn handle(&self) -> &LocalHandle {
        &self.handle
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("head", &self.head)
            .field("body_len", &self.body.len())
            .field("streaming", &self.stream.is_some())
            .field("peer", &self.peer)
            .finish()
    }
}

/// A response: status, fields and a whole body. Build it with the constructors and the
/// `with_*`/[`Response::header`] methods; send it with
/// [`Responder::send`](super::Responder::send).
///
/// The server frames it: it sets Content-Length (or omits the body for HEAD, 1xx, 204 and
/// 304), Date and Connection, and drops any Transfer-Encoding the handler set.
#[derive(Clone, Debug)]
pub struct Response {
    pub(crate) head: ResponseHead,
    pub(crate) body: Bytes,
}

impl Response {
    /// An empty response with `status`.
    #[must_use]
    pub fn new(status: u16) -> Self {
        Self {
            head: ResponseHead::new(status),
            body: Bytes::new(),
        }
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    #[must_use]
    pub fn text(body: impl Into<Bytes>) -> Self {
        Self::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body)
    }

    /// 200 with an `application/json` body (the caller serializes it).
    #[must_use]
    pub fn json(body: impl Into<Bytes>) -> Self {
        Self::new(200)
            .header("Content-Type", "application/json")
            .with_body(body)
    }

    /// `status` with a short plain-text body naming it (`404 Not Found`).
    #[must_use]
    pub fn error(status: u16) -> Self {
        let reason = crate::http::proto::reason_phrase(status);
        Self::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .with_body(format!("{status} {reason}\n"))
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.head.status = status;
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a field (others of the same name stay).
    #[must_use]
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.head.headers.append(name, value);
        self
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The fields.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The fields, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.head.headers
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A request body that arrives while the handler runs: [`RequestBody::next`] yields its
/// pieces in order. The server stops reading the connection while more than
/// `ServerConfig::body_buffer` bytes wait here, so a slow consumer slows the client down
/// instead of growing memory.
pub struct RequestBody {
    pub(crate) channel: Rc<RefCell<BodyChannel>>,
}

/// What the connection and a [`RequestBody`] share.
#[derive(Default)]
pub(crate) struct BodyChannel {
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) buffered: usize,
    pub(crate) finished: bool,
    pub(crate) error: Option<BodyError>,
    pub(crate) trailers: Option<Headers>,
    pub(crate) waker: Option<Waker>,
    /// Set by the connection when it paused reading for this body: the consumer resumes it.
    pub(crate) paused: bool,
    /// How to resume reading: the connection, its core and its state.
    pub(crate) resume: Option<super::conn::Resume>,
    /// Resume below this many buffered bytes.
    pub(crate) low_water: usize,
    /// Whether the handler still wants the body (false once the stream is dropped).
    pub(crate) dropped: bool,
}

/// Why a request body stream ended early.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body broke the framing rules or a limit.
    #[error("bad request body: {0}")]
    Protocol(H1Error),
    /// The connection closed before the body ended.
    #[error("connection closed before the body ended")]
    Closed,
}

impl RequestBody {
    /// The next piece of the body, `None` at its end.
    ///
    /// # Errors
    /// The body was malformed, too large, or cut short ([`BodyError`]).
    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        poll_fn(|cx| {
            let mut channel = self.channel.borrow_mut();
            if let Some(chunk) = channel.chunks.pop_front() {
                channel.buffered -= chunk.len();
                if channel.paused && channel.buffered <= channel.low_water {
                    channel.paused = false;
                    if let Some(resume) = &channel.resume {
                        resume.schedule();
                    }
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            if let Some(error) = channel.error.clone() {
                return Poll::Ready(Some(Err(error)));
            }
            if channel.finished {
                return Poll::Ready(None);
            }
            channel.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Reads the rest of the body into one buffer, failing past `limit` bytes.
    ///
    /// # Errors
    /// As [`RequestBody::next`]; [`BodyError::Protocol`] with
    /// [`H1Error::BodyTooLarge`] past `limit`.
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, BodyError> {
        let mut all = bytes::BytesMut::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if all.len() + chunk.len() > limit {
                return Err(BodyError::Protocol(H1Error::BodyTooLarge {
                    limit: limit as u64,
                }));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// The trailer fields of a chunked body, once it has ended.
    #[must_use]
    pub fn trailers(&self) -> Option<Headers> {
        self.channel.borrow().trailers.clone()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let mut channel = self.channel.borrow_mut();
        channel.dropped = true;
        channel.chunks.clear();
        channel.buffered = 0;
        // The connection discards the rest of the body; it must not stay paused for it.
        if channel.paused {
            channel.paused = false;
            if let Some(resume) = &channel.resume {
                resume.schedule();
            }
        }
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channel = self.channel.borrow();
        f.debug_struct("RequestBody")
            .field("buffered", &channel.buffered)
            .field("finished", &channel.finished)
            .finish()
    }
}
