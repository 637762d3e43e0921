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
use crate::process::{ChildStdio, ExitStatus, ProcessCommand, WindowSize};
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
