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
//! Spec: RFC 2812 §3.2–§3.6, RFC 2811 (channel modes). Tests: `shard/tests.rs`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
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

#[derive(Debug)]
struct Member {
    who: Who,
    op: bool,
    voice: bool,
}

impl Member {
    fn prefix(&self, multi: bool) -> &'static str {
        match (self.op, self.voice, multi) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            _ => "",
        }
    }
}

#[derive(Debug, Default)]
struct Modes {
    invite_only: bool,
    moderated: bool,
    no_external: bool,
    topic_ops: bool,
    key: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug)]
struct Channel {
    name: String,
    members: BTreeMap<ClientId, Member>,
    topic: Option<String>,
    modes: Modes,
    bans: Vec<String>,
    /// Lower-case nicks invited (they pass +i, +l, +k and bans once).
    invited: HashSet<String>,
}

impl Channel {
    fn member_by_nick(&self, nick: &str) -> Option<ClientId> {
        let nick = irc_lower(nick);
        self.members
            .iter()
            .find(|(_, m)| irc_lower(&m.who.nick) == nick)
            .map(|(id, _)| *id)
    }

    fn banned(&self, who: &Who) -> bool {
        let mask = who.mask();
        self.bans.iter().any(|ban| mask_matches(ban, &mask))
    }

