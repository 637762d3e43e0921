//! ringwork-platform: the OS backends under the ringwork engine.
//!
//! One completion-style interface, [`Driver`], over two backends chosen at run time:
//!
//! - **uring** (Linux): io_uring with SINGLE_ISSUER + DEFER_TASKRUN where the kernel has
//!   them, batched submission (one `io_uring_enter` both submits a turn's operations and
//!   waits), multishot accept, multishot recv into a provided buffer ring, vectored sends
//!   from owned [`bytes::Bytes`], timeouts, cancellation and an eventfd wake-up.
//! - **poll** (everywhere): mio readiness (epoll, kqueue, IOCP) turned into the same
//!   [`Completion`]s. It is the fallback when io_uring is missing, disabled by sysctl or
//!   blocked by seccomp, and it runs and is tested on Linux through epoll.
//!
//! Selection: [`BackendChoice::Auto`] (default) tries io_uring and falls back to poll with
//! one log line naming the reason; `RINGWORK_BACKEND=uring|poll|auto` decides for programs
//! that leave the choice at `Auto`.
//!
//! Received bytes arrive as [`RecvBuf`]: a zero-copy view of a pool buffer, the same type
//! under both backends, returned to the pool when dropped.
//!
//! This crate knows nothing of protocols, callbacks or executors: that is the engine's job.
//! `unsafe` lives only in `sys/` (system calls, memory shared with the kernel) and `buf/`
//! (the buffer pool), each block with a `SAFETY` note.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod buf;
mod completion;
mod config;
mod driver;
mod error;
#[cfg(unix)]
pub mod fdpass;
mod file;
pub mod heap;
mod id;
pub mod inherit;
pub mod multicast;
pub mod options;
mod process;
mod reuse_port;
mod sys;
mod table;
pub mod testing;
mod waker;

/// Internals for `ringwork-benches` (feature `bench-internals`): not a stable API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench {
    pub use crate::buf::bench::ListPool;
    #[cfg(uring)]
    pub use crate::buf::bench::RingPool;
}

pub use bytes::Bytes;
pub use socket2::{SockAddr, Socket};

pub use crate::buf::RecvBuf;
pub use crate::completion::Completion;
pub use crate::config::{BackendChoice, BackendKind, BatchWait, Capabilities, DriverConfig, Stats};
pub use crate::driver::{ConnectOptions, Driver, ListenOptions};
pub use crate::error::{OpError, SetupError, UringUnavailable};
#[cfg(unix)]
pub use crate::file::read_at_spare;
pub use crate::file::{FileDone, FileOpId, FileRequest, FileStat};
pub use crate::id::{OpId, OpKind, SocketId, TimerId};
pub use crate::options::{Keepalive, SocketOptionError, SocketOptions};
pub use crate::process::{
    ChildStdio, ControlChar, ExitStatus, ModeFlag, ProcessCommand, Spawned, TerminalMode,
    WindowSize,
};
pub use crate::reuse_port::ReusePort;
pub use crate::table::SocketKind;
pub use crate::waker::Waker;
