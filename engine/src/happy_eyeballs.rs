//! Connect by name with Happy Eyeballs v2 (RFC 8305): Twisted's `HostnameEndpoint`.
//!
//! Owns: the race of one connect by name — both lookups through the core's
//! [`NameResolver`](crate::names::NameResolver), the Resolution Delay, the interleaved address list, the staggered
//! attempts and their cancellation — [`HostConnect`] (its handle for protocols),
//! `RaceControl` (what a [`Connecting`] cancels) and [`HostConnectError`].
//! Contract:
//! 1. The AAAA and A lookups start together. An IPv6 answer starts the attempts at once;
//!    an IPv4 answer first waits up to [`RESOLUTION_DELAY`] for the IPv6 one (§3).
//! 2. Addresses are tried alternating families, IPv6 first, each family in the
//!    resolver's order (§4); addresses that arrive later join the list.
//! 3. An attempt runs alone for the Connection Attempt Delay
//!    ([`ConnectOptions::attempt_delay`], [`DEFAULT_ATTEMPT_DELAY`], held within
//!    [`MIN_ATTEMPT_DELAY`]..=[`MAX_ATTEMPT_DELAY`]) before the next starts beside it;
//!    when an attempt fails the next starts at once (§5).
//! 4. The first attempt whose protocol would get `connection_made` (with TLS: once its
//!    handshake is done) wins: the user's protocol moves into it and gets
//!    `connection_made` there; every other attempt is aborted (§5) and lookups still
//!    running are dropped. The user's protocol never sees a losing attempt.
//! 5. With no winner — no address, every attempt failed, or the connect timeout (which
//!    bounds the whole race, lookups included) — the protocol gets one `connection_lost`
//!    with [`LostReason::HostConnect`], naming the host and each attempt, in a context
//!    that names no connection.
//! 6. Cancelling (dropping the [`Connecting`], [`HostConnect::cancel`]) drops the
//!    lookups, aborts every attempt (their sockets are closed) and, if any attempt had
//!    started, tells the protocol `connection_lost(Aborted)`; after a win it aborts the
//!    winner.
//!
//! The race is a task on the core's executor plus a protocol wrapper per attempt
//! (`Attempt`), which forwards every callback of the winner to the user's protocol.
//! Literal IP addresses never reach the resolver: they connect directly, as
//! [`Context::connect`] does.
//! Does not: sort by RFC 6724 (the resolver does; getaddrinfo already sorts), cache
//! answers, or remember which family worked last (§4.2's "historical RTT data").
//! Tests: `engine/tests/happy_eyeballs.rs` (a fake resolver and a manual clock on a real
//! reactor, both backends).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use futures_util::future::{AbortHandle, AbortRegistration, Abortable};

use crate::connect::ConnectOptions;
use crate::connecting::{Connecting, Watched};
use crate::context::Context;
use crate::error::EngineError;
use crate::executor::Deferred;
use crate::local::{LocalHandle, Sleep};
use crate::names::{AddressFamily, LookupFuture, parse_ip_literal};
use crate::protocol::{ConnId, LostKind, LostReason, Protocol};
use crate::reactor::Reactor;
use crate::resolve::LookupError;
use crate::timers::TimerId;

/// How long an IPv4 answer waits for the IPv6 one before attempts start (RFC 8305 §3
/// recommends 50 ms).
pub const RESOLUTION_DELAY: Duration = Duration::from_millis(50);
/// The Connection Attempt Delay unless configured (RFC 8305 §5: 250 ms).
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// The shortest Connection Attempt Delay (RFC 8305 §5 recommends 100 ms as the minimum).
pub const MIN_ATTEMPT_DELAY: Duration = Duration::from_millis(100);
/// The longest Connection Attempt Delay (RFC 8305 §5 recommends 2 s as the maximum).
pub const MAX_ATTEMPT_DELAY: Duration = Duration::from_secs(2);

