//! The connection protocol of a child's stream: forwards a pipe's (or terminal's) events to
//! its child's [`ProcessProtocol`](super::ProcessProtocol).
//!
//! Owns: [`Pipe`], the internal [`Protocol`] of each stream of a child, and [`Role`].
//! Contract: a stream is an ordinary connection (writes, watermarks, pausing, limits), so
//! the child's protocol is called from inside this protocol's callbacks, never from another
//! one: callbacks stay one at a time.

use crate::context::Context;
use crate::protocol::{LostReason, Protocol};

use super::{ProcessId, call, stream_lost};

/// Which of the child's streams a connection is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Role {
    /// The child's stdin (written).
    Stdin,
    /// The child's stdout (read).
    Stdout,
    /// The child's stderr (read).
    Stderr,
    /// A pseudo-terminal's master side: stdin and stdout (and the child's stderr).
    Terminal,
}

impl Role {
    /// Whether the stream is read.
    pub(crate) fn reads(self) -> bool {
        self != Role::Stdin
    }

    /// Whether the stream is written.
    fn writes(self) -> bool {
        matches!(self, Role::Stdin | Role::Terminal)
    }
}

/// One stream of child `process`.
pub(crate) struct Pipe {
    process: ProcessId,
    role: Role,
}

impl Pipe {
    pub(crate) fn new(process: ProcessId, role: Role) -> Self {
        Self { process, role }
    }
}

impl Protocol for Pipe {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let (state, io) = (&mut *ctx.state, &mut *ctx.io);
        match self.role {
            Role::Stdout | Role::Terminal => {
                call(state, io, self.process, |p, c| p.out_received(c, data));
            }
            Role::Stderr => call(state, io, self.process, |p, c| p.err_received(c, data)),
            // Nothing is read from a stdin pipe.
            Role::Stdin => {}
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        if self.role == Role::Terminal {
            // Closing the terminal hangs it up (SIGHUP to the child): wait for the exit.
            super::terminal_eof(ctx.state, ctx.io, self.process);
        } else {
            ctx.close();
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if self.role.writes() {
            call(ctx.state, ctx.io, self.process, |p, c| p.pause_writing(c));
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if self.role.writes() {
            call(ctx.state, ctx.io, self.process, |p, c| p.in_drained(c));
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        stream_lost(ctx.state, ctx.io, self.process, self.role, reason);
    }
}
