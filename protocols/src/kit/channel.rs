//! [`Channel`]: the async way to run a machine — its events go to a task, the task's calls
//! go back to the machine.
//!
//! Owns: [`Channel`] (an [`Application`] for any machine), [`ConnHandle`] (what the task
//! holds: [`ConnHandle::next_event`], [`ConnHandle::call`]) and [`channel`], which makes the
//! pair.
//! Contract: events reach the task in order, also those the machine emits as the connection
//! is lost; [`ConnHandle::next_event`] returns `None` once the connection is gone and its
//! events are taken. A call runs on the machine in the same reactor turn it was made, then
//! the connection flushes what it produced. Bounded by the machine: it emits events only as
//! it reads, and it stops reading by its own rules.
//! Does not: replace the callback form ([`Application`] written directly), which saves the
//! task and the queue on hot paths.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;

use ringwork::Context;

use super::Machine;
use super::adapter::{Adapter, Application, Mailbox, MailboxSender};

/// A call a task makes on the machine.
pub type Call<M> = Box<dyn FnOnce(&mut M)>;

/// The [`Application`] that queues events for a [`ConnHandle`].
pub struct Channel<M> {
    _machine: PhantomData<fn(M)>,
}

/// What the connection shares with its [`ConnHandle`]s: the events not yet taken.
pub struct Pending<M: Machine> {
    events: VecDeque<M::Event>,
}

impl<M: Machine> Default for Pending<M> {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
        }
    }
}

impl<M> Channel<M> {
    pub(crate) fn new() -> Self {
        Self {
            _machine: PhantomData,
        }
    }
}

impl<M> Application<M> for Channel<M>
where
    M: Machine + 'static,
    M::Event: 'static,
{
    type Command = Call<M>;
    type Status = Pending<M>;

    fn event(
        &mut self,
        _machine: &mut M,
        event: M::Event,
        _ctx: &mut Context<'_>,
        mailbox: &Mailbox<Call<M>, Pending<M>>,
    ) {
        mailbox.status_mut().events.push_back(event);
    }

    fn command(&mut self, machine: &mut M, call: Call<M>, _ctx: &mut Context<'_>) {
        call(machine);
    }

    fn settled(
        &mut self,
        _machine: &mut M,
        _ctx: &mut Context<'_>,
        mailbox: &Mailbox<Call<M>, Pending<M>>,
    ) {
        if !mailbox.status_mut().events.is_empty() {
            mailbox.wake_waiters();
        }
    }
}

/// A task's handle on one connection run by a [`Channel`]. Cloneable; `!Send` (it works
/// on the connection's core).
pub struct ConnHandle<M: Machine> {
    sender: MailboxSender<Call<M>, Pending<M>>,
}

/// The connection is gone: the call was not made.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("the connection is gone")]
pub struct Gone;

impl<M: Machine + 'static> ConnHandle<M> {
    pub(crate) fn from_sender(sender: MailboxSender<Call<M>, Pending<M>>) -> Self {
        Self { sender }
    }

    /// The next event, in order; `None` once the connection is gone and every event was
    /// taken.
    pub async fn next_event(&self) -> Option<M::Event> {
        poll_fn(|cx| {
            self.sender
                .poll_status(cx, |pending, closed| match pending.events.pop_front() {
                    Some(event) => Some(Some(event)),
                    None => closed.then_some(None),
                })
        })
        .await
    }

    /// Runs `f` on the machine (this turn), then the connection sends what it produced.
    ///
    /// # Errors
    /// [`Gone`] once the connection is gone.
    pub fn call(&self, f: impl FnOnce(&mut M) + 'static) -> Result<(), Gone> {
        self.sender.post(Box::new(f)).map_err(|_| Gone)
    }

    /// Whether the connection is gone.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl<M: Machine> Clone for ConnHandle<M> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<M: Machine> fmt::Debug for ConnHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("closed", &self.sender.is_closed())
            .finish()
    }
}

/// `machine` as a protocol to listen or connect with, and the handle a task drives it by.
pub fn channel<M>(machine: M) -> (Adapter<M, Channel<M>>, ConnHandle<M>)
where
    M: Machine + 'static,
    M::Event: 'static,
{
    let adapter = Adapter::new(
        machine,
        Channel {
            _machine: PhantomData,
        },
    );
    let handle = ConnHandle {
        sender: adapter.sender(),
    };
    (adapter, handle)
}
