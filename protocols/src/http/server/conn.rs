//! The HTTP server's application on the kit adapter: [`ServerConn`] (HTTP/1.1) and
//! [`H2ServerConn`] (HTTP/2) events become [`Handler`](super::Handler) calls, and
//! [`Responder`] / [`BodyWriter`] / [`RequestBody`] calls become machine calls. Both
//! machines have the same events and calls ([`ServerMachine`]); what differs is which
//! writers may write (one answer at a time in request order, or every stream whose window
//! is open).
//!
//! Owns: [`ServerApp`] (the per-connection glue), the [`Command`]s that responders, body
//! writers and body streams post through the connection's mailbox, the [`WriteStatus`] the
//! connection publishes to body writers, and the collection of buffered request bodies.
//! Contract: a request without a body, or whose handler streams its body
//! ([`Handler::stream_body`](super::Handler::stream_body)), reaches the handler at once; a
//! buffered body is asked for (`100 Continue` when awaited) and collected, bounded by
//! `limits.max_body`, before the handler is called. A whole answer given inside the handler
//! call, with nothing posted before it still waiting, is sent as the call returns
//! ([`DirectAnswer`](super::respond::DirectAnswer)); every other answer goes through the
//! mailbox: one given inside a callback is applied in the same drive, one given later wakes
//! the connection, in the same reactor turn. Logging (access log, handler mistakes) happens
//! here; the machine only reports.
//! Does not: parse, frame, order answers or keep time (the machine does).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use ringwork::logging::escape;
use ringwork::{Context, LostReason, Protocol, TimerId};

use super::Shared;
use super::access_log::{Entry, UpstreamNote};
use super::message::{BodyChannel, BodyError, Request, RequestBody};
use super::respond::Responder;
use crate::http::proto::h2::H2ServerConn;
use crate::http::proto::server::{
    RequestId, RequestLog, Response, SendError, ServerConn, ServerEvent,
};
use crate::http::proto::{H1Error, Headers};
use crate::kit::Machine;
use crate::kit::adapter::{Application, Mailbox, MailboxSender, Upgrade};
use crate::kit::nested::{Carrier, StreamProtocol};

/// What the glue needs of a server connection machine: the HTTP/1.1 and HTTP/2 machines'
/// shared calls, and what each publishes to body writers.
pub(crate) trait ServerMachine: Machine<Event = ServerEvent> + 'static {
    fn set_date(&mut self, date: [u8; 29]);
    fn send_response(&mut self, id: RequestId, response: Response) -> Result<(), SendError>;
    /// [`ServerMachine::send_response`] of the answer in `slot`: a machine that frames it
    /// where it is need not move it out (`slot` may be left as it was; its owner drops it).
    fn send_response_in(
        &mut self,
        id: RequestId,
        slot: &mut Option<Response>,
    ) -> Result<(), SendError>;
    fn send_head(&mut self, id: RequestId, response: Response) -> Result<(), SendError>;
    fn send_body(&mut self, id: RequestId, data: Bytes) -> Result<(), SendError>;
    fn finish(&mut self, id: RequestId, trailers: Option<Headers>) -> Result<(), SendError>;
    fn continue_body(&mut self, id: RequestId);
    fn release_body(&mut self, id: RequestId, n: usize);
    fn discard_body(&mut self, id: RequestId);
    /// Updates what body writers may do.
    fn publish(&self, status: &mut WriteStatus);
    /// Whether a `101 Switching Protocols` can hand the connection to another protocol
    /// (HTTP/1.1; HTTP/2 has no 101, RFC 9113 §8.6).
    const SWITCHES_PROTOCOLS: bool;
    /// Whether a stream can carry another protocol (HTTP/2's extended CONNECT, RFC 8441).
    const CARRIES_STREAMS: bool;
    /// Whether stream `id` exists and can take more body now.
    fn stream_writable(&self, id: RequestId) -> bool;
    /// Whether stream `id` is still open (HTTP/2; HTTP/1.1 carries no streams).
    fn has_stream(&self, id: RequestId) -> bool;
    /// Whether a graceful shutdown began.
    fn is_draining(&self) -> bool;
    /// Resets stream `id` (HTTP/2 CANCEL).
    fn cancel_stream(&mut self, id: RequestId);
    /// Whether `n` body bytes of `id` may go out outside the machine now (HTTP/1.1; see
    /// `ServerConn::can_send_body_elsewhere`). HTTP/2 frames every byte: never.
    fn can_send_body_elsewhere(&self, _id: RequestId, _n: u64) -> bool {
        false
    }
    /// `n` body bytes of `id` went out outside the machine.
    fn sent_body_elsewhere(&mut self, _id: RequestId, _n: u64) {}
}

