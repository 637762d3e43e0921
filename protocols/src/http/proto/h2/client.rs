//! One HTTP/2 client connection as a sans-IO machine ([`H2ClientConn`]): requests
//! multiplexed on streams within the server's limit.
//!
//! Owns: the client preface and SETTINGS, opening streams (odd ids, increasing), request
//! heads and bodies (trailers too) sent within the server's windows and frame size,
//! responses read back (`:status` checked, 1xx skipped, trailers), receive flow control
//! refilled as the application releases body bytes, RST_STREAM both ways, PING answers,
//! the server's GOAWAY (streams above its last id fail as refused: safe to retry), and
//! connection errors (GOAWAY with the code, every stream failed).
//! Contract: the [`Machine`] contract. [`H2ClientConn::send_request`] opens a stream while
//! [`H2ClientConn::can_open`] (the server's SETTINGS_MAX_CONCURRENT_STREAMS; 100 until its
//! SETTINGS arrive); the answer comes as [`ClientEvent::Response`], then
//! [`ClientEvent::Body`] pieces (release them with [`H2ClientConn::release_body`]) and
//! [`ClientEvent::End`], or [`ClientEvent::Reset`] when the stream fails.
//! Does not: pool connections, resolve names, or accept
//! pushes (SETTINGS_ENABLE_PUSH is 0, so a PUSH_PROMISE is a PROTOCOL_ERROR).
//! Spec: RFC 9113. Tests: `client/tests.rs` (Pair tests against [`H2ServerConn`]:
//! multiplexing, limits, bodies and windows both ways, trailers, resets, GOAWAY, faulty
//! links).
//!
//! [`H2ServerConn`]: super::H2ServerConn

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::H2Config;
use super::frame::{
    self, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, ErrorCode, Frame, FrameError, MAX_WINDOW,
    PREFACE, setting,
};
use super::hpack::{self, HpackDecoder};
use super::server::config::Bucket;
use super::server::request::{FieldList, is_connection_specific};
use crate::http::proto::{Headers, Method, ResponseHead};
use crate::kit::{Close, Machine, Output, Status};

/// Streams assumed allowed until the server's SETTINGS say (RFC 9113 §6.5.2 recommends
/// that a server allow at least 100).
const ASSUMED_CONCURRENT_STREAMS: u32 = 100;

/// What an [`H2ClientConn`] tells its application.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The final response head of stream `id`; `end_stream`: no body follows.
    Response {
        /// The stream.
        id: u32,
        /// The head (`version` is HTTP/2).
        head: ResponseHead,
        /// Nothing follows.
        end_stream: bool,
    },
    /// A piece of the body of stream `id` (release it with
    /// [`H2ClientConn::release_body`]).
    Body {
        /// The stream.
        id: u32,
        /// The bytes.
        data: Bytes,
    },
    /// The response on stream `id` ended, with trailers if the server sent any.
    End {
        /// The stream.
        id: u32,
        /// Trailer fields.
        trailers: Option<Headers>,
    },
    /// Stream `id` got no response head within the response timeout
    /// ([`H2ClientConn::set_response_timeout`]); it was reset (CANCEL).
    TimedOut {
        /// The stream.
        id: u32,
    },
    /// Stream `id`'s response body stalled: nothing came for the body timeout while the
    /// application held none of its bytes ([`H2ClientConn::set_body_timeout`]); it was
    /// reset (CANCEL).
    BodyTimedOut {
        /// The stream.
        id: u32,
    },
    /// Stream `id` failed: reset by the server (its code), refused by its GOAWAY
    /// (REFUSED_STREAM: the request was not processed, safe to send again), or ended by a
    /// connection error or the connection's loss.
    Reset {
        /// The stream.
        id: u32,
        /// Why.
        code: ErrorCode,
    },
}

/// Why a request could not be sent.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum H2ClientError {
    /// The server's concurrent-stream limit is reached: wait for a stream to end.
    #[error("the connection's concurrent streams are all in use")]
    Busy,
    /// The connection is closing or gone (or the server said GOAWAY).
    #[error("the connection is closing")]
    Closed,
    /// The stream is not sending (unknown, ended, or reset).
    #[error("the stream is not sending")]
    NotSending,
}

