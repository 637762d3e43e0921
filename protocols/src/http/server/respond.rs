//! How a handler answers: [`Responder`] (a whole [`Response`], now or later) and
//! [`BodyWriter`] (a streamed body with backpressure), and the framing of what they send.
//!
//! Both hold the connection's shared state and the request's sequence number. What they
//! send waits in the request's slot until every earlier response is out (pipelining keeps
//! request order); the connection flushes it at the end of its callback, or, when the
//! answer comes from outside a callback (a timer, a future), through a job on the reactor.

use std::cell::RefCell;
use std::fmt;
use std::future::{Future, poll_fn};
use std::rc::Rc;
use std::task::Poll;

use bytes::{Bytes, BytesMut};

use super::conn::{ConnState, Framing, SlotState};
use super::message::Response;
use crate::http::proto::{H1Error, Headers, ResponseHead, Version, encode};

/// The right to answer one request, exactly once. Dropping it unanswered sends a 500.
///
/// It is `'static` and may be moved into a future or a callback to answer later (after an
/// upstream call or a timer); responses still leave in request order.
#[must_use = "a request must be answered; dropping the Responder sends 500"]
pub struct Responder {
    pub(crate) state: Rc<RefCell<ConnState>>,
    pub(crate) seq: u64,
    pub(crate) done: bool,
}

impl Responder {
    /// Sends `response` with its whole body.
    pub fn send(mut self, response: Response) {
        self.done = true;
        ConnState::respond(&self.state, self.seq, response);
    }

    /// Sends the head of `response` (its body is ignored) and returns a writer for the
    /// body. The body is sized if the response has a Content-Length, chunked otherwise
    /// (close-delimited for an HTTP/1.0 client).
    pub fn stream(mut self, response: Response) -> BodyWriter {
        self.done = true;
        ConnState::start_stream(&self.state, self.seq, response);
        BodyWriter {
            state: Rc::clone(&self.state),
            seq: self.seq,
            finished: false,
        }
    }

    /// Whether the client is gone (the answer would be discarded).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.state.borrow().lost
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done {
            ConnState::respond(&self.state, self.seq, Response::error(500));
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").field("seq", &self.seq).finish()
    }
}

/// The body of a streamed response. Write pieces while [`BodyWriter::write`] returns true;
/// then wait for [`BodyWriter::ready`]. Call [`BodyWriter::finish`] at the end; dropping
/// it unfinished closes the connection (the client sees a truncated body).
pub struct BodyWriter {
    state: Rc<RefCell<ConnState>>,
    seq: u64,
    finished: bool,
}

/// The connection closed: nothing more can be written.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

impl BodyWriter {
    /// Queues `data`; whether more may be written now (false: wait for
    /// [`BodyWriter::ready`]). Bytes past a declared Content-Length are dropped and the
    /// connection is closed after the response.
    pub fn write(&mut self, data: impl Into<Bytes>) -> bool {
        ConnState::write_body(&self.state, self.seq, data.into());
        self.is_ready()
    }

    /// Whether writing now would not grow the connection's buffer past its high
    /// watermark: this response is the oldest unanswered one, the transport is writable,
    /// and less than 64 KiB written from outside a callback still waits for its flush.
    /// Also true once the response was answered in full and handed to the transport
    /// (nothing is left to wait for; later writes are ignored).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.state.borrow().writer_ready(self.seq)
    }

    /// Waits until [`BodyWriter::is_ready`].
    ///
    /// # Errors
    /// [`Closed`] once the connection is gone.
    pub async fn ready(&self) -> Result<(), Closed> {
        self.when_ready().await
    }

    /// [`BodyWriter::ready`] as a future that does not borrow the writer: for code that
    /// keeps writing from elsewhere (a proxy's upstream callbacks) while a task waits.
    ///
    /// # Errors
    /// [`Closed`] once the connection is gone.
    pub fn when_ready(&self) -> impl Future<Output = Result<(), Closed>> + 'static {
        let (state, seq) = (Rc::clone(&self.state), self.seq);
        poll_fn(move |cx| {
            let mut state = state.borrow_mut();
            if state.lost {
                return Poll::Ready(Err(Closed));
            }
            if state.writer_ready(seq) {
                return Poll::Ready(Ok(()));
            }
            state.write_wakers.push(cx.waker().clone());
            Poll::Pending
        })
    }

    /// Ends the body.
    pub fn finish(self) {
        self.finish_with_trailers(Headers::new());
    }

    /// Ends a chunked body with trailer fields (dropped for other framings).
    pub fn finish_with_trailers(mut self, trailers: Headers) {
        self.finished = true;
        ConnState::finish_body(&self.state, self.seq, Some(trailers));
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        if !self.finished {
            ConnState::finish_body(&self.state, self.seq, None);
        }
    }
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("seq", &self.seq)
            .finish()
    }
}

/// What the connection knows about a request when its response is framed.
pub(crate) struct FrameInput<'a> {
    pub(crate) version: Version,
    pub(crate) is_head: bool,
    pub(crate) keep_alive: bool,
    pub(crate) date: [u8; 29],
    pub(crate) server_name: Option<&'a [u8]>,
}

/// A framed response head (and body, for a whole response).
pub(crate) struct Framed {
    pub(crate) bytes: Bytes,
    /// For a stream: how its body is framed.
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    pub(crate) status: u16,
}

/// Fields the server manages itself: whatever the handler put there is replaced.
const MANAGED: [&str; 4] = ["connection", "transfer-encoding", "keep-alive", "date"];

