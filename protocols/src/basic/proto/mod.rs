//! Sans-IO framing codecs (no `ringwork::` imports: this builds without the engine).
//!
//! Owns: the [`Decoder`] trait shared by [`line`](mod@line), [`netstring`] and [`length_prefixed`].
//! Contract: `handle_input` buffers bytes; `poll_event` returns the next frame, `Ok(None)`
//! when more bytes are needed (not an error), or the decoder's error, after which the decoder
//! is poisoned and keeps returning that error. The decoders hold their input, so this is the
//! event-polling side of a machine, not a parse of the caller's slice: it has no length
//! to return and does not use the parse convention of [`crate::kit::Status`].
//! Does not: do IO, read the clock, or allocate past a codec's limit plus one read.

pub mod length_prefixed;
pub mod line;
pub mod netstring;

#[cfg(test)]
pub(crate) mod test_support;

/// A push-style stream decoder: feed bytes, then poll for frames.
///
/// Call order:
/// 1. [`Decoder::handle_input`] with the bytes read;
/// 2. [`Decoder::poll_event`] until it returns `Ok(None)` (needs more bytes) or an error.
pub trait Decoder {
    /// A decoded frame.
    type Event;
    /// Why the input is invalid (peer misbehaviour).
    type Error: std::error::Error + Clone + 'static;

    /// Buffers `data`. Once the decoder has failed, input is discarded.
    fn handle_input(&mut self, data: &[u8]);

    /// The next decoded frame, or `Ok(None)` when more input is needed.
    ///
    /// # Errors
    /// The codec's error for invalid input; the decoder then stays failed.
    fn poll_event(&mut self) -> Result<Option<Self::Event>, Self::Error>;

    /// Bytes buffered and not yet delivered.
    fn buffered(&self) -> usize;
}