macro_rules! forward_calls {
    () => {
        fn set_date(&mut self, date: [u8; 29]) {
            Self::set_date(self, date);
        }
        fn send_response(&mut self, id: RequestId, response: Response) -> Result<(), SendError> {
            Self::send_response(self, id, response)
        }
        fn send_head(&mut self, id: RequestId, response: Response) -> Result<(), SendError> {
            Self::send_head(self, id, response)
        }
        fn send_body(&mut self, id: RequestId, data: Bytes) -> Result<(), SendError> {
            Self::send_body(self, id, data)
        }
        fn finish(&mut self, id: RequestId, trailers: Option<Headers>) -> Result<(), SendError> {
            Self::finish(self, id, trailers)
        }
        fn continue_body(&mut self, id: RequestId) {
            Self::continue_body(self, id);
        }
        fn release_body(&mut self, id: RequestId, n: usize) {
            Self::release_body(self, id, n);
        }
        fn discard_body(&mut self, id: RequestId) {
            Self::discard_body(self, id);
        }
    };
}

impl ServerMachine for ServerConn {
    forward_calls!();
    fn send_response_in(
        &mut self,
        id: RequestId,
        slot: &mut Option<Response>,
    ) -> Result<(), SendError> {
        match slot {
            Some(response) => Self::respond(self, id, response),
            None => Err(SendError::NotPending),
        }
    }
    const SWITCHES_PROTOCOLS: bool = true;
    const CARRIES_STREAMS: bool = false;

    fn stream_writable(&self, _id: RequestId) -> bool {
        false
    }
    fn has_stream(&self, _id: RequestId) -> bool {
        false
    }
    fn is_draining(&self) -> bool {
        false
    }
    fn cancel_stream(&mut self, _id: RequestId) {}
    fn can_send_body_elsewhere(&self, id: RequestId, n: u64) -> bool {
        Self::can_send_body_elsewhere(self, id, n)
    }
    fn sent_body_elsewhere(&mut self, id: RequestId, n: u64) {
        Self::sent_body_elsewhere(self, id, n);
    }

    fn publish(&self, status: &mut WriteStatus) {
        // A writer whose head is still in the mailbox may write too: it is next in line.
        status.ready = self.next_to_send();
        status.answered_below = self.answered_below();
        status.multiplexed = None;
    }
}

impl ServerMachine for H2ServerConn {
    forward_calls!();
    fn send_response_in(
        &mut self,
        id: RequestId,
        slot: &mut Option<Response>,
    ) -> Result<(), SendError> {
        match slot.take() {
            Some(response) => Self::send_response(self, id, response),
            None => Err(SendError::NotPending),
        }
    }
    const SWITCHES_PROTOCOLS: bool = false;
    const CARRIES_STREAMS: bool = true;

    fn stream_writable(&self, id: RequestId) -> bool {
        Self::stream_writable(self, id)
    }
    fn has_stream(&self, id: RequestId) -> bool {
        Self::has_stream(self, id)
    }
    fn is_draining(&self) -> bool {
        Self::is_draining(self)
    }
    fn cancel_stream(&mut self, id: RequestId) {
        Self::cancel_stream(self, id);
    }

    fn publish(&self, status: &mut WriteStatus) {
        let multiplexed = status.multiplexed.get_or_insert_with(Multiplexed::default);
        multiplexed.writable = self.can_write();
        multiplexed.waiting.clear();
        self.waiting_streams(&mut multiplexed.waiting);
    }
}

