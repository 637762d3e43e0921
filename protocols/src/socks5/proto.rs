//! SOCKS5 server handshake (sans-IO): method selection, username/password
//! subnegotiation and the request, up to the point where the server must connect.
//!
//! Owns: [`Handshake`] (the server's state machine), [`parse_request`] (which follows the
//! crate's parse convention, [`Status`] of [`Parsed`]), [`Target`], [`Reply`] and
//! [`encode_reply`], [`Socks5Error`].
//! Contract: [`Handshake::handle_input`] consumes a prefix of its input, one whole message
//! at a time, and never more than the request: bytes after the CONNECT request are the
//! client's payload and stay with the caller. It keeps no buffer of its own (the caller
//! holds the unconsumed bytes, at most one message: 513 bytes), so input may arrive split
//! anywhere. Replies go to [`Handshake::poll_transmit`]; the request to
//! [`Handshake::poll_event`]. After an error the handshake is over: send what
//! `poll_transmit` holds (the error reply, if the protocol has one), then close.
//! Does not: touch sockets or resolve names; send the final reply (the caller does, with
//! [`encode_reply`], once its connect succeeded or failed).
//! Spec: RFC 1928 (SOCKS5), RFC 1929 (username/password). Tests: `proto/tests.rs`.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub use crate::kit::{Parsed, Status};

/// The protocol version byte of every SOCKS5 message (RFC 1928 §3).
pub const VERSION: u8 = 0x05;
/// The version byte of the username/password subnegotiation (RFC 1929 §2).
pub const AUTH_VERSION: u8 = 0x01;

/// "NO AUTHENTICATION REQUIRED" (RFC 1928 §3).
pub const METHOD_NO_AUTH: u8 = 0x00;
/// "USERNAME/PASSWORD" (RFC 1928 §3, RFC 1929).
pub const METHOD_USER_PASS: u8 = 0x02;
/// "NO ACCEPTABLE METHODS" (RFC 1928 §3).
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;

/// CONNECT (RFC 1928 §4).
pub const CMD_CONNECT: u8 = 0x01;
/// BIND (RFC 1928 §4); not supported.
pub const CMD_BIND: u8 = 0x02;
/// UDP ASSOCIATE (RFC 1928 §4); not supported.
pub const CMD_UDP_ASSOCIATE: u8 = 0x03;

/// Address type IPv4 (RFC 1928 §5).
pub const ATYP_IPV4: u8 = 0x01;
/// Address type domain name (RFC 1928 §5).
pub const ATYP_DOMAIN: u8 = 0x03;
/// Address type IPv6 (RFC 1928 §5).
pub const ATYP_IPV6: u8 = 0x04;

/// The longest message the handshake reads: a username/password request with a
/// 255-byte name and a 255-byte password. A caller never holds more unconsumed bytes
/// than this during the handshake.
pub const MAX_MESSAGE: usize = 3 + 255 + 255;

/// How the server authenticates clients.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub enum Auth {
    /// Method 0x00: anyone may connect.
    #[default]
    None,
    /// Method 0x02 (RFC 1929): one of these `(username, password)` pairs is required.
    UserPass(Vec<(Vec<u8>, Vec<u8>)>),
}

/// Where the client asked to connect (DST.ADDR and DST.PORT of the request).
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Target {
    /// An IPv4 or IPv6 address.
    Addr(SocketAddr),
    /// A domain name (1 to 255 bytes, as sent; not checked further) and a port.
    Domain(String, u16),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(addr) => write!(f, "{addr}"),
            Target::Domain(name, port) => write!(f, "{name}:{port}"),
        }
    }
}

/// What the handshake produced.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The client authenticated (when required) and asked to CONNECT to the target. The
    /// caller connects, then sends [`encode_reply`] with the outcome.
    Connect(Target),
}

/// The REP field of a reply (RFC 1928 §6).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[repr(u8)]
pub enum Reply {
    /// 0x00 succeeded.
    Succeeded = 0x00,
    /// 0x01 general SOCKS server failure.
    GeneralFailure = 0x01,
    /// 0x02 connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// 0x03 network unreachable.
    NetworkUnreachable = 0x03,
    /// 0x04 host unreachable.
    HostUnreachable = 0x04,
    /// 0x05 connection refused.
    ConnectionRefused = 0x05,
    /// 0x06 TTL expired (also sent when the connect timed out).
    TtlExpired = 0x06,
    /// 0x07 command not supported.
    CommandNotSupported = 0x07,
    /// 0x08 address type not supported.
    AddressTypeNotSupported = 0x08,
}

impl Reply {
    /// The reply for a connect that failed with `kind` (the OS error's kind).
    #[must_use]
    pub fn from_io_error(kind: std::io::ErrorKind) -> Reply {
        use std::io::ErrorKind as K;
        match kind {
            K::ConnectionRefused => Reply::ConnectionRefused,
            K::NetworkUnreachable | K::NetworkDown => Reply::NetworkUnreachable,
            K::HostUnreachable | K::AddrNotAvailable => Reply::HostUnreachable,
            K::TimedOut => Reply::TtlExpired,
            K::PermissionDenied => Reply::NotAllowed,
            _ => Reply::GeneralFailure,
        }
    }
}

