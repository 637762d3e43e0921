//! Client endpoint strings: Twisted's `clientFromString` — `tcp:host=H:port=P`,
//! `tls:host=H:port=P:ca=FILE`, `unix:path=P` — and the connector that opens them.
//!
//! Owns: parsing a client endpoint string into a [`ClientEndpoint`] (and printing it back:
//! its `Display` output parses to the same value), [`ClientEndpointError`] (which field is
//! wrong and why), and [`EndpointConnector`], a [`ClientEndpoint`] made ready on one core
//! (its TLS roots loaded) that connects: names through Happy Eyeballs
//! ([`LocalHandle::connect_host`]), Unix paths directly.
//! Contract: a string is a type, then `:`-separated arguments, positional ones first
//! (`tcp:HOST:PORT`, `unix:PATH`), then `key=value` options in any order. A backslash
//! escapes the next character (`unix:path=/tmp/a\:b`); an IPv6 address needs no escaping
//! in `host=` or `bindAddress=` (`tcp:host=::1:port=80`): after one of those, a segment
//! that is not `key=value` continues the address.
//! Does not: listen (server endpoints are `ringwork_protocols::Endpoint`), or retry.
//! Spec: Twisted's `clientFromString` syntax for `tcp` (`host`, `port`, `timeout`,
//! `bindAddress`) and `unix` (`path`, `timeout`); `tls` takes ringwork's own options
//! (`sni`, `ca`, `verify`) besides `tcp`'s.
//!
//! It lives in the engine, not in `ringwork-protocols` beside the server endpoints,
//! because connecting is the engine's (Happy Eyeballs, the name resolver hook, the TLS
//! connector, Unix sockets) and a user of the engine alone should have Twisted's endpoints
//! without a protocol crate.
//! Tests: `endpoint/tests.rs` (parsing), `engine/tests/endpoints.rs` (each kind on both
//! backends).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ringwork_platform::SockAddr;

use crate::connect::ConnectOptions;
use crate::connecting::Connecting;
use crate::context::Context;
use crate::error::EngineError;
use crate::happy_eyeballs::HostConnect;
use crate::local::LocalHandle;
use crate::names::parse_ip_literal;
use crate::protocol::Protocol;
use crate::tls::{Roots, TlsConfigError, TlsConnector, server_name};

/// The client endpoint types [`ClientEndpoint::from_str`] knows, as listed in errors.
pub const CLIENT_TYPES: &str = "tcp, tls, unix";

/// Where a client connects, parsed from an endpoint string (Twisted's `clientFromString`).
///
/// | string | value |
/// |---|---|
/// | `tcp:host=example.com:port=80` or `tcp:example.com:80` | `Tcp { host: "example.com", port: 80, .. }` |
/// | `tcp:host=::1:port=80:timeout=5` | `Tcp { host: "::1", timeout: 5 s, .. }` |
/// | `tcp:host=db:port=5432:bindAddress=10.0.0.2` | `Tcp { bind: Some(10.0.0.2), .. }` |
/// | `tls:host=example.com:port=443` | `Tls { tls: TlsClientOptions { system roots, .. }, .. }` |
/// | `tls:host=10.0.0.5:port=443:sni=api.internal:ca=/etc/ca.pem` | the name to verify, the roots |
/// | `tls:host=appliance:port=443:verify=no` | any certificate accepted (dangerous) |
/// | `unix:path=/run/app.sock` or `unix:/run/app.sock` | `Unix { path, .. }` |
///
/// `timeout` is in seconds (fractions allowed); `bindAddress` is an IP address (the port
/// is chosen by the system).
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum ClientEndpoint {
    /// A TCP connection to a host name (Happy Eyeballs) or a literal IP address.
    Tcp {
        /// The host name or IP address.
        host: String,
        /// The port.
        port: u16,
        /// The connect timeout (`None`: the reactor's).
        timeout: Option<Duration>,
        /// The local address to connect from.
        bind: Option<IpAddr>,
    },
    /// TLS over TCP.
    Tls {
        /// The host name or IP address.
        host: String,
        /// The port.
        port: u16,
        /// The connect timeout (`None`: the reactor's).
        timeout: Option<Duration>,
        /// The local address to connect from.
        bind: Option<IpAddr>,
        /// How the server is verified.
        tls: TlsClientOptions,
    },
    /// A Unix stream socket.
    Unix {
        /// The socket's path.
        path: PathBuf,
        /// The connect timeout (`None`: the reactor's).
        timeout: Option<Duration>,
    },
}

