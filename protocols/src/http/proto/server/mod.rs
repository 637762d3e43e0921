//! One HTTP/1.1 server connection as a sans-IO machine ([`ServerConn`]).
//!
//! Owns: reading requests off the connection (heads with [`parse_request_with`], bodies with
//! [`BodyDecoder`]), the pipeline of answers in request order, framing (`framing.rs`),
//! `Expect: 100-continue`, the three deadlines (head, body, keep-alive idle), flow control
//! of request bodies, backpressure, error replies and when the connection closes.
//! Contract: the [`Machine`] contract. Each request becomes a [`ServerEvent::Request`] with a
//! [`RequestId`]; its body follows as [`ServerEvent::Body`] pieces and a
//! [`ServerEvent::BodyEnd`] (or [`ServerEvent::BodyError`]). The application answers with
//! [`ServerConn::send_response`], or [`ServerConn::send_head`] + [`ServerConn::send_body`] +
//! [`ServerConn::finish`]; answers leave in request order whatever order they are given in.
//! Body bytes count against [`ServerConfig::body_buffer`] until the application
//! [`ServerConn::release_body`]s them: reading stops past it. Bad input gets its status
//! (400, 408, 413, 414, 431, 501, 505, 417) and a close; a connection never holds more than
//! the head limit, one read, and what the application has not released.
//! Does not: touch sockets or clocks (instants come in), log, or call handlers.
//! Spec: RFC 9112 (§6 message body, §9.3 persistence, §9.6 close), RFC 9110 §10.1.1
//! (Expect). Tests: `tests.rs` (Pair and raw-byte tests); fuzz target `fuzz/http_server_conn`.

mod event;
mod framing;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

pub use self::event::{RequestLog, SendError, ServerEvent};
pub use self::framing::Response;
use self::framing::{
    DATE_LINE, DATE_VALUE, FALLBACK_500, FrameInput, Framing, frame_body_end, frame_body_piece,
    frame_head,
};
use crate::http::proto::{
    BodyDecoder, BodyKind, H1Error, H1Limits, Headers, Method, ParsedRequest, Status, Version,
    parse_request_with,
};
use crate::kit::{Close, Machine, Output};

/// Server settings, with safe defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Parser limits (request line, head, fields, body).
    pub limits: H1Limits,
    /// Time allowed for a whole request head, from its first byte (or from the connection
    /// for the first request): 408 and close past it.
    pub header_read_timeout: Duration,
    /// Longest pause while a body is being read: 408 and close past it.
    pub body_read_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive_timeout: Duration,
    /// Once a graceful shutdown starts, how long an idle keep-alive connection stays open
    /// for a request its client may have sent already (answered with `Connection: close`),
    /// before it closes; zero closes it at once, as nginx does (a request crossing the
    /// close then fails). Default 1 s.
    pub drain_idle_timeout: Duration,
    /// Most requests read ahead of their responses (pipelining); reading pauses beyond.
    pub max_pipelined: usize,
    /// Whether connections persist between requests.
    pub keep_alive: bool,
    /// Close a connection after this many requests (`None`: no limit).
    pub max_requests_per_connection: Option<u64>,
    /// Bytes of a request body given to the application and not yet released before
    /// reading pauses.
    pub body_buffer: usize,
    /// A `Server` field to send (none by default).
    pub server_name: Option<Bytes>,
    /// Log every response at info level, target `ringwork::http::access` (the engine
    /// adapter logs; the machine reports each finished response in [`ServerEvent::Sent`]).
    pub access_log: bool,
    /// Report every answer that left in full as a [`ServerEvent::Sent`] (default). A driver
    /// with nobody to tell (no access log, no metrics: the engine's `HttpServer` knows)
    /// turns it off and saves an event per request.
    pub report_sent: bool,
    /// Write-stall (send) timeout of each connection: a client that takes no byte of what
    /// the server has to send for this long is aborted (the engine adapter sets the
    /// engine's write-stall timeout, like nginx's `send_timeout`). `None`: no timeout.
    /// Default 60 s.
    pub write_timeout: Option<Duration>,
    /// HTTP/2 settings and limits, for connections that speak it (`h2` by ALPN, or the
    /// HTTP/2 preface on a plain port).
    pub http2: crate::http::proto::h2::H2Config,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: H1Limits::default(),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            drain_idle_timeout: Duration::from_secs(1),
            max_pipelined: 64,
            keep_alive: true,
            max_requests_per_connection: None,
            body_buffer: 256 * 1024,
            server_name: None,
            access_log: false,
            report_sent: true,
            write_timeout: Some(Duration::from_secs(60)),
            http2: crate::http::proto::h2::H2Config::default(),
        }
    }
}

/// The space reserved at a time for the request heads of a connection (`ServerConn::heads`):
/// a pipelined batch of small heads (16 × 40 bytes from a benchmark client) fits in one.
const HEAD_STORE: usize = 1024;

/// A copy of request head `head` in `store`, reusing its space once the heads split off
/// before are all dropped.
fn own_head(store: &mut BytesMut, head: &[u8]) -> Bytes {
    if store.capacity() < head.len() {
        // Reclaims the whole buffer when no earlier head holds it, else allocates anew.
        store.reserve(HEAD_STORE.max(head.len()));
    }
    store.extend_from_slice(head);
    store.split().freeze()
}

