//! The one engine adapter: any [`Machine`] on a ringwork connection.
//!
//! Owns: [`Adapter`] (the [`Protocol`] that drives a machine for an [`Application`]),
//! [`Mailbox`] (how code outside the connection's callbacks — a future, a value handed to
//! a handler, another connection — sends commands to it) and [`MailboxSender`] (the
//! cloneable sending side).
//! Contract: every engine callback becomes one machine input (`data_received` →
//! `handle_input`, `eof_received` → `handle_eof`, the adapter's one timer →
//! `handle_timeout`, `pause_writing`/`write_drained` → `handle_writable`,
//! `shutdown_started` → `handle_shutdown`, `connection_lost` → `handle_lost`), followed by
//! one *drive*: commands from the mailbox and events from the machine go to the application
//! until neither yields more; transmits are written without a copy; the machine's close
//! request is applied; reading is paused or resumed as the machine wants input; one engine
//! timer tracks the machine's next deadline. Commands posted from outside a callback wake
//! the connection (`LocalHandle::wake`) once per batch, and run in the same turn.
//! An application may hand the connection to another protocol after a drive
//! ([`Application::take_upgrade`]: HTTP/1.1's `101 Switching Protocols`); the adapter then
//! forwards every callback to it.
//! Does not: parse, frame or decide anything: that is the machine's job (sans-IO, tested
//! with [`sim::Pair`](super::sim::Pair)) and the application's.

use std::cell::{Ref, RefCell, RefMut};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use ringwork::{ConnId, Context, LocalHandle, LostReason, Protocol, TimerId};

use super::{Close, Machine};

/// Most rounds of commands, events and transmits in one drive: an application that
/// answers every event with another command cannot stall its core.
const MAX_ROUNDS: usize = 1024;

/// What runs on top of a machine: turns its events into application calls, and commands
/// posted from elsewhere into machine calls.
///
/// Every callback gets the machine (to call its protocol methods: `send_response`, ...)
/// and the connection's [`Context`] (addresses, TLS, other connections, this core's
/// reactor). Callbacks must not write to the connection directly: bytes go through the
/// machine.
pub trait Application<M: Machine>: 'static {
    /// What code outside the connection's callbacks posts to it (through a
    /// [`MailboxSender`]).
    type Command: 'static;
    /// State the connection publishes to those senders (see [`Mailbox::status_mut`]);
    /// `()` when there is none.
    type Status: Default + 'static;

    /// The connection is established (after any TLS handshake); the machine has been told.
    fn connected(
        &mut self,
        machine: &mut M,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Self::Command, Self::Status>,
    ) {
        let _ = (machine, ctx, mailbox);
    }

    /// The machine emitted `event`.
    fn event(
        &mut self,
        machine: &mut M,
        event: M::Event,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Self::Command, Self::Status>,
    );

    /// A command posted through the mailbox.
    fn command(&mut self, machine: &mut M, command: Self::Command, ctx: &mut Context<'_>) {
        let _ = (machine, command, ctx);
    }

    /// A drive ended: publish what the senders should know (writability, ...). Default:
    /// nothing.
    fn settled(
        &mut self,
        machine: &mut M,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Self::Command, Self::Status>,
    ) {
        let _ = (machine, ctx, mailbox);
    }

    /// Work of the application's own that calls the machine, run in every round of a drive
    /// after the commands and events: protocols carried inside this connection (a
    /// WebSocket on an HTTP/2 stream, [`nested`](super::nested)) move their bytes here.
    /// True when it did something (the drive goes on). Default: nothing.
    fn poll(&mut self, machine: &mut M, ctx: &mut Context<'_>) -> bool {
        let _ = (machine, ctx);
        false
    }

    /// An engine timer this adapter did not arm fired (one the application armed with
    /// `ctx.call_later`, for a protocol it carries); a drive follows. Default: ignored.
    fn timer_fired(&mut self, machine: &mut M, ctx: &mut Context<'_>, timer: TimerId) {
        let _ = (machine, ctx, timer);
    }

    /// The connection switches protocols (an HTTP/1.1 `101 Switching Protocols` went out):
    /// asked after every drive; `Some` hands the connection to [`Upgrade::protocol`], and
    /// this machine and application get no more calls. Default: never.
    fn take_upgrade(&mut self) -> Option<Upgrade> {
        None
    }

    /// The connection is gone. The machine has been told; commands still in the mailbox
    /// and the machine's last events (failures of what was in flight) come right after
    /// this, so the application can answer what it holds with the engine's more precise
    /// `reason` first.
    fn lost(&mut self, machine: &mut M, ctx: &mut Context<'_>, reason: LostReason) {
        let _ = (machine, ctx, reason);
    }
}

