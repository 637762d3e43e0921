//! HTTP/2 for the client: [`H2Connection`], one connection carrying many requests at once
//! (the [`H2ClientConn`] machine on the kit's adapter), and the opt-in HTTP/2 path of
//! [`HttpClient`](super::HttpClient)
//! ([`ClientRequest::with_protocol`](super::ClientRequest::with_protocol)).
//!
//! Owns: opening the connection (h2c with prior knowledge, or TLS offering ALPN `h2` and
//! refusing a server that picks anything else), queueing requests while the server's
//! concurrent-stream limit is reached, sending again a request whose stream the server
//! refused unprocessed, feeding each response to its [`ResponseSink`] (a sink's
//! [`Flow::Pause`] holds the stream's window shut until it resumes: HTTP/2 flow control
//! is the backpressure), and failing what is in flight when the connection goes.
//! Contract: [`H2Connection::open`] returns at once; requests posted before the connection
//! is up are sent once it is. The connection is `!Send` and belongs to the core it was
//! opened on.
//! Streamed request bodies (`body_stream`) are pulled by a task per stream whenever the
//! stream's queue is under 64 KiB, so the server's window paces the source.
//! Does not: negotiate HTTP/1.1 as a fallback (a TLS server that does not pick `h2` is
//! [`ClientError::Http2NotNegotiated`]), or retry on another connection.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;

use ringwork::tls::TlsConnector;
use ringwork::{ConnectOptions, Context, Deferred, LocalHandle, LostReason};

use super::conn::{Exchange, Outcome, Pending};
use super::{
    Buffered, ClientError, ClientRequest, ClientResponse, Flow, ResponseSink, connect_error,
};
use crate::http::proto::h2::frame::ErrorCode;
use crate::http::proto::h2::{ClientEvent, H2ClientConn, H2ClientError, H2Config, RequestParts};
use crate::kit::adapter::{Adapter, Application, Mailbox, MailboxSender};

/// The ALPN id of HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// Times a refused stream is sent again (RFC 9113 §8.7: it was not processed). A client
/// sends before the server's SETTINGS arrive, so a server with a small stream limit refuses
/// the first streams past it.
const MAX_REFUSED: u8 = 3;

/// A request posted to the connection.
struct Send {
    request: ClientRequest,
    exchange: Box<dyn Exchange>,
    /// Times the server refused its stream unprocessed (REFUSED_STREAM).
    refused: u8,
}

/// What code outside the connection's callbacks asks of it.
enum Command {
    /// A request to send (boxed: it is large, the others are two words).
    Send(Box<Send>),
    /// A paused sink resumed: give back the window of `n` bytes of stream `id`.
    Resume(u32, usize),
    /// A paused sink gave up: reset stream `id`.
    Cancel(u32),
    /// A piece of stream `id`'s streamed request body.
    UploadPiece(u32, bytes::Bytes),
    /// Stream `id`'s streamed request body ended.
    UploadEnd(u32),
    /// Stream `id`'s streamed request body failed.
    UploadFailed(u32, ClientError),
}

/// What upload pumps learn after each drive: the streams whose bodies may take more now.
#[derive(Debug, Default)]
pub(crate) struct UploadStatus {
    ready: Vec<u32>,
}

/// A response being received.
struct Receiving {
    /// The request, kept to send again if its stream is refused unprocessed.
    send: Send,
    got_head: bool,
    received: u64,
}

/// Why a connection carries no more requests; each request it fails gets its own error.
#[derive(Clone, Debug)]
enum Failure {
    Closed,
    NotNegotiated,
    Connect(std::io::ErrorKind, String),
    ConnectTimeout,
    Tls(ringwork::tls::TlsError),
}

impl Failure {
    fn error(&self, addr: SocketAddr) -> ClientError {
        match self {
            Self::Closed => ClientError::Closed,
            Self::NotNegotiated => ClientError::Http2NotNegotiated { addr },
            Self::Connect(kind, text) => ClientError::Connect {
                addr,
                source: std::io::Error::new(*kind, text.clone()),
            },
            Self::ConnectTimeout => ClientError::ConnectTimeout {
                addr,
                timeout: std::time::Duration::ZERO,
            },
            Self::Tls(error) => ClientError::Tls {
                addr,
                error: error.clone(),
            },
        }
    }
}

