//! TCP port forward: each accepted connection gets its own connection to `--upstream`, and
//! bytes are relayed both ways with backpressure and half-close.
//!
//! ```text
//! cargo run --release -p ringwork --example proxy -- \
//!     [--listen 127.0.0.1:7001] [--upstream 127.0.0.1:7000] [--cores N]
//! ```
//!
//! Try it in front of the echo example (`cargo run --release -p ringwork --example echo`):
//!
//! ```text
//! python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 7001)); s.sendall(b"through the proxy\n"); print(s.recv(100))'
//! ```
//!
//! The relay is one [`Protocol`], [`Relay`], run on both connections of a pair:
//! - bytes from one side are written to the other ([`Context::other`]);
//! - backpressure: when one side's write buffer passes its high watermark
//!   (`pause_writing`), the *other* side stops reading until it drains (`write_drained`), so
//!   a slow reader slows the fast writer down through TCP instead of growing the proxy;
//! - half-close: end of stream from one side becomes `shutdown_write` on the other; once
//!   both directions ended, both connections close (after their last bytes are sent);
//! - errors: a side that fails (reset, upstream refused or unreachable) aborts the other.
//!
//! The backend is chosen by `RINGWORK_BACKEND`; SIGINT/SIGTERM shut down gracefully.

use std::cell::Cell;
use std::error::Error;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use ringwork::{ConnId, ConnectOptions, Context, LostReason, Protocol, Runtime, SockAddr};

/// TCP port forward on the ringwork engine (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7001")]
    listen: SocketAddr,
    /// Address to forward each connection to.
    #[arg(long, default_value = "127.0.0.1:7000")]
    upstream: SocketAddr,
    /// Number of cores (reactor threads).
    #[arg(long, default_value_t = 1)]
    cores: usize,
}

/// One side of a relayed pair: the accepted client connection or its upstream connection.
struct Relay {
    /// The other side (for the client side: once the upstream connection is started).
    peer: Option<ConnId>,
    /// Where to connect; set on the client side until it has connected.
    upstream: Option<SockAddr>,
    /// Directions still open, shared by both sides: at 0 both connections close.
    open: Rc<Cell<u8>>,
}

impl Relay {
    /// The client side of a new pair.
    fn client(upstream: SockAddr) -> Self {
        Relay {
            peer: None,
            upstream: Some(upstream),
            open: Rc::new(Cell::new(2)),
        }
    }
}

impl Protocol for Relay {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        // The client side opens its upstream side; bytes written there before it connects
        // are sent once it does.
        if let Some(upstream) = self.upstream.take() {
            let peer = Relay {
                peer: Some(ctx.id()),
                upstream: None,
                open: Rc::clone(&self.open),
            };
            match ctx.connect(&upstream, peer, ConnectOptions::default()) {
                Ok(id) => self.peer = Some(id),
                Err(error) => {
                    tracing::warn!(%error, "cannot open the upstream connection");
                    ctx.abort();
                }
            }
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(peer) = self.peer {
            ctx.other(peer).write(data);
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        let Some(peer) = self.peer else { return };
        ctx.other(peer).shutdown_write();
        self.open.set(self.open.get() - 1);
        if self.open.get() == 0 {
            ctx.close();
            ctx.other(peer).close();
        }
    }

    // This side cannot take more: stop reading the side that feeds it.
    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Some(peer) = self.peer {
            ctx.other(peer).pause_reading();
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(peer) = self.peer {
            ctx.other(peer).resume_reading();
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        let Some(peer) = self.peer else { return };
        if reason.is_clean() {
            ctx.other(peer).close();
        } else {
            tracing::debug!(conn = %ctx.id(), %reason, "relay side failed; aborting the other");
            ctx.other(peer).abort();
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("proxy: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let runtime = Runtime::builder().cores(args.cores).build()?;
    runtime
        .shutdown_handle()
        .on_signals(Duration::from_secs(1))?;
    let (listen, upstream) = (args.listen, args.upstream);
    runtime.run(move |reactor| {
        let target = SockAddr::from(upstream);
        let bound = reactor.listen_tcp(listen, move || Relay::client(target.clone()))?;
        println!(
            "proxy: core {} listening on {bound}, forwarding to {upstream} (backend {})",
            reactor.core_index(),
            reactor.backend()
        );
        Ok(())
    })?;
    Ok(())
}

/// `tracing` events (the backend fallback line, relay failures) to stderr; `RUST_LOG` filters.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
