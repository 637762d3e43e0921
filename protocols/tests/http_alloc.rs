//! Allocations per request on the hello path (issue 16): a counting global allocator around
//! the HTTP/1.1 server machine fed wrk's pipelined ×16 `GET /` batches, answered as
//! `ringwork serve hello` answers. After warm-up a request must cost no allocation.
//!
//! Two levels: the sans-IO machine alone, and the whole path (engine, kit adapter, server
//! glue, `services::hello`) on a reactor on the test thread, with a loopback client on its
//! own thread, on both backends. Only allocations made on the test's own thread are counted
//! (`allocation-counter`'s global allocator; the client and the harness's other threads are
//! not).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringwork::platform::BackendChoice;
use ringwork_protocols::http::proto::server::{Response, ServerConfig, ServerConn, ServerEvent};
use ringwork_protocols::http::services::{HELLO_BODY, hello_server};
use ringwork_protocols::kit::Machine;

// The one-core reactor on the test thread (`reactor`; `block_on` is not used here).
#[allow(dead_code)]
mod reactor_support;
use reactor_support::reactor;

/// Allocations made on this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

/// What wrk's pipeline.lua sends: `wrk.format("GET", "/")` for http://127.0.0.1:8080/, 16
/// times in one write.
fn pipelined_batch(depth: usize) -> Vec<u8> {
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".repeat(depth)
}

/// The answer of `ringwork serve hello` (`services::hello`).
fn hello_response() -> Response {
    Response::new(200)
        .header(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/plain"),
        )
        .with_body(Bytes::from_static(HELLO_BODY))
}

/// One batch through the machine, as the engine adapter drives it: input, every event
/// answered at once, every transmit taken (and dropped, as a completed send drops it).
/// Returns the requests answered and the bytes sent.
fn serve_batch(conn: &mut ServerConn, batch: &[u8], now: Instant) -> (usize, usize) {
    conn.handle_input(batch, now);
    let mut answered = 0;
    while let Some(event) = conn.poll_event() {
        if let ServerEvent::Request { id, .. } = event {
            conn.send_response(id, hello_response()).expect("answer");
            answered += 1;
        }
    }
    let mut sent = 0;
    while let Some(bytes) = conn.poll_transmit(now) {
        sent += bytes.len();
    }
    let _ = conn.poll_timeout();
    (answered, sent)
}

#[test]
fn pipelined_hello_requests_allocate_nothing_after_warm_up() {
    const DEPTH: usize = 16;
    const ROUNDS: usize = 200;
    let batch = pipelined_batch(DEPTH);
    let now = Instant::now();
    let mut conn = ServerConn::new(ServerConfig::default());
    conn.handle_connected(now);
    let mut date = [0u8; 29];
    date.copy_from_slice(b"Mon, 07 Dec 2026 09:00:00 GMT");
    conn.set_date(date);
    for _ in 0..8 {
        let (answered, _) = serve_batch(&mut conn, &batch, now);
        assert_eq!(answered, DEPTH);
    }
    let mut requests = 0;
    let mut bytes = 0;
    let allocations = allocations_in(|| {
        for _ in 0..ROUNDS {
            let (answered, sent) = serve_batch(&mut conn, &batch, now);
            requests += answered;
            bytes += sent;
        }
    });
    assert_eq!(requests, DEPTH * ROUNDS);
    assert!(bytes > requests * HELLO_BODY.len(), "{bytes} bytes sent");
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations for {requests} pipelined requests ({:.2} per request)",
        allocations as f64 / requests as f64
    );
}

/// A client on its own thread: one connection, `batches` pipelined batches of `depth` GETs,
/// each sent once every answer of the one before has arrived; `done` counts the batches
/// answered in full.
fn pipelining_client(
    addr: std::net::SocketAddr,
    depth: usize,
    batches: usize,
    done: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let batch = pipelined_batch(depth);
        let mut received = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..batches {
            stream.write_all(&batch).expect("send a batch");
            let mut answered = 0;
            while answered < depth {
                let n = stream.read(&mut buf).expect("read answers");
                assert!(n > 0, "the server closed the connection");
                received.extend_from_slice(&buf[..n]);
                // Each answer ends with the hello body; count the whole ones and keep the rest.
                while let Some(end) = received
                    .windows(HELLO_BODY.len())
                    .position(|w| w == HELLO_BODY)
                {
                    received.drain(..end + HELLO_BODY.len());
                    answered += 1;
                }
            }
            assert_eq!(answered, depth, "more answers than requests");
            done.fetch_add(1, Ordering::Release);
        }
    })
}

ringwork::platform::test_all_backends! {
    fn pipelined_hello_through_the_engine_allocates_nothing_after_warm_up(
        backend: BackendChoice
    ) {
        const DEPTH: usize = 16;
        const WARM_UP: usize = 50;
        const MEASURED: usize = 200;
        let Some(mut reactor) = reactor(backend) else { return };
        let addr = reactor
            .listen_tcp("127.0.0.1:0".parse().expect("address"), hello_server(ServerConfig::default()))
            .expect("listen");
        let done = Arc::new(AtomicUsize::new(0));
        let client = pipelining_client(addr, DEPTH, WARM_UP + MEASURED, Arc::clone(&done));
        let limit = Duration::from_secs(20);
        let warm = reactor
            .run_until(limit, |_| done.load(Ordering::Acquire) >= WARM_UP)
            .expect("reactor turn");
        assert!(warm, "{backend:?}: warm-up not answered within {limit:?}");
        let mut finished = false;
        let info = allocation_counter::measure(|| {
            finished = reactor
                .run_until(limit, |_| done.load(Ordering::Acquire) >= WARM_UP + MEASURED)
                .expect("reactor turn");
        });
        assert!(finished, "{backend:?}: batches not answered within {limit:?}");
        client.join().expect("client");
        let requests = DEPTH * MEASURED;
        assert_eq!(
            info.count_total,
            0,
            "{backend:?}: {} allocations for {requests} pipelined requests ({:.3} per request)",
            info.count_total,
            info.count_total as f64 / requests as f64
        );
    }
}
