//! Shared by the monoio peers: the CLI (`--port P --cores N [--addr A]`), thread-per-core
//! (N threads, each with its own monoio io_uring runtime and SO_REUSEPORT listener; thread
//! i pinned to CPU i when the process may run there, as ringwork pins its cores), the
//! ring's setup flags, and the cached Date header.
//!
//! Setup flags: `PEER_URING_SETUP=defer` (default: SINGLE_ISSUER | DEFER_TASKRUN, as
//! ringwork and uring-bare use; falls back to `coop`, then `plain`), `coop`
//! (COOP_TASKRUN | TASKRUN_FLAG), or `plain` (monoio's defaults).

pub mod date;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::exit;
use std::thread;

use socket2::{Domain, Protocol, Socket, Type};

/// Command line shared by every peer.
pub struct Args {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub cores: usize,
}

impl Args {
    /// Parses `--port P --cores N [--addr A]`; exits with usage on anything else.
    pub fn parse(name: &str) -> Args {
        let mut args = Args {
            addr: Ipv4Addr::LOCALHOST,
            port: 8080,
            cores: 1,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next();
            let ok = match (flag.as_str(), value.as_deref()) {
                ("--port", Some(v)) => v.parse().map(|v| args.port = v).is_ok(),
                ("--cores", Some(v)) => v.parse().map(|v| args.cores = v).is_ok(),
                ("--addr", Some(v)) => v.parse().map(|v| args.addr = v).is_ok(),
                _ => false,
            };
            if !ok || args.cores == 0 {
                eprintln!("usage: {name} --port P --cores N [--addr 127.0.0.1]");
                exit(2);
            }
        }
        args
    }
}

/// Pins the calling thread to CPU `index` when the process may run there (`cpus` is
/// the process's affinity mask, read before any thread is pinned): the rule ringwork's
/// runtime applies to its core threads, so both sides get the same placement.
pub fn pin(cpus: &[core_affinity::CoreId], index: usize) {
    if let Some(&cpu) = cpus.iter().find(|c| c.id == index) {
        if !core_affinity::set_for_current(cpu) {
            eprintln!("warning: could not pin thread {index} to CPU {}", cpu.id);
        }
    }
}

/// A listener on `addr:port` with SO_REUSEADDR and SO_REUSEPORT.
pub fn reuseport_listener(addr: Ipv4Addr, port: u16) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::from((addr, port)).into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

type Runtime = monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>;

/// Builds this thread's runtime with the setup flags `PEER_URING_SETUP` asks for, falling
/// back to weaker ones on kernels that refuse them.
fn runtime() -> std::io::Result<(Runtime, &'static str)> {
    let wanted = std::env::var("PEER_URING_SETUP").unwrap_or_else(|_| "defer".into());
    let order: &[&'static str] = match wanted.as_str() {
        "plain" => &["plain"],
        "coop" => &["coop", "plain"],
        _ => &["defer", "coop", "plain"],
    };
    let mut last = None;
    for &kind in order {
        let mut urb = io_uring::IoUring::builder();
        match kind {
            "defer" => {
                urb.setup_single_issuer().setup_defer_taskrun();
            }
            "coop" => {
                urb.setup_coop_taskrun().setup_taskrun_flag();
            }
            _ => {}
        }
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(urb)
            .enable_timer()
            .build()
        {
            Ok(rt) => return Ok((rt, kind)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no setup")))
}

/// Runs `serve(listener)` on `args.cores` threads, each in its own monoio runtime with
/// its own listener; never returns (exits on a setup error).
pub fn run_per_core<F, Fut>(name: &'static str, args: &Args, serve: F) -> !
where
    F: Fn(monoio::net::TcpListener) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = ()>,
{
    let listeners: Vec<_> = (0..args.cores)
        .map(|_| reuseport_listener(args.addr, args.port))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            eprintln!("{name}: cannot listen on {}:{}: {e}", args.addr, args.port);
            exit(1)
        });
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, std_listener)| {
            let cpus = cpus.clone();
            thread::spawn(move || {
                pin(&cpus, i);
                let (mut rt, kind) = runtime().unwrap_or_else(|e| {
                    eprintln!("{name}: io_uring runtime: {e}");
                    exit(1)
                });
                if i == 0 {
                    eprintln!("{name} listening, io_uring setup: {kind}");
                }
                rt.block_on(async move {
                    let listener =
                        monoio::net::TcpListener::from_std(std_listener).unwrap_or_else(|e| {
                            eprintln!("listener: {e}");
                            exit(1)
                        });
                    serve(listener).await
                })
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    exit(1)
}
