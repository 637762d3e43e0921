//! The `http` workload: HTTP/1.1 requests over keep-alive connections, parsed with the
//! sans-IO parser of `ringwork-protocols`.
//!
//! Owns: turning a URL list, method, headers and body into precomputed request bytes
//! ([`HttpWorkload`]), and [`HttpSession`], which writes them round-robin and frames the
//! responses (heads with `parse_response_framing`, in place, or recognised as the last head
//! parsed when they are byte for byte the same; bodies with `BodyDecoder`, discarded).
//! `https://` URLs run over the engine's TLS layer (the driver connects with TLS; this
//! module only notes the scheme). Does not: redirects, cookies.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use ringwork_protocols::http::proto::encode::{write_field, write_request_line};
use ringwork_protocols::http::proto::{
    BodyDecoder, BodyKind, H1Limits, Method, ResponseFraming, Status, Version,
    parse_response_framing,
};

use crate::session::{Progress, ResponseError, Session};

pub mod h2;

/// A parsed `http://host[:port]/path` or `https://` URL.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Url {
    /// `https://`.
    pub tls: bool,
    /// Host as written (name or address, IPv6 without brackets).
    pub host: String,
    /// Port (80 or 443 when not given).
    pub port: u16,
    /// Origin-form target: path and query (`/` when empty).
    pub target: String,
}

impl Url {
    /// Parses an `http://` or `https://` URL.
    ///
    /// # Errors
    /// Another scheme, an empty host or a bad port; the message says which.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(format!("{url}: expected an http:// or https:// URL"));
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed '[' in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url}: bad port {p:?}"))?,
            None if tls => 443,
            None => 80,
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
            target,
        })
    }

    /// The `Host` header value (`host`, or `host:port` when not the scheme's default).
    #[must_use]
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolves the host (first address).
    ///
    /// # Errors
    /// The name does not resolve.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", self.host))
    }
}

/// What every HTTP connection of a run sends: precomputed request bytes, one per URL.
#[derive(Clone, Debug)]
pub struct HttpWorkload {
    /// The address all URLs point to.
    pub addr: SocketAddr,
    /// The URLs are `https://`.
    pub tls: bool,
    /// The host of the URLs, as written (the default TLS server name).
    pub host: String,
    requests: Arc<[Bytes]>,
    method: Method,
    limits: Arc<H1Limits>,
}

impl HttpWorkload {
    /// Builds the requests: `method` to each URL (all on one host and port), with `headers`
    /// (`Name: value`) and `body` (a `Content-Length` is added when the body is not empty).
    ///
    /// # Errors
    /// A bad URL, URLs on different hosts, an invalid header or method; the message says which.
    pub fn new(
        urls: &[String],
        method: &str,
        headers: &[String],
        body: &[u8],
    ) -> Result<Self, String> {
        let first = urls.first().ok_or("no URL given")?;
        let first = Url::parse(first)?;
        let addr = first.resolve()?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("bad method {method:?}"));
        }
        let method = Method::from_token(method.as_bytes());
        let mut fields = Vec::with_capacity(headers.len());
        for header in headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("header {header:?}: expected 'Name: value'"))?;
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
        let has = |name: &str| fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut requests = Vec::with_capacity(urls.len());
        for url in urls {
            let parsed = Url::parse(url)?;
            if (parsed.tls, parsed.host.as_str(), parsed.port)
                != (first.tls, first.host.as_str(), first.port)
            {
                return Err(format!(
                    "{url}: every URL must have the first URL's scheme, host and port ({}:{})",
                    first.host, first.port
                ));
            }
            let mut out = BytesMut::with_capacity(256 + body.len());
            let bad = |e: ringwork_protocols::http::proto::H1Error| format!("{url}: {e}");
            write_request_line(&mut out, &method, parsed.target.as_bytes(), Version::Http11)
                .map_err(bad)?;
            if !has("host") {
                write_field(&mut out, b"Host", parsed.host_header().as_bytes()).map_err(bad)?;
            }
            for (name, value) in &fields {
                write_field(&mut out, name.as_bytes(), value.as_bytes())
                    .map_err(|e| format!("header {name:?}: {e}"))?;
            }
            if !body.is_empty() && !has("content-length") {
                write_field(
                    &mut out,
                    b"Content-Length",
                    body.len().to_string().as_bytes(),
                )
                .map_err(bad)?;
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
            requests.push(out.freeze());
        }
        let mut limits = H1Limits::default();
        // Bodies are counted and dropped, never held: any size is fine.
        limits.max_body = u64::MAX;
        Ok(Self {
            addr,
            tls: first.tls,
            host: first.host.clone(),
            requests: requests.into(),
            method,
            limits: Arc::new(limits),
        })
    }

    /// A session for one connection.
    #[must_use]
    pub fn session(&self) -> HttpSession {
        HttpSession {
            requests: Arc::clone(&self.requests),
            next: 0,
            method: self.method.clone(),
            limits: Arc::clone(&self.limits),
            body: None,
            last_head: LastHead::default(),
        }
    }
}

/// Longest head [`LastHead`] keeps (a server's usual heads are 100–400 bytes).
const MAX_REMEMBERED_HEAD: usize = 1024;

