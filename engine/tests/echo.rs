//! Echo through the engine on every backend: many connections, odd sizes, every byte checked.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ringwork::platform::{BackendChoice, testing};
use ringwork::{
    ConnectOptions, Context, DriverConfig, LostReason, Protocol, Reactor, ReactorConfig,
};

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }
}

/// What one client sent, what came back, and how its connection ended.
type Finished = (Vec<u8>, Vec<u8>, String);

/// Sends `message`, collects the echo, closes when it is complete.
struct Client {
    message: Vec<u8>,
    echoed: Vec<u8>,
    done: Rc<RefCell<Vec<Finished>>>,
}

impl Protocol for Client {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        // Odd chunking: several writes in one turn are coalesced into one send.
        for chunk in self.message.chunks(7919) {
            ctx.write(chunk);
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.echoed.extend_from_slice(data);
        if self.echoed.len() >= self.message.len() {
            ctx.close();
        }
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        let echoed = std::mem::take(&mut self.echoed);
        self.done.borrow_mut().push((
            std::mem::take(&mut self.message),
            echoed,
            reason.to_string(),
        ));
    }
}

fn reactor(backend: BackendChoice) -> Option<Reactor> {
    // Probe availability the way the platform tests do (skips loudly when uring is missing).
    testing::driver(backend, DriverConfig::default())?;
    Some(
        Reactor::new(
            ReactorConfig::default(),
            DriverConfig {
                backend,
                ..DriverConfig::default()
            },
        )
        .unwrap(),
    )
}

ringwork::platform::test_all_backends! {
    fn many_connections_odd_sizes(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo).unwrap();
        let done = Rc::new(RefCell::new(Vec::new()));
        const CLIENTS: usize = 50;
        for i in 0..CLIENTS {
            let size = [1, 2, 127, 4096, 65_537, 300_001][i % 6] + i;
            let message: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            let client = Client { message, echoed: Vec::new(), done: Rc::clone(&done) };
            reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        }
        let finished = reactor
            .run_until(Duration::from_secs(30), |_| done.borrow().len() == CLIENTS)
            .unwrap();
        assert!(finished, "only {} of {CLIENTS} clients finished", done.borrow().len());
        for (sent, echoed, reason) in done.borrow().iter() {
            assert_eq!(reason, "closed cleanly");
            assert!(echoed == sent, "echo of {} bytes differs ({} back)", sent.len(), echoed.len());
        }
        // The server side of every connection closes after the client's end of stream.
        assert!(reactor.run_until(Duration::from_secs(10), |r| r.connections() == 0).unwrap());
        let stats = reactor.stats();
        assert_eq!(stats.accepted, CLIENTS as u64);
        assert!(stats.completions > stats.enters, "batching: {stats:?}");
    }
}

/// Runs one echo client against `addr` on `reactor` and checks what comes back.
fn echo_once(reactor: &mut Reactor, addr: ringwork::SockAddr) {
    let done = Rc::new(RefCell::new(Vec::new()));
    let message: Vec<u8> = (0..100_000).map(|b| (b % 251) as u8).collect();
    let client = Client {
        message: message.clone(),
        echoed: Vec::new(),
        done: Rc::clone(&done),
    };
    reactor
        .connect(&addr, client, ConnectOptions::default())
        .unwrap();
    assert!(
        reactor
            .run_until(Duration::from_secs(20), |_| !done.borrow().is_empty())
            .unwrap()
    );
    let (sent, echoed, reason) = &done.borrow()[0];
    assert_eq!(reason, "closed cleanly");
    assert!(echoed == sent && *sent == message);
}

ringwork::platform::test_all_backends! {
    fn echo_over_ipv6(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let Ok(addr) = reactor.listen_tcp("[::1]:0".parse().unwrap(), || Echo) else {
            eprintln!("skipped: ipv6 (::1 cannot be bound here)");
            return;
        };
        assert!(addr.is_ipv6());
        echo_once(&mut reactor, addr.into());
    }

    fn echo_over_a_unix_socket(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let dir = std::env::temp_dir().join(format!("ringwork-engine-{}-{backend:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("echo.sock");
        // A stale socket file (a listener of an earlier run that exited) is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        reactor.listen_unix(&path, || Echo).unwrap();
        echo_once(&mut reactor, ringwork::SockAddr::unix(&path).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