/// Encodes a reply: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT (RFC 1928 §6). `bound` is the
/// server's local address of the outbound connection; failures send `0.0.0.0:0`.
#[must_use]
pub fn encode_reply(reply: Reply, bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut out = Vec::with_capacity(22);
    out.extend_from_slice(&[VERSION, reply as u8, 0x00]);
    match bound {
        SocketAddr::V4(v4) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&v6.ip().octets());
        }
    }
    out.extend_from_slice(&bound.port().to_be_bytes());
    out
}

/// A handshake that cannot go on. The display text is not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Socks5Error {
    /// A message's version byte is not 5 (or 1 in the subnegotiation).
    #[error("unsupported socks version {version:#04x}")]
    BadVersion {
        /// The byte received.
        version: u8,
    },
    /// The client offers no method this server accepts.
    #[error("no acceptable authentication method")]
    NoAcceptableMethod,
    /// Wrong username or password.
    #[error("authentication failed")]
    AuthFailed,
    /// BIND, UDP ASSOCIATE or an unknown command.
    #[error("command {command:#04x} not supported")]
    CommandNotSupported {
        /// CMD of the request.
        command: u8,
    },
    /// An ATYP other than IPv4, domain name or IPv6.
    #[error("address type {atyp:#04x} not supported")]
    AddressTypeNotSupported {
        /// ATYP of the request.
        atyp: u8,
    },
    /// A domain name of length 0 or not UTF-8.
    #[error("invalid domain name")]
    BadDomain,
    /// Input after the handshake ended in an error, or a second request.
    #[error("input after the handshake ended")]
    Finished,
}

