//! IRC load: many clients in channels, a steady message rate, delivery latency.
//!
//! Opens `--clients` connections on `--cores` reactor threads of the ringwork engine; client
//! `i` registers as `b<i>` and joins `#c<i % channels>`. Once every client is in its
//! channel (the `366` of its JOIN), each core sends its share of `--rate` PRIVMSGs per
//! second to the channels, from its clients in turn; each message carries the instant it
//! was sent (one clock for the whole process). Every other member of the channel receives
//! it; the receiver records now minus that instant in a histogram. After `--warmup`
//! seconds it measures for `--duration` seconds and prints delivered messages per second,
//! latency percentiles, and a last `result:` line of `key=value` pairs for scripts. Messages
//! still in flight at the end are waited for up to 2 s (counted as `late` if later).
//!
//! ```text
//! ulimit -n 65536
//! cargo run --release -p ringwork-benches --example irc_load -- \
//!     --connect 127.0.0.1:6667 --clients 10000 --channels 100 --rate 200 --duration 20
//! ```
//!
//! The server's flood control applies per client: keep `rate / clients` well under its rate
//! (ringwork: 2 lines/s; ngircd: 1 line/s after its burst).
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use ringwork::{ConnId, ConnectOptions, Context, LostReason, Protocol, Reactor, Runtime};

/// IRC channel load (delivered messages per second and delivery latency).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The IRC server.
    #[arg(long, default_value = "127.0.0.1:6667")]
    connect: SocketAddr,
    /// Clients (connections).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Channels; client i joins #c<i % channels>.
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Messages sent per second, in total.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Seconds to measure, after the warm-up.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = ringwork_benches::parse_secs)]
    duration: Duration,
    /// Seconds of load before measuring.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = ringwork_benches::parse_secs)]
    warmup: Duration,
    /// Reactor threads of the load generator.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Give up if the clients are not all in their channels within this many seconds.
    #[arg(long, value_name = "SECS", default_value = "120", value_parser = ringwork_benches::parse_secs)]
    join_timeout: Duration,
    /// Clients per core connecting or registering at once (ngircd listens with a backlog
    /// of 10: more at once overflow it, and the kernel's SYN retries then take seconds).
    #[arg(long, default_value_t = 8)]
    connecting: usize,
}

/// The process's one clock for send instants.
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn nanos() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What every core sees.
struct Shared {
    joined: AtomicUsize,
    failed: AtomicUsize,
    /// Sending started (every client joined).
    sending: AtomicBool,
    /// Measuring (after the warm-up): deliveries count.
    measuring: AtomicBool,
    /// Stop sending.
    stop: AtomicBool,
    sent_measured: AtomicU64,
    results: Mutex<Vec<CoreResult>>,
}

#[derive(Default)]
struct CoreResult {
    delivered: u64,
    late: u64,
    histogram: Option<Histogram<u64>>,
}

/// One core's clients and counters.
struct Core {
    clients: Vec<(ConnId, usize)>,
    /// Clients connecting or registering now.
    connecting: usize,
    histogram: Histogram<u64>,
    delivered: u64,
    late: u64,
    next_sender: usize,
}

struct Client {
    index: usize,
    channels: usize,
    core: Rc<RefCell<Core>>,
    shared: Arc<Shared>,
    setup: Rc<Setup>,
    partial: Vec<u8>,
    joined: bool,
}

impl Client {
    fn line(&mut self, ctx: &mut Context<'_>, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut words = line.splitn(4, |&b| b == b' ');
        let first = words.next().unwrap_or_default();
        if first == b"PING" {
            let mut pong = b"PONG".to_vec();
            pong.extend_from_slice(&line[4..]);
            pong.extend_from_slice(b"\r\n");
            ctx.write(&pong);
            return;
        }
        let command = words.next().unwrap_or_default();
        match command {
            b"366" if !self.joined => {
                self.joined = true;
                let mut core = self.core.borrow_mut();
                core.clients.push((ctx.id(), self.index));
                core.connecting = core.connecting.saturating_sub(1);
                drop(core);
                self.shared.joined.fetch_add(1, Ordering::AcqRel);
            }
            b"PRIVMSG" => {
                let _target = words.next();
                let text = words.next().unwrap_or_default();
                let text = text.strip_prefix(b":").unwrap_or(text);
                let Some(sent) = text
                    .strip_prefix(b"L")
                    .and_then(|t| t.split(|&b| b == b' ').next())
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    return;
                };
                if self.shared.measuring.load(Ordering::Acquire) {
                    let latency = nanos().saturating_sub(sent);
                    let mut core = self.core.borrow_mut();
                    core.delivered += 1;
                    if self.shared.stop.load(Ordering::Acquire) {
                        core.late += 1;
                    }
                    let _ = core.histogram.record(latency.max(1));
                }
            }
            b"ERROR" | b"433" | b"432" | b"405" | b"471" | b"473" | b"474" | b"475" => {
                eprintln!("client {}: {}", self.index, String::from_utf8_lossy(line));
            }
            _ => {}
        }
    }
}

