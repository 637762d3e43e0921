//! [`Response`] (what an application answers with) and how a server frames it on the wire.
//!
//! Owns: the response value, the fields the server manages itself (Connection,
//! Transfer-Encoding, Keep-Alive, Date, Content-Length), message-length rules for
//! responses, and the framing of streamed body pieces (sized, chunked, close-delimited).
//! Contract: [`frame_head`] encodes a status line and fields into the caller's buffer and
//! says how the body that follows is delimited; whole-response bodies are the caller's to
//! append (copied when small, shared when large).
//! Does not: decide keep-alive beyond what the response and request allow, or send anything.
//! Spec: RFC 9112 §6.1–§6.3 (message length), §7.1 (chunked), §9.6 (close); RFC 9110 §6.6.1
//! (Date), §8.6 (Content-Length).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::http::proto::{H1Error, Headers, ResponseHead, Version, encode};
use crate::kit::Output;

/// A response: status, fields and a whole body. Build it with the constructors and the
/// `with_*`/[`Response::header`] methods.
///
/// The server frames it: it sets Content-Length (or omits the body for HEAD, 1xx, 204 and
/// 304), Date and Connection, and drops any Transfer-Encoding the application set.
///
/// A response sent again and again (a canned answer) can have its fields checked and
/// encoded once ([`Response::prepared`]) and be cloned per request.
#[derive(Clone, Debug)]
pub struct Response {
    pub(crate) head: ResponseHead,
    pub(crate) body: Bytes,
    /// The fields, checked and encoded once ([`Response::prepared`]): they are moved here
    /// out of `head.headers` (left empty), so a clone shares them; `None` when not
    /// prepared or changed since.
    pub(crate) fields: Option<Arc<PreparedFields>>,
}

/// The field lines of a prepared [`Response`], and what framing reads from its fields.
#[derive(Debug)]
pub(crate) struct PreparedFields {
    /// The fields (the response's `head.headers` while it is prepared).
    headers: Headers,
    /// Encoded once: the status line of `status` with its standard reason phrase
    /// (`encoded[..lines_at]`, empty when `status` cannot be sent), every field but the
    /// managed ones ([`MANAGED`]) (`encoded[lines_at..lines_end]`, `name: value\r\n` each,
    /// each checked as [`encode::write_field`] checks it), then the Content-Length line of
    /// `length` (`encoded[lines_end..length_end]`), then, when `body` is kept, the empty
    /// line and the body's bytes. Framing copies the first two parts in one piece while the
    /// response still has that status and no reason of its own, the Content-Length line
    /// when the length it frames is `length`, and the rest with it when nothing else goes
    /// between and the response still has that body (issue 16: the hello path's status
    /// line, Content-Length, empty line and body were five copies a request).
    encoded: Box<[u8]>,
    lines_at: usize,
    lines_end: usize,
    length_end: usize,
    /// The body whose bytes end `encoded` (one smaller than [`Output::SHARE_AT`], which
    /// framing copies), kept so that a response whose body is still this one (same bytes
    /// at the same place) is known to be unchanged.
    body: Option<Bytes>,
    /// The status whose line starts `encoded` (0: none).
    status: u16,
    /// The length whose Content-Length line ends `encoded`: the body's when prepared.
    length: u64,
    /// The Content-Length the application declared, checked to be a number.
    declared: Option<u64>,
    /// A Connection field holds `close`.
    close: bool,
}

impl PreparedFields {
    /// The fields of `head` encoded and checked (and the status line, and the
    /// Content-Length line of a body of `length` bytes); `None` when a field cannot be sent
    /// (framing then refuses the response, as it does an unprepared one).
    fn of(head: &ResponseHead, body: &Bytes) -> Option<Self> {
        let declared = match head.headers.get("content-length") {
            Some(value) => Some(declared_length(value).ok()?),
            None => None,
        };
        let mut encoded = BytesMut::new();
        let status =
            match encode::write_status_line(&mut encoded, Version::Http11, head.status, &[]) {
                Ok(()) => head.status,
                Err(_) => 0,
            };
        let lines_at = encoded.len();
        write_unmanaged_fields(&head.headers, &mut encoded).ok()?;
        let lines_end = encoded.len();
        let length = body.len() as u64;
        encode::write_content_length(&mut encoded, length);
        let length_end = encoded.len();
        let body = (body.len() < Output::SHARE_AT).then(|| {
            encoded.extend_from_slice(b"\r\n");
            encoded.extend_from_slice(body);
            body.clone()
        });
        Some(Self {
            headers: Headers::new(),
            encoded: encoded[..].into(),
            lines_at,
            lines_end,
            length_end,
            body,
            status,
            length,
            declared,
            close: head.headers.has_token("connection", "close"),
        })
    }

