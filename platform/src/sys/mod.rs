//! OS backends. Each is one folder behind `cfg`, providing the contract below.
//!
//! The contract a backend provides to [`Driver`](crate::Driver):
//!
//! 1. `attach(id, socket, kind)`: take ownership of an OS socket for table slot `id`.
//! 2. `turn(core, timeout, out)`: reconcile every dirty socket and timer of `core` with what
//!    is in flight (start accepting or receiving, send queued bytes, connect, shut down,
//!    cancel and close), wait until at least one completion is ready, the timeout passes or
//!    a [`Waker`](crate::Waker) fires, and append completions to `out`.
//!    - Completions are delivered only for sockets that are current and not closing;
//!      anything else is stale: counted in `Stats::stale`, buffers returned, never delivered.
//!    - A closing socket's slot is released ([`Core::release`](crate::table::Core::release))
//!      only when none of its operations is in flight, so memory the kernel may still touch
//!      (send queues, socket addresses, iovecs) lives until the kernel is done with it.
//!    - Received bytes are delivered as [`RecvBuf`](crate::RecvBuf)s from one [`BufPool`]
//!      per driver; when the pool is empty, receiving waits (never allocates more).
//!    - Sends are vectored over up to `max_send_iovecs` queued buffers, one send in flight
//!      per socket; short writes send the rest next.
//! 3. `with_socket(id, f)`: run `f` on the OS socket (addresses, socket options).
//! 4. `waker()`: a handle other threads use to interrupt a waiting `turn`.
//! 5. `capabilities()`: what the backend found and uses.
//!
//! Backend differences never leak upward: they go into [`Capabilities`](crate::Capabilities).
//!
//! [`BufPool`]: crate::buf::BufPool

#[cfg(unix)]
pub(crate) mod fdpass;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) mod heap;
pub(crate) mod inherit;
pub(crate) mod poll;
#[cfg(unix)]
pub(crate) mod pread;
#[cfg(processes)]
pub(crate) mod process;
#[cfg(uring)]
pub(crate) mod sendfile;
pub(crate) mod sockopt;
#[cfg(uring)]
pub(crate) mod splice;
#[cfg(target_os = "linux")]
pub(crate) mod udp_gso;
#[cfg(uring)]
pub(crate) mod uring;
