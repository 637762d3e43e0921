//! Length-prefixed framing (sans-IO): Twisted's `Int8/16/32StringReceiver`.
//!
//! Owns: [`LengthPrefixedDecoder`], [`encode_frame`]; enforces [`LengthPrefixedLimits`].
//! Contract: each frame is a big-endian unsigned length ([`Prefix`]) then that many bytes;
//! a declared length over `max_frame` fails with [`LengthPrefixedError::FrameTooLarge`] as
//! soon as the prefix is read, so at most `max_frame` bytes plus one read are buffered.
//! Does not: interpret payloads; the encoder does not apply `max_frame` (only the prefix's
//! range).
//! Tests: `length_prefixed/tests.rs`; fuzz target `fuzz/fuzz_targets/length_prefixed.rs`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::basic::proto::Decoder;

/// The width of the big-endian length prefix.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Prefix {
    /// One byte (payloads up to 255 bytes).
    U8,
    /// Two bytes (up to 65,535).
    U16,
    /// Four bytes (up to 4 GiB − 1).
    #[default]
    U32,
}

impl Prefix {
    /// The prefix's size in bytes.
    #[must_use]
    pub fn size(self) -> usize {
        match self {
            Prefix::U8 => 1,
            Prefix::U16 => 2,
            Prefix::U32 => 4,
        }
    }

    /// The largest length the prefix can express.
    #[must_use]
    pub fn max_len(self) -> u64 {
        match self {
            Prefix::U8 => u8::MAX.into(),
            Prefix::U16 => u16::MAX.into(),
            Prefix::U32 => u32::MAX.into(),
        }
    }
}

/// Bounds on what a [`LengthPrefixedDecoder`] accepts.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct LengthPrefixedLimits {
    /// The largest payload accepted, in bytes. Default: 64 KiB.
    pub max_frame: usize,
}

impl LengthPrefixedLimits {
    /// Limits with the given largest payload.
    #[must_use]
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

impl Default for LengthPrefixedLimits {
    fn default() -> Self {
        Self {
            max_frame: 64 * 1024,
        }
    }
}

/// Why length-prefixed input is invalid. Display texts are unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LengthPrefixedError {
    /// A frame declares a length over [`LengthPrefixedLimits::max_frame`].
    #[error("frame of {len} bytes over the {limit}-byte limit")]
    FrameTooLarge {
        /// The declared length.
        len: u64,
        /// The limit, in bytes.
        limit: usize,
    },
}

/// Why [`encode_frame`] refused a payload (caller misuse). Display texts are unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload is longer than the prefix can express.
    #[error("payload of {len} bytes does not fit a {prefix:?} length prefix (max {max})")]
    PayloadTooLong {
        /// The payload's length.
        len: usize,
        /// The prefix.
        prefix: Prefix,
        /// The largest length the prefix can express.
        max: u64,
    },
}

/// Decodes a stream of length-prefixed frames into payloads.
///
/// Call order: [`LengthPrefixedDecoder::handle_input`], then
/// [`LengthPrefixedDecoder::poll_event`] until `Ok(None)`.
///
/// # Examples
/// ```
/// use ringwork_protocols::basic::{LengthPrefixedDecoder, LengthPrefixedLimits, Prefix};
///
/// let mut d = LengthPrefixedDecoder::new(Prefix::U16, LengthPrefixedLimits::default());
/// d.handle_input(b"\x00\x02hi\x00");
/// assert_eq!(d.poll_event(), Ok(Some("hi".into())));
/// assert_eq!(d.poll_event(), Ok(None));
/// ```
#[derive(Debug)]
pub struct LengthPrefixedDecoder {
    buf: BytesMut,
    prefix: Prefix,
    limits: LengthPrefixedLimits,
    /// The current frame's length, once its prefix is read.
    len: Option<usize>,
    failed: Option<LengthPrefixedError>,
}

impl LengthPrefixedDecoder {
    /// A decoder for `prefix`-sized lengths under `limits`.
    #[must_use]
    pub fn new(prefix: Prefix, limits: LengthPrefixedLimits) -> Self {
        Self {
            buf: BytesMut::new(),
            prefix,
            limits,
            len: None,
            failed: None,
        }
    }

    /// The prefix width this decoder reads.
    #[must_use]
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    /// Buffers `data`. After an error, input is discarded.
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next payload, or `Ok(None)` when more input is needed.
    ///
    /// # Errors
    /// [`LengthPrefixedError::FrameTooLarge`] when a prefix declares more than the limit;
    /// the decoder then drops its buffer and returns the same error for ever.
    #[must_use = "a frame may be ready"]
    pub fn poll_event(&mut self) -> Result<Option<Bytes>, LengthPrefixedError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let len = match self.len {
            Some(len) => len,
            None => {
                if self.buf.len() < self.prefix.size() {
                    return Ok(None);
                }
                let declared = match self.prefix {
                    Prefix::U8 => u64::from(self.buf.get_u8()),
                    Prefix::U16 => u64::from(self.buf.get_u16()),
                    Prefix::U32 => u64::from(self.buf.get_u32()),
                };
                match usize::try_from(declared) {
                    Ok(len) if len <= self.limits.max_frame => {
                        self.len = Some(len);
                        len
                    }
                    _ => {
                        let e = LengthPrefixedError::FrameTooLarge {
                            len: declared,
                            limit: self.limits.max_frame,
                        };
                        self.failed = Some(e.clone());
                        self.buf = BytesMut::new();
                        return Err(e);
                    }
                }
            }
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        self.len = None;
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Bytes buffered and not yet delivered.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

impl Decoder for LengthPrefixedDecoder {
    type Event = Bytes;
    type Error = LengthPrefixedError;

    fn handle_input(&mut self, data: &[u8]) {
        LengthPrefixedDecoder::handle_input(self, data);
    }

    fn poll_event(&mut self) -> Result<Option<Bytes>, LengthPrefixedError> {
        LengthPrefixedDecoder::poll_event(self)
    }

    fn buffered(&self) -> usize {
        LengthPrefixedDecoder::buffered(self)
    }
}

/// Appends `payload` with a `prefix`-sized big-endian length to `out`.
///
/// # Errors
/// [`EncodeError::PayloadTooLong`] if the prefix cannot express the payload's length;
/// `out` is then unchanged.
pub fn encode_frame(payload: &[u8], prefix: Prefix, out: &mut BytesMut) -> Result<(), EncodeError> {
    let too_long = || EncodeError::PayloadTooLong {
        len: payload.len(),
        prefix,
        max: prefix.max_len(),
    };
    out.reserve(prefix.size() + payload.len());
    match prefix {
        Prefix::U8 => out.put_u8(u8::try_from(payload.len()).map_err(|_| too_long())?),
        Prefix::U16 => out.put_u16(u16::try_from(payload.len()).map_err(|_| too_long())?),
        Prefix::U32 => out.put_u32(u32::try_from(payload.len()).map_err(|_| too_long())?),
    }
    out.put_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests;
