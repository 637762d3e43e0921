//! The engine-side driver of stream workloads: one [`Conn`] protocol per connection slot,
//! running a [`Session`].
//!
//! Owns: connecting (ramp-up, reconnects with back-off), the send schedule (closed loop, or
//! constant rate with intended send times), pipelining depth, response timeouts, error
//! classification, and recording latencies into the core's histogram.
//! Contract: latency = completion turn time − *intended* send time. In closed loop the
//! intended time is the actual send time; at a constant rate it is the schedule's slot, so a
//! stalled server inflates the latency of every request it delayed (coordinated omission
//! corrected, as wrk2) — or the actual send, when a send window sent it before its slot. Per-request work allocates nothing: requests are written into a
//! reused buffer and copied once into the connection's write buffer; responses are parsed
//! in place from the receive buffer (only an incomplete tail is copied).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use ringwork::platform::SockAddr;
use ringwork::tls::{HandshakeKind, ServerName, TlsConnector};
use ringwork::{
    ConnectOptions, Context, LocalHandle, LostKind, LostReason, Protocol, Reactor, TimerId,
};

use crate::report::{Counters, ErrorKind, MAX_LATENCY_US, new_histogram};
use crate::run::{Live, Plan};
use crate::session::{Progress, Session};

/// Most bytes of an incomplete response kept between reads (a session that never makes
/// progress on more than this is fed garbage).
const MAX_PENDING: usize = 1 << 20;

/// One core's shared state: the plan, the histogram and counters of its connections.
pub(crate) struct CoreState {
    pub(crate) plan: Arc<Plan>,
    pub(crate) live: Arc<Live>,
    pub(crate) core: usize,
    pub(crate) hist: Histogram<u64>,
    /// Constant-rate mode: latency from the actual send time (for comparison only).
    pub(crate) uncorrected: Option<Histogram<u64>>,
    /// Constant-rate mode: how late each rate timer fired (µs after its slot), i.e. the
    /// generator's own lateness for a send that found its connection free.
    pub(crate) send_lag: Option<Histogram<u64>>,
    pub(crate) counters: Counters,
    /// Latencies recorded but not yet in `hist` (see [`LatencyRun`]).
    run: Option<LatencyRun>,
    /// Requests this core may still send (request-count mode).
    pub(crate) quota: Option<u64>,
    /// Requests sent and not answered, on all connections of the core.
    pub(crate) in_flight: u64,
    /// Responses completed (any time; progress display).
    pub(crate) completed: u64,
    /// When the last response completed (the end of a request-count run).
    pub(crate) last_completion: Option<Instant>,
    /// TLS workloads: this core's connector (its own resumption cache) and the server name.
    pub(crate) tls: Option<CoreTls>,
}

