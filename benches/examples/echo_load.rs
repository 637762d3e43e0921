//! A closed-loop TCP echo load client on [`ringwork_platform::Driver`].
//!
//! Opens `--connections` connections; each keeps exactly one `--size`-byte message in flight:
//! send it, wait for the whole echo, check it, send the next. After `--warmup` seconds it
//! counts completed messages and their round-trip latencies for `--duration` seconds, then
//! prints msg/s, MB/s and a latency summary, and a last `result:` line of `key=value` pairs
//! for scripts.
//!
//! ```text
//! cargo run --release -p ringwork-benches --example echo_load -- \
//!     --connect 127.0.0.1:7000 --connections 100 --size 128 --duration 10 --warmup 2 --cpu 1
//! ```
//!
//! It runs on the driver, so under io_uring the client gets DEFER_TASKRUN too (a default-flag
//! io_uring client costs measurably more, see FINDINGS.md). The backend is chosen by
//! `RINGWORK_BACKEND`. Failures (connection refused, reset, closed, wrong echoed bytes, a
//! connection stalled for `--stall-timeout`) end the run with a message and exit status 1; it
//! always stops by itself.
#![forbid(unsafe_code)]

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use ringwork_platform::{Bytes, Completion, Driver, OpError, SockAddr, SocketId};

/// How often, at most, the loop wakes to check phase ends and stalled connections.
const TICK: Duration = Duration::from_millis(100);

/// How long, at most, the messages still in flight at the end may take to come back.
const DRAIN: Duration = Duration::from_secs(2);

/// Closed-loop echo load client on the ringwork platform driver (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the echo server.
    #[arg(long, default_value = "127.0.0.1:7000")]
    connect: SocketAddr,
    /// Number of connections, each with one message in flight.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    connections: u32,
    /// Message size in bytes.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=(16 << 20)))]
    size: u32,
    /// Seconds to measure, after the warm-up.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = ringwork_benches::parse_secs)]
    duration: Duration,
    /// Seconds of load before measuring.
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = ringwork_benches::parse_secs)]
    warmup: Duration,
    /// Pin the client thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Give up if the connections are not all established within this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = ringwork_benches::parse_secs)]
    connect_timeout: Duration,
    /// Fail if a message waits this many seconds for its echo.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = ringwork_benches::parse_secs)]
    stall_timeout: Duration,
}

/// One connection and its message in flight.
struct Conn {
    id: SocketId,
    connected: bool,
    /// Sequence number of the message in flight (its bytes are derived from it).
    seq: u64,
    /// The message in flight, kept to check the echo against.
    message: Bytes,
    /// Bytes of its echo received so far; `None` when no message is in flight.
    echoed: Option<usize>,
    sent_at: Instant,
}

/// The whole client: driver, connections and measurements.
struct Load {
    driver: Driver,
    size: usize,
    conns: Vec<Conn>,
    /// Index into `conns` by socket slot.
    by_slot: Vec<Option<usize>>,
    next_seq: u64,
    /// Messages completed since the start, warm-up included.
    total: u64,
    /// Messages completed after the warm-up.
    measured: u64,
    /// Round-trip latencies after the warm-up, in nanoseconds.
    latency: Histogram<u64>,
    measure_from: Option<Instant>,
    /// No new message is sent from this instant on.
    stop_at: Option<Instant>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ringwork_benches::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo_load: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    if let Some(cpu) = args.cpu {
        ringwork_benches::pin_to_cpu(cpu)?;
    }
    let mut load = Load::new(args)?;
    println!(
        "echo_load: {} connections to {}, {} B messages, {:.1} s warm-up + {:.1} s, backend {}",
        args.connections,
        args.connect,
        args.size,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64(),
        load.driver.backend()
    );

    let mut completions = Vec::with_capacity(1024);
    let connect_deadline = Instant::now() + args.connect_timeout;
    while load.conns.iter().any(|conn| !conn.connected) {
        let now = Instant::now();
        if now >= connect_deadline {
            let missing = load.conns.iter().filter(|conn| !conn.connected).count();
            return Err(format!(
                "{missing} of {} connections to {} not established after {:.1} s",
                args.connections,
                args.connect,
                args.connect_timeout.as_secs_f64()
            )
            .into());
        }
        load.turn((connect_deadline - now).min(TICK), &mut completions)?;
    }

    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    load.measure_from = Some(measure_from);
    load.stop_at = Some(end);
    let mut last_stall_check = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now.duration_since(last_stall_check) >= TICK {
            last_stall_check = now;
            load.check_stalls(now, args.stall_timeout)?;
        }
        let next = if now < measure_from {
            measure_from
        } else {
            end
        };
        load.turn((next - now).min(TICK), &mut completions)?;
    }
    let window = Instant::now().duration_since(measure_from).as_secs_f64();
    load.finish(&mut completions)?;
    load.report(args, window)
}

