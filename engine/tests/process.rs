//! Child processes on the reactor (`Reactor::spawn_process`, `ProcessProtocol`), on both
//! backends: stdin to stdout through `cat`, backpressure in both directions, exit codes
//! and signals, a pseudo-terminal with its window size, spawn errors, a panicking protocol,
//! graceful shutdown and a dropped reactor (children killed and reaped, no zombie).
//!
//! Nothing sleeps: waits turn the reactor until the awaited callback, bounded by
//! `common::LIMIT`; a reaped child is awaited by its /proc entry disappearing (the reaper
//! thread has no event to wait on), also bounded.
#![cfg(target_os = "linux")]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{LIMIT, pattern, quiet_panics, reactor, wait};
use ringwork::platform::BackendChoice;
use ringwork::signal::{SIGKILL, SIGTERM};
use ringwork::{
    ExitStatus, LostKind, LostReason, ProcessCommand, ProcessContext, ProcessProtocol, Reactor,
    WindowSize,
};

/// One callback, as recorded.
#[derive(Clone, Debug, Eq, PartialEq)]
enum Event {
    Made,
    Out(usize),
    Err(usize),
    PauseWriting,
    InDrained,
    InLost(LostKind),
    OutLost(LostKind),
    ErrLost(LostKind),
    Exited(ExitStatus),
    Ended(ExitStatus),
    ShutdownStarted,
}

#[derive(Default)]
struct Record {
    events: Vec<Event>,
    out: Vec<u8>,
    err: Vec<u8>,
    pid: Option<u32>,
}

impl Record {
    fn ended(&self) -> Option<ExitStatus> {
        self.events.iter().find_map(|e| match e {
            Event::Ended(status) => Some(*status),
            _ => None,
        })
    }

    fn has(&self, event: &Event) -> bool {
        self.events.contains(event)
    }
}

type Shared = Rc<RefCell<Record>>;

/// What a test protocol does at each step, on top of recording it.
#[derive(Default)]
struct Script {
    /// Written to stdin in `connection_made`.
    input: Vec<u8>,
    /// Close stdin after writing `input`.
    close_stdin: bool,
    /// Send this signal in `connection_made`.
    signal: Option<i32>,
    /// Pause reading in `connection_made`.
    paused: bool,
    /// Panic in `connection_made`.
    panic: bool,
    /// Keep the default `shutdown_started` (SIGTERM).
    default_shutdown: bool,
}

struct Recorder {
    record: Shared,
    script: Script,
}

impl ProcessProtocol for Recorder {
    fn connection_made(&mut self, ctx: &mut ProcessContext<'_>) {
        let mut record = self.record.borrow_mut();
        record.events.push(Event::Made);
        record.pid = ctx.pid();
        if self.script.panic {
            panic!("process test panic");
        }
        if self.script.paused {
            ctx.pause_reading();
        }
        ctx.write_stdin(&self.script.input);
        if self.script.close_stdin {
            ctx.close_stdin();
        }
        if let Some(signal) = self.script.signal {
            ctx.signal(signal).expect("signal a running child");
        }
    }

    fn out_received(&mut self, _ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let mut record = self.record.borrow_mut();
        record.events.push(Event::Out(data.len()));
        record.out.extend_from_slice(data);
    }

    fn err_received(&mut self, _ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let mut record = self.record.borrow_mut();
        record.events.push(Event::Err(data.len()));
        record.err.extend_from_slice(data);
    }

    fn pause_writing(&mut self, ctx: &mut ProcessContext<'_>) {
        assert!(!ctx.is_writable());
        self.record.borrow_mut().events.push(Event::PauseWriting);
    }

    fn in_drained(&mut self, ctx: &mut ProcessContext<'_>) {
        assert!(ctx.is_writable());
        self.record.borrow_mut().events.push(Event::InDrained);
    }

    fn in_connection_lost(&mut self, _ctx: &mut ProcessContext<'_>, reason: LostReason) {
        self.record
            .borrow_mut()
            .events
            .push(Event::InLost(reason.kind()));
    }

