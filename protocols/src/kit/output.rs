//! [`Output`]: a machine's bytes to send, batched for the transport.
//!
//! Owns: the order of outgoing bytes, the copy-or-share decision per write, and the count of
//! bytes waiting.
//! Contract: small writes are copied into one growing buffer, so many small frames (a
//! pipelined burst of responses) leave as one transmit; a write of at least
//! [`Output::SHARE_AT`] bytes is passed on as the caller's [`Bytes`], without a copy. Order is
//! kept across both kinds. [`Output::poll`] hands out what is ready, oldest first.
//! Does not: bound itself (the machine decides when to stop producing; see
//! [`Machine::wants_input`](super::Machine::wants_input)).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Outgoing bytes of one connection, in order.
#[derive(Debug, Default)]
pub struct Output {
    /// Whole buffers ready to go, oldest first.
    ready: VecDeque<Bytes>,
    /// Small writes since the last whole buffer, copied together.
    small: BytesMut,
    /// Bytes in `ready` and `small`.
    len: usize,
}

impl Output {
    /// Writes of at least this many bytes are shared, not copied.
    pub const SHARE_AT: usize = 4096;

    /// An empty output.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a copy of `data`.
    pub fn write(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.small.extend_from_slice(data);
        self.len += data.len();
    }

    /// Appends `data`: shared when large, copied when small.
    pub fn write_bytes(&mut self, data: Bytes) {
        if data.len() < Self::SHARE_AT {
            self.write(&data);
            return;
        }
        self.seal();
        self.len += data.len();
        self.ready.push_back(data);
    }

    /// The copy buffer, to encode into directly (count what you add with
    /// [`Output::wrote`]).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.small
    }

    /// `n` bytes were encoded into [`Output::buffer`].
    pub fn wrote(&mut self, n: usize) {
        self.len += n;
    }

    /// The next buffer to send, oldest first.
    #[must_use]
    pub fn poll(&mut self) -> Option<Bytes> {
        let next = match self.ready.pop_front() {
            Some(bytes) => bytes,
            None if !self.small.is_empty() => self.small.split().freeze(),
            None => return None,
        };
        self.len -= next.len();
        Some(next)
    }

    /// Bytes waiting to be polled.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything waiting (the connection is being reset).
    pub fn clear(&mut self) {
        self.ready.clear();
        self.small.clear();
        self.len = 0;
    }

    /// Moves the copied bytes behind the whole buffers, keeping order before a shared write.
    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.ready.push_back(self.small.split().freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut Output) -> Vec<Bytes> {
        std::iter::from_fn(|| out.poll()).collect()
    }

    #[test]
    fn small_writes_leave_as_one_buffer() {
        let mut out = Output::new();
        out.write(b"ab");
        out.write_bytes(Bytes::from_static(b"cd"));
        out.buffer().extend_from_slice(b"ef");
        out.wrote(2);
        assert_eq!(out.len(), 6);
        assert_eq!(drain(&mut out), vec![Bytes::from_static(b"abcdef")]);
        assert!(out.is_empty());
    }

    #[test]
    fn large_writes_are_shared_and_keep_their_place() {
        let big = Bytes::from(vec![7u8; Output::SHARE_AT]);
        let mut out = Output::new();
        out.write(b"head");
        out.write_bytes(big.clone());
        out.write(b"tail");
        let all = drain(&mut out);
        assert_eq!(all.len(), 3);
        assert_eq!(&all[0][..], b"head");
        assert_eq!(all[1].as_ptr(), big.as_ptr(), "shared, not copied");
        assert_eq!(&all[2][..], b"tail");
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn clear_drops_everything() {
        let mut out = Output::new();
        out.write(b"x");
        out.write_bytes(Bytes::from(vec![0u8; Output::SHARE_AT]));
        out.clear();
        assert!(out.poll().is_none());
        assert!(out.is_empty());
    }
}
