//! Outbound connections: [`ConnectOptions`] and the one connect step shared by
//! [`Context::connect`](crate::Context::connect) and
//! [`Reactor::connect`](crate::Reactor::connect).
//!
//! Owns: the options of a connect (its timeout, TLS from the start) and how a connect
//! starts: the socket, the connection in the table (connecting, with its timeout armed), the
//! TLS session if asked for.
//! Contract: on success the protocol gets `connection_made` once connected (with TLS: once
//! the handshake is done); on failure or timeout only `connection_lost`
//! ([`LostReason::ConnectFailed`](crate::LostReason::ConnectFailed),
//! [`LostReason::ConnectTimeout`](crate::LostReason::ConnectTimeout),
//! [`LostReason::Tls`](crate::LostReason::Tls)). An error returned by the call itself means
//! nothing was started: the protocol is dropped without callbacks.
//! Does not: resolve names (see [`resolve`](crate::resolve)), or retry.

use std::net::SocketAddr;
use std::time::Duration;

use ringwork_platform::{SockAddr, SocketOptions};

use crate::error::EngineError;
use crate::io::Io;
use crate::protocol::{ConnId, Protocol};
use crate::state::{Phase, Stage, State, Tls};
use crate::tls::{ServerName, TlsConnector};

/// How an outbound connection is opened by [`Context::connect`](crate::Context::connect)
/// or [`Reactor::connect`](crate::Reactor::connect). The default: plain, with the
/// reactor's [`connect_timeout`](crate::ReactorConfig::connect_timeout).
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// use ringwork::ConnectOptions;
/// use ringwork::tls::{Roots, TlsConnector, server_name};
///
/// let plain = ConnectOptions::default();
/// assert!(plain.timeout.is_none() && plain.tls.is_none());
///
/// # let ca = ringwork::testing::certs::TestCa::new();
/// # let ca_certificate = ca.cert.clone();
/// let connector = TlsConnector::builder()
///     .roots(Roots::Certificates(vec![ca_certificate]))
///     .build()?;
/// let tls = ConnectOptions::new()
///     .timeout(Duration::from_secs(2))
///     .tls(connector, server_name("example.com")?);
/// assert_eq!(tls.timeout, Some(Duration::from_secs(2)));
/// # Ok::<(), ringwork::tls::TlsConfigError>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Time allowed for the TCP (or Unix) connect; `None`: the reactor's
    /// [`ReactorConfig::connect_timeout`](crate::ReactorConfig::connect_timeout). A TLS
    /// handshake that follows is bounded by its connector's
    /// [`handshake_timeout`](crate::tls::TlsConnectorBuilder::handshake_timeout).
    pub timeout: Option<Duration>,
    /// Run TLS from the start with this connector, verifying the server as this name (see
    /// [`tls::server_name`](crate::tls::server_name)); `None`: plain.
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Connect from this local address (port 0: any port; Twisted's `bindAddress`). A
    /// connect by name then tries only addresses of its family. `None`: the system picks.
    pub bind: Option<SocketAddr>,
    /// Happy Eyeballs' Connection Attempt Delay (RFC 8305 §5) for connects by name: how
    /// long an attempt runs alone before the next address is tried beside it. `None`:
    /// [`DEFAULT_ATTEMPT_DELAY`](crate::happy_eyeballs::DEFAULT_ATTEMPT_DELAY) (250 ms);
    /// values are held within 100 ms to 2 s, as the RFC recommends.
    pub attempt_delay: Option<Duration>,
    /// Socket options set before the connect: buffer sizes, TCP keepalive, IP_TOS /
    /// IPV6_TCLASS, SO_BINDTODEVICE (see [`SocketOptions`]). Values are checked when the
    /// connect starts; a bad one fails it with an error naming the option.
    pub socket: SocketOptions,
    /// TCP Fast Open for this connect (Linux, TCP_FASTOPEN_CONNECT): `connection_made`
    /// comes at once and the SYN leaves with the first write, carrying its bytes when the
    /// kernel holds a Fast Open cookie of the server. A refused connect then shows as a
    /// lost connection after `connection_made`. For protocols whose client speaks first.
    pub fastopen: bool,
}

impl ConnectOptions {
    /// Plain, with the reactor's connect timeout (the same as [`ConnectOptions::default`]).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Options with this connect timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Options that connect from `bind` (see [`ConnectOptions::bind`]).
    #[must_use]
    pub fn bind(mut self, bind: SocketAddr) -> Self {
        self.bind = Some(bind);
        self
    }

    /// Options with this Happy Eyeballs Connection Attempt Delay (see
    /// [`ConnectOptions::attempt_delay`]).
    #[must_use]
    pub fn attempt_delay(mut self, delay: Duration) -> Self {
        self.attempt_delay = Some(delay);
        self
    }

    /// Options with these socket options (see [`ConnectOptions::socket`]).
    #[must_use]
    pub fn socket(mut self, socket: SocketOptions) -> Self {
        self.socket = socket;
        self
    }

    /// Options with TCP Fast Open (see [`ConnectOptions::fastopen`]).
    #[must_use]
    pub fn fastopen(mut self, on: bool) -> Self {
        self.fastopen = on;
        self
    }

    /// Options with TLS from the start: `connector`'s roots (or its
    /// [`dangerous_skip_verification`](crate::tls::TlsConnectorBuilder::dangerous_skip_verification)),
    /// client certificate and ALPN, verifying the server as `server_name`. The protocol gets
    /// `connection_made` once the handshake is done ([`Context::tls`](crate::Context::tls)
    /// then tells the session); writes before that are encrypted and sent once it is.
    #[must_use]
    pub fn tls(mut self, connector: TlsConnector, server_name: ServerName<'static>) -> Self {
        self.tls = Some((connector, server_name));
        self
    }
}

/// Starts an outbound connection to `addr` run by `protocol`.
pub(crate) fn start(
    state: &mut State,
    io: &mut dyn Io,
    addr: &SockAddr,
    protocol: Box<dyn Protocol>,
    options: ConnectOptions,
) -> Result<ConnId, EngineError> {
    use crate::tls::session::{Session, Start};
    let session = match options.tls {
        Some((connector, name)) => Some(Session::client(&connector, name, Start::Endpoint)?),
        None => None,
    };
    let timeout = options.timeout.unwrap_or(state.config.connect_timeout);
    let socket = io.connect(
        addr,
        &ringwork_platform::ConnectOptions {
            bind: options.bind.map(SockAddr::from),
            socket: options.socket,
            fastopen: options.fastopen,
        },
    )?;
    let timer = state
        .timers
        .add_connect_timeout(ConnId(socket), crate::timers::deadline(state.now, timeout));
    let id = state.insert(socket, protocol, Phase::Connecting { timer });
    if let Some(session) = session
        && let Some(conn) = state.conns.get_mut(id)
    {
        // The handshake timeout is armed once TCP is connected.
        conn.stage = Stage::Tls(Box::new(Tls::new(session)));
    }
    state.stats.connects += 1;
    Ok(id)
}
