//! The HTTP server's rate limit on a `ManualClock`, on both backends: the burst passes, the
//! next request is 429 with `Retry-After` (whole seconds, rounded up), tokens come back at
//! exactly the configured rate when the test moves the clock, and never beyond the burst.
//! No timing: the clock only moves when the test says so.
#![cfg(feature = "engine")]

mod common;

use std::time::Duration;

use common::Server;
use ringwork::{BackendChoice, Clock, ManualClock, ReactorConfig};
use ringwork_protocols::http::server::{HttpServer, ServerConfig};
use ringwork_protocols::http::services::hello;
use ringwork_protocols::limits::{RateLimit, SharedRateLimiter};

/// The statuses and Retry-After values of `count` requests on one new connection.
fn burst(server: &Server, count: usize) -> Vec<(u16, Option<String>)> {
    let mut client = server.client();
    (0..count)
        .map(|_| {
            let response = client.get("/", "");
            (
                response.status,
                response.header("retry-after").map(str::to_owned),
            )
        })
        .collect()
}

fn tokens_follow_the_manual_clock(backend: BackendChoice) {
    let clock = ManualClock::new();
    let config = ReactorConfig {
        clock: Clock::Manual(clock.clone()),
        ..ReactorConfig::default()
    };
    let Some(server) = Server::start_server(backend, config, || {
        let limit = RateLimit::new(2.0, 3).expect("valid");
        HttpServer::new(hello, ServerConfig::default())
            .rate_limit(SharedRateLimiter::new(limit, 64))
    }) else {
        return;
    };
    let ok = (200, None);
    let wait = |secs: &str| (429, Some(secs.to_owned()));
    // The burst of 3, then 429: a token in 0.5 s, announced as 1 s.
    assert_eq!(
        burst(&server, 4),
        [ok.clone(), ok.clone(), ok.clone(), wait("1")]
    );
    // 0.4 s: still short of a token (0.8).
    clock.advance(Duration::from_millis(400));
    assert_eq!(burst(&server, 1), [wait("1")]);
    // 0.1 s more: exactly one token; the next waits again.
    clock.advance(Duration::from_millis(100));
    assert_eq!(burst(&server, 2), [ok.clone(), wait("1")]);
    // 10 s: 20 tokens' worth, but the bucket holds 3.
    clock.advance(Duration::from_secs(10));
    assert_eq!(burst(&server, 4), [ok.clone(), ok.clone(), ok, wait("1")]);
    server.shutdown(Duration::ZERO);
    server.join();
}

mod tokens_follow_the_manual_clock {
    #[test]
    fn uring() {
        super::tokens_follow_the_manual_clock(ringwork::BackendChoice::Uring);
    }
    #[test]
    fn poll() {
        super::tokens_follow_the_manual_clock(ringwork::BackendChoice::Poll);
    }
}