/// A request: the pseudo-fields and fields of a head.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    /// `:method`.
    pub method: &'a Method,
    /// `:scheme` (`http` or `https`).
    pub scheme: &'a str,
    /// `:authority` (the host and port).
    pub authority: &'a [u8],
    /// `:path` (with the query).
    pub path: &'a [u8],
    /// The fields (connection-specific ones and Host are left out: `:authority` carries
    /// the host).
    pub headers: &'a Headers,
}

/// The sending half of a client stream.
#[derive(Debug)]
struct Sending {
    queued: VecDeque<Bytes>,
    queued_len: usize,
    /// `finish` was called: END_STREAM goes with the last of `queued` (or the trailers).
    ending: bool,
    trailers: Option<Headers>,
    /// END_STREAM is out.
    done: bool,
}

#[derive(Debug)]
struct ClientStream {
    send: Sending,
    send_window: i64,
    recv_window: i64,
    unacked: u32,
    /// The final head arrived.
    got_head: bool,
    /// END_STREAM arrived.
    recv_done: bool,
    /// When the response head (or, after it, the next body piece) must have arrived by.
    deadline: Option<Instant>,
    /// Body bytes delivered and not yet released by the application (while any, the body
    /// deadline does not run: the application, not the server, is the one waiting).
    unreleased: usize,
}

#[derive(Debug)]
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
    continuations: usize,
}

/// One HTTP/2 client connection (see the module docs).
pub struct H2ClientConn {
    config: H2Config,
    input: BytesMut,
    decoder: HpackDecoder,
    pending_block: Option<PendingBlock>,
    streams: HashMap<u32, ClientStream>,
    sendable: VecDeque<u32>,
    next_stream: u32,
    peer_max_streams: u32,
    peer_initial_window: u32,
    peer_max_frame_size: u32,
    send_window: i64,
    recv_window: i64,
    recv_unacked: u32,
    got_settings: bool,
    settings_acked: bool,
    goaway: Option<u32>,
    control: Bucket,
    response_timeout: Option<Duration>,
    body_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// With no stream open: when the connection is closed (GOAWAY) for idleness.
    idle_deadline: Option<Instant>,
    /// The instant of the input being handled.
    now: Option<Instant>,
    /// Streams whose deadline starts at the next instant that comes in (opened, or their
    /// body released by the application).
    undated: Vec<u32>,
    scratch: BytesMut,
    events: VecDeque<ClientEvent>,
    out: Output,
    writable: bool,
    eof: bool,
    lost: bool,
    close: Option<Close>,
    close_polled: bool,
    unsettled: bool,
}

impl std::fmt::Debug for H2ClientConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2ClientConn")
            .field("streams", &self.streams.len())
            .field("next_stream", &self.next_stream)
            .field("close", &self.close)
            .finish_non_exhaustive()
    }
}

impl H2ClientConn {
    /// A connection with the windows and limits of `config` (`stream_window`,
    /// `connection_window`, `max_header_list_size`, `max_header_block`,
    /// `max_continuations`, the control-frame bucket).
    #[must_use]
    pub fn new(config: H2Config) -> Self {
        Self {
            decoder: HpackDecoder::new(hpack::DEFAULT_TABLE_SIZE),
            control: Bucket::new(config.control_burst, config.control_per_second),
            config,
            input: BytesMut::new(),
            pending_block: None,
            streams: HashMap::new(),
            sendable: VecDeque::new(),
            next_stream: 1,
            peer_max_streams: ASSUMED_CONCURRENT_STREAMS,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            send_window: i64::from(DEFAULT_WINDOW),
            recv_window: i64::from(DEFAULT_WINDOW),
            recv_unacked: 0,
            got_settings: false,
            settings_acked: false,
            goaway: None,
            response_timeout: None,
            body_timeout: None,
            idle_timeout: None,
            idle_deadline: None,
            now: None,
            undated: Vec::new(),
            scratch: BytesMut::new(),
            events: VecDeque::new(),
            out: Output::new(),
            writable: true,
            eof: false,
            lost: false,
            close: None,
            close_polled: false,
            unsettled: false,
        }
    }

