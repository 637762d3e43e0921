//! [`WsConn`]: one WebSocket connection as a kit machine, client or server.
//!
//! Owns: the connection's stages (opening handshake, open, closing, done), the frame reader
//! (heads gathered across reads, payloads copied once out of the read buffer and unmasked
//! as they are copied, messages assembled under [`WsConfig::max_message`], text checked as
//! it arrives), control frames (automatic pongs, keepalive pings, the close handshake), the
//! writer (frames masked by role, compressed when negotiated) and the deadlines.
//! Contract: the kit's [`Machine`] contract; see the [module docs](super) for how a
//! connection starts. Payload handling: a payload is copied exactly once, out of the read
//! buffer the engine lends (`handle_input(&[u8])` bytes live only for the call), into the
//! message buffer, and unmasked in that same pass; the finished message is handed to the
//! application as `Bytes` over that buffer, without another copy. A compressed message is
//! unmasked into a scratch buffer and inflated into the message buffer. Sending, a server
//! shares large payloads (no copy: the frame head goes in front of the caller's `Bytes`);
//! a client must mask, which is a copy.
//! Does not: log, read clocks or pick its own randomness.
//! Spec: RFC 6455 §5 (framing), §5.5 (control frames), §7 (closing), §8.1 (UTF-8).

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::deflate::{Deflater, InflateError, Inflater};
use super::frame::{self, FrameHead, MAX_HEAD, OpCode};
use super::handshake::{self, ClientHandshake, HandshakeError, Negotiated, WsRequest};
use super::{CloseCode, CloseInfo, Message, WsConfig, WsError};
use crate::http::proto::{Method, Status, parse_request, parse_response};
use crate::kit::{Close, Machine, Output};

/// What a [`WsConn`] tells its application.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum WsEvent {
    /// The connection is open: what the handshake settled (the first event).
    Open(Negotiated),
    /// A whole message.
    Message(Message),
    /// A ping arrived (answered with a pong already).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The peer began the close handshake (its close frame was answered already): nothing
    /// more arrives; [`WsEvent::Closed`] follows.
    Closing {
        /// Its code ([`CloseCode::NO_STATUS`] when it sent none).
        code: CloseCode,
        /// Its reason.
        reason: String,
    },
    /// After the transport was full, [`WsConn::can_send`] is true again.
    Drained,
    /// The WebSocket connection is closed (the last event): sending is over.
    Closed(CloseInfo),
}

/// Why a send was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The opening handshake has not finished.
    #[error("the connection is not open yet")]
    NotOpen,
    /// A close frame was sent, or the connection is over.
    #[error("the connection is closing")]
    Closing,
    /// A control frame payload over 125 bytes, a close code no endpoint may send, or a
    /// close reason that does not fit.
    #[error("invalid control frame")]
    InvalidControl,
    /// A pre-encoded frame on a client connection (client frames must be masked), or a
    /// compressed one where permessage-deflate was not negotiated.
    #[error("pre-encoded frame not allowed on this connection")]
    NotAllowed,
}

/// Which end of the connection this machine is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Role {
    Client,
    Server,
}

/// Where the connection stands.
#[derive(Debug)]
enum Stage {
    /// A server reading the upgrade request itself.
    ServerHandshake { buf: BytesMut },
    /// A client waiting for the `101`.
    ClientHandshake {
        handshake: Box<ClientHandshake>,
        buf: BytesMut,
    },
    /// Frames flow.
    Open,
    /// No more frames are read: a close frame arrived, or the connection failed (input is
    /// dropped until the transport ends).
    Done,
}

/// A close frame decided while reading, sent at the next poll: after the application has
/// had the messages that came before it (and could still answer them).
#[derive(Debug)]
enum Ending {
    /// The peer's close frame: answer it.
    Reply(CloseInfo),
    /// The peer broke the protocol: fail with its code.
    Fail(WsError),
}

/// The frame being read.
#[derive(Debug)]
struct InFrame {
    head: FrameHead,
    remaining: u64,
    /// Payload bytes seen so far (the masking key's position).
    offset: usize,
}

/// The message being assembled.
#[derive(Debug)]
struct InMessage {
    text: bool,
    compressed: bool,
    /// A compressed message, inflated (an uncompressed one is assembled in
    /// [`WsConn::arena`]).
    buf: Vec<u8>,
    /// Bytes of the message known to be valid UTF-8 (text only).
    checked: usize,
}

/// Uncompressed messages up to this size leave the receive arena's buffer to the connection
/// for reuse; after a larger one the arena starts afresh (the large buffer is then freed with
/// the application's last handle to the message), so an idle connection holds a few KiB at
/// most (the buffer can have grown to about twice this).
const ARENA_KEEP: usize = 4096;

