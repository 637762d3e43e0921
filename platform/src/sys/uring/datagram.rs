//! Datagram sockets under io_uring: one multishot RECVMSG per socket into the provided
//! buffer ring, and every queued datagram sent at once, each SENDMSG owning its header.
//!
//! Owns: [`UdpOps`] (per socket: the receive header, the count of sends in flight) and
//! [`DatagramSends`] (per driver: the in-flight sends, keyed by the `slot` of their `OpId`).
//! Contract:
//! - Receiving: each CQE of the multishot recvmsg carries one datagram in one ring buffer,
//!   laid out by the kernel as `io_uring_recvmsg_out`, the sender's address, the payload;
//!   [`UdpOps::parse`] narrows the buffer to the payload (no copy). One submission serves
//!   every datagram until the multishot ends (buffers ran out, cancel, error), so a burst of
//!   queries costs one `io_uring_enter`, not one each.
//! - Sending: up to [`MAX_SENDS`] datagrams of a socket are in flight at once (the rest wait
//!   in its queue). A send takes its bytes and destination out of the socket's queue into
//!   its own boxed header, dropped only at its CQE, so the order CQEs arrive in does not
//!   matter (a send the kernel had to poll for may finish after later ones). `EAGAIN` puts
//!   the datagram back at the head of the queue (the caller then polls for room).
//!
//! Safety: a header box is reused only after its CQE; if the driver gives up draining, the
//! table is leaked with the other memory (see the module above).

use std::mem;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use io_uring::types::{Fd, RecvMsgOut};
use io_uring::{opcode, squeue};
use slab::Slab;
use socket2::SockAddr;

use crate::buf::RecvBuf;
use crate::id::{OpId, OpKind, SocketId};

use super::{empty_msghdr, sockaddr_to_std};

/// What a multishot recvmsg writes before the payload in each buffer: its
/// `io_uring_recvmsg_out` header and room for the sender's address (a `sockaddr_un`, the
/// largest kind, for every datagram socket: so a UDP and a Unix datagram socket have the
/// same payload room, the pool's buffer size, as under the poll backend).
pub(super) const RECV_HEADROOM: u32 =
    (RECVMSG_OUT_LEN + mem::size_of::<libc::sockaddr_un>()) as u32;

/// `struct io_uring_recvmsg_out` (io_uring.h): namelen, controllen, payloadlen, flags, u32
/// each.
const RECVMSG_OUT_LEN: usize = 16;

/// Most datagram sends in flight per socket; the rest wait for a turn. Enough to send a
/// whole burst of answers with one `io_uring_enter`, small enough to keep the SQ for others.
pub(super) const MAX_SENDS: u32 = 64;

/// Per-socket state of a datagram socket.
pub(super) struct UdpOps {
    /// Read by the kernel when the multishot recvmsg is submitted: only `msg_namelen` (room
    /// for the sender's address in each buffer: a `sockaddr_un`, which also holds any IPv4
    /// or IPv6 one) and `msg_controllen` (0) matter.
    recv_msg: libc::msghdr,
    /// Sends in flight (entries of [`DatagramSends`] for this socket).
    pub(super) sends: u32,
    /// Their bytes (for the `queued` figure of `Sent`).
    pub(super) send_bytes: usize,
}

impl UdpOps {
    pub(super) fn new() -> Box<UdpOps> {
        let mut recv_msg = empty_msghdr();
        recv_msg.msg_namelen = mem::size_of::<libc::sockaddr_un>() as _;
        Box::new(UdpOps {
            recv_msg,
            sends: 0,
            send_bytes: 0,
        })
    }

    /// The multishot recvmsg of this socket (into buffer group `bgid`).
    pub(super) fn recv_entry(&self, fd: Fd, bgid: u16) -> squeue::Entry {
        opcode::RecvMsgMulti::new(fd, &raw const self.recv_msg, bgid).build()
    }