/// Why a connect by name made no connection. The display text is not stable.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HostConnectError {
    /// The host as given (a name; or, for [`LocalHandle::connect_addrs`], its label).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Lookups that failed, by family (one family failing is not an error by itself).
    pub lookups: Vec<(AddressFamily, LookupError)>,
    /// Every attempt that failed, in the order they ended.
    pub attempts: Vec<AttemptFailure>,
    /// The connect timeout, if it passed (then [`HostConnectError::in_flight`] lists the
    /// attempts it cut short).
    pub timed_out: Option<Duration>,
    /// Attempts still connecting when the timeout passed.
    pub in_flight: Vec<SocketAddr>,
}

/// One failed attempt of a connect by name.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AttemptFailure {
    /// The address tried.
    pub addr: SocketAddr,
    /// How it ended ([`LostKind::ConnectFailed`], [`LostKind::ConnectTimeout`],
    /// [`LostKind::Tls`], ...); `None` if its socket could not be created.
    pub kind: Option<LostKind>,
    /// The OS error's kind, when there was one (refused, unreachable, ...).
    pub io: Option<io::ErrorKind>,
    /// What happened, as text.
    pub reason: String,
    /// The TLS error, when the attempt connected but its handshake failed (the server
    /// was reached: a certificate not trusted, another name, ...).
    pub tls: Option<crate::tls::TlsError>,
}

impl HostConnectError {
    /// [`LostKind::ConnectTimeout`] if the connect timeout passed, else
    /// [`LostKind::ConnectFailed`].
    #[must_use]
    pub fn kind(&self) -> LostKind {
        if self.timed_out.is_some() {
            LostKind::ConnectTimeout
        } else {
            LostKind::ConnectFailed
        }
    }

    /// Whether no attempt was made because the name has no address (every lookup failed).
    #[must_use]
    pub fn is_lookup_failure(&self) -> bool {
        self.attempts.is_empty() && self.in_flight.is_empty() && self.timed_out.is_none()
    }

    /// The OS error kind of the last attempt that had one (what a SOCKS server maps to
    /// its reply); `TimedOut` after the connect timeout.
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        if self.timed_out.is_some() {
            return Some(io::ErrorKind::TimedOut);
        }
        self.attempts.iter().rev().find_map(|a| a.io)
    }
}

impl fmt::Display for HostConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to {}:{}: ", self.host, self.port)?;
        let attempts = || {
            self.attempts
                .iter()
                .map(|a| format!("{}: {}", a.addr, a.reason))
                .chain(
                    self.in_flight
                        .iter()
                        .map(|a| format!("{a}: still connecting")),
                )
                .collect::<Vec<_>>()
                .join("; ")
        };
        if let Some(after) = self.timed_out {
            write!(f, "timed out after {after:?}")?;
            if self.attempts.is_empty() && self.in_flight.is_empty() {
                return f.write_str(" (no answer from the resolver)");
            }
            return write!(f, " ({})", attempts());
        }
        if !self.attempts.is_empty() {
            return f.write_str(&attempts());
        }
        if self.lookups.is_empty() {
            return f.write_str("no address to try");
        }
        let mut texts: Vec<String> = Vec::with_capacity(self.lookups.len());
        for (family, error) in &self.lookups {
            let text = error.to_string();
            if !texts.iter().any(|t| t.ends_with(&text)) {
                texts.push(if self.lookups.len() > 1 {
                    format!("{family}: {text}")
                } else {
                    text
                });
            }
        }
        if texts.len() == 1 && self.lookups.len() > 1 {
            // Both families failed alike: say it once.
            return f.write_str(&self.lookups[0].1.to_string());
        }
        f.write_str(&texts.join("; "))
    }
}

impl std::error::Error for HostConnectError {}

/// A connect by name started from a protocol ([`Context::connect_host`],
/// [`Reactor::connect_host`]): its protocol learns the outcome by its callbacks; this
/// handle tells the winner and cancels. Dropping it changes nothing (as dropping the
/// [`ConnId`] of [`Context::connect`] does not).
#[derive(Clone)]
pub struct HostConnect {
    target: Target,
}

#[derive(Clone)]
enum Target {
    /// A literal address, connected to directly.
    Direct(ConnId, LocalHandle),
    /// A race.
    Race(Rc<RaceControl>),
}

