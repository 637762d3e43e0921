//! Our client machine against our server machine under [`Pair`] (no reactor): login,
//! exec with exit status, refused keys and host keys, re-keying, flow control, forwarding,
//! strict KEX against a hand-written peer, and faulty links from seeds.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;

use super::channel::ChannelId;
use super::cipher::Sealer;
use super::client::{ClientConfig, ClientConn, ClientEvent, known_hosts_check};
use super::keys::{AuthorizedKeys, KeyKind, KnownHosts, SigningKey};
use super::server::{ServerConfig, ServerConn, ServerEvent, SessionRequest};
use super::wire::{Writer, msg};
use crate::kit::Machine;
use crate::kit::sim::{Pair, RawPeer, SimConfig};

struct Keys {
    host: Arc<SigningKey>,
    user: Arc<SigningKey>,
    other: Arc<SigningKey>,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        host: Arc::new(SigningKey::generate("host").unwrap()),
        user: Arc::new(SigningKey::generate("user").unwrap()),
        other: Arc::new(SigningKey::generate("other").unwrap()),
    })
}

fn server_config() -> ServerConfig {
    let k = keys();
    let authorized = AuthorizedKeys::parse(&k.user.public().to_openssh());
    ServerConfig::new(Arc::clone(&k.host), Arc::new(authorized))
}

fn client_config(key: &Arc<SigningKey>, host_key: &SigningKey) -> ClientConfig {
    let known = KnownHosts::parse(&format!(
        "[127.0.0.1]:2222 {}",
        host_key.public().to_openssh()
    ));
    ClientConfig {
        transport: Default::default(),
        user: "alice".into(),
        key: Arc::clone(key),
        host_key_check: known_hosts_check(known, "127.0.0.1".into(), 2222),
    }
}

fn pair_with(
    client: ClientConfig,
    server: ServerConfig,
    sim: SimConfig,
) -> Pair<ClientConn, ServerConn> {
    Pair::with_config(ClientConn::new(client), ServerConn::new(server), sim)
}

/// What the client saw of one channel.
#[derive(Default, Debug)]
struct Seen {
    out: Vec<u8>,
    exit: Option<u32>,
    closed: bool,
    authenticated: bool,
    auth_failed: bool,
    disconnected: Option<String>,
}

/// The test server's application: `exec` echoes the command line, then its stdin, then
/// exits with status 3; `direct-tcpip` to port 7 echoes.
fn serve(server: &mut ServerConn, event: ServerEvent, echo: &mut Vec<ChannelId>) {
    match event {
        ServerEvent::Start {
            channel,
            request: SessionRequest::Exec(cmd),
            env,
            ..
        } => {
            server.start_result(channel, true);
            server.send_data(channel, format!("ran {cmd}\n").as_bytes(), false);
            for (key, value) in env {
                if key == "SSH_ORIGINAL_COMMAND" {
                    server.send_data(channel, format!("original {value}\n").as_bytes(), false);
                }
            }
            echo.push(channel);
        }
        ServerEvent::Data { channel, data } => {
            server.send_data(channel, &data, false);
            server.release(channel, data.len());
        }
        ServerEvent::Eof { channel } => {
            if echo.contains(&channel) {
                server.send_exit_status(channel, 3);
            }
            server.close_channel(channel);
        }
        ServerEvent::DirectTcpip { channel, port, .. } => server.open_result(channel, port == 7),
        _ => {}
    }
}

fn watch(client: &mut ClientConn, event: ClientEvent, seen: &mut Seen) {
    match event {
        ClientEvent::Authenticated => seen.authenticated = true,
        ClientEvent::AuthFailed => seen.auth_failed = true,
        ClientEvent::Data { channel, data, .. } => {
            seen.out.extend_from_slice(&data);
            client.release(channel, data.len());
        }
        ClientEvent::ExitStatus { code, .. } => seen.exit = Some(code),
        ClientEvent::Closed { .. } => seen.closed = true,
        ClientEvent::Disconnected { reason } => seen.disconnected = Some(reason),
        _ => {}
    }
}

