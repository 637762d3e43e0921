//! Cross-core pub/sub for WebSocket connections: a [`Topic`] whose messages reach its
//! subscribers on every core, encoded once per message per core (not per subscriber), with
//! a policy for subscribers that do not keep up ([`SlowPolicy`]).
//!
//! Owns: [`Topic`] (`Send + Sync`: made once, cloned to every core), [`LocalTopic`] (its
//! side on one core: the subscribers there and the encoder), [`ChatApp`] (the application
//! of `ringwork serve ws-chat`: every message to every client) and [`ws_chat_server`].
//! Contract: [`LocalTopic::publish`] delivers on this core at once and sends the message
//! (a `Bytes`, shared) to every other core with [`Cores::send`]; each core encodes it into
//! one unmasked frame, and one compressed frame (a compressor without context) if any of
//! its subscribers negotiated permessage-deflate, and hands the same `Bytes` to each
//! subscriber's connection ([`WsConn::send_shared`]). A subscriber whose connection holds
//! more than [`TopicConfig::max_queued`] bytes unsent is dropped from the message
//! ([`SlowPolicy::Drop`], counted) or closed ([`SlowPolicy::Close`] with 1008 or 1013), so
//! one slow reader cannot grow memory: what it holds is bounded, and the frames it holds
//! are the shared ones. Across the subscribers of a core, the bytes they hold unsent are
//! bounded too ([`TopicConfig::max_queued_total`]): a message that would take the core's
//! total past it is not given to the subscribers with the largest queues (the policy
//! applies to them, largest first, until the rest fit).
//! Does not: persist, order messages across publishers on different cores (each core sees
//! each publisher's messages in order), or acknowledge delivery.
//!
//! The per-core side is found by the cross-core job through a thread-local map keyed by
//! topic (the engine keeps no per-core user storage, and a job sent with [`Cores::send`]
//! runs on the target core's thread, where the [`LocalTopic`] lives).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

use ringwork::{Context, Cores, Reactor};

use super::proto::deflate::Deflater;
use super::proto::{CloseCode, Message, SharedFrame, WsConfig, WsConn, WsEvent, encode_shared};
use super::server::WsEcho;
use crate::http::server::{HttpServer, Request, Responder, Response, ServerConfig};
use crate::kit::adapter::{Application, Mailbox, MailboxSender};

/// What happens to a subscriber that does not keep up.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum SlowPolicy {
    /// Skip messages while it is behind (it misses them; counted in [`TopicStats`]).
    Drop,
    /// Close it with this code (1008 policy violation, or 1013 try again later).
    Close(CloseCode),
}

/// Settings of a [`Topic`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TopicConfig {
    /// Bytes a subscriber's connection may hold unsent before it counts as slow. Default
    /// 1 MiB.
    pub max_queued: usize,
    /// Bytes the subscribers of one core may hold unsent in all (each subscriber's unsent
    /// bytes counted, shared frames once per subscriber: an upper bound of what they
    /// keep alive). A message that would take the total past it goes to the subscribers
    /// with the largest queues under the slow policy instead (largest first, until the
    /// others fit; a subscriber holding nothing is never one of them). Default 256 MiB.
    pub max_queued_total: usize,
    /// What happens to a slow subscriber. Default: close with 1013.
    pub slow: SlowPolicy,
    /// Compression level of the shared compressed frames.
    pub level: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            max_queued: 1 << 20,
            max_queued_total: 256 << 20,
            slow: SlowPolicy::Close(CloseCode::TRY_AGAIN_LATER),
            level: 6,
        }
    }
}

/// A topic: make it once, give a clone to every core, and take its [`LocalTopic`] there.
#[derive(Clone, Debug)]
pub struct Topic {
    id: u64,
    config: TopicConfig,
}

/// Topic ids, unique in the process.
static NEXT_TOPIC: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's (core's) side of every topic.
    static LOCAL: RefCell<HashMap<u64, Weak<LocalInner>>> = RefCell::new(HashMap::new());
}

