//! [`ReconnectingClient`]: an outbound connection kept up with exponential backoff
//! (Twisted's `ReconnectingClientFactory`).
//!
//! Owns: the retry policy ([`Backoff`]: initial delay, factor, max delay, jitter from a
//! seedable RNG, max retries), the client's state and counters, and the protocol wrapper
//! that reports `connection_made` / `connection_lost` of each attempt.
//! Contract: one attempt at a time. Each attempt builds a protocol from the factory and
//! connects; a failed attempt or a lost connection schedules the next one on the core's
//! timer wheel after the next delay; `connection_made` resets the delay (and the retry
//! count). [`ReconnectingClient::stop_trying`] cancels a scheduled attempt and prevents
//! new ones; the connection that is up stays up. After `max_retries` failures in a row the
//! client gives up; a reactor shutting down stops it.
//! Does not: resolve names (the address is fixed), or close a connection itself.
//! Tests: unit tests below (the delays); `engine/tests/reconnect.rs` (a server that goes up
//! and down, both backends, under a manual clock).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringwork_platform::SockAddr;

use crate::connect::ConnectOptions;
use crate::context::Context;
use crate::local::LocalHandle;
use crate::protocol::{ConnId, Factory, LostKind, LostReason, Protocol};
use crate::reactor::Reactor;
use crate::timers::{CallId, TimerId};

/// When a [`ReconnectingClient`] tries again: the n-th retry in a row waits
/// `min(initial * factor^(n-1), max_delay)`, spread by `jitter`.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// use ringwork::Backoff;
///
/// let backoff = Backoff::new()
///     .initial(Duration::from_millis(100))
///     .factor(2.0)
///     .max_delay(Duration::from_secs(30))
///     .jitter(0.0)
///     .max_retries(Some(10));
/// assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(100));
/// assert_eq!(backoff.delay(4, 0.0), Duration::from_millis(800));
/// assert_eq!(backoff.delay(20, 0.0), Duration::from_secs(30));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay before the first retry (default 1 s).
    pub initial: Duration,
    /// Growth per retry, at least 1 (default 2; Twisted uses e ≈ 2.718).
    pub factor: f64,
    /// Longest delay, jitter included (default 60 s).
    pub max_delay: Duration,
    /// Spread of each delay, as a fraction: a delay `d` becomes uniformly random within
    /// `d * (1 ± jitter)`, so that clients cut off together do not come back together
    /// (default 0.1; 0 to 1).
    pub jitter: f64,
    /// Failures in a row after which the client gives up (`None`, the default: never).
    pub max_retries: Option<u32>,
    /// The jitter RNG's seed (`None`, the default: a random seed). Set it in tests for
    /// repeatable delays.
    pub seed: Option<u64>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            factor: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: 0.1,
            max_retries: None,
            seed: None,
        }
    }
}

impl Backoff {
    /// The defaults (1 s, doubling, at most 60 s, 10 % jitter, no retry limit).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// With this first delay.
    #[must_use]
    pub fn initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// With this growth per retry.
    #[must_use]
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// With this longest delay.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// With this jitter fraction.
    #[must_use]
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// With this retry limit.
    #[must_use]
    pub fn max_retries(mut self, max_retries: Option<u32>) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// With this jitter seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The delay before retry `retry` (1 for the first retry after a success or the start)
    /// for a jitter draw `spread` in `-1.0..=1.0` (0: none). Out-of-range settings are
    /// clamped: a factor below 1 (or not a number) counts as 1, a jitter outside 0..1 as
    /// the nearest bound.
    #[must_use]
    pub fn delay(&self, retry: u32, spread: f64) -> Duration {
        let max = self.max_delay.as_secs_f64();
        let factor = if self.factor >= 1.0 { self.factor } else { 1.0 };
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = (self.initial.as_secs_f64() * factor.powi(exponent)).min(max);
        let jitter = if self.jitter > 0.0 {
            self.jitter.min(1.0)
        } else {
            0.0
        };
        let spread = if spread.is_finite() {
            spread.clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let delay = (base * (1.0 + jitter * spread)).clamp(0.0, max);
        // Finite and within 0..=max_delay, so this cannot fail; the fallback is max_delay.
        Duration::try_from_secs_f64(delay).unwrap_or(self.max_delay)
    }
}

/// What a [`ReconnectingClient`] is doing.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ReconnectState {
    /// An attempt is in progress on this connection.
    Connecting(ConnId),
    /// Connected (the protocol got `connection_made`).
    Connected(ConnId),
    /// Waiting to try again at `at`.
    Waiting {
        /// When the next attempt starts.
        at: Instant,
    },
    /// [`ReconnectingClient::stop_trying`] was called and no connection is left.
    Stopped,
    /// `max_retries` failures in a row: no further attempt.
    GaveUp,
}

