//! `recvmmsg` for the poll backend's UDP receives on Linux: up to [`BATCH`] datagrams per
//! system call instead of one `recvmsg` each (a DNS server under load receives several
//! queries per readiness event).
//!
//! Owns: the message headers, address room and iovecs of one call (on the stack), and the
//! translation of each message into its length, sender and truncation flag.
//! Safety model: the kernel writes only inside the call, into the buffers the caller hands
//! over (pool buffers it owns for the call) and the headers and addresses on this stack.
#![allow(unsafe_code)] // recvmmsg and its C structs; each block has a SAFETY note.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::ptr::NonNull;

use crate::buf::{BufPool, RecvBuf};

/// Most datagrams one call receives.
pub(super) const BATCH: usize = 16;

/// What one received datagram was.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Received {
    /// Its sender (`None`: not an IP address, which a UDP socket never reports).
    pub(super) from: Option<SocketAddr>,
    /// Longer than its buffer (MSG_TRUNC): cut to it.
    pub(super) truncated: bool,
}

/// Receives up to `bufs.len()` (at most [`BATCH`]) datagrams from non-blocking socket `fd`
/// with one `recvmmsg`, datagram `i` into `bufs[i]` (`size` bytes each); returns how many,
/// with their lengths and senders in `filled`. `WouldBlock` when none is
/// waiting; an error of the first datagram is returned as is (an error after some is kept
/// by the kernel for the next call).
///
/// # Safety
/// Each of `bufs` points to `size` bytes the caller owns and nobody else reads or writes
/// during the call.
pub(super) unsafe fn recv_many(
    fd: RawFd,
    bufs: &[NonNull<u8>],
    size: usize,
    filled: &mut [(usize, Received); BATCH],
) -> io::Result<usize> {
    let count = bufs.len().min(BATCH);
    // SAFETY: all-zero is a valid value of these C structs (null pointers, zero lengths).
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut iovecs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
    for i in 0..count {
        iovecs[i] = libc::iovec {
            iov_base: bufs[i].as_ptr().cast(),
            iov_len: size,
        };
        let header = &mut headers[i].msg_hdr;
        header.msg_name = (&raw mut addrs[i]).cast();
        header.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_iov = &raw mut iovecs[i];
        header.msg_iovlen = 1;
    }
    let got = loop {
        // SAFETY: `headers[..count]` point at `iovecs` and `addrs` on this stack and, through
        // the iovecs, at the caller's buffers (its promise); all outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got >= 0 {
            break got as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    for i in 0..got.min(count) {
        let header = &headers[i];
        filled[i] = (
            (header.msg_len as usize).min(size),
            Received {
                from: socket_addr(&addrs[i], header.msg_hdr.msg_namelen),
                truncated: header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            },
        );
    }
    Ok(got.min(count))
}

/// The IP address the kernel wrote into `addr` (`len` bytes), if it is one.
fn socket_addr(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(addr.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let a = unsafe { &*(&raw const *addr).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::from((
                u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let a = unsafe { &*(&raw const *addr).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Receives up to `max` datagrams (at most [`BATCH`]) from UDP socket `fd` into buffers of
/// `pool` with one `recvmmsg`, handing each to `each` with its sender and truncation; how
/// many arrived. `None` when the pool has no free buffer.
pub(super) fn recv_batch(
    fd: RawFd,
    pool: &BufPool,
    max: usize,
    each: impl FnMut(RecvBuf, Received),
) -> Option<io::Result<usize>> {
    pool.read_batch::<BATCH, Received>(
        max,
        // SAFETY: the pool lends these buffers (`size` bytes each) to this call only.
        |bufs, size, filled| unsafe { recv_many(fd, bufs, size, filled) },
        each,
    )
}