impl HostConnect {
    /// The handle of a connection to an address (nothing to race).
    pub(crate) fn direct(id: ConnId, handle: LocalHandle) -> Self {
        Self {
            target: Target::Direct(id, handle),
        }
    }

    /// The connection: at once for a literal address; for a name, once an attempt won
    /// (the protocol got `connection_made`).
    #[must_use]
    pub fn id(&self) -> Option<ConnId> {
        match &self.target {
            Target::Direct(id, _) => Some(*id),
            Target::Race(race) => race.winner(),
        }
    }

    /// Cancels the connect (lookups dropped, attempts aborted; the protocol gets
    /// `connection_lost(Aborted)` if an attempt had started), or aborts the connection if
    /// it was made. Takes effect after the current callback, in the same turn.
    pub fn cancel(&self) {
        match &self.target {
            Target::Direct(id, handle) => {
                let id = *id;
                handle.run(move |reactor| reactor.with_conn(id, |ctx| ctx.abort()));
            }
            Target::Race(race) => race.cancel(),
        }
    }

    /// [`HostConnect::cancel`] from a callback: a connection (the direct one, or the
    /// winner) is aborted now, through `ctx`.
    pub fn cancel_now(&self, ctx: &mut Context<'_>) {
        match &self.target {
            Target::Direct(id, _) => ctx.other(*id).abort(),
            Target::Race(race) => {
                race.abort.abort();
                if let Some(id) = race.winner() {
                    ctx.other(id).abort();
                }
            }
        }
    }
}

impl fmt::Debug for HostConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostConnect")
            .field("id", &self.id())
            .finish()
    }
}

/// The part of a race its owner keeps: the winner, and the switch that cancels it.
pub(crate) struct RaceControl {
    abort: AbortHandle,
    winner: Rc<Cell<Option<ConnId>>>,
    handle: LocalHandle,
}

impl RaceControl {
    /// The connection that won, once one did.
    pub(crate) fn winner(&self) -> Option<ConnId> {
        self.winner.get()
    }

    /// Stops the race (its task drops everything it holds), or aborts the winner.
    pub(crate) fn cancel(&self) {
        self.abort.abort();
        if let Some(id) = self.winner.get() {
            self.handle
                .run(move |reactor| reactor.with_conn(id, |ctx| ctx.abort()));
        }
    }
}

/// What to connect to.
enum Addresses {
    /// A name to look up, with the port.
    Name(String, u16),
    /// Addresses known already.
    Known(Vec<SocketAddr>),
}

/// Starts a race on `handle`'s core; `protocol` gets its outcome.
fn spawn_race<P: Protocol>(
    handle: &LocalHandle,
    label: String,
    port: u16,
    addresses: Addresses,
    protocol: P,
    options: ConnectOptions,
) -> Rc<RaceControl> {
    let (abort, registration) = AbortHandle::new_pair();
    let winner = Rc::new(Cell::new(None));
    let control = Rc::new(RaceControl {
        abort,
        winner: Rc::clone(&winner),
        handle: handle.clone(),
    });
    let task_handle = handle.clone();
    let aborted = control.abort.clone();
    handle.run(move |reactor| {
        if aborted.is_aborted() {
            // Cancelled in the turn it was made: nothing starts, `protocol` is dropped.
            return;
        }
        let timeout = options.timeout.unwrap_or(reactor.config().connect_timeout);
        let race = Race::new(
            task_handle,
            label,
            port,
            addresses,
            protocol,
            options,
            timeout,
            winner,
        );
        drop(reactor.spawn_local(run(race, registration)));
    });
    control
}

/// The race's task: stops when aborted (dropping the race cancels it).
async fn run<P: Protocol>(race: Race<P>, registration: AbortRegistration) {
    let _ = Abortable::new(race, registration).await;
}