/// One WebSocket connection (see the module docs).
#[derive(Debug)]
pub struct WsConn {
    role: Role,
    config: WsConfig,
    stage: Stage,
    rng: Option<StdRng>,
    /// A frame head being gathered across reads.
    head: [u8; MAX_HEAD],
    head_len: usize,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    /// Where uncompressed messages are assembled: each leaves as `Bytes` over the arena's
    /// buffer, whose space is reused for the next message once the application has dropped
    /// the last one (an echo drops it when it is copied out), so a message costs no
    /// allocation after the first.
    arena: BytesMut,
    control: Vec<u8>,
    scratch: Vec<u8>,
    deflater: Option<Deflater>,
    inflater: Option<Inflater>,
    /// Our compressor must start afresh before its next message (a shared frame went out
    /// in between).
    deflater_stale: bool,
    /// Messages shorter than this are sent uncompressed.
    deflate_min: usize,
    events: VecDeque<WsEvent>,
    out: Output,
    pending_pong: Option<Bytes>,
    /// The handshake finished.
    opened: bool,
    ending: Option<Ending>,
    close_sent: bool,
    close_received: bool,
    closed_reported: bool,
    /// Set by an application call: start the close timer at the next poll.
    arm_close_timer: bool,
    handshake_deadline: Option<Instant>,
    ping_deadline: Option<Instant>,
    pong_deadline: Option<Instant>,
    close_deadline: Option<Instant>,
    pings_sent: u64,
    writable: bool,
    /// The application paused reading ([`WsConn::pause_reading`]).
    reading_paused: bool,
    eof: bool,
    lost: bool,
    /// What the transport must do next, and what it was last told.
    close: Option<Close>,
    close_done: bool,
    /// Half-close asked for (failing: our close frame, then FIN, then wait for theirs).
    write_closed: bool,
}

impl WsConn {
    fn new(role: Role, config: WsConfig, stage: Stage) -> Self {
        let rng = (role == Role::Client).then(|| StdRng::from_seed(config.mask_seed));
        Self {
            role,
            config,
            stage,
            rng,
            head: [0; MAX_HEAD],
            head_len: 0,
            frame: None,
            message: None,
            arena: BytesMut::new(),
            control: Vec::new(),
            scratch: Vec::new(),
            deflater: None,
            inflater: None,
            deflater_stale: false,
            deflate_min: 0,
            events: VecDeque::new(),
            out: Output::new(),
            pending_pong: None,
            opened: false,
            ending: None,
            close_sent: false,
            close_received: false,
            closed_reported: false,
            arm_close_timer: false,
            handshake_deadline: None,
            ping_deadline: None,
            pong_deadline: None,
            close_deadline: None,
            pings_sent: 0,
            writable: true,
            reading_paused: false,
            eof: false,
            lost: false,
            close: None,
            close_done: false,
            write_closed: false,
        }
    }

    /// A server connection whose handshake an HTTP server answered (`101` sent) with
    /// `negotiated`. Its first event is [`WsEvent::Open`].
    #[must_use]
    pub fn server(config: WsConfig, negotiated: Negotiated) -> Self {
        let mut conn = Self::new(Role::Server, config, Stage::Open);
        conn.open(negotiated);
        conn
    }

    /// A server connection that reads the upgrade request and answers it itself (`101`, or
    /// 400/426 and a close).
    #[must_use]
    pub fn accept(config: WsConfig) -> Self {
        Self::new(
            Role::Server,
            config,
            Stage::ServerHandshake {
                buf: BytesMut::new(),
            },
        )
    }

    /// A client connection: it sends the handshake for `request` once connected.
    #[must_use]
    pub fn client(config: WsConfig, request: &WsRequest) -> Self {
        let mut conn = Self::new(
            Role::Client,
            config,
            Stage::Done, // replaced below
        );
        let mut key = [0u8; 16];
        if let Some(rng) = &mut conn.rng {
            rng.fill_bytes(&mut key);
        }
        let (handshake, bytes) = ClientHandshake::new(request, &conn.config, key);
        conn.out.write_bytes(bytes);
        conn.stage = Stage::ClientHandshake {
            handshake: Box::new(handshake),
            buf: BytesMut::new(),
        };
        conn
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &WsConfig {
        &self.config
    }

    /// Whether the connection is open and this side has not sent a close frame.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.opened && !self.close_sent && !self.closed_reported && !self.lost
    }

    /// Whether messages sent now go out without growing the machine's buffer: open, the
    /// transport writable, and less than [`WsConfig::send_buffer`] queued.
    #[must_use]
    pub fn can_send(&self) -> bool {
        self.is_open() && self.writable && self.out.len() < self.config.send_buffer
    }