/// What code outside the connection's callbacks asks of it.
pub(crate) enum Command {
    /// [`Responder::send`].
    Respond(RequestId, Response),
    /// [`Responder::stream`].
    Head(RequestId, Response),
    /// [`BodyWriter::write`](super::BodyWriter::write).
    Body(RequestId, Bytes),
    /// [`BodyWriter::finish`](super::BodyWriter::finish) (`None`: dropped unfinished).
    Finish(RequestId, Option<Headers>),
    /// A [`RequestBody`] was first polled: the handler wants the body.
    Continue(RequestId),
    /// A [`RequestBody`] consumer took bytes.
    Release(RequestId, usize),
    /// A [`RequestBody`] was dropped: read the rest and drop it.
    Discard(RequestId),
    /// [`Responder::note_upstream`]: for the request's access log line.
    Upstream(RequestId, Box<UpstreamNote>),
    /// [`Responder::upgrade`]: a `101` and the protocol that takes over after it.
    Upgrade(RequestId, Response, Box<dyn Protocol>),
    /// [`Responder::carry`]: a 2xx head and the protocol its stream then carries.
    Carry(RequestId, Response, Box<dyn StreamProtocol>),
    /// [`BodyWriter::send_file`](super::BodyWriter::send_file).
    File(RequestId, FileBody),
}

/// A file range offered as body bytes, and where the answer goes.
pub(crate) struct FileBody {
    pub(crate) file: std::rc::Rc<ringwork::fs::File>,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// Set when the command ran: whether the kernel sends the range (else the writer sends
    /// the bytes itself).
    pub(crate) taken: std::rc::Rc<std::cell::Cell<Option<bool>>>,
}

/// What body writers learn about the connection after each drive.
#[derive(Debug)]
pub(crate) struct WriteStatus {
    /// The request whose answer goes out next, when the transport can take more.
    pub(crate) ready: Option<RequestId>,
    /// Requests below this are answered in full and handed on (their writers have nothing
    /// to wait for: a waiter would otherwise wait until the connection closes).
    pub(crate) answered_below: RequestId,
    /// Body bytes posted since the last drive (not yet handed to the machine).
    pub(crate) unflushed: usize,
    /// HTTP/2: every stream's writer may write, but those listed, while the connection
    /// can take more (`None` on HTTP/1.1, where `ready` says who).
    pub(crate) multiplexed: Option<Multiplexed>,
}

/// Which HTTP/2 writers may write.
#[derive(Debug, Default)]
pub(crate) struct Multiplexed {
    /// The connection can take more now.
    pub(crate) writable: bool,
    /// Streams whose writers wait (their queued body is over the slack).
    pub(crate) waiting: Vec<RequestId>,
}

impl Default for WriteStatus {
    fn default() -> Self {
        Self {
            ready: None,
            answered_below: RequestId(0),
            unflushed: 0,
            multiplexed: None,
        }
    }
}

/// The sending side of a connection's mailbox, held by responders and body streams.
pub(crate) type Sender = MailboxSender<Command, WriteStatus>;

/// Where the body of the request being read goes.
enum BodySink {
    /// Collected whole; the handler is called when it ends.
    Buffer {
        request: Box<Request>,
        body: Collected,
    },
    /// Handed to the handler's [`RequestBody`] as it comes.
    Stream(Rc<RefCell<BodyChannel>>),
    /// An extended CONNECT's stream (RFC 8441) until the handler answers: what the client
    /// sent is held, unreleased (so bounded by the stream's window), for the protocol the
    /// stream will carry.
    Held { chunks: Vec<Bytes>, eof: bool },
}

/// A stream of an HTTP/2 connection as the [`Carrier`] of the protocol it carries.
struct StreamCarrier<'a, M> {
    machine: &'a mut M,
    id: RequestId,
}