/// Request head `head`, a part of `batch`'s bytes, as a slice of `batch` (no copy); a head
/// elsewhere is copied.
fn share_head(batch: &Bytes, head: &[u8]) -> Bytes {
    let start = (head.as_ptr() as usize).checked_sub(batch.as_ptr() as usize);
    match start {
        Some(start) if start + head.len() <= batch.len() => batch.slice(start..start + head.len()),
        _ => Bytes::copy_from_slice(head),
    }
}

/// One request on one connection (they count up from 0).
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct RequestId(pub u64);

/// Bytes a streaming answer may have waiting in the machine before it is not ready.
const WRITE_SLACK: usize = 64 * 1024;

/// What the connection is reading.
#[derive(Debug)]
enum Reading {
    /// A request head (or nothing yet).
    Head,
    /// A request body.
    Body {
        id: u64,
        decoder: BodyDecoder,
        /// The application wants the bytes (else they are read and dropped).
        deliver: bool,
    },
    /// An upgrade request (`Connection: upgrade`) waits for its answer: what follows it is
    /// held unparsed, since after a `101` it belongs to another protocol.
    Upgrade { id: u64 },
    /// A `101` went out: the connection belongs to another protocol.
    Upgraded,
    /// Nothing more: the connection closes once the answers are out.
    Done,
}

/// Where an `Expect: 100-continue` stands.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Expect {
    /// The client did not ask (or it no longer matters).
    No,
    /// The client waits for `100 Continue`.
    Waiting,
    /// `100 Continue` is queued.
    Sent,
}

/// Where a request's answer stands.
#[derive(Debug)]
enum Answer {
    /// Not answered yet.
    Pending,
    /// Head sent, body streaming.
    Streaming(Framing),
    /// Answered in full.
    Complete,
}

/// One request's place in the answer order.
#[derive(Debug)]
struct Slot {
    id: u64,
    /// False for an error reply to input that never became a request.
    is_request: bool,
    version: Version,
    is_head: bool,
    keep_alive: bool,
    answer: Answer,
    expect: Expect,
    /// Bytes waiting for the earlier answers (the front slot writes straight to the output).
    /// A `Vec`, not a `VecDeque`: it is nearly always empty, and an empty `Vec` is cheaper
    /// to drop (issue 16: `flush` 142 → 117 instructions a request).
    queued: Vec<Bytes>,
    log: Option<Box<RequestLog>>,
    /// When the head was read (`None` for an error reply without a request).
    started: Option<Instant>,
    status: u16,
    sent: u64,
    /// The request asked to switch protocols.
    upgrade: bool,
    /// It was answered with `101`: the connection switches once that answer is out.
    switching: bool,
}

/// One HTTP/1.1 server connection (see the module docs).
#[derive(Debug)]
pub struct ServerConn {
    /// Shared by the server's connections (issue 16: a copy per connection was ~300 bytes
    /// of every keep-alive connection).
    config: Arc<ServerConfig>,
    /// `Date: <IMF-fixdate>\r\n`, copied whole into every head framed.
    date_line: [u8; DATE_LINE],
    /// Unparsed input.
    input: BytesMut,
    /// Where request heads are copied to, each split off as the [`Bytes`] its fields slice:
    /// once the application has dropped the heads of a batch, the next batch reuses the
    /// space (no allocation per request).
    heads: BytesMut,
    /// `input`'s length at the last incomplete head parse (skip re-parsing until a new LF).
    parsed_partial: usize,
    reading: Reading,
    slots: VecDeque<Slot>,
    next_id: u64,
    served: u64,
    events: VecDeque<ServerEvent>,
    out: Output,
    head_deadline: Option<Instant>,
    body_deadline: Option<Instant>,
    idle_deadline: Option<Instant>,
    /// Body bytes handed to the application and not released.
    unreleased: usize,
    writable: bool,
    eof: bool,
    draining: bool,
    /// The transport is gone.
    lost: bool,
    close: Option<Close>,
    close_polled: bool,
    /// An application call changed what can happen next: settle at the next poll.
    unsettled: bool,
}

