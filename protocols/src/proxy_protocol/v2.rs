//! PROXY protocol v2: the binary header and its TLVs (spec §2.2).
//!
//! Layout: 12-byte signature; `ver_cmd` (version 2 in the high nibble, LOCAL 0 / PROXY 1
//! in the low one); `fam` (address family high, transport low); a big-endian `len` of
//! what follows; the address block (12 bytes IPv4, 36 IPv6, 216 Unix); TLVs to `len`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::kit::{Parsed, Status};
use crate::proxy_protocol::crc32c::crc32c;
use crate::proxy_protocol::{Addresses, Command, ProxyError, ProxyHeader, Transport, Version};

/// The 12 bytes every v2 header starts with (spec §2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Fixed part: signature, `ver_cmd`, `fam`, `len`.
const FIXED_LEN: usize = 16;
/// `sun_path` size in the Unix address block.
const UNIX_PATH_LEN: usize = 108;
/// Spec §2.2.5: "the value ... MUST NOT exceed 128 bytes".
const UNIQUE_ID_MAX: usize = 128;

/// TLV type numbers (spec §2.2.1–§2.2.8).
pub mod tlv_type {
    /// `PP2_TYPE_ALPN`: the negotiated application protocol.
    pub const ALPN: u8 = 0x01;
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI), UTF-8.
    pub const AUTHORITY: u8 = 0x02;
    /// `PP2_TYPE_CRC32C`: a CRC-32C of the whole header.
    pub const CRC32C: u8 = 0x03;
    /// `PP2_TYPE_NOOP`: padding, to be ignored.
    pub const NOOP: u8 = 0x04;
    /// `PP2_TYPE_UNIQUE_ID`: an opaque connection id of up to 128 bytes.
    pub const UNIQUE_ID: u8 = 0x05;
    /// `PP2_TYPE_SSL`: TLS details; value is client flags, verify result, sub-TLVs.
    pub const SSL: u8 = 0x20;
    /// `PP2_SUBTYPE_SSL_VERSION` (inside SSL): e.g. `TLSv1.3`.
    pub const SSL_VERSION: u8 = 0x21;
    /// `PP2_SUBTYPE_SSL_CN` (inside SSL): the client certificate's Common Name.
    pub const SSL_CN: u8 = 0x22;
    /// `PP2_SUBTYPE_SSL_CIPHER` (inside SSL).
    pub const SSL_CIPHER: u8 = 0x23;
    /// `PP2_SUBTYPE_SSL_SIG_ALG` (inside SSL).
    pub const SSL_SIG_ALG: u8 = 0x24;
    /// `PP2_SUBTYPE_SSL_KEY_ALG` (inside SSL).
    pub const SSL_KEY_ALG: u8 = 0x25;
    /// `PP2_TYPE_NETNS`: the network namespace name.
    pub const NETNS: u8 = 0x30;
}

/// One v2 TLV.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Tlv {
    /// `PP2_TYPE_ALPN` (e.g. `h2`).
    Alpn(Vec<u8>),
    /// `PP2_TYPE_AUTHORITY` (the SNI host name; bytes, as sent).
    Authority(Vec<u8>),
    /// `PP2_TYPE_CRC32C`. Parsed: the verified checksum. Encoded: the value is ignored and
    /// the checksum of the encoded header is written instead.
    Crc32c(u32),
    /// `PP2_TYPE_NOOP` padding.
    Noop(Vec<u8>),
    /// `PP2_TYPE_UNIQUE_ID` (at most 128 bytes).
    UniqueId(Vec<u8>),
    /// `PP2_TYPE_SSL`.
    Ssl(SslTlv),
    /// `PP2_TYPE_NETNS`.
    Netns(Vec<u8>),
    /// Any other type (custom 0xE0–0xEF, experimental 0xF0–0xF7, future), or an SSL
    /// sub-TLV (types 0x21–0x25).
    Other {
        /// The type byte.
        kind: u8,
        /// The raw value.
        value: Vec<u8>,
    },
}

/// The value of a `PP2_TYPE_SSL` TLV (spec §2.2.6).
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct SslTlv {
    /// `PP2_CLIENT_SSL` (1), `PP2_CLIENT_CERT_CONN` (2), `PP2_CLIENT_CERT_SESS` (4).
    pub client: u8,
    /// 0 when the client presented a certificate that verified.
    pub verify: u32,
    /// Sub-TLVs ([`Tlv::Other`] with the `SSL_*` types of [`tlv_type`]).
    pub sub_tlvs: Vec<Tlv>,
}