    /// How long a request may wait for its response head (`None`: forever, the default);
    /// past it the stream is reset and [`ClientEvent::TimedOut`] reported.
    pub fn set_response_timeout(&mut self, timeout: Option<Duration>) {
        self.response_timeout = timeout;
    }

    /// How long a response body may stall (`None`: forever, the default): from the last
    /// piece received, or the application's last release of the stream's bytes, while it
    /// holds none; past it the stream is reset and [`ClientEvent::BodyTimedOut`] reported.
    pub fn set_body_timeout(&mut self, timeout: Option<Duration>) {
        self.body_timeout = timeout;
    }

    /// How long the connection may stay without a stream open (`None`: forever, the
    /// default); past it, GOAWAY(NO_ERROR) and a close.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.idle_timeout = timeout;
    }

    /// Whether a request may be sent now (a stream is free and the connection is open).
    #[must_use]
    pub fn can_open(&self) -> bool {
        self.is_open() && (self.streams.len() as u64) < u64::from(self.peer_max_streams)
    }

    /// Whether the connection takes new requests at all (not closing, no GOAWAY, stream
    /// ids left).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.close.is_none()
            && !self.lost
            && self.goaway.is_none()
            && !self.eof
            && self.next_stream < MAX_WINDOW
    }

    /// Streams in flight.
    #[must_use]
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Whether stream `id` may take more body now without queueing past 64 KiB.
    #[must_use]
    pub fn is_ready(&self, id: u32) -> bool {
        self.writable
            && self
                .streams
                .get(&id)
                .is_some_and(|s| !s.send.done && s.send.queued_len < 64 * 1024)
    }

    /// Sends a request head on a new stream and returns its id; `end_stream`: no body
    /// follows (else [`H2ClientConn::send_body`] and [`H2ClientConn::finish`]).
    ///
    /// # Errors
    /// [`H2ClientError::Busy`] at the server's stream limit, [`H2ClientError::Closed`]
    /// when the connection takes no more requests.
    pub fn send_request(
        &mut self,
        request: RequestParts<'_>,
        end_stream: bool,
    ) -> Result<u32, H2ClientError> {
        if !self.is_open() {
            return Err(H2ClientError::Closed);
        }
        if !self.can_open() {
            return Err(H2ClientError::Busy);
        }
        let id = self.next_stream;
        self.next_stream += 2;
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        hpack::encode_field(&mut block, b":method", request.method.as_bytes());
        if *request.method != Method::Connect {
            hpack::encode_field(&mut block, b":scheme", request.scheme.as_bytes());
            let path: &[u8] = if request.path.is_empty() {
                b"/"
            } else {
                request.path
            };
            hpack::encode_field(&mut block, b":path", path);
        }
        hpack::encode_field(&mut block, b":authority", request.authority);
        for (name, value) in request.headers.iter() {
            // RFC 9113 §8.2.2: no connection-specific fields; `te` only as "trailers".
            if is_connection_specific(name)
                || name.eq_ignore_ascii_case(b"host")
                || (name.eq_ignore_ascii_case(b"te") && !value.eq_ignore_ascii_case(b"trailers"))
            {
                continue;
            }
            hpack::encode_field(&mut block, name, value);
        }
        let max = self.peer_max_frame_size;
        self.emit(|buf| frame::encode_headers(buf, id, &block, end_stream, max));
        self.scratch = block;
        self.streams.insert(
            id,
            ClientStream {
                send: Sending {
                    queued: VecDeque::new(),
                    queued_len: 0,
                    ending: end_stream,
                    trailers: None,
                    done: end_stream,
                },
                send_window: i64::from(self.peer_initial_window),
                recv_window: self.initial_recv_window(),
                unacked: 0,
                got_head: false,
                recv_done: false,
                deadline: None,
                unreleased: 0,
            },
        );
        self.idle_deadline = None;
        if self.response_timeout.is_some() {
            self.undated.push(id);
        }
        Ok(id)
    }

    /// Queues a piece of stream `id`'s request body.
    ///
    /// # Errors
    /// [`H2ClientError::NotSending`] when the stream is gone or finished.
    pub fn send_body(&mut self, id: u32, data: Bytes) -> Result<(), H2ClientError> {
        let stream = self.sending(id)?;
        if !data.is_empty() {
            stream.send.queued_len += data.len();
            stream.send.queued.push_back(data);
            self.sendable.push_back(id);
            self.unsettled = true;
        }
        Ok(())
    }

    /// Ends stream `id`'s request body, with trailers when not empty.
    ///
    /// # Errors
    /// [`H2ClientError::NotSending`] when the stream is gone or finished.
    pub fn finish(&mut self, id: u32, trailers: Option<Headers>) -> Result<(), H2ClientError> {
        let stream = self.sending(id)?;
        stream.send.ending = true;
        stream.send.trailers = trailers.filter(|t| !t.is_empty());
        self.sendable.push_back(id);
        self.unsettled = true;
        Ok(())
    }

    /// Gives up stream `id`: RST_STREAM(CANCEL); nothing more is reported for it.
    pub fn cancel(&mut self, id: u32) {
        if self.streams.remove(&id).is_some() && self.close.is_none() && !self.lost {
            self.emit(|buf| frame::encode_rst_stream(buf, id, ErrorCode::CANCEL));
            self.unsettled = true;
        }
    }

    /// The application consumed `n` body bytes of stream `id`: the windows open by as
    /// much.
    pub fn release_body(&mut self, id: u32, n: usize) {
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.unreleased = stream.unreleased.saturating_sub(n);
            if stream.unreleased == 0 && self.body_timeout.is_some() && !stream.recv_done {
                // Waiting on the server again: the body deadline starts now.
                self.undated.push(id);
            }
        }
        self.give_back(id, n);
    }

    /// Opens the windows by `n` bytes of stream `id` (WINDOW_UPDATE past half a window).
    fn give_back(&mut self, id: u32, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if self.close.is_some() || self.lost {
            return;
        }
        self.recv_unacked = self.recv_unacked.saturating_add(n);
        if self.recv_unacked >= self.config.connection_window / 2 {
            let increment = std::mem::take(&mut self.recv_unacked);
            self.recv_window += i64::from(increment);
            self.emit(|buf| frame::encode_window_update(buf, 0, increment));
        }
        let threshold = self.config.stream_window / 2;
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.recv_done {
            return;
        }
        stream.unacked = stream.unacked.saturating_add(n);
        if stream.unacked >= threshold {
            let increment = std::mem::take(&mut stream.unacked);
            stream.recv_window += i64::from(increment);
            self.emit(|buf| frame::encode_window_update(buf, id, increment));
        }
    }

    /// The receive window of a new stream: ours once the server acknowledged our SETTINGS,
    /// the default 65,535 at least until then (RFC 9113 §6.5.3).
    fn initial_recv_window(&self) -> i64 {
        let ours = i64::from(self.config.stream_window);
        if self.settings_acked {
            ours
        } else {
            ours.max(i64::from(DEFAULT_WINDOW))
        }
    }

    fn sending(&mut self, id: u32) -> Result<&mut ClientStream, H2ClientError> {
        match self.streams.get_mut(&id) {
            Some(stream) if !stream.send.ending => Ok(stream),
            _ => Err(H2ClientError::NotSending),
        }
    }

    fn emit(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        let buf = self.out.buffer();
        let before = buf.len();
        encode(buf);
        let n = buf.len() - before;
        self.out.wrote(n);
    }

    fn connection_error(&mut self, code: ErrorCode, reason: &str) {
        if self.close.is_some() || self.lost {
            return;
        }
        self.emit(|buf| frame::encode_goaway(buf, 0, code, reason.as_bytes()));
        self.fail_all(code);
        self.close = Some(Close::Graceful);
    }

    fn fail_all(&mut self, code: ErrorCode) {
        let mut ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.events.push_back(ClientEvent::Reset { id, code });
        }
        self.streams.clear();
        self.sendable.clear();
        self.pending_block = None;
    }

    fn reset(&mut self, id: u32, code: ErrorCode, send: bool) {
        if self.streams.remove(&id).is_some() {
            if send {
                self.emit(|buf| frame::encode_rst_stream(buf, id, code));
            }
            self.events.push_back(ClientEvent::Reset { id, code });
            self.unsettled = true;
        }
    }

    fn take_input(&mut self, data: &[u8], now: Instant) {
        self.input.extend_from_slice(data);
        while self.close.is_none() {
            match frame::decode_frame(&mut self.input, DEFAULT_MAX_FRAME_SIZE) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(frame)) => self.handle_frame(frame, now),
                Err(FrameError::Connection { code, reason }) => self.connection_error(code, reason),
                Err(FrameError::Stream { stream, code, .. }) => {
                    if self.pending_block.is_some() {
                        self.connection_error(
                            ErrorCode::PROTOCOL_ERROR,
                            "frame inside a header block",
                        );
                    } else {
                        self.reset(stream, code, true);
                    }
                }
            }
        }
    }

    fn handle_frame(&mut self, frame: Frame, now: Instant) {
        if !self.got_settings {
            // RFC 9113 §3.4: the server preface is a SETTINGS frame.
            if !matches!(frame, Frame::Settings { ack: false, .. }) {
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "server preface not SETTINGS");
                return;
            }
            self.got_settings = true;
        }
        if let Some(mut pending) = self.pending_block.take() {
            match frame {
                Frame::Continuation {
                    stream,
                    end_headers,
                    block,
                } if stream == pending.stream => {
                    pending.continuations += 1;
                    if pending.continuations > self.config.max_continuations
                        || pending.block.len() + block.len() > self.config.max_header_block
                    {
                        self.connection_error(ErrorCode::ENHANCE_YOUR_CALM, "CONTINUATION flood");
                        return;
                    }
                    pending.block.extend_from_slice(&block);
                    if end_headers {
                        self.header_block(pending.stream, pending.end_stream, &pending.block);
                    } else {
                        self.pending_block = Some(pending);
                    }
                }
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
            } => self.data(stream, end_stream, data, flow_len),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
                ..
            } => {
                if end_headers {
                    self.header_block(stream, end_stream, &block);
                } else if block.len() > self.config.max_header_block {
                    self.connection_error(ErrorCode::ENHANCE_YOUR_CALM, "header block too large");
                } else {
                    self.pending_block = Some(PendingBlock {
                        stream,
                        end_stream,
                        block: BytesMut::from(&block[..]),
                        continuations: 0,
                    });
                }
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => {}
            Frame::RstStream { stream, code } => self.reset(stream, code, false),
            Frame::Settings { ack, entries } => {
                if ack {
                    if !self.settings_acked {
                        // Our INITIAL_WINDOW_SIZE now holds (RFC 9113 §6.9.2).
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
                    self.connection_error(ErrorCode::ENHANCE_YOUR_CALM, "SETTINGS flood");
                    return;
                }
                for (id, value) in frame::settings_entries(&entries) {
                    match id {
                        setting::MAX_CONCURRENT_STREAMS => self.peer_max_streams = value,
                        setting::INITIAL_WINDOW_SIZE => {
                            let delta = i64::from(value) - i64::from(self.peer_initial_window);
                            self.peer_initial_window = value;
                            for stream in self.streams.values_mut() {
                                stream.send_window += delta;
                                if stream.send_window > i64::from(MAX_WINDOW) {
                                    self.connection_error(
                                        ErrorCode::FLOW_CONTROL_ERROR,
                                        "window past 2^31-1",
                                    );
                                    return;
                                }
                            }
                        }
                        setting::MAX_FRAME_SIZE => self.peer_max_frame_size = value,
                        _ => {}
                    }
                }
                self.emit(frame::encode_settings_ack);
                self.unsettled = true;
            }
            Frame::PushPromise { .. } => {
                // RFC 9113 §6.6: PUSH_PROMISE after ENABLE_PUSH=0 is a PROTOCOL_ERROR.
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "PUSH_PROMISE with push disabled");
            }
            Frame::Ping { ack, data } => {
                if !ack {
                    if !self.control.take(now) {
                        self.connection_error(ErrorCode::ENHANCE_YOUR_CALM, "PING flood");
                        return;
                    }
                    self.emit(|buf| frame::encode_ping(buf, true, data));
                }
            }
            Frame::GoAway {
                last_stream, code, ..
            } => {
                // RFC 9113 §6.8: streams above `last_stream` were not processed.
                self.goaway = Some(last_stream);
                let mut refused: Vec<u32> = self
                    .streams
                    .keys()
                    .copied()
                    .filter(|&id| id > last_stream)
                    .collect();
                refused.sort_unstable();
                for id in refused {
                    self.streams.remove(&id);
                    self.events.push_back(ClientEvent::Reset {
                        id,
                        code: ErrorCode::REFUSED_STREAM,
                    });
                }
                if code != ErrorCode::NO_ERROR {
                    self.fail_all(code);
                }
                self.unsettled = true;
            }
            Frame::WindowUpdate { stream, increment } => {
                if stream == 0 {
                    self.send_window += i64::from(increment);
                    if self.send_window > i64::from(MAX_WINDOW) {
                        self.connection_error(
                            ErrorCode::FLOW_CONTROL_ERROR,
                            "connection window past 2^31-1",
                        );
                    }
                } else if let Some(s) = self.streams.get_mut(&stream) {
                    s.send_window += i64::from(increment);
                    if s.send_window > i64::from(MAX_WINDOW) {
                        self.reset(stream, ErrorCode::FLOW_CONTROL_ERROR, true);
                    }
                }
                self.unsettled = true;
            }
            Frame::Continuation { .. } => {
                self.connection_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "CONTINUATION without a header block",
                );
            }
        }
    }

    fn header_block(&mut self, id: u32, end_stream: bool, block: &[u8]) {
        let limit = self.config.max_header_list_size as usize;
        let mut fields = FieldList::default();
        let decoded = match self
            .decoder
            .decode(block, limit, |name, value| fields.push(name, value))
        {
            Ok(decoded) => decoded,
            Err(_) => {
                self.connection_error(ErrorCode::COMPRESSION_ERROR, "header block does not decode");
                return;
            }
        };
        let Some(stream) = self.streams.get_mut(&id) else {
            if id >= self.next_stream || id.is_multiple_of(2) {
                // RFC 9113 §5.1: HEADERS on a stream we never opened.
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "HEADERS on an idle stream");
            }
            return;
        };
        if stream.got_head {
            // Trailers: they end the stream (RFC 9113 §8.1).
            if !end_stream {
                self.reset(id, ErrorCode::PROTOCOL_ERROR, true);
                return;
            }
            match fields.into_trailers(decoded.oversized) {
                Ok(trailers) => self.end_recv(id, Some(trailers)),
                Err(_) => self.reset(id, ErrorCode::PROTOCOL_ERROR, true),
            }
            return;
        }
        let head = match fields.into_response(decoded.oversized) {
            Ok(head) => head,
            Err(_) => {
                // RFC 9113 §8.1.1: a malformed response is a stream error PROTOCOL_ERROR.
                self.reset(id, ErrorCode::PROTOCOL_ERROR, true);
                return;
            }
        };
        if head.status < 200 {
            // Interim (1xx): the final head follows.
            return;
        }
        stream.got_head = true;
        stream.deadline = self.body_timeout.zip(self.now).map(|(t, now)| now + t);
        self.events.push_back(ClientEvent::Response {
            id,
            head,
            end_stream,
        });
        if end_stream {
            self.end_recv(id, None);
        }
    }

    fn data(&mut self, id: u32, end_stream: bool, data: Bytes, flow_len: u32) {
        if i64::from(flow_len) > self.recv_window {
            self.connection_error(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA past the connection window",
            );
            return;
        }
        self.recv_window -= i64::from(flow_len);
        let padding = flow_len - data.len() as u32;
        let Some(stream) = self.streams.get_mut(&id) else {
            // A stream we cancelled (or never opened): its window comes back now.
            if id >= self.next_stream {
                self.connection_error(ErrorCode::PROTOCOL_ERROR, "DATA on an idle stream");
                return;
            }
            self.give_back(id, flow_len as usize);
            return;
        };
        if !stream.got_head || stream.recv_done {
            self.reset(id, ErrorCode::PROTOCOL_ERROR, true);
            self.give_back(id, flow_len as usize);
            return;
        }
        if i64::from(flow_len) > stream.recv_window {
            self.reset(id, ErrorCode::FLOW_CONTROL_ERROR, true);
            self.give_back(id, flow_len as usize);
            return;
        }
        stream.recv_window -= i64::from(flow_len);
        if !data.is_empty() {
            // Held by the application until released: no body deadline meanwhile.
            stream.unreleased += data.len();
            stream.deadline = None;
        }
        if padding > 0 {
            self.give_back(id, padding as usize);
        }
        if !data.is_empty() {
            self.events.push_back(ClientEvent::Body { id, data });
        }
        if end_stream {
            self.end_recv(id, None);
        }
    }

    fn end_recv(&mut self, id: u32, trailers: Option<Headers>) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.recv_done = true;
        self.events.push_back(ClientEvent::End { id, trailers });
        if !stream.send.done {
            // The server answered before the request body ended: stop sending it
            // (RFC 9113 §8.1 lets it; the answer is complete).
            self.emit(|buf| frame::encode_rst_stream(buf, id, ErrorCode::CANCEL));
        }
        self.streams.remove(&id);
        self.unsettled = true;
    }

    /// Writes DATA (and trailers) for the streams that can send, in turn.
    fn flush_streams(&mut self) {
        if !self.writable {
            return;
        }
        let mut idle_turns = 0;
        while idle_turns <= self.sendable.len() && self.out.len() < self.config.max_buffered_output
        {
            let Some(id) = self.sendable.pop_front() else {
                break;
            };
            let max_frame = self.peer_max_frame_size as usize;
            let conn_window = self.send_window;
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            if stream.send.done {
                continue;
            }
            let mut wrote = 0usize;
            let mut blocked = false;
            let mut ended = false;
            while let Some(front) = stream.send.queued.front_mut() {
                let window = stream.send_window.min(conn_window - wrote as i64);
                if window <= 0 {
                    blocked = true;
                    break;
                }
                let n = front.len().min(max_frame).min(window as usize);
                let piece = front.split_to(n);
                if front.is_empty() {
                    stream.send.queued.pop_front();
                }
                stream.send.queued_len -= n;
                stream.send_window -= n as i64;
                wrote += n;
                let end = stream.send.queued.is_empty()
                    && stream.send.ending
                    && stream.send.trailers.is_none();
                frame::encode_data_header(self.out.buffer(), id, n, end);
                self.out.wrote(frame::HEADER_LEN);
                self.out.write_bytes(piece);
                if end {
                    ended = true;
                    break;
                }
                if wrote >= 64 * 1024 {
                    break;
                }
            }
            self.send_window -= wrote as i64;
            let empty = stream.send.queued.is_empty();
            if empty && stream.send.ending && !ended {
                if let Some(trailers) = stream.send.trailers.take() {
                    let mut block = std::mem::take(&mut self.scratch);
                    block.clear();
                    for (name, value) in trailers.iter() {
                        hpack::encode_field(&mut block, name, value);
                    }
                    let max = self.peer_max_frame_size;
                    self.emit(|buf| frame::encode_headers(buf, id, &block, true, max));
                    self.scratch = block;
                } else {
                    self.emit(|buf| frame::encode_data_header(buf, id, 0, true));
                }
                ended = true;
            }
            if ended {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.send.done = true;
                }
                idle_turns = 0;
            } else if !empty {
                self.sendable.push_back(id);
                if blocked && wrote == 0 {
                    idle_turns += 1;
                } else {
                    idle_turns = 0;
                }
            }
        }
    }

    /// Starts the deadlines of streams waiting for the clock: the response deadline of a
    /// stream without its head, the body deadline of one whose bytes were all released;
    /// and the idle deadline of a connection without streams.
    fn date_streams(&mut self, now: Instant) {
        for id in self.undated.drain(..) {
            if let Some(stream) = self.streams.get_mut(&id) {
                let timeout = if stream.got_head {
                    self.body_timeout.filter(|_| stream.unreleased == 0)
                } else {
                    self.response_timeout
                };
                if let Some(timeout) = timeout {
                    stream.deadline = Some(now + timeout);
                }
            }
        }
        if self.streams.is_empty() && self.idle_deadline.is_none() && self.close.is_none() {
            self.idle_deadline = self.idle_timeout.map(|t| now + t);
        }
    }

    fn settle(&mut self) {
        self.unsettled = false;
        if self.close.is_some() || self.lost {
            return;
        }
        self.flush_streams();
        if self.sendable.len() > 2 * self.streams.len() + 8 {
            let mut seen = std::collections::HashSet::new();
            self.sendable.retain(|id| seen.insert(*id));
        }
        if self.streams.is_empty() && (self.goaway.is_some() || self.eof) {
            self.close = Some(Close::Graceful);
        }
    }
}

