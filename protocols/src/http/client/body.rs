//! Streamed request bodies: [`BodySource`] (what the client pulls body pieces from),
//! [`StreamBody`] (a source attached to a [`ClientRequest`](super::ClientRequest)) and the
//! pump that writes it to the connection under backpressure.
//!
//! Owns: the pump task that pulls a streamed body from its source into the connection
//! (the connection's machine frames it, sized or chunked, and checks its length).
//! Contract: the pump pulls the next piece only while the connection's write buffer is
//! below its high watermark (after `write_drained` otherwise), so memory per upload is one
//! piece plus the buffer. A source error or a length mismatch aborts the connection; the
//! request then fails with [`ClientError::RequestBody`] or
//! [`ClientError::RequestBodyLength`].
//! A response that completes before the upload ended closes the connection (the server
//! may not have read the rest): it never returns to the pool mid-body.
//! Does not: retry (a streamed body is consumed as it is sent) or send request trailers.
//! Spec: RFC 9112 §6.2 (Content-Length), §7.1 (chunked).

use std::cell::RefCell;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;

use crate::http::client::conn::{Command, Conn};
use crate::http::client::error::ClientError;
use crate::http::server::{BodyError, RequestBody};

/// The future of one [`BodySource::next_chunk`] call.
pub type NextChunk<'a> = Pin<Box<dyn Future<Output = Option<Result<Bytes, BodyError>>> + 'a>>;

/// Where a streamed request body comes from: the client calls
/// [`BodySource::next_chunk`] whenever the connection can take more.
///
/// A server's [`RequestBody`] is a source, so a proxy forwards a request body as it
/// arrives.
pub trait BodySource: 'static {
    /// The next piece of the body; `None` at its end; an error aborts the request.
    fn next_chunk(&mut self) -> NextChunk<'_>;
}

impl BodySource for RequestBody {
    fn next_chunk(&mut self) -> NextChunk<'_> {
        Box::pin(self.next())
    }
}

/// A streamed request body: a [`BodySource`] and, if known, its length.
///
/// With a length the request carries `Content-Length` and the source must yield exactly
/// that many bytes (it is not pulled again once they arrived; a piece that crosses the
/// length, or an end before it, fails the request); without one the body is sent chunked. Clones share the source, which
/// is taken by the first send.
#[derive(Clone)]
pub struct StreamBody {
    length: Option<u64>,
    source: Rc<RefCell<Option<Box<dyn BodySource>>>>,
}

impl StreamBody {
    /// A body pulled from `source`; `length` is its exact size, or `None` for chunked.
    #[must_use]
    pub fn new(source: impl BodySource, length: Option<u64>) -> Self {
        Self {
            length,
            source: Rc::new(RefCell::new(Some(Box::new(source)))),
        }
    }

    /// The declared length (`None`: chunked).
    #[must_use]
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// Takes the source (once).
    pub(crate) fn take(&self) -> Option<Box<dyn BodySource>> {
        self.source.borrow_mut().take()
    }
}

impl fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamBody")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// An upload waiting for its connection to be ready: the source and the declared length.
pub(crate) struct Upload {
    pub(crate) source: Box<dyn BodySource>,
    pub(crate) length: Option<u64>,
}

/// Feeds `upload` to connection `conn` piece by piece for its exchange `serial`: a piece
/// is pulled only when the connection published that it can take one (its write buffer is
/// below the high watermark), and the next only after the connection took it. Spawned once
/// the request head is written; ends with the body, a failure, or the connection.
pub(crate) async fn pump(conn: Conn, serial: u64, mut upload: Upload) {
    let mut sent: u64 = 0;
    loop {
        let open = poll_fn(|cx| {
            conn.poll_status(cx, |status, closed| {
                if closed {
                    Some(false)
                } else {
                    (status.upload_ready == Some(serial)).then_some(true)
                }
            })
        })
        .await;
        if !open {
            return;
        }
        let command = match upload.source.next_chunk().await {
            Some(Ok(piece)) if piece.is_empty() => continue,
            Some(Ok(piece)) => {
                sent += piece.len() as u64;
                Command::UploadPiece(serial, piece)
            }
            Some(Err(error)) => Command::UploadFailed(serial, ClientError::RequestBody(error)),
            None => Command::UploadEnd(serial),
        };
        let mut last = !matches!(command, Command::UploadPiece(..));
        // Not again until the connection ran and published anew.
        conn.status_mut().upload_ready = None;
        if conn.post(command).is_err() {
            return;
        }
        // A sized body is not pulled again once its length arrived.
        if !last && upload.length.is_some_and(|declared| sent >= declared) {
            last = true;
            let _ = conn.post(Command::UploadEnd(serial));
        }
        if last {
            return;
        }
    }
}