/// The last response head this connection parsed in full, and what the parse made of it.
///
/// A server answers a load generator's identical requests with identical heads (but for
/// `Date`, which changes once a second), so a head that is byte for byte the last one is
/// recognised by one comparison instead of being parsed again. The result is the parse's:
/// `parse_response_framing` looks at a head's bytes only up to its final empty line, and
/// the same bytes, method and limits frame the same way (the head scanner stops at the
/// first empty line whatever follows; the remembered head is one the parser accepted
/// whole). Any difference, one byte or a shorter input, goes through the full parse.
#[derive(Debug, Default)]
struct LastHead {
    /// The head's bytes, its final CRLF CRLF included; empty when none is kept.
    bytes: Vec<u8>,
    framing: Option<ResponseFraming>,
}

impl LastHead {
    /// The framing of the head at the start of `data` if it is the remembered one.
    fn recognise(&self, data: &[u8]) -> Option<ResponseFraming> {
        let framing = self.framing?;
        data.starts_with(&self.bytes).then_some(framing)
    }

    fn remember(&mut self, head: &[u8], framing: ResponseFraming) {
        if head.len() > MAX_REMEMBERED_HEAD {
            self.framing = None;
            return;
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(head);
        self.framing = Some(framing);
    }
}

/// The body being read and what its response said.
#[derive(Debug)]
struct Body {
    decoder: BodyDecoder,
    success: bool,
    keep_alive: bool,
}

/// One HTTP/1.1 connection: requests round-robin over the URLs, responses framed in order.
#[derive(Debug)]
pub struct HttpSession {
    requests: Arc<[Bytes]>,
    next: usize,
    method: Method,
    limits: Arc<H1Limits>,
    body: Option<Body>,
    last_head: LastHead,
}

fn malformed(e: impl std::fmt::Display) -> ResponseError {
    ResponseError::Malformed {
        reason: e.to_string(),
    }
}

impl HttpSession {
    fn finish(progress: &mut Progress, success: bool, keep_alive: bool) {
        progress.completed += 1;
        if !success {
            progress.unsuccessful += 1;
        }
        if !keep_alive {
            progress.close = true;
        }
    }
}

impl Session for HttpSession {
    fn write_request(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.requests[self.next]);
        self.next = (self.next + 1) % self.requests.len();
    }

    fn shared_request(&mut self) -> Option<Bytes> {
        let request = self.requests[self.next].clone();
        self.next = (self.next + 1) % self.requests.len();
        Some(request)
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<Progress, ResponseError> {
        let mut progress = Progress::default();
        let mut at = 0;
        while !progress.close {
            if let Some(body) = &mut self.body {
                let rest = data.get(at..).unwrap_or_default();
                let decoded = body.decoder.decode(rest).map_err(malformed)?;
                at += decoded.consumed;
                if !decoded.finished && !body.decoder.is_finished() {
                    // One step yields at most one chunk's data: call again with the rest
                    // until it needs more input.
                    if decoded.consumed == 0 || at >= data.len() {
                        break;
                    }
                    continue;
                }
                let (success, keep_alive) = (body.success, body.keep_alive);
                self.body = None;
                Self::finish(&mut progress, success, keep_alive);
                continue;
            }
            if at == data.len() {
                break;
            }
            // The head is framed in place (no allocation); only a head unlike the last one
            // is parsed, and then copied to be recognised next time.
            let parsed = match self.last_head.recognise(&data[at..]) {
                Some(parsed) => parsed,
                None => match parse_response_framing(&data[at..], &self.limits, &self.method)
                    .map_err(malformed)?
                {
                    Status::Partial => break,
                    Status::Complete(parsed) => {
                        let head = &data[at..at + parsed.consumed.min(data.len() - at)];
                        self.last_head.remember(head, parsed);
                        parsed
                    }
                },
            };
            at += parsed.consumed;
            let status = parsed.status;
            if (100..200).contains(&status) && status != 101 {
                continue; // Interim response (100 Continue, 103 Early Hints): the real one follows.
            }
            let success = (200..300).contains(&status);
            let keep_alive = parsed.keep_alive && status != 101;
            match parsed.body {
                BodyKind::Empty | BodyKind::Length(0) => {
                    Self::finish(&mut progress, success, keep_alive);
                }
                // A Content-Length body that is here whole is counted off without a
                // decoder: what `BodyDecoder` would do in one step (a length body has no
                // framing inside it to check).
                BodyKind::Length(n) if n <= data.len().saturating_sub(at) as u64 => {
                    at += n as usize;
                    Self::finish(&mut progress, success, keep_alive);
                }
                kind => {
                    self.body = Some(Body {
                        decoder: BodyDecoder::new(kind, &self.limits),
                        success,
                        keep_alive: keep_alive && kind != BodyKind::CloseDelimited,
                    });
                }
            }
        }
        progress.consumed = at.min(data.len());
        Ok(progress)
    }

    fn on_eof(&mut self) -> Result<Progress, ResponseError> {
        let mut progress = Progress::default();
        if let Some(mut body) = self.body.take() {
            body.decoder
                .finish_at_eof()
                .map_err(|_| ResponseError::Truncated)?;
            Self::finish(&mut progress, body.success, false);
        }
        Ok(progress)
    }
}

#[cfg(test)]
mod tests;
