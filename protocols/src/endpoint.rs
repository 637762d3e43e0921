//! Twisted-style endpoint strings (sans-IO): `tcp:8080:interface=127.0.0.1`, `unix:/path`,
//! `tls:8443:cert=PATH:key=PATH`, and the `haproxy:` prefix (a PROXY protocol header comes
//! first) on any stream endpoint.
//!
//! Owns: parsing a server endpoint string into an [`Endpoint`] and printing it back
//! ([`Endpoint`]'s `Display` output parses to the same value).
//! Contract: a string is a type, then `:`-separated arguments — a positional one first
//! (the port, or the Unix path), then `key=value` options. A backslash escapes the next
//! character (`unix:/tmp/a\:b`); an IPv6 interface needs no escaping
//! (`tcp6:8080:interface=::1`).
//! Does not: open sockets or resolve names (interfaces are literal IP addresses); the
//! `ringwork` binary turns an [`Endpoint`] into listeners.
//! Spec: Twisted's `serverFromString` syntax for `tcp`, `tcp6`, `udp` and `unix`; `tls`
//! takes ringwork's own options (see [`TlsOptions`]); `haproxy:` is Twisted's prefix.
//! Tests: `endpoint/tests.rs`.

#[cfg(feature = "engine")]
mod listen;
mod tls;

#[cfg(feature = "self-signed")]
pub use self::listen::self_signed;
#[cfg(feature = "engine")]
pub use self::listen::{
    AppProtocols, ListenSpec, ListenSpecError, SelfSigned, default_self_signed_dir,
};
pub use self::tls::{ClientVerify, SniCert, TlsOptions};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// The endpoint types [`Endpoint::from_str`] knows, as listed in error messages.
pub const KNOWN_TYPES: &str = "tcp, tcp6, udp, unix, tls, systemd, fd, and the haproxy: prefix";

/// Where a server listens, parsed from an endpoint string.
///
/// | string | value |
/// |---|---|
/// | `tcp:8080` | `Tcp { addr: 0.0.0.0:8080 }` |
/// | `tcp:8080:interface=127.0.0.1` | `Tcp { addr: 127.0.0.1:8080 }` |
/// | `tcp6:8080` | `Tcp { addr: [::]:8080 }` |
/// | `tcp6:8080:interface=::1` | `Tcp { addr: [::1]:8080 }` |
/// | `udp:9000`, `udp:9000:interface=::1` | `Udp { addr: .. }` (either family) |
/// | `unix:/run/x.sock`, `unix:path=/run/x.sock` | `Unix { path: "/run/x.sock" }` |
/// | `tls:8443:cert=c.pem:key=k.pem` | `Tls { addr: 0.0.0.0:8443, tls: .. }` (either family by `interface`) |
/// | `haproxy:tcp:8080`, `haproxy:tls:8443`, `haproxy:unix:/p` | `Haproxy(inner)` |
/// | `systemd:domain=INET:index=0` | `Systemd { domain: Inet, index: 0, name: None }` |
/// | `systemd:domain=UNIX:name=web` | `Systemd { domain: Unix, index: 0, name: Some("web") }` |
/// | `fd:3` | `Fd { fd: 3 }` |
///
/// Port 0 asks the OS for a free port.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Endpoint {
    /// A TCP listener (`tcp:` for IPv4, `tcp6:` for IPv6).
    Tcp {
        /// Interface address and port.
        addr: SocketAddr,
    },
    /// A Unix stream socket listener.
    Unix {
        /// The socket's file path.
        path: PathBuf,
    },
    /// A UDP socket.
    Udp {
        /// Interface address and port.
        addr: SocketAddr,
    },
    /// A TLS listener over TCP.
    Tls {
        /// Interface address and port.
        addr: SocketAddr,
        /// Certificates, SNI, ALPN, client verification.
        tls: TlsOptions,
    },
    /// A stream endpoint whose connections start with a PROXY protocol header (v1 or v2)
    /// naming the real client.
    Haproxy(Box<Endpoint>),
    /// A listening stream socket passed by systemd's socket activation (`LISTEN_FDS`,
    /// descriptors from 3; Twisted's `systemd:` endpoint).
    Systemd {
        /// The family it must have (`domain=INET`, `INET6` or `UNIX`; required).
        domain: Domain,
        /// Its place among the passed sockets (`index=0` is descriptor 3).
        index: usize,
        /// Its name in `LISTEN_FDNAMES` (`name=`, systemd's `FileDescriptorName=`), used
        /// instead of the index when given.
        name: Option<String>,
    },
    /// A listening stream socket the parent left open as descriptor `fd` (3 or more).
    Fd {
        /// The descriptor number.
        fd: i32,
    },
}