    /// Stops reading until [`WsConn::resume_reading`]: the application's backpressure. An
    /// echo or relay that answers what it reads pauses while [`WsConn::can_send`] is false
    /// and resumes on [`WsEvent::Drained`], so a peer that does not read cannot make it
    /// buffer. (The machine does not pause on its own when the transport is full: a client
    /// that stopped reading whenever it could not write would deadlock with a server doing
    /// the same.)
    pub fn pause_reading(&mut self) {
        self.reading_paused = true;
    }

    /// Reads again after [`WsConn::pause_reading`].
    pub fn resume_reading(&mut self) {
        self.reading_paused = false;
    }

    /// Bytes queued in the machine, not yet taken by the transport.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Bytes held of incoming data: the message being assembled and the handshake head.
    /// For diagnostics and fuzzing.
    #[must_use]
    pub fn held_input(&self) -> usize {
        let message = self.message.as_ref().map_or(0, |m| m.buf.capacity()) + self.arena.len();
        let stage = match &self.stage {
            Stage::ServerHandshake { buf } | Stage::ClientHandshake { buf, .. } => buf.len(),
            _ => 0,
        };
        message + stage + self.scratch.capacity() + self.control.capacity()
    }

    /// Whether permessage-deflate is in use.
    #[must_use]
    pub fn is_compressed(&self) -> bool {
        self.deflater.is_some()
    }

