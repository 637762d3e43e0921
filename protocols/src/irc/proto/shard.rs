//! One core's part of the IRC network (sans-IO): its clients, and the channels and nicks
//! whose hash it owns.
//!
//! Owns: [`Shard`] and the [`Op`]s shards send each other. The network is partitioned, not
//! locked: every channel and every nick has one *owner* shard (FNV-1a of its RFC 1459
//! lower-case form, modulo the number of shards), which alone reads and writes its state;
//! a client's own state (its nick, channels, capabilities) lives on its *home* shard, the
//! core its connection is on. A command goes from the home shard to the owner as an [`Op`];
//! the owner decides (membership, modes, bans) and fans the result out as one
//! [`Op::Deliver`] per core that has recipients (the line is encoded once, shared by every
//! recipient there). Nick uniqueness is the nick owner's: two clients asking for one nick on
//! two cores are ordered by that shard, and the second gets `433`.
//! Contract: calls on a shard ([`Shard::register`], [`Shard::command`], [`Shard::quit`],
//! [`Shard::handle_op`]) queue [`ShardOutput`]s, taken with [`Shard::poll_output`]: ops for
//! other shards (the caller moves them, in order, to the target core and calls
//! `handle_op` there), lines for clients of this shard, and registration answers. Ops for
//! this shard itself are handled before the call returns.
//! Does not: touch connections, clocks or threads (the engine glue in `irc::server` does),
//! or order messages from different cores (each sender's messages arrive in order).
//! A QUIT or NICK reaches every client sharing a channel with its subject once: the home
//! shard asks each channel's owner for its members ([`Op::Members`]) and sends the line to
//! their union when all have answered.
//! Known gaps: WHOIS lists channels without prefixes; WHO takes a channel or a nick, not
//! a wildcard mask; user mode +i hides nothing yet (WHO and NAMES list everyone).
//! Spec: RFC 2812 §3.2–§3.6, RFC 2811 (channel modes). The channel owner's part is
//! `shard/channel.rs`. Tests: `shard/tests.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::conn::{Caps, Delivery, IrcConfig};
use super::message::{
    Message, Tag, escape_tag_value, irc_lower, is_channel_name, is_valid_channel, is_valid_nick,
    mask_matches,
};
use super::numeric::*;

/// Invitations a channel remembers (a new one past this forgets the others).
const MAX_INVITES: usize = 64;

/// A client in the network: its home core and its id there.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ClientId {
    /// The core (shard) its connection is on.
    pub core: usize,
    /// Its id on that core.
    pub local: u64,
}

/// A client as others see it.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Who {
    /// Where it lives.
    pub id: ClientId,
    /// Its nick.
    pub nick: String,
    /// Its user name (ident).
    pub user: String,
    /// Its host.
    pub host: String,
    /// Its real name.
    pub realname: String,
}

impl Who {
    /// `nick!user@host`.
    #[must_use]
    pub fn mask(&self) -> String {
        format!("{}!{}@{}", self.nick, self.user, self.host)
    }
}

/// Who asked, for the answer: where to send it and how to address it.
#[derive(Clone, Debug)]
pub struct Requester {
    /// The client.
    pub who: Who,
    /// Its capabilities (multi-prefix in NAMES and WHO).
    pub caps: Caps,
    /// The `server-time` of the request (for the lines it causes).
    pub time: Option<Arc<str>>,
}

