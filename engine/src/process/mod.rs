//! Child processes (Twisted's `spawnProcess` and `ProcessProtocol`).
//!
//! Owns: [`ProcessProtocol`] (what a user implements for one child), [`ProcessContext`]
//! (its transport: stdin, signals, reading control, the terminal's size), [`ProcessId`],
//! the per-core table of running children and the order of their callbacks.
//! Contract:
//! - Each of the child's streams this process holds (stdin, stdout, stderr; or one
//!   pseudo-terminal) is an ordinary connection of the core, run by an internal protocol
//!   (`pipe.rs`) that forwards to the [`ProcessProtocol`]: writes, watermarks,
//!   `pause_writing` / `in_drained`, pause/resume reading with held input and the write
//!   limit all come from the connection machinery, under both backends (the driver reads
//!   and writes pipes with read/write instead of recv/send).
//! - The exit arrives from the driver's watcher (pidfd) as `process_exited`, once; the
//!   child is reaped then. `process_ended` follows once the exit was seen and every stream
//!   is closed; then the child leaves the table. Callbacks never nest: one that follows an
//!   operation is queued as a notice, like a connection's.
//! - No zombie: a child whose watcher goes away unreaped (a reactor dropped, a core that
//!   stopped) is killed and reaped by the driver (see `ringwork_platform::Driver::spawn`).
//!   A graceful shutdown tells each child's protocol (`shutdown_started`, by default a
//!   SIGTERM), waits for the children within the grace period like for connections, then
//!   kills what is left with SIGKILL and waits for those exits.
//!
//! Does not: make system calls (the platform driver does), or run on the in-memory
//! transport of `testing` (spawning there fails with `Unsupported`).

mod pipe;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use bytes::Bytes;
use ringwork_platform::{ExitStatus, ProcessCommand, SocketId, WindowSize};

use crate::context::Context;
use crate::error::EngineError;
use crate::io::Io;
use crate::logging::escape;
use crate::protocol::{ConnId, LostReason};
use crate::state::{Notice, Phase, State};

pub(crate) use self::pipe::Role;

/// SIGKILL and SIGTERM: the same numbers on every Unix (POSIX).
pub(crate) const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
/// The terminal's default end-of-file character (VEOF, Ctrl-D).
const VEOF: u8 = 0x04;

/// A child process of one core's reactor; valid on that core only. Operations on a child
/// that is gone are ignored (or fail with an error saying so).
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ProcessId(pub(crate) SocketId);

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {}#{}", self.0.slot(), self.0.generation())
    }
}

/// What a child process does to this program: the callbacks of one child's life
/// (Twisted's `ProcessProtocol`).
///
/// Order: `connection_made` once; then, in the order they happen, `out_received` /
/// `err_received` (with `pause_writing` / `in_drained` pairs for stdin), the
/// `*_connection_lost` of each stream this program held as it closes, and
/// `process_exited` once the child exited; `process_ended` comes last, after the exit and
/// after every stream closed. Output the child wrote before it exited can arrive after
/// `process_exited`. Every callback gets a [`ProcessContext`]. Callbacks run on the core's
/// thread and must not block.
///
/// A protocol whose callback panics is dropped without further callbacks; its child is
/// killed (SIGKILL) and its streams closed.
pub trait ProcessProtocol: 'static {
    /// The child started; its stdin can be written now.
    fn connection_made(&mut self, ctx: &mut ProcessContext<'_>) {
        let _ = ctx;
    }

    /// The child wrote `data` to its stdout (on a terminal: anything it wrote to it). A
    /// view of the receive buffer, valid only during this call.
    fn out_received(&mut self, ctx: &mut ProcessContext<'_>, data: &[u8]);

    /// The child wrote `data` to its stderr.
    fn err_received(&mut self, ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let _ = (ctx, data);
    }

    /// The stdin buffer passed its high watermark: stop writing until
    /// [`ProcessProtocol::in_drained`] ([`ProcessContext::is_writable`] says the same).
    fn pause_writing(&mut self, ctx: &mut ProcessContext<'_>) {
        let _ = ctx;
    }

    /// After [`ProcessProtocol::pause_writing`], the stdin buffer fell to its low watermark.
    fn in_drained(&mut self, ctx: &mut ProcessContext<'_>) {
        let _ = ctx;
    }

    /// The child's stdin is closed: by [`ProcessContext::close_stdin`] after every byte was
    /// taken (`reason` [`LostReason::Done`]), because the child closed its end (a write
    /// failed: [`LostReason::Reset`]), or at the child's exit (with bytes still buffered:
    /// [`LostReason::Aborted`]). Not called for a terminal (one stream: see
    /// [`ProcessProtocol::out_connection_lost`]).
    fn in_connection_lost(&mut self, ctx: &mut ProcessContext<'_>, reason: LostReason) {
        let _ = (ctx, reason);
    }

    /// The child's stdout ended (on a terminal: the terminal, both directions).
    fn out_connection_lost(&mut self, ctx: &mut ProcessContext<'_>, reason: LostReason) {
        let _ = (ctx, reason);
    }

    /// The child's stderr ended.
    fn err_connection_lost(&mut self, ctx: &mut ProcessContext<'_>, reason: LostReason) {
        let _ = (ctx, reason);
    }

    /// The child exited (and was reaped); its output may still be arriving.
    fn process_exited(&mut self, ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        let _ = (ctx, status);
    }

    /// The child exited and every stream is closed: the last callback.
    fn process_ended(&mut self, ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        let _ = (ctx, status);
    }

    /// The reactor began a graceful shutdown. The default sends the child SIGTERM;
    /// override to let it finish within the grace period (after which it gets SIGKILL).
    fn shutdown_started(&mut self, ctx: &mut ProcessContext<'_>) {
        // A child that already exited cannot be signalled; nothing to do then.
        let _ = ctx.signal(SIGTERM);
    }
}

