//! The IRC client's connection machine (sans-IO): Twisted's `IRCClient` without the
//! callbacks.
//!
//! Owns: [`ClientConn`] — registration (optional PASS, optional `CAP REQ` of the
//! capabilities asked for, NICK, USER; on `433`/`432` during registration, the nick with
//! `_` appended, up to [`ClientConfig::nick_attempts`] times), automatic PONG, line framing
//! (server lines up to 8191 + 512 bytes), and the events of the session.
//! Contract: the [`Machine`] contract. The application sends with [`ClientConn::send`] or
//! the helpers ([`ClientConn::join`], [`ClientConn::privmsg`], ...) and reads
//! [`ClientEvent`]s.
//! Does not: reconnect (the engine glue `irc::client` does, with backoff), or keep a model
//! of channels (the events say what happened; the application keeps what it needs).
//! Spec: RFC 2812 §3.1; IRCv3 capability negotiation. Tests: `client/tests.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::ctcp::Ctcp;
use super::message::{MAX_LINE, MAX_TAGS, Message, Prefix};
use crate::kit::{Close, Machine, Output};

/// How a [`ClientConn`] registers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The nick to ask for.
    pub nick: String,
    /// The user name (ident).
    pub user: String,
    /// The real name.
    pub realname: String,
    /// The server password (PASS), if any.
    pub password: Option<String>,
    /// Capabilities to request (`server-time`, ...); none: no CAP negotiation.
    pub caps: Vec<String>,
    /// Nicks to try (each with one more `_`) when the nick is taken.
    pub nick_attempts: usize,
}

impl ClientConfig {
    /// Registration as `nick` (also the user and real name).
    #[must_use]
    pub fn new(nick: impl Into<String>) -> Self {
        let nick = nick.into();
        Self {
            user: nick.clone(),
            realname: nick.clone(),
            nick,
            password: None,
            caps: Vec::new(),
            nick_attempts: 3,
        }
    }
}

/// What a [`ClientConn`] tells its application (Twisted's `IRCClient` callbacks).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `001`: registered as `nick` (Twisted: `signedOn`).
    Registered {
        /// The nick the server gave.
        nick: String,
    },
    /// A PRIVMSG (Twisted: `privmsg`; CTCP ACTION is [`ClientEvent::Action`]).
    Privmsg {
        /// Its source (`nick!user@host`).
        from: String,
        /// The channel or our nick.
        target: String,
        /// The text.
        text: String,
    },
    /// A NOTICE (Twisted: `noticed`).
    Notice {
        /// Its source.
        from: String,
        /// The channel or our nick.
        target: String,
        /// The text.
        text: String,
    },
    /// A CTCP ACTION (`/me`; Twisted: `action`).
    Action {
        /// Its source.
        from: String,
        /// The channel or our nick.
        target: String,
        /// The action's text.
        text: String,
    },
    /// Someone (maybe us) joined a channel (Twisted: `joined` / `userJoined`).
    Join {
        /// Who.
        nick: String,
        /// The channel.
        channel: String,
    },
    /// Someone (maybe us) left a channel (Twisted: `left` / `userLeft`).
    Part {
        /// Who.
        nick: String,
        /// The channel.
        channel: String,
        /// The reason.
        reason: Option<String>,
    },
    /// Someone quit (Twisted: `userQuit`).
    Quit {
        /// Who.
        nick: String,
        /// The reason.
        reason: String,
    },
    /// Someone was kicked (Twisted: `kickedFrom` / `userKicked`).
    Kick {
        /// The channel.
        channel: String,
        /// Who was kicked.
        nick: String,
        /// By whom.
        by: String,
        /// The reason.
        reason: String,
    },
    /// A nick changed (Twisted: `userRenamed`, or `nickChanged` for ours).
    Nick {
        /// The old nick.
        old: String,
        /// The new nick.
        new: String,
    },
    /// A topic was set (Twisted: `topicUpdated`).
    Topic {
        /// The channel.
        channel: String,
        /// The topic.
        topic: String,
    },
    /// A mode change (Twisted: `modeChanged`): target, then the mode parameters.
    Mode {
        /// Who changed it.
        by: String,
        /// The channel or nick.
        target: String,
        /// The mode string and its arguments.
        params: Vec<String>,
    },
    /// Any other message (numerics included), as parsed.
    Message(Message),
    /// The server said ERROR (it closes next).
    Error(String),
    /// The server closed the connection.
    Closed,
    /// The connection broke.
    Lost,
}

