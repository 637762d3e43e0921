//! The protocol kit: a whole connection as a sans-IO *machine*, driven by one adapter.
//!
//! Owns: the [`Machine`] contract every ringwork protocol connection follows, the
//! [`Close`] it asks of its transport, the parse convention ([`Status`], [`Parsed`]), an
//! output queue that batches small writes and passes large ones without a copy
//! ([`Output`]), and the deterministic simulation that runs two machines against each other
//! without a reactor ([`sim`]: [`Pair`](sim::Pair) over a seeded, faulty link). With the
//! `engine` feature, `adapter` runs any machine on an engine connection for an application
//! written as callbacks, and `channel` for one written as a task (`async`).
//! Contract: a machine never touches a socket, a clock, a thread or shared mutable state.
//! Bytes and time go in (`handle_*`); bytes to send, events for the application, the next
//! deadline and the transport's fate come out (`poll_*`). The application talks to it
//! through the machine's own methods (`send_response(id, ..)` and the like).
//! Does not: know about the engine (this module builds without it, as CI checks) or
//! decide anything an application should (what to answer, what to log).
//! Design: docs/kit.md (with a worked example: a line protocol as a machine).
//!
//! # The call order
//! A driver (the engine adapter, [`sim::Pair`], a test, a fuzz target) runs a machine so:
//! 1. deliver what happened, with the time it happened: [`Machine::handle_connected`] once,
//!    then any of [`Machine::handle_input`], [`Machine::handle_eof`],
//!    [`Machine::handle_timeout`] (when [`Machine::poll_timeout`]'s instant has come),
//!    [`Machine::handle_writable`] and [`Machine::handle_shutdown`], and finally
//!    [`Machine::handle_lost`] if the transport dies;
//! 2. after each, poll until empty: [`Machine::poll_event`] (handing each event to the
//!    application, which may call the machine's own methods), [`Machine::poll_transmit`]
//!    (sending each buffer in order), then [`Machine::poll_close`];
//! 3. read [`Machine::wants_input`] (pause reading while it is false) and
//!    [`Machine::poll_timeout`] (arm one timer for it).
//!
//! A machine tolerates calls it does not expect (a timeout before its deadline, input after
//! it asked to close) by ignoring them; it never panics on peer bytes.

pub mod example;
pub mod output;
pub mod sim;

#[cfg(feature = "engine")]
pub mod adapter;
#[cfg(feature = "engine")]
pub mod channel;
#[cfg(feature = "engine")]
pub mod nested;

use std::time::Instant;

use bytes::Bytes;

pub use self::output::Output;

/// What a connection asks of its transport once every transmit so far has been sent.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Close {
    /// Half-close: the peer sees the end of the stream after the last byte; reading goes on.
    Write,
    /// Close after the last byte is sent (a FIN, then the connection is gone).
    Graceful,
    /// Reset now; bytes not yet sent are dropped.
    Abort,
}

/// A whole connection of one protocol, as a sans-IO state machine.
///
/// See the [module docs](self) for the order of calls. `now` is any monotonic instant the
/// driver chooses (the reactor's turn time, a simulated clock); a machine only compares
/// instants it was given.
pub trait Machine {
    /// What the application is told: requests, messages, responses, errors.
    type Event;

    /// The transport is established (an accepted connection, a connect that succeeded, a
    /// TLS handshake that finished). Machines start their first timers here. Default: nothing.
    fn handle_connected(&mut self, now: Instant) {
        let _ = now;
    }

    /// Bytes from the peer, in order. The machine takes all of them (copying what it must
    /// keep), also while [`Machine::wants_input`] is false: reads already in flight arrive
    /// after a pause.
    fn handle_input(&mut self, data: &[u8], now: Instant);

    /// The peer finished sending (its half-close, or the close before it).
    fn handle_eof(&mut self, now: Instant);

    /// Time passed: act on every deadline at or before `now`. Calls before a deadline do
    /// nothing.
    fn handle_timeout(&mut self, now: Instant);

    /// The transport's write buffer went over its high watermark (`false`) or drained below
    /// its low one (`true`). Machines stop producing (and reading) while it is full. Default:
    /// nothing.
    fn handle_writable(&mut self, writable: bool, now: Instant) {
        let _ = (writable, now);
    }

    /// A graceful shutdown began: finish what is in flight, take nothing new, close when
    /// idle (HTTP/1.1: `Connection: close`; HTTP/2: GOAWAY). Default: nothing.
    fn handle_shutdown(&mut self, now: Instant) {
        let _ = now;
    }

    /// The transport is gone (reset, failed, closed): no input or output any more. The
    /// machine reports what was in flight through its events. Default: nothing.
    fn handle_lost(&mut self, now: Instant) {
        let _ = now;
    }

    /// The next buffer to send, in order; `None` when there is nothing to send now.
    ///
    /// `now` is the time of this poll: application calls (`send_response`, `reply`, ...)
    /// take no time argument, so a machine settles what depends on when they happened
    /// (an idle deadline that starts when the last answer leaves, input held back until
    /// there was room) here, at the first poll after them.
    #[must_use]
    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes>;

    /// The next event for the application; `None` when there is none now.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// What the transport must do after the transmits so far: returned once per decision.
    #[must_use]
    fn poll_close(&mut self) -> Option<Close>;

    /// The earliest instant at which [`Machine::handle_timeout`] has work, if any.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// Whether the machine wants more input now; reading pauses while this is false (the
    /// peer is slowed down by the transport's flow control).
    #[must_use]
    fn wants_input(&self) -> bool;
}

/// The outcome of feeding bytes to a parser: a value, or "need more bytes" (never an
/// error). Every parser in this crate returns `Result<Status<T>, ItsError>`; a complete
/// value says how many bytes it took, either itself (`ParsedRequest::consumed`) or wrapped
/// in [`Parsed`].
///
/// The parsers: `http::proto::{parse_request, parse_response}` (the value carries
/// `consumed`), [`socks5::proto::parse_request`](crate::socks5::proto::parse_request) and
/// [`proxy_protocol::parse`](crate::proxy_protocol::parse) (wrapped in [`Parsed`]). Two
/// neighbours keep their own shapes on purpose. The push decoders of
/// [`basic::proto`](crate::basic::proto) hold their input and are polled
/// (`poll_event() -> Result<Option<Event>, Error>`, as [`Machine::poll_event`]): `None`
/// means "no frame yet", and nothing is left for the caller to consume. The engine's
/// listener hook `ringwork::PreambleStatus` is the engine's verdict on a connection, and
/// the engine cannot depend on this crate: the PROXY protocol's `preamble` adapter (feature
/// `engine`) maps this convention onto it.
#[derive(Clone, Debug, Eq, PartialEq)]
#[must_use]
pub enum Status<T> {
    /// Parsed.
    Complete(T),
    /// The input ends before the item does: call again with more.
    Partial,
}

impl<T> Status<T> {
    /// The value, if complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(value) => Some(value),
            Status::Partial => None,
        }
    }

    /// Whether more bytes are needed.
    #[must_use]
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial)
    }
}

/// A parsed value and the bytes of input it took (for parsers whose values do not carry
/// their own length).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Parsed<T> {
    /// What was parsed.
    pub value: T,
    /// Bytes of input it took, from the start of the input given.
    pub consumed: usize,
}
