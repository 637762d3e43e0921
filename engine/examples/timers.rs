//! Reactor-level time with no connection at all: Twisted's `reactor.callLater` and
//! `task.LoopingCall`, on one reactor.
//!
//! ```text
//! cargo run -p ringwork --example timers -- [--interval-ms 500] [--ticks 5]
//! ```
//!
//! It prints a line per event and exits 0 after the last tick:
//! - a `LoopingCall` ticks every `--interval-ms` at a fixed rate (`tick N at +T ms`), and
//!   stops itself after `--ticks` ticks by returning `ControlFlow::Break`;
//! - a one-shot call (`call_later`) fires after 1.5 intervals (`one-shot call at +T ms`);
//! - another is armed for 1 interval, then moved (`reset`) to 2.5 intervals;
//! - a third is cancelled before it runs (it never prints);
//! - a future sleeps for 3.5 intervals on the same timer wheel (`a future woke at +T ms`);
//! - after the last tick a call with zero delay stops the reactor (`done`).
//!
//! The backend is chosen by `RINGWORK_BACKEND`. The times printed are never before their
//! deadline; how late they are shows the reactor's wake-up latency.

use std::error::Error;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ringwork::{DriverConfig, LoopingCall, Reactor, ReactorConfig, Repeat};

/// Prints the events of a few timers and a LoopingCall (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The LoopingCall's interval, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    interval_ms: u64,
    /// Ticks before the LoopingCall stops (and the program ends).
    #[arg(long, default_value_t = 5)]
    ticks: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("timers: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    if args.ticks == 0 || args.interval_ms == 0 {
        return Err("--ticks and --interval-ms must be positive".into());
    }
    let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    let handle = reactor.handle();
    let interval = Duration::from_millis(args.interval_ms);
    let start = Instant::now();
    let at = move |now: Instant| now.saturating_duration_since(start).as_millis();

    // reactor.callLater(1.5 * interval, f)
    handle.call_later(interval * 3 / 2, move |reactor| {
        println!("one-shot call at +{} ms", at(reactor.now()));
    });
    // A call moved later before it runs (DelayedCall.reset).
    let moved = handle.call_later(interval, move |reactor| {
        println!("moved call at +{} ms", at(reactor.now()));
    });
    handle.reset(moved, interval * 5 / 2);
    // A call cancelled before it runs (DelayedCall.cancel).
    let cancelled = handle.call_later(interval / 2, |_| println!("never printed"));
    assert!(handle.cancel(cancelled));

    // A future waits on the same wheel.
    let sleeper = handle.clone();
    drop(reactor.spawn_local(async move {
        if sleeper.sleep(interval * 7 / 2).await.is_ok() {
            println!("a future woke at +{} ms", at(sleeper.now()));
        }
    }));

    // LoopingCall(f).start(interval, now=False)
    let last = args.ticks - 1;
    let looping = LoopingCall::start(&handle, Repeat::every(interval), move |reactor, tick| {
        println!(
            "tick {} at +{} ms (missed {})",
            tick.index,
            at(tick.now),
            tick.missed
        );
        if tick.index < last {
            return ControlFlow::Continue(());
        }
        reactor.call_later(Duration::ZERO, |reactor| {
            println!("done");
            reactor.stop();
        });
        ControlFlow::Break(())
    });

    reactor.run()?;
    assert!(!looping.is_running());
    Ok(())
}

/// `tracing` events (the backend fallback line) to stderr; `RUST_LOG` filters.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