impl LocalHandle {
    /// Opens a connection to `host`:`port` run by `protocol` (Twisted's
    /// `HostnameEndpoint`): the name is looked up through this core's
    /// [`NameResolver`](crate::names::NameResolver) and its addresses raced with Happy
    /// Eyeballs v2 (RFC 8305, see the module docs of [`happy_eyeballs`](crate::happy_eyeballs)):
    /// IPv6 and IPv4 lookups together, attempts staggered by the Connection Attempt Delay
    /// ([`ConnectOptions::attempt_delay`]), the first connected wins and the rest are
    /// aborted. `protocol` sees only the winner. The connect timeout
    /// ([`ConnectOptions::timeout`], else the reactor's) bounds the whole race; TLS
    /// ([`ConnectOptions::tls`]) runs on each attempt, and an attempt wins once its
    /// handshake is done. A literal IP address (`127.0.0.1`, `::1`, `[::1]`) is connected
    /// to directly, never looked up.
    ///
    /// The future yields the winner's id, or [`ConnectError::Host`](crate::ConnectError::Host)
    /// naming the host and every attempt. Dropping it before then cancels the lookups and
    /// every attempt (their sockets are closed).
    ///
    /// # Examples
    /// ```no_run
    /// use ringwork::{ConnectOptions, Context, DriverConfig, Protocol, Reactor, ReactorConfig};
    ///
    /// struct Get;
    ///
    /// impl Protocol for Get {
    ///     fn connection_made(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    ///     }
    ///     fn data_received(&mut self, _ctx: &mut Context<'_>, data: &[u8]) {
    ///         print!("{}", String::from_utf8_lossy(data));
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    /// let connect = reactor.handle().connect_host("localhost", 8080, Get, ConnectOptions::new());
    /// reactor.spawn_local(async move {
    ///     match connect.await {
    ///         Ok(id) => println!("connected: {id}"),
    ///         Err(error) => eprintln!("{error}"), // cannot connect to localhost:8080: ...
    ///     }
    /// });
    /// reactor.run()?;
    /// # Ok::<(), ringwork::EngineError>(())
    /// ```
    pub fn connect_host(
        &self,
        host: &str,
        port: u16,
        protocol: impl Protocol,
        options: ConnectOptions,
    ) -> Connecting {
        if let Some(ip) = parse_ip_literal(host) {
            return self.connect(SocketAddr::new(ip, port), protocol, options);
        }
        self.race_future(
            host.to_owned(),
            port,
            Addresses::Name(host.to_owned(), port),
            protocol,
            options,
        )
    }

    /// Races connections to addresses known already (a SOCKS server's, after its policy
    /// check) as [`LocalHandle::connect_host`] races a name's: IPv6 and IPv4 interleaved,
    /// staggered by the Connection Attempt Delay. `label` names them in errors.
    pub fn connect_addrs(
        &self,
        label: &str,
        addrs: Vec<SocketAddr>,
        protocol: impl Protocol,
        options: ConnectOptions,
    ) -> Connecting {
        let port = addrs.first().map_or(0, SocketAddr::port);
        self.race_future(
            label.to_owned(),
            port,
            Addresses::Known(addrs),
            protocol,
            options,
        )
    }

    fn race_future<P: Protocol>(
        &self,
        label: String,
        port: u16,
        addresses: Addresses,
        protocol: P,
        options: ConnectOptions,
    ) -> Connecting {
        let (outcome, resolver) = Deferred::new();
        // Only a plain connect timeout is named by `Watched`; races report their own.
        let watched = Watched::new(protocol, resolver, Duration::ZERO);
        let control = spawn_race(self, label, port, addresses, watched, options);
        Connecting::race(self, outcome, control)
    }
}