/// The client side of an IRC connection (see the module docs).
#[derive(Debug)]
pub struct ClientConn {
    config: ClientConfig,
    nick: String,
    attempts: usize,
    registered: bool,
    partial: Vec<u8>,
    discarding: bool,
    out: Output,
    events: VecDeque<ClientEvent>,
    close: Option<Close>,
    quit: bool,
}

impl ClientConn {
    /// A connection that registers with `config` once connected.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self {
            nick: config.nick.clone(),
            config,
            attempts: 0,
            registered: false,
            partial: Vec::new(),
            discarding: false,
            out: Output::new(),
            events: VecDeque::new(),
            close: None,
            quit: false,
        }
    }

    /// Our nick (the one asked for, until the server says otherwise).
    #[must_use]
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Whether `001` came.
    #[must_use]
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Sends `message` (the last parameter cut to fit the line limit); a message that
    /// cannot be encoded (a line end in a parameter) is dropped and `false` returned.
    pub fn send(&mut self, message: &Message) -> bool {
        if self.quit {
            return false;
        }
        let mut line = Vec::with_capacity(64);
        if message.encode_truncated(&mut line).is_err() {
            return false;
        }
        self.out.write(&line);
        true
    }

    /// JOIN `channel` (with `key`).
    pub fn join(&mut self, channel: &str, key: Option<&str>) -> bool {
        let mut params = vec![channel.to_owned()];
        params.extend(key.map(str::to_owned));
        self.send(&Message::new("JOIN", params))
    }

    /// PART `channel`.
    pub fn part(&mut self, channel: &str, reason: Option<&str>) -> bool {
        let mut params = vec![channel.to_owned()];
        params.extend(reason.map(str::to_owned));
        self.send(&Message::new("PART", params))
    }

    /// PRIVMSG `target` (Twisted: `msg`).
    pub fn privmsg(&mut self, target: &str, text: &str) -> bool {
        self.send(&Message::new(
            "PRIVMSG",
            vec![target.to_owned(), text.to_owned()],
        ))
    }

    /// NOTICE `target`.
    pub fn notice(&mut self, target: &str, text: &str) -> bool {
        self.send(&Message::new(
            "NOTICE",
            vec![target.to_owned(), text.to_owned()],
        ))
    }

    /// A CTCP ACTION (`/me`; Twisted: `describe`).
    pub fn action(&mut self, target: &str, text: &str) -> bool {
        let ctcp = Ctcp::new("ACTION", Some(text.to_owned())).encode();
        self.privmsg(target, &ctcp)
    }

    /// NICK `nick`.
    pub fn set_nick(&mut self, nick: &str) -> bool {
        self.send(&Message::new("NICK", vec![nick.to_owned()]))
    }

    /// QUIT with `reason`; nothing is sent after it.
    pub fn quit(&mut self, reason: &str) {
        self.send(&Message::new("QUIT", vec![reason.to_owned()]));
        self.quit = true;
    }

    fn line(&mut self, line: &[u8]) {
        let Ok(message) = Message::parse(line) else {
            return;
        };
        let from = message.prefix.clone().unwrap_or_default();
        let nick_of = |from: &str| Prefix::parse(from).nick;
        let p = |i: usize| message.param(i).to_owned();
        let event = match message.command.as_str() {
            "PING" => {
                let reply = Message::new("PONG", message.params.clone());
                self.send(&reply);
                return;
            }
            "001" => {
                self.registered = true;
                self.nick = p(0);
                ClientEvent::Registered { nick: p(0) }
            }
            "433" | "432" if !self.registered => {
                if self.attempts >= self.config.nick_attempts {
                    self.quit("no nick");
                    ClientEvent::Message(message)
                } else {
                    self.attempts += 1;
                    self.nick.push('_');
                    let nick = self.nick.clone();
                    self.set_nick(&nick);
                    return;
                }
            }
            "CAP" if message.param(1) == "ACK" || message.param(1) == "NAK" => {
                self.send(&Message::new("CAP", vec!["END".into()]));
                ClientEvent::Message(message)
            }
            "PRIVMSG" => match Ctcp::parse(message.param(1)) {
                Some(ctcp) if ctcp.command == "ACTION" => ClientEvent::Action {
                    from,
                    target: p(0),
                    text: ctcp.args.unwrap_or_default(),
                },
                Some(ctcp) if ctcp.command == "PING" || ctcp.command == "VERSION" => {
                    let args = if ctcp.command == "PING" {
                        ctcp.args.clone()
                    } else {
                        Some(concat!("ringwork ", env!("CARGO_PKG_VERSION")).to_owned())
                    };
                    let answer = Ctcp::new(ctcp.command, args).encode();
                    self.notice(&nick_of(&from), &answer);
                    return;
                }
                _ => ClientEvent::Privmsg {
                    from,
                    target: p(0),
                    text: p(1),
                },
            },
            "NOTICE" => ClientEvent::Notice {
                from,
                target: p(0),
                text: p(1),
            },
            "JOIN" => ClientEvent::Join {
                nick: nick_of(&from),
                channel: p(0),
            },
            "PART" => ClientEvent::Part {
                nick: nick_of(&from),
                channel: p(0),
                reason: message.params.get(1).cloned(),
            },
            "QUIT" => ClientEvent::Quit {
                nick: nick_of(&from),
                reason: p(0),
            },
            "KICK" => ClientEvent::Kick {
                channel: p(0),
                nick: p(1),
                by: nick_of(&from),
                reason: p(2),
            },
            "NICK" => {
                let old = nick_of(&from);
                if old == self.nick {
                    self.nick = p(0);
                }
                ClientEvent::Nick { old, new: p(0) }
            }
            "TOPIC" => ClientEvent::Topic {
                channel: p(0),
                topic: p(1),
            },
            "MODE" => ClientEvent::Mode {
                by: nick_of(&from),
                target: p(0),
                params: message
                    .params
                    .get(1..)
                    .map(<[String]>::to_vec)
                    .unwrap_or_default(),
            },
            "ERROR" => ClientEvent::Error(p(0)),
            _ => ClientEvent::Message(message),
        };
        self.events.push_back(event);
    }
}

