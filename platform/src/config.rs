//! Driver configuration, backend selection and what a backend reports about itself.

use std::fmt;

use std::str::FromStr;
use std::time::Duration;

use crate::error::SetupError;

/// Which backend to use.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum BackendChoice {
    /// io_uring when it sets up and has every needed feature, else poll (one log line says why).
    #[default]
    Auto,
    /// io_uring, or an error saying why it cannot work here.
    Uring,
    /// The portable readiness backend (mio: epoll, kqueue, IOCP).
    Poll,
}

impl BackendChoice {
    /// The environment variable that overrides the configured choice.
    pub const ENV: &'static str = "RINGWORK_BACKEND";

    /// Resolves [`BackendChoice::Auto`] against `RINGWORK_BACKEND`: the variable steers a
    /// program that did not choose; an explicit choice in code (or on a command line that
    /// sets it) wins over the environment.
    ///
    /// # Errors
    /// [`SetupError::BadBackendVariable`] when the variable holds an unknown value.
    pub fn with_env_override(self) -> Result<BackendChoice, SetupError> {
        if self != BackendChoice::Auto {
            return Ok(self);
        }
        match std::env::var(Self::ENV) {
            Ok(value) => value.parse(),
            Err(std::env::VarError::NotPresent) => Ok(self),
            Err(std::env::VarError::NotUnicode(value)) => Err(SetupError::BadBackendVariable {
                value: value.to_string_lossy().into_owned(),
            }),
        }
    }
}

impl FromStr for BackendChoice {
    type Err = SetupError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "poll" | "mio" | "epoll" => Ok(BackendChoice::Poll),
            _ => Err(SetupError::BadBackendVariable {
                value: s.to_string(),
            }),
        }
    }
}

/// The backend a driver runs on.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum BackendKind {
    /// io_uring.
    Uring,
    /// mio readiness (epoll, kqueue, IOCP).
    Poll,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Uring => "uring",
            BackendKind::Poll => "poll",
        })
    }
}