    /// Sends a message (compressed when permessage-deflate is on and it is large enough).
    ///
    /// # Errors
    /// [`SendError::NotOpen`], [`SendError::Closing`].
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.send_fragmented(message, usize::MAX)
    }

    /// Sends a message cut into frames of at most `fragment` payload bytes (RFC 6455 §5.4).
    ///
    /// # Errors
    /// As [`WsConn::send`].
    pub fn send_fragmented(&mut self, message: Message, fragment: usize) -> Result<(), SendError> {
        self.check_open()?;
        let opcode = if message.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let payload = message.into_bytes();
        let (payload, compressed) = match &mut self.deflater {
            Some(deflater) if payload.len() >= self.deflate_min => {
                if std::mem::take(&mut self.deflater_stale) {
                    deflater.reset();
                }
                let mut out = Vec::new();
                deflater.compress(&payload, &mut out);
                (Bytes::from(out), true)
            }
            _ => (payload, false),
        };
        let fragment = fragment.max(1);
        if payload.len() <= fragment {
            self.write_frame(opcode, true, compressed, payload);
            return Ok(());
        }
        let mut at = 0;
        let mut first = true;
        while at < payload.len() {
            let end = payload.len().min(at + fragment);
            let op = if first { opcode } else { OpCode::Continuation };
            self.write_frame(
                op,
                end == payload.len(),
                compressed && first,
                payload.slice(at..end),
            );
            first = false;
            at = end;
        }
        Ok(())
    }

    /// Sends a frame encoded once for many connections by [`encode_shared`] (a broadcast:
    /// one encoding per message, not per subscriber). Server connections only; a compressed
    /// frame only where permessage-deflate was negotiated (our own compressor then starts
    /// its next message afresh, since the peer's window now holds the shared one).
    ///
    /// # Errors
    /// [`SendError::NotAllowed`], [`SendError::NotOpen`], [`SendError::Closing`].
    pub fn send_shared(&mut self, frame: &SharedFrame) -> Result<(), SendError> {
        self.check_open()?;
        if self.role != Role::Server || (frame.compressed && self.deflater.is_none()) {
            return Err(SendError::NotAllowed);
        }
        if frame.compressed {
            self.deflater_stale = true;
        }
        self.out.write_bytes(frame.bytes.clone());
        Ok(())
    }

    /// Sends a ping (at most 125 bytes of payload).
    ///
    /// # Errors
    /// [`SendError::InvalidControl`], [`SendError::NotOpen`], [`SendError::Closing`].
    pub fn ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.check_open()?;
        if payload.len() > 125 {
            return Err(SendError::InvalidControl);
        }
        self.write_frame(OpCode::Ping, true, false, payload);
        Ok(())
    }

    /// Starts the close handshake with `code` and `reason` (RFC 6455 §7.1.2): a close
    /// frame; the connection ends once the peer answers, or after
    /// [`WsConfig::close_timeout`].
    ///
    /// # Errors
    /// [`SendError::InvalidControl`] for a code no endpoint may send or a reason over 123
    /// bytes; [`SendError::Closing`] when a close frame was sent already.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.is_sendable() || reason.len() > 123 {
            return Err(SendError::InvalidControl);
        }
        if self.close_sent || self.closed_reported || self.lost || self.ending.is_some() {
            return Err(SendError::Closing);
        }
        if !self.opened {
            // Before the handshake finished there is nothing to close politely.
            self.finish(CloseInfo {
                code,
                reason: reason.to_owned(),
                clean: false,
                error: None,
            });
            self.close_now(Close::Graceful);
            return Ok(());
        }
        self.send_close(code, reason);
        self.arm_close_timer = true;
        Ok(())
    }

    fn check_open(&self) -> Result<(), SendError> {
        match self.stage {
            Stage::ServerHandshake { .. } | Stage::ClientHandshake { .. } => {
                Err(SendError::NotOpen)
            }
            _ if !self.is_open() || self.lost => Err(SendError::Closing),
            _ => Ok(()),
        }
    }

    // ---- writing ----

    fn write_frame(&mut self, opcode: OpCode, fin: bool, rsv1: bool, payload: Bytes) {
        let mask = self.rng.as_mut().map(|rng| {
            let mut key = [0u8; 4];
            rng.fill_bytes(&mut key);
            key
        });
        let head = FrameHead {
            fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            len: payload.len() as u64,
        };
        let buffer = self.out.buffer();
        let before = buffer.len();
        frame::encode_head(buffer, &head);
        match mask {
            Some(key) => {
                // RFC 6455 §5.3: a client masks every frame; the masked copy is the copy.
                let start = buffer.len();
                buffer.put_slice(&payload);
                frame::apply_mask(&mut buffer[start..], key, 0);
                let n = buffer.len() - before;
                self.out.wrote(n);
            }
            None => {
                let n = buffer.len() - before;
                self.out.wrote(n);
                self.out.write_bytes(payload);
            }
        }
    }

    fn send_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = BytesMut::with_capacity(2 + reason.len());
        if code != CloseCode::NO_STATUS {
            payload.put_u16(code.0);
            payload.put_slice(reason.as_bytes());
        }
        self.write_frame(OpCode::Close, true, false, payload.freeze());
        self.close_sent = true;
        self.pending_pong = None;
    }

    // ---- opening ----

    fn open(&mut self, negotiated: Negotiated) {
        if let (Some(params), Some(config)) = (negotiated.deflate, &self.config.deflate) {
            let (ours, theirs, our_reset, their_reset) = match self.role {
                Role::Server => (
                    params.server_max_window_bits,
                    params.client_max_window_bits,
                    params.server_no_context_takeover,
                    params.client_no_context_takeover,
                ),
                Role::Client => (
                    params.client_max_window_bits,
                    params.server_max_window_bits,
                    params.client_no_context_takeover,
                    params.server_no_context_takeover,
                ),
            };
            self.deflater = Some(Deflater::new(config.level, ours, our_reset));
            self.inflater = Some(Inflater::new(theirs, their_reset));
            self.deflate_min = config.min_size;
        }
        self.stage = Stage::Open;
        self.opened = true;
        self.handshake_deadline = None;
        self.events.push_back(WsEvent::Open(negotiated));
    }

    /// Input during a handshake; returns the bytes after the head (frames), if it ended.
    fn handshake_input(&mut self, data: &[u8]) -> Option<Bytes> {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        match stage {
            Stage::ServerHandshake { mut buf } => {
                buf.extend_from_slice(data);
                match parse_request(&buf, &self.config.limits) {
                    Ok(Status::Partial) => {
                        self.stage = Stage::ServerHandshake { buf };
                        None
                    }
                    Ok(Status::Complete(parsed)) => {
                        let rest = buf.split_off(parsed.consumed).freeze();
                        match handshake::check_request(&parsed.head, &self.config) {
                            Ok(accepted) => {
                                self.out.write_bytes(accepted.response_bytes());
                                self.open(accepted.negotiated);
                                Some(rest)
                            }
                            Err(error) => {
                                self.refuse(&error);
                                self.fail(WsError::Handshake(error));
                                None
                            }
                        }
                    }
                    Err(error) => {
                        let error = HandshakeError::Http(error.to_string());
                        self.refuse(&error);
                        self.fail(WsError::Handshake(error));
                        None
                    }
                }
            }
            Stage::ClientHandshake { handshake, mut buf } => {
                buf.extend_from_slice(data);
                match parse_response(&buf, &self.config.limits, &Method::Get) {
                    Ok(Status::Partial) => {
                        self.stage = Stage::ClientHandshake { handshake, buf };
                        None
                    }
                    Ok(Status::Complete(parsed)) => match handshake.check(&parsed.head) {
                        Ok(negotiated) => {
                            let rest = buf.split_off(parsed.consumed).freeze();
                            self.open(negotiated);
                            Some(rest)
                        }
                        Err(error) => {
                            self.fail(WsError::Handshake(error));
                            None
                        }
                    },
                    Err(error) => {
                        self.fail(WsError::Handshake(HandshakeError::Http(error.to_string())));
                        None
                    }
                }
            }
            other => {
                self.stage = other;
                None
            }
        }
    }

    /// A server's refusal of a bad handshake request.
    fn refuse(&mut self, error: &HandshakeError) {
        let status = error.status();
        let reason = crate::http::proto::reason_phrase(status);
        let extra = if status == 426 {
            "Sec-WebSocket-Version: 13\r\n"
        } else {
            ""
        };
        let body = format!("{error}\n");
        self.out.write(
            format!(
                "HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }

    // ---- reading ----

    fn read(&mut self, mut data: &[u8]) -> Result<(), WsError> {
        while !data.is_empty() && matches!(self.stage, Stage::Open) {
            let Some(frame) = &mut self.frame else {
                // Gather the head: its first two bytes say how long it is.
                if self.head_len < 2 {
                    let take = (2 - self.head_len).min(data.len());
                    self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                    self.head_len += take;
                    data = &data[take..];
                    if self.head_len < 2 {
                        continue;
                    }
                }
                let want = frame::head_len([self.head[0], self.head[1]]);
                let take = (want - self.head_len).min(data.len());
                self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                self.head_len += take;
                data = &data[take..];
                if self.head_len < want {
                    continue;
                }
                let parsed = frame::parse_head(&self.head[..self.head_len])?;
                self.head_len = 0;
                let Some(parsed) = parsed.complete() else {
                    // The head was gathered to its full length: cannot be partial.
                    return Err(WsError::Head(frame::HeadError::LengthTooLong));
                };
                self.begin_frame(parsed.value)?;
                continue;
            };
            let take = usize::try_from(frame.remaining)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let (head, offset) = (frame.head, frame.offset);
            frame.remaining -= take as u64;
            frame.offset += take;
            let done = frame.remaining == 0;
            self.payload(&head, &data[..take], offset)?;
            data = &data[take..];
            if done {
                self.frame = None;
                self.end_frame(&head)?;
            }
        }
        Ok(())
    }

    fn begin_frame(&mut self, head: FrameHead) -> Result<(), WsError> {
        // RFC 6455 §5.2: RSV1-3 MUST be 0 unless an extension defines them;
        // permessage-deflate defines RSV1 on the first frame of a data message (RFC 7692 §6).
        let first_data = matches!(head.opcode, OpCode::Text | OpCode::Binary);
        if head.rsv2 || head.rsv3 || (head.rsv1 && !(first_data && self.inflater.is_some())) {
            return Err(WsError::ReservedBits);
        }
        // RFC 6455 §5.1: a server MUST close on an unmasked frame; a client on a masked one.
        match (self.role, head.mask.is_some()) {
            (Role::Server, false) => return Err(WsError::Unmasked),
            (Role::Client, true) => return Err(WsError::Masked),
            _ => {}
        }
        let compressed = head.rsv1
            || (head.opcode == OpCode::Continuation
                && self.message.as_ref().is_some_and(|m| m.compressed));
        // Incompressible data grows a little when deflated (5 bytes per stored block of up
        // to 64 KiB): a compressed frame may pass the limit by that much, its inflated size
        // is held to `max_message`.
        let frame_limit = if compressed {
            self.config
                .max_frame
                .saturating_add(self.config.max_frame / 1024 + 1024)
        } else {
            self.config.max_frame
        };
        if head.len > frame_limit as u64 {
            return Err(WsError::FrameTooBig {
                len: head.len,
                limit: frame_limit,
            });
        }
        let limit = self.config.max_message;
        match head.opcode {
            OpCode::Continuation => {
                // RFC 6455 §5.4: a continuation belongs to a message in progress.
                let message = self
                    .message
                    .as_mut()
                    .ok_or(WsError::UnexpectedContinuation)?;
                if !message.compressed && self.arena.len() as u64 + head.len > limit as u64 {
                    return Err(WsError::MessageTooBig { limit });
                }
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(WsError::ExpectedContinuation);
                }
                if !head.rsv1 && head.len > limit as u64 {
                    return Err(WsError::MessageTooBig { limit });
                }
                // One frame, uncompressed: room for exactly its size (bounded above). The
                // arena is empty here (each message leaves it whole) and takes back its
                // buffer if the application dropped the last message.
                if !head.rsv1 {
                    let capacity = if head.fin {
                        head.len as usize
                    } else {
                        (head.len as usize).min(64 * 1024)
                    };
                    self.arena.reserve(capacity);
                }
                self.message = Some(InMessage {
                    text: head.opcode == OpCode::Text,
                    compressed: head.rsv1,
                    buf: Vec::new(),
                    checked: 0,
                });
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => self.control.clear(),
        }
        if head.len == 0 {
            return self.end_frame(&head);
        }
        self.frame = Some(InFrame {
            head,
            remaining: head.len,
            offset: 0,
        });
        Ok(())
    }

    fn payload(&mut self, head: &FrameHead, data: &[u8], offset: usize) -> Result<(), WsError> {
        if head.opcode.is_control() {
            frame::extend_masked(&mut self.control, data, head.mask, offset);
            return Ok(());
        }
        let limit = self.config.max_message;
        let Some(message) = &mut self.message else {
            return Err(WsError::UnexpectedContinuation);
        };
        if message.compressed {
            self.scratch.clear();
            frame::extend_masked(&mut self.scratch, data, head.mask, offset);
            let Some(inflater) = &mut self.inflater else {
                return Err(WsError::ReservedBits);
            };
            inflater
                .inflate(&self.scratch, &mut message.buf, limit)
                .map_err(inflate_error)?;
            if self.scratch.capacity() > 64 * 1024 {
                self.scratch = Vec::new();
            }
            if message.text {
                check_utf8(&message.buf, &mut message.checked, false)?;
            }
        } else {
            let start = self.arena.len();
            self.arena.extend_from_slice(data);
            if let Some(key) = head.mask {
                frame::apply_mask(&mut self.arena[start..], key, offset);
            }
            if message.text {
                check_utf8(&self.arena, &mut message.checked, false)?;
            }
        }
        Ok(())
    }

    fn end_frame(&mut self, head: &FrameHead) -> Result<(), WsError> {
        match head.opcode {
            OpCode::Ping => {
                let payload = Bytes::copy_from_slice(&self.control);
                if !self.close_sent {
                    // RFC 6455 §5.5.2-§5.5.3: answer with a pong carrying the same data; only
                    // the latest ping needs one if several are waiting.
                    self.pending_pong = Some(payload.clone());
                }
                self.events.push_back(WsEvent::Ping(payload));
            }
            OpCode::Pong => {
                self.pong_deadline = None;
                self.events
                    .push_back(WsEvent::Pong(Bytes::copy_from_slice(&self.control)));
            }
            OpCode::Close => self.close_frame()?,
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if head.fin {
                    self.end_message()?;
                }
            }
        }
        Ok(())
    }

    fn end_message(&mut self) -> Result<(), WsError> {
        let Some(mut message) = self.message.take() else {
            return Ok(());
        };
        let limit = self.config.max_message;
        let payload = if message.compressed {
            if let Some(inflater) = &mut self.inflater {
                inflater
                    .finish(&mut message.buf, limit)
                    .map_err(inflate_error)?;
            }
            Bytes::from(message.buf)
        } else {
            let payload = self.arena.split().freeze();
            if payload.len() > ARENA_KEEP {
                self.arena = BytesMut::new();
            }
            payload
        };
        let event = if message.text {
            check_utf8(&payload, &mut message.checked, true)?;
            Message::Text(payload)
        } else {
            Message::Binary(payload)
        };
        self.events.push_back(WsEvent::Message(event));
        Ok(())
    }

    /// The peer's close frame (RFC 6455 §5.5.1, §7.1.5).
    fn close_frame(&mut self) -> Result<(), WsError> {
        let (code, reason) = match self.control.as_slice() {
            [] => (CloseCode::NO_STATUS, String::new()),
            [_] => return Err(WsError::BadClosePayload),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_sendable() {
                    return Err(WsError::InvalidCloseCode(code.0));
                }
                let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
                (code, reason.to_owned())
            }
        };
        self.close_received = true;
        self.stage = Stage::Done;
        self.message = None;
        self.arena = BytesMut::new();
        self.frame = None;
        let info = CloseInfo {
            code,
            reason,
            clean: true,
            error: None,
        };
        if !self.close_sent {
            // §5.5.1: answer with a close frame, typically echoing the status code; at the
            // next poll, so that answers to the messages before it go first.
            self.events.push_back(WsEvent::Closing {
                code,
                reason: info.reason.clone(),
            });
            self.ending = Some(Ending::Reply(info));
            return Ok(());
        }
        self.finish(info);
        self.after_close_handshake();
        Ok(())
    }

    /// Both close frames are out: the transport's turn.
    fn after_close_handshake(&mut self) {
        match self.role {
            // §7.1.1: the server closes the TCP connection first.
            Role::Server => self.close_now(Close::Graceful),
            // A client waits for the server to close, up to the close timeout.
            Role::Client if self.eof => self.close_now(Close::Graceful),
            Role::Client => self.arm_close_timer = true,
        }
    }

    /// Sends the close frame decided while reading (see [`Ending`]).
    fn flush_ending(&mut self) {
        match self.ending.take() {
            None => {}
            Some(Ending::Reply(info)) => {
                self.send_close(info.code, "");
                self.finish(info);
                self.after_close_handshake();
            }
            Some(Ending::Fail(error)) => {
                self.send_close(error.close_code(), "");
                self.fail_transport(error);
            }
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): a close frame with the error's code when one
    /// may be sent, then a half-close; input is dropped until the peer ends its side or the
    /// close timeout passes.
    fn fail(&mut self, error: WsError) {
        self.stage = Stage::Done;
        self.message = None;
        self.arena = BytesMut::new();
        self.frame = None;
        if self.ending.is_some() {
            return; // A close frame is on its way already.
        }
        if error.sends_close() && !self.close_sent && !self.lost && !self.closed_reported {
            // At the next poll: answers to the messages before the bad frame go first.
            self.ending = Some(Ending::Fail(error));
            return;
        }
        self.fail_transport(error);
    }

    /// Reports a failure and ends the transport: at once when no close frame was sent (or
    /// the peer finished), else a half-close and a wait for the peer's end.
    fn fail_transport(&mut self, error: WsError) {
        self.pending_pong = None;
        let code = error.close_code();
        let reason = error.to_string();
        self.finish(CloseInfo {
            code,
            reason,
            clean: false,
            error: Some(error),
        });
        if self.eof || !self.close_sent {
            self.close_now(Close::Graceful);
        } else {
            self.write_closed = true;
            self.close_now(Close::Write);
            self.arm_close_timer = true;
        }
    }

    /// Reports the end once.
    fn finish(&mut self, info: CloseInfo) {
        if !self.closed_reported {
            self.closed_reported = true;
            self.ping_deadline = None;
            self.pong_deadline = None;
            self.handshake_deadline = None;
            self.events.push_back(WsEvent::Closed(info));
        }
    }

    fn close_now(&mut self, close: Close) {
        match (self.close, close) {
            // A half-close may be followed by a full one; nothing follows a full one.
            (None, _) | (Some(Close::Write), Close::Graceful | Close::Abort) => {
                self.close = Some(close);
            }
            _ => {}
        }
    }

    /// After every input or timeout: answer a ping, apply the end of input.
    fn settle(&mut self, now: Instant) {
        if let Some(pong) = self.pending_pong.take() {
            if self.is_open() && self.out.len() < self.config.send_buffer {
                self.write_frame(OpCode::Pong, true, false, pong);
            } else if self.is_open() {
                self.pending_pong = Some(pong);
            }
        }
        if self.arm_close_timer {
            self.arm_close_timer = false;
            self.close_deadline = Some(now + self.config.close_timeout);
        }
        if self.eof && !self.lost && self.ending.is_none() {
            if self.closed_reported {
                self.close_now(Close::Graceful);
            } else {
                self.fail(WsError::Eof);
            }
        }
    }
}

/// A frame encoded once for many server connections ([`WsConn::send_shared`]).
#[derive(Clone, Debug)]
pub struct SharedFrame {
    bytes: Bytes,
    compressed: bool,
}

impl SharedFrame {
    /// The frame's bytes.
    #[must_use]
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Whether it is compressed (for permessage-deflate connections only).
    #[must_use]
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }
}

