//! Sender CPU per MB of zero-copy sends (IORING_OP_SEND_ZC) against plain SEND, by size.
//!
//! ```text
//! cargo run --release -p ringwork-benches --example send_zc -- \
//!     [--sizes 4096,16384,65536,262144,1048576] [--mib 256] [--rounds 3] \
//!     [--sender-cpu 0] [--receiver-cpu 1] [--connect HOST:PORT]
//! ```
//!
//! For each round, size and mode (plain, zero-copy; interleaved), one io_uring driver on
//! this thread (pinned to `--sender-cpu`) sends `--mib` MiB over one TCP connection, one
//! buffer of the size at a time (the next is queued when the previous one was sent and,
//! zero-copy, its notification came, so every send operation carries exactly one buffer
//! of that size and every zero-copy mode send is one). By default the receiver
//! is a thread of this process pinned to `--receiver-cpu` that reads and drops everything
//! (loopback: the kernel copies zero-copy sends when it delivers them to a local socket,
//! so zero-copy cannot win there; `--connect` sends to an outside sink, e.g. `nc -l`, to
//! measure a real NIC). The sender's CPU time is its thread's run time from
//! `/proc/thread-self/schedstat` (user and kernel, nanoseconds). Prints one line per run
//! and a table of medians with min-max.
#![forbid(unsafe_code)]

use std::error::Error;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use ringwork_platform::{BackendChoice, Bytes, Completion, Driver, DriverConfig, SockAddr};

/// Zero-copy against plain sends, sender CPU per MB by size.
#[derive(Debug, Parser)]
struct Args {
    /// Buffer sizes to measure, in bytes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "4096,16384,65536,262144,1048576"
    )]
    sizes: Vec<usize>,
    /// MiB sent per run.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Rounds (each runs every size in both modes).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// CPU of the sending thread.
    #[arg(long, default_value_t = 0)]
    sender_cpu: usize,
    /// CPU of the receiving thread (without `--connect`).
    #[arg(long, default_value_t = 1)]
    receiver_cpu: usize,
    /// Send to this address instead of a receiving thread of this process.
    #[arg(long)]
    connect: Option<SocketAddr>,
}

/// One run's result.
struct Run {
    size: usize,
    zero_copy: bool,
    cpu_ms_per_mb: f64,
    mb_per_s: f64,
    copied: u64,
    zc_sends: u64,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("send_zc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    pin(args.sender_cpu);
    let target = match args.connect {
        Some(addr) => addr,
        None => spawn_sink(args.receiver_cpu)?,
    };
    let mut runs = Vec::new();
    for round in 0..args.rounds {
        for &size in &args.sizes {
            for zero_copy in [false, true] {
                let run = send_once(target, size, args.mib << 20, zero_copy)?;
                println!(
                    "round {round} size {size:>8} {:>5}: {:.3} ms CPU/MB, {:.0} MB/s, \
                     {} zero-copy sends ({} copied by the kernel)",
                    mode(zero_copy),
                    run.cpu_ms_per_mb,
                    run.mb_per_s,
                    run.zc_sends,
                    run.copied
                );
                runs.push(run);
            }
        }
    }
    println!("\n| size | mode | sender CPU ms/MB median (min-max) | MB/s median | copied |");
    println!("|---|---|---|---|---|");
    for &size in &args.sizes {
        for zero_copy in [false, true] {
            let of = |f: fn(&Run) -> f64| {
                let mut v: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.size == size && r.zero_copy == zero_copy)
                    .map(f)
                    .collect();
                v.sort_by(f64::total_cmp);
                (v[v.len() / 2], v[0], v[v.len() - 1])
            };
            let (cpu, lo, hi) = of(|r| r.cpu_ms_per_mb);
            let (rate, _, _) = of(|r| r.mb_per_s);
            let copied: u64 = runs
                .iter()
                .filter(|r| r.size == size && r.zero_copy == zero_copy)
                .map(|r| r.copied)
                .sum();
            let zc: u64 = runs
                .iter()
                .filter(|r| r.size == size && r.zero_copy == zero_copy)
                .map(|r| r.zc_sends)
                .sum();
            println!(
                "| {size} | {} | {cpu:.3} ({lo:.3}-{hi:.3}) | {rate:.0} | {copied}/{zc} |",
                mode(zero_copy)
            );
        }
    }
    Ok(())
}

fn mode(zero_copy: bool) -> &'static str {
    if zero_copy { "zc" } else { "plain" }
}

fn pin(cpu: usize) {
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
}

/// A listener whose connections are read and dropped by threads pinned to `cpu`.
fn spawn_sink(cpu: usize) -> Result<SocketAddr, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        pin(cpu);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                pin(cpu);
                let mut buf = vec![0; 1 << 20];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    Ok(addr)
}

/// This thread's run time so far (user and kernel), from `/proc/thread-self/schedstat`.
fn thread_cpu() -> Result<Duration, Box<dyn Error>> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .ok_or("empty schedstat")?
        .parse()?;
    Ok(Duration::from_nanos(ns))
}

fn send_once(
    target: SocketAddr,
    size: usize,
    total: usize,
    zero_copy: bool,
) -> Result<Run, Box<dyn Error>> {
    let config = DriverConfig {
        backend: BackendChoice::Uring,
        send_zc_min: zero_copy.then_some(0),
        ..DriverConfig::default()
    };
    let mut driver = Driver::with_config(config)?;
    if zero_copy && !driver.capabilities().send_zc {
        return Err("this kernel has no IORING_OP_SEND_ZC".into());
    }
    let socket = driver.connect(&SockAddr::from(target))?;
    let buffer = Bytes::from(vec![0x5a; size]);
    let count = total.div_ceil(size);
    let mut queued = 1;
    driver.send(socket, buffer.clone());
    let mut out = Vec::new();
    let (cpu0, t0) = (thread_cpu()?, Instant::now());
    let mut done = 0;
    while done < count {
        // The next buffer once the last one is sent and, for zero-copy, released (the
        // driver sends plain while a notification is pending: this keeps every send
        // zero-copy, one at a time).
        let stats = driver.stats();
        if done == queued && queued < count && stats.zc_notifications == stats.zc_sends {
            queued += 1;
            driver.send(socket, buffer.clone());
        }
        driver.turn(Some(Duration::from_secs(5)), &mut out)?;
        for completion in out.drain(..) {
            match completion {
                Completion::Connected { result, .. } => result?,
                Completion::Sent { queued: 0, .. } => done += 1,
                Completion::Sent { .. } => {}
                Completion::SendError { error, .. } => return Err(error.into()),
                other => return Err(format!("unexpected {other:?}").into()),
            }
        }
    }
    let (cpu, wall) = (thread_cpu()? - cpu0, t0.elapsed());
    let stats = driver.stats();
    driver.close(socket);
    let mb = (count * size) as f64 / 1e6;
    Ok(Run {
        size,
        zero_copy,
        cpu_ms_per_mb: cpu.as_secs_f64() * 1e3 / mb,
        mb_per_s: mb / wall.as_secs_f64(),
        copied: stats.zc_copied,
        zc_sends: stats.zc_sends,
    })
}
