//! A machine run inside another connection: a protocol carried by one stream of a
//! multiplexed connection (a WebSocket on an HTTP/2 stream, RFC 8441).
//!
//! Owns: [`Nested`] (a [`Machine`] and its [`Application`], driven as the kit's
//! [`Adapter`](super::adapter::Adapter) drives one on a socket), the [`Carrier`] it writes
//! through and [`StreamProtocol`], the object-safe face the carrying connection's
//! application holds it by.
//! Contract: the carrying application feeds the stream's bytes ([`StreamProtocol::input`],
//! [`StreamProtocol::eof`], [`StreamProtocol::lost`]) and calls [`StreamProtocol::drive`]
//! in every round of its own drive ([`Application::poll`]); the drive runs commands,
//! events and transmits until none is left, applies the machine's close to the stream
//! (`Close::Write`: end of stream; `Graceful`: end of stream, then done; `Abort`: a reset),
//! and keeps flow control as backpressure: input bytes go back to the carrier
//! ([`Carrier::release`], a window update) only while the machine wants input. Timers are
//! the carrying connection's (`ctx.call_later`); it hands foreign timers on
//! ([`Application::timer_fired`]). The application's callbacks get the carrying
//! connection's [`Context`]: addresses, TLS and the core are the connection's, and writes
//! or closes through it would act on the whole connection (they must not: bytes go
//! through the machine).
//! Does not: frame, flow-control or multiplex (the carrying protocol does).

use std::time::Instant;

use bytes::Bytes;
use ringwork::{Context, LostReason, TimerId};

use super::adapter::{Application, Mailbox, MailboxSender};
use super::channel::{Channel, ConnHandle};
use super::{Close, Machine};

/// Most rounds of commands, events and transmits in one drive (as the adapter's).
const MAX_ROUNDS: usize = 1024;

/// What a carrying connection offers one of its streams.
pub trait Carrier {
    /// Queues bytes on the stream.
    fn send(&mut self, data: Bytes);
    /// Ends our side of the stream after what was queued.
    fn end(&mut self);
    /// Resets the stream; what was queued is dropped.
    fn reset(&mut self);
    /// `n` input bytes were consumed: the peer may send as many more.
    fn release(&mut self, n: usize);
    /// Whether the stream can take more now.
    fn writable(&self) -> bool;
    /// Whether the carrying connection is shutting down gracefully.
    fn draining(&self) -> bool;
}

