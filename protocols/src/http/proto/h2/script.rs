//! A scripted HTTP/2 client for tests and fuzz targets: builds raw frames and reads what a
//! server sends back.
//!
//! Owns: the client's side of header compression (its encoder writes static-table and
//! literal fields; its decoder follows the server's), frame building (well-formed or not,
//! on purpose), and reading the server's bytes into [`Received`] items.
//! Contract: no state machine, no checks: a test writes exactly the frames a case needs
//! (h2spec style) and asserts on what comes back.
//! Does not: send anything itself (feed its bytes to a [`RawPeer`](crate::kit::sim::RawPeer)
//! or straight to a machine).

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{self, ErrorCode, Frame, PREFACE, decode_frame, kind};
use super::hpack::{HpackDecoder, encode_field};
use crate::kit::Status;

/// What a server sent, frame by frame; header blocks decoded.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Received {
    /// A whole header block (HEADERS and its CONTINUATIONs).
    Headers {
        /// The stream.
        stream: u32,
        /// END_STREAM.
        end_stream: bool,
        /// The fields, as text.
        fields: Vec<(String, String)>,
    },
    /// Any other frame.
    Frame(Frame),
    /// Bytes that are not a valid frame, or a block that does not decode.
    Garbage(String),
}

impl Received {
    /// The field `name` of a header block.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        match self {
            Self::Headers { fields, .. } => fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// A scripted client (see the module docs).
#[derive(Debug)]
pub struct ScriptedClient {
    decoder: HpackDecoder,
    input: BytesMut,
    block: Option<(u32, bool, BytesMut)>,
    /// The largest frame it accepts (it reads frames up to 2^24-1 by default).
    pub max_frame_size: u32,
}

impl Default for ScriptedClient {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedClient {
    /// A client with fresh compression state.
    #[must_use]
    pub fn new() -> Self {
        Self {
            decoder: HpackDecoder::new(super::hpack::DEFAULT_TABLE_SIZE),
            input: BytesMut::new(),
            block: None,
            max_frame_size: frame::MAX_MAX_FRAME_SIZE,
        }
    }

    /// The connection preface and an empty SETTINGS frame.
    #[must_use]
    pub fn preface(&self) -> Vec<u8> {
        let mut buf = BytesMut::from(&PREFACE[..]);
        frame::encode_settings(&mut buf, &[]);
        buf.to_vec()
    }

    /// A raw frame.
    #[must_use]
    pub fn frame(&self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        frame::encode_header(&mut buf, payload.len(), kind, flags, stream);
        buf.put_slice(payload);
        buf.to_vec()
    }

    /// A header block of `fields`, encoded (never indexed).
    #[must_use]
    pub fn block(&self, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        for (name, value) in fields {
            // Names as given (not lowercased): tests send uppercase on purpose.
            buf.put_u8(0);
            super::hpack::encode_integer(&mut buf, 0, 7, name.len());
            buf.put_slice(name.as_bytes());
            super::hpack::encode_integer(&mut buf, 0, 7, value.len());
            buf.put_slice(value.as_bytes());
        }
        buf.to_vec()
    }

    /// A HEADERS frame (END_HEADERS set) with `fields`.
    #[must_use]
    pub fn headers(&self, stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
        let flags = frame::flag::END_HEADERS
            | if end_stream {
                frame::flag::END_STREAM
            } else {
                0
            };
        self.frame(kind::HEADERS, flags, stream, &self.block(fields))
    }

    /// A GET request for `path` on `stream`, ending the stream.
    #[must_use]
    pub fn get(&self, stream: u32, path: &str) -> Vec<u8> {
        self.headers(stream, &request_fields("GET", path), true)
    }

    /// A DATA frame.
    #[must_use]
    pub fn data(&self, stream: u32, data: &[u8], end_stream: bool) -> Vec<u8> {
        let flags = if end_stream {
            frame::flag::END_STREAM
        } else {
            0
        };
        self.frame(kind::DATA, flags, stream, data)
    }

    /// A RST_STREAM frame.
    #[must_use]
    pub fn rst_stream(&self, stream: u32, code: ErrorCode) -> Vec<u8> {
        self.frame(kind::RST_STREAM, 0, stream, &code.0.to_be_bytes())
    }

    /// A WINDOW_UPDATE frame.
    #[must_use]
    pub fn window_update(&self, stream: u32, increment: u32) -> Vec<u8> {
        self.frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
    }

    /// A SETTINGS frame with `entries`.
    #[must_use]
    pub fn settings(&self, entries: &[(u16, u32)]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        frame::encode_settings(&mut buf, entries);
        buf.to_vec()
    }

    /// A SETTINGS acknowledgement (of the server's SETTINGS, RFC 9113 §6.5.3).
    #[must_use]
    pub fn settings_ack(&self) -> Vec<u8> {
        let mut buf = BytesMut::new();
        frame::encode_settings_ack(&mut buf);
        buf.to_vec()
    }

    /// A PING frame.
    #[must_use]
    pub fn ping(&self, data: [u8; 8]) -> Vec<u8> {
        self.frame(kind::PING, 0, 0, &data)
    }

    /// Reads what the server sent (frames may be split across calls).
    pub fn read(&mut self, bytes: &[u8]) -> Vec<Received> {
        self.input.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match decode_frame(&mut self.input, self.max_frame_size) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(frame)) => self.take(frame, &mut out),
                Err(error) => {
                    out.push(Received::Garbage(error.to_string()));
                    self.input.clear();
                    break;
                }
            }
        }
        out
    }

    fn take(&mut self, frame: Frame, out: &mut Vec<Received>) {
        let (stream, end_stream, end_headers, fragment) = match frame {
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
                ..
            } => (stream, end_stream, end_headers, block),
            Frame::Continuation {
                stream,
                end_headers,
                block,
            } => match &self.block {
                Some((s, end_stream, _)) if *s == stream => {
                    (stream, *end_stream, end_headers, block)
                }
                _ => {
                    out.push(Received::Garbage("stray CONTINUATION".into()));
                    return;
                }
            },
            other => {
                out.push(Received::Frame(other));
                return;
            }
        };
        let mut block = match self.block.take() {
            Some((_, _, block)) => block,
            None => BytesMut::new(),
        };
        block.extend_from_slice(&fragment);
        if !end_headers {
            self.block = Some((stream, end_stream, block));
            return;
        }
        let mut fields = Vec::new();
        let result = self.decoder.decode(&block, usize::MAX, |name, value| {
            fields.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        });
        out.push(match result {
            Ok(_) => Received::Headers {
                stream,
                end_stream,
                fields,
            },
            Err(error) => Received::Garbage(error.to_string()),
        });
    }
}

/// The pseudo-fields of a request: `:method`, `:scheme` http, `:path`, `:authority` test.
#[must_use]
pub fn request_fields<'a>(method: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (":method", method),
        (":scheme", "http"),
        (":path", path),
        (":authority", "test"),
    ]
}

/// An encoded header block of `fields` through the crate's encoder (lowercasing names).
#[must_use]
pub fn encoded_block(fields: &[(&[u8], &[u8])]) -> Bytes {
    let mut buf = BytesMut::new();
    for (name, value) in fields {
        encode_field(&mut buf, name, value);
    }
    buf.freeze()
}
