//! A bare TCP echo server written directly on [`ringwork_platform::Driver`], with no engine.
//!
//! It is the performance ceiling the engine and the protocols are measured against: one
//! thread, one driver, every received buffer sent straight back.
//!
//! ```text
//! cargo run --release -p ringwork-benches --example driver_echo -- \
//!     [--listen 127.0.0.1:7000] [--cpu N] [--duration SECS]
//! ```
//!
//! The backend is chosen by `RINGWORK_BACKEND=uring|poll|auto` (default auto). It runs until
//! `--duration` passes or SIGINT/SIGTERM arrives (a second signal kills it at once), then
//! prints one line of statistics, including completions per kernel enter (batching).
#![forbid(unsafe_code)]

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use ringwork_platform::{
    BackendKind, Bytes, Capabilities, Completion, Driver, ListenOptions, ReusePort, SockAddr,
    SocketId, Waker,
};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Longest single wait in the loop: the stop flag is checked at least this often even if a
/// wake-up were lost.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Accept errors reported individually before the rest are only counted.
const ACCEPT_ERRORS_SHOWN: u64 = 10;

/// Bare TCP echo server on the ringwork platform driver (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Pin the server thread to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = ringwork_benches::parse_secs)]
    duration: Option<Duration>,
}

/// What the server did, printed on exit.
#[derive(Debug, Default)]
struct Counts {
    accepted: u64,
    accept_errors: u64,
    /// Received buffers, each echoed with one send (the server cannot see message
    /// boundaries; with one small message in flight per connection, one read is one message).
    reads: u64,
    bytes: u64,
    /// Connections closed after a receive or send error.
    errors: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ringwork_benches::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("driver_echo: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    if let Some(cpu) = args.cpu {
        ringwork_benches::pin_to_cpu(cpu)?;
    }
    let mut driver = Driver::new().map_err(|e| format!("cannot start the driver: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(&stop, driver.waker())?;

    // No SO_REUSEPORT: with one server thread it brings nothing (a leftover server still
    // holding the port makes this one fail loudly, as the default `ReusePort::Process` would
    // too; see FINDINGS.md).
    let options = ListenOptions {
        reuse_port: ReusePort::Off,
        ..ListenOptions::default()
    };
    let listener = driver
        .listen(&SockAddr::from(args.listen), &options)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    driver.accept(listener);
    println!(
        "driver_echo: listening on {} with backend {} ({})",
        args.listen,
        driver.backend(),
        describe(driver.capabilities())
    );

    let started = Instant::now();
    let deadline = args.duration.map(|duration| started + duration);
    let mut completions = Vec::with_capacity(1024);
    let mut counts = Counts::default();
    while !stop.load(Ordering::Relaxed) {
        let timeout = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(MAX_WAIT),
                _ => break,
            },
            None => MAX_WAIT,
        };
        driver.turn(Some(timeout), &mut completions)?;
        for completion in completions.drain(..) {
            handle(&mut driver, completion, &mut counts);
        }
    }

    let elapsed = started.elapsed().as_secs_f64();
    let stats = driver.stats();
    let per_enter = if stats.enters == 0 {
        0.0
    } else {
        stats.completions as f64 / stats.enters as f64
    };
    println!(
        "driver_echo: backend={} seconds={elapsed:.1} accepted={} accept_errors={} reads={} \
         bytes={} conn_errors={} turns={} enters={} completions={} submitted={} \
         completions_per_enter={per_enter:.2}",
        driver.backend(),
        counts.accepted,
        counts.accept_errors,
        counts.reads,
        counts.bytes,
        counts.errors,
        stats.turns,
        stats.enters,
        stats.completions,
        stats.submitted,
    );
    Ok(())
}

/// Reacts to one completion: accept, echo, close.
fn handle(driver: &mut Driver, completion: Completion, counts: &mut Counts) {
    match completion {
        Completion::Accepted {
            result: Ok(socket), ..
        } => {
            counts.accepted += 1;
            driver.recv(socket);
        }
        Completion::Accepted {
            result: Err(error), ..
        } => {
            // The listener keeps accepting after an error (EMFILE, ECONNABORTED, ...).
            counts.accept_errors += 1;
            if counts.accept_errors <= ACCEPT_ERRORS_SHOWN {
                eprintln!("driver_echo: accept failed: {error}");
            }
        }
        Completion::Received { socket, buf } => {
            counts.reads += 1;
            counts.bytes += buf.len() as u64;
            // The one copy an echo on this API cannot avoid: `buf` is a pool buffer that must
            // go back to the pool (the kernel refills it), while the send may wait in the
            // socket's queue; so the bytes move into an owned `Bytes`.
            driver.send(socket, Bytes::copy_from_slice(&buf));
        }
        Completion::Eof { socket } => close_after_sends(driver, socket),
        Completion::ShutdownDone { socket, .. } => {
            driver.close(socket);
        }
        Completion::RecvError { socket, .. } | Completion::SendError { socket, .. } => {
            counts.errors += 1;
            driver.close(socket);
        }
        // Nothing to do: send progress, wake-ups (the stop flag is checked each turn), and
        // completions of operations this server never starts.
        _ => {}
    }
}

/// The peer finished sending: echo what is still queued, then close. Shutting down the
/// write side waits for the queue to drain, and its completion closes the socket; a client
/// that half-closes (`nc -N`, `shutdown(SHUT_WR)`) so still gets its last bytes back.
fn close_after_sends(driver: &mut Driver, socket: SocketId) {
    if !driver.shutdown_write(socket) {
        driver.close(socket);
    }
}

/// Sets `stop` and wakes the driver on the first SIGINT or SIGTERM; a second one terminates
/// the process at once, in case the loop is stuck.
fn watch_signals(stop: &Arc<AtomicBool>, waker: Waker) -> std::io::Result<()> {
    for signal in [SIGINT, SIGTERM] {
        // Registered before the iterator's handler, so on the first signal it still sees
        // `stop == false` and does nothing.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(stop))?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let stop = Arc::clone(stop);
    thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            if signals.forever().next().is_some() {
                stop.store(true, Ordering::Relaxed);
                if let Err(error) = waker.wake() {
                    // The loop still sees the flag within MAX_WAIT.
                    eprintln!("driver_echo: waking the driver failed: {error}");
                }
            }
        })?;
    Ok(())
}

/// A short list of what the backend uses, for the start-up line.
fn describe(capabilities: &Capabilities) -> String {
    if let Some(reason) = &capabilities.uring_unavailable {
        return format!("mio readiness; io_uring unavailable: {reason}");
    }
    if capabilities.backend == Some(BackendKind::Poll) {
        return "mio readiness".to_string();
    }
    let flags = [
        (capabilities.single_issuer, "single_issuer"),
        (capabilities.defer_taskrun, "defer_taskrun"),
        (capabilities.coop_taskrun, "coop_taskrun"),
        (capabilities.multishot_accept, "multishot_accept"),
        (capabilities.multishot_recv, "multishot_recv"),
        (capabilities.buf_ring, "buf_ring"),
    ];
    let used: Vec<&str> = flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
    used.join(", ")
}
