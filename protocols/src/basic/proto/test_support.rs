//! Test driver shared by the frame codecs' tests (netstring, length-prefixed).

use bytes::Bytes;

use super::Decoder;

/// What a decoder produced from some input: its frames, then the error that stopped it.
#[derive(Debug, Eq, PartialEq)]
pub(crate) struct Outcome<E> {
    pub(crate) frames: Vec<Vec<u8>>,
    pub(crate) error: Option<E>,
}

/// Feeds `chunks` one at a time, polling every frame after each.
pub(crate) fn decode_chunks<D>(mut decoder: D, chunks: &[&[u8]]) -> Outcome<D::Error>
where
    D: Decoder<Event = Bytes>,
{
    let mut out = Outcome {
        frames: Vec::new(),
        error: None,
    };
    for chunk in chunks {
        decoder.handle_input(chunk);
        loop {
            match decoder.poll_event() {
                Ok(Some(frame)) => out.frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    break;
                }
            }
        }
    }
    out
}

/// `frames` and no error.
pub(crate) fn ok<E>(frames: &[&str]) -> Outcome<E> {
    Outcome {
        frames: frames.iter().map(|f| f.as_bytes().to_vec()).collect(),
        error: None,
    }
}

/// `frames`, then `error`.
pub(crate) fn err<E>(frames: &[&str], error: E) -> Outcome<E> {
    Outcome {
        error: Some(error),
        ..ok(frames)
    }
}
