//! The reverse proxy's configuration: the validated [`ProxyConfig`] and [`ConfigError`];
//! with feature `toml-config`, reading it from a TOML file (`config/file.rs`:
//! `ProxyConfig::load`, `ProxyConfig::from_toml`).
//!
//! Owns: [`ProxyConfig`], [`Timeouts`], [`UpstreamConfig`], [`ConfigError`].
//! Does not: open sockets. The file format is documented in `docs/http-proxy.md`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::http::reverse_proxy::headers::ForwardedMode;
use crate::http::reverse_proxy::routing::RouteTable;
use crate::http::reverse_proxy::upstream_tls::UpstreamTls;

#[cfg(feature = "toml-config")]
mod file;

/// A validated proxy configuration.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where to listen (`tcp:8080`, `tcp6:…`, `unix:/path`); empty when the file has no
    /// `listen` (the program supplies the endpoints, e.g. `ringwork serve --listen`).
    pub listen: Vec<Endpoint>,
    /// Reactor threads (`None`: one per CPU).
    pub cores: Option<usize>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Largest request body accepted from a client (413 past it). Default 8 MiB.
    pub max_body: u64,
    /// How received `X-Forwarded-For` / `Forwarded` values are treated.
    pub forwarded: ForwardedMode,
    /// The `proto` this proxy reports (`http`, or `https` behind a TLS terminator).
    pub proto: String,
    /// Idle keep-alive connections kept per upstream server, per core (nginx's
    /// `keepalive`). Default 32.
    pub keepalive: usize,
    /// Connections open at once per upstream server, per core; requests past it wait for
    /// one. Default 64.
    pub max_connections_per_server: usize,
    /// Upstream pools, in name order (routes refer to them by index).
    pub upstreams: Vec<UpstreamConfig>,
    /// The routes.
    pub routes: RouteTable,
    /// Per-client limits (`[limits]`): none by default.
    pub limits: ClientLimits,
}

/// Per-client limits of a server: requests per second with a burst (429 past them) and
/// connections at once, per client IP.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClientLimits {
    /// The token bucket of each client IP (`requests_per_second`, `burst`).
    pub requests: Option<crate::limits::RateLimit>,
    /// Live connections per client IP (`connections_per_ip`).
    pub connections_per_ip: Option<u32>,
}

/// Timeouts of the proxy.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Timeouts {
    /// Connecting to an upstream (past it: 504 if no other server is left). Default 5 s.
    pub connect: Duration,
    /// From the request sent to the upstream's response head (past it: 504). Default 30 s.
    pub response_head: Duration,
    /// Idle keep-alive connections, both to clients and to upstreams. Default 60 s.
    pub idle: Duration,
    /// Longest stall inside a body, either direction. Default 30 s.
    pub body: Duration,
    /// A client that takes no byte of its response for this long is cut off (write-stall
    /// timeout, nginx's `send_timeout`); zero: never. Default 60 s.
    pub write: Duration,
    /// An upgraded connection (a WebSocket tunnel) with no byte either way for this long
    /// is closed at both ends. Default 300 s.
    pub tunnel: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response_head: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            body: Duration::from_secs(30),
            write: Duration::from_secs(60),
            tunnel: Duration::from_secs(300),
        }
    }
}

/// One server of an upstream pool: an address, or a host name resolved at each new
/// connection (through the core's name resolver, with Happy Eyeballs), so a name whose
/// addresses change is followed without a reload.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub enum ServerAddr {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A host name and port.
    Host {
        /// The name (`backend.internal`).
        name: String,
        /// The port.
        port: u16,
    },
}

impl From<SocketAddr> for ServerAddr {
    fn from(addr: SocketAddr) -> Self {
        ServerAddr::Addr(addr)
    }
}

impl std::str::FromStr for ServerAddr {
    type Err = String;

    /// `host:port`: an IP literal (`[::1]:80` for IPv6) or a host name; nothing is
    /// resolved here.
    fn from_str(server: &str) -> Result<Self, String> {
        if let Ok(addr) = server.parse() {
            return Ok(ServerAddr::Addr(addr));
        }
        let not = || format!("{server:?} is not host:port");
        let (host, port) = server.rsplit_once(':').ok_or_else(not)?;
        let port: u16 = port.parse().map_err(|_| not())?;
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.trim_end_matches('.').split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "{server:?}: {host:?} is not a host name or an IP address"
            ));
        }
        Ok(ServerAddr::Host {
            name: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddr::Addr(addr) => write!(f, "{addr}"),
            ServerAddr::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

/// One upstream pool.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamConfig {
    /// The name routes use.
    pub name: String,
    /// Its servers (round-robin).
    pub servers: Vec<ServerAddr>,
    /// How long a failed server is skipped. Default 10 s.
    pub backoff: Duration,
    /// How a server is chosen (`balance`, `hash_key`). Default round-robin.
    pub balance: super::balance::Balance,
    /// The active health check (`[upstreams.NAME.health]`), if any.
    pub health: Option<super::health::HealthCheck>,
    /// TLS to the servers (`https://` servers), `None` for plaintext.
    pub tls: Option<UpstreamTls>,
    /// Which HTTP to speak to the servers (`protocol = "h1" | "h2" | "h2c" | "auto"`;
    /// `http2 = true` is the older spelling of `h2c` for plaintext pools and `auto` for
    /// `https://` ones): see [`HttpProtocol`](crate::http::client::HttpProtocol). Over
    /// HTTP/2, one multiplexed connection per server. Default `h1`.
    pub protocol: crate::http::client::HttpProtocol,
}

/// Why a configuration was refused. The display text is not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// A value is missing, of the wrong type or invalid.
    #[error("{}{field}: {message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Invalid {
        /// 1-based line of the offending value, when known.
        line: Option<usize>,
        /// The field (`routes[1].upstream`, `timeouts.connect`), or `toml` for syntax.
        field: String,
        /// What is wrong.
        message: String,
    },
}