impl<M: ServerMachine> Carrier for StreamCarrier<'_, M> {
    fn send(&mut self, data: Bytes) {
        // Refused only for a stream that is gone: the protocol learns it from the events.
        let _ = self.machine.send_body(self.id, data);
    }
    fn end(&mut self) {
        let _ = self.machine.finish(self.id, Some(Headers::new()));
    }
    fn reset(&mut self) {
        self.machine.cancel_stream(self.id);
    }
    fn release(&mut self, n: usize) {
        self.machine.release_body(self.id, n);
    }
    fn writable(&self) -> bool {
        self.machine.stream_writable(self.id)
    }
    fn draining(&self) -> bool {
        self.machine.is_draining()
    }
}

/// Logs what went wrong with an answer the handler gave.
fn answered(result: Result<(), SendError>, ctx: &Context<'_>) {
    match result {
        // Answers to requests whose connection is closing are dropped quietly.
        Ok(()) | Err(SendError::NotPending | SendError::NotStreaming) => {}
        Err(SendError::Truncated) => {
            tracing::warn!(conn = %ctx.id(), "response body ended early; closing the connection");
        }
        Err(error) => tracing::error!(conn = %ctx.id(), %error, "handler response"),
    }
}

/// The reason a carried protocol is given when its connection is lost.
fn carried_reason(reason: &LostReason) -> LostReason {
    match reason {
        LostReason::Done => LostReason::Done,
        LostReason::Aborted => LostReason::Aborted,
        _ => LostReason::Reset,
    }
}

/// A buffered body: the first piece as it came (usually the only one: no copy), the rest
/// appended.
#[derive(Default)]
struct Collected {
    first: Option<Bytes>,
    more: BytesMut,
}

impl Collected {
    fn push(&mut self, data: Bytes) {
        match &self.first {
            None => self.first = Some(data),
            Some(first) => {
                if self.more.is_empty() {
                    self.more.extend_from_slice(first);
                }
                self.more.extend_from_slice(&data);
            }
        }
    }

    fn finish(self) -> Bytes {
        if self.more.is_empty() {
            self.first.unwrap_or_default()
        } else {
            self.more.freeze()
        }
    }
}

/// The glue of one server connection.
pub(crate) struct ServerApp<M> {
    shared: Rc<Shared>,
    peer: Option<SocketAddr>,
    tls: bool,
    /// The bodies being read (one on HTTP/1.1, one per stream on HTTP/2), and their
    /// requests.
    bodies: Vec<(RequestId, BodySink)>,
    /// Upstream notes of requests not yet logged (at most the requests in flight).
    notes: Vec<(RequestId, Box<UpstreamNote>)>,
    machine: std::marker::PhantomData<fn(M)>,
    /// The protocol waiting for its `101` to leave (HTTP/1.1 only).
    switching: Option<(RequestId, Box<dyn Protocol>)>,
    /// The `101` left: the connection goes to this protocol after the drive.
    handoff: Option<Upgrade>,
    /// Streams carrying another protocol (HTTP/2 extended CONNECT).
    carried: Vec<(RequestId, Box<dyn StreamProtocol>)>,
    /// The instant the machine's `Date` was last set for: answers given at the same
    /// instant (a turn's pipelined batch) share it without asking the cache again.
    date_set_at: Option<std::time::Instant>,
}

impl<M: ServerMachine> ServerApp<M> {
    /// Hands a file range of `id`'s body to the kernel if it can go now: everything the
    /// machine has to send goes to the connection first, then the range
    /// ([`Context::send_file`]), counted as sent body. Whether it was taken.
    fn send_file(machine: &mut M, id: RequestId, body: &FileBody, ctx: &mut Context<'_>) -> bool {
        while let Some(bytes) = machine.poll_transmit(ctx.now()) {
            ctx.write_bytes(bytes);
        }
        if !machine.can_send_body_elsewhere(id, body.len) {
            return false;
        }
        match ctx.send_file(&body.file, body.offset, body.len) {
            Ok(()) => {
                machine.sent_body_elsewhere(id, body.len);
                true
            }
            Err(error) => {
                tracing::debug!(conn = %ctx.id(), %error, "file body sent by reading it");
                false
            }
        }
    }