/// Encodes `message` as one unmasked frame for [`WsConn::send_shared`]; with `deflater`
/// (a compressor without context takeover: `Deflater::new(level, 15, true)`), compressed
/// for permessage-deflate connections. Every server connection decodes such a frame
/// whatever its negotiated context takeover: it refers to nothing before it.
#[must_use]
pub fn encode_shared(message: &Message, deflater: Option<&mut Deflater>) -> SharedFrame {
    let opcode = if message.is_text() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let compressed = deflater.is_some();
    let mut payload = Vec::new();
    let body: &[u8] = match deflater {
        Some(deflater) => {
            deflater.reset();
            deflater.compress(message.as_bytes(), &mut payload);
            &payload
        }
        None => message.as_bytes(),
    };
    let mut out = BytesMut::with_capacity(MAX_HEAD + body.len());
    frame::encode_head(
        &mut out,
        &FrameHead {
            fin: true,
            rsv1: compressed,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            len: body.len() as u64,
        },
    );
    out.put_slice(body);
    SharedFrame {
        bytes: out.freeze(),
        compressed,
    }
}

fn inflate_error(error: InflateError) -> WsError {
    match error {
        InflateError::TooBig { limit } => WsError::MessageTooBig { limit },
        InflateError::Corrupt => WsError::Corrupt,
    }
}

