//! uring-bare: TCP echo and HTTP hello world on the `io-uring` crate directly, with no
//! runtime in between: the ceiling that shows what ringwork's own layers cost.
//!
//! One thread per core (`--cores N`), each with its own ring and its own SO_REUSEPORT
//! listener, thread i pinned to CPU i when the process may run there (as ringwork pins). Per ring: one multishot accept; per connection, exactly one op in flight at
//! a time (recv, send, or close), so a connection's buffers are never shared between ops:
//! - echo: recv into a 16 KiB buffer, send those bytes back (partial sends resubmit the
//!   rest), recv again;
//! - http: recv appends to a 16 KiB buffer; every complete head in it (see [`http`]) gets
//!   its response appended to one output buffer, sent in one send (pipelining); a head
//!   that does not fit the buffer, `Connection: close`, HTTP/1.0 or a bad head (400)
//!   closes the connection after the send.
//!
//! Ring setup: `PEER_URING_SETUP=defer` (default: SINGLE_ISSUER | DEFER_TASKRUN, as
//! ringwork uses; falls back to `coop`, then `plain`), `coop` (COOP_TASKRUN |
//! TASKRUN_FLAG) or `plain`.
//!
//! Safety model: from its accept to the CQE of its close, a connection has exactly one op
//! in flight (each completion handler submits the next one, and only one). The kernel
//! reads or writes a connection's `buf` or `out` only while its recv or send is in flight,
//! and this code touches them only in the handler of that op's CQE, before it submits the
//! next. A slot is freed only on the CQE of its close, when nothing is in flight.

pub mod date;
pub mod http;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::process::exit;
use std::thread;

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use socket2::{Domain, Protocol, Socket, Type};

/// Which workload a binary serves.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Mode {
    Echo,
    Http,
}

const BUF_SIZE: usize = 16 * 1024;
const RING_ENTRIES: u32 = 1024;

/// Op kinds, in the low 8 bits of `user_data` (the connection slot is in the rest).
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CLOSE: u64 = 3;

fn user_data(slot: usize, kind: u64) -> u64 {
    (slot as u64) << 8 | kind
}

struct Conn {
    fd: RawFd,
    // INVARIANT: while its op is in flight, the kernel may write `buf[len..]` (recv) or
    // read `buf[..len]` / `out[sent..]` (send); both are heap allocations that neither move
    // nor shrink until the op's CQE is reaped (`out` is cleared only after its send).
    buf: Box<[u8]>,
    /// Echo: bytes received and being sent back. Http: unconsumed request bytes.
    len: usize,
    /// Http: responses to send.
    out: Vec<u8>,
    /// Bytes of the current send already accepted by the kernel.
    sent: usize,
    /// Http: body bytes still to discard.
    skip: u64,
    /// Close once the current send completes.
    close_after: bool,
}

