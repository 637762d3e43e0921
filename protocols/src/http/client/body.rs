//! Streamed request bodies: [`BodySource`] (what the client pulls body pieces from),
//! [`StreamBody`] (a source attached to a [`ClientRequest`](super::ClientRequest)) and the
//! pump that writes it to the connection under backpressure.
//!
//! Owns: the framing of a streamed body (raw bytes under a declared Content-Length, or
//! chunked), checking that a sized body has exactly its declared length, and the pump task.
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
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use ringwork::{ConnId, Deferred};

use crate::http::client::Inner;
use crate::http::client::conn::{ConnState, Phase};
use crate::http::client::error::ClientError;
use crate::http::proto::{Headers, encode};
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

/// What the pump asks the connection to do with the next piece.
enum Step {
    /// Write these framed bytes; `last` ends the body.
    Write { bytes: Bytes, last: bool },
    /// Abort the connection: the body is bad.
    Fail(ClientError),
}

/// Writes `upload` to connection `id` piece by piece, waiting for `write_drained` whenever
/// the write buffer is over its high watermark. Spawned once the request head is written.
pub(crate) async fn pump(
    client: Rc<Inner>,
    conn: Rc<RefCell<ConnState>>,
    id: ConnId,
    mut upload: Upload,
) {
    let chunked = upload.length.is_none();
    let mut sent: u64 = 0;
    loop {
        let open = poll_fn(|cx| {
            let mut state = conn.borrow_mut();
            if state.upload_closed {
                Poll::Ready(false)
            } else if !state.upload_blocked {
                Poll::Ready(true)
            } else {
                state.upload_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if !open {
            return;
        }
        let step = match upload.source.next_chunk().await {
            Some(Ok(piece)) if piece.is_empty() => continue,
            Some(Ok(piece)) => {
                sent += piece.len() as u64;
                match upload.length {
                    // RFC 9112 §6.2: the body must be exactly Content-Length bytes.
                    Some(declared) if sent > declared => {
                        Step::Fail(ClientError::RequestBodyLength { declared, sent })
                    }
                    _ if chunked => {
                        let mut out = BytesMut::with_capacity(piece.len() + 12);
                        encode::write_chunk_size(&mut out, piece.len());
                        out.extend_from_slice(&piece);
                        out.extend_from_slice(b"\r\n");
                        Step::Write {
                            bytes: out.freeze(),
                            last: false,
                        }
                    }
                    Some(n) => Step::Write {
                        bytes: piece,
                        last: sent == n,
                    },
                    None => unreachable!("chunked covers length None"),
                }
            }
            Some(Err(error)) => Step::Fail(ClientError::RequestBody(error)),
            None if chunked => {
                let mut out = BytesMut::with_capacity(5);
                // Writing an empty trailer section cannot fail.
                let _ = encode::write_last_chunk(&mut out, &Headers::new());
                Step::Write {
                    bytes: out.freeze(),
                    last: true,
                }
            }
            None if upload.length == Some(sent) => Step::Write {
                bytes: Bytes::new(),
                last: true,
            },
            // Ended short of its Content-Length.
            None => Step::Fail(ClientError::RequestBodyLength {
                declared: upload.length.unwrap_or_default(),
                sent,
            }),
        };
        let last = matches!(step, Step::Write { last: true, .. } | Step::Fail(_));
        let (written, resolver) = Deferred::new();
        let state = Rc::clone(&conn);
        let client_config_timeout = client.config.response_timeout;
        client.handle.run(move |reactor| {
            let open = reactor.with_conn(id, |ctx| {
                if !ctx.is_open() || state.borrow().upload_closed {
                    return false;
                }
                match step {
                    Step::Write { bytes, last } => {
                        if !bytes.is_empty() {
                            ctx.write_bytes(bytes);
                        }
                        let mut state = state.borrow_mut();
                        state.upload_done = last;
                        state.upload_blocked = !ctx.is_writable();
                        // The response timeout counts from the last byte sent: a slow
                        // upload is not a slow server.
                        if matches!(state.phase, Phase::Head(_)) {
                            if let Some(timer) = state.read_timer.take() {
                                ctx.cancel_timer(timer);
                            }
                            let timeout = client_config_timeout;
                            state.read_timer = Some(ctx.call_later(timeout));
                        }
                    }
                    Step::Fail(error) => {
                        state.borrow_mut().upload_error = Some(error);
                        ctx.abort();
                    }
                }
                true
            });
            resolver.resolve(open);
        });
        if !written.await.unwrap_or(false) || last {
            return;
        }
    }
}
