//! The opening handshake (RFC 6455 §4): request checks and the `Sec-WebSocket-Accept`
//! answer for a server, the request and the response checks for a client, subprotocol and
//! extension negotiation for both.
//!
//! Owns: [`accept_key`] (SHA-1 from ring, base64 from the base64 crate), [`check_request`]
//! (a server's view of an upgrade request: [`Accepted`] or a [`HandshakeError`] with its
//! status), [`ClientHandshake`] (a client's request and its check of the response),
//! [`parse_extensions`] (the `Sec-WebSocket-Extensions` grammar) and [`Negotiated`].
//! Contract: pure functions over parsed HTTP heads; nothing here reads bytes off a
//! connection (the HTTP parsers do) or picks randomness (keys come in).
//! Spec: RFC 6455 §4.1 (client requirements), §4.2 (server), §9.1 (extensions grammar),
//! §11.3 (the fields); RFC 7692 §5 (extension negotiation).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};

use super::WsConfig;
use super::deflate::{self, DeflateParams};
use crate::http::proto::{Headers, Method, RequestHead, ResponseHead, Version};

/// The GUID every accept key is computed with (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2 step 5.4):
/// base64 of the SHA-1 of the key (as sent) followed by [`GUID`].
#[must_use]
pub fn accept_key(key: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key);
    context.update(GUID.as_bytes());
    BASE64.encode(context.finish().as_ref())
}

/// Why an opening handshake failed.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not a GET, not HTTP/1.1, or a body.
    #[error("not a GET HTTP/1.1 request")]
    NotGet,
    /// A field the handshake needs is missing or wrong (named).
    #[error("bad or missing {field}")]
    BadField {
        /// The field.
        field: &'static str,
    },
    /// A `Sec-WebSocket-Version` other than 13 (answered with 426 and the version we speak).
    #[error("unsupported websocket version")]
    Version,
    /// An extension negotiation this side cannot accept.
    #[error("extension negotiation failed: {what}")]
    BadExtension {
        /// What was wrong.
        what: &'static str,
    },
    /// The server chose a subprotocol the client did not offer.
    #[error("server chose a subprotocol that was not offered")]
    BadProtocol,
    /// The server's answer was not `101 Switching Protocols`.
    #[error("server answered {status} instead of 101")]
    Status {
        /// The status it sent.
        status: u16,
    },
    /// The response head could not be parsed, or was too large.
    #[error("invalid handshake response: {0}")]
    Http(String),
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    Timeout,
    /// The connection ended before the handshake did.
    #[error("connection closed during the handshake")]
    Closed,
}

impl HandshakeError {
    /// The status a server answers this error of a request with: 426 for a version it does
    /// not speak (with `Sec-WebSocket-Version: 13`), 400 otherwise (RFC 6455 §4.2.2, §4.4).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Version => 426,
            _ => 400,
        }
    }
}

/// One entry of `Sec-WebSocket-Extensions`: a name and its parameters.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ExtensionOffer {
    /// The extension's name (a token).
    pub name: String,
    /// Its parameters, in order; quoted values are unquoted.
    pub params: Vec<(String, Option<String>)>,
}

/// Whether `b` may be in an RFC 7230 token.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn token(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s.bytes().all(is_token_byte)).then(|| s.to_owned())
}

