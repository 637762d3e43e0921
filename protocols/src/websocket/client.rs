//! The WebSocket client on the engine: `ws://` and `wss://` (the engine's TLS connector),
//! the same [`WsConn`] machine in the client role, driven for a task.
//!
//! Owns: [`connect`] (URL to open connection), [`WsClient`] (what the task holds: events,
//! sends, close), [`WsClientOptions`] and [`WsClientError`].
//! Contract: [`connect`] resolves once the handshake is done: the `101` checked (status,
//! `Upgrade`, `Connection`, the accept key, the subprotocol among those offered, the
//! extensions offered) — or fails saying why. Every connection gets 32 bytes from the
//! operating system's generator (ring's `SystemRandom`) as the seed of its handshake nonce
//! and masking keys (RFC 6455 §5.3, §10.3).
//! Does not: resolve host names (an IP literal or `localhost` in the URL, or
//! [`WsClientOptions::addr`]), follow redirects, or reconnect.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use ring::rand::SecureRandom;
use ringwork::tls::{Roots, TlsConnector};
use ringwork::{ConnectOptions, LocalHandle};

use super::proto::handshake::{HandshakeError, Negotiated, WsRequest};
use super::proto::{CloseCode, Message, SendError, WsConfig, WsConn, WsError, WsEvent};
use crate::kit::channel::{ConnHandle, channel};

