//! HTTP/2 frames (RFC 9113 §4, §6): decoding one frame off a buffer and encoding each kind.
//!
//! Owns: the 9-byte frame header, the payload layout of every frame type (padding, priority
//! fields, settings entries), the size and stream-id rules that a frame breaks on its own
//! (a PING on a stream, a SETTINGS ack with a payload, padding longer than the frame), and
//! the error each of those is ([`FrameError`]: a connection or a stream error with its
//! [`ErrorCode`]).
//! Contract: [`decode_frame`] takes one whole frame from the front of a buffer (or says it
//! needs more: `Status::Partial`), never copying a payload (it is split off as [`Bytes`]);
//! the `encode_*` functions append a frame to a [`BytesMut`].
//! Does not: know stream states, flow control or header compression (the connection does).
//! Spec: RFC 9113 §4.1 (frame format), §4.2 (frame size), §6.1–§6.10 (frame definitions),
//! §7 (error codes).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::kit::Status;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The size of a frame header.
pub const HEADER_LEN: usize = 9;

/// The initial and smallest SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// The largest SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;

/// The initial flow-control window of a stream and of the connection (RFC 9113 §6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// The largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame type codes (RFC 9113 §6).
pub mod kind {
    /// DATA (§6.1).
    pub const DATA: u8 = 0x0;
    /// HEADERS (§6.2).
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY (§6.3).
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM (§6.4).
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS (§6.5).
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (§6.6).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING (§6.7).
    pub const PING: u8 = 0x6;
    /// GOAWAY (§6.8).
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE (§6.9).
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION (§6.10).
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6).
pub mod flag {
    /// END_STREAM (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, PUSH_PROMISE, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS, PUSH_PROMISE).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// An HTTP/2 error code (RFC 9113 §7); unknown codes are kept as they came.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// NO_ERROR: graceful shutdown.
    pub const NO_ERROR: Self = Self(0x0);
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: Self = Self(0x1);
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: Self = Self(0x2);
    /// FLOW_CONTROL_ERROR.
    pub const FLOW_CONTROL_ERROR: Self = Self(0x3);
    /// SETTINGS_TIMEOUT.
    pub const SETTINGS_TIMEOUT: Self = Self(0x4);
    /// STREAM_CLOSED.
    pub const STREAM_CLOSED: Self = Self(0x5);
    /// FRAME_SIZE_ERROR.
    pub const FRAME_SIZE_ERROR: Self = Self(0x6);
    /// REFUSED_STREAM.
    pub const REFUSED_STREAM: Self = Self(0x7);
    /// CANCEL.
    pub const CANCEL: Self = Self(0x8);
    /// COMPRESSION_ERROR.
    pub const COMPRESSION_ERROR: Self = Self(0x9);
    /// CONNECT_ERROR.
    pub const CONNECT_ERROR: Self = Self(0xa);
    /// ENHANCE_YOUR_CALM.
    pub const ENHANCE_YOUR_CALM: Self = Self(0xb);
    /// INADEQUATE_SECURITY.
    pub const INADEQUATE_SECURITY: Self = Self(0xc);
    /// HTTP_1_1_REQUIRED.
    pub const HTTP_1_1_REQUIRED: Self = Self(0xd);
}

/// A frame broke a rule of its own type: what to answer.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// A connection error (RFC 9113 §5.4.1): GOAWAY with `code`, then close.
    #[error("connection error {code:?}: {reason}")]
    Connection {
        /// The error code.
        code: ErrorCode,
        /// What was wrong (for logs; unstable).
        reason: &'static str,
    },
    /// A stream error (RFC 9113 §5.4.2): RST_STREAM on `stream` with `code`.
    #[error("stream {stream} error {code:?}: {reason}")]
    Stream {
        /// The stream.
        stream: u32,
        /// The error code.
        code: ErrorCode,
        /// What was wrong (for logs; unstable).
        reason: &'static str,
    },
}