/// The address family of a [`Endpoint::Systemd`] socket.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Domain {
    /// IPv4 (`INET`).
    Inet,
    /// IPv6 (`INET6`).
    Inet6,
    /// Unix sockets (`UNIX`).
    Unix,
}

impl Domain {
    /// The name in endpoint strings.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Domain::Inet => "INET",
            Domain::Inet6 => "INET6",
            Domain::Unix => "UNIX",
        }
    }
}

impl Endpoint {
    /// The port of a TCP or UDP endpoint; `None` for Unix sockets.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        match self {
            Endpoint::Tcp { addr } | Endpoint::Udp { addr } | Endpoint::Tls { addr, .. } => {
                Some(addr.port())
            }
            Endpoint::Unix { .. } | Endpoint::Systemd { .. } | Endpoint::Fd { .. } => None,
            Endpoint::Haproxy(inner) => inner.port(),
        }
    }

    /// Whether connections are streams (TCP, TLS, Unix, inherited sockets, with or without
    /// `haproxy:`).
    #[must_use]
    pub fn is_stream(&self) -> bool {
        !matches!(self, Endpoint::Udp { .. })
    }
}

/// Why an endpoint string does not parse.
///
/// The `Display` texts are meant for people and are not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string is empty.
    #[error("empty endpoint string (expected one like tcp:8080)")]
    Empty,
    /// The type before the first `:` is not one this crate knows.
    #[error("unknown endpoint type {kind:?} (known: {KNOWN_TYPES})")]
    UnknownType {
        /// The type as written.
        kind: String,
    },
    /// A TCP or UDP endpoint without a port.
    #[error("{kind} endpoint needs a port, as in {kind}:8080")]
    MissingPort {
        /// The endpoint type.
        kind: &'static str,
    },
    /// The port is not a number from 0 to 65535.
    #[error("bad port {value:?}: expected a number from 0 to 65535")]
    BadPort {
        /// The port as written.
        value: String,
    },
    /// The `interface` option is not an IP address.
    #[error("bad interface address {value:?}: expected an IP address such as 127.0.0.1 or ::1")]
    BadInterface {
        /// The interface as written.
        value: String,
    },
    /// The `interface` address is of the other family than the endpoint type.
    #[error(
        "{kind} endpoint needs an {expected} interface, got {value:?} (use {instead}: instead)"
    )]
    WrongFamily {
        /// The endpoint type.
        kind: &'static str,
        /// The family the type needs (`IPv4` or `IPv6`).
        expected: &'static str,
        /// The interface as written.
        value: String,
        /// The endpoint type that takes this interface.
        instead: &'static str,
    },
    /// An option key this endpoint type does not take.
    #[error("unknown option {key:?} for a {kind} endpoint (known: {known})")]
    UnknownOption {
        /// The endpoint type.
        kind: &'static str,
        /// The key as written.
        key: String,
        /// The keys the type takes.
        known: &'static str,
    },
    /// The same option (or the positional argument and its keyword) given twice.
    #[error("option {key:?} given twice")]
    DuplicateOption {
        /// The repeated key.
        key: String,
    },
    /// An argument without `key=` after the positional one.
    #[error("unexpected argument {value:?} in a {kind} endpoint (options are key=value)")]
    UnexpectedArgument {
        /// The endpoint type.
        kind: &'static str,
        /// The argument as written.
        value: String,
    },
    /// A `unix:` endpoint without a path.
    #[error("unix endpoint needs a socket path, as in unix:/run/ringwork.sock")]
    EmptyUnixPath,
    /// An option's value is not valid.
    #[error("bad value {value:?} for {key}: {why}")]
    BadOption {
        /// The option.
        key: String,
        /// The value as written.
        value: String,
        /// What is expected.
        why: String,
    },
    /// `haproxy:` in front of something other than a stream endpoint.
    #[error("haproxy: goes in front of a stream endpoint (tcp, tcp6, tls, unix), not {inner:?}")]
    HaproxyNeedsStream {
        /// The inner endpoint as written.
        inner: String,
    },
}

