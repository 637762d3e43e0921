//! The IRC server's connection machine (sans-IO): one client connection.
//!
//! Owns: [`ServerConn`] — line framing with the RFC 2812 limit (a longer line gets
//! `417 ERR_INPUTTOOLONG` and is dropped), flood control (a token bucket: lines past the
//! burst are held and taken at the refill rate; more than [`IrcConfig::flood_queue`] held
//! lines end the connection with `ERROR :Excess Flood`), keep-alive (`PING` after
//! [`IrcConfig::ping_interval`] of silence, `ERROR :Ping timeout` after
//! [`IrcConfig::ping_timeout`] more), registration (PASS, NICK, USER, CAP LS/REQ/LIST/END
//! with `server-time`, `message-tags`, `multi-prefix`; a registration deadline), the welcome
//! burst (001–005, MOTD), QUIT, and a bound on output held while the client does not read
//! (`ERROR :SendQ exceeded`).
//! Contract: the [`Machine`] contract. The nick is the network's to grant: the machine emits
//! [`ConnEvent::Register`] and waits (holding further lines) for [`ServerConn::registered`]
//! or [`ServerConn::nick_rejected`]. Every other command of a registered client is a
//! [`ConnEvent::Command`]; the end of the client, whatever its cause, is one
//! [`ConnEvent::Quit`].
//! Does not: know channels, other clients or other cores (that is [`super::shard`]), or the
//! wall clock (the caller stamps [`Delivery::time`]).
//! Spec: RFC 2812 §3.1, §3.7.2–3; IRCv3 capability negotiation (302), server-time,
//! message-tags, multi-prefix. Tests: `conn/tests.rs` (Pair with a scripted peer).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::{MAX_LINE, MAX_TAGS, Message, ParseError, is_valid_nick};
use super::numeric::*;
use crate::kit::{Close, Machine, Output};

/// Settings of the IRC server, shared by every connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IrcConfig {
    /// The server's name (the prefix of its messages). Default `irc.ringwork.local`.
    pub server_name: String,
    /// The network's name (`NETWORK=` in 005). Default `ringwork`.
    pub network: String,
    /// The message of the day, line by line (`422` when empty).
    pub motd: Vec<String>,
    /// The connection password clients must give with PASS.
    pub password: Option<String>,
    /// Longest nick (`NICKLEN`). Default 30.
    pub max_nick_len: usize,
    /// Longest channel name (`CHANNELLEN`). Default 50.
    pub max_channel_len: usize,
    /// Channels a client may be on (`CHANLIMIT`). Default 20.
    pub max_channels: usize,
    /// Longest topic (`TOPICLEN`; longer ones are cut). Default 390.
    pub max_topic_len: usize,
    /// Silence before the server sends PING. Default 90 s.
    pub ping_interval: Duration,
    /// Time to answer that PING. Default 60 s.
    pub ping_timeout: Duration,
    /// Time to complete registration. Default 60 s.
    pub register_timeout: Duration,
    /// Lines a client may send at once before flood control holds them. Default 10.
    pub flood_burst: u32,
    /// Lines per second taken once the burst is spent. Default 2.
    pub flood_rate: u32,
    /// Held lines past which the client is disconnected (`Excess Flood`). Default 20.
    pub flood_queue: usize,
    /// Bytes queued for a client that does not read before it is disconnected
    /// (`SendQ exceeded`). Default 1 MiB.
    pub max_sendq: usize,
    /// Bans per channel (`MAXLIST`). Default 60.
    pub max_bans: usize,
}

impl Default for IrcConfig {
    fn default() -> Self {
        Self {
            server_name: "irc.ringwork.local".into(),
            network: "ringwork".into(),
            motd: Vec::new(),
            password: None,
            max_nick_len: 30,
            max_channel_len: 50,
            max_channels: 20,
            max_topic_len: 390,
            ping_interval: Duration::from_secs(90),
            ping_timeout: Duration::from_secs(60),
            register_timeout: Duration::from_secs(60),
            flood_burst: 10,
            flood_rate: 2,
            flood_queue: 20,
            max_sendq: 1 << 20,
            max_bans: 60,
        }
    }
}