impl Machine for H2ClientConn {
    type Event = ClientEvent;

    fn handle_connected(&mut self, _now: Instant) {
        // RFC 9113 §3.4: the preface, then SETTINGS.
        self.out.write(PREFACE);
        let entries = [
            (setting::ENABLE_PUSH, 0),
            (setting::INITIAL_WINDOW_SIZE, self.config.stream_window),
            (
                setting::MAX_HEADER_LIST_SIZE,
                self.config.max_header_list_size,
            ),
        ];
        self.emit(|buf| frame::encode_settings(buf, &entries));
        let extra = self.config.connection_window.saturating_sub(DEFAULT_WINDOW);
        if extra > 0 {
            self.recv_window += i64::from(extra);
            self.emit(|buf| frame::encode_window_update(buf, 0, extra));
        }
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.close.is_some() || self.lost || self.eof {
            return;
        }
        self.now = Some(now);
        self.take_input(data, now);
        self.settle();
    }

    fn handle_eof(&mut self, _now: Instant) {
        if self.eof {
            return;
        }
        self.eof = true;
        // The server is gone mid-answer: what is in flight fails.
        self.fail_all(ErrorCode::CANCEL);
        self.settle();
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.date_streams(now);
        if self.close.is_some() || self.lost {
            return;
        }
        let mut expired: Vec<(u32, bool)> = self
            .streams
            .iter()
            .filter(|(_, s)| s.deadline.is_some_and(|at| at <= now))
            .map(|(&id, s)| (id, s.got_head))
            .collect();
        expired.sort_unstable();
        for (id, got_head) in expired {
            self.streams.remove(&id);
            self.emit(|buf| frame::encode_rst_stream(buf, id, ErrorCode::CANCEL));
            self.events.push_back(if got_head {
                ClientEvent::BodyTimedOut { id }
            } else {
                ClientEvent::TimedOut { id }
            });
        }
        if self.streams.is_empty() && self.idle_deadline.is_some_and(|at| at <= now) {
            // Idle: a graceful GOAWAY (no stream of ours was processed past 0), then close.
            self.idle_deadline = None;
            self.emit(|buf| frame::encode_goaway(buf, 0, ErrorCode::NO_ERROR, b""));
            self.goaway.get_or_insert(u32::MAX);
        }
        self.settle();
    }