/// Splits `s` at `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Parses every `Sec-WebSocket-Extensions` value (RFC 6455 §9.1): a list of extensions,
/// each a token with `;`-separated parameters (`name` or `name=token` or `name="token"`).
///
/// # Errors
/// [`HandshakeError::BadField`] for a value that is not in that grammar.
pub fn parse_extensions<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    let bad = HandshakeError::BadField {
        field: "Sec-WebSocket-Extensions",
    };
    let mut offers = Vec::new();
    for value in values {
        let value = std::str::from_utf8(value).map_err(|_| bad.clone())?;
        for item in split_outside_quotes(value, ',') {
            if item.trim().is_empty() {
                continue; // RFC 9110 §5.6.1: empty list elements are ignored.
            }
            let mut parts = split_outside_quotes(item, ';').into_iter();
            let name = parts.next().and_then(token).ok_or(bad.clone())?;
            let mut params = Vec::new();
            for param in parts {
                let (key, value) = match param.split_once('=') {
                    None => (token(param).ok_or(bad.clone())?, None),
                    Some((key, value)) => {
                        let value = value.trim();
                        let value = value
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(value);
                        (
                            token(key).ok_or(bad.clone())?,
                            Some(token(value).ok_or(bad.clone())?),
                        )
                    }
                };
                params.push((key, value));
            }
            offers.push(ExtensionOffer { name, params });
        }
    }
    Ok(offers)
}