impl IrcConfig {
    /// The `005 RPL_ISUPPORT` tokens.
    #[must_use]
    pub fn isupport(&self) -> Vec<String> {
        vec![
            "CASEMAPPING=rfc1459".into(),
            "CHANTYPES=#&".into(),
            "PREFIX=(ov)@+".into(),
            "CHANMODES=b,k,l,imnt".into(),
            format!("CHANLIMIT=#&:{}", self.max_channels),
            format!("NICKLEN={}", self.max_nick_len),
            format!("CHANNELLEN={}", self.max_channel_len),
            format!("TOPICLEN={}", self.max_topic_len),
            format!("MAXLIST=b:{}", self.max_bans),
            "MODES=4".into(),
            format!("NETWORK={}", self.network),
        ]
    }
}

/// The capabilities a client negotiated.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Caps {
    /// `server-time`: a `time` tag on relayed messages.
    pub server_time: bool,
    /// `message-tags`: client-only tags (`+typing`) relayed.
    pub message_tags: bool,
    /// `multi-prefix`: every prefix in NAMES and WHO (`@+nick`).
    pub multi_prefix: bool,
}

/// The capabilities the server offers, in `CAP LS` order.
const CAPS: [&str; 3] = ["message-tags", "multi-prefix", "server-time"];

impl Caps {
    fn set(&mut self, name: &str, on: bool) -> bool {
        match name {
            "server-time" => self.server_time = on,
            "message-tags" => self.message_tags = on,
            "multi-prefix" => self.multi_prefix = on,
            _ => return false,
        }
        true
    }

    fn names(self) -> String {
        let on = [self.message_tags, self.multi_prefix, self.server_time];
        CAPS.iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A line for a client: encoded once, shared by every recipient; tags added per client.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The line with `\r\n`, without tags.
    pub line: Bytes,
    /// The `server-time` value, for clients that asked for it.
    pub time: Option<Arc<str>>,
    /// Client-only tags, escaped and joined (`+typing=active`), for clients with
    /// `message-tags`.
    pub client_tags: Option<Arc<str>>,
}

impl Delivery {
    /// A line without tags.
    #[must_use]
    pub fn plain(line: impl Into<Bytes>) -> Self {
        Self {
            line: line.into(),
            time: None,
            client_tags: None,
        }
    }
}

/// What a [`ServerConn`] tells the server.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ConnEvent {
    /// NICK and USER are in (and CAP negotiation is over): claim `nick`, then call
    /// [`ServerConn::registered`] or [`ServerConn::nick_rejected`].
    Register {
        /// The nick asked for.
        nick: String,
        /// The user name (ident).
        user: String,
        /// The real name.
        realname: String,
    },
    /// A command of a registered client (everything but PING, PONG, CAP, PASS, USER, QUIT).
    Command(Message),
    /// The client is gone or going (QUIT, an error, a timeout, the connection's end): sent
    /// once; nothing follows it.
    Quit {
        /// The reason, as others see it in the QUIT message.
        reason: String,
        /// Whether the client was registered (had a nick on the network).
        registered: bool,
    },
}

#[derive(Debug)]
enum Registration {
    /// Collecting PASS, NICK, USER and CAP.
    Pending {
        pass: Option<String>,
        nick: Option<String>,
        user: Option<(String, String)>,
        /// `CAP LS` or `CAP REQ` began negotiation and `CAP END` has not come.
        negotiating: bool,
        /// `Register` was emitted: waiting for the network's answer.
        claiming: bool,
    },
    Registered,
}

/// One client connection of the IRC server (see the module docs).
#[derive(Debug)]
pub struct ServerConn {
    config: Arc<IrcConfig>,
    host: String,
    /// The core the connection is on (shown in 002).
    core: usize,
    nick: String,
    user: String,
    caps: Caps,
    registration: Registration,
    /// Bytes of a line whose end has not come.
    partial: Vec<u8>,
    /// The current line is over the limit: drop bytes until its end.
    discarding: bool,
    /// Lines held by flood control or while the nick is claimed.
    held: VecDeque<Vec<u8>>,
    /// The token bucket as a clock: each line taken moves it one interval on; a line is
    /// taken while it is at most `burst` intervals ahead of now.
    flood_clock: Option<Instant>,
    events: VecDeque<ConnEvent>,
    out: Output,
    last_input: Option<Instant>,
    ping_sent: Option<Instant>,
    register_deadline: Option<Instant>,
    writable: bool,
    /// Bytes queued since the transport said it was full.
    queued_while_full: usize,
    quit: bool,
    close: Option<Close>,
    close_polled: bool,
    /// Held lines may be takeable at the next poll.
    retry_held: bool,
}

