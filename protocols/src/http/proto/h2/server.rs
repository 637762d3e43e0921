//! One HTTP/2 server connection as a sans-IO machine ([`H2ServerConn`]).
//!
//! Owns: the connection preface and SETTINGS exchange, the stream state machine of RFC 9113
//! §5.1 (idle, open, half-closed both ways, closed; no push, so never reserved), header
//! blocks across CONTINUATION, requests built from validated fields (`request.rs`), DATA
//! with flow control both ways (the receive windows refilled as the application releases
//! body bytes; the send windows honoured, DATA frames cut to the peer's frame size),
//! RST_STREAM, PING, GOAWAY (graceful on shutdown and idle, with an error code on a
//! connection error), trailers both ways, and the defences of issue 18: concurrent
//! streams, header list and block size, CONTINUATION count, rapid reset and control-frame
//! floods (token buckets, then GOAWAY ENHANCE_YOUR_CALM), reading paused while the peer
//! does not take what we send.
//! Contract: the [`Machine`] contract, and the same events and calls as the HTTP/1.1
//! [`ServerConn`](crate::http::proto::server::ServerConn): each request is a
//! [`ServerEvent::Request`] whose [`RequestId`] is its stream id; answers go in any order
//! (streams are independent), by [`H2ServerConn::send_response`] or
//! [`H2ServerConn::send_head`] + [`H2ServerConn::send_body`] + [`H2ServerConn::finish`].
//! Memory: per stream, what the application has not released (at most its window) and the
//! body it queued; per connection, at most one frame of input past the limits and an output
//! that stops reading at [`H2Config::max_buffered_output`].
//! Does not: push, prioritise (PRIORITY is parsed and ignored: RFC 9113 §5.3.2), log, or
//! touch sockets and clocks.
//! Spec: RFC 9113 (§3.4 preface, §4 frames, §5 streams, §6 frame definitions, §8 HTTP
//! semantics). Tests: `server/tests.rs` (Pair and raw frames), `tests/h2_conformance.rs`
//! (one case per rule, each quoting its section); fuzz target `fuzz/h2_server_conn`.

pub(crate) mod config;
pub(crate) mod request;
mod send;
mod timeouts;

pub(crate) use self::config::Bucket;
pub use self::config::H2Config;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::frame::{
    self, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, ErrorCode, Frame, FrameError, MAX_WINDOW,
    PREFACE, setting,
};
use super::hpack::{self, HpackDecoder};
use crate::http::proto::server::{RequestId, RequestLog, Response, SendError, ServerEvent};
use crate::http::proto::{H1Error, Headers, Method};
use crate::kit::{Close, Machine, Output, Status};

/// Bytes a stream may have queued before its writer is told to wait.
const WRITE_SLACK: usize = 64 * 1024;

/// Closed stream ids remembered (to tell a frame on a closed stream from a protocol
/// error): the most recent ones.
const RECENTLY_CLOSED: usize = 64;

/// The receiving half of a stream.
#[derive(Debug)]
enum Recv {
    /// Body bytes may come.
    Open {
        /// Content-Length, when declared.
        expected: Option<u64>,
        /// Body bytes so far.
        received: u64,
        /// The application wants the bytes (else they are dropped and released).
        deliver: bool,
    },
    /// END_STREAM came (half-closed remote).
    Closed,
}

/// The sending half of a stream.
#[derive(Debug, Eq, PartialEq)]
enum Send {
    /// No final head yet.
    Pending,
    /// Head sent, body streaming.
    Streaming,
    /// Everything queued (END_STREAM goes with the last of `queued`).
    Ending,
}

/// One open stream.
#[derive(Debug)]
struct Stream {
    recv: Recv,
    send: Send,
    /// What the peer may still send on it.
    recv_window: i64,
    /// Released bytes not yet given back by WINDOW_UPDATE.
    unacked: u32,
    /// What we may still send on it.
    send_window: i64,
    /// Body to send, oldest first.
    queued: VecDeque<Bytes>,
    queued_len: usize,
    /// Trailers to send after `queued`, when ending.
    trailers: Option<Headers>,
    /// A HEAD request: body bytes are not sent.
    is_head: bool,
    /// Declared Content-Length of a streamed answer, and what is left of it.
    remaining: Option<u64>,
    status: u16,
    sent: u64,
    /// What the access log says of the request ([`ServerConfig::access_log`](crate::http::proto::server::ServerConfig::access_log) on).
    log: Option<Box<RequestLog>>,
    /// When its head was read: the request time ends when the answer has left.
    started: Instant,
    /// Whether the body deadline applies (not to CONNECT tunnels, nor after it fired).
    body_timer: bool,
    /// When the request body must have progressed by (`timeouts.rs`).
    body_deadline: Option<Instant>,
}

/// A header block being received across CONTINUATION frames.
#[derive(Debug)]
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
    continuations: usize,
}

/// One HTTP/2 server connection (see the module docs).
///
/// Call order: the [`Machine`] contract; the application's calls
/// ([`H2ServerConn::send_response`] and the rest) may come between any two.
pub struct H2ServerConn {
    config: H2Config,
    max_body: u64,
    server_name: Option<Bytes>,
    access_log: bool,
    idle_timeout: Duration,
    /// `ServerConfig::body_read_timeout`, per stream.
    body_timeout: Option<Duration>,
    /// When the client must have acknowledged our SETTINGS by (RFC 9113 §6.5.3).
    settings_deadline: Option<Instant>,
    date: [u8; 29],
    /// The preface bytes still expected.
    preface_left: usize,
    /// The first frame after the preface must be SETTINGS (RFC 9113 §3.4).
    got_settings: bool,
    /// The client acknowledged our SETTINGS.
    settings_acked: bool,
    input: BytesMut,
    decoder: HpackDecoder,
    pending_block: Option<PendingBlock>,
    streams: HashMap<u32, Stream>,
    /// Streams with body or an end to send, in turn.
    sendable: VecDeque<u32>,
    recently_closed: VecDeque<u32>,
    last_peer_stream: u32,
    /// Set once GOAWAY went out: streams above it are ignored.
    goaway_sent: Option<u32>,
    /// The peer sent GOAWAY: no new streams.
    goaway_received: bool,
    recv_window: i64,
    recv_unacked: u32,
    send_window: i64,
    peer_initial_window: u32,
    peer_max_frame_size: u32,
    resets: Bucket,
    control: Bucket,
    /// A scratch buffer for header blocks.
    scratch: BytesMut,
    events: VecDeque<ServerEvent>,
    out: Output,
    idle_deadline: Option<Instant>,
    writable: bool,
    eof: bool,
    draining: bool,
    lost: bool,
    close: Option<Close>,
    close_polled: bool,
    unsettled: bool,
}

