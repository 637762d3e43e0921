//! HPACK (RFC 7541) for HTTP/2: a bounded decoder over `loona-hpack` and our own encoder.
//!
//! Owns: decoding a whole header block into fields with the header list size bounded
//! ([`HpackDecoder`]), and encoding fields straight into a frame buffer ([`encode_field`]).
//! Decoding is `loona-hpack`'s (Huffman, the dynamic table, table size updates checked
//! against our SETTINGS_HEADER_TABLE_SIZE): a maintained, fuzzed, sans-IO decoder. Encoding
//! is ours: that crate's encoder allocates per field and indexes every field in a dynamic
//! table found by a linear search; ours writes each field once into the output with the
//! static table only (an indexed field when name and value are in it, a literal with an
//! indexed name when the name is, a literal otherwise; never indexed in the dynamic table,
//! never Huffman-coded), so the peer's decoder keeps no state for us and our encoder
//! keeps none at all.
//! Contract: [`HpackDecoder::decode`] hands each field to a callback, in order, until the
//! list passes its bound, and decodes the rest of the block without handing it on (the
//! dynamic table must stay in step with the peer's encoder); any decoding error is a
//! connection error COMPRESSION_ERROR (RFC 9113 §4.3).
//! Does not: validate field names or values (the connection does, RFC 9113 §8.2).
//! Spec: RFC 7541 (§2.3 tables, §4 table management, §5 primitives, §6 representations,
//! Appendix A static table); tests with the Appendix C examples
//! (`tests/data/hpack_rfc7541.txt`).

use bytes::{BufMut, BytesMut};

/// The overhead counted per field in a header list's size (RFC 9113 §6.5.2, RFC 7541
/// §4.1).
pub const FIELD_OVERHEAD: usize = 32;

/// The default and our advertised SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// A header block did not decode (RFC 7541 §3): a COMPRESSION_ERROR.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("header block does not decode: {0}")]
pub struct HpackError(pub String);

/// What a decoded header block held.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Decoded {
    /// The header list size (RFC 9113 §6.5.2: names, values and 32 octets per field).
    pub list_size: usize,
    /// Whether the list passed the bound (fields past it were not handed on).
    pub oversized: bool,
}

/// The decoding side of one connection: the peer encoder's dynamic table.
pub struct HpackDecoder {
    inner: loona_hpack::Decoder<'static>,
}

impl HpackDecoder {
    /// A decoder whose dynamic table may grow to `max_table_size` (our
    /// SETTINGS_HEADER_TABLE_SIZE); a table size update above it is an error.
    #[must_use]
    pub fn new(max_table_size: usize) -> Self {
        let mut inner = loona_hpack::Decoder::new();
        inner.set_max_allowed_table_size(max_table_size);
        // Within the allowed size (set just above): the crate's assert holds.
        inner.set_max_table_size(max_table_size);
        Self { inner }
    }

    /// Decodes a whole header block, handing each field to `field` while the list is
    /// within `max_list_size`.
    ///
    /// # Errors
    /// [`HpackError`] when the block does not decode; the connection cannot go on.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<Decoded, HpackError> {
        let mut list_size = 0usize;
        let mut oversized = false;
        self.inner
            .decode_with_cb(block, |name, value| {
                list_size = list_size.saturating_add(name.len() + value.len() + FIELD_OVERHEAD);
                if list_size > max_list_size {
                    oversized = true;
                }
                if !oversized {
                    field(&name, &value);
                }
            })
            .map_err(|error| HpackError(error.to_string()))?;
        Ok(Decoded {
            list_size,
            oversized,
        })
    }
}

impl std::fmt::Debug for HpackDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HpackDecoder").finish_non_exhaustive()
    }
}

/// The static table (RFC 7541 Appendix A), index 1 first.
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Where `name` (any case) and `value` are in the static table: `(index, value matched)`.
fn static_lookup(name: &[u8], value: &[u8]) -> Option<(usize, bool)> {
    let mut found = None;
    for (i, (entry_name, entry_value)) in STATIC_TABLE.iter().enumerate() {
        if entry_name.len() == name.len() && entry_name.as_bytes().eq_ignore_ascii_case(name) {
            if entry_value.as_bytes() == value && !value.is_empty() {
                return Some((i + 1, true));
            }
            found.get_or_insert((i + 1, false));
        } else if found.is_some() {
            // Entries of one name are adjacent.
            break;
        }
    }
    found
}

/// Appends an HPACK integer with an `prefix_bits`-bit prefix whose high bits are `first`
/// (RFC 7541 §5.1).
pub fn encode_integer(buf: &mut BytesMut, first: u8, prefix_bits: u8, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        // Fits the prefix: below 2^prefix_bits, so the cast keeps it.
        buf.put_u8(first | value as u8);
        return;
    }
    buf.put_u8(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        buf.put_u8((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    buf.put_u8(rest as u8);
}

/// Appends a string literal, not Huffman-coded, optionally lowercased (RFC 7541 §5.2).
fn encode_string(buf: &mut BytesMut, text: &[u8], lowercase: bool) {
    encode_integer(buf, 0, 7, text.len());
    if lowercase {
        buf.extend(text.iter().map(u8::to_ascii_lowercase));
    } else {
        buf.put_slice(text);
    }
}

/// Appends one field: indexed when the static table has it, else a literal without
/// indexing (RFC 7541 §6.1, §6.2.2), its name lowercased (RFC 9113 §8.2.1).
pub fn encode_field(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    match static_lookup(name, value) {
        Some((index, true)) => encode_integer(buf, 0x80, 7, index),
        Some((index, false)) => {
            encode_integer(buf, 0x00, 4, index);
            encode_string(buf, value, false);
        }
        None => {
            buf.put_u8(0x00);
            encode_string(buf, name, true);
            encode_string(buf, value, false);
        }
    }
}

/// Appends `:status` (an indexed field for the seven in the static table).
pub fn encode_status(buf: &mut BytesMut, status: u16) {
    let index = match status {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if index != 0 {
        encode_integer(buf, 0x80, 7, index);
        return;
    }
    let mut digits = [b'0'; 3];
    let status = status.min(999);
    digits[0] += (status / 100) as u8;
    digits[1] += (status / 10 % 10) as u8;
    digits[2] += (status % 10) as u8;
    encode_integer(buf, 0x00, 4, 8);
    encode_string(buf, &digits, false);
}

#[cfg(test)]
mod tests;