/// One core's TLS client: connections of the core share its session cache.
pub(crate) struct CoreTls {
    pub(crate) connector: TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl CoreState {
    pub(crate) fn new(plan: Arc<Plan>, live: Arc<Live>, core: usize, tls: Option<CoreTls>) -> Self {
        let quota = plan.quota(core);
        let uncorrected = plan.interval.map(|_| new_histogram());
        let send_lag = plan.interval.map(|_| new_histogram());
        Self {
            uncorrected,
            send_lag,
            plan,
            live,
            core,
            hist: new_histogram(),
            counters: Counters::default(),
            run: None,
            quota,
            in_flight: 0,
            completed: 0,
            last_completion: None,
            tls,
        }
    }

    /// Records one response completed at `now`, sent at `sent` for an `intended` time.
    pub(crate) fn record(&mut self, now: Instant, intended: Instant, sent: Instant) {
        let us = |from: Instant| {
            (now.saturating_duration_since(from).as_micros() as u64).min(MAX_LATENCY_US)
        };
        self.last_completion = Some(now);
        match &mut self.run {
            Some(run) if run.now == now && run.intended == intended => run.count += 1,
            run => {
                if let Some(done) = run.take() {
                    self.hist.saturating_record_n(done.us, done.count);
                }
                *run = Some(LatencyRun {
                    now,
                    intended,
                    us: us(intended),
                    count: 1,
                });
            }
        }
        if let Some(h) = &mut self.uncorrected {
            h.saturating_record(us(sent));
        }
    }

    /// Moves the latencies held in `run` into `hist`.
    fn flush_run(&mut self) {
        if let Some(done) = self.run.take() {
            self.hist.saturating_record_n(done.us, done.count);
        }
    }

    /// Records that a send due at `slot` could only go out at `now` (its rate timer fired
    /// late by that much, or the turn that ran it started late).
    pub(crate) fn record_send_lag(&mut self, now: Instant, slot: Instant) {
        if !self.in_window(now) {
            return;
        }
        if let Some(h) = &mut self.send_lag {
            let us = now.saturating_duration_since(slot).as_micros() as u64;
            h.saturating_record(us.min(MAX_LATENCY_US));
        }
    }

    /// This core's results, leaving empty ones behind.
    pub(crate) fn take_result(&mut self) -> crate::run::CoreResult {
        self.flush_run();
        crate::run::CoreResult {
            hist: std::mem::replace(&mut self.hist, new_histogram()),
            uncorrected: self
                .uncorrected
                .as_mut()
                .map(|h| std::mem::replace(h, new_histogram())),
            send_lag: self
                .send_lag
                .as_mut()
                .map(|h| std::mem::replace(h, new_histogram())),
            counters: std::mem::take(&mut self.counters),
            last_completion: self.last_completion,
            engine: crate::report::EngineCounts::default(),
        }
    }

    pub(crate) fn in_window(&self, t: Instant) -> bool {
        t >= self.plan.record_from && t < self.plan.end
    }

    pub(crate) fn error(&mut self, kind: ErrorKind, n: u64, sample: impl FnOnce() -> String) {
        self.counters.error(kind, n, sample);
        self.live.cores[self.core].add_errors(n, kind == ErrorKind::ConnectRefused);
    }

    pub(crate) fn check_done(&mut self) {
        if self.quota == Some(0) && self.in_flight == 0 {
            self.live.cores[self.core].set_done();
        }
    }
}

/// Responses with the same latency, counted before they go into the histogram together.
///
/// Time is read once per turn, so a closed loop completes many responses in one turn
/// (one `now`) that were sent in one earlier turn (one intended time): their latencies
/// are equal. Counting them and recording the count once (`record_n`) gives the same
/// histogram as recording each, without a time difference and a histogram update per
/// response.
#[derive(Clone, Copy, Debug)]
struct LatencyRun {
    now: Instant,
    intended: Instant,
    /// The latency of every response of the run, in µs.
    us: u64,
    count: u64,
}

/// A connection slot's lasting state, carried across reconnects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    /// Next intended send time (constant-rate mode).
    pub(crate) next_send: Instant,
    /// Consecutive failed connects (back-off).
    pub(crate) failures: u32,
}

/// Builds a session for a new connection.
pub(crate) type SessionFactory<S> = Rc<dyn Fn() -> S>;

/// Starts `slot`'s connection after `delay`.
pub(crate) fn start_slot<S: Session>(
    handle: &LocalHandle,
    core: Rc<RefCell<CoreState>>,
    factory: SessionFactory<S>,
    slot: Slot,
    delay: Duration,
) {
    let h = handle.clone();
    if delay.is_zero() {
        handle.run(move |r| connect_slot(r, core, factory, slot));
    } else {
        // Detached: the task runs on even though its JoinHandle is dropped.
        drop(handle.spawn_local(async move {
            let _ = h.sleep(delay).await;
            h.run(move |r| connect_slot(r, core, factory, slot));
        }));
    }
}

