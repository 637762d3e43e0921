//! One HTTP/1.1 server connection: parsing requests off the transport, dispatching them
//! to the handler, and writing responses back in request order.
//!
//! Owns: the connection's [`ConnState`] (shared with its [`Responder`]s and
//! [`BodyWriter`](super::BodyWriter)s through an `Rc<RefCell<..>>`), the pipeline of
//! response slots, the timers (head read, body read, keep-alive idle), and backpressure:
//! reading pauses when `max_pipelined` requests are unanswered, when the transport's write
//! buffer is over its high watermark, or when a streamed request body is not consumed.
//!
//! Borrowing rule: the state is never borrowed while the handler runs. [`drive`] parses
//! (borrowed) into a list of requests, releases the borrow, calls the handler for each,
//! then borrows again to flush; answers given later come back through a reactor job that
//! runs [`drive`] again.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::task::Waker;

use bytes::{Buf, Bytes, BytesMut};
use ringwork::logging::escape;
use ringwork::{ConnId, Context, LocalHandle, LostReason, Protocol, TimerId};

use super::Shared;
use super::message::{BodyChannel, BodyError, Request, RequestBody, Response};
use super::respond::{self, FrameInput, Responder};
use crate::http::proto::{
    BodyDecoder, BodyKind, H1Error, Method, ParsedRequest, Status, Version, parse_request,
};