impl ServerConn {
    /// A connection from `host` (the peer's address as others will see it).
    #[must_use]
    pub fn new(config: Arc<IrcConfig>, host: impl Into<String>) -> Self {
        Self {
            config,
            host: host.into(),
            core: 0,
            nick: "*".into(),
            user: String::new(),
            caps: Caps::default(),
            registration: Registration::Pending {
                pass: None,
                nick: None,
                user: None,
                negotiating: false,
                claiming: false,
            },
            partial: Vec::new(),
            discarding: false,
            held: VecDeque::new(),
            flood_clock: None,
            events: VecDeque::new(),
            out: Output::new(),
            last_input: None,
            ping_sent: None,
            register_deadline: None,
            writable: true,
            queued_while_full: 0,
            quit: false,
            close: None,
            close_polled: false,
            retry_held: false,
        }
    }

    /// The client's nick (`*` before registration).
    #[must_use]
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Sets the client's host (known once the connection is made).
    pub fn set_host(&mut self, host: &str) {
        host.clone_into(&mut self.host);
    }

    /// Sets the core the connection is on (shown in `002 RPL_YOURHOST`).
    pub fn set_core(&mut self, core: usize) {
        self.core = core;
    }

    /// The client's host.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The negotiated capabilities.
    #[must_use]
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Whether registration is complete.
    #[must_use]
    pub fn is_registered(&self) -> bool {
        matches!(self.registration, Registration::Registered)
    }

    /// The network granted `nick`: registration is complete; sends the welcome burst.
    pub fn registered(&mut self, nick: &str) {
        if self.quit || self.is_registered() {
            return;
        }
        self.registration = Registration::Registered;
        self.register_deadline = None;
        self.nick = nick.to_owned();
        let c = Arc::clone(&self.config);
        let mask = format!("{}!{}@{}", self.nick, self.user, self.host);
        self.numeric(
            RPL_WELCOME,
            &[&format!("Welcome to the {} IRC Network {mask}", c.network)],
        );
        let version = concat!("ringwork-", env!("CARGO_PKG_VERSION"));
        self.numeric(
            RPL_YOURHOST,
            &[&format!(
                "Your host is {} (core {}), running version {version}",
                c.server_name, self.core
            )],
        );
        self.numeric(RPL_CREATED, &["This server was created at start-up"]);
        self.numeric(
            RPL_MYINFO,
            &[&c.server_name, version, "i", "biklmnotv", "bklov"],
        );
        let tokens = c.isupport();
        let mut params: Vec<&str> = tokens.iter().map(String::as_str).collect();
        params.push("are supported by this server");
        self.numeric(RPL_ISUPPORT, &params);
        if c.motd.is_empty() {
            self.numeric(ERR_NOMOTD, &["MOTD File is missing"]);
        } else {
            self.numeric(
                RPL_MOTDSTART,
                &[&format!("- {} Message of the day - ", c.server_name)],
            );
            for line in &c.motd {
                self.numeric(RPL_MOTD, &[&format!("- {line}")]);
            }
            self.numeric(RPL_ENDOFMOTD, &["End of /MOTD command."]);
        }
        self.retry_held = true;
    }

    /// The network refused `nick` (in use): `433`; the client may try another.
    pub fn nick_rejected(&mut self, nick: &str) {
        if let Registration::Pending {
            nick: asked,
            claiming,
            ..
        } = &mut self.registration
        {
            *claiming = false;
            *asked = None;
            self.numeric(ERR_NICKNAMEINUSE, &[nick, "Nickname is already in use"]);
            self.retry_held = true;
        }
    }

    /// The client's nick changed (a NICK the network granted).
    pub fn set_nick(&mut self, nick: &str) {
        nick.clone_into(&mut self.nick);
    }

