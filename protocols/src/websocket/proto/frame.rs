//! WebSocket frame heads, masking and the frame encoder (sans-IO).
//!
//! Owns: [`FrameHead`] (what the first 2..=14 bytes of a frame say), [`parse_head`] (the
//! [`Status`] convention: a head, or "need more bytes"), [`encode_head`], the opcodes and
//! masking ([`apply_mask`], [`extend_masked`]).
//! Contract: `parse_head` checks only what the head alone can tell (reserved opcodes, the
//! 64-bit length's top bit, control-frame rules); the connection checks the rest (masking
//! by role, RSV bits against extensions, fragmentation, sizes). Masking is the XOR of
//! RFC 6455 §5.3, continued across calls through an offset into the key.
//! Does not: hold payload bytes (the connection copies them once, unmasking as it copies).
//! Spec: RFC 6455 §5.2 (base framing), §5.3 (masking), §5.5 (control frames).

use bytes::BufMut;

use crate::kit::{Parsed, Status};

/// A frame's opcode (RFC 6455 §5.2; §11.8 registers the values).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum OpCode {
    /// A continuation of a fragmented message.
    Continuation,
    /// The first frame of a text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// The close frame.
    Close,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
}

impl OpCode {
    /// The opcode of the 4-bit value, `None` for the reserved ones (3-7, 11-15).
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            2 => OpCode::Binary,
            8 => OpCode::Close,
            9 => OpCode::Ping,
            10 => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit value.
    #[must_use]
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0,
            OpCode::Text => 1,
            OpCode::Binary => 2,
            OpCode::Close => 8,
            OpCode::Ping => 9,
            OpCode::Pong => 10,
        }
    }

    /// Whether this is a control frame (close, ping, pong).
    #[must_use]
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The head of one frame.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FrameHead {
    /// The final fragment of its message.
    pub fin: bool,
    /// RSV1 (permessage-deflate: the message is compressed).
    pub rsv1: bool,
    /// RSV2 (no extension here uses it).
    pub rsv2: bool,
    /// RSV3 (no extension here uses it).
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the payload is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub len: u64,
}

/// A head that breaks RFC 6455 §5.2 or §5.5 on its own.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// An opcode reserved for future use (§5.2: 3-7, 0xB-0xF).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A 64-bit length with its most significant bit set (§5.2).
    #[error("payload length with the most significant bit set")]
    LengthTooLong,
    /// A fragmented control frame (§5.5).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (§5.5).
    #[error("control frame payload of {0} bytes (at most 125)")]
    ControlTooLong(u64),
}

/// Largest frame head: 2 bytes, an 8-byte length, a 4-byte key.
pub const MAX_HEAD: usize = 14;

