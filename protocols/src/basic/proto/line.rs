//! Line framing (sans-IO): Twisted's `LineReceiver` without the transport.
//!
//! Owns: [`LineDecoder`] (lines split on LF or CRLF, raw-mode switching), [`encode_line`];
//! enforces [`LineLimits`].
//! Contract: `handle_input` buffers; `poll_event` yields one [`LineEvent`] at a time; a line
//! longer than `max_line` (delimiter excluded) fails with [`LineError::LineTooLong`] as soon
//! as the buffered bytes prove it, so at most `max_line + 1` bytes plus one read are held.
//! Switching to raw mode and back re-delivers already-buffered bytes in the new mode
//! (Twisted's `setRawMode` / `setLineMode`).
//! Does not: decode text (lines are bytes), touch sockets.
//! Tests: `line/tests.rs`; fuzz target `fuzz/fuzz_targets/line.rs`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::basic::proto::Decoder;

/// How lines end.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Delimiter {
    /// LF ends a line; one CR right before it is stripped (accepts both `\r\n` and `\n`).
    /// The encoder writes `\n`.
    #[default]
    Lf,
    /// Only CRLF ends a line; a bare LF is part of the line. The encoder writes `\r\n`.
    CrLf,
}

impl Delimiter {
    /// The bytes the encoder writes after a line.
    #[must_use]
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Delimiter::Lf => b"\n",
            Delimiter::CrLf => b"\r\n",
        }
    }
}

/// Bounds on what a [`LineDecoder`] buffers.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct LineLimits {
    /// The longest line accepted, in bytes, delimiter excluded. Default: 64 KiB.
    pub max_line: usize,
}

impl LineLimits {
    /// Limits with the given longest line.
    #[must_use]
    pub fn new(max_line: usize) -> Self {
        Self { max_line }
    }
}

impl Default for LineLimits {
    fn default() -> Self {
        Self {
            max_line: 64 * 1024,
        }
    }
}

/// Why line input is invalid. Display texts are unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// A line is longer than [`LineLimits::max_line`].
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// What a [`LineDecoder`] yields.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum LineEvent {
    /// A complete line, delimiter stripped.
    Line(Bytes),
    /// Bytes received in raw mode, as buffered (chunk boundaries are not meaningful).
    Raw(Bytes),
}

/// Splits a byte stream into lines, or passes it through raw.
///
/// Call order: [`LineDecoder::handle_input`], then [`LineDecoder::poll_event`] until
/// `Ok(None)`; [`LineDecoder::set_raw`] may be called between polls and applies to every byte
/// not yet delivered.
///
/// # Examples
/// ```
/// use ringwork_protocols::basic::{LineDecoder, LineEvent};
///
/// let mut d = LineDecoder::new();
/// d.handle_input(b"hello\r\nwor");
/// assert_eq!(d.poll_event(), Ok(Some(LineEvent::Line("hello".into()))));
/// assert_eq!(d.poll_event(), Ok(None));
/// d.handle_input(b"ld\n");
/// assert_eq!(d.poll_event(), Ok(Some(LineEvent::Line("world".into()))));
/// ```
#[derive(Debug)]
pub struct LineDecoder {
    buf: BytesMut,
    delimiter: Delimiter,
    limits: LineLimits,
    raw: bool,
    // INVARIANT: `buf[..scanned]` holds no line delimiter (in line mode).
    scanned: usize,
    failed: Option<LineError>,
}

impl LineDecoder {
    /// A decoder with [`Delimiter::Lf`] and default limits.
    #[must_use]
    pub fn new() -> Self {
        Self::with_config(Delimiter::default(), LineLimits::default())
    }

    /// A decoder with the given delimiter and limits.
    #[must_use]
    pub fn with_config(delimiter: Delimiter, limits: LineLimits) -> Self {
        Self {
            buf: BytesMut::new(),
            delimiter,
            limits,
            raw: false,
            scanned: 0,
            failed: None,
        }
    }

    /// The delimiter this decoder splits on.
    #[must_use]
    pub fn delimiter(&self) -> Delimiter {
        self.delimiter
    }