    fn mode_string(&self, member: bool) -> Vec<String> {
        let m = &self.modes;
        let mut flags = String::from("+");
        let mut args = Vec::new();
        for (on, c) in [
            (m.invite_only, 'i'),
            (m.moderated, 'm'),
            (m.no_external, 'n'),
            (m.topic_ops, 't'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if let Some(key) = &m.key {
            flags.push('k');
            args.push(if member { key.clone() } else { "*".into() });
        }
        if let Some(limit) = m.limit {
            flags.push('l');
            args.push(limit.to_string());
        }
        let mut out = vec![flags];
        out.extend(args);
        out
    }
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

    /// Fans `delivery` out to `channel`'s members, except `except`.
    fn fan_out(&mut self, key: &str, delivery: &Delivery, except: Option<ClientId>) {
        let Some(channel) = self.channels.get(key) else {
            return;
        };
        let ids: Vec<ClientId> = channel
            .members
            .keys()
            .copied()
            .filter(|id| Some(*id) != except)
            .collect();
        self.deliver_to(&ids, delivery);
    }

    fn channel_op(&mut self, name: &str, from: &Requester, request: ChannelRequest) {
        let key = irc_lower(name);
        let id = from.who.id;
        if let ChannelRequest::Join(given) = request {
            self.channel_join(name, &key, from, given);
            return;
        }
        let Some(channel) = self.channels.get_mut(&key) else {
            match request {
                ChannelRequest::Message { quiet: false, .. } => {
                    self.reply(from, ERR_NOSUCHNICK, &[name, "No such nick/channel"]);
                }
                ChannelRequest::Names => {
                    self.reply(from, RPL_ENDOFNAMES, &[name, "End of /NAMES list."]);
                }
                ChannelRequest::Who => self.reply(from, RPL_ENDOFWHO, &[name, "End of /WHO list."]),
                ChannelRequest::Quit { token } | ChannelRequest::Nick { token, .. } => {
                    let ids = Vec::new();
                    self.route(from.who.id.core, Op::Members { token, ids });
                }
                ChannelRequest::Message { quiet: true, .. } => {}
                _ => self.reply(from, ERR_NOSUCHCHANNEL, &[name, "No such channel"]),
            }
            return;
        };
        let name = channel.name.clone();
        let member = channel.members.get(&id).map(|m| (m.op, m.voice));
        let is_op = member.is_some_and(|(op, _)| op);
        let time = from.time.clone();
        match request {
            ChannelRequest::Join(_) => {}
            ChannelRequest::Part(reason) => {
                if member.is_none() {
                    self.reply(
                        from,
                        ERR_NOTONCHANNEL,
                        &[&name, "You're not on that channel"],
                    );
                    return;
                }
                let mut params = vec![name.clone()];
                params.extend(reason);
                let line = Message::new("PART", params).with_prefix(from.who.mask());
                self.fan_out(&key, &delivery(&line, time, None), None);
                self.remove_member(&key, id);
                self.route(
                    id.core,
                    Op::Left {
                        local: id.local,
                        channel: name,
                    },
                );
            }
            ChannelRequest::Quit { token } => {
                let ids = if member.is_some() {
                    channel
                        .members
                        .keys()
                        .copied()
                        .filter(|m| *m != id)
                        .collect()
                } else {
                    Vec::new()
                };
                self.remove_member(&key, id);
                self.route(id.core, Op::Members { token, ids });
            }
            ChannelRequest::Nick { new, token } => {
                let ids = match channel.members.get_mut(&id) {
                    Some(m) => {
                        m.who.nick = new;
                        channel
                            .members
                            .keys()
                            .copied()
                            .filter(|m| *m != id)
                            .collect()
                    }
                    None => Vec::new(),
                };
                self.route(id.core, Op::Members { token, ids });
            }
            ChannelRequest::Message { delivery, quiet } => {
                let voiced = member.is_some_and(|(op, voice)| op || voice);
                let refused = (channel.modes.no_external && member.is_none())
                    || (channel.modes.moderated && !voiced)
                    || (!voiced && channel.banned(&from.who));
                if refused {
                    if !quiet {
                        self.reply(
                            from,
                            ERR_CANNOTSENDTOCHAN,
                            &[&name, "Cannot send to channel"],
                        );
                    }
                    return;
                }
                self.fan_out(&key, &delivery, Some(id));
            }
            ChannelRequest::Topic(None) => match channel.topic.clone() {
                Some(topic) => self.reply(from, RPL_TOPIC, &[&name, &topic]),
                None => self.reply(from, RPL_NOTOPIC, &[&name, "No topic is set"]),
            },
            ChannelRequest::Topic(Some(topic)) => {
                if member.is_none() {
                    self.reply(
                        from,
                        ERR_NOTONCHANNEL,
                        &[&name, "You're not on that channel"],
                    );
                } else if channel.modes.topic_ops && !is_op {
                    self.reply(
                        from,
                        ERR_CHANOPRIVSNEEDED,
                        &[&name, "You're not channel operator"],
                    );
                } else {
                    channel.topic = (!topic.is_empty()).then(|| topic.clone());
                    let line =
                        Message::new("TOPIC", vec![name, topic]).with_prefix(from.who.mask());
                    self.fan_out(&key, &delivery(&line, time, None), None);
                }
            }
            ChannelRequest::Names => self.names(&key, from),
            ChannelRequest::Who => {
                let server = self.config.server_name.clone();
                let rows: Vec<[String; 6]> = channel
                    .members
                    .values()
                    .map(|m| {
                        [
                            m.who.user.clone(),
                            m.who.host.clone(),
                            server.clone(),
                            m.who.nick.clone(),
                            format!("H{}", m.prefix(from.caps.multi_prefix)),
                            format!("0 {}", m.who.realname),
                        ]
                    })
                    .collect();
                for [user, host, server, nick, flags, real] in rows {
                    self.reply(
                        from,
                        RPL_WHOREPLY,
                        &[&name, &user, &host, &server, &nick, &flags, &real],
                    );
                }
                self.reply(from, RPL_ENDOFWHO, &[&name, "End of /WHO list."]);
            }
            ChannelRequest::Mode(params) => self.channel_mode(&key, from, &params),
            ChannelRequest::Kick { target, reason } => {
                if member.is_none() {
                    self.reply(
                        from,
                        ERR_NOTONCHANNEL,
                        &[&name, "You're not on that channel"],
                    );
                    return;
                }
                if !is_op {
                    self.reply(
                        from,
                        ERR_CHANOPRIVSNEEDED,
                        &[&name, "You're not channel operator"],
                    );
                    return;
                }
                let Some(victim) = channel.member_by_nick(&target) else {
                    self.reply(
                        from,
                        ERR_USERNOTINCHANNEL,
                        &[&target, &name, "They aren't on that channel"],
                    );
                    return;
                };
                let victim_nick = channel
                    .members
                    .get(&victim)
                    .map(|m| m.who.nick.clone())
                    .unwrap_or(target);
                let reason = reason.unwrap_or_else(|| from.who.nick.clone());
                let line = Message::new("KICK", vec![name.clone(), victim_nick, reason])
                    .with_prefix(from.who.mask());
                self.fan_out(&key, &delivery(&line, time, None), None);
                self.remove_member(&key, victim);
                self.route(
                    victim.core,
                    Op::Left {
                        local: victim.local,
                        channel: name,
                    },
                );
            }
            ChannelRequest::Invite(target) => {
                if member.is_none() {
                    self.reply(
                        from,
                        ERR_NOTONCHANNEL,
                        &[&name, "You're not on that channel"],
                    );
                } else if channel.modes.invite_only && !is_op {
                    self.reply(
                        from,
                        ERR_CHANOPRIVSNEEDED,
                        &[&name, "You're not channel operator"],
                    );
                } else if channel.member_by_nick(&target).is_some() {
                    self.reply(
                        from,
                        ERR_USERONCHANNEL,
                        &[&target, &name, "is already on channel"],
                    );
                } else {
                    // Bounded: past the limit, the invitations so far are forgotten.
                    if channel.invited.len() >= MAX_INVITES {
                        channel.invited.clear();
                    }
                    channel.invited.insert(irc_lower(&target));
                    self.reply(from, RPL_INVITING, &[&target, &name]);
                    let line = Message::new("INVITE", vec![target.clone(), name])
                        .with_prefix(from.who.mask());
                    let delivery = delivery(&line, time, None);
                    self.route(
                        owner(&target, self.shards),
                        Op::ToNick {
                            from: from.clone(),
                            target,
                            delivery,
                            quiet: false,
                        },
                    );
                }
            }
        }
    }

    fn remove_member(&mut self, key: &str, id: ClientId) {
        if let Some(channel) = self.channels.get_mut(key) {
            channel.members.remove(&id);
            if channel.members.is_empty() {
                self.channels.remove(key);
            }
        }
    }

    fn channel_join(&mut self, name: &str, key: &str, from: &Requester, given: Option<String>) {
        let id = from.who.id;
        let channel = self
            .channels
            .entry(key.to_owned())
            .or_insert_with(|| Channel {
                name: name.to_owned(),
                members: BTreeMap::new(),
                topic: None,
                modes: Modes {
                    no_external: true,
                    topic_ops: true,
                    ..Modes::default()
                },
                bans: Vec::new(),
                invited: HashSet::new(),
            });
        let name = channel.name.clone();
        if channel.members.contains_key(&id) {
            self.route(
                id.core,
                Op::Joined {
                    local: id.local,
                    channel: Some(name),
                },
            );
            return;
        }
        let invited = channel.invited.contains(&irc_lower(&from.who.nick));
        let refusal = if invited {
            None
        } else if channel.banned(&from.who) {
            Some((ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"))
        } else if channel.modes.invite_only {
            Some((ERR_INVITEONLYCHAN, "Cannot join channel (+i)"))
        } else if channel.modes.key.is_some() && channel.modes.key != given {
            Some((ERR_BADCHANNELKEY, "Cannot join channel (+k)"))
        } else if channel
            .modes
            .limit
            .is_some_and(|l| channel.members.len() >= l)
        {
            Some((ERR_CHANNELISFULL, "Cannot join channel (+l)"))
        } else {
            None
        };
        if let Some((code, text)) = refusal {
            self.reply(from, code, &[&name, text]);
            self.route(
                id.core,
                Op::Joined {
                    local: id.local,
                    channel: None,
                },
            );
            return;
        }
        channel.invited.remove(&irc_lower(&from.who.nick));
        let first = channel.members.is_empty();
        channel.members.insert(
            id,
            Member {
                who: from.who.clone(),
                op: first,
                voice: false,
            },
        );
        let topic = channel.topic.clone();
        let line = Message::new("JOIN", vec![name.clone()]).with_prefix(from.who.mask());
        self.fan_out(key, &delivery(&line, from.time.clone(), None), None);
        if let Some(topic) = topic {
            self.reply(from, RPL_TOPIC, &[&name, &topic]);
        }
        self.names(key, from);
        self.route(
            id.core,
            Op::Joined {
                local: id.local,
                channel: Some(name),
            },
        );
    }

    fn names(&mut self, key: &str, from: &Requester) {
        let Some(channel) = self.channels.get(key) else {
            return;
        };
        let name = channel.name.clone();
        let names: Vec<String> = channel
            .members
            .values()
            .map(|m| format!("{}{}", m.prefix(from.caps.multi_prefix), m.who.nick))
            .collect();
        // Lines of names that fit the line limit with room for the prefix and nick.
        let room = 400usize.saturating_sub(name.len() + from.who.nick.len());
        let mut line = String::new();
        for n in names {
            if !line.is_empty() && line.len() + n.len() + 1 > room {
                let full = std::mem::take(&mut line);
                self.reply(from, RPL_NAMREPLY, &["=", &name, &full]);
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&n);
        }
        if !line.is_empty() {
            self.reply(from, RPL_NAMREPLY, &["=", &name, &line]);
        }
        self.reply(from, RPL_ENDOFNAMES, &[&name, "End of /NAMES list."]);
    }

    fn channel_mode(&mut self, key: &str, from: &Requester, params: &[String]) {
        let id = from.who.id;
        let max_bans = self.config.max_bans;
        let Some(channel) = self.channels.get_mut(key) else {
            return;
        };
        let name = channel.name.clone();
        let member = channel.members.get(&id);
        let is_op = member.is_some_and(|m| m.op);
        let Some(modes) = params.first() else {
            let mut reply = vec![name.clone()];
            reply.extend(channel.mode_string(member.is_some()));
            let reply: Vec<&str> = reply.iter().map(String::as_str).collect();
            self.reply(from, RPL_CHANNELMODEIS, &reply);
            return;
        };
        let mut args = params[1..].iter();
        let mut on = true;
        let mut applied = String::new();
        let mut applied_sign = None;
        let mut applied_args: Vec<String> = Vec::new();
        let mut errors: Vec<(&'static str, Vec<String>)> = Vec::new();
        let mut denied = false;
        let mut changes = 0;
        for c in modes.chars() {
            if c == '+' || c == '-' {
                on = c == '+';
                continue;
            }
            // A ban list query needs no privileges.
            if c == 'b' && on && args.len() == 0 {
                let bans = channel.bans.clone();
                for ban in bans {
                    errors.push((RPL_BANLIST, vec![name.clone(), ban]));
                }
                errors.push((
                    RPL_ENDOFBANLIST,
                    vec![name.clone(), "End of channel ban list".into()],
                ));
                continue;
            }
            if !"imntklovb".contains(c) {
                errors.push((
                    ERR_UNKNOWNMODE,
                    vec![c.to_string(), "is unknown mode char to me".into()],
                ));
                continue;
            }
            if !is_op {
                denied = true;
                continue;
            }
            changes += 1;
            if changes > 4 {
                break;
            }
            let mut arg = None;
            let m = &mut channel.modes;
            let done = match c {
                'i' => std::mem::replace(&mut m.invite_only, on) != on,
                'm' => std::mem::replace(&mut m.moderated, on) != on,
                'n' => std::mem::replace(&mut m.no_external, on) != on,
                't' => std::mem::replace(&mut m.topic_ops, on) != on,
                'k' if on => match args.next() {
                    Some(key) if m.key.is_some() => {
                        let _ = key;
                        errors.push((
                            ERR_KEYSET,
                            vec![name.clone(), "Channel key already set".into()],
                        ));
                        false
                    }
                    Some(key) if !key.is_empty() && !key.contains(' ') => {
                        m.key = Some(key.clone());
                        arg = Some(key.clone());
                        true
                    }
                    _ => false,
                },
                'k' => {
                    let _ = args.next();
                    arg = Some("*".into());
                    m.key.take().is_some()
                }
                'l' if on => match args.next().and_then(|l| l.parse::<usize>().ok()) {
                    Some(limit) if limit > 0 => {
                        m.limit = Some(limit);
                        arg = Some(limit.to_string());
                        true
                    }
                    _ => false,
                },
                'l' => m.limit.take().is_some(),
                'o' | 'v' => {
                    let Some(nick) = args.next() else {
                        continue;
                    };
                    match channel
                        .member_by_nick(nick)
                        .and_then(|t| channel.members.get_mut(&t))
                    {
                        Some(target) => {
                            let flag = if c == 'o' {
                                &mut target.op
                            } else {
                                &mut target.voice
                            };
                            arg = Some(target.who.nick.clone());
                            std::mem::replace(flag, on) != on
                        }
                        None => {
                            errors.push((
                                ERR_USERNOTINCHANNEL,
                                vec![
                                    nick.clone(),
                                    name.clone(),
                                    "They aren't on that channel".into(),
                                ],
                            ));
                            false
                        }
                    }
                }
                'b' => {
                    let Some(mask) = args.next() else {
                        continue;
                    };
                    let mask = normalize_ban(mask);
                    arg = Some(mask.clone());
                    let at = channel
                        .bans
                        .iter()
                        .position(|b| irc_lower(b) == irc_lower(&mask));
                    match (on, at) {
                        (true, None) if channel.bans.len() < max_bans => {
                            channel.bans.push(mask);
                            true
                        }
                        (false, Some(at)) => {
                            channel.bans.remove(at);
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            if done {
                if applied_sign != Some(on) {
                    applied.push(if on { '+' } else { '-' });
                    applied_sign = Some(on);
                }
                applied.push(c);
                applied_args.extend(arg);
            }
        }
        for (code, params) in errors {
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            self.reply(from, code, &params);
        }
        if denied {
            self.reply(
                from,
                ERR_CHANOPRIVSNEEDED,
                &[&name, "You're not channel operator"],
            );
        }
        if !applied.is_empty() {
            let mut params = vec![name, applied];
            params.extend(applied_args);
            let line = Message::new("MODE", params).with_prefix(from.who.mask());
            self.fan_out(key, &delivery(&line, from.time.clone(), None), None);
        }
    }
}

/// A ban mask completed to `nick!user@host` (`bad` is `bad!*@*`).
fn normalize_ban(mask: &str) -> String {
    let (rest, host) = mask.split_once('@').unwrap_or((mask, "*"));
    let (nick, user) = rest.split_once('!').unwrap_or((rest, "*"));
    let part = |s: &str| {
        if s.is_empty() {
            "*".to_owned()
        } else {
            s.to_owned()
        }
    };
    format!("{}!{}@{}", part(nick), part(user), part(host))
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

#[cfg(test)]
mod tests;
