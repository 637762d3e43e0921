//! HTTP/1.1 body decoder (sans-IO): Content-Length, chunked (with trailers) and
//! close-delimited bodies.
//!
//! Owns: framing of the body that follows a head; the body-size limit; chunk-size,
//! chunk-extension and trailer validation.
//! Contract: [`BodyDecoder::decode`] consumes a prefix of its input and returns at most one
//! slice of body data *of that input* (no copy), or that the body is finished. Call it
//! again with the rest. Only the trailer section is buffered (bounded by
//! `H1Limits::max_trailers`).
//! Does not: touch sockets or decompress (no content codings).
//! Spec: RFC 9112 §6.3, §7.1 (chunked), §7.1.1 (extensions), §7.1.2 (trailers).
//! Tests: `body/tests.rs`; fuzz target `fuzz/http_body`.

use bytes::Bytes;

use crate::http::proto::error::H1Error;
use crate::http::proto::head::{BodyKind, H1Limits, Headers, Status};
use crate::http::proto::scan;

/// One step of decoding.
#[derive(Debug, Eq, PartialEq)]
pub struct Decoded<'a> {
    /// Input bytes used (framing and data).
    pub consumed: usize,
    /// Body data found in the input (possibly empty).
    pub data: &'a [u8],
    /// Whether the body ended with this step.
    pub finished: bool,
}

/// A body decoder for one message.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    /// Body bytes delivered so far.
    received: u64,
    max_body: u64,
    max_chunk_ext: usize,
    max_trailers: usize,
    /// Boxed: rare, and a [`Headers`] keeps fields inline (the decoder sits in every
    /// connection's reading state).
    trailers: Option<Box<Headers>>,
}

#[derive(Debug)]
enum State {
    /// Content-Length: bytes still to come.
    Length(u64),
    /// Chunked: reading a chunk-size line.
    ChunkSize(ChunkLine),
    /// Chunked: inside a chunk's data.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data; `true` once the CR is seen.
    ChunkDataEnd(bool),
    /// Chunked: the trailer section, buffered until its empty line.
    Trailers(Vec<u8>),
    /// Until the connection closes.
    CloseDelimited,
    Done,
}

/// Progress through a chunk-size line: `chunk-size [ chunk-ext ] CRLF`.
#[derive(Debug, Default)]
struct ChunkLine {
    size: u64,
    digits: usize,
    /// Bytes of extension text seen.
    ext_len: usize,
    phase: LinePhase,
}

#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
enum LinePhase {
    /// Hex digits.
    #[default]
    Size,
    /// Whitespace after the size or after an extension value: `;` or more whitespace.
    SizeWs,
    /// After `;`: whitespace, then an extension name.
    ExtStart,
    /// Inside an extension name (a token).
    ExtName,
    /// Whitespace after a name: `=`, `;` or more whitespace.
    ExtNameWs,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted value; `true` right after a backslash.
    ExtQuoted(bool),
    /// Right after a quoted value's closing quote.
    ExtQuotedEnd,
    /// The CR was seen; LF must follow.
    Cr,
}