/// The transport of one child process, given to every [`ProcessProtocol`] callback (and
/// by [`Context::process`] and [`Reactor::with_process`](crate::Reactor::with_process)):
/// write to its stdin, close it, signal the child, pause its output, size its terminal,
/// and reach the rest of the core.
pub struct ProcessContext<'a> {
    pub(crate) state: &'a mut State,
    pub(crate) io: &'a mut dyn Io,
    pub(crate) process: ProcessId,
}

impl<'a> ProcessContext<'a> {
    pub(crate) fn new(state: &'a mut State, io: &'a mut dyn Io, process: ProcessId) -> Self {
        Self { state, io, process }
    }

    fn record(&self) -> Option<&Process> {
        self.state.processes.get(self.process)
    }

    /// This child's id.
    #[must_use]
    pub fn id(&self) -> ProcessId {
        self.process
    }

    /// The child's process id (`None` once it left the table, after `process_ended`).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.record().map(|p| p.pid)
    }

    /// How the child ended, once it exited.
    #[must_use]
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.record().and_then(|p| p.exit)
    }

    /// The time of the current loop turn.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.state.now
    }

    /// A handle to this core's reactor for futures and for later.
    #[must_use]
    pub fn handle(&self) -> crate::local::LocalHandle {
        self.state.local.clone()
    }

    /// The runtime's cores (`None` in single-threaded mode).
    #[must_use]
    pub fn cores(&self) -> Option<&crate::runtime::Cores> {
        self.state.cores.as_ref()
    }

    /// A [`Context`] for connection `id` of this core: write to it, pause it, close it (a
    /// child's output relayed to a network peer).
    pub fn connection(&mut self, id: ConnId) -> Context<'_> {
        Context::new(self.state, self.io, id)
    }

    /// The stdin stream (the terminal on a pseudo-terminal), while it is open.
    fn stdin(&self) -> Option<ConnId> {
        self.record().and_then(|p| p.stdin)
    }

    /// Writes a copy of `data` to the child's stdin (buffered; sent at the end of the turn).
    /// Ignored once stdin is closed (or was not a pipe).
    pub fn write_stdin(&mut self, data: &[u8]) {
        if let Some(stdin) = self.stdin() {
            self.state.write(self.io, stdin, data);
        }
    }

    /// Writes `data` to the child's stdin without copying it.
    pub fn write_stdin_bytes(&mut self, data: Bytes) {
        if let Some(stdin) = self.stdin() {
            self.state.write_bytes(self.io, stdin, data);
        }
    }

    /// Whether the stdin buffer is below its high watermark (`false` once stdin is closed).
    #[must_use]
    pub fn is_writable(&self) -> bool {
        self.stdin().is_some_and(|id| {
            self.state
                .conns
                .get(id)
                .is_some_and(|c| c.phase != Phase::Lost && !c.write_paused)
        })
    }

    /// Bytes written to stdin and not yet taken by the child's pipe.
    #[must_use]
    pub fn stdin_buffered(&self) -> usize {
        self.stdin()
            .and_then(|id| self.state.conns.get(id))
            .map_or(0, crate::state::Conn::buffered)
    }

    /// Closes the child's stdin once every byte written is taken: the child reads the end
    /// of its input. On a terminal, which cannot be half-closed, it writes the terminal's
    /// end-of-file character (Ctrl-D) instead: the child's read returns the end of input
    /// when it comes at the start of a line (canonical mode, the default).
    pub fn close_stdin(&mut self) {
        let Some(process) = self.record() else {
            return;
        };
        let (stdin, pty) = (process.stdin, process.pty);
        match (stdin, pty) {
            (Some(id), true) => self.state.write(self.io, id, &[VEOF]),
            (Some(id), false) => self.state.close(self.io, id),
            (None, _) => {}
        }
    }

    /// Closes every stream of the child (Twisted's `loseConnection`): stdin once its bytes
    /// are taken, stdout and stderr at once (the child gets SIGPIPE or EPIPE if it writes
    /// more). The child is not signalled: `process_ended` follows its exit.
    pub fn close(&mut self) {
        let Some(process) = self.record() else {
            return;
        };
        for id in [process.stdin, process.stdout, process.stderr]
            .into_iter()
            .flatten()
        {
            self.state.close(self.io, id);
        }
    }

    /// Stops reading the child's stdout and stderr: the pipes fill and the child blocks in
    /// its writes (backpressure). Output already in flight is held and delivered after
    /// [`ProcessContext::resume_reading`].
    pub fn pause_reading(&mut self) {
        for id in self.readers() {
            self.state.pause_reading(self.io, id);
        }
    }

    /// Resumes reading stdout and stderr after [`ProcessContext::pause_reading`].
    pub fn resume_reading(&mut self) {
        for id in self.readers() {
            self.state.resume_reading(self.io, id);
        }
    }

    fn readers(&self) -> Vec<ConnId> {
        self.record()
            .map(|p| [p.stdout, p.stderr].into_iter().flatten().collect())
            .unwrap_or_default()
    }

    /// Sends signal `signal` to the child (`ringwork::signal::SIGTERM`, ...), through its
    /// pidfd: never to another process, even one that reuses its pid later.
    ///
    /// # Errors
    /// [`EngineError::Op`]: the child exited already (kind `NotFound`) or left the table;
    /// an invalid signal (EINVAL).
    pub fn signal(&mut self, signal: i32) -> Result<(), EngineError> {
        if self.record().is_none_or(|p| p.exit.is_some()) {
            return Err(EngineError::Op(ringwork_platform::OpError {
                op: ringwork_platform::OpKind::Signal,
                socket: Some(self.process.0),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "the process has exited"),
            }));
        }
        Ok(self.io.signal(self.process.0, signal)?)
    }

    /// Kills the child (SIGKILL).
    ///
    /// # Errors
    /// As [`ProcessContext::signal`].
    pub fn kill(&mut self) -> Result<(), EngineError> {
        self.signal(SIGKILL)
    }

    /// Sets the size of the child's terminal (its foreground process group gets SIGWINCH).
    ///
    /// # Errors
    /// The child does not run on a pseudo-terminal, or the terminal is closed.
    pub fn set_window_size(&mut self, size: WindowSize) -> Result<(), EngineError> {
        let terminal = self.record().filter(|p| p.pty).and_then(|p| p.stdin);
        let Some(id) = terminal else {
            return Err(EngineError::Config {
                what: format!("{} has no open terminal", self.process),
            });
        };
        Ok(self.io.set_window_size(id.0, size)?)
    }
}