/// How a `tls:` client endpoint verifies its server.
#[derive(Clone, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub struct TlsClientOptions {
    /// The name sent by SNI and verified in the certificate (`None`: the host).
    pub sni: Option<String>,
    /// Trust exactly the certificates of this PEM file (`None`: the system's roots).
    pub ca: Option<PathBuf>,
    /// Verify the certificate (`verify=no` turns it off; see
    /// [`TlsConnectorBuilder::dangerous_skip_verification`](crate::tls::TlsConnectorBuilder::dangerous_skip_verification)).
    pub verify: bool,
}

/// Why a client endpoint string does not parse: which field, and what is wrong with it.
///
/// The display texts are meant for people and are not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientEndpointError {
    /// The string is empty.
    #[error("empty endpoint string (expected one like tcp:host=example.com:port=80)")]
    Empty,
    /// The type before the first `:` is not a client endpoint type.
    #[error("unknown client endpoint type {kind:?} (known: {CLIENT_TYPES})")]
    UnknownType {
        /// The type as written.
        kind: String,
    },
    /// A field the type needs is missing.
    #[error("{kind} endpoint needs {field}=, as in {example}")]
    Missing {
        /// The endpoint type.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
        /// A string with it.
        example: &'static str,
    },
    /// A field's value is not valid.
    #[error("bad {field} {value:?}: {why}")]
    BadValue {
        /// The field.
        field: &'static str,
        /// The value as written.
        value: String,
        /// What is expected.
        why: &'static str,
    },
    /// An option this endpoint type does not take.
    #[error("unknown option {key:?} for a {kind} endpoint (known: {known})")]
    UnknownOption {
        /// The endpoint type.
        kind: &'static str,
        /// The key as written.
        key: String,
        /// The keys the type takes.
        known: &'static str,
    },
    /// The same field given twice (a positional argument and its keyword count alike).
    #[error("{key} given twice")]
    Duplicate {
        /// The field.
        key: String,
    },
    /// An argument without `key=` where none is expected.
    #[error("unexpected argument {value:?} in a {kind} endpoint (options are key=value)")]
    Unexpected {
        /// The endpoint type.
        kind: &'static str,
        /// The argument as written.
        value: String,
    },
}

/// The endpoint types, with what each takes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Kind {
    Tcp,
    Tls,
    Unix,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Unix => "unix",
        }
    }

    /// The positional fields in order, and every key the type takes (for errors).
    fn fields(self) -> (&'static [&'static str], &'static str) {
        match self {
            Kind::Tcp => (&["host", "port"], "host, port, timeout, bindAddress"),
            Kind::Tls => (
                &["host", "port"],
                "host, port, timeout, bindAddress, sni, ca, verify",
            ),
            Kind::Unix => (&["path"], "path, timeout"),
        }
    }
}

/// The fields of a string, as written.
#[derive(Default)]
struct Fields {
    values: Vec<(&'static str, String)>,
}

impl Fields {
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, key: &'static str, value: String) -> Result<(), ClientEndpointError> {
        if self.get(key).is_some() {
            return Err(ClientEndpointError::Duplicate { key: key.into() });
        }
        self.values.push((key, value));
        Ok(())
    }

    fn append(&mut self, key: &str, segment: &str) {
        if let Some((_, value)) = self.values.iter_mut().find(|(k, _)| *k == key) {
            value.push(':');
            value.push_str(segment);
        }
    }
}