impl Machine for ClientConn {
    type Event = ClientEvent;

    fn handle_connected(&mut self, _now: Instant) {
        if let Some(password) = self.config.password.clone() {
            self.send(&Message::new("PASS", vec![password]));
        }
        if !self.config.caps.is_empty() {
            let caps = self.config.caps.join(" ");
            self.send(&Message::new("CAP", vec!["REQ".into(), caps]));
        }
        let nick = self.nick.clone();
        self.set_nick(&nick);
        let user = Message::new(
            "USER",
            vec![
                self.config.user.clone(),
                "0".into(),
                "*".into(),
                self.config.realname.clone(),
            ],
        );
        self.send(&user);
    }

    fn handle_input(&mut self, mut data: &[u8], _now: Instant) {
        let max = MAX_LINE + MAX_TAGS;
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n');
            let piece = end.map_or(data, |at| &data[..at]);
            data = end.map_or(&[][..], |at| &data[at + 1..]);
            if !self.discarding {
                self.partial.extend_from_slice(piece);
                if self.partial.len() > max {
                    self.partial = Vec::new();
                    self.discarding = true;
                }
            }
            if end.is_some() && !std::mem::take(&mut self.discarding) {
                let line = std::mem::take(&mut self.partial);
                self.line(&line);
            }
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.events.push_back(ClientEvent::Closed);
        self.close = Some(Close::Graceful);
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn handle_lost(&mut self, _now: Instant) {
        self.events.push_back(ClientEvent::Lost);
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> {
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        self.close.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wants_input(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
