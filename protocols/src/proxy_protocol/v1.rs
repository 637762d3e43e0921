//! PROXY protocol v1: `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n` (spec §2.1).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use crate::kit::{Parsed, Status};
use crate::proxy_protocol::{Addresses, Command, ProxyError, ProxyHeader, Transport, Version};

/// The longest v1 header, CRLF included (spec §2.1: "107 characters").
pub const V1_MAX_LEN: usize = 107;

const PREFIX: &[u8] = b"PROXY ";
const PROTOCOLS: [&[u8]; 3] = [b"TCP4 ", b"TCP6 ", b"UNKNOWN"];

/// Parses a v1 header at the start of `buf` (which starts with `P`).
pub(super) fn parse(buf: &[u8]) -> Result<Status<Parsed<ProxyHeader>>, ProxyError> {
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Err(ProxyError::NotProxy);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        check_partial(window)?;
        if window.len() == V1_MAX_LEN {
            return Err(ProxyError::V1TooLong { limit: V1_MAX_LEN });
        }
        return Ok(Status::Partial);
    };
    check_partial(&window[..cr])?;
    match window.get(cr + 1) {
        None if cr + 1 == V1_MAX_LEN => Err(ProxyError::V1TooLong { limit: V1_MAX_LEN }),
        None => Ok(Status::Partial),
        Some(b'\n') => parse_line(&window[PREFIX.len()..cr]).map(|value| {
            Status::Complete(Parsed {
                value,
                consumed: cr + 2,
            })
        }),
        Some(_) => Err(ProxyError::V1Syntax {
            what: "CR not followed by LF",
        }),
    }
}

/// Rejects a line prefix (no CR yet) that no valid header can start with.
fn check_partial(line: &[u8]) -> Result<(), ProxyError> {
    if let Some(&b) = line.iter().find(|&&b| !(b' '..=b'~').contains(&b)) {
        return Err(if b == b'\n' {
            ProxyError::V1Syntax { what: "bare LF" }
        } else {
            ProxyError::V1Syntax {
                what: "non-printable byte",
            }
        });
    }
    if let Some(rest) = line.get(PREFIX.len()..) {
        let n = rest.len().min(PROTOCOLS[0].len());
        if !PROTOCOLS
            .iter()
            .any(|p| rest[..n.min(p.len())] == p[..n.min(p.len())])
        {
            return Err(ProxyError::V1Syntax { what: "protocol" });
        }
        // Addresses and ports of TCP4/TCP6 use few characters and four separating spaces:
        // anything else is refused before the line ends.
        let allowed: fn(u8) -> bool = match rest.get(..5) {
            Some(b"TCP4 ") => |b| b.is_ascii_digit() || b == b'.' || b == b' ',
            Some(b"TCP6 ") => |b| b.is_ascii_hexdigit() || b":. ".contains(&b),
            _ => return Ok(()),
        };
        let fields = &rest[5..];
        if !fields.iter().all(|&b| allowed(b)) {
            return Err(ProxyError::V1Syntax {
                what: "character in address or port",
            });
        }
        if fields.starts_with(b" ") || fields.windows(2).any(|w| w == b"  ") {
            return Err(ProxyError::V1Syntax {
                what: "empty field",
            });
        }
        if fields.iter().filter(|&&b| b == b' ').count() > 3 {
            return Err(ProxyError::V1Syntax {
                what: "trailing field",
            });
        }
    }
    Ok(())
}

/// Parses the line between `PROXY ` and CRLF.
fn parse_line(line: &[u8]) -> Result<ProxyHeader, ProxyError> {
    // check_partial ran over the whole line: it is printable ASCII.
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::V1Syntax { what: "utf-8" })?;
    if let Some(rest) = line.strip_prefix("UNKNOWN") {
        // Spec §2.1: with UNKNOWN, the receiver ignores the rest of the line.
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return Err(ProxyError::V1Syntax { what: "protocol" });
        }
        return Ok(ProxyHeader::new(Version::V1, Addresses::Unspec));
    }
    if line.split(' ').any(str::is_empty) {
        return Err(ProxyError::V1Syntax {
            what: "empty field",
        });
    }
    let mut fields = line.split(' ');
    let mut next = |what| fields.next().ok_or(ProxyError::V1Syntax { what });
    let protocol = next("protocol")?;
    let (src, dst) = (next("source address")?, next("destination address")?);
    let (sport, dport) = (
        port(next("source port")?)?,
        port(next("destination port")?)?,
    );
    if fields.next().is_some() {
        return Err(ProxyError::V1Syntax {
            what: "trailing field",
        });
    }
    let addresses = match protocol {
        "TCP4" => Addresses::Inet {
            source: SocketAddrV4::new(ip::<Ipv4Addr>(src)?, sport),
            destination: SocketAddrV4::new(ip::<Ipv4Addr>(dst)?, dport),
        },
        "TCP6" => Addresses::Inet6 {
            source: SocketAddrV6::new(ip::<Ipv6Addr>(src)?, sport, 0, 0),
            destination: SocketAddrV6::new(ip::<Ipv6Addr>(dst)?, dport, 0, 0),
        },
        _ => return Err(ProxyError::V1Syntax { what: "protocol" }),
    };
    Ok(ProxyHeader::new(Version::V1, addresses))
}

fn ip<T: FromStr>(s: &str) -> Result<T, ProxyError> {
    // std's parsers are strict: no leading zeros in IPv4 octets, no IPv6 zone ids.
    s.parse().map_err(|_| ProxyError::V1Address)
}

/// A port: decimal in 0..=65535, no sign, no leading zeros (spec §2.1).
fn port(s: &str) -> Result<u16, ProxyError> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return Err(ProxyError::V1Port);
    }
    s.parse().map_err(|_| ProxyError::V1Port)
}

/// Encodes `header` as a v1 line. TLVs are not representable in v1 and are left out;
/// `LOCAL` and unspecified addresses become `PROXY UNKNOWN\r\n`.
///
/// # Errors
/// [`ProxyError::Unrepresentable`] for Unix addresses and datagram transports.
pub fn encode_v1(header: &ProxyHeader) -> Result<Vec<u8>, ProxyError> {
    let unrepresentable = ProxyError::Unrepresentable {
        version: Version::V1,
    };
    let mut line = String::with_capacity(V1_MAX_LEN);
    if header.command == Command::Local {
        line.push_str("PROXY UNKNOWN\r\n");
        return Ok(line.into_bytes());
    }
    if header.transport == Transport::Datagram {
        return Err(unrepresentable);
    }
    // Writing into a String cannot fail.
    let _ = match &header.addresses {
        Addresses::Unspec => write!(line, "PROXY UNKNOWN\r\n"),
        Addresses::Inet {
            source,
            destination,
        } => write!(
            line,
            "PROXY TCP4 {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        ),
        Addresses::Inet6 {
            source,
            destination,
        } => write!(
            line,
            "PROXY TCP6 {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        ),
        Addresses::Unix { .. } => return Err(unrepresentable),
    };
    debug_assert!(line.len() <= V1_MAX_LEN);
    Ok(line.into_bytes())
}
