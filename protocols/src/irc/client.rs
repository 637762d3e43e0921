//! The IRC client on the engine (Twisted's `IRCClient` with a `ReconnectingClientFactory`):
//! registration, events, automatic PONG, and reconnection with backoff.
//!
//! Owns: [`IrcClient`], a handle for a task on one core: [`IrcClient::next_event`] yields
//! [`IrcEvent`]s in order (each connection's [`ClientEvent`]s between a
//! [`IrcEvent::Connected`] and a [`IrcEvent::Disconnected`]); [`IrcClient::send`] and its
//! helpers write to the connection that is up. Each connection is a
//! [`ClientConn`] run by the kit adapter; the connection is kept up by the engine's
//! [`ReconnectingClient`] with its [`Backoff`] (reset by each connection that is made).
//! Contract: events are kept until taken, at most [`MAX_QUEUED_EVENTS`] (older ones are
//! dropped and counted in [`IrcClient::dropped_events`]). A send while no connection is up
//! is refused ([`NotConnected`]); nothing is queued for the next connection (channels are
//! to be joined again on each [`ClientEvent::Registered`], as Twisted's `signedOn` does).
//! Does not: resolve names (the address is fixed) or speak TLS.
//! Tests: `tests/irc_client.rs` (our server, miniircd; both backends).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use ringwork::{Backoff, Context, LocalHandle, LostReason, ReconnectingClient, SockAddr};

use super::proto::{ClientConfig, ClientConn, ClientEvent, Message};
use crate::kit::adapter::{Adapter, Application, Mailbox, MailboxSender};

/// Events kept for the task before the oldest are dropped.
pub const MAX_QUEUED_EVENTS: usize = 10_000;

/// What an [`IrcClient`] reports.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum IrcEvent {
    /// A connection is up (registration is under way).
    Connected,
    /// An event of the connection that is up.
    Client(ClientEvent),
    /// The connection is gone; the next attempt follows the backoff unless
    /// [`IrcClient::stop`] was called.
    Disconnected(String),
}

/// No connection is up.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("not connected")]
pub struct NotConnected;

/// What the task posts to the connection.
enum ClientCommand {
    Send(Message),
    Quit(String),
}

#[derive(Default)]
struct Shared {
    events: VecDeque<IrcEvent>,
    dropped: u64,
    waker: Option<Waker>,
    conn: Option<MailboxSender<ClientCommand>>,
    stopped: bool,
}

