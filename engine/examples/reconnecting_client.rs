//! A client that stays connected to a server that comes and goes: Twisted's
//! `ReconnectingClientFactory`, as [`ReconnectingClient`].
//!
//! ```text
//! cargo run -p ringwork --example reconnecting_client -- --connect 127.0.0.1:7000 \
//!     [--initial-delay-ms 500] [--max-delay-ms 10000] [--max-retries N] [--seed S]
//! ```
//!
//! Try it with a server you stop and start again, for example the echo example
//! (`cargo run -p ringwork --example echo -- --listen 127.0.0.1:7000`) or `nc -lk 7000`:
//! the client prints `attempt N`, `connected`, each line the server sends as
//! `received: LINE` (it greets the server with `hello from ringwork`, which the echo
//! example sends back), `lost: KIND`, and `retrying in T ms (retry N)` with delays that
//! double (with 10 % jitter) up to the maximum and start over after each connection. With
//! `--max-retries` it exits 1 after that many failures in a row (`gave up`); otherwise it
//! runs until interrupted.
//!
//! The backend is chosen by `RINGWORK_BACKEND`.

use std::cell::Cell;
use std::error::Error;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use ringwork::{
    Backoff, Context, DriverConfig, Protocol, Reactor, ReactorConfig, ReconnectEvent,
    ReconnectingClient,
};

/// Longest line kept; longer ones are printed in pieces.
const MAX_LINE: usize = 4096;

/// Keeps a connection to a server up, with exponential backoff (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The server.
    #[arg(long)]
    connect: SocketAddr,
    /// Delay before the first retry, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    initial_delay_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    max_delay_ms: u64,
    /// Give up (exit 1) after this many failures in a row [default: never].
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// Seed of the jitter [default: random].
    #[arg(long)]
    seed: Option<u64>,
}

/// Greets the server, then prints each line it sends.
struct Printer {
    line: Vec<u8>,
}

impl Protocol for Printer {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(b"hello from ringwork\n");
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, data: &[u8]) {
        for &byte in data {
            if byte == b'\n' || self.line.len() == MAX_LINE {
                say(&format!(
                    "received: {}",
                    String::from_utf8_lossy(&self.line)
                ));
                self.line.clear();
            }
            if byte != b'\n' {
                self.line.push(byte);
            }
        }
    }
}

/// Prints one line at once (stdout may be a pipe).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("reconnecting_client: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    let mut backoff = Backoff::new()
        .initial(Duration::from_millis(args.initial_delay_ms))
        .max_delay(Duration::from_millis(args.max_delay_ms))
        .max_retries(args.max_retries);
    if let Some(seed) = args.seed {
        backoff = backoff.seed(seed);
    }
    let gave_up = Rc::new(Cell::new(false));
    let flag = Rc::clone(&gave_up);
    let handle = reactor.handle();
    let stopper = handle.clone();
    let _client = ReconnectingClient::new(args.connect)
        .backoff(backoff)
        .observe(move |event| match event {
            ReconnectEvent::Attempt { attempt, .. } => say(&format!("attempt {attempt}")),
            ReconnectEvent::StartFailed { error } => say(&format!("cannot start: {error}")),
            ReconnectEvent::Connected { .. } => say("connected"),
            ReconnectEvent::Lost { kind, .. } => say(&format!("lost: {kind:?}")),
            ReconnectEvent::Retrying { retry, delay } => say(&format!(
                "retrying in {} ms (retry {retry})",
                delay.as_millis()
            )),
            ReconnectEvent::GaveUp { retries } => {
                say(&format!("gave up after {retries} retries"));
                flag.set(true);
                stopper.run(Reactor::stop);
            }
            other => say(&format!("{other:?}")),
        })
        .start(&handle, || Printer { line: Vec::new() });
    reactor.run()?;
    if gave_up.get() {
        return Err("gave up".into());
    }
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
