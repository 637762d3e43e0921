//! Writing to an outbound connection before it has connected, then closing it: the bytes are
//! sent once it connects and only then does it close (a fire-and-forget request).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use ringwork::platform::{BackendChoice, testing};
use ringwork::{
    ConnectOptions, Context, DriverConfig, LostReason, Protocol, Reactor, ReactorConfig,
};

/// Collects what it receives; records it when the peer finishes.
struct Collector {
    received: Vec<u8>,
    done: Rc<RefCell<Option<Vec<u8>>>>,
}

impl Protocol for Collector {
    fn data_received(&mut self, _ctx: &mut Context<'_>, data: &[u8]) {
        self.received.extend_from_slice(data);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        *self.done.borrow_mut() = Some(std::mem::take(&mut self.received));
        ctx.close();
    }
}

/// Does nothing but report how it ended.
struct Sender(Rc<RefCell<Option<String>>>);

impl Protocol for Sender {
    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        *self.0.borrow_mut() = Some(reason.to_string());
    }
}

ringwork::platform::test_all_backends! {
    fn close_before_connected_sends_what_was_written(backend: BackendChoice) {
        let config = DriverConfig { backend, ..DriverConfig::default() };
        if testing::driver(backend, config.clone()).is_none() {
            return;
        }
        let mut reactor = Reactor::new(ReactorConfig::default(), config).unwrap();
        let done = Rc::new(RefCell::new(None));
        let server_done = Rc::clone(&done);
        let addr = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move || Collector {
                received: Vec::new(),
                done: Rc::clone(&server_done),
            })
            .unwrap();

        let lost = Rc::new(RefCell::new(None));
        let sender = Sender(Rc::clone(&lost));
        let id = reactor.connect(&addr.into(), sender, ConnectOptions::default()).unwrap();
        let request: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        reactor.with_conn(id, |ctx| {
            ctx.write(&request);
            ctx.close();
            assert!(!ctx.is_open());
        });
        let limit = Duration::from_secs(10);
        assert!(reactor.run_until(limit, |_| done.borrow().is_some() && lost.borrow().is_some()).unwrap());
        assert!(done.borrow().as_deref() == Some(&request[..]), "the server did not get the request");
        assert_eq!(lost.borrow().as_deref(), Some("closed cleanly"));
    }

    fn close_before_connected_with_nothing_written_cancels(backend: BackendChoice) {
        let config = DriverConfig { backend, ..DriverConfig::default() };
        if testing::driver(backend, config.clone()).is_none() {
            return;
        }
        let mut reactor = Reactor::new(ReactorConfig::default(), config).unwrap();
        let addr = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), || Sender(Rc::default()))
            .unwrap();
        let lost = Rc::new(RefCell::new(None));
        let sender = Sender(Rc::clone(&lost));
        let id = reactor.connect(&addr.into(), sender, ConnectOptions::default()).unwrap();
        reactor.with_conn(id, |ctx| ctx.close());
        assert_eq!(lost.borrow().as_deref(), Some("closed cleanly"));
    }
}