impl Topic {
    /// A new topic.
    #[must_use]
    pub fn new(config: TopicConfig) -> Self {
        Self {
            id: NEXT_TOPIC.fetch_add(1, Ordering::Relaxed),
            config,
        }
    }

    /// Its side on `reactor`'s core (call once per core, in `Runtime::run`'s closure).
    #[must_use]
    pub fn local(&self, reactor: &Reactor) -> LocalTopic {
        let inner = Rc::new(LocalInner {
            id: self.id,
            config: self.config,
            cores: reactor.cores().cloned(),
            subscribers: RefCell::new(Vec::new()),
            next_subscriber: Cell::new(0),
            queued_total: Cell::new(0),
            deflater: RefCell::new(Deflater::new(self.config.level, 15, true)),
            stats: Cell::new(TopicStats::default()),
        });
        LOCAL.with(|map| map.borrow_mut().insert(self.id, Rc::downgrade(&inner)));
        LocalTopic { inner }
    }
}

/// Counters of one core's side of a topic.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct TopicStats {
    /// Messages published on this core.
    pub published: u64,
    /// Messages delivered to this core's subscribers (one per message, not per subscriber).
    pub messages: u64,
    /// Frames encoded (plain and compressed): at most two per message.
    pub encodings: u64,
    /// Deliveries to subscribers.
    pub deliveries: u64,
    /// Deliveries skipped under [`SlowPolicy::Drop`].
    pub dropped: u64,
    /// Subscribers closed under [`SlowPolicy::Close`].
    pub closed_slow: u64,
    /// Deliveries that went to the slow policy because the core's subscribers held more
    /// than [`TopicConfig::max_queued_total`] (also counted in `dropped` or
    /// `closed_slow`).
    pub over_total: u64,
}

/// One message for one subscriber: the frame it can read.
pub struct Delivery {
    plain: SharedFrame,
    compressed: Option<SharedFrame>,
    topic: Rc<LocalInner>,
    /// The core's total is over its bound and this subscriber's queue is among the
    /// largest: the slow policy applies.
    over_total: bool,
}

struct Subscriber {
    id: u64,
    sender: MailboxSender<Delivery>,
    deflate: bool,
    /// Bytes it holds unsent, as its connection last said (0 for subscribers that do not
    /// report: [`LocalTopic::subscribe`]).
    queued: Rc<Cell<usize>>,
}

struct LocalInner {
    id: u64,
    config: TopicConfig,
    cores: Option<Cores>,
    subscribers: RefCell<Vec<Subscriber>>,
    next_subscriber: Cell<u64>,
    /// The sum of the subscribers' `queued`.
    queued_total: Cell<usize>,
    /// Without context takeover: its frames are readable by every deflate subscriber.
    deflater: RefCell<Deflater>,
    stats: Cell<TopicStats>,
}

impl Drop for LocalInner {
    fn drop(&mut self) {
        let id = self.id;
        let _ = LOCAL.try_with(|map| map.borrow_mut().remove(&id));
    }
}

