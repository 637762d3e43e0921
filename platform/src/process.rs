//! Child processes: what to run ([`ProcessCommand`]), how its standard streams are set up
//! ([`ChildStdio`], a pseudo-terminal with a [`WindowSize`]), how it ended ([`ExitStatus`]),
//! and what [`Driver::spawn`](crate::Driver::spawn) hands back ([`Spawned`]).
//!
//! Owns: the backend-neutral description of a child and [`ChildGuard`], the table entry's
//! promise that no child is left a zombie: a child whose watcher is dropped before its exit
//! was reaped is killed (SIGKILL) and handed to a reaper thread (`sys/process.rs`).
//! Does not: make system calls (see `sys/process.rs`, Linux only; elsewhere spawning
//! answers `Unsupported`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::id::SocketId;

/// What a child's standard stream is connected to.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub enum ChildStdio {
    /// A pipe to this process, driven by the driver like a stream socket (the default).
    #[default]
    Pipe,
    /// `/dev/null`.
    Null,
    /// This process's own stream.
    Inherit,
}

/// A terminal's size, as `TIOCSWINSZ` sets it.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct WindowSize {
    /// Rows (lines).
    pub rows: u16,
    /// Columns (characters per line).
    pub cols: u16,
    /// Width in pixels (0: unknown).
    pub pixel_width: u16,
    /// Height in pixels (0: unknown).
    pub pixel_height: u16,
}

impl WindowSize {
    /// `rows` x `cols` characters, pixel size unknown.
    #[must_use]
    pub fn new(rows: u16, cols: u16) -> Self {
        Self {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        }
    }
}

/// A terminal control character (`termios` `c_cc` slot).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ControlChar {
    /// `VINTR` (^C).
    Intr,
    /// `VQUIT` (^\\).
    Quit,
    /// `VERASE`.
    Erase,
    /// `VKILL` (^U).
    Kill,
    /// `VEOF` (^D).
    Eof,
    /// `VEOL`.
    Eol,
    /// `VEOL2`.
    Eol2,
    /// `VSTART` (^Q).
    Start,
    /// `VSTOP` (^S).
    Stop,
    /// `VSUSP` (^Z).
    Susp,
    /// `VREPRINT` (^R).
    Reprint,
    /// `VWERASE` (^W).
    WErase,
    /// `VLNEXT` (^V).
    LNext,
    /// `VDISCARD` (^O).
    Discard,
}

/// A terminal mode bit (`termios` input, local, output or control flags).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)] // each is the termios flag of the same name
pub enum ModeFlag {
    Ignpar,
    Parmrk,
    Inpck,
    Istrip,
    Inlcr,
    Igncr,
    Icrnl,
    Ixon,
    Ixany,
    Ixoff,
    Imaxbel,
    Iutf8,
    Isig,
    Icanon,
    Echo,
    Echoe,
    Echok,
    Echonl,
    Noflsh,
    Tostop,
    Iexten,
    Echoctl,
    Echoke,
    Pendin,
    Opost,
    Onlcr,
    Ocrnl,
    Onocr,
    Onlret,
    Cs7,
    Cs8,
    Parenb,
    Parodd,
}

/// One setting applied to a pseudo-terminal before the child runs (SSH's `pty-req`
/// terminal modes, RFC 4254 §8, decoded by the protocol).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum TerminalMode {
    /// A control character (`0xff`: disabled, `_POSIX_VDISABLE`).
    Char(ControlChar, u8),
    /// A mode bit on or off.
    Flag(ModeFlag, bool),
    /// The input speed in bits per second (a speed the OS does not name is ignored).
    InputSpeed(u32),
    /// The output speed in bits per second.
    OutputSpeed(u32),
}

/// A program to run as a child process, with its arguments, environment, working
/// directory, user and group, and standard streams (pipes by default, or one
/// pseudo-terminal for all three).
///
/// # Examples
/// ```
/// use ringwork_platform::{ProcessCommand, WindowSize};
///
/// let cmd = ProcessCommand::new("sh")
///     .arg("-c")
///     .arg("stty size")
///     .env("LANG", "C")
///     .pty(WindowSize::new(24, 80));
/// assert_eq!(cmd.program(), "sh");
/// ```
#[derive(Clone, Debug)]
pub struct ProcessCommand {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env_clear: bool,
    /// In order; `None` removes the variable.
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) pty: Option<WindowSize>,
    pub(crate) pty_modes: Vec<TerminalMode>,
    pub(crate) stdin: ChildStdio,
    pub(crate) stdout: ChildStdio,
    pub(crate) stderr: ChildStdio,
}