/// RFC 9110 §5.6.2: `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl BodyDecoder {
    /// A decoder for a body delimited as `kind`, bounded by `limits`.
    #[must_use]
    pub fn new(kind: BodyKind, limits: &H1Limits) -> Self {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::ChunkSize(ChunkLine::default()),
            BodyKind::CloseDelimited => State::CloseDelimited,
        };
        Self {
            state,
            received: 0,
            max_body: limits.max_body,
            max_chunk_ext: limits.max_chunk_ext,
            max_trailers: limits.max_trailers,
            trailers: None,
        }
    }

    /// Whether the body has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Body bytes delivered so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Body bytes still expected, when the framing says (Content-Length).
    #[must_use]
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The trailer fields of a chunked body, once finished (taken once).
    pub fn take_trailers(&mut self) -> Option<Headers> {
        self.trailers.take().map(|trailers| *trailers)
    }

    /// Decodes from `input`: see the module contract.
    ///
    /// # Errors
    /// Malformed chunked framing, a body over the limit, or oversized extensions or
    /// trailers; the message cannot be framed further and the connection must close.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, H1Error> {
        let mut at = 0;
        loop {
            match &mut self.state {
                State::Done => return Ok(self.step(at, &[], true)),
                State::Length(remaining) => {
                    let n = (*remaining).min((input.len() - at) as u64) as usize;
                    *remaining -= n as u64;
                    let finished = *remaining == 0;
                    if finished {
                        self.state = State::Done;
                    }
                    self.received += n as u64;
                    return Ok(self.step(at + n, &input[at..at + n], finished));
                }
                State::CloseDelimited => {
                    let data = &input[at..];
                    self.count(data.len() as u64)?;
                    return Ok(self.step(input.len(), data, false));
                }
                State::ChunkData(remaining) => {
                    if at == input.len() {
                        return Ok(self.step(at, &[], false));
                    }
                    let n = (*remaining).min((input.len() - at) as u64) as usize;
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::ChunkDataEnd(false);
                    }
                    self.received += n as u64;
                    return Ok(self.step(at + n, &input[at..at + n], false));
                }
                State::ChunkDataEnd(cr_seen) => {
                    let Some(&b) = input.get(at) else {
                        return Ok(self.step(at, &[], false));
                    };
                    at += 1;
                    match (b, *cr_seen) {
                        (b'\r', false) => *cr_seen = true,
                        (b'\n', true) => self.state = State::ChunkSize(ChunkLine::default()),
                        // RFC 9112 §7.1: chunk-data is followed by CRLF.
                        _ => return Err(H1Error::BadChunkTerminator),
                    }
                }
                State::ChunkSize(line) => {
                    let Some(&b) = input.get(at) else {
                        return Ok(self.step(at, &[], false));
                    };
                    at += 1;
                    let done = chunk_line_byte(line, b, self.max_chunk_ext)?;
                    if done {
                        let size = line.size;
                        if size == 0 {
                            self.state = State::Trailers(Vec::new());
                        } else {
                            self.count(size)?;
                            self.received -= size;
                            self.state = State::ChunkData(size);
                        }
                    }
                }
                State::Trailers(buf) => {
                    let rest = &input[at..];
                    if rest.is_empty() {
                        return Ok(self.step(at, &[], false));
                    }
                    // The trailer section is a field section: the same byte rules as a head.
                    // A leading "start line" is not there, so scan a fake one.
                    let before = buf.len();
                    let room = (self.max_trailers + 2).saturating_sub(before);
                    let take = rest.len().min(room);
                    buf.extend_from_slice(&rest[..take]);
                    let mut framed = Vec::with_capacity(buf.len() + 2);
                    framed.extend_from_slice(b"\r\n");
                    framed.extend_from_slice(buf);
                    match scan::scan_head(&framed, 0, self.max_trailers + 2) {
                        Ok(Status::Complete(len)) => {
                            let used = len - 2 - before;
                            let section = &framed[2..len];
                            self.trailers = Some(Box::new(parse_trailers(section)?));
                            self.state = State::Done;
                            return Ok(self.step(at + used, &[], true));
                        }
                        Ok(Status::Partial) => return Ok(self.step(at + take, &[], false)),
                        Err(H1Error::HeadTooLarge { .. }) => {
                            return Err(H1Error::TrailersTooLarge {
                                limit: self.max_trailers,
                            });
                        }
                        Err(e) => return Err(e.offset_by_minus(2)),
                    }
                }
            }
        }
    }

    /// Tells the decoder the connection ended: `Ok` if that ends the body
    /// (close-delimited), else [`H1Error::UnexpectedEof`].
    ///
    /// # Errors
    /// The body was delimited some other way and is not finished.
    pub fn finish_at_eof(&mut self) -> Result<(), H1Error> {
        match self.state {
            State::CloseDelimited | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(H1Error::UnexpectedEof),
        }
    }

    fn step<'a>(&self, consumed: usize, data: &'a [u8], finished: bool) -> Decoded<'a> {
        Decoded {
            consumed,
            data,
            finished,
        }
    }

    /// Counts `n` more body bytes against the limit.
    fn count(&mut self, n: u64) -> Result<(), H1Error> {
        self.received = self.received.saturating_add(n);
        if self.received > self.max_body {
            return Err(H1Error::BodyTooLarge {
                limit: self.max_body,
            });
        }
        Ok(())
    }
}

