//! The network of shards in memory: clients on different shards, ops moved between them
//! in order (as the engine's cross-core sends do), every client's lines recorded.

use std::collections::HashMap;

use super::*;

/// Shards and what each client received.
struct Net {
    shards: Vec<Shard>,
    heard: HashMap<ClientId, Vec<String>>,
    registered: HashMap<ClientId, Option<String>>,
}

impl Net {
    fn new(shards: usize) -> Self {
        Self::with_config(shards, IrcConfig::default())
    }

    fn with_config(shards: usize, config: IrcConfig) -> Self {
        let config = Arc::new(config);
        Self {
            shards: (0..shards)
                .map(|i| Shard::new(Arc::clone(&config), i, shards))
                .collect(),
            heard: HashMap::new(),
            registered: HashMap::new(),
        }
    }

    /// Moves every output until none is left.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for core in 0..self.shards.len() {
                while let Some(output) = self.shards[core].poll_output() {
                    moved = true;
                    match output {
                        ShardOutput::Send { core: to, op } => self.shards[to].handle_op(op),
                        ShardOutput::Deliver { local, delivery } => {
                            let text = String::from_utf8_lossy(&delivery.line)
                                .trim_end()
                                .to_owned();
                            self.heard
                                .entry(ClientId { core, local })
                                .or_default()
                                .push(text);
                        }
                        ShardOutput::Registered { local, nick } => {
                            self.registered.insert(ClientId { core, local }, Some(nick));
                        }
                        ShardOutput::NickRejected { local, .. } => {
                            self.registered.insert(ClientId { core, local }, None);
                        }
                        ShardOutput::NickChanged { .. } => {}
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn connect(&mut self, core: usize, local: u64, nick: &str) -> ClientId {
        let id = ClientId { core, local };
        let who = Who {
            id,
            nick: nick.into(),
            user: "u".into(),
            host: "h".into(),
            realname: "R".into(),
        };
        self.shards[core].register(local, who, Caps::default());
        self.pump();
        id
    }

    fn say(&mut self, id: ClientId, line: &str) {
        let message = Message::parse(line.as_bytes()).expect("test line");
        self.shards[id.core].command(id.local, Caps::default(), &message, None);
        self.pump();
    }

    fn take(&mut self, id: ClientId) -> Vec<String> {
        self.heard.remove(&id).unwrap_or_default()
    }
}

/// Two clients whose channel is owned by the other core than at least one of them.
fn two_cores() -> (Net, ClientId, ClientId) {
    let mut net = Net::new(2);
    let a = net.connect(0, 1, "alice");
    let b = net.connect(1, 1, "bob");
    assert_eq!(net.registered[&a].as_deref(), Some("alice"));
    assert_eq!(net.registered[&b].as_deref(), Some("bob"));
    (net, a, b)
}

#[test]
fn nick_collisions_across_cores_are_refused() {
    let mut net = Net::new(2);
    let a = net.connect(0, 1, "Carol");
    // The same nick in RFC 1459 case on the other core.
    let b = net.connect(1, 7, "cAROL");
    assert_eq!(net.registered[&a].as_deref(), Some("Carol"));
    assert_eq!(net.registered[&b], None);
    // Once the first quits, the nick is free.
    net.shards[0].quit(1, "bye", None);
    net.pump();
    let c = net.connect(1, 8, "carol");
    assert_eq!(net.registered[&c].as_deref(), Some("carol"));
}

#[test]
fn join_and_messages_between_cores() {
    let (mut net, a, b) = two_cores();
    net.say(a, "JOIN #room");
    let got = net.take(a);
    assert_eq!(
        got,
        [
            ":alice!u@h JOIN #room",
            ":irc.ringwork.local 353 alice = #room :@alice",
            ":irc.ringwork.local 366 alice #room :End of /NAMES list."
        ]
    );
    net.say(b, "JOIN #room");
    assert_eq!(net.take(a), [":bob!u@h JOIN #room"]);
    assert_eq!(
        net.take(b)[1],
        ":irc.ringwork.local 353 bob = #room :@alice bob"
    );
    net.say(a, "PRIVMSG #room :hello bob");
    assert_eq!(net.take(b), [":alice!u@h PRIVMSG #room :hello bob"]);
    assert!(net.take(a).is_empty(), "no echo to the sender");
    net.say(b, "PRIVMSG alice :psst");
    assert_eq!(net.take(a), [":bob!u@h PRIVMSG alice :psst"]);
    net.say(b, "PRIVMSG nobody :x");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 401 bob nobody :No such nick/channel"]
    );
    net.say(b, "NOTICE nobody :x");
    assert!(net.take(b).is_empty());
}

#[test]
fn modes_kick_and_quit() {
    let (mut net, a, b) = two_cores();
    net.say(a, "JOIN #m");
    net.say(b, "JOIN #m");
    let _ = (net.take(a), net.take(b));
    // Not an operator.
    net.say(b, "MODE #m +m");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 482 bob #m :You're not channel operator"]
    );
    net.say(a, "MODE #m +m");
    assert_eq!(net.take(b), [":alice!u@h MODE #m +m"]);
    let _ = net.take(a);
    net.say(b, "PRIVMSG #m :hi");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 404 bob #m :Cannot send to channel"]
    );
    net.say(a, "MODE #m +v bob");
    assert_eq!(net.take(a), [":alice!u@h MODE #m +v bob"]);
    net.say(b, "PRIVMSG #m :now");
    assert_eq!(net.take(a), [":bob!u@h PRIVMSG #m :now"]);
    net.say(a, "MODE #m");
    assert_eq!(net.take(a), [":irc.ringwork.local 324 alice #m :+mnt"]);
    let _ = net.take(b);
    net.say(a, "MODE #m +kl secret 5");
    assert_eq!(net.take(b), [":alice!u@h MODE #m +kl secret 5"]);
    let _ = net.take(a);
    net.say(a, "KICK #m bob :behave");
    assert_eq!(net.take(b), [":alice!u@h KICK #m bob :behave"]);
    net.say(b, "PRIVMSG #m :back?");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 404 bob #m :Cannot send to channel"]
    );
    // The key keeps bob out; with it he is back; alice's quit reaches him.
    net.say(b, "JOIN #m");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 475 bob #m :Cannot join channel (+k)"]
    );
    net.say(b, "JOIN #m secret");
    assert_eq!(net.take(b)[0], ":bob!u@h JOIN #m");
    let _ = net.take(a);
    net.shards[0].quit(1, "Quit: gone", None);
    net.pump();
    assert_eq!(net.take(b), [":alice!u@h QUIT :Quit: gone"]);
}

