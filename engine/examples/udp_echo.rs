//! UDP echo server: a [`DatagramProtocol`] that sends every datagram back to its sender.
//!
//! ```text
//! cargo run --release -p ringwork --example udp_echo -- [--listen 127.0.0.1:7000]
//! ```
//!
//! Try it from another terminal:
//!
//! ```text
//! python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.sendto(b"ping", ("127.0.0.1", 7000)); print(s.recvfrom(100))'
//! ```
//!
//! It runs one core: UDP sockets are bound without SO_REUSEPORT, so a second core could not
//! bind the same address. The backend is chosen by `RINGWORK_BACKEND`; SIGINT or SIGTERM
//! stops it.

use std::error::Error;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringwork::{DatagramContext, DatagramProtocol, Runtime};

/// UDP echo server on the ringwork engine (backend: RINGWORK_BACKEND).
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
}

/// Sends every datagram back where it came from.
struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn started(&mut self, ctx: &mut DatagramContext<'_>) {
        match ctx.local_addr().map(|addr| addr.as_socket()) {
            Ok(Some(addr)) => println!("udp_echo: listening on {addr}"),
            other => eprintln!("udp_echo: bound, but its address is unknown: {other:?}"),
        }
    }

    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        ctx.send_to(data, from);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("udp_echo: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let runtime = Runtime::builder().cores(1).build()?;
    runtime.shutdown_handle().on_signals(Duration::ZERO)?;
    let listen = args.listen;
    runtime.run(move |reactor| {
        reactor.bind_udp(listen, UdpEcho)?;
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
