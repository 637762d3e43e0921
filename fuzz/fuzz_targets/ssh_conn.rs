//! Fuzz target for the SSH auth and channel state machines: our client and server machines
//! over a simulated link (`kit::sim::Pair`), past the (real, encrypted) key exchange, then
//! a script of arbitrary messages injected on either side (`send_raw_payload`: malformed,
//! out of order, wrong channels, data past the window, auth requests after success), the
//! machines' own calls (open, exec, data, EOF, close, answers to start/open/forward and
//! password checks, window releases), writability changes and time passing. Asserts: no
//! panic; no event after a side's `Disconnected`; the client hears at most one
//! authentication outcome. Flags in the first byte: the user key authorized (plain, or
//! under `restrict,command=,permitopen=,permitlisten=`), password auth, a second (ECDSA)
//! host key that the client asks for.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::kit::Machine;
use ringwork_protocols::kit::sim::Pair;
use ringwork_protocols::ssh::channel::ChannelId;
use ringwork_protocols::ssh::client::{ClientConfig, ClientConn, ClientEvent};
use ringwork_protocols::ssh::keys::{AuthorizedKeys, KeyKind, SigningKey};
use ringwork_protocols::ssh::server::{ServerConfig, ServerConn, ServerEvent};

/// The Ed25519 host key, the user key, an ECDSA host key.
type Keys = (Arc<SigningKey>, Arc<SigningKey>, Arc<SigningKey>);

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            Arc::new(SigningKey::generate("host").expect("random")),
            Arc::new(SigningKey::generate("user").expect("random")),
            Arc::new(SigningKey::generate_kind(KeyKind::EcdsaP256, "host").expect("random")),
        )
    })
}

/// Takes a length-prefixed chunk from the script.
fn chunk<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let n = usize::from(rest.first().copied().unwrap_or(0)).min(rest.len().saturating_sub(1));
    let out = rest.get(1..1 + n).unwrap_or_default();
    *rest = rest.get(1 + n..).unwrap_or_default();
    out
}

fn byte(rest: &mut &[u8]) -> u8 {
    let b = rest.first().copied().unwrap_or(0);
    *rest = rest.get(1..).unwrap_or_default();
    b
}

fuzz_target!(|data: &[u8]| {
    let (host, user, ecdsa_host) = keys();
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let authorized = match (flags & 1 == 1, flags & 8 == 8) {
        (false, _) => String::new(),
        (true, false) => user.public().to_openssh(),
        // Restricted: the forced command, pty and forwarding refusals are reachable.
        (true, true) => format!(
            "restrict,command=\"x\",permitopen=\"h:1\",permitlisten=\"2\" {}",
            user.public().to_openssh()
        ),
    };
    let mut server_config = ServerConfig::new(
        Arc::clone(host),
        Arc::new(AuthorizedKeys::parse(&authorized)),
    );
    server_config.password_auth = flags & 2 == 2;
    let mut transport = ringwork_protocols::ssh::transport::TransportConfig::default();
    if flags & 16 == 16 {
        // Two host keys; the client asks for the ECDSA one.
        server_config.host_keys.push(Arc::clone(ecdsa_host));
        transport.host_key_algorithms = vec!["ecdsa-sha2-nistp256".into()];
    }
    server_config.max_channels = 4;
    let client_config = ClientConfig {
        transport,
        user: "fuzz".into(),
        key: Arc::clone(user),
        host_key_check: Arc::new(|_| Ok(())),
    };
    let mut pair = Pair::new(
        ClientConn::new(client_config),
        ServerConn::new(server_config),
    );
    let mut client_done = false;
    let mut server_events = 0usize;
    let mut auth_outcomes = 0;
    let mut on_client = |_: &mut ClientConn, e: ClientEvent, _| {
        assert!(!client_done, "event after Disconnected: {e:?}");
        match e {
            ClientEvent::Disconnected { .. } => client_done = true,
            ClientEvent::Authenticated | ClientEvent::AuthFailed => auth_outcomes += 1,
            _ => {}
        }
    };
    let mut on_server = |_: &mut ServerConn, e: ServerEvent, _| {
        server_events += 1;
        let _ = e;
    };
    if flags & 4 == 4 {
        pair.client.open_session();
    }
    pair.run(Duration::from_secs(1), &mut on_client, &mut on_server);
    for _ in 0..64 {
        if rest.is_empty() {
            break;
        }
        let op = byte(&mut rest);
        let ch = ChannelId(u32::from(byte(&mut rest) % 6));
        match op % 12 {
            0 => pair.client.send_raw_payload(chunk(&mut rest).to_vec()),
            1 => pair.server.send_raw_payload(chunk(&mut rest).to_vec()),
            2 => {
                let c = pair.client.open_session();
                pair.client.exec(c, "x");
            }
            3 => pair.client.send_data(ch, chunk(&mut rest)),
            4 => pair.client.send_eof(ch),
            5 => pair.client.close_channel(ch),
            6 => pair.server.start_result(ch, op & 0x10 != 0),
            7 => pair.server.send_data(ch, chunk(&mut rest), op & 0x10 != 0),
            8 => {
                let n = usize::from(byte(&mut rest)) * 1024;
                pair.server.release(ch, n);
                pair.client.release(ch, n);
            }
            9 => match op >> 4 {
                0 => pair.server.close_channel(ch),
                1 => pair.server.send_exit_status(ch, 1),
                2 => pair.server.open_result(ch, true),
                3 => pair.server.forward_result(u64::from(ch.0), Some(1234), 0),
                4 => {
                    let _ = pair.server.open_forwarded("127.0.0.1", 1, "127.0.0.1", 2);
                }
                _ => pair.server.send_eof(ch),
            },
            10 => pair.server.password_result(op & 0x10 != 0),
            _ => {
                let now = pair.now();
                pair.server.handle_writable(op & 0x10 != 0, now);
                pair.client.handle_writable(op & 0x20 != 0, now);
                pair.advance(Duration::from_millis(u64::from(op) * 100));
            }
        }
        pair.run(Duration::from_secs(1), &mut on_client, &mut on_server);
    }
    assert!(auth_outcomes <= 1);
});
