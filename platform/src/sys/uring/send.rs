//! Stream sends: the SQE for a socket's queued bytes (SEND, SENDMSG, their zero-copy forms,
//! or WRITE/WRITEV for pipes and terminals), and what a zero-copy send's two completions
//! mean.
//!
//! Zero-copy (IORING_OP_SEND_ZC, 6.0; SENDMSG_ZC, 6.1): the kernel pins the pages of the
//! buffers instead of copying them. The send's first CQE carries the result with
//! `IORING_CQE_F_MORE`; a second CQE with `IORING_CQE_F_NOTIF` says the kernel no longer
//! touches the pages (for TCP: once the bytes were acknowledged, or copied because the
//! route is loopback). At the first CQE the send is over: the caller gets `Sent` as for
//! any send, but the sent bytes move from the send queue to the slot's `zc_held` queue
//! (sharing their memory) until the notification drops them. Meanwhile the socket's next
//! sends are plain copying ones: a socket has at most one notification pending, so what is
//! held stays bounded by one send, and progress (`Sent`) never waits on the peer's
//! acknowledgements (a write-stall timeout would otherwise cut a slow reader). A socket
//! closed meanwhile hands the held bytes to [`ZcOrphans`], which drops them at the
//! notification, so the close does not wait on the peer either.

use std::collections::HashMap;

use io_uring::opcode;
use io_uring::squeue;

use super::SockFd;

use crate::table::SendQueue;

/// `IORING_SEND_ZC_REPORT_USAGE` (io_uring.h, 6.2): the notification's result says whether
/// the kernel copied the bytes after all.
const ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`: set in a notification's result when the bytes were copied.
pub(super) const ZC_COPIED: u32 = 1 << 31;

/// A vectored send in flight: the header and iovecs the SQE points at.
pub(super) struct SendOp {
    pub(super) msg: libc::msghdr,
    pub(super) iov: Vec<libc::iovec>,
}

impl SendOp {
    pub(super) fn new() -> Self {
        Self {
            msg: super::empty_msghdr(),
            // Grown as sends need (most carry one or two buffers) and kept: reserving
            // `max_iovecs` (16 bytes each) up front cost every connection that ever sent
            // ~1 KiB (issue 16: memory per keep-alive idle connection).
            iov: Vec::new(),
        }
    }

    /// Points the iovecs at the first `max_iovecs` buffers of `queue`; returns their bytes.
    pub(super) fn fill(&mut self, queue: &SendQueue, max_iovecs: usize) -> usize {
        self.iov.clear();
        if let Some(only) = queue.only_bytes().filter(|_| max_iovecs > 0) {
            // One answer waiting, the common case: no iterator at all.
            self.iov.push(libc::iovec {
                iov_base: only.as_ptr().cast_mut().cast(),
                iov_len: only.len(),
            });
            self.msg.msg_iov = self.iov.as_mut_ptr();
            self.msg.msg_iovlen = 1;
            return only.len();
        }
        // A plain loop counting as it goes: `extend` over the adapters and a second pass to
        // sum cost ~100 instructions for the one buffer of a keep-alive answer (issue 16).
        let mut bytes = 0;
        for b in queue.slices(max_iovecs) {
            bytes += b.len();
            self.iov.push(libc::iovec {
                iov_base: b.as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            });
        }
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len() as _;
        bytes
    }

    /// The SQE sending what [`SendOp::fill`] pointed at: `write(2)` forms for a pipe or
    /// terminal (`file`; offset 0, the descriptor is not seekable), zero-copy forms when
    /// `zero_copy`, else SEND (one buffer: the kernel is spared the msghdr copy) or SENDMSG.
    pub(super) fn entry(&self, target: SockFd, file: bool, zero_copy: bool) -> squeue::Entry {
        let clamp = |len: usize| len.min(u32::MAX as usize) as u32;
        let msg = &raw const self.msg;
        match (&self.iov[..], file, zero_copy) {
            ([only], true, _) => with_fd!(target, |fd| opcode::Write::new(
                fd,
                only.iov_base.cast_const().cast(),
                clamp(only.iov_len)
            )
            .build()),
            (iov, true, _) => with_fd!(target, |fd| opcode::Writev::new(
                fd,
                iov.as_ptr(),
                iov.len() as u32
            )
            .build()),
            ([only], false, false) => with_fd!(target, |fd| opcode::Send::new(
                fd,
                only.iov_base.cast_const().cast(),
                clamp(only.iov_len)
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()),
            ([only], false, true) => with_fd!(target, |fd| opcode::SendZc::new(
                fd,
                only.iov_base.cast_const().cast(),
                clamp(only.iov_len)
            )
            .flags(libc::MSG_NOSIGNAL)
            .zc_flags(ZC_REPORT_USAGE)
            .build()),
            (_, false, false) => with_fd!(target, |fd| opcode::SendMsg::new(fd, msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()),
            (_, false, true) => with_fd!(target, |fd| opcode::SendMsgZc::new(fd, msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .ioprio(ZC_REPORT_USAGE)
                .build()),
        }
    }
}

/// Send queues of closed sockets whose last zero-copy send still waits for its
/// notification, by that send's `user_data`: the kernel may read them until then.
#[derive(Default)]
pub(super) struct ZcOrphans {
    queues: HashMap<u64, SendQueue>,
    /// The driver is being dropped and no longer waits for these notifications (they are
    /// not counted in flight any more: see `Uring::drain`).
    uncounted: bool,
}

impl ZcOrphans {
    pub(super) fn keep(&mut self, user_data: u64, queue: SendQueue) {
        self.queues.insert(user_data, queue);
    }

    /// Whether the notification of `user_data` was left uncounted by [`ZcOrphans::give_up`].
    pub(super) fn uncounted(&self, user_data: u64) -> bool {
        self.uncounted && self.queues.contains_key(&user_data)
    }

    /// The notification of `user_data` arrived: whether it was an orphan's (now dropped).
    pub(super) fn release(&mut self, user_data: u64) -> bool {
        self.queues.remove(&user_data).is_some()
    }

    /// Stops waiting for the orphans' notifications (at drop, where the kernel may hold
    /// them for as long as a peer does not read); returns how many were pending. From then
    /// on orphans are added uncounted too, and everything left is leaked at the end.
    pub(super) fn give_up(&mut self) -> usize {
        let pending = if self.uncounted { 0 } else { self.queues.len() };
        self.uncounted = true;
        pending
    }

    /// Whether the driver gave up waiting (see [`ZcOrphans::give_up`]).
    pub(super) fn given_up(&self) -> bool {
        self.uncounted
    }

    /// Forgets every queue without freeing it (the kernel may still read them).
    pub(super) fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.queues));
    }
}
