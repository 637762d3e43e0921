//! 1,000 children per backend leave no descriptor and no zombie behind: pipes and
//! terminals, clean exits, exit codes, children killed by a signal, children fed through
//! stdin; then a round watched without pidfd (waiter threads).
//!
//! Alone in its binary: it counts this process's descriptors (/proc/self/fd) and looks for
//! zombie children in /proc, which other tests running alongside would disturb. Nothing
//! sleeps: the final counts are awaited by turning the reactor with a short timeout (the
//! driver closes descriptors asynchronously under io_uring), bounded by a failure limit.
#![cfg(target_os = "linux")]

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{LIMIT, available};
use ringwork::platform::BackendChoice;
use ringwork::signal::SIGKILL;
use ringwork::{
    DriverConfig, ExitStatus, ProcessCommand, ProcessContext, ProcessProtocol, Reactor,
    ReactorConfig, WindowSize,
};

const SPAWNS: usize = 1000;
/// Children running at once.
const BATCH: usize = 50;

/// Counts what ended, and checks each child ended as its kind should.
struct Child {
    kind: usize,
    ended: Rc<Cell<usize>>,
}

impl ProcessProtocol for Child {
    fn connection_made(&mut self, ctx: &mut ProcessContext<'_>) {
        match self.kind {
            2 => ctx.signal(SIGKILL).expect("kill a running child"),
            3 => {
                ctx.write_stdin(b"fed through stdin\n");
                ctx.close_stdin();
            }
            _ => {}
        }
    }

    fn out_received(&mut self, _ctx: &mut ProcessContext<'_>, _data: &[u8]) {}

    fn process_ended(&mut self, _ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        let want = match self.kind {
            1 => ExitStatus::Exited(3),
            2 => ExitStatus::Signaled {
                signal: SIGKILL,
                core_dumped: false,
            },
            _ => ExitStatus::Exited(0),
        };
        assert_eq!(status, want, "child of kind {}", self.kind);
        self.ended.set(self.ended.get() + 1);
    }
}

fn command(kind: usize) -> ProcessCommand {
    match kind {
        0 => ProcessCommand::new("true").pty(WindowSize::new(24, 80)),
        1 => ProcessCommand::new("sh").args(["-c", "exit 3"]),
        2 => ProcessCommand::new("sleep").arg("100"),
        _ => ProcessCommand::new("cat"),
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Children of this process that are zombies (exited, not reaped).
fn zombies() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (
            fields.next(),
            fields.next().and_then(|p| p.parse::<u32>().ok()),
        );
        if state == Some("Z") && ppid == Some(me) {
            found.push(pid);
        }
    }
    found
}

/// Turns `reactor` (briefly each time) until `done`, failing after [`LIMIT`].
fn until(reactor: &mut Reactor, what: &str, mut done: impl FnMut(&mut Reactor) -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done(reactor) {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        reactor.turn(Some(Duration::from_millis(10))).expect("turn");
    }
}

fn spawn_many(backend: BackendChoice, spawns: usize, config: DriverConfig) {
    let driver = DriverConfig { backend, ..config };
    let mut reactor = Reactor::new(ReactorConfig::default(), driver).expect("reactor");
    let baseline = open_fds();
    let ended = Rc::new(Cell::new(0));
    let mut started = 0;
    while started < spawns {
        let batch = BATCH.min(spawns - started);
        for i in started..started + batch {
            let child = Child {
                kind: i % 4,
                ended: Rc::clone(&ended),
            };
            reactor
                .spawn_process(&command(i % 4), child)
                .expect("spawn");
        }
        started += batch;
        until(&mut reactor, "a batch to end", |r| {
            ended.get() == started && r.processes() == 0
        });
    }
    until(&mut reactor, "every descriptor closed", |r| {
        r.connections() == 0 && open_fds() == baseline
    });
    assert_eq!(zombies(), Vec::<u32>::new(), "zombie children left");
    assert_eq!(ended.get(), spawns);
}

#[test]
fn a_thousand_children_leave_no_descriptor_and_no_zombie() {
    for backend in [BackendChoice::Uring, BackendChoice::Poll] {
        if !available(backend) {
            continue;
        }
        spawn_many(backend, SPAWNS, DriverConfig::default());
        let fallback = DriverConfig {
            simulate_no_pidfd: true,
            ..DriverConfig::default()
        };
        spawn_many(backend, SPAWNS / 5, fallback);
    }
}