fn connect_slot<S: Session>(
    reactor: &mut Reactor,
    core: Rc<RefCell<CoreState>>,
    factory: SessionFactory<S>,
    mut slot: Slot,
) {
    let (addr, timeout, end) = {
        let c = core.borrow();
        (c.plan.addr, c.plan.connect_timeout, c.plan.end)
    };
    if Instant::now() >= end || core.borrow().live.stopping() {
        return;
    }
    let conn = Conn::new(Rc::clone(&core), Rc::clone(&factory), slot);
    let addr = SockAddr::from(addr);
    let tls = core
        .borrow()
        .tls
        .as_ref()
        .map(|t| (t.connector.clone(), t.server_name.clone()));
    let mut options = ConnectOptions::new().timeout(timeout);
    if let Some((connector, name)) = tls {
        options = options.tls(connector, name);
    }
    let started = reactor
        .connect(&addr, conn, options)
        .map(drop)
        .map_err(|e| e.to_string());
    if let Err(e) = started {
        core.borrow_mut().error(ErrorKind::ConnectError, 1, || e);
        slot.failures += 1;
        let handle = reactor.handle();
        start_slot(&handle, core, factory, slot, backoff(slot.failures));
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64 << failures.min(7)) // 10 ms .. 1.28 s
}

/// The protocol of one load connection.
pub(crate) struct Conn<S: Session> {
    core: Rc<RefCell<CoreState>>,
    factory: SessionFactory<S>,
    slot: Slot,
    session: S,
    out: BytesMut,
    pending: BytesMut,
    /// (intended, actual) send time of each outstanding request, oldest first.
    in_flight: VecDeque<(Instant, Instant)>,
    sent_on_conn: u64,
    /// The plan's `reconnect_every` (read per response; the plan does not change).
    reconnect_every: Option<u64>,
    rate_timer: Option<TimerId>,
    check_timer: Option<TimerId>,
    connected: bool,
    /// A response completed on this connection (else a reconnect backs off).
    answered: bool,
    /// We closed or aborted it (any error is already counted).
    closing: bool,
}

impl<S: Session> Conn<S> {
    fn new(core: Rc<RefCell<CoreState>>, factory: SessionFactory<S>, slot: Slot) -> Self {
        let (depth, reconnect_every) = {
            let c = core.borrow();
            (c.plan.depth, c.plan.reconnect_every)
        };
        let session = factory();
        Self {
            core,
            factory,
            slot,
            session,
            out: BytesMut::with_capacity(4096),
            pending: BytesMut::new(),
            in_flight: VecDeque::with_capacity(depth),
            sent_on_conn: 0,
            reconnect_every,
            rate_timer: None,
            check_timer: None,
            connected: false,
            answered: false,
            closing: false,
        }
    }

    /// Sends as many requests as the depth, the schedule and the quotas allow.
    fn fill(&mut self, ctx: &mut Context<'_>) {
        if self.closing || !self.connected || !self.session.ready() {
            return;
        }
        let now = ctx.now();
        let mut core = self.core.borrow_mut();
        let plan = Arc::clone(&core.plan);
        if now >= plan.end || (plan.batch && !self.in_flight.is_empty()) {
            return;
        }
        let mut sent = 0u64;
        // One request in flight per connection: a ready-made request goes out as it is,
        // without a copy (at most one per call, as the depth is 1).
        let single = plan.depth == 1;
        let mut shared = None;
        while self.in_flight.len() < plan.depth {
            if plan.reconnect_every.is_some_and(|n| self.sent_on_conn >= n) {
                break;
            }
            if core.quota == Some(0) {
                break;
            }
            let intended = match plan.interval {
                None => now,
                Some(interval) => {
                    let at = self.slot.next_send;
                    // With a send window, `wake` is the start of the window holding `at`:
                    // every connection due in it wakes at that one instant.
                    let wake = plan.wake_at(at);
                    if wake > now {
                        if self.rate_timer.is_none() {
                            self.rate_timer = Some(ctx.call_later(wake - now));
                        }
                        break;
                    }
                    self.slot.next_send = at + interval;
                    // Timed from the slot, or from the actual send if that was earlier (a
                    // grouped send): the corrected latency is never below the uncorrected.
                    at.min(now)
                }
            };
            if let Some(q) = &mut core.quota {
                *q -= 1;
            }
            match single.then(|| self.session.shared_request()).flatten() {
                Some(request) => shared = Some(request),
                None => self.session.write_request(&mut self.out),
            }
            self.in_flight.push_back((intended, now));
            self.sent_on_conn += 1;
            sent += 1;
        }
        if sent == 0 {
            return;
        }
        core.in_flight += sent;
        if core.in_window(now) {
            core.counters.sent += sent;
            let shared_len = shared.as_ref().map_or(0, bytes::Bytes::len);
            core.counters.bytes_out += (self.out.len() + shared_len) as u64;
        }
        drop(core);
        if let Some(request) = shared {
            ctx.write_bytes(request);
        } else {
            ctx.write(&self.out);
            self.out.clear();
        }
    }

