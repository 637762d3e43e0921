//! The channel owner's side of a [`Shard`]: members, modes, bans, invitations and topic of
//! the channels this shard owns, and the replies about them (JOIN, PART, KICK, INVITE,
//! channel messages, TOPIC, NAMES, WHO, MODE, and the members for a QUIT or NICK).
//! Spec: RFC 2811 (channel modes), RFC 2812 §3.2.

use std::collections::{BTreeMap, HashSet};

use super::*;

#[derive(Debug)]
pub(super) struct Member {
    pub(super) who: Who,
    pub(super) op: bool,
    pub(super) voice: bool,
}

impl Member {
    pub(super) fn prefix(&self, multi: bool) -> &'static str {
        match (self.op, self.voice, multi) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            _ => "",
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Modes {
    pub(super) invite_only: bool,
    pub(super) moderated: bool,
    pub(super) no_external: bool,
    pub(super) topic_ops: bool,
    pub(super) key: Option<String>,
    pub(super) limit: Option<usize>,
}

#[derive(Debug)]
pub(super) struct Channel {
    pub(super) name: String,
    pub(super) members: BTreeMap<ClientId, Member>,
    pub(super) topic: Option<String>,
    pub(super) modes: Modes,
    pub(super) bans: Vec<String>,
    /// Lower-case nicks invited (they pass +i, +l, +k and bans once).
    pub(super) invited: HashSet<String>,
}

impl Channel {
    pub(super) fn member_by_nick(&self, nick: &str) -> Option<ClientId> {
        let nick = irc_lower(nick);
        self.members
            .iter()
            .find(|(_, m)| irc_lower(&m.who.nick) == nick)
            .map(|(id, _)| *id)
    }

    pub(super) fn banned(&self, who: &Who) -> bool {
        let mask = who.mask();
        self.bans.iter().any(|ban| mask_matches(ban, &mask))
    }

    pub(super) fn mode_string(&self, member: bool) -> Vec<String> {
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

impl Shard {
    /// Fans `delivery` out to `channel`'s members, except `except`.
    pub(super) fn fan_out(&mut self, key: &str, delivery: &Delivery, except: Option<ClientId>) {
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

    pub(super) fn channel_op(&mut self, name: &str, from: &Requester, request: ChannelRequest) {
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
