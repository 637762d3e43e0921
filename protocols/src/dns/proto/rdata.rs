//! Record data of the common types ([`RData`]), read from messages and written to them.
//!
//! Owns: the wire and presentation forms of A, AAAA, NS, CNAME, PTR, MX, SOA, TXT, SRV and
//! CAA, and opaque data for any other type (RFC 3597).
//! Contract: reading checks that the data has exactly the declared length; names inside
//! NS, CNAME, PTR, MX and SOA may be compressed on the wire (RFC 3597 §4), SRV's never
//! (RFC 2782).
//! Spec: RFC 1035 §3.3, RFC 3596 (AAAA), RFC 2782 (SRV), RFC 8659 (CAA), RFC 3597.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::DnsError;
use super::name::{Name, NameBuf, read_name};

/// A record type number.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct RType(pub u16);

#[allow(missing_docs)]
impl RType {
    pub const A: RType = RType(1);
    pub const NS: RType = RType(2);
    pub const CNAME: RType = RType(5);
    pub const SOA: RType = RType(6);
    pub const PTR: RType = RType(12);
    pub const MX: RType = RType(15);
    pub const TXT: RType = RType(16);
    pub const AAAA: RType = RType(28);
    pub const SRV: RType = RType(33);
    pub const OPT: RType = RType(41);
    pub const AXFR: RType = RType(252);
    pub const ANY: RType = RType(255);
    pub const CAA: RType = RType(257);

    /// The mnemonic of a type this crate knows, else `TYPEnnn` (RFC 3597).
    #[must_use]
    pub fn name(self) -> String {
        let known = match self {
            RType::A => "A",
            RType::NS => "NS",
            RType::CNAME => "CNAME",
            RType::SOA => "SOA",
            RType::PTR => "PTR",
            RType::MX => "MX",
            RType::TXT => "TXT",
            RType::AAAA => "AAAA",
            RType::SRV => "SRV",
            RType::OPT => "OPT",
            RType::AXFR => "AXFR",
            RType::ANY => "ANY",
            RType::CAA => "CAA",
            RType(n) => return format!("TYPE{n}"),
        };
        known.to_owned()
    }

    /// The type of a mnemonic (or `TYPEnnn`), case-insensitive.
    #[must_use]
    pub fn from_name(text: &str) -> Option<RType> {
        let upper = text.to_ascii_uppercase();
        Some(match upper.as_str() {
            "A" => RType::A,
            "NS" => RType::NS,
            "CNAME" => RType::CNAME,
            "SOA" => RType::SOA,
            "PTR" => RType::PTR,
            "MX" => RType::MX,
            "TXT" => RType::TXT,
            "AAAA" => RType::AAAA,
            "SRV" => RType::SRV,
            "CAA" => RType::CAA,
            "ANY" => RType::ANY,
            other => RType(other.strip_prefix("TYPE")?.parse().ok()?),
        })
    }
}

/// The data of one record.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An authoritative name server.
    Ns(Name),
    /// The canonical name of an alias.
    Cname(Name),
    /// A pointer (reverse lookups).
    Ptr(Name),
    /// A mail exchanger.
    Mx {
        /// Lower is preferred.
        preference: u16,
        /// The exchanger.
        exchange: Name,
    },
    /// The start of a zone of authority.
    Soa(Soa),
    /// Character strings (each at most 255 bytes).
    Txt(Vec<Vec<u8>>),
    /// A service location.
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// Relative weight among equal priorities.
        weight: u16,
        /// The port.
        port: u16,
        /// The host.
        target: Name,
    },
    /// A certification-authority authorization.
    Caa {
        /// Flags (bit 128: critical).
        flags: u8,
        /// The property tag (`issue`, `issuewild`, `iodef`, ...).
        tag: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Any other type, as bytes.
    Other(RType, Vec<u8>),
}

/// The data of an SOA record.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Soa {
    /// The primary name server.
    pub mname: Name,
    /// The responsible person's mailbox.
    pub rname: Name,
    /// The zone's version.
    pub serial: u32,
    /// Seconds between secondaries' checks.
    pub refresh: u32,
    /// Seconds between retries of a failed check.
    pub retry: u32,
    /// Seconds after which a secondary stops answering.
    pub expire: u32,
    /// The TTL of negative answers (RFC 2308).
    pub minimum: u32,
}

impl RData {
    /// The record type of this data.
    #[must_use]
    pub fn rtype(&self) -> RType {
        match self {
            RData::A(_) => RType::A,
            RData::Aaaa(_) => RType::AAAA,
            RData::Ns(_) => RType::NS,
            RData::Cname(_) => RType::CNAME,
            RData::Ptr(_) => RType::PTR,
            RData::Mx { .. } => RType::MX,
            RData::Soa(_) => RType::SOA,
            RData::Txt(_) => RType::TXT,
            RData::Srv { .. } => RType::SRV,
            RData::Caa { .. } => RType::CAA,
            RData::Other(rtype, _) => *rtype,
        }
    }

