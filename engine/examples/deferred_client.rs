//! A request/reply client in async style: a future awaits the reply through a [`Deferred`]
//! that the connection's [`Protocol`] resolves when the reply line arrives.
//!
//! ```text
//! cargo run -p ringwork --example deferred_client -- [--connect 127.0.0.1:7000] [--message TEXT]
//! ```
//!
//! With `--connect`, it talks to a line echo server there (the `echo` example will do);
//! without, it starts an echo listener in the same reactor and talks to that. It prints
//! `reply: TEXT` and exits 0, or prints why it failed and exits 1.
//!
//! The pieces:
//! 1. [`Deferred::new`] gives the awaited value and its [`Resolver`];
//! 2. the protocol ([`LineClient`]) holds the resolver: it writes the request in
//!    `connection_made` and resolves with the first line that comes back (or with the reason
//!    the connection ended without one);
//! 3. the future ([`request`]) opens the connection through [`LocalHandle::run`] (a future
//!    cannot borrow the reactor) and awaits the deferred;
//! 4. `main` spawns the future with [`Reactor::spawn_local`] and runs the reactor until the
//!    future has finished.
//!
//! The backend is chosen by `RINGWORK_BACKEND`.

use std::cell::RefCell;
use std::error::Error;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use ringwork::{
    ConnectOptions, Context, Deferred, DriverConfig, LocalHandle, LostReason, Protocol, Reactor,
    ReactorConfig, Resolver, SockAddr,
};

/// Longest reply accepted.
const MAX_REPLY: usize = 64 * 1024;

/// Sends one line to a line echo server and prints the reply (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// The server [default: an echo listener started in this process].
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// The line to send (without its newline).
    #[arg(long, default_value = "hello, ringwork")]
    message: String,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    timeout: u64,
}

/// The reply line, or why there is none.
type Reply = Result<String, String>;

/// Writes `request`, resolves `reply` with the first line that comes back, closes.
struct LineClient {
    request: Vec<u8>,
    received: Vec<u8>,
    /// `None` once resolved.
    reply: Option<Resolver<Reply>>,
}

impl LineClient {
    fn finish(&mut self, ctx: &mut Context<'_>, reply: Reply) {
        if let Some(resolver) = self.reply.take() {
            resolver.resolve(reply);
        }
        ctx.close();
    }
}

impl Protocol for LineClient {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(&self.request);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.received.extend_from_slice(data);
        if let Some(end) = self.received.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.received[..end]).into_owned();
            self.finish(ctx, Ok(line));
        } else if self.received.len() > MAX_REPLY {
            self.finish(
                ctx,
                Err(format!("no newline in the first {MAX_REPLY} bytes")),
            );
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.finish(ctx, Err("the server closed before replying".into()));
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(resolver) = self.reply.take() {
            resolver.resolve(Err(format!("connection ended before the reply: {reason}")));
        }
    }
}

/// Sends `message` as one line to `server` and returns the line that comes back.
async fn request(handle: LocalHandle, server: SockAddr, message: String) -> Reply {
    let (reply, resolver) = Deferred::new();
    let client = LineClient {
        request: format!("{message}\n").into_bytes(),
        received: Vec::new(),
        reply: Some(resolver),
    };
    handle.run(move |reactor| {
        // On error the client, and with it the resolver, is dropped: `reply` is canceled.
        if let Err(error) = reactor.connect(&server, client, ConnectOptions::default()) {
            tracing::error!(%error, "cannot open a connection");
        }
    });
    reply
        .await
        .map_err(|_canceled| "the connection could not be opened".to_string())?
}

/// The in-process server: echoes every byte.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(reply) => {
            println!("reply: {reply}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("deferred_client: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<String, Box<dyn Error>> {
    // One reactor on this thread: no runtime needed for a client.
    let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    let server = match args.connect {
        Some(addr) => addr,
        None => reactor.listen_tcp("127.0.0.1:0".parse()?, || Echo)?,
    };

    let outcome = Rc::new(RefCell::new(None));
    let slot = Rc::clone(&outcome);
    let future = request(reactor.handle(), server.into(), args.message.clone());
    // Detached (its JoinHandle is dropped): it hands its result over through `slot`.
    drop(reactor.spawn_local(async move {
        *slot.borrow_mut() = Some(future.await);
    }));
    let limit = Duration::from_secs(args.timeout);
    reactor.run_until(limit, |_| outcome.borrow().is_some())?;
    let reply = outcome.borrow_mut().take();
    match reply {
        Some(reply) => Ok(reply?),
        None => Err(format!("no reply from {server} within {} s", args.timeout).into()),
    }
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