impl std::fmt::Debug for H2ServerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2ServerConn")
            .field("streams", &self.streams.len())
            .field("last_peer_stream", &self.last_peer_stream)
            .field("close", &self.close)
            .finish_non_exhaustive()
    }
}

impl H2ServerConn {
    /// A connection with the HTTP/2 `config`, the HTTP server's body limit (`max_body`),
    /// `Server` field, access-log switch and idle timeout.
    #[must_use]
    pub fn new(config: &crate::http::proto::server::ServerConfig) -> Self {
        let h2 = config.http2.clone();
        Self {
            decoder: HpackDecoder::new(hpack::DEFAULT_TABLE_SIZE),
            resets: Bucket::new(h2.reset_burst, h2.resets_per_second),
            control: Bucket::new(h2.control_burst, h2.control_per_second),
            config: h2,
            max_body: config.limits.max_body,
            server_name: config.server_name.clone(),
            access_log: config.access_log,
            idle_timeout: config.keep_alive_timeout,
            body_timeout: Some(config.body_read_timeout).filter(|t| !t.is_zero()),
            settings_deadline: None,
            date: *b"Thu, 01 Jan 1970 00:00:00 GMT",
            preface_left: PREFACE.len(),
            got_settings: false,
            settings_acked: false,
            input: BytesMut::new(),
            pending_block: None,
            streams: HashMap::new(),
            sendable: VecDeque::new(),
            recently_closed: VecDeque::new(),
            last_peer_stream: 0,
            goaway_sent: None,
            goaway_received: false,
            recv_window: i64::from(DEFAULT_WINDOW),
            recv_unacked: 0,
            send_window: i64::from(DEFAULT_WINDOW),
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            scratch: BytesMut::new(),
            events: VecDeque::new(),
            out: Output::new(),
            idle_deadline: None,
            writable: true,
            eof: false,
            draining: false,
            lost: false,
            close: None,
            close_polled: false,
            unsettled: false,
        }
    }

    /// Sets the Date field value for answers from now on (the glue caches it per second).
    pub fn set_date(&mut self, date: [u8; 29]) {
        self.date = date;
    }

    /// Streams open (or half-closed) now.
    #[must_use]
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held for sending.
    #[must_use]
    pub fn held_output(&self) -> usize {
        self.out.len()
            + self
                .streams
                .values()
                .map(|stream| stream.queued_len)
                .sum::<usize>()
    }

    /// Bytes of input held (at most one frame and the limits).
    #[must_use]
    pub fn held_input(&self) -> usize {
        self.input.len() + self.pending_block.as_ref().map_or(0, |p| p.block.len())
    }