    /// Counts `bytes_in` received bytes and records `progress`'s completed responses;
    /// `false` if the peer answered more than was asked (then the connection is aborted).
    fn complete(&mut self, ctx: &mut Context<'_>, bytes_in: usize, progress: Progress) -> bool {
        let now = ctx.now();
        let mut core = self.core.borrow_mut();
        let record = core.in_window(now);
        if record {
            core.counters.bytes_in += bytes_in as u64;
        }
        let n = progress.completed as usize;
        if n > self.in_flight.len() {
            drop(core);
            self.fail(ctx, ErrorKind::BadResponse, || {
                "more responses than requests".into()
            });
            return false;
        }
        for _ in 0..n {
            let Some((intended, sent)) = self.in_flight.pop_front() else {
                break;
            };
            if record {
                core.record(now, intended, sent);
            }
        }
        if n > 0 {
            self.answered = true;
            self.slot.failures = 0;
        }
        core.in_flight = core.in_flight.saturating_sub(n as u64);
        core.completed += n as u64;
        if record {
            core.counters.requests += n as u64;
            core.counters.unsuccessful += u64::from(progress.unsuccessful);
            if let Some(class) = progress.class {
                core.counters
                    .count_class(class, u64::from(progress.completed));
            }
        }
        let live = &core.live.cores[core.core];
        live.set_completed(core.completed);
        core.check_done();
        true
    }

    /// Counts an error, aborts the connection (a reconnect follows in `connection_lost`).
    fn fail(&mut self, ctx: &mut Context<'_>, kind: ErrorKind, sample: impl FnOnce() -> String) {
        self.core.borrow_mut().error(kind, 1, sample);
        self.closing = true;
        ctx.abort();
    }

    fn should_reconnect(&self, ctx: &Context<'_>) -> bool {
        let core = self.core.borrow();
        ctx.now() < core.plan.end && core.quota != Some(0) && !core.live.stopping()
    }
}

