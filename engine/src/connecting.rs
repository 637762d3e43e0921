//! [`Connecting`]: an outbound connect as a future whose drop aborts the connection.
//!
//! Owns: the future of [`LocalHandle::connect`](crate::LocalHandle::connect), the protocol
//! wrapper that resolves it (on `connection_made`, or on `connection_lost` before it), and
//! [`ConnectError`].
//! Contract: the connect starts in the turn the future is made (as a
//! [`LocalHandle::run`](crate::LocalHandle::run) job); the future yields the connection's
//! id once the protocol got `connection_made`, or why it never will. Dropping the future
//! before then cancels the operation: a connect not started yet never starts (the protocol
//! is dropped without callbacks), one in progress is aborted — its socket closed, its
//! protocol told `connection_lost(Aborted)` and never `connection_made`.
//! A connect by name ([`LocalHandle::connect_host`](crate::LocalHandle::connect_host)) is a
//! [`Connecting`] too: dropping it cancels its lookups and attempts (`happy_eyeballs.rs`).
//! Does not: retry (see [`ReconnectingClient`](crate::ReconnectingClient)).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ringwork_platform::SockAddr;

use crate::connect::ConnectOptions;
use crate::context::Context;
use crate::error::EngineError;
use crate::executor::{Deferred, Resolver};
use crate::local::LocalHandle;
use crate::protocol::{ConnId, LostKind, LostReason, Protocol};
use crate::timers::TimerId;

/// Why a [`Connecting`] yielded no connection.
///
/// The display text is not stable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Nothing could start: the socket could not be created, or TLS could not start.
    #[error("cannot start the connection: {0}")]
    Start(#[source] EngineError),
    /// The connect did not complete within its connect timeout.
    #[error("connect timed out after {after:?}")]
    TimedOut {
        /// The connect timeout.
        after: Duration,
    },
    /// The connection ended before `connection_made`: refused, unreachable, a failed TLS
    /// handshake, a shutdown.
    #[error("connection failed: {reason}")]
    Failed {
        /// What ended it.
        kind: LostKind,
        /// The reason's text (as [`LostReason`]'s display).
        reason: String,
    },
    /// The reactor was dropped before the connect finished.
    #[error("the reactor was dropped before the connect finished")]
    Canceled,
    /// A connect by name made no connection: the name has no address, every attempt
    /// failed, or the connect timeout passed (the error names the host and each attempt).
    #[error(transparent)]
    Host(Box<crate::HostConnectError>),
}

impl ConnectError {
    /// What ended the attempt, as a [`LostKind`] where there is one (`TimedOut` is
    /// [`LostKind::ConnectTimeout`]).
    #[must_use]
    pub fn kind(&self) -> Option<LostKind> {
        match self {
            Self::TimedOut { .. } => Some(LostKind::ConnectTimeout),
            Self::Failed { kind, .. } => Some(*kind),
            Self::Host(error) => Some(error.kind()),
            Self::Start(_) | Self::Canceled => None,
        }
    }
}

type Outcome = Result<ConnId, ConnectError>;

/// An outbound connection being opened, from [`LocalHandle::connect`]: yields the
/// connection's id once its protocol got `connection_made`. Dropping it before then aborts
/// the connection (see the module docs); so does losing a
/// [`first_of`](crate::first_of) or a [`with_timeout`](crate::LocalHandle::with_timeout).
#[must_use = "dropping a Connecting aborts its connection"]
pub struct Connecting {
    outcome: Deferred<Outcome>,
    /// What dropping the future cancels.
    cancel: Cancel,
    handle: LocalHandle,
    /// Whether the outcome was taken (nothing to cancel then).
    finished: bool,
}

/// What an unfinished [`Connecting`] cancels when dropped.
enum Cancel {
    /// One connect: the connection, once the start job created it.
    Conn(Rc<Cell<Option<ConnId>>>),
    /// A connect by name: its race (lookups and attempts), or the winner.
    Race(Rc<crate::happy_eyeballs::RaceControl>),
}

impl Connecting {
    /// The connection's id: for a connect to an address, once the connect started (in the
    /// turn the future was made); for a connect by name, once an attempt won.
    #[must_use]
    pub fn id(&self) -> Option<ConnId> {
        match &self.cancel {
            Cancel::Conn(id) => id.get(),
            Cancel::Race(race) => race.winner(),
        }
    }

    /// A connect that could not start: yields `error`.
    pub(crate) fn failed(handle: &LocalHandle, error: ConnectError) -> Self {
        Self {
            outcome: Deferred::resolved(Err(error)),
            cancel: Cancel::Conn(Rc::new(Cell::new(None))),
            handle: handle.clone(),
            finished: false,
        }
    }