/// Runs `exec` with `input` on its stdin through a pair; what the client saw.
fn exec_run(
    mut pair: Pair<ClientConn, ServerConn>,
    input: &[u8],
) -> (Seen, Pair<ClientConn, ServerConn>) {
    let channel = pair.client.open_session();
    pair.client.exec(channel, "true");
    let mut seen = Seen::default();
    let mut echo = Vec::new();
    let mut sent = 0;
    // Feed the input as the channel takes it.
    for _ in 0..10_000 {
        while sent < input.len() && pair.client.writable(channel) && seen.authenticated {
            let n = (input.len() - sent).min(16 * 1024);
            pair.client.send_data(channel, &input[sent..sent + n]);
            sent += n;
        }
        if sent == input.len() && seen.authenticated {
            pair.client.send_eof(channel);
        }
        let done = pair.run(
            Duration::from_millis(50),
            |c, e, _| watch(c, e, &mut seen),
            |s, e, _| serve(s, e, &mut echo),
        );
        if seen.closed
            || seen.disconnected.is_some()
            || seen.auth_failed
            || (done && sent == input.len())
        {
            break;
        }
    }
    (seen, pair)
}

#[test]
fn exec_runs_with_its_output_and_exit_status_under_strict_kex() {
    let k = keys();
    let pair = pair_with(
        client_config(&k.user, &k.host),
        server_config(),
        SimConfig::ideal(),
    );
    let (seen, pair) = exec_run(pair, b"hello");
    assert!(seen.authenticated, "{seen:?}");
    assert_eq!(seen.out, b"ran true\nhello");
    assert_eq!(seen.exit, Some(3));
    assert!(seen.closed);
    assert!(pair.client.is_strict_kex() && pair.server.is_strict_kex());
    assert_eq!(pair.server.user(), "alice");
}

#[test]
fn a_key_not_in_authorized_keys_is_refused() {
    let k = keys();
    let pair = pair_with(
        client_config(&k.other, &k.host),
        server_config(),
        SimConfig::ideal(),
    );
    let (seen, _pair) = exec_run(pair, b"");
    assert!(seen.auth_failed && !seen.authenticated, "{seen:?}");
    assert!(seen.out.is_empty());
}

#[test]
fn an_unknown_host_key_is_refused_before_authentication() {
    let k = keys();
    // known_hosts lists another key for the host: the client refuses the server.
    let pair = pair_with(
        client_config(&k.user, &k.other),
        server_config(),
        SimConfig::ideal(),
    );
    let (seen, _pair) = exec_run(pair, b"");
    assert!(!seen.authenticated);
    let reason = seen.disconnected.unwrap_or_default();
    assert!(reason.contains("CHANGED"), "{reason}");
}

#[test]
fn the_server_signs_with_the_host_key_the_client_prefers() {
    let k = keys();
    let ecdsa = Arc::new(SigningKey::generate_kind(KeyKind::EcdsaP384, "host384").unwrap());
    for (prefer, expect) in [
        ("ecdsa-sha2-nistp384", ecdsa.public()),
        ("ssh-ed25519", k.host.public()),
    ] {
        let mut server = server_config();
        server.host_keys = vec![Arc::clone(&k.host), Arc::clone(&ecdsa)];
        // known_hosts lists the one key of the preferred type, as OpenSSH's client does.
        let host = if prefer == "ssh-ed25519" {
            &k.host
        } else {
            &ecdsa
        };
        let mut client = client_config(&k.user, host);
        client.transport.host_key_algorithms = vec![prefer.into()];
        let (seen, pair) = exec_run(pair_with(client, server, SimConfig::ideal()), b"x");
        assert!(seen.authenticated, "{prefer}: {seen:?}");
        assert_eq!(pair.client.host_key(), Some(&expect), "{prefer}");
    }
}

#[test]
fn a_host_key_type_the_server_lacks_fails_the_exchange() {
    let k = keys();
    let mut client = client_config(&k.user, &k.host);
    client.transport.host_key_algorithms = vec!["ecdsa-sha2-nistp256".into()];
    let (seen, _pair) = exec_run(pair_with(client, server_config(), SimConfig::ideal()), b"");
    assert!(!seen.authenticated);
    let reason = seen.disconnected.unwrap_or_default();
    assert!(reason.contains("no common algorithm"), "{reason}");
}

