//! Child processes through the driver, on every backend: pipes read and written as streams,
//! the exit seen through the pidfd (and through the waiter-thread fallback), signals, a
//! terminal, and a watcher closed early (the child is killed and reaped, not left a
//! zombie). Nothing sleeps: every wait turns the driver until the awaited completion, with
//! a generous bound as a failure limit.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use ringwork_platform::{
    BackendChoice, Bytes, Completion, ControlChar, Driver, DriverConfig, ExitStatus, ModeFlag,
    ProcessCommand, Spawned, TerminalMode, WindowSize, test_all_backends, testing,
};

const LIMIT: Duration = Duration::from_secs(20);

/// What a child's streams and watcher delivered.
#[derive(Default)]
struct Seen {
    out: Vec<u8>,
    err: Vec<u8>,
    out_eof: bool,
    err_eof: bool,
    exit: Option<ExitStatus>,
}

/// Turns `driver` until `done`, collecting what `child` delivers.
fn run(driver: &mut Driver, child: &Spawned, seen: &mut Seen, mut done: impl FnMut(&Seen) -> bool) {
    let deadline = Instant::now() + LIMIT;
    let mut out = Vec::new();
    while !done(seen) {
        assert!(
            Instant::now() < deadline,
            "child {} did not finish",
            child.pid
        );
        driver
            .turn(Some(Duration::from_millis(100)), &mut out)
            .expect("turn");
        for completion in out.drain(..) {
            match completion {
                Completion::Received { socket, buf } if Some(socket) == child.stdout => {
                    seen.out.extend_from_slice(&buf);
                }
                Completion::Received { socket, buf } if Some(socket) == child.stderr => {
                    seen.err.extend_from_slice(&buf);
                }
                Completion::Eof { socket } if Some(socket) == child.stdout => seen.out_eof = true,
                Completion::Eof { socket } if Some(socket) == child.stderr => seen.err_eof = true,
                Completion::Exited { child: id, status } if id == child.child => {
                    assert!(seen.exit.is_none(), "one exit per child");
                    seen.exit = Some(status);
                }
                Completion::RecvError { socket, error } => panic!("{socket}: {error}"),
                Completion::SendError { socket, error } => panic!("{socket}: {error}"),
                _ => {}
            }
        }
    }
}

fn start(driver: &mut Driver, command: &ProcessCommand) -> Spawned {
    let child = driver.spawn(command).expect("spawn");
    for stream in [child.stdout, child.stderr].into_iter().flatten() {
        assert!(driver.recv(stream));
    }
    child
}

fn close_all(driver: &mut Driver, child: &Spawned) {
    for id in [Some(child.child), child.stdin, child.stdout, child.stderr]
        .into_iter()
        .flatten()
    {
        driver.close(id);
    }
}