impl FromStr for ClientEndpoint {
    type Err = ClientEndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(ClientEndpointError::Empty);
        }
        let mut segments = split(text).into_iter();
        let kind = match segments.next().unwrap_or_default().as_str() {
            "tcp" => Kind::Tcp,
            "tls" | "ssl" => Kind::Tls,
            "unix" => Kind::Unix,
            other => {
                return Err(ClientEndpointError::UnknownType {
                    kind: other.to_owned(),
                });
            }
        };
        let fields = collect(kind, segments)?;
        build(kind, &fields)
    }
}

/// Reads the arguments after the type into fields.
fn collect(
    kind: Kind,
    segments: impl Iterator<Item = String>,
) -> Result<Fields, ClientEndpointError> {
    let (positional, known) = kind.fields();
    let mut fields = Fields::default();
    let mut next_positional = 0;
    // The key of the last `key=value`: a bare segment after `host=` or `bindAddress=`
    // continues an IPv6 address (`host=::1` splits into `host=`, ``, `1`).
    let mut last_key: Option<&'static str> = None;
    for segment in segments {
        let option = segment.split_once('=').and_then(|(key, value)| {
            known
                .split(", ")
                .find(|k| *k == key)
                .map(|k| (k, value.to_owned()))
        });
        match option {
            Some((key, value)) => {
                fields.set(key, value)?;
                last_key = Some(key);
            }
            None if matches!(last_key, Some("host" | "bindAddress")) => {
                if let Some(key) = last_key {
                    fields.append(key, &segment);
                }
            }
            None if last_key.is_none() && next_positional < positional.len() => {
                fields.set(positional[next_positional], segment)?;
                next_positional += 1;
            }
            None => {
                if let Some((key, _)) = segment.split_once('=') {
                    return Err(ClientEndpointError::UnknownOption {
                        kind: kind.name(),
                        key: key.to_owned(),
                        known,
                    });
                }
                return Err(ClientEndpointError::Unexpected {
                    kind: kind.name(),
                    value: segment,
                });
            }
        }
    }
    Ok(fields)
}

fn build(kind: Kind, fields: &Fields) -> Result<ClientEndpoint, ClientEndpointError> {
    let timeout = fields.get("timeout").map(parse_timeout).transpose()?;
    if kind == Kind::Unix {
        let path =
            fields
                .get("path")
                .filter(|p| !p.is_empty())
                .ok_or(ClientEndpointError::Missing {
                    kind: "unix",
                    field: "path",
                    example: "unix:path=/run/app.sock",
                })?;
        return Ok(ClientEndpoint::Unix {
            path: PathBuf::from(path),
            timeout,
        });
    }
    let example = match kind {
        Kind::Tls => "tls:host=example.com:port=443",
        _ => "tcp:host=example.com:port=80",
    };
    let missing = |field| ClientEndpointError::Missing {
        kind: kind.name(),
        field,
        example,
    };
    let host = fields.get("host").ok_or_else(|| missing("host"))?;
    let host = parse_host(host)?;
    let port = parse_port(fields.get("port").ok_or_else(|| missing("port"))?)?;
    let bind = fields.get("bindAddress").map(parse_bind).transpose()?;
    if kind == Kind::Tcp {
        return Ok(ClientEndpoint::Tcp {
            host,
            port,
            timeout,
            bind,
        });
    }
    let verify = match fields.get("verify") {
        None | Some("yes" | "true" | "1") => true,
        Some("no" | "false" | "0") => false,
        Some(other) => {
            return Err(ClientEndpointError::BadValue {
                field: "verify",
                value: other.to_owned(),
                why: "expected yes or no",
            });
        }
    };
    let sni = match fields.get("sni") {
        Some(name) => {
            server_name(name).map_err(|_| ClientEndpointError::BadValue {
                field: "sni",
                value: name.to_owned(),
                why: "expected a DNS name or an IP address",
            })?;
            Some(name.to_owned())
        }
        None => None,
    };
    let ca = match fields.get("ca") {
        Some("") => {
            return Err(ClientEndpointError::BadValue {
                field: "ca",
                value: String::new(),
                why: "expected the path of a PEM file",
            });
        }
        other => other.map(PathBuf::from),
    };
    Ok(ClientEndpoint::Tls {
        host,
        port,
        timeout,
        bind,
        tls: TlsClientOptions { sni, ca, verify },
    })
}