    /// Sends `delivery` with the tags this client negotiated.
    pub fn deliver(&mut self, delivery: &Delivery) {
        if self.quit {
            return;
        }
        let time = delivery.time.as_deref().filter(|_| self.caps.server_time);
        let tags = delivery
            .client_tags
            .as_deref()
            .filter(|_| self.caps.message_tags);
        let mut len = delivery.line.len();
        if time.is_some() || tags.is_some() {
            let mut section = String::from("@");
            if let Some(time) = time {
                section.push_str("time=");
                section.push_str(time);
            }
            if let Some(tags) = tags {
                if time.is_some() {
                    section.push(';');
                }
                section.push_str(tags);
            }
            section.push(' ');
            len += section.len();
            self.out.write(section.as_bytes());
        }
        self.out.write_bytes(delivery.line.clone());
        self.count_queued(len);
    }

    /// Sends `message` (encoded, the last parameter cut to fit the line limit).
    pub fn send(&mut self, message: &Message) {
        let mut line = Vec::with_capacity(64);
        if message.encode_truncated(&mut line).is_ok() {
            self.deliver(&Delivery::plain(line));
        }
    }

    /// Ends the connection with `ERROR :Closing Link: host (reason)`; emits
    /// [`ConnEvent::Quit`] with `reason`.
    pub fn disconnect(&mut self, reason: &str) {
        if self.quit {
            return;
        }
        let error = Message::new(
            "ERROR",
            vec![format!("Closing Link: {} ({reason})", self.host)],
        );
        let mut line = Vec::new();
        if error.encode_truncated(&mut line).is_ok() {
            self.out.write(&line);
        }
        self.finish(reason.to_owned());
        self.close = Some(Close::Graceful);
    }

    fn finish(&mut self, reason: String) {
        if self.quit {
            return;
        }
        self.quit = true;
        self.held.clear();
        self.partial = Vec::new();
        self.events.push_back(ConnEvent::Quit {
            reason,
            registered: self.is_registered(),
        });
    }

    fn count_queued(&mut self, len: usize) {
        if !self.writable {
            self.queued_while_full += len;
            if self.queued_while_full > self.config.max_sendq {
                self.disconnect("SendQ exceeded");
            }
        }
    }

    /// Sends numeric `code` to this client: `:server code nick params...`.
    fn numeric(&mut self, code: &str, params: &[&str]) {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(self.nick.clone());
        all.extend(params.iter().map(|p| (*p).to_owned()));
        let message = Message::new(code, all).with_prefix(self.config.server_name.clone());
        self.send(&message);
    }

    /// Splits input into lines; queues them for [`Self::take_lines`].
    fn frame(&mut self, mut data: &[u8]) {
        let max = MAX_LINE + MAX_TAGS;
        while !data.is_empty() && !self.quit {
            let end = data.iter().position(|&b| b == b'\n');
            let (piece, ended) = match end {
                Some(at) => (&data[..at], true),
                None => (data, false),
            };
            data = end.map_or(&[][..], |at| &data[at + 1..]);
            if !self.discarding {
                self.partial.extend_from_slice(piece);
                if self.partial.len() > max {
                    self.partial = Vec::new();
                    self.discarding = true;
                    self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
                }
            }
            if ended {
                if self.discarding {
                    self.discarding = false;
                } else {
                    let line = std::mem::take(&mut self.partial);
                    self.held.push_back(line);
                    if self.held.len() > self.config.flood_queue {
                        self.disconnect("Excess Flood");
                    }
                }
            }
        }
    }

    /// Takes held lines while flood control allows and no nick claim is pending.
    fn take_lines(&mut self, now: Instant) {
        let interval = Duration::from_secs(1) / self.config.flood_rate.max(1);
        let window = interval * self.config.flood_burst.max(1);
        while !self.quit && !self.claiming() {
            let clock = self.flood_clock.map_or(now, |c| c.max(now));
            if clock + interval > now + window {
                break;
            }
            let Some(line) = self.held.pop_front() else {
                break;
            };
            self.flood_clock = Some(clock + interval);
            self.line(&line);
        }
    }

    fn claiming(&self) -> bool {
        matches!(
            self.registration,
            Registration::Pending { claiming: true, .. }
        )
    }

