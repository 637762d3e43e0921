//! The PROXY protocol on ringwork listeners: [`preamble`], the parser the engine runs
//! before a connection's protocol starts (`haproxy:` endpoints).
//!
//! Owns: turning a [`parse`](super::parse) result, in the crate's parse convention
//! (`Result<`[`Status`]`<`[`Parsed`]`<ProxyHeader>>, ProxyError>`), into the engine's
//! [`PreambleStatus`] (which cannot name the kit's types: the engine does not depend on
//! this crate): `Partial` is `Incomplete`, an error is `Invalid` with its text, and a
//! header is `Done` with its length, its source and destination becoming the connection's
//! `peer_addr` and `local_addr`; `LOCAL` (a health check from the balancer itself) and
//! `UNKNOWN`/`AF_UNSPEC` keep the socket's addresses.
//! Contract: a header is required — a connection that starts with anything else is closed
//! with a log line, as HAProxy's `accept-proxy` does.

use ringwork::{PreambleStatus, SockAddr};

use super::{Addresses, Command, Parsed, Status, parse};

/// The PROXY protocol (v1 or v2, detected) as a listener preamble:
/// `ListenerOptions::default().preamble(ringwork_protocols::proxy_protocol::preamble)`.
#[must_use]
pub fn preamble(data: &[u8]) -> PreambleStatus {
    match parse(data) {
        Ok(Status::Partial) => PreambleStatus::Incomplete,
        Err(error) => PreambleStatus::Invalid(format!("PROXY protocol: {error}")),
        Ok(Status::Complete(Parsed {
            value: header,
            consumed,
        })) => {
            let (peer, local) = match (&header.command, &header.addresses) {
                (Command::Local, _) | (_, Addresses::Unspec) => (None, None),
                (
                    Command::Proxy,
                    Addresses::Inet {
                        source,
                        destination,
                    },
                ) => (
                    Some(SockAddr::from(std::net::SocketAddr::V4(*source))),
                    Some(SockAddr::from(std::net::SocketAddr::V4(*destination))),
                ),
                (
                    Command::Proxy,
                    Addresses::Inet6 {
                        source,
                        destination,
                    },
                ) => (
                    Some(SockAddr::from(std::net::SocketAddr::V6(*source))),
                    Some(SockAddr::from(std::net::SocketAddr::V6(*destination))),
                ),
                (
                    Command::Proxy,
                    Addresses::Unix {
                        source,
                        destination,
                    },
                ) => (unix_addr(source), unix_addr(destination)),
            };
            PreambleStatus::Done {
                consumed,
                peer,
                local,
            }
        }
    }
}

#[cfg(unix)]
fn unix_addr(path: &[u8]) -> Option<SockAddr> {
    use std::os::unix::ffi::OsStrExt;
    if path.is_empty() {
        return None;
    }
    SockAddr::unix(std::ffi::OsStr::from_bytes(path)).ok()
}

#[cfg(not(unix))]
fn unix_addr(_path: &[u8]) -> Option<SockAddr> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_names_the_client_and_partial_input_waits() {
        let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /";
        for end in 1..header.len() - 5 {
            assert!(
                matches!(preamble(&header[..end]), PreambleStatus::Incomplete),
                "{end}"
            );
        }
        let PreambleStatus::Done {
            consumed,
            peer,
            local,
        } = preamble(header)
        else {
            panic!("not done");
        };
        assert_eq!(consumed, header.len() - 5);
        assert_eq!(
            peer.unwrap().as_socket(),
            Some("192.0.2.1:56324".parse().unwrap())
        );
        assert_eq!(
            local.unwrap().as_socket(),
            Some("198.51.100.2:443".parse().unwrap())
        );
        assert!(matches!(
            preamble(b"GET / HTTP/1.1\r\n"),
            PreambleStatus::Invalid(_)
        ));
        let PreambleStatus::Done { peer, .. } = preamble(b"PROXY UNKNOWN\r\n") else {
            panic!("UNKNOWN is a valid header");
        };
        assert!(peer.is_none());
    }
}