/// Settings for a [`Driver`](crate::Driver). Defaults suit a server with thousands of
/// connections per core.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Backend to use; when `Auto`, `RINGWORK_BACKEND` can choose instead.
    pub backend: BackendChoice,
    /// io_uring submission queue entries (power of two).
    pub sq_entries: u32,
    /// io_uring completion queue entries (power of two, at least `2 * sq_entries`). Multishot
    /// operations post many completions per submission, so this is sized generously; an
    /// overflow is detected and counted in [`Stats::cq_overflows`].
    pub cq_entries: u32,
    /// Size of each receive buffer, in bytes.
    pub buf_size: u32,
    /// Number of receive buffers per driver (power of two, at most 32768).
    pub buf_count: u16,
    /// Largest number of buffers handed to one vectored send.
    pub max_send_iovecs: usize,
    /// Most receives served from one socket per turn by the poll backend before it moves on
    /// (fairness between busy sockets).
    pub poll_reads_per_turn: usize,
    /// Capacity asked for each splice pipe ([`Driver::splice`](crate::Driver::splice)), in
    /// bytes: the most a spliced direction holds between its two sockets. The kernel rounds
    /// it up to pages and may refuse more than `/proc/sys/fs/pipe-max-size` (the default
    /// pipe size, 64 KiB, is then kept).
    pub splice_pipe_size: usize,
    /// io_uring: stream sends of at least this many bytes (the buffers one send submits)
    /// use IORING_OP_SEND_ZC / SENDMSG_ZC, which pin the caller's pages instead of copying
    /// them, when the kernel has it ([`Capabilities::send_zc`]); smaller sends, and every
    /// send when `None` or without kernel support, use SEND / SENDMSG. The bytes stay owned
    /// by the driver until the kernel's notification that it is done with them. `None` by
    /// default: on loopback the kernel copies zero-copy sends anyway and they cost more
    /// CPU than SEND at every size measured (see `docs/platform.md`).
    pub send_zc_min: Option<usize>,
    /// io_uring: entries of the ring's fixed (registered) file table. Stream sockets are
    /// installed in it while there is room, and their receives, sends and shutdowns skip
    /// the kernel's per-operation descriptor lookup; the rest use plain descriptors. 0
    /// turns it off. Bounded by RLIMIT_NOFILE (the kernel refuses a larger table; the
    /// driver then runs without one). See [`Capabilities::fixed_files`].
    pub fixed_files: u32,
    /// io_uring: stream receives take several provided buffers per completion when more
    /// bytes are waiting than one buffer holds (IORING_RECVSEND_BUNDLE, Linux 6.10; see
    /// [`Capabilities::recv_bundle`]). They are still delivered one
    /// [`Completion::Received`](crate::Completion::Received) per buffer, in order.
    pub recv_bundle: bool,
    /// Send consecutive queued datagrams to one destination, all of one size but a shorter
    /// last one, with one UDP GSO send (`UDP_SEGMENT`): the kernel splits them after one trip
    /// down the stack, a fraction of the cost of one send each. On by default; a socket whose
    /// GSO send the kernel refuses falls back to one send per datagram.
    pub udp_gso: bool,
    /// With [`udp_gso`](Self::udp_gso), group the whole queue by destination and size
    /// before sending it (each group where its first datagram was, in order), so each run
    /// takes a whole group: datagrams go ahead of others queued before them. UDP never
    /// promised order, but a queue of mixed sizes is then sent out of order; in exchange a
    /// mixed burst (DNS answers of a few sizes to one client) goes in a few sends instead of
    /// runs of one or two. Off by default.
    pub udp_gso_gather: bool,
    /// io_uring: let a wait that has little to do return after a batch of completions or a
    /// short delay, whichever comes first, instead of at the first completion (see
    /// [`BatchWait`]). `None` (the default): a wait returns at the first completion. The
    /// poll backend ignores it (`epoll_wait` has no minimum), as does io_uring on kernels
    /// before 6.12 ([`Capabilities::batch_wait`] says whether it is in use).
    pub batch_wait: Option<BatchWait>,
    /// Test hook: watch children through waiter threads as if the kernel had no
    /// `pidfd_open`, so that fallback can be exercised on a kernel that has it.
    #[doc(hidden)]
    pub simulate_no_pidfd: bool,
    /// Test hook: run no file operations in the ring ([`Capabilities::file_ops`] false), as
    /// on a kernel without them, so callers' thread fallback can be exercised under io_uring.
    #[doc(hidden)]
    pub simulate_no_file_ops: bool,
    /// Test hook: make io_uring setup fail with this errno, as a seccomp filter or the sysctl
    /// would, so the fallback path can be exercised on a machine where io_uring works.
    #[doc(hidden)]
    pub simulate_uring_setup_errno: Option<i32>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            sq_entries: 256,
            cq_entries: 4096,
            buf_size: 16 * 1024,
            buf_count: 1024,
            max_send_iovecs: 64,
            poll_reads_per_turn: 16,
            splice_pipe_size: 64 * 1024,
            send_zc_min: None,
            fixed_files: 0,
            recv_bundle: false,
            udp_gso: true,
            udp_gso_gather: false,
            batch_wait: None,
            simulate_no_pidfd: false,
            simulate_no_file_ops: false,
            simulate_uring_setup_errno: None,
        }
    }
}

impl DriverConfig {
    /// The environment variable that sets the optional io_uring data paths of every driver
    /// a process makes, over its configuration (for benchmarks, and to run test suites
    /// with them on or off): a comma-separated list of `send-zc=BYTES`
    /// ([`DriverConfig::send_zc_min`]), `fixed-files=N` ([`DriverConfig::fixed_files`]),
    /// `bundle` ([`DriverConfig::recv_bundle`]), or `off` (all three off). Items not named
    /// are left off, so the value is the whole set: `send-zc=65536,bundle`.
    pub const DATA_PATHS_ENV: &'static str = "RINGWORK_URING_PATHS";

    /// Applies [`DriverConfig::DATA_PATHS_ENV`] when it is set.
    ///
    /// # Errors
    /// [`SetupError::InvalidConfig`] when the variable holds something else.
    pub fn with_data_paths_env(self) -> Result<DriverConfig, SetupError> {
        match std::env::var(Self::DATA_PATHS_ENV) {
            Ok(value) => self.with_data_paths(&value),
            Err(std::env::VarError::NotPresent) => Ok(self),
            Err(std::env::VarError::NotUnicode(value)) => Err(SetupError::InvalidConfig {
                what: format!("{}={value:?}", Self::DATA_PATHS_ENV),
            }),
        }
    }

