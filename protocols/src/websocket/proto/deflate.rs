//! permessage-deflate (RFC 7692): negotiation and the bounded compressor and decompressor.
//!
//! Owns: [`DeflateConfig`] (what this side offers or accepts), [`DeflateParams`] (what was
//! agreed), the parameter rules of §7.1 for both roles ([`DeflateConfig::accept_offer`] on a
//! server, [`DeflateConfig::offer`] and [`DeflateConfig::confirm`] on a client), and
//! [`Deflater`] / [`Inflater`], which wrap flate2 (its pure-Rust zlib-rs backend, which,
//! unlike miniz_oxide, takes a window size).
//! Contract: inflation never grows its output past the caller's limit plus one byte: a
//! message that would is refused ([`InflateError::TooBig`], close code 1009) after at most
//! that much memory, however small its compressed form (a deflate bomb). Context takeover
//! follows the agreed parameters: a side that may not keep its context resets after every
//! message.
//! Does not: frame messages (the connection sets RSV1 and strips or adds the
//! `00 00 ff ff` tail).
//! Spec: RFC 7692 §7 (permessage-deflate), §7.2.1 (the tail), §7.1.1-§7.1.2 (parameters).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::handshake::{ExtensionOffer, HandshakeError};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";

/// The tail every compressed message loses on the wire (RFC 7692 §7.2.1).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What this side offers (a client) or accepts (a server) of permessage-deflate.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// The server's compressor starts afresh for every message (it keeps no context: less
    /// memory, worse ratio, and the same compressed bytes for the same message, which lets
    /// a broadcast compress once for all its subscribers).
    pub server_no_context_takeover: bool,
    /// The client's compressor starts afresh for every message.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window of the server's compressor, 9..=15 (`None`: 15). A server uses it
    /// for its own compressor; a client asks the server for it.
    pub server_max_window_bits: Option<u8>,
    /// Largest window of the client's compressor, 9..=15 (`None`: 15). A server asks the
    /// client for it (when the client allowed it); a client uses it.
    pub client_max_window_bits: Option<u8>,
    /// Compression level, 0..=9.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed (RFC 7692 lets each message choose).
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
            level: 6,
            min_size: 32,
        }
    }
}

/// What the two sides agreed on.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's window, 9..=15.
    pub server_max_window_bits: u8,
    /// The client's window, 9..=15.
    pub client_max_window_bits: u8,
}

/// The parameters of one offer or response, checked for RFC 7692 §7.1's syntax.
#[derive(Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (a client's "I can limit mine").
    client_max_window_bits: Option<Option<u8>>,
}