impl Protocol for Client {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let i = self.index;
        let text = format!(
            "NICK b{i}\r\nUSER b{i} 0 * :load {i}\r\nJOIN #c{}\r\n",
            i % self.channels
        );
        ctx.write(text.as_bytes());
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let mut rest = data;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(ctx, &rest[..at]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..at]);
                self.line(ctx, &line);
            }
            rest = &rest[at + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        if !self.joined {
            // Refused or reset while connecting (a full accept queue): try it again.
            self.core.borrow_mut().connecting -= 1;
            self.setup.pending.borrow_mut().push(self.index);
            self.setup.retries.set(self.setup.retries.get() + 1);
            return;
        }
        if !self.shared.stop.load(Ordering::Acquire) {
            self.shared.failed.fetch_add(1, Ordering::AcqRel);
            eprintln!("client {} lost: {reason}", self.index);
        }
    }
}

/// Opens this core's clients, `batch` connecting at once, checking every millisecond
/// until the messages start.
fn open(reactor: &mut Reactor, state: Rc<Setup>) {
    if state.shared.sending.load(Ordering::Acquire) {
        return;
    }
    while state.core.borrow().connecting < state.batch {
        let Some(index) = state.pending.borrow_mut().pop() else {
            break;
        };
        state.core.borrow_mut().connecting += 1;
        let client = Client {
            index,
            channels: state.channels,
            core: Rc::clone(&state.core),
            shared: Arc::clone(&state.shared),
            setup: Rc::clone(&state),
            partial: Vec::new(),
            joined: false,
        };
        // A SYN dropped by a full accept queue is retried by the kernel after 1, 3, 7 s...:
        // give up on an attempt after a second and open it again instead.
        let mut options = ConnectOptions::default();
        options.timeout = Some(Duration::from_secs(1));
        if let Err(error) = reactor.connect(&state.addr.into(), client, options) {
            eprintln!("connect {index}: {error}");
            state.shared.failed.fetch_add(1, Ordering::AcqRel);
        }
    }
    reactor.call_later(Duration::from_millis(1), move |reactor| {
        open(reactor, state)
    });
}

struct Setup {
    /// Clients of this core still to connect (again).
    pending: RefCell<Vec<usize>>,
    /// Connections lost before their client joined, opened again.
    retries: std::cell::Cell<u64>,
    addr: SocketAddr,
    channels: usize,
    batch: usize,
    core: Rc<RefCell<Core>>,
    shared: Arc<Shared>,
}

