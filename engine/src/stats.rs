//! Per-core counters.

/// What one core's reactor counted; read with [`Reactor::stats`](crate::Reactor::stats).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct CoreStats {
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed (accepted and outbound ones, after their `connection_lost`).
    pub closed: u64,
    /// Connections accepted and closed at once because the runtime-wide limit was reached.
    pub rejected: u64,
    /// Outbound connections started.
    pub connects: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes handed to the driver for sending.
    pub bytes_out: u64,
    /// Bytes moved from one connection to another inside the kernel
    /// ([`Context::splice_into`](crate::Context::splice_into)); in neither `bytes_in` nor
    /// `bytes_out`.
    pub bytes_spliced: u64,
    /// Splices started.
    pub splices: u64,
    /// Connections aborted because their peer took no byte for their write-stall timeout
    /// ([`LostReason::WriteStalled`](crate::LostReason::WriteStalled)).
    pub write_stalls: u64,
    /// Protocol callbacks that panicked.
    pub panics: u64,
    /// Loop turns.
    pub turns: u64,
    /// Operations submitted to the kernel (driver statistics).
    pub submissions: u64,
    /// Completions reaped from the kernel.
    pub completions: u64,
    /// Kernel enters (`io_uring_enter` / `epoll_wait`): completions per enter is the
    /// batching factor.
    pub enters: u64,
    /// Receives that found no free buffer in the buffer ring and waited for one (driver
    /// statistics; 0 on poll).
    pub buffer_starvations: u64,
    /// Times the io_uring completion queue overflowed (driver statistics; 0 on poll).
    pub cq_overflows: u64,
    /// TLS handshakes completed (full and resumed).
    pub tls_handshakes: u64,
    /// TLS handshakes completed that resumed a session (a ticket or a session id): also in
    /// `tls_handshakes`.
    pub tls_resumed: u64,
    /// Connections TLS ended: failed or timed-out handshakes, peers leaving mid-handshake,
    /// errors after the handshake.
    pub tls_failures: u64,
}