    pub(crate) fn new(shared: Rc<Shared>) -> Self {
        Self {
            shared,
            peer: None,
            tls: false,
            bodies: Vec::new(),
            notes: Vec::new(),
            switching: None,
            handoff: None,
            carried: Vec::new(),
            date_set_at: None,
            machine: std::marker::PhantomData,
        }
    }

    /// Gives the machine the `Date` of `now` (the turn's time) for the answers it frames
    /// next, once per instant: the value depends on `now` alone.
    fn set_date(&mut self, machine: &mut M, now: std::time::Instant) {
        if self.date_set_at != Some(now) {
            self.date_set_at = Some(now);
            machine.set_date(self.shared.date.at(now));
        }
    }

    fn responder(&self, sender: Sender, id: RequestId) -> Responder {
        Responder::new(sender, id, self.shared.access.is_some())
    }

    /// Calls the handler with request `id`; an answer it gives before returning is sent
    /// at once ([`DirectAnswer`](super::respond::DirectAnswer)).
    fn call_handler(
        &mut self,
        machine: &mut M,
        id: RequestId,
        request: Request,
        sender: Sender,
        ctx: &Context<'_>,
    ) {
        let call = self.shared.direct.begin();
        let responder = call.responder(self.responder(sender, id));
        self.shared.handler.handle(request, responder);
        if call.answered() {
            // What `Command::Respond` does.
            self.refuse_held(machine, id);
            self.set_date(machine, ctx.now());
            let result = call.take_with(|slot| machine.send_response_in(id, slot));
            answered(result, ctx);
        }
    }

    fn take_body(&mut self, id: RequestId) -> Option<BodySink> {
        let index = self.bodies.iter().position(|(current, _)| *current == id)?;
        Some(self.bodies.swap_remove(index).1)
    }

    fn request(&self, head: crate::http::proto::RequestHead, ctx: &Context<'_>) -> Request {
        Request {
            head,
            body: Bytes::new(),
            stream: None,
            peer: self.peer,
            tls: self.tls,
            conn: ctx.id(),
            handle: ctx.handle(),
        }
    }

    fn start(
        &mut self,
        machine: &mut M,
        id: RequestId,
        head: crate::http::proto::RequestHead,
        has_body: bool,
        ctx: &Context<'_>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        let sender = mailbox.sender();
        if let (Some(limiter), Some(peer)) = (&self.shared.rate_limit, self.peer)
            && let Err(wait) = limiter.check(peer.ip(), ctx.now())
        {
            // RFC 6585 §4: 429, and Retry-After (RFC 9110 §10.2.3) in whole seconds,
            // rounded up so that a client that waits that long finds a token.
            let secs = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            if has_body {
                machine.discard_body(id);
            }
            self.responder(sender, id)
                .send(Response::error(429).header("Retry-After", secs.max(1).to_string()));
            return;
        }
        let extended_connect = head.protocol.is_some();
        let mut request = self.request(head, ctx);
        if extended_connect && has_body && M::CARRIES_STREAMS {
            // The stream is the tunnel: held until the handler answers (Responder::carry).
            self.bodies.push((
                id,
                BodySink::Held {
                    chunks: Vec::new(),
                    eof: false,
                },
            ));
            self.call_handler(machine, id, request, sender, ctx);
            return;
        }
        if !has_body {
            self.call_handler(machine, id, request, sender, ctx);
            return;
        }
        if self.shared.handler.stream_body(&request.head) {
            let channel = Rc::new(RefCell::new(BodyChannel::default()));
            request.stream = Some(RequestBody::new(Rc::clone(&channel), sender.clone(), id));
            self.bodies.push((id, BodySink::Stream(channel)));
            self.call_handler(machine, id, request, sender, ctx);
        } else {
            // Read whole before the handler runs: ask for it now.
            machine.continue_body(id);
            self.bodies.push((
                id,
                BodySink::Buffer {
                    request: Box::new(request),
                    body: Collected::default(),
                },
            ));
        }
    }