    /// A connect by name whose race `race` controls, yielding `outcome`.
    pub(crate) fn race(
        handle: &LocalHandle,
        outcome: Deferred<Outcome>,
        race: Rc<crate::happy_eyeballs::RaceControl>,
    ) -> Self {
        Self {
            outcome,
            cancel: Cancel::Race(race),
            handle: handle.clone(),
            finished: false,
        }
    }
}

impl Future for Connecting {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Outcome> {
        match Pin::new(&mut self.outcome).poll(cx) {
            Poll::Ready(outcome) => {
                self.finished = true;
                Poll::Ready(outcome.unwrap_or_else(|_| Err(ConnectError::Canceled)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Not started yet: the start job sees the outcome is unwanted and does nothing.
        // Started: abort it (a connection that got `connection_made` meanwhile, unseen by
        // anyone, too).
        match &self.cancel {
            Cancel::Conn(id) => {
                if let Some(id) = id.get() {
                    self.handle
                        .run(move |reactor| reactor.with_conn(id, |ctx| ctx.abort()));
                }
            }
            Cancel::Race(race) => race.cancel(),
        }
    }
}

impl fmt::Debug for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting")
            .field("id", &self.id())
            .field("finished", &self.finished)
            .finish()
    }
}

/// Opens a connection as [`LocalHandle::connect`] says.
pub(crate) fn start(
    handle: &LocalHandle,
    addr: SockAddr,
    protocol: impl Protocol,
    options: ConnectOptions,
) -> Connecting {
    let (outcome, resolver) = Deferred::new();
    let id = Rc::new(Cell::new(None));
    let slot = Rc::clone(&id);
    handle.run(move |reactor| {
        if resolver.is_canceled() {
            return;
        }
        let timeout = options.timeout.unwrap_or(reactor.config().connect_timeout);
        let resolver = Rc::new(RefCell::new(Some(resolver)));
        let watched = Watched {
            inner: protocol,
            resolver: Rc::clone(&resolver),
            timeout,
        };
        match reactor.connect(&addr, watched, options) {
            Ok(conn) => slot.set(Some(conn)),
            Err(error) => {
                // The protocol was dropped without callbacks; the resolver is still here.
                let resolver = resolver.borrow_mut().take();
                if let Some(resolver) = resolver {
                    resolver.resolve(Err(ConnectError::Start(error)));
                }
            }
        }
    });
    Connecting {
        outcome,
        cancel: Cancel::Conn(id),
        handle: handle.clone(),
        finished: false,
    }
}

/// A protocol that resolves its [`Connecting`] when it connects or is lost first.
pub(crate) struct Watched<P> {
    inner: P,
    /// Shared with the start job, which resolves it if the connect cannot start.
    resolver: Rc<RefCell<Option<Resolver<Outcome>>>>,
    /// The connect timeout, for [`ConnectError::TimedOut`].
    timeout: Duration,
}

impl<P> Watched<P> {
    /// `inner`, resolving `resolver` (a connect by name: its failure comes as
    /// [`LostReason::HostConnect`]; `timeout` names a plain connect timeout).
    pub(crate) fn new(inner: P, resolver: Resolver<Outcome>, timeout: Duration) -> Self {
        Self {
            inner,
            resolver: Rc::new(RefCell::new(Some(resolver))),
            timeout,
        }
    }

    fn take_resolver(&self) -> Option<Resolver<Outcome>> {
        self.resolver.borrow_mut().take()
    }
}

impl<P: Protocol> Protocol for Watched<P> {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        if let Some(resolver) = self.take_resolver() {
            if resolver.is_canceled() {
                // Nobody waits: the connect was cancelled as it completed.
                ctx.abort();
                return;
            }
            resolver.resolve(Ok(ctx.id()));
        }
        self.inner.connection_made(ctx);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.inner.data_received(ctx, data);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.inner.eof_received(ctx);
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        self.inner.pause_writing(ctx);
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        self.inner.write_drained(ctx);
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        self.inner.shutdown_started(ctx);
    }

    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        self.inner.handshake_completed(ctx);
    }

    fn woken(&mut self, ctx: &mut Context<'_>) {
        self.inner.woken(ctx);
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.inner.timer_fired(ctx, timer);
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(resolver) = self.take_resolver() {
            let error = match reason {
                LostReason::ConnectTimeout => ConnectError::TimedOut {
                    after: self.timeout,
                },
                LostReason::HostConnect(ref error) => ConnectError::Host(error.clone()),
                ref other => ConnectError::Failed {
                    kind: other.kind(),
                    reason: other.to_string(),
                },
            };
            resolver.resolve(Err(error));
        }
        self.inner.connection_lost(ctx, reason);
    }
}
