//! A request (or trailers) from a decoded HTTP/2 field list, checked as RFC 9113 §8
//! requires.
//!
//! Owns: collecting decoded fields without a copy per field (one arena per block), the
//! rules of §8.2 (field names lowercase and valid, values without NUL/CR/LF or edge
//! whitespace, no connection-specific fields, `te` only `trailers`) and §8.3 (pseudo-fields
//! first, known, once each; `:method`, `:scheme`, `:path` present except for CONNECT),
//! Content-Length values, and the head a handler sees: `:authority` as Host when there is
//! none (RFC 9113 §8.3.1), cookie crumbs joined (§8.2.3).
//! Does not: decode HPACK or decide what to answer (the connection does).

use bytes::{Bytes, BytesMut};

use crate::http::proto::{Headers, Method, RequestHead, ResponseHead, Version};

/// Why a field list is not a request.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Malformed {
    /// Over SETTINGS_MAX_HEADER_LIST_SIZE: answered 431.
    TooLarge,
    /// Malformed (RFC 9113 §8.1.1): a stream error PROTOCOL_ERROR.
    Invalid(&'static str),
}

/// A request head and its declared body length.
#[derive(Debug)]
pub(crate) struct H2Request {
    pub(crate) head: RequestHead,
    pub(crate) content_length: Option<u64>,
}

/// Decoded fields, copied once into one buffer.
#[derive(Debug, Default)]
pub(crate) struct FieldList {
    arena: BytesMut,
    /// (name start, name end = value start, value end) in `arena`.
    fields: Vec<(usize, usize, usize)>,
}

