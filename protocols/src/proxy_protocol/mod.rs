//! PROXY protocol v1 and v2 (HAProxy), sans-IO: header parser and encoders.
//!
//! Owns: detecting, parsing and encoding the header a load balancer (HAProxy, nginx, AWS
//! NLB, ...) sends before the proxied bytes, which carries the original client address.
//! Contract: [`parse`] looks at the first bytes of a connection and follows the crate's
//! parse convention ([`crate::kit::Status`]): [`Status::Partial`] while more bytes are
//! needed, the header and the number of bytes it used ([`Parsed`]), or an error as soon as
//! the bytes cannot begin a valid header (a first byte that is neither `P` nor `\r` is
//! rejected at once). Nothing is buffered here: call it again with the longer prefix.
//! Does not: do IO, decide whether to trust the sender (the listener's configuration does),
//! or read anything after the header.
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt> (§2.1 v1, §2.2 v2,
//! §2.2.x TLVs). Tests: `tests.rs`; fuzz target `fuzz/fuzz_targets/proxy_protocol.rs`.

mod crc32c;
#[cfg(feature = "engine")]
mod listener;
mod v1;
mod v2;

use std::net::{SocketAddrV4, SocketAddrV6};

pub use crate::kit::{Parsed, Status};
pub use crate::proxy_protocol::crc32c::crc32c;
#[cfg(feature = "engine")]
pub use crate::proxy_protocol::listener::preamble;
pub use crate::proxy_protocol::v1::{V1_MAX_LEN, encode_v1};
pub use crate::proxy_protocol::v2::{SslTlv, Tlv, V2_SIGNATURE, encode_v2, tlv_type};

/// Which version of the protocol a header used.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Version {
    /// The human-readable form (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary form (12-byte signature, then a fixed block and TLVs).
    V2,
}

/// What the sender asks the receiver to do with the connection.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Command {
    /// v2 `LOCAL`: the connection was made by the proxy itself (a health check); use the
    /// real connection endpoints. The addresses are discarded ([`Addresses::Unspec`]).
    Local,
    /// A proxied connection: the addresses are the original client's and the proxy's.
    Proxy,
}

/// The transport protocol of the proxied connection.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Transport {
    /// Unknown or unspecified (v1 `UNKNOWN`, v2 `UNSPEC`, v2 `LOCAL`).
    Unspec,
    /// `SOCK_STREAM` (TCP, or a Unix stream socket).
    Stream,
    /// `SOCK_DGRAM` (UDP, or a Unix datagram socket). v2 only.
    Datagram,
}

/// The original source and destination of the proxied connection.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub enum Addresses {
    /// Not given (v1 `UNKNOWN`, v2 `AF_UNSPEC` or `LOCAL`): use the connection's own.
    Unspec,
    /// IPv4 (v1 `TCP4`, v2 `AF_INET`).
    Inet {
        /// The original client.
        source: SocketAddrV4,
        /// The address the client connected to (the proxy's).
        destination: SocketAddrV4,
    },
    /// IPv6 (v1 `TCP6`, v2 `AF_INET6`).
    Inet6 {
        /// The original client.
        source: SocketAddrV6,
        /// The address the client connected to (the proxy's).
        destination: SocketAddrV6,
    },
    /// Unix socket paths (v2 `AF_UNIX`): the 108-byte fields up to their first NUL.
    Unix {
        /// The client's socket path (often empty: an unnamed socket).
        source: Vec<u8>,
        /// The listening socket path.
        destination: Vec<u8>,
    },
}

/// A parsed PROXY protocol header.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ProxyHeader {
    /// The version it was sent in.
    pub version: Version,
    /// `LOCAL` or `PROXY` (always `PROXY` for v1).
    pub command: Command,
    /// Stream, datagram or unspecified.
    pub transport: Transport,
    /// The original endpoints.
    pub addresses: Addresses,
    /// v2 TLVs in wire order (empty for v1). A `CRC32C` TLV has been verified.
    pub tlvs: Vec<Tlv>,
}

impl ProxyHeader {
    /// A `PROXY` header over a stream transport for `addresses`, with no TLVs.
    #[must_use]
    pub fn new(version: Version, addresses: Addresses) -> Self {
        let transport = match addresses {
            Addresses::Unspec => Transport::Unspec,
            _ => Transport::Stream,
        };
        Self {
            version,
            command: Command::Proxy,
            transport,
            addresses,
            tlvs: Vec::new(),
        }
    }