#[test]
fn bans_invites_and_limits() {
    let (mut net, a, b) = two_cores();
    net.say(a, "JOIN #b");
    net.say(a, "MODE #b +b bob");
    assert_eq!(
        net.take(a).last().map(String::as_str),
        Some(":alice!u@h MODE #b +b bob!*@*")
    );
    net.say(b, "JOIN #b");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 474 bob #b :Cannot join channel (+b)"]
    );
    net.say(a, "MODE #b -b+i bob!*@*");
    let _ = net.take(a);
    net.say(b, "JOIN #b");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 473 bob #b :Cannot join channel (+i)"]
    );
    net.say(a, "INVITE bob #b");
    assert_eq!(net.take(a), [":irc.ringwork.local 341 alice bob :#b"]);
    assert_eq!(net.take(b), [":alice!u@h INVITE bob :#b"]);
    net.say(b, "JOIN #b");
    assert_eq!(net.take(b)[0], ":bob!u@h JOIN #b");
    net.say(a, "MODE #b +l 2");
    let c = net.connect(0, 2, "carl");
    net.say(c, "JOIN #b");
    assert_eq!(
        net.take(c),
        [":irc.ringwork.local 473 carl #b :Cannot join channel (+i)"]
    );
    net.say(a, "MODE #b -i");
    net.say(c, "JOIN #b");
    assert_eq!(
        net.take(c),
        [":irc.ringwork.local 471 carl #b :Cannot join channel (+l)"]
    );
}

#[test]
fn too_many_channels() {
    let mut net = Net::with_config(
        2,
        IrcConfig {
            max_channels: 2,
            ..IrcConfig::default()
        },
    );
    let a = net.connect(1, 1, "a");
    net.say(a, "JOIN #1,#2,#3");
    let got = net.take(a);
    assert!(
        got.contains(&":irc.ringwork.local 405 a #3 :You have joined too many channels".to_owned()),
        "{got:?}"
    );
    net.say(a, "PART #1");
    net.say(a, "JOIN #3");
    assert_eq!(net.take(a)[1], ":a!u@h JOIN #3");
}