/// Parses the frame head at the start of `buf`.
///
/// # Errors
/// A [`HeadError`] for a head no frame may have; the connection fails with 1002.
pub fn parse_head(buf: &[u8]) -> Result<Status<Parsed<FrameHead>>, HeadError> {
    let [b0, b1, ..] = *buf else {
        return Ok(Status::Partial);
    };
    let opcode = OpCode::from_bits(b0 & 0x0f).ok_or(HeadError::ReservedOpcode(b0 & 0x0f))?;
    let fin = b0 & 0x80 != 0;
    let masked = b1 & 0x80 != 0;
    let short = b1 & 0x7f;
    if opcode.is_control() {
        // RFC 6455 §5.5: all control frames MUST have a payload length of 125 bytes or
        // less and MUST NOT be fragmented.
        if !fin {
            return Err(HeadError::FragmentedControl);
        }
        if short > 125 {
            return Err(HeadError::ControlTooLong(u64::from(short)));
        }
    }
    let len_bytes = match short {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let need = 2 + len_bytes + if masked { 4 } else { 0 };
    if buf.len() < need {
        return Ok(Status::Partial);
    }
    let len = match len_bytes {
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(raw);
            // RFC 6455 §5.2: the most significant bit MUST be 0.
            if len >> 63 != 0 {
                return Err(HeadError::LengthTooLong);
            }
            len
        }
        _ => u64::from(short),
    };
    let mask = masked.then(|| {
        let at = 2 + len_bytes;
        [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
    });
    Ok(Status::Complete(Parsed {
        value: FrameHead {
            fin,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode,
            mask,
            len,
        },
        consumed: need,
    }))
}

/// How many bytes the head of a frame needs, from its first two (the smallest answer is 2).
#[must_use]
pub fn head_len(first_two: [u8; 2]) -> usize {
    let len_bytes = match first_two[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + len_bytes + if first_two[1] & 0x80 != 0 { 4 } else { 0 }
}

/// Writes the head of a frame (using the shortest length form, §5.2), in one `put_slice`
/// (built on the stack: a `put_u8` per byte checks the buffer's room each time).
pub fn encode_head(out: &mut impl BufMut, head: &FrameHead) {
    let mut buf = [0u8; MAX_HEAD];
    let mut b0 = head.opcode.bits();
    for (set, bit) in [
        (head.fin, 0x80),
        (head.rsv1, 0x40),
        (head.rsv2, 0x20),
        (head.rsv3, 0x10),
    ] {
        if set {
            b0 |= bit;
        }
    }
    buf[0] = b0;
    let mask_bit = if head.mask.is_some() { 0x80 } else { 0 };
    let mut n = 2;
    if head.len < 126 {
        buf[1] = mask_bit | head.len as u8;
    } else if let Ok(len) = u16::try_from(head.len) {
        buf[1] = mask_bit | 126;
        buf[2..4].copy_from_slice(&len.to_be_bytes());
        n = 4;
    } else {
        buf[1] = mask_bit | 127;
        buf[2..10].copy_from_slice(&head.len.to_be_bytes());
        n = 10;
    }
    if let Some(key) = head.mask {
        buf[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    out.put_slice(&buf[..n]);
}

/// XORs `data` with `key`, starting `offset` bytes into the key (RFC 6455 §5.3): 32 bytes
/// at a time as four 64-bit words (which the compiler turns into vector XORs), then 8, then
/// byte by byte.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut blocks = data.chunks_exact_mut(32);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
    }
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // 32 and 8 are multiples of 4: the key's phase is where it started.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// Appends `src` to `dst`, masked with `key` from `offset` (one pass: the copy the
/// connection makes anyway out of the read buffer is where it unmasks).
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: Option<[u8; 4]>, offset: usize) {
    let start = dst.len();
    dst.extend_from_slice(src);
    if let Some(key) = key {
        apply_mask(&mut dst[start..], key, offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<Status<Parsed<FrameHead>>, HeadError> {
        parse_head(bytes)
    }

    #[test]
    fn rfc_examples_parse() {
        // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
        let Status::Complete(parsed) = head(&[0x81, 0x05]).unwrap() else {
            panic!("complete")
        };
        assert_eq!(parsed.consumed, 2);
        assert_eq!(parsed.value.opcode, OpCode::Text);
        assert!(parsed.value.fin);
        assert_eq!(parsed.value.len, 5);
        // A single-frame masked text message "Hello".
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let Status::Complete(parsed) = head(&frame).unwrap() else {
            panic!("complete")
        };
        assert_eq!(parsed.consumed, 6);
        let mut payload = frame[6..].to_vec();
        apply_mask(&mut payload, parsed.value.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");
        // 256 bytes binary message in a single unmasked frame: 16-bit length.
        let Status::Complete(parsed) = head(&[0x82, 0x7E, 0x01, 0x00]).unwrap() else {
            panic!("complete")
        };
        assert_eq!(parsed.value.len, 256);
        // 64 KiB: 64-bit length.
        let Status::Complete(parsed) = head(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap() else {
            panic!("complete")
        };
        assert_eq!(parsed.value.len, 65536);
        assert_eq!(parsed.consumed, 10);
    }

    #[test]
    fn every_prefix_is_partial() {
        let frame = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..frame.len() {
            assert!(head(&frame[..cut]).unwrap().is_partial(), "cut {cut}");
        }
        let Status::Complete(parsed) = head(&frame).unwrap() else {
            panic!("complete")
        };
        assert_eq!(parsed.consumed, MAX_HEAD);
        assert_eq!(head_len([frame[0], frame[1]]), MAX_HEAD);
    }

    #[test]
    fn bad_heads() {
        for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            assert_eq!(head(&[0x80 | op, 0]), Err(HeadError::ReservedOpcode(op)));
        }
        assert_eq!(head(&[0x09, 0]), Err(HeadError::FragmentedControl));
        assert_eq!(head(&[0x89, 126]), Err(HeadError::ControlTooLong(126)));
        assert_eq!(
            head(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(HeadError::LengthTooLong)
        );
    }

    #[test]
    fn encode_parse_round_trip() {
        for len in [0u64, 1, 125, 126, 65_535, 65_536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let value = FrameHead {
                    fin: len % 2 == 0,
                    rsv1: true,
                    rsv2: false,
                    rsv3: false,
                    opcode: OpCode::Binary,
                    mask,
                    len,
                };
                let mut out = Vec::new();
                encode_head(&mut out, &value);
                let Status::Complete(parsed) = head(&out).unwrap() else {
                    panic!("complete")
                };
                assert_eq!(parsed.value, value);
                assert_eq!(parsed.consumed, out.len());
            }
        }
    }

    #[test]
    fn masking_continues_across_pieces() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..data.len() {
            let mut out = Vec::new();
            extend_masked(&mut out, &data[..cut], Some(key), 0);
            extend_masked(&mut out, &data[cut..], Some(key), cut);
            assert_eq!(out, whole, "cut {cut}");
        }
    }

    /// The word and block paths agree with RFC 6455 §5.3's byte rule (`j = i MOD 4`) for
    /// every length around the 8- and 32-byte steps and every starting offset.
    #[test]
    fn masking_matches_the_byte_rule() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..=100 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            for offset in 0..8 {
                let mut fast = data.clone();
                apply_mask(&mut fast, key, offset);
                let slow: Vec<u8> = data
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[(i + offset) % 4])
                    .collect();
                assert_eq!(fast, slow, "len {len}, offset {offset}");
            }
        }
    }

    #[test]
    fn heads_are_byte_exact() {
        let mut out = Vec::new();
        let head = |len, mask| FrameHead {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Binary,
            mask,
            len,
        };
        encode_head(&mut out, &head(128, None));
        assert_eq!(out, [0x82, 126, 0, 128]);
        out.clear();
        encode_head(&mut out, &head(5, Some([1, 2, 3, 4])));
        assert_eq!(out, [0x82, 0x85, 1, 2, 3, 4]);
        out.clear();
        encode_head(&mut out, &head(1 << 40, Some([9, 8, 7, 6])));
        assert_eq!(out, [0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 9, 8, 7, 6]);
    }
}