impl Load {
    /// Creates the driver and starts connecting.
    fn new(args: &Args) -> Result<Self, Box<dyn Error>> {
        let mut driver = Driver::new().map_err(|e| format!("cannot start the driver: {e}"))?;
        let addr = SockAddr::from(args.connect);
        let now = Instant::now();
        let mut conns = Vec::with_capacity(args.connections as usize);
        let mut by_slot = Vec::new();
        for index in 0..args.connections as usize {
            let id = driver
                .connect(&addr)
                .map_err(|e| format!("cannot open connection {index}: {e}"))?;
            let slot = id.slot() as usize;
            if by_slot.len() <= slot {
                by_slot.resize(slot + 1, None);
            }
            by_slot[slot] = Some(index);
            conns.push(Conn {
                id,
                connected: false,
                seq: 0,
                message: Bytes::new(),
                echoed: None,
                sent_at: now,
            });
        }
        // 1 ns to 60 s at 3 significant digits; longer latencies are clamped (and the
        // stall timeout fails the run long before).
        let latency = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| format!("histogram: {e}"))?;
        Ok(Self {
            driver,
            size: args.size as usize,
            conns,
            by_slot,
            next_seq: 0,
            total: 0,
            measured: 0,
            latency,
            measure_from: None,
            stop_at: None,
        })
    }

    /// One driver turn and the reaction to everything it completed.
    fn turn(&mut self, timeout: Duration, completions: &mut Vec<Completion>) -> Result<(), String> {
        self.driver
            .turn(Some(timeout), completions)
            .map_err(|e| format!("driver turn failed: {e}"))?;
        let mut result = Ok(());
        for completion in completions.drain(..) {
            if result.is_ok() {
                result = self.handle(completion);
            }
        }
        result
    }

    fn handle(&mut self, completion: Completion) -> Result<(), String> {
        match completion {
            Completion::Connected { socket, result } => {
                let index = self.index(socket)?;
                result.map_err(|e| connect_error(index, &e))?;
                self.conns[index].connected = true;
                self.driver.recv(socket);
                self.send_next(index, Instant::now());
            }
            Completion::Received { socket, buf } => {
                let index = self.index(socket)?;
                self.received(index, &buf)?;
            }
            Completion::Eof { socket } => {
                let index = self.index(socket)?;
                return Err(format!("connection {index}: the server closed it"));
            }
            Completion::RecvError { socket, error } | Completion::SendError { socket, error } => {
                let index = self.index(socket)?;
                return Err(format!("connection {index}: {error}"));
            }
            // Send progress needs no reaction; nothing else is started by this client.
            _ => {}
        }
        Ok(())
    }

    /// The connection index of `socket`.
    fn index(&self, socket: SocketId) -> Result<usize, String> {
        self.by_slot
            .get(socket.slot() as usize)
            .copied()
            .flatten()
            .filter(|&index| self.conns[index].id == socket)
            .ok_or_else(|| format!("completion for unknown socket {socket}"))
    }

    /// Checks echoed bytes against the message in flight; a complete echo is counted and the
    /// next message sent.
    fn received(&mut self, index: usize, bytes: &[u8]) -> Result<(), String> {
        let conn = &mut self.conns[index];
        let Some(echoed) = conn.echoed else {
            return Err(format!(
                "connection {index}: {} unexpected bytes with no message in flight",
                bytes.len()
            ));
        };
        let end = echoed + bytes.len();
        if end > conn.message.len() {
            return Err(format!(
                "connection {index}: {end} bytes echoed for a {}-byte message",
                conn.message.len()
            ));
        }
        if conn.message[echoed..end] != *bytes {
            return Err(format!(
                "connection {index}: echoed bytes {echoed}..{end} of message {} differ from \
                 those sent",
                conn.seq
            ));
        }
        if end < conn.message.len() {
            conn.echoed = Some(end);
            return Ok(());
        }
        conn.echoed = None;
        let now = Instant::now();
        self.total += 1;
        let measuring = self.measure_from.is_some_and(|from| now >= from)
            && self.stop_at.is_some_and(|stop| now < stop);
        if measuring {
            self.measured += 1;
            let nanos =
                u64::try_from(now.duration_since(conn.sent_at).as_nanos()).unwrap_or(u64::MAX);
            self.latency.saturating_record(nanos.max(1));
        }
        self.send_next(index, now);
        Ok(())
    }

    /// Sends connection `index` its next message, unless the run is over.
    fn send_next(&mut self, index: usize, now: Instant) {
        if self.stop_at.is_some_and(|stop| now >= stop) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let message = Bytes::from(pattern(seq, self.size));
        let conn = &mut self.conns[index];
        conn.seq = seq;
        conn.message = message.clone();
        conn.echoed = Some(0);
        conn.sent_at = now;
        // `false` only if the socket is not an open stream or sending already failed, and the
        // SendError completion that caused the latter ends the run.
        self.driver.send(conn.id, message);
    }

    /// Ends the run cleanly: waits (at most [`DRAIN`]) for the messages in flight to come
    /// back, then closes every connection, so the server sees ends of stream rather than
    /// resets of connections with unread data.
    fn finish(&mut self, completions: &mut Vec<Completion>) -> Result<(), String> {
        let deadline = Instant::now() + DRAIN;
        while self.conns.iter().any(|conn| conn.echoed.is_some()) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.turn((deadline - now).min(TICK), completions)?;
        }
        for conn in &self.conns {
            self.driver.close(conn.id);
        }
        // Submits the closes; whatever completes now belongs to no connection any more.
        self.driver
            .turn(Some(Duration::ZERO), completions)
            .map_err(|e| format!("driver turn failed: {e}"))?;
        completions.clear();
        Ok(())
    }

    /// Fails if some message has waited longer than `limit` for its echo.
    fn check_stalls(&self, now: Instant, limit: Duration) -> Result<(), String> {
        let stalled = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, conn)| conn.echoed.is_some() && now.duration_since(conn.sent_at) > limit)
            .map(|(index, _)| index)
            .collect::<Vec<_>>();
        match stalled.first() {
            None => Ok(()),
            Some(first) => Err(format!(
                "{} connection(s) (first: {first}) got no complete echo within {:.1} s",
                stalled.len(),
                limit.as_secs_f64()
            )),
        }
    }

    /// Prints the results.
    fn report(&self, args: &Args, window: f64) -> Result<(), Box<dyn Error>> {
        if self.measured == 0 {
            return Err("no message completed during the measurement".into());
        }
        let rate = self.measured as f64 / window;
        let mb_per_s = rate * f64::from(args.size) / 1e6;
        let us = |nanos: u64| nanos as f64 / 1000.0;
        let (p50, p90, p99, p999, max) = (
            us(self.latency.value_at_quantile(0.50)),
            us(self.latency.value_at_quantile(0.90)),
            us(self.latency.value_at_quantile(0.99)),
            us(self.latency.value_at_quantile(0.999)),
            us(self.latency.max()),
        );
        let stats = self.driver.stats();
        let per_enter = if stats.enters == 0 {
            0.0
        } else {
            stats.completions as f64 / stats.enters as f64
        };
        println!(
            "echo_load: {} messages in {window:.2} s: {rate:.0} msg/s, {mb_per_s:.2} MB/s each way",
            self.measured
        );
        println!(
            "echo_load: latency us p50={p50:.1} p90={p90:.1} p99={p99:.1} p99.9={p999:.1} \
             max={max:.1}"
        );
        println!(
            "echo_load: client driver enters={} completions={} completions_per_enter={per_enter:.2}",
            stats.enters, stats.completions
        );
        println!(
            "result: backend={} connections={} size={} seconds={window:.3} messages={} \
             total_messages={} msg_per_s={rate:.0} mb_per_s={mb_per_s:.3} p50_us={p50:.1} \
             p99_us={p99:.1} max_us={max:.1}",
            self.driver.backend(),
            args.connections,
            args.size,
            self.measured,
            self.total,
        );
        Ok(())
    }
}

/// A connect failure, with a hint for the usual cause.
fn connect_error(index: usize, error: &OpError) -> String {
    let hint = match error.kind() {
        io::ErrorKind::ConnectionRefused => " (is the echo server running on that address?)",
        _ => "",
    };
    format!("connection {index}: cannot connect: {error}{hint}")
}

/// The bytes of message `seq`: every message differs from its neighbours in every 8-byte
/// word, so a misplaced or stale echo is caught by the comparison.
fn pattern(seq: u64, size: usize) -> Vec<u8> {
    let word = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    (0..size).map(|i| word[i % 8] ^ (i as u8)).collect()
}