impl SslTlv {
    /// `PP2_CLIENT_SSL`: the client connected over TLS.
    pub const CLIENT_SSL: u8 = 0x01;
    /// `PP2_CLIENT_CERT_CONN`: a client certificate was sent on this connection.
    pub const CLIENT_CERT_CONN: u8 = 0x02;
    /// `PP2_CLIENT_CERT_SESS`: a client certificate was sent in this TLS session.
    pub const CLIENT_CERT_SESS: u8 = 0x04;

    /// The value of the first sub-TLV of type `kind` (e.g. [`tlv_type::SSL_VERSION`]).
    #[must_use]
    pub fn sub(&self, kind: u8) -> Option<&[u8]> {
        self.sub_tlvs.iter().find_map(|t| match t {
            Tlv::Other { kind: k, value } if *k == kind => Some(value.as_slice()),
            _ => None,
        })
    }
}

impl Tlv {
    /// The TLV's type byte.
    #[must_use]
    pub fn kind(&self) -> u8 {
        match self {
            Self::Alpn(_) => tlv_type::ALPN,
            Self::Authority(_) => tlv_type::AUTHORITY,
            Self::Crc32c(_) => tlv_type::CRC32C,
            Self::Noop(_) => tlv_type::NOOP,
            Self::UniqueId(_) => tlv_type::UNIQUE_ID,
            Self::Ssl(_) => tlv_type::SSL,
            Self::Netns(_) => tlv_type::NETNS,
            Self::Other { kind, .. } => *kind,
        }
    }

    /// Decodes one value of type `kind`; `offset` locates it for errors.
    fn decode(kind: u8, value: &[u8], offset: usize) -> Result<Self, ProxyError> {
        let invalid = ProxyError::TlvInvalid { kind };
        Ok(match kind {
            tlv_type::ALPN => Self::Alpn(value.to_vec()),
            tlv_type::AUTHORITY => Self::Authority(value.to_vec()),
            tlv_type::CRC32C => {
                let bytes: [u8; 4] = value.try_into().map_err(|_| invalid)?;
                Self::Crc32c(u32::from_be_bytes(bytes))
            }
            tlv_type::NOOP => Self::Noop(value.to_vec()),
            tlv_type::UNIQUE_ID if value.len() > UNIQUE_ID_MAX => return Err(invalid),
            tlv_type::UNIQUE_ID => Self::UniqueId(value.to_vec()),
            tlv_type::SSL => {
                let [client, v0, v1, v2, v3, subs @ ..] = value else {
                    return Err(invalid);
                };
                let mut sub_tlvs = Vec::new();
                for (kind, at, value) in TlvIter::new(subs, offset + 5) {
                    let value = value?;
                    if kind == tlv_type::SSL {
                        return Err(ProxyError::TlvInvalid { kind });
                    }
                    sub_tlvs.push(Self::decode(kind, value, at)?);
                }
                Self::Ssl(SslTlv {
                    client: *client,
                    verify: u32::from_be_bytes([*v0, *v1, *v2, *v3]),
                    sub_tlvs,
                })
            }
            tlv_type::NETNS => Self::Netns(value.to_vec()),
            kind => Self::Other {
                kind,
                value: value.to_vec(),
            },
        })
    }

