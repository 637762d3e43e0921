//! The HTTP/1.1 server's application on the kit adapter: [`ServerConn`] events become
//! [`Handler`](super::Handler) calls, and [`Responder`] / [`BodyWriter`] /
//! [`RequestBody`] calls become machine calls.
//!
//! Owns: [`ServerApp`] (the per-connection glue), the [`Command`]s that responders, body
//! writers and body streams post through the connection's mailbox, the [`WriteStatus`] the
//! connection publishes to body writers, and the collection of buffered request bodies.
//! Contract: a request without a body, or whose handler streams its body
//! ([`Handler::stream_body`](super::Handler::stream_body)), reaches the handler at once; a
//! buffered body is asked for (`100 Continue` when awaited) and collected, bounded by
//! `limits.max_body`, before the handler is called. Every answer goes through the mailbox:
//! one given inside the callback is applied in the same drive, one given later wakes the
//! connection, in the same reactor turn. Logging (access log, handler mistakes) happens
//! here; the machine only reports.
//! Does not: parse, frame, order answers or keep time (the machine does).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use ringwork::logging::escape;
use ringwork::{Context, LostReason, Protocol};

use super::Shared;
use super::message::{BodyChannel, BodyError, Request, RequestBody};
use super::respond::Responder;
use crate::http::proto::server::{RequestId, Response, SendError, ServerConn, ServerEvent};
use crate::http::proto::{H1Error, Headers};
use crate::kit::adapter::{Application, Mailbox, MailboxSender, Upgrade};

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
    /// [`Responder::upgrade`]: a `101` and the protocol that takes over after it.
    Upgrade(RequestId, Response, Box<dyn Protocol>),
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
}