/// Whether `pid` is gone (reaped): no /proc entry.
fn reaped(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn echo_through_cat(config: DriverConfig, backend: BackendChoice) {
    let Some(mut driver) = testing::driver(backend, config) else {
        return;
    };
    let child = start(&mut driver, &ProcessCommand::new("cat"));
    let stdin = child.stdin.expect("a stdin pipe");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert!(driver.send(stdin, Bytes::from(payload.clone())));
    assert!(
        !driver.shutdown_write(stdin),
        "pipes are closed, not shut down"
    );
    let mut seen = Seen::default();
    run(&mut driver, &child, &mut seen, |s| {
        s.out.len() == payload.len()
    });
    // Closing stdin (after everything was taken) ends cat.
    assert_eq!(driver.send_queued(stdin), Some(0));
    driver.close(stdin);
    run(&mut driver, &child, &mut seen, |s| {
        s.out_eof && s.err_eof && s.exit.is_some()
    });
    assert_eq!(seen.out, payload);
    assert_eq!(seen.exit, Some(ExitStatus::Exited(0)));
    assert!(reaped(child.pid), "reaped at its exit");
    close_all(&mut driver, &child);
}

test_all_backends! {
    fn cat_echoes_its_stdin(backend: BackendChoice) {
        echo_through_cat(DriverConfig::default(), backend);
    }

    fn cat_echoes_without_pidfd(backend: BackendChoice) {
        let config = DriverConfig { simulate_no_pidfd: true, ..DriverConfig::default() };
        echo_through_cat(config, backend);
    }

    fn exit_codes_and_stderr(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let cmd = ProcessCommand::new("sh").arg("-c").arg("echo out; echo err >&2; exit 3");
        let child = start(&mut driver, &cmd);
        let mut seen = Seen::default();
        run(&mut driver, &child, &mut seen, |s| s.out_eof && s.err_eof && s.exit.is_some());
        assert_eq!(seen.out, b"out\n");
        assert_eq!(seen.err, b"err\n");
        assert_eq!(seen.exit, Some(ExitStatus::Exited(3)));
        close_all(&mut driver, &child);
    }

    fn signals_end_a_child(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let child = start(&mut driver, &ProcessCommand::new("sleep").arg("100"));
        assert_eq!(driver.child_pid(child.child), Some(child.pid));
        driver.signal(child.child, libc::SIGTERM).expect("signal");
        let mut seen = Seen::default();
        run(&mut driver, &child, &mut seen, |s| s.exit.is_some());
        assert_eq!(
            seen.exit,
            Some(ExitStatus::Signaled { signal: libc::SIGTERM, core_dumped: false })
        );
        let error = driver.signal(child.child, libc::SIGTERM).expect_err("reaped");
        assert_eq!(error.source.raw_os_error(), Some(libc::ESRCH));
        assert_eq!(driver.child_pid(child.child), None);
        close_all(&mut driver, &child);
    }

    fn a_missing_program_fails_to_spawn(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let live = driver.live_sockets();
        let error = driver
            .spawn(&ProcessCommand::new("/nonexistent/ringwork-no-such-program"))
            .expect_err("no such program");
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{error}");
        assert_eq!(driver.live_sockets(), live, "nothing left in the table");
    }

    fn a_terminal_is_the_childs_controlling_tty(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let cmd = ProcessCommand::new("sh")
            .arg("-c")
            .arg("stty size; test -t 0 && echo tty; read line; echo got $line")
            .pty(WindowSize::new(33, 101));
        let child = start(&mut driver, &cmd);
        assert!(child.pty && child.stdin == child.stdout && child.stderr.is_none());
        let mut seen = Seen::default();
        run(&mut driver, &child, &mut seen, |s| s.out.ends_with(b"tty\r\n"));
        assert!(seen.out.starts_with(b"33 101\r\n"), "{:?}", String::from_utf8_lossy(&seen.out));
        assert!(driver.send(child.stdin.expect("pty"), Bytes::from_static(b"hello\n")));
        // EIO from the master side once the child side is closed: the end of stream.
        run(&mut driver, &child, &mut seen, |s| s.out_eof && s.exit.is_some());
        let text = String::from_utf8_lossy(&seen.out);
        assert!(text.contains("got hello"), "{text:?}");
        assert_eq!(seen.exit, Some(ExitStatus::Exited(0)));
        close_all(&mut driver, &child);
    }

    fn terminal_modes_reach_the_childs_termios(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let cmd = ProcessCommand::new("stty")
            .arg("-a")
            .pty(WindowSize::new(24, 80))
            .pty_modes(vec![
                TerminalMode::Char(ControlChar::Intr, 0x14), // ^T
                TerminalMode::Char(ControlChar::Eof, 0xff),  // disabled
                TerminalMode::Flag(ModeFlag::Echo, false),
                TerminalMode::Flag(ModeFlag::Icrnl, false),
                TerminalMode::Flag(ModeFlag::Onlcr, false),
                TerminalMode::InputSpeed(9600),
                TerminalMode::OutputSpeed(9600),
                TerminalMode::OutputSpeed(12345), // no such speed: ignored
            ]);
        let child = start(&mut driver, &cmd);
        let mut seen = Seen::default();
        run(&mut driver, &child, &mut seen, |s| s.out_eof && s.exit.is_some());
        let text = String::from_utf8_lossy(&seen.out);
        let words: Vec<&str> = text.split(|c: char| c.is_whitespace() || c == ';').collect();
        assert!(text.contains("speed 9600 baud"), "{text}");
        assert!(text.contains("intr = ^T") && text.contains("eof = <undef>"), "{text}");
        for flag in ["-echo", "-icrnl", "-onlcr", "icanon", "isig"] {
            assert!(words.contains(&flag), "{flag}: {text}");
        }
        close_all(&mut driver, &child);
    }

    fn a_window_size_change_reaches_the_child(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let cmd = ProcessCommand::new("sh")
            .arg("-c")
            .arg("read line; stty size")
            .pty(WindowSize::new(10, 20));
        let child = start(&mut driver, &cmd);
        let pty = child.stdin.expect("pty");
        driver.set_window_size(pty, WindowSize::new(50, 132)).expect("resize");
        assert!(driver.send(pty, Bytes::from_static(b"go\n")));
        let mut seen = Seen::default();
        run(&mut driver, &child, &mut seen, |s| s.out_eof && s.exit.is_some());
        let text = String::from_utf8_lossy(&seen.out);
        assert!(text.contains("50 132"), "{text:?}");
        close_all(&mut driver, &child);
    }

    fn closing_the_watcher_early_kills_and_reaps(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let child = start(&mut driver, &ProcessCommand::new("sleep").arg("100"));
        close_all(&mut driver, &child);
        let mut out = Vec::new();
        let deadline = Instant::now() + LIMIT;
        // The reaper thread collects it: its /proc entry goes away.
        while !reaped(child.pid) {
            assert!(Instant::now() < deadline, "child {} left behind", child.pid);
            driver.turn(Some(Duration::from_millis(10)), &mut out).expect("turn");
            out.clear();
        }
    }
}