/// Parses the parameters of one offer or response; `None` when any is unknown, repeated or
/// has an invalid value (RFC 7692 §7.1: such an offer is declined, such a response fails
/// the connection).
fn parse_params(offer: &ExtensionOffer) -> Option<Parsed> {
    let mut parsed = Parsed::default();
    let mut seen = [false; 4];
    for (name, value) in &offer.params {
        let bits = |value: &Option<String>| -> Option<u8> {
            let value = value.as_deref()?;
            // §7.1.2: a decimal integer without leading zeros, 8..=15.
            if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            value.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
        };
        let index = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => {
                parsed.server_no_context_takeover = true;
                0
            }
            "client_no_context_takeover" if value.is_none() => {
                parsed.client_no_context_takeover = true;
                1
            }
            "server_max_window_bits" => {
                parsed.server_max_window_bits = Some(bits(value)?);
                2
            }
            "client_max_window_bits" => {
                parsed.client_max_window_bits = Some(match value {
                    None => None,
                    Some(_) => Some(bits(value)?),
                });
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
    }
    Some(parsed)
}

impl DeflateConfig {
    /// A server's answer to one `permessage-deflate` offer: the agreed parameters and the
    /// response's extension value, or `None` to decline this offer (a parameter it cannot
    /// honour: an invalid one, or a server window of 8, which zlib cannot produce).
    #[must_use]
    pub fn accept_offer(&self, offer: &ExtensionOffer) -> Option<(DeflateParams, String)> {
        let asked = parse_params(offer)?;
        let server_nct = asked.server_no_context_takeover || self.server_no_context_takeover;
        let client_nct = asked.client_no_context_takeover || self.client_no_context_takeover;
        let ours = self.server_max_window_bits.unwrap_or(15).clamp(9, 15);
        let server_bits = asked.server_max_window_bits.unwrap_or(15).min(ours);
        if server_bits < 9 {
            // RFC 7692 §7.1.2.1: the server must use a window no larger than asked; zlib's
            // smallest is 9 (512 bytes), so decline rather than break the promise.
            return None;
        }
        // §7.1.2.2: the server may limit the client's window only when the client said it
        // can (the parameter was in the offer).
        let client_bits = match asked.client_max_window_bits {
            None => None,
            Some(offered) => {
                let limit = offered
                    .unwrap_or(15)
                    .min(self.client_max_window_bits.unwrap_or(15));
                (limit < 15 || offered.is_some()).then_some(limit.max(8))
            }
        };
        let mut response = String::from(NAME);
        if server_nct {
            response.push_str("; server_no_context_takeover");
        }
        if client_nct {
            response.push_str("; client_no_context_takeover");
        }
        if server_bits < 15 || asked.server_max_window_bits.is_some() {
            response.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if let Some(bits) = client_bits {
            response.push_str(&format!("; client_max_window_bits={bits}"));
        }
        Some((
            DeflateParams {
                server_no_context_takeover: server_nct,
                client_no_context_takeover: client_nct,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits.unwrap_or(15),
            },
            response,
        ))
    }

    /// A client's offer: the `Sec-WebSocket-Extensions` value.
    #[must_use]
    pub fn offer(&self) -> String {
        let mut offer = String::from(NAME);
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            offer.push_str(&format!("; server_max_window_bits={}", bits.clamp(9, 15)));
        }
        // Always: the server may limit our window (we can honour 9..=15).
        match self.client_max_window_bits {
            Some(bits) => {
                offer.push_str(&format!("; client_max_window_bits={}", bits.clamp(9, 15)))
            }
            None => offer.push_str("; client_max_window_bits"),
        }
        offer
    }

    /// A client's check of the server's response to [`DeflateConfig::offer`].
    ///
    /// # Errors
    /// [`HandshakeError::BadExtension`] when the response breaks RFC 7692 §7.1 or does not
    /// honour what the offer asked.
    pub fn confirm(&self, response: &ExtensionOffer) -> Result<DeflateParams, HandshakeError> {
        let bad = |what: &'static str| HandshakeError::BadExtension { what };
        let got = parse_params(response).ok_or(bad("invalid permessage-deflate parameters"))?;
        if self.server_no_context_takeover && !got.server_no_context_takeover {
            return Err(bad("server_no_context_takeover asked for and not granted"));
        }
        let server_bits = got.server_max_window_bits.unwrap_or(15);
        if let Some(asked) = self.server_max_window_bits
            && server_bits > asked.clamp(9, 15)
        {
            return Err(bad("server_max_window_bits larger than asked"));
        }
        let ours = self.client_max_window_bits.unwrap_or(15).clamp(9, 15);
        let client_bits = match got.client_max_window_bits {
            None => ours,
            Some(None) => return Err(bad("client_max_window_bits without a value")),
            Some(Some(bits)) if bits < 9 => {
                return Err(bad("client_max_window_bits=8 is not supported"));
            }
            Some(Some(bits)) => bits.min(ours),
        };
        Ok(DeflateParams {
            server_no_context_takeover: got.server_no_context_takeover,
            client_no_context_takeover: got.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        })
    }
}

/// Why a compressed message could not be inflated.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InflateError {
    /// It inflates past the message limit (close code 1009).
    #[error("inflated message larger than {limit} bytes")]
    TooBig {
        /// The limit.
        limit: usize,
    },
    /// The compressed data is invalid (close code 1007).
    #[error("invalid compressed data")]
    Corrupt,
}

/// The compressor of one side.
pub struct Deflater {
    compress: Compress,
    /// No context takeover: reset after every message.
    reset: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("reset", &self.reset)
            .finish()
    }
}