    /// The encoded field lines.
    fn lines(&self) -> &[u8] {
        &self.encoded[self.lines_at..self.lines_end]
    }

    /// The Content-Length line, the empty line and the body, when `body` is the one
    /// prepared.
    fn length_and_body(&self, body: &Bytes) -> Option<&[u8]> {
        let kept = self.body.as_ref()?;
        // Same place and length: the same bytes (`Bytes` never change, and `kept` holds
        // them, so the place cannot have been reused).
        (kept.as_ptr() == body.as_ptr() && kept.len() == body.len())
            .then(|| &self.encoded[self.lines_end..])
    }

    /// The status line of `status` and the field lines, when `status` is the one prepared.
    fn status_and_lines(&self, status: u16) -> Option<&[u8]> {
        (status == self.status && status != 0).then(|| &self.encoded[..self.lines_end])
    }
}

impl Response {
    /// An empty response with `status`.
    #[must_use]
    pub fn new(status: u16) -> Self {
        Self {
            head: ResponseHead::new(status),
            body: Bytes::new(),
            fields: None,
        }
    }

    /// The response with its fields checked and encoded now, once: framing it (and every
    /// clone of it) copies the encoded lines instead of checking each field again. Build a
    /// canned answer once, prepared, and send a clone per request. Changing a field
    /// afterwards ([`Response::header`], [`Response::headers_mut`]) undoes it; a field that
    /// cannot be sent leaves it unprepared (framing refuses it then, with a 500).
    #[must_use]
    pub fn prepared(mut self) -> Self {
        self.unprepare();
        if let Some(mut fields) = PreparedFields::of(&self.head, &self.body) {
            fields.headers = std::mem::take(&mut self.head.headers);
            self.fields = Some(Arc::new(fields));
        }
        self
    }

    /// The response with its fields back in `head.headers` (not prepared), for code that
    /// reads or changes them there.
    pub(crate) fn unprepared(mut self) -> Self {
        self.unprepare();
        self
    }

    fn unprepare(&mut self) {
        if let Some(fields) = self.fields.take() {
            self.head.headers = match Arc::try_unwrap(fields) {
                Ok(fields) => fields.headers,
                Err(shared) => shared.headers.clone(),
            };
        }
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    #[must_use]
    pub fn text(body: impl Into<Bytes>) -> Self {
        Self::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body)
    }

    /// 200 with an `application/json` body (the caller serializes it).
    #[must_use]
    pub fn json(body: impl Into<Bytes>) -> Self {
        Self::new(200)
            .header("Content-Type", "application/json")
            .with_body(body)
    }

