//! Child processes on Linux: spawning, exit descriptors, reaping, signals, terminals.
//!
//! Owns: [`spawn`] (std's `Command`, which forks and execs, with the child's ends of pipes
//! or a pseudo-terminal as its stdio), the exit descriptor each child is watched through
//! (a pidfd, or without one the read end of a pipe a waiter thread closes at the exit),
//! [`try_reap`] (`waitid` without blocking), signals ([`signal`]: `pidfd_send_signal`, or
//! `kill` while the child is unreaped), terminal sizes, and the reaper thread that collects
//! children nobody watches any more ([`abandon`]).
//! Contract:
//! - Every descriptor this process keeps is close-on-exec, so a child started meanwhile by
//!   another thread never holds a pipe of this one (a stdin that would never see its end).
//!   The ends this process keeps are non-blocking; the child's are blocking, as programs
//!   expect.
//! - After the fork the child runs only async-signal-safe code: std's own steps (dup2,
//!   chdir, setgid/setuid, signal mask and SIGPIPE reset, exec) and, for a terminal, our
//!   `setsid` and `ioctl(TIOCSCTTY)`.
//! - A child is reaped exactly once, by whoever holds its [`ChildGuard`](crate::process::ChildGuard)
//!   (the driver after its exit, or the reaper thread after a SIGKILL): signals by pid are
//!   sent only before that, while the pid cannot have been reused (an unreaped child keeps it).
//! - The process must not set SIGCHLD to SIG_IGN (the kernel would then reap children
//!   itself and their exit status would be lost).
//!
//! Safety model: the kernel reads and writes only memory passed for the duration of each
//! system call (`siginfo_t`, `winsize`, the path buffer of `ptsname_r`); the `pre_exec`
//! closure runs in the forked child and touches no memory of the parent's other threads.
#![allow(unsafe_code)] // System calls without std wrappers; each block has a SAFETY note.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::thread;

use crate::completion::Completion;
use crate::id::SocketId;
use crate::process::{
    ChildStdio, ControlChar, ExitStatus, ModeFlag, ProcessCommand, TerminalMode, WindowSize,
};
use crate::table::SocketState;

/// The descriptors of a child just started: what this process keeps.
#[derive(Debug)]
pub(crate) struct SpawnedFds {
    pub(crate) pid: u32,
    /// Readable once the child exited (a pidfd, or a waiter thread's pipe).
    pub(crate) exit: OwnedFd,
    /// `exit` is a pidfd.
    pub(crate) pidfd: bool,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    /// The master side of the child's terminal (its stdin, stdout and stderr).
    pub(crate) pty: Option<OwnedFd>,
}

/// Starts `command`. With `use_pidfd`, the exit is watched through a pidfd when the
/// kernel has `pidfd_open` (5.3); otherwise (or when refused) through a waiter thread.
///
/// # Errors
/// Creating pipes or the terminal, the fork, the exec (a missing program: `NotFound`) or
/// watching the child failed; a child that started is then killed and reaped.
pub(crate) fn spawn(command: &ProcessCommand, use_pidfd: bool) -> io::Result<SpawnedFds> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args);
    if command.env_clear {
        cmd.env_clear();
    }
    for (key, value) in &command.env {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    if let Some(dir) = &command.cwd {
        cmd.current_dir(dir);
    }
    if let Some(gid) = command.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = command.uid {
        cmd.uid(uid);
    }
    let (mut stdin, mut stdout, mut stderr, mut pty) = (None, None, None, None);
    if let Some(size) = command.pty {
        let (master, slave) = open_pty(size)?;
        set_terminal_modes(slave.as_raw_fd(), &command.pty_modes)?;
        cmd.stdin(Stdio::from(slave.try_clone()?));
        cmd.stdout(Stdio::from(slave.try_clone()?));
        cmd.stderr(Stdio::from(slave));
        // SAFETY: the closure runs in the child between fork and exec and makes only
        // async-signal-safe system calls (setsid, ioctl); it allocates nothing and takes
        // no lock. std has already made the terminal the child's fd 0 when it runs.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        set_nonblocking(&master)?;
        pty = Some(master);
    } else {
        cmd.stdin(stdio(command.stdin, Direction::ToChild, &mut stdin)?);
        cmd.stdout(stdio(command.stdout, Direction::FromChild, &mut stdout)?);
        cmd.stderr(stdio(command.stderr, Direction::FromChild, &mut stderr)?);
    }
    let child = cmd.spawn()?;
    // The child's ends of the pipes (and the terminal's slave side) live in `cmd`: close
    // them here, so the child's exit is seen as the end of its streams.
    drop(cmd);
    let pid = child.id();
    // `Child` neither waits nor kills on drop: the exit descriptor takes over.
    drop(child);
    let watched = if use_pidfd {
        pidfd_open(pid)
    } else {
        Err(no_pidfd())
    };
    let (exit, pidfd) = match watched {
        Ok(fd) => (fd, true),
        // No pidfd_open (before 5.3) or refused by a seccomp filter: a waiter thread.
        Err(e) if is_missing_syscall(&e) => match waiter(pid) {
            Ok(fd) => (fd, false),
            Err(e) => {
                abandon(pid);
                return Err(e);
            }
        },
        Err(e) => {
            abandon(pid);
            return Err(e);
        }
    };
    Ok(SpawnedFds {
        pid,
        exit,
        pidfd,
        stdin,
        stdout,
        stderr,
        pty,
    })
}