    fn body_piece(&mut self, machine: &mut M, id: RequestId, data: Bytes, ctx: &mut Context<'_>) {
        if let Some((_, carried)) = self.carried.iter_mut().find(|(c, _)| *c == id) {
            carried.input(&data, ctx);
            return;
        }
        let sink = self
            .bodies
            .iter_mut()
            .find(|(current, _)| *current == id)
            .map(|(_, sink)| sink);
        match sink {
            Some(BodySink::Buffer { body, .. }) => {
                // Bounded by the parser's `max_body`: released at once.
                machine.release_body(id, data.len());
                body.push(data);
            }
            Some(BodySink::Held { chunks, .. }) => chunks.push(data),
            Some(BodySink::Stream(channel)) => {
                let mut channel = channel.borrow_mut();
                if channel.dropped {
                    machine.release_body(id, data.len());
                    return;
                }
                channel.buffered += data.len();
                channel.chunks.push_back(data);
                channel.wake();
            }
            None => machine.release_body(id, data.len()),
        }
    }

    fn body_end(
        &mut self,
        machine: &mut M,
        id: RequestId,
        trailers: Option<Headers>,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        if let Some((_, carried)) = self.carried.iter_mut().find(|(c, _)| *c == id) {
            carried.eof(ctx);
            return;
        }
        if let Some((_, BodySink::Held { eof, .. })) =
            self.bodies.iter_mut().find(|(current, _)| *current == id)
        {
            *eof = true;
            return;
        }
        let Some(sink) = self.take_body(id) else {
            return;
        };
        match sink {
            BodySink::Buffer { mut request, body } => {
                request.body = body.finish();
                self.call_handler(machine, id, *request, mailbox.sender(), ctx);
            }
            BodySink::Held { .. } => {}
            BodySink::Stream(channel) => {
                let mut channel = channel.borrow_mut();
                channel.finished = true;
                channel.trailers = trailers;
                channel.wake();
            }
        }
    }

    /// The body will not end: a buffered request is dropped (the machine answered it), a
    /// streamed one ends with the reason, a carried protocol loses its stream.
    fn body_failed(
        &mut self,
        machine: &mut M,
        id: RequestId,
        error: BodyError,
        ctx: &mut Context<'_>,
    ) {
        if let Some(at) = self.carried.iter().position(|(c, _)| *c == id) {
            let (_, mut carried) = self.carried.swap_remove(at);
            carried.lost(ctx, LostReason::Reset);
            return;
        }
        let Some(sink) = self.take_body(id) else {
            return;
        };
        if let BodySink::Held { chunks, .. } = &sink {
            // The connection's window comes back for bytes never consumed.
            machine.release_body(id, chunks.iter().map(Bytes::len).sum());
        }
        if let BodySink::Stream(channel) = sink {
            let mut channel = channel.borrow_mut();
            if !channel.finished && channel.error.is_none() {
                channel.error = Some(error);
            }
            channel.wake();
        }
    }

    /// A held extended CONNECT answered without a tunnel: the stream's body is not wanted.
    fn refuse_held(&mut self, machine: &mut M, id: RequestId) {
        let held = self
            .bodies
            .iter()
            .any(|(current, sink)| *current == id && matches!(sink, BodySink::Held { .. }));
        if held && let Some(BodySink::Held { chunks, .. }) = self.take_body(id) {
            machine.release_body(id, chunks.iter().map(Bytes::len).sum());
            machine.discard_body(id);
        }
    }

