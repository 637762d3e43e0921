//! Message heads: [`Method`], [`Version`], [`Headers`], [`RequestHead`], [`ResponseHead`],
//! the parse [`Status`] and the parser [`H1Limits`].
//!
//! Owns: the types both parsers produce and the encoder consumes. A parsed head keeps its
//! bytes in one shared [`Bytes`]; every field name and value is a slice of it (no copy per
//! field). Does not: parse (see `request.rs`, `response.rs`) or encode (`encode.rs`).

use std::fmt;

use bytes::Bytes;
use smallvec::SmallVec;

pub use crate::kit::Status;

/// Bounds on what a peer can make a parser hold, with safe defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct H1Limits {
    /// Longest request line (method, target, version), in bytes: 414 past it.
    pub max_request_line: usize,
    /// Largest head (start line plus fields), in bytes: 431 past it.
    pub max_head: usize,
    /// Most header fields: 431 past it (at most [`H1Limits::HEADERS_CAP`]).
    pub max_headers: usize,
    /// Largest body, in bytes: 413 past it.
    pub max_body: u64,
    /// Longest chunk extensions of one chunk, in bytes.
    pub max_chunk_ext: usize,
    /// Largest trailer section, in bytes.
    pub max_trailers: usize,
}

impl H1Limits {
    /// The most header fields any limit allows (the parser's field array is this long).
    pub const HEADERS_CAP: usize = 256;
}

impl Default for H1Limits {
    fn default() -> Self {
        Self {
            max_request_line: 8 * 1024,
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 8 * 1024 * 1024,
            max_chunk_ext: 1024,
            max_trailers: 8 * 1024,
        }
    }
}

/// The HTTP version of a message.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2 (a request that came over an HTTP/2 connection).
    Http2,
}

impl Version {
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }
}

/// A request method (RFC 9110 §9): the registered ones by name, any other token as
/// [`Method::Other`].
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
    /// OPTIONS.
    Options,
    /// TRACE.
    Trace,
    /// PATCH.
    Patch,
    /// Any other method token (case-sensitive, RFC 9110 §9.1).
    Other(Bytes),
}

impl Method {
    /// The method for a token the parser has already checked.
    #[must_use]
    pub fn from_token(token: &[u8]) -> Self {
        match token {
            b"GET" => Self::Get,
            b"HEAD" => Self::Head,
            b"POST" => Self::Post,
            b"PUT" => Self::Put,
            b"DELETE" => Self::Delete,
            b"CONNECT" => Self::Connect,
            b"OPTIONS" => Self::Options,
            b"TRACE" => Self::Trace,
            b"PATCH" => Self::Patch,
            other => Self::Other(Bytes::copy_from_slice(other)),
        }
    }

    /// The method token.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Get => b"GET",
            Self::Head => b"HEAD",
            Self::Post => b"POST",
            Self::Put => b"PUT",
            Self::Delete => b"DELETE",
            Self::Connect => b"CONNECT",
            Self::Options => b"OPTIONS",
            Self::Trace => b"TRACE",
            Self::Patch => b"PATCH",
            Self::Other(token) => token,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// An ordered list of header fields; names compare case-insensitively. Field lines that
/// repeat a name are kept as separate entries, in order. The first
/// [`Headers::INLINE`] fields are held inline (no allocation: a benchmark client's request
/// or a small response needs none).
#[derive(Default, Eq, PartialEq)]
pub struct Headers {
    entries: SmallVec<[(Bytes, Bytes); Headers::INLINE]>,
}

impl Clone for Headers {
    fn clone(&self) -> Self {
        if self.entries.is_empty() {
            // A prepared `Response`'s list (its fields are in the shared part), cloned per
            // request: SmallVec's clone would collect from an iterator (issue 16: ≈ 50
            // instructions a request on the hello path).
            return Self::default();
        }
        Self {
            entries: self.entries.clone(),
        }
    }
}

impl Headers {
    /// Fields held without an allocation.
    pub const INLINE: usize = 2;

    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `n` fields.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: SmallVec::with_capacity(n),
        }
    }

    /// Number of field lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the first field named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }

    /// The value of the first field named `name`, if it is UTF-8.
    #[must_use]
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of the fields named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &v[..])
    }

    /// Whether a field named `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether some field named `name` holds `token` in its comma-separated list
    /// (case-insensitive), as `Connection: keep-alive, Upgrade` holds `upgrade`.
    #[must_use]
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|value| {
            value
                .split(|&b| b == b',')
                .any(|item| trim(item).eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Appends a field line (keeping any others of the same name).
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Sets `name` to `value`, removing the other fields of that name.
    pub fn insert(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.entries.push((name, value.into()));
    }

    /// Removes every field named `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
        self.entries.len() != before
    }

    /// The fields in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().map(|(n, v)| (&n[..], &v[..]))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

/// `value` without leading and trailing spaces and tabs (RFC 9110 §5.6.3 OWS).
pub(crate) fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// How the body of a message is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// Exactly this many bytes (more than zero).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    CloseDelimited,
}

/// A parsed request head.
#[derive(Clone, Debug)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target as sent (origin-form `/path?query`, absolute-form, `*`, or
    /// authority-form).
    pub target: Bytes,
    /// The version.
    pub version: Version,
    /// The header fields, in order.
    pub headers: Headers,
    /// HTTP/2 extended CONNECT's `:protocol` (RFC 8441 §4: `websocket`); `None` otherwise.
    pub protocol: Option<Bytes>,
}

impl RequestHead {
    /// The path of an origin-form target (before `?`), or the whole target otherwise.
    #[must_use]
    pub fn path(&self) -> &[u8] {
        let end = self
            .target
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(self.target.len());
        &self.target[..end]
    }

    /// The query (after `?`), if any.
    #[must_use]
    pub fn query(&self) -> Option<&[u8]> {
        let at = self.target.iter().position(|&b| b == b'?')?;
        Some(&self.target[at + 1..])
    }
}

/// A parsed or to-be-sent response head.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    /// The status code (100..=999).
    pub status: u16,
    /// The reason phrase as received (empty when building: the standard one is sent).
    pub reason: Bytes,
    /// The version.
    pub version: Version,
    /// The header fields, in order.
    pub headers: Headers,
}

impl ResponseHead {
    /// A head with `status`, the standard reason phrase and no fields.
    #[must_use]
    pub fn new(status: u16) -> Self {
        Self {
            status,
            reason: Bytes::new(),
            version: Version::Http11,
            headers: Headers::new(),
        }
    }
}

/// The standard reason phrase of `status` (RFC 9110 §15), or "" for an unregistered code.
#[must_use]
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