    /// Whether the connection is closing (a close was decided).
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.close.is_some() || self.lost
    }

    /// Whether the transport can take more now (writers of every stream not listed by
    /// [`H2ServerConn::waiting_streams`] may write).
    #[must_use]
    pub fn can_write(&self) -> bool {
        !self.is_closing() && self.writable && self.out.len() < WRITE_SLACK
    }

    /// Adds to `into` the streams whose writers should wait: their queued body is over
    /// the slack (their window is shut or the connection's is).
    pub fn waiting_streams(&self, into: &mut Vec<RequestId>) {
        into.extend(
            self.streams
                .iter()
                .filter(|(_, stream)| stream.queued_len >= WRITE_SLACK)
                .map(|(&id, _)| RequestId(u64::from(id))),
        );
    }

    /// Whether stream `id` can take more body now (the connection can, and the stream's
    /// queue is under the slack): false for a stream that is gone.
    #[must_use]
    pub fn stream_writable(&self, id: RequestId) -> bool {
        self.can_write()
            && stream_id(id)
                .and_then(|s| self.streams.get(&s))
                .is_some_and(|stream| stream.queued_len < WRITE_SLACK)
    }

    /// Whether stream `id` is open (or half-closed).
    #[must_use]
    pub fn has_stream(&self, id: RequestId) -> bool {
        stream_id(id).is_some_and(|s| self.streams.contains_key(&s))
    }

    /// Whether a graceful shutdown began (or the connection is closing).
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining || self.is_closing()
    }

    /// Resets stream `id` with CANCEL (RFC 9113 §7): an answer or tunnel the application
    /// gives up on. Nothing for a stream that is gone.
    pub fn cancel_stream(&mut self, id: RequestId) {
        if let Some(stream_id) = stream_id(id).filter(|s| self.streams.contains_key(s)) {
            self.reset_stream(stream_id, ErrorCode::CANCEL);
            self.unsettled = true;
        }
    }

    /// Answers `id` with a whole response (body included).
    ///
    /// # Errors
    /// [`SendError::NotPending`] when the stream is answered, reset or unknown.
    pub fn send_response(&mut self, id: RequestId, response: Response) -> Result<(), SendError> {
        let stream_id = self.pending(id)?;
        let Response { head, body, .. } = response.unprepared();
        let informational = head.status < 200;
        let end = informational
            || body.is_empty()
            || self.stream(stream_id).is_head
            || matches!(head.status, 204 | 304);
        // The body's length, except where there is none to count: 1xx, 204, 304, and a HEAD
        // answer that declares the length of the body it would have had.
        let declared_for_head =
            self.stream(stream_id).is_head && head.headers.contains("content-length");
        let length = (!informational && !matches!(head.status, 204 | 304) && !declared_for_head)
            .then(|| body.len() as u64);
        self.write_head(
            stream_id,
            head.status,
            &head.headers,
            length,
            end && !informational,
        );
        if informational {
            return Ok(());
        }
        let stream = self.stream_mut(stream_id);
        stream.status = head.status;
        if end {
            self.stream_mut(stream_id).send = Send::Ending;
            self.sent_in_full(stream_id);
            return Ok(());
        }
        let stream = self.stream_mut(stream_id);
        stream.queued_len = body.len();
        stream.queued.push_back(body);
        stream.send = Send::Ending;
        self.sendable.push_back(stream_id);
        self.unsettled = true;
        Ok(())
    }

    /// Sends the head of `response` (its body is ignored); the body follows by
    /// [`H2ServerConn::send_body`] and [`H2ServerConn::finish`]. A Content-Length it
    /// declares is kept and held to.
    ///
    /// # Errors
    /// [`SendError::NotPending`] when the stream is answered, reset or unknown.
    pub fn send_head(&mut self, id: RequestId, response: Response) -> Result<(), SendError> {
        let stream_id = self.pending(id)?;
        let head = response.unprepared().head;
        let declared = head
            .headers
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let no_body = self.stream(stream_id).is_head || matches!(head.status, 204 | 304);
        self.write_head(stream_id, head.status, &head.headers, None, false);
        let stream = self.stream_mut(stream_id);
        stream.status = head.status;
        stream.send = Send::Streaming;
        stream.remaining = if no_body { Some(0) } else { declared };
        Ok(())
    }

    /// Queues a piece of a streamed body.
    ///
    /// # Errors
    /// [`SendError::NotPending`] when the stream is gone (reset: the bytes are dropped),
    /// [`SendError::NotStreaming`] before [`H2ServerConn::send_head`],
    /// [`SendError::PastLength`] for bytes past the declared Content-Length (dropped).
    pub fn send_body(&mut self, id: RequestId, data: Bytes) -> Result<(), SendError> {
        let stream_id = stream_id(id).ok_or(SendError::NotPending)?;
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return Err(SendError::NotPending);
        };
        if stream.send != Send::Streaming {
            return Err(SendError::NotStreaming);
        }
        let mut data = data;
        let mut dropped = 0;
        if let Some(remaining) = &mut stream.remaining {
            let len = data.len() as u64;
            if len > *remaining {
                dropped = (len - *remaining) as usize;
                data.truncate(*remaining as usize);
            }
            *remaining -= data.len() as u64;
        }
        if stream.is_head {
            data.clear();
        }
        if !data.is_empty() {
            stream.queued_len += data.len();
            stream.queued.push_back(data);
            self.sendable.push_back(stream_id);
            self.unsettled = true;
        }
        if dropped > 0 {
            return Err(SendError::PastLength { dropped });
        }
        Ok(())
    }

    /// Ends a streamed body, with trailers when given and not empty. `None` (a writer
    /// dropped unfinished) resets the stream.
    ///
    /// # Errors
    /// [`SendError::NotPending`] for a stream that is gone, [`SendError::NotStreaming`]
    /// before [`H2ServerConn::send_head`], [`SendError::Truncated`] when the body is
    /// shorter than its declared length or the writer gave up (the stream is reset).
    pub fn finish(&mut self, id: RequestId, trailers: Option<Headers>) -> Result<(), SendError> {
        let stream_id = stream_id(id).ok_or(SendError::NotPending)?;
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return Err(SendError::NotPending);
        };
        if stream.send != Send::Streaming {
            return Err(SendError::NotStreaming);
        }
        let short = stream.remaining.is_some_and(|left| left > 0);
        let Some(trailers) = trailers.filter(|_| !short) else {
            self.reset_stream(stream_id, ErrorCode::INTERNAL_ERROR);
            return Err(SendError::Truncated);
        };
        stream.trailers = (!trailers.is_empty()).then_some(trailers);
        stream.send = Send::Ending;
        self.sendable.push_back(stream_id);
        self.unsettled = true;
        Ok(())
    }

    /// The application wants the body of `id` (HTTP/2 has no `100 Continue` to send: the
    /// body comes anyway). Does nothing.
    pub fn continue_body(&mut self, id: RequestId) {
        let _ = id;
    }

    /// The application consumed `n` body bytes of `id`: the windows open by as much.
    pub fn release_body(&mut self, id: RequestId, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.release_connection(n);
        let Some(stream_id) = stream_id(id) else {
            return;
        };
        let threshold = self.config.stream_window / 2;
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        if !matches!(stream.recv, Recv::Open { .. }) {
            return;
        }
        stream.unacked = stream.unacked.saturating_add(n);
        if stream.unacked >= threshold {
            let increment = std::mem::take(&mut stream.unacked);
            stream.recv_window += i64::from(increment);
            self.emit(|buf| frame::encode_window_update(buf, stream_id, increment));
        }
    }

    /// The application does not want the rest of the body of `id`: what comes is dropped
    /// (and its window given back).
    pub fn discard_body(&mut self, id: RequestId) {
        let Some(stream) = stream_id(id).and_then(|s| self.streams.get_mut(&s)) else {
            return;
        };
        if let Recv::Open { deliver, .. } = &mut stream.recv {
            *deliver = false;
        }
    }

    fn release_connection(&mut self, n: u32) {
        self.recv_unacked = self.recv_unacked.saturating_add(n);
        if self.recv_unacked >= self.config.connection_window / 2 && !self.is_closing() {
            let increment = std::mem::take(&mut self.recv_unacked);
            self.recv_window += i64::from(increment);
            self.emit(|buf| frame::encode_window_update(buf, 0, increment));
        }
    }

    fn pending(&self, id: RequestId) -> Result<u32, SendError> {
        let stream_id = stream_id(id).ok_or(SendError::NotPending)?;
        match self.streams.get(&stream_id) {
            Some(stream) if stream.send == Send::Pending && !self.is_closing() => Ok(stream_id),
            _ => Err(SendError::NotPending),
        }
    }

    /// A stream known to exist (callers checked).
    fn stream(&self, id: u32) -> &Stream {
        &self.streams[&id]
    }

    fn stream_mut(&mut self, id: u32) -> &mut Stream {
        // Callers checked that the stream exists; a miss is our bug, not the peer's.
        self.streams
            .get_mut(&id)
            .expect("stream checked by the caller")
    }

    /// Appends to the output through its copy buffer.
    fn emit(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        let buf = self.out.buffer();
        let before = buf.len();
        encode(buf);
        let n = buf.len() - before;
        self.out.wrote(n);
    }

    /// A stream's answer left in full: report it, and close the stream if the request
    /// is in too (or reset it with NO_ERROR if the client is still sending: RFC 9113
    /// §8.1).
    fn sent_in_full(&mut self, stream_id: u32) {
        let Some(stream) = self.streams.get(&stream_id) else {
            return;
        };
        self.events.push_back(ServerEvent::Sent {
            id: Some(RequestId(u64::from(stream_id))),
            status: stream.status,
            bytes: stream.sent,
            request: stream.log.clone(),
            started: Some(stream.started),
        });
        if matches!(stream.recv, Recv::Open { .. }) {
            self.emit(|buf| frame::encode_rst_stream(buf, stream_id, ErrorCode::NO_ERROR));
            self.body_error(stream_id);
        }
        self.remove_stream(stream_id);
    }

    fn remove_stream(&mut self, stream_id: u32) {
        if self.streams.remove(&stream_id).is_some() {
            self.note_closed(stream_id);
            self.unsettled = true;
        }
    }

    /// Remembers a closed stream (the most recent [`RECENTLY_CLOSED`] only).
    fn note_closed(&mut self, stream_id: u32) {
        self.recently_closed.push_back(stream_id);
        if self.recently_closed.len() > RECENTLY_CLOSED {
            self.recently_closed.pop_front();
        }
    }

    /// A stream refused or reset at its head: a stream error, drawn from the reset bucket
    /// (a client that sends nothing but such heads is a rapid reset too).
    fn refuse(&mut self, stream_id: u32, code: ErrorCode, now: Instant) {
        if !self.resets.take(now) {
            self.calm("too many refused streams");
            return;
        }
        self.emit(|buf| frame::encode_rst_stream(buf, stream_id, code));
        self.note_closed(stream_id);
    }

    /// Tells the application a body will not end well.
    fn body_error(&mut self, stream_id: u32) {
        if let Some(Stream {
            recv: recv @ Recv::Open { .. },
            ..
        }) = self.streams.get_mut(&stream_id)
        {
            let delivered = matches!(recv, Recv::Open { deliver: true, .. });
            *recv = Recv::Closed;
            if delivered {
                self.events.push_back(ServerEvent::BodyError {
                    id: RequestId(u64::from(stream_id)),
                    error: H1Error::UnexpectedEof,
                });
            }
        }
    }

    /// Resets a stream (a stream error of ours, or an answer that cannot complete).
    fn reset_stream(&mut self, stream_id: u32, code: ErrorCode) {
        self.emit(|buf| frame::encode_rst_stream(buf, stream_id, code));
        self.body_error(stream_id);
        self.remove_stream(stream_id);
    }

    /// A connection error (RFC 9113 §5.4.1): GOAWAY with `code`, then close.
    fn connection_error(&mut self, code: ErrorCode, reason: &str) {
        if self.is_closing() {
            return;
        }
        let last = self.last_peer_stream;
        self.emit(|buf| frame::encode_goaway(buf, last, code, reason.as_bytes()));
        self.goaway_sent = Some(last);
        self.fail_all();
        self.close = Some(Close::Graceful);
    }

    /// Every stream ends: bodies in flight fail, answers are dropped.
    fn fail_all(&mut self) {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.body_error(id);
        }
        self.streams.clear();
        self.sendable.clear();
        self.pending_block = None;
    }

    fn calm(&mut self, reason: &str) {
        self.connection_error(ErrorCode::ENHANCE_YOUR_CALM, reason);
    }

    fn take_input(&mut self, mut data: &[u8], now: Instant) {
        if self.preface_left > 0 {
            let offset = PREFACE.len() - self.preface_left;
            let n = self.preface_left.min(data.len());
            if data[..n] != PREFACE[offset..offset + n] {
                // RFC 9113 §3.4: an invalid preface is a connection error PROTOCOL_ERROR.
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "invalid connection preface");
                return;
            }
            self.preface_left -= n;
            data = &data[n..];
        }
        self.input.extend_from_slice(data);
        while !self.is_closing() {
            match frame::decode_frame(&mut self.input, DEFAULT_MAX_FRAME_SIZE) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(frame)) => self.handle_frame(frame, now),
                Err(FrameError::Connection { code, reason }) => self.connection_error(code, reason),
                Err(FrameError::Stream {
                    stream,
                    code,
                    reason: _,
                }) => {
                    if !self.got_settings {
                        self.connection_error(
                            ErrorCode::PROTOCOL_ERROR,
                            "first frame not SETTINGS",
                        );
                    } else if self.pending_block.is_some() {
                        self.connection_error(
                            ErrorCode::PROTOCOL_ERROR,
                            "frame inside a header block",
                        );
                    } else if stream > self.last_peer_stream {
                        // A stream error on an idle stream: nothing to reset; the frame
                        // (PRIORITY or WINDOW_UPDATE) cannot open it.
                        if !self.control.take(now) {
                            self.calm("too many bad frames");
                        } else {
                            self.emit(|buf| frame::encode_rst_stream(buf, stream, code));
                        }
                    } else {
                        self.reset_stream(stream, code);
                    }
                }
            }
        }
        if self.input.capacity() > 64 * 1024 && self.input.is_empty() {
            self.input = BytesMut::new();
        }
    }

    fn handle_frame(&mut self, frame: Frame, now: Instant) {
        if !self.got_settings {
            if !matches!(frame, Frame::Settings { ack: false, .. }) {
                // RFC 9113 §3.4: the client preface's first frame MUST be SETTINGS.
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "first frame not SETTINGS");
                return;
            }
            self.got_settings = true;
        }
        if let Some(pending) = &self.pending_block {
            // RFC 9113 §6.10: a header block is followed only by CONTINUATION frames of its
            // stream; anything else is a connection error PROTOCOL_ERROR.
            let stream = pending.stream;
            match frame {
                Frame::Continuation {
                    stream: s,
                    end_headers,
                    block,
                } if s == stream => self.continuation(end_headers, &block, now),
                _ => self.connection_error(ErrorCode::PROTOCOL_ERROR, "expected CONTINUATION"),
            }
            return;
        }
        match frame {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.data(stream, end_stream, data, flow_len, now),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
                ..
            } => self.headers(stream, end_stream, end_headers, block, now),
            Frame::Priority { .. } => {
                // RFC 9113 §5.3.2: PRIORITY is parsed and ignored (any stream state).
                if !self.control.take(now) {
                    self.calm("PRIORITY flood");
                }
            }
            Frame::RstStream { stream, .. } => self.rst_stream(stream, now),
            Frame::Settings { ack, entries } => self.settings(ack, &entries, now),
            Frame::PushPromise { .. } => {
                // RFC 9113 §8.4: a client cannot push: PROTOCOL_ERROR.
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "PUSH_PROMISE from a client");
            }
            Frame::Ping { ack, data } => {
                if !ack {
                    if !self.control.take(now) {
                        self.calm("PING flood");
                        return;
                    }
                    // RFC 9113 §6.7: answered with the same data and ACK.
                    self.emit(|buf| frame::encode_ping(buf, true, data));
                }
            }
            Frame::GoAway { .. } => {
                self.goaway_received = true;
                self.unsettled = true;
            }
            Frame::WindowUpdate { stream, increment } => self.window_update(stream, increment),
            Frame::Continuation { .. } => {
                // RFC 9113 §6.10: CONTINUATION not after HEADERS without END_HEADERS.
                self.connection_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "CONTINUATION without a header block",
                );
            }
            Frame::Unknown { .. } => {
                // RFC 9113 §5.5: unknown frame types are ignored.
            }
        }
    }

    /// The receive window of a new stream: ours once the client acknowledged our SETTINGS;
    /// until then the client may use the default 65,535 (RFC 9113 §6.5.3, §6.9.2).
    fn initial_recv_window(&self) -> i64 {
        let ours = i64::from(self.config.stream_window);
        if self.settings_acked {
            ours
        } else {
            ours.max(i64::from(DEFAULT_WINDOW))
        }
    }

    fn settings(&mut self, ack: bool, entries: &Bytes, now: Instant) {
        if ack {
            self.settings_deadline = None;
            if !self.settings_acked {
                // Our INITIAL_WINDOW_SIZE now holds: streams opened before shrink by the
                // difference from the default they were allowed (RFC 9113 §6.9.2).
                let before = self.initial_recv_window();
                self.settings_acked = true;
                let delta = self.initial_recv_window() - before;
                for stream in self.streams.values_mut() {
                    stream.recv_window += delta;
                }
            }
            return;
        }
        if !self.control.take(now) {
            self.calm("SETTINGS flood");
            return;
        }
        for (id, value) in frame::settings_entries(entries) {
            match id {
                setting::INITIAL_WINDOW_SIZE => {
                    // RFC 9113 §6.9.2: a change adjusts every stream's send window by the
                    // difference; past 2^31-1 it is a connection FLOW_CONTROL_ERROR.
                    let delta = i64::from(value) - i64::from(self.peer_initial_window);
                    self.peer_initial_window = value;
                    for stream in self.streams.values_mut() {
                        stream.send_window += delta;
                        if stream.send_window > i64::from(MAX_WINDOW) {
                            self.connection_error(
                                ErrorCode::FLOW_CONTROL_ERROR,
                                "window past 2^31-1 after SETTINGS_INITIAL_WINDOW_SIZE",
                            );
                            return;
                        }
                    }
                    self.unsettled = true;
                }
                setting::MAX_FRAME_SIZE => self.peer_max_frame_size = value,
                // HEADER_TABLE_SIZE: our encoder never indexes, so any size suits it;
                // ENABLE_PUSH, MAX_CONCURRENT_STREAMS: we never push; MAX_HEADER_LIST_SIZE:
                // advisory. Unknown settings are ignored (§6.5.2).
                _ => {}
            }
        }
        // RFC 9113 §6.5.3: acknowledged once applied.
        self.emit(frame::encode_settings_ack);
    }

    fn window_update(&mut self, stream_id: u32, increment: u32) {
        if stream_id == 0 {
            self.send_window += i64::from(increment);
            if self.send_window > i64::from(MAX_WINDOW) {
                // RFC 9113 §6.9.1: past 2^31-1 is a connection FLOW_CONTROL_ERROR.
                self.connection_error(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window past 2^31-1",
                );
            }
            self.unsettled = true;
            return;
        }
        if stream_id > self.last_peer_stream {
            // RFC 9113 §5.1: WINDOW_UPDATE on an idle stream is a PROTOCOL_ERROR.
            self.connection_error(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
            return;
        }
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            // Closed: ignored (RFC 9113 §5.1 lets it arrive shortly after).
            return;
        };
        stream.send_window += i64::from(increment);
        if stream.send_window > i64::from(MAX_WINDOW) {
            // RFC 9113 §6.9.1: past 2^31-1 on a stream is a stream FLOW_CONTROL_ERROR.
            self.reset_stream(stream_id, ErrorCode::FLOW_CONTROL_ERROR);
            return;
        }
        self.unsettled = true;
    }

    fn rst_stream(&mut self, stream_id: u32, now: Instant) {
        if stream_id > self.last_peer_stream {
            // RFC 9113 §6.4: RST_STREAM on an idle stream is a PROTOCOL_ERROR.
            self.connection_error(ErrorCode::PROTOCOL_ERROR, "RST_STREAM on an idle stream");
            return;
        }
        if !self.streams.contains_key(&stream_id) {
            return;
        }
        // CVE-2023-44487: a client that opens and resets streams in a loop costs a
        // handler call each; a burst is allowed, a stream of them ends the connection.
        if !self.resets.take(now) {
            self.calm("too many streams reset");
            return;
        }
        self.body_error(stream_id);
        self.streams.remove(&stream_id);
        self.note_closed(stream_id);
        self.unsettled = true;
    }

    fn data(&mut self, stream_id: u32, end_stream: bool, data: Bytes, flow_len: u32, now: Instant) {
        if stream_id > self.last_peer_stream {
            // RFC 9113 §5.1: DATA on an idle stream is a PROTOCOL_ERROR.
            self.connection_error(ErrorCode::PROTOCOL_ERROR, "DATA on an idle stream");
            return;
        }
        // RFC 9113 §6.9: every DATA counts against the connection's window.
        if i64::from(flow_len) > self.recv_window {
            self.connection_error(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA past the connection window",
            );
            return;
        }
        self.recv_window -= i64::from(flow_len);
        if flow_len == 0 && !end_stream && !self.control.take(now) {
            self.calm("empty DATA flood");
            return;
        }
        let max_body = self.max_body;
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            // RFC 9113 §6.1: DATA on a closed stream is a stream error STREAM_CLOSED.
            self.release_connection(flow_len);
            if !self.control.take(now) {
                self.calm("DATA on closed streams");
                return;
            }
            self.emit(|buf| frame::encode_rst_stream(buf, stream_id, ErrorCode::STREAM_CLOSED));
            return;
        };
        let Recv::Open {
            expected,
            received,
            deliver,
        } = &mut stream.recv
        else {
            // RFC 9113 §5.1: half-closed (remote): DATA is a stream error STREAM_CLOSED.
            self.release_connection(flow_len);
            self.reset_stream(stream_id, ErrorCode::STREAM_CLOSED);
            return;
        };
        if i64::from(flow_len) > stream.recv_window {
            // RFC 9113 §6.9.1: past the stream's window: a stream FLOW_CONTROL_ERROR.
            self.release_connection(flow_len);
            self.reset_stream(stream_id, ErrorCode::FLOW_CONTROL_ERROR);
            return;
        }
        stream.recv_window -= i64::from(flow_len);
        *received += data.len() as u64;
        let over_length = expected.is_some_and(|len| *received > len)
            || (end_stream && expected.is_some_and(|len| *received != len));
        let too_big = *received > max_body;
        let deliver = *deliver;
        if over_length {
            // RFC 9113 §8.1.1: a body whose length differs from Content-Length is
            // malformed: a stream error PROTOCOL_ERROR.
            self.release_connection(flow_len);
            self.reset_stream(stream_id, ErrorCode::PROTOCOL_ERROR);
            return;
        }
        if too_big {
            self.release_connection(flow_len);
            self.refuse_body(stream_id);
            return;
        }
        // Padding and undelivered bytes: their window comes back now.
        let delivered = if deliver { data.len() as u32 } else { 0 };
        if flow_len > delivered {
            self.release_body(
                RequestId(u64::from(stream_id)),
                (flow_len - delivered) as usize,
            );
        }
        self.body_progress(stream_id, now);
        let id = RequestId(u64::from(stream_id));
        if deliver && !data.is_empty() {
            self.events.push_back(ServerEvent::Body { id, data });
        }
        if end_stream {
            self.end_recv(stream_id, None);
        }
    }

    /// The request body passed `max_body`: 413 if not answered yet, and the stream reset.
    fn refuse_body(&mut self, stream_id: u32) {
        if self.stream(stream_id).send == Send::Pending {
            let response = Response::error(413);
            let _ = self.send_response(RequestId(u64::from(stream_id)), response);
        }
        if self.streams.contains_key(&stream_id) {
            self.reset_stream(stream_id, ErrorCode::CANCEL);
        }
    }

    fn end_recv(&mut self, stream_id: u32, trailers: Option<Headers>) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let deliver = matches!(stream.recv, Recv::Open { deliver: true, .. });
        stream.recv = Recv::Closed;
        if deliver {
            self.events.push_back(ServerEvent::BodyEnd {
                id: RequestId(u64::from(stream_id)),
                trailers,
            });
        }
        self.unsettled = true;
    }

    fn headers(
        &mut self,
        stream_id: u32,
        end_stream: bool,
        end_headers: bool,
        block: Bytes,
        now: Instant,
    ) {
        if end_headers {
            self.header_block(stream_id, end_stream, &block, now);
            return;
        }
        if block.len() > self.config.max_header_block {
            self.calm("header block too large");
            return;
        }
        self.pending_block = Some(PendingBlock {
            stream: stream_id,
            end_stream,
            block: BytesMut::from(&block[..]),
            continuations: 0,
        });
    }

    fn continuation(&mut self, end_headers: bool, fragment: &[u8], now: Instant) {
        let Some(pending) = &mut self.pending_block else {
            return;
        };
        pending.continuations += 1;
        // CVE-2024-27316: a header block without end costs bounded memory and frames.
        if pending.continuations > self.config.max_continuations
            || pending.block.len() + fragment.len() > self.config.max_header_block
        {
            self.pending_block = None;
            self.calm("CONTINUATION flood");
            return;
        }
        pending.block.extend_from_slice(fragment);
        if end_headers {
            let Some(pending) = self.pending_block.take() else {
                return;
            };
            self.header_block(pending.stream, pending.end_stream, &pending.block, now);
        }
    }

    /// A whole header block for `stream_id`: a new request, trailers, or an error.
    fn header_block(&mut self, stream_id: u32, end_stream: bool, block: &[u8], now: Instant) {
        // Decode first, whatever the stream: the dynamic table must stay in step.
        let limit = self.config.max_header_list_size as usize;
        let mut fields = request::FieldList::default();
        let decoded = match self
            .decoder
            .decode(block, limit, |name, value| fields.push(name, value))
        {
            Ok(decoded) => decoded,
            Err(_) => {
                // RFC 9113 §4.3: a header block that does not decode is a connection
                // error COMPRESSION_ERROR.
                self.connection_error(ErrorCode::COMPRESSION_ERROR, "header block does not decode");
                return;
            }
        };
        if stream_id.is_multiple_of(2) {
            // RFC 9113 §5.1.1: client streams are odd.
            self.connection_error(ErrorCode::PROTOCOL_ERROR, "even stream id from a client");
            return;
        }
        if stream_id <= self.last_peer_stream {
            if self.streams.contains_key(&stream_id) {
                self.trailers(stream_id, end_stream, fields, decoded.oversized);
            } else if self.recently_closed.contains(&stream_id) {
                // RFC 9113 §5.1: HEADERS on a closed stream: connection error STREAM_CLOSED.
                self.connection_error(ErrorCode::STREAM_CLOSED, "HEADERS on a closed stream");
            } else {
                // RFC 9113 §5.1.1: a new stream id must be above every earlier one.
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "stream id not increasing");
            }
            return;
        }
        self.last_peer_stream = stream_id;
        if self.goaway_sent.is_some() || self.goaway_received || self.draining {
            // RFC 9113 §6.8: streams above the GOAWAY's last stream id are not processed;
            // the client may still send their DATA (closed stream: counted, not fatal).
            self.refuse(stream_id, ErrorCode::REFUSED_STREAM, now);
            return;
        }
        self.idle_deadline = None;
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            // RFC 9113 §5.1.2: past SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM.
            self.refuse(stream_id, ErrorCode::REFUSED_STREAM, now);
            return;
        }
        let extended_connect = self.config.enable_connect_protocol;
        let head = match fields.into_request(decoded.oversized, extended_connect) {
            Ok(head) => head,
            Err(request::Malformed::TooLarge) => {
                self.open_stream(stream_id, end_stream, None, None, now);
                let _ = self.send_response(RequestId(u64::from(stream_id)), Response::error(431));
                return;
            }
            Err(request::Malformed::Invalid(_)) => {
                // RFC 9113 §8.1.1: a malformed request is a stream error PROTOCOL_ERROR.
                self.refuse(stream_id, ErrorCode::PROTOCOL_ERROR, now);
                return;
            }
        };
        let expected = head.content_length;
        if end_stream && expected.is_some_and(|len| len != 0) {
            self.refuse(stream_id, ErrorCode::PROTOCOL_ERROR, now);
            return;
        }
        let head = head.head;
        let log = self.access_log.then(|| Box::new(RequestLog::of(&head)));
        self.open_stream(stream_id, end_stream, expected, log, now);
        let stream = self.stream_mut(stream_id);
        stream.is_head = head.method == Method::Head;
        // A CONNECT stream is a tunnel: silence on it is not a stalled body.
        stream.body_timer = head.method != Method::Connect;
        self.events.push_back(ServerEvent::Request {
            id: RequestId(u64::from(stream_id)),
            head,
            has_body: !end_stream,
            expect_continue: false,
        });
        if expected.is_some_and(|len| len > self.max_body) {
            self.refuse_body(stream_id);
        }
    }

    fn open_stream(
        &mut self,
        stream_id: u32,
        end_stream: bool,
        expected: Option<u64>,
        log: Option<Box<RequestLog>>,
        started: Instant,
    ) {
        let recv = if end_stream {
            Recv::Closed
        } else {
            Recv::Open {
                expected,
                received: 0,
                deliver: true,
            }
        };
        self.streams.insert(
            stream_id,
            Stream {
                recv,
                send: Send::Pending,
                recv_window: self.initial_recv_window(),
                unacked: 0,
                send_window: i64::from(self.peer_initial_window),
                queued: VecDeque::new(),
                queued_len: 0,
                trailers: None,
                is_head: false,
                remaining: None,
                status: 0,
                sent: 0,
                log,
                started,
                body_timer: true,
                body_deadline: None,
            },
        );
    }

    fn trailers(
        &mut self,
        stream_id: u32,
        end_stream: bool,
        fields: request::FieldList,
        oversized: bool,
    ) {
        let open = matches!(self.stream(stream_id).recv, Recv::Open { .. });
        if !open {
            // RFC 9113 §5.1: half-closed (remote): HEADERS is a stream error STREAM_CLOSED.
            self.reset_stream(stream_id, ErrorCode::STREAM_CLOSED);
            return;
        }
        if !end_stream {
            // RFC 9113 §8.1: trailers must end the stream.
            self.reset_stream(stream_id, ErrorCode::PROTOCOL_ERROR);
            return;
        }
        match fields.into_trailers(oversized) {
            Ok(trailers) => {
                if let Some(Stream {
                    recv:
                        Recv::Open {
                            expected: Some(len),
                            received,
                            ..
                        },
                    ..
                }) = self.streams.get(&stream_id)
                    && len != received
                {
                    // RFC 9113 §8.1.1: the body differs from Content-Length.
                    self.reset_stream(stream_id, ErrorCode::PROTOCOL_ERROR);
                    return;
                }
                self.end_recv(stream_id, Some(trailers));
            }
            Err(_) => self.reset_stream(stream_id, ErrorCode::PROTOCOL_ERROR),
        }
    }

    /// Brings derived state up to date after input or application calls.
    fn settle(&mut self, now: Instant) {
        self.unsettled = false;
        if self.lost || self.close.is_some() {
            return;
        }
        self.flush_streams();
        // The sendable list holds a stream once per reason; keep it short.
        if self.sendable.len() > 2 * self.streams.len() + 8 {
            let mut seen = std::collections::HashSet::new();
            self.sendable.retain(|id| seen.insert(*id));
        }
        let idle = self.streams.is_empty() && self.pending_block.is_none();
        if idle && (self.draining || self.goaway_received || self.eof) {
            if self.goaway_sent.is_none() {
                let last = self.last_peer_stream;
                self.emit(|buf| frame::encode_goaway(buf, last, ErrorCode::NO_ERROR, b""));
                self.goaway_sent = Some(last);
            }
            self.close = Some(Close::Graceful);
            return;
        }
        if self.eof {
            // The client sent all it will: bodies still open will not end.
            let open: Vec<u32> = self
                .streams
                .iter()
                .filter(|(_, s)| matches!(s.recv, Recv::Open { .. }))
                .map(|(&id, _)| id)
                .collect();
            for id in open {
                self.body_error(id);
            }
        }
        if idle && self.idle_deadline.is_none() {
            self.idle_deadline = Some(now + self.idle_timeout);
        }
        self.date_bodies(now);
    }
}