impl Deflater {
    /// A raw-deflate compressor with `window_bits` (9..=15) and `level`; `reset`: keep no
    /// context between messages.
    #[must_use]
    pub fn new(level: u32, window_bits: u8, reset: bool) -> Self {
        Self {
            compress: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                window_bits.clamp(9, 15),
            ),
            reset,
        }
    }

    /// Starts afresh: the next message refers to nothing before it.
    pub fn reset(&mut self) {
        self.compress.reset();
    }

    /// Compresses one whole message into `out` (appended), without the `00 00 ff ff`
    /// tail (RFC 7692 §7.2.1).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(input.len() / 2 + 64);
        let mut rest = input;
        loop {
            let before = self.compress.total_in();
            // A zlib stream in a good state with room to write cannot fail: a failure is a
            // bug in this loop, and the worst outcome is a truncated message, not a panic.
            if self
                .compress
                .compress_vec(rest, out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            let used = (self.compress.total_in() - before) as usize;
            rest = &rest[used.min(rest.len())..];
            // Done when all input is in and the flush fit (room left in `out`).
            if rest.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if out.len() >= start + 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        }
        if self.reset {
            self.compress.reset();
        }
    }
}

/// The decompressor of one side, bounded by the message limit.
pub struct Inflater {
    decompress: Decompress,
    /// The peer keeps no context: reset after every message.
    reset: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("reset", &self.reset)
            .finish()
    }
}

impl Inflater {
    /// A raw-inflate decompressor for a peer window of `window_bits`; `reset`: the peer keeps
    /// no context between messages.
    #[must_use]
    pub fn new(window_bits: u8, reset: bool) -> Self {
        // zlib's raw inflate takes 9..=15; a peer that announced 8 is read with 9 (a
        // larger window reads any stream a smaller one wrote).
        Self {
            decompress: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            reset,
        }
    }

