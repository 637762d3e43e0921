//! [`ClientRequest`]: what the client sends, its builder, `http://` and `https://` URL
//! parsing and the request's wire form (sans-IO: no sockets, no clock).
//!
//! Owns: the request value, [`ClientRequest::from_url`] (IP literals and host names) and
//! [`encode_head`], which picks the framing fields (Host, Content-Length, User-Agent).
//! Does not: resolve names (a request names its host; the client resolves it at each new
//! connection through the core's name resolver), run TLS (a request only says whether and
//! as which name to verify the server: [`TlsTarget`]), or follow redirects.
//! Spec: RFC 9110 §7.2 (Host), §8.6 (Content-Length), §4.2.1 (http URI), §4.2.2 (https
//! URI); RFC 9112 §3.2.1 (origin-form). Tests: `tests.rs` beside this module.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use ringwork::tls::ServerName;

use crate::http::client::body::StreamBody;
use crate::http::client::error::ClientError;
use crate::http::client::tls::TlsTarget;
use crate::http::proto::encode;
use crate::http::proto::{Headers, Method, Version};

/// One HTTP/1.1 request: where to send it and what to send.
///
/// `Content-Length` and `Transfer-Encoding` in `headers` are ignored: the client frames
/// `body` itself. `Host` comes from `authority` unless `headers` holds one.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    /// The method.
    pub method: Method,
    /// The request target in origin form: path and query (`/a/b?c=d`).
    pub target: Bytes,
    /// The `Host` field value (`example.com`, `127.0.0.1:8080`).
    pub authority: Bytes,
    /// Where to connect: the server's address, or with [`ClientRequest::host`] only the
    /// port (the address is then unspecified, `0.0.0.0`).
    pub addr: SocketAddr,
    /// A host name to connect to (on `addr`'s port) instead of `addr`'s address: looked up
    /// at each new connection through the core's name resolver
    /// (`ringwork::names::NameResolver`) and raced with Happy Eyeballs. Pooled connections
    /// are kept per name and port, so requests to one name reuse them.
    pub host: Option<String>,
    /// TLS to the server (`https`), or `None` for plaintext.
    pub tls: Option<TlsTarget>,
    /// Header fields to send.
    pub headers: Headers,
    /// The body (may be empty). Ignored when `body_stream` is set.
    pub body: Bytes,
    /// A body streamed as it is sent (Content-Length if its length is known, else
    /// chunked), instead of `body`.
    pub body_stream: Option<StreamBody>,
    /// Which HTTP to speak ([`HttpProtocol`]; default HTTP/1.1). Over HTTP/2 one
    /// connection per server carries every such request at once; a `body_stream` is
    /// pulled as the server's window opens.
    pub protocol: HttpProtocol,
}

/// Which HTTP a request goes over (per request, or per upstream pool in the reverse proxy:
/// `protocol = "h1" | "h2" | "h2c" | "auto"`).
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum HttpProtocol {
    /// HTTP/1.1 (`h1`), the default.
    #[default]
    Http1,
    /// HTTP/2 only (`h2`): ALPN `h2` over TLS, where a server that picks `http/1.1` fails
    /// the request ([`ClientError::Http2NotNegotiated`](super::ClientError::Http2NotNegotiated));
    /// prior knowledge in plaintext.
    Http2,
    /// HTTP/2 with prior knowledge in plaintext (`h2c`, RFC 9113 §3.3): no fallback (a
    /// server that does not speak it fails the request). Over TLS, as [`HttpProtocol::Auto`].
    H2c,
    /// Whatever the server picks (`auto`): over TLS, ALPN offering `h2` and `http/1.1` (a
    /// server that picks HTTP/1.1 is remembered, and later requests to it go over HTTP/1.1
    /// at once); HTTP/1.1 in plaintext.
    Auto,
}

impl HttpProtocol {
    /// Its name in configuration files: `h1`, `h2`, `h2c`, `auto`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            HttpProtocol::Http1 => "h1",
            HttpProtocol::Http2 => "h2",
            HttpProtocol::H2c => "h2c",
            HttpProtocol::Auto => "auto",
        }
    }

    /// The protocol named `name` (`h1` or `http/1.1`, `h2`, `h2c`, `auto`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "h1" | "http/1.1" => Some(HttpProtocol::Http1),
            "h2" => Some(HttpProtocol::Http2),
            "h2c" => Some(HttpProtocol::H2c),
            "auto" => Some(HttpProtocol::Auto),
            _ => None,
        }
    }

    /// Whether a request with it tries HTTP/2 first, and whether it insists on it (no
    /// fallback to HTTP/1.1), over TLS or not.
    pub(crate) fn attempt(self, tls: bool) -> (bool, bool) {
        match (self, tls) {
            (HttpProtocol::Http1, _) | (HttpProtocol::Auto, false) => (false, false),
            (HttpProtocol::Http2, _) | (HttpProtocol::H2c, false) => (true, true),
            (HttpProtocol::H2c | HttpProtocol::Auto, true) => (true, false),
        }
    }

    /// Whether TLS to the server offers `h2` by ALPN.
    #[must_use]
    pub fn offers_h2(self) -> bool {
        self != HttpProtocol::Http1
    }
}