impl Default for WriteStatus {
    fn default() -> Self {
        Self {
            ready: None,
            answered_below: RequestId(0),
            unflushed: 0,
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
pub(crate) struct ServerApp {
    shared: Rc<Shared>,
    peer: Option<SocketAddr>,
    tls: bool,
    /// The body being read, and its request.
    body: Option<(RequestId, BodySink)>,
    /// The protocol waiting for its `101` to leave.
    switching: Option<(RequestId, Box<dyn Protocol>)>,
    /// The `101` left: the connection goes to this protocol after the drive.
    handoff: Option<Upgrade>,
}

impl ServerApp {
    pub(crate) fn new(shared: Rc<Shared>) -> Self {
        Self {
            shared,
            peer: None,
            tls: false,
            body: None,
            switching: None,
            handoff: None,
        }
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
        machine: &mut ServerConn,
        id: RequestId,
        head: crate::http::proto::RequestHead,
        has_body: bool,
        ctx: &Context<'_>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        let sender = mailbox.sender();
        let mut request = self.request(head, ctx);
        if !has_body {
            self.shared
                .handler
                .handle(request, Responder::new(sender, id));
            return;
        }
        if self.shared.handler.stream_body(&request.head) {
            let channel = Rc::new(RefCell::new(BodyChannel::default()));
            request.stream = Some(RequestBody::new(Rc::clone(&channel), sender.clone(), id));
            self.body = Some((id, BodySink::Stream(channel)));
            self.shared
                .handler
                .handle(request, Responder::new(sender, id));
        } else {
            // Read whole before the handler runs: ask for it now.
            machine.continue_body(id);
            self.body = Some((
                id,
                BodySink::Buffer {
                    request: Box::new(request),
                    body: Collected::default(),
                },
            ));
        }
    }

    fn body_piece(&mut self, machine: &mut ServerConn, id: RequestId, data: Bytes) {
        match &mut self.body {
            Some((current, BodySink::Buffer { body, .. })) if *current == id => {
                // Bounded by the parser's `max_body`: released at once.
                machine.release_body(id, data.len());
                body.push(data);
            }
            Some((current, BodySink::Stream(channel))) if *current == id => {
                let mut channel = channel.borrow_mut();
                if channel.dropped {
                    machine.release_body(id, data.len());
                    return;
                }
                channel.buffered += data.len();
                channel.chunks.push_back(data);
                channel.wake();
            }
            _ => machine.release_body(id, data.len()),
        }
    }

    fn body_end(
        &mut self,
        id: RequestId,
        trailers: Option<Headers>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        let Some((current, sink)) = self.body.take() else {
            return;
        };
        if current != id {
            self.body = Some((current, sink));
            return;
        }
        match sink {
            BodySink::Buffer { mut request, body } => {
                request.body = body.finish();
                let responder = Responder::new(mailbox.sender(), id);
                self.shared.handler.handle(*request, responder);
            }
            BodySink::Stream(channel) => {
                let mut channel = channel.borrow_mut();
                channel.finished = true;
                channel.trailers = trailers;
                channel.wake();
            }
        }
    }

    /// The body will not end: a buffered request is dropped (the machine answered it), a
    /// streamed one ends with the reason.
    fn body_failed(&mut self, id: RequestId, error: BodyError) {
        let Some((current, sink)) = self.body.take() else {
            return;
        };
        if current != id {
            self.body = Some((current, sink));
            return;
        }
        if let BodySink::Stream(channel) = sink {
            let mut channel = channel.borrow_mut();
            if !channel.finished && channel.error.is_none() {
                channel.error = Some(error);
            }
            channel.wake();
        }
    }

    fn access_log(
        &self,
        status: u16,
        bytes: u64,
        request: Option<(crate::http::proto::Method, Bytes)>,
    ) {
        if let Some((method, target)) = request {
            tracing::info!(
                target: "ringwork::http::access",
                peer = ?self.peer,
                method = %method,
                // Peer bytes (httparse lets 0x80-0xFF through): escaped, not cut (the head
                // limit bounds them).
                target = %escape(&target).limit(usize::MAX),
                status,
                bytes,
            );
        }
    }
}

impl Application<ServerConn> for ServerApp {
    type Command = Command;
    type Status = WriteStatus;

    fn connected(
        &mut self,
        _machine: &mut ServerConn,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        self.peer = ctx.peer_addr().ok().and_then(|a| a.as_socket());
        self.tls = ctx.tls().is_some();
        ctx.set_write_timeout(self.shared.config.write_timeout);
    }

    fn event(
        &mut self,
        machine: &mut ServerConn,
        event: ServerEvent,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        match event {
            ServerEvent::Request {
                id, head, has_body, ..
            } => self.start(machine, id, head, has_body, ctx, mailbox),
            ServerEvent::Body { id, data } => self.body_piece(machine, id, data),
            ServerEvent::BodyEnd { id, trailers } => self.body_end(id, trailers, mailbox),
            ServerEvent::BodyError { id, error } => {
                tracing::debug!(conn = %ctx.id(), %error, "request body ended early");
                let error = match error {
                    H1Error::UnexpectedEof => BodyError::Closed,
                    error => BodyError::Protocol(error),
                };
                self.body_failed(id, error);
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
                status,
                bytes,
                request,
                ..
            } => {
                if self.shared.config.access_log {
                    self.access_log(status, bytes, request);
                }
            }
        }
    }

    fn command(&mut self, machine: &mut ServerConn, command: Command, ctx: &mut Context<'_>) {
        let result = match command {
            Command::Respond(id, response) => {
                machine.set_date(self.shared.date.at(ctx.now()));
                machine.send_response(id, response)
            }
            Command::Head(id, response) => {
                machine.set_date(self.shared.date.at(ctx.now()));
                machine.send_head(id, response)
            }
            Command::Body(id, data) => machine.send_body(id, data),
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
            Command::Upgrade(id, response, protocol) => {
                machine.set_date(self.shared.date.at(ctx.now()));
                let switching = response.status() == 101;
                let result = machine.send_response(id, response);
                if result.is_ok() && switching {
                    self.switching = Some((id, protocol));
                }
                result
            }
        };
        match result {
            // Answers to requests whose connection is closing are dropped quietly.
            Ok(()) | Err(SendError::NotPending | SendError::NotStreaming) => {}
            Err(SendError::Truncated) => {
                tracing::warn!(conn = %ctx.id(), "response body ended early; closing the connection");
            }
            Err(error) => tracing::error!(conn = %ctx.id(), %error, "handler response"),
        }
    }

    fn settled(
        &mut self,
        machine: &mut ServerConn,
        _ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, WriteStatus>,
    ) {
        // A writer whose head is still in the mailbox may write too: it is next in line.
        let ready = machine.next_to_send();
        {
            let mut status = mailbox.status_mut();
            status.ready = ready;
            status.answered_below = machine.answered_below();
            status.unflushed = 0;
        }
        mailbox.wake_waiters();
    }

    fn take_upgrade(&mut self) -> Option<Upgrade> {
        self.handoff.take()
    }

    fn lost(&mut self, _machine: &mut ServerConn, _ctx: &mut Context<'_>, _reason: LostReason) {
        if let Some((id, _)) = &self.body {
            let id = *id;
            self.body_failed(id, BodyError::Closed);
        }
    }
}