    /// [`Command::Carry`]: the 2xx head goes out and the stream carries `protocol`, fed
    /// what the client sent so far.
    fn carry(
        &mut self,
        machine: &mut M,
        id: RequestId,
        response: Response,
        mut protocol: Box<dyn StreamProtocol>,
        ctx: &mut Context<'_>,
    ) -> Result<(), SendError> {
        self.set_date(machine, ctx.now());
        let held = self
            .bodies
            .iter()
            .any(|(current, sink)| *current == id && matches!(sink, BodySink::Held { .. }));
        let status = response.status();
        if !M::CARRIES_STREAMS || !held || !(200..300).contains(&status) {
            // Only an extended CONNECT's stream carries a protocol, after a 2xx (RFC 8441
            // §4): anything else is the handler's mistake.
            tracing::error!(conn = %ctx.id(), status, "Responder::carry on a request that is not an HTTP/2 extended CONNECT, or without a 2xx: answered 500");
            drop(protocol);
            self.refuse_held(machine, id);
            return machine.send_response(id, Response::error(500));
        }
        machine.send_head(id, response)?;
        let Some(BodySink::Held { chunks, eof }) = self.take_body(id) else {
            return Ok(());
        };
        protocol.start(ctx);
        for chunk in chunks {
            protocol.input(&chunk, ctx);
        }
        if eof {
            protocol.eof(ctx);
        }
        self.carried.push((id, protocol));
        Ok(())
    }

    fn access_log(
        &mut self,
        id: Option<RequestId>,
        status: u16,
        bytes: u64,
        request: Option<&RequestLog>,
        duration: Option<std::time::Duration>,
    ) {
        let note = match id.and_then(|id| self.notes.iter().position(|(n, _)| *n == id)) {
            Some(at) => Some(self.notes.swap_remove(at).1),
            None => None,
        };
        let Some(request) = request else {
            return;
        };
        match &self.shared.access {
            Some(log) => {
                let entry = Entry {
                    peer: self.peer,
                    request,
                    status,
                    bytes,
                    duration,
                    upstream: note.as_deref(),
                    time: std::time::SystemTime::now(),
                };
                log.write(&entry, &mut self.shared.line.borrow_mut());
            }
            None => {
                let peer = self
                    .peer
                    .map_or_else(|| "-".to_owned(), |peer| peer.to_string());
                tracing::info!(
                    target: "ringwork::http::access",
                    peer = %peer,
                    method = %request.method,
                    // Peer bytes (httparse lets 0x80-0xFF through): escaped, not cut (the
                    // head limit bounds them).
                    target = %escape(&request.target).limit(usize::MAX),
                    status,
                    bytes,
                    duration_ms = duration.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                );
            }
        }
    }
}

impl<M: ServerMachine> Application<M> for ServerApp<M> {
    type Command = Command;
    type Status = WriteStatus;

    fn connected(
        &mut self,
        _machine: &mut M,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        self.peer = ctx.peer_addr().ok().and_then(|a| a.as_socket());
        self.tls = ctx.tls().is_some();
        ctx.set_write_timeout(self.shared.config.write_timeout);
    }

    fn event(
        &mut self,
        machine: &mut M,
        event: ServerEvent,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        match event {
            ServerEvent::Request {
                id, head, has_body, ..
            } => self.start(machine, id, head, has_body, ctx, mailbox),
            ServerEvent::Body { id, data } => self.body_piece(machine, id, data, ctx),
            ServerEvent::BodyEnd { id, trailers } => {
                self.body_end(machine, id, trailers, ctx, mailbox);
            }
            ServerEvent::BodyError { id, error } => {
                tracing::debug!(conn = %ctx.id(), %error, "request body ended early");
                let error = match error {
                    H1Error::UnexpectedEof => BodyError::Closed,
                    error => BodyError::Protocol(error),
                };
                self.body_failed(machine, id, error, ctx);
            }
            ServerEvent::Upgraded { id, rest, eof } => match self.switching.take() {
                Some((switching, protocol)) if switching == id => {
                    self.handoff = Some(Upgrade {
                        protocol,
                        rest,
                        eof,
                    });
                }
                _ => {
                    // A 101 sent with `Responder::send`: no protocol to hand over to.
                    tracing::error!(conn = %ctx.id(), "101 sent without a protocol to switch to (use Responder::upgrade); closing");
                    ctx.abort();
                }
            },
            ServerEvent::Sent {
                id,
                status,
                bytes,
                request,
                started,
            } => {
                let now = ctx.now();
                let duration = started.map(|at| now.saturating_duration_since(at));
                if let Some(metrics) = &self.shared.metrics {
                    metrics.record(status, duration);
                }
                if self.shared.config.access_log {
                    self.access_log(id, status, bytes, request.as_deref(), duration);
                }
            }
        }
    }