/// A child process of this core.
pub(crate) struct Process {
    pid: u32,
    /// `None` while one of its callbacks runs, and for good after a panic.
    protocol: Option<Box<dyn ProcessProtocol>>,
    /// The streams still open (on a terminal, `stdin == stdout`).
    stdin: Option<ConnId>,
    stdout: Option<ConnId>,
    stderr: Option<ConnId>,
    pty: bool,
    /// Set once the exit was seen.
    exit: Option<ExitStatus>,
    /// Its protocol panicked: no more callbacks.
    panicked: bool,
    /// The terminal reported its end (every descriptor of the child side is closed): it is
    /// closed at the exit, not before (closing it would send the child SIGHUP).
    terminal_eof: bool,
}

impl Process {
    fn streams_open(&self) -> bool {
        self.stdin.is_some() || self.stdout.is_some() || self.stderr.is_some()
    }
}

/// The children of one core, by id.
#[derive(Default)]
pub(crate) struct Processes {
    table: BTreeMap<ProcessId, Process>,
}

impl Processes {
    fn get(&self, id: ProcessId) -> Option<&Process> {
        self.table.get(&id)
    }

    fn get_mut(&mut self, id: ProcessId) -> Option<&mut Process> {
        self.table.get_mut(&id)
    }

    /// Children in the table (running, or exited with streams still open).
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no child is in the table.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every child's id.
    pub(crate) fn ids(&self) -> Vec<ProcessId> {
        self.table.keys().copied().collect()
    }
}

