//! Signals as events on core 0 ([`Runtime::on_signal`](crate::Runtime::on_signal)).
//!
//! Owns: the handlers registered per signal and one thread, `ringwork-signal-events`, that
//! takes signals from signal-hook's self-pipe iterator (the async-signal-safe part is
//! signal-hook's) and forwards each one to core 0 as a cross-core message, where its
//! handlers run with the core's `&mut Reactor` between turns.
//! Contract: a handler never runs in signal context and never on another thread than core
//! 0's; several deliveries of one signal before the thread looks may merge into one (as
//! signals do); a signal that arrives before core 0 runs waits in its inbox. SIGINT and
//! SIGTERM are not routed here: they keep their graceful-shutdown meaning
//! ([`ShutdownHandle::on_signals`](crate::ShutdownHandle::on_signals)). The thread stops
//! (and the handlers are unregistered) when the runtime's `run` returns or the runtime is
//! dropped.
//! Does not: use signalfd (it needs the signal blocked in every thread of the process,
//! which a library cannot promise), or restore default dispositions (signal-hook keeps its
//! handler installed; an unrouted signal is then ignored).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crossbeam_channel::Sender;
use ringwork_platform::Waker;

use crate::error::EngineError;
use crate::reactor::Reactor;
use crate::runtime::CoreMessage;

/// A signal handler, run on core 0.
pub(crate) type Handler = Arc<dyn Fn(&mut Reactor) + Send + Sync>;

/// The handlers of a runtime and its forwarding thread.
#[derive(Default)]
pub(crate) struct SignalRouter {
    routes: Arc<Mutex<Routes>>,
}

#[derive(Default)]
struct Routes {
    handlers: HashMap<i32, Vec<Handler>>,
    /// The forwarding thread's handle (adds signals, stops it), once started.
    #[cfg(unix)]
    handle: Option<signal_hook::iterator::Handle>,
}

/// Where signals go: core 0's inbox and the wakers of the runtime's cores.
pub(crate) struct Core0 {
    pub(crate) sender: Sender<CoreMessage>,
    pub(crate) wakers: Arc<Mutex<Vec<Option<Waker>>>>,
}

impl SignalRouter {
    /// Routes `signal` to `handler` on core 0 (after the handlers added before).
    #[cfg(unix)]
    pub(crate) fn add(
        &self,
        signal: i32,
        handler: Handler,
        core0: impl FnOnce() -> Core0,
    ) -> Result<(), EngineError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        if signal == SIGINT || signal == SIGTERM {
            return Err(EngineError::Config {
                what: format!(
                    "signal {signal} shuts the runtime down (ShutdownHandle::on_signals); \
                     it cannot be routed"
                ),
            });
        }
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if routes.handle.is_none() {
            let signals =
                signal_hook::iterator::Signals::new::<[i32; 0], i32>([]).map_err(|source| {
                    EngineError::Io {
                        what: "installing signal handlers",
                        source,
                    }
                })?;
            routes.handle = Some(signals.handle());
            let routes = Arc::clone(&self.routes);
            let core0 = core0();
            thread::Builder::new()
                .name("ringwork-signal-events".into())
                .spawn(move || forward(signals, &routes, &core0))
                .map_err(|source| EngineError::Io {
                    what: "starting the signal thread",
                    source,
                })?;
        }
        if let Some(handle) = &routes.handle {
            handle
                .add_signal(signal)
                .map_err(|source| EngineError::Io {
                    what: "installing a signal handler",
                    source,
                })?;
        }
        routes.handlers.entry(signal).or_default().push(handler);
        Ok(())
    }

    /// Stops the forwarding thread; the handlers are gone.
    pub(crate) fn close(&self) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.handlers.clear();
        #[cfg(unix)]
        if let Some(handle) = routes.handle.take() {
            handle.close();
        }
    }
}

impl Drop for SignalRouter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The forwarding thread: each signal becomes a message to core 0 running its handlers.
#[cfg(unix)]
fn forward(mut signals: signal_hook::iterator::Signals, routes: &Mutex<Routes>, core0: &Core0) {
    for signal in signals.forever() {
        let handlers = routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handlers
            .get(&signal)
            .cloned()
            .unwrap_or_default();
        if handlers.is_empty() {
            continue;
        }
        let job = move |reactor: &mut Reactor| {
            for handler in &handlers {
                handler(reactor);
            }
        };
        if core0.sender.send(CoreMessage::Run(Box::new(job))).is_err() {
            return; // core 0 has stopped
        }
        let waker = core0
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .cloned()
            .flatten();
        // Not registered yet: core 0 runs its inbox in its first turn anyway.
        if let Some(waker) = waker {
            let _ = waker.wake();
        }
    }
}
