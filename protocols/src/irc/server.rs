//! The IRC server on the engine: a [`ServerConn`] per client, one [`Shard`] per core, ops
//! between cores with [`Cores::send`].
//!
//! Owns: [`IrcServer`] (`Send + Sync`: made once, attached on every core with
//! [`IrcServer::attach`], which returns the factory to listen with) and the application
//! that joins a connection's machine to its core's shard.
//! Contract: every core of the runtime must call [`IrcServer::attach`] (the CLI does it at
//! the start of each core, listener or not): channels and nicks are owned by a core by
//! hash, so every core holds part of the network. A connection's events go to its core's
//! shard; the shard's outputs become mailbox posts to this core's connections (a line, the
//! registration's answer) and closures sent to other cores, in order, which hand the op to
//! that core's shard (found through a thread-local map keyed by server, as the engine
//! keeps no per-core user storage and a job runs on its core's thread).
//! Does not: batch the ops of one turn into one send per core (each op is one channel send
//! and one wake-up), or link servers (one process is the whole network).
//! Design: docs/irc.md.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ringwork::{Context, Cores, LocalHandle, Reactor};

use super::proto::shard::Who;
use super::proto::{
    ClientId, ConnEvent, Delivery, IrcConfig, Op, ServerConn, Shard, ShardOutput,
    format_server_time,
};
use crate::kit::adapter::{Adapter, Application, Mailbox, MailboxSender};

/// An IRC server: make it once, attach it on every core.
#[derive(Clone, Debug)]
pub struct IrcServer {
    id: u64,
    config: Arc<IrcConfig>,
}

/// Server ids, unique in the process.
static NEXT_SERVER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's (core's) side of every server attached on it.
    static CORES: RefCell<HashMap<u64, Rc<CoreSide>>> = RefCell::new(HashMap::new());
}

/// What one core holds of a server.
struct CoreSide {
    server: u64,
    config: Arc<IrcConfig>,
    core: usize,
    shard: RefCell<Shard>,
    clients: RefCell<HashMap<u64, MailboxSender<Command>>>,
    next_local: Cell<u64>,
    cores: Option<Cores>,
    handle: LocalHandle,
}

/// What the shard posts to a connection.
#[derive(Debug)]
pub enum Command {
    /// A line to write.
    Deliver(Delivery),
    /// The nick was granted: registration is complete.
    Registered(String),
    /// The nick was taken.
    NickRejected(String),
    /// The nick changed.
    NickChanged(String),
}

impl IrcServer {
    /// A server with `config`.
    #[must_use]
    pub fn new(config: IrcConfig) -> Self {
        Self {
            id: NEXT_SERVER.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &IrcConfig {
        &self.config
    }

    /// This server's side on `reactor`'s core (made at the first call on the core, kept
    /// for the thread's life), and the factory of its connections, for
    /// [`Reactor::listen_with`]. Call it on every core of the runtime.
    pub fn attach(
        &self,
        reactor: &Reactor,
    ) -> impl FnMut() -> Adapter<ServerConn, IrcApp> + 'static {
        let side = CORES.with(|map| {
            Rc::clone(map.borrow_mut().entry(self.id).or_insert_with(|| {
                let cores = reactor.cores().cloned();
                let shards = cores.as_ref().map_or(1, Cores::len);
                let core = reactor.core_index();
                Rc::new(CoreSide {
                    server: self.id,
                    config: Arc::clone(&self.config),
                    core,
                    shard: RefCell::new(Shard::new(Arc::clone(&self.config), core, shards)),
                    clients: RefCell::new(HashMap::new()),
                    next_local: Cell::new(1),
                    cores,
                    handle: reactor.handle(),
                })
            }))
        });
        move || {
            let local = side.next_local.get();
            side.next_local.set(local + 1);
            Adapter::new(
                ServerConn::new(Arc::clone(&side.config), "unknown"),
                IrcApp {
                    side: Rc::clone(&side),
                    local,
                },
            )
        }
    }

    /// Clients and channels on this thread's core (for tests and stats): `None` before
    /// [`IrcServer::attach`].
    #[must_use]
    pub fn local_counts(&self) -> Option<(usize, usize)> {
        CORES.with(|map| {
            map.borrow().get(&self.id).map(|side| {
                let shard = side.shard.borrow();
                (shard.client_count(), shard.channel_count())
            })
        })
    }
}

/// The application of one client connection (see the module docs).
pub struct IrcApp {
    side: Rc<CoreSide>,
    local: u64,
}

impl Application<ServerConn> for IrcApp {
    type Command = Command;
    type Status = ();

