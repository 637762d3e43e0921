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
/// repeat a name are kept as separate entries, in order. A list built field by field holds
/// its first [`Headers::INLINE`] fields inline (no allocation: a small response needs
/// none); a parsed head's list is one reference to the head's bytes and the place of each
/// field in them (up to [`Headers::INLINE_PARSED`] inline: no allocation and no reference
/// count per field, issue 16). Changing a parsed list turns it into a built one.
#[derive(Default)]
pub struct Headers {
    repr: Repr,
}

/// How a [`Headers`] holds its fields.
enum Repr {
    /// Fields given one by one.
    Built(SmallVec<[(Bytes, Bytes); Headers::INLINE]>),
    /// A parsed head's fields: places in `base`.
    Parsed {
        base: Bytes,
        spans: SmallVec<[Span; Headers::INLINE_PARSED]>,
    },
}

impl Default for Repr {
    fn default() -> Self {
        Self::Built(SmallVec::new())
    }
}

/// Where a parsed field's name and value are in its head's bytes.
#[derive(Clone, Copy)]
struct Span {
    name: u32,
    name_len: u32,
    value: u32,
    value_len: u32,
}

impl Span {
    /// The span of `name` and `value`, parts of `base` (`None` if they are not, or lie
    /// past what a `u32` can place).
    fn of(base: &[u8], name: &[u8], value: &[u8]) -> Option<Self> {
        let at = |part: &[u8]| {
            let start = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
            (start + part.len() <= base.len()).then_some(())?;
            Some((u32::try_from(start).ok()?, u32::try_from(part.len()).ok()?))
        };
        let (name, name_len) = at(name)?;
        let (value, value_len) = at(value)?;
        Some(Self {
            name,
            name_len,
            value,
            value_len,
        })
    }

    fn name(self) -> std::ops::Range<usize> {
        let at = self.name as usize;
        at..at + self.name_len as usize
    }

    fn value(self) -> std::ops::Range<usize> {
        let at = self.value as usize;
        at..at + self.value_len as usize
    }
}

impl Clone for Headers {
    #[inline]
    fn clone(&self) -> Self {
        match &self.repr {
            // A prepared `Response`'s list (its fields are in the shared part), cloned per
            // request: inline and without SmallVec's clone, which collects from an
            // iterator (issue 16: ≈ 50 instructions a request on the hello path).
            Repr::Built(entries) if entries.is_empty() => Self::default(),
            _ => self.clone_fields(),
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl Headers {
    /// Fields of a list built field by field held without an allocation.
    pub const INLINE: usize = 2;

    /// Fields of a parsed list held without an allocation.
    pub const INLINE_PARSED: usize = 6;

    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `n` fields.
    #[must_use]
    pub fn with_capacity(n: usize) -> Self {
        Self {
            repr: Repr::Built(SmallVec::with_capacity(n)),
        }
    }

    /// The list of `fields` (name, value), each a part of `within`, whose bytes `base`
    /// holds too: a parsed head's fields, held as their places in `base` (one reference for
    /// them all). If a field is not a part of `within` (or `base` is not as long), every
    /// field is copied instead.
    pub(crate) fn parsed<'a>(
        base: Bytes,
        within: &[u8],
        fields: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    ) -> Self {
        // Places in `within` index `base` in bounds (the caller vouches for the bytes).
        let same_length = base.len() == within.len();
        let mut spans = SmallVec::with_capacity(fields.len());
        for (name, value) in fields.clone() {
            match Span::of(within, name, value).filter(|_| same_length) {
                Some(span) => spans.push(span),
                None => {
                    // Not expected from the parsers: every field is then owned.
                    let mut headers = Self::with_capacity(fields.len());
                    for (name, value) in fields {
                        headers.append(Bytes::copy_from_slice(name), Bytes::copy_from_slice(value));
                    }
                    return headers;
                }
            }
        }
        Self {
            repr: Repr::Parsed { base, spans },
        }
    }

    /// Number of field lines.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Built(entries) => entries.len(),
            Repr::Parsed { spans, .. } => spans.len(),
        }
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of the first field named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The value of the first field named `name`, if it is UTF-8.
    #[must_use]
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of the fields named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
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
        self.built().push((name.into(), value.into()));
    }

    /// Sets `name` to `value`, removing the other fields of that name.
    pub fn insert(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        let entries = self.built();
        entries.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        entries.push((name, value.into()));
    }

