//! The SSH wire encoding (RFC 4251 §5): a reader over a payload and a writer into one,
//! and the message numbers this implementation uses.
//!
//! Every read is bounds-checked and answers [`WireError`] on short or malformed input;
//! nothing here panics on peer bytes.

/// Message numbers (RFC 4250 §4.1, RFC 8308).
#[allow(missing_docs)]
pub mod msg {
    pub const DISCONNECT: u8 = 1;
    pub const IGNORE: u8 = 2;
    pub const UNIMPLEMENTED: u8 = 3;
    pub const DEBUG: u8 = 4;
    pub const SERVICE_REQUEST: u8 = 5;
    pub const SERVICE_ACCEPT: u8 = 6;
    pub const EXT_INFO: u8 = 7;
    pub const KEXINIT: u8 = 20;
    pub const NEWKEYS: u8 = 21;
    pub const KEX_ECDH_INIT: u8 = 30;
    pub const KEX_ECDH_REPLY: u8 = 31;
    pub const USERAUTH_REQUEST: u8 = 50;
    pub const USERAUTH_FAILURE: u8 = 51;
    pub const USERAUTH_SUCCESS: u8 = 52;
    pub const USERAUTH_BANNER: u8 = 53;
    pub const USERAUTH_PK_OK: u8 = 60;
    pub const GLOBAL_REQUEST: u8 = 80;
    pub const REQUEST_SUCCESS: u8 = 81;
    pub const REQUEST_FAILURE: u8 = 82;
    pub const CHANNEL_OPEN: u8 = 90;
    pub const CHANNEL_OPEN_CONFIRMATION: u8 = 91;
    pub const CHANNEL_OPEN_FAILURE: u8 = 92;
    pub const CHANNEL_WINDOW_ADJUST: u8 = 93;
    pub const CHANNEL_DATA: u8 = 94;
    pub const CHANNEL_EXTENDED_DATA: u8 = 95;
    pub const CHANNEL_EOF: u8 = 96;
    pub const CHANNEL_CLOSE: u8 = 97;
    pub const CHANNEL_REQUEST: u8 = 98;
    pub const CHANNEL_SUCCESS: u8 = 99;
    pub const CHANNEL_FAILURE: u8 = 100;
}

/// Disconnect reason codes (RFC 4250 §4.2.2) that this implementation sends.
#[allow(missing_docs)]
pub mod reason {
    pub const PROTOCOL_ERROR: u32 = 2;
    pub const KEY_EXCHANGE_FAILED: u32 = 3;
    pub const MAC_ERROR: u32 = 5;
    pub const SERVICE_NOT_AVAILABLE: u32 = 7;
    pub const HOST_KEY_NOT_VERIFIABLE: u32 = 9;
    pub const BY_APPLICATION: u32 = 11;
    pub const TOO_MANY_CONNECTIONS: u32 = 12;
    pub const AUTH_CANCELLED_BY_USER: u32 = 13;
    pub const NO_MORE_AUTH_METHODS_AVAILABLE: u32 = 14;
}

/// A payload that ended early or held a malformed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed SSH message")]
pub struct WireError;

/// Reads SSH fields from a payload, front to back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The bytes not read yet.
    #[must_use]
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// Whether every byte was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// `n` raw bytes.
    ///
    /// # Errors
    /// [`WireError`] when fewer remain.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.data.len() < n {
            return Err(WireError);
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    /// One byte.
    ///
    /// # Errors
    /// [`WireError`] at the end.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    /// A boolean (any non-zero byte is true).
    ///
    /// # Errors
    /// [`WireError`] at the end.
    pub fn bool(&mut self) -> Result<bool, WireError> {
        Ok(self.u8()? != 0)
    }

    /// A big-endian `uint32`.
    ///
    /// # Errors
    /// [`WireError`] when fewer than 4 bytes remain.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `string` (length-prefixed bytes).
    ///
    /// # Errors
    /// [`WireError`] when the length runs past the end.
    pub fn string(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        self.bytes(len)
    }

    /// A `string` that must be UTF-8.
    ///
    /// # Errors
    /// [`WireError`] when short or not UTF-8.
    pub fn utf8(&mut self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.string()?).map_err(|_| WireError)
    }

    /// A `name-list` (comma-separated ASCII names).
    ///
    /// # Errors
    /// [`WireError`] when short or not ASCII.
    pub fn name_list(&mut self) -> Result<Vec<&'a str>, WireError> {
        let text = self.utf8()?;
        if !text.is_ascii() {
            return Err(WireError);
        }
        Ok(if text.is_empty() {
            Vec::new()
        } else {
            text.split(',').collect()
        })
    }

    /// An `mpint`'s magnitude, leading zero bytes removed (negative values refused).
    ///
    /// # Errors
    /// [`WireError`] when short or negative.
    pub fn mpint_unsigned(&mut self) -> Result<&'a [u8], WireError> {
        let mut v = self.string()?;
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(WireError);
        }
        while let [0, rest @ ..] = v {
            v = rest;
        }
        Ok(v)
    }
}

/// Writes SSH fields into a growing buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer whose first byte is message number `msg`.
    #[must_use]
    pub fn message(msg: u8) -> Self {
        let mut w = Self::new();
        w.u8(msg);
        w
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A big-endian `uint32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Raw bytes.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// A `string`. Lengths over 4 GiB cannot occur: every payload is bounded far below.
    pub fn string(&mut self, v: impl AsRef<[u8]>) -> &mut Self {
        let v = v.as_ref();
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.raw(v)
    }

    /// A `name-list`.
    pub fn name_list(&mut self, names: &[&str]) -> &mut Self {
        self.string(names.join(","))
    }

    /// An unsigned big-endian magnitude as an `mpint` (leading zeros dropped, a zero byte
    /// added when the top bit is set).
    pub fn mpint(&mut self, v: &[u8]) -> &mut Self {
        let mut v = v;
        while let [0, rest @ ..] = v {
            v = rest;
        }
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            self.u32(u32::try_from(v.len() + 1).unwrap_or(u32::MAX));
            self.u8(0);
            self.raw(v)
        } else {
            self.string(v)
        }
    }

    /// The bytes written.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_input_is_an_error() {
        let mut w = Writer::message(msg::KEXINIT);
        w.u32(7)
            .string("abc")
            .name_list(&["a", "b"])
            .mpint(&[0, 0x80, 1])
            .bool(true);
        let data = w.finish();
        let mut r = Reader::new(&data);
        assert_eq!(r.u8(), Ok(msg::KEXINIT));
        assert_eq!(r.u32(), Ok(7));
        assert_eq!(r.string(), Ok(&b"abc"[..]));
        assert_eq!(r.name_list(), Ok(vec!["a", "b"]));
        assert_eq!(r.mpint_unsigned(), Ok(&[0x80, 1][..]));
        assert_eq!(r.bool(), Ok(true));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(WireError));
        let mut r = Reader::new(&[0, 0, 0, 9, 1]);
        assert_eq!(r.string(), Err(WireError));
    }
}