/// A message between shards (`Send`: it crosses cores).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Op {
    /// To a nick's owner: give `who.nick` to `who.id` (`old`: its nick before, for NICK).
    ClaimNick {
        /// The client and the nick it wants.
        who: Who,
        /// Its current nick when this is a change.
        old: Option<String>,
    },
    /// To a nick's owner: `id` no longer uses `nick`.
    ReleaseNick {
        /// The nick.
        nick: String,
        /// Its holder.
        id: ClientId,
    },
    /// To the home of a client: the answer to its [`Op::ClaimNick`].
    NickResult {
        /// The client.
        local: u64,
        /// The nick claimed.
        nick: String,
        /// Whether it is the client's now.
        granted: bool,
    },
    /// To a nick's owner: deliver `delivery` to that nick's client (PRIVMSG, NOTICE, INVITE).
    ToNick {
        /// The sender.
        from: Requester,
        /// The nick.
        target: String,
        /// The line.
        delivery: Delivery,
        /// No `401` when nobody has the nick (NOTICE).
        quiet: bool,
    },
    /// To a nick's owner: WHOIS or WHO of that nick.
    QueryNick {
        /// The asker.
        from: Requester,
        /// The nick.
        target: String,
        /// WHOIS (else WHO).
        whois: bool,
    },
    /// To a client's home: answer a WHOIS about it.
    WhoisAt {
        /// The client asked about.
        local: u64,
        /// The asker.
        from: Requester,
    },
    /// To a core: deliver a line to some of its clients.
    Deliver {
        /// The clients.
        locals: Vec<u64>,
        /// The line.
        delivery: Delivery,
    },
    /// To a client's home: it is on `channel` now (or its JOIN failed: `None`).
    Joined {
        /// The client.
        local: u64,
        /// The channel's name (`None`: the join failed).
        channel: Option<String>,
    },
    /// To a client's home: it left `channel` (PART, KICK).
    Left {
        /// The client.
        local: u64,
        /// The channel's name.
        channel: String,
    },
    /// To a channel's owner: a command about the channel.
    Channel {
        /// The channel's name.
        channel: String,
        /// The asker.
        from: Requester,
        /// What is asked.
        request: ChannelRequest,
    },
    /// To a client's home: the other members of one of its channels, for a QUIT or NICK
    /// line that every client sharing a channel with it gets once.
    Members {
        /// The gathering.
        token: u64,
        /// The members, the client itself left out.
        ids: Vec<ClientId>,
    },
    /// LIST, going from shard to shard; the last one ends it.
    List {
        /// The asker.
        from: Requester,
        /// Channel names to list (all when empty).
        names: Vec<String>,
    },
}

/// What a client asks of a channel's owner.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ChannelRequest {
    /// JOIN with this key.
    Join(Option<String>),
    /// PART with this reason.
    Part(Option<String>),
    /// The client quit: remove it and answer [`Op::Members`] with the other members.
    Quit {
        /// The home shard's gathering this answer belongs to.
        token: u64,
    },
    /// The client is now known as `new`: answer [`Op::Members`] with the other members.
    Nick {
        /// The new nick.
        new: String,
        /// The home shard's gathering this answer belongs to.
        token: u64,
    },
    /// PRIVMSG or NOTICE to the channel.
    Message {
        /// The line.
        delivery: Delivery,
        /// NOTICE: no error replies.
        quiet: bool,
    },
    /// TOPIC: query (`None`) or set.
    Topic(Option<String>),
    /// NAMES.
    Names,
    /// WHO.
    Who,
    /// MODE with these parameters (the mode string first; empty: query).
    Mode(Vec<String>),
    /// KICK this nick with this reason.
    Kick {
        /// The nick.
        target: String,
        /// The reason.
        reason: Option<String>,
    },
    /// INVITE this nick.
    Invite(String),
}

/// What a [`Shard`] asks of its caller.
#[derive(Debug)]
pub enum ShardOutput {
    /// Move `op` to core `core` and hand it to that core's shard.
    Send {
        /// The target core.
        core: usize,
        /// The op.
        op: Op,
    },
    /// Write `delivery` to local client `local`.
    Deliver {
        /// The client.
        local: u64,
        /// The line.
        delivery: Delivery,
    },
    /// The nick is granted: complete the client's registration.
    Registered {
        /// The client.
        local: u64,
        /// Its nick.
        nick: String,
    },
    /// The nick is taken: the client's registration waits for another NICK.
    NickRejected {
        /// The client.
        local: u64,
        /// The nick refused.
        nick: String,
    },
    /// A registered client's nick changed.
    NickChanged {
        /// The client.
        local: u64,
        /// Its new nick.
        nick: String,
    },
}

