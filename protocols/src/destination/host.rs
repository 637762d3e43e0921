//! Canonical forms of client-supplied destinations: [`Host`] (a name, or the address a
//! numeric name denotes), [`canonical_ip`], [`classify`] and [`AddressClass`].
//!
//! Owns: the `inet_aton` numeric forms (`0`, `2130706433`, `0x7f.1`, `127.1`,
//! `0177.0.0.1`), IPv6 literals (bracketed or not), the IPv4-mapped, IPv4-compatible
//! (`::a.b.c.d`) forms, and the address classes a proxy does not reach by default.
//! Contract: everything here is a pure function of its input; nothing resolves names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A destination host as a client gave it, canonicalised.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub enum Host {
    /// An address: given as one, or a name in a numeric form (see [`Host::parse`]). Always
    /// canonical ([`canonical_ip`]).
    Addr(IpAddr),
    /// A name to resolve: ASCII lowercased, without a trailing dot.
    Name(String),
}

impl Host {
    /// Canonicalises a client-supplied host: a numeric form becomes the address it denotes
    /// (any IPv4 form `inet_aton` accepts — `0`, `2130706433`, `0x7f.1`, `127.1`,
    /// `0177.0.0.1` — or an IPv6 literal, in brackets or not), then [`canonical_ip`];
    /// anything else is a name, lowercased, one trailing dot dropped. Names are not
    /// validated: whatever the resolver makes of one is checked by address afterwards.
    #[must_use]
    pub fn parse(text: &str) -> Host {
        match numeric_host(text) {
            Some(ip) => Host::Addr(canonical_ip(ip)),
            None => {
                let name = text.strip_suffix('.').unwrap_or(text);
                Host::Name(name.to_ascii_lowercase())
            }
        }
    }
}

impl fmt::Display for Host {
    /// The address, or the name with non-printable characters escaped (names come from
    /// peers: safe to log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Addr(ip) => write!(f, "{ip}"),
            Host::Name(name) => write!(f, "{}", name.escape_debug()),
        }
    }
}

/// The address a numeric host denotes: an IPv4 form `inet_aton` accepts or an IPv6
/// literal (in brackets or not, without a zone). `None` for anything else.
#[must_use]
pub fn numeric_host(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    let dotless = text.strip_suffix('.').unwrap_or(text);
    inet_aton(text)
        .or_else(|| inet_aton(dotless))
        .map(IpAddr::V4)
}

/// Parses every IPv4 form BSD `inet_aton` accepts: one to four parts separated by dots,
/// each decimal, octal (leading `0`) or hexadecimal (leading `0x`); the last part fills the
/// remaining bytes (`127.1` is 127.0.0.1, `2130706433` is 127.0.0.1).
#[must_use]
pub fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let mut parts = [0u32; 4];
    let mut count = 0;
    for part in text.split('.') {
        let slot = parts.get_mut(count)?;
        *slot = inet_aton_part(part)?;
        count += 1;
    }
    let [a, b, c, d] = parts;
    let bits = match count {
        1 => a,
        2 if a <= 0xff && b <= 0xff_ffff => (a << 24) | b,
        3 if a <= 0xff && b <= 0xff && c <= 0xffff => (a << 24) | (b << 16) | c,
        4 if a <= 0xff && b <= 0xff && c <= 0xff && d <= 0xff => {
            (a << 24) | (b << 16) | (c << 8) | d
        }
        _ => return None,
    };
    Some(Ipv4Addr::from(bits))
}

/// One part of an `inet_aton` address: `0x` hex (an empty `0x` is 0, as glibc reads it),
/// `0`-prefixed octal, or decimal; at most `u32::MAX`.
fn inet_aton_part(part: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            if hex.is_empty() {
                return Some(0);
            }
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    // `from_str_radix` would also take a sign.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// The address a connection to `ip` reaches, as the policy checks it: an IPv4-mapped
/// (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`, except `::` and `::1`) IPv6
/// address becomes its IPv4 address; anything else is unchanged.
#[must_use]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let compatible = s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback();
            if compatible {
                return IpAddr::V4(Ipv4Addr::from(v6.to_bits() as u32));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// Kinds of addresses a proxy does not reach unless a rule allows them.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 0.0.0.0/8 ("this network": 0.0.0.0 reaches the local host), ::.
    Unspecified,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), unique local fc00::/7, site-local
    /// fec0::/10, local-use NAT64 64:ff9b:1::/48.
    Private,
    /// Shared address space 100.64.0.0/10 (RFC 6598, carrier-grade NAT).
    Cgnat,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 240.0.0.0/4, 192.0.0.0/24 (IETF protocol assignments), 198.18.0.0/15
    /// (benchmarking), 100::/64 (discard).
    Reserved,
}

impl AddressClass {
    /// Every class, in the order [`AddressClass::keyword`] lists them.
    pub const ALL: [AddressClass; 8] = [
        AddressClass::Loopback,
        AddressClass::Unspecified,
        AddressClass::LinkLocal,
        AddressClass::Private,
        AddressClass::Cgnat,
        AddressClass::Multicast,
        AddressClass::Broadcast,
        AddressClass::Reserved,
    ];

    /// The class's name in rules (`--allow loopback`).
    #[must_use]
    pub fn keyword(self) -> &'static str {
        match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Unspecified => "unspecified",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Private => "private",
            AddressClass::Cgnat => "cgnat",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        }
    }

    /// The class named `keyword` (case-insensitive).
    #[must_use]
    pub fn from_keyword(keyword: &str) -> Option<AddressClass> {
        Self::ALL
            .into_iter()
            .find(|class| class.keyword().eq_ignore_ascii_case(keyword))
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// The class of `ip` (after [`canonical_ip`]), or `None` for an ordinary (public) address.
/// A NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address has the class of the IPv4 address it
/// embeds.
#[must_use]
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b) {
        (0, _) => AddressClass::Unspecified,
        (127, _) => AddressClass::Loopback,
        (10, _) | (192, 168) => AddressClass::Private,
        (172, 16..=31) => AddressClass::Private,
        (100, 64..=127) => AddressClass::Cgnat,
        (169, 254) => AddressClass::LinkLocal,
        (224..=239, _) => AddressClass::Multicast,
        _ if ip.is_broadcast() => AddressClass::Broadcast,
        (240..=255, _) => AddressClass::Reserved,
        (192, 0) if c == 0 => AddressClass::Reserved,
        (198, 18 | 19) => AddressClass::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let bits = ip.to_bits();
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    // NAT64 well-known prefix (RFC 6052): the IPv4 address is the last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::from(bits as u32));
    }
    // 6to4 (RFC 3056): 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return classify_v4(Ipv4Addr::from((bits >> 80) as u32));
    }
    Some(match s[0] {
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xfec0..=0xfeff | 0xfc00..=0xfdff => AddressClass::Private,
        0xff00..=0xffff => AddressClass::Multicast,
        0x64 if s[1] == 0xff9b && s[2] == 1 => AddressClass::Private,
        0x100 if s[1..4] == [0, 0, 0] => AddressClass::Reserved,
        _ => return None,
    })
}