/// Every 10 ms: sends this core's share of messages from its clients in turn.
fn tick(
    reactor: &mut Reactor,
    core: Rc<RefCell<Core>>,
    shared: Arc<Shared>,
    per_tick: f64,
    mut owed: f64,
    channels: usize,
) {
    if shared.stop.load(Ordering::Acquire) {
        return;
    }
    if shared.sending.load(Ordering::Acquire) {
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let next = {
                let mut c = core.borrow_mut();
                if c.clients.is_empty() {
                    break;
                }
                let at = c.next_sender % c.clients.len();
                c.next_sender += 1;
                c.clients[at]
            };
            let (id, index) = next;
            let line = format!(
                "PRIVMSG #c{} :L{} load message\r\n",
                index % channels,
                nanos()
            );
            reactor.with_conn(id, |ctx| ctx.write(line.as_bytes()));
            if shared.measuring.load(Ordering::Acquire) {
                shared.sent_measured.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    reactor.call_later(Duration::from_millis(10), move |reactor| {
        tick(reactor, core, shared, per_tick, owed, channels)
    });
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = nanos();
    let shared = Arc::new(Shared {
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        sending: AtomicBool::new(false),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        sent_measured: AtomicU64::new(0),
        results: Mutex::new(Vec::new()),
    });
    let runtime = match Runtime::builder().cores(args.cores).pin(false).build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("irc_load: {error}");
            return ExitCode::FAILURE;
        }
    };
    let handle = runtime.shutdown_handle();
    let cores = args.cores.max(1);
    let (clients, channels, addr, batch) = (
        args.clients,
        args.channels.max(1),
        args.connect,
        args.connecting.max(1),
    );
    let per_tick = args.rate as f64 / cores as f64 / 100.0;
    let for_run = Arc::clone(&shared);
    let thread = std::thread::spawn(move || {
        runtime.run(move |reactor| {
            let me = reactor.core_index();
            let core = Rc::new(RefCell::new(Core {
                clients: Vec::new(),
                connecting: 0,
                histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("bounds"),
                delivered: 0,
                late: 0,
                next_sender: 0,
            }));
            let pending: Vec<usize> = (0..clients).filter(|i| i % cores == me).rev().collect();
            let setup = Rc::new(Setup {
                pending: RefCell::new(pending),
                retries: std::cell::Cell::new(0),
                addr,
                channels,
                batch,
                core: Rc::clone(&core),
                shared: Arc::clone(&for_run),
            });
            open(reactor, Rc::clone(&setup));
            let retries = Rc::clone(&setup);
            let shared = Arc::clone(&for_run);
            tick(
                reactor,
                Rc::clone(&core),
                Arc::clone(&shared),
                per_tick,
                0.0,
                channels,
            );
            reactor.on_stop(move |_| {
                let mut c = core.borrow_mut();
                if retries.retries.get() > 0 {
                    eprintln!(
                        "core {me}: {} connections opened again",
                        retries.retries.get()
                    );
                }
                let result = CoreResult {
                    delivered: c.delivered,
                    late: c.late,
                    histogram: Some(std::mem::replace(
                        &mut c.histogram,
                        Histogram::new(3).expect("sigfig"),
                    )),
                };
                shared
                    .results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(result);
            });
            Ok(())
        })
    });
    // Joining.
    let start = Instant::now();
    let mut last = 0;
    while shared.joined.load(Ordering::Acquire) < clients {
        if start.elapsed() > args.join_timeout || shared.failed.load(Ordering::Acquire) > 0 {
            eprintln!(
                "irc_load: {} of {clients} joined, {} failed, after {:?}",
                shared.joined.load(Ordering::Acquire),
                shared.failed.load(Ordering::Acquire),
                start.elapsed()
            );
            handle.shutdown(Duration::ZERO);
            let _ = thread.join();
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
        let now = shared.joined.load(Ordering::Acquire);
        if now / 1000 != last / 1000 {
            eprintln!(
                "joined {now}/{clients} after {:.1}s",
                start.elapsed().as_secs_f64()
            );
        }
        last = now;
    }
    let joined_after = start.elapsed();
    eprintln!(
        "all {clients} joined in {:.1}s; sending {} msg/s",
        joined_after.as_secs_f64(),
        args.rate
    );
    shared.sending.store(true, Ordering::Release);
    std::thread::sleep(args.warmup);
    shared.measuring.store(true, Ordering::Release);
    let measure_start = Instant::now();
    std::thread::sleep(args.duration);
    shared.stop.store(true, Ordering::Release);
    let measured = measure_start.elapsed();
    // Let messages in flight arrive (counted as late).
    std::thread::sleep(Duration::from_secs(2));
    handle.shutdown(Duration::ZERO);
    let _ = thread.join();
    let results = std::mem::take(
        &mut *shared
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let (mut delivered, mut late) = (0, 0);
    for result in results {
        delivered += result.delivered;
        late += result.late;
        if let Some(h) = result.histogram {
            let _ = histogram.add(h);
        }
    }
    let sent = shared.sent_measured.load(Ordering::Acquire);
    let members = clients / channels;
    let expected = sent * (members.saturating_sub(1)) as u64;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1e6;
    let per_sec = (delivered - late) as f64 / measured.as_secs_f64();
    println!(
        "{clients} clients in {channels} channels: sent {sent} msgs in {:.1}s, delivered {delivered} of {expected} expected ({late} after the end), {per_sec:.0} deliveries/s",
        measured.as_secs_f64()
    );
    println!(
        "latency ms: p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1e6
    );
    println!(
        "result: clients={clients} channels={channels} rate={} sent={sent} delivered={delivered} expected={expected} deliveries_per_sec={per_sec:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} join_secs={:.1}",
        args.rate,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1e6,
        joined_after.as_secs_f64()
    );
    ExitCode::SUCCESS
}