impl ServerConn {
    /// A connection with `config` (a server passes every connection a clone of one `Arc`).
    #[must_use]
    pub fn new(config: impl Into<Arc<ServerConfig>>) -> Self {
        Self {
            config: config.into(),
            date_line: *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
            input: BytesMut::new(),
            heads: BytesMut::new(),
            parsed_partial: 0,
            reading: Reading::Head,
            slots: VecDeque::new(),
            next_id: 0,
            served: 0,
            events: VecDeque::new(),
            out: Output::new(),
            head_deadline: None,
            body_deadline: None,
            idle_deadline: None,
            unreleased: 0,
            writable: true,
            eof: false,
            draining: false,
            lost: false,
            close: None,
            close_polled: false,
            unsettled: false,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Sets the `Date` field value of the answers framed from now on (an IMF-fixdate; the
    /// driver owns the wall clock). A value with bytes outside printable ASCII is ignored
    /// (it is framed without a field check).
    pub fn set_date(&mut self, date: [u8; 29]) {
        let field = &mut self.date_line[DATE_VALUE];
        if date != *field && date.iter().all(|&b| (b' '..=b'~').contains(&b)) {
            field.copy_from_slice(&date);
        }
    }

    /// Bytes of input held (read but not yet parsed): at most the head limit plus one read,
    /// plus what arrived while reading was paused. For diagnostics and fuzzing.
    #[must_use]
    pub fn held_input(&self) -> usize {
        self.input.len()
    }

    /// Bytes of answers waiting to be transmitted (including answers waiting for earlier
    /// ones). For diagnostics and fuzzing.
    #[must_use]
    pub fn held_output(&self) -> usize {
        self.out.len()
            + self
                .slots
                .iter()
                .flat_map(|slot| slot.queued.iter())
                .map(Bytes::len)
                .sum::<usize>()
    }

    /// Whether the connection is closing or gone: answers are dropped.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.close.is_some() || self.lost
    }

    /// Answers request `id` with a whole response.
    ///
    /// # Errors
    /// [`SendError::NotPending`] when it is answered already or gone;
    /// [`SendError::Invalid`] when the response cannot be framed (500 was sent instead).
    pub fn send_response(&mut self, id: RequestId, response: Response) -> Result<(), SendError> {
        self.respond(id, &response)
    }

    /// [`ServerConn::send_response`] framing `response` where it is (no move of it).
    pub(crate) fn respond(&mut self, id: RequestId, response: &Response) -> Result<(), SendError> {
        let index = self.pending_index(id)?;
        self.stop_unwanted_body(index, true);
        let waiting = matches!(self.reading, Reading::Upgrade { id: current } if current == id.0);
        if response.head.status == 101 && !waiting {
            // Only a request that asked to switch, and is still holding its connection, may
            // be answered with 101.
            let result = self.frame(index, &Response::error(500), false);
            if let Some(slot) = self.slots.get_mut(index) {
                slot.answer = Answer::Complete;
                slot.keep_alive = false;
            }
            self.flush();
            return result.and(Err(SendError::Invalid(H1Error::InvalidResponseHeader {
                what: "101 answer to a request that did not ask to upgrade",
            })));
        }
        let result = self.frame(index, response, false);
        if let Some(slot) = self.slots.get_mut(index) {
            slot.answer = Answer::Complete;
            slot.switching = response.head.status == 101 && result.is_ok();
        }
        if waiting && response.head.status != 101 {
            // Refused: the connection goes on as HTTP (or closes, as the answer says).
            let keep_alive = self.slots.get(index).is_some_and(|slot| slot.keep_alive);
            self.reading = if keep_alive {
                Reading::Head
            } else {
                Reading::Done
            };
        }
        self.flush();
        result.map(drop)
    }

    /// Sends the head of `response` (its body is ignored); the body follows with
    /// [`ServerConn::send_body`] and [`ServerConn::finish`]. It is sized if the response has
    /// a Content-Length, chunked otherwise (close-delimited for an HTTP/1.0 client).
    ///
    /// # Errors
    /// As [`ServerConn::send_response`]; after [`SendError::Invalid`] the request is
    /// answered (500) and later body calls fail with [`SendError::NotStreaming`].
    pub fn send_head(&mut self, id: RequestId, response: Response) -> Result<(), SendError> {
        let index = self.pending_index(id)?;
        self.stop_unwanted_body(index, false);
        let waiting = matches!(self.reading, Reading::Upgrade { id: current } if current == id.0);
        match self.frame(index, &response, true) {
            Ok(framing) => {
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.answer = Answer::Streaming(framing);
                }
                if waiting {
                    // A refused upgrade answered with a streamed body: as in
                    // `send_response`, the held input is HTTP again.
                    let keep_alive = self.slots.get(index).is_some_and(|slot| slot.keep_alive);
                    self.reading = if keep_alive {
                        Reading::Head
                    } else {
                        Reading::Done
                    };
                }
                self.flush();
                Ok(())
            }
            Err(error) => {
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.answer = Answer::Complete;
                }
                self.flush();
                Err(error)
            }
        }
    }