/// The stream id of a request id (they are the same number).
fn stream_id(id: RequestId) -> Option<u32> {
    u32::try_from(id.0).ok().filter(|&id| id != 0)
}

impl Machine for H2ServerConn {
    type Event = ServerEvent;

    fn handle_connected(&mut self, now: Instant) {
        // RFC 9113 §3.4: the server preface is a SETTINGS frame.
        let entries = [
            (
                setting::MAX_CONCURRENT_STREAMS,
                self.config.max_concurrent_streams,
            ),
            (setting::INITIAL_WINDOW_SIZE, self.config.stream_window),
            (
                setting::MAX_HEADER_LIST_SIZE,
                self.config.max_header_list_size,
            ),
            (setting::ENABLE_PUSH, 0),
            (setting::ENABLE_CONNECT_PROTOCOL, 1),
        ];
        // RFC 8441 §3: advertised only when extended CONNECT is on.
        let count = entries.len() - usize::from(!self.config.enable_connect_protocol);
        self.emit(|buf| frame::encode_settings(buf, &entries[..count]));
        let extra = self.config.connection_window.saturating_sub(DEFAULT_WINDOW);
        if extra > 0 {
            self.recv_window += i64::from(extra);
            self.emit(|buf| frame::encode_window_update(buf, 0, extra));
        }
        self.idle_deadline = Some(now + self.idle_timeout);
        self.settings_deadline = self.config.settings_timeout.map(|t| now + t);
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.is_closing() || self.eof {
            return;
        }
        self.take_input(data, now);
        self.settle(now);
    }