/// Feeds one byte of a chunk-size line; `true` when the line ended.
///
/// RFC 9112 §7.1: `chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF`,
/// `chunk-size = 1*HEXDIG`; §7.1.1: `chunk-ext = *( BWS ";" BWS chunk-ext-name
/// [ BWS "=" BWS chunk-ext-val ] )`. Sizes that overflow 64 bits, a missing size, bare
/// CR/LF and whitespace not followed by `;` are errors.
fn chunk_line_byte(line: &mut ChunkLine, b: u8, max_ext: usize) -> Result<bool, H1Error> {
    use LinePhase::*;
    let phase = line.phase;
    if !matches!(phase, Size | Cr) {
        line.ext_len += 1;
        if line.ext_len > max_ext {
            return Err(H1Error::ChunkExtensionTooLong { limit: max_ext });
        }
    }
    let ext_error = if phase == Size || phase == SizeWs && b != b';' {
        H1Error::BadChunkSize
    } else {
        H1Error::BadChunkExtension
    };
    line.phase = match (phase, b) {
        (Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
            let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
            line.size = line
                .size
                .checked_mul(16)
                .and_then(|s| s.checked_add(digit))
                .ok_or(H1Error::BadChunkSize)?;
            line.digits += 1;
            Size
        }
        (Size, _) if line.digits == 0 => return Err(H1Error::BadChunkSize),
        // Whitespace (BWS) may only come before `;` or `=`, never before the CRLF.
        (Size | ExtName | ExtToken | ExtQuotedEnd, b'\r') => Cr,
        (Size | SizeWs | ExtToken | ExtQuotedEnd, b' ' | b'\t') => SizeWs,
        (ExtName | ExtNameWs, b' ' | b'\t') => ExtNameWs,
        (Size | SizeWs | ExtName | ExtNameWs | ExtToken | ExtQuotedEnd, b';') => ExtStart,
        (ExtStart, b' ' | b'\t') => ExtStart,
        (ExtStart | ExtName, b) if is_tchar(b) => ExtName,
        (ExtName | ExtNameWs, b'=') => ExtValueStart,
        (ExtValueStart, b' ' | b'\t') => ExtValueStart,
        (ExtValueStart, b'"') => ExtQuoted(false),
        (ExtValueStart | ExtToken, b) if is_tchar(b) => ExtToken,
        // RFC 9110 §5.6.4: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text;
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
        (ExtQuoted(true), b'\t' | b' '..=b'~' | 0x80..=0xff) => ExtQuoted(false),
        (ExtQuoted(false), b'\\') => ExtQuoted(true),
        (ExtQuoted(false), b'"') => ExtQuotedEnd,
        (ExtQuoted(false), b'\t' | b' '..=b'~' | 0x80..=0xff) => ExtQuoted(false),
        (Cr, b'\n') => return Ok(true),
        (Cr, _) => return Err(H1Error::BadChunkSize),
        _ => return Err(ext_error),
    };
    Ok(false)
}

/// Parses a trailer section (field lines and the final empty line).
fn parse_trailers(section: &[u8]) -> Result<Headers, H1Error> {
    let owned = Bytes::copy_from_slice(section);
    let mut fields = [httparse::EMPTY_HEADER; 64];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, fields))) => {
            Ok(scan::collect_headers(section, owned, fields))
        }
        Ok(httparse::Status::Partial) => Err(H1Error::Malformed { what: "trailers" }),
        Err(e) => Err(scan::httparse_error(e, 64)),
    }
}

#[cfg(test)]
mod tests;
