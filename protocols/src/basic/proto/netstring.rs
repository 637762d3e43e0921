//! Netstring framing (sans-IO): `<len>:<data>,` per D. J. Bernstein's netstrings.txt.
//!
//! Owns: [`NetstringDecoder`], [`encode_netstring`]; enforces [`NetstringLimits`].
//! Contract: the length is parsed digit by digit and checked against `max_len` as it grows,
//! so errors do not depend on how input is split; at most `max_len + 1` payload bytes plus
//! one read are buffered.
//! Does not: accept leading zeros, signs or whitespace (the spec forbids them).
//! Spec: netstrings.txt ("`[len]":"[string]","`", "leading zeros are prohibited").
//! Tests: `netstring/tests.rs`; fuzz target `fuzz/fuzz_targets/netstring.rs`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::basic::proto::Decoder;

/// Bounds on what a [`NetstringDecoder`] accepts.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct NetstringLimits {
    /// The longest payload accepted, in bytes. Default: 64 KiB.
    pub max_len: usize,
}

impl NetstringLimits {
    /// Limits with the given longest payload.
    #[must_use]
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }
}

impl Default for NetstringLimits {
    fn default() -> Self {
        Self { max_len: 64 * 1024 }
    }
}

/// Why netstring input is invalid. Display texts are unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NetstringError {
    /// The length has a leading zero (only `0` itself may start with one).
    #[error("netstring length has a leading zero")]
    LeadingZero,
    /// A byte other than a digit or `:` in the length.
    #[error("invalid byte {byte:#04x} in netstring length")]
    InvalidLengthByte {
        /// The offending byte.
        byte: u8,
    },
    /// `:` with no digits before it.
    #[error("netstring length is empty")]
    EmptyLength,
    /// The declared length is over the limit (`len` is the value when it first passed it).
    #[error("netstring length {len} over the {limit}-byte limit")]
    TooLong {
        /// The declared length, as far as it was read.
        len: u64,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The payload is not followed by `,`.
    #[error("netstring payload followed by {found:#04x}, not ','")]
    MissingComma {
        /// The byte found instead.
        found: u8,
    },
}

#[derive(Debug)]
enum State {
    /// Reading the length; `digits` counts the digits read, `value` their value.
    Len {
        value: u64,
        digits: usize,
    },
    /// Reading `len` payload bytes and the comma.
    Body {
        len: usize,
    },
    Failed(NetstringError),
}

/// Decodes a stream of netstrings into payloads.
///
/// Call order: [`NetstringDecoder::handle_input`], then [`NetstringDecoder::poll_event`]
/// until `Ok(None)`.
///
/// # Examples
/// ```
/// use ringwork_protocols::basic::NetstringDecoder;
///
/// let mut d = NetstringDecoder::new();
/// d.handle_input(b"5:hello,0:,");
/// assert_eq!(d.poll_event(), Ok(Some("hello".into())));
/// assert_eq!(d.poll_event(), Ok(Some("".into())));
/// assert_eq!(d.poll_event(), Ok(None));
/// ```
#[derive(Debug)]
pub struct NetstringDecoder {
    buf: BytesMut,
    limits: NetstringLimits,
    state: State,
}

impl NetstringDecoder {
    /// A decoder with default limits.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(NetstringLimits::default())
    }

    /// A decoder with the given limits.
    #[must_use]
    pub fn with_limits(limits: NetstringLimits) -> Self {
        Self {
            buf: BytesMut::new(),
            limits,
            state: State::Len {
                value: 0,
                digits: 0,
            },
        }
    }

    /// Buffers `data`. After an error, input is discarded.
    pub fn handle_input(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next payload, or `Ok(None)` when more input is needed.
    ///
    /// # Errors
    /// A [`NetstringError`] for malformed input; the decoder then drops its buffer and
    /// returns the same error for ever.
    #[must_use = "a payload may be ready"]
    pub fn poll_event(&mut self) -> Result<Option<Bytes>, NetstringError> {
        loop {
            match self.state {
                State::Failed(ref e) => return Err(e.clone()),
                State::Len { value, digits } => {
                    let Some(&b) = self.buf.first() else {
                        return Ok(None);
                    };
                    self.buf.advance(1);
                    self.state = match b {
                        b':' if digits == 0 => self.fail(NetstringError::EmptyLength),
                        b':' => match usize::try_from(value) {
                            Ok(len) => State::Body { len },
                            // Unreachable: `value <= max_len` was checked per digit.
                            Err(_) => self.fail(NetstringError::TooLong {
                                len: value,
                                limit: self.limits.max_len,
                            }),
                        },
                        // netstrings.txt: "leading zeros are prohibited".
                        b'0'..=b'9' if digits == 1 && value == 0 => {
                            self.fail(NetstringError::LeadingZero)
                        }
                        b'0'..=b'9' => {
                            // On overflow, `u64::MAX` stands for "more than any limit".
                            let value = value
                                .checked_mul(10)
                                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                                .unwrap_or(u64::MAX);
                            if value == u64::MAX || value > self.limits.max_len as u64 {
                                self.fail(NetstringError::TooLong {
                                    len: value,
                                    limit: self.limits.max_len,
                                })
                            } else {
                                State::Len {
                                    value,
                                    digits: digits + 1,
                                }
                            }
                        }
                        byte => self.fail(NetstringError::InvalidLengthByte { byte }),
                    };
                }
                State::Body { len } => {
                    if self.buf.len() <= len {
                        return Ok(None);
                    }
                    let found = self.buf[len];
                    if found != b',' {
                        self.state = self.fail(NetstringError::MissingComma { found });
                        continue;
                    }
                    let payload = self.buf.split_to(len).freeze();
                    self.buf.advance(1);
                    self.state = State::Len {
                        value: 0,
                        digits: 0,
                    };
                    return Ok(Some(payload));
                }
            }
        }
    }

    /// Bytes buffered and not yet delivered.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn fail(&mut self, e: NetstringError) -> State {
        self.buf = BytesMut::new();
        State::Failed(e)
    }
}

impl Default for NetstringDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for NetstringDecoder {
    type Event = Bytes;
    type Error = NetstringError;

    fn handle_input(&mut self, data: &[u8]) {
        NetstringDecoder::handle_input(self, data);
    }

    fn poll_event(&mut self) -> Result<Option<Bytes>, NetstringError> {
        NetstringDecoder::poll_event(self)
    }

    fn buffered(&self) -> usize {
        NetstringDecoder::buffered(self)
    }
}

/// Appends `payload` as a netstring to `out`.
pub fn encode_netstring(payload: &[u8], out: &mut BytesMut) {
    let len = payload.len().to_string();
    out.reserve(len.len() + payload.len() + 2);
    out.put_slice(len.as_bytes());
    out.put_u8(b':');
    out.put_slice(payload);
    out.put_u8(b',');
}

#[cfg(test)]
mod tests;