impl<S: Session> Protocol for Conn<S> {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.connected = true;
        {
            let mut core = self.core.borrow_mut();
            core.live.cores[core.core].add_connected();
            // TLS: the engine calls `connection_made` once the handshake is done.
            if let Some(info) = ctx.tls() {
                if core.in_window(ctx.now()) {
                    core.counters.tls_handshakes += 1;
                    if info.handshake_kind == HandshakeKind::Resumed {
                        core.counters.tls_resumed += 1;
                    }
                }
                if core.counters.tls_session.is_none() {
                    core.counters.tls_session =
                        Some(format!("{} {}", info.version, info.cipher_suite));
                }
            }
            if let Some(timeout) = core.plan.timeout {
                let check = (timeout / 4).max(Duration::from_millis(5));
                self.check_timer = Some(ctx.call_every(check));
            }
        }
        self.session.on_connect(&mut self.out);
        if !self.out.is_empty() {
            ctx.write(&self.out);
            self.out.clear();
        }
        self.fill(ctx);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if self.closing {
            return;
        }
        let result = if self.pending.is_empty() {
            self.session.on_bytes(data).inspect(|p| {
                if p.consumed < data.len() {
                    self.pending.extend_from_slice(&data[p.consumed..]);
                }
            })
        } else {
            self.pending.extend_from_slice(data);
            self.session.on_bytes(&self.pending).inspect(|p| {
                self.pending.advance(p.consumed.min(self.pending.len()));
            })
        };
        let progress = match result {
            Ok(p) => p,
            Err(e) => {
                self.complete(ctx, data.len(), Progress::default());
                return self.fail(ctx, ErrorKind::BadResponse, || e.to_string());
            }
        };
        if self.pending.len() > MAX_PENDING {
            self.complete(ctx, data.len(), Progress::default());
            return self.fail(ctx, ErrorKind::BadResponse, || {
                format!("no complete response in {MAX_PENDING} bytes")
            });
        }
        if !self.complete(ctx, data.len(), progress) {
            return;
        }
        let done_with_conn = progress.close
            || self
                .reconnect_every
                .is_some_and(|n| self.sent_on_conn >= n && self.in_flight.is_empty());
        if done_with_conn {
            // Requests pipelined past a `Connection: close` are dropped, not errors.
            let dropped = self.in_flight.len() as u64;
            self.in_flight.clear();
            {
                let mut core = self.core.borrow_mut();
                core.in_flight = core.in_flight.saturating_sub(dropped);
            }
            self.closing = true;
            ctx.close();
            return;
        }
        self.fill(ctx);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        if !self.closing {
            match self.session.on_eof() {
                Ok(p) => {
                    self.complete(ctx, 0, p);
                }
                Err(e) => {
                    return self.fail(ctx, ErrorKind::UnexpectedClose, || e.to_string());
                }
            }
            if !self.in_flight.is_empty() {
                let n = self.in_flight.len();
                return self.fail(ctx, ErrorKind::UnexpectedClose, || {
                    format!("peer closed with {n} responses outstanding")
                });
            }
        }
        self.closing = true;
        ctx.close();
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if Some(timer) == self.rate_timer {
            self.rate_timer = None;
            // The timer was armed with a free pipeline slot for `next_send` (for the start
            // of its send window): any lateness now is the generator's (the wake-up, or a
            // long turn before this one).
            let mut core = self.core.borrow_mut();
            let wake = core.plan.wake_at(self.slot.next_send);
            core.record_send_lag(ctx.now(), wake);
            drop(core);
            self.fill(ctx);
            return;
        }
        if Some(timer) == self.check_timer && !self.closing {
            let timeout = self.core.borrow().plan.timeout;
            if let (Some(timeout), Some(&(_, sent))) = (timeout, self.in_flight.front())
                && ctx.now().saturating_duration_since(sent) >= timeout
            {
                let n = self.in_flight.len() as u64;
                self.core.borrow_mut().error(ErrorKind::Timeout, n, || {
                    format!("no response within {timeout:?}")
                });
                self.closing = true;
                ctx.abort();
            }
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        let lost = self.in_flight.len() as u64;
        self.in_flight.clear();
        let kind = reason.kind();
        {
            let mut core = self.core.borrow_mut();
            core.in_flight = core.in_flight.saturating_sub(lost);
            if kind == LostKind::Shutdown {
                return;
            }
            if !self.closing {
                let error = match &reason {
                    LostReason::ConnectFailed(e)
                        if e.kind() == std::io::ErrorKind::ConnectionRefused =>
                    {
                        ErrorKind::ConnectRefused
                    }
                    LostReason::ConnectFailed(_) => ErrorKind::ConnectError,
                    LostReason::ConnectTimeout => ErrorKind::ConnectTimeout,
                    LostReason::Reset => ErrorKind::Reset,
                    LostReason::Error(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        ErrorKind::Reset
                    }
                    LostReason::Done => ErrorKind::UnexpectedClose,
                    LostReason::Tls(_) => ErrorKind::Tls,
                    _ => ErrorKind::Other,
                };
                core.error(error, 1, || reason.to_string());
            }
            core.check_done();
        }
        // A connection that never answered (refused, reset, garbage, closed at once) backs
        // off before the next attempt, so a broken target is not hammered in a tight loop.
        if !self.answered {
            self.slot.failures += 1;
        }
        if !self.should_reconnect(ctx) {
            return;
        }
        let delay = if self.answered {
            Duration::ZERO
        } else {
            backoff(self.slot.failures)
        };
        start_slot(
            &ctx.handle(),
            Rc::clone(&self.core),
            Rc::clone(&self.factory),
            self.slot,
            delay,
        );
    }
}