/// The glue of one HTTP/2 client connection.
struct H2App {
    addr: SocketAddr,
    tls: bool,
    max_body: u64,
    response_timeout: Option<std::time::Duration>,
    body_timeout: Option<std::time::Duration>,
    /// Requests waiting for a free stream (the server's limit).
    waiting: VecDeque<Send>,
    streams: HashMap<u32, Receiving>,
    /// Set when the connection cannot carry requests (lost, refused h2): later requests
    /// fail with it at once.
    failed: Option<Failure>,
    /// Streamed bodies of streams just opened, for pumps to start.
    uploads: Vec<(u32, super::body::Upload)>,
    /// Streams whose bodies are being pumped.
    uploading: Vec<u32>,
}

/// Pulls a streamed request body and posts it to stream `id`, a piece whenever the stream
/// can take more (its queue under 64 KiB: the server's window is the backpressure).
async fn pump_upload(
    conn: MailboxSender<Command, UploadStatus>,
    id: u32,
    mut upload: super::body::Upload,
) {
    let mut sent: u64 = 0;
    loop {
        let open = std::future::poll_fn(|cx| {
            conn.poll_status(cx, |status, closed| {
                if closed {
                    Some(false)
                } else {
                    status.ready.contains(&id).then_some(true)
                }
            })
        })
        .await;
        if !open {
            return;
        }
        let command = match upload.source.next_chunk().await {
            Some(Ok(piece)) if piece.is_empty() => continue,
            Some(Ok(piece)) => {
                sent += piece.len() as u64;
                Command::UploadPiece(id, piece)
            }
            Some(Err(error)) => Command::UploadFailed(id, ClientError::RequestBody(error)),
            None => Command::UploadEnd(id),
        };
        let last = !matches!(command, Command::UploadPiece(..));
        conn.status_mut().ready.retain(|&ready| ready != id);
        if conn.post(command).is_err() || last {
            return;
        }
        if upload.length.is_some_and(|declared| sent >= declared) {
            let _ = conn.post(Command::UploadEnd(id));
            return;
        }
    }
}

impl H2App {
    /// Sends what waits while streams are free, and starts the upload pumps of streamed
    /// bodies.
    fn pump(
        &mut self,
        machine: &mut H2ClientConn,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, UploadStatus>,
    ) {
        self.pump_waiting(machine);
        for (id, upload) in self.uploads.drain(..) {
            self.uploading.push(id);
            ctx.handle()
                .spawn_local(pump_upload(mailbox.sender(), id, upload));
        }
    }

    /// Sends what waits while streams are free.
    fn pump_waiting(&mut self, machine: &mut H2ClientConn) {
        while machine.can_open() {
            let Some(send) = self.waiting.pop_front() else {
                return;
            };
            self.start(machine, send);
        }
        if !machine.is_open() {
            // GOAWAY or closing: nothing more will be sent on this connection.
            for send in self.waiting.drain(..) {
                send.exchange.fail(ClientError::Closed, false);
            }
        }
    }

    fn start(&mut self, machine: &mut H2ClientConn, send: Send) {
        if send.exchange.is_canceled() {
            return;
        }
        let request = &send.request;
        let scheme = if self.tls { "https" } else { "http" };
        let parts = RequestParts {
            method: &request.method,
            scheme,
            authority: &request.authority,
            path: &request.target,
            headers: &request.headers,
        };
        let body = request.body.clone();
        let streamed = request.body_stream.as_ref().and_then(|stream| {
            Some(super::body::Upload {
                length: stream.length(),
                source: stream.take()?,
            })
        });
        let end_stream = body.is_empty() && streamed.is_none() && request.body_stream.is_none();
        match machine.send_request(parts, end_stream) {
            Ok(id) => {
                if let Some(upload) = streamed {
                    self.uploads.push((id, upload));
                } else if request.body_stream.is_some() {
                    // The body source is gone (never the case: a stream with a streamed
                    // body is not sent again): end it empty rather than hang.
                    let _ = machine.finish(id, None);
                } else if !body.is_empty() {
                    // The stream is new and open: these cannot fail.
                    let _ = machine.send_body(id, body);
                    let _ = machine.finish(id, None);
                }
                self.streams.insert(
                    id,
                    Receiving {
                        send,
                        got_head: false,
                        received: 0,
                    },
                );
            }
            Err(H2ClientError::Busy) => self.waiting.push_front(send),
            Err(_) => send.exchange.fail(ClientError::Closed, false),
        }
    }