    /// Appends the encoded TLV to `out`.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProxyError> {
        let start = out.len();
        out.extend_from_slice(&[self.kind(), 0, 0]);
        match self {
            Self::Alpn(v) | Self::Authority(v) | Self::Noop(v) | Self::Netns(v) => {
                out.extend_from_slice(v);
            }
            Self::UniqueId(v) if v.len() > UNIQUE_ID_MAX => {
                return Err(ProxyError::TlvInvalid {
                    kind: tlv_type::UNIQUE_ID,
                });
            }
            Self::UniqueId(v) | Self::Other { value: v, .. } => out.extend_from_slice(v),
            Self::Crc32c(_) => out.extend_from_slice(&[0; 4]),
            Self::Ssl(ssl) => {
                out.push(ssl.client);
                out.extend_from_slice(&ssl.verify.to_be_bytes());
                for sub in &ssl.sub_tlvs {
                    sub.encode(out)?;
                }
            }
        }
        let len = u16::try_from(out.len() - start - 3).map_err(|_| ProxyError::EncodeTooLong)?;
        out[start + 1..start + 3].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// Walks a TLV block: yields `(type, offset, value)`; a truncated TLV yields an error.
struct TlvIter<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> TlvIter<'a> {
    fn new(block: &'a [u8], offset: usize) -> Self {
        Self {
            rest: block,
            offset,
        }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = (u8, usize, Result<&'a [u8], ProxyError>);

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.offset;
        let truncated = ProxyError::TlvTruncated { offset: at };
        match self.rest {
            [] => None,
            [kind, hi, lo, rest @ ..] => {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                let kind = *kind;
                if len > rest.len() {
                    self.rest = &[];
                    return Some((kind, at, Err(truncated)));
                }
                let (value, rest) = rest.split_at(len);
                self.rest = rest;
                self.offset += 3 + len;
                Some((kind, at + 3, Ok(value)))
            }
            [kind, ..] => {
                let kind = *kind;
                self.rest = &[];
                Some((kind, at, Err(truncated)))
            }
        }
    }
}

/// The size of the address block for a `fam` byte, or `None` if the spec does not define
/// the byte (spec §2.2: receivers must reject other values).
fn address_len(fam: u8) -> Option<u16> {
    match fam {
        0x00 => Some(0),
        0x11 | 0x12 => Some(12),
        0x21 | 0x22 => Some(36),
        0x31 | 0x32 => Some(2 * UNIX_PATH_LEN as u16),
        _ => None,
    }
}

/// Parses a v2 header at the start of `buf` (which starts with `\r`).
pub(super) fn parse(buf: &[u8]) -> Result<Status<Parsed<ProxyHeader>>, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::NotProxy);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(Status::Partial);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Version {
            version: ver_cmd >> 4,
        });
    }
    let command = match ver_cmd & 0x0f {
        0 => Command::Local,
        1 => Command::Proxy,
        command => return Err(ProxyError::V2Command { command }),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(Status::Partial);
    };
    // Spec §2.2: with LOCAL, "the receiver must ... discard the protocol block including
    // the family", so an unknown family is only an error for PROXY.
    let addr_len = match (address_len(fam), command) {
        (Some(n), _) => n,
        (None, Command::Local) => 0,
        (None, Command::Proxy) => return Err(ProxyError::V2Family { byte: fam }),
    };
    let [Some(&hi), Some(&lo)] = [buf.get(14), buf.get(15)] else {
        return Ok(Status::Partial);
    };
    let length = u16::from_be_bytes([hi, lo]);
    if length < addr_len {
        return Err(ProxyError::V2Length {
            length,
            needed: addr_len,
        });
    }
    let total = FIXED_LEN + usize::from(length);
    let Some(header) = buf.get(..total) else {
        return Ok(Status::Partial);
    };
    let addr_end = FIXED_LEN + usize::from(addr_len);
    let (transport, addresses) = match command {
        Command::Local => (Transport::Unspec, Addresses::Unspec),
        Command::Proxy => decode_addresses(fam, &header[FIXED_LEN..addr_end]),
    };
    let tlv_block = if address_len(fam).is_some() {
        &header[addr_end..]
    } else {
        &[][..]
    };
    let mut tlvs = Vec::new();
    let mut crc_at = None;
    for (kind, at, value) in TlvIter::new(tlv_block, addr_end) {
        let value = value?;
        if kind == tlv_type::CRC32C {
            if crc_at.is_some() {
                return Err(ProxyError::TlvInvalid { kind });
            }
            crc_at = Some(at);
        }
        tlvs.push(Tlv::decode(kind, value, at)?);
    }
    if let Some(at) = crc_at {
        let sent = u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let computed = crc32c(&[&header[..at], &[0; 4], &header[at + 4..]]);
        if sent != computed {
            return Err(ProxyError::Crc32cMismatch { sent, computed });
        }
    }
    let header = ProxyHeader {
        version: Version::V2,
        command,
        transport,
        addresses,
        tlvs,
    };
    Ok(Status::Complete(Parsed {
        value: header,
        consumed: total,
    }))
}