/// Which way a pipe carries bytes.
#[derive(Clone, Copy)]
enum Direction {
    ToChild,
    FromChild,
}

/// The child's side of one standard stream; for a pipe, this process's end goes to `ours`.
fn stdio(
    choice: ChildStdio,
    direction: Direction,
    ours: &mut Option<OwnedFd>,
) -> io::Result<Stdio> {
    Ok(match choice {
        ChildStdio::Pipe => {
            let (read, write) = pipe()?;
            let (theirs, mine) = match direction {
                Direction::ToChild => (read, write),
                Direction::FromChild => (write, read),
            };
            set_nonblocking(&mine)?;
            *ours = Some(mine);
            Stdio::from(theirs)
        }
        ChildStdio::Null => Stdio::null(),
        ChildStdio::Inherit => Stdio::inherit(),
    })
}

/// A pipe, both ends close-on-exec and blocking: `(read, write)`.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return ints only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new pseudo-terminal of `size`: `(master, slave)`, both close-on-exec and not this
/// process's controlling terminal.
fn open_pty(size: WindowSize) -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: plain system call; the result is checked before use.
    let raw = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let master = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: plain calls on a descriptor we own.
    if unsafe { libc::grantpt(raw) } < 0 || unsafe { libc::unlockpt(raw) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is writable for its whole length, which is what we pass.
    let rc = unsafe { libc::ptsname_r(raw, name.as_mut_ptr(), name.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    // SAFETY: `path` is a valid C string for the duration of the call.
    let slave = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    set_window_size(master.as_raw_fd(), size)?;
    Ok((master, slave))
}

/// Applies `modes` to the terminal `fd` (tcgetattr, change, tcsetattr).
///
/// # Errors
/// The OS error of `tcgetattr` or `tcsetattr`.
pub(crate) fn set_terminal_modes(fd: RawFd, modes: &[TerminalMode]) -> io::Result<()> {
    if modes.is_empty() {
        return Ok(());
    }
    // SAFETY: termios is plain data; all-zero is a valid value that tcgetattr overwrites.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable termios for the call.
    if unsafe { libc::tcgetattr(fd, &raw mut t) } < 0 {
        return Err(io::Error::last_os_error());
    }
    for mode in modes {
        match *mode {
            TerminalMode::Char(c, value) => {
                // 0xff is "disabled"; Linux's _POSIX_VDISABLE is 0.
                t.c_cc[control_char_index(c)] = if value == 0xff { 0 } else { value };
            }
            TerminalMode::Flag(flag, on) => {
                let (field, bits) = match flag_bits(flag) {
                    (FlagField::Input, b) => (&mut t.c_iflag, b),
                    (FlagField::Output, b) => (&mut t.c_oflag, b),
                    (FlagField::Control, b) => (&mut t.c_cflag, b),
                    (FlagField::Local, b) => (&mut t.c_lflag, b),
                };
                if flag == ModeFlag::Cs7 || flag == ModeFlag::Cs8 {
                    // A character size replaces the size field, it is not one bit.
                    if on {
                        *field = (*field & !libc::CSIZE) | bits;
                    }
                } else if on {
                    *field |= bits;
                } else {
                    *field &= !bits;
                }
            }
            TerminalMode::InputSpeed(bps) | TerminalMode::OutputSpeed(bps) => {
                let Some(speed) = speed_constant(bps) else {
                    continue;
                };
                let input = matches!(mode, TerminalMode::InputSpeed(_));
                // SAFETY: `t` is a valid termios; cfset*speed only writes into it.
                let rc = unsafe {
                    if input {
                        libc::cfsetispeed(&raw mut t, speed)
                    } else {
                        libc::cfsetospeed(&raw mut t, speed)
                    }
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
    }
    // SAFETY: `t` is a valid termios that lives for the call.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw const t) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn control_char_index(c: ControlChar) -> usize {
    match c {
        ControlChar::Intr => libc::VINTR,
        ControlChar::Quit => libc::VQUIT,
        ControlChar::Erase => libc::VERASE,
        ControlChar::Kill => libc::VKILL,
        ControlChar::Eof => libc::VEOF,
        ControlChar::Eol => libc::VEOL,
        ControlChar::Eol2 => libc::VEOL2,
        ControlChar::Start => libc::VSTART,
        ControlChar::Stop => libc::VSTOP,
        ControlChar::Susp => libc::VSUSP,
        ControlChar::Reprint => libc::VREPRINT,
        ControlChar::WErase => libc::VWERASE,
        ControlChar::LNext => libc::VLNEXT,
        ControlChar::Discard => libc::VDISCARD,
    }
}

enum FlagField {
    Input,
    Output,
    Control,
    Local,
}

fn flag_bits(flag: ModeFlag) -> (FlagField, libc::tcflag_t) {
    use FlagField::{Control, Input, Local, Output};
    match flag {
        ModeFlag::Ignpar => (Input, libc::IGNPAR),
        ModeFlag::Parmrk => (Input, libc::PARMRK),
        ModeFlag::Inpck => (Input, libc::INPCK),
        ModeFlag::Istrip => (Input, libc::ISTRIP),
        ModeFlag::Inlcr => (Input, libc::INLCR),
        ModeFlag::Igncr => (Input, libc::IGNCR),
        ModeFlag::Icrnl => (Input, libc::ICRNL),
        ModeFlag::Ixon => (Input, libc::IXON),
        ModeFlag::Ixany => (Input, libc::IXANY),
        ModeFlag::Ixoff => (Input, libc::IXOFF),
        ModeFlag::Imaxbel => (Input, libc::IMAXBEL),
        ModeFlag::Iutf8 => (Input, libc::IUTF8),
        ModeFlag::Isig => (Local, libc::ISIG),
        ModeFlag::Icanon => (Local, libc::ICANON),
        ModeFlag::Echo => (Local, libc::ECHO),
        ModeFlag::Echoe => (Local, libc::ECHOE),
        ModeFlag::Echok => (Local, libc::ECHOK),
        ModeFlag::Echonl => (Local, libc::ECHONL),
        ModeFlag::Noflsh => (Local, libc::NOFLSH),
        ModeFlag::Tostop => (Local, libc::TOSTOP),
        ModeFlag::Iexten => (Local, libc::IEXTEN),
        ModeFlag::Echoctl => (Local, libc::ECHOCTL),
        ModeFlag::Echoke => (Local, libc::ECHOKE),
        ModeFlag::Pendin => (Local, libc::PENDIN),
        ModeFlag::Opost => (Output, libc::OPOST),
        ModeFlag::Onlcr => (Output, libc::ONLCR),
        ModeFlag::Ocrnl => (Output, libc::OCRNL),
        ModeFlag::Onocr => (Output, libc::ONOCR),
        ModeFlag::Onlret => (Output, libc::ONLRET),
        ModeFlag::Cs7 => (Control, libc::CS7),
        ModeFlag::Cs8 => (Control, libc::CS8),
        ModeFlag::Parenb => (Control, libc::PARENB),
        ModeFlag::Parodd => (Control, libc::PARODD),
    }
}

/// The `B*` constant of a speed in bits per second.
fn speed_constant(bps: u32) -> Option<libc::speed_t> {
    Some(match bps {
        0 => libc::B0,
        300 => libc::B300,
        1200 => libc::B1200,
        2400 => libc::B2400,
        4800 => libc::B4800,
        9600 => libc::B9600,
        19200 => libc::B19200,
        38400 => libc::B38400,
        57600 => libc::B57600,
        115_200 => libc::B115200,
        230_400 => libc::B230400,
        460_800 => libc::B460800,
        921_600 => libc::B921600,
        _ => return None,
    })
}

/// Sets the size of the terminal whose master (or slave) side is `fd`; its foreground
/// process group gets SIGWINCH.
///
/// # Errors
/// The OS error of `ioctl(TIOCSWINSZ)` (ENOTTY when `fd` is no terminal).
pub(crate) fn set_window_size(fd: RawFd, size: WindowSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: size.pixel_width,
        ws_ypixel: size.pixel_height,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize`, which lives for the call.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ as _, &raw const ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // pidfds are close-on-exec from the start. SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn no_pidfd() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSYS)
}

/// Whether `pidfd_open` is missing (ENOSYS) or refused by a seccomp filter (EPERM).
fn is_missing_syscall(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}

/// Without pidfd: a thread waits for the child's exit without reaping it (WNOWAIT) and
/// then closes the write end of a pipe; the read end, returned, turns readable then.
fn waiter(pid: u32) -> io::Result<OwnedFd> {
    let (read, write) = pipe()?;
    set_nonblocking(&read)?;
    thread::Builder::new()
        .name(format!("ringwork-wait-{pid}"))
        .spawn(move || {
            wait_exit(pid, libc::WEXITED | libc::WNOWAIT);
            drop(write);
        })?;
    Ok(read)
}

/// Blocks until child `pid` exits (with `WNOWAIT`: leaves it to be reaped). Returns at once
/// if it is not (or no longer) a child of ours.
fn wait_exit(pid: u32, options: libc::c_int) {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for the kernel to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t for the call to fill.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &raw mut info, options) };
        if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Reaps child `pid` if it exited: its status, or `None` while it runs.
///
/// # Errors
/// The OS error of `waitid` (ECHILD: it is not a child of ours, or someone else reaped it).
pub(crate) fn try_reap(pid: u32) -> io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value; `si_pid` stays 0 unless a child
        // is reported, which is how WNOHANG says "still running".
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t for the call to fill.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &raw mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(error);
        }
        // SAFETY: waitid filled `info` for SIGCHLD (or left it zeroed): the pid and status
        // fields are the ones it sets.
        let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
        if child == 0 {
            return Ok(None);
        }
        return Ok(Some(match info.si_code {
            libc::CLD_EXITED => ExitStatus::Exited(status),
            libc::CLD_DUMPED => ExitStatus::Signaled {
                signal: status,
                core_dumped: true,
            },
            _ => ExitStatus::Signaled {
                signal: status,
                core_dumped: false,
            },
        }));
    }
}

/// Reaps the child watched by exit watcher `id` after its descriptor turned readable: the
/// [`Completion::Exited`] to deliver, or `None` while it still runs (the watcher then waits
/// for the next readiness). A status someone else collected first (SIGCHLD set to
/// SIG_IGN, a `waitpid(-1)` elsewhere in the program) is reported as
/// [`ExitStatus::Unknown`].
pub(crate) fn reap_completion(id: SocketId, state: &mut SocketState) -> Option<Completion> {
    let guard = state.child.as_mut()?;
    if guard.reaped {
        return None;
    }
    let status = match try_reap(guard.pid) {
        Ok(None) => return None,
        Ok(Some(status)) => status,
        Err(error) => {
            tracing::warn!(pid = guard.pid, %error, "a child's exit status is lost");
            ExitStatus::Unknown
        }
    };
    guard.reaped = true;
    state.end_recv();
    Some(Completion::Exited { child: id, status })
}

/// Sends `sig` to the child watched through `fd` (a pidfd) or, without one, to `pid` (the
/// caller checked that the child is not reaped yet, so the pid is still its).
///
/// # Errors
/// The OS error (ESRCH: it exited; EINVAL: no such signal).
pub(crate) fn signal(fd: RawFd, pidfd: bool, pid: u32, sig: i32) -> io::Result<()> {
    let rc = if pidfd {
        // SAFETY: pidfd_send_signal(fd, sig, NULL, 0): no siginfo is passed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        }
    } else {
        // SAFETY: plain system call on a pid that is still our unreaped child's.
        libc::c_long::from(unsafe { libc::kill(pid as libc::pid_t, sig) })
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Kills child `pid`, which nobody will watch any more, and has the reaper thread collect
/// it, so it is not left a zombie. Only for a child not reaped yet.
pub(crate) fn abandon(pid: u32) {
    // SAFETY: plain system call; `pid` is our unreaped child, so it names that child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    static REAPER: OnceLock<Option<Sender<u32>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<u32>();
        let started = thread::Builder::new()
            .name("ringwork-reaper".into())
            .spawn(move || {
                // Children are reaped in the order they were abandoned; each was killed, so
                // each wait ends soon (unless the child is stuck in the kernel).
                for pid in rx {
                    wait_exit(pid, libc::WEXITED);
                }
            });
        match started {
            Ok(_) => Some(tx),
            Err(error) => {
                tracing::error!(%error, "cannot start the reaper thread: killed children stay zombies");
                None
            }
        }
    });
    if let Some(reaper) = reaper
        && reaper.send(pid).is_err()
    {
        tracing::error!(
            pid,
            "the reaper thread is gone: a killed child stays a zombie"
        );
    }
}