    /// Sends a piece of a streamed body (see [`ServerConn::is_ready`] for when to wait).
    ///
    /// # Errors
    /// [`SendError::NotStreaming`]; [`SendError::PastLength`] when bytes past a declared
    /// Content-Length were dropped (the connection closes after this response).
    pub fn send_body(&mut self, id: RequestId, data: Bytes) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::NotPending);
        }
        let index = self.index(id).ok_or(SendError::NotStreaming)?;
        let front = index == 0;
        let slot = &mut self.slots[index];
        let Answer::Streaming(framing) = &mut slot.answer else {
            return Err(SendError::NotStreaming);
        };
        let mut pieces = VecDeque::new();
        let dropped = frame_body_piece(framing, data, &mut pieces);
        let past_length = dropped > 0 && matches!(framing, Framing::Sized(_));
        if past_length {
            slot.keep_alive = false;
        }
        for piece in pieces {
            slot.sent += piece.len() as u64;
            if front {
                self.out.write_bytes(piece);
            } else {
                slot.queued.push(piece);
            }
        }
        if past_length {
            Err(SendError::PastLength { dropped })
        } else {
            Ok(())
        }
    }

    /// Whether the next `n` body bytes of `id` may be sent by the caller outside this machine
    /// (a file range the kernel sends, [`ringwork::Context::send_file`]): `id`'s answer is
    /// the one going out, sized (Content-Length) with at least `n` bytes left, and nothing
    /// of this machine's output waits (the caller took it all with `poll_transmit`, so
    /// those bytes go first). Then send them and call [`ServerConn::sent_body_elsewhere`].
    #[must_use]
    pub fn can_send_body_elsewhere(&self, id: RequestId, n: u64) -> bool {
        !self.is_closing()
            && self.out.is_empty()
            && self.index(id) == Some(0)
            && matches!(
                self.slots.front().map(|slot| &slot.answer),
                Some(Answer::Streaming(Framing::Sized(left))) if *left >= n
            )
    }

    /// `n` body bytes of `id` went out outside this machine (after
    /// [`ServerConn::can_send_body_elsewhere`] said yes): counted as sent.
    pub fn sent_body_elsewhere(&mut self, id: RequestId, n: u64) {
        if self.index(id) != Some(0) {
            return;
        }
        let Some(slot) = self.slots.front_mut() else {
            return;
        };
        if let Answer::Streaming(Framing::Sized(left)) = &mut slot.answer {
            let n = n.min(*left);
            *left -= n;
            slot.sent += n;
        }
    }

    /// Ends a streamed body, with trailer fields for a chunked one; `None` when the writer
    /// gave up (the connection closes after what was sent, so the client sees a truncated
    /// body).
    ///
    /// # Errors
    /// [`SendError::NotStreaming`]; [`SendError::Truncated`] when the body ended before its
    /// length; [`SendError::TrailersDropped`].
    pub fn finish(&mut self, id: RequestId, trailers: Option<Headers>) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::NotPending);
        }
        let index = self.index(id).ok_or(SendError::NotStreaming)?;
        let front = index == 0;
        let slot = &mut self.slots[index];
        let Answer::Streaming(framing) = &slot.answer else {
            return Err(SendError::NotStreaming);
        };
        let mut pieces = VecDeque::new();
        let (complete, dropped) = frame_body_end(framing, trailers.as_ref(), &mut pieces);
        let close_delimited = matches!(framing, Framing::CloseDelimited);
        if !complete || close_delimited {
            slot.keep_alive = false;
        }
        slot.answer = Answer::Complete;
        for piece in pieces {
            slot.sent += piece.len() as u64;
            if front {
                self.out.write_bytes(piece);
            } else {
                slot.queued.push(piece);
            }
        }
        self.flush();
        if !complete && (trailers.is_some() || !close_delimited) {
            Err(SendError::Truncated)
        } else if dropped {
            Err(SendError::TrailersDropped)
        } else {
            Ok(())
        }
    }

    /// Whether the streamed answer to `id` may take more body now without growing the
    /// connection's buffers: it is the oldest answer, the transport is writable, and little
    /// of it waits here.
    #[must_use]
    pub fn is_ready(&self, id: RequestId) -> bool {
        self.ready_stream() == Some(id)
    }

    /// The request whose streamed answer may take more body now (see
    /// [`ServerConn::is_ready`]); there is at most one.
    #[must_use]
    pub fn ready_stream(&self) -> Option<RequestId> {
        let id = self.next_to_send()?;
        let front = self.slots.front()?;
        matches!(front.answer, Answer::Streaming(_)).then_some(id)
    }

    /// Requests below this id are answered in full and handed on: a writer of one of them has
    /// nothing left to wait for.
    #[must_use]
    pub fn answered_below(&self) -> RequestId {
        RequestId(self.slots.front().map_or(self.next_id, |slot| slot.id))
    }

    /// The request whose answer goes out next, when the transport can take more now: the
    /// oldest one not answered in full. An application that starts streaming it may write
    /// at once (what a writer given out before its head reached the machine needs).
    #[must_use]
    pub fn next_to_send(&self) -> Option<RequestId> {
        if self.is_closing() || !self.writable || self.out.len() >= WRITE_SLACK {
            return None;
        }
        let front = self.slots.front()?;
        (!matches!(front.answer, Answer::Complete)).then_some(RequestId(front.id))
    }

    /// The application wants the body of `id`: sends `100 Continue` if the client waits for
    /// it (in answer order). Does nothing otherwise.
    pub fn continue_body(&mut self, id: RequestId) {
        let Some(index) = self.index(id) else { return };
        if self.slots[index].expect != Expect::Waiting || self.is_closing() {
            return;
        }
        self.slots[index].expect = Expect::Sent;
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        if index == 0 {
            self.out.write(CONTINUE);
        } else {
            self.slots[index].queued.push(Bytes::from_static(CONTINUE));
        }
        // The body may arrive now: its deadline runs from here.
        self.unsettled = true;
    }

    /// The application consumed `n` body bytes of `id`: reading may go on.
    pub fn release_body(&mut self, id: RequestId, n: usize) {
        let _ = id;
        let blocked = self.body_blocked();
        self.unreleased = self.unreleased.saturating_sub(n);
        if blocked && !self.body_blocked() {
            self.unsettled = true;
        }
    }

    /// The application does not want the rest of the body of `id`: it is read and dropped.
    /// (Release what was delivered and not consumed as usual.)
    pub fn discard_body(&mut self, id: RequestId) {
        if let Reading::Body {
            id: current,
            deliver,
            ..
        } = &mut self.reading
            && *current == id.0
            && *deliver
        {
            *deliver = false;
            self.unsettled = true;
        }
    }

    // ---- answers ----

    fn index(&self, id: RequestId) -> Option<usize> {
        let front = self.slots.front()?.id;
        let index = usize::try_from(id.0.checked_sub(front)?).ok()?;
        (index < self.slots.len()).then_some(index)
    }

    fn pending_index(&self, id: RequestId) -> Result<usize, SendError> {
        if self.is_closing() {
            return Err(SendError::NotPending);
        }
        let index = self.index(id).ok_or(SendError::NotPending)?;
        match self.slots[index].answer {
            Answer::Pending => Ok(index),
            _ => Err(SendError::NotPending),
        }
    }

    /// An answer before the body was asked for. RFC 9110 §10.1.1: the client may not send
    /// the body at all after a final answer, so a complete answer ends the connection after
    /// it rather than wait for a body that may never come; a streamed answer keeps reading
    /// (the client sends the body once its wait for `100` runs out).
    fn stop_unwanted_body(&mut self, index: usize, complete: bool) {
        let slot = &mut self.slots[index];
        if slot.expect != Expect::Waiting {
            return;
        }
        slot.expect = Expect::No;
        let reading_it = matches!(self.reading, Reading::Body { id, .. } if id == slot.id);
        if complete && reading_it {
            slot.keep_alive = false;
            self.end_body(None);
            self.reading = Reading::Done;
            self.input.clear();
        }
    }

    /// Frames the answer of slot `index`: the head, and for a whole response its body
    /// (copied when small, shared when large). On a response that cannot be framed, a 500
    /// and a close instead.
    fn frame(
        &mut self,
        index: usize,
        response: &Response,
        streaming: bool,
    ) -> Result<Framing, SendError> {
        let slot = &self.slots[index];
        let input = FrameInput {
            version: slot.version,
            is_head: slot.is_head,
            keep_alive: slot.keep_alive && !self.draining,
            date_line: &self.date_line,
            server_name: self.config.server_name.as_deref(),
            upgrade: slot.upgrade,
        };
        // The oldest answer is encoded straight into the output; later ones wait in their
        // slot.
        let front = index == 0;
        let mut scratch = BytesMut::new();
        let buffer = if front {
            self.out.buffer()
        } else {
            &mut scratch
        };
        let before = buffer.len();
        let (result, keep_alive, status, shared) =
            match frame_head(&input, response, streaming, buffer) {
                Ok(framed) => {
                    let body = if framed.send_body && !streaming && !framed.body_written {
                        &response.body[..]
                    } else {
                        &[]
                    };
                    let shared = (body.len() >= Output::SHARE_AT).then(|| response.body.clone());
                    if shared.is_none() {
                        buffer.extend_from_slice(body);
                    }
                    (
                        Ok(framed.framing),
                        framed.keep_alive,
                        response.head.status,
                        shared,
                    )
                }
                Err(error) => {
                    buffer.extend_from_slice(FALLBACK_500);
                    (Err(SendError::Invalid(error)), false, 500, None)
                }
            };
        let copied = buffer.len() - before;
        let total = copied + shared.as_ref().map_or(0, Bytes::len);
        if front {
            self.out.wrote(copied);
            if let Some(body) = shared {
                self.out.write_bytes(body);
            }
        } else {
            let slot = &mut self.slots[index];
            slot.queued.push(scratch.freeze());
            if let Some(body) = shared {
                slot.queued.push(body);
            }
        }
        let slot = &mut self.slots[index];
        slot.keep_alive = keep_alive;
        slot.status = status;
        slot.sent += total as u64;
        result
    }

    /// Moves finished answers out in order; closes after one that ends the connection.
    fn flush(&mut self) {
        while let Some(front) = self.slots.front_mut() {
            // Usually empty (answers given in order are written straight to the output): no
            // drain to set up and tear down then.
            if !front.queued.is_empty() {
                for bytes in front.queued.drain(..) {
                    self.out.write_bytes(bytes);
                }
            }
            if !matches!(front.answer, Answer::Complete) {
                break;
            }
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            if self.config.report_sent {
                self.events.push_back(ServerEvent::Sent {
                    id: slot.is_request.then_some(RequestId(slot.id)),
                    status: slot.status,
                    bytes: slot.sent,
                    request: slot.log,
                    started: slot.started,
                });
            }
            if slot.switching {
                // RFC 9110 §15.2.2: the new protocol starts right after the 101's empty line.
                self.events.push_back(ServerEvent::Upgraded {
                    id: RequestId(slot.id),
                    rest: self.input.split().freeze(),
                    eof: self.eof,
                });
                self.reading = Reading::Upgraded;
                self.slots.clear();
                self.head_deadline = None;
                self.body_deadline = None;
                self.idle_deadline = None;
                break;
            }
            if !slot.keep_alive {
                // RFC 9112 §9.6: a server that sends "close" MUST NOT process further
                // requests on the connection; it closes once the response is sent.
                self.end_body(None);
                self.reading = Reading::Done;
                self.slots.clear();
                self.input.clear();
                self.close_now(Close::Graceful);
                break;
            }
        }
        self.unsettled = true;
    }

    fn close_now(&mut self, close: Close) {
        if self.close.is_none() {
            self.close = Some(close);
        }
    }

    // ---- reading ----

    /// Whether reading a request body waits for the application to release bytes.
    fn body_blocked(&self) -> bool {
        self.unreleased > self.config.body_buffer
    }

    /// Whether another request may be read now.
    fn can_take_request(&self) -> bool {
        self.slots.len() < self.config.max_pipelined && self.writable
    }

    /// Feeds `data` (after what was held back) to the parsers.
    fn take_input(&mut self, data: &[u8], now: Instant) {
        if self.heads.capacity() < HEAD_STORE {
            // The heads of the last batch are usually all answered and dropped by now: a new
            // batch starts at the front of the buffer (no allocation in its middle).
            let _ = self.heads.try_reclaim(HEAD_STORE);
        }
        if self.input.is_empty() {
            let used = if data.len() <= HEAD_STORE && matches!(self.reading, Reading::Head) {
                // A small read (one request, or a pipelined batch of small ones): copied into
                // the head store whole, once, and each head shares that copy (issue 16: one
                // copy a read instead of one a request).
                let batch = own_head(&mut self.heads, data);
                self.process(&batch, Some(&batch), now)
            } else {
                self.process(data, None, now)
            };
            if used < data.len() && !matches!(self.reading, Reading::Done) {
                self.input.extend_from_slice(&data[used..]);
            }
        } else {
            self.input.extend_from_slice(data);
            self.process_held(now);
        }
    }

    /// Processes held input as far as the application lets it.
    fn process_held(&mut self, now: Instant) {
        if self.input.is_empty() {
            return;
        }
        let input = std::mem::take(&mut self.input);
        let used = self.process(&input, None, now);
        self.input = input;
        self.input.advance(used.min(self.input.len()));
        if matches!(self.reading, Reading::Done) {
            self.input.clear();
        }
    }

    /// Parses requests and body bytes from `buf`; returns how many bytes were used. `batch`:
    /// `buf` is already in the head store, as this [`Bytes`] (heads are shared from it, not
    /// copied).
    fn process(&mut self, buf: &[u8], batch: Option<&Bytes>, now: Instant) -> usize {
        let mut at = 0;
        loop {
            match &mut self.reading {
                Reading::Done => return buf.len(),
                Reading::Upgrade { .. } | Reading::Upgraded => return at,
                Reading::Head => {
                    if at == buf.len() || !self.can_take_request() {
                        return at;
                    }
                    // An incomplete head is parsed again only once a new line has ended
                    // (or the size limit is reached), so a trickled head costs linear time.
                    let rest = &buf[at..];
                    if self.parsed_partial > 0
                        && at == 0
                        && rest.len() < self.config.limits.max_head
                        && !rest[self.parsed_partial.saturating_sub(1)..].contains(&b'\n')
                    {
                        self.parsed_partial = rest.len();
                        return at;
                    }
                    self.idle_deadline = None;
                    let heads = &mut self.heads;
                    match parse_request_with(rest, &self.config.limits, |head| match batch {
                        Some(batch) => share_head(batch, head),
                        None => own_head(heads, head),
                    }) {
                        Ok(Status::Partial) => {
                            self.parsed_partial = rest.len();
                            self.head_deadline
                                .get_or_insert(now + self.config.header_read_timeout);
                            return at;
                        }
                        Ok(Status::Complete(parsed)) => {
                            self.parsed_partial = 0;
                            at += parsed.consumed;
                            self.start_request(parsed, now);
                        }
                        Err(error) => {
                            self.parsed_partial = 0;
                            self.reject(error);
                            return buf.len();
                        }
                    }
                }
                Reading::Body {
                    id,
                    decoder,
                    deliver,
                } => {
                    let (id, deliver) = (*id, *deliver);
                    if deliver && self.unreleased > self.config.body_buffer {
                        return at;
                    }
                    let step = match decoder.decode(&buf[at..]) {
                        Ok(step) => step,
                        Err(error) => {
                            self.reject(error);
                            return buf.len();
                        }
                    };
                    at += step.consumed;
                    if !step.data.is_empty() {
                        if deliver {
                            self.unreleased += step.data.len();
                            self.events.push_back(ServerEvent::Body {
                                id: RequestId(id),
                                data: Bytes::copy_from_slice(step.data),
                            });
                        }
                        self.body_deadline = Some(now + self.config.body_read_timeout);
                    }
                    if step.finished {
                        let trailers = decoder.take_trailers();
                        self.body_deadline = None;
                        if deliver {
                            self.events.push_back(ServerEvent::BodyEnd {
                                id: RequestId(id),
                                trailers,
                            });
                        }
                        let last = self
                            .index(RequestId(id))
                            .is_some_and(|index| !self.slots[index].keep_alive);
                        if last {
                            self.reading = Reading::Done;
                            return buf.len();
                        }
                        self.reading = Reading::Head;
                        continue;
                    }
                    if step.consumed == 0 {
                        return at;
                    }
                }
            }
        }
    }

    /// A request head arrived: give it a slot and start on its body.
    fn start_request(&mut self, parsed: ParsedRequest, now: Instant) {
        self.head_deadline = None;
        let id = self.next_id;
        self.next_id += 1;
        self.served += 1;
        let keep_alive = parsed.keep_alive
            && self.config.keep_alive
            && !self.draining
            && self
                .config
                .max_requests_per_connection
                .is_none_or(|max| self.served < max);
        let has_body = parsed.body != BodyKind::Empty;
        if self.slots.capacity() == 0 {
            // A keep-alive client asks one request at a time: room for one, not the four a
            // first push reserves (a pipelining client grows both queues once, and they keep
            // their capacity); issue 16: memory per keep-alive idle connection.
            self.slots.reserve_exact(1);
            self.events.reserve_exact(1);
        }
        // RFC 9110 §7.8: a request to switch protocols (HTTP/1.1, no body: a body would sit
        // between the head and the new protocol's bytes, which this server does not split).
        let upgrade = !has_body && parsed.head.version == Version::Http11 && parsed.upgrade;
        let expect = if parsed.expect_continue && has_body {
            Expect::Waiting
        } else {
            Expect::No
        };
        self.slots.push_back(Slot {
            id,
            is_request: true,
            version: parsed.head.version,
            is_head: parsed.head.method == Method::Head,
            keep_alive,
            answer: Answer::Pending,
            expect,
            queued: Vec::new(),
            log: self
                .config
                .access_log
                .then(|| Box::new(RequestLog::of(&parsed.head))),
            started: Some(now),
            status: 0,
            sent: 0,
            upgrade,
            switching: false,
        });
        self.events.push_back(ServerEvent::Request {
            id: RequestId(id),
            head: parsed.head,
            has_body,
            expect_continue: expect == Expect::Waiting,
        });
        if upgrade {
            self.reading = Reading::Upgrade { id };
            return;
        }
        if !has_body {
            self.reading = if keep_alive {
                Reading::Head
            } else {
                Reading::Done
            };
            return;
        }
        self.reading = Reading::Body {
            id,
            decoder: BodyDecoder::new(parsed.body, &self.config.limits),
            deliver: true,
        };
        if expect == Expect::No {
            self.body_deadline = Some(now + self.config.body_read_timeout);
        }
    }

    /// Reports the current body's end to the application: `error`, or the connection
    /// stopped reading it (`None`: no event when nobody will read it anyway).
    fn end_body(&mut self, error: Option<H1Error>) {
        if let Reading::Body {
            id, deliver: true, ..
        } = self.reading
        {
            self.events.push_back(ServerEvent::BodyError {
                id: RequestId(id),
                error: error.unwrap_or(H1Error::UnexpectedEof),
            });
        }
        self.body_deadline = None;
    }

    /// Rejects the input: the error's answer (unless the current request was answered
    /// already), then close; nothing more is read.
    fn reject(&mut self, error: H1Error) {
        self.head_deadline = None;
        let current = match self.reading {
            Reading::Body { id, .. } => Some(id),
            _ => None,
        };
        self.end_body(Some(error.clone()));
        self.reading = Reading::Done;
        self.input.clear();
        if error == H1Error::UnexpectedEof {
            return;
        }
        let reply = Response::error(error.status()).header("Connection", "close");
        let index = current.and_then(|id| self.index(RequestId(id)));
        match index {
            Some(index) if matches!(self.slots[index].answer, Answer::Pending) => {
                self.slots[index].keep_alive = false;
                self.slots[index].expect = Expect::No;
                let _ = self.frame(index, &reply, false);
                self.slots[index].answer = Answer::Complete;
            }
            Some(index) => self.slots[index].keep_alive = false,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.slots.push_back(Slot {
                    id,
                    is_request: false,
                    version: Version::Http11,
                    is_head: false,
                    keep_alive: false,
                    answer: Answer::Pending,
                    expect: Expect::No,
                    queued: Vec::new(),
                    log: None,
                    started: None,
                    status: 0,
                    sent: 0,
                    upgrade: false,
                    switching: false,
                });
                let index = self.slots.len() - 1;
                let _ = self.frame(index, &reply, false);
                self.slots[index].answer = Answer::Complete;
            }
        }
        self.flush();
    }

    /// After any input or call: read what was held back if there is room now, apply the
    /// end of input, and close or start the idle deadline when nothing is in flight.
    fn settle(&mut self, now: Instant) {
        self.unsettled = false;
        if self.is_closing() {
            return;
        }
        loop {
            let held = self.input.len();
            let room = match self.reading {
                Reading::Head => self.can_take_request() && self.parsed_partial != held,
                Reading::Body { deliver, .. } => !deliver || !self.body_blocked(),
                Reading::Upgrade { .. } | Reading::Upgraded | Reading::Done => false,
            };
            if held == 0 || !room {
                break;
            }
            self.process_held(now);
            if self.input.len() == held {
                break;
            }
        }
        if let Reading::Body { id, deliver, .. } = self.reading {
            let waiting = self
                .index(RequestId(id))
                .is_some_and(|index| self.slots[index].expect == Expect::Waiting);
            if (deliver && self.body_blocked()) || waiting {
                // The application (not the client) holds the body up.
                self.body_deadline = None;
            } else if self.body_deadline.is_none() {
                self.body_deadline = Some(now + self.config.body_read_timeout);
            }
        }
        if self.eof {
            self.apply_eof();
        }
        if !self.slots.is_empty() || !self.input.is_empty() {
            return;
        }
        match self.reading {
            Reading::Done => self.close_now(Close::Graceful),
            Reading::Head if self.eof => self.close_now(Close::Graceful),
            Reading::Head
                if self.draining && self.served > 0 && self.config.drain_idle_timeout.is_zero() =>
            {
                self.close_now(Close::Graceful);
            }
            // Draining, an idle keep-alive connection stays for `drain_idle_timeout`: its
            // client may have sent a request that crosses the close. One whose first request
            // has not come yet waits for it (its client opened it to send one; it may have
            // been accepted during the shutdown, from a queue a new process now serves: a
            // takeover), bounded by the head timeout. Either gets `Connection: close`.
            Reading::Head => {
                if self.head_deadline.is_none() && self.idle_deadline.is_none() {
                    let idle = if self.draining {
                        self.config.drain_idle_timeout
                    } else {
                        self.config.keep_alive_timeout
                    };
                    self.idle_deadline = Some(now + idle);
                }
            }
            Reading::Body { .. } | Reading::Upgrade { .. } | Reading::Upgraded => {}
        }
    }

    /// The client finished sending: once held input is used up (complete pipelined
    /// requests are still answered), nothing more can arrive.
    fn apply_eof(&mut self) {
        match &mut self.reading {
            Reading::Head => {
                // Held input that parsed as an incomplete head cannot complete any more.
                let stuck = self.input.is_empty() || self.parsed_partial == self.input.len();
                if stuck {
                    // Nothing, or an incomplete head: no request will come.
                    self.input.clear();
                    self.head_deadline = None;
                    self.reading = Reading::Done;
                }
            }
            Reading::Body { decoder, .. } if self.input.is_empty() => {
                match decoder.finish_at_eof() {
                    // Requests are never close-delimited; kept for symmetry with the decoder.
                    Ok(()) => {}
                    Err(error) => self.reject(error),
                }
                if !matches!(self.reading, Reading::Done) {
                    self.end_body(None);
                    self.reading = Reading::Done;
                }
            }
            Reading::Body { .. } | Reading::Upgrade { .. } | Reading::Upgraded | Reading::Done => {}
        }
    }
}

