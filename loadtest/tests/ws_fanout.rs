//! `ws --subscribers`: fan-out through ringwork's broadcast server (`ws_chat_server`, one
//! core, in this process), on both backends: every subscriber connects, every measured
//! message reaches every subscriber, and the delivery latency is plausible.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ringwork::platform::{BackendChoice, test_all_backends};
use ringwork::{DriverConfig, Reactor, ReactorConfig};
use ringwork_loadtest::RunOptions;
use ringwork_loadtest::ws_fanout::{FanoutOptions, run_fanout};
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::websocket::broadcast::{Topic, TopicConfig, ws_chat_server};
use ringwork_protocols::websocket::proto::WsConfig;

/// `ws_chat_server` on its own reactor thread; stops when dropped.
struct Chat {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Chat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn chat(backend: BackendChoice) -> Option<Chat> {
    ringwork::platform::testing::driver(backend, DriverConfig::default())?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded(1);
    let s = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let driver = DriverConfig {
            backend,
            ..DriverConfig::default()
        };
        let mut reactor = Reactor::new(ReactorConfig::default(), driver).expect("reactor");
        let topic = Topic::new(TopicConfig::default()).local(&reactor);
        let server = ws_chat_server(ServerConfig::default(), WsConfig::default(), topic);
        let addr = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
            .expect("listen");
        tx.send(addr).expect("send addr");
        while !s.load(Ordering::Relaxed) {
            reactor.turn(Some(Duration::from_millis(10))).expect("turn");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server address");
    Some(Chat {
        addr,
        stop,
        thread: Some(thread),
    })
}

test_all_backends! {
    /// 40 subscribers, 200 messages/s for one measured second: 200 × 40 deliveries, none
    /// lost, latency far below the run.
    fn every_subscriber_gets_every_message(backend: BackendChoice) {
        let Some(server) = chat(backend) else { return };
        let url = format!("ws://{}/", server.addr);
        let run = RunOptions {
            backend,
            cores: 1,
            ..RunOptions::new("ws", &url, server.addr)
        };
        let opts = FanoutOptions {
            url,
            addr: server.addr,
            subscribers: 40,
            rate: 200.0,
            size: 64,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(10),
            tls: None,
            run,
        };
        let report = run_fanout(&opts).expect("run");
        let summary = report.summary();
        assert_eq!(report.connected, 40, "{summary}");
        assert!((190..=210).contains(&report.published), "{summary}");
        assert_eq!(report.delivered, report.published * 40, "{summary}");
        assert_eq!(report.lost, 0, "{summary}");
        assert_eq!(report.disconnected, 0, "{summary}");
        let p50 = report.latency.value_at_quantile(0.5);
        assert!(p50 < 200_000, "p50 {p50} us\n{summary}");
    }
}
