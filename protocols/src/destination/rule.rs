//! [`Rule`]: one allow or deny line of a [`DestinationPolicy`](super::DestinationPolicy),
//! its text form, and [`RuleError`] for text that is not one.
//!
//! Text form (what `--allow` and `--deny` take):
//!
//! ```text
//! RULE   = HOST [":" PORTS]
//!        | "[" IPV6 ["/" LEN] "]" [":" PORTS]
//!        | IPV6 ["/" LEN]                       (no port: the colons are the address's)
//! HOST   = "*"                                  any destination
//!        | CLASS                                loopback, unspecified, link-local, private,
//!                                               cgnat, multicast, broadcast, reserved
//!        | IPV4 ["/" LEN]                       an address or a network (CIDR)
//!        | NAME | "*." NAME                     a host name, or any name under one
//! PORTS  = PORT | PORT "-" PORT | "*"
//! ```
//!
//! Examples: `127.0.0.1:8080`, `10.0.0.0/8`, `[::1]:22`, `fc00::/7`, `*.internal`,
//! `db.example.com:5432`, `*:25`, `loopback`, `private:443`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::host::{AddressClass, canonical_ip, classify, inet_aton};

/// What a matching rule does.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Action {
    /// The destination may be reached.
    Allow,
    /// It may not.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

/// One rule: an [`Action`] for destinations matching a host pattern and a port range.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Rule {
    action: Action,
    host: HostMatch,
    ports: Ports,
    /// As written, for messages.
    text: String,
}

#[derive(Clone, Debug, Eq, PartialEq)]
enum HostMatch {
    Any,
    /// A canonical network: an IPv4-mapped IPv6 network is stored as its IPv4 network.
    Net(Net),
    Class(AddressClass),
    /// Exact name, lowercase, no trailing dot.
    Name(String),
    /// `*.example.com`, stored as `.example.com`: names strictly under it.
    Suffix(String),
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                net.to_bits() == ip.to_bits() & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                net.to_bits() == ip.to_bits() & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
struct Ports {
    first: u16,
    last: u16,
}

impl Ports {
    const ALL: Ports = Ports {
        first: 0,
        last: u16::MAX,
    };

    fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// Text that is not a [`Rule`]. The display text is not stable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// Nothing was given.
    #[error("empty rule (expected an address, network, host name or *.domain)")]
    Empty,
    /// The port part is not a port, a range or `*`.
    #[error("{text:?}: not a port or port range (like 443, 8000-8999 or *)")]
    BadPort {
        /// The port part as written.
        text: String,
    },
    /// A port range that ends before it starts.
    #[error("port range {first}-{last} ends before it starts")]
    BackwardsPorts {
        /// The first port.
        first: u16,
        /// The last port.
        last: u16,
    },
    /// The network's prefix length is not a number in range.
    #[error("{text:?}: the prefix length must be 0 to {max}")]
    BadPrefix {
        /// The rule's host part.
        text: String,
        /// 32 or 128.
        max: u8,
    },
    /// The network has bits set past its prefix (`10.0.0.1/8`).
    #[error("{text:?} has host bits set; did you mean {network}?")]
    HostBits {
        /// The rule's host part.
        text: String,
        /// The network it probably means.
        network: String,
    },
    /// An IPv4 address in a legacy form (`127.1`, `0x7f.0.0.1`, `2130706433`).
    #[error("{text:?} is an IPv4 address in a legacy numeric form; write it as {canonical}")]
    LegacyAddress {
        /// As written.
        text: String,
        /// The dotted-quad form.
        canonical: Ipv4Addr,
    },
    /// Not an address, network, class, name or pattern.
    #[error("{text:?} is not an address, network, host name or *.domain: {why}")]
    BadHost {
        /// The rule's host part.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl Rule {
    /// An allow rule from its text form (see the module docs).
    ///
    /// # Errors
    /// The text is not a rule; the error says why in the user's terms.
    pub fn allow(text: &str) -> Result<Rule, RuleError> {
        Rule::parse(Action::Allow, text)
    }

    /// A deny rule from its text form (see the module docs).
    ///
    /// # Errors
    /// The text is not a rule; the error says why in the user's terms.
    pub fn deny(text: &str) -> Result<Rule, RuleError> {
        Rule::parse(Action::Deny, text)
    }

    /// A rule with `action` from its text form (see the module docs).
    ///
    /// # Errors
    /// The text is not a rule; the error says why in the user's terms.
    pub fn parse(action: Action, text: &str) -> Result<Rule, RuleError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(RuleError::Empty);
        }
        let (host, ports) = split_ports(trimmed)?;
        Ok(Rule {
            action,
            host: parse_host(host)?,
            ports,
            text: trimmed.to_owned(),
        })
    }

    /// What the rule does when it matches.
    #[must_use]
    pub fn action(&self) -> Action {
        self.action
    }

    /// Whether the rule matches the destination `addr` (canonical), reached by `name` if
    /// the client gave one, on `port`.
    pub(super) fn matches(&self, name: Option<&str>, addr: IpAddr, port: u16) -> bool {
        self.ports.contains(port)
            && match &self.host {
                HostMatch::Any => true,
                HostMatch::Net(net) => net.contains(addr),
                HostMatch::Class(class) => classify(addr) == Some(*class),
                HostMatch::Name(_) | HostMatch::Suffix(_) => {
                    name.is_some_and(|name| self.matches_name(name))
                }
            }
    }