impl FrameError {
    /// A connection error.
    #[must_use]
    pub fn connection(code: ErrorCode, reason: &'static str) -> Self {
        Self::Connection { code, reason }
    }

    /// A stream error.
    #[must_use]
    pub fn stream(stream: u32, code: ErrorCode, reason: &'static str) -> Self {
        Self::Stream {
            stream,
            code,
            reason,
        }
    }
}

/// The priority fields of HEADERS and PRIORITY (RFC 9113 §5.3.2; deprecated, parsed and
/// ignored except that a stream may not depend on itself).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Priority {
    /// The stream this one depends on.
    pub dependency: u32,
    /// Whether the dependency is exclusive.
    pub exclusive: bool,
    /// The weight minus one.
    pub weight: u8,
}

/// One decoded frame. Payloads are shared slices of the input, padding removed.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// DATA (§6.1).
    Data {
        /// The stream.
        stream: u32,
        /// END_STREAM.
        end_stream: bool,
        /// The data, without padding.
        data: Bytes,
        /// The whole payload length, padding included: what flow control counts.
        flow_len: u32,
    },
    /// HEADERS (§6.2).
    Headers {
        /// The stream.
        stream: u32,
        /// END_STREAM.
        end_stream: bool,
        /// END_HEADERS: no CONTINUATION follows.
        end_headers: bool,
        /// The priority fields, when the PRIORITY flag is set.
        priority: Option<Priority>,
        /// The header block fragment.
        block: Bytes,
    },
    /// PRIORITY (§6.3).
    Priority {
        /// The stream.
        stream: u32,
        /// The priority fields.
        priority: Priority,
    },
    /// RST_STREAM (§6.4).
    RstStream {
        /// The stream.
        stream: u32,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS (§6.5); every value already checked against its range.
    Settings {
        /// ACK: acknowledges the peer's settings (no payload).
        ack: bool,
        /// The entries (identifier, value), 6 bytes each.
        entries: Bytes,
    },
    /// PUSH_PROMISE (§6.6).
    PushPromise {
        /// The stream it is sent on.
        stream: u32,
        /// The promised stream.
        promised: u32,
        /// END_HEADERS.
        end_headers: bool,
        /// The header block fragment.
        block: Bytes,
    },
    /// PING (§6.7).
    Ping {
        /// ACK: an answer to our ping.
        ack: bool,
        /// The opaque data.
        data: [u8; 8],
    },
    /// GOAWAY (§6.8).
    GoAway {
        /// The last stream the sender processed or may process.
        last_stream: u32,
        /// Why.
        code: ErrorCode,
        /// Debug data.
        debug: Bytes,
    },
    /// WINDOW_UPDATE (§6.9); the increment is never 0 (that is an error).
    WindowUpdate {
        /// The stream, or 0 for the connection.
        stream: u32,
        /// The window size increment.
        increment: u32,
    },
    /// CONTINUATION (§6.10).
    Continuation {
        /// The stream.
        stream: u32,
        /// END_HEADERS.
        end_headers: bool,
        /// The header block fragment.
        block: Bytes,
    },
    /// A frame of a type this implementation does not know: ignored (§5.5), except that
    /// it may not come in the middle of a header block.
    Unknown {
        /// Its type.
        kind: u8,
        /// Its stream.
        stream: u32,
    },
}

impl Frame {
    /// The stream the frame is on (0: the connection).
    #[must_use]
    pub fn stream(&self) -> u32 {
        match self {
            Self::Data { stream, .. }
            | Self::Headers { stream, .. }
            | Self::Priority { stream, .. }
            | Self::RstStream { stream, .. }
            | Self::PushPromise { stream, .. }
            | Self::WindowUpdate { stream, .. }
            | Self::Continuation { stream, .. }
            | Self::Unknown { stream, .. } => *stream,
            Self::Settings { .. } | Self::Ping { .. } | Self::GoAway { .. } => 0,
        }
    }
}