impl ClientRequest {
    /// A request with `method` for `target` at `addr`; the authority is `addr`.
    #[must_use]
    pub fn new(method: Method, addr: SocketAddr, target: impl Into<Bytes>) -> Self {
        Self {
            method,
            target: target.into(),
            authority: Bytes::from(addr.to_string()),
            addr,
            host: None,
            tls: None,
            headers: Headers::new(),
            body: Bytes::new(),
            body_stream: None,
            protocol: HttpProtocol::Http1,
        }
    }

    /// A `GET` for `target` at `addr`.
    #[must_use]
    pub fn get(addr: SocketAddr, target: impl Into<Bytes>) -> Self {
        Self::new(Method::Get, addr, target)
    }

    /// A request with `method` for `target` at the host name `host` (resolved at each new
    /// connection) on `port`; the authority is `host:port`.
    #[must_use]
    pub fn to_host(method: Method, host: &str, port: u16, target: impl Into<Bytes>) -> Self {
        let mut request = Self::new(
            method,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            target,
        );
        request.authority = Bytes::from(format!("{host}:{port}"));
        request.host = Some(host.to_owned());
        request
    }

    /// The server as a log line names it: the host name and port, or the address.
    #[must_use]
    pub fn server(&self) -> String {
        match &self.host {
            Some(host) => format!("{host}:{}", self.addr.port()),
            None => self.addr.to_string(),
        }
    }

    /// A `GET` from an `http://` or `https://` URL: `http://127.0.0.1:8080/x?y`,
    /// `http://[::1]/`, `https://localhost:8443/` (change the method with
    /// [`ClientRequest::method`]). The fragment is dropped; the port defaults to 80 for
    /// `http` and 443 for `https`.
    ///
    /// A host name (`http://backend.internal:8080/`, `http://localhost/`) becomes
    /// [`ClientRequest::host`]: it is resolved at each new connection, not here. An
    /// `https` request verifies the server as the URL's host: the DNS name, or the IP
    /// address ([`ServerName::IpAddress`]); change it with [`ClientRequest::tls`].
    ///
    /// # Errors
    /// [`ClientError::BadUrl`] for another scheme, user info, an empty or malformed host
    /// (a name all of whose labels are digits, `1.2.3`, is neither an address nor a name)
    /// or a bad port.
    pub fn from_url(url: &str) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::BadUrl { reason };
        let scheme_end = url
            .find("://")
            .ok_or(bad("no scheme (expected http:// or https://)"))?;
        let scheme = &url[..scheme_end];
        let (https, default_port) = if scheme.eq_ignore_ascii_case("http") {
            (false, 80)
        } else if scheme.eq_ignore_ascii_case("https") {
            (true, 443)
        } else {
            return Err(bad("only the http and https schemes are supported"));
        };
        let rest = &url[scheme_end + 3..];
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
        let (host, port) = split_host_port(authority, default_port)?;
        let ip = match host {
            "" => return Err(bad("empty host")),
            h => match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                Some(v6) => Some(IpAddr::V6(
                    v6.parse().map_err(|_| bad("malformed IPv6 address"))?,
                )),
                None => match h.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) if is_host_name(h) => None,
                    Err(_) => return Err(bad("host is not an IP address or a host name")),
                },
            },
        };
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("whitespace or control bytes in the path"));
        }
        let mut request = match ip {
            Some(ip) => Self::get(SocketAddr::new(ip, port), target),
            None => Self::to_host(Method::Get, host, port, target),
        };
        request.authority = Bytes::copy_from_slice(authority.as_bytes());
        if https {
            let server_name = match ip {
                Some(ip) => ServerName::IpAddress(ip.into()),
                None => {
                    ServerName::try_from(host.to_owned()).map_err(|_| bad("invalid server name"))?
                }
            };
            request.tls = Some(TlsTarget::new(server_name));
        }
        Ok(request)
    }

    /// Replaces the method.
    #[must_use]
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Adds a header field.
    #[must_use]
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Replaces the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Streams the body from `body` (replacing `body`).
    #[must_use]
    pub fn body_stream(mut self, body: StreamBody) -> Self {
        self.body_stream = Some(body);
        self
    }

    /// Sends the request over TLS as `tls` says (replacing what the URL implied), or in
    /// plaintext with `None`.
    #[must_use]
    pub fn tls(mut self, tls: impl Into<Option<TlsTarget>>) -> Self {
        self.tls = tls.into();
        self
    }

    /// Sends the request over HTTP/2 (`true`: [`HttpProtocol::H2c`]: prior knowledge in
    /// plaintext, ALPN with HTTP/1.1 accepted over TLS) or HTTP/1.1 (`false`).
    #[must_use]
    pub fn over_http2(mut self, http2: bool) -> Self {
        self.protocol = if http2 {
            HttpProtocol::H2c
        } else {
            HttpProtocol::Http1
        };
        self
    }

    /// Sends the request over `protocol` (see [`HttpProtocol`]).
    #[must_use]
    pub fn with_protocol(mut self, protocol: HttpProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Replaces the `Host` value.
    #[must_use]
    pub fn authority(mut self, authority: impl Into<Bytes>) -> Self {
        self.authority = authority.into();
        self
    }

    /// Whether the caller asked to close the connection after this exchange.
    pub(crate) fn wants_close(&self) -> bool {
        self.headers.has_token("connection", "close")
    }
}

