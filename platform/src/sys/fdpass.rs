//! SCM_RIGHTS: descriptors sent and received with bytes over a Unix stream socket.
//!
//! Owns: the `sendmsg`/`recvmsg` calls and their control-message buffers.
//! Contract: a send passes every descriptor or none (with at least one byte of data); a
//! receive returns the descriptors that came with the bytes it read, each close-on-exec and
//! owned by the caller; descriptors the kernel had to drop (too many for the buffer) make
//! the receive fail after closing those that did arrive.
//!
//! Safety model: the kernel reads and writes only the `iovec`, `msghdr` and control buffer
//! given, all locals that outlive the call; the control buffer is `u64`-aligned (as
//! `cmsghdr` needs) and sized with `CMSG_SPACE`; received descriptors are new ones the
//! kernel installed for this process, owned by no one else.
#![allow(unsafe_code)] // sendmsg/recvmsg with control messages; each block has a SAFETY note.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors one message carries (Linux's SCM_MAX_FD is 253).
pub(crate) const MAX_FDS: usize = 253;

/// `send` flags: no SIGPIPE where the system has the flag.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const SEND_FLAGS: libc::c_int = 0;

/// A control buffer for `count` descriptors: `u64`s, so aligned for `cmsghdr`.
fn control_buffer(count: usize) -> (Vec<u64>, usize) {
    let payload = (count * mem::size_of::<RawFd>()) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    (vec![0u64; space.div_ceil(8)], space)
}

/// Sends `data` with `fds` over `socket`; the number of bytes sent.
pub(crate) fn send(socket: RawFd, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    let (mut control, space) = control_buffer(fds.len());
    // SAFETY: msghdr is plain old data; zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `control`, CMSG_SPACE(n fds) bytes long, so the first header
    // and its n descriptors fit; the writes stay inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN((fds.len() * mem::size_of::<RawFd>()) as u32) as _;
        let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
        for (i, fd) in fds.iter().enumerate() {
            data.add(i).write_unaligned(fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: `msg`, `iov`, `data` and `control` are live for the call; the kernel only
        // reads them.
        let sent = unsafe { libc::sendmsg(socket, &raw const msg, SEND_FLAGS) };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Receives into `buf` with up to `max_fds` descriptors.
pub(crate) fn recv(
    socket: RawFd,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let (mut control, space) = control_buffer(max_fds.clamp(1, MAX_FDS));
    // SAFETY: msghdr is plain old data; zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let flags = libc::MSG_CMSG_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let flags = 0;
    let read = loop {
        // SAFETY: `msg` points at `iov` (over `buf`) and `control`, live for the call; the
        // kernel writes at most their lengths.
        let read = unsafe { libc::recvmsg(socket, &raw mut msg, flags) };
        if read >= 0 {
            break read as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to msg_controllen with well-formed headers;
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay inside it, and each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / 4 descriptors newly installed for this process.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..bytes / mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    // The buffer's padding may have room for more than asked: those count as too many.
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > max_fds {
        // `fds` closes those that arrived.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more descriptors came than the {max_fds} asked for: the rest were closed"),
        ));
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    for fd in &fds {
        // SAFETY: fcntl sets a flag of a descriptor this function owns.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((read, fds))
}