/// A callback of a child's protocol to run after the current one.
#[derive(Debug)]
pub(crate) enum ProcessNotice {
    /// `connection_made`.
    Made,
    /// `shutdown_started`.
    ShutdownStarted,
}

/// Starts `command`, run by `protocol`: its streams become connections of this core and
/// `connection_made` is queued.
pub(crate) fn spawn(
    state: &mut State,
    io: &mut dyn Io,
    command: &ProcessCommand,
    protocol: Box<dyn ProcessProtocol>,
) -> Result<ProcessId, EngineError> {
    let spawned = io.spawn(command)?;
    let id = ProcessId(spawned.child);
    let mut conn = |socket: Option<SocketId>, role: Role| {
        socket.map(|socket| {
            let conn = state.insert(socket, Box::new(pipe::Pipe::new(id, role)), Phase::Open);
            if role.reads() {
                io.recv(socket);
            }
            conn
        })
    };
    let (stdin, stdout, stderr) = if spawned.pty {
        let terminal = conn(spawned.stdin, Role::Terminal);
        (terminal, terminal, None)
    } else {
        (
            conn(spawned.stdin, Role::Stdin),
            conn(spawned.stdout, Role::Stdout),
            conn(spawned.stderr, Role::Stderr),
        )
    };
    state.processes.table.insert(
        id,
        Process {
            pid: spawned.pid,
            protocol: Some(protocol),
            stdin,
            stdout,
            stderr,
            pty: spawned.pty,
            exit: None,
            panicked: false,
            terminal_eof: false,
        },
    );
    state
        .notices
        .push_back((ConnId(id.0), Notice::Process(ProcessNotice::Made)));
    Ok(id)
}

