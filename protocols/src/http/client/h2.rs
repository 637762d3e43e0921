//! One HTTP/2 connection for requests: [`H2Connection`], the [`H2ClientConn`] machine on the
//! kit's adapter, with requests multiplexed as streams.
//!
//! Owns: opening the connection (h2c with prior knowledge, or TLS offering ALPN `h2` and
//! refusing a server that picks anything else), queueing requests while the server's
//! concurrent-stream limit is reached, buffering each response, and failing what is in
//! flight when the connection goes.
//! Contract: [`H2Connection::open`] returns at once; requests posted before the connection
//! is up are sent once it is. Each [`H2Connection::request`] resolves to the whole response
//! or a [`ClientError`] (a stream reset is [`ClientError::Http2Reset`]). The connection is
//! `!Send` and belongs to the core it was opened on.
//! Does not: pool, retry, negotiate HTTP/1.1 as a fallback, or stream bodies (the
//! `HttpClient` does those for HTTP/1.1; its HTTP/2 path is not built yet).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use ringwork::tls::TlsConnector;
use ringwork::{ConnectOptions, Context, Deferred, LocalHandle, LostReason, Resolver};

use super::{ClientError, ClientRequest, ClientResponse, connect_error};
use crate::http::proto::ResponseHead;
use crate::http::proto::h2::frame::ErrorCode;
use crate::http::proto::h2::{ClientEvent, H2ClientConn, H2ClientError, H2Config, RequestParts};
use crate::kit::adapter::{Adapter, Application, Mailbox, MailboxSender};

/// The ALPN id of HTTP/2.
const ALPN_H2: &[u8] = b"h2";

type Reply = Resolver<Result<ClientResponse, ClientError>>;

/// A request posted to the connection.
struct Send {
    request: ClientRequest,
    reply: Reply,
    /// Times the server refused its stream unprocessed (REFUSED_STREAM).
    refused: u8,
}

/// Times a refused stream is sent again (RFC 9113 §8.7: it was not processed). A client
/// sends before the server's SETTINGS arrive, so a server with a small stream limit refuses
/// the first streams past it.
const MAX_REFUSED: u8 = 3;

/// A response being received.
struct Receiving {
    /// The request, kept to send again if its stream is refused unprocessed.
    send: Send,
    head: Option<ResponseHead>,
    body: BytesMut,
    limit: u64,
}

/// The glue of one HTTP/2 client connection.
struct H2App {
    addr: SocketAddr,
    tls: bool,
    max_body: u64,
    /// Requests waiting for a free stream (the server's limit).
    waiting: VecDeque<Send>,
    streams: HashMap<u32, Receiving>,
    /// Set when the connection cannot carry requests (lost, refused h2): later requests
    /// fail with it at once.
    failed: Option<Failure>,
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

impl H2App {
    /// Sends what waits while streams are free.
    fn pump(&mut self, machine: &mut H2ClientConn) {
        while machine.can_open() {
            let Some(send) = self.waiting.pop_front() else {
                return;
            };
            self.start(machine, send);
        }
        if !machine.is_open() {
            // GOAWAY or closing: nothing more will be sent on this connection.
            for send in self.waiting.drain(..) {
                send.reply.resolve(Err(ClientError::Closed));
            }
        }
    }

    fn fail(&mut self, failure: Failure) {
        let addr = self.addr;
        for send in self.waiting.drain(..) {
            send.reply.resolve(Err(failure.error(addr)));
        }
        for (_, receiving) in self.streams.drain() {
            receiving.send.reply.resolve(Err(failure.error(addr)));
        }
        self.failed = Some(failure);
    }

    fn start(&mut self, machine: &mut H2ClientConn, send: Send) {
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
        match machine.send_request(parts, body.is_empty()) {
            Ok(id) => {
                if !body.is_empty() {
                    // The stream is new and open: these cannot fail.
                    let _ = machine.send_body(id, body);
                    let _ = machine.finish(id, None);
                }
                self.streams.insert(
                    id,
                    Receiving {
                        send,
                        head: None,
                        body: BytesMut::new(),
                        limit: self.max_body,
                    },
                );
            }
            Err(H2ClientError::Busy) => self.waiting.push_front(send),
            Err(_) => send.reply.resolve(Err(ClientError::Closed)),
        }
    }
}

impl Application<H2ClientConn> for H2App {
    type Command = Send;
    type Status = ();