/// Checks `buf[*checked..]` as UTF-8, leaving an incomplete sequence at the end for later
/// unless `finished` (RFC 6455 §8.1; a text message may split a character across frames).
fn check_utf8(buf: &[u8], checked: &mut usize, finished: bool) -> Result<(), WsError> {
    match std::str::from_utf8(&buf[*checked..]) {
        Ok(_) => {
            *checked = buf.len();
            Ok(())
        }
        Err(error) if error.error_len().is_none() && !finished => {
            *checked += error.valid_up_to();
            Ok(())
        }
        Err(_) => Err(WsError::InvalidUtf8),
    }
}

impl Machine for WsConn {
    type Event = WsEvent;

    fn handle_connected(&mut self, now: Instant) {
        match self.stage {
            Stage::ServerHandshake { .. } | Stage::ClientHandshake { .. } => {
                self.handshake_deadline = Some(now + self.config.handshake_timeout);
            }
            _ => {}
        }
        if let Some(interval) = self.config.ping_interval {
            self.ping_deadline = Some(now + interval);
        }
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.lost || self.close_done {
            return;
        }
        if let Some(interval) = self.config.ping_interval
            && self.is_open()
        {
            self.ping_deadline = Some(now + interval);
        }
        let result = match self.stage {
            Stage::ServerHandshake { .. } | Stage::ClientHandshake { .. } => {
                match self.handshake_input(data) {
                    Some(rest) => self.read(&rest),
                    None => Ok(()),
                }
            }
            Stage::Open => self.read(data),
            Stage::Done => Ok(()),
        };
        if let Err(error) = result {
            self.fail(error);
        }
        self.settle(now);
    }

