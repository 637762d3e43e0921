//! Running a workload: the plan every core follows, the runtime, the progress line, the
//! stop conditions, and collecting per-core results into one [`Report`].
//!
//! Owns: [`RunOptions`] (what the command line asks for), [`run_stream`] and [`run_udp`].
//! Contract: the calling thread only watches (atomics, every 100 ms) and decides when to
//! stop; the cores do all I/O and measurement and hand their histogram and counters back
//! through a crossbeam channel from an `on_stop` hook, merged here.

use std::cell::RefCell;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringwork::platform::BackendChoice;
use ringwork::{DriverConfig, Reactor, ReactorConfig, Runtime};

use crate::report::{Counters, EngineCounts, Report, RunFacts, new_histogram};
use crate::session::Session;
use crate::stream::{CoreState, CoreTls, SessionFactory, Slot, start_slot};
use crate::tls::{TlsOptions, TlsSetupError};

/// What to run (shared by every workload).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Workload name for the report (`tcp`, `http`, `udp`).
    pub workload: String,
    /// Target as given (URL or address), for the report.
    pub target: String,
    /// Address to load.
    pub addr: SocketAddr,
    /// Connections (UDP: flows), across all cores.
    pub connections: usize,
    /// Measured duration (after warm-up).
    pub duration: Duration,
    /// Stop after this many responses instead (the duration still bounds the run).
    pub requests: Option<u64>,
    /// Constant total rate, requests/s; `None`: closed loop.
    pub rate: Option<f64>,
    /// Requests in flight per connection (pipelining depth).
    pub depth: usize,
    /// Closed loop: send `depth` requests at a time, the next ones only when all were
    /// answered (wrk's pipeline.lua), instead of keeping `depth` in flight.
    pub batch: bool,
    /// Warm-up, excluded from results.
    pub warmup: Duration,
    /// Connections are opened evenly over this period.
    pub ramp: Duration,
    /// Per-request response timeout (UDP: per datagram).
    pub timeout: Option<Duration>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Reconnect after this many requests per connection (stream workloads).
    pub reconnect_every: Option<u64>,
    /// Reactor threads.
    pub cores: usize,
    /// CPUs to pin the reactor threads to (implies `cores = cpus.len()`).
    pub cpus: Option<Vec<usize>>,
    /// Engine backend.
    pub backend: BackendChoice,
    /// Show a live progress line (only on a terminal).
    pub progress: bool,
    /// Stop early on SIGINT/SIGTERM and still report (the command line sets it).
    pub handle_signals: bool,
    /// Stream workloads: run TLS on every connection (each core builds its own connector).
    pub tls: Option<TlsOptions>,
    /// Spin instead of sleeping when a timer (a constant-rate send) is due within this
    /// ([`ReactorConfig::busy_poll`]); zero: sleep.
    pub busy_poll: Duration,
    /// Constant rate: group sends on a grid of this width, so that one wake-up sends every
    /// request whose slot falls in the same cell (up to this much before its slot); zero:
    /// each request at its own slot; cut to one connection's interval (the grid: the
    /// private `Plan::wake_at`).
    pub send_window: Duration,
}

impl RunOptions {
    /// Defaults for `workload` against `addr`: 10 connections, 10 s, closed loop, depth 1.
    #[must_use]
    pub fn new(workload: &str, target: &str, addr: SocketAddr) -> Self {
        Self {
            workload: workload.into(),
            target: target.into(),
            addr,
            connections: 10,
            duration: Duration::from_secs(10),
            requests: None,
            rate: None,
            depth: 1,
            batch: false,
            warmup: Duration::ZERO,
            ramp: Duration::ZERO,
            timeout: None,
            connect_timeout: Duration::from_secs(5),
            reconnect_every: None,
            cores: 1,
            cpus: None,
            backend: BackendChoice::Auto,
            progress: false,
            handle_signals: false,
            tls: None,
            busy_poll: Duration::ZERO,
            send_window: Duration::ZERO,
        }
    }

    fn cores(&self) -> usize {
        self.cpus.as_ref().map_or(self.cores, Vec::len).max(1)
    }
}

/// Why a run could not happen. The Display text is lowercase and unstable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The options make no sense.
    #[error("{0}")]
    Config(String),
    /// The engine failed (no backend, a core could not start).
    #[error("engine: {0}")]
    Engine(#[from] ringwork::EngineError),
    /// The TLS options cannot be used (unreadable `--cacert`, bad name or suite).
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
}

