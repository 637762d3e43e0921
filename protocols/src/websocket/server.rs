//! The WebSocket server on the engine: a handler upgrades a request
//! ([`Request::upgrade_websocket`]), and the connection (HTTP/1.1) or the request's stream
//! (HTTP/2 extended CONNECT, RFC 8441) becomes a [`WsConn`] run by the kit's adapter (or
//! [`Nested`] inside the HTTP/2 connection) for an [`Application`] of the caller's
//! (callbacks), or for a task ([`Request::upgrade_websocket_task`], events from
//! `next_event().await`).
//!
//! Owns: the upgrade (the request checked with [`handshake::check_request`], a `101` built
//! from its [`Accepted`](super::proto::Accepted) fields, or 400/426 for a bad request) and
//! [`WsEcho`], the application of `ringwork serve ws-echo`. Over HTTP/2: the extended
//! CONNECT checked with [`handshake::check_extended_connect`], a `200` with the
//! negotiation's fields, and the machine carried by the stream ([`Responder::carry`]).
//! Contract: the HTTP machine holds what the client sent after its upgrade request and hands
//! it, with the connection, to the WebSocket machine once the `101` is out
//! ([`Responder::upgrade`]). Messages arrive as [`WsEvent::Message`]; sending is
//! [`WsConn::send`] with [`WsConn::can_send`] and [`WsEvent::Drained`] for backpressure.
//! Does not: parse frames (the machine does) or keep time.

use ringwork::Context;

use super::proto::handshake::{self, HandshakeError, Negotiated};
use super::proto::{WsConfig, WsConn, WsEvent};
use crate::http::proto::Version;
use crate::http::server::{HttpServer, Request, Responder, Response, ServerConfig};
use crate::kit::adapter::{Adapter, Application, Mailbox};
use crate::kit::channel::{ConnHandle, channel};
use crate::kit::nested::{Nested, nested_channel};

/// Answers a refused handshake: 400, or 426 naming the version we speak (RFC 6455 §4.4).
fn refuse(respond: Responder, error: &HandshakeError) {
    let mut response = Response::error(error.status());
    if error.status() == 426 {
        response = response.header("Sec-WebSocket-Version", "13");
    }
    respond.send(response);
}

/// Checks the upgrade request and answers it: the `101` (HTTP/1.1) or `200` (HTTP/2) and
/// the machine that takes over after it, or a refusal.
fn accept(
    request: &Request,
    respond: Responder,
    config: WsConfig,
) -> Result<(Responder, Response, WsConn, Negotiated), HandshakeError> {
    if request.version() == Version::Http2 {
        return match handshake::check_extended_connect(request.head(), &config) {
            Ok(negotiated) => {
                // RFC 8441 §5: a 2xx accepts; the stream is the WebSocket from then on.
                let mut response = Response::new(200);
                for (name, value) in negotiated.response_fields() {
                    response = response.header(name, value);
                }
                let machine = WsConn::server(config, negotiated.clone());
                Ok((respond, response, machine, negotiated))
            }
            Err(error) => {
                refuse(respond, &error);
                Err(error)
            }
        };
    }
    match handshake::check_request(request.head(), &config) {
        Ok(accepted) => {
            let mut response = Response::new(101);
            for (name, value) in accepted.response_fields() {
                // The server writes Connection itself (`Connection: Upgrade` for a 101).
                if name != "Connection" {
                    response = response.header(name, value);
                }
            }
            let negotiated = accepted.negotiated;
            let machine = WsConn::server(config, negotiated.clone());
            Ok((respond, response, machine, negotiated))
        }
        Err(error) => {
            refuse(respond, &error);
            Err(error)
        }
    }
}

impl Request {
    /// Whether this request asks to upgrade to WebSocket (`Upgrade: websocket`, or on
    /// HTTP/2 an extended CONNECT with `:protocol` websocket).
    #[must_use]
    pub fn is_websocket_upgrade(&self) -> bool {
        handshake::is_upgrade_request(self.head())
    }

