//! [`Runtime`]: one pinned reactor thread per core, the messages between them, and shutdown.
//!
//! Owns: worker threads (pinned with core_affinity), per-core inboxes (crossbeam channels,
//! each paired with its reactor's driver waker), [`Cores`] (send or broadcast a closure to
//! cores) and [`ShutdownHandle`] (graceful shutdown from any thread, and from SIGINT/SIGTERM).
//! Contract: cores share nothing on the hot path; a message costs one channel send plus one
//! wake-up of the target reactor, and runs on the target core's thread between its turns.

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use ringwork_platform::{BackendChoice, DriverConfig, Waker};

use crate::config::ReactorConfig;
use crate::error::EngineError;
use crate::names::NameResolver;
use crate::reactor::Reactor;
use crate::signals::{Core0, SignalRouter};
use crate::threads::ThreadPool;

/// A closure run on a core's reactor.
type Job = Box<dyn FnOnce(&mut Reactor) + Send>;

/// What travels between cores.
pub(crate) enum CoreMessage {
    /// Run a closure on the target reactor.
    Run(Job),
    /// Begin graceful shutdown with this grace period.
    Shutdown(Duration),
    /// Begin a graceful shutdown after handing the listeners to another process
    /// ([`Reactor::hand_over`]).
    HandOver(Duration),
}

#[derive(Clone)]
struct CoreHandle {
    sender: Sender<CoreMessage>,
    waker: Waker,
}

/// The cores of a runtime, as seen from one of them: send a closure to another core's
/// reactor, or to all. `Send + Sync + Clone`: a handle may also leave the runtime's threads.
#[derive(Clone)]
pub struct Cores {
    this: usize,
    handles: Arc<[CoreHandle]>,
}

impl Cores {
    /// Number of cores in the runtime.
    #[must_use]
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the runtime has no cores (never true for a running runtime).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The index of the core this handle was taken on.
    #[must_use]
    pub fn this_core(&self) -> usize {
        self.this
    }

    /// Runs `f` on core `core`'s reactor (also this core: then in a later turn).
    ///
    /// # Errors
    /// `core` is out of range, or that core has stopped.
    pub fn send(
        &self,
        core: usize,
        f: impl FnOnce(&mut Reactor) + Send + 'static,
    ) -> Result<(), EngineError> {
        let handle = self.handles.get(core).ok_or_else(|| EngineError::Config {
            what: format!(
                "core {core} does not exist (the runtime has {})",
                self.handles.len()
            ),
        })?;
        handle
            .sender
            .send(CoreMessage::Run(Box::new(f)))
            .map_err(|_| stopped(core))?;
        handle.waker.wake().map_err(|source| EngineError::Io {
            what: "waking a core",
            source,
        })
    }

    /// Runs `f` on every core's reactor, this one included. Cores that stopped are skipped.
    pub fn broadcast(&self, f: impl Fn(&mut Reactor) + Send + Sync + 'static) {
        let f = Arc::new(f);
        for core in 0..self.handles.len() {
            let f = Arc::clone(&f);
            let _ = self.send(core, move |reactor| f(reactor));
        }
    }
}

fn stopped(core: usize) -> EngineError {
    EngineError::Config {
        what: format!("core {core} has stopped"),
    }
}

/// The limit on accepted connections across all cores (one atomic per accept and close).
#[derive(Debug)]
pub(crate) struct TotalLimit {
    count: AtomicUsize,
    max: usize,
}

impl TotalLimit {
    /// Counts one more connection; `false` (and nothing counted) at the limit.
    pub(crate) fn try_acquire(&self) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts one connection less.
    pub(crate) fn release(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Triggers graceful shutdown of every core, from any thread. Cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    senders: Arc<[Sender<CoreMessage>]>,
    wakers: Arc<Mutex<Vec<Option<Waker>>>>,
}

impl ShutdownHandle {
    /// Every core stops accepting, lets its connections finish for up to `grace`, then
    /// aborts the rest; [`Runtime::run`] returns when all cores are done.
    pub fn shutdown(&self, grace: Duration) {
        for sender in self.senders.iter() {
            let _ = sender.send(CoreMessage::Shutdown(grace));
        }
        let wakers = self
            .wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for waker in wakers.iter().flatten() {
            let _ = waker.wake();
        }
    }

    /// As [`ShutdownHandle::shutdown`], for a process whose listening sockets another
    /// process now also accepts on (a zero-downtime restart): every core shuts down with
    /// [`Reactor::hand_over`], so that no connection queued on the shared sockets is lost.
    pub fn hand_over(&self, grace: Duration) {
        for sender in self.senders.iter() {
            let _ = sender.send(CoreMessage::HandOver(grace));
        }
        let wakers = self
            .wakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for waker in wakers.iter().flatten() {
            let _ = waker.wake();
        }
    }

