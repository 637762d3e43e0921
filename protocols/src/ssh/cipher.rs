//! The binary packet protocol (RFC 4253 §6): framing, padding and the two AEAD ciphers
//! (`chacha20-poly1305@openssh.com` and `aes256-gcm@openssh.com`, both `ring`'s), with
//! the per-direction sequence number.
//!
//! [`Opener::open`] takes whole packets from the front of a buffer: `Ok(None)` means
//! "need more bytes", an error is fatal for the connection (a bad length, a failed tag).

use bytes::{Buf, BytesMut};
use rand::RngCore;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, chacha20_poly1305_openssh as chapoly};

/// The largest packet accepted (length field value): OpenSSH's 256 KiB.
pub const MAX_PACKET: usize = 256 * 1024;

/// Cipher names in order of preference.
pub const CIPHERS: &[&str] = &["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"];

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The length field is out of bounds or not a multiple of the block size.
    #[error("bad packet length")]
    Length,
    /// Authentication failed (a corrupted or forged packet).
    #[error("packet authentication failed")]
    Mac,
    /// The padding length is out of bounds.
    #[error("bad padding")]
    Padding,
}

/// The cipher of one direction.
// The ChaCha keys are large but there are two per connection: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Default)]
pub(crate) enum CipherKeys {
    /// Before the first key exchange.
    #[default]
    None,
    /// `chacha20-poly1305@openssh.com` (64-byte key).
    ChaCha {
        seal: Option<chapoly::SealingKey>,
        open: Option<chapoly::OpeningKey>,
    },
    /// `aes256-gcm@openssh.com`: key and the 12-byte nonce (4 fixed, 8 counting).
    AesGcm { key: LessSafeKey, nonce: [u8; 12] },
}

impl CipherKeys {
    /// Keys for `name` from the derived key material (`key` long enough for it, `iv` 12
    /// bytes for GCM); `None` for an unknown name.
    pub(crate) fn new(name: &str, key: &[u8], iv: &[u8], sealing: bool) -> Option<Self> {
        match name {
            "chacha20-poly1305@openssh.com" => {
                let material: &[u8; 64] = key.get(..64)?.try_into().ok()?;
                Some(if sealing {
                    CipherKeys::ChaCha {
                        seal: Some(chapoly::SealingKey::new(material)),
                        open: None,
                    }
                } else {
                    CipherKeys::ChaCha {
                        seal: None,
                        open: Some(chapoly::OpeningKey::new(material)),
                    }
                })
            }
            "aes256-gcm@openssh.com" => {
                let unbound = UnboundKey::new(&aead::AES_256_GCM, key.get(..32)?).ok()?;
                let nonce: [u8; 12] = iv.get(..12)?.try_into().ok()?;
                Some(CipherKeys::AesGcm {
                    key: LessSafeKey::new(unbound),
                    nonce,
                })
            }
            _ => None,
        }
    }

    /// Key bytes and IV bytes the cipher needs from the key derivation.
    pub(crate) fn sizes(name: &str) -> (usize, usize) {
        match name {
            "chacha20-poly1305@openssh.com" => (64, 0),
            _ => (32, 12),
        }
    }

    fn block(&self) -> usize {
        match self {
            CipherKeys::AesGcm { .. } => 16,
            _ => 8,
        }
    }

    fn tag_len(&self) -> usize {
        match self {
            CipherKeys::None => 0,
            _ => 16,
        }
    }
}

fn next_nonce(nonce: &mut [u8; 12]) -> Nonce {
    let current = Nonce::assume_unique_for_key(*nonce);
    let mut counter = u64::from_be_bytes(nonce[4..].try_into().unwrap_or([0; 8]));
    counter = counter.wrapping_add(1);
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    current
}

/// Seals outgoing packets (one direction's cipher and sequence number).
pub struct Sealer {
    pub(crate) keys: CipherKeys,
    pub(crate) seq: u32,
    rng: rand::rngs::StdRng,
}

impl Sealer {
    /// A sealer without a cipher (the first key exchange's packets).
    #[must_use]
    pub fn new() -> Self {
        use rand::SeedableRng;
        Self {
            keys: CipherKeys::None,
            seq: 0,
            rng: rand::rngs::StdRng::from_os_rng(),
        }
    }

    /// A sealer for cipher `name` with this key material (`None`: unknown name or short key).
    #[must_use]
    pub fn with_cipher(name: &str, key: &[u8], iv: &[u8]) -> Option<Self> {
        let mut sealer = Self::new();
        sealer.keys = CipherKeys::new(name, key, iv, true)?;
        Some(sealer)
    }