/// The endpoint types, with what each one takes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Kind {
    Tcp,
    Tcp6,
    Udp,
    Unix,
    Tls,
    Systemd,
    Fd,
}

impl Kind {
    fn parse(text: &str) -> Result<Kind, EndpointError> {
        match text {
            "tcp" => Ok(Kind::Tcp),
            "tcp6" => Ok(Kind::Tcp6),
            "udp" => Ok(Kind::Udp),
            "unix" => Ok(Kind::Unix),
            "tls" => Ok(Kind::Tls),
            "systemd" => Ok(Kind::Systemd),
            "fd" => Ok(Kind::Fd),
            _ => Err(EndpointError::UnknownType {
                kind: text.to_string(),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tcp6 => "tcp6",
            Kind::Udp => "udp",
            Kind::Unix => "unix",
            Kind::Tls => "tls",
            Kind::Systemd => "systemd",
            Kind::Fd => "fd",
        }
    }

    /// The positional argument's keyword, and every key the type takes (for errors).
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Kind::Tcp | Kind::Tcp6 | Kind::Udp => ("port", "port, interface"),
            Kind::Unix => ("path", "path"),
            Kind::Tls => ("port", tls::KNOWN),
            Kind::Systemd => ("", "domain, index, name"),
            Kind::Fd => ("fd", "fd"),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(EndpointError::Empty);
        }
        if let Some(inner) = text.strip_prefix("haproxy:") {
            let inner_endpoint: Endpoint = inner.parse()?;
            if !inner_endpoint.is_stream() || matches!(inner_endpoint, Endpoint::Haproxy(_)) {
                return Err(EndpointError::HaproxyNeedsStream {
                    inner: inner.to_string(),
                });
            }
            return Ok(Endpoint::Haproxy(Box::new(inner_endpoint)));
        }
        let mut segments = split(text).into_iter();
        let kind = Kind::parse(&segments.next().unwrap_or_default())?;
        if kind == Kind::Systemd {
            return parse_systemd(segments);
        }
        // `systemd:` is parsed above: it has no positional argument.
        let args = Args::collect(kind, segments)?;
        match kind {
            Kind::Tls => {
                let port = args
                    .positional
                    .filter(|port| !port.is_empty())
                    .ok_or(EndpointError::MissingPort { kind: kind.name() })?;
                let port = parse_port(&port)?;
                let ip = match args.interface {
                    None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    Some(value) => parse_interface(kind, &value)?,
                };
                let mut tls = args.tls;
                tls.validate()?;
                Ok(Endpoint::Tls {
                    addr: SocketAddr::new(ip, port),
                    tls,
                })
            }
            Kind::Tcp | Kind::Tcp6 | Kind::Udp => {
                let port = args
                    .positional
                    .filter(|port| !port.is_empty())
                    .ok_or(EndpointError::MissingPort { kind: kind.name() })?;
                let port = parse_port(&port)?;
                let ip = match args.interface {
                    None if kind == Kind::Tcp6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    Some(value) => parse_interface(kind, &value)?,
                };
                let addr = SocketAddr::new(ip, port);
                Ok(if kind == Kind::Udp {
                    Endpoint::Udp { addr }
                } else {
                    Endpoint::Tcp { addr }
                })
            }
            Kind::Systemd => unreachable!("parsed above"),
            Kind::Fd => {
                let value = args.positional.unwrap_or_default();
                // Digits only, as for a port.
                match value.parse::<i32>() {
                    Ok(fd) if fd >= 3 && value.bytes().all(|b| b.is_ascii_digit()) => {
                        Ok(Endpoint::Fd { fd })
                    }
                    _ => Err(EndpointError::BadOption {
                        key: "fd".into(),
                        value,
                        why: "a descriptor number, 3 or more (0 to 2 are standard I/O)".into(),
                    }),
                }
            }
            Kind::Unix => match args.positional {
                Some(path) if !path.is_empty() => Ok(Endpoint::Unix {
                    path: PathBuf::from(path),
                }),
                _ => Err(EndpointError::EmptyUnixPath),
            },
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { addr } => {
                let (kind, any) = match addr.ip() {
                    IpAddr::V4(ip) => ("tcp", ip.is_unspecified()),
                    IpAddr::V6(ip) => ("tcp6", ip.is_unspecified()),
                };
                write!(f, "{kind}:{}", addr.port())?;
                if !any {
                    write!(f, ":interface={}", addr.ip())?;
                }
                Ok(())
            }
            Endpoint::Udp { addr } => {
                write!(f, "udp:{}", addr.port())?;
                if addr.ip() != IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
                    write!(f, ":interface={}", addr.ip())?;
                }
                Ok(())
            }
            Endpoint::Unix { path } => {
                f.write_str("unix:")?;
                tls::escaped(f, &path.to_string_lossy())
            }
            Endpoint::Tls { addr, tls } => {
                write!(f, "tls:{}", addr.port())?;
                if addr.ip() != IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
                    write!(f, ":interface={}", addr.ip())?;
                }
                write!(f, "{tls}")
            }
            Endpoint::Haproxy(inner) => write!(f, "haproxy:{inner}"),
            Endpoint::Systemd {
                domain,
                name: Some(name),
                ..
            } => {
                write!(f, "systemd:domain={}:name=", domain.name())?;
                tls::escaped(f, name)
            }
            Endpoint::Systemd { domain, index, .. } => {
                write!(f, "systemd:domain={}:index={index}", domain.name())
            }
            Endpoint::Fd { fd } => write!(f, "fd:{fd}"),
        }
    }
}