impl Context<'_> {
    /// Opens a connection to `host`:`port` run by `protocol`, from a callback: the
    /// callback form of [`LocalHandle::connect_host`] (Happy Eyeballs over the name's
    /// addresses; a literal IP address is connected to directly, as
    /// [`Context::connect`] does). `protocol` gets `connection_made` on the winner, or a
    /// single `connection_lost` — for a name, with [`LostReason::HostConnect`] naming the
    /// host and every attempt, in a context that names no connection. The returned
    /// handle tells the winner ([`HostConnect::id`]) and cancels ([`HostConnect::cancel`]);
    /// dropping it does neither.
    ///
    /// # Errors
    /// Only for a literal address, as [`Context::connect`]: nothing was started and
    /// `protocol` is dropped without callbacks. A name's failures come as
    /// `connection_lost`.
    pub fn connect_host(
        &mut self,
        host: &str,
        port: u16,
        protocol: impl Protocol,
        options: ConnectOptions,
    ) -> Result<HostConnect, EngineError> {
        if let Some(ip) = parse_ip_literal(host) {
            let id = self.connect(&SocketAddr::new(ip, port).into(), protocol, options)?;
            return Ok(HostConnect {
                target: Target::Direct(id, self.handle()),
            });
        }
        let name = Addresses::Name(host.to_owned(), port);
        let race = spawn_race(
            &self.handle(),
            host.to_owned(),
            port,
            name,
            protocol,
            options,
        );
        Ok(HostConnect {
            target: Target::Race(race),
        })
    }

    /// The callback form of [`LocalHandle::connect_addrs`]: Happy Eyeballs over addresses
    /// known already; the outcome comes as for [`Context::connect_host`].
    pub fn connect_addrs(
        &mut self,
        label: &str,
        addrs: Vec<SocketAddr>,
        protocol: impl Protocol,
        options: ConnectOptions,
    ) -> HostConnect {
        let port = addrs.first().map_or(0, SocketAddr::port);
        let known = Addresses::Known(addrs);
        let race = spawn_race(
            &self.handle(),
            label.to_owned(),
            port,
            known,
            protocol,
            options,
        );
        HostConnect {
            target: Target::Race(race),
        }
    }
}

impl Reactor {
    /// [`Context::connect_host`] from outside callbacks.
    ///
    /// # Errors
    /// As [`Context::connect_host`].
    pub fn connect_host(
        &mut self,
        host: &str,
        port: u16,
        protocol: impl Protocol,
        options: ConnectOptions,
    ) -> Result<HostConnect, EngineError> {
        if let Some(ip) = parse_ip_literal(host) {
            let id = self.connect(&SocketAddr::new(ip, port).into(), protocol, options)?;
            return Ok(HostConnect {
                target: Target::Direct(id, self.handle()),
            });
        }
        let name = Addresses::Name(host.to_owned(), port);
        let race = spawn_race(
            &self.handle(),
            host.to_owned(),
            port,
            name,
            protocol,
            options,
        );
        Ok(HostConnect {
            target: Target::Race(race),
        })
    }
}

/// What a race shares with its attempts' protocols.
struct Shared<P> {
    /// The user's protocol, until an attempt wins (or the race ends without one).
    protocol: RefCell<Option<P>>,
    winner: Rc<Cell<Option<ConnId>>>,
    /// The race is over (won, failed or cancelled): an attempt that connects now aborts.
    ended: Cell<bool>,
    /// Attempts started and not yet lost: their address, and their connection once the
    /// start job made it.
    live: RefCell<Vec<LiveAttempt>>,
    /// Failures the race has not looked at yet.
    failures: RefCell<Vec<AttemptFailure>>,
    /// The race's task, woken when an attempt connects or fails.
    waker: RefCell<Option<Waker>>,
}

struct LiveAttempt {
    number: usize,
    addr: SocketAddr,
    id: Option<ConnId>,
}