/// A host name or IP address (an IPv6 one may be in brackets; they are removed).
fn parse_host(text: &str) -> Result<String, ClientEndpointError> {
    let bad = |why| ClientEndpointError::BadValue {
        field: "host",
        value: text.to_owned(),
        why,
    };
    if let Some(ip) = parse_ip_literal(text) {
        return Ok(ip.to_string());
    }
    if text.is_empty() {
        return Err(bad("expected a host name or an IP address"));
    }
    // RFC 1123 names: letters, digits, '-', '_' (seen in the wild) and dots.
    let valid = text.len() <= 253
        && text.split('.').enumerate().all(|(i, label)| {
            (!label.is_empty() || (i > 0 && text.ends_with('.')))
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(bad("expected a host name or an IP address"));
    }
    Ok(text.to_owned())
}

fn parse_port(text: &str) -> Result<u16, ClientEndpointError> {
    let bad = || ClientEndpointError::BadValue {
        field: "port",
        value: text.to_owned(),
        why: "expected a number from 1 to 65535",
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, ClientEndpointError> {
    let bad = || ClientEndpointError::BadValue {
        field: "timeout",
        value: text.to_owned(),
        why: "expected seconds, more than 0 (5, 0.5)",
    };
    let seconds: f64 = text.parse().map_err(|_| bad())?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

fn parse_bind(text: &str) -> Result<IpAddr, ClientEndpointError> {
    parse_ip_literal(text).ok_or_else(|| ClientEndpointError::BadValue {
        field: "bindAddress",
        value: text.to_owned(),
        why: "expected an IP address",
    })
}

/// Splits at unescaped `:`, resolving `\x` to `x` (a trailing lone `\` stays).
fn split(text: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let Some(current) = segments.last_mut() else {
            break;
        };
        match c {
            '\\' => current.push(chars.next().unwrap_or('\\')),
            ':' => segments.push(String::new()),
            _ => current.push(c),
        }
    }
    segments
}

/// Writes `value` with `:` and `\` escaped.
fn escaped(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    for c in value.chars() {
        if c == ':' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    Ok(())
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, host, port, timeout, bind) = match self {
            ClientEndpoint::Unix { path, timeout } => {
                f.write_str("unix:path=")?;
                escaped(f, &path.to_string_lossy())?;
                if let Some(timeout) = timeout {
                    write!(f, ":timeout={}", timeout.as_secs_f64())?;
                }
                return Ok(());
            }
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
                bind,
            } => ("tcp", host, port, timeout, bind),
            ClientEndpoint::Tls {
                host,
                port,
                timeout,
                bind,
                ..
            } => ("tls", host, port, timeout, bind),
        };
        write!(f, "{kind}:host=")?;
        escaped(f, host)?;
        write!(f, ":port={port}")?;
        if let Some(timeout) = timeout {
            write!(f, ":timeout={}", timeout.as_secs_f64())?;
        }
        if let Some(bind) = bind {
            f.write_str(":bindAddress=")?;
            escaped(f, &bind.to_string())?;
        }
        if let ClientEndpoint::Tls { tls, .. } = self {
            if let Some(sni) = &tls.sni {
                f.write_str(":sni=")?;
                escaped(f, sni)?;
            }
            if let Some(ca) = &tls.ca {
                f.write_str(":ca=")?;
                escaped(f, &ca.to_string_lossy())?;
            }
            if !tls.verify {
                f.write_str(":verify=no")?;
            }
        }
        Ok(())
    }
}

impl ClientEndpoint {
    /// A short name for log lines: `host:port` for a plain `tcp:` endpoint (`[::1]:80`),
    /// the endpoint string otherwise.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout: None,
                bind: None,
            } => {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
            other => other.to_string(),
        }
    }

    /// A `tcp:` endpoint for `host`:`port` (the old `HOST:PORT` form of an upstream).
    #[must_use]
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        ClientEndpoint::Tcp {
            host: host.into(),
            port,
            timeout: None,
            bind: None,
        }
    }

    /// Parses `text` as a client endpoint string, or as `HOST:PORT` (`[::1]:80` for an
    /// IPv6 address), which is `tcp:host=HOST:port=PORT` — how an option that took
    /// `HOST:PORT` accepts endpoint strings too.
    ///
    /// # Errors
    /// Neither form parses; the error is the endpoint string's.
    pub fn parse_or_host_port(text: &str) -> Result<Self, ClientEndpointError> {
        let typed = matches!(text.split(':').next(), Some("tcp" | "tls" | "ssl" | "unix"));
        if !typed
            && let Some((host, port)) = text.rsplit_once(':')
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
            && let (Ok(host), Ok(port)) = (parse_host(host), parse_port(port))
        {
            return Ok(Self::tcp(host, port));
        }
        text.parse()
    }

    /// The host, for TCP and TLS.
    #[must_use]
    pub fn host(&self) -> Option<&str> {
        match self {
            ClientEndpoint::Tcp { host, .. } | ClientEndpoint::Tls { host, .. } => Some(host),
            ClientEndpoint::Unix { .. } => None,
        }
    }

    /// The port, for TCP and TLS.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        match self {
            ClientEndpoint::Tcp { port, .. } | ClientEndpoint::Tls { port, .. } => Some(*port),
            ClientEndpoint::Unix { .. } => None,
        }
    }

    /// The connector for this endpoint on one core: a `tls:` endpoint's roots are loaded
    /// (the CA file, or the system store) and its connector built here, once. Build one per
    /// core (TLS sessions to resume are kept per connector).
    ///
    /// # Errors
    /// A `tls:` endpoint's CA file cannot be read, or has no certificate; the system store
    /// is empty.
    pub fn connector(&self) -> Result<EndpointConnector, TlsConfigError> {
        self.connector_with(None)
    }

    /// [`ClientEndpoint::connector`] with ALPN protocols offered by a `tls:` endpoint
    /// (in order of preference).
    ///
    /// # Errors
    /// As [`ClientEndpoint::connector`].
    pub fn connector_with(
        &self,
        alpn: Option<&[&str]>,
    ) -> Result<EndpointConnector, TlsConfigError> {
        let tls = match self {
            ClientEndpoint::Tls { host, tls, .. } => {
                let mut builder = TlsConnector::builder();
                builder = if !tls.verify {
                    builder.dangerous_skip_verification()
                } else if let Some(ca) = &tls.ca {
                    builder.ca_pem_file(ca)
                } else {
                    builder.roots(Roots::System)
                };
                if let Some(alpn) = alpn {
                    builder = builder.alpn(alpn.iter().copied());
                }
                let name = server_name(tls.sni.as_deref().unwrap_or(host))?;
                Some((builder.build()?, name))
            }
            _ => None,
        };
        Ok(EndpointConnector {
            endpoint: self.clone(),
            tls,
        })
    }
}