    /// Before resolving `name`: `Some(matches)` when the answer does not depend on the
    /// address (a name rule, `*`, or a port outside the rule's), `None` when it does.
    pub(super) fn matches_name_only(&self, name: &str, port: u16) -> Option<bool> {
        if !self.ports.contains(port) {
            return Some(false);
        }
        match &self.host {
            HostMatch::Any => Some(true),
            HostMatch::Name(_) | HostMatch::Suffix(_) => Some(self.matches_name(name)),
            HostMatch::Net(_) | HostMatch::Class(_) => None,
        }
    }

    fn matches_name(&self, name: &str) -> bool {
        match &self.host {
            HostMatch::Name(exact) => name == exact,
            HostMatch::Suffix(suffix) => name.len() > suffix.len() && name.ends_with(&**suffix),
            _ => false,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action, self.text)
    }
}

/// Splits `HOST[:PORTS]`, `[V6]:PORTS` and a bare IPv6 address or network.
fn split_ports(text: &str) -> Result<(&str, Ports), RuleError> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(RuleError::BadHost {
                text: text.to_owned(),
                why: "an opening [ without a closing ]",
            });
        };
        if !inside.contains(':') {
            return Err(RuleError::BadHost {
                text: text.to_owned(),
                why: "brackets are for IPv6 addresses",
            });
        }
        return match after {
            "" => Ok((inside, Ports::ALL)),
            _ => match after.strip_prefix(':') {
                Some(ports) => Ok((inside, parse_ports(ports)?)),
                None => Err(RuleError::BadHost {
                    text: text.to_owned(),
                    why: "expected :PORT after ]",
                }),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, Ports::ALL)),
        1 => {
            let (host, ports) = text.split_once(':').unwrap_or((text, ""));
            Ok((host, parse_ports(ports)?))
        }
        // An IPv6 address or network: a port needs brackets.
        _ => Ok((text, Ports::ALL)),
    }
}

fn parse_ports(text: &str) -> Result<Ports, RuleError> {
    if text == "*" {
        return Ok(Ports::ALL);
    }
    let bad = || RuleError::BadPort {
        text: text.to_owned(),
    };
    let port = |t: &str| {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<u16>().map_err(|_| bad())
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (port(first)?, port(last)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if first > last {
        return Err(RuleError::BackwardsPorts { first, last });
    }
    Ok(Ports { first, last })
}

fn parse_host(text: &str) -> Result<HostMatch, RuleError> {
    if text == "*" {
        return Ok(HostMatch::Any);
    }
    if let Some(class) = AddressClass::from_keyword(text) {
        return Ok(HostMatch::Class(class));
    }
    if let Some((addr, prefix)) = text.split_once('/') {
        return parse_net(text, addr, Some(prefix)).map(HostMatch::Net);
    }
    if text.contains(':') || text.parse::<Ipv4Addr>().is_ok() {
        return parse_net(text, text, None).map(HostMatch::Net);
    }
    if let Some(canonical) = inet_aton(text) {
        return Err(RuleError::LegacyAddress {
            text: text.to_owned(),
            canonical,
        });
    }
    parse_name(text)
}

fn parse_net(text: &str, addr: &str, prefix: Option<&str>) -> Result<Net, RuleError> {
    let ip: IpAddr = match addr.parse() {
        Ok(ip) => ip,
        Err(_) => {
            if let Some(canonical) = inet_aton(addr) {
                return Err(RuleError::LegacyAddress {
                    text: addr.to_owned(),
                    canonical,
                });
            }
            return Err(RuleError::BadHost {
                text: text.to_owned(),
                why: "not an IPv4 or IPv6 address",
            });
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        // `u8::from_str` would also take a sign.
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => {
                return Err(RuleError::BadPrefix {
                    text: text.to_owned(),
                    max,
                });
            }
        },
        Some(_) => {
            return Err(RuleError::BadPrefix {
                text: text.to_owned(),
                max,
            });
        }
    };
    let net = Net { addr: ip, prefix };
    let masked = masked(net);
    if masked != ip {
        return Err(RuleError::HostBits {
            text: text.to_owned(),
            network: format!("{masked}/{prefix}"),
        });
    }
    Ok(canonical_net(net))
}

/// `net`'s address with the bits past its prefix cleared.
fn masked(net: Net) -> IpAddr {
    match net.addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(v4.to_bits() & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(v6.to_bits() & mask))
        }
    }
}

/// An IPv6 network inside `::ffff:0:0/96` (with a prefix of 96 or more) as the IPv4
/// network it covers, so it matches canonical (IPv4) addresses.
fn canonical_net(net: Net) -> Net {
    match (net.addr, canonical_ip(net.addr)) {
        (IpAddr::V6(v6), IpAddr::V4(v4)) if net.prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
            Net {
                addr: IpAddr::V4(v4),
                prefix: net.prefix - 96,
            }
        }
        _ => net,
    }
}

fn parse_name(text: &str) -> Result<HostMatch, RuleError> {
    let (suffix, name) = match text.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, text),
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let bad = |why| {
        Err(RuleError::BadHost {
            text: text.to_owned(),
            why,
        })
    };
    if name.is_empty() || name.len() > 253 {
        return bad("a host name is 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated label is 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(
                "a host name has only letters, digits, '-', '_' and dots ('*' only as *.domain)",
            );
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("its last label is all digits, so it is neither a name nor an address");
    }
    Ok(if suffix {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Name(name)
    })
}
