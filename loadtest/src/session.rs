//! The one trait a protocol implements to be load-tested: [`Session`] (sans-IO).
//!
//! Owns: the contract between a protocol's bytes and the engine-side driver.
//! Contract: a session is one connection's protocol state. The driver owns the socket,
//! the clock, the send schedule (closed loop or constant rate), pipelining depth,
//! reconnects and the histograms; the session only writes requests and recognises
//! complete responses. Responses complete in the order requests were written.
//! Does not: touch sockets, read the clock or allocate per request (by convention).

use bytes::{Bytes, BytesMut};

/// What [`Session::on_bytes`] made of the bytes it was given.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Progress {
    /// Bytes used. The rest (an incomplete response prefix) is handed back, with more
    /// bytes appended, on the next call.
    pub consumed: usize,
    /// Responses completed by these bytes (matched, in order, to the oldest requests).
    pub completed: u32,
    /// Of `completed`, how many reported failure (HTTP: non-2xx).
    pub unsuccessful: u32,
    /// The peer announced it will close after the last completed response (HTTP
    /// `Connection: close`): the driver stops sending and reconnects.
    pub close: bool,
    /// What the completed responses were, when they share one label (DNS: the response
    /// code, `NOERROR`, `NXDOMAIN`, ...): the report counts responses by it.
    pub class: Option<&'static str>,
}

/// The peer sent bytes the session cannot accept; the connection is aborted and counted
/// as a `bad_response` error. The Display text is lowercase and unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The response could not be parsed.
    #[error("malformed response: {reason}")]
    Malformed {
        /// What was wrong (the parser's error).
        reason: String,
    },
    /// Echoed bytes differ from what was sent.
    #[error("echoed byte {offset} of a message differs from what was sent")]
    Mismatch {
        /// Offset in the message.
        offset: usize,
    },
    /// Bytes arrived at the end of the stream that do not finish a response.
    #[error("connection closed in the middle of a response")]
    Truncated,
}

/// One connection's protocol, driven by the load generator.
///
/// Call order, per connection:
/// 1. [`Session::on_connect`] once the connection is open (handshake bytes, if any);
/// 2. any number of [`Session::write_request`] (the driver decides when: pipelining depth,
///    rate) and [`Session::on_bytes`] (every received chunk; the session consumes a prefix);
/// 3. at the peer's end of stream, [`Session::on_eof`] (close-delimited responses).
///
/// A new connection (reconnect) gets a new session from the workload's factory.
///
/// Over datagrams (`run_udp`) the same trait applies per flow: each `write_request` is sent
/// as one datagram, each received datagram is one `on_bytes` call, and requests that time
/// out are reported with [`Session::expired`].
pub trait Session: 'static {
    /// The connection is open; append any bytes to send before the first request.
    fn on_connect(&mut self, out: &mut BytesMut) {
        let _ = out;
    }

    /// Whether requests may be written now (a handshake would say `false` until done).
    fn ready(&self) -> bool {
        true
    }

    /// Appends one request to `out`.
    fn write_request(&mut self, out: &mut BytesMut);

    /// The next request as ready-made shared bytes, when the session has them (a fixed echo
    /// message, precomputed HTTP requests): `None` (the default) means "call
    /// [`Session::write_request`]". A session that returns `Some` counts it as written, as
    /// `write_request` would. With one request in flight per connection the driver sends
    /// these bytes as they are (no copy into its buffer); otherwise it calls
    /// `write_request`.
    fn shared_request(&mut self) -> Option<Bytes> {
        None
    }

    /// Consumes received bytes.
    ///
    /// # Errors
    /// The bytes are not a valid response: the connection is aborted.
    fn on_bytes(&mut self, data: &[u8]) -> Result<Progress, ResponseError>;

    /// The driver gave up on the `requests` oldest outstanding requests (their timeout
    /// passed; datagram transports). A session that matches replies by id forgets them.
    fn expired(&mut self, requests: u32) {
        let _ = requests;
    }

    /// The peer finished sending; completes a close-delimited response if one is open.
    ///
    /// # Errors
    /// The stream ended inside a response that needed more bytes.
    fn on_eof(&mut self) -> Result<Progress, ResponseError> {
        Ok(Progress::default())
    }
}