#[test]
fn ecdsa_user_keys_log_in() {
    let k = keys();
    for kind in [KeyKind::EcdsaP256, KeyKind::EcdsaP384] {
        let user = Arc::new(SigningKey::generate_kind(kind, "user").unwrap());
        let mut server = server_config();
        server.authorized_keys = Arc::new(AuthorizedKeys::parse(&user.public().to_openssh()));
        let pair = pair_with(client_config(&user, &k.host), server, SimConfig::ideal());
        let (seen, _pair) = exec_run(pair, b"hi");
        assert!(seen.authenticated, "{kind:?}: {seen:?}");
        assert_eq!(seen.out, b"ran true\nhi");
    }
}

#[test]
fn rekeying_by_bytes_keeps_the_stream_intact() {
    let k = keys();
    let mut client = client_config(&k.user, &k.host);
    client.transport.rekey_bytes = 64 * 1024;
    let mut server = server_config();
    server.transport.rekey_bytes = 100 * 1024;
    let input: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let pair = pair_with(client, server, SimConfig::ideal());
    let (seen, pair) = exec_run(pair, &input);
    let mut expected = b"ran true\n".to_vec();
    expected.extend_from_slice(&input);
    assert_eq!(seen.out.len(), expected.len());
    assert!(seen.out == expected);
    assert_eq!(seen.exit, Some(3));
    assert!(
        pair.client.rekeys() >= 5 && pair.server.rekeys() >= 5,
        "{} {}",
        pair.client.rekeys(),
        pair.server.rekeys()
    );
}

#[test]
fn rekeying_by_time_happens_at_the_interval() {
    let k = keys();
    let mut server = server_config();
    server.transport.rekey_interval = Duration::from_secs(10);
    let mut pair = pair_with(client_config(&k.user, &k.host), server, SimConfig::ideal());
    let channel = pair.client.open_session();
    pair.client.exec(channel, "x");
    let mut seen = Seen::default();
    let mut echo = Vec::new();
    pair.run(
        Duration::from_secs(25),
        |c, e, _| watch(c, e, &mut seen),
        |s, e, _| serve(s, e, &mut echo),
    );
    assert!(pair.server.rekeys() >= 2, "{}", pair.server.rekeys());
    // Still usable after.
    pair.client.send_data(channel, b"after");
    pair.client.send_eof(channel);
    pair.run(
        Duration::from_secs(1),
        |c, e, _| watch(c, e, &mut seen),
        |s, e, _| serve(s, e, &mut echo),
    );
    assert_eq!(seen.out, b"ran x\nafter");
}

#[test]
fn a_reader_that_never_releases_stops_the_sender_at_the_window() {
    let k = keys();
    let mut pair = pair_with(
        client_config(&k.user, &k.host),
        server_config(),
        SimConfig::ideal(),
    );
    let channel = pair.client.open_session();
    pair.client.exec(channel, "flood");
    let mut server_channel = None;
    let mut received = 0usize;
    let mut blocked = false;
    for _ in 0..200 {
        pair.run(
            Duration::from_millis(10),
            |_c, e, _| {
                if let ClientEvent::Data { data, .. } = e {
                    received += data.len(); // never released
                }
            },
            |s, e, _| {
                if let ServerEvent::Start { channel, .. } = e {
                    s.start_result(channel, true);
                    server_channel = Some(channel);
                }
            },
        );
        if let Some(ch) = server_channel {
            if pair.server.writable(ch) {
                pair.server.send_data(ch, &[b'x'; 64 * 1024], false);
            } else {
                blocked = true;
                break;
            }
        }
    }
    assert!(blocked, "the server never stopped writing");
    // The client got exactly one window; the server holds at most its high water mark.
    assert_eq!(received, super::channel::LOCAL_WINDOW as usize);
}