    /// Removes every field named `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        if !self.contains(name) {
            return false;
        }
        self.built()
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
        true
    }

    /// The fields in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (base, spans, entries): (&[u8], &[Span], &[(Bytes, Bytes)]) = match &self.repr {
            Repr::Built(entries) => (&[], &[], entries),
            Repr::Parsed { base, spans } => (base, spans, &[]),
        };
        spans
            .iter()
            .map(move |span| (&base[span.name()], &base[span.value()]))
            .chain(entries.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    /// [`Clone::clone`] of a list that has fields.
    fn clone_fields(&self) -> Self {
        let repr = match &self.repr {
            Repr::Built(entries) => Repr::Built(entries.clone()),
            Repr::Parsed { base, spans } => Repr::Parsed {
                base: base.clone(),
                spans: spans.clone(),
            },
        };
        Self { repr }
    }

    /// The fields as a list to change: a parsed list becomes a built one (each field a
    /// slice of the head's bytes).
    fn built(&mut self) -> &mut SmallVec<[(Bytes, Bytes); Headers::INLINE]> {
        if let Repr::Parsed { base, spans } = &self.repr {
            let entries = spans
                .iter()
                .map(|span| (base.slice(span.name()), base.slice(span.value())))
                .collect();
            self.repr = Repr::Built(entries);
        }
        match &mut self.repr {
            Repr::Built(entries) => entries,
            Repr::Parsed { .. } => unreachable!("a parsed list was just made a built one"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"Host: a\r\nAccept: x\r\nAccept: y, Z\r\n\r\n";

    /// `HEAD`'s fields as the parsers give them: places in one copy of the head.
    fn parsed() -> Headers {
        let within = HEAD;
        let fields = [(0, 4, 6, 1), (9, 6, 17, 1), (20, 6, 28, 4)].map(
            |(name, name_len, value, value_len)| {
                (
                    &within[name..name + name_len],
                    &within[value..value + value_len],
                )
            },
        );
        Headers::parsed(Bytes::from_static(HEAD), within, fields.into_iter())
    }

    fn built() -> Headers {
        let mut headers = Headers::new();
        headers.append("Host", "a");
        headers.append("Accept", "x");
        headers.append("Accept", "y, Z");
        headers
    }

    #[test]
    fn a_parsed_list_reads_as_the_built_one() {
        let parsed = parsed();
        assert!(matches!(parsed.repr, Repr::Parsed { .. }));
        assert_eq!(parsed, built());
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed.get("host"), Some(&b"a"[..]));
        assert_eq!(
            parsed.get_all("ACCEPT").collect::<Vec<_>>(),
            [&b"x"[..], b"y, Z"]
        );
        assert!(parsed.has_token("accept", "z"));
        assert!(!parsed.contains("cookie"));
        assert_eq!(parsed.clone(), parsed);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", built()));
    }

    #[test]
    fn changing_a_parsed_list_keeps_its_order() {
        let mut headers = parsed();
        headers.append("Via", "1.1 p");
        let mut expected = built();
        expected.append("Via", "1.1 p");
        assert_eq!(headers, expected);
        assert!(matches!(headers.repr, Repr::Built(_)));

        let mut headers = parsed();
        headers.insert("accept", "w");
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            [(&b"Host"[..], &b"a"[..]), (b"accept", b"w")]
        );

        let mut headers = parsed();
        assert!(!headers.remove("cookie"));
        assert!(
            matches!(headers.repr, Repr::Parsed { .. }),
            "nothing to change"
        );
        assert!(headers.remove("host"));
        assert_eq!(headers.len(), 2);
        assert_eq!(headers.get("accept"), Some(&b"x"[..]));
    }

    #[test]
    fn fields_outside_the_head_are_copied() {
        let elsewhere = b"Host: a".to_vec();
        let fields = [(&elsewhere[..4], &elsewhere[6..])];
        let headers = Headers::parsed(Bytes::from_static(HEAD), HEAD, fields.into_iter());
        assert!(matches!(headers.repr, Repr::Built(_)));
        assert_eq!(headers.get("host"), Some(&b"a"[..]));
        // A base of another length than the head its places are read in.
        let fields = [(&HEAD[..4], &HEAD[6..7])];
        let headers = Headers::parsed(Bytes::from_static(b"Host"), HEAD, fields.into_iter());
        assert!(matches!(headers.repr, Repr::Built(_)));
        assert_eq!(headers.get("host"), Some(&b"a"[..]));
    }
}