    /// Sets the data paths from `spec` (the syntax of [`DriverConfig::DATA_PATHS_ENV`]).
    fn with_data_paths(mut self, spec: &str) -> Result<DriverConfig, SetupError> {
        let bad = |item: &str| SetupError::InvalidConfig {
            what: format!(
                "{}: {item:?} is not send-zc=BYTES, fixed-files=N, bundle or off",
                Self::DATA_PATHS_ENV
            ),
        };
        self.send_zc_min = None;
        self.fixed_files = 0;
        self.recv_bundle = false;
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                None if item == "off" => {}
                None if item == "bundle" => self.recv_bundle = true,
                Some(("send-zc", n)) => {
                    self.send_zc_min = Some(n.parse().map_err(|_| bad(item))?);
                }
                Some(("fixed-files", n)) => self.fixed_files = n.parse().map_err(|_| bad(item))?,
                _ => return Err(bad(item)),
            }
        }
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<(), SetupError> {
        let bad = |what: String| Err(SetupError::InvalidConfig { what });
        if !self.sq_entries.is_power_of_two() || self.sq_entries > 32768 {
            return bad(format!(
                "sq_entries {} must be a power of two <= 32768",
                self.sq_entries
            ));
        }
        if !self.cq_entries.is_power_of_two() || self.cq_entries < 2 * self.sq_entries {
            return bad(format!(
                "cq_entries {} must be a power of two >= 2 * sq_entries",
                self.cq_entries
            ));
        }
        if !self.buf_count.is_power_of_two() || self.buf_count > 32768 {
            return bad(format!(
                "buf_count {} must be a power of two <= 32768",
                self.buf_count
            ));
        }
        if self.buf_size == 0 || self.buf_size > (1 << 30) {
            return bad(format!("buf_size {} must be in 1..=1 GiB", self.buf_size));
        }
        if self.max_send_iovecs == 0 || self.max_send_iovecs > 1024 {
            return bad(format!(
                "max_send_iovecs {} must be in 1..=1024",
                self.max_send_iovecs
            ));
        }
        if self.fixed_files > 1 << 20 {
            return bad(format!(
                "fixed_files {} must be at most 1048576",
                self.fixed_files
            ));
        }
        if let Some(batch) = self.batch_wait
            && (batch.min_completions == 0 || batch.max_wait > BatchWait::MAX_WAIT)
        {
            return bad(format!(
                "batch_wait {batch:?}: min_completions must be at least 1 and max_wait at \
                 most {:?}",
                BatchWait::MAX_WAIT
            ));
        }
        if self.poll_reads_per_turn == 0 {
            return bad("poll_reads_per_turn must be at least 1".to_string());
        }
        Ok(())
    }
}

/// How long a turn may wait to gather completions ([`DriverConfig::batch_wait`]): once
/// the driver has nothing ready it waits until `min_completions` completions are in or
/// `max_wait` has passed, whichever comes first; after `max_wait` it returns at the first
/// completion, as without the setting. A lone completion is then late by up to `max_wait`,
/// and a busy server makes fewer, larger turns: fewer wake-ups and `io_uring_enter` calls
/// per operation when the load is moderate (a server paced by its clients, or under a CPU
/// quota). The wait still ends at the caller's timeout (a reactor passes its next timer's
/// deadline), and a driver timer's completion ends it at once, so timers fire on time. A
/// [`Waker`](crate::Waker)'s wake-up is an ordinary completion: it may wait up to
/// `max_wait` too. io_uring only: it is the kernel's `io_uring_getevents_arg.min_wait_usec`
/// (Linux 6.12, IORING_FEAT_MIN_TIMEOUT).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct BatchWait {
    /// Completions that end the wait at once (at least 1; 1 makes the setting a no-op).
    pub min_completions: u32,
    /// The longest a completion may wait for others (rounded down to whole microseconds;
    /// at most [`BatchWait::MAX_WAIT`]). Zero makes the setting a no-op.
    pub max_wait: Duration,
}

impl BatchWait {
    /// The largest `max_wait` accepted: a batching delay is meant to be short.
    pub const MAX_WAIT: Duration = Duration::from_secs(1);
}