impl LocalInner {
    fn count(&self, f: impl FnOnce(&mut TopicStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    /// Encodes `message` once (twice with compression) and hands it to every subscriber.
    fn deliver(self: &Rc<Self>, message: &Message) {
        let subscribers = self.subscribers.borrow();
        if subscribers.is_empty() {
            return;
        }
        let plain = encode_shared(message, None);
        let compressed = subscribers
            .iter()
            .any(|s| s.deflate)
            .then(|| encode_shared(message, Some(&mut self.deflater.borrow_mut())));
        let encodings = 1 + u64::from(compressed.is_some());
        let over_total = self.over_total(&subscribers, plain.bytes().len());
        for (i, subscriber) in subscribers.iter().enumerate() {
            let _ = subscriber.sender.post(Delivery {
                plain: plain.clone(),
                compressed: compressed.clone(),
                topic: Rc::clone(self),
                over_total: over_total.get(i).copied().unwrap_or(false),
            });
        }
        let n = subscribers.len() as u64;
        self.count(|s| {
            s.messages += 1;
            s.encodings += encodings;
            s.deliveries += n;
        });
    }
}

impl LocalInner {
    /// Which subscribers a frame of `len` bytes goes to under the slow policy because the
    /// core's total would pass `max_queued_total` (empty: none): the largest queues first,
    /// until the others fit. A victim saves the frame, and under `Close` its queue too.
    fn over_total(&self, subscribers: &[Subscriber], len: usize) -> Vec<bool> {
        let limit = self.config.max_queued_total;
        let mut projected = self
            .queued_total
            .get()
            .saturating_add(len.saturating_mul(subscribers.len()));
        if projected <= limit {
            return Vec::new();
        }
        let mut order: Vec<usize> = (0..subscribers.len())
            .filter(|&i| subscribers[i].queued.get() > 0)
            .collect();
        order.sort_unstable_by_key(|&i| std::cmp::Reverse(subscribers[i].queued.get()));
        let mut victims = vec![false; subscribers.len()];
        for i in order {
            if projected <= limit {
                break;
            }
            victims[i] = true;
            let freed = match self.config.slow {
                SlowPolicy::Drop => 0,
                SlowPolicy::Close(_) => subscribers[i].queued.get(),
            };
            projected = projected.saturating_sub(len + freed);
        }
        victims
    }

    /// Subscriber `queued` now holds `now` bytes unsent.
    fn set_queued(&self, queued: &Cell<usize>, now: usize) {
        let total = self.queued_total.get().saturating_sub(queued.get());
        self.queued_total.set(total.saturating_add(now));
        queued.set(now);
    }
}

/// A topic's side on one core (`!Send`; clone it into this core's connections).
#[derive(Clone)]
pub struct LocalTopic {
    inner: Rc<LocalInner>,
}

impl LocalTopic {
    /// Subscribes the connection behind `sender` (its mailbox takes [`Delivery`]s);
    /// `deflate`: it negotiated permessage-deflate. Returns its id for
    /// [`LocalTopic::unsubscribe`].
    pub fn subscribe(&self, sender: MailboxSender<Delivery>, deflate: bool) -> u64 {
        self.subscribe_counted(sender, deflate).0
    }

    /// As [`LocalTopic::subscribe`], with the cell its connection reports its unsent bytes
    /// in (through [`LocalInner::set_queued`]).
    fn subscribe_counted(
        &self,
        sender: MailboxSender<Delivery>,
        deflate: bool,
    ) -> (u64, Rc<Cell<usize>>) {
        let id = self.inner.next_subscriber.get();
        self.inner.next_subscriber.set(id + 1);
        let queued = Rc::new(Cell::new(0));
        self.inner.subscribers.borrow_mut().push(Subscriber {
            id,
            sender,
            deflate,
            queued: Rc::clone(&queued),
        });
        (id, queued)
    }

    /// Removes subscriber `id`.
    pub fn unsubscribe(&self, id: u64) {
        let mut subscribers = self.inner.subscribers.borrow_mut();
        if let Some(at) = subscribers.iter().position(|s| s.id == id) {
            let gone = subscribers.swap_remove(at);
            self.inner.set_queued(&gone.queued, 0);
        }
    }

    /// Bytes this core's subscribers hold unsent, as they last reported (the figure
    /// [`TopicConfig::max_queued_total`] bounds).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.inner.queued_total.get()
    }

    /// Subscribers on this core.
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.borrow().len()
    }

    /// This core's counters.
    #[must_use]
    pub fn stats(&self) -> TopicStats {
        self.inner.stats.get()
    }

    /// Publishes `message` to every subscriber on every core.
    pub fn publish(&self, message: Message) {
        self.inner.count(|s| s.published += 1);
        if let Some(cores) = &self.inner.cores {
            for core in (0..cores.len()).filter(|&c| c != cores.this_core()) {
                let (id, message) = (self.inner.id, message.clone());
                // A core that stopped is skipped.
                let _ = cores.send(core, move |_reactor| {
                    let local = LOCAL.with(|map| map.borrow().get(&id).and_then(Weak::upgrade));
                    if let Some(local) = local {
                        local.deliver(&message);
                    }
                });
            }
        }
        self.inner.deliver(&message);
    }
}