    /// Inflates a piece of a compressed message, appending to `out`, which never grows past
    /// `limit` + 1 bytes.
    ///
    /// # Errors
    /// [`InflateError::TooBig`] once the message passes `limit`; [`InflateError::Corrupt`].
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let mut rest = input;
        loop {
            if out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(InflateError::TooBig { limit });
                }
                // Double, at least 16 KiB, never past limit + 1 (one byte past says "too
                // big" without holding more).
                let want = (out.capacity() * 2)
                    .max(out.len() + 16 * 1024)
                    .min(limit.saturating_add(1));
                out.reserve_exact(want - out.len());
            }
            let (in_before, out_before) = (self.decompress.total_in(), out.len());
            let status = self
                .decompress
                .decompress_vec(rest, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let used = (self.decompress.total_in() - in_before) as usize;
            rest = &rest[used.min(rest.len())..];
            if out.len() > limit {
                return Err(InflateError::TooBig { limit });
            }
            if status == Status::StreamEnd {
                // A final block (BFINAL) ends this deflate stream; what follows starts a new
                // one (RFC 7692 §7.2.3.3 lets a sender do this).
                self.decompress.reset(false);
                if rest.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let progressed = used > 0 || out.len() > out_before;
            if rest.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if !progressed && out.len() < out.capacity() {
                // No progress with room to write: the input is not deflate data.
                return Err(InflateError::Corrupt);
            }
        }
    }

    /// Ends a message: inflates the tail it lost on the wire, then resets if the peer keeps
    /// no context.
    ///
    /// # Errors
    /// As [`Inflater::inflate`].
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        let result = self.inflate(&TAIL, out, limit);
        if self.reset || result.is_err() {
            self.decompress.reset(false);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: NAME.into(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn round_trip_with_and_without_context() {
        for reset in [false, true] {
            let mut deflater = Deflater::new(6, 15, reset);
            let mut inflater = Inflater::new(15, reset);
            for i in 0..5 {
                let message = format!("hello hello hello hello {i}").repeat(50);
                let mut wire = Vec::new();
                deflater.compress(message.as_bytes(), &mut wire);
                assert!(wire.len() < message.len());
                let mut out = Vec::new();
                inflater.inflate(&wire, &mut out, 1 << 20).unwrap();
                inflater.finish(&mut out, 1 << 20).unwrap();
                assert_eq!(out, message.as_bytes());
            }
        }
    }

    #[test]
    fn rfc7692_example_hello() {
        // RFC 7692 §7.2.3.1: "Hello" compressed, without context.
        let wire = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut inflater = Inflater::new(15, true);
        let mut out = Vec::new();
        inflater.inflate(&wire, &mut out, 100).unwrap();
        inflater.finish(&mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.2: the second "Hello" with context is shorter.
        let mut deflater = Deflater::new(6, 15, false);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        deflater.compress(b"Hello", &mut first);
        deflater.compress(b"Hello", &mut second);
        assert!(second.len() < first.len());
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let mut wire = Vec::new();
        Deflater::new(9, 15, true).compress(&zeros, &mut wire);
        assert!(wire.len() < 20_000, "{}", wire.len());
        let mut inflater = Inflater::new(15, true);
        let mut out = Vec::new();
        let limit = 1 << 20;
        assert_eq!(
            inflater.inflate(&wire, &mut out, limit),
            Err(InflateError::TooBig { limit })
        );
        assert!(out.capacity() <= limit + 1, "capacity {}", out.capacity());
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut inflater = Inflater::new(15, true);
        let mut out = Vec::new();
        let result = inflater
            .inflate(&[0xff; 64], &mut out, 1 << 20)
            .and_then(|()| inflater.finish(&mut out, 1 << 20));
        assert_eq!(result, Err(InflateError::Corrupt));
    }

    #[test]
    fn server_negotiation() {
        let config = DeflateConfig::default();
        let (params, response) = config.accept_offer(&offer(&[])).unwrap();
        assert_eq!(response, "permessage-deflate");
        assert_eq!(params.server_max_window_bits, 15);
        let (params, response) = config
            .accept_offer(&offer(&[
                ("client_max_window_bits", None),
                ("server_no_context_takeover", None),
                ("server_max_window_bits", Some("10")),
            ]))
            .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        );
        assert!(params.server_no_context_takeover);
        assert_eq!(params.server_max_window_bits, 10);
        // Declined: unknown, repeated, out of range, a window of 8.
        for bad in [
            offer(&[("foo", None)]),
            offer(&[("server_no_context_takeover", None); 2]),
            offer(&[("server_max_window_bits", Some("16"))]),
            offer(&[("server_max_window_bits", Some("08"))]),
            offer(&[("server_max_window_bits", None)]),
            offer(&[("server_max_window_bits", Some("8"))]),
            offer(&[("client_no_context_takeover", Some("1"))]),
        ] {
            assert!(config.accept_offer(&bad).is_none(), "{bad:?}");
        }
        // The server limits the client only when the client allowed it.
        let small = DeflateConfig {
            client_max_window_bits: Some(10),
            ..DeflateConfig::default()
        };
        let (params, response) = small.accept_offer(&offer(&[])).unwrap();
        assert_eq!(response, "permessage-deflate");
        assert_eq!(params.client_max_window_bits, 15);
        let (params, response) = small
            .accept_offer(&offer(&[("client_max_window_bits", None)]))
            .unwrap();
        assert_eq!(response, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(params.client_max_window_bits, 10);
    }

    #[test]
    fn client_confirmation() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            server_max_window_bits: Some(12),
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.offer(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits"
        );
        let params = config
            .confirm(&offer(&[
                ("server_no_context_takeover", None),
                ("server_max_window_bits", Some("11")),
                ("client_max_window_bits", Some("9")),
            ]))
            .unwrap();
        assert_eq!(params.server_max_window_bits, 11);
        assert_eq!(params.client_max_window_bits, 9);
        assert!(config.confirm(&offer(&[])).is_err(), "takeover not granted");
        assert!(
            config
                .confirm(&offer(&[
                    ("server_no_context_takeover", None),
                    ("server_max_window_bits", Some("13"))
                ]))
                .is_err()
        );
    }
}