    /// Reads data of type `rtype` from `msg[at..at + len]` (names inside may point
    /// backwards into `msg`).
    ///
    /// # Errors
    /// [`DnsError::BadRdata`] when the data does not fit its type or its length.
    pub fn read(rtype: RType, msg: &[u8], at: usize, len: usize) -> Result<RData, DnsError> {
        let end = at + len;
        let data = msg.get(at..end).ok_or(DnsError::Truncated("record data"))?;
        let mut buf = NameBuf::new();
        let mut name_at = |pos: usize| -> Result<(Name, usize), DnsError> {
            let next = read_name(msg, pos, &mut buf)?;
            if next > end {
                return Err(DnsError::BadRdata("name past the record's data"));
            }
            Ok((buf.to_name(), next))
        };
        let exact = |next: usize| {
            if next == end {
                Ok(())
            } else {
                Err(DnsError::BadRdata("length does not match the data"))
            }
        };
        Ok(match rtype {
            RType::A => RData::A(Ipv4Addr::from(
                <[u8; 4]>::try_from(data).map_err(|_| DnsError::BadRdata("A is 4 bytes"))?,
            )),
            RType::AAAA => RData::Aaaa(Ipv6Addr::from(
                <[u8; 16]>::try_from(data).map_err(|_| DnsError::BadRdata("AAAA is 16 bytes"))?,
            )),
            RType::NS | RType::CNAME | RType::PTR => {
                let (name, next) = name_at(at)?;
                exact(next)?;
                match rtype {
                    RType::NS => RData::Ns(name),
                    RType::CNAME => RData::Cname(name),
                    _ => RData::Ptr(name),
                }
            }
            RType::MX => {
                let preference = u16_at(data, 0)?;
                let (exchange, next) = name_at(at + 2)?;
                exact(next)?;
                RData::Mx {
                    preference,
                    exchange,
                }
            }
            RType::SOA => {
                let (mname, next) = name_at(at)?;
                let (rname, next) = name_at(next)?;
                let rest = msg.get(next..end).ok_or(DnsError::BadRdata("short SOA"))?;
                if rest.len() != 20 {
                    return Err(DnsError::BadRdata("SOA numbers are 20 bytes"));
                }
                RData::Soa(Soa {
                    mname,
                    rname,
                    serial: u32_at(rest, 0)?,
                    refresh: u32_at(rest, 4)?,
                    retry: u32_at(rest, 8)?,
                    expire: u32_at(rest, 12)?,
                    minimum: u32_at(rest, 16)?,
                })
            }
            RType::TXT => {
                let mut strings = Vec::new();
                let mut pos = 0;
                while pos < data.len() {
                    let n = usize::from(data[pos]);
                    let s = data
                        .get(pos + 1..pos + 1 + n)
                        .ok_or(DnsError::BadRdata("TXT string past the data"))?;
                    strings.push(s.to_vec());
                    pos += 1 + n;
                }
                if strings.is_empty() {
                    return Err(DnsError::BadRdata("TXT without a string"));
                }
                RData::Txt(strings)
            }
            RType::SRV => {
                let priority = u16_at(data, 0)?;
                let weight = u16_at(data, 2)?;
                let port = u16_at(data, 4)?;
                let (target, next) = name_at(at + 6)?;
                exact(next)?;
                RData::Srv {
                    priority,
                    weight,
                    port,
                    target,
                }
            }
            RType::CAA => {
                let flags = *data.first().ok_or(DnsError::BadRdata("empty CAA"))?;
                let tag_len = usize::from(*data.get(1).ok_or(DnsError::BadRdata("short CAA"))?);
                let tag = data
                    .get(2..2 + tag_len)
                    .ok_or(DnsError::BadRdata("CAA tag past the data"))?;
                if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
                    return Err(DnsError::BadRdata("CAA tag must be letters and digits"));
                }
                RData::Caa {
                    flags,
                    tag: tag.to_vec(),
                    value: data[2 + tag_len..].to_vec(),
                }
            }
            other => RData::Other(other, data.to_vec()),
        })
    }
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, DnsError> {
    data.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::BadRdata("short record data"))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, DnsError> {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(DnsError::BadRdata("short record data"))
}

impl fmt::Display for RData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = |f: &mut fmt::Formatter<'_>, s: &[u8]| -> fmt::Result {
            f.write_str("\"")?;
            for &b in s {
                match b {
                    b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                    0x20..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str("\"")
        };
        match self {
            RData::A(a) => write!(f, "{a}"),
            RData::Aaaa(a) => write!(f, "{a}"),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => write!(f, "{n}"),
            RData::Mx {
                preference,
                exchange,
            } => write!(f, "{preference} {exchange}"),
            RData::Soa(s) => write!(
                f,
                "{} {} {} {} {} {} {}",
                s.mname, s.rname, s.serial, s.refresh, s.retry, s.expire, s.minimum
            ),
            RData::Txt(strings) => {
                for (i, s) in strings.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    quoted(f, s)?;
                }
                Ok(())
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "{priority} {weight} {port} {target}"),
            RData::Caa { flags, tag, value } => {
                write!(f, "{flags} {} ", String::from_utf8_lossy(tag))?;
                quoted(f, value)
            }
            RData::Other(_, data) => {
                write!(f, "\\# {}", data.len())?;
                if !data.is_empty() {
                    f.write_str(" ")?;
                }
                for b in data {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}