/// A connection handed over to another protocol ([`Application::take_upgrade`]).
pub struct Upgrade {
    /// The protocol that takes the connection over: it gets `connection_made`, then `rest`
    /// as its first `data_received`, then every later callback.
    pub protocol: Box<dyn Protocol>,
    /// Bytes read after the switch (the peer may send the new protocol's first bytes right
    /// behind its request).
    pub rest: Bytes,
    /// The peer had already ended its side: the new protocol gets `eof_received` too.
    pub eof: bool,
}

/// The application of a machine whose events need no one (a protocol answered entirely by
/// its machine, such as DNS over TCP).
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl<M: Machine> Application<M> for Silent {
    type Command = ();
    type Status = ();

    fn event(
        &mut self,
        _machine: &mut M,
        _event: M::Event,
        _ctx: &mut Context<'_>,
        _mailbox: &Mailbox<(), ()>,
    ) {
    }
}

/// A [`Protocol`] that runs machine `M` for application `A` (see the module docs).
pub struct Adapter<M: Machine, A: Application<M>> {
    machine: M,
    app: A,
    mailbox: Mailbox<A::Command, A::Status>,
    /// The engine timer and the instant it was armed for.
    timer: Option<(TimerId, Instant)>,
    /// Reading was paused because the machine did not want input.
    paused: bool,
    /// The machine asked to close or abort: it gets no more input.
    closed: bool,
    /// The protocol the connection was handed to ([`Application::take_upgrade`]): every
    /// callback goes to it.
    upgraded: Option<Box<dyn Protocol>>,
}

impl<M: Machine, A: Application<M>> Adapter<M, A> {
    /// `machine`, run for `app`.
    pub fn new(machine: M, app: A) -> Self {
        Self {
            machine,
            app,
            mailbox: Mailbox::new(),
            timer: None,
            paused: false,
            closed: false,
            upgraded: None,
        }
    }

    /// A sender to this connection's mailbox, to post commands before it is even opened
    /// (they run once it connects).
    pub fn sender(&self) -> MailboxSender<A::Command, A::Status> {
        self.mailbox.sender()
    }