/// Something a [`ReconnectingClient`] did, for an observer
/// ([`ReconnectingClientBuilder::observe`]): logging, metrics, tests.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ReconnectEvent {
    /// Attempt number `attempt` (1 for the first) started on connection `id`.
    Attempt {
        /// Attempts so far, this one included.
        attempt: u64,
        /// The connection being opened.
        id: ConnId,
    },
    /// An attempt could not even start (no socket): `error` says why; a retry follows.
    StartFailed {
        /// The error's text.
        error: String,
    },
    /// The attempt connected; the delay is reset.
    Connected {
        /// The connection.
        id: ConnId,
    },
    /// The connection (or the attempt) ended.
    Lost {
        /// The connection.
        id: ConnId,
        /// Why.
        kind: LostKind,
        /// Whether it had connected (`false`: the attempt failed).
        was_connected: bool,
    },
    /// The next attempt is due after `delay`.
    Retrying {
        /// Failures in a row, this one included.
        retry: u32,
        /// The delay chosen (with jitter).
        delay: Duration,
    },
    /// No more attempts: `max_retries` failures in a row.
    GaveUp {
        /// Failures in a row.
        retries: u32,
    },
    /// [`ReconnectingClient::stop_trying`] took effect: no more attempts.
    Stopped,
}

type Observer = Box<dyn FnMut(&ReconnectEvent)>;

/// Settings of a [`ReconnectingClient`] before it starts, from [`ReconnectingClient::new`].
#[must_use]
pub struct ReconnectingClientBuilder {
    addr: SockAddr,
    backoff: Backoff,
    options: ConnectOptions,
    observer: Option<Observer>,
}

impl ReconnectingClientBuilder {
    /// The retry policy (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How each attempt connects: its connect timeout, TLS (default: plain, the reactor's
    /// connect timeout).
    pub fn options(mut self, options: ConnectOptions) -> Self {
        self.options = options;
        self
    }

    /// Calls `observer` with each [`ReconnectEvent`], on the core's thread, from inside the
    /// reactor (it must not block).
    pub fn observe(mut self, observer: impl FnMut(&ReconnectEvent) + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// Starts connecting (in this turn) on the core of `handle`; each attempt's protocol
    /// comes from `factory`.
    pub fn start(self, handle: &LocalHandle, factory: impl Factory) -> ReconnectingClient {
        let seed = self.backoff.seed.unwrap_or_else(random_seed);
        let inner = Rc::new(Inner {
            handle: handle.clone(),
            addr: self.addr,
            options: self.options,
            backoff: self.backoff,
            factory: RefCell::new(Box::new(factory)),
            observer: RefCell::new(self.observer),
            rng: RefCell::new(SmallRng::seed_from_u64(seed)),
            state: Cell::new(ReconnectState::Stopped),
            retries: Cell::new(0),
            attempts: Cell::new(0),
            retry: Cell::new(None),
            stopping: Cell::new(false),
        });
        let first = Rc::clone(&inner);
        handle.run(move |reactor| attempt(&first, reactor));
        ReconnectingClient { inner }
    }
}

/// An outbound connection kept up: Twisted's `ReconnectingClientFactory`.
///
/// Connects to one address; when the attempt fails or the connection is lost, it tries
/// again after an exponentially growing delay ([`Backoff`]), reset by every successful
/// connection. Each attempt gets a new protocol from the factory, which sees the usual
/// callbacks (a failed attempt: `connection_lost` only).
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
///
/// use ringwork::{Backoff, Context, DriverConfig, Protocol, Reactor, ReactorConfig, ReconnectingClient};
///
/// struct Feed;
///
/// impl Protocol for Feed {
///     fn data_received(&mut self, _ctx: &mut Context<'_>, data: &[u8]) {
///         print!("{}", String::from_utf8_lossy(data));
///     }
/// }
///
/// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
/// let addr: std::net::SocketAddr = "127.0.0.1:7000".parse().unwrap();
/// let client = ReconnectingClient::new(addr)
///     .backoff(Backoff::new().initial(Duration::from_millis(200)).max_delay(Duration::from_secs(10)))
///     .start(&reactor.handle(), || Feed);
/// reactor.run()?;
/// # drop(client);
/// # Ok::<(), ringwork::EngineError>(())
/// ```
#[derive(Clone)]
pub struct ReconnectingClient {
    inner: Rc<Inner>,
}

struct Inner {
    handle: LocalHandle,
    addr: SockAddr,
    options: ConnectOptions,
    backoff: Backoff,
    factory: RefCell<Box<dyn Factory>>,
    observer: RefCell<Option<Observer>>,
    rng: RefCell<SmallRng>,
    state: Cell<ReconnectState>,
    /// Failures in a row since the start or the last connection.
    retries: Cell<u32>,
    /// Attempts started.
    attempts: Cell<u64>,
    /// The scheduled attempt.
    retry: Cell<Option<CallId>>,
    /// `stop_trying` was called.
    stopping: Cell<bool>,
}

impl ReconnectingClient {
    /// A client for `addr`; set it up and [`start`](ReconnectingClientBuilder::start) it.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(addr: impl Into<SockAddr>) -> ReconnectingClientBuilder {
        ReconnectingClientBuilder {
            addr: addr.into(),
            backoff: Backoff::default(),
            options: ConnectOptions::default(),
            observer: None,
        }
    }