/// One thread's ring and connections.
struct Worker {
    ring: IoUring,
    mode: Mode,
    listener: RawFd,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Worker {
    /// Pushes `entry`, submitting first when the submission queue is full.
    ///
    /// # Safety
    /// Every buffer `entry` points to must stay valid and unaliased by writes until the
    /// entry's CQE is reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: the caller guarantees the buffers of `entry` outlive its completion.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                if e.raw_os_error() != Some(libc::EINTR) && e.raw_os_error() != Some(libc::EBUSY) {
                    eprintln!("io_uring submit: {e}");
                    exit(1);
                }
            }
        }
    }

    fn arm_accept(&mut self) {
        let entry = opcode::AcceptMulti::new(types::Fd(self.listener))
            .build()
            .user_data(user_data(0, ACCEPT));
        // SAFETY: a multishot accept without an address buffer points to no memory.
        unsafe { self.push(&entry) };
    }

    fn conn(&mut self, slot: usize) -> &mut Conn {
        let free_slot = || unreachable!("completion for a free slot {slot}");
        self.conns[slot].as_mut().unwrap_or_else(free_slot)
    }

    fn recv(&mut self, slot: usize) {
        let c = self.conn(slot);
        let (fd, ptr, room) = (c.fd, c.buf[c.len..].as_mut_ptr(), c.buf.len() - c.len);
        let entry = opcode::Recv::new(types::Fd(fd), ptr, room as u32)
            .build()
            .user_data(user_data(slot, RECV));
        // SAFETY: `buf[len..]` belongs to this op until its CQE (see `Conn::buf`).
        unsafe { self.push(&entry) };
    }

    /// Sends what is left of the current send (`buf[sent..len]` or `out[sent..]`).
    fn send(&mut self, slot: usize) {
        let mode = self.mode;
        let c = self.conn(slot);
        let pending = match mode {
            Mode::Echo => &c.buf[c.sent..c.len],
            Mode::Http => &c.out[c.sent..],
        };
        let (fd, ptr, n) = (c.fd, pending.as_ptr(), pending.len());
        let entry = opcode::Send::new(types::Fd(fd), ptr, n as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(slot, SEND));
        // SAFETY: the bytes belong to this op until its CQE (see `Conn::buf`).
        unsafe { self.push(&entry) };
    }

    fn close(&mut self, slot: usize) {
        let c = self.conn(slot);
        let fd = c.fd;
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data(slot, CLOSE));
        // SAFETY: a close points to no memory.
        unsafe { self.push(&entry) };
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.arm_accept(); // the kernel ended the multishot (e.g. on an error)
        }
        if res < 0 {
            return; // EMFILE, ECONNABORTED, ...: keep accepting
        }
        let conn = Conn {
            fd: res, // TCP_NODELAY is inherited from the listener (Linux)
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            len: 0,
            out: Vec::new(),
            sent: 0,
            skip: 0,
            close_after: false,
        };
        let slot = self.free.pop().unwrap_or(self.conns.len());
        if slot == self.conns.len() {
            self.conns.push(None);
        }
        self.conns[slot] = Some(conn);
        self.recv(slot);
    }

    fn on_recv(&mut self, slot: usize, res: i32) {
        let mode = self.mode;
        let c = self.conn(slot);
        if res <= 0 {
            self.close(slot); // EOF or error
            return;
        }
        c.len += res as usize;
        c.sent = 0;
        match mode {
            Mode::Echo => self.send(slot),
            Mode::Http => {
                answer(c);
                if !c.out.is_empty() {
                    self.send(slot);
                } else if c.close_after || c.len == c.buf.len() {
                    self.close(slot); // nothing to say, or a head larger than the buffer
                } else {
                    self.recv(slot);
                }
            }
        }
    }

    fn on_send(&mut self, slot: usize, res: i32) {
        let mode = self.mode;
        let c = self.conn(slot);
        if res < 0 {
            self.close(slot);
            return;
        }
        c.sent += res as usize;
        let total = match mode {
            Mode::Echo => c.len,
            Mode::Http => c.out.len(),
        };
        if c.sent < total {
            self.send(slot); // partial send: the rest
            return;
        }
        match mode {
            Mode::Echo => c.len = 0,
            Mode::Http => c.out.clear(),
        }
        if c.close_after || (mode == Mode::Http && c.len == c.buf.len()) {
            self.close(slot);
        } else {
            self.recv(slot);
        }
    }

    fn on_close(&mut self, slot: usize) {
        self.conns[slot] = None;
        self.free.push(slot);
    }

    fn run(mut self) -> io::Error {
        self.arm_accept();
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(RING_ENTRIES as usize * 2);
        loop {
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.raw_os_error() != Some(libc::EINTR) && e.raw_os_error() != Some(libc::EBUSY) {
                    return e;
                }
            }
            cqes.extend(
                self.ring
                    .completion()
                    .map(|e| (e.user_data(), e.result(), e.flags())),
            );
            for (data, res, flags) in cqes.drain(..) {
                let slot = (data >> 8) as usize;
                match data & 0xff {
                    ACCEPT => self.on_accept(res, flags),
                    RECV => self.on_recv(slot, res),
                    SEND => self.on_send(slot, res),
                    CLOSE => self.on_close(slot),
                    kind => unreachable!("unknown op kind {kind}"),
                }
            }
        }
    }
}