    fn out_connection_lost(&mut self, _ctx: &mut ProcessContext<'_>, reason: LostReason) {
        self.record
            .borrow_mut()
            .events
            .push(Event::OutLost(reason.kind()));
    }

    fn err_connection_lost(&mut self, _ctx: &mut ProcessContext<'_>, reason: LostReason) {
        self.record
            .borrow_mut()
            .events
            .push(Event::ErrLost(reason.kind()));
    }

    fn process_exited(&mut self, ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        assert_eq!(ctx.exit_status(), Some(status));
        assert!(
            ctx.signal(SIGTERM).is_err(),
            "an exited child cannot be signalled"
        );
        self.record.borrow_mut().events.push(Event::Exited(status));
    }

    fn process_ended(&mut self, _ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        self.record.borrow_mut().events.push(Event::Ended(status));
    }

    fn shutdown_started(&mut self, ctx: &mut ProcessContext<'_>) {
        self.record.borrow_mut().events.push(Event::ShutdownStarted);
        if self.script.default_shutdown {
            let _ = ctx.signal(SIGTERM);
        }
    }
}

/// Spawns `command` on `reactor` with `script`.
fn spawn(reactor: &mut Reactor, command: &ProcessCommand, script: Script) -> Shared {
    let record = Shared::default();
    let protocol = Recorder {
        record: Rc::clone(&record),
        script,
    };
    reactor.spawn_process(command, protocol).expect("spawn");
    record
}

/// Turns until the child's protocol got `process_ended`.
fn until_ended(reactor: &mut Reactor, record: &Shared) -> ExitStatus {
    wait(
        reactor,
        |_| record.borrow().ended().is_some(),
        || format!("process_ended; events so far: {:?}", record.borrow().events),
    );
    assert_eq!(reactor.processes(), 0, "an ended child leaves the table");
    record.borrow().ended().expect("ended")
}

/// Waits (bounded) until `pid` has no /proc entry: it was reaped.
fn until_reaped(reactor: &mut Reactor, pid: u32) {
    let path = format!("/proc/{pid}");
    let deadline = Instant::now() + LIMIT;
    while std::path::Path::new(&path).exists() {
        assert!(Instant::now() < deadline, "child {pid} left behind");
        reactor.turn(Some(Duration::from_millis(10))).expect("turn");
    }
}