/// Most requests in flight per connection.
const MAX_DEPTH: usize = 1 << 16;

/// The schedule every core follows (immutable during the run).
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    pub(crate) connections: usize,
    pub(crate) cores: usize,
    pub(crate) depth: usize,
    /// Send `depth` requests at a time ([`RunOptions::batch`]).
    pub(crate) batch: bool,
    /// Time between intended sends on one connection (constant-rate mode).
    pub(crate) interval: Option<Duration>,
    /// Grouping window of constant-rate sends ([`RunOptions::send_window`]).
    pub(crate) send_window: Duration,
    pub(crate) start: Instant,
    pub(crate) record_from: Instant,
    pub(crate) end: Instant,
    pub(crate) ramp: Duration,
    pub(crate) requests: Option<u64>,
    pub(crate) reconnect_every: Option<u64>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connect_timeout: Duration,
}

impl Plan {
    /// This core's share of a request count.
    pub(crate) fn quota(&self, core: usize) -> Option<u64> {
        self.requests.map(|n| {
            let cores = self.cores as u64;
            n / cores + u64::from((core as u64) < n % cores)
        })
    }

    /// When slot `index` opens its connection, and its first intended send time.
    pub(crate) fn slot_start(&self, index: usize) -> (Duration, Instant) {
        let frac = index as f64 / self.connections.max(1) as f64;
        let delay = self.ramp.mul_f64(frac);
        let phase = self.interval.map_or(Duration::ZERO, |i| i.mul_f64(frac));
        (delay, self.start + delay + phase)
    }

    /// When the generator sends a request whose slot is `at`: the start of the
    /// `send_window`-wide cell of a grid from `start` that holds `at` (`at` itself without
    /// a window). Every connection of a core whose slot falls in one cell arms its timer
    /// for the same instant, so the reactor wakes once for all of them and sends them in
    /// one turn (one submission), and their responses tend to complete together: the
    /// generator's CPU per request falls with the requests per wake-up. The price: a
    /// request goes out up to `send_window` before its slot (the server sees bursts of a
    /// window's requests), and its latency is then timed from the actual send, never from
    /// the later slot.
    pub(crate) fn wake_at(&self, at: Instant) -> Instant {
        let window = u64::try_from(self.send_window.as_nanos()).unwrap_or(u64::MAX);
        if window == 0 {
            return at;
        }
        let Some(since) = at.checked_duration_since(self.start) else {
            return at;
        };
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        self.start + Duration::from_nanos(nanos - nanos % window)
    }
}

/// Per-core figures the watching thread reads (one cache line each).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct LiveCore {
    completed: AtomicU64,
    errors: AtomicU64,
    refused: AtomicU64,
    connected: AtomicU64,
    done: AtomicBool,
}