    /// Wires SIGINT and SIGTERM to [`ShutdownHandle::shutdown`] with `grace`; a second signal
    /// shuts down at once (zero grace). Runs a small signal thread, which starts the shutdown
    /// before it logs the signal, so a failing (even panicking) log output cannot stop it.
    ///
    /// # Errors
    /// Installing the signal handlers failed.
    #[cfg(unix)]
    pub fn on_signals(&self, grace: Duration) -> Result<(), EngineError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|source| {
                EngineError::Io {
                    what: "installing signal handlers",
                    source,
                }
            })?;
        let handle = self.clone();
        thread::Builder::new()
            .name("ringwork-signals".into())
            .spawn(move || {
                let mut first = true;
                for signal in signals.forever() {
                    // Shut down first: the log line must not be able to prevent it. A
                    // subscriber may panic when its output fails (tracing-subscriber's fmt
                    // layer reports a failed write with `eprintln!`, which panics once
                    // stderr is closed); the panic is contained so the next signal is
                    // still handled.
                    handle.shutdown(if first { grace } else { Duration::ZERO });
                    let again = !first;
                    first = false;
                    let _ = std::panic::catch_unwind(|| {
                        if again {
                            tracing::info!(signal, "signal received again: stopping now");
                        } else {
                            tracing::info!(signal, ?grace, "signal received: shutting down");
                        }
                    });
                }
            })
            .map_err(|source| EngineError::Io {
                what: "starting the signal thread",
                source,
            })?;
        Ok(())
    }
}

/// Builds a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    cores: usize,
    /// Worker threads and queue size of the runtime's [`ThreadPool`].
    pool: (usize, usize),
    max_total: Option<usize>,
    pin: bool,
    cpus: Option<Vec<usize>>,
    driver: DriverConfig,
    reactor: ReactorConfig,
    /// Builds each core's name resolver (`None`: the default one).
    resolver: Option<ResolverFactory>,
}

/// Builds a core's [`NameResolver`] on that core (see [`RuntimeBuilder::name_resolver`]).
#[derive(Clone)]
struct ResolverFactory(Arc<BuildResolver>);

/// What [`RuntimeBuilder::name_resolver`] takes.
type BuildResolver = dyn Fn(&mut Reactor) -> Rc<dyn NameResolver> + Send + Sync;

impl std::fmt::Debug for ResolverFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolverFactory")
    }
}

impl RuntimeBuilder {
    /// Each core's [`NameResolver`]: `factory` runs once on every core, before the init
    /// function, with that core's reactor (to bind the resolver's sockets there, or reach
    /// its thread pool); what it returns resolves every name of that core (see
    /// [`Reactor::set_name_resolver`]). Default: a
    /// [`SystemResolver`](crate::names::SystemResolver) on the runtime's thread pool.
    ///
    /// # Examples
    /// ```
    /// use std::rc::Rc;
    ///
    /// use ringwork::Runtime;
    /// use ringwork::names::SystemResolver;
    ///
    /// let runtime = Runtime::builder()
    ///     .cores(1)
    ///     .name_resolver(|reactor| Rc::new(SystemResolver::new(reactor.thread_pool().clone())))
    ///     .build()?;
    /// # drop(runtime);
    /// # Ok::<(), ringwork::EngineError>(())
    /// ```
    #[must_use]
    pub fn name_resolver<F>(mut self, factory: F) -> Self
    where
        F: Fn(&mut Reactor) -> Rc<dyn NameResolver> + Send + Sync + 'static,
    {
        self.resolver = Some(ResolverFactory(Arc::new(factory)));
        self
    }

    /// Number of cores (reactor threads); default: one per available CPU.
    #[must_use]
    pub fn cores(mut self, cores: usize) -> Self {
        self.cores = cores;
        self
    }

    /// Limit on accepted connections across all cores. At the limit a core accepts and
    /// closes new connections at once (counted in `CoreStats::rejected`); the per-core limit
    /// (`ReactorConfig::max_connections`) instead stops that core accepting. Default: none.
    #[must_use]
    pub fn max_connections_total(mut self, max: usize) -> Self {
        self.max_total = Some(max);
        self
    }

    /// Pin each reactor thread to one CPU (default: on).
    #[must_use]
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// The CPUs to pin to, in core order (default: 0, 1, 2, ...); implies pinning.
    #[must_use]
    pub fn cpus(mut self, cpus: Vec<usize>) -> Self {
        self.cores = cpus.len();
        self.cpus = Some(cpus);
        self.pin = true;
        self
    }

    /// The backend (default: auto, or `RINGWORK_BACKEND`).
    #[must_use]
    pub fn backend(mut self, backend: BackendChoice) -> Self {
        self.driver.backend = backend;
        self
    }

