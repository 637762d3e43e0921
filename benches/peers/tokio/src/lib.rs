//! Shared by the tokio peers: the CLI (`--port P --cores N [--addr A]`) and
//! thread-per-core: N threads, each with its own `current_thread` runtime and its own
//! SO_REUSEPORT listener, so the kernel spreads connections over them; thread i is pinned
//! to CPU i when the process may run there (as ringwork pins its cores).

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

/// A non-blocking listener on `addr:port` with SO_REUSEADDR and SO_REUSEPORT.
pub fn reuseport_listener(addr: Ipv4Addr, port: u16) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((addr, port)).into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Runs `serve(listener)` on `args.cores` threads, each in its own `current_thread`
/// runtime with its own listener; never returns (exits on a setup error).
pub fn run_per_core<F, Fut>(name: &str, args: &Args, serve: F) -> !
where
    F: Fn(tokio::net::TcpListener) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = ()>,
{
    // Bind every listener before serving, so a bad port fails before any thread starts.
    let listeners: Vec<_> = (0..args.cores)
        .map(|_| reuseport_listener(args.addr, args.port))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            eprintln!("{name}: cannot listen on {}:{}: {e}", args.addr, args.port);
            exit(1)
        });
    eprintln!(
        "{name} listening on {}:{}, {} thread(s)",
        args.addr, args.port, args.cores
    );
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, std_listener)| {
            let cpus = cpus.clone();
            thread::spawn(move || {
                pin(&cpus, i);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .unwrap_or_else(|e| {
                        eprintln!("runtime: {e}");
                        exit(1)
                    });
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(std_listener).unwrap_or_else(|e| {
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
