//! TCP echo server on the engine: a [`Runtime`] with one pinned reactor per core, each with
//! its own SO_REUSEPORT listener on the same address.
//!
//! ```text
//! cargo run --release -p ringwork --example echo -- \
//!     [--listen 127.0.0.1:7000] [--cores N] [--cpus 0,1] [--duration SECS] [--grace SECS]
//! ```
//!
//! Try it from another terminal:
//!
//! ```text
//! python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 7000)); s.sendall(b"hello\n"); print(s.recv(100))'
//! ```
//!
//! The backend is chosen by `RINGWORK_BACKEND=uring|poll|auto` (default auto; the fallback
//! line, if io_uring is unavailable, goes to stderr). `--cpus 0,1` pins core i to CPU
//! LIST[i] and sets the number of cores. SIGINT or SIGTERM (or the end of `--duration`)
//! starts a graceful shutdown: stop accepting, let connections finish for `--grace`
//! seconds, then close the rest; a second signal stops at once. At exit it prints one line
//! per core with the keys of `driver_echo`'s line —
//! `reads` (one per `data_received`), `bytes`, `enters`, `completions_per_enter` — which
//! `benches/scripts/driver_echo_bench.sh` reads.

use std::cell::Cell;
use std::error::Error;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use ringwork::{BackendKind, Context, CoreStats, Protocol, Runtime};

/// TCP echo server on the ringwork engine (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Address to listen on (every core listens on it, with SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Number of cores (reactor threads) [default: 1, or the length of --cpus].
    #[arg(long)]
    cores: Option<usize>,
    /// CPUs to pin the cores to, in core order (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    cpus: Option<Vec<usize>>,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// How long connections may finish after a shutdown starts.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    grace: Duration,
}

/// Echoes every byte back.
struct Echo {
    /// `data_received` calls on this core, for the exit report.
    reads: Rc<Cell<u64>>,
}

impl Protocol for Echo {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.reads.set(self.reads.get() + 1);
        ctx.write(data);
    }

    // A peer that sends without reading: stop reading it until its echo drains, so its
    // buffered echo stays under the high watermark instead of growing to the hard limit.
    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        ctx.pause_reading();
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        ctx.resume_reading();
    }

    // `eof_received` keeps its default: close once the echo is sent, so a client that
    // half-closes still gets every byte back.
}

/// What one core did, collected when its reactor stops.
struct Report {
    core: usize,
    backend: BackendKind,
    reads: u64,
    stats: CoreStats,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let mut builder = Runtime::builder().cores(args.cores.unwrap_or(1));
    if let Some(cpus) = &args.cpus {
        if args.cores.is_some_and(|cores| cores != cpus.len()) {
            return Err("--cores and the length of --cpus differ".into());
        }
        builder = builder.cpus(cpus.clone());
    }
    let runtime = builder.build()?;

    let shutdown = runtime.shutdown_handle();
    shutdown.on_signals(args.grace)?;
    if let Some(duration) = args.duration {
        let (shutdown, grace) = (shutdown.clone(), args.grace);
        thread::spawn(move || {
            thread::sleep(duration);
            shutdown.shutdown(grace);
        });
    }

    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let listen = args.listen;
    let started = Instant::now();
    // Runs on each core's thread: the counter and the factory are that core's own.
    runtime.run(move |reactor| {
        let reads = Rc::new(Cell::new(0));
        let counter = Rc::clone(&reads);
        let bound = reactor.listen_tcp(listen, move || Echo {
            reads: Rc::clone(&counter),
        })?;
        println!(
            "echo: core {} listening on {bound} (backend {})",
            reactor.core_index(),
            reactor.backend()
        );
        let sink = Arc::clone(&sink);
        reactor.on_stop(move |reactor| {
            let report = Report {
                core: reactor.core_index(),
                backend: reactor.backend(),
                reads: reads.get(),
                stats: reactor.stats(),
            };
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(report);
        });
        Ok(())
    })?;

    let seconds = started.elapsed().as_secs_f64();
    let mut reports = std::mem::take(&mut *reports.lock().unwrap_or_else(PoisonError::into_inner));
    reports.sort_by_key(|report| report.core);
    for report in &reports {
        print_line(report, seconds);
    }
    Ok(())
}

/// One `key=value` line, with `driver_echo`'s keys.
fn print_line(report: &Report, seconds: f64) {
    let stats = &report.stats;
    let per_enter = if stats.enters == 0 {
        0.0
    } else {
        stats.completions as f64 / stats.enters as f64
    };
    println!(
        "echo: core={} backend={} seconds={seconds:.1} accepted={} reads={} bytes={} \
         turns={} enters={} completions={} submitted={} completions_per_enter={per_enter:.2}",
        report.core,
        report.backend,
        stats.accepted,
        report.reads,
        stats.bytes_in,
        stats.turns,
        stats.enters,
        stats.completions,
        stats.submissions,
    );
}

/// `tracing` events (the backend fallback line, shutdown) to stderr; `RUST_LOG` filters.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Parses a number of seconds (`10`, `2.5`).
fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}