/// A [`ClientEndpoint`] ready to connect on one core (Twisted's
/// `IStreamClientEndpoint`): TCP and TLS through
/// [`LocalHandle::connect_host`] (Happy Eyeballs for names, the core's
/// [`NameResolver`](crate::names::NameResolver), resolved at every connect), Unix
/// directly. Cheap to clone.
///
/// # Examples
/// ```no_run
/// use ringwork::endpoint::client_from_string;
/// use ringwork::{Context, DriverConfig, Protocol, Reactor, ReactorConfig};
///
/// struct Hello;
///
/// impl Protocol for Hello {
///     fn connection_made(&mut self, ctx: &mut Context<'_>) {
///         ctx.write(b"hello\n");
///     }
///     fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
/// }
///
/// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
/// let endpoint = client_from_string("tcp:host=localhost:port=7000:timeout=5")?;
/// let connect = endpoint.connect(&reactor.handle(), Hello);
/// reactor.spawn_local(async move {
///     if let Err(error) = connect.await {
///         eprintln!("{error}");
///     }
/// });
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct EndpointConnector {
    endpoint: ClientEndpoint,
    tls: Option<(TlsConnector, crate::tls::ServerName<'static>)>,
}

/// Why [`client_from_string`] gave no connector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientFromStringError {
    /// The string does not parse.
    #[error(transparent)]
    Parse(#[from] ClientEndpointError),
    /// A `tls:` endpoint's roots could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

/// Parses a client endpoint string and builds its connector for this core: Twisted's
/// `clientFromString` (see [`ClientEndpoint`] for the syntax).
///
/// # Errors
/// The string does not parse, or a `tls:` endpoint's roots cannot be loaded.
pub fn client_from_string(text: &str) -> Result<EndpointConnector, ClientFromStringError> {
    let endpoint: ClientEndpoint = text.parse()?;
    Ok(endpoint.connector()?)
}

impl From<SocketAddr> for EndpointConnector {
    /// `tcp:host=IP:port=PORT`.
    fn from(addr: SocketAddr) -> Self {
        EndpointConnector {
            endpoint: ClientEndpoint::tcp(addr.ip().to_string(), addr.port()),
            tls: None,
        }
    }
}

impl EndpointConnector {
    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &ClientEndpoint {
        &self.endpoint
    }

    /// The connector with `timeout` as its connect timeout unless the endpoint has its own
    /// (`timeout=`).
    #[must_use]
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        match &mut self.endpoint {
            ClientEndpoint::Tcp { timeout: t, .. }
            | ClientEndpoint::Tls { timeout: t, .. }
            | ClientEndpoint::Unix { timeout: t, .. } => {
                t.get_or_insert(timeout);
            }
        }
        self
    }

    /// The options of a connect to this endpoint.
    fn options(&self) -> ConnectOptions {
        let (timeout, bind) = match &self.endpoint {
            ClientEndpoint::Tcp { timeout, bind, .. }
            | ClientEndpoint::Tls { timeout, bind, .. } => (*timeout, *bind),
            ClientEndpoint::Unix { timeout, .. } => (*timeout, None),
        };
        let mut options = ConnectOptions::new();
        options.timeout = timeout;
        options.bind = bind.map(|ip| SocketAddr::new(ip, 0));
        if let Some((connector, name)) = &self.tls {
            options = options.tls(connector.clone(), name.clone());
        }
        options
    }

    fn unix_addr(path: &std::path::Path) -> Result<SockAddr, EngineError> {
        SockAddr::unix(path).map_err(|source| EngineError::Io {
            what: "unix address",
            source,
        })
    }

    /// Connects `protocol` to the endpoint (the future form; see
    /// [`LocalHandle::connect_host`]): yields the connection once `protocol` got
    /// `connection_made`; dropping it cancels the connect.
    pub fn connect(&self, handle: &LocalHandle, protocol: impl Protocol) -> Connecting {
        let options = self.options();
        match &self.endpoint {
            ClientEndpoint::Tcp { host, port, .. } | ClientEndpoint::Tls { host, port, .. } => {
                handle.connect_host(host, *port, protocol, options)
            }
            ClientEndpoint::Unix { path, .. } => match Self::unix_addr(path) {
                Ok(addr) => handle.connect(addr, protocol, options),
                Err(error) => Connecting::failed(handle, crate::ConnectError::Start(error)),
            },
        }
    }

    /// Connects `protocol` to the endpoint from a callback (see
    /// [`Context::connect_host`]): `protocol` gets `connection_made`, or one
    /// `connection_lost`.
    ///
    /// # Errors
    /// Nothing could start (a socket for a literal address or a Unix path); `protocol` is
    /// dropped without callbacks.
    pub fn connect_from(
        &self,
        ctx: &mut Context<'_>,
        protocol: impl Protocol,
    ) -> Result<HostConnect, EngineError> {
        let options = self.options();
        match &self.endpoint {
            ClientEndpoint::Tcp { host, port, .. } | ClientEndpoint::Tls { host, port, .. } => {
                ctx.connect_host(host, *port, protocol, options)
            }
            ClientEndpoint::Unix { path, .. } => {
                let id = ctx.connect(&Self::unix_addr(path)?, protocol, options)?;
                Ok(HostConnect::direct(id, ctx.handle()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