    /// Splits one multishot recvmsg buffer into (payload, sender, truncated); `None` if the
    /// kernel's layout does not parse or the address is not IPv4/IPv6/Unix (never
    /// expected). An IP sender comes as [`Sender::Ip`], any other as [`Sender::Other`].
    pub(super) fn parse(&self, buf: RecvBuf) -> Option<(RecvBuf, Sender, bool)> {
        let (range, from, truncated) = {
            let out = RecvMsgOut::parse(&buf, &self.recv_msg).ok()?;
            let name = out.name_data();
            // SAFETY: sockaddr_storage is plain old data; zero is a valid value.
            let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = name.len().min(mem::size_of::<libc::sockaddr_storage>());
            // SAFETY: copies `len` bytes, no more than either side holds, between two
            // distinct objects (a ring buffer and a local).
            unsafe {
                std::ptr::copy_nonoverlapping(name.as_ptr(), (&raw mut storage).cast::<u8>(), len);
            }
            let from = match sockaddr_to_std(&storage, len as libc::socklen_t) {
                Some(ip) => Sender::Ip(ip),
                // An unnamed Unix sender: no address at all.
                None if len == 0 => Sender::Other(crate::completion::unnamed_unix()?),
                None if i32::from(storage.ss_family) == libc::AF_UNIX => {
                    // SAFETY: the kernel wrote a `sockaddr_un` of `len` bytes (family
                    // AF_UNIX; 2 for an unnamed sender), copied into the zeroed storage
                    // try_init hands over, whose size bounds `len`.
                    let (_, addr) = unsafe {
                        SockAddr::try_init(|target, target_len| {
                            std::ptr::copy_nonoverlapping(
                                (&raw const storage).cast::<u8>(),
                                target.cast::<u8>(),
                                len,
                            );
                            *target_len = len as libc::socklen_t;
                            Ok(())
                        })
                    }
                    .ok()?;
                    Sender::Other(addr)
                }
                None => return None,
            };
            let payload = out.payload_data();
            let start = payload.as_ptr() as usize - buf.as_ptr() as usize;
            (
                start..start + payload.len(),
                from,
                out.is_payload_truncated(),
            )
        };
        Some((buf.narrow(range), from, truncated))
    }
}

/// Who sent a received datagram.
pub(super) enum Sender {
    /// A UDP peer.
    Ip(SocketAddr),
    /// A Unix datagram peer (possibly unnamed).
    Other(SockAddr),
}

/// One datagram send in flight: the header the kernel reads and the bytes it points at.
struct DatagramSend {
    socket: SocketId,
    msg: libc::msghdr,
    iov: libc::iovec,
    addr: SockAddr,
    bytes: Bytes,
}

/// The driver's datagram sends in flight.
#[derive(Default)]
pub(super) struct DatagramSends {
    table: Slab<Box<DatagramSend>>,
    /// Boxes of finished sends, reused for the next ones (boxed because a header the kernel
    /// reads must not move: they go back into `table` as they are).
    #[allow(clippy::vec_box)]
    spare: Vec<Box<DatagramSend>>,
}

impl DatagramSends {
    /// Takes `bytes` for `to` into a new in-flight send of `socket` and returns its SQE.
    pub(super) fn start(
        &mut self,
        socket: SocketId,
        fd: Fd,
        bytes: Bytes,
        to: SockAddr,
    ) -> squeue::Entry {
        let mut send = self.spare.pop().unwrap_or_else(|| {
            Box::new(DatagramSend {
                socket,
                msg: empty_msghdr(),
                iov: libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                },
                addr: SockAddr::from(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
                bytes: Bytes::new(),
            })
        });
        send.socket = socket;
        send.addr = to;
        send.iov = libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        };
        send.bytes = bytes;
        // The box does not move once in the table, so these pointers stay valid until the
        // CQE (after which the box is only reused).
        send.msg = empty_msghdr();
        send.msg.msg_name = send.addr.as_ptr().cast_mut().cast();
        send.msg.msg_namelen = send.addr.len();
        send.msg.msg_iov = &raw mut send.iov;
        send.msg.msg_iovlen = 1;
        let msg = &raw const send.msg;
        let key = self.table.insert(send);
        let user_data = OpId {
            slot: key as u32,
            generation: 0,
            kind: OpKind::SendTo,
        }
        .encode();
        opcode::SendMsg::new(fd, msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data)
    }

    /// The send of `key` finished (its CQE arrived): its socket, bytes and destination.
    pub(super) fn finish(&mut self, key: u32) -> Option<(SocketId, Bytes, SockAddr)> {
        let mut send = self.table.try_remove(key as usize)?;
        let bytes = mem::take(&mut send.bytes);
        let done = (send.socket, bytes, send.addr.clone());
        send.iov.iov_base = std::ptr::null_mut();
        self.spare.push(send);
        Some(done)
    }

    /// Never free the in-flight headers: the kernel may still read them.
    pub(super) fn leak(&mut self) {
        mem::forget(mem::take(&mut self.table));
    }
}