    fn handle_writable(&mut self, writable: bool, _now: Instant) {
        self.writable = writable;
        if writable {
            self.settle();
        }
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        if self.close.is_none() && !self.lost {
            self.emit(|buf| frame::encode_goaway(buf, 0, ErrorCode::NO_ERROR, b""));
            self.goaway.get_or_insert(u32::MAX);
        }
        self.settle();
    }

    fn handle_lost(&mut self, _now: Instant) {
        if !self.lost {
            self.fail_all(ErrorCode::CANCEL);
        }
        self.lost = true;
        self.out.clear();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        self.date_streams(now);
        if self.unsettled || (self.out.is_empty() && !self.sendable.is_empty()) {
            self.settle();
        }
        if self.lost {
            return None;
        }
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
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
        if self.close.is_some() || self.lost {
            return None;
        }
        let idle = self.idle_deadline.filter(|_| self.streams.is_empty());
        self.streams
            .values()
            .filter_map(|s| s.deadline)
            .chain(idle)
            .min()
    }

    fn wants_input(&self) -> bool {
        // Not paused while the transport is full: a server that stops reading while its own
        // writes are blocked (ours does, as a defence) would deadlock against us, each
        // waiting for the other to read. What input makes us write (acks, window updates)
        // is bounded by `max_buffered_output`.
        self.close.is_none()
            && !self.lost
            && !self.eof
            && self.out.len() < self.config.max_buffered_output
    }
}

#[cfg(test)]
mod tests;