#[test]
fn direct_tcpip_opens_or_is_refused_by_the_application() {
    let k = keys();
    let mut pair = pair_with(
        client_config(&k.user, &k.host),
        server_config(),
        SimConfig::ideal(),
    );
    let good = pair.client.open_direct_tcpip("127.0.0.1", 7);
    let bad = pair.client.open_direct_tcpip("127.0.0.1", 8);
    let mut opened = Vec::new();
    let mut closed = Vec::new();
    let mut out = Vec::new();
    let mut echo = Vec::new();
    pair.run(
        Duration::from_secs(1),
        |c, e, _| match e {
            ClientEvent::Opened { channel } => {
                opened.push(channel);
                c.send_data(channel, b"ping");
            }
            ClientEvent::Closed { channel } => closed.push(channel),
            ClientEvent::Data { data, .. } => out.extend_from_slice(&data),
            _ => {}
        },
        |s, e, _| serve(s, e, &mut echo),
    );
    assert_eq!(opened, vec![good]);
    assert_eq!(closed, vec![bad]);
    assert_eq!(out, b"ping");
}

#[test]
fn faulty_links_deliver_exec_output_intact() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..40).collect(),
    };
    let k = keys();
    let input: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    for seed in seeds {
        // The simulated clock jumps (a suspended machine): handshake limits out of the way.
        let mut client = client_config(&k.user, &k.host);
        client.transport.handshake_timeout = Duration::from_secs(3600);
        let mut server = server_config();
        server.transport.handshake_timeout = Duration::from_secs(3600);
        server.auth_timeout = Duration::from_secs(3600);
        let pair = pair_with(client, server, SimConfig::faulty(seed)).traced();
        let (seen, pair) = exec_run(pair, &input);
        let trace = pair.trace();
        let tail = trace[trace.len().saturating_sub(30)..].join("\n");
        assert_eq!(
            seen.exit,
            Some(3),
            "seed {seed}: {:?} {:?} {:?}\n{tail}",
            seen.disconnected,
            pair.server.error(),
            pair.client.error()
        );
        assert!(
            seen.out.len() == input.len() + 9 && seen.out[9..] == input[..],
            "seed {seed}"
        );
    }
}

/// A packet without encryption, as the first packets of a connection travel.
fn plain_packet(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Sealer::new().seal(payload, &mut out);
    out.to_vec()
}

fn client_kexinit(strict: bool) -> Vec<u8> {
    let mut kex = vec!["curve25519-sha256"];
    if strict {
        kex.push("kex-strict-c-v00@openssh.com");
    }
    let mut w = Writer::message(msg::KEXINIT);
    w.raw(&[0; 16]).name_list(&kex).name_list(&["ssh-ed25519"]);
    w.name_list(&["chacha20-poly1305@openssh.com"])
        .name_list(&["chacha20-poly1305@openssh.com"]);
    w.name_list(&["hmac-sha2-256"])
        .name_list(&["hmac-sha2-256"])
        .name_list(&["none"])
        .name_list(&["none"]);
    w.name_list(&[]).name_list(&[]).bool(false).u32(0);
    w.finish()
}

/// Terrapin: under strict KEX a message before the client's KEXINIT (which shifts the
/// sequence numbers) ends the connection; without strict KEX it is ignored.
#[test]
fn strict_kex_refuses_a_packet_before_kexinit() {
    for strict in [true, false] {
        let mut pair = Pair::new(RawPeer::new(), ServerConn::new(server_config()));
        let mut bytes = b"SSH-2.0-test\r\n".to_vec();
        bytes.extend(plain_packet(&[msg::IGNORE, 0, 0, 0, 0]));
        bytes.extend(plain_packet(&client_kexinit(strict)));
        pair.client.send(&bytes);
        pair.run(Duration::from_secs(1), |_, _, _| {}, |_, _, _| {});
        let error = pair.server.error().map(str::to_owned);
        if strict {
            assert_eq!(
                error.as_deref(),
                Some("strict KEX: KEXINIT was not the first packet")
            );
        } else {
            assert_eq!(error, None);
        }
    }
}