    /// `status` with a short plain-text body naming it (`404 Not Found`).
    #[must_use]
    pub fn error(status: u16) -> Self {
        let reason = crate::http::proto::reason_phrase(status);
        Self::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .with_body(format!("{status} {reason}\n"))
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.head.status = status;
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Adds a field (others of the same name stay).
    #[must_use]
    pub fn header(mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.unprepare();
        self.head.headers.append(name, value);
        self
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The fields.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        match &self.fields {
            Some(fields) => &fields.headers,
            None => &self.head.headers,
        }
    }

    /// The fields, to change.
    pub fn headers_mut(&mut self) -> &mut Headers {
        self.unprepare();
        &mut self.head.headers
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// How a streamed response body is delimited.
#[derive(Debug)]
pub(crate) enum Framing {
    /// No body follows (HEAD, 1xx, 204, 304), or the response was whole.
    None,
    /// Content-Length: bytes still to send.
    Sized(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client).
    CloseDelimited,
}

/// What the connection knows about a request when its response is framed.
pub(crate) struct FrameInput<'a> {
    pub(crate) version: Version,
    pub(crate) is_head: bool,
    pub(crate) keep_alive: bool,
    /// The whole `Date` field line ([`DATE_LINE`] bytes; its value at [`DATE_VALUE`]).
    pub(crate) date_line: &'a [u8; DATE_LINE],
    pub(crate) server_name: Option<&'a [u8]>,
    /// The request asked to switch protocols (`Connection: upgrade`): a `101` answer says
    /// `Connection: Upgrade` (RFC 9110 §7.8) instead of the keep-alive fields.
    pub(crate) upgrade: bool,
}

/// A framed head.
pub(crate) struct Framed {
    /// For a stream: how its body is delimited.
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
    /// Whether the whole response's body goes on the wire (not for HEAD, 1xx, 204, 304).
    pub(crate) send_body: bool,
    /// The whole response's body was written with the head (a prepared response's).
    pub(crate) body_written: bool,
}

/// The length of a `Date` field line: `Date: ` IMF-fixdate CRLF.
pub(crate) const DATE_LINE: usize = 37;

/// Where the IMF-fixdate is in a `Date` field line.
pub(crate) const DATE_VALUE: std::ops::Range<usize> = 6..35;

/// Fields the server manages itself: whatever the application put there is replaced.
const MANAGED: [&[u8]; 5] = [
    b"connection",
    b"transfer-encoding",
    b"keep-alive",
    b"date",
    b"content-length",
];

/// Encodes the head of `response` into `out` (RFC 9112 §6.1–§6.3, §9.6). `streaming`: the
/// body follows in pieces, delimited as the returned framing says; otherwise the caller
/// appends `response.body` when [`Framed::send_body`].
///
/// # Errors
/// [`H1Error::InvalidResponseHeader`] for a field the wire cannot carry, or a
/// Content-Length that is not a number; `out` is then left as it was.
pub(crate) fn frame_head(
    input: &FrameInput<'_>,
    response: &Response,
    streaming: bool,
    out: &mut BytesMut,
) -> Result<Framed, H1Error> {
    let start = out.len();
    let result = try_frame_head(input, response, streaming, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn try_frame_head(
    input: &FrameInput<'_>,
    response: &Response,
    streaming: bool,
    out: &mut BytesMut,
) -> Result<Framed, H1Error> {
    let head: &ResponseHead = &response.head;
    let status = head.status;
    // RFC 9112 §6.3 (1): 1xx, 204 and 304 responses end at the head; a response to HEAD
    // too (RFC 9110 §9.3.2).
    let no_body_status = (100..200).contains(&status) || status == 204 || status == 304;
    let send_body = !no_body_status && !input.is_head;
    let prepared = response.fields.as_deref();
    let (declared, close) = match prepared {
        Some(prepared) => (prepared.declared, prepared.close),
        None => {
            let declared = match head.headers.get("content-length") {
                Some(value) => Some(declared_length(value)?),
                None => None,
            };
            (declared, head.headers.has_token("connection", "close"))
        }
    };
    let mut keep_alive = input.keep_alive && !close;
    let framing = if !streaming || !send_body {
        Framing::None
    } else if let Some(n) = declared {
        Framing::Sized(n)
    } else if input.version == Version::Http11 {
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::CloseDelimited
    };
    out.reserve(128 + prepared.map_or(head.headers.len() * 32, |p| p.encoded.len()));
    match prepared {
        Some(prepared) => match prepared.status_and_lines(status) {
            Some(encoded) if head.reason.is_empty() => out.extend_from_slice(encoded),
            _ => {
                encode::write_status_line(out, Version::Http11, status, &head.reason)?;
                out.extend_from_slice(prepared.lines());
            }
        },
        None => {
            encode::write_status_line(out, Version::Http11, status, &head.reason)?;
            write_unmanaged_fields(&head.headers, out)?;
        }
    }
    if let Some(server) = input.server_name {
        encode::write_field(out, b"Server", server)?;
    }
    // The driver's IMF-fixdate: no field check needed.
    out.extend_from_slice(input.date_line);
    if !streaming && send_body && keep_alive && input.version == Version::Http11 {
        // Nothing goes between Content-Length and the body (no Connection field): a
        // prepared response's end in one copy.
        if let Some(end) = prepared.and_then(|p| p.length_and_body(&response.body)) {
            out.extend_from_slice(end);
            return Ok(Framed {
                framing,
                keep_alive,
                send_body,
                body_written: true,
            });
        }
    }
    let content_length = |out: &mut BytesMut, n: u64| match prepared {
        Some(prepared) if prepared.length == n => {
            out.extend_from_slice(&prepared.encoded[prepared.lines_end..prepared.length_end]);
        }
        _ => encode::write_content_length(out, n),
    };
    // RFC 9110 §8.6: a server MUST NOT send Content-Length in a 1xx or 204 response.
    if !(100..200).contains(&status) && status != 204 {
        match (&framing, streaming) {
            (Framing::Sized(n), _) => content_length(out, *n),
            (Framing::Chunked, _) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            (Framing::CloseDelimited, _) => {}
            // A whole response: its body length, or for HEAD/304 the length the
            // application declared (the length a GET would have had).
            (Framing::None, false) => {
                let n = if send_body {
                    Some(response.body.len() as u64)
                } else {
                    declared.or((!no_body_status).then_some(response.body.len() as u64))
                };
                if let Some(n) = n {
                    content_length(out, n);
                }
            }
            (Framing::None, true) => {
                if let Some(n) = declared {
                    content_length(out, n);
                }
            }
        }
    }
    if status == 101 && input.upgrade {
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    } else if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if input.version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Framed {
        framing,
        keep_alive,
        send_body,
        body_written: false,
    })
}

/// A declared Content-Length value as a number.
fn declared_length(value: &[u8]) -> Result<u64, H1Error> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(H1Error::InvalidResponseHeader {
            what: "Content-Length is not a number",
        })
}

/// Encodes every field of `headers` but the managed ones, each checked.
fn write_unmanaged_fields(headers: &Headers, out: &mut BytesMut) -> Result<(), H1Error> {
    for (name, value) in headers.iter() {
        if !MANAGED.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            encode::write_field(out, name, value)?;
        }
    }
    Ok(())
}

/// The answer when the application's response cannot be framed.
pub(crate) const FALLBACK_500: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// What a body piece becomes on the wire under `framing`, pushed onto `out`; the bytes of
/// `data` that were dropped (past a declared length, or for a body that is not sent).
pub(crate) fn frame_body_piece(
    framing: &mut Framing,
    data: Bytes,
    out: &mut VecDeque<Bytes>,
) -> usize {
    if data.is_empty() {
        return 0;
    }
    match framing {
        Framing::None => data.len(),
        Framing::Sized(remaining) => {
            let take = (data.len() as u64).min(*remaining) as usize;
            *remaining -= take as u64;
            let dropped = data.len() - take;
            if take > 0 {
                out.push_back(data.slice(..take));
            }
            dropped
        }
        Framing::Chunked => {
            let mut size = BytesMut::with_capacity(18);
            encode::write_chunk_size(&mut size, data.len());
            out.push_back(size.freeze());
            out.push_back(data);
            out.push_back(Bytes::from_static(b"\r\n"));
            0
        }
        Framing::CloseDelimited => {
            out.push_back(data);
            0
        }
    }
}

/// The end of a body under `framing`: the last chunk (with trailers) for chunked. Returns
/// whether the body is complete (a sized body must have been written in full; `None`
/// trailers means the writer gave up) and whether the trailers had to be dropped.
pub(crate) fn frame_body_end(
    framing: &Framing,
    trailers: Option<&Headers>,
    out: &mut VecDeque<Bytes>,
) -> (bool, bool) {
    match framing {
        Framing::Chunked => {
            let Some(trailers) = trailers else {
                return (false, false);
            };
            let mut end = BytesMut::with_capacity(5);
            let mut dropped = false;
            if encode::write_last_chunk(&mut end, trailers).is_err() {
                dropped = true;
                end.clear();
                end.extend_from_slice(encode::LAST_CHUNK);
            }
            out.push_back(end.freeze());
            (true, dropped)
        }
        Framing::Sized(remaining) => (*remaining == 0 && trailers.is_some(), false),
        Framing::None => (true, false),
        Framing::CloseDelimited => (trailers.is_some(), false),
    }
}
