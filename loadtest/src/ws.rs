//! The `ws` workload: WebSocket echo of fixed-size binary (or text) messages.
//!
//! Owns: [`WsEchoSession`] (the opening handshake, then one masked frame per request and one
//! echoed message per response).
//! Contract: a [`Session`]: the handshake request goes out on connect; requests wait until
//! the `101` is checked (accept key included); each request is one frame, encoded and
//! masked once per connection and reused (a load generator's masking key need not change
//! per frame: it only protects browsers' intermediaries); each complete echoed message is
//! one response, its bytes checked with `--verify`. Server pings are ignored; a close frame
//! from the server is an error.
//! Does not: negotiate permessage-deflate or subprotocols.

use bytes::{Bytes, BytesMut};
use ringwork_protocols::http::proto::{H1Limits, Method, parse_response};
use ringwork_protocols::kit::Status;
use ringwork_protocols::websocket::proto::WsConfig;
use ringwork_protocols::websocket::proto::frame::{
    FrameHead, OpCode, apply_mask, encode_head, parse_head,
};
use ringwork_protocols::websocket::proto::handshake::{ClientHandshake, WsRequest};

use crate::session::{Progress, ResponseError, Session};

/// Where a connection stands.
#[derive(Debug)]
enum Stage {
    Handshake(Box<ClientHandshake>),
    Open,
}

/// One connection of the `ws` workload.
#[derive(Debug)]
pub struct WsEchoSession {
    stage: Stage,
    request: Bytes,
    /// The masked frame every request sends.
    frame: Bytes,
    message: Bytes,
    verify: bool,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// Whether the current frame ends its message.
    fin: bool,
    /// Whether the current frame is a control frame (ignored).
    control: bool,
    /// Bytes of the current message so far.
    at: usize,
}

impl WsEchoSession {
    /// A session to `host` (the `Host` field) and `path`, echoing `message` as text or
    /// binary; `seed` makes its handshake key and masking key.
    #[must_use]
    pub fn new(
        host: &str,
        path: &str,
        message: Bytes,
        text: bool,
        verify: bool,
        seed: u64,
    ) -> Self {
        let mut state = seed | 1;
        let mut next = || {
            // xorshift64: keys that differ per connection, from the run's seed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&next().to_le_bytes());
        key[8..].copy_from_slice(&next().to_le_bytes());
        let request = WsRequest {
            host: host.to_owned(),
            path: path.to_owned(),
            ..WsRequest::default()
        };
        let (handshake, request) = ClientHandshake::new(&request, &WsConfig::default(), key);
        let mask = next().to_le_bytes();
        let mask = [mask[0], mask[1], mask[2], mask[3]];
        let mut frame = BytesMut::with_capacity(message.len() + 14);
        encode_head(
            &mut frame,
            &FrameHead {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode: if text { OpCode::Text } else { OpCode::Binary },
                mask: Some(mask),
                len: message.len() as u64,
            },
        );
        let start = frame.len();
        frame.extend_from_slice(&message);
        apply_mask(&mut frame[start..], mask, 0);
        Self {
            stage: Stage::Handshake(Box::new(handshake)),
            request,
            frame: frame.freeze(),
            message,
            verify,
            remaining: 0,
            fin: false,
            control: false,
            at: 0,
        }
    }
}

fn malformed(reason: impl Into<String>) -> ResponseError {
    ResponseError::Malformed {
        reason: reason.into(),
    }
}

impl Session for WsEchoSession {
    fn on_connect(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.request);
    }

    fn ready(&self) -> bool {
        matches!(self.stage, Stage::Open)
    }

    fn write_request(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.frame);
    }

    fn shared_request(&mut self) -> Option<Bytes> {
        Some(self.frame.clone())
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<Progress, ResponseError> {
        let mut at = 0;
        if let Stage::Handshake(handshake) = &self.stage {
            match parse_response(data, &H1Limits::default(), &Method::Get) {
                Ok(Status::Partial) => return Ok(Progress::default()),
                Ok(Status::Complete(parsed)) => {
                    handshake
                        .check(&parsed.head)
                        .map_err(|e| malformed(e.to_string()))?;
                    at = parsed.consumed;
                    self.stage = Stage::Open;
                }
                Err(error) => return Err(malformed(error.to_string())),
            }
        }
        let mut completed = 0u32;
        while at < data.len() {
            if self.remaining == 0 {
                let parsed = match parse_head(&data[at..]) {
                    Ok(Status::Partial) => break,
                    Ok(Status::Complete(parsed)) => parsed,
                    Err(error) => return Err(malformed(error.to_string())),
                };
                let head = parsed.value;
                at += parsed.consumed;
                match head.opcode {
                    OpCode::Close => return Err(malformed("the server closed the connection")),
                    OpCode::Ping | OpCode::Pong => self.control = true,
                    _ => self.control = false,
                }
                self.fin = head.fin;
                self.remaining = head.len;
                if head.len > 0 {
                    continue;
                }
            } else {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len() - at);
                if !self.control {
                    if self.at + n > self.message.len() {
                        return Err(ResponseError::Mismatch { offset: self.at });
                    }
                    if self.verify {
                        let expected = &self.message[self.at..self.at + n];
                        if let Some(i) = expected
                            .iter()
                            .zip(&data[at..at + n])
                            .position(|(a, b)| a != b)
                        {
                            return Err(ResponseError::Mismatch {
                                offset: self.at + i,
                            });
                        }
                    }
                    self.at += n;
                }
                at += n;
                self.remaining -= n as u64;
                if self.remaining > 0 {
                    continue;
                }
            }
            // A frame ended.
            if !self.control && self.fin {
                if self.at != self.message.len() {
                    return Err(ResponseError::Mismatch { offset: self.at });
                }
                self.at = 0;
                completed += 1;
            }
        }
        Ok(Progress {
            consumed: at,
            completed,
            ..Progress::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_then_echoes_in_pieces() {
        let message = Bytes::from_static(b"hello websocket");
        let mut session = WsEchoSession::new("h", "/", message.clone(), false, true, 42);
        let mut out = BytesMut::new();
        session.on_connect(&mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let accept = ringwork_protocols::websocket::proto::handshake::accept_key(key.as_bytes());
        assert!(!session.ready());
        let mut wire = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        // Two echoes and a ping between them, unmasked.
        for _ in 0..2 {
            wire.extend_from_slice(&[0x82, message.len() as u8]);
            wire.extend_from_slice(&message);
            wire.extend_from_slice(&[0x89, 0x00]);
        }
        // Fed in pieces, with what was not consumed handed back (as the driver does).
        let mut pending = Vec::new();
        let mut completed = 0;
        for chunk in wire.chunks(5) {
            pending.extend_from_slice(chunk);
            let progress = session.on_bytes(&pending).unwrap();
            pending.drain(..progress.consumed);
            completed += progress.completed;
        }
        assert!(session.ready());
        assert_eq!(completed, 2);
        assert!(pending.is_empty());
    }
}