/// What the running backend found and uses.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend (`None` only in `Default`).
    pub backend: Option<BackendKind>,
    /// Kernel release (Linux) as reported by uname.
    pub kernel: Option<String>,
    /// Submission queue entries granted.
    pub sq_entries: u32,
    /// Completion queue entries granted.
    pub cq_entries: u32,
    /// IORING_SETUP_SINGLE_ISSUER in use.
    pub single_issuer: bool,
    /// IORING_SETUP_DEFER_TASKRUN in use.
    pub defer_taskrun: bool,
    /// IORING_SETUP_COOP_TASKRUN in use (when DEFER_TASKRUN is not).
    pub coop_taskrun: bool,
    /// IORING_FEAT_NODROP: overflowed completions are kept by the kernel, not lost.
    pub nodrop: bool,
    /// IORING_FEAT_EXT_ARG: waits carry their timeout in the same enter.
    pub ext_arg: bool,
    /// Multishot accept in use.
    pub multishot_accept: bool,
    /// Multishot recv with a provided buffer ring in use.
    pub multishot_recv: bool,
    /// A provided buffer ring (buf_ring) is registered.
    pub buf_ring: bool,
    /// File operations run in the ring ([`Driver::file`](crate::Driver::file): OPENAT2,
    /// STATX, READ, CLOSE); `false` under poll, where callers use threads.
    pub file_ops: bool,
    /// Zero-copy sends (IORING_OP_SEND_ZC and SENDMSG_ZC) are probed and enabled by
    /// [`DriverConfig::send_zc_min`].
    pub send_zc: bool,
    /// Entries of the fixed file table registered for sockets (0: none; see
    /// [`DriverConfig::fixed_files`]).
    pub fixed_files: u32,
    /// Stream receives are bundles (the kernel has IORING_FEAT_RECVSEND_BUNDLE and
    /// [`DriverConfig::recv_bundle`] asks for it).
    pub recv_bundle: bool,
    /// [`DriverConfig::batch_wait`] is in use (asked for, io_uring, and the kernel has
    /// IORING_FEAT_MIN_TIMEOUT).
    pub batch_wait: bool,
    /// Opcodes the probe reported as supported, by name (those the backend cares about).
    pub opcodes: Vec<&'static str>,
    /// Why io_uring is not in use, when the poll backend was chosen automatically.
    pub uring_unavailable: Option<crate::error::UringUnavailable>,
}

/// Counters a driver keeps; cheap to read at any time.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Loop turns.
    pub turns: u64,
    /// Calls into the kernel to submit or wait (`io_uring_enter`, or `epoll_wait` for poll).
    pub enters: u64,
    /// Operations submitted (SQEs; for poll, system calls made on behalf of operations).
    pub submitted: u64,
    /// Kernel completions reaped (CQEs; for poll, readiness events).
    pub completions: u64,
    /// Completions delivered to the caller.
    pub delivered: u64,
    /// Completions dropped because their socket was closed (or its slot reused).
    pub stale: u64,
    /// Receives that found no free buffer (ENOBUFS) and waited for one.
    pub buffer_starvations: u64,
    /// Operations io_uring finished with `EAGAIN` (it gives up its own poll-and-retry on a
    /// non-blocking socket after many wake-ups without progress) that the driver submitted
    /// again: receives and accepts at once, sends once a poll says there is room.
    pub eagain_retries: u64,
    /// Times the completion queue overflowed (completions kept by the kernel and flushed).
    pub cq_overflows: u64,
    /// Completions the kernel dropped on overflow (only without IORING_FEAT_NODROP): an error.
    pub cq_dropped: u64,
    /// Zero-copy sends submitted (see [`DriverConfig::send_zc_min`]).
    pub zc_sends: u64,
    /// Zero-copy notifications received (the kernel released a zero-copy send's bytes).
    pub zc_notifications: u64,
    /// Zero-copy sends whose notification said the kernel copied the bytes after all (on
    /// loopback, for example): zero-copy bought nothing for those.
    pub zc_copied: u64,
    /// Stream sockets that got no fixed file table entry because the table was full.
    pub fixed_table_full: u64,
    /// Receive completions that carried more than one buffer (receive bundles).
    pub recv_bundles: u64,
    /// UDP sends of several datagrams at once submitted (GSO, [`DriverConfig::udp_gso`]; a
    /// send the kernel refused counts too).
    pub gso_sends: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_path_specs_set_the_whole_set() {
        let on = DriverConfig::default()
            .with_data_paths("send-zc=65536, fixed-files=512,bundle")
            .expect("valid");
        assert_eq!(
            (on.send_zc_min, on.fixed_files, on.recv_bundle),
            (Some(65536), 512, true)
        );
        let some = on.clone().with_data_paths("bundle").expect("valid");
        assert_eq!(
            (some.send_zc_min, some.fixed_files, some.recv_bundle),
            (None, 0, true)
        );
        let off = on.with_data_paths("off").expect("valid");
        assert_eq!(
            (off.send_zc_min, off.fixed_files, off.recv_bundle),
            (None, 0, false)
        );
        for bad in ["zc", "send-zc=big", "fixed-files=-1", "bundle=1"] {
            let error = DriverConfig::default().with_data_paths(bad).expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }
}