/// Decodes the address block of a valid `fam` byte (`block` has its exact length).
fn decode_addresses(fam: u8, block: &[u8]) -> (Transport, Addresses) {
    let transport = match fam & 0x0f {
        1 => Transport::Stream,
        2 => Transport::Datagram,
        _ => Transport::Unspec,
    };
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let addresses = match fam >> 4 {
        1 => {
            let ip =
                |at: usize| Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]);
            Addresses::Inet {
                source: SocketAddrV4::new(ip(0), port(8)),
                destination: SocketAddrV4::new(ip(4), port(10)),
            }
        }
        2 => {
            let ip = |at: usize| {
                let mut octets = [0; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            Addresses::Inet6 {
                source: SocketAddrV6::new(ip(0), port(32), 0, 0),
                destination: SocketAddrV6::new(ip(16), port(34), 0, 0),
            }
        }
        3 => {
            let path = |field: &[u8]| {
                let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
                field[..end].to_vec()
            };
            Addresses::Unix {
                source: path(&block[..UNIX_PATH_LEN]),
                destination: path(&block[UNIX_PATH_LEN..]),
            }
        }
        _ => Addresses::Unspec,
    };
    (transport, addresses)
}

/// Encodes `header`'s command and addresses as a v2 header followed by `tlvs` (not
/// `header.tlvs`: pass `&header.tlvs` to re-encode a parsed header). A [`Tlv::Crc32c`] in
/// `tlvs` gets the checksum of the encoded header.
///
/// `LOCAL` headers carry no addresses (family `UNSPEC`).
///
/// # Errors
/// [`ProxyError::Unrepresentable`] for IP or Unix addresses with an unspecified
/// transport; [`ProxyError::EncodeTooLong`] when a Unix path exceeds 108 bytes or a TLV or
/// the header exceed 65535 bytes; [`ProxyError::TlvInvalid`] for an over-long UNIQUE_ID.
pub fn encode_v2(header: &ProxyHeader, tlvs: &[Tlv]) -> Result<Vec<u8>, ProxyError> {
    let mut out = Vec::with_capacity(FIXED_LEN + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    let command = match header.command {
        Command::Local => 0,
        Command::Proxy => 1,
    };
    out.push(0x20 | command);
    let transport = match header.transport {
        Transport::Unspec => 0,
        Transport::Stream => 1,
        Transport::Datagram => 2,
    };
    let family = match (&header.addresses, header.command) {
        (_, Command::Local) | (Addresses::Unspec, _) => 0,
        (_, Command::Proxy) if transport == 0 => {
            return Err(ProxyError::Unrepresentable {
                version: Version::V2,
            });
        }
        (Addresses::Inet { .. }, _) => 0x10,
        (Addresses::Inet6 { .. }, _) => 0x20,
        (Addresses::Unix { .. }, _) => 0x30,
    };
    out.push(if family == 0 { 0 } else { family | transport });
    out.extend_from_slice(&[0, 0]);
    if family != 0 {
        match &header.addresses {
            Addresses::Unspec => {}
            Addresses::Inet {
                source,
                destination,
            } => {
                out.extend_from_slice(&source.ip().octets());
                out.extend_from_slice(&destination.ip().octets());
                out.extend_from_slice(&source.port().to_be_bytes());
                out.extend_from_slice(&destination.port().to_be_bytes());
            }
            Addresses::Inet6 {
                source,
                destination,
            } => {
                out.extend_from_slice(&source.ip().octets());
                out.extend_from_slice(&destination.ip().octets());
                out.extend_from_slice(&source.port().to_be_bytes());
                out.extend_from_slice(&destination.port().to_be_bytes());
            }
            Addresses::Unix {
                source,
                destination,
            } => {
                for path in [source, destination] {
                    if path.len() > UNIX_PATH_LEN || path.contains(&0) {
                        return Err(ProxyError::EncodeTooLong);
                    }
                    out.extend_from_slice(path);
                    out.resize(out.len() + UNIX_PATH_LEN - path.len(), 0);
                }
            }
        }
    }
    let mut crc_at = None;
    for tlv in tlvs {
        if matches!(tlv, Tlv::Crc32c(_)) {
            crc_at = Some(out.len() + 3);
        }
        tlv.encode(&mut out)?;
    }
    let length = u16::try_from(out.len() - FIXED_LEN).map_err(|_| ProxyError::EncodeTooLong)?;
    out[14..16].copy_from_slice(&length.to_be_bytes());
    if let Some(at) = crc_at {
        let crc = crc32c(&[&out]);
        out[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}
