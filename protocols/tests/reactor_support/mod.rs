//! A one-core reactor on the test thread for the HTTP client and reverse-proxy tests: made
//! per backend (skipped loudly when the backend cannot run here), and `block_on`, which
//! turns it until a future resolves. Nothing sleeps: the wait is bounded by [`LIMIT`].

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use ringwork::platform::{BackendChoice, testing};
use ringwork::{DriverConfig, Reactor, ReactorConfig};

/// Overall deadline of one wait.
pub const LIMIT: Duration = Duration::from_secs(20);

/// A reactor on `backend` with default settings, or `None` when it cannot run here.
pub fn reactor(backend: BackendChoice) -> Option<Reactor> {
    testing::driver(backend, DriverConfig::default())?;
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    Some(Reactor::new(ReactorConfig::default(), driver).expect("create a reactor"))
}

/// Runs `future` on `reactor` until it resolves (at most [`LIMIT`]).
pub fn block_on<T: 'static>(reactor: &mut Reactor, future: impl Future<Output = T> + 'static) -> T {
    let slot = Rc::new(RefCell::new(None));
    let out = Rc::clone(&slot);
    reactor.spawn_local(async move {
        let value = future.await;
        *out.borrow_mut() = Some(value);
    });
    let done = reactor
        .run_until(LIMIT, |_| slot.borrow().is_some())
        .expect("reactor turn");
    assert!(
        done,
        "{} backend: no result within {LIMIT:?}",
        reactor.backend()
    );
    slot.borrow_mut().take().expect("checked above")
}
