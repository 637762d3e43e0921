//! ringwork: the thread-per-core runtime users embed, with a Twisted-style Protocol API.
//!
//! - [`Protocol`] and [`Factory`]: what you implement — callbacks for one connection's life
//!   (`connection_made`, `data_received` with a zero-copy view of the receive buffer,
//!   `eof_received`, `pause_writing` / `write_drained`, `timer_fired`, `connection_lost`).
//! - [`Context`]: the transport every callback gets — write (copying) and write_bytes (no
//!   copy), close, abort, half-close, pause/resume reading, timers, addresses, other
//!   connections of the same core ([`Context::other`]) and outbound connections
//!   ([`Context::connect`] with [`ConnectOptions`]: a timeout, TLS).
//! - [`Reactor`]: one core's loop (a platform driver, a timer wheel, a connection table);
//!   usable alone on the calling thread.
//! - [`Runtime`]: one pinned reactor per core, SO_REUSEPORT listeners, cross-core messages
//!   ([`Cores`]) and graceful shutdown ([`ShutdownHandle`], SIGINT/SIGTERM).
//! - Time without a connection: [`LocalHandle::call_later`] / [`Reactor::call_later`]
//!   (Twisted's `callLater`, with cancel and reset), [`LoopingCall`], [`LocalHandle::sleep`],
//!   the turn's time ([`Reactor::now`]), and a [`ManualClock`] that drives a real reactor in
//!   tests (Twisted's `task.Clock`).
//! - Futures, Deferred-style: [`Deferred`], [`gather`], [`try_gather`], [`first_of`],
//!   [`LocalHandle::with_timeout`], and [`LocalHandle::connect`], a connect whose future
//!   aborts the connection when dropped.
//! - [`ReconnectingClient`]: a connection kept up with exponential backoff (Twisted's
//!   `ReconnectingClientFactory`).
//! - Connect by name: [`LocalHandle::connect_host`], [`Context::connect_host`] (Twisted's
//!   `HostnameEndpoint`): Happy Eyeballs v2 ([`happy_eyeballs`]) over the addresses of a
//!   per-core [`names::NameResolver`] (the system's getaddrinfo on the thread pool by
//!   default; [`Reactor::set_name_resolver`], [`RuntimeBuilder::name_resolver`]); client
//!   endpoint strings ([`endpoint::client_from_string`], Twisted's `clientFromString`).
//! - [`DatagramProtocol`] for UDP.
//! - [`ThreadPool`] (Twisted's `deferToThread`): blocking work on a bounded pool of
//!   threads, its value awaited on the calling core ([`Reactor::defer_to_thread`],
//!   [`Context::defer_to_thread`]); the default name resolver
//!   ([`names::SystemResolver`], `getaddrinfo`) is one user of it.
//! - [`fs`]: file I/O off the core — open, stat, positioned reads into owned buffers and
//!   close as futures ([`LocalHandle::files`]), for servers of files (static files).
//! - [`ProcessProtocol`] (Twisted's `spawnProcess`): child processes whose pipes or
//!   pseudo-terminal the driver reads and writes like connections
//!   ([`Reactor::spawn_process`]).
//! - [`Runtime::on_signal`]: SIGHUP, SIGUSR1, ... as events on core 0.
//! - [`logging`]: logging that cannot stall or crash a core — a non-blocking, lossy sink
//!   for log lines ([`logging::LogSink`]), a limiter for repeated warnings
//!   ([`logging::RateLimit`]) and an escaper for peer bytes ([`logging::escape`]).
//! - [`Context::splice_into`]: hand a connection's input to another connection inside the
//!   kernel (Linux), for bulk relaying.
//! - `ringwork::testing` (feature `testing`): `StringTransport`, a protocol on an in-memory
//!   connection under a manual clock, running the reactor's own dispatch — protocol tests
//!   without sockets or sleeps.
//!
//! The engine makes no system calls itself: all I/O goes through [`ringwork_platform`],
//! re-exported as [`platform`]. Writes of one loop turn are coalesced per connection and
//! flushed once per turn; memory per connection is bounded by [`ReactorConfig`], not by the
//! peer, and so is time with a write-stall timeout ([`ReactorConfig::write_timeout`],
//! [`Context::set_write_timeout`]): a peer that never reads is cut off. No `unsafe` code.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod config;
mod connect;
mod connecting;
mod context;
mod datagram;
mod dispatch;
pub mod endpoint;
mod error;
pub mod fs;
pub mod happy_eyeballs;
mod io;
mod local;
pub mod logging;
mod looping;
pub mod names;
mod preamble;
mod process;
mod protocol;
mod reactor;
mod reconnect;
pub mod resolve;
mod runtime;
mod signals;
mod splice;
mod stall;
mod state;
mod stats;
mod threads;
#[allow(dead_code)]
pub(crate) mod timer;
mod timers;
pub mod tls;

pub mod executor;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench;

pub use ringwork_platform as platform;
pub use ringwork_platform::{
    BackendChoice, BackendKind, Bytes, DriverConfig, Keepalive, ReusePort, SockAddr, SocketOptions,
};

pub use crate::clock::{Clock, ManualClock};
pub use crate::config::ReactorConfig;
pub use crate::connect::ConnectOptions;
pub use crate::connecting::{ConnectError, Connecting};
pub use crate::context::Context;
pub use crate::datagram::{DatagramContext, DatagramProtocol, UdpId};
pub use crate::error::EngineError;
pub use crate::happy_eyeballs::{AttemptFailure, HostConnect, HostConnectError};
pub use crate::preamble::{
    DEFAULT_BACKLOG, DEFAULT_PREAMBLE_TIMEOUT, ListenerOptions, Preamble, PreambleStatus,
};
pub use crate::process::{ProcessContext, ProcessId, ProcessProtocol};
pub use crate::protocol::{ConnId, Factory, LostKind, LostReason, Protocol};
pub use crate::reactor::Reactor;
pub use crate::reconnect::{
    Backoff, ReconnectEvent, ReconnectState, ReconnectingClient, ReconnectingClientBuilder,
};
pub use crate::runtime::{Cores, Runtime, RuntimeBuilder, ShutdownHandle};
pub use crate::stats::CoreStats;
pub use crate::threads::{
    DEFAULT_QUEUE, DEFAULT_THREADS, ThreadPool, ThreadPoolError, ThreadResult,
};
pub use crate::timers::{CallId, TimerId};
pub use ringwork_platform::{
    ChildStdio, ControlChar, ExitStatus, ModeFlag, ProcessCommand, TerminalMode, WindowSize,
};
/// Signal numbers (`signal::SIGHUP`, `signal::SIGTERM`, ...), for
/// [`ProcessContext::signal`] and [`Runtime::on_signal`].
#[cfg(unix)]
pub use signal_hook::consts as signal;

pub use crate::executor::{
    Canceled, Deferred, JoinHandle, Resolver, TimedOut, first_of, gather, try_gather,
};
pub use crate::local::{LocalHandle, Sleep};
pub use crate::looping::{LoopingCall, MissedTicks, Repeat, Tick};