impl<P> Shared<P> {
    fn wake(&self) {
        if let Some(waker) = self.waker.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    fn remove_live(&self, number: usize) {
        self.live.borrow_mut().retain(|a| a.number != number);
    }
}

/// The race: the HE state machine, a future polled by its task.
struct Race<P: Protocol> {
    handle: LocalHandle,
    label: String,
    port: u16,
    shared: Rc<Shared<P>>,
    options: ConnectOptions,
    attempt_delay: Duration,
    timeout: Duration,
    /// The lookups still running: IPv6, IPv4.
    lookups: [Option<LookupFuture>; 2],
    lookup_errors: Vec<(AddressFamily, LookupError)>,
    /// Addresses not tried yet: IPv6, IPv4.
    queues: [VecDeque<SocketAddr>; 2],
    /// Every address queued so far (duplicates are tried once).
    seen: Vec<SocketAddr>,
    /// The family of the last attempt (the next goes to the other one).
    last_family: Option<usize>,
    /// Armed when IPv4 answered while IPv6 was still pending and nothing started.
    resolution_delay: Option<Sleep>,
    /// The Resolution Delay passed: attempts may start without IPv6.
    resolution_waited: bool,
    /// The Connection Attempt Delay of the last attempt.
    next_attempt: Option<Sleep>,
    /// A new attempt may start now (none yet, the last one's delay passed, or one failed).
    attempt_due: bool,
    deadline: Sleep,
    /// Attempts started.
    started: usize,
    failures: Vec<AttemptFailure>,
    finished: bool,
}

impl<P: Protocol> Race<P> {
    #[allow(clippy::too_many_arguments)] // One private constructor, called once.
    fn new(
        handle: LocalHandle,
        label: String,
        port: u16,
        addresses: Addresses,
        protocol: P,
        options: ConnectOptions,
        timeout: Duration,
        winner: Rc<Cell<Option<ConnId>>>,
    ) -> Self {
        let attempt_delay = options
            .attempt_delay
            .unwrap_or(DEFAULT_ATTEMPT_DELAY)
            .clamp(MIN_ATTEMPT_DELAY, MAX_ATTEMPT_DELAY);
        let deadline = handle.sleep(timeout);
        let mut race = Race {
            label,
            port,
            shared: Rc::new(Shared {
                protocol: RefCell::new(Some(protocol)),
                winner,
                ended: Cell::new(false),
                live: RefCell::default(),
                failures: RefCell::default(),
                waker: RefCell::default(),
            }),
            options,
            attempt_delay,
            timeout,
            lookups: [None, None],
            lookup_errors: Vec::new(),
            queues: [VecDeque::new(), VecDeque::new()],
            seen: Vec::new(),
            last_family: None,
            resolution_delay: None,
            resolution_waited: false,
            next_attempt: None,
            attempt_due: true,
            deadline,
            started: 0,
            failures: Vec::new(),
            finished: false,
            handle,
        };
        match addresses {
            Addresses::Name(host, port) => {
                let resolver = race.handle.name_resolver();
                // AAAA first (RFC 8305 §3), then A; a bound source address allows one family.
                for (index, family) in [AddressFamily::V6, AddressFamily::V4]
                    .into_iter()
                    .enumerate()
                {
                    if race.family_allowed(family) {
                        race.lookups[index] = Some(resolver.lookup(&host, family));
                    }
                }
                race.port = port;
            }
            Addresses::Known(addrs) => {
                for addr in addrs {
                    race.queue(addr);
                }
            }
        }
        race
    }

    /// Whether a bound source address (if any) lets attempts use `family`.
    fn family_allowed(&self, family: AddressFamily) -> bool {
        self.options
            .bind
            .is_none_or(|bind| family.contains(bind.ip()))
    }

    fn queue(&mut self, addr: SocketAddr) {
        let family = AddressFamily::of(addr.ip());
        if self.seen.contains(&addr) || !self.family_allowed(family) {
            return;
        }
        self.seen.push(addr);
        self.queues[family_index(family)].push_back(addr);
    }

    /// The next address: the other family than the last attempt's when it has one (§4).
    fn next_addr(&mut self) -> Option<SocketAddr> {
        let first = match self.last_family {
            Some(last) => 1 - last,
            None => 0,
        };
        for index in [first, 1 - first] {
            if let Some(addr) = self.queues[index].pop_front() {
                self.last_family = Some(index);
                return Some(addr);
            }
        }
        None
    }

