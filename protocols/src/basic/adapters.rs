//! Engine adapters for the framing codecs: Twisted's `LineReceiver`, `NetstringReceiver`
//! and `IntNStringReceiver` as [`ringwork::Protocol`]s.
//!
//! Owns: [`FrameReceiver`] (any [`Decoder`] plus a [`FrameHandler`]), the line flavour
//! ([`LineReceiver`], [`LineHandler`], [`LineContext`]) and the aliases
//! [`NetstringReceiver`] and [`LengthPrefixedReceiver`].
//! Contract: `data_received` feeds the decoder and hands every complete frame to the handler,
//! in order, until the decoder needs more bytes, the connection starts closing, or the
//! decoder fails; a decode error reaches the handler once (default: close the connection)
//! and later input is ignored.
//! Does not: parse (see [`proto`](super::proto)); buffer beyond the decoder's limits.
//! Tests: `adapters/tests.rs` (over `ringwork::testing::StringTransport`).

use std::ops::{Deref, DerefMut};

use bytes::BytesMut;
use ringwork::{Context, LostReason, Protocol, TimerId};

use crate::basic::proto::Decoder;
use crate::basic::proto::length_prefixed::LengthPrefixedDecoder;
use crate::basic::proto::line::{
    Delimiter, LineDecoder, LineError, LineEvent, LineLimits, encode_line,
};
use crate::basic::proto::netstring::NetstringDecoder;

/// What a [`FrameReceiver`] calls: the frame-level callbacks of one connection.
///
/// Every callback that may change how input is decoded gets the decoder (for example to
/// switch a [`LineDecoder`] to raw mode); the change applies to the bytes not yet delivered.
pub trait FrameHandler<D: Decoder>: 'static {
    /// The connection is established.
    fn connection_made(&mut self, ctx: &mut Context<'_>, decoder: &mut D) {
        let _ = (ctx, decoder);
    }

    /// A complete frame arrived.
    fn frame_received(&mut self, ctx: &mut Context<'_>, decoder: &mut D, frame: D::Event);

    /// The peer sent invalid input; no frame follows. The default closes the connection.
    fn decode_error(&mut self, ctx: &mut Context<'_>, error: D::Error) {
        let _ = error;
        ctx.close();
    }

    /// The peer finished sending. The default closes the connection once all is sent.
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }

    /// A timer set on this connection fired.
    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let _ = (ctx, timer);
    }

    /// The write buffer passed its high watermark (see [`Protocol::pause_writing`]).
    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// The write buffer drained (see [`Protocol::write_drained`]).
    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// The connection is gone; the last callback.
    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        let _ = (ctx, reason);
    }
}

/// A [`Protocol`] that decodes its input with `D` and hands frames to `H`.
#[derive(Debug)]
pub struct FrameReceiver<D, H> {
    decoder: D,
    handler: H,
    failed: bool,
}

impl<D, H> FrameReceiver<D, H> {
    /// A receiver decoding with `decoder` and calling `handler`.
    #[must_use]
    pub fn with_decoder(decoder: D, handler: H) -> Self {
        Self {
            decoder,
            handler,
            failed: false,
        }
    }

    /// The handler.
    #[must_use]
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    #[must_use]
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The decoder.
    #[must_use]
    pub fn decoder(&self) -> &D {
        &self.decoder
    }
}

impl<D, H> Protocol for FrameReceiver<D, H>
where
    D: Decoder + 'static,
    H: FrameHandler<D>,
{
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.handler.connection_made(ctx, &mut self.decoder);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if self.failed {
            return;
        }
        self.decoder.handle_input(data);
        // Like Twisted, stop delivering once the connection is closing.
        while ctx.is_open() {
            match self.decoder.poll_event() {
                Ok(Some(frame)) => self.handler.frame_received(ctx, &mut self.decoder, frame),
                Ok(None) => break,
                Err(e) => {
                    self.failed = true;
                    self.handler.decode_error(ctx, e);
                    break;
                }
            }
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.handler.eof_received(ctx);
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        self.handler.pause_writing(ctx);
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        self.handler.write_drained(ctx);
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.handler.timer_fired(ctx, timer);
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        self.handler.connection_lost(ctx, reason);
    }
}

/// Netstrings over the engine: frames are payloads ([`bytes::Bytes`]).
pub type NetstringReceiver<H> = FrameReceiver<NetstringDecoder, H>;

/// Length-prefixed frames over the engine: frames are payloads ([`bytes::Bytes`]).
pub type LengthPrefixedReceiver<H> = FrameReceiver<LengthPrefixedDecoder, H>;

/// Lines over the engine (Twisted's `LineReceiver`): see [`LineHandler`].
pub type LineReceiver<H> = FrameReceiver<LineDecoder, Lines<H>>;