    /// Whether the decoder is in raw mode.
    #[must_use]
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// Switches raw mode on (bytes are delivered as [`LineEvent::Raw`]) or off (as lines).
    /// Bytes already buffered and not yet delivered are delivered in the new mode.
    pub fn set_raw(&mut self, raw: bool) {
        self.raw = raw;
        self.scanned = 0;
    }

    /// Switches to line mode and puts `extra` in front of the buffered bytes: Twisted's
    /// `setLineMode(extra)`, for a raw-mode consumer that took only part of a chunk.
    pub fn set_line_mode_with(&mut self, extra: &[u8]) {
        self.set_raw(false);
        if self.failed.is_some() || extra.is_empty() {
            return;
        }
        let mut buf = BytesMut::with_capacity(extra.len() + self.buf.len());
        buf.put_slice(extra);
        buf.put_slice(&self.buf);
        self.buf = buf;
    }

    /// Buffers `data`. After an error, input is discarded.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next line (or raw chunk), or `Ok(None)` when more input is needed.
    ///
    /// # Errors
    /// [`LineError::LineTooLong`] once the buffered bytes prove a line exceeds the limit;
    /// the decoder then drops its buffer and returns the same error for ever.
    #[must_use = "a line may be ready"]
    pub fn poll_event(&mut self) -> Result<Option<LineEvent>, LineError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.raw {
            if self.buf.is_empty() {
                return Ok(None);
            }
            return Ok(Some(LineEvent::Raw(self.buf.split().freeze())));
        }
        let max = self.limits.max_line;
        match self.find_line() {
            Some((end, content)) => {
                if content > max {
                    return Err(self.fail());
                }
                let mut line = self.buf.split_to(end).freeze();
                line.truncate(content);
                self.scanned = 0;
                Ok(Some(LineEvent::Line(line)))
            }
            None => {
                // No delimiter yet: the line is already too long if more than `max` bytes
                // are buffered, unless the only extra byte is a CR that may start the
                // delimiter.
                let len = self.buf.len();
                if len > max + 1 || (len == max + 1 && self.buf.last() != Some(&b'\r')) {
                    return Err(self.fail());
                }
                Ok(None)
            }
        }
    }

    /// Bytes buffered and not yet delivered.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The first complete line: (bytes including the delimiter, content length).
    fn find_line(&mut self) -> Option<(usize, usize)> {
        let mut from = self.scanned;
        while let Some(i) = self.buf[from..].iter().position(|&b| b == b'\n') {
            let lf = from + i;
            let cr = lf > 0 && self.buf[lf - 1] == b'\r';
            match (self.delimiter, cr) {
                (_, true) => return Some((lf + 1, lf - 1)),
                (Delimiter::Lf, false) => return Some((lf + 1, lf)),
                (Delimiter::CrLf, false) => from = lf + 1,
            }
        }
        // A trailing CR may still become part of the delimiter: rescan it next time.
        self.scanned = self.buf.len().saturating_sub(1);
        None
    }

    fn fail(&mut self) -> LineError {
        let e = LineError::LineTooLong {
            limit: self.limits.max_line,
        };
        self.failed = Some(e.clone());
        self.buf = BytesMut::new();
        e
    }
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for LineDecoder {
    type Event = LineEvent;
    type Error = LineError;

    fn handle_input(&mut self, data: &[u8]) {
        LineDecoder::handle_input(self, data);
    }

    fn poll_event(&mut self) -> Result<Option<LineEvent>, LineError> {
        LineDecoder::poll_event(self)
    }

    fn buffered(&self) -> usize {
        LineDecoder::buffered(self)
    }
}

/// Appends `line` and `delimiter` to `out`.
///
/// The line is written as given: a line containing the delimiter (or, with
/// [`Delimiter::Lf`], ending in CR) will not decode back to itself.
pub fn encode_line(line: &[u8], delimiter: Delimiter, out: &mut BytesMut) {
    let d = delimiter.as_bytes();
    out.reserve(line.len() + d.len());
    out.put_slice(line);
    out.put_slice(d);
}

#[cfg(test)]
mod tests;
