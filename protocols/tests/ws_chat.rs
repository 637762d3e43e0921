//! The cross-core broadcast on one core, both backends: many subscribers, one encoding per
//! message (two when some subscribers negotiated permessage-deflate), every subscriber gets
//! every message, and a subscriber under `SlowPolicy::Drop` that stops reading misses
//! messages instead of growing memory; and the core's bound on what all its subscribers
//! hold (`max_queued_total`): two subscribers that stop reading, each under the
//! per-subscriber bound, are shed (largest first) once the core's total passes it, under
//! `Drop` and under `Close`. (Across cores: `protocols/cli/tests/ws_interop.rs`,
//! `ringwork serve ws-chat --cores 2` with Python clients.)
#![cfg(feature = "engine")]

mod reactor_support;

use std::net::SocketAddr;

use reactor_support::{block_on, reactor};
use ringwork::platform::BackendChoice;
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::websocket::broadcast::{SlowPolicy, Topic, TopicConfig, ws_chat_server};
use ringwork_protocols::websocket::client::{WsClientOptions, connect};
use ringwork_protocols::websocket::proto::{CloseCode, DeflateConfig};
use ringwork_protocols::websocket::server::service_config;
use ringwork_protocols::websocket::{Message, WsEvent};

/// Two raw subscribers that complete the handshake and never read, a reader and a writer
/// that sends `count` messages of 256 KiB; returns the topic's counters and what the core's
/// subscribers held unsent at the end (after the reader got everything).
fn two_stalled_subscribers(
    backend: BackendChoice,
    config: TopicConfig,
    count: u8,
) -> Option<(ringwork_protocols::websocket::broadcast::TopicStats, usize)> {
    let mut reactor = reactor(backend)?;
    let topic = Topic::new(config).local(&reactor);
    let addr = reactor
        .listen_tcp(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            ws_chat_server(ServerConfig::default(), service_config(), topic.clone()),
        )
        .expect("listen");
    let handle = reactor.handle();
    let url = format!("ws://{addr}/");
    let stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut slow = std::net::TcpStream::connect(addr).expect("connect");
            std::io::Write::write_all(
                &mut slow,
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .expect("handshake");
            slow
        })
        .collect();
    let got = block_on(&mut reactor, async move {
        let reader = connect(&handle, &url, WsClientOptions::default())
            .await
            .expect("connect");
        let writer = connect(&handle, &url, WsClientOptions::default())
            .await
            .expect("connect");
        for k in 0..count {
            writer
                .send(Message::binary(vec![k; 256 * 1024]))
                .expect("send");
            // Its own copy comes back too: reading it paces the writer.
            assert!(writer.recv().await.is_some());
        }
        let mut got = 0;
        while got < count {
            match reader.next_event().await {
                Some(WsEvent::Message(message)) => {
                    assert_eq!(message.as_bytes()[0], got);
                    got += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
        got
    });
    assert_eq!(got, count, "reading subscribers miss nothing");
    let result = (topic.stats(), topic.queued());
    drop(stalled);
    Some(result)
}

ringwork::platform::test_all_backends! {
    /// 128 messages of 256 KiB (32 MiB) to two subscribers that never read: each is under
    /// its own bound (64 MiB) all along, but the core's total (2 MiB) is passed, so they
    /// miss messages (largest queue first) and what the core holds stays near the bound
    /// (without it, each would hold what the kernel does not: tens of MiB).
    fn the_core_total_bounds_stalled_subscribers_under_drop(backend: BackendChoice) {
        let mut config = TopicConfig::default();
        config.slow = SlowPolicy::Drop;
        config.max_queued = 64 << 20;
        config.max_queued_total = 2 << 20;
        let Some((stats, queued)) = two_stalled_subscribers(backend, config, 128) else { return };
        assert!(stats.over_total > 0, "the core's bound applied: {stats:?}");
        assert_eq!(stats.dropped, stats.over_total, "{stats:?}");
        assert_eq!(stats.closed_slow, 0);
        // The bound, plus at most one message each for subscribers that held nothing.
        assert!(queued <= (2 << 20) + 4 * 256 * 1024 + 4096, "held {queued} bytes: {stats:?}");
    }

    /// The same under `Close`: the stalled subscribers are closed (1013), the reader gets
    /// every message.
    fn the_core_total_closes_stalled_subscribers_under_close(backend: BackendChoice) {
        let mut config = TopicConfig::default();
        config.slow = SlowPolicy::Close(CloseCode::TRY_AGAIN_LATER);
        config.max_queued = 64 << 20;
        config.max_queued_total = 2 << 20;
        let Some((stats, queued)) = two_stalled_subscribers(backend, config, 64) else { return };
        assert!(stats.over_total > 0, "the core's bound applied: {stats:?}");
        assert!(stats.closed_slow >= 1, "{stats:?}");
        assert_eq!(stats.dropped, 0);
        assert!(queued <= (2 << 20) + 4 * 256 * 1024 + 4096, "held {queued} bytes: {stats:?}");
    }

    fn one_encoding_per_message_per_core(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let topic = Topic::new(TopicConfig::default()).local(&reactor);
        let addr = reactor
            .listen_tcp(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                ws_chat_server(ServerConfig::default(), service_config(), topic.clone()),
            )
            .expect("listen");
        let handle = reactor.handle();
        let url = format!("ws://{addr}/");
        let received = block_on(&mut reactor, async move {
            let mut clients = Vec::new();
            for i in 0..20 {
                let mut options = WsClientOptions::default();
                // Half of them compress.
                options.config.deflate = (i % 2 == 0).then(DeflateConfig::default);
                clients.push(connect(&handle, &url, options).await.expect("connect"));
            }
            clients[3].send(Message::text("hello everyone ".repeat(10))).expect("send");
            let mut received = 0;
            for client in &clients {
                assert_eq!(client.recv().await, Some(Message::text("hello everyone ".repeat(10))));
                received += 1;
            }
            received
        });
        assert_eq!(received, 20);
        let stats = topic.stats();
        assert_eq!((stats.published, stats.messages, stats.deliveries), (1, 1, 20));
        assert_eq!(stats.encodings, 2, "one plain and one compressed frame for 20 subscribers");
    }

    fn a_slow_subscriber_misses_messages_under_drop(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let mut config = TopicConfig::default();
        config.slow = SlowPolicy::Drop;
        config.max_queued = 64 * 1024;
        let topic = Topic::new(config).local(&reactor);
        let addr = reactor
            .listen_tcp(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                ws_chat_server(ServerConfig::default(), service_config(), topic.clone()),
            )
            .expect("listen");
        let handle = reactor.handle();
        let url = format!("ws://{addr}/");
        // A raw subscriber that completes the handshake and never reads.
        let mut slow = std::net::TcpStream::connect(addr).expect("connect");
        std::io::Write::write_all(
            &mut slow,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .expect("handshake");
        let got = block_on(&mut reactor, async move {
            let reader = connect(&handle, &url, WsClientOptions::default()).await.expect("connect");
            let writer = connect(&handle, &url, WsClientOptions::default()).await.expect("connect");
            for k in 0..64u8 {
                writer.send(Message::binary(vec![k; 256 * 1024])).expect("send");
                // Its own copy comes back too: reading it paces the writer.
                assert!(writer.recv().await.is_some());
            }
            let mut got = 0;
            while got < 64 {
                match reader.next_event().await {
                    Some(WsEvent::Message(message)) => {
                        assert_eq!(message.as_bytes()[0], got as u8);
                        got += 1;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            got
        });
        assert_eq!(got, 64, "reading subscribers miss nothing");
        let stats = topic.stats();
        assert!(stats.dropped > 0, "the slow one missed messages: {stats:?}");
        assert_eq!(stats.closed_slow, 0);
        drop(slow);
    }
}