    fn start_attempt(&mut self, addr: SocketAddr) {
        let number = self.started;
        self.started += 1;
        self.shared.live.borrow_mut().push(LiveAttempt {
            number,
            addr,
            id: None,
        });
        let shared = Rc::clone(&self.shared);
        let mut options = self.options.clone();
        // The race's deadline ends every attempt first (it started no later than they).
        options.timeout = Some(self.timeout.saturating_add(Duration::from_secs(1)));
        self.handle.run(move |reactor| {
            if shared.ended.get() {
                shared.remove_live(number);
                return;
            }
            let attempt = Attempt {
                shared: Rc::clone(&shared),
                number,
                addr,
                inner: None,
            };
            match reactor.connect(&addr.into(), attempt, options) {
                Ok(id) => {
                    if let Some(live) = shared
                        .live
                        .borrow_mut()
                        .iter_mut()
                        .find(|a| a.number == number)
                    {
                        live.id = Some(id);
                    }
                }
                Err(error) => {
                    shared.remove_live(number);
                    let io = match &error {
                        EngineError::Op(op) => Some(op.source.kind()),
                        _ => None,
                    };
                    shared.failures.borrow_mut().push(AttemptFailure {
                        addr,
                        kind: None,
                        io,
                        reason: error.to_string(),
                        tls: None,
                    });
                    shared.wake();
                }
            }
        });
        self.next_attempt = Some(self.handle.sleep(self.attempt_delay));
        self.attempt_due = false;
    }

    /// Ends the race: no attempt may win any more; the live ones are aborted.
    fn end(&mut self) {
        self.finished = true;
        self.shared.ended.set(true);
        let winner = self.shared.winner.get();
        let losers: Vec<ConnId> = self
            .shared
            .live
            .borrow()
            .iter()
            .filter_map(|a| a.id)
            .filter(|id| Some(*id) != winner)
            .collect();
        if !losers.is_empty() {
            self.handle.run(move |reactor| {
                for id in losers {
                    reactor.with_conn(id, |ctx| ctx.abort());
                }
            });
        }
        self.lookups = [None, None];
        self.resolution_delay = None;
        self.next_attempt = None;
    }

    /// Ends the race without a winner: the protocol gets `connection_lost(reason)`.
    fn lose(&mut self, reason: LostReason) {
        self.end();
        if let Some(mut protocol) = self.shared.protocol.borrow_mut().take() {
            self.handle.run(move |reactor| {
                reactor.with_conn(ConnId::none(), |ctx| protocol.connection_lost(ctx, reason));
            });
        }
    }

    fn fail(&mut self, timed_out: bool) {
        let in_flight = if timed_out {
            self.shared.live.borrow().iter().map(|a| a.addr).collect()
        } else {
            Vec::new()
        };
        let error = HostConnectError {
            host: self.label.clone(),
            port: self.port,
            lookups: std::mem::take(&mut self.lookup_errors),
            attempts: std::mem::take(&mut self.failures),
            timed_out: timed_out.then_some(self.timeout),
            in_flight,
        };
        self.lose(LostReason::HostConnect(Box::new(error)));
    }

    /// Polls the lookups; `true` if one finished.
    fn poll_lookups(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let mut changed = false;
        for index in 0..2 {
            let Some(lookup) = self.lookups[index].as_mut() else {
                continue;
            };
            let Poll::Ready(answer) = lookup.as_mut().poll(cx) else {
                continue;
            };
            self.lookups[index] = None;
            changed = true;
            let family = if index == 0 {
                AddressFamily::V6
            } else {
                AddressFamily::V4
            };
            match answer {
                Ok(ips) => {
                    let port = self.port;
                    for ip in ips.into_iter().filter(|ip| family.contains(*ip)) {
                        self.queue(SocketAddr::new(ip, port));
                    }
                }
                Err(error) => self.lookup_errors.push((family, error)),
            }
        }
        changed
    }