/// A protocol carried by a stream, as its carrying connection's application holds it.
pub trait StreamProtocol {
    /// The stream is open (its answer was queued): the machine is told it is connected.
    fn start(&mut self, ctx: &mut Context<'_>);
    /// Bytes the peer sent on the stream.
    fn input(&mut self, data: &[u8], ctx: &mut Context<'_>);
    /// The peer ended its side of the stream.
    fn eof(&mut self, ctx: &mut Context<'_>);
    /// The stream is gone (reset, or the connection lost): the last events run, then done.
    fn lost(&mut self, ctx: &mut Context<'_>, reason: LostReason);
    /// `timer` fired: true when it was this protocol's (the drive acts on it).
    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) -> bool;
    /// Runs what is pending (see the module docs); true when something happened.
    fn drive(&mut self, ctx: &mut Context<'_>, carrier: &mut dyn Carrier) -> bool;
    /// Whether the protocol is finished with its stream (nothing more to drive).
    fn is_done(&self) -> bool;
}

/// Machine `M` run for application `A` inside another connection (see the module docs).
pub struct Nested<M: Machine, A: Application<M>> {
    machine: M,
    app: A,
    mailbox: Mailbox<A::Command, A::Status>,
    /// The timer armed on the carrying connection, and its instant.
    timer: Option<(TimerId, Instant)>,
    /// Input bytes handed to the machine and not yet released to the carrier.
    held: usize,
    /// What the machine was last told of writability.
    writable: bool,
    /// Our side of the stream ended (`Close::Write`).
    ended: bool,
    /// The machine was told of the carrying connection's shutdown.
    shutdown_told: bool,
    /// Closed or lost: no more calls reach the machine.
    done: bool,
}

impl<M: Machine, A: Application<M>> Nested<M, A> {
    /// `machine`, run for `app`.
    pub fn new(machine: M, app: A) -> Self {
        Self {
            machine,
            app,
            mailbox: Mailbox::new(),
            timer: None,
            held: 0,
            writable: true,
            ended: false,
            shutdown_told: false,
            done: false,
        }
    }

    /// A sender to this protocol's mailbox (commands posted before it starts run at its
    /// first drive).
    pub fn sender(&self) -> MailboxSender<A::Command, A::Status> {
        self.mailbox.sender()
    }

    /// The machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    fn arm_timer(&mut self, ctx: &mut Context<'_>) {
        super::adapter::arm_deadline(&mut self.timer, self.machine.poll_timeout(), ctx);
    }

    /// Ends the protocol as the adapter does on `connection_lost`: the machine and the
    /// application are told, the last commands and events run, transmits are dropped.
    fn finish(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if self.done {
            return;
        }
        self.done = true;
        if let Some((timer, _)) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        let now = ctx.now();
        self.machine.handle_lost(now);
        self.app.lost(&mut self.machine, ctx, reason);
        while let Some(command) = self.mailbox.take() {
            self.app.command(&mut self.machine, command, ctx);
        }
        while let Some(event) = self.machine.poll_event() {
            self.app.event(&mut self.machine, event, ctx, &self.mailbox);
        }
        while self.machine.poll_transmit(now).is_some() {}
        self.mailbox.close();
    }
}

impl<M: Machine + 'static, A: Application<M>> StreamProtocol for Nested<M, A> {
    fn start(&mut self, ctx: &mut Context<'_>) {
        self.mailbox.attach(ctx.id(), ctx.handle());
        self.machine.handle_connected(ctx.now());
        self.app.connected(&mut self.machine, ctx, &self.mailbox);
    }

    fn input(&mut self, data: &[u8], ctx: &mut Context<'_>) {
        if self.done {
            return;
        }
        self.held += data.len();
        self.machine.handle_input(data, ctx.now());
    }

    fn eof(&mut self, ctx: &mut Context<'_>) {
        if !self.done {
            self.machine.handle_eof(ctx.now());
        }
    }

    fn lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        self.finish(ctx, reason);
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) -> bool {
        if self.done || self.timer.is_none_or(|(armed, _)| armed != timer) {
            return false;
        }
        self.timer = None;
        self.machine.handle_timeout(ctx.now());
        true
    }

    fn drive(&mut self, ctx: &mut Context<'_>, carrier: &mut dyn Carrier) -> bool {
        if self.done {
            return false;
        }
        let now = ctx.now();
        let mut progressed = false;
        let writable = carrier.writable();
        if writable != self.writable {
            self.writable = writable;
            self.machine.handle_writable(writable, now);
            progressed = true;
        }
        if carrier.draining() && !self.shutdown_told {
            self.shutdown_told = true;
            self.machine.handle_shutdown(now);
            progressed = true;
        }
        self.mailbox.set_active(true);
        for _ in 0..MAX_ROUNDS {
            let mut more = false;
            while let Some(command) = self.mailbox.take() {
                self.app.command(&mut self.machine, command, ctx);
                more = true;
            }
            while let Some(event) = self.machine.poll_event() {
                self.app.event(&mut self.machine, event, ctx, &self.mailbox);
                more = true;
            }
            while let Some(bytes) = self.machine.poll_transmit(now) {
                // After our end of stream nothing more may go (the machine sends nothing
                // after a half-close; this keeps the stream's rules if one did).
                if !self.ended {
                    carrier.send(bytes);
                }
                more = true;
            }
            if !more {
                break;
            }
            progressed = true;
        }
        self.mailbox.set_active(false);
        match self.machine.poll_close() {
            Some(Close::Write) => {
                progressed = true;
                if !std::mem::replace(&mut self.ended, true) {
                    carrier.end();
                }
            }
            Some(Close::Graceful) => {
                if !std::mem::replace(&mut self.ended, true) {
                    carrier.end();
                }
                self.finish(ctx, LostReason::Done);
                return true;
            }
            Some(Close::Abort) => {
                carrier.reset();
                self.finish(ctx, LostReason::Aborted);
                return true;
            }
            None => {}
        }
        // Flow control as backpressure: the peer gets its window back only as the machine
        // takes more.
        if self.held > 0 && self.machine.wants_input() {
            carrier.release(std::mem::take(&mut self.held));
        }
        self.arm_timer(ctx);
        self.app.settled(&mut self.machine, ctx, &self.mailbox);
        progressed
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

/// [`channel`](super::channel::channel) for a carried protocol: `machine` as a
/// [`StreamProtocol`], and the handle a task drives it by.
pub fn nested_channel<M>(machine: M) -> (Nested<M, Channel<M>>, ConnHandle<M>)
where
    M: Machine + 'static,
    M::Event: 'static,
{
    let nested = Nested::new(machine, Channel::new());
    let handle = ConnHandle::from_sender(nested.sender());
    (nested, handle)
}