/// The entries of a SETTINGS payload (identifier, value), in order.
pub fn settings_entries(entries: &Bytes) -> impl Iterator<Item = (u16, u32)> + '_ {
    entries.chunks_exact(6).map(|entry| {
        (
            u16::from_be_bytes([entry[0], entry[1]]),
            u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]),
        )
    })
}

/// A frame header (RFC 9113 §4.1).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FrameHeader {
    /// The payload length.
    pub len: u32,
    /// The type.
    pub kind: u8,
    /// The flags.
    pub flags: u8,
    /// The stream identifier (the reserved bit cleared).
    pub stream: u32,
}

impl FrameHeader {
    /// Reads a header from 9 bytes.
    #[must_use]
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        Self {
            len: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]),
            kind: bytes[3],
            flags: bytes[4],
            // RFC 9113 §4.1: the reserved bit MUST be ignored when receiving.
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & MAX_WINDOW,
        }
    }
}

/// Takes one frame off the front of `buf`, or `Status::Partial` when it is not all there.
/// A frame longer than `max_frame_size` (our SETTINGS_MAX_FRAME_SIZE) is refused from its
/// header, before its payload arrives.
///
/// # Errors
/// [`FrameError`] for a frame that breaks a rule of its type; the bytes of a frame that
/// gave a stream error are consumed (the connection goes on), after a connection error
/// `buf` is left as it is.
pub fn decode_frame(buf: &mut BytesMut, max_frame_size: u32) -> Result<Status<Frame>, FrameError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Status::Partial);
    };
    let header = FrameHeader::parse(head);
    if header.len > max_frame_size {
        // RFC 9113 §4.2: a frame exceeding SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR; a
        // connection error for frames that alter connection state (we treat all so: the
        // payload is never read).
        return Err(FrameError::connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame larger than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let total = HEADER_LEN + header.len as usize;
    if buf.len() < total {
        return Ok(Status::Partial);
    }
    match parse_payload(header, &buf[HEADER_LEN..total]) {
        Err(error @ FrameError::Connection { .. }) => Err(error),
        Err(error) => {
            buf.advance(total);
            Err(error)
        }
        Ok(shape) => {
            let mut frame = buf.split_to(total);
            frame.advance(HEADER_LEN);
            Ok(Status::Complete(shape.build(header, frame.freeze())))
        }
    }
}

/// What `parse_payload` learned about a payload: the frame, with its data to be cut from
/// the payload once it is split off (no copy).
enum Shape {
    Data {
        start: usize,
        end: usize,
    },
    Headers {
        priority: Option<Priority>,
        start: usize,
        end: usize,
    },
    Priority(Priority),
    RstStream(ErrorCode),
    Settings,
    PushPromise {
        promised: u32,
        start: usize,
        end: usize,
    },
    Ping([u8; 8]),
    GoAway {
        last_stream: u32,
        code: ErrorCode,
    },
    WindowUpdate(u32),
    Continuation,
    Unknown,
}

impl Shape {
    fn build(self, header: FrameHeader, payload: Bytes) -> Frame {
        let stream = header.stream;
        let flags = header.flags;
        let end_stream = flags & flag::END_STREAM != 0;
        let end_headers = flags & flag::END_HEADERS != 0;
        match self {
            Self::Data { start, end } => Frame::Data {
                stream,
                end_stream,
                data: payload.slice(start..end),
                flow_len: header.len,
            },
            Self::Headers {
                priority,
                start,
                end,
            } => Frame::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                block: payload.slice(start..end),
            },
            Self::Priority(priority) => Frame::Priority { stream, priority },
            Self::RstStream(code) => Frame::RstStream { stream, code },
            Self::Settings => Frame::Settings {
                ack: flags & flag::ACK != 0,
                entries: payload,
            },
            Self::PushPromise {
                promised,
                start,
                end,
            } => Frame::PushPromise {
                stream,
                promised,
                end_headers,
                block: payload.slice(start..end),
            },
            Self::Ping(data) => Frame::Ping {
                ack: flags & flag::ACK != 0,
                data,
            },
            Self::GoAway { last_stream, code } => Frame::GoAway {
                last_stream,
                code,
                debug: payload.slice(8..),
            },
            Self::WindowUpdate(increment) => Frame::WindowUpdate { stream, increment },
            Self::Continuation => Frame::Continuation {
                stream,
                end_headers,
                block: payload,
            },
            Self::Unknown => Frame::Unknown {
                kind: header.kind,
                stream,
            },
        }
    }
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn protocol(reason: &'static str) -> FrameError {
    FrameError::connection(ErrorCode::PROTOCOL_ERROR, reason)
}

fn frame_size(reason: &'static str) -> FrameError {
    FrameError::connection(ErrorCode::FRAME_SIZE_ERROR, reason)
}

/// The padded range of a payload: `(start, end)` of the content after the Pad Length
/// octet (and `skip` more bytes of fixed fields), padding removed.
fn unpad(flags: u8, payload: &[u8], skip: usize) -> Result<(usize, usize), FrameError> {
    if flags & flag::PADDED == 0 {
        if payload.len() < skip {
            return Err(frame_size("frame too short for its fields"));
        }
        return Ok((skip, payload.len()));
    }
    let Some((&pad, _)) = payload.split_first() else {
        return Err(frame_size("padded frame without a Pad Length"));
    };
    let start = 1 + skip;
    // RFC 9113 §6.1, §6.2: padding that is the length of the frame payload or greater
    // MUST be treated as a connection error of type PROTOCOL_ERROR.
    if start + pad as usize > payload.len() {
        return Err(protocol("padding longer than the frame payload"));
    }
    Ok((start, payload.len() - pad as usize))
}

fn parse_priority(bytes: &[u8]) -> Priority {
    let word = be32(bytes);
    Priority {
        dependency: word & MAX_WINDOW,
        exclusive: word & !MAX_WINDOW != 0,
        weight: bytes[4],
    }
}

fn parse_payload(header: FrameHeader, payload: &[u8]) -> Result<Shape, FrameError> {
    let stream = header.stream;
    let flags = header.flags;
    match header.kind {
        kind::DATA => {
            if stream == 0 {
                // RFC 9113 §6.1: DATA frames MUST be associated with a stream.
                return Err(protocol("DATA on stream 0"));
            }
            let (start, end) = unpad(flags, payload, 0)?;
            Ok(Shape::Data { start, end })
        }
        kind::HEADERS => {
            if stream == 0 {
                // RFC 9113 §6.2: HEADERS on stream 0 is a PROTOCOL_ERROR.
                return Err(protocol("HEADERS on stream 0"));
            }
            let has_priority = flags & flag::PRIORITY != 0;
            let skip = if has_priority { 5 } else { 0 };
            let (start, end) = unpad(flags, payload, skip)?;
            let priority = has_priority.then(|| parse_priority(&payload[start - 5..start]));
            if priority.is_some_and(|p| p.dependency == stream) {
                // RFC 9113 §5.3.1: a stream cannot depend on itself (stream error).
                return Err(FrameError::stream(
                    stream,
                    ErrorCode::PROTOCOL_ERROR,
                    "stream depends on itself",
                ));
            }
            Ok(Shape::Headers {
                priority,
                start,
                end,
            })
        }
        kind::PRIORITY => {
            if stream == 0 {
                // RFC 9113 §6.3: PRIORITY on stream 0 is a PROTOCOL_ERROR.
                return Err(protocol("PRIORITY on stream 0"));
            }
            if payload.len() != 5 {
                // RFC 9113 §6.3: other than 5 octets: stream error FRAME_SIZE_ERROR.
                return Err(FrameError::stream(
                    stream,
                    ErrorCode::FRAME_SIZE_ERROR,
                    "PRIORITY not 5 octets",
                ));
            }
            let priority = parse_priority(payload);
            if priority.dependency == stream {
                return Err(FrameError::stream(
                    stream,
                    ErrorCode::PROTOCOL_ERROR,
                    "stream depends on itself",
                ));
            }
            Ok(Shape::Priority(priority))
        }
        kind::RST_STREAM => {
            if stream == 0 {
                // RFC 9113 §6.4: RST_STREAM on stream 0 is a PROTOCOL_ERROR.
                return Err(protocol("RST_STREAM on stream 0"));
            }
            if payload.len() != 4 {
                // RFC 9113 §6.4: other than 4 octets is a FRAME_SIZE_ERROR.
                return Err(frame_size("RST_STREAM not 4 octets"));
            }
            Ok(Shape::RstStream(ErrorCode(be32(payload))))
        }
        kind::SETTINGS => {
            if stream != 0 {
                // RFC 9113 §6.5: SETTINGS on a stream is a PROTOCOL_ERROR.
                return Err(protocol("SETTINGS on a stream"));
            }
            if flags & flag::ACK != 0 && !payload.is_empty() {
                // RFC 9113 §6.5: an ACK with a payload is a FRAME_SIZE_ERROR.
                return Err(frame_size("SETTINGS ack with a payload"));
            }
            if !payload.len().is_multiple_of(6) {
                // RFC 9113 §6.5: a length not a multiple of 6 is a FRAME_SIZE_ERROR.
                return Err(frame_size("SETTINGS length not a multiple of 6"));
            }
            for entry in payload.chunks_exact(6) {
                let id = u16::from_be_bytes([entry[0], entry[1]]);
                let value = be32(&entry[2..]);
                check_setting(id, value)?;
            }
            Ok(Shape::Settings)
        }
        kind::PUSH_PROMISE => {
            if stream == 0 {
                return Err(protocol("PUSH_PROMISE on stream 0"));
            }
            let (start, end) = unpad(flags, payload, 4)?;
            let promised = be32(&payload[start - 4..start]) & MAX_WINDOW;
            Ok(Shape::PushPromise {
                promised,
                start,
                end,
            })
        }
        kind::PING => {
            if stream != 0 {
                // RFC 9113 §6.7: PING on a stream is a PROTOCOL_ERROR.
                return Err(protocol("PING on a stream"));
            }
            let Ok(data) = <[u8; 8]>::try_from(payload) else {
                // RFC 9113 §6.7: other than 8 octets is a FRAME_SIZE_ERROR.
                return Err(frame_size("PING not 8 octets"));
            };
            Ok(Shape::Ping(data))
        }
        kind::GOAWAY => {
            if stream != 0 {
                // RFC 9113 §6.8: GOAWAY on a stream is a PROTOCOL_ERROR.
                return Err(protocol("GOAWAY on a stream"));
            }
            if payload.len() < 8 {
                return Err(frame_size("GOAWAY shorter than 8 octets"));
            }
            Ok(Shape::GoAway {
                last_stream: be32(payload) & MAX_WINDOW,
                code: ErrorCode(be32(&payload[4..])),
            })
        }
        kind::WINDOW_UPDATE => {
            if payload.len() != 4 {
                // RFC 9113 §6.9: other than 4 octets is a FRAME_SIZE_ERROR.
                return Err(frame_size("WINDOW_UPDATE not 4 octets"));
            }
            let increment = be32(payload) & MAX_WINDOW;
            if increment == 0 {
                // RFC 9113 §6.9: an increment of 0 is a PROTOCOL_ERROR: a stream error, or a
                // connection error on the connection's window.
                return Err(if stream == 0 {
                    protocol("WINDOW_UPDATE of 0 on the connection")
                } else {
                    FrameError::stream(stream, ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
                });
            }
            Ok(Shape::WindowUpdate(increment))
        }
        kind::CONTINUATION => {
            if stream == 0 {
                // RFC 9113 §6.10: CONTINUATION on stream 0 is a PROTOCOL_ERROR.
                return Err(protocol("CONTINUATION on stream 0"));
            }
            Ok(Shape::Continuation)
        }
        _ => Ok(Shape::Unknown),
    }
}

/// Checks a SETTINGS value against its range (RFC 9113 §6.5.2); unknown identifiers pass
/// (they are ignored).
///
/// # Errors
/// The connection error the value is.
pub fn check_setting(id: u16, value: u32) -> Result<(), FrameError> {
    match id {
        // RFC 9113 §6.5.2: any ENABLE_PUSH value other than 0 or 1 is a PROTOCOL_ERROR.
        setting::ENABLE_PUSH if value > 1 => Err(protocol("SETTINGS_ENABLE_PUSH not 0 or 1")),
        // RFC 9113 §6.5.2: INITIAL_WINDOW_SIZE above 2^31-1 is a FLOW_CONTROL_ERROR.
        setting::INITIAL_WINDOW_SIZE if value > MAX_WINDOW => Err(FrameError::connection(
            ErrorCode::FLOW_CONTROL_ERROR,
            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
        )),
        // RFC 9113 §6.5.2: MAX_FRAME_SIZE outside 2^14..2^24-1 is a PROTOCOL_ERROR.
        setting::MAX_FRAME_SIZE
            if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) =>
        {
            Err(protocol("SETTINGS_MAX_FRAME_SIZE out of range"))
        }
        _ => Ok(()),
    }
}

/// Appends a frame header.
pub fn encode_header(buf: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len <= MAX_MAX_FRAME_SIZE as usize, "frame length {len}");
    let len = (len as u32).to_be_bytes();
    buf.put_slice(&[len[1], len[2], len[3], kind, flags]);
    buf.put_u32(stream & MAX_WINDOW);
}

