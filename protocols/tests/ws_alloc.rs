//! Allocations per message on the WebSocket echo path (issue 19): a counting global
//! allocator around the server machine ([`WsConn`]) fed the frames `ringwork-load ws` sends
//! (128-byte masked binary messages, one at a time), echoed as `ringwork serve ws-echo`
//! echoes them. After warm-up a message must cost no allocation.
//!
//! Two levels, as `http_alloc.rs`: the sans-IO machine alone, and the whole path (engine, kit
//! adapter, HTTP upgrade, [`WsEcho`]) on a reactor on the test thread, with a loopback
//! client on its own thread, on both backends. Only allocations made on the test's own
//! thread are counted (`allocation-counter`'s global allocator).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringwork::platform::BackendChoice;
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::kit::Machine;
use ringwork_protocols::websocket::proto::frame::{FrameHead, OpCode, apply_mask, encode_head};
use ringwork_protocols::websocket::proto::{Negotiated, WsConfig, WsConn, WsEvent};
use ringwork_protocols::websocket::server::{service_config, ws_echo_server};

// The one-core reactor on the test thread (`reactor`; `block_on` is not used here).
#[allow(dead_code)]
mod reactor_support;
use reactor_support::reactor;

/// The benchmark's message size (`ws_echo_bench.sh`, SIZE=128).
const SIZE: usize = 128;

/// One masked binary frame of `SIZE` bytes, as `ringwork-load ws` sends it.
fn masked_frame() -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = BytesMut::new();
    encode_head(
        &mut frame,
        &FrameHead {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Binary,
            mask: Some(mask),
            len: SIZE as u64,
        },
    );
    let start = frame.len();
    frame.extend((0..SIZE).map(|i| i as u8));
    apply_mask(&mut frame[start..], mask, 0);
    frame.to_vec()
}

/// The server's echo of [`masked_frame`]: a 4-byte head (126, then the 16-bit length) and
/// the payload, unmasked.
const ECHO_LEN: usize = 4 + SIZE;

/// One frame through the machine as the adapter drives it for [`WsEcho`]: input, every
/// message echoed at once, every transmit taken (and dropped, as a completed send drops
/// it). Returns the messages echoed and the bytes sent.
///
/// [`WsEcho`]: ringwork_protocols::websocket::server::WsEcho
fn echo_frame(conn: &mut WsConn, frame: &[u8], now: Instant) -> (usize, usize) {
    conn.handle_input(frame, now);
    let mut echoed = 0;
    while let Some(event) = conn.poll_event() {
        if let WsEvent::Message(message) = event {
            conn.send(message).expect("echo");
            echoed += 1;
        }
    }
    let mut sent = 0;
    while let Some(bytes) = conn.poll_transmit(now) {
        sent += bytes.len();
    }
    let _ = conn.poll_timeout();
    (echoed, sent)
}

#[test]
fn echoed_messages_allocate_nothing_after_warm_up() {
    const MESSAGES: usize = 1000;
    let frame = masked_frame();
    let now = Instant::now();
    let mut conn = WsConn::server(service_config(), Negotiated::default());
    conn.handle_connected(now);
    for _ in 0..8 {
        assert_eq!(echo_frame(&mut conn, &frame, now).0, 1);
    }
    let (mut messages, mut bytes) = (0, 0);
    let allocations = allocation_counter::measure(|| {
        for _ in 0..MESSAGES {
            let (echoed, sent) = echo_frame(&mut conn, &frame, now);
            messages += echoed;
            bytes += sent;
        }
    })
    .count_total;
    assert_eq!((messages, bytes), (MESSAGES, MESSAGES * ECHO_LEN));
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations for {messages} messages ({:.2} per message)",
        allocations as f64 / messages as f64
    );
}

/// A frame split across reads (head, then the payload in two pieces) is echoed whole and
/// costs no allocation either once warm.
#[test]
fn messages_split_across_reads_allocate_nothing_after_warm_up() {
    const MESSAGES: usize = 300;
    let frame = masked_frame();
    let now = Instant::now();
    let mut conn = WsConn::server(WsConfig::default(), Negotiated::default());
    conn.handle_connected(now);
    let pieces = [&frame[..3], &frame[3..40], &frame[40..]];
    let run = |conn: &mut WsConn| {
        let mut echoed = 0;
        let mut sent = 0;
        for piece in pieces {
            let (e, s) = echo_frame(conn, piece, now);
            echoed += e;
            sent += s;
        }
        (echoed, sent)
    };
    for _ in 0..8 {
        assert_eq!(run(&mut conn).0, 1);
    }
    let (mut messages, mut bytes) = (0, 0);
    let allocations = allocation_counter::measure(|| {
        for _ in 0..MESSAGES {
            let (echoed, sent) = run(&mut conn);
            messages += echoed;
            bytes += sent;
        }
    })
    .count_total;
    assert_eq!((messages, bytes), (MESSAGES, MESSAGES * ECHO_LEN));
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {messages} messages"
    );
}

/// A client on its own thread: the opening handshake, then `messages` frames, each sent
/// once the echo of the one before has arrived (checked byte for byte); `done` counts the
/// echoes.
fn echo_client(
    addr: std::net::SocketAddr,
    messages: usize,
    done: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .expect("send the handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("read the 101");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let frame = masked_frame();
        let mut expected = vec![0x82, 126, 0, SIZE as u8];
        expected.extend((0..SIZE).map(|i| i as u8));
        let mut echo = vec![0u8; ECHO_LEN];
        for _ in 0..messages {
            stream.write_all(&frame).expect("send a message");
            stream.read_exact(&mut echo).expect("read the echo");
            assert_eq!(echo, expected);
            done.fetch_add(1, Ordering::Release);
        }
    })
}

ringwork::platform::test_all_backends! {
    fn echoed_messages_through_the_engine_allocate_nothing_after_warm_up(
        backend: BackendChoice
    ) {
        const WARM_UP: usize = 100;
        const MEASURED: usize = 500;
        const MAX_UNRELATED: u64 = 4;
        let Some(mut reactor) = reactor(backend) else { return };
        let server = ws_echo_server(ServerConfig::default(), service_config());
        let addr = reactor
            .listen_tcp("127.0.0.1:0".parse().expect("address"), server)
            .expect("listen");
        let done = Arc::new(AtomicUsize::new(0));
        let client = echo_client(addr, WARM_UP + MEASURED, Arc::clone(&done));
        let limit = Duration::from_secs(20);
        let warm = reactor
            .run_until(limit, |_| done.load(Ordering::Acquire) >= WARM_UP)
            .expect("reactor turn");
        assert!(warm, "{backend:?}: warm-up not echoed within {limit:?}");
        let mut finished = false;
        let info = allocation_counter::measure(|| {
            finished = reactor
                .run_until(limit, |_| done.load(Ordering::Acquire) >= WARM_UP + MEASURED)
                .expect("reactor turn");
        });
        assert!(finished, "{backend:?}: messages not echoed within {limit:?}");
        client.join().expect("client");
        // None per message: without the receive arena every message costs one (500 here).
        // A few that do not scale with the messages are allowed: on a loaded machine (the
        // run then takes ~0.2 s instead of 0.02) 2 in 500 were seen now and then, on both
        // backends, never more — something time-driven, not per message (not traced).
        assert!(
            info.count_total <= MAX_UNRELATED,
            "{backend:?}: {} allocations for {MEASURED} messages ({:.3} per message)",
            info.count_total,
            info.count_total as f64 / MEASURED as f64
        );
    }
}