/// `systemd:domain=D:index=N` or `systemd:domain=D:name=NAME` (all `key=value`).
fn parse_systemd(segments: impl Iterator<Item = String>) -> Result<Endpoint, EndpointError> {
    const KNOWN: &str = "domain, index, name";
    let (mut domain, mut index, mut name) = (None, None, None);
    for segment in segments {
        let Some((key, value)) = segment.split_once('=') else {
            return Err(EndpointError::UnexpectedArgument {
                kind: "systemd",
                value: segment,
            });
        };
        let bad = |why: &str| EndpointError::BadOption {
            key: key.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        };
        let duplicate = |given: bool| {
            if given {
                Err(EndpointError::DuplicateOption {
                    key: key.to_string(),
                })
            } else {
                Ok(())
            }
        };
        match key {
            "domain" => {
                duplicate(domain.is_some())?;
                domain = Some(match value {
                    "INET" => Domain::Inet,
                    "INET6" => Domain::Inet6,
                    "UNIX" => Domain::Unix,
                    _ => return Err(bad("expected INET, INET6 or UNIX")),
                });
            }
            "index" => {
                duplicate(index.is_some())?;
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n < 4096 && value.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| bad("a number from 0 (the first socket passed)"))?;
                index = Some(n);
            }
            "name" => {
                duplicate(name.is_some())?;
                if value.is_empty() {
                    return Err(bad("a name from LISTEN_FDNAMES"));
                }
                name = Some(value.to_string());
            }
            _ => {
                return Err(EndpointError::UnknownOption {
                    kind: "systemd",
                    key: key.to_string(),
                    known: KNOWN,
                });
            }
        }
    }
    let domain = domain.ok_or_else(|| EndpointError::BadOption {
        key: "domain".into(),
        value: String::new(),
        why: "systemd: needs domain=INET, INET6 or UNIX".into(),
    })?;
    if index.is_none() && name.is_none() {
        return Err(EndpointError::BadOption {
            key: "index".into(),
            value: String::new(),
            why: "systemd: needs index=N (or name=NAME)".into(),
        });
    }
    if index.is_some() && name.is_some() {
        return Err(EndpointError::BadOption {
            key: "name".into(),
            value: name.unwrap_or_default(),
            why: "give index= or name=, not both".into(),
        });
    }
    Ok(Endpoint::Systemd {
        domain,
        index: index.unwrap_or(0),
        name,
    })
}