    fn handle_eof(&mut self, now: Instant) {
        if self.eof {
            return;
        }
        self.eof = true;
        if !self.is_closing() && (self.preface_left > 0 || !self.input.is_empty()) {
            // Ended inside the preface or a frame: nothing more to say.
            self.fail_all();
        }
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.is_closing() {
            return;
        }
        self.expire(now);
        if self.idle_deadline.is_some_and(|at| at <= now) {
            self.idle_deadline = None;
            if self.streams.is_empty() {
                self.draining = true;
            }
        }
        self.settle(now);
    }

    fn handle_writable(&mut self, writable: bool, now: Instant) {
        self.writable = writable;
        if writable {
            self.settle(now);
        }
    }

    fn handle_shutdown(&mut self, now: Instant) {
        self.draining = true;
        if self.goaway_sent.is_none() && !self.is_closing() {
            // RFC 9113 §6.8: a graceful GOAWAY names the last stream that will be served.
            let last = self.last_peer_stream;
            self.emit(|buf| frame::encode_goaway(buf, last, ErrorCode::NO_ERROR, b""));
            self.goaway_sent = Some(last);
        }
        self.settle(now);
    }

    fn handle_lost(&mut self, _now: Instant) {
        self.fail_all();
        self.lost = true;
        self.input.clear();
        self.out.clear();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        // The output drained and streams still have body to send: more goes out now, not
        // at the next input (a whole answer larger than the output limit, to a peer whose
        // windows are open and so sends nothing).
        if self.unsettled || (self.out.is_empty() && !self.sendable.is_empty()) {
            self.settle(now);
        }
        if self.lost {
            return None;
        }
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled || !self.out.is_empty() {
            return None;
        }
        let close = self.close?;
        self.close_polled = true;
        Some(close)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closing() {
            return None;
        }
        let streams = self.next_deadline();
        match (self.idle_deadline, streams) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wants_input(&self) -> bool {
        !self.is_closing()
            && !self.eof
            && self.writable
            && self.out.len() < self.config.max_buffered_output
    }
}

#[cfg(test)]
mod tests;