impl Shared {
    fn push(&mut self, event: IrcEvent) {
        if self.events.len() == MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// An IRC client kept connected (see the module docs).
///
/// # Examples
/// ```no_run
/// use ringwork::{Backoff, Runtime};
/// use ringwork_protocols::irc::client::{IrcClient, IrcEvent};
/// use ringwork_protocols::irc::proto::{ClientConfig, ClientEvent};
///
/// Runtime::builder().cores(1).build()?.run(|reactor| {
///     let client = IrcClient::connect(
///         &reactor.handle(),
///         "127.0.0.1:6667".parse::<std::net::SocketAddr>().unwrap(),
///         ClientConfig::new("ringbot"),
///         Backoff::default(),
///     );
///     reactor.spawn_local(async move {
///         while let Some(event) = client.next_event().await {
///             match event {
///                 IrcEvent::Client(ClientEvent::Registered { .. }) => {
///                     let _ = client.join("#ringwork");
///                 }
///                 IrcEvent::Client(ClientEvent::Privmsg { from, target, text }) => {
///                     let _ = client.privmsg(&target, &format!("{from} said {text}"));
///                 }
///                 _ => {}
///             }
///         }
///     });
///     Ok(())
/// })?;
/// # Ok::<(), ringwork::EngineError>(())
/// ```
pub struct IrcClient {
    shared: Rc<RefCell<Shared>>,
    reconnect: ReconnectingClient,
}

impl IrcClient {
    /// Connects to `addr` on the core of `handle`, registering with `config` on every
    /// connection, reconnecting after `backoff`.
    #[must_use]
    pub fn connect(
        handle: &LocalHandle,
        addr: impl Into<SockAddr>,
        config: ClientConfig,
        backoff: Backoff,
    ) -> Self {
        let shared = Rc::new(RefCell::new(Shared::default()));
        let for_factory = Rc::clone(&shared);
        let reconnect = ReconnectingClient::new(addr)
            .backoff(backoff)
            .start(handle, move || {
                Adapter::new(
                    ClientConn::new(config.clone()),
                    ClientApp {
                        shared: Rc::clone(&for_factory),
                        reason: None,
                        ended: false,
                    },
                )
            });
        Self { shared, reconnect }
    }

    /// The next event; `None` once [`IrcClient::stop`] was called and every event taken,
    /// or the reconnecting client gave up (its `max_retries`) with nothing left to take.
    pub async fn next_event(&self) -> Option<IrcEvent> {
        poll_fn(|cx| {
            let mut shared = self.shared.borrow_mut();
            if let Some(event) = shared.events.pop_front() {
                return Poll::Ready(Some(event));
            }
            let gave_up = matches!(self.reconnect.state(), ringwork::ReconnectState::GaveUp)
                && shared.conn.is_none();
            if shared.stopped && shared.conn.is_none() || gave_up {
                return Poll::Ready(None);
            }
            shared.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Sends `message` on the connection that is up.
    ///
    /// # Errors
    /// [`NotConnected`].
    pub fn send(&self, message: Message) -> Result<(), NotConnected> {
        let conn = self.shared.borrow().conn.clone().ok_or(NotConnected)?;
        conn.post(ClientCommand::Send(message))
            .map_err(|_| NotConnected)
    }

    /// JOIN `channel`.
    ///
    /// # Errors
    /// [`NotConnected`].
    pub fn join(&self, channel: &str) -> Result<(), NotConnected> {
        self.send(Message::new("JOIN", vec![channel.to_owned()]))
    }

    /// PRIVMSG `target` (Twisted: `msg`).
    ///
    /// # Errors
    /// [`NotConnected`].
    pub fn privmsg(&self, target: &str, text: &str) -> Result<(), NotConnected> {
        self.send(Message::new(
            "PRIVMSG",
            vec![target.to_owned(), text.to_owned()],
        ))
    }

    /// Stops reconnecting and QUITs the connection that is up with `reason`.
    pub fn stop(&self, reason: &str) {
        self.reconnect.stop_trying();
        let conn = {
            let mut shared = self.shared.borrow_mut();
            shared.stopped = true;
            if let Some(waker) = shared.waker.take() {
                waker.wake();
            }
            shared.conn.clone()
        };
        if let Some(conn) = conn {
            let _ = conn.post(ClientCommand::Quit(reason.to_owned()));
        }
    }

    /// Whether a connection is up.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.shared.borrow().conn.is_some()
    }

    /// Events dropped because the task did not take them (over [`MAX_QUEUED_EVENTS`]).
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.shared.borrow().dropped
    }

    /// Connection attempts so far.
    #[must_use]
    pub fn attempts(&self) -> u64 {
        self.reconnect.attempts()
    }
}

struct ClientApp {
    shared: Rc<RefCell<Shared>>,
    /// The engine's reason for the end, once known.
    reason: Option<String>,
    /// `Disconnected` was reported for this connection.
    ended: bool,
}

impl ClientApp {
    fn end(&mut self, why: String) {
        let mut shared = self.shared.borrow_mut();
        shared.conn = None;
        if !std::mem::replace(&mut self.ended, true) {
            shared.push(IrcEvent::Disconnected(why));
        }
    }
}

impl Application<ClientConn> for ClientApp {
    type Command = ClientCommand;
    type Status = ();

    fn connected(
        &mut self,
        _machine: &mut ClientConn,
        _ctx: &mut Context<'_>,
        mailbox: &Mailbox<ClientCommand>,
    ) {
        let mut shared = self.shared.borrow_mut();
        shared.conn = Some(mailbox.sender());
        shared.push(IrcEvent::Connected);
    }

    fn event(
        &mut self,
        _machine: &mut ClientConn,
        event: ClientEvent,
        _ctx: &mut Context<'_>,
        _mailbox: &Mailbox<ClientCommand>,
    ) {
        match event {
            // The end of the connection is one `Disconnected`.
            ClientEvent::Closed => self.end("closed by the server".into()),
            ClientEvent::Lost => {
                let why = self.reason.take().unwrap_or_else(|| "lost".into());
                self.end(why);
            }
            event => self.shared.borrow_mut().push(IrcEvent::Client(event)),
        }
    }

    fn command(
        &mut self,
        machine: &mut ClientConn,
        command: ClientCommand,
        _ctx: &mut Context<'_>,
    ) {
        match command {
            ClientCommand::Send(message) => {
                let _ = machine.send(&message);
            }
            ClientCommand::Quit(reason) => machine.quit(&reason),
        }
    }

    fn lost(&mut self, _machine: &mut ClientConn, _ctx: &mut Context<'_>, reason: LostReason) {
        // The machine's `Lost` event follows and reports it.
        self.shared.borrow_mut().conn = None;
        self.reason = Some(reason.to_string());
    }
}
