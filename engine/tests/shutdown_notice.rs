//! `Protocol::shutdown_started`: a keep-alive server closes idle connections as soon as a
//! graceful shutdown begins, instead of holding them until the grace period ends.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, LostKind, LostReason, Protocol};

/// Echo that keeps connections open until told the reactor is shutting down.
struct KeepAlive;

impl Protocol for KeepAlive {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        ctx.close();
    }
}

/// A client that sends one byte and records how its connection ended.
struct Idle(Rc<Cell<Option<LostKind>>>);

impl Protocol for Idle {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(b"x");
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        self.0.set(Some(reason.kind()));
    }
}

ringwork::platform::test_all_backends! {
    fn idle_keep_alive_connections_close_at_shutdown_start(backend: BackendChoice) {
        let Some(mut reactor) = common::reactor(backend) else { return };
        let addr = reactor.listen_tcp(common::any_port(), || KeepAlive).unwrap();
        let ended = Rc::new(Cell::new(None));
        reactor.connect(&addr.into(), Idle(Rc::clone(&ended)), ConnectOptions::default()).unwrap();
        assert!(reactor.run_until(Duration::from_secs(20), |r| r.stats().bytes_in >= 2).unwrap());
        let started = Instant::now();
        reactor.shutdown(Duration::from_secs(30));
        reactor.run().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited {:?}: idle connections were held for the grace period",
            started.elapsed()
        );
        // The client was not shut down itself: it saw the server close cleanly, or was
        // aborted at the end if its own protocol kept it open.
        assert!(matches!(ended.get(), Some(LostKind::Done | LostKind::Shutdown)), "{:?}", ended.get());
    }
}