    /// The runtime's pool for blocking work ([`Reactor::defer_to_thread`], shared by every
    /// core): `threads` workers, started at the first job, and room for `queue` jobs
    /// waiting for one (a job past that fails with
    /// [`ThreadPoolError::Busy`](crate::ThreadPoolError::Busy)). Default:
    /// [`DEFAULT_THREADS`](crate::DEFAULT_THREADS), [`DEFAULT_QUEUE`](crate::DEFAULT_QUEUE).
    #[must_use]
    pub fn thread_pool(mut self, threads: usize, queue: usize) -> Self {
        self.pool = (threads, queue);
        self
    }

    /// Driver settings (receive buffer size and count, ring sizes).
    #[must_use]
    pub fn driver_config(mut self, driver: DriverConfig) -> Self {
        self.driver = driver;
        self
    }

    /// Reactor settings (watermarks, limits, connect timeout).
    #[must_use]
    pub fn reactor_config(mut self, reactor: ReactorConfig) -> Self {
        self.reactor = reactor;
        self
    }

    /// Checks the settings and prepares the runtime (threads start in [`Runtime::run`]).
    ///
    /// # Errors
    /// Zero cores, or invalid reactor settings.
    pub fn build(self) -> Result<Runtime, EngineError> {
        if self.cores == 0 {
            return Err(EngineError::Config {
                what: "a runtime needs at least one core".into(),
            });
        }
        self.reactor
            .validate()
            .map_err(|what| EngineError::Config { what })?;
        let (senders, inboxes): (Vec<_>, Vec<_>) = (0..self.cores)
            .map(|_| crossbeam_channel::unbounded())
            .unzip();
        let shutdown = ShutdownHandle {
            senders: senders.into(),
            wakers: Arc::new(Mutex::new(vec![None; self.cores])),
        };
        let pool = ThreadPool::new(self.pool.0, self.pool.1);
        Ok(Runtime {
            builder: self,
            inboxes,
            shutdown,
            pool,
            signals: SignalRouter::default(),
        })
    }
}

/// One reactor per core, each on its own pinned thread, listening with SO_REUSEPORT.
///
/// ```no_run
/// use ringwork::{Context, Protocol, Runtime};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
///         ctx.write(data);
///     }
/// }
///
/// let runtime = Runtime::builder().cores(2).build()?;
/// runtime.shutdown_handle().on_signals(std::time::Duration::from_secs(5))?;
/// runtime.run(|reactor| {
///     reactor.listen_tcp("127.0.0.1:7000".parse().unwrap(), || Echo)?;
///     Ok(())
/// })?;
/// # Ok::<(), ringwork::EngineError>(())
/// ```
pub struct Runtime {
    builder: RuntimeBuilder,
    inboxes: Vec<Receiver<CoreMessage>>,
    shutdown: ShutdownHandle,
    pool: ThreadPool,
    signals: SignalRouter,
}