/// How to connect.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct WsClientOptions {
    /// The connection's settings (limits, permessage-deflate offer, keepalive); its
    /// `mask_seed` is replaced by fresh randomness.
    pub config: WsConfig,
    /// Subprotocols to offer, in order of preference.
    pub protocols: Vec<String>,
    /// More request fields (`Origin`, `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Where to connect, when the URL's host is a name (names are not resolved here).
    pub addr: Option<SocketAddr>,
    /// The TLS connector of `wss://` (default: the system's roots, ALPN `http/1.1`).
    pub tls: Option<TlsConnector>,
    /// The name `wss://` sends by SNI and verifies the certificate against (default: the
    /// URL's host).
    pub server_name: Option<String>,
    /// Time allowed for the TCP connect (default 10 s; the handshake has
    /// [`WsConfig::handshake_timeout`], TLS its connector's).
    pub connect_timeout: Option<Duration>,
}

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsClientError {
    /// Not a `ws://` or `wss://` URL this client can use.
    #[error("invalid websocket URL {url:?}: {why}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The TLS connector could not be built, or the host is not a valid server name.
    #[error("tls: {0}")]
    Tls(#[from] ringwork::tls::TlsConfigError),
    /// The TCP (or TLS) connection failed.
    #[error("connect: {0}")]
    Connect(#[from] ringwork::ConnectError),
    /// The server's answer was not a valid handshake.
    #[error("handshake: {0}")]
    Handshake(HandshakeError),
    /// The connection ended during the handshake.
    #[error("connection closed during the handshake: {0}")]
    Closed(String),
    /// The operating system's random generator failed.
    #[error("no randomness for the masking keys")]
    Random,
}

/// A `ws://` or `wss://` URL, split.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct WsUrl {
    /// `wss://`.
    pub tls: bool,
    /// The host as written (brackets removed from an IPv6 literal).
    pub host: String,
    /// The port (80 or 443 by default).
    pub port: u16,
    /// Path and query (`/` when empty).
    pub path: String,
}

impl WsUrl {
    /// Parses `url`.
    ///
    /// # Errors
    /// [`WsClientError::Url`].
    pub fn parse(url: &str) -> Result<Self, WsClientError> {
        let bad = |why| WsClientError::Url {
            url: url.to_owned(),
            why,
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else {
            return Err(bad("the scheme must be ws:// or wss://"));
        };
        // RFC 6455 §3: no fragment.
        if rest.contains('#') {
            return Err(bad("a fragment is not allowed"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(bad("unclosed IPv6 literal"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| bad("invalid port"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The `Host` field value.
    #[must_use]
    pub fn host_field(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// An open WebSocket connection, for a task (`!Send`: it lives on its core).
#[derive(Clone, Debug)]
pub struct WsClient {
    conn: ConnHandle<WsConn>,
    negotiated: Negotiated,
}

impl WsClient {
    /// What the handshake settled (subprotocol, extensions).
    #[must_use]
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The next event; `None` once the connection is gone and its events were taken.
    pub async fn next_event(&self) -> Option<WsEvent> {
        self.conn.next_event().await
    }

    /// The next message; `None` once the connection is closed (pings, pongs and the close
    /// handshake are handled by the machine).
    pub async fn recv(&self) -> Option<Message> {
        loop {
            match self.conn.next_event().await? {
                WsEvent::Message(message) => return Some(message),
                WsEvent::Closed(_) => return None,
                _ => {}
            }
        }
    }

    /// Sends a message (see [`WsConn::send`]).
    ///
    /// # Errors
    /// The connection is gone or closing.
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        self.call(move |conn| conn.send(message))
    }

    /// Sends a message in frames of at most `fragment` bytes.
    ///
    /// # Errors
    /// As [`WsClient::send`].
    pub fn send_fragmented(&self, message: Message, fragment: usize) -> Result<(), SendError> {
        self.call(move |conn| conn.send_fragmented(message, fragment))
    }

    /// Sends a ping.
    ///
    /// # Errors
    /// As [`WsClient::send`].
    pub fn ping(&self, payload: Bytes) -> Result<(), SendError> {
        self.call(move |conn| conn.ping(payload))
    }

    /// Starts the close handshake.
    ///
    /// # Errors
    /// As [`WsConn::close`].
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        let reason = reason.to_owned();
        self.call(move |conn| conn.close(code, &reason))
    }

    /// The machine's handle, for anything else ([`ConnHandle::call`]).
    #[must_use]
    pub fn handle(&self) -> &ConnHandle<WsConn> {
        &self.conn
    }

    fn call(
        &self,
        f: impl FnOnce(&mut WsConn) -> Result<(), SendError> + 'static,
    ) -> Result<(), SendError> {
        // The call runs this turn, after the caller's poll: its own refusal (closing) cannot
        // be returned here, only a connection already gone.
        self.conn
            .call(move |conn| {
                let _ = f(conn);
            })
            .map_err(|_| SendError::Closing)
    }
}

/// Connects to `url` (`ws://` or `wss://`) on `handle`'s core and completes the opening
/// handshake.
///
/// # Errors
/// A [`WsClientError`] saying which step failed.
pub async fn connect(
    handle: &LocalHandle,
    url: &str,
    options: WsClientOptions,
) -> Result<WsClient, WsClientError> {
    let parsed = WsUrl::parse(url)?;
    let addr = match options.addr {
        Some(addr) => addr,
        None => {
            let ip = if parsed.host.eq_ignore_ascii_case("localhost") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                parsed.host.parse().map_err(|_| WsClientError::Url {
                    url: url.to_owned(),
                    why: "the host is a name: give WsClientOptions::addr (names are not resolved)",
                })?
            };
            SocketAddr::new(ip, parsed.port)
        }
    };
    let mut config = options.config;
    config.protocols = options.protocols.clone();
    ring::rand::SystemRandom::new()
        .fill(&mut config.mask_seed)
        .map_err(|_| WsClientError::Random)?;
    let request = WsRequest {
        host: parsed.host_field(),
        path: parsed.path.clone(),
        protocols: options.protocols,
        headers: options.headers,
    };
    let (adapter, conn) = channel(WsConn::client(config, &request));
    let mut connect =
        ConnectOptions::new().timeout(options.connect_timeout.unwrap_or(Duration::from_secs(10)));
    if parsed.tls {
        let connector = match options.tls {
            Some(connector) => connector,
            None => TlsConnector::builder()
                .roots(Roots::System)
                .alpn([&b"http/1.1"[..]])
                .build()?,
        };
        let name = options.server_name.as_deref().unwrap_or(&parsed.host);
        connect = connect.tls(connector, ringwork::tls::server_name(name)?);
    }
    handle.connect(addr, adapter, connect).await?;
    match conn.next_event().await {
        Some(WsEvent::Open(negotiated)) => Ok(WsClient { conn, negotiated }),
        Some(WsEvent::Closed(info)) => Err(match info.error {
            Some(WsError::Handshake(error)) => WsClientError::Handshake(error),
            _ => WsClientError::Closed(info.reason),
        }),
        other => Err(WsClientError::Closed(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = WsUrl::parse("ws://127.0.0.1:9000/chat?room=1").unwrap();
        assert_eq!(
            url,
            WsUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 9000,
                path: "/chat?room=1".into()
            }
        );
        assert_eq!(url.host_field(), "127.0.0.1:9000");
        let url = WsUrl::parse("wss://example.com").unwrap();
        assert_eq!((url.port, url.path.as_str()), (443, "/"));
        assert_eq!(url.host_field(), "example.com");
        let url = WsUrl::parse("ws://[::1]:8080?x").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("::1", 8080, "/?x")
        );
        assert_eq!(url.host_field(), "[::1]:8080");
        for bad in [
            "http://x/",
            "ws://x/#frag",
            "ws://:80/",
            "ws://x:99999/",
            "ws://u@x/",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
