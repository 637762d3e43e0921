//! Fuzz target for the whole WebSocket connection machine (`WsConn`) as a server or a
//! client, with or without permessage-deflate: arbitrary peer bytes, fed whole and in three
//! pieces. Asserts: no panic; split insensitivity (the same events either way); exactly one
//! `Closed`, and nothing after it; messages within `max_message`; memory held within the
//! limits; nothing transmitted after the transport was closed; and a round trip: every
//! message of the input sent through a client machine reaches a server machine unchanged.
//!
//! Input: `[flags, a, b, bytes...]`. `flags & 1`: client role (else server); `flags & 2`:
//! permessage-deflate negotiated; `flags & 4`: the application sends each message back;
//! `a`, `b`: two cut points (scaled to the input length).
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::kit::{Close, Machine};
use ringwork_protocols::websocket::proto::{
    DeflateConfig, DeflateParams, Message, Negotiated, WsConfig, WsConn, WsEvent, WsRequest,
};

const LIMIT: usize = 4096;

fn config(deflate: bool) -> WsConfig {
    let mut config = WsConfig::default();
    config.max_frame = LIMIT;
    config.max_message = LIMIT;
    config.deflate = deflate.then(DeflateConfig::default);
    config.mask_seed = [1; 32];
    config
}

fn negotiated(deflate: bool) -> Negotiated {
    Negotiated {
        deflate: deflate.then_some(DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }),
        ..Negotiated::default()
    }
}

/// A machine already open (a client is given a canned 101 first).
fn machine(client: bool, deflate: bool) -> WsConn {
    if !client {
        return WsConn::server(config(deflate), negotiated(deflate));
    }
    let mut conn = WsConn::client(
        config(deflate),
        &WsRequest {
            host: "h".into(),
            ..WsRequest::default()
        },
    );
    let now = Instant::now();
    conn.handle_connected(now);
    let request = conn.poll_transmit(now).expect("the handshake request");
    let text = String::from_utf8_lossy(&request);
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("a key");
    let accept = ringwork_protocols::websocket::proto::handshake::accept_key(key.as_bytes());
    let ext = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{ext}\r\n"
    );
    conn.handle_input(response.as_bytes(), now);
    conn
}

/// Runs `input` in pieces ending at `cuts`; the events, and every message.
fn run(client: bool, deflate: bool, echo: bool, input: &[u8], cuts: &[usize]) -> Vec<WsEvent> {
    let mut conn = machine(client, deflate);
    let now = Instant::now();
    let mut events = Vec::new();
    let mut closed_transport = false;
    let mut at = 0;
    for &end in cuts.iter().chain([&input.len()]) {
        let end = end.clamp(at, input.len());
        conn.handle_input(&input[at..end], now);
        at = end;
        // Bounded: one message being assembled (at most the limit, plus inflate's one
        // byte past it), the scratch buffer and one control payload.
        assert!(
            conn.held_input() <= 4 * LIMIT + 64 * 1024,
            "{}",
            conn.held_input()
        );
        while let Some(event) = conn.poll_event() {
            if let WsEvent::Message(message) = &event {
                assert!(message.len() <= LIMIT);
                if message.is_text() {
                    assert!(message.as_text().is_some());
                }
                if echo {
                    let _ = conn.send(message.clone());
                }
            }
            events.push(event);
        }
        while let Some(bytes) = conn.poll_transmit(now) {
            assert!(!closed_transport, "transmit after close");
            assert!(!bytes.is_empty());
        }
        if let Some(close) = conn.poll_close()
            && close != Close::Write
        {
            closed_transport = true;
        }
    }
    conn.handle_eof(now);
    conn.handle_timeout(now + Duration::from_secs(3600));
    events.extend(std::iter::from_fn(|| conn.poll_event()));
    let closes = events
        .iter()
        .filter(|e| matches!(e, WsEvent::Closed(_)))
        .count();
    assert_eq!(closes, 1, "exactly one Closed: {events:?}");
    assert!(
        matches!(events.last(), Some(WsEvent::Closed(_))),
        "Closed is last"
    );
    events
}

/// An event as the peer can tell it apart (a close by its code and cleanliness).
fn visible(event: &WsEvent) -> WsEvent {
    match event {
        WsEvent::Closed(info) => {
            let mut info = info.clone();
            info.reason.clear();
            info.error = None;
            WsEvent::Closed(info)
        }
        other => other.clone(),
    }
}

/// Messages sent by a client machine reach a server machine unchanged.
fn round_trip(deflate: bool, messages: &[Message]) {
    let mut client = machine(true, deflate);
    let mut server = machine(false, deflate);
    let now = Instant::now();
    for message in messages {
        client.send_fragmented(message.clone(), 700).expect("open");
    }
    while let Some(bytes) = client.poll_transmit(now) {
        server.handle_input(&bytes, now);
    }
    let got: Vec<Message> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            WsEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(got, messages);
}

fuzz_target!(|data: &[u8]| {
    let [flags, a, b, input @ ..] = data else {
        return;
    };
    let (client, deflate, echo) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let scale = |x: u8| usize::from(x) * input.len() / 255;
    let mut cuts = [scale(*a), scale(*b)];
    cuts.sort_unstable();
    let whole = run(client, deflate, echo, input, &[]);
    let split = run(client, deflate, echo, input, &cuts);
    // What the peer sees must not depend on the split; which check failed first may (text
    // is checked as it inflates, so a corrupt stream can show invalid UTF-8 first: 1007
    // either way).
    assert_eq!(
        whole.iter().map(visible).collect::<Vec<_>>(),
        split.iter().map(visible).collect::<Vec<_>>(),
        "split at {cuts:?} changed the events"
    );
    let messages: Vec<Message> = whole
        .into_iter()
        .filter_map(|e| match e {
            WsEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    let mut sample = messages;
    sample.push(Message::binary(Bytes::copy_from_slice(
        &input[..input.len().min(LIMIT)],
    )));
    round_trip(deflate, &sample);
});