    /// Upgrades to WebSocket, with `app` handling the connection's events (it gets the
    /// [`WsConn`] to send with): checks the request (RFC 6455 §4.2.1), negotiates the
    /// subprotocol and permessage-deflate as `config` says, sends the `101`, and hands the
    /// connection over once it is out. Returns what was negotiated.
    ///
    /// On HTTP/2 (RFC 8441) the request is an extended CONNECT: it is answered `200` and
    /// the WebSocket runs over its stream's DATA frames (the stream's flow control is the
    /// backpressure; END_STREAM and RST_STREAM end it), inside the HTTP/2 connection,
    /// whose other streams go on. `app`'s callbacks then get the HTTP/2 connection's
    /// `Context` (its `buffered()` counts every stream).
    ///
    /// # Errors
    /// The request is not a valid handshake: it was answered (400, or 426 for another
    /// version) and the connection stays HTTP.
    pub fn upgrade_websocket<A: Application<WsConn>>(
        &self,
        respond: Responder,
        config: WsConfig,
        app: A,
    ) -> Result<Negotiated, HandshakeError> {
        let (respond, response, machine, negotiated) = accept(self, respond, config)?;
        if self.version() == Version::Http2 {
            respond.carry(response, Nested::new(machine, app));
        } else {
            respond.upgrade(response, Adapter::new(machine, app));
        }
        Ok(negotiated)
    }

    /// [`Request::upgrade_websocket`] for a task: events come from
    /// [`ConnHandle::next_event`], sends are [`ConnHandle::call`]s on the machine.
    ///
    /// # Errors
    /// As [`Request::upgrade_websocket`].
    pub fn upgrade_websocket_task(
        &self,
        respond: Responder,
        config: WsConfig,
    ) -> Result<ConnHandle<WsConn>, HandshakeError> {
        let (respond, response, machine, _) = accept(self, respond, config)?;
        if self.version() == Version::Http2 {
            let (nested, handle) = nested_channel(machine);
            respond.carry(response, nested);
            return Ok(handle);
        }
        let (adapter, handle) = channel(machine);
        respond.upgrade(response, adapter);
        Ok(handle)
    }
}

/// Echoes every message back (text as text, binary as binary), with backpressure: reading
/// pauses while the peer is not taking the echoes.
#[derive(Clone, Copy, Debug, Default)]
pub struct WsEcho;

impl Application<WsConn> for WsEcho {
    type Command = ();
    type Status = ();

    fn event(
        &mut self,
        machine: &mut WsConn,
        event: WsEvent,
        _ctx: &mut Context<'_>,
        _mailbox: &Mailbox<()>,
    ) {
        match event {
            WsEvent::Message(message) => {
                // Refused only once closing: nothing to echo to then.
                let _ = machine.send(message);
                if !machine.can_send() {
                    machine.pause_reading();
                }
            }
            WsEvent::Drained => machine.resume_reading(),
            _ => {}
        }
    }
}

/// The settings of the WebSocket services (`ringwork serve ws-echo`, `ws-chat`): the
/// defaults, with permessage-deflate accepted when a client offers it.
#[must_use]
pub fn service_config() -> WsConfig {
    WsConfig {
        deflate: Some(super::proto::DeflateConfig::default()),
        ..WsConfig::default()
    }
}

/// `ringwork serve ws-echo`: an HTTP server whose every WebSocket upgrade (any path;
/// HTTP/1.1 or an HTTP/2 extended CONNECT)
/// becomes a [`WsEcho`] connection; other requests get a line saying what this is.
#[must_use]
pub fn ws_echo_server(http: ServerConfig, ws: WsConfig) -> HttpServer {
    HttpServer::new(
        move |request: Request, respond: Responder| {
            if request.is_websocket_upgrade() {
                // A refused handshake was answered (400/426).
                let _ = request.upgrade_websocket(respond, ws.clone(), WsEcho);
            } else {
                respond.send(Response::text(
                    "ringwork ws-echo: a WebSocket echo server (connect with ws://HOST:PORT/)\n",
                ));
            }
        },
        http,
    )
}
