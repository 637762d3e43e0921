//! The relay and the TCP proxy's failover over `ringwork::testing` (in-memory connections,
//! manual clock): held bytes, both directions, half-close, backpressure, resets, the idle
//! timeout and upstream health.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use ringwork::testing::StringTransport;
use ringwork::{Context, Factory, LostKind, LostReason, Protocol, ReactorConfig, TimerId};

use super::{RelayConfig, SplicePolicy, TcpProxy, TcpProxyConfig};

/// A factory-built protocol as a `Protocol` value (what `StringTransport` takes).
struct Boxed(Box<dyn Protocol>);

impl Protocol for Boxed {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.0.connection_made(ctx);
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.0.data_received(ctx, data);
    }
    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.0.eof_received(ctx);
    }
    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        self.0.pause_writing(ctx);
    }
    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        self.0.write_drained(ctx);
    }
    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.0.timer_fired(ctx, timer);
    }
    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        self.0.connection_lost(ctx, reason);
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

fn config(ports: &[u16]) -> TcpProxyConfig {
    let mut config = TcpProxyConfig::new(ports.iter().map(|&p| addr(p)).collect());
    config.relay = RelayConfig {
        idle_timeout: Some(Duration::from_secs(60)),
        max_held: 1024,
        connect_timeout: None,
        // The in-memory transport refuses every splice: each test here also proves the
        // relay keeps copying when splicing is refused.
        splice: SplicePolicy::Always,
        write_timeout: Some(Duration::from_secs(60)),
    };
    config
}

fn small_buffers() -> ReactorConfig {
    ReactorConfig {
        write_high_watermark: 4096,
        write_low_watermark: 1024,
        write_buffer_limit: 64 * 1024,
        ..ReactorConfig::default()
    }
}

/// A proxy client connection under test, plus a handle on the proxy's per-core state.
fn start(config: TcpProxyConfig, reactor: ReactorConfig) -> (StringTransport, TcpProxy) {
    let mut proxy = TcpProxy::new(config);
    let handle = proxy.handle();
    let t = StringTransport::with_config(Boxed(proxy.build_protocol()), reactor);
    (t, handle)
}

fn connect_ok(t: &mut StringTransport) -> ringwork::ConnId {
    let (upstream, _) = t.pending_connects().remove(0);
    t.complete_connect(upstream, Ok(()));
    upstream
}

#[test]
fn relays_both_ways_and_propagates_half_close() {
    let (mut t, proxy) = start(config(&[9000]), ReactorConfig::default());
    let pending = t.pending_connects();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.as_socket(), Some(addr(9000)));
    // Sent while connecting: held, then sent once connected.
    t.feed(b"early ");
    t.feed(b"bytes");
    let up = connect_ok(&mut t);
    assert_eq!(t.remote(up).take_written(), b"early bytes");
    t.remote(up).feed(b"reply");
    assert_eq!(t.take_written(), b"reply");

    // The client finishes: the upstream sees EOF, the other direction goes on.
    t.feed_eof();
    assert!(t.remote(up).is_write_shut_down());
    assert!(t.is_open());
    t.remote(up).feed(b"more");
    assert_eq!(t.take_written(), b"more");
    // Then the upstream finishes: both close cleanly.
    t.remote(up).feed_eof();
    assert!(t.is_closed());
    assert_eq!(t.lost_reason().map(LostReason::kind), Some(LostKind::Done));
    assert_eq!(
        t.remote(up).lost_reason().map(LostReason::kind),
        Some(LostKind::Done)
    );
    let stats = proxy.stats().snapshot();
    assert_eq!((stats.open, stats.total), (0, 1));
    assert_eq!((stats.to_upstream, stats.to_client), (11, 9));
}

#[test]
fn client_eof_while_connecting_is_passed_on_after_the_held_bytes() {
    let (mut t, _proxy) = start(config(&[9000]), ReactorConfig::default());
    t.feed(b"request");
    t.feed_eof();
    let up = connect_ok(&mut t);
    assert_eq!(t.remote(up).take_written(), b"request");
    assert!(t.remote(up).is_write_shut_down());
    t.remote(up).feed(b"answer");
    t.remote(up).feed_eof();
    assert_eq!(t.take_written(), b"answer");
    assert!(t.is_closed());
}