/// The comma-separated tokens of every value of field `name`.
fn list_tokens<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// What an opening handshake settled.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Negotiated {
    /// The subprotocol chosen (`Sec-WebSocket-Protocol`).
    pub protocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` value of the response.
    pub extensions: Option<String>,
    /// permessage-deflate, if agreed.
    pub deflate: Option<DeflateParams>,
}

impl Negotiated {
    /// The negotiation's fields of a server's answer (`Sec-WebSocket-Protocol`,
    /// `Sec-WebSocket-Extensions`), as the `200` of an HTTP/2 extended CONNECT carries them
    /// (RFC 8441 §5).
    #[must_use]
    pub fn response_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        if let Some(protocol) = &self.protocol {
            fields.push(("Sec-WebSocket-Protocol", protocol.clone()));
        }
        if let Some(extensions) = &self.extensions {
            fields.push(("Sec-WebSocket-Extensions", extensions.clone()));
        }
        fields
    }
}

/// A server's acceptance of an upgrade request: what the `101` carries.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Accepted {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// The subprotocol and extensions agreed.
    pub negotiated: Negotiated,
}

impl Accepted {
    /// The fields of the `101 Switching Protocols` response (RFC 6455 §4.2.2 step 5).
    #[must_use]
    pub fn response_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("Upgrade", "websocket".to_owned()),
            ("Connection", "Upgrade".to_owned()),
            ("Sec-WebSocket-Accept", self.accept.clone()),
        ];
        fields.extend(self.negotiated.response_fields());
        fields
    }

    /// The whole `101` response as bytes (for a server that answers the handshake itself).
    #[must_use]
    pub fn response_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(256);
        out.put_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for (name, value) in self.response_fields() {
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }
}

/// Whether `head` asks to upgrade to WebSocket (`Upgrade: websocket`): the request a
/// handler should pass to the upgrade, which checks the rest.
#[must_use]
pub fn is_upgrade_request(head: &RequestHead) -> bool {
    head.headers.has_token("upgrade", "websocket") || is_extended_connect(head)
}

/// Whether `head` is an HTTP/2 extended CONNECT for WebSocket (RFC 8441 §4: `:method`
/// CONNECT, `:protocol` websocket).
#[must_use]
pub fn is_extended_connect(head: &RequestHead) -> bool {
    head.method == Method::Connect
        && head
            .protocol
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(b"websocket"))
}

/// A server's check of an HTTP/2 extended CONNECT for WebSocket (RFC 8441 §5): CONNECT
/// with `:protocol` websocket and `Sec-WebSocket-Version: 13`; no key and no accept (the
/// stream is the handshake); the subprotocol and permessage-deflate negotiated as for
/// HTTP/1.1. The answer is a `200` with [`Negotiated::response_fields`].
///
/// # Errors
/// A [`HandshakeError`]; answer it with [`HandshakeError::status`].
pub fn check_extended_connect(
    head: &RequestHead,
    config: &WsConfig,
) -> Result<Negotiated, HandshakeError> {
    if head.version != Version::Http2 || !is_extended_connect(head) {
        return Err(HandshakeError::NotGet);
    }
    // RFC 8441 §5: the semantics of RFC 6455's version field are unchanged (§4.4: else
    // 426 naming the versions we speak).
    if head
        .headers
        .get("sec-websocket-version")
        .map(<[u8]>::trim_ascii)
        != Some(b"13")
    {
        return Err(HandshakeError::Version);
    }
    negotiate(&head.headers, config)
}

/// A server's check of an opening handshake request (RFC 6455 §4.2.1), with the
/// subprotocol (the first of `config.protocols` the client offered) and permessage-deflate
/// (the first acceptable offer, when `config.deflate` is set) negotiated.
///
/// # Errors
/// A [`HandshakeError`]; answer it with [`HandshakeError::status`].
pub fn check_request(head: &RequestHead, config: &WsConfig) -> Result<Accepted, HandshakeError> {
    // §4.2.1 (1): an HTTP/1.1 or higher GET request.
    if head.method != Method::Get || head.version != Version::Http11 {
        return Err(HandshakeError::NotGet);
    }
    let headers = &head.headers;
    let need = |ok: bool, field: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(HandshakeError::BadField { field })
        }
    };
    // (2) Host, (3) Upgrade containing "websocket", (4) Connection containing "Upgrade".
    need(headers.contains("host"), "Host")?;
    need(headers.has_token("upgrade", "websocket"), "Upgrade")?;
    need(headers.has_token("connection", "upgrade"), "Connection")?;
    // (5) a Sec-WebSocket-Key that is base64 of 16 bytes.
    let mut keys = headers.get_all("sec-websocket-key");
    let key = keys.next().map(<[u8]>::trim_ascii);
    let valid_key = keys.next().is_none()
        && key.is_some_and(|key| BASE64.decode(key).is_ok_and(|raw| raw.len() == 16));
    need(valid_key, "Sec-WebSocket-Key")?;
    let key = key.unwrap_or_default();
    // (6) Sec-WebSocket-Version 13 (§4.4: else 426 naming the versions we speak).
    if headers.get("sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(HandshakeError::Version);
    }
    Ok(Accepted {
        accept: accept_key(key),
        negotiated: negotiate(headers, config)?,
    })
}

/// The subprotocol (the first of `config.protocols` the client offered) and
/// permessage-deflate (the first acceptable offer, when `config.deflate` is set).
fn negotiate(headers: &Headers, config: &WsConfig) -> Result<Negotiated, HandshakeError> {
    let offered: Vec<&str> = list_tokens(headers, "sec-websocket-protocol").collect();
    let protocol = config
        .protocols
        .iter()
        .find(|ours| offered.iter().any(|theirs| theirs == ours))
        .cloned();
    let mut extensions = None;
    let mut deflate = None;
    if let Some(ours) = &config.deflate {
        let offers = parse_extensions(headers.get_all("sec-websocket-extensions"))?;
        // RFC 7692 §5.1: offers in order of preference; accept the first we can honour.
        if let Some((params, response)) = offers
            .iter()
            .filter(|offer| offer.name.eq_ignore_ascii_case(deflate::NAME))
            .find_map(|offer| ours.accept_offer(offer))
        {
            extensions = Some(response);
            deflate = Some(params);
        }
    }
    Ok(Negotiated {
        protocol,
        extensions,
        deflate,
    })
}

/// What a client asks for: where, and the fields beyond the handshake's own.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct WsRequest {
    /// The `Host` value (`example.com`, `example.com:8080`).
    pub host: String,
    /// The request target (`/chat?room=1`); empty is `/`.
    pub path: String,
    /// Subprotocols offered, in order of preference.
    pub protocols: Vec<String>,
    /// More fields (`Origin`, `Authorization`, cookies).
    pub headers: Vec<(String, String)>,
}

/// A client's side of the handshake: the request it sent and what the answer must say.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    /// The `Sec-WebSocket-Accept` the server must send.
    expect_accept: String,
    /// Subprotocols offered.
    protocols: Vec<String>,
    /// Whether permessage-deflate was offered (and with what).
    deflate: Option<deflate::DeflateConfig>,
}

impl ClientHandshake {
    /// The request for `request`, with the 16 random bytes `key` (RFC 6455 §4.1: a nonce
    /// chosen randomly for each connection), and the handshake that checks its answer.
    #[must_use]
    pub fn new(request: &WsRequest, config: &WsConfig, key: [u8; 16]) -> (Self, Bytes) {
        let key = BASE64.encode(key);
        let mut out = BytesMut::with_capacity(256);
        let path = if request.path.is_empty() {
            "/"
        } else {
            request.path.as_str()
        };
        let mut line = |name: &str, value: &str| {
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        };
        let mut fields = vec![
            ("Host".to_owned(), request.host.clone()),
            ("Upgrade".to_owned(), "websocket".to_owned()),
            ("Connection".to_owned(), "Upgrade".to_owned()),
            ("Sec-WebSocket-Key".to_owned(), key.clone()),
            ("Sec-WebSocket-Version".to_owned(), "13".to_owned()),
        ];
        if !request.protocols.is_empty() {
            fields.push((
                "Sec-WebSocket-Protocol".to_owned(),
                request.protocols.join(", "),
            ));
        }
        if let Some(deflate) = &config.deflate {
            fields.push(("Sec-WebSocket-Extensions".to_owned(), deflate.offer()));
        }
        fields.extend(request.headers.iter().cloned());
        let mut head = BytesMut::new();
        head.put_slice(b"GET ");
        head.put_slice(path.as_bytes());
        head.put_slice(b" HTTP/1.1\r\n");
        for (name, value) in &fields {
            line(name, value);
        }
        out.put_slice(b"\r\n");
        head.put_slice(&out);
        (
            Self {
                expect_accept: accept_key(key.as_bytes()),
                protocols: request.protocols.clone(),
                deflate: config.deflate.clone(),
            },
            head.freeze(),
        )
    }

    /// Checks the server's answer (RFC 6455 §4.1, the client's steps after sending).
    ///
    /// # Errors
    /// A [`HandshakeError`]: the client fails the connection.
    pub fn check(&self, head: &ResponseHead) -> Result<Negotiated, HandshakeError> {
        if head.status != 101 {
            return Err(HandshakeError::Status {
                status: head.status,
            });
        }
        let headers = &head.headers;
        let need = |ok: bool, field: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(HandshakeError::BadField { field })
            }
        };
        need(headers.has_token("upgrade", "websocket"), "Upgrade")?;
        need(headers.has_token("connection", "upgrade"), "Connection")?;
        let accept = headers.get("sec-websocket-accept").map(<[u8]>::trim_ascii);
        need(
            accept == Some(self.expect_accept.as_bytes()),
            "Sec-WebSocket-Accept",
        )?;
        let chosen: Vec<&str> = list_tokens(headers, "sec-websocket-protocol").collect();
        let protocol = match chosen.as_slice() {
            [] => None,
            [one] if self.protocols.iter().any(|p| p == one) => Some((*one).to_owned()),
            _ => return Err(HandshakeError::BadProtocol),
        };
        let answers = parse_extensions(headers.get_all("sec-websocket-extensions"))?;
        let deflate = match (answers.as_slice(), &self.deflate) {
            ([], _) => None,
            ([answer], Some(ours)) if answer.name.eq_ignore_ascii_case(deflate::NAME) => {
                Some(ours.confirm(answer)?)
            }
            _ => {
                return Err(HandshakeError::BadExtension {
                    what: "an extension that was not offered",
                });
            }
        };
        let extensions = (!answers.is_empty()).then(|| {
            headers
                .get_all("sec-websocket-extensions")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        });
        Ok(Negotiated {
            protocol,
            extensions,
            deflate,
        })
    }
}

#[cfg(test)]
mod tests;