/// Whether a request with `method` may be sent again after a failure (RFC 9110 §9.2.2).
#[must_use]
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options | Method::Trace
    )
}

/// Whether `host` is a DNS host name (RFC 1123 labels of letters, digits, `-` and `_`,
/// a trailing dot allowed) that is not all digits (`1.2.3` is a malformed address).
fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && !name
            .split('.')
            .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits `host[:port]` (`[v6]:port` for IPv6); the port defaults to `default_port`.
fn split_host_port(authority: &str, default_port: u16) -> Result<(&str, u16), ClientError> {
    let bad = |reason| ClientError::BadUrl { reason };
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(bad("unclosed IPv6 bracket"))?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or(bad("junk after IPv6 address"))?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().map_err(|_| bad("port out of range"))?
        }
        Some(_) => return Err(bad("malformed port")),
    };
    Ok((host, port))
}

/// Writes the request head: request line, `Host`, `User-Agent` (if given and the caller
/// set none), the caller's fields, `Content-Length`, and the empty line. The body follows
/// it unchanged.
///
/// RFC 9110 §8.6: a user agent SHOULD NOT send Content-Length when the request has no
/// content and the method does not define a meaning for it (GET, HEAD, DELETE, OPTIONS,
/// TRACE, CONNECT); other methods get `Content-Length: 0` for an empty body.
///
/// # Errors
/// [`ClientError::InvalidRequest`] for a target or a field that would split the message.
pub fn encode_head(
    request: &ClientRequest,
    user_agent: Option<&str>,
) -> Result<Bytes, ClientError> {
    let mut dst = BytesMut::with_capacity(256);
    encode::write_request_line(&mut dst, &request.method, &request.target, Version::Http11)
        .map_err(ClientError::InvalidRequest)?;
    // RFC 9110 §7.2: a user agent MUST generate a Host header field in an HTTP/1.1 request.
    if !request.headers.contains("host") {
        encode::write_field(&mut dst, b"Host", &request.authority)
            .map_err(ClientError::InvalidRequest)?;
    }
    if let Some(agent) = user_agent.filter(|_| !request.headers.contains("user-agent")) {
        encode::write_field(&mut dst, b"User-Agent", agent.as_bytes())
            .map_err(ClientError::InvalidRequest)?;
    }
    for (name, value) in request.headers.iter() {
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            continue;
        }
        encode::write_field(&mut dst, name, value).map_err(ClientError::InvalidRequest)?;
    }
    let no_content_meaning = matches!(
        request.method,
        Method::Get
            | Method::Head
            | Method::Delete
            | Method::Options
            | Method::Trace
            | Method::Connect
    );
    match &request.body_stream {
        Some(stream) => match stream.length() {
            Some(n) => encode::write_content_length(&mut dst, n),
            None => dst.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        },
        None if request.body.is_empty() && no_content_meaning => {}
        None => encode::write_content_length(&mut dst, request.body.len() as u64),
    }
    dst.extend_from_slice(b"\r\n");
    Ok(dst.freeze())
}

#[cfg(test)]
mod tests;