impl LiveCore {
    pub(crate) fn set_completed(&self, n: u64) {
        self.completed.store(n, Ordering::Relaxed);
    }
    pub(crate) fn add_errors(&self, n: u64, refused: bool) {
        self.errors.fetch_add(n, Ordering::Relaxed);
        if refused {
            self.refused.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub(crate) fn add_connected(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_done(&self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// What the cores share with the watching thread.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) cores: Vec<LiveCore>,
    stopping: AtomicBool,
}

impl Live {
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
    fn sum(&self, f: impl Fn(&LiveCore) -> &AtomicU64) -> u64 {
        self.cores
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum()
    }
}

/// One core's results.
pub(crate) struct CoreResult {
    pub(crate) hist: hdrhistogram::Histogram<u64>,
    pub(crate) uncorrected: Option<hdrhistogram::Histogram<u64>>,
    pub(crate) send_lag: Option<hdrhistogram::Histogram<u64>>,
    pub(crate) last_completion: Option<Instant>,
    pub(crate) counters: Counters,
    /// The core's reactor statistics (set by the `on_stop` hook).
    pub(crate) engine: EngineCounts,
}

/// The reactor statistics of the [`Report::generator`] line, for `responses` responses.
pub(crate) fn engine_counts(reactor: &Reactor, responses: u64) -> EngineCounts {
    let stats = reactor.stats();
    EngineCounts {
        responses,
        turns: stats.turns,
        enters: stats.enters,
        completions: stats.completions,
    }
}

fn plan(opts: &RunOptions) -> Result<Plan, RunError> {
    if opts.connections == 0 || opts.connections > 1_000_000 {
        return Err(RunError::Config(
            "--connections must be between 1 and 1000000".into(),
        ));
    }
    if opts.depth == 0 || opts.depth > MAX_DEPTH {
        return Err(RunError::Config(format!(
            "--pipeline/--in-flight must be between 1 and {MAX_DEPTH}"
        )));
    }
    if opts.duration.is_zero() && opts.requests.is_none() {
        return Err(RunError::Config("--duration must be positive".into()));
    }
    if opts.batch && opts.rate.is_some() {
        return Err(RunError::Config(
            "--batch is for closed-loop runs (no --rate)".into(),
        ));
    }
    let interval = match opts.rate {
        None => None,
        Some(r) if r.is_finite() && r > 0.0 => {
            Some(Duration::from_secs_f64(opts.connections as f64 / r))
        }
        Some(r) => return Err(RunError::Config(format!("--rate {r}: must be positive"))),
    };
    let start = Instant::now();
    let record_from = start + opts.warmup;
    let end = record_from
        + if opts.duration.is_zero() {
            Duration::from_secs(3600)
        } else {
            opts.duration
        };
    Ok(Plan {
        addr: opts.addr,
        connections: opts.connections,
        cores: opts.cores(),
        depth: opts.depth,
        batch: opts.batch,
        interval,
        // A window groups sends of different connections: one longer than a connection's
        // own interval would group its consecutive sends too, so it is cut to that (the
        // report gives the window used).
        send_window: interval.map_or(Duration::ZERO, |i| opts.send_window.min(i)),
        start,
        record_from,
        end,
        ramp: opts.ramp,
        requests: opts.requests,
        reconnect_every: opts.reconnect_every,
        timeout: opts.timeout,
        connect_timeout: opts.connect_timeout,
    })
}

/// Runs a stream workload (TCP, HTTP, any [`Session`]): one session per connection from
/// `factory`.
///
/// # Errors
/// Bad options, or the engine could not run.
pub fn run_stream<S, F>(opts: &RunOptions, factory: F) -> Result<Report, RunError>
where
    S: Session,
    F: Fn() -> S + Send + Sync + 'static,
{
    let factory = Arc::new(factory);
    // Checked here, so a bad option is an error before any core starts; each core then
    // builds its own connector (its own resumption cache: no lock shared between cores).
    let tls = match &opts.tls {
        Some(t) => Some((t.clone(), t.connector()?, t.server_name()?)),
        None => None,
    };
    drive(opts, move |reactor, plan, live, tx| {
        let core = reactor.core_index();
        let f = Arc::clone(&factory);
        let sessions: SessionFactory<S> = Rc::new(move || f());
        let core_tls = tls.as_ref().map(|(opts, checked, name)| CoreTls {
            // Built from the options just checked: only a vanished CA file could fail now,
            // and the checked connector then still works (sharing its cache).
            connector: opts.connector().unwrap_or_else(|_| checked.clone()),
            server_name: name.clone(),
        });
        let state = Rc::new(RefCell::new(CoreState::new(
            Arc::clone(&plan),
            Arc::clone(&live),
            core,
            core_tls,
        )));
        let handle = reactor.handle();
        for index in (core..plan.connections).step_by(plan.cores) {
            let (delay, next_send) = plan.slot_start(index);
            let slot = Slot {
                next_send,
                failures: 0,
            };
            start_slot(
                &handle,
                Rc::clone(&state),
                Rc::clone(&sessions),
                slot,
                delay,
            );
        }
        reactor.on_stop(move |r| {
            let mut result = state.borrow_mut().take_result();
            result.counters.panics = r.stats().panics;
            result.engine = engine_counts(r, state.borrow().completed);
            let _ = tx.send(result);
        });
    })
}

/// Runs a datagram workload: one UDP socket per flow, one session each from `factory`
/// (`ringwork-load udp` uses [`SeqEchoSession`](crate::udp::SeqEchoSession)).
///
/// # Errors
/// Bad options, or the engine could not run.
pub fn run_udp<S, F>(opts: &RunOptions, factory: F) -> Result<Report, RunError>
where
    S: Session,
    F: Fn() -> S + Send + Sync + 'static,
{
    drive(opts, move |reactor, plan, live, tx| {
        crate::udp::start_core(reactor, plan, live, &factory, tx);
    })
}

/// Checks a `ringwork-load udp` datagram size.
///
/// # Errors
/// Smaller than the sequence number or larger than a UDP datagram.
pub fn check_udp_size(size: usize) -> Result<(), RunError> {
    if !(crate::udp::MIN_SIZE..=65_507).contains(&size) {
        return Err(RunError::Config(format!(
            "--size must be between {} (a sequence number leads each datagram) and 65507",
            crate::udp::MIN_SIZE
        )));
    }
    Ok(())
}

type CoreInit =
    dyn Fn(&mut Reactor, Arc<Plan>, Arc<Live>, crossbeam_channel::Sender<CoreResult>) + Send + Sync;

fn drive(
    opts: &RunOptions,
    init: impl Fn(&mut Reactor, Arc<Plan>, Arc<Live>, crossbeam_channel::Sender<CoreResult>)
    + Send
    + Sync
    + 'static,
) -> Result<Report, RunError> {
    let init: Arc<CoreInit> = Arc::new(init);
    let plan = Arc::new(plan(opts)?);
    let cores = plan.cores;
    let live = Arc::new(Live {
        cores: (0..cores).map(|_| LiveCore::default()).collect(),
        stopping: AtomicBool::new(false),
    });
    let reactor_config = ReactorConfig {
        connect_timeout: opts.connect_timeout,
        timer_tick: Duration::from_micros(100),
        max_connections: opts.connections.max(1024),
        busy_poll: opts.busy_poll,
        ..ReactorConfig::default()
    };
    let mut builder = Runtime::builder()
        .cores(cores)
        .pin(false)
        .reactor_config(reactor_config)
        .driver_config(DriverConfig {
            backend: opts.backend,
            ..DriverConfig::default()
        });
    if let Some(cpus) = &opts.cpus {
        builder = builder.cpus(cpus.clone());
    }
    let runtime = builder.build()?;
    let shutdown = runtime.shutdown_handle();
    if opts.handle_signals {
        // Ctrl-C ends the run early; the cores stop and the report covers what was measured.
        shutdown.on_signals(Duration::ZERO)?;
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let (p, l) = (Arc::clone(&plan), Arc::clone(&live));
    let thread = std::thread::Builder::new()
        .name("ringwork-load".into())
        .spawn(move || {
            runtime.run(move |reactor| {
                init(reactor, Arc::clone(&p), Arc::clone(&l), tx.clone());
                Ok(())
            })
        })
        .map_err(|e| RunError::Config(format!("cannot start the runtime thread: {e}")))?;

    let bar = (opts.progress && std::io::stderr().is_terminal()).then(|| progress_bar(&plan));
    let stopped_at = loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        let completed = live.sum(|c| &c.completed);
        if let Some(bar) = &bar {
            let elapsed = now.saturating_duration_since(plan.start);
            bar.set_position(elapsed.as_millis() as u64);
            let rate = completed as f64 / elapsed.as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{completed} responses ({rate:.0}/s), {} errors, {} connects",
                live.sum(|c| &c.errors),
                live.sum(|c| &c.connected)
            ));
        }
        if now >= plan.end || thread.is_finished() {
            break now.min(plan.end);
        }
        if plan.requests.is_some() && live.cores.iter().all(|c| c.done.load(Ordering::Relaxed)) {
            break now;
        }
        // Every connect refused and none ever made: waiting longer only repeats it.
        let grace = plan.ramp + Duration::from_secs(1);
        if now.saturating_duration_since(plan.start) >= grace
            && live.sum(|c| &c.connected) == 0
            && live.sum(|c| &c.refused) > 0
        {
            break now;
        }
    };
    live.stopping.store(true, Ordering::Relaxed);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    shutdown.shutdown(Duration::ZERO);
    let joined = thread
        .join()
        .map_err(|_| RunError::Config("the runtime thread panicked".into()))?;
    joined?;
    let mut hist = new_histogram();
    let mut uncorrected = plan.interval.map(|_| new_histogram());
    let mut send_lag = plan.interval.map(|_| new_histogram());
    let mut counters = Counters::default();
    let mut engine = EngineCounts::default();
    let mut last = None;
    for result in rx.try_iter() {
        engine.add(&result.engine);
        last = last.max(result.last_completion);
        let _ = hist.add(&result.hist);
        if let (Some(u), Some(h)) = (&mut uncorrected, &result.uncorrected) {
            let _ = u.add(h);
        }
        if let (Some(l), Some(h)) = (&mut send_lag, &result.send_lag) {
            let _ = l.add(h);
        }
        counters.merge(result.counters);
    }
    // A request-count run ends with its last response, not when this thread noticed.
    let stopped_at = match (plan.requests, last) {
        (Some(_), Some(last)) => last.min(stopped_at),
        _ => stopped_at,
    };
    let duration_s = stopped_at
        .saturating_duration_since(plan.record_from)
        .as_secs_f64();
    Ok(Report::new(
        RunFacts {
            workload: opts.workload.clone(),
            target: opts.target.clone(),
            connections: opts.connections as u64,
            cores: cores as u64,
            target_rate: opts.rate,
            duration_s,
        },
        counters,
        &hist,
        uncorrected.as_ref(),
    )
    .with_send_lag(send_lag.as_ref())
    .with_send_window(plan.send_window)
    .with_generator(engine))
}

fn progress_bar(plan: &Plan) -> indicatif::ProgressBar {
    let total = plan.end.saturating_duration_since(plan.start).as_millis() as u64;
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate_plan(send_window: Duration) -> Result<Plan, RunError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        plan(&RunOptions {
            rate: Some(1000.0),
            send_window,
            ..RunOptions::new("http", "http://127.0.0.1:1/", addr)
        })
    }

    #[test]
    fn send_window_grid() {
        let us = Duration::from_micros;
        let p = rate_plan(us(100)).expect("plan");
        // Cells of 100 µs from the start: a slot wakes at its cell's start.
        assert_eq!(p.wake_at(p.start + us(250)), p.start + us(200));
        assert_eq!(p.wake_at(p.start + us(200)), p.start + us(200));
        assert_eq!(p.wake_at(p.start + us(299)), p.start + us(200));
        assert_eq!(p.wake_at(p.start), p.start);
        // Without a window, every slot is its own wake-up.
        let p = rate_plan(Duration::ZERO).expect("plan");
        assert_eq!(p.wake_at(p.start + us(250)), p.start + us(250));
    }

    /// Latencies counted in runs (`CoreState::record`) land in the histograms exactly as
    /// recorded one by one: repeats, changes of either instant, and the last run (flushed
    /// by `take_result`).
    #[test]
    fn recorded_latencies_equal_one_by_one() {
        let plan = Arc::new(rate_plan(Duration::ZERO).expect("plan"));
        let live = Arc::new(Live {
            cores: vec![LiveCore::default()],
            stopping: AtomicBool::new(false),
        });
        let mut state = CoreState::new(Arc::clone(&plan), live, 0, None);
        let (mut hist, mut uncorrected) = (new_histogram(), new_histogram());
        let us = Duration::from_micros;
        let t = plan.start;
        // (completed at, intended, sent), in µs after the start.
        let events = [
            (100, 10, 10),
            (100, 10, 12),
            (100, 10, 15),
            (100, 40, 40),
            (100, 10, 10),
            (250, 10, 10),
            (250, 10, 11),
            (300, 300, 300),
            (900, 100, 200),
            (900, 100, 200),
        ];
        for (now, intended, sent) in events {
            state.record(t + us(now), t + us(intended), t + us(sent));
            hist.saturating_record(now - intended);
            uncorrected.saturating_record(now - sent);
        }
        let result = state.take_result();
        assert_eq!(result.hist, hist);
        assert_eq!(result.uncorrected, Some(uncorrected));
        assert_eq!(result.hist.len(), events.len() as u64);
        assert_eq!(result.last_completion, Some(t + us(900)));
        // Nothing is held back for the next result.
        assert!(state.take_result().hist.is_empty());
    }

    #[test]
    fn send_window_at_most_the_interval() {
        // 10 connections at 1,000/s: a slot every 10 ms per connection.
        let ms = Duration::from_millis;
        assert_eq!(rate_plan(ms(4)).expect("plan").send_window, ms(4));
        assert_eq!(rate_plan(ms(11)).expect("plan").send_window, ms(10));
    }
}