impl<H: LineHandler> LineReceiver<H> {
    /// A line receiver with [`Delimiter::Lf`] and default [`LineLimits`].
    #[must_use]
    pub fn new(handler: H) -> Self {
        Self::with_decoder(LineDecoder::new(), Lines(handler))
    }

    /// A line receiver with the given delimiter (also used by [`LineContext::send_line`])
    /// and limits.
    #[must_use]
    pub fn with_config(handler: H, delimiter: Delimiter, limits: LineLimits) -> Self {
        Self::with_decoder(LineDecoder::with_config(delimiter, limits), Lines(handler))
    }
}

/// What a [`LineReceiver`] calls.
pub trait LineHandler: 'static {
    /// The connection is established.
    fn connection_made(&mut self, ctx: &mut LineContext<'_, '_>) {
        let _ = ctx;
    }

    /// A line arrived (delimiter stripped).
    fn line_received(&mut self, ctx: &mut LineContext<'_, '_>, line: &[u8]);

    /// Bytes arrived in raw mode (see [`LineContext::set_raw`]). The default drops them.
    fn raw_data_received(&mut self, ctx: &mut LineContext<'_, '_>, data: &[u8]) {
        let _ = (ctx, data);
    }

    /// A line was longer than the limit; no line follows. The default closes the connection.
    fn line_too_long(&mut self, ctx: &mut Context<'_>, error: LineError) {
        let _ = error;
        ctx.close();
    }

    /// The peer finished sending. The default closes the connection once all is sent.
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }

    /// A timer set on this connection fired.
    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let _ = (ctx, timer);
    }

    /// The connection is gone; the last callback.
    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        let _ = (ctx, reason);
    }
}

/// The connection's [`Context`] plus line-mode controls, given to [`LineHandler`] callbacks.
/// Dereferences to the [`Context`] (write, close, timers, ...).
pub struct LineContext<'a, 'c> {
    ctx: &'a mut Context<'c>,
    decoder: &'a mut LineDecoder,
}

impl<'c> LineContext<'_, 'c> {
    /// Writes `line` followed by the receiver's delimiter.
    pub fn send_line(&mut self, line: &[u8]) {
        let mut out = BytesMut::new();
        encode_line(line, self.decoder.delimiter(), &mut out);
        self.ctx.write_bytes(out.freeze());
    }

    /// Switches raw mode on (bytes go to [`LineHandler::raw_data_received`]) or off (lines
    /// again). Bytes received but not yet delivered are delivered in the new mode.
    pub fn set_raw(&mut self, raw: bool) {
        self.decoder.set_raw(raw);
    }

    /// Switches to line mode and puts `extra` (unused raw bytes) in front of the input.
    pub fn set_line_mode_with(&mut self, extra: &[u8]) {
        self.decoder.set_line_mode_with(extra);
    }

    /// Whether the receiver is in raw mode.
    #[must_use]
    pub fn is_raw(&self) -> bool {
        self.decoder.is_raw()
    }

    /// The connection's context.
    #[must_use]
    pub fn context(&mut self) -> &mut Context<'c> {
        self.ctx
    }
}

impl<'c> Deref for LineContext<'_, 'c> {
    type Target = Context<'c>;

    fn deref(&self) -> &Context<'c> {
        self.ctx
    }
}

impl<'c> DerefMut for LineContext<'_, 'c> {
    fn deref_mut(&mut self) -> &mut Context<'c> {
        self.ctx
    }
}

/// Adapts a [`LineHandler`] to a [`FrameHandler`] over a [`LineDecoder`] (used by
/// [`LineReceiver`]).
#[derive(Debug)]
pub struct Lines<H>(pub H);

impl<H: LineHandler> FrameHandler<LineDecoder> for Lines<H> {
    fn connection_made(&mut self, ctx: &mut Context<'_>, decoder: &mut LineDecoder) {
        self.0.connection_made(&mut LineContext { ctx, decoder });
    }

    fn frame_received(
        &mut self,
        ctx: &mut Context<'_>,
        decoder: &mut LineDecoder,
        frame: LineEvent,
    ) {
        let mut lctx = LineContext { ctx, decoder };
        match frame {
            LineEvent::Line(line) => self.0.line_received(&mut lctx, &line),
            LineEvent::Raw(data) => self.0.raw_data_received(&mut lctx, &data),
        }
    }

    fn decode_error(&mut self, ctx: &mut Context<'_>, error: LineError) {
        self.0.line_too_long(ctx, error);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.0.eof_received(ctx);
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.0.timer_fired(ctx, timer);
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        self.0.connection_lost(ctx, reason);
    }
}

#[cfg(test)]
mod tests;