    /// When the next held line may be taken.
    fn flood_deadline(&self) -> Option<Instant> {
        if self.held.is_empty() || self.claiming() {
            return None;
        }
        let interval = Duration::from_secs(1) / self.config.flood_rate.max(1);
        let window = interval * self.config.flood_burst.max(1);
        self.flood_clock
            .map(|c| (c + interval).checked_sub(window).unwrap_or(c))
    }

    fn line(&mut self, line: &[u8]) {
        let message = match Message::parse(line) {
            Ok(message) => message,
            Err(ParseError::LineTooLong { .. } | ParseError::TagsTooLong { .. }) => {
                self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]);
                return;
            }
            Err(ParseError::BadCommand) => {
                let word = String::from_utf8_lossy(line);
                let word = word
                    .split(' ')
                    .find(|w| !w.starts_with([':', '@']))
                    .unwrap_or("");
                let word: String = word.chars().take(32).collect();
                self.numeric(ERR_UNKNOWNCOMMAND, &[&word, "Unknown command"]);
                return;
            }
            // Empty lines and the like are ignored (RFC 2812 §2.3.1).
            Err(_) => return,
        };
        match message.command.as_str() {
            "PING" => {
                if message.params.is_empty() {
                    self.numeric(ERR_NOORIGIN, &["No origin specified"]);
                } else {
                    let server = self.config.server_name.clone();
                    self.send(
                        &Message::new("PONG", vec![server.clone(), message.param(0).to_owned()])
                            .with_prefix(server),
                    );
                }
            }
            "PONG" => {}
            "CAP" => self.cap(&message),
            "QUIT" => {
                let reason = match message.params.first() {
                    Some(text) => format!("Quit: {text}"),
                    None => "Client Quit".into(),
                };
                self.disconnect(&reason);
            }
            _ if self.is_registered() => match message.command.as_str() {
                "PASS" | "USER" => {
                    self.numeric(ERR_ALREADYREGISTRED, &["You may not reregister"]);
                }
                _ => self.events.push_back(ConnEvent::Command(message)),
            },
            "PASS" => self.pass(&message),
            "NICK" => self.pre_nick(&message),
            "USER" => self.pre_user(&message),
            _ => self.numeric(ERR_NOTREGISTERED, &["You have not registered"]),
        }
    }

    fn pass(&mut self, message: &Message) {
        if message.params.is_empty() {
            self.numeric(ERR_NEEDMOREPARAMS, &["PASS", "Not enough parameters"]);
        } else if let Registration::Pending { pass, .. } = &mut self.registration {
            *pass = Some(message.param(0).to_owned());
        }
    }

    fn pre_nick(&mut self, message: &Message) {
        let asked = message.param(0);
        if asked.is_empty() {
            self.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
            return;
        }
        if !is_valid_nick(asked, self.config.max_nick_len) {
            self.numeric(ERR_ERRONEUSNICKNAME, &[asked, "Erroneous nickname"]);
            return;
        }
        if let Registration::Pending { nick, .. } = &mut self.registration {
            *nick = Some(asked.to_owned());
        }
        self.try_register();
    }

    fn pre_user(&mut self, message: &Message) {
        if message.params.len() < 4 || message.param(0).is_empty() {
            self.numeric(ERR_NEEDMOREPARAMS, &["USER", "Not enough parameters"]);
            return;
        }
        // Idents are short and plain; anything else is replaced (they show in prefixes).
        let ident: String = message
            .param(0)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .take(10)
            .collect();
        let ident = if ident.is_empty() {
            "user".into()
        } else {
            ident
        };
        if let Registration::Pending { user, .. } = &mut self.registration {
            *user = Some((ident, message.param(3).to_owned()));
        }
        self.try_register();
    }

    fn try_register(&mut self) {
        let Registration::Pending {
            pass,
            nick: Some(nick),
            user: Some((user, realname)),
            negotiating: false,
            claiming,
        } = &mut self.registration
        else {
            return;
        };
        if *claiming {
            return;
        }
        if let Some(expected) = &self.config.password
            && pass.as_deref() != Some(expected.as_str())
        {
            let nick = nick.clone();
            self.nick = nick;
            self.numeric(ERR_PASSWDMISMATCH, &["Password incorrect"]);
            self.disconnect("Bad Password");
            return;
        }
        *claiming = true;
        let (nick, user, realname) = (nick.clone(), user.clone(), realname.clone());
        self.user.clone_from(&user);
        self.events.push_back(ConnEvent::Register {
            nick,
            user,
            realname,
        });
    }

    fn cap(&mut self, message: &Message) {
        let sub = message.param(0).to_ascii_uppercase();
        let server = self.config.server_name.clone();
        let reply = |nick: &str, sub: &str, text: String| {
            Message::new("CAP", vec![nick.to_owned(), sub.to_owned(), text])
                .with_prefix(server.clone())
        };
        match sub.as_str() {
            "LS" => {
                self.negotiating(true);
                let m = reply(&self.nick, "LS", CAPS.join(" "));
                self.send(&m);
            }
            "LIST" => {
                let m = reply(&self.nick, "LIST", self.caps.names());
                self.send(&m);
            }
            "REQ" => {
                self.negotiating(true);
                let asked = message.param(1);
                let mut caps = self.caps;
                let all_known = asked.split(' ').filter(|c| !c.is_empty()).all(|name| {
                    let (name, on) = match name.strip_prefix('-') {
                        Some(name) => (name, false),
                        None => (name, true),
                    };
                    caps.set(name, on)
                });
                let sub = if all_known {
                    self.caps = caps;
                    "ACK"
                } else {
                    "NAK"
                };
                let m = reply(&self.nick, sub, asked.to_owned());
                self.send(&m);
            }
            "END" => {
                self.negotiating(false);
                self.try_register();
            }
            _ => {
                let nick = self.nick.clone();
                self.numeric("410", &[&nick, message.param(0), "Invalid CAP command"]);
                // 410 carries the nick once: numeric() already put it first.
                let _ = nick;
            }
        }
    }

    fn negotiating(&mut self, on: bool) {
        if let Registration::Pending { negotiating, .. } = &mut self.registration {
            *negotiating = on;
        }
    }
}