    fn handle_eof(&mut self, now: Instant) {
        if self.eof {
            return;
        }
        self.eof = true;
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due = |deadline: Option<Instant>| deadline.is_some_and(|at| at <= now);
        if due(self.close_deadline) {
            self.close_deadline = None;
            self.finish(CloseInfo {
                code: CloseCode::ABNORMAL,
                reason: WsError::CloseTimeout.to_string(),
                clean: false,
                error: Some(WsError::CloseTimeout),
            });
            self.close_now(if self.close_received {
                Close::Graceful
            } else {
                Close::Abort
            });
        }
        if due(self.handshake_deadline) {
            self.handshake_deadline = None;
            self.fail(WsError::Handshake(HandshakeError::Timeout));
        }
        if due(self.pong_deadline) {
            self.pong_deadline = None;
            self.fail(WsError::PingTimeout);
        }
        if due(self.ping_deadline)
            && let Some(interval) = self.config.ping_interval
        {
            self.ping_deadline = Some(now + interval);
            if self.is_open() && self.pong_deadline.is_none() {
                self.pings_sent += 1;
                let payload = Bytes::copy_from_slice(&self.pings_sent.to_be_bytes());
                self.write_frame(OpCode::Ping, true, false, payload);
                self.pong_deadline = Some(now + self.config.ping_timeout);
            }
        }
        self.settle(now);
    }