    fn fail(&mut self, failure: Failure) {
        let addr = self.addr;
        // Not negotiated: nothing was sent, the caller may go over HTTP/1.1 instead.
        let retryable = matches!(failure, Failure::NotNegotiated);
        for send in self.waiting.drain(..) {
            send.exchange.fail(failure.error(addr), retryable);
        }
        for (_, receiving) in self.streams.drain() {
            receiving.send.exchange.fail(failure.error(addr), retryable);
        }
        self.failed = Some(failure);
    }

    /// Ends stream `id` with `error` (the stream reset, if still open).
    fn abandon(&mut self, machine: &mut H2ClientConn, id: u32, error: ClientError) {
        machine.cancel(id);
        if let Some(receiving) = self.streams.remove(&id) {
            receiving.send.exchange.fail(error, false);
        }
    }

    fn body(
        &mut self,
        machine: &mut H2ClientConn,
        id: u32,
        data: bytes::Bytes,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, UploadStatus>,
    ) {
        let n = data.len();
        let Some(receiving) = self.streams.get_mut(&id) else {
            machine.release_body(id, n);
            return;
        };
        receiving.received += n as u64;
        if receiving.received > self.max_body {
            let limit = self.max_body;
            machine.release_body(id, n);
            self.abandon(machine, id, ClientError::BodyTooLarge { limit });
            return;
        }
        if receiving.send.exchange.is_canceled() {
            machine.release_body(id, n);
            self.abandon(machine, id, ClientError::Closed);
            return;
        }
        match receiving.send.exchange.data(ctx, data) {
            Flow::Continue => machine.release_body(id, n),
            Flow::Pause(resume) => {
                // The window stays shut for these bytes until the sink can take more.
                let sender = mailbox.sender();
                ctx.handle().spawn_local(async move {
                    let command = if resume.await {
                        Command::Resume(id, n)
                    } else {
                        Command::Cancel(id)
                    };
                    let _ = sender.post(command);
                });
            }
        }
    }
}

impl Application<H2ClientConn> for H2App {
    type Command = Command;
    type Status = UploadStatus;

    fn connected(
        &mut self,
        machine: &mut H2ClientConn,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, UploadStatus>,
    ) {
        if self.tls && ctx.tls().and_then(|t| t.alpn.as_deref()) != Some(ALPN_H2) {
            // RFC 9113 §3.2: HTTP/2 over TLS is what ALPN "h2" picked, nothing else.
            self.fail(Failure::NotNegotiated);
            ctx.close();
            return;
        }
        self.pump(machine, ctx, mailbox);
    }

    fn event(
        &mut self,
        machine: &mut H2ClientConn,
        event: ClientEvent,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, UploadStatus>,
    ) {
        match event {
            ClientEvent::Response { id, head, .. } => {
                if let Some(receiving) = self.streams.get_mut(&id) {
                    receiving.got_head = true;
                    receiving.send.exchange.head(ctx, head);
                }
            }
            ClientEvent::Body { id, data } => self.body(machine, id, data, ctx, mailbox),
            ClientEvent::End { id, trailers } => {
                if let Some(receiving) = self.streams.remove(&id) {
                    if receiving.got_head {
                        receiving.send.exchange.finish(ctx, trailers);
                    } else {
                        receiving.send.exchange.fail(ClientError::Closed, false);
                    }
                }
            }
            ClientEvent::TimedOut { id } => {
                if let Some(receiving) = self.streams.remove(&id) {
                    let timeout = self.response_timeout.unwrap_or_default();
                    receiving
                        .send
                        .exchange
                        .fail(ClientError::ResponseTimeout { timeout }, false);
                }
            }
            ClientEvent::BodyTimedOut { id } => {
                if let Some(receiving) = self.streams.remove(&id) {
                    let timeout = self.body_timeout.unwrap_or_default();
                    receiving
                        .send
                        .exchange
                        .fail(ClientError::BodyTimeout { timeout }, false);
                }
            }
            ClientEvent::Reset { id, code } => {
                if let Some(receiving) = self.streams.remove(&id) {
                    let mut send = receiving.send;
                    // A streamed body was taken by its pump: it cannot be sent twice.
                    if code == ErrorCode::REFUSED_STREAM
                        && !receiving.got_head
                        && send.request.body_stream.is_none()
                        && send.refused < MAX_REFUSED
                    {
                        send.refused += 1;
                        self.waiting.push_front(send);
                    } else {
                        send.exchange
                            .fail(ClientError::Http2Reset { code: code.0 }, false);
                    }
                }
            }
        }
        self.pump(machine, ctx, mailbox);
    }

