//! Allocations per request on the hello path (issue 16): a counting global allocator around
//! the HTTP/1.1 server machine fed wrk's pipelined ×16 `GET /` batches, answered as
//! `ringwork serve hello` answers. After warm-up a request must cost no allocation.
//!
//! Only allocations made on the test's own thread are counted (`allocation-counter`'s
//! global allocator; the harness's threads run other tests of this binary beside it).

use std::time::Instant;

use bytes::Bytes;
use ringwork_protocols::http::proto::server::{Response, ServerConfig, ServerConn, ServerEvent};
use ringwork_protocols::http::services::HELLO_BODY;
use ringwork_protocols::kit::Machine;

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
