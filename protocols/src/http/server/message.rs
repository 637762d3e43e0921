//! What a handler receives: a [`Request`], with a buffered body or a [`RequestBody`]
//! stream. (What it answers with, [`Response`](super::Response), is the machine's.)

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use ringwork::{ConnId, LocalHandle};

use super::conn::{Command, Sender};
use crate::http::proto::server::RequestId;
use crate::http::proto::{H1Error, Headers, Method, RequestHead, Version};

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

    /// HTTP/2 extended CONNECT's `:protocol` (RFC 8441: `websocket`), answered with
    /// [`Responder::carry`](super::Responder::carry); `None` for every other request.
    #[must_use]
    pub fn protocol(&self) -> Option<&[u8]> {
        self.head.protocol.as_deref()
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

/// A request body that arrives while the handler runs: [`RequestBody::next`] yields its
/// pieces in order. The server stops reading the connection while more than
/// `ServerConfig::body_buffer` bytes wait here, so a slow consumer slows the client down
/// instead of growing memory.
pub struct RequestBody {
    channel: Rc<RefCell<BodyChannel>>,
    sender: Sender,
    id: RequestId,
    /// Whether the connection was told the body is wanted.
    asked: bool,
}

/// What the connection and a [`RequestBody`] share.
#[derive(Default)]
pub(crate) struct BodyChannel {
    pub(crate) chunks: VecDeque<Bytes>,
    /// Bytes in `chunks` (not yet released to the connection).
    pub(crate) buffered: usize,
    pub(crate) finished: bool,
    pub(crate) error: Option<BodyError>,
    pub(crate) trailers: Option<Headers>,
    pub(crate) waker: Option<Waker>,
    /// Whether the handler dropped its stream (later pieces are released at once).
    pub(crate) dropped: bool,
}

impl BodyChannel {
    /// Wakes the consumer.
    pub(crate) fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
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
    pub(crate) fn new(channel: Rc<RefCell<BodyChannel>>, sender: Sender, id: RequestId) -> Self {
        Self {
            channel,
            sender,
            id,
            asked: false,
        }
    }

    /// The next piece of the body, `None` at its end.
    ///
    /// # Errors
    /// The body was malformed, too large, or cut short ([`BodyError`]).
    pub async fn next(&mut self) -> Option<Result<Bytes, BodyError>> {
        if !self.asked {
            // The handler wants the body: a client waiting for `100 Continue` gets it now.
            self.asked = true;
            let _ = self.sender.post(Command::Continue(self.id));
        }
        poll_fn(|cx| {
            let mut channel = self.channel.borrow_mut();
            if let Some(chunk) = channel.chunks.pop_front() {
                channel.buffered -= chunk.len();
                let _ = self.sender.post(Command::Release(self.id, chunk.len()));
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
        let (held, ended) = {
            let mut channel = self.channel.borrow_mut();
            channel.dropped = true;
            channel.chunks.clear();
            let held = std::mem::take(&mut channel.buffered);
            (held, channel.finished || channel.error.is_some())
        };
        // What was delivered and not read no longer holds the connection up; the rest of
        // the body is read and dropped.
        if held > 0 {
            let _ = self.sender.post(Command::Release(self.id, held));
        }
        if !ended {
            let _ = self.sender.post(Command::Discard(self.id));
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