    /// Stops trying (Twisted's `stopTrying`): a scheduled attempt is cancelled and no new
    /// one starts. A connection that is up, or an attempt in progress, goes on; close it
    /// through the reactor ([`ReconnectingClient::connection`]) if it must end too.
    pub fn stop_trying(&self) {
        let inner = &self.inner;
        if inner.stopping.replace(true) {
            return;
        }
        if let Some(call) = inner.retry.take() {
            inner.handle.cancel(call);
        }
        if matches!(inner.state.get(), ReconnectState::Waiting { .. }) {
            inner.state.set(ReconnectState::Stopped);
            emit(inner, &ReconnectEvent::Stopped);
        }
    }

    /// What the client is doing.
    #[must_use]
    pub fn state(&self) -> ReconnectState {
        self.inner.state.get()
    }

    /// The connection that is up or being opened.
    #[must_use]
    pub fn connection(&self) -> Option<ConnId> {
        match self.inner.state.get() {
            ReconnectState::Connecting(id) | ReconnectState::Connected(id) => Some(id),
            _ => None,
        }
    }

    /// Attempts started so far.
    #[must_use]
    pub fn attempts(&self) -> u64 {
        self.inner.attempts.get()
    }

    /// Failures in a row since the start or the last successful connection.
    #[must_use]
    pub fn retries(&self) -> u32 {
        self.inner.retries.get()
    }
}

impl fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("addr", &self.inner.addr)
            .field("state", &self.inner.state.get())
            .field("attempts", &self.inner.attempts.get())
            .field("retries", &self.inner.retries.get())
            .finish_non_exhaustive()
    }
}

/// A seed from the standard library's per-process random keys.
fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn emit(inner: &Inner, event: &ReconnectEvent) {
    // Taken out while it runs, so an observer that stops the client does not find it
    // borrowed.
    let observer = inner.observer.borrow_mut().take();
    if let Some(mut observer) = observer {
        observer(event);
        let mut slot = inner.observer.borrow_mut();
        if slot.is_none() {
            *slot = Some(observer);
        }
    }
}

/// Starts one attempt.
fn attempt(inner: &Rc<Inner>, reactor: &mut Reactor) {
    inner.retry.set(None);
    if inner.stopping.get() || reactor.is_shutting_down() {
        inner.stopping.set(true);
        inner.state.set(ReconnectState::Stopped);
        emit(inner, &ReconnectEvent::Stopped);
        return;
    }
    let protocol = inner.factory.borrow_mut().build_protocol();
    let tracked = Tracked {
        inner: protocol,
        client: Rc::clone(inner),
        connected: false,
    };
    match reactor.connect(&inner.addr, tracked, inner.options.clone()) {
        Ok(id) => {
            inner.attempts.set(inner.attempts.get() + 1);
            inner.state.set(ReconnectState::Connecting(id));
            let attempt = inner.attempts.get();
            emit(inner, &ReconnectEvent::Attempt { attempt, id });
        }
        Err(error) => {
            inner.attempts.set(inner.attempts.get() + 1);
            emit(
                inner,
                &ReconnectEvent::StartFailed {
                    error: error.to_string(),
                },
            );
            schedule(inner);
        }
    }
}

