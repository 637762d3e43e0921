//! The client machine against the server's machine and a one-shard network, without a
//! reactor: registration (with a taken nick), join, a message to itself through the
//! channel's echo-free fan-out, PING answered, on perfect and faulty links.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::irc::proto::conn::{ConnEvent, IrcConfig, ServerConn};
use crate::irc::proto::shard::{ClientId, Shard, ShardOutput, Who};
use crate::kit::sim::{Pair, SimConfig};

/// Runs the pair for up to 600 s of simulated time, the server's events through a
/// one-shard network; the client's events.
fn serve(pair: &mut Pair<ClientConn, ServerConn>, shard: &mut Shard) -> Vec<ClientEvent> {
    let mut got = Vec::new();
    pair.run(
        Duration::from_secs(600),
        |_, event, _| got.push(event),
        |server, event, _| {
            match event {
                ConnEvent::Register {
                    nick,
                    user,
                    realname,
                } => {
                    let who = Who {
                        id: ClientId { core: 0, local: 1 },
                        nick,
                        user,
                        host: "h".into(),
                        realname,
                    };
                    shard.register(1, who, server.caps());
                }
                ConnEvent::Command(message) => shard.command(1, server.caps(), &message, None),
                ConnEvent::Quit { reason, .. } => shard.quit(1, &reason, None),
            }
            while let Some(output) = shard.poll_output() {
                match output {
                    ShardOutput::Deliver { local: 1, delivery } => server.deliver(&delivery),
                    ShardOutput::Registered { nick, .. } => server.registered(&nick),
                    ShardOutput::NickRejected { nick, .. } => server.nick_rejected(&nick),
                    ShardOutput::NickChanged { nick, .. } => server.set_nick(&nick),
                    _ => {}
                }
            }
        },
    );
    got
}

fn session(config: SimConfig, keepalive: bool) {
    // A faulty link jumps the clock by up to minutes: past any keep-alive deadline, which
    // would then end the session as it should. Those runs check everything else.
    let server_config = if keepalive {
        IrcConfig::default()
    } else {
        IrcConfig {
            ping_interval: Duration::from_secs(1 << 20),
            register_timeout: Duration::from_secs(1 << 20),
            ..IrcConfig::default()
        }
    };
    let server_config = Arc::new(server_config);
    let mut shard = Shard::new(Arc::clone(&server_config), 0, 1);
    // "taken" is held by someone else: the client falls back to "taken_".
    let other = Who {
        id: ClientId { core: 0, local: 9 },
        nick: "taken".into(),
        user: "o".into(),
        host: "h".into(),
        realname: "O".into(),
    };
    shard.register(9, other, Default::default());
    while shard.poll_output().is_some() {}
    let mut client_config = ClientConfig::new("taken");
    client_config.caps = vec!["server-time".into()];
    let pair = Pair::with_config(
        ClientConn::new(client_config),
        ServerConn::new(server_config, "h"),
        config,
    );
    let mut pair = pair.traced();
    let got = serve(&mut pair, &mut shard);
    assert!(
        got.contains(&ClientEvent::Registered {
            nick: "taken_".into()
        }),
        "{got:?} seed {} trace {:#?}",
        pair.config().seed,
        &pair.trace()[pair.trace().len().saturating_sub(30)..]
    );
    assert!(pair.client.is_registered());
    assert_eq!(pair.client.nick(), "taken_");
    pair.client.join("#k", None);
    let got = serve(&mut pair, &mut shard);
    assert!(
        got.contains(&ClientEvent::Join {
            nick: "taken_".into(),
            channel: "#k".into()
        }),
        "{got:?} seed {} trace {:#?}",
        pair.config().seed,
        &pair.trace()[pair.trace().len().saturating_sub(30)..]
    );
    if keepalive {
        // The server's keep-alive PING is answered by the client machine.
        pair.advance(Duration::from_secs(91));
        let mut got = serve(&mut pair, &mut shard);
        pair.advance(Duration::from_secs(61));
        got.extend(serve(&mut pair, &mut shard));
        assert!(
            got.iter().all(|e| !matches!(e, ClientEvent::Error(_))),
            "{got:?}"
        );
    }
    pair.client.quit("bye");
    let got = serve(&mut pair, &mut shard);
    assert!(
        got.contains(&ClientEvent::Error("Closing Link: h (Quit: bye)".into())),
        "{got:?} seed {} trace {:#?}",
        pair.config().seed,
        &pair.trace()[pair.trace().len().saturating_sub(40)..]
    );
    assert_eq!(shard.client_count(), 1, "only the other client is left");
}

#[test]
fn registers_joins_answers_ping_and_quits() {
    session(SimConfig::ideal(), true);
}

#[test]
fn the_same_session_on_faulty_links() {
    for seed in 0..100 {
        session(SimConfig::faulty(seed), false);
    }
}