    /// The application, to finish setting it up before the connection is opened.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// Hands commands and events to the application and transmits to the connection until
    /// none is left; then applies close, read interest and the timer.
    fn drive(&mut self, ctx: &mut Context<'_>) {
        {
            let mut inner = self.mailbox.inner.borrow_mut();
            inner.active = true;
            // This drive runs everything queued; a wake still on its way finds nothing.
            inner.wake_queued = false;
        }
        for _ in 0..MAX_ROUNDS {
            let mut progressed = false;
            while let Some(command) = self.mailbox.take() {
                self.app.command(&mut self.machine, command, ctx);
                progressed = true;
            }
            while let Some(event) = self.machine.poll_event() {
                self.app.event(&mut self.machine, event, ctx, &self.mailbox);
                progressed = true;
            }
            progressed |= self.app.poll(&mut self.machine, ctx);
            while let Some(bytes) = self.machine.poll_transmit(ctx.now()) {
                ctx.write_bytes(bytes);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.mailbox.inner.borrow_mut().active = false;
        if let Some(close) = self.machine.poll_close() {
            match close {
                Close::Write => ctx.shutdown_write(),
                Close::Graceful => {
                    self.closed = true;
                    ctx.close();
                }
                Close::Abort => {
                    self.closed = true;
                    ctx.abort();
                }
            }
        }
        if !self.closed {
            let wants = self.machine.wants_input();
            if wants && self.paused {
                self.paused = false;
                ctx.resume_reading();
            } else if !wants && !self.paused {
                self.paused = true;
                ctx.pause_reading();
            }
            self.arm_timer(ctx);
        }
        self.app.settled(&mut self.machine, ctx, &self.mailbox);
        if let Some(upgrade) = self.app.take_upgrade() {
            self.hand_over(ctx, upgrade);
        }
    }

    /// Gives the connection to `upgrade.protocol`: this machine's timer, read pause and
    /// mailbox end here (senders see the connection as gone).
    fn hand_over(&mut self, ctx: &mut Context<'_>, upgrade: Upgrade) {
        if let Some((timer, _)) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        if self.paused {
            self.paused = false;
            ctx.resume_reading();
        }
        self.closed = true;
        self.mailbox.close();
        let protocol = self.upgraded.insert(upgrade.protocol);
        protocol.connection_made(ctx);
        if !upgrade.rest.is_empty() && ctx.is_open() {
            protocol.data_received(ctx, &upgrade.rest);
        }
        if upgrade.eof && ctx.is_open() {
            protocol.eof_received(ctx);
        }
    }

    /// Keeps one engine timer at or before the machine's next deadline. A timer armed
    /// earlier than needed is kept (it fires, the machine finds nothing due, and it is armed
    /// again), so a deadline that moves later costs nothing until then.
    fn arm_timer(&mut self, ctx: &mut Context<'_>) {
        arm_deadline(&mut self.timer, self.machine.poll_timeout(), ctx);
    }
}

/// Keeps the engine timer `timer` (id, when it fires) at or before `want`, the machine's next
/// deadline: a timer already due earlier is kept, a later one is replaced. Shared by the
/// adapter and the nested driver (`nested.rs`).
pub(super) fn arm_deadline(
    timer: &mut Option<(TimerId, Instant)>,
    want: Option<Instant>,
    ctx: &mut Context<'_>,
) {
    let Some(want) = want else {
        return;
    };
    if let Some((armed, at)) = *timer {
        if at <= want {
            return;
        }
        ctx.cancel_timer(armed);
    }
    let delay = want.saturating_duration_since(ctx.now());
    *timer = Some((ctx.call_later(delay), want));
}

impl<M: Machine + 'static, A: Application<M>> Protocol for Adapter<M, A> {
    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        if let Some(protocol) = &mut self.upgraded {
            protocol.handshake_completed(ctx);
        }
    }

    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.connection_made(ctx);
        }
        {
            let mut inner = self.mailbox.inner.borrow_mut();
            inner.conn = Some(ctx.id());
            inner.handle = Some(ctx.handle());
        }
        self.machine.handle_connected(ctx.now());
        self.app.connected(&mut self.machine, ctx, &self.mailbox);
        self.drive(ctx);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.data_received(ctx, data);
        }
        if self.closed {
            return;
        }
        self.machine.handle_input(data, ctx.now());
        self.drive(ctx);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.eof_received(ctx);
        }
        if self.closed {
            return;
        }
        self.machine.handle_eof(ctx.now());
        self.drive(ctx);
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.pause_writing(ctx);
        }
        self.machine.handle_writable(false, ctx.now());
        self.drive(ctx);
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.write_drained(ctx);
        }
        self.machine.handle_writable(true, ctx.now());
        self.drive(ctx);
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.shutdown_started(ctx);
        }
        self.machine.handle_shutdown(ctx.now());
        self.drive(ctx);
    }

    fn woken(&mut self, ctx: &mut Context<'_>) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.woken(ctx);
        }
        self.mailbox.inner.borrow_mut().wake_queued = false;
        self.drive(ctx);
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.timer_fired(ctx, timer);
        }
        if self.timer.is_some_and(|(armed, _)| armed == timer) {
            self.timer = None;
            self.machine.handle_timeout(ctx.now());
            self.drive(ctx);
        } else if !self.closed {
            self.app.timer_fired(&mut self.machine, ctx, timer);
            self.drive(ctx);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(protocol) = &mut self.upgraded {
            return protocol.connection_lost(ctx, reason);
        }
        self.closed = true;
        self.machine.handle_lost(ctx.now());
        self.app.lost(&mut self.machine, ctx, reason);
        // Commands posted before the end (the machine refuses what needs a connection) and
        // the last events (failures of what was in flight) still reach the application,
        // so nothing posted is dropped unanswered; transmits have nowhere to go.
        while let Some(command) = self.mailbox.take() {
            self.app.command(&mut self.machine, command, ctx);
        }
        while let Some(event) = self.machine.poll_event() {
            self.app.event(&mut self.machine, event, ctx, &self.mailbox);
        }
        let now = ctx.now();
        while self.machine.poll_transmit(now).is_some() {}
        self.mailbox.close();
    }
}

/// The connection's end of its command queue (held by the [`Adapter`]); give
/// [`Mailbox::sender`]s to whoever must reach the connection later.
pub struct Mailbox<C, S = ()> {
    inner: Rc<RefCell<MailboxInner<C, S>>>,
}

/// A cloneable handle that posts commands to one connection and reads what it publishes.
/// `!Send`: it works on the connection's core.
pub struct MailboxSender<C, S = ()> {
    inner: Rc<RefCell<MailboxInner<C, S>>>,
}

struct MailboxInner<C, S> {
    queue: VecDeque<C>,
    status: S,
    /// The connection and its core, once connected.
    conn: Option<ConnId>,
    handle: Option<LocalHandle>,
    /// The adapter is draining: a post needs no wake.
    active: bool,
    wake_queued: bool,
    /// The connection is gone: posts are refused.
    closed: bool,
    /// Tasks waiting for the status to change.
    waiters: Vec<Waker>,
}

