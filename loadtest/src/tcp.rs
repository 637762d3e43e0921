//! The `tcp` workload: echo / ping-pong messages of a fixed size.

use bytes::{Bytes, BytesMut};

use crate::session::{Progress, ResponseError, Session};

/// A deterministic message of `size` bytes (so an echo can be checked byte by byte).
#[must_use]
pub fn message(size: usize) -> Bytes {
    (0..size)
        .map(|i| (i.wrapping_mul(31).wrapping_add(7) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Sends `message`, expects it back; every `message.len()` echoed bytes is one response.
#[derive(Clone, Debug)]
pub struct EchoSession {
    message: Bytes,
    verify: bool,
    /// Bytes of the current response received so far.
    at: usize,
}

impl EchoSession {
    /// A session sending `message` (at least one byte); `verify` compares every echoed byte.
    #[must_use]
    pub fn new(message: Bytes, verify: bool) -> Self {
        Self {
            message,
            verify,
            at: 0,
        }
    }
}

impl Session for EchoSession {
    fn write_request(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.message);
    }

    fn shared_request(&mut self) -> Option<Bytes> {
        Some(self.message.clone())
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<Progress, ResponseError> {
        let size = self.message.len().max(1);
        let mut completed = 0u32;
        let mut rest = data;
        while !rest.is_empty() {
            let n = (size - self.at).min(rest.len());
            if self.verify {
                let expected = &self.message[self.at..self.at + n];
                if let Some(i) = expected.iter().zip(&rest[..n]).position(|(a, b)| a != b) {
                    return Err(ResponseError::Mismatch {
                        offset: self.at + i,
                    });
                }
            }
            self.at += n;
            rest = &rest[n..];
            if self.at == size {
                self.at = 0;
                completed += 1;
            }
        }
        Ok(Progress {
            consumed: data.len(),
            completed,
            ..Progress::default()
        })
    }
}