impl Machine for ServerConn {
    type Event = ConnEvent;

    fn handle_connected(&mut self, now: Instant) {
        self.last_input = Some(now);
        self.register_deadline = Some(now + self.config.register_timeout);
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.quit {
            return;
        }
        self.last_input = Some(now);
        self.ping_sent = None;
        self.frame(data);
        self.take_lines(now);
    }

    fn handle_eof(&mut self, _now: Instant) {
        if !self.quit {
            self.finish("Remote host closed the connection".into());
            self.close = Some(Close::Graceful);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.quit {
            return;
        }
        if self.register_deadline.is_some_and(|at| at <= now) {
            self.disconnect("Registration timed out");
            return;
        }
        if let Some(sent) = self.ping_sent {
            if sent + self.config.ping_timeout <= now {
                let secs = (now - self.last_input.unwrap_or(sent)).as_secs();
                self.disconnect(&format!("Ping timeout: {secs} seconds"));
                return;
            }
        } else if self
            .last_input
            .is_some_and(|at| at + self.config.ping_interval <= now)
        {
            self.ping_sent = Some(now);
            let server = self.config.server_name.clone();
            self.send(&Message::new("PING", vec![server]));
        }
        self.take_lines(now);
    }

    fn handle_writable(&mut self, writable: bool, now: Instant) {
        self.writable = writable;
        if writable {
            self.queued_while_full = 0;
            self.take_lines(now);
        }
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        self.disconnect("Server shutting down");
    }

    fn handle_lost(&mut self, _now: Instant) {
        self.finish("Connection reset by peer".into());
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if std::mem::take(&mut self.retry_held) {
            self.take_lines(now);
        }
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled {
            return None;
        }
        self.close_polled = self.close.is_some();
        self.close
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.quit {
            return None;
        }
        let keepalive = match self.ping_sent {
            Some(sent) => Some(sent + self.config.ping_timeout),
            None => self.last_input.map(|at| at + self.config.ping_interval),
        };
        [keepalive, self.register_deadline, self.flood_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn wants_input(&self) -> bool {
        !self.quit && self.writable
    }
}

#[cfg(test)]
mod tests;