impl<C, S: Default> Mailbox<C, S> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Rc::new(RefCell::new(MailboxInner {
                queue: VecDeque::new(),
                status: S::default(),
                conn: None,
                handle: None,
                active: false,
                wake_queued: false,
                closed: false,
                waiters: Vec::new(),
            })),
        }
    }
}

impl<C, S> Mailbox<C, S> {
    /// A sender for this connection.
    #[must_use]
    pub fn sender(&self) -> MailboxSender<C, S> {
        MailboxSender {
            inner: Rc::clone(&self.inner),
        }
    }

    /// The published status, to change (senders see it with [`MailboxSender::status`]).
    /// Call [`Mailbox::wake_waiters`] after a change they wait for.
    pub fn status_mut(&self) -> RefMut<'_, S> {
        RefMut::map(self.inner.borrow_mut(), |inner| &mut inner.status)
    }

    /// Wakes every task waiting in [`MailboxSender::poll_status`].
    pub fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut self.inner.borrow_mut().waiters);
        for waiter in waiters {
            waiter.wake();
        }
    }

    pub(crate) fn take(&self) -> Option<C> {
        self.inner.borrow_mut().queue.pop_front()
    }

    /// Posts wake connection `conn` of `handle` from now on (a mailbox of a protocol
    /// carried inside that connection).
    pub(crate) fn attach(&self, conn: ConnId, handle: LocalHandle) {
        let mut inner = self.inner.borrow_mut();
        inner.conn = Some(conn);
        inner.handle = Some(handle);
    }

    /// A drive starts (`true`: posts need no wake, and a queued wake is spent) or ends.
    pub(crate) fn set_active(&self, active: bool) {
        let mut inner = self.inner.borrow_mut();
        inner.active = active;
        if active {
            inner.wake_queued = false;
        }
    }

    pub(crate) fn close(&self) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.closed = true;
            inner.queue.clear();
        }
        self.wake_waiters();
    }
}

impl<C, S> MailboxSender<C, S> {
    /// Posts `command`; the connection runs it in this turn (after the current callback or
    /// task poll).
    ///
    /// # Errors
    /// The connection is gone: the command comes back.
    pub fn post(&self, command: C) -> Result<(), C> {
        let wake = {
            let mut inner = self.inner.borrow_mut();
            if inner.closed {
                return Err(command);
            }
            if inner.queue.capacity() == 0 {
                // Room for one command, not the four a first push reserves: most connections
                // have one in flight at a time (issue 16: memory per keep-alive idle
                // connection; a busier one grows the queue once and keeps it).
                inner.queue.reserve_exact(1);
            }
            inner.queue.push_back(command);
            if inner.active || inner.wake_queued {
                None
            } else {
                // Before the connection is made there is nothing to wake: its first drive
                // runs what is queued.
                let target = inner.handle.clone().zip(inner.conn);
                inner.wake_queued = target.is_some();
                target
            }
        };
        if let Some((handle, conn)) = wake {
            handle.wake(conn);
        }
        Ok(())
    }

    /// Whether `other` reaches the same connection.
    #[must_use]
    pub fn same(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether the connection is gone.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.borrow().closed
    }

    /// Commands posted and not yet run.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.inner.borrow().queue.len()
    }

    /// What the connection published.
    #[must_use]
    pub fn status(&self) -> Ref<'_, S> {
        Ref::map(self.inner.borrow(), |inner| &inner.status)
    }

    /// The published status, to change from the sending side (a count of what was posted,
    /// say); the connection sees it in its next drive.
    pub fn status_mut(&self) -> RefMut<'_, S> {
        RefMut::map(self.inner.borrow_mut(), |inner| &mut inner.status)
    }

    /// Ready with `f`'s answer once it gives one: `f` sees the published status and whether
    /// the connection is gone, now and after each [`Mailbox::wake_waiters`].
    pub fn poll_status<T>(
        &self,
        cx: &mut TaskContext<'_>,
        f: impl FnOnce(&mut S, bool) -> Option<T>,
    ) -> Poll<T> {
        let mut inner = self.inner.borrow_mut();
        let closed = inner.closed;
        if let Some(answer) = f(&mut inner.status, closed) {
            return Poll::Ready(answer);
        }
        inner.waiters.push(cx.waker().clone());
        Poll::Pending
    }
}

impl<C, S> Clone for MailboxSender<C, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Rc::clone(&self.inner),
        }
    }
}