/// Connection-specific fields, which HTTP/2 does not carry (RFC 9113 §8.2.2).
pub(crate) fn is_connection_specific(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 5] = [
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"transfer-encoding",
        b"upgrade",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// RFC 9113 §8.2.1: a field name has no characters in 0x00-0x20, 0x41-0x5a (uppercase) or
/// 0x7f-0xff, and no colon but a pseudo-field's first.
fn valid_name(name: &[u8]) -> bool {
    let body = name.strip_prefix(b":").unwrap_or(name);
    !body.is_empty()
        && body
            .iter()
            .all(|&b| b > 0x20 && b < 0x7f && !b.is_ascii_uppercase() && b != b':')
}

/// RFC 9113 §8.2.1: a field value has no NUL, CR or LF, and no whitespace at either end.
fn valid_value(value: &[u8]) -> bool {
    let edge = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
    !value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'))
        && !edge(value.first())
        && !edge(value.last())
}

impl FieldList {
    /// Adds a decoded field.
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(name);
        let middle = self.arena.len();
        self.arena.extend_from_slice(value);
        self.fields.push((start, middle, self.arena.len()));
    }

    /// The fields as shared slices of one buffer.
    fn split(self) -> (Bytes, Vec<(usize, usize, usize)>) {
        (self.arena.freeze(), self.fields)
    }

    /// The request these fields make; `extended_connect`: `:protocol` is allowed
    /// (SETTINGS_ENABLE_CONNECT_PROTOCOL sent, RFC 8441 §4).
    pub(crate) fn into_request(
        self,
        oversized: bool,
        extended_connect: bool,
    ) -> Result<H2Request, Malformed> {
        if oversized {
            return Err(Malformed::TooLarge);
        }
        let (arena, fields) = self.split();
        let mut method = None;
        let mut scheme = None;
        let mut path = None;
        let mut authority = None;
        let mut protocol = None;
        let mut regular = false;
        let mut headers = Headers::with_capacity(fields.len());
        let mut content_length = None;
        let mut has_host = false;
        let mut cookies: Vec<Bytes> = Vec::new();
        for (start, middle, end) in fields {
            let name = &arena[start..middle];
            let value = arena.slice(middle..end);
            if !valid_name(name) {
                return Err(Malformed::Invalid("invalid field name"));
            }
            if !valid_value(&value) {
                return Err(Malformed::Invalid("invalid field value"));
            }
            if name[0] == b':' {
                // RFC 9113 §8.3: pseudo-fields come before regular ones, each once.
                if regular {
                    return Err(Malformed::Invalid("pseudo-field after a regular field"));
                }
                let slot = match name {
                    b":method" => &mut method,
                    b":scheme" => &mut scheme,
                    b":path" => &mut path,
                    b":authority" => &mut authority,
                    // RFC 8441 §4: a server that did not send
                    // SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 treats :protocol as malformed
                    // (§3: the client may use it only after receiving the setting).
                    b":protocol" if extended_connect => &mut protocol,
                    // RFC 9113 §8.3: unknown pseudo-fields (or response ones) are malformed.
                    _ => return Err(Malformed::Invalid("unknown pseudo-field")),
                };
                if slot.replace(value).is_some() {
                    return Err(Malformed::Invalid("pseudo-field repeated"));
                }
                continue;
            }
            regular = true;
            if is_connection_specific(name) {
                return Err(Malformed::Invalid("connection-specific field"));
            }
            // RFC 9113 §8.2.2: te may carry only "trailers".
            if name == b"te" && &value[..] != b"trailers" {
                return Err(Malformed::Invalid("te other than trailers"));
            }
            if name == b"content-length" {
                let length = std::str::from_utf8(&value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(Malformed::Invalid("invalid content-length"))?;
                if content_length
                    .replace(length)
                    .is_some_and(|old| old != length)
                {
                    return Err(Malformed::Invalid("differing content-length"));
                }
            }
            if name == b"cookie" {
                cookies.push(value);
                continue;
            }
            has_host |= name == b"host";
            headers.append(arena.slice(start..middle), value);
        }
        let method = method.ok_or(Malformed::Invalid("no :method"))?;
        let method = Method::from_token(&method);
        let target = if let Some(protocol) = &protocol {
            // RFC 8441 §4: :protocol only with CONNECT, which then carries :scheme and
            // :path too (and :authority: the target URI's authority).
            if method != Method::Connect {
                return Err(Malformed::Invalid(":protocol without CONNECT"));
            }
            if protocol.is_empty() || scheme.is_none() || authority.is_none() {
                return Err(Malformed::Invalid(
                    "extended CONNECT without :scheme or :authority",
                ));
            }
            path.filter(|p| !p.is_empty())
                .ok_or(Malformed::Invalid("extended CONNECT without :path"))?
        } else if method == Method::Connect {
            // RFC 9113 §8.5: CONNECT has :authority and neither :scheme nor :path.
            if scheme.is_some() || path.is_some() {
                return Err(Malformed::Invalid("CONNECT with :scheme or :path"));
            }
            authority
                .clone()
                .ok_or(Malformed::Invalid("CONNECT without :authority"))?
        } else {
            // RFC 9113 §8.3.1: :method, :scheme and :path are present; :path not empty.
            if scheme.is_none() {
                return Err(Malformed::Invalid("no :scheme"));
            }
            path.filter(|p| !p.is_empty())
                .ok_or(Malformed::Invalid("no :path"))?
        };
        if !has_host && let Some(authority) = authority {
            headers.append(Bytes::from_static(b"host"), authority);
        }
        match cookies.len() {
            0 => {}
            1 => headers.append(Bytes::from_static(b"cookie"), cookies.swap_remove(0)),
            _ => {
                // RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1.1 handlers.
                let joined = cookies
                    .iter()
                    .map(|c| &c[..])
                    .collect::<Vec<_>>()
                    .join(&b"; "[..]);
                headers.append(Bytes::from_static(b"cookie"), joined);
            }
        }
        Ok(H2Request {
            head: RequestHead {
                method,
                target,
                version: Version::Http2,
                headers,
                protocol,
            },
            content_length,
        })
    }

    /// The response head these make: `:status` (three digits, first) and valid fields
    /// (RFC 9113 §8.3.2).
    pub(crate) fn into_response(self, oversized: bool) -> Result<ResponseHead, Malformed> {
        if oversized {
            return Err(Malformed::TooLarge);
        }
        let (arena, fields) = self.split();
        let mut status = None;
        let mut headers = Headers::with_capacity(fields.len());
        for (start, middle, end) in fields {
            let name = &arena[start..middle];
            let value = arena.slice(middle..end);
            if !valid_name(name) || !valid_value(&value) {
                return Err(Malformed::Invalid("invalid field"));
            }
            if name[0] == b':' {
                if name != b":status" || status.is_some() || !headers.is_empty() {
                    return Err(Malformed::Invalid("bad response pseudo-field"));
                }
                let code = std::str::from_utf8(&value)
                    .ok()
                    .filter(|v| v.len() == 3)
                    .and_then(|v| v.parse::<u16>().ok())
                    .filter(|code| (100..=999).contains(code))
                    .ok_or(Malformed::Invalid("bad :status"))?;
                status = Some(code);
                continue;
            }
            if is_connection_specific(name) {
                return Err(Malformed::Invalid("connection-specific field"));
            }
            headers.append(arena.slice(start..middle), value);
        }
        let mut head = ResponseHead::new(status.ok_or(Malformed::Invalid("no :status"))?);
        head.version = Version::Http2;
        head.headers = headers;
        Ok(head)
    }

    /// The trailer fields these make (no pseudo-fields: RFC 9113 §8.1).
    pub(crate) fn into_trailers(self, oversized: bool) -> Result<Headers, Malformed> {
        if oversized {
            return Err(Malformed::TooLarge);
        }
        let (arena, fields) = self.split();
        let mut headers = Headers::with_capacity(fields.len());
        for (start, middle, end) in fields {
            let name = &arena[start..middle];
            let value = arena.slice(middle..end);
            if !valid_name(name) || name[0] == b':' || !valid_value(&value) {
                return Err(Malformed::Invalid("invalid trailer field"));
            }
            if is_connection_specific(name) {
                return Err(Malformed::Invalid("connection-specific field"));
            }
            headers.append(arena.slice(start..middle), value);
        }
        Ok(headers)
    }
}