    /// Appends the packet for `payload` to `out`; returns its length on the wire.
    pub fn seal(&mut self, payload: &[u8], out: &mut BytesMut) -> usize {
        let block = self.keys.block();
        let aead = !matches!(self.keys, CipherKeys::None);
        // AEAD ciphers align what follows the length field; "none" aligns the whole packet.
        let counted = if aead {
            1 + payload.len()
        } else {
            4 + 1 + payload.len()
        };
        let mut padding = block - counted % block;
        if padding < 4 {
            padding += block;
        }
        let packet_len = 1 + payload.len() + padding;
        let start = out.len();
        out.reserve(4 + packet_len + 16);
        out.extend_from_slice(&u32::try_from(packet_len).unwrap_or(u32::MAX).to_be_bytes());
        // `padding` < 2 * block <= 32 fits a byte.
        out.extend_from_slice(&[padding as u8]);
        out.extend_from_slice(payload);
        let mut pad = [0u8; 32];
        self.rng.fill_bytes(&mut pad[..padding]);
        out.extend_from_slice(&pad[..padding]);
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        match &mut self.keys {
            CipherKeys::None => {}
            CipherKeys::ChaCha { seal, .. } => {
                let mut tag = [0u8; 16];
                if let Some(seal) = seal {
                    seal.seal_in_place(seq, &mut out[start..], &mut tag);
                }
                out.extend_from_slice(&tag);
            }
            CipherKeys::AesGcm { key, nonce } => {
                let nonce = next_nonce(nonce);
                let (len, body) = out[start..].split_at_mut(4);
                let aad: [u8; 4] = [len[0], len[1], len[2], len[3]];
                // Sealing fails only for inputs over GCM's 64 GiB limit.
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(aad), body)
                    .map(|t| t.as_ref().to_vec())
                    .unwrap_or_default();
                out.extend_from_slice(&tag);
            }
        }
        out.len() - start
    }
}

impl Default for Sealer {
    fn default() -> Self {
        Self::new()
    }
}

/// Opens incoming packets (one direction's cipher and sequence number).
#[derive(Default)]
pub struct Opener {
    pub(crate) keys: CipherKeys,
    pub(crate) seq: u32,
}

impl Opener {
    /// An opener without a cipher (the first key exchange's packets).
    #[must_use]
    pub fn new() -> Self {
        Self {
            keys: CipherKeys::None,
            seq: 0,
        }
    }

    /// An opener for cipher `name` with this key material (`None`: unknown name or short
    /// key).
    #[must_use]
    pub fn with_cipher(name: &str, key: &[u8], iv: &[u8]) -> Option<Self> {
        Some(Self {
            keys: CipherKeys::new(name, key, iv, false)?,
            seq: 0,
        })
    }

    /// Takes one packet from the front of `buf`: its payload, and its length on the wire.
    ///
    /// # Errors
    /// [`PacketError`]: the connection must end.
    pub fn open(&mut self, buf: &mut BytesMut) -> Result<Option<(Vec<u8>, usize)>, PacketError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len_bytes: [u8; 4] = [buf[0], buf[1], buf[2], buf[3]];
        let len = match &self.keys {
            CipherKeys::ChaCha {
                open: Some(open), ..
            } => u32::from_be_bytes(open.decrypt_packet_length(self.seq, len_bytes)),
            _ => u32::from_be_bytes(len_bytes),
        } as usize;
        let block = self.keys.block();
        let aligned = match self.keys {
            CipherKeys::None => (len + 4).is_multiple_of(block),
            _ => len.is_multiple_of(block),
        };
        if !(5..=MAX_PACKET).contains(&len) || !aligned {
            return Err(PacketError::Length);
        }
        let tag_len = self.keys.tag_len();
        let total = 4 + len + tag_len;
        if buf.len() < total {
            return Ok(None);
        }
        let seq = self.seq;
        let plain: &[u8] = match &mut self.keys {
            CipherKeys::None => &buf[4..4 + len],
            CipherKeys::ChaCha { open, .. } => {
                let open = open.as_ref().ok_or(PacketError::Mac)?;
                let (packet, tag) = buf[..total].split_at_mut(4 + len);
                let tag: &[u8; 16] = (&*tag).try_into().map_err(|_| PacketError::Mac)?;
                open.open_in_place(seq, packet, tag)
                    .map_err(|_| PacketError::Mac)?
            }
            CipherKeys::AesGcm { key, nonce } => {
                let nonce = next_nonce(nonce);
                let (len_field, body) = buf[..total].split_at_mut(4);
                let aad: [u8; 4] = [len_field[0], len_field[1], len_field[2], len_field[3]];
                &*key
                    .open_in_place(nonce, Aad::from(aad), body)
                    .map_err(|_| PacketError::Mac)?
            }
        };
        let padding = plain[0] as usize;
        if padding < 4 || padding + 1 > plain.len() {
            return Err(PacketError::Padding);
        }
        let payload = plain[1..plain.len() - padding].to_vec();
        self.seq = self.seq.wrapping_add(1);
        buf.advance(total);
        Ok(Some((payload, total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(name: Option<&str>) {
        let key = [7u8; 64];
        let iv = [9u8; 12];
        let mut sealer = Sealer::new();
        let mut opener = Opener::new();
        if let Some(name) = name {
            sealer.keys = CipherKeys::new(name, &key, &iv, true).unwrap();
            opener.keys = CipherKeys::new(name, &key, &iv, false).unwrap();
        }
        let mut wire = BytesMut::new();
        for n in [0usize, 1, 15, 16, 17, 1000] {
            sealer.seal(&vec![n as u8; n], &mut wire);
        }
        // Byte by byte: "need more" until each packet is whole.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some((payload, _)) = opener.open(&mut buf).unwrap() {
                got.push(payload.len());
            }
        }
        assert_eq!(got, vec![0, 1, 15, 16, 17, 1000]);
        // A flipped bit fails authentication (or framing without a cipher).
        let mut wire = BytesMut::new();
        sealer.seal(b"hello", &mut wire);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let result = opener.open(&mut wire);
        if name.is_some() {
            assert_eq!(result, Err(PacketError::Mac));
        }
    }

    #[test]
    fn packets_round_trip_under_each_cipher() {
        round_trip(None);
        for name in CIPHERS {
            round_trip(Some(name));
        }
    }
}