/// How a streamed response body is delimited.
#[derive(Debug)]
pub(crate) enum Framing {
    /// No body follows (HEAD, 204, 304) or a whole response.
    None,
    /// Content-Length: bytes still to send.
    Sized(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes (HTTP/1.0 client).
    CloseDelimited,
}

/// Where a request's answer stands.
#[derive(Debug)]
pub(crate) enum SlotState {
    /// Not answered yet.
    Pending,
    /// Head sent, body streaming.
    Streaming(Framing),
    /// Answered in full.
    Complete,
}

/// One request's place in the response order.
struct Slot {
    seq: u64,
    version: Version,
    is_head: bool,
    keep_alive: bool,
    state: SlotState,
    /// Bytes waiting for the earlier responses to go out.
    out: VecDeque<Bytes>,
    /// For the access log: method, target, status, body bytes.
    log: Option<(Method, Bytes)>,
    status: u16,
    sent: u64,
}

/// What the connection is reading.
enum Reading {
    /// A request head (or nothing yet).
    Head,
    /// A request body.
    Body {
        decoder: BodyDecoder,
        sink: BodySink,
        seq: u64,
    },
    /// Nothing more: the connection closes once the responses are out.
    Done,
}

/// Where body bytes go.
enum BodySink {
    /// Collected whole; the handler is called when the body ends.
    Buffer {
        request: Box<Request>,
        responder: Responder,
        body: BytesMut,
    },
    /// Handed to the handler's [`RequestBody`] as they come.
    Stream(StreamSink),
}

/// The connection's end of a streamed body. Dropped before the body ended (the request
/// was rejected or timed out, the connection closes after an early answer), it ends the
/// handler's [`RequestBody`] with an error, so a handler waiting on it does not wait
/// forever (holding its Responder and the connection's state).
struct StreamSink(Rc<RefCell<BodyChannel>>);

impl std::ops::Deref for StreamSink {
    type Target = RefCell<BodyChannel>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for StreamSink {
    fn drop(&mut self) {
        let Ok(mut channel) = self.0.try_borrow_mut() else {
            return;
        };
        if !channel.finished && channel.error.is_none() {
            channel.error = Some(BodyError::Closed);
        }
        if let Some(waker) = channel.waker.take() {
            waker.wake();
        }
    }
}

/// The state of one connection, shared with its responders.
pub(crate) struct ConnState {
    shared: Rc<Shared>,
    conn: ConnId,
    handle: LocalHandle,
    peer: Option<SocketAddr>,
    /// The connection runs TLS (the request's scheme is https).
    tls: bool,
    /// Unparsed input.
    input: BytesMut,
    /// `input` length at the last incomplete head parse (skip re-parsing until a new LF).
    parsed_partial: usize,
    reading: Reading,
    slots: VecDeque<Slot>,
    next_seq: u64,
    served: u64,
    in_callback: bool,
    flush_scheduled: bool,
    pub(crate) lost: bool,
    eof: bool,
    draining: bool,
    write_paused: bool,
    read_paused: bool,
    pub(crate) write_wakers: Vec<Waker>,
    head_timer: Option<TimerId>,
    body_timer: Option<TimerId>,
    idle_timer: Option<TimerId>,
}

/// How a [`RequestBody`] consumer restarts a connection that paused for it.
pub(crate) struct Resume {
    conn: ConnId,
    handle: LocalHandle,
    state: Weak<RefCell<ConnState>>,
}

impl Resume {
    /// Resumes reading from a reactor job, and drives the connection: the pause may have
    /// left body bytes (or whole pipelined requests) in its input buffer, which no new
    /// data from the socket would ever come to process.
    pub(crate) fn schedule(&self) {
        let conn = self.conn;
        let state = self.state.clone();
        self.handle.run(move |reactor| {
            reactor.with_conn(conn, |ctx| {
                ctx.resume_reading();
                if let Some(state) = state.upgrade() {
                    drive(&state, ctx, None);
                }
            });
        });
    }
}

/// The [`Protocol`] the server's factory builds: a thin shell over the shared state.
pub(crate) struct ServerConnection {
    state: Option<Rc<RefCell<ConnState>>>,
    shared: Rc<Shared>,
}

impl ServerConnection {
    pub(crate) fn new(shared: Rc<Shared>) -> Self {
        Self {
            state: None,
            shared,
        }
    }
}

impl Protocol for ServerConnection {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let peer = ctx.peer_addr().ok().and_then(|a| a.as_socket());
        let tls = ctx.tls().is_some();
        let head_timer = Some(ctx.call_later(self.shared.config.header_read_timeout));
        let state = ConnState {
            shared: Rc::clone(&self.shared),
            conn: ctx.id(),
            handle: ctx.handle(),
            peer,
            tls,
            input: BytesMut::new(),
            parsed_partial: 0,
            reading: Reading::Head,
            slots: VecDeque::new(),
            next_seq: 0,
            served: 0,
            in_callback: false,
            flush_scheduled: false,
            lost: false,
            eof: false,
            draining: false,
            write_paused: false,
            read_paused: false,
            write_wakers: Vec::new(),
            head_timer,
            body_timer: None,
            idle_timer: None,
        };
        self.state = Some(Rc::new(RefCell::new(state)));
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(state) = &self.state {
            drive(state, ctx, Some(data));
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        let Some(state) = &self.state else {
            ctx.close();
            return;
        };
        {
            let mut s = state.borrow_mut();
            s.eof = true;
            match std::mem::replace(&mut s.reading, Reading::Done) {
                Reading::Body {
                    mut decoder, sink, ..
                } => {
                    if decoder.finish_at_eof().is_err()
                        && let BodySink::Stream(channel) = sink
                    {
                        let mut channel = channel.borrow_mut();
                        channel.error = Some(BodyError::Closed);
                        if let Some(waker) = channel.waker.take() {
                            waker.wake();
                        }
                    }
                }
                Reading::Head | Reading::Done => {}
            }
            s.input.clear();
        }
        drive(state, ctx, None);
    }