    fn handle_writable(&mut self, writable: bool, now: Instant) {
        let was = self.can_send();
        self.writable = writable;
        if writable {
            self.settle(now);
            if !was && self.can_send() {
                self.events.push_back(WsEvent::Drained);
            }
        }
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        // A server going away says so (RFC 6455 §7.4.1: 1001).
        if self.is_open() {
            let _ = self.close(CloseCode::GOING_AWAY, "");
        } else if !matches!(self.stage, Stage::Open | Stage::Done) {
            self.stage = Stage::Done;
            self.finish(CloseInfo {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                clean: false,
                error: Some(WsError::Handshake(HandshakeError::Closed)),
            });
            self.close_now(Close::Graceful);
        }
    }

    fn handle_lost(&mut self, _now: Instant) {
        if self.lost {
            return;
        }
        self.lost = true;
        let error = match self.stage {
            Stage::ServerHandshake { .. } | Stage::ClientHandshake { .. } => {
                WsError::Handshake(HandshakeError::Closed)
            }
            _ => WsError::Lost,
        };
        self.stage = Stage::Done;
        self.message = None;
        self.arena = BytesMut::new();
        let info = match self.ending.take() {
            // The peer's close arrived; our answer could not go out.
            Some(Ending::Reply(info)) => CloseInfo {
                clean: false,
                ..info
            },
            Some(Ending::Fail(error)) => CloseInfo {
                code: error.close_code(),
                reason: error.to_string(),
                clean: false,
                error: Some(error),
            },
            None => CloseInfo {
                code: CloseCode::ABNORMAL,
                reason: error.to_string(),
                clean: false,
                error: Some(error),
            },
        };
        self.finish(info);
        self.out.clear();
        self.close_deadline = None;
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.ending.is_some() && !self.lost {
            self.flush_ending();
        }
        if self.arm_close_timer || self.pending_pong.is_some() || self.eof {
            self.settle(now);
        }
        if self.lost || self.close_done {
            return None;
        }
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<WsEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_done || !self.out.is_empty() || self.lost {
            return None;
        }
        let close = self.close.take()?;
        if close != Close::Write {
            self.close_done = true;
        }
        Some(close)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.lost || self.close_done {
            return None;
        }
        [
            self.handshake_deadline,
            self.ping_deadline,
            self.pong_deadline,
            self.close_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn wants_input(&self) -> bool {
        if self.lost || self.close_done {
            return false;
        }
        match self.stage {
            // Dropped anyway: read on to see the peer's end.
            Stage::Done => true,
            _ => !self.reading_paused && self.out.len() < self.config.send_buffer,
        }
    }
}

#[cfg(test)]
mod tests;