/// `ringwork serve ws-chat`'s connection: subscribes once open, publishes every message it
/// receives, and writes what the topic delivers under the slow-subscriber policy.
pub struct ChatApp {
    topic: LocalTopic,
    subscription: Option<(u64, Rc<Cell<usize>>)>,
}

impl ChatApp {
    /// A connection of `topic`.
    #[must_use]
    pub fn new(topic: LocalTopic) -> Self {
        Self {
            topic,
            subscription: None,
        }
    }

    fn leave(&mut self) {
        if let Some((id, _)) = self.subscription.take() {
            self.topic.unsubscribe(id);
        }
    }

    /// Tells the topic what this connection holds unsent now.
    fn report_queued(&self, machine: &WsConn, ctx: &Context<'_>) {
        if let Some((_, queued)) = &self.subscription {
            let now = ctx.buffered() + machine.buffered();
            if now != queued.get() {
                self.topic.inner.set_queued(queued, now);
            }
        }
    }
}

impl Application<WsConn> for ChatApp {
    type Command = Delivery;
    type Status = ();

    fn event(
        &mut self,
        machine: &mut WsConn,
        event: WsEvent,
        _ctx: &mut Context<'_>,
        mailbox: &Mailbox<Delivery>,
    ) {
        match event {
            WsEvent::Open(negotiated) => {
                let deflate = negotiated.deflate.is_some() && machine.is_compressed();
                self.subscription = Some(self.topic.subscribe_counted(mailbox.sender(), deflate));
            }
            WsEvent::Message(message) => self.topic.publish(message),
            WsEvent::Closing { .. } | WsEvent::Closed(_) => self.leave(),
            _ => {}
        }
    }

    fn command(&mut self, machine: &mut WsConn, delivery: Delivery, ctx: &mut Context<'_>) {
        if self.subscription.is_none() || !machine.is_open() {
            return;
        }
        let topic = &delivery.topic;
        if delivery.over_total || ctx.buffered() + machine.buffered() > topic.config.max_queued {
            if delivery.over_total {
                topic.count(|s| s.over_total += 1);
            }
            match topic.config.slow {
                SlowPolicy::Drop => topic.count(|s| s.dropped += 1),
                SlowPolicy::Close(code) => {
                    topic.count(|s| s.closed_slow += 1);
                    self.leave();
                    let _ = machine.close(code, "too slow");
                }
            }
            return;
        }
        let frame = match (&delivery.compressed, machine.is_compressed()) {
            (Some(compressed), true) => compressed,
            _ => &delivery.plain,
        };
        // Refused only when closing: nothing to deliver to then.
        let _ = machine.send_shared(frame);
    }

    fn settled(
        &mut self,
        machine: &mut WsConn,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Delivery>,
    ) {
        // After every drive (deliveries written, or the socket drained): what it holds now.
        self.report_queued(machine, ctx);
    }

    fn lost(
        &mut self,
        _machine: &mut WsConn,
        _ctx: &mut Context<'_>,
        _reason: ringwork::LostReason,
    ) {
        self.leave();
    }
}

/// `ringwork serve ws-chat`: an HTTP/1.1 server whose WebSocket upgrades (any path) join
/// `topic`: every message to every client on every core. `/echo` upgrades to an echo
/// instead (for comparison); other requests get a line saying what this is.
#[must_use]
pub fn ws_chat_server(http: ServerConfig, ws: WsConfig, topic: LocalTopic) -> HttpServer {
    HttpServer::new(
        move |request: Request, respond: Responder| {
            if !request.is_websocket_upgrade() {
                respond.send(Response::text(
                    "ringwork ws-chat: every WebSocket message to every client (ws://HOST:PORT/)\n",
                ));
            } else if request.path() == b"/echo" {
                let _ = request.upgrade_websocket(respond, ws.clone(), WsEcho);
            } else {
                let _ = request.upgrade_websocket(respond, ws.clone(), ChatApp::new(topic.clone()));
            }
        },
        http,
    )
}