    fn command(&mut self, machine: &mut H2ClientConn, command: Command, ctx: &mut Context<'_>) {
        match command {
            Command::Send(send) => {
                if let Some(failure) = &self.failed {
                    let retryable = matches!(failure, Failure::NotNegotiated);
                    send.exchange.fail(failure.error(self.addr), retryable);
                    return;
                }
                self.waiting.push_back(*send);
            }
            Command::Resume(id, n) => machine.release_body(id, n),
            Command::Cancel(id) => self.abandon(machine, id, ClientError::Closed),
            Command::UploadPiece(id, piece) => {
                if machine.send_body(id, piece).is_err() {
                    self.abandon(machine, id, ClientError::Closed);
                }
            }
            Command::UploadEnd(id) => {
                let _ = machine.finish(id, None);
            }
            Command::UploadFailed(id, error) => self.abandon(machine, id, error),
        }
        // Commands carry no mailbox: new uploads start at the next event or settle.
        let _ = ctx;
        self.pump_waiting(machine);
    }

    fn settled(
        &mut self,
        machine: &mut H2ClientConn,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command, UploadStatus>,
    ) {
        self.pump(machine, ctx, mailbox);
        let streams = &self.streams;
        self.uploading.retain(|id| streams.contains_key(id));
        {
            let mut status = mailbox.status_mut();
            status.ready.clear();
            status.ready.extend(
                self.uploading
                    .iter()
                    .copied()
                    .filter(|&id| machine.is_ready(id)),
            );
        }
        mailbox.wake_waiters();
    }

    fn lost(&mut self, _machine: &mut H2ClientConn, _ctx: &mut Context<'_>, reason: LostReason) {
        let failure = match (self.failed.take(), reason) {
            (Some(failure), _) => failure,
            (None, LostReason::ConnectTimeout) => Failure::ConnectTimeout,
            (None, LostReason::ConnectFailed(error)) => {
                Failure::Connect(error.source.kind(), error.source.to_string())
            }
            (None, LostReason::Tls(error)) => Failure::Tls(error),
            (None, _) => Failure::Closed,
        };
        self.fail(failure);
    }
}