/// A client of this shard.
#[derive(Debug)]
struct Local {
    who: Who,
    caps: Caps,
    registered: bool,
    /// Channels it is on: lower-case name to name.
    channels: BTreeMap<String, String>,
    /// JOINs sent and not answered (they count against the channel limit).
    joining: usize,
    invisible: bool,
}

/// One core's part of the network (see the module docs).
#[derive(Debug)]
pub struct Shard {
    config: Arc<IrcConfig>,
    index: usize,
    shards: usize,
    locals: HashMap<u64, Local>,
    /// Nicks this shard owns: lower-case nick to its holder.
    nicks: HashMap<String, Who>,
    /// Channels this shard owns, by lower-case name.
    channels: HashMap<String, Channel>,
    inbox: VecDeque<Op>,
    outputs: VecDeque<ShardOutput>,
    /// QUIT and NICK lines waiting for the members of every channel of their client.
    gathering: HashMap<u64, Gather>,
    next_token: u64,
}

/// A line for everyone who shares a channel with a client, sent once all its channels
/// answered (so a client on two of them gets it once).
#[derive(Debug)]
struct Gather {
    remaining: usize,
    ids: std::collections::BTreeSet<ClientId>,
    delivery: Delivery,
}

/// The shard owning `name` (a nick or channel, any case) among `shards`.
#[must_use]
pub fn owner(name: &str, shards: usize) -> usize {
    // FNV-1a: stable across runs and platforms (the owner must be the same on every core).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in irc_lower(name).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

impl Shard {
    /// Shard `index` of `shards`.
    #[must_use]
    pub fn new(config: Arc<IrcConfig>, index: usize, shards: usize) -> Self {
        Self {
            config,
            index,
            shards: shards.max(1),
            locals: HashMap::new(),
            nicks: HashMap::new(),
            channels: HashMap::new(),
            inbox: VecDeque::new(),
            outputs: VecDeque::new(),
            gathering: HashMap::new(),
            next_token: 0,
        }
    }

    /// The next thing for the caller to do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ShardOutput> {
        self.outputs.pop_front()
    }

    /// Channels this shard owns.
    #[must_use]
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Clients of this shard.
    #[must_use]
    pub fn client_count(&self) -> usize {
        self.locals.len()
    }

    /// Local client `local` completed NICK and USER: claims its nick.
    pub fn register(&mut self, local: u64, who: Who, caps: Caps) {
        let nick = who.nick.clone();
        self.locals.insert(
            local,
            Local {
                who: who.clone(),
                caps,
                registered: false,
                channels: BTreeMap::new(),
                joining: 0,
                invisible: false,
            },
        );
        self.route(owner(&nick, self.shards), Op::ClaimNick { who, old: None });
        self.run();
    }

    /// Local client `local` left (QUIT, error, lost): its channels and nick are released.
    pub fn quit(&mut self, local: u64, reason: &str, time: Option<Arc<str>>) {
        let Some(client) = self.locals.remove(&local) else {
            return;
        };
        if client.registered {
            let line = Message::new("QUIT", vec![reason.to_owned()]).with_prefix(client.who.mask());
            let delivery = delivery(&line, time.clone(), None);
            let from = Requester {
                who: client.who.clone(),
                caps: client.caps,
                time,
            };
            let channels = client.channels.into_values().collect();
            self.gather(channels, &from, delivery, |token| ChannelRequest::Quit {
                token,
            });
            let nick = client.who.nick.clone();
            self.route(
                owner(&nick, self.shards),
                Op::ReleaseNick {
                    nick,
                    id: client.who.id,
                },
            );
        }
        self.run();
    }

    /// A command from registered local client `local` (with its current capabilities and
    /// the `server-time` of now).
    pub fn command(&mut self, local: u64, caps: Caps, message: &Message, time: Option<Arc<str>>) {
        let Some(client) = self.locals.get_mut(&local) else {
            return;
        };
        client.caps = caps;
        let from = Requester {
            who: client.who.clone(),
            caps,
            time,
        };
        let p = |i: usize| message.param(i).to_owned();
        let need = |n: usize| message.params.len() >= n && !message.param(n - 1).is_empty();
        match message.command.as_str() {
            "NICK" if !need(1) => self.reply(&from, ERR_NONICKNAMEGIVEN, &["No nickname given"]),
            "NICK" => self.nick(local, &from, &p(0)),
            "JOIN" if !need(1) => self.need_more(&from, "JOIN"),
            "JOIN" => self.join(local, &from, &p(0), message.params.get(1)),
            "PART" if !need(1) => self.need_more(&from, "PART"),
            "PART" => {
                for channel in p(0).split(',').filter(|c| !c.is_empty()) {
                    let reason = message.params.get(1).cloned();
                    self.ask_channel(channel.to_owned(), &from, ChannelRequest::Part(reason));
                }
            }
            "PRIVMSG" | "NOTICE" => self.privmsg(&from, message),
            "TOPIC" if !need(1) => self.need_more(&from, "TOPIC"),
            "TOPIC" => {
                let topic = message.params.get(1).map(|t| {
                    let mut t = t.clone();
                    truncate(&mut t, self.config.max_topic_len);
                    t
                });
                self.ask_channel(p(0), &from, ChannelRequest::Topic(topic));
            }
            "NAMES" if !need(1) => self.reply(&from, RPL_ENDOFNAMES, &["*", "End of /NAMES list."]),
            "NAMES" => {
                for channel in p(0).split(',').filter(|c| !c.is_empty()) {
                    self.ask_channel(channel.to_owned(), &from, ChannelRequest::Names);
                }
            }
            "WHO" if !need(1) => self.reply(&from, RPL_ENDOFWHO, &["*", "End of /WHO list."]),
            "WHO" if is_channel_name(message.param(0)) => {
                self.ask_channel(p(0), &from, ChannelRequest::Who);
            }
            "WHO" => {
                let target = p(0);
                self.route(
                    owner(&target, self.shards),
                    Op::QueryNick {
                        from,
                        target,
                        whois: false,
                    },
                );
            }
            "WHOIS" if !need(1) => self.reply(&from, ERR_NONICKNAMEGIVEN, &["No nickname given"]),
            "WHOIS" => {
                // `WHOIS server nick` asks a server; there is one.
                let target = message.params.last().cloned().unwrap_or_default();
                for target in target.split(',').filter(|t| !t.is_empty()).take(4) {
                    let target = target.to_owned();
                    self.route(
                        owner(&target, self.shards),
                        Op::QueryNick {
                            from: from.clone(),
                            target,
                            whois: true,
                        },
                    );
                }
            }
            "LIST" => {
                self.reply(&from, RPL_LISTSTART, &["Channel", "Users  Name"]);
                let names = message
                    .params
                    .first()
                    .map(|n| {
                        n.split(',')
                            .filter(|c| !c.is_empty())
                            .map(irc_lower)
                            .collect()
                    })
                    .unwrap_or_default();
                self.route(0, Op::List { from, names });
            }
            "MODE" if !need(1) => self.need_more(&from, "MODE"),
            "MODE" if is_channel_name(message.param(0)) => {
                let params = message.params[1..].to_vec();
                self.ask_channel(p(0), &from, ChannelRequest::Mode(params));
            }
            "MODE" => self.user_mode(local, &from, message),
            "KICK" if !need(2) => self.need_more(&from, "KICK"),
            "KICK" => {
                let reason = message.params.get(2).cloned();
                for target in p(1).split(',').filter(|t| !t.is_empty()) {
                    let request = ChannelRequest::Kick {
                        target: target.to_owned(),
                        reason: reason.clone(),
                    };
                    self.ask_channel(p(0), &from, request);
                }
            }
            "INVITE" if !need(2) => self.need_more(&from, "INVITE"),
            "INVITE" => self.ask_channel(p(1), &from, ChannelRequest::Invite(p(0))),
            "USERHOST" | "ISON" | "AWAY" => {
                // Not supported; answered so clients that send them at start-up are not
                // left waiting.
                self.reply(
                    &from,
                    ERR_UNKNOWNCOMMAND,
                    &[&message.command, "Unknown command"],
                );
            }
            other => self.reply(&from, ERR_UNKNOWNCOMMAND, &[other, "Unknown command"]),
        }
        self.run();
    }

    /// An op from another shard (or from this one, through the caller).
    pub fn handle_op(&mut self, op: Op) {
        self.inbox.push_back(op);
        self.run();
    }

    fn run(&mut self) {
        // Each op handles in bounded work; ops for this shard queue behind it.
        while let Some(op) = self.inbox.pop_front() {
            self.op(op);
        }
    }

    fn route(&mut self, core: usize, op: Op) {
        if core == self.index {
            self.inbox.push_back(op);
        } else {
            self.outputs.push_back(ShardOutput::Send { core, op });
        }
    }

    fn ask_channel(&mut self, channel: String, from: &Requester, request: ChannelRequest) {
        let core = owner(&channel, self.shards);
        self.route(
            core,
            Op::Channel {
                channel,
                from: from.clone(),
                request,
            },
        );
    }

    /// Sends a numeric to `to`: `:server code nick params...`.
    fn reply(&mut self, to: &Requester, code: &str, params: &[&str]) {
        self.reply_to(&to.who, code, params);
    }

    fn reply_to(&mut self, to: &Who, code: &str, params: &[&str]) {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(to.nick.clone());
        all.extend(params.iter().map(|p| (*p).to_owned()));
        let line = Message::new(code, all).with_prefix(self.config.server_name.clone());
        self.deliver_to(&[to.id], &delivery(&line, None, None));
    }

    fn need_more(&mut self, from: &Requester, command: &str) {
        self.reply(
            from,
            ERR_NEEDMOREPARAMS,
            &[command, "Not enough parameters"],
        );
    }

    /// Delivers to `ids`: one op per core.
    fn deliver_to(&mut self, ids: &[ClientId], delivery: &Delivery) {
        let mut by_core: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for id in ids {
            by_core.entry(id.core).or_default().push(id.local);
        }
        for (core, locals) in by_core {
            if core == self.index {
                for local in locals {
                    self.outputs.push_back(ShardOutput::Deliver {
                        local,
                        delivery: delivery.clone(),
                    });
                }
            } else {
                self.outputs.push_back(ShardOutput::Send {
                    core,
                    op: Op::Deliver {
                        locals,
                        delivery: delivery.clone(),
                    },
                });
            }
        }
    }

    fn nick(&mut self, local: u64, from: &Requester, new: &str) {
        if !is_valid_nick(new, self.config.max_nick_len) {
            self.reply(from, ERR_ERRONEUSNICKNAME, &[new, "Erroneous nickname"]);
            return;
        }
        if new == from.who.nick {
            return;
        }
        let mut who = from.who.clone();
        who.nick = new.to_owned();
        if irc_lower(new) == irc_lower(&from.who.nick) {
            // A change of case: the nick is already this client's.
            self.nick_granted(local, new, from.time.clone());
            return;
        }
        let old = Some(from.who.nick.clone());
        self.route(owner(new, self.shards), Op::ClaimNick { who, old });
    }

    fn nick_granted(&mut self, local: u64, new: &str, time: Option<Arc<str>>) {
        let Some(client) = self.locals.get_mut(&local) else {
            // Gone meanwhile: give the nick back.
            let id = ClientId {
                core: self.index,
                local,
            };
            let nick = new.to_owned();
            self.route(owner(&nick, self.shards), Op::ReleaseNick { nick, id });
            return;
        };
        let old = std::mem::replace(&mut client.who.nick, new.to_owned());
        let mut before = client.who.clone();
        before.nick.clone_from(&old);
        let line = Message::new("NICK", vec![new.to_owned()]).with_prefix(before.mask());
        let delivery = delivery(&line, time.clone(), None);
        let channels: Vec<String> = client.channels.values().cloned().collect();
        let from = Requester {
            who: before,
            caps: client.caps,
            time,
        };
        let id = from.who.id;
        self.outputs.push_back(ShardOutput::NickChanged {
            local,
            nick: new.to_owned(),
        });
        self.deliver_to(&[id], &delivery);
        let new = new.to_owned();
        self.gather(channels, &from, delivery, |token| ChannelRequest::Nick {
            new: new.clone(),
            token,
        });
        if irc_lower(&old) != irc_lower(&new) {
            self.route(owner(&old, self.shards), Op::ReleaseNick { nick: old, id });
        }
    }

    /// Asks each of `channels` for its members (`request(token)`), then sends `delivery`
    /// to all of them once.
    fn gather(
        &mut self,
        channels: Vec<String>,
        from: &Requester,
        delivery: Delivery,
        request: impl Fn(u64) -> ChannelRequest,
    ) {
        if channels.is_empty() {
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.gathering.insert(
            token,
            Gather {
                remaining: channels.len(),
                ids: std::collections::BTreeSet::new(),
                delivery,
            },
        );
        for channel in channels {
            self.ask_channel(channel, from, request(token));
        }
    }

    fn join(&mut self, local: u64, from: &Requester, channels: &str, keys: Option<&String>) {
        if channels == "0" {
            let names: Vec<String> = self
                .locals
                .get(&local)
                .map(|c| c.channels.values().cloned().collect())
                .unwrap_or_default();
            for channel in names {
                self.ask_channel(channel, from, ChannelRequest::Part(None));
            }
            return;
        }
        let mut keys = keys.map(|k| k.split(',')).into_iter().flatten();
        for channel in channels.split(',') {
            let key = keys.next().filter(|k| !k.is_empty()).map(str::to_owned);
            if !is_valid_channel(channel, self.config.max_channel_len) {
                self.reply(from, ERR_NOSUCHCHANNEL, &[channel, "No such channel"]);
                continue;
            }
            let Some(client) = self.locals.get_mut(&local) else {
                return;
            };
            if client.channels.contains_key(&irc_lower(channel)) {
                continue;
            }
            if client.channels.len() + client.joining >= self.config.max_channels {
                self.reply(
                    from,
                    ERR_TOOMANYCHANNELS,
                    &[channel, "You have joined too many channels"],
                );
                continue;
            }
            client.joining += 1;
            self.ask_channel(channel.to_owned(), from, ChannelRequest::Join(key));
        }
    }

    fn privmsg(&mut self, from: &Requester, message: &Message) {
        let quiet = message.command == "NOTICE";
        if message.params.is_empty() {
            if !quiet {
                let text = format!("No recipient given ({})", message.command);
                self.reply(from, ERR_NORECIPIENT, &[&text]);
            }
            return;
        }
        let Some(text) = message.params.get(1).filter(|t| !t.is_empty()) else {
            if !quiet {
                self.reply(from, ERR_NOTEXTTOSEND, &["No text to send"]);
            }
            return;
        };
        let client_tags: Vec<&Tag> = message.tags.iter().filter(|t| t.is_client_only()).collect();
        let client_tags = (!client_tags.is_empty()).then(|| {
            let joined: Vec<String> = client_tags
                .iter()
                .map(|t| match t.value.as_deref().filter(|v| !v.is_empty()) {
                    Some(v) => format!("{}={}", t.key, escape_tag_value(v)),
                    None => t.key.clone(),
                })
                .collect();
            Arc::<str>::from(joined.join(";"))
        });
        for target in message
            .param(0)
            .split(',')
            .filter(|t| !t.is_empty())
            .take(4)
        {
            let line = Message::new(
                message.command.clone(),
                vec![target.to_owned(), text.clone()],
            )
            .with_prefix(from.who.mask());
            let delivery = delivery(&line, from.time.clone(), client_tags.clone());
            if is_channel_name(target) {
                let request = ChannelRequest::Message { delivery, quiet };
                self.ask_channel(target.to_owned(), from, request);
            } else {
                self.route(
                    owner(target, self.shards),
                    Op::ToNick {
                        from: from.clone(),
                        target: target.to_owned(),
                        delivery,
                        quiet,
                    },
                );
            }
        }
    }

    fn user_mode(&mut self, local: u64, from: &Requester, message: &Message) {
        if irc_lower(message.param(0)) != irc_lower(&from.who.nick) {
            self.reply(
                from,
                ERR_USERSDONTMATCH,
                &["Cannot change mode for other users"],
            );
            return;
        }
        let Some(client) = self.locals.get_mut(&local) else {
            return;
        };
        if message.params.len() < 2 {
            let modes = if client.invisible { "+i" } else { "+" };
            self.reply(from, RPL_UMODEIS, &[modes]);
            return;
        }
        let mut on = true;
        let mut changed = String::new();
        let mut unknown = false;
        for c in message.param(1).chars() {
            match c {
                '+' => on = true,
                '-' => on = false,
                'i' => {
                    if client.invisible != on {
                        client.invisible = on;
                        changed.push(if on { '+' } else { '-' });
                        changed.push('i');
                    }
                }
                _ => unknown = true,
            }
        }
        if unknown {
            self.reply(from, ERR_UMODEUNKNOWNFLAG, &["Unknown MODE flag"]);
        }
        if !changed.is_empty() {
            let nick = from.who.nick.clone();
            let line = Message::new("MODE", vec![nick.clone(), changed]).with_prefix(nick);
            self.deliver_to(&[from.who.id], &delivery(&line, from.time.clone(), None));
        }
    }

    fn op(&mut self, op: Op) {
        match op {
            Op::ClaimNick { who, old } => {
                let key = irc_lower(&who.nick);
                let granted = match self.nicks.get(&key) {
                    Some(holder) => holder.id == who.id,
                    None => true,
                };
                if granted {
                    self.nicks.insert(key, who.clone());
                }
                let _ = old;
                self.route(
                    who.id.core,
                    Op::NickResult {
                        local: who.id.local,
                        nick: who.nick,
                        granted,
                    },
                );
            }
            Op::ReleaseNick { nick, id } => {
                let key = irc_lower(&nick);
                if self.nicks.get(&key).is_some_and(|holder| holder.id == id) {
                    self.nicks.remove(&key);
                }
            }
            Op::NickResult {
                local,
                nick,
                granted,
            } => self.nick_result(local, nick, granted),
            Op::ToNick {
                from,
                target,
                delivery,
                quiet,
            } => match self.nicks.get(&irc_lower(&target)) {
                Some(holder) => {
                    let id = holder.id;
                    self.deliver_to(&[id], &delivery);
                }
                None if !quiet => {
                    self.reply(&from, ERR_NOSUCHNICK, &[&target, "No such nick/channel"]);
                }
                None => {}
            },
            Op::QueryNick {
                from,
                target,
                whois,
            } => self.query_nick(from, &target, whois),
            Op::WhoisAt { local, from } => self.whois_at(local, &from),
            Op::Deliver { locals, delivery } => {
                for local in locals {
                    self.outputs.push_back(ShardOutput::Deliver {
                        local,
                        delivery: delivery.clone(),
                    });
                }
            }
            Op::Joined { local, channel } => {
                if let Some(client) = self.locals.get_mut(&local) {
                    client.joining = client.joining.saturating_sub(1);
                    if let Some(name) = channel {
                        client.channels.insert(irc_lower(&name), name);
                    }
                }
            }
            Op::Left { local, channel } => {
                if let Some(client) = self.locals.get_mut(&local) {
                    client.channels.remove(&irc_lower(&channel));
                }
            }
            Op::Channel {
                channel,
                from,
                request,
            } => self.channel_op(&channel, &from, request),
            Op::Members { token, ids } => {
                let Some(gather) = self.gathering.get_mut(&token) else {
                    return;
                };
                gather.ids.extend(ids);
                gather.remaining = gather.remaining.saturating_sub(1);
                if gather.remaining == 0
                    && let Some(gather) = self.gathering.remove(&token)
                {
                    let ids: Vec<ClientId> = gather.ids.into_iter().collect();
                    self.deliver_to(&ids, &gather.delivery);
                }
            }
            Op::List { from, names } => {
                let mut rows: Vec<(String, usize, String)> = self
                    .channels
                    .iter()
                    .filter(|(key, _)| names.is_empty() || names.contains(key))
                    .map(|(_, c)| {
                        (
                            c.name.clone(),
                            c.members.len(),
                            c.topic.clone().unwrap_or_default(),
                        )
                    })
                    .collect();
                rows.sort();
                for (name, count, topic) in rows {
                    self.reply(&from, RPL_LIST, &[&name, &count.to_string(), &topic]);
                }
                if self.index + 1 < self.shards {
                    self.route(self.index + 1, Op::List { from, names });
                } else {
                    self.reply(&from, RPL_LISTEND, &["End of /LIST"]);
                }
            }
        }
    }

    fn nick_result(&mut self, local: u64, nick: String, granted: bool) {
        let Some(client) = self.locals.get_mut(&local) else {
            if granted {
                // The client left while its claim travelled.
                let id = ClientId {
                    core: self.index,
                    local,
                };
                self.route(owner(&nick, self.shards), Op::ReleaseNick { nick, id });
            }
            return;
        };
        match (client.registered, granted) {
            (false, true) => {
                client.registered = true;
                self.outputs
                    .push_back(ShardOutput::Registered { local, nick });
            }
            (false, false) => {
                self.locals.remove(&local);
                self.outputs
                    .push_back(ShardOutput::NickRejected { local, nick });
            }
            (true, true) => self.nick_granted(local, &nick, None),
            (true, false) => {
                let who = client.who.clone();
                self.reply_to(
                    &who,
                    ERR_NICKNAMEINUSE,
                    &[&nick, "Nickname is already in use"],
                );
            }
        }
    }

    fn query_nick(&mut self, from: Requester, target: &str, whois: bool) {
        let Some(holder) = self.nicks.get(&irc_lower(target)).cloned() else {
            self.reply(&from, ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
            if whois {
                self.reply(&from, RPL_ENDOFWHOIS, &[target, "End of /WHOIS list."]);
            } else {
                self.reply(&from, RPL_ENDOFWHO, &[target, "End of /WHO list."]);
            }
            return;
        };
        if whois {
            self.route(
                holder.id.core,
                Op::WhoisAt {
                    local: holder.id.local,
                    from,
                },
            );
        } else {
            let server = self.config.server_name.clone();
            let realname = format!("0 {}", holder.realname);
            self.reply(
                &from,
                RPL_WHOREPLY,
                &[
                    "*",
                    &holder.user,
                    &holder.host,
                    &server,
                    &holder.nick,
                    "H",
                    &realname,
                ],
            );
            self.reply(&from, RPL_ENDOFWHO, &[target, "End of /WHO list."]);
        }
    }

    fn whois_at(&mut self, local: u64, from: &Requester) {
        let Some(client) = self.locals.get(&local) else {
            return;
        };
        let who = client.who.clone();
        let channels: Vec<String> = client.channels.values().cloned().collect();
        let server = self.config.server_name.clone();
        self.reply(
            from,
            RPL_WHOISUSER,
            &[&who.nick, &who.user, &who.host, "*", &who.realname],
        );
        if !channels.is_empty() {
            self.reply(from, RPL_WHOISCHANNELS, &[&who.nick, &channels.join(" ")]);
        }
        let network = self.config.network.clone();
        self.reply(from, RPL_WHOISSERVER, &[&who.nick, &server, &network]);
        self.reply(from, RPL_ENDOFWHOIS, &[&who.nick, "End of /WHOIS list."]);
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
}

/// `message` encoded once (the last parameter cut to fit), for every recipient.
fn delivery(message: &Message, time: Option<Arc<str>>, client_tags: Option<Arc<str>>) -> Delivery {
    let mut line = Vec::with_capacity(96);
    if message.encode_truncated(&mut line).is_err() {
        // Our own lines always encode (checked names and nicks); keep an empty delivery
        // rather than a malformed line.
        line.clear();
    }
    Delivery {
        line: line.into(),
        time,
        client_tags,
    }
}

mod channel;
use self::channel::Channel;
#[cfg(test)]
mod tests;
