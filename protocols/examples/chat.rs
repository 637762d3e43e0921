//! Line-based chat server across cores: every line a client types goes to every other
//! client, whichever core's reactor holds it.
//!
//! ```text
//! cargo run --release -p ringwork-protocols --example chat -- [--listen 127.0.0.1:7002] [--cores 2]
//! ```
//!
//! Try it with two or more terminals, each running a client that prints what arrives and
//! sends what you type:
//!
//! ```text
//! python3 -c 'import socket, sys, threading
//! s = socket.create_connection(("127.0.0.1", 7002))
//! threading.Thread(target=lambda: [print(l.decode(), end="") for l in s.makefile("rb")], daemon=True).start()
//! [s.sendall(l.encode()) for l in sys.stdin]'
//! ```
//!
//! Each client is greeted with `welcome, you are on core N as N.M` (the kernel spreads
//! connections over the cores' SO_REUSEPORT listeners); the others see its lines as
//! `[N.M] text`.
//!
//! How a line crosses cores: the protocol of the sender hands the line, as a [`Bytes`]
//! (cheap to clone, `Send`), to [`Cores::broadcast`]; the closure runs on every core's
//! reactor, this one included, and writes the line to each client of that core with
//! [`Reactor::with_conn`] — without copying it.
//!
//! Where a core's client list lives: a `thread_local`. A cross-core closure gets only
//! `&mut Reactor`, which has no slot for user state, and each core is one thread, so a
//! `thread_local` is exactly "this core's state": the protocols of the core (run on the same
//! thread) register in it, and the closure finds it there. An `Rc<RefCell<..>>` shared by
//! the core's factory and protocols would do for the protocols, but a closure sent from
//! another core cannot carry it (`Rc` is not `Send`) and could not find it.
//!
//! Lines are cut by [`LineReceiver`] (Twisted's `LineReceiver`: `\n` or `\r\n` ends a line,
//! one longer than [`MAX_LINE`] closes the connection through
//! [`LineHandler::line_too_long`]); the chat itself only sees whole lines.
//!
//! A client that does not read its lines is not allowed to grow the server: once its write
//! buffer passes the high watermark it misses lines until it drains.

use std::cell::RefCell;
use std::error::Error;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringwork::{Bytes, ConnId, Context, Cores, LostReason, Reactor, Runtime};
use ringwork_protocols::basic::{
    Delimiter, LineContext, LineError, LineHandler, LineLimits, LineReceiver,
};

/// Longest line accepted, without its newline.
const MAX_LINE: usize = 4096;

/// Line-based chat server on the ringwork engine, across cores (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Address to listen on (every core listens on it, with SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:7002")]
    listen: SocketAddr,
    /// Number of cores (reactor threads).
    #[arg(long, default_value_t = 2)]
    cores: usize,
}

thread_local! {
    /// The clients of the reactor running on this thread (see the module docs).
    static CLIENTS: RefCell<Vec<ConnId>> = const { RefCell::new(Vec::new()) };
}

/// One chat client (its lines cut by a [`LineReceiver`]).
#[derive(Default)]
struct Chatter {
    /// `core.connection`, unique in the server.
    name: String,
}

impl Chatter {
    /// A chat connection: lines of at most [`MAX_LINE`] bytes.
    fn receiver() -> LineReceiver<Chatter> {
        LineReceiver::with_config(Chatter::default(), Delimiter::Lf, LineLimits::new(MAX_LINE))
    }

    /// Sends `line` (without its delimiter) to every other client on every core.
    fn say(&self, ctx: &mut Context<'_>, line: &[u8]) {
        let mut message = format!("[{}] ", self.name).into_bytes();
        message.extend_from_slice(line);
        message.push(b'\n');
        let message = Bytes::from(message);
        // Who not to send it to: this client.
        let from = (core_index(ctx), ctx.id());
        match ctx.cores() {
            Some(cores) => cores.broadcast(move |reactor| deliver(reactor, &message, from)),
            // A lone reactor (no runtime): deliver on this core only.
            None => ctx
                .handle()
                .run(move |reactor| deliver(reactor, &message, from)),
        }
    }
}

impl LineHandler for Chatter {
    fn connection_made(&mut self, ctx: &mut LineContext<'_, '_>) {
        let core = core_index(ctx);
        self.name = format!("{core}.{}", ctx.id().index());
        CLIENTS.with_borrow_mut(|clients| clients.push(ctx.id()));
        let greeting = format!("welcome, you are on core {core} as {}\n", self.name);
        ctx.write(greeting.as_bytes());
    }

    fn line_received(&mut self, ctx: &mut LineContext<'_, '_>, line: &[u8]) {
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            self.say(ctx, line);
        }
    }

    fn line_too_long(&mut self, ctx: &mut Context<'_>, _error: LineError) {
        ctx.write(b"line too long, bye\n");
        ctx.close();
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, _reason: LostReason) {
        let id = ctx.id();
        CLIENTS.with_borrow_mut(|clients| clients.retain(|&client| client != id));
    }
}

/// The index of the core running `ctx`'s connection.
fn core_index(ctx: &Context<'_>) -> usize {
    ctx.cores().map_or(0, Cores::this_core)
}

/// Runs on each core: writes `message` to that core's clients, except its sender.
fn deliver(reactor: &mut Reactor, message: &Bytes, from: (usize, ConnId)) {
    let core = reactor.core_index();
    // A copy of the list: `with_conn` runs callbacks (a `connection_lost` that edits the
    // list) before it returns, so the list must not stay borrowed across it.
    let clients = CLIENTS.with_borrow(Vec::clone);
    for id in clients {
        if (core, id) == from {
            continue;
        }
        reactor.with_conn(id, |ctx| {
            if ctx.is_writable() {
                ctx.write_bytes(message.clone());
            }
        });
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let runtime = Runtime::builder().cores(args.cores).build()?;
    runtime
        .shutdown_handle()
        .on_signals(Duration::from_secs(1))?;
    let listen = args.listen;
    runtime.run(move |reactor| {
        let bound = reactor.listen_tcp(listen, Chatter::receiver)?;
        println!(
            "chat: core {} listening on {bound} (backend {})",
            reactor.core_index(),
            reactor.backend()
        );
        Ok(())
    })?;
    Ok(())
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
