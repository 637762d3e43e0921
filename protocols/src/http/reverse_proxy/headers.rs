//! Header rewriting for the reverse proxy (sans-IO): hop-by-hop stripping and the
//! `X-Forwarded-*` / RFC 7239 `Forwarded` fields.
//!
//! Owns: [`strip_hop_by_hop`] (both directions), [`add_forwarded`], [`add_via`].
//! Contract: pure functions over [`Headers`]; no IO, no clock.
//! Spec: RFC 9110 §7.6.1 (Connection, hop-by-hop fields), §7.6.3 (Via), RFC 7239 (Forwarded),
//! de-facto X-Forwarded-For/-Proto/-Host.

use std::net::IpAddr;

use bytes::Bytes;

use crate::http::proto::{Headers, Version};

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
/// non-standard `Proxy-Connection` and `Keep-Alive`, and the proxy authentication fields
/// that are meant for this proxy).
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Removes the hop-by-hop fields: every field named in a `Connection` field, then the
/// fixed list [`HOP_BY_HOP`].
///
/// RFC 9110 §7.6.1: "Intermediaries MUST parse a received Connection header field before
/// a message is forwarded and, for each connection-option in this field, remove any header
/// or trailer field(s) from the message with the same name as the connection-option, and
/// then remove the Connection header field itself".
pub fn strip_hop_by_hop(headers: &mut Headers) {
    let named: Vec<String> = headers
        .get_all("connection")
        .flat_map(|value| value.split(|&b| b == b','))
        .filter_map(|item| std::str::from_utf8(item).ok())
        .map(|item| item.trim_matches([' ', '\t']).to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect();
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// How the proxy treats `X-Forwarded-For` and `Forwarded` fields it receives.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum ForwardedMode {
    /// Keep the received values and append this hop (the client is another proxy the
    /// operator trusts, or the upstream only reads the last element).
    #[default]
    Append,
    /// Drop the received values: this proxy is the edge, what the client claims is not
    /// to be trusted.
    Replace,
    /// Add nothing and drop nothing.
    Off,
}

/// What [`add_forwarded`] records about one hop.
#[derive(Clone, Debug)]
pub struct Hop<'a> {
    /// The client's address (the peer of the downstream connection).
    pub client: Option<IpAddr>,
    /// The protocol the client used (`http` or `https`).
    pub proto: &'a str,
    /// The `Host` the client asked for.
    pub host: Option<&'a [u8]>,
}

/// Adds `X-Forwarded-For` (appended to any received list), `X-Forwarded-Proto`,
/// `X-Forwarded-Host` (both replaced) and a `Forwarded` element
/// (`for=…;proto=…;host=…`, RFC 7239 §4) for `hop`, per `mode`.
pub fn add_forwarded(headers: &mut Headers, hop: &Hop<'_>, mode: ForwardedMode) {
    if mode == ForwardedMode::Off {
        return;
    }
    let received = |headers: &Headers, name: &str| -> Option<Vec<u8>> {
        if mode == ForwardedMode::Replace {
            return None;
        }
        let mut joined: Vec<u8> = Vec::new();
        for value in headers.get_all(name) {
            let value = value.trim_ascii();
            if value.is_empty() {
                continue;
            }
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value);
        }
        (!joined.is_empty()).then_some(joined)
    };

    let client = hop.client.map(|ip| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    });
    let xff_prior = received(headers, "x-forwarded-for");
    let fwd_prior = received(headers, "forwarded");

    let this = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let mut xff = xff_prior.unwrap_or_default();
    if !xff.is_empty() {
        xff.extend_from_slice(b", ");
    }
    xff.extend_from_slice(this.as_bytes());
    headers.insert("X-Forwarded-For", Bytes::from(xff));
    headers.insert(
        "X-Forwarded-Proto",
        Bytes::copy_from_slice(hop.proto.as_bytes()),
    );
    match hop.host {
        Some(host) => headers.insert("X-Forwarded-Host", Bytes::copy_from_slice(host)),
        None => {
            headers.remove("x-forwarded-host");
        }
    }

    // RFC 7239 §6: an IPv6 address is enclosed in brackets and, since ':' is not a token
    // character, the whole value in quotes; "unknown" stands for an unknown client.
    let node = match client {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => format!("\"[{v6}]\""),
        None => "unknown".to_owned(),
    };
    let mut element = format!("for={node};proto={}", hop.proto);
    if let Some(host) = hop.host.and_then(|h| std::str::from_utf8(h).ok()) {
        element.push_str(";host=");
        element.push_str(&quote_if_needed(host));
    }
    let mut forwarded = fwd_prior.unwrap_or_default();
    if !forwarded.is_empty() {
        forwarded.extend_from_slice(b", ");
    }
    forwarded.extend_from_slice(element.as_bytes());
    headers.insert("Forwarded", Bytes::from(forwarded));
}

/// Appends this hop to `Via` (RFC 9110 §7.6.3: "An HTTP-to-HTTP gateway MUST send an
/// appropriate Via header field in each inbound request message"): `1.1 ringwork` for an
/// HTTP/1.1 client (`1.0` for HTTP/1.0), after the received entries, in one field.
pub fn add_via(headers: &mut Headers, version: Version, pseudonym: &str) {
    let protocol = match version {
        Version::Http10 => "1.0",
        Version::Http11 => "1.1",
        Version::Http2 => "2",
    };
    let mut via: Vec<u8> = Vec::new();
    for value in headers.get_all("via") {
        let value = value.trim_ascii();
        if !value.is_empty() {
            via.extend_from_slice(value);
            via.extend_from_slice(b", ");
        }
    }
    via.extend_from_slice(format!("{protocol} {pseudonym}").as_bytes());
    headers.insert("Via", Bytes::from(via));
}

/// `value` as an RFC 7239 value: a token as is, anything else as a quoted-string.
fn quote_if_needed(value: &str) -> String {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !value.is_empty() && value.chars().all(tchar) {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}
