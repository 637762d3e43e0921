//! Per-core counters on every backend: connections accepted, started and open, bytes in
//! and out, and the driver's batching (completions per kernel enter) under load.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{Echo, reactor, wait};
use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, LostReason, Protocol};

const CLIENTS: usize = 20;

#[derive(Default)]
struct Done {
    made: usize,
    /// (sent, received back, ended cleanly)
    finished: Vec<(usize, usize, bool)>,
}

/// Sends `size` bytes in several writes, closes once they all came back.
struct Client {
    size: usize,
    got: usize,
    done: Rc<RefCell<Done>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.done.borrow_mut().made += 1;
        let data = common::pattern(self.size);
        for chunk in data.chunks(10_000) {
            ctx.write(chunk);
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.got += data.len();
        if self.got >= self.size {
            ctx.close();
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        let clean = reason.is_clean();
        self.done
            .borrow_mut()
            .finished
            .push((self.size, self.got, clean));
    }
}

ringwork::platform::test_all_backends! {
    /// `CLIENTS` echo round trips on one core: `accepted`, `connects` and `connections`
    /// count them, `bytes_in` and `bytes_out` are exactly twice the payload (each byte goes
    /// out and in once each way), and completions outnumber kernel enters.
    fn counters_match_the_traffic(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let before = reactor.stats();
        assert_eq!(
            (
                before.accepted,
                before.connects,
                before.connections,
                before.bytes_in,
                before.bytes_out
            ),
            (0, 0, 0, 0, 0),
            "a fresh reactor: {before:?}"
        );
        let made = Rc::new(RefCell::new(0));
        let addr = {
            let made = Rc::clone(&made);
            reactor
                .listen_tcp(common::any_port(), move || {
                    *made.borrow_mut() += 1;
                    Echo
                })
                .unwrap()
        };
        let done = Rc::new(RefCell::new(Done::default()));
        let sizes: Vec<usize> = (0..CLIENTS).map(|i| 1 + i * 37_171).collect();
        let payload: usize = sizes.iter().sum();
        for &size in &sizes {
            let client = Client {
                size,
                got: 0,
                done: Rc::clone(&done),
            };
            reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        }
        assert_eq!(
            reactor.stats().connects,
            CLIENTS as u64,
            "connects counted when started"
        );
        wait(
            &mut reactor,
            |_| done.borrow().made == CLIENTS && *made.borrow() == CLIENTS,
            || {
                format!(
                    "every connection made ({} clients, {} accepted)",
                    done.borrow().made,
                    made.borrow()
                )
            },
        );
        let open = reactor.stats();
        assert_eq!(
            open.connections,
            2 * CLIENTS as u64,
            "both ends of each connection are open: {open:?}"
        );
        assert_eq!(open.connections, reactor.connections() as u64);
        wait(
            &mut reactor,
            |r| done.borrow().finished.len() == CLIENTS && r.connections() == 0,
            || {
                format!(
                    "every round trip and close ({} of {CLIENTS})",
                    done.borrow().finished.len()
                )
            },
        );
        for &(sent, got, clean) in &done.borrow().finished {
            assert!(
                got == sent && clean,
                "a client sent {sent}, got {got} back, clean end: {clean}"
            );
        }

        let stats = reactor.stats();
        eprintln!(
            "{backend:?}: {stats:?}; {:.1} completions per enter",
            stats.completions as f64 / stats.enters as f64
        );
        assert_eq!(stats.accepted, CLIENTS as u64, "accepted: {stats:?}");
        assert_eq!(stats.connects, CLIENTS as u64, "connects: {stats:?}");
        assert_eq!(
            stats.connections, 0,
            "open connections after every close: {stats:?}"
        );
        // Both ends of every pair closed: the accepted and the outbound connection.
        assert_eq!(stats.closed, 2 * CLIENTS as u64, "closed: {stats:?}");
        assert_eq!(before.closed, 0);
        assert_eq!(
            stats.bytes_out,
            2 * payload as u64,
            "bytes out (clients + echo): {stats:?}"
        );
        assert_eq!(
            stats.bytes_in,
            2 * payload as u64,
            "bytes in (server + clients): {stats:?}"
        );
        assert_eq!(stats.panics, 0);
        assert!(
            stats.turns > 0 && stats.enters > 0 && stats.submissions > 0,
            "{stats:?}"
        );
        assert!(
            stats.completions > stats.enters,
            "completions per enter > 1 under load: {stats:?}"
        );
        assert!(
            stats.turns >= open.turns && stats.completions >= open.completions,
            "counters only grow"
        );
    }
}