    /// The first TLV of type `kind`, if any.
    #[must_use]
    pub fn tlv(&self, kind: u8) -> Option<&Tlv> {
        self.tlvs.iter().find(|t| t.kind() == kind)
    }
}

/// Why bytes are not a valid PROXY header, or why a header cannot be encoded.
///
/// The display text is not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The first bytes match neither the v1 `PROXY ` prefix nor the v2 signature.
    #[error("not a proxy protocol header")]
    NotProxy,
    /// A v1 line did not end within the 107 bytes the spec allows.
    #[error("proxy v1 header longer than {limit} bytes")]
    V1TooLong {
        /// The limit (107).
        limit: usize,
    },
    /// A v1 line does not follow the grammar.
    #[error("proxy v1 header malformed: {what}")]
    V1Syntax {
        /// Which part is wrong.
        what: &'static str,
    },
    /// A v1 address is not a valid address of the announced family.
    #[error("proxy v1 address invalid")]
    V1Address,
    /// A v1 port is not a decimal in 0..=65535 without leading zeros.
    #[error("proxy v1 port invalid")]
    V1Port,
    /// The v2 version nibble is not 2.
    #[error("proxy v2 version {version} unsupported")]
    V2Version {
        /// The high nibble of byte 13.
        version: u8,
    },
    /// The v2 command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("proxy v2 command {command} unsupported")]
    V2Command {
        /// The low nibble of byte 13.
        command: u8,
    },
    /// The v2 family/protocol byte is not one the spec defines.
    #[error("proxy v2 address family byte {byte:#04x} unsupported")]
    V2Family {
        /// Byte 14.
        byte: u8,
    },
    /// The v2 length is smaller than the address block of the announced family.
    #[error("proxy v2 length {length} shorter than the {needed}-byte address block")]
    V2Length {
        /// The announced length.
        length: u16,
        /// The size of the address block.
        needed: u16,
    },
    /// A TLV (or SSL sub-TLV) runs past the end of its enclosing block.
    #[error("proxy v2 tlv at offset {offset} truncated")]
    TlvTruncated {
        /// Offset of the TLV from the start of the header.
        offset: usize,
    },
    /// A TLV's value does not fit its type (CRC32C not 4 bytes, UNIQUE_ID over 128, ...).
    #[error("proxy v2 tlv type {kind:#04x} invalid")]
    TlvInvalid {
        /// The TLV type.
        kind: u8,
    },
    /// The CRC32C TLV does not match the header.
    #[error("proxy v2 crc32c mismatch (header says {sent:#010x}, computed {computed:#010x})")]
    Crc32cMismatch {
        /// The checksum the sender wrote.
        sent: u32,
        /// The checksum of the received header.
        computed: u32,
    },
    /// The header cannot be expressed in the requested version (v1 has no datagrams and
    /// no Unix sockets).
    #[error("header not representable in proxy {version:?}")]
    Unrepresentable {
        /// The version asked for.
        version: Version,
    },
    /// An encoded v2 header, a TLV or a Unix path would exceed its size field.
    #[error("proxy v2 field too long to encode")]
    EncodeTooLong,
}

/// The minimum number of bytes [`parse`] needs to tell v1 from v2 (and from neither).
pub const DETECT_LEN: usize = 1;

/// Parses a PROXY protocol header (v1 or v2, detected from the first byte) at the start
/// of `buf`.
///
/// Returns [`Status::Partial`] when `buf` is a valid prefix of a header and more bytes are
/// needed, or the header and its length ([`Parsed::consumed`]): the bytes after it belong
/// to the proxied stream.
///
/// # Errors
/// [`ProxyError::NotProxy`] as soon as the prefix matches neither version (one byte is
/// enough for most non-PROXY input), or the error describing the malformed header.
pub fn parse(buf: &[u8]) -> Result<Status<Parsed<ProxyHeader>>, ProxyError> {
    match buf.first() {
        None => Ok(Status::Partial),
        Some(b'P') => v1::parse(buf),
        Some(b'\r') => v2::parse(buf),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// Encodes `header` in its own [`ProxyHeader::version`], with its own TLVs for v2.
///
/// # Errors
/// As [`encode_v1`] or [`encode_v2`].
pub fn encode(header: &ProxyHeader) -> Result<Vec<u8>, ProxyError> {
    match header.version {
        Version::V1 => encode_v1(header),
        Version::V2 => encode_v2(header, &header.tlvs),
    }
}

#[cfg(test)]
mod tests;