impl Machine for ServerConn {
    type Event = ServerEvent;

    fn handle_connected(&mut self, now: Instant) {
        self.head_deadline = Some(now + self.config.header_read_timeout);
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.is_closing() || matches!(self.reading, Reading::Done) {
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
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due = |deadline: Option<Instant>| deadline.is_some_and(|at| at <= now);
        if due(self.head_deadline) {
            self.head_deadline = None;
            if self.slots.is_empty() && self.input.is_empty() {
                // Nothing was sent at all: close quietly.
                self.reading = Reading::Done;
            } else {
                self.reject(H1Error::HeadTimeout);
            }
        }
        if due(self.body_deadline) {
            self.body_deadline = None;
            self.reject(H1Error::BodyTimeout);
        }
        if due(self.idle_deadline) {
            self.idle_deadline = None;
            if self.slots.is_empty()
                && self.input.is_empty()
                && matches!(self.reading, Reading::Head)
            {
                self.reading = Reading::Done;
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
        // An idle connection's wait shortens to the drain's.
        if let Some(at) = self.idle_deadline {
            self.idle_deadline = Some(at.min(now + self.config.drain_idle_timeout));
        }
        // Requests read before the shutdown and not answered yet get their answer with
        // `Connection: close`, so the client does not send another request on a connection
        // that closes after it. (Answers already framed keep theirs; the connection still
        // closes after them.)
        for slot in &mut self.slots {
            if matches!(slot.answer, Answer::Pending) {
                slot.keep_alive = false;
            }
        }
        self.settle(now);
    }

    fn handle_lost(&mut self, _now: Instant) {
        self.end_body(None);
        self.lost = true;
        self.reading = Reading::Done;
        self.slots.clear();
        self.input.clear();
        self.out.clear();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.unsettled {
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
        [self.head_deadline, self.body_deadline, self.idle_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    fn wants_input(&self) -> bool {
        if self.is_closing() {
            return false;
        }
        match self.reading {
            Reading::Head => self.can_take_request(),
            Reading::Body { deliver, .. } => !deliver || !self.body_blocked(),
            Reading::Upgrade { .. } | Reading::Upgraded | Reading::Done => false,
        }
    }
}

#[cfg(test)]
mod tests;