    fn connected(
        &mut self,
        machine: &mut H2ClientConn,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Send>,
    ) {
        if self.tls && ctx.tls().and_then(|t| t.alpn.as_deref()) != Some(ALPN_H2) {
            // RFC 9113 §3.2: HTTP/2 over TLS is what ALPN "h2" picked, nothing else.
            self.fail(Failure::NotNegotiated);
            ctx.close();
            return;
        }
        self.pump(machine);
    }

    fn event(
        &mut self,
        machine: &mut H2ClientConn,
        event: ClientEvent,
        _ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Send>,
    ) {
        match event {
            ClientEvent::Response { id, head, .. } => {
                if let Some(receiving) = self.streams.get_mut(&id) {
                    receiving.head = Some(head);
                }
            }
            ClientEvent::Body { id, data } => {
                machine.release_body(id, data.len());
                let Some(receiving) = self.streams.get_mut(&id) else {
                    return;
                };
                if receiving.body.len() as u64 + data.len() as u64 > receiving.limit {
                    let limit = receiving.limit;
                    machine.cancel(id);
                    if let Some(receiving) = self.streams.remove(&id) {
                        receiving
                            .send
                            .reply
                            .resolve(Err(ClientError::BodyTooLarge { limit }));
                    }
                    return;
                }
                receiving.body.extend_from_slice(&data);
            }
            ClientEvent::End { id, trailers } => {
                if let Some(receiving) = self.streams.remove(&id) {
                    let result = match receiving.head {
                        Some(head) => Ok(ClientResponse {
                            head,
                            body: receiving.body.freeze(),
                            trailers,
                        }),
                        None => Err(ClientError::Closed),
                    };
                    receiving.send.reply.resolve(result);
                }
            }
            ClientEvent::Reset { id, code } => {
                if let Some(receiving) = self.streams.remove(&id) {
                    let mut send = receiving.send;
                    if code == ErrorCode::REFUSED_STREAM
                        && receiving.head.is_none()
                        && send.refused < MAX_REFUSED
                    {
                        send.refused += 1;
                        self.waiting.push_front(send);
                    } else {
                        send.reply
                            .resolve(Err(ClientError::Http2Reset { code: code.0 }));
                    }
                }
            }
        }
        self.pump(machine);
    }

    fn command(&mut self, machine: &mut H2ClientConn, send: Send, _ctx: &mut Context<'_>) {
        if let Some(failure) = &self.failed {
            send.reply.resolve(Err(failure.error(self.addr)));
            return;
        }
        self.waiting.push_back(send);
        self.pump(machine);
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

/// An HTTP/2 connection carrying many requests at once (see the module docs).
#[derive(Clone)]
pub struct H2Connection {
    sender: MailboxSender<Send>,
    /// The connect call itself failed (no callbacks will come): each request gets its
    /// error.
    opened: Rc<RefCell<Option<Failure>>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for H2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Connection")
            .field("closed", &self.sender.is_closed())
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
        let app = H2App {
            addr,
            tls: tls.is_some(),
            max_body,
            waiting: VecDeque::new(),
            streams: HashMap::new(),
            failed: None,
        };
        let adapter = Adapter::new(H2ClientConn::new(config), app);
        let sender = adapter.sender();
        let opened = Rc::new(RefCell::new(None));
        let failed = Rc::clone(&opened);
        handle.run(move |reactor| {
            let mut options = ConnectOptions::new();
            if let Some((connector, name)) = tls {
                options = options.tls(connector, name);
            }
            if let Err(error) = reactor.connect(&addr.into(), adapter, options) {
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
        let (deferred, reply) = Deferred::new();
        let addr = self.addr;
        let refused = match self.opened.borrow().as_ref() {
            Some(failure) => Some(failure.error(addr)),
            None => self
                .sender
                .post(Send {
                    request,
                    reply,
                    refused: 0,
                })
                .err()
                .map(|send| {
                    send.reply.resolve(Err(ClientError::Closed));
                    ClientError::Closed
                }),
        };
        let opened = Rc::clone(&self.opened);
        async move {
            if let Some(error) = refused {
                return Err(error);
            }
            match deferred.await {
                Ok(result) => result,
                // The connection was dropped unopened: its connect error, if known.
                Err(_) => Err(opened
                    .borrow()
                    .as_ref()
                    .map_or(ClientError::Closed, |failure| failure.error(addr))),
            }
        }
    }

    /// Whether the connection is gone.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.opened.borrow().is_some()
    }
}