#[test]
fn held_bytes_are_bounded_while_connecting() {
    let (mut t, _proxy) = start(config(&[9000]), ReactorConfig::default());
    t.feed(&[1; 1000]);
    assert!(!t.is_reading_paused());
    t.feed(&[2; 1000]);
    assert!(t.is_reading_paused(), "past max_held the client is paused");
    let up = connect_ok(&mut t);
    assert!(!t.is_reading_paused());
    assert_eq!(t.remote(up).take_written().len(), 2000);
}

#[test]
fn a_full_upstream_pauses_the_client_and_drained_resumes_it() {
    let (mut t, proxy) = start(config(&[9000]), small_buffers());
    let up = connect_ok(&mut t);
    t.remote(up).stall_peer(true);
    let mut sent = 0;
    while !t.is_reading_paused() {
        t.feed(&[7; 1000]);
        sent += 1000;
        assert!(sent < 64 * 1024, "the client was never paused");
    }
    assert!(t.remote(up).queued() <= 4096 + 1000);
    // Paused: further bytes in flight are held by the engine, not written on.
    t.feed(&[8; 1000]);
    assert!(t.remote(up).queued() <= 4096 + 1000);
    let got = t.remote(up).drain();
    assert!(!t.is_reading_paused(), "write_drained resumes the client");
    let rest = t.remote(up).drain();
    assert_eq!(got.len() + rest.len(), sent + 1000);
    assert!(proxy.stats().snapshot().read_pauses >= 1);
    assert!(proxy.stats().snapshot().max_buffered <= 4096 + 1000);
}

#[test]
fn a_stalled_client_pauses_the_upstream() {
    let (mut t, _proxy) = start(config(&[9000]), small_buffers());
    let up = connect_ok(&mut t);
    t.stall_peer(true);
    let mut sent = 0;
    while !t.remote(up).is_reading_paused() {
        t.remote(up).feed(&[3; 1000]);
        sent += 1000;
        assert!(sent < 64 * 1024, "the upstream was never paused");
    }
    assert!(t.queued() <= 4096 + 1000);
    t.stall_peer(false);
    assert!(!t.remote(up).is_reading_paused());
    assert_eq!(t.take_written().len(), sent);
}

#[test]
fn a_reset_on_one_side_aborts_the_other() {
    let (mut t, _proxy) = start(config(&[9000]), ReactorConfig::default());
    let up = connect_ok(&mut t);
    t.remote(up).reset_by_peer();
    assert!(t.is_aborted());

    let (mut t, _proxy) = start(config(&[9000]), ReactorConfig::default());
    let up = connect_ok(&mut t);
    t.reset_by_peer();
    assert!(t.remote(up).is_aborted());
}

#[test]
fn a_client_leaving_while_connecting_cancels_the_connect() {
    let (mut t, proxy) = start(config(&[9000]), ReactorConfig::default());
    t.feed(b"x");
    t.reset_by_peer();
    assert!(t.pending_connects().is_empty());
    assert_eq!(proxy.stats().snapshot().open, 0);
}

#[test]
fn idle_pairs_are_closed() {
    let (mut t, proxy) = start(config(&[9000]), ReactorConfig::default());
    let up = connect_ok(&mut t);
    t.advance(Duration::from_secs(40));
    t.remote(up).feed(b"activity");
    t.advance(Duration::from_secs(40));
    assert!(t.is_open(), "activity 40 s ago: not idle yet");
    t.advance(Duration::from_secs(21));
    assert!(t.is_closed());
    assert!(t.remote(up).is_closed());
    assert_eq!(proxy.stats().snapshot().idle_closes, 1);
}

#[test]
fn a_refused_upstream_fails_over_and_is_marked_down() {
    let (mut t, proxy) = start(config(&[9000, 9001]), ReactorConfig::default());
    t.feed(b"hello");
    let (first, a) = t.pending_connects().remove(0);
    assert_eq!(a.as_socket(), Some(addr(9000)));
    t.complete_connect(first, Err(ErrorKind::ConnectionRefused));
    let (second, a) = t.pending_connects().remove(0);
    assert_eq!(a.as_socket(), Some(addr(9001)));
    t.complete_connect(second, Ok(()));
    assert_eq!(t.remote(second).take_written(), b"hello", "no byte lost");

    let health = proxy.health();
    let until = health[0].down_until.expect("9000 is down");
    assert_eq!(until.duration_since(t.now()), Duration::from_secs(1));
    assert_eq!((health[0].consecutive_failures, health[0].failed), (1, 1));
    assert_eq!((health[1].down_until, health[1].connected), (None, 1));
}