    /// Whether attempts may start: one did already, the IPv6 lookup is done, or the
    /// Resolution Delay passed.
    fn may_start(&self) -> bool {
        self.started > 0 || self.lookups[0].is_none() || self.resolution_waited
    }
}

fn family_index(family: AddressFamily) -> usize {
    match family {
        AddressFamily::V6 => 0,
        AddressFamily::V4 => 1,
    }
}

impl<P: Protocol> Future for Race<P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let race = self.get_mut();
        if race.finished {
            return Poll::Ready(());
        }
        *race.shared.waker.borrow_mut() = Some(cx.waker().clone());
        loop {
            if race.shared.winner.get().is_some() {
                race.end();
                return Poll::Ready(());
            }
            if Pin::new(&mut race.deadline).poll(cx).is_ready() {
                race.fail(true);
                return Poll::Ready(());
            }
            race.poll_lookups(cx);
            let new_failures = std::mem::take(&mut *race.shared.failures.borrow_mut());
            if !new_failures.is_empty() {
                // §5: a failed attempt lets the next one start at once.
                race.attempt_due = true;
                race.failures.extend(new_failures);
            }
            if !race.may_start() && !race.queues[1].is_empty() {
                // §3: IPv4 answered first; give IPv6 the Resolution Delay.
                let handle = &race.handle;
                let delay = race
                    .resolution_delay
                    .get_or_insert_with(|| handle.sleep(RESOLUTION_DELAY));
                if Pin::new(delay).poll(cx).is_ready() {
                    race.resolution_delay = None;
                    race.resolution_waited = true;
                    continue;
                }
            }
            if let Some(timer) = race.next_attempt.as_mut()
                && Pin::new(timer).poll(cx).is_ready()
            {
                race.next_attempt = None;
                race.attempt_due = true;
            }
            let live = race.shared.live.borrow().len();
            if race.may_start()
                && (race.attempt_due || live == 0)
                && let Some(addr) = race.next_addr()
            {
                race.start_attempt(addr);
                // Poll the new attempt's timer (and look again for what changed).
                continue;
            }
            let looking = race.lookups.iter().any(Option::is_some);
            let queued = race.queues.iter().any(|q| !q.is_empty());
            if live == 0 && !looking && !queued {
                race.fail(false);
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
    }
}

impl<P: Protocol> Drop for Race<P> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Cancelled: drop the lookups, abort the attempts.
        if self.started > 0 {
            self.lose(LostReason::Aborted);
        } else {
            self.end();
            // Nothing started: the protocol is dropped without callbacks.
            drop(self.shared.protocol.borrow_mut().take());
        }
    }
}

/// One attempt's protocol: aborts itself if it connects after the race ended; the
/// winner forwards every callback to the user's protocol.
struct Attempt<P: Protocol> {
    shared: Rc<Shared<P>>,
    number: usize,
    addr: SocketAddr,
    /// The user's protocol, once this attempt won.
    inner: Option<P>,
}

impl<P: Protocol> Protocol for Attempt<P> {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let won = if self.shared.ended.get() {
            None
        } else {
            self.shared.protocol.borrow_mut().take()
        };
        let Some(protocol) = won else {
            // Lost the race (or it was cancelled): nobody wants this connection.
            ctx.abort();
            return;
        };
        self.shared.winner.set(Some(ctx.id()));
        self.shared.ended.set(true);
        self.shared.remove_live(self.number);
        self.shared.wake();
        self.inner.insert(protocol).connection_made(ctx);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(inner) = self.inner.as_mut() {
            inner.data_received(ctx, data);
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        match self.inner.as_mut() {
            Some(inner) => inner.eof_received(ctx),
            None => ctx.close(),
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner.as_mut() {
            inner.pause_writing(ctx);
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner.as_mut() {
            inner.write_drained(ctx);
        }
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner.as_mut() {
            inner.shutdown_started(ctx);
        }
    }

    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner.as_mut() {
            inner.handshake_completed(ctx);
        }
    }

    fn woken(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner.as_mut() {
            inner.woken(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some(inner) = self.inner.as_mut() {
            inner.timer_fired(ctx, timer);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(inner) = self.inner.as_mut() {
            inner.connection_lost(ctx, reason);
            return;
        }
        self.shared.remove_live(self.number);
        if self.shared.ended.get() {
            return;
        }
        let io = match &reason {
            LostReason::ConnectFailed(error) | LostReason::Error(error) => {
                Some(error.source.kind())
            }
            LostReason::ConnectTimeout => Some(io::ErrorKind::TimedOut),
            _ => None,
        };
        let tls = match &reason {
            LostReason::Tls(error) => Some(error.clone()),
            _ => None,
        };
        self.shared.failures.borrow_mut().push(AttemptFailure {
            addr: self.addr,
            kind: Some(reason.kind()),
            io,
            reason: reason.to_string(),
            tls,
        });
        self.shared.wake();
    }
}