/// Where an [`H2Connection`] connects: an address or a host name, with TLS or without.
#[derive(Clone, Debug)]
pub struct H2Target {
    /// The server's address (with `host`: only its port counts).
    pub addr: SocketAddr,
    /// A host name resolved through the core's resolver at connect time.
    pub host: Option<String>,
    /// TLS: a connector that offers ALPN `h2`, and the server name to verify.
    pub tls: Option<(TlsConnector, ringwork::tls::ServerName<'static>)>,
    /// How long a request may wait for its response head (`None`: forever).
    pub response_timeout: Option<std::time::Duration>,
    /// How long a response body may stall while its sink holds none of it (`None`:
    /// forever): [`ClientError::BodyTimeout`].
    pub body_timeout: Option<std::time::Duration>,
    /// How long the connection may stay without a request in flight (`None`: forever);
    /// then GOAWAY and a close (the next request opens a new one).
    pub idle_timeout: Option<std::time::Duration>,
}

/// An HTTP/2 connection carrying many requests at once (see the module docs).
#[derive(Clone)]
pub struct H2Connection {
    sender: MailboxSender<Command, UploadStatus>,
    /// The connect call itself failed (no callbacks will come): each request gets its
    /// error.
    opened: Rc<RefCell<Option<Failure>>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for H2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Connection")
            .field("addr", &self.addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl H2Connection {
    /// Opens a connection to `addr` on the core of `handle`: h2c with prior knowledge, or
    /// with `tls` (a connector that offers ALPN `h2`, and the server name to verify) HTTP/2
    /// over TLS. Response bodies are limited to `max_body` bytes.
    #[must_use]
    pub fn open(
        handle: &LocalHandle,
        addr: SocketAddr,
        tls: Option<(TlsConnector, ringwork::tls::ServerName<'static>)>,
        config: H2Config,
        max_body: u64,
    ) -> Self {
        Self::open_target(
            handle,
            H2Target {
                addr,
                host: None,
                tls,
                response_timeout: None,
                body_timeout: None,
                idle_timeout: None,
            },
            config,
            max_body,
            std::time::Duration::from_secs(10),
        )
    }

    /// [`H2Connection::open`] to a [`H2Target`] (a host name too), with a connect
    /// timeout.
    #[must_use]
    pub fn open_target(
        handle: &LocalHandle,
        target: H2Target,
        config: H2Config,
        max_body: u64,
        connect_timeout: std::time::Duration,
    ) -> Self {
        let addr = target.addr;
        let app = H2App {
            addr,
            tls: target.tls.is_some(),
            max_body,
            response_timeout: target.response_timeout,
            body_timeout: target.body_timeout,
            waiting: VecDeque::new(),
            streams: HashMap::new(),
            failed: None,
            uploads: Vec::new(),
            uploading: Vec::new(),
        };
        let mut machine = H2ClientConn::new(config);
        machine.set_response_timeout(target.response_timeout);
        machine.set_body_timeout(target.body_timeout);
        machine.set_idle_timeout(target.idle_timeout);
        let adapter = Adapter::new(machine, app);
        let sender = adapter.sender();
        let opened = Rc::new(RefCell::new(None));
        let failed = Rc::clone(&opened);
        handle.run(move |reactor| {
            let mut options = ConnectOptions::new().timeout(connect_timeout);
            if let Some((connector, name)) = target.tls {
                options = options.tls(connector, name);
            }
            let result = match &target.host {
                Some(host) => reactor
                    .connect_host(host, addr.port(), adapter, options)
                    .map(drop),
                None => reactor.connect(&addr.into(), adapter, options).map(drop),
            };
            if let Err(error) = result {
                let failure = match connect_error(addr, error) {
                    ClientError::Connect { source, .. } => {
                        Failure::Connect(source.kind(), source.to_string())
                    }
                    ClientError::Tls { error, .. } => Failure::Tls(error),
                    _ => Failure::Closed,
                };
                *failed.borrow_mut() = Some(failure);
            }
        });
        Self {
            sender,
            opened,
            addr,
        }
    }

    /// Sends `request` (its body whole) on a new stream and buffers the response.
    ///
    /// # Errors
    /// The connection failed ([`ClientError::Connect`], [`ClientError::Tls`],
    /// [`ClientError::Http2NotNegotiated`], [`ClientError::Closed`]), the stream was reset
    /// ([`ClientError::Http2Reset`]), or the body passed the limit.
    pub fn request(
        &self,
        request: ClientRequest,
    ) -> impl Future<Output = Result<ClientResponse, ClientError>> + 'static {
        let exchange = self.request_with(request, Buffered::default());
        async move {
            let buffered = exchange.await?;
            Ok(ClientResponse {
                head: buffered.head.ok_or(ClientError::Closed)?,
                body: buffered.body.freeze(),
                trailers: buffered.trailers,
            })
        }
    }

    /// Sends `request` (its body whole) on a new stream, feeding the response to `sink`
    /// as it arrives; resolves to the sink once the response is complete.
    ///
    /// # Errors
    /// As [`H2Connection::request`].
    pub fn request_with<S: ResponseSink>(
        &self,
        request: ClientRequest,
        sink: S,
    ) -> impl Future<Output = Result<S, ClientError>> + 'static {
        let outcome = self.send(request, sink);
        async move {
            match outcome.await {
                Outcome::Done(sink) => Ok(sink),
                Outcome::Failed { error, .. } => Err(error),
            }
        }
    }

    /// [`H2Connection::request_with`] with the outcome as the client's retry logic needs
    /// it: a request the server never saw because it did not negotiate `h2` gives its sink
    /// back (`retry`), for HTTP/1.1.
    pub(crate) fn send<S: ResponseSink>(
        &self,
        request: ClientRequest,
        sink: S,
    ) -> impl Future<Output = Outcome<S>> + 'static {
        let (deferred, resolver) = Deferred::new();
        let addr = self.addr;
        let refused = match self.opened.borrow().as_ref() {
            Some(failure) => Some(failure.error(addr)),
            None => {
                let send = Send {
                    request,
                    exchange: Box::new(Pending { sink, resolver }),
                    refused: 0,
                };
                match self.sender.post(Command::Send(Box::new(send))) {
                    Ok(()) => None,
                    Err(Command::Send(send)) => {
                        send.exchange.fail(ClientError::Closed, false);
                        None
                    }
                    Err(_) => None,
                }
            }
        };
        let opened = Rc::clone(&self.opened);
        async move {
            if let Some(error) = refused {
                return Outcome::Failed { error, retry: None };
            }
            match deferred.await {
                Ok(outcome) => outcome,
                // The connection was dropped unopened: its connect error, if known.
                Err(_) => Outcome::Failed {
                    error: opened
                        .borrow()
                        .as_ref()
                        .map_or(ClientError::Closed, |failure| failure.error(addr)),
                    retry: None,
                },
            }
        }
    }

    /// Whether the connection is gone.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.opened.borrow().is_some()
    }
}