    fn pause_writing(&mut self, _ctx: &mut Context<'_>) {
        if let Some(state) = &self.state {
            state.borrow_mut().write_paused = true;
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(state) = &self.state {
            {
                let mut s = state.borrow_mut();
                s.write_paused = false;
                s.wake_writers();
            }
            drive(state, ctx, None);
        }
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        if let Some(state) = &self.state {
            state.borrow_mut().draining = true;
            drive(state, ctx, None);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some(state) = &self.state {
            {
                let mut s = state.borrow_mut();
                if s.head_timer == Some(timer) {
                    s.head_timer = None;
                    if s.slots.is_empty() && s.input.is_empty() {
                        // Nothing was sent at all: close quietly.
                        s.reading = Reading::Done;
                    } else {
                        s.reject(ctx, H1Error::HeadTimeout);
                    }
                } else if s.body_timer == Some(timer) {
                    s.body_timer = None;
                    s.reject(ctx, H1Error::BodyTimeout);
                } else if s.idle_timer == Some(timer) {
                    s.idle_timer = None;
                    s.reading = Reading::Done;
                }
            }
            drive(state, ctx, None);
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, _reason: LostReason) {
        let Some(state) = self.state.take() else {
            return;
        };
        let mut s = state.borrow_mut();
        s.lost = true;
        s.wake_writers();
        s.slots.clear();
        let reading = std::mem::replace(&mut s.reading, Reading::Done);
        drop(s);
        // Dropped outside the borrow: a buffered request's Responder is in there.
        if let Reading::Body { sink, .. } = reading {
            match sink {
                BodySink::Stream(channel) => {
                    let mut channel = channel.borrow_mut();
                    if !channel.finished {
                        channel.error = Some(BodyError::Closed);
                    }
                    if let Some(waker) = channel.waker.take() {
                        waker.wake();
                    }
                }
                BodySink::Buffer { responder, .. } => drop(responder),
            }
        }
    }
}

/// Parses what can be parsed, runs the handler for each complete request, flushes, and
/// repeats while flushing made room for more.
pub(crate) fn drive(state: &Rc<RefCell<ConnState>>, ctx: &mut Context<'_>, data: Option<&[u8]>) {
    let shared = Rc::clone(&state.borrow().shared);
    let mut data = data;
    let mut ready = Vec::new();
    loop {
        {
            let mut s = state.borrow_mut();
            s.in_callback = true;
            s.flush_scheduled = false;
            if !s.lost {
                s.parse(state, ctx, data.take(), &mut ready);
            }
        }
        let dispatched = !ready.is_empty();
        for (request, responder) in ready.drain(..) {
            shared.handler.handle(request, responder);
        }
        let mut s = state.borrow_mut();
        let freed = s.flush(ctx);
        s.in_callback = false;
        if !((freed || dispatched) && s.can_parse_more()) {
            s.settle(ctx);
            return;
        }
    }
}

impl ConnState {
    /// Whether buffered input could yield another request now.
    fn can_parse_more(&self) -> bool {
        !self.lost
            && !self.input.is_empty()
            && matches!(self.reading, Reading::Head)
            && self.parsed_partial != self.input.len()
    }

    /// Feeds new `data` (and what was held back) to the parsers.
    fn parse(
        &mut self,
        state: &Rc<RefCell<ConnState>>,
        ctx: &mut Context<'_>,
        data: Option<&[u8]>,
        ready: &mut Vec<(Request, Responder)>,
    ) {
        match data {
            Some(data) if self.input.is_empty() => {
                let used = self.process(state, ctx, data, ready);
                if used < data.len() && !matches!(self.reading, Reading::Done) {
                    self.input.extend_from_slice(&data[used..]);
                }
            }
            _ => {
                if let Some(data) = data {
                    self.input.extend_from_slice(data);
                }
                if self.input.is_empty() {
                    return;
                }
                let input = std::mem::take(&mut self.input);
                let used = self.process(state, ctx, &input, ready);
                self.input = input;
                self.input.advance(used.min(self.input.len()));
                if matches!(self.reading, Reading::Done) {
                    self.input.clear();
                }
            }
        }
    }

    /// Parses requests and body bytes from `buf`; returns how many bytes were used.
    fn process(
        &mut self,
        state: &Rc<RefCell<ConnState>>,
        ctx: &mut Context<'_>,
        buf: &[u8],
        ready: &mut Vec<(Request, Responder)>,
    ) -> usize {
        let config = &Rc::clone(&self.shared).config;
        let mut at = 0;
        loop {
            match &mut self.reading {
                Reading::Done => return buf.len(),
                Reading::Head => {
                    if at == buf.len() {
                        return at;
                    }
                    if self.slots.len() >= config.max_pipelined || self.write_paused {
                        if !self.read_paused {
                            self.read_paused = true;
                            ctx.pause_reading();
                        }
                        return at;
                    }
                    // An incomplete head is parsed again only once a new line has ended
                    // (or the size limit is reached), so a trickled head costs linear time.
                    let rest = &buf[at..];
                    if self.parsed_partial > 0
                        && at == 0
                        && rest.len() < config.limits.max_head
                        && !rest[self.parsed_partial.saturating_sub(1)..].contains(&b'\n')
                    {
                        self.parsed_partial = rest.len();
                        return at;
                    }
                    if let Some(timer) = self.idle_timer.take() {
                        ctx.cancel_timer(timer);
                    }
                    match parse_request(rest, &config.limits) {
                        Ok(Status::Partial) => {
                            self.parsed_partial = rest.len();
                            if self.head_timer.is_none() {
                                self.head_timer = Some(ctx.call_later(config.header_read_timeout));
                            }
                            return at;
                        }
                        Ok(Status::Complete(parsed)) => {
                            self.parsed_partial = 0;
                            at += parsed.consumed;
                            self.start_request(state, ctx, parsed, ready);
                        }
                        Err(error) => {
                            self.parsed_partial = 0;
                            self.reject(ctx, error);
                            return buf.len();
                        }
                    }
                }
                Reading::Body { decoder, sink, seq } => {
                    let seq = *seq;
                    let step = match decoder.decode(&buf[at..]) {
                        Ok(step) => step,
                        Err(error) => {
                            if let BodySink::Stream(channel) = sink {
                                let mut channel = channel.borrow_mut();
                                channel.error = Some(BodyError::Protocol(error.clone()));
                                if let Some(waker) = channel.waker.take() {
                                    waker.wake();
                                }
                            }
                            self.reject(ctx, error);
                            return buf.len();
                        }
                    };
                    at += step.consumed;
                    let mut pause = false;
                    if !step.data.is_empty() {
                        match sink {
                            BodySink::Buffer { body, .. } => body.extend_from_slice(step.data),
                            BodySink::Stream(channel) => {
                                let mut channel = channel.borrow_mut();
                                if !channel.dropped {
                                    channel.chunks.push_back(Bytes::copy_from_slice(step.data));
                                    channel.buffered += step.data.len();
                                    if channel.buffered > config.body_buffer && !channel.paused {
                                        channel.paused = true;
                                        pause = true;
                                    }
                                    if let Some(waker) = channel.waker.take() {
                                        waker.wake();
                                    }
                                }
                            }
                        }
                        if let Some(timer) = self.body_timer.take() {
                            ctx.cancel_timer(timer);
                        }
                        if !step.finished {
                            self.body_timer = Some(ctx.call_later(config.body_read_timeout));
                        }
                    }
                    if pause {
                        ctx.pause_reading();
                    }
                    if step.finished {
                        if let Some(timer) = self.body_timer.take() {
                            ctx.cancel_timer(timer);
                        }
                        let trailers = decoder.take_trailers();
                        let last = self.slot(seq).is_some_and(|slot| !slot.keep_alive);
                        let next = if last { Reading::Done } else { Reading::Head };
                        match std::mem::replace(&mut self.reading, next) {
                            Reading::Body {
                                sink:
                                    BodySink::Buffer {
                                        mut request,
                                        responder,
                                        body,
                                    },
                                ..
                            } => {
                                request.body = body.freeze();
                                ready.push((*request, responder));
                            }
                            Reading::Body {
                                sink: BodySink::Stream(channel),
                                ..
                            } => {
                                let mut channel = channel.borrow_mut();
                                channel.finished = true;
                                channel.trailers = trailers;
                                if let Some(waker) = channel.waker.take() {
                                    waker.wake();
                                }
                            }
                            _ => {}
                        }
                        if last {
                            return buf.len();
                        }
                        continue;
                    }
                    if step.consumed == 0 || pause {
                        return at;
                    }
                }
            }
        }
    }

    /// A request head arrived: give it a slot and start on its body.
    fn start_request(
        &mut self,
        state: &Rc<RefCell<ConnState>>,
        ctx: &mut Context<'_>,
        parsed: ParsedRequest,
        ready: &mut Vec<(Request, Responder)>,
    ) {
        let shared = Rc::clone(&self.shared);
        let config = &shared.config;
        if let Some(timer) = self.head_timer.take() {
            ctx.cancel_timer(timer);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.served += 1;
        let keep_alive = parsed.keep_alive
            && config.keep_alive
            && !self.draining
            && config
                .max_requests_per_connection
                .is_none_or(|max| self.served < max);
        let mut slot = Slot {
            seq,
            version: parsed.head.version,
            is_head: parsed.head.method == Method::Head,
            keep_alive,
            state: SlotState::Pending,
            out: VecDeque::new(),
            log: config
                .access_log
                .then(|| (parsed.head.method.clone(), parsed.head.target.clone())),
            status: 0,
            sent: 0,
        };
        if parsed.expect_continue {
            // RFC 9110 §10.1.1: a server that will read the body sends 100 (Continue).
            slot.out
                .push_back(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
        }
        self.slots.push_back(slot);
        let responder = Responder {
            state: Rc::clone(state),
            seq,
            done: false,
        };
        let mut request = Request {
            head: parsed.head,
            body: Bytes::new(),
            stream: None,
            peer: self.peer,
            tls: self.tls,
            conn: self.conn,
            handle: self.handle.clone(),
        };
        let after = if keep_alive {
            Reading::Head
        } else {
            Reading::Done
        };
        if parsed.body == BodyKind::Empty {
            ready.push((request, responder));
            self.reading = after;
            return;
        }
        let decoder = BodyDecoder::new(parsed.body, &config.limits);
        self.body_timer = Some(ctx.call_later(config.body_read_timeout));
        let sink = if shared.handler.stream_body(&request.head) {
            let channel = Rc::new(RefCell::new(BodyChannel {
                resume: Some(Resume {
                    conn: self.conn,
                    handle: self.handle.clone(),
                    state: Rc::downgrade(state),
                }),
                low_water: config.body_buffer / 2,
                ..BodyChannel::default()
            }));
            request.stream = Some(RequestBody {
                channel: Rc::clone(&channel),
            });
            ready.push((request, responder));
            BodySink::Stream(StreamSink(channel))
        } else {
            let capacity = match parsed.body {
                BodyKind::Length(n) => n.min(64 * 1024) as usize,
                _ => 0,
            };
            BodySink::Buffer {
                request: Box::new(request),
                responder,
                body: BytesMut::with_capacity(capacity),
            }
        };
        self.reading = Reading::Body { decoder, sink, seq };
    }

    /// Rejects the input: the error's reply (unless the current request was already
    /// answered), then close; nothing more is read.
    fn reject(&mut self, ctx: &mut Context<'_>, error: H1Error) {
        tracing::debug!(conn = %self.conn, %error, "rejecting request");
        for timer in [self.head_timer.take(), self.body_timer.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_timer(timer);
        }
        let current = match std::mem::replace(&mut self.reading, Reading::Done) {
            Reading::Body { seq, sink, .. } => {
                match sink {
                    BodySink::Buffer { mut responder, .. } => {
                        // Answered below, as the rejection: its drop must not send a 500.
                        responder.done = true;
                    }
                    BodySink::Stream(channel) => {
                        // The handler's stream ends with the reason (the sink's drop wakes
                        // it).
                        let mut channel = channel.borrow_mut();
                        if !channel.finished && channel.error.is_none() {
                            channel.error = Some(BodyError::Protocol(error.clone()));
                        }
                    }
                }
                Some(seq)
            }
            _ => None,
        };
        if error == H1Error::UnexpectedEof {
            return;
        }
        let reply = Response::error(error.status()).header("Connection", "close");
        match current.and_then(|seq| self.slot_mut(seq)) {
            Some(slot) if matches!(slot.state, SlotState::Pending) => {
                slot.keep_alive = false;
                let seq = slot.seq;
                self.complete(seq, reply);
            }
            Some(slot) => slot.keep_alive = false,
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.slots.push_back(Slot {
                    seq,
                    version: Version::Http11,
                    is_head: false,
                    keep_alive: false,
                    state: SlotState::Pending,
                    out: VecDeque::new(),
                    log: None,
                    status: 0,
                    sent: 0,
                });
                self.complete(seq, reply);
            }
        }
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let front = self.slots.front()?.seq;
        self.slots.get(seq.checked_sub(front)? as usize)
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let front = self.slots.front()?.seq;
        self.slots.get_mut(seq.checked_sub(front)? as usize)
    }

    fn frame_input(
        &self,
        slot_version: Version,
        is_head: bool,
        keep_alive: bool,
    ) -> FrameInput<'_> {
        FrameInput {
            version: slot_version,
            is_head,
            keep_alive,
            date: self.shared.date.now(),
            server_name: self.shared.config.server_name.as_deref(),
        }
    }

    /// Frames a whole response into its slot.
    fn complete(&mut self, seq: u64, response: Response) {
        let Some(slot) = self.slot(seq) else {
            return;
        };
        if !matches!(slot.state, SlotState::Pending) {
            return;
        }
        let input = self.frame_input(slot.version, slot.is_head, slot.keep_alive);
        let framed = respond::frame(&input, response, false);
        let Some(slot) = self.slot_mut(seq) else {
            return;
        };
        slot.keep_alive = framed.keep_alive;
        slot.status = framed.status;
        slot.out.push_back(framed.bytes);
        slot.state = SlotState::Complete;
    }

    /// [`Responder::send`].
    pub(crate) fn respond(state: &Rc<RefCell<ConnState>>, seq: u64, response: Response) {
        let Ok(mut s) = state.try_borrow_mut() else {
            // Only reachable if a responder is dropped while the state is borrowed, which
            // the connection avoids; answer from a job instead of failing.
            let again = Rc::clone(state);
            let handle = state.borrow().handle.clone();
            handle.run(move |_| ConnState::respond(&again, seq, response));
            return;
        };
        if s.lost {
            return;
        }
        s.complete(seq, response);
        s.schedule_flush(state);
    }

    /// [`Responder::stream`].
    pub(crate) fn start_stream(state: &Rc<RefCell<ConnState>>, seq: u64, response: Response) {
        let mut s = state.borrow_mut();
        if s.lost {
            return;
        }
        let Some(slot) = s.slot(seq) else {
            return;
        };
        if !matches!(slot.state, SlotState::Pending) {
            return;
        }
        let input = s.frame_input(slot.version, slot.is_head, slot.keep_alive);
        let framed = respond::frame(&input, response, true);
        if let Some(slot) = s.slot_mut(seq) {
            slot.keep_alive = framed.keep_alive;
            slot.status = framed.status;
            slot.out.push_back(framed.bytes);
            slot.state = SlotState::Streaming(framed.framing);
        }
        s.schedule_flush(state);
    }

    /// [`BodyWriter::write`](super::BodyWriter::write).
    pub(crate) fn write_body(state: &Rc<RefCell<ConnState>>, seq: u64, data: Bytes) {
        let mut s = state.borrow_mut();
        if s.lost {
            return;
        }
        let Some(slot) = s.slot_mut(seq) else {
            return;
        };
        let SlotState::Streaming(framing) = &mut slot.state else {
            return;
        };
        let dropped = respond::frame_body_piece(framing, data, &mut slot.out);
        if dropped > 0 && matches!(framing, Framing::Sized(_)) {
            tracing::error!(
                dropped,
                "handler wrote past its Content-Length; closing after it"
            );
            slot.keep_alive = false;
        }
        s.schedule_flush(state);
    }

    /// [`BodyWriter::finish`](super::BodyWriter::finish); `trailers` is `None` when the
    /// writer was dropped unfinished.
    pub(crate) fn finish_body(
        state: &Rc<RefCell<ConnState>>,
        seq: u64,
        trailers: Option<crate::http::proto::Headers>,
    ) {
        let Ok(mut s) = state.try_borrow_mut() else {
            return;
        };
        if s.lost {
            return;
        }
        let Some(slot) = s.slot_mut(seq) else {
            return;
        };
        let SlotState::Streaming(framing) = &slot.state else {
            return;
        };
        let complete = respond::frame_body_end(framing, trailers.as_ref(), &mut slot.out);
        if !complete || matches!(framing, Framing::CloseDelimited) {
            if !complete {
                tracing::warn!(conn = %s.conn, "response body ended early; closing the connection");
            }
            if let Some(slot) = s.slot_mut(seq) {
                slot.keep_alive = false;
            }
        }
        if let Some(slot) = s.slot_mut(seq) {
            slot.state = SlotState::Complete;
        }
        s.schedule_flush(state);
    }

    /// Whether the writer of response `seq` may write without growing the buffer: its
    /// response is the oldest, what it wrote before has been handed to the transport (the
    /// slot's queue is empty; otherwise a writer that never yields would queue its whole
    /// body there, since the flush runs only after it yields), and the transport is under
    /// its high watermark.
    pub(crate) fn writer_ready(&self, seq: u64) -> bool {
        // Bytes written from outside a callback wait in `out` for the scheduled flush; a
        // writer may run ahead of it by this much (so a proxy relaying a small body is not
        // told to wait for a flush that is already on its way).
        const UNFLUSHED_SLACK: usize = 64 * 1024;
        !self.lost
            && !self.write_paused
            && self.slots.front().is_some_and(|s| {
                s.seq == seq && s.out.iter().map(Bytes::len).sum::<usize>() < UNFLUSHED_SLACK
            })
    }

    fn wake_writers(&mut self) {
        for waker in self.write_wakers.drain(..) {
            waker.wake();
        }
    }

    /// Arranges for [`drive`] to run soon when an answer came from outside a callback.
    fn schedule_flush(&mut self, state: &Rc<RefCell<ConnState>>) {
        if self.in_callback || self.flush_scheduled {
            return;
        }
        self.flush_scheduled = true;
        let state = Rc::clone(state);
        let conn = self.conn;
        self.handle.run(move |reactor| {
            reactor.with_conn(conn, |ctx| drive(&state, ctx, None));
        });
    }

    /// Writes what can go out in order; whether a slot was freed.
    fn flush(&mut self, ctx: &mut Context<'_>) -> bool {
        let mut freed = false;
        let mut wrote = false;
        if self.lost {
            return false;
        }
        while let Some(front) = self.slots.front_mut() {
            while let Some(bytes) = front.out.pop_front() {
                front.sent += bytes.len() as u64;
                ctx.write_bytes(bytes);
                wrote = true;
            }
            if !front.state.is_complete() {
                break;
            }
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            freed = true;
            if let Some((method, target)) = &slot.log {
                tracing::info!(
                    target: "ringwork::http::access",
                    peer = ?self.peer,
                    method = %method,
                    // Peer bytes (httparse lets 0x80-0xFF through): escaped, not cut (the
                    // head limit bounds them).
                    target = %escape(target).limit(usize::MAX),
                    status = slot.status,
                    bytes = slot.sent,
                );
            }
            if !slot.keep_alive {
                // RFC 9112 §9.6: a server that sends "close" MUST NOT process further
                // requests on the connection; it closes once the response is sent.
                self.reading = Reading::Done;
                self.slots.clear();
                self.input.clear();
                ctx.close();
                break;
            }
        }
        // A writer waits for its queued bytes to reach the transport (`writer_ready`).
        if freed || wrote {
            self.wake_writers();
        }
        freed
    }

    /// After a drive: resume reading if there is room again; close or arm the idle timer
    /// when nothing is in flight.
    fn settle(&mut self, ctx: &mut Context<'_>) {
        if self.lost {
            return;
        }
        let config = &Rc::clone(&self.shared).config;
        if self.read_paused
            && self.slots.len() < config.max_pipelined
            && !self.write_paused
            && matches!(self.reading, Reading::Head)
        {
            self.read_paused = false;
            ctx.resume_reading();
        }
        if !self.slots.is_empty() || !self.input.is_empty() {
            return;
        }
        match self.reading {
            Reading::Done => ctx.close(),
            Reading::Head if self.eof || self.draining => ctx.close(),
            Reading::Head => {
                if self.idle_timer.is_none() && self.head_timer.is_none() {
                    self.idle_timer = Some(ctx.call_later(config.keep_alive_timeout));
                }
            }
            Reading::Body { .. } => {}
        }
    }
}