/// Answers every complete request in `c.buf[..c.len]` into `c.out` and drops the bytes
/// consumed; sets `close_after` when the connection must end after this send.
fn answer(c: &mut Conn) {
    let date = date::now();
    let mut pos = 0;
    while pos < c.len && !c.close_after {
        if c.skip > 0 {
            let n = (c.len - pos).min(usize::try_from(c.skip).unwrap_or(usize::MAX));
            pos += n;
            c.skip -= n as u64;
            continue;
        }
        match http::scan(&c.buf[pos..c.len]) {
            http::Scan::Partial => break,
            http::Scan::Bad => {
                c.out.extend_from_slice(http::BAD_REQUEST);
                c.close_after = true;
            }
            http::Scan::Complete(head) => {
                http::push_response(&mut c.out, &date);
                pos += head.len;
                c.skip = head.body;
                c.close_after = !head.keep_alive;
            }
        }
    }
    c.buf.copy_within(pos..c.len, 0);
    c.len -= pos;
}

/// Builds a ring with the setup flags `PEER_URING_SETUP` asks for, falling back to
/// weaker ones on kernels that refuse them.
fn build_ring() -> io::Result<(IoUring, &'static str)> {
    let first = match std::env::var("PEER_URING_SETUP").as_deref() {
        Ok("plain") => 2,
        Ok("coop") => 1,
        _ => 0,
    };
    let mut result = Err(io::Error::other("no ring setup"));
    for &kind in &["defer", "coop", "plain"][first..] {
        let mut b = IoUring::builder();
        match kind {
            "defer" => drop(b.setup_single_issuer().setup_defer_taskrun()),
            "coop" => drop(b.setup_coop_taskrun().setup_taskrun_flag()),
            _ => {}
        }
        result = b.build(RING_ENTRIES).map(|ring| (ring, kind));
        if result.is_ok() {
            break;
        }
    }
    result
}

/// Pins the calling thread to CPU `index` when the process may run there (`cpus` is
/// the process's affinity mask, read before any thread is pinned): the rule ringwork's
/// runtime applies to its core threads, so both sides get the same placement.
fn pin(cpus: &[core_affinity::CoreId], index: usize) {
    if let Some(&cpu) = cpus.iter().find(|c| c.id == index) {
        if !core_affinity::set_for_current(cpu) {
            eprintln!("warning: could not pin thread {index} to CPU {}", cpu.id);
        }
    }
}

fn listener(addr: Ipv4Addr, port: u16) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?; // accepted sockets inherit it
    socket.bind(&SocketAddr::from((addr, port)).into())?;
    socket.listen(4096)?;
    Ok(socket)
}

fn usage(name: &str) -> ! {
    eprintln!("usage: {name} --port P --cores N [--addr 127.0.0.1]");
    exit(2)
}

/// Parses `--port P --cores N [--addr A]` and serves `mode` on N threads; never returns.
pub fn main(name: &'static str, mode: Mode) -> ! {
    let (mut addr, mut port, mut cores) = (Ipv4Addr::LOCALHOST, 8080u16, 1usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(name));
        let ok = match flag.as_str() {
            "--port" => value.parse().map(|v| port = v).is_ok(),
            "--cores" => value.parse().map(|v| cores = v).is_ok(),
            "--addr" => value.parse().map(|v| addr = v).is_ok(),
            _ => false,
        };
        if !ok || cores == 0 {
            usage(name);
        }
    }
    let sockets: Vec<Socket> = (0..cores)
        .map(|_| listener(addr, port))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| {
            eprintln!("{name}: cannot listen on {addr}:{port}: {e}");
            exit(1)
        });
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let threads: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let cpus = cpus.clone();
            thread::spawn(move || {
                pin(&cpus, i);
                let (ring, kind) = build_ring().unwrap_or_else(|e| {
                    eprintln!("{name}: io_uring setup: {e}");
                    exit(1)
                });
                if i == 0 {
                    eprintln!("{name} listening on {addr}:{port}, {cores} thread(s), io_uring setup: {kind}");
                }
                let worker =
                    Worker { ring, mode, listener: socket.as_raw_fd(), conns: Vec::new(), free: Vec::new() };
                eprintln!("{name}: io_uring: {}", worker.run());
                exit(1) // `socket` is never dropped before: the listener lives while we serve
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    exit(1)
}
