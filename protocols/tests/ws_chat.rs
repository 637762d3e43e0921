//! The cross-core broadcast on one core, both backends: many subscribers, one encoding per
//! message (two when some subscribers negotiated permessage-deflate), every subscriber gets
//! every message, and a subscriber under `SlowPolicy::Drop` that stops reading misses
//! messages instead of growing memory. (Across cores: `protocols/cli/tests/ws_interop.rs`,
//! `ringwork serve ws-chat --cores 2` with Python clients.)
#![cfg(feature = "engine")]

mod reactor_support;

use std::net::SocketAddr;

use reactor_support::{block_on, reactor};
use ringwork::platform::BackendChoice;
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::websocket::broadcast::{SlowPolicy, Topic, TopicConfig, ws_chat_server};
use ringwork_protocols::websocket::client::{WsClientOptions, connect};
use ringwork_protocols::websocket::proto::DeflateConfig;
use ringwork_protocols::websocket::server::service_config;
use ringwork_protocols::websocket::{Message, WsEvent};

ringwork::platform::test_all_backends! {
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