ringwork::platform::test_all_backends! {
    fn cat_echoes_stdin_to_stdout(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let input = pattern(1 << 20);
        let script = Script { input: input.clone(), close_stdin: true, ..Script::default() };
        let record = spawn(&mut reactor, &ProcessCommand::new("cat"), script);
        assert_eq!(until_ended(&mut reactor, &record), ExitStatus::Exited(0));
        let record = record.borrow();
        assert!(record.out == input, "cat's output differs from its input");
        assert_eq!(record.events.first(), Some(&Event::Made));
        assert_eq!(record.events.last(), Some(&Event::Ended(ExitStatus::Exited(0))));
        for event in [
            Event::InLost(LostKind::Done),
            Event::OutLost(LostKind::Done),
            Event::ErrLost(LostKind::Done),
            Event::Exited(ExitStatus::Exited(0)),
        ] {
            assert!(record.has(&event), "{event:?} missing: {:?}", record.events);
        }
        assert_eq!(reactor.connections(), 0, "every stream closed");
    }

    fn stdin_and_stdout_push_back(backend: BackendChoice) {
        // Reading stdout is paused at the start: cat blocks writing its stdout, then stops
        // reading its stdin, so our stdin buffer passes its high watermark (pause_writing).
        // Resuming lets everything through, with in_drained on the way.
        let Some(mut reactor) = reactor(backend) else { return };
        let input = pattern(4 << 20);
        let script = Script { input: input.clone(), paused: true, ..Script::default() };
        let record = spawn(&mut reactor, &ProcessCommand::new("cat"), script);
        wait(&mut reactor, |_| record.borrow().has(&Event::PauseWriting), || "pause_writing".into());
        assert!(record.borrow().out.len() < input.len());
        let id = process_id(&mut reactor);
        reactor.with_process(id, |ctx| {
            assert!(ctx.stdin_buffered() > 0);
            ctx.resume_reading();
        });
        wait(&mut reactor, |_| record.borrow().out.len() == input.len(), || "all output".into());
        assert!(record.borrow().has(&Event::InDrained));
        reactor.with_process(id, |ctx| ctx.close_stdin());
        assert_eq!(until_ended(&mut reactor, &record), ExitStatus::Exited(0));
        assert!(record.borrow().out == input);
    }

    fn exit_codes_and_stderr(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let cmd = ProcessCommand::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]);
        let record = spawn(&mut reactor, &cmd, Script::default());
        assert_eq!(until_ended(&mut reactor, &record), ExitStatus::Exited(3));
        let record = record.borrow();
        assert_eq!(record.out, b"out\n");
        assert_eq!(record.err, b"err\n");
        assert!(record.has(&Event::Exited(ExitStatus::Exited(3))));
    }

    fn a_signal_ends_a_child(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let script = Script { signal: Some(SIGTERM), ..Script::default() };
        let record = spawn(&mut reactor, &ProcessCommand::new("sleep").arg("100"), script);
        let status = until_ended(&mut reactor, &record);
        assert_eq!(status, ExitStatus::Signaled { signal: SIGTERM, core_dumped: false });
        assert_eq!(status.signal(), Some(SIGTERM));
        assert_eq!(status.code(), None);
    }

    fn arguments_environment_directory_and_user(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        // As root, run the child as nobody; otherwise as ourselves (which needs no
        // privilege but still goes through setgid/setuid).
        let (uid, gid) = match (own_id("Uid:"), own_id("Gid:")) {
            (0, _) => (65534, 65534),
            ids => ids,
        };
        let dir = std::env::temp_dir();
        let script = "echo \"$1 $RINGWORK_TEST_VAR $HOME\"; pwd; id -u; id -g";
        let cmd = ProcessCommand::new("sh")
            .args(["-c", script, "sh", "first arg"])
            .env_clear()
            .env("RINGWORK_TEST_VAR", "set")
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&dir)
            .uid(uid)
            .gid(gid);
        let record = spawn(&mut reactor, &cmd, Script::default());
        let status = until_ended(&mut reactor, &record);
        let out = String::from_utf8(record.borrow().out.clone()).expect("utf-8");
        assert_eq!(status, ExitStatus::Exited(0), "{:?}", String::from_utf8_lossy(&record.borrow().err));
        let real = std::fs::canonicalize(&dir).expect("temp dir");
        assert_eq!(out, format!("first arg set \n{}\n{uid}\n{gid}\n", real.display()));
    }

    fn the_terminal_is_the_childs_with_its_size(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let cmd = ProcessCommand::new("sh")
            .args(["-c", "tty; stty size; read line; stty size; echo $line"])
            .pty(WindowSize::new(24, 80));
        let record = spawn(&mut reactor, &cmd, Script::default());
        wait(
            &mut reactor,
            |_| String::from_utf8_lossy(&record.borrow().out).contains("24 80\r\n"),
            || format!("stty size; output: {:?}", String::from_utf8_lossy(&record.borrow().out)),
        );
        let id = process_id(&mut reactor);
        reactor.with_process(id, |ctx| {
            ctx.set_window_size(WindowSize::new(40, 120)).expect("resize");
            ctx.write_stdin(b"line\n");
        });
        assert_eq!(until_ended(&mut reactor, &record), ExitStatus::Exited(0));
        let out = String::from_utf8_lossy(&record.borrow().out).into_owned();
        assert!(out.starts_with("/dev/pts/"), "{out:?}");
        assert!(out.contains("40 120\r\nline\r\n"), "{out:?}");
        // One stream for both directions: no separate stdin or stderr loss.
        let record = record.borrow();
        assert!(record.has(&Event::OutLost(LostKind::Done)), "{:?}", record.events);
        assert!(!record.events.iter().any(|e| matches!(e, Event::InLost(_) | Event::ErrLost(_))));
    }

    fn close_stdin_on_a_terminal_sends_end_of_file(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let cmd = ProcessCommand::new("cat").pty(WindowSize::new(24, 80));
        let script = Script { input: b"typed\n".to_vec(), close_stdin: true, ..Script::default() };
        let record = spawn(&mut reactor, &cmd, script);
        let status = until_ended(&mut reactor, &record);
        let out = String::from_utf8_lossy(&record.borrow().out).into_owned();
        assert_eq!(status, ExitStatus::Exited(0), "{out:?} {:?}", record.borrow().events);
        assert!(out.contains("typed\r\n"), "{out:?}");
    }

    fn a_missing_program_is_an_error(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let cmd = ProcessCommand::new("/nonexistent/ringwork-test-program");
        let error = reactor.spawn_process(&cmd, Recorder {
            record: Shared::default(),
            script: Script::default(),
        });
        let error = error.expect_err("no such program");
        assert!(error.to_string().contains("No such file"), "{error}");
        assert_eq!((reactor.processes(), reactor.connections()), (0, 0));
    }

    fn a_panicking_protocol_has_its_child_killed(backend: BackendChoice) {
        quiet_panics("process test panic");
        let Some(mut reactor) = reactor(backend) else { return };
        let script = Script { panic: true, ..Script::default() };
        let record = spawn(&mut reactor, &ProcessCommand::new("sleep").arg("100"), script);
        wait(&mut reactor, |r| r.processes() == 0, || "the child to go".into());
        assert_eq!(record.borrow().events, [Event::Made], "no callback after the panic");
        assert_eq!(reactor.stats().panics, 1);
        let pid = record.borrow().pid.expect("pid");
        until_reaped(&mut reactor, pid);
    }

    fn graceful_shutdown_terminates_children(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let script = Script { default_shutdown: true, ..Script::default() };
        let record = spawn(&mut reactor, &ProcessCommand::new("sleep").arg("100"), script);
        // One child ignores SIGTERM: the end of the grace period kills it.
        let stubborn =
            ProcessCommand::new("sh").args(["-c", "trap '' TERM; echo ready; exec sleep 100"]);
        let other = spawn(&mut reactor, &stubborn, Script { default_shutdown: true, ..Script::default() });
        wait(&mut reactor, |_| other.borrow().out == b"ready\n", || "SIGTERM ignored".into());
        reactor.shutdown(Duration::from_millis(200));
        reactor.run().expect("run");
        assert_eq!(
            record.borrow().ended(),
            Some(ExitStatus::Signaled { signal: SIGTERM, core_dumped: false })
        );
        assert_eq!(
            other.borrow().ended(),
            Some(ExitStatus::Signaled { signal: SIGKILL, core_dumped: false })
        );
        assert!(record.borrow().has(&Event::ShutdownStarted));
    }

    fn a_dropped_reactor_leaves_no_child(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let record = spawn(&mut reactor, &ProcessCommand::new("sleep").arg("100"), Script::default());
        wait(&mut reactor, |_| record.borrow().has(&Event::Made), || "started".into());
        let pid = record.borrow().pid.expect("pid");
        drop(reactor);
        let Some(mut other) = common::reactor(backend) else { return };
        until_reaped(&mut other, pid);
    }
}

/// This process's real user or group id (`key` is `Uid:` or `Gid:` in /proc/self/status).
fn own_id(key: &str) -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|ids| ids.split_whitespace().next()?.parse().ok())
        .expect("an id")
}

/// The id of the only child on `reactor`.
fn process_id(reactor: &mut Reactor) -> ringwork::ProcessId {
    *reactor.process_ids().first().expect("one child")
}