#[test]
fn no_healthy_upstream_closes_the_client() {
    let (mut t, proxy) = start(config(&[9000, 9001]), ReactorConfig::default());
    for _ in 0..2 {
        let (id, _) = t.pending_connects().remove(0);
        t.complete_connect(id, Err(ErrorKind::ConnectionRefused));
    }
    assert!(t.is_closed());
    assert!(t.pending_connects().is_empty());
    assert_eq!(proxy.stats().snapshot().open, 0);
}

#[test]
fn a_socket_that_cannot_be_created_counts_as_a_failure() {
    let mut proxy = TcpProxy::new(config(&[9000]));
    let handle = proxy.handle();
    let mut t = StringTransport::new(Later {
        inner: proxy.build_protocol(),
        started: false,
    });
    t.set_connect_error(Some(ErrorKind::AddrNotAvailable));
    t.feed(b"go");
    assert!(t.is_closed());
    assert!(t.pending_connects().is_empty());
    assert_eq!(handle.health()[0].failed, 1);
}

/// Starts the wrapped protocol on the first byte (after the test set the transport up).
struct Later {
    inner: Box<dyn Protocol>,
    started: bool,
}

impl Protocol for Later {
    fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
        if !self.started {
            self.started = true;
            self.inner.connection_made(ctx);
        }
    }
    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.inner.timer_fired(ctx, timer);
    }
    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        self.inner.connection_lost(ctx, reason);
    }
}

#[test]
fn a_large_delivery_waits_in_the_overflow_not_in_the_engine() {
    let (mut t, proxy) = start(config(&[9000]), small_buffers());
    let up = connect_ok(&mut t);
    t.remote(up).stall_peer(true);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut fed = 0;
    while !t.is_reading_paused() {
        t.feed(&data[fed..fed + 1000]);
        fed += 1000;
    }
    // While paused, 100 kB arrive: the engine holds them and hands them over in one
    // piece on resume — more than the upstream's 64 KiB hard limit.
    t.feed(&data[fed..fed + 100_000]);
    fed += 100_000;
    let mut got = Vec::new();
    while got.len() < fed {
        got.extend(t.remote(up).drain_up_to(3000));
        assert!(t.remote(up).is_open(), "the upstream hit its hard limit");
        assert!(t.remote(up).queued() <= 4096 + 16 * 1024);
    }
    assert_eq!(got, data[..fed]);
    let stats = proxy.stats().snapshot();
    assert!(stats.max_overflow > 0, "{stats:?}");
    assert!(stats.max_buffered <= 4096 + 16 * 1024, "{stats:?}");
    assert!(!t.is_reading_paused());
}

#[test]
fn a_big_held_request_with_eof_is_all_sent_before_the_pair_closes() {
    let mut config = config(&[9000]);
    config.relay.max_held = 64 * 1024;
    let (mut t, _proxy) = start(config, small_buffers());
    let data: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    t.feed(&data);
    t.feed_eof();
    let (up, _) = t.pending_connects().remove(0);
    t.remote(up).stall_peer(true);
    t.complete_connect(up, Ok(()));
    // More held than the upstream's buffer takes: the rest waits, and so does the EOF.
    assert!(!t.remote(up).is_write_shut_down());
    // The upstream answers and finishes before reading everything.
    t.remote(up).feed(b"early answer");
    t.remote(up).feed_eof();
    assert_eq!(t.take_written(), b"early answer");
    let mut got = Vec::new();
    while got.len() < data.len() {
        got.extend(t.remote(up).drain_up_to(5000));
    }
    assert_eq!(got, data, "every held byte, in order");
    assert!(t.remote(up).is_write_shut_down());
    assert!(t.is_closed() && t.remote(up).is_closed());
}

#[test]
fn the_relay_connect_timeout_fails_over() {
    let mut config = config(&[9000, 9001]);
    config.relay.connect_timeout = Some(Duration::from_secs(2));
    let (mut t, proxy) = start(config, ReactorConfig::default());
    t.advance(Duration::from_secs(2));
    let (second, a) = t.pending_connects().remove(0);
    assert_eq!(a.as_socket(), Some(addr(9001)));
    t.complete_connect(second, Ok(()));
    assert_eq!(proxy.health()[0].failed, 1);
}