#[test]
fn topic_names_who_whois_list_and_nick_change() {
    let (mut net, a, b) = two_cores();
    net.say(a, "JOIN #t");
    net.say(b, "JOIN #t");
    let _ = (net.take(a), net.take(b));
    net.say(b, "TOPIC #t :by bob");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 482 bob #t :You're not channel operator"]
    );
    net.say(a, "TOPIC #t :the topic");
    assert_eq!(net.take(b), [":alice!u@h TOPIC #t :the topic"]);
    let _ = net.take(a);
    net.say(b, "TOPIC #t");
    assert_eq!(net.take(b), [":irc.ringwork.local 332 bob #t :the topic"]);
    net.say(b, "WHO #t");
    assert_eq!(
        net.take(b),
        [
            ":irc.ringwork.local 352 bob #t u h irc.ringwork.local alice H@ :0 R",
            ":irc.ringwork.local 352 bob #t u h irc.ringwork.local bob H :0 R",
            ":irc.ringwork.local 315 bob #t :End of /WHO list."
        ]
    );
    net.say(b, "WHOIS alice");
    assert_eq!(
        net.take(b),
        [
            ":irc.ringwork.local 311 bob alice u h * :R",
            ":irc.ringwork.local 319 bob alice :#t",
            ":irc.ringwork.local 312 bob alice irc.ringwork.local :ringwork",
            ":irc.ringwork.local 318 bob alice :End of /WHOIS list."
        ]
    );
    net.say(b, "LIST");
    assert_eq!(
        net.take(b),
        [
            ":irc.ringwork.local 321 bob Channel :Users  Name",
            ":irc.ringwork.local 322 bob #t 2 :the topic",
            ":irc.ringwork.local 323 bob :End of /LIST"
        ]
    );
    net.say(a, "NICK alicia");
    assert_eq!(net.take(a), [":alice!u@h NICK alicia"]);
    assert_eq!(net.take(b), [":alice!u@h NICK alicia"]);
    net.say(b, "NICK alicia");
    assert_eq!(
        net.take(b),
        [":irc.ringwork.local 433 bob alicia :Nickname is already in use"]
    );
    // The old nick is free again.
    net.say(b, "NICK alice");
    assert_eq!(net.take(b), [":bob!u@h NICK alice"]);
    let _ = net.take(a);
    net.say(a, "NAMES #t");
    assert_eq!(
        net.take(a)[0],
        ":irc.ringwork.local 353 alicia = #t :@alicia alice"
    );
}

#[test]
fn multi_prefix_shows_every_prefix() {
    let mut net = Net::new(1);
    let a = net.connect(0, 1, "a");
    net.say(a, "JOIN #p");
    net.say(a, "MODE #p +v a");
    let _ = net.take(a);
    let names = Message::parse(b"NAMES #p").expect("line");
    net.shards[0].command(
        1,
        Caps {
            multi_prefix: true,
            ..Caps::default()
        },
        &names,
        None,
    );
    net.pump();
    assert_eq!(net.take(a)[0], ":irc.ringwork.local 353 a = #p :@+a");
    net.say(a, "NAMES #p");
    assert_eq!(net.take(a)[0], ":irc.ringwork.local 353 a = #p :@a");
}

#[test]
fn client_tags_and_time_travel_with_the_message() {
    let (mut net, a, b) = two_cores();
    net.say(a, "JOIN #x");
    net.say(b, "JOIN #x");
    let message = Message::parse(b"@+typing=active;label=1 PRIVMSG #x :hi").expect("line");
    net.shards[0].command(1, Caps::default(), &message, Some("T".into()));
    // Look at the delivery itself, before the test net flattens it.
    let mut found = None;
    while let Some(output) = net.shards[0].poll_output() {
        if let ShardOutput::Send { core, op } = output {
            net.shards[core].handle_op(op);
        }
    }
    while let Some(output) = net.shards[1].poll_output() {
        match output {
            ShardOutput::Deliver { delivery, .. } => found = Some(delivery),
            ShardOutput::Send { core, op } => net.shards[core].handle_op(op),
            _ => {}
        }
    }
    let delivery = found.expect("delivered to bob");
    assert_eq!(delivery.time.as_deref(), Some("T"));
    assert_eq!(delivery.client_tags.as_deref(), Some("+typing=active"));
}

#[test]
fn quit_and_nick_reach_each_client_once_across_shared_channels() {
    let mut net = Net::new(2);
    let a = net.connect(0, 1, "alice");
    let b = net.connect(1, 1, "bob");
    let c = net.connect(1, 2, "carol");
    // Channels owned by both cores (names chosen to hash to different owners).
    let names: Vec<String> = (0..8).map(|i| format!("#s{i}")).collect();
    let owners: std::collections::BTreeSet<usize> = names.iter().map(|n| owner(n, 2)).collect();
    assert_eq!(owners.len(), 2);
    for name in &names {
        net.say(a, &format!("JOIN {name}"));
        net.say(b, &format!("JOIN {name}"));
    }
    net.say(c, "JOIN #s0");
    let _ = (net.take(a), net.take(b), net.take(c));
    net.say(a, "NICK alicia");
    assert_eq!(net.take(b), [":alice!u@h NICK alicia"]);
    assert_eq!(net.take(c), [":alice!u@h NICK alicia"]);
    assert_eq!(net.take(a), [":alice!u@h NICK alicia"]);
    net.shards[0].quit(1, "Quit: bye", None);
    net.pump();
    assert_eq!(net.take(b), [":alicia!u@h QUIT :Quit: bye"]);
    assert_eq!(net.take(c), [":alicia!u@h QUIT :Quit: bye"]);
    assert_eq!(
        net.shards.iter().map(|s| s.gathering.len()).sum::<usize>(),
        0
    );
}

#[test]
fn invitations_are_bounded() {
    let mut net = Net::new(1);
    let a = net.connect(0, 1, "op");
    net.say(a, "JOIN #inv");
    for i in 0..200 {
        net.say(a, &format!("INVITE guest{i} #inv"));
    }
    let channel = &net.shards[0].channels["#inv"];
    assert!(
        channel.invited.len() <= MAX_INVITES,
        "{}",
        channel.invited.len()
    );
}