/// Appends a SETTINGS frame with `entries`.
pub fn encode_settings(buf: &mut BytesMut, entries: &[(u16, u32)]) {
    encode_header(buf, entries.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in entries {
        buf.put_u16(id);
        buf.put_u32(value);
    }
}

/// Appends a SETTINGS acknowledgement.
pub fn encode_settings_ack(buf: &mut BytesMut) {
    encode_header(buf, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a PING (or its answer, `ack`).
pub fn encode_ping(buf: &mut BytesMut, ack: bool, data: [u8; 8]) {
    encode_header(buf, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    buf.put_slice(&data);
}

/// Appends a GOAWAY.
pub fn encode_goaway(buf: &mut BytesMut, last_stream: u32, code: ErrorCode, debug: &[u8]) {
    encode_header(buf, 8 + debug.len(), kind::GOAWAY, 0, 0);
    buf.put_u32(last_stream & MAX_WINDOW);
    buf.put_u32(code.0);
    buf.put_slice(debug);
}

/// Appends a RST_STREAM.
pub fn encode_rst_stream(buf: &mut BytesMut, stream: u32, code: ErrorCode) {
    encode_header(buf, 4, kind::RST_STREAM, 0, stream);
    buf.put_u32(code.0);
}

/// Appends a WINDOW_UPDATE.
pub fn encode_window_update(buf: &mut BytesMut, stream: u32, increment: u32) {
    encode_header(buf, 4, kind::WINDOW_UPDATE, 0, stream);
    buf.put_u32(increment & MAX_WINDOW);
}

/// Appends the header of a DATA frame of `len` bytes (the data follows, written by the
/// caller).
pub fn encode_data_header(buf: &mut BytesMut, stream: u32, len: usize, end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    encode_header(buf, len, kind::DATA, flags, stream);
}

/// Appends a header block as one HEADERS frame and as many CONTINUATION frames as
/// `max_frame_size` needs.
pub fn encode_headers(
    buf: &mut BytesMut,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
) {
    let max = max_frame_size as usize;
    let mut chunks = block.chunks(max.max(1));
    let first = chunks.next().unwrap_or_default();
    let more = block.len() > max;
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if !more {
        flags |= flag::END_HEADERS;
    }
    encode_header(buf, first.len(), kind::HEADERS, flags, stream);
    buf.put_slice(first);
    let mut rest = chunks.peekable();
    while let Some(chunk) = rest.next() {
        let flags = if rest.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        encode_header(buf, chunk.len(), kind::CONTINUATION, flags, stream);
        buf.put_slice(chunk);
    }
}

#[cfg(test)]
mod tests;