    fn connected(
        &mut self,
        machine: &mut ServerConn,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Command>,
    ) {
        let host = ctx
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or_else(|| "localhost".to_owned(), |a| a.ip().to_string());
        // IPv6 hosts start with ':' sometimes (`::1`): a prefix part must not.
        let host = if host.starts_with(':') {
            format!("0{host}")
        } else {
            host
        };
        machine.set_host(&host);
        machine.set_core(self.side.core);
        self.side
            .clients
            .borrow_mut()
            .insert(self.local, mailbox.sender());
    }

    fn event(
        &mut self,
        machine: &mut ServerConn,
        event: ConnEvent,
        _ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Command>,
    ) {
        let side = &self.side;
        match event {
            ConnEvent::Register {
                nick,
                user,
                realname,
            } => {
                let who = Who {
                    id: ClientId {
                        core: side.core,
                        local: self.local,
                    },
                    nick,
                    user,
                    host: machine.host().to_owned(),
                    realname,
                };
                side.shard
                    .borrow_mut()
                    .register(self.local, who, machine.caps());
            }
            ConnEvent::Command(message) => {
                side.shard.borrow_mut().command(
                    self.local,
                    machine.caps(),
                    &message,
                    Some(now_time()),
                );
            }
            ConnEvent::Quit { reason, .. } => {
                side.clients.borrow_mut().remove(&self.local);
                side.shard
                    .borrow_mut()
                    .quit(self.local, &reason, Some(now_time()));
            }
        }
        pump(side);
    }

    fn command(&mut self, machine: &mut ServerConn, command: Command, _ctx: &mut Context<'_>) {
        match command {
            Command::Deliver(delivery) => machine.deliver(&delivery),
            Command::Registered(nick) => machine.registered(&nick),
            Command::NickRejected(nick) => machine.nick_rejected(&nick),
            Command::NickChanged(nick) => machine.set_nick(&nick),
        }
    }
}

/// Now as a `server-time` value.
fn now_time() -> Arc<str> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Arc::from(format_server_time(millis))
}

/// Carries out what `side`'s shard asks, until it asks nothing more.
fn pump(side: &Rc<CoreSide>) {
    loop {
        let Some(output) = side.shard.borrow_mut().poll_output() else {
            break;
        };
        let (local, command) = match output {
            ShardOutput::Send { core, op } => {
                send_op(side, core, op);
                continue;
            }
            ShardOutput::Deliver { local, delivery } => (local, Command::Deliver(delivery)),
            ShardOutput::Registered { local, nick } => (local, Command::Registered(nick)),
            ShardOutput::NickRejected { local, nick } => (local, Command::NickRejected(nick)),
            ShardOutput::NickChanged { local, nick } => (local, Command::NickChanged(nick)),
        };
        let sender = side.clients.borrow().get(&local).cloned();
        if let Some(sender) = sender {
            // A connection that is gone refuses it; its quit is on its way to the shard.
            let _ = sender.post(command);
        }
    }
}

/// Runs `op` on core `core`'s side of the server.
fn send_op(side: &Rc<CoreSide>, core: usize, op: Op) {
    let server = side.server;
    let run = move |_reactor: &mut Reactor| {
        let side = CORES.with(|map| map.borrow().get(&server).cloned());
        if let Some(side) = side {
            side.shard.borrow_mut().handle_op(op);
            pump(&side);
        }
    };
    match &side.cores {
        Some(cores) => {
            if let Err(error) = cores.send(core, run) {
                tracing::warn!("irc: an op for core {core} was dropped: {error}");
            }
        }
        // A lone reactor is one shard: the shard never sends to another core.
        None => side.handle.run(run),
    }
}