#[test]
fn garbage_and_oversized_packets_end_the_connection_without_panic() {
    for input in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"SSH-2.0-x\r\n\xff\xff\xff\xff",
        b"SSH-1.5-old\r\n",
    ] {
        let mut pair = Pair::new(RawPeer::new(), ServerConn::new(server_config()));
        pair.client.send(input);
        pair.run(Duration::from_secs(1), |_, _, _| {}, |_, _, _| {});
        assert!(pair.server.error().is_some(), "{input:?}");
    }
}

/// The client goes away (end of stream) while the server re-keys with channel data held
/// for after the exchange: the server still closes (the held data is dropped).
#[test]
fn end_of_stream_during_a_rekey_still_closes() {
    use crate::kit::{Close, Machine};
    let k = keys();
    let mut server = server_config();
    server.transport.rekey_interval = Duration::from_secs(10);
    let mut pair = pair_with(client_config(&k.user, &k.host), server, SimConfig::ideal());
    let channel = pair.client.open_session();
    pair.client.exec(channel, "x");
    let mut started = None;
    pair.run(
        Duration::from_secs(1),
        |_, _, _| {},
        |s, e, _| {
            if let ServerEvent::Start { channel, .. } = e {
                s.start_result(channel, true);
                started = Some(channel);
            }
        },
    );
    let channel = started.expect("the exec started");
    // The re-key starts; the data waits for its end; the client never answers.
    let later = pair.now() + Duration::from_secs(11);
    pair.server.handle_timeout(later);
    pair.server.send_data(channel, b"held", false);
    pair.server.handle_eof(later);
    while pair.server.poll_transmit(later).is_some() {}
    assert_eq!(pair.server.poll_close(), Some(Close::Graceful));
}

/// A writer told "not writable" because the *transport* was full (not its channel) gets
/// `Writable` once the transport has room again: without it, a relay that paused on the
/// answer waited forever (seen as a stalled `ssh -R` under load).
#[test]
fn a_full_transport_ends_in_writable_for_its_channels() {
    let k = keys();
    let mut pair = pair_with(
        client_config(&k.user, &k.host),
        server_config(),
        SimConfig::ideal(),
    );
    let channel = pair.client.open_session();
    pair.client.exec(channel, "x");
    let mut server_channel = None;
    for _ in 0..100 {
        pair.run(
            Duration::from_millis(10),
            |_c, _e, _| {},
            |s, e, _| {
                if let ServerEvent::Start { channel, .. } = e {
                    s.start_result(channel, true);
                    server_channel = Some(channel);
                }
            },
        );
        if server_channel.is_some() {
            break;
        }
    }
    let ch = server_channel.expect("the session started");
    let now = std::time::Instant::now();
    assert!(pair.server.writable(ch));
    pair.server.handle_writable(false, now);
    assert!(!pair.server.writable(ch), "a full transport says no");
    // Nothing is announced while the transport stays full.
    pair.server.send_data(ch, b"queued", false);
    let mut early = Vec::new();
    while let Some(event) = pair.server.poll_event() {
        early.push(event);
    }
    assert!(
        !early
            .iter()
            .any(|e| matches!(e, ServerEvent::Writable { .. })),
        "{early:?}"
    );
    pair.server.handle_writable(true, now);
    let mut events = Vec::new();
    while let Some(event) = pair.server.poll_event() {
        events.push(event);
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::Writable { channel } if *channel == ch)),
        "no Writable after the transport drained: {events:?}"
    );
    assert!(pair.server.writable(ch));
}

/// A server whose authorized_keys line for the user key carries `options`.
fn server_with_options(options: &str) -> ServerConfig {
    let mut config = server_config();
    let line = format!("{options} {}", keys().user.public().to_openssh());
    let authorized = AuthorizedKeys::parse(&line);
    assert_eq!(authorized.len(), 1, "{:?}", authorized.refused());
    config.authorized_keys = Arc::new(authorized);
    config
}