/// The arguments after the type: the positional one and the options.
#[derive(Default)]
struct Args {
    positional: Option<String>,
    interface: Option<String>,
    tls: TlsOptions,
}

impl Args {
    fn collect(kind: Kind, segments: impl Iterator<Item = String>) -> Result<Args, EndpointError> {
        let (positional_key, known) = kind.keys();
        let mut args = Args::default();
        // The key of the last `key=value`, so a bare segment after `interface=` continues an
        // IPv6 address (`interface=::1` splits into `interface=`, ``, `1`).
        let mut last_key: Option<String> = None;
        for (index, segment) in segments.enumerate() {
            // The first argument is positional unless it starts with a known `key=` (a
            // Unix path may hold a `=`).
            let option = segment
                .split_once('=')
                .filter(|(key, _)| index > 0 || known.split(", ").any(|k| k == *key));
            let Some((key, value)) = option else {
                if index == 0 {
                    args.positional = Some(segment);
                    continue;
                }
                if last_key.as_deref() == Some("interface")
                    && let Some(interface) = &mut args.interface
                {
                    interface.push(':');
                    interface.push_str(&segment);
                    continue;
                }
                return Err(EndpointError::UnexpectedArgument {
                    kind: kind.name(),
                    value: segment,
                });
            };
            if kind == Kind::Tls && key != positional_key && key != "interface" {
                if args.tls.set(key, value)? {
                    last_key = Some(key.to_string());
                    continue;
                }
                return Err(EndpointError::UnknownOption {
                    kind: kind.name(),
                    key: key.to_string(),
                    known,
                });
            }
            let slot = if key == positional_key {
                &mut args.positional
            } else if key == "interface" && kind != Kind::Unix {
                &mut args.interface
            } else {
                return Err(EndpointError::UnknownOption {
                    kind: kind.name(),
                    key: key.to_string(),
                    known,
                });
            };
            if slot.is_some() {
                return Err(EndpointError::DuplicateOption {
                    key: key.to_string(),
                });
            }
            *slot = Some(value.to_string());
            last_key = Some(key.to_string());
        }
        Ok(args)
    }
}

/// Splits at unescaped `:`, resolving `\x` to `x` (a trailing lone `\` stays).
fn split(text: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let current = segments.last_mut().expect("segments starts non-empty");
        match c {
            '\\' => current.push(chars.next().unwrap_or('\\')),
            ':' => segments.push(String::new()),
            _ => current.push(c),
        }
    }
    segments
}

fn parse_port(value: &str) -> Result<u16, EndpointError> {
    // Digits only: `u16::from_str` would also take a leading `+`.
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointError::BadPort {
            value: value.to_string(),
        });
    }
    value.parse().map_err(|_| EndpointError::BadPort {
        value: value.to_string(),
    })
}

fn parse_interface(kind: Kind, value: &str) -> Result<IpAddr, EndpointError> {
    let ip: IpAddr = value.parse().map_err(|_| EndpointError::BadInterface {
        value: value.to_string(),
    })?;
    let wrong = |expected, instead| EndpointError::WrongFamily {
        kind: kind.name(),
        expected,
        value: value.to_string(),
        instead,
    };
    match (kind, ip) {
        (Kind::Tcp, IpAddr::V6(_)) => Err(wrong("IPv4", "tcp6")),
        (Kind::Tcp6, IpAddr::V4(_)) => Err(wrong("IPv6", "tcp")),
        _ => Ok(ip),
    }
}

#[cfg(test)]
mod tests;