impl Runtime {
    /// A builder with defaults: one core per CPU, pinned, automatic backend.
    #[must_use]
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            cores: thread::available_parallelism().map_or(1, |n| n.get()),
            pool: (
                crate::threads::DEFAULT_THREADS,
                crate::threads::DEFAULT_QUEUE,
            ),
            max_total: None,
            pin: true,
            cpus: None,
            driver: DriverConfig::default(),
            reactor: ReactorConfig::default(),
            resolver: None,
        }
    }

    /// A handle that shuts the runtime down from any thread.
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs `handler` on core 0 each time this process receives `signal` (SIGHUP to reload
    /// a configuration, SIGUSR1 to reopen logs, ...): the signal becomes a cross-core
    /// message to core 0, whose reactor runs the handler between turns (never in signal
    /// context). Handlers of one signal run in the order they were added; a handler may
    /// broadcast to the other cores ([`Reactor::cores`]). Deliveries that arrive before the
    /// handler runs may merge into one, as signals do. Call it before [`Runtime::run`];
    /// the handlers are removed when `run` returns.
    ///
    /// # Errors
    /// SIGINT and SIGTERM, which keep their graceful-shutdown meaning
    /// ([`ShutdownHandle::on_signals`]); signals that cannot be caught (SIGKILL, SIGSTOP)
    /// or must not be (SIGSEGV, SIGILL, SIGFPE); the signal thread could not start.
    ///
    /// # Examples
    /// ```no_run
    /// use ringwork::Runtime;
    /// use ringwork::signal::SIGHUP;
    ///
    /// let runtime = Runtime::builder().build()?;
    /// runtime.on_signal(SIGHUP, |reactor| {
    ///     // Core 0: reload, then tell the other cores.
    ///     if let Some(cores) = reactor.cores() {
    ///         cores.broadcast(|_reactor| { /* swap in the new settings */ });
    ///     }
    /// })?;
    /// # Ok::<(), ringwork::EngineError>(())
    /// ```
    #[cfg(unix)]
    pub fn on_signal(
        &self,
        signal: i32,
        handler: impl Fn(&mut Reactor) + Send + Sync + 'static,
    ) -> Result<(), EngineError> {
        self.signals.add(signal, Arc::new(handler), || Core0 {
            sender: self.shutdown.senders[0].clone(),
            wakers: Arc::clone(&self.shutdown.wakers),
        })
    }

    /// The runtime's pool for blocking work (see [`RuntimeBuilder::thread_pool`]).
    #[must_use]
    pub fn thread_pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// Starts the cores, runs `init` on each (open listeners there), and blocks until every
    /// core has finished (after a shutdown). If `init` fails on any core, all cores shut down
    /// and the first error is returned.
    ///
    /// # Errors
    /// A core's driver could not be created, `init` failed, or a core panicked outside
    /// protocol callbacks.
    pub fn run<F>(self, init: F) -> Result<(), EngineError>
    where
        F: Fn(&mut Reactor) -> Result<(), EngineError> + Send + Sync + 'static,
    {
        let Runtime {
            builder,
            inboxes,
            shutdown,
            pool,
            signals,
        } = self;
        let cores = builder.cores;
        let cpu_ids = core_affinity::get_core_ids().unwrap_or_default();
        let barrier = Arc::new(Barrier::new(cores));
        let init = Arc::new(init);
        let total = builder.max_total.map(|max| {
            Arc::new(TotalLimit {
                count: AtomicUsize::new(0),
                max,
            })
        });
        let mut threads = Vec::with_capacity(cores);
        for (index, inbox) in inboxes.into_iter().enumerate() {
            let cpu = builder.cpus.as_ref().map_or(index, |cpus| cpus[index]);
            let pin = builder
                .pin
                .then(|| cpu_ids.iter().copied().find(|c| c.id == cpu))
                .flatten();
            let (driver, reactor) = (builder.driver.clone(), builder.reactor.clone());
            let total = total.clone();
            let pool = pool.clone();
            let resolver = builder.resolver.clone();
            let (barrier, init, handle) =
                (Arc::clone(&barrier), Arc::clone(&init), shutdown.clone());
            let spawned = thread::Builder::new()
                .name(format!("ringwork-core-{index}"))
                .spawn(move || {
                    if let Some(cpu) = pin
                        && !core_affinity::set_for_current(cpu)
                    {
                        tracing::warn!(
                            core = index,
                            cpu = cpu.id,
                            "could not pin the core's thread"
                        );
                    }
                    let created = Reactor::new(reactor, driver);
                    if let Ok(reactor) = &created {
                        let mut wakers = handle
                            .wakers
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        wakers[index] = Some(reactor.waker());
                    }
                    // Every core registers its waker before any starts, so messages can wake all.
                    barrier.wait();
                    let mut reactor = match created {
                        Ok(reactor) => reactor,
                        Err(error) => {
                            handle.shutdown(Duration::ZERO);
                            return Err(error);
                        }
                    };
                    let handles: Vec<CoreHandle> = {
                        let wakers = handle
                            .wakers
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        handle
                            .senders
                            .iter()
                            .zip(wakers.iter())
                            .filter_map(|(sender, waker)| {
                                Some(CoreHandle {
                                    sender: sender.clone(),
                                    waker: waker.clone()?,
                                })
                            })
                            .collect()
                    };
                    if handles.len() != handle.senders.len() {
                        // Another core failed to start: it already asked everyone to shut down.
                        return Ok(());
                    }
                    reactor.set_cores(
                        Cores {
                            this: index,
                            handles: handles.into(),
                        },
                        inbox,
                    );
                    reactor.set_total_limit(total);
                    reactor.set_thread_pool(pool);
                    if let Some(factory) = resolver {
                        let built = (factory.0)(&mut reactor);
                        reactor.set_name_resolver(built);
                    }
                    if let Err(error) = init(&mut reactor) {
                        handle.shutdown(Duration::ZERO);
                        reactor.shutdown(Duration::ZERO);
                        let _ = reactor.run();
                        return Err(error);
                    }
                    let result = reactor.run();
                    if result.is_err() {
                        handle.shutdown(Duration::ZERO);
                    }
                    result
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(source) => {
                    shutdown.shutdown(Duration::ZERO);
                    return Err(EngineError::Io {
                        what: "starting a core thread",
                        source,
                    });
                }
            }
        }
        let mut first_error = None;
        for (core, thread) in threads.into_iter().enumerate() {
            let result = thread.join().unwrap_or_else(|panic| {
                shutdown.shutdown(Duration::ZERO);
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(EngineError::CorePanicked { core, message })
            });
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        signals.close();
        first_error.map_or(Ok(()), Err)
    }
}