#[test]
fn a_forced_command_runs_instead_with_the_original_in_the_environment() {
    let k = keys();
    let pair = pair_with(
        client_config(&k.user, &k.host),
        server_with_options(r#"command="forced \"x\"""#),
        SimConfig::ideal(),
    );
    let (seen, _pair) = exec_run(pair, b"");
    assert_eq!(seen.out, b"ran forced \"x\"\noriginal true\n", "{seen:?}");
}

#[test]
fn no_pty_refuses_the_terminal_and_no_port_forwarding_the_channels() {
    let k = keys();
    for (options, pty_ok, open_ok) in [
        ("no-pty", false, [true, true]),
        ("restrict", false, [false, false]),
        ("restrict,pty,port-forwarding", true, [true, true]),
        (r#"permitopen="127.0.0.1:7""#, true, [true, false]),
    ] {
        let mut pair = pair_with(
            client_config(&k.user, &k.host),
            server_with_options(options),
            SimConfig::ideal(),
        );
        let session = pair.client.open_session();
        pair.client.request_pty(session, "xterm", 80, 24);
        let seven = pair.client.open_direct_tcpip("127.0.0.1", 7);
        let other = pair.client.open_direct_tcpip("localhost", 7);
        let mut pty = None;
        let mut opened = Vec::new();
        let mut echo = Vec::new();
        pair.run(
            Duration::from_secs(1),
            |_, e, _| match e {
                ClientEvent::RequestResult { channel, ok } if channel == session => pty = Some(ok),
                ClientEvent::Opened { channel } => opened.push(channel),
                _ => {}
            },
            |s, e, _| match e {
                // The application would connect: accept every open that reaches it.
                ServerEvent::DirectTcpip { channel, .. } => s.open_result(channel, true),
                e => serve(s, e, &mut echo),
            },
        );
        assert_eq!(pty, Some(pty_ok), "{options}");
        assert_eq!(
            [opened.contains(&seven), opened.contains(&other)],
            open_ok,
            "{options}"
        );
    }
}

#[test]
fn from_admits_only_a_matching_peer_address() {
    let k = keys();
    for (peer, admitted) in [
        (Some("127.0.0.1"), true),
        (Some("127.0.0.2"), false),
        (None, false),
    ] {
        let mut server = ServerConn::new(server_with_options(r#"from="127.0.0.1,::1""#));
        server.set_peer_address(peer.map(|p| p.parse().unwrap()));
        let pair = Pair::with_config(
            ClientConn::new(client_config(&k.user, &k.host)),
            server,
            SimConfig::ideal(),
        );
        let (seen, _pair) = exec_run(pair, b"");
        assert_eq!(seen.authenticated, admitted, "{peer:?}: {seen:?}");
    }
}

#[test]
fn no_client_event_follows_disconnected() {
    // Found by fuzz/run-stable.sh ssh_conn: a channel blocked by a full transport was told
    // Writable after the connection had failed.
    let k = keys();
    let mut pair = pair_with(
        client_config(&k.user, &k.host),
        server_config(),
        SimConfig::ideal(),
    );
    let channel = pair.client.open_session();
    pair.client.exec(channel, "x");
    let mut echo = Vec::new();
    let mut authenticated = false;
    for _ in 0..100 {
        pair.run(
            Duration::from_millis(10),
            |_, e, _| authenticated |= matches!(e, ClientEvent::Authenticated),
            |s, e, _| serve(s, e, &mut echo),
        );
        if authenticated {
            break;
        }
    }
    assert!(authenticated);
    let now = std::time::Instant::now();
    pair.client.handle_writable(false, now);
    assert!(!pair.client.writable(channel));
    // Bytes that fail the packet check: the transport fails, the client says Disconnected.
    pair.client.handle_input(&[0x55; 64], now);
    pair.client.handle_writable(true, now);
    let mut events = Vec::new();
    while let Some(event) = pair.client.poll_event() {
        events.push(event);
    }
    let at = events
        .iter()
        .position(|e| matches!(e, ClientEvent::Disconnected { .. }))
        .expect("disconnected");
    assert_eq!(
        at + 1,
        events.len(),
        "events after Disconnected: {events:?}"
    );
}