    fn command(&mut self, machine: &mut M, command: Command, ctx: &mut Context<'_>) {
        if let Command::Respond(id, _) | Command::Head(id, _) = &command {
            self.refuse_held(machine, *id);
        }
        let result = match command {
            Command::Carry(id, response, protocol) => {
                self.carry(machine, id, response, protocol, ctx)
            }
            Command::Respond(id, response) => {
                self.set_date(machine, ctx.now());
                machine.send_response(id, response)
            }
            Command::Head(id, response) => {
                self.set_date(machine, ctx.now());
                machine.send_head(id, response)
            }
            Command::Body(id, data) => machine.send_body(id, data),
            Command::File(id, body) => {
                let taken = Self::send_file(machine, id, &body, ctx);
                body.taken.set(Some(taken));
                Ok(())
            }
            Command::Finish(id, trailers) => machine.finish(id, trailers),
            Command::Continue(id) => {
                machine.continue_body(id);
                Ok(())
            }
            Command::Release(id, n) => {
                machine.release_body(id, n);
                Ok(())
            }
            Command::Discard(id) => {
                machine.discard_body(id);
                Ok(())
            }
            Command::Upstream(id, note) => {
                // One note per request (the last one): bounded by the requests in flight.
                match self.notes.iter_mut().find(|(n, _)| *n == id) {
                    Some(entry) => entry.1 = note,
                    None => self.notes.push((id, note)),
                }
                Ok(())
            }
            Command::Upgrade(id, response, protocol) => {
                self.set_date(machine, ctx.now());
                let switching = response.status() == 101;
                if switching && !M::SWITCHES_PROTOCOLS {
                    // HTTP/2 has no 101 (RFC 9113 §8.6): the protocol is dropped and the
                    // request answered 501.
                    drop(protocol);
                    tracing::warn!(conn = %ctx.id(), "Responder::upgrade on an HTTP/2 stream: answered 501");
                    machine.send_response(id, Response::error(501))
                } else {
                    let result = machine.send_response(id, response);
                    if result.is_ok() && switching {
                        self.switching = Some((id, protocol));
                    }
                    result
                }
            }
        };
        answered(result, ctx);
    }

    fn settled(
        &mut self,
        machine: &mut M,
        _ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        {
            let mut status = mailbox.status_mut();
            machine.publish(&mut status);
            status.unflushed = 0;
        }
        mailbox.wake_waiters();
    }

    fn take_upgrade(&mut self) -> Option<Upgrade> {
        self.handoff.take()
    }

    fn poll(&mut self, machine: &mut M, ctx: &mut Context<'_>) -> bool {
        let mut progressed = false;
        let mut at = 0;
        while at < self.carried.len() {
            let (id, carried) = &mut self.carried[at];
            let id = *id;
            if !machine.has_stream(id) {
                // Gone without an event (reset after its request ended).
                carried.lost(ctx, LostReason::Reset);
            } else {
                let mut carrier = StreamCarrier {
                    machine: &mut *machine,
                    id,
                };
                progressed |= carried.drive(ctx, &mut carrier);
            }
            if carried.is_done() {
                self.carried.swap_remove(at);
                progressed = true;
            } else {
                at += 1;
            }
        }
        progressed
    }

    fn timer_fired(&mut self, _machine: &mut M, ctx: &mut Context<'_>, timer: TimerId) {
        for (_, carried) in &mut self.carried {
            if carried.timer_fired(ctx, timer) {
                return;
            }
        }
    }

    fn lost(&mut self, machine: &mut M, ctx: &mut Context<'_>, reason: LostReason) {
        for (_, mut carried) in std::mem::take(&mut self.carried) {
            carried.lost(ctx, carried_reason(&reason));
        }
        let ids: Vec<RequestId> = self.bodies.iter().map(|(id, _)| *id).collect();
        for id in ids {
            self.body_failed(machine, id, BodyError::Closed, ctx);
        }
    }
}