/// Schedules the next attempt after a failure, or gives up / stops.
fn schedule(inner: &Rc<Inner>) {
    if inner.stopping.get() {
        inner.state.set(ReconnectState::Stopped);
        emit(inner, &ReconnectEvent::Stopped);
        return;
    }
    let retry = inner.retries.get().saturating_add(1);
    inner.retries.set(retry);
    if inner.backoff.max_retries.is_some_and(|max| retry > max) {
        inner.state.set(ReconnectState::GaveUp);
        emit(inner, &ReconnectEvent::GaveUp { retries: retry - 1 });
        return;
    }
    let spread = inner.rng.borrow_mut().random_range(-1.0..=1.0);
    let delay = inner.backoff.delay(retry, spread);
    let next = Rc::clone(inner);
    let call = inner
        .handle
        .call_later(delay, move |reactor| attempt(&next, reactor));
    let at = inner
        .handle
        .deadline(call)
        .unwrap_or_else(|| inner.handle.now());
    inner.retry.set(Some(call));
    inner.state.set(ReconnectState::Waiting { at });
    emit(inner, &ReconnectEvent::Retrying { retry, delay });
}

/// An attempt's protocol, reporting to its client.
struct Tracked {
    inner: Box<dyn Protocol>,
    client: Rc<Inner>,
    connected: bool,
}

impl Protocol for Tracked {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.connected = true;
        let client = &self.client;
        client.retries.set(0);
        client.state.set(ReconnectState::Connected(ctx.id()));
        emit(client, &ReconnectEvent::Connected { id: ctx.id() });
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
        // The reactor is stopping: no more attempts.
        self.client.stopping.set(true);
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
        let kind = reason.kind();
        self.inner.connection_lost(ctx, reason);
        let client = &self.client;
        emit(
            client,
            &ReconnectEvent::Lost {
                id: ctx.id(),
                kind,
                was_connected: self.connected,
            },
        );
        if kind == LostKind::Shutdown {
            client.stopping.set(true);
        }
        schedule(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_grow_by_the_factor_up_to_the_maximum() {
        let backoff = Backoff::new()
            .initial(ms(100))
            .factor(3.0)
            .max_delay(ms(2000))
            .jitter(0.0);
        let delays: Vec<_> = (1..=6).map(|n| backoff.delay(n, 0.0)).collect();
        assert_eq!(
            delays,
            [ms(100), ms(300), ms(900), ms(2000), ms(2000), ms(2000)]
        );
        assert_eq!(backoff.delay(u32::MAX, 0.0), ms(2000), "no overflow");
        assert_eq!(
            backoff.delay(0, 0.0),
            ms(100),
            "retry 0 counts as the first"
        );
    }

    #[test]
    fn jitter_spreads_within_its_fraction_and_never_past_the_maximum() {
        let backoff = Backoff::new()
            .initial(ms(1000))
            .max_delay(ms(1500))
            .jitter(0.25);
        assert_eq!(backoff.delay(1, -1.0), ms(750));
        assert_eq!(backoff.delay(1, 1.0), ms(1250));
        assert_eq!(backoff.delay(2, 1.0), ms(1500), "capped after the jitter");
        assert_eq!(backoff.delay(2, -1.0), ms(1125));
        assert_eq!(backoff.delay(1, f64::NAN), ms(1000));
    }

    #[test]
    fn bad_settings_are_clamped() {
        let backoff = Backoff::new()
            .initial(ms(100))
            .factor(0.5)
            .jitter(7.0)
            .max_delay(ms(1000));
        assert_eq!(
            backoff.delay(5, 0.0),
            ms(100),
            "a factor below 1 counts as 1"
        );
        assert_eq!(
            backoff.delay(1, -1.0),
            Duration::ZERO,
            "jitter at most 100 %"
        );
        let nan = Backoff::new()
            .factor(f64::NAN)
            .jitter(f64::NAN)
            .initial(ms(10));
        assert_eq!(nan.delay(3, 1.0), ms(10));
    }
}
