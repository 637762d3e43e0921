//! 100 MiB from a child to a slow reader, on both backends, in bounded memory: while the
//! reader is paused the child blocks in its write (the pipe is full) and the engine holds
//! at most what was in flight; then the reader takes the output in 1 MiB steps, pausing
//! after each and resuming a turn later. The peak memory of this process (VmHWM) grows far
//! less than the output's size.
//!
//! Alone in its binary: the peak memory is process-wide. Nothing sleeps: waits turn the
//! reactor, bounded by a failure limit; the child's blocked state is read from /proc.
#![cfg(target_os = "linux")]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{LIMIT, available};
use ringwork::platform::BackendChoice;
use ringwork::{
    DriverConfig, ExitStatus, ProcessCommand, ProcessContext, ProcessProtocol, Reactor,
    ReactorConfig,
};

const OUTPUT: usize = 100 << 20;
/// The reader pauses after each step.
const STEP: usize = 1 << 20;

#[derive(Default)]
struct Reader {
    received: usize,
    /// Bytes received since the last pause.
    since_pause: usize,
    /// Largest single delivery.
    largest: usize,
    paused: bool,
    /// Deliveries made while paused (must stay zero).
    while_paused: usize,
    ended: Option<ExitStatus>,
    pid: Option<u32>,
}

struct Slow(Rc<RefCell<Reader>>);

impl ProcessProtocol for Slow {
    fn connection_made(&mut self, ctx: &mut ProcessContext<'_>) {
        let mut reader = self.0.borrow_mut();
        reader.pid = ctx.pid();
        reader.paused = true;
        ctx.pause_reading();
    }

    fn out_received(&mut self, ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let mut reader = self.0.borrow_mut();
        assert!(data.iter().all(|&b| b == 0), "head -c of /dev/zero");
        if reader.paused {
            reader.while_paused += 1;
        }
        reader.received += data.len();
        reader.since_pause += data.len();
        reader.largest = reader.largest.max(data.len());
        if reader.since_pause >= STEP {
            reader.since_pause = 0;
            reader.paused = true;
            ctx.pause_reading();
        }
    }

    fn process_ended(&mut self, _ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        self.0.borrow_mut().ended = Some(status);
    }
}

/// The peak resident memory of this process, in KiB.
fn peak_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Whether `pid` is asleep (blocked in its write to the full pipe).
fn sleeping(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|state| state == "S")
        })
        .unwrap_or(false)
}

fn slow_reader(backend: BackendChoice) {
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    let mut reactor = Reactor::new(ReactorConfig::default(), driver).expect("reactor");
    let before = peak_kib();
    let reader = Rc::new(RefCell::new(Reader::default()));
    let cmd = ProcessCommand::new("head").args(["-c", &OUTPUT.to_string(), "/dev/zero"]);
    let id = reactor
        .spawn_process(&cmd, Slow(Rc::clone(&reader)))
        .expect("spawn");
    let pid = reader.borrow().pid.expect("pid");
    let deadline = Instant::now() + LIMIT;
    // Paused from the start: the child fills the pipe and blocks.
    while !sleeping(pid) {
        assert!(Instant::now() < deadline, "the child never blocked");
        reactor.turn(Some(Duration::from_millis(10))).expect("turn");
    }
    for _ in 0..10 {
        reactor.turn(Some(Duration::ZERO)).expect("turn");
    }
    assert_eq!(
        reader.borrow().received,
        0,
        "nothing delivered while paused"
    );
    // The slow reader: resume one turn after each pause.
    while reader.borrow().ended.is_none() {
        assert!(Instant::now() < deadline, "output not read in time");
        if reader.borrow().paused {
            reader.borrow_mut().paused = false;
            reactor.with_process(id, |ctx| ctx.resume_reading());
        }
        reactor
            .turn(Some(Duration::from_millis(100)))
            .expect("turn");
    }
    let reader = reader.borrow();
    assert_eq!(reader.ended, Some(ExitStatus::Exited(0)));
    assert_eq!(reader.received, OUTPUT);
    assert_eq!(reader.while_paused, 0);
    assert!(
        reader.largest <= 64 * 1024,
        "largest delivery {}",
        reader.largest
    );
    let grown = peak_kib().saturating_sub(before);
    println!(
        "{backend:?}: peak memory grew by {grown} KiB for {} MiB of output",
        OUTPUT >> 20
    );
    assert!(grown < 32 * 1024, "peak memory grew by {grown} KiB");
}

#[test]
fn a_slow_reader_gets_100_mib_in_bounded_memory() {
    for backend in [BackendChoice::Uring, BackendChoice::Poll] {
        if available(backend) {
            slow_reader(backend);
        }
    }
}