/// Runs one callback of child `id`'s protocol; a panic drops the protocol, kills the child
/// and closes its streams. Does nothing while another of its callbacks runs or after a
/// panic.
pub(crate) fn call(
    state: &mut State,
    io: &mut dyn Io,
    id: ProcessId,
    f: impl FnOnce(&mut dyn ProcessProtocol, &mut ProcessContext<'_>),
) {
    let Some(mut protocol) = state.processes.get_mut(id).and_then(|p| p.protocol.take()) else {
        return;
    };
    let mut ctx = ProcessContext::new(state, io, id);
    match catch_unwind(AssertUnwindSafe(|| f(&mut *protocol, &mut ctx))) {
        Ok(()) => {
            if let Some(process) = state.processes.get_mut(id) {
                process.protocol = Some(protocol);
            }
        }
        Err(panic) => {
            state.stats.panics += 1;
            if let Some(suppressed) = state.warnings.panic.hit(state.now) {
                let message = crate::dispatch::panic_message(&*panic);
                tracing::error!(
                    process = %id,
                    panic = %escape(message.as_bytes()),
                    suppressed,
                    "process protocol panicked; child killed"
                );
            }
            let _ = catch_unwind(AssertUnwindSafe(move || drop(protocol)));
            let Some(process) = state.processes.get_mut(id) else {
                return;
            };
            process.panicked = true;
            let streams = [process.stdin, process.stdout, process.stderr];
            if process.exit.is_none() {
                // Best effort: it fails only if the child is gone already.
                let _ = io.signal(id.0, SIGKILL);
            }
            for conn in streams.into_iter().flatten() {
                state.lose(io, conn, LostReason::Panicked, true);
            }
        }
    }
}

/// Runs a queued notice of child `id`.
pub(crate) fn notice(state: &mut State, io: &mut dyn Io, id: ProcessId, notice: ProcessNotice) {
    match notice {
        ProcessNotice::Made => call(state, io, id, |p, ctx| p.connection_made(ctx)),
        ProcessNotice::ShutdownStarted => {
            if state.processes.get(id).is_some_and(|p| p.exit.is_none()) {
                call(state, io, id, |p, ctx| p.shutdown_started(ctx));
            }
        }
    }
}

/// The driver saw child `watcher` exit (and reaped it): `process_exited`; its stdin is
/// closed (nobody reads it any more; bytes still buffered are dropped).
pub(crate) fn exited(state: &mut State, io: &mut dyn Io, watcher: SocketId, status: ExitStatus) {
    let id = ProcessId(watcher);
    io.close(watcher);
    let Some(process) = state.processes.get_mut(id) else {
        return;
    };
    process.exit = Some(status);
    if process.pty
        && process.terminal_eof
        && let Some(terminal) = process.stdin
    {
        state.close(io, terminal);
    } else if !process.pty
        && let Some(stdin) = process.stdin
    {
        let buffered = state
            .conns
            .get(stdin)
            .map_or(0, crate::state::Conn::buffered);
        if buffered == 0 {
            state.close(io, stdin);
        } else {
            state.lose(io, stdin, LostReason::Aborted, true);
        }
    }
    call(state, io, id, |p, ctx| p.process_exited(ctx, status));
    maybe_ended(state, io, id);
}

/// Child `id`'s terminal reported its end: closed now if the child exited, else at its
/// exit (a terminal closed under a child that is still finishing — GNU programs close their
/// standard streams before they exit — would hang up and kill it with SIGHUP).
pub(crate) fn terminal_eof(state: &mut State, io: &mut dyn Io, id: ProcessId) {
    let Some(process) = state.processes.get_mut(id) else {
        return;
    };
    let terminal = process.stdin;
    if process.exit.is_some() {
        if let Some(terminal) = terminal {
            state.close(io, terminal);
        }
    } else {
        process.terminal_eof = true;
    }
}

/// Stream `conn` (in `role`) of child `id` was lost: its `*_connection_lost`, then
/// `process_ended` if it was the last thing the child's end waited for.
pub(crate) fn stream_lost(
    state: &mut State,
    io: &mut dyn Io,
    id: ProcessId,
    role: Role,
    reason: LostReason,
) {
    let Some(process) = state.processes.get_mut(id) else {
        return;
    };
    match role {
        Role::Stdin => process.stdin = None,
        Role::Stdout => process.stdout = None,
        Role::Stderr => process.stderr = None,
        Role::Terminal => {
            process.stdin = None;
            process.stdout = None;
        }
    }
    match role {
        Role::Stdin => call(state, io, id, |p, ctx| p.in_connection_lost(ctx, reason)),
        Role::Stdout | Role::Terminal => {
            call(state, io, id, |p, ctx| p.out_connection_lost(ctx, reason));
        }
        Role::Stderr => call(state, io, id, |p, ctx| p.err_connection_lost(ctx, reason)),
    }
    maybe_ended(state, io, id);
}

/// `process_ended` once child `id` exited and its streams are closed; it then leaves the
/// table.
fn maybe_ended(state: &mut State, io: &mut dyn Io, id: ProcessId) {
    let Some(process) = state.processes.get(id) else {
        return;
    };
    let Some(status) = process.exit else {
        return;
    };
    if process.streams_open() {
        return;
    }
    if !process.panicked {
        call(state, io, id, |p, ctx| p.process_ended(ctx, status));
    }
    if let Some(process) = state.processes.table.remove(&id)
        && let Some(protocol) = process.protocol
    {
        let _ = catch_unwind(AssertUnwindSafe(move || drop(protocol)));
    }
}

/// Graceful shutdown began: every running child's protocol gets `shutdown_started`.
pub(crate) fn shutdown_started(state: &mut State) {
    for id in state.processes.ids() {
        state.notices.push_back((
            ConnId(id.0),
            Notice::Process(ProcessNotice::ShutdownStarted),
        ));
    }
}

/// The grace period is over: children still running get SIGKILL (their exits, which
/// follow shortly, end them as usual).
pub(crate) fn kill_all(state: &mut State, io: &mut dyn Io) {
    for id in state.processes.ids() {
        if state.processes.get(id).is_some_and(|p| p.exit.is_none()) {
            // Fails only for a child that exited since (its exit is on its way).
            let _ = io.signal(id.0, SIGKILL);
        }
    }
}