impl ProcessCommand {
    /// Runs `program` (looked up in `PATH` unless it contains a `/`), with no arguments, this
    /// process's environment and working directory, and pipes for its three streams.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            uid: None,
            gid: None,
            pty: None,
            pty_modes: Vec::new(),
            stdin: ChildStdio::Pipe,
            stdout: ChildStdio::Pipe,
            stderr: ChildStdio::Pipe,
        }
    }

    /// Adds one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable for the child.
    #[must_use]
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment (plus what [`ProcessCommand::env`] adds,
    /// before or after this call).
    #[must_use]
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// The child's working directory.
    #[must_use]
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The child's user id (`setuid` before exec; needs the privilege to change it).
    #[must_use]
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// The child's group id (`setgid` before exec; needs the privilege to change it).
    #[must_use]
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }

    /// Runs the child on a new pseudo-terminal of `size`: its stdin, stdout and stderr are
    /// the terminal, which is its controlling terminal (it leads a new session). This
    /// process gets one stream, the terminal's master side, for both directions (stderr
    /// output arrives on it too). The stdio settings are then ignored.
    #[must_use]
    pub fn pty(mut self, size: WindowSize) -> Self {
        self.pty = Some(size);
        self
    }

    /// Settings applied, in order, to the terminal of [`ProcessCommand::pty`] before the
    /// child runs (on the kernel's defaults; ignored without a terminal).
    #[must_use]
    pub fn pty_modes(mut self, modes: Vec<TerminalMode>) -> Self {
        self.pty_modes = modes;
        self
    }

    /// What the child's stdin is connected to (default: a pipe).
    #[must_use]
    pub fn stdin(mut self, stdio: ChildStdio) -> Self {
        self.stdin = stdio;
        self
    }

    /// What the child's stdout is connected to (default: a pipe).
    #[must_use]
    pub fn stdout(mut self, stdio: ChildStdio) -> Self {
        self.stdout = stdio;
        self
    }

    /// What the child's stderr is connected to (default: a pipe).
    #[must_use]
    pub fn stderr(mut self, stdio: ChildStdio) -> Self {
        self.stderr = stdio;
        self
    }

    /// The program.
    #[must_use]
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments (without the program).
    #[must_use]
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The terminal size, when the child runs on a pseudo-terminal.
    #[must_use]
    pub fn get_pty(&self) -> Option<WindowSize> {
        self.pty
    }
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this code (`exit(code)`, 0..=255).
    Exited(i32),
    /// A signal ended it.
    Signaled {
        /// The signal number (`SIGTERM` is 15 on Linux).
        signal: i32,
        /// It dumped core.
        core_dumped: bool,
    },
    /// It ended, but its status was collected by someone else first: SIGCHLD set to
    /// SIG_IGN, or a `waitpid(-1)` elsewhere in the program.
    Unknown,
}

impl ExitStatus {
    /// Whether it exited with code 0.
    #[must_use]
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The exit code, if it exited.
    #[must_use]
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled { .. } | ExitStatus::Unknown => None,
        }
    }

    /// The signal that ended it, if one did.
    #[must_use]
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(_) | ExitStatus::Unknown => None,
            ExitStatus::Signaled { signal, .. } => Some(signal),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled {
                signal,
                core_dumped: false,
            } => write!(f, "killed by signal {signal}"),
            ExitStatus::Signaled {
                signal,
                core_dumped: true,
            } => write!(f, "killed by signal {signal} (core dumped)"),
            ExitStatus::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// A child started by [`Driver::spawn`](crate::Driver::spawn): its watcher and the streams
/// this process holds, each an entry of the driver's table.
///
/// - `child` ([`SocketKind::Child`](crate::SocketKind::Child)) watches for the exit: a
///   [`Completion::Exited`](crate::Completion::Exited) arrives once the child exited and
///   was reaped; close it afterwards. Closing it earlier kills the child (SIGKILL) and
///   reaps it on a background thread: no zombie is left either way.
/// - The streams are [`SocketKind::Stream`](crate::SocketKind::Stream)s over pipes (or the
///   terminal's master side): [`Driver::recv`](crate::Driver::recv),
///   [`Driver::send`](crate::Driver::send), [`Driver::stop_recv`](crate::Driver::stop_recv)
///   and [`Driver::close`](crate::Driver::close) work as on sockets;
///   [`Driver::shutdown_write`](crate::Driver::shutdown_write) does not (close the stdin
///   stream instead). A terminal answers EIO once the child side is gone: it is reported
///   as the end of stream.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct Spawned {
    /// The exit watcher.
    pub child: SocketId,
    /// The child's process id.
    pub pid: u32,
    /// The write end of the child's stdin (on a terminal: the master side).
    pub stdin: Option<SocketId>,
    /// The read end of the child's stdout (on a terminal: the master side, as `stdin`).
    pub stdout: Option<SocketId>,
    /// The read end of the child's stderr (`None` on a terminal: stderr goes to it).
    pub stderr: Option<SocketId>,
    /// The streams are a pseudo-terminal's master side.
    pub pty: bool,
}

/// What a non-socket stream in the driver's table is (made only where processes are
/// supported).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[cfg_attr(not(processes), allow(dead_code))]
pub(crate) enum FileKind {
    /// One end of a pipe.
    Pipe,
    /// The master side of a pseudo-terminal (EIO on read means the end of stream).
    Pty,
}

/// The child behind a [`SocketKind::Child`](crate::SocketKind::Child) entry. Dropping it
/// before the child was reaped kills the child and reaps it on a background thread.
#[derive(Debug)]
#[cfg_attr(not(processes), allow(dead_code))]
pub(crate) struct ChildGuard {
    pub(crate) pid: u32,
    /// The watched descriptor is a pidfd (signals go through `pidfd_send_signal`), not the
    /// read end of a waiter thread's pipe.
    pub(crate) pidfd: bool,
    /// The exit status was collected: the pid may belong to another process by now.
    pub(crate) reaped: bool,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            #[cfg(processes)]
            crate::sys::process::abandon(self.pid);
        }
    }
}