/// Frames `response` (RFC 9112 §6.1–§6.3, §9.6). `streaming`: only the head is written and
/// the returned framing says how the body that follows is delimited.
pub(crate) fn frame(input: &FrameInput<'_>, response: Response, streaming: bool) -> Framed {
    match try_frame(input, &response, streaming) {
        Ok(framed) => framed,
        Err(error) => {
            tracing::error!(%error, "handler response not sendable; answering 500");
            let fallback = Response::error(500);
            try_frame(input, &fallback, false).unwrap_or_else(|_| Framed {
                bytes: Bytes::from_static(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
                framing: Framing::None,
                keep_alive: false,
                status: 500,
            })
        }
    }
}

fn try_frame(
    input: &FrameInput<'_>,
    response: &Response,
    streaming: bool,
) -> Result<Framed, H1Error> {
    let head: &ResponseHead = &response.head;
    let status = head.status;
    // RFC 9112 §6.3 (1): 1xx, 204 and 304 responses end at the head; a response to HEAD
    // too (RFC 9110 §9.3.2).
    let no_body_status = (100..200).contains(&status) || status == 204 || status == 304;
    let send_body = !no_body_status && !input.is_head;
    let declared = match head.headers.get("content-length") {
        Some(value) => Some(
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(H1Error::InvalidResponseHeader {
                    what: "Content-Length is not a number",
                })?,
        ),
        None => None,
    };
    let mut keep_alive = input.keep_alive && !head.headers.has_token("connection", "close");
    let framing = if !streaming || !send_body {
        Framing::None
    } else if let Some(n) = declared {
        Framing::Sized(n)
    } else if input.version == Version::Http11 {
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::CloseDelimited
    };
    let mut out = BytesMut::with_capacity(
        128 + if streaming || !send_body {
            0
        } else {
            response.body.len()
        },
    );
    encode::write_status_line(&mut out, Version::Http11, status, &head.reason)?;
    for (name, value) in head.headers.iter() {
        let managed = MANAGED
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(name))
            || name.eq_ignore_ascii_case(b"content-length");
        if !managed {
            encode::write_field(&mut out, name, value)?;
        }
    }
    if let Some(server) = input.server_name {
        encode::write_field(&mut out, b"Server", server)?;
    }
    encode::write_field(&mut out, b"Date", &input.date)?;
    // RFC 9110 §8.6: a server MUST NOT send Content-Length in a 1xx or 204 response.
    if !(100..200).contains(&status) && status != 204 {
        match (&framing, streaming) {
            (Framing::Sized(n), _) => encode::write_content_length(&mut out, *n),
            (Framing::Chunked, _) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            (Framing::CloseDelimited, _) => {}
            // A whole response: its body length, or for HEAD/304 the length the handler
            // declared (the length a GET would have had).
            (Framing::None, false) => {
                let n = if send_body {
                    Some(response.body.len() as u64)
                } else {
                    declared.or((!no_body_status).then_some(response.body.len() as u64))
                };
                if let Some(n) = n {
                    encode::write_content_length(&mut out, n);
                }
            }
            (Framing::None, true) => {
                if let Some(n) = declared {
                    encode::write_content_length(&mut out, n);
                }
            }
        }
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if input.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !streaming && send_body {
        out.extend_from_slice(&response.body);
    }
    Ok(Framed {
        bytes: out.freeze(),
        framing,
        keep_alive,
        status,
    })
}

/// What a body piece becomes on the wire under `framing`, pushed onto `out`; the bytes of
/// `data` that were dropped (past a declared length, or for a body that is not sent).
pub(crate) fn frame_body_piece(
    framing: &mut Framing,
    data: Bytes,
    out: &mut std::collections::VecDeque<Bytes>,
) -> usize {
    if data.is_empty() {
        return 0;
    }
    match framing {
        Framing::None => data.len(),
        Framing::Sized(remaining) => {
            let take = (data.len() as u64).min(*remaining) as usize;
            *remaining -= take as u64;
            let dropped = data.len() - take;
            if take > 0 {
                out.push_back(data.slice(..take));
            }
            dropped
        }
        Framing::Chunked => {
            let mut size = BytesMut::with_capacity(18);
            encode::write_chunk_size(&mut size, data.len());
            out.push_back(size.freeze());
            out.push_back(data);
            out.push_back(Bytes::from_static(b"\r\n"));
            0
        }
        Framing::CloseDelimited => {
            out.push_back(data);
            0
        }
    }
}

/// The end of a body under `framing`: the last chunk (with trailers) for chunked; whether
/// the body is complete (a sized body must have been written in full).
pub(crate) fn frame_body_end(
    framing: &Framing,
    trailers: Option<&Headers>,
    out: &mut std::collections::VecDeque<Bytes>,
) -> bool {
    match framing {
        Framing::Chunked => {
            let Some(trailers) = trailers else {
                return false;
            };
            let mut end = BytesMut::with_capacity(5);
            if encode::write_last_chunk(&mut end, trailers).is_err() {
                tracing::error!("invalid trailer field from the handler; trailers dropped");
                end.clear();
                end.extend_from_slice(encode::LAST_CHUNK);
            }
            out.push_back(end.freeze());
            true
        }
        Framing::Sized(remaining) => *remaining == 0 && trailers.is_some(),
        Framing::None => true,
        Framing::CloseDelimited => trailers.is_some(),
    }
}

impl SlotState {
    /// Whether the handler has answered in full.
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self, SlotState::Complete)
    }
}