impl Socks5Error {
    /// The reply this error sends before the close, if the protocol has one for it (errors
    /// in the request get a reply; errors in method selection and authentication have their
    /// own answers, sent by the handshake itself).
    #[must_use]
    pub fn reply(&self) -> Option<Reply> {
        match self {
            Socks5Error::CommandNotSupported { .. } => Some(Reply::CommandNotSupported),
            Socks5Error::AddressTypeNotSupported { .. } => Some(Reply::AddressTypeNotSupported),
            Socks5Error::BadDomain => Some(Reply::GeneralFailure),
            Socks5Error::BadVersion { .. }
            | Socks5Error::NoAcceptableMethod
            | Socks5Error::AuthFailed
            | Socks5Error::Finished => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum State {
    /// VER, NMETHODS, METHODS.
    Greeting,
    /// RFC 1929 request.
    Auth,
    /// VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
    Request,
    /// The request was read; the caller connects and replies.
    Done,
    /// An error ended the handshake.
    Failed,
}

/// The server side of a SOCKS5 handshake.
///
/// 1. Call [`Handshake::handle_input`] with the bytes received so far that it has not
///    consumed; drop the consumed prefix.
/// 2. Send everything [`Handshake::poll_transmit`] returns.
/// 3. On an error, close after sending; on [`Event::Connect`] from
///    [`Handshake::poll_event`], connect and send [`encode_reply`]. Unconsumed bytes are
///    the client's first payload bytes.
#[derive(Debug)]
pub struct Handshake {
    auth: Auth,
    state: State,
    transmit: Vec<u8>,
    events: VecDeque<Event>,
}

impl Handshake {
    /// A handshake that authenticates with `auth`.
    #[must_use]
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            state: State::Greeting,
            transmit: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether the request was read (the caller owns the rest of the stream).
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes whole messages from the front of `input`; returns how many bytes. Stops
    /// after the request, so bytes after it are never consumed.
    ///
    /// # Errors
    /// The peer broke the protocol or failed to authenticate: send what
    /// [`Handshake::poll_transmit`] holds, then close.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<usize, Socks5Error> {
        let mut consumed = 0;
        loop {
            let rest = &input[consumed..];
            let step = match self.state {
                State::Greeting => self.greeting(rest),
                State::Auth => self.auth(rest),
                State::Request => self.request(rest),
                State::Done => return Ok(consumed),
                State::Failed => Err(Socks5Error::Finished),
            };
            match step {
                Ok(Status::Complete(len)) => consumed += len,
                Ok(Status::Partial) => return Ok(consumed),
                Err(error) => {
                    if self.state != State::Failed
                        && let Some(reply) = error.reply()
                    {
                        self.transmit.extend(encode_reply(reply, None));
                    }
                    self.state = State::Failed;
                    return Err(error);
                }
            }
        }
    }

    /// Bytes to send to the client, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // Each step below reads one message at the front of `input`: its length once whole
    // (the message's contents go to `transmit`, `events` and `state`), or `Partial`.

    fn greeting(&mut self, input: &[u8]) -> Result<Status<usize>, Socks5Error> {
        let Some(&version) = input.first() else {
            return Ok(Status::Partial);
        };
        if version != VERSION {
            return Err(Socks5Error::BadVersion { version });
        }
        let Some(&count) = input.get(1) else {
            return Ok(Status::Partial);
        };
        let len = 2 + usize::from(count);
        let Some(methods) = input.get(2..len) else {
            return Ok(Status::Partial);
        };
        let wanted = match self.auth {
            Auth::None => METHOD_NO_AUTH,
            Auth::UserPass(_) => METHOD_USER_PASS,
        };
        if !methods.contains(&wanted) {
            // RFC 1928 §3: "the client MUST close the connection" after 0xFF; we close too.
            self.transmit
                .extend_from_slice(&[VERSION, METHOD_NONE_ACCEPTABLE]);
            return Err(Socks5Error::NoAcceptableMethod);
        }
        self.transmit.extend_from_slice(&[VERSION, wanted]);
        self.state = if wanted == METHOD_USER_PASS {
            State::Auth
        } else {
            State::Request
        };
        Ok(Status::Complete(len))
    }

    fn auth(&mut self, input: &[u8]) -> Result<Status<usize>, Socks5Error> {
        let Some(&version) = input.first() else {
            return Ok(Status::Partial);
        };
        if version != AUTH_VERSION {
            return Err(Socks5Error::BadVersion { version });
        }
        let Some(&ulen) = input.get(1) else {
            return Ok(Status::Partial);
        };
        let user_end = 2 + usize::from(ulen);
        let Some(&plen) = input.get(user_end) else {
            return Ok(Status::Partial);
        };
        let len = user_end + 1 + usize::from(plen);
        if input.len() < len {
            return Ok(Status::Partial);
        }
        let user = &input[2..user_end];
        let pass = &input[user_end + 1..len];
        let ok = match &self.auth {
            Auth::UserPass(users) => users
                .iter()
                .any(|(u, p)| constant_time_eq(u, user) & constant_time_eq(p, pass)),
            Auth::None => false,
        };
        // RFC 1929 §2: a STATUS other than 0x00 means failure, and the server MUST close.
        if !ok {
            self.transmit.extend_from_slice(&[AUTH_VERSION, 0x01]);
            return Err(Socks5Error::AuthFailed);
        }
        self.transmit.extend_from_slice(&[AUTH_VERSION, 0x00]);
        self.state = State::Request;
        Ok(Status::Complete(len))
    }

    fn request(&mut self, input: &[u8]) -> Result<Status<usize>, Socks5Error> {
        let Status::Complete(Parsed {
            value: (target, command),
            consumed,
        }) = parse_request(input)?
        else {
            return Ok(Status::Partial);
        };
        if command != CMD_CONNECT {
            return Err(Socks5Error::CommandNotSupported { command });
        }
        self.events.push_back(Event::Connect(target));
        self.state = State::Done;
        Ok(Status::Complete(consumed))
    }
}

/// Parses a request at the start of `input`: its target and command (the address is read
/// first, so a request with an unsupported command is consumed whole).
///
/// Returns [`Status::Partial`] while `input` is a prefix of a request, else the target,
/// the command and the request's length ([`Parsed::consumed`]); bytes after it are not
/// the request's.
///
/// # Errors
/// A bad version, an unknown address type or a bad domain name.
pub fn parse_request(input: &[u8]) -> Result<Status<Parsed<(Target, u8)>>, Socks5Error> {
    let Some(&version) = input.first() else {
        return Ok(Status::Partial);
    };
    if version != VERSION {
        return Err(Socks5Error::BadVersion { version });
    }
    // VER CMD RSV ATYP: RSV is not checked (RFC 1928 only names it "reserved").
    let Some(head) = input.get(..4) else {
        return Ok(Status::Partial);
    };
    let (command, atyp) = (head[1], head[3]);
    let (target, len) = match atyp {
        ATYP_IPV4 => {
            let Some(b) = input.get(4..10) else {
                return Ok(Status::Partial);
            };
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            let port = u16::from_be_bytes([b[4], b[5]]);
            (Target::Addr(SocketAddrV4::new(ip, port).into()), 10)
        }
        ATYP_IPV6 => {
            let Some(b) = input.get(4..22) else {
                return Ok(Status::Partial);
            };
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[..16]);
            let port = u16::from_be_bytes([b[16], b[17]]);
            let addr = SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0);
            (Target::Addr(addr.into()), 22)
        }
        ATYP_DOMAIN => {
            let Some(&n) = input.get(4) else {
                return Ok(Status::Partial);
            };
            let end = 5 + usize::from(n);
            let Some(b) = input.get(5..end + 2) else {
                return Ok(Status::Partial);
            };
            let name = &b[..usize::from(n)];
            let port = u16::from_be_bytes([b[usize::from(n)], b[usize::from(n) + 1]]);
            let name = std::str::from_utf8(name).map_err(|_| Socks5Error::BadDomain)?;
            if name.is_empty() {
                return Err(Socks5Error::BadDomain);
            }
            (Target::Domain(name.to_owned(), port), end + 2)
        }
        atyp => return Err(Socks5Error::AddressTypeNotSupported { atyp }),
    };
    Ok(Status::Complete(Parsed {
        value: (target, command),
        consumed: len,
    }))
}

/// Compares without an early exit on the first differing byte (the length still shows).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
