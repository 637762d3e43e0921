//! A provided-buffer ring for multishot recv: `COUNT` buffers of `SIZE` bytes that the
//! kernel picks from, each handed back (re-queued at the tail) as soon as its bytes have
//! been copied out. The sizes are ringwork's defaults (16 KiB x 1024).
//!
//! Safety model: the kernel writes a buffer only while it is queued in the ring; from the
//! CQE that names its id until [`BufRing::give_back`], it belongs to this code. The ring
//! entries and the buffers are allocated once and never freed (the worker thread serves
//! until the process exits), so the kernel's pointers into them never dangle.

use std::alloc::{alloc_zeroed, Layout};
use std::io;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// The buffer group id of the only ring.
pub const BGID: u16 = 0;
const COUNT: u16 = 1024; // a power of two
const SIZE: usize = 16 * 1024;

/// `struct io_uring_buf`; the `resv` field of entry 0 is the ring's tail.
#[repr(C)]
struct Entry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

pub struct BufRing {
    // INVARIANT: `entries` points to COUNT zeroed, page-aligned entries and `mem` to
    // COUNT * SIZE bytes; both are valid for the life of the process (never freed).
    entries: *mut Entry,
    mem: *mut u8,
    /// Entries queued so far (wrapping); published to the kernel after each change.
    tail: u16,
}

impl BufRing {
    /// Allocates the ring, registers it with `ring` as group [`BGID`], queues every buffer.
    pub fn new(ring: &IoUring) -> io::Result<BufRing> {
        let layout = Layout::from_size_align(COUNT as usize * size_of::<Entry>(), 4096)
            .map_err(io::Error::other)?;
        // SAFETY: `layout` has a non-zero size.
        let entries = unsafe { alloc_zeroed(layout) }.cast::<Entry>();
        let mem = Box::leak(vec![0u8; COUNT as usize * SIZE].into_boxed_slice()).as_mut_ptr();
        if entries.is_null() {
            return Err(io::Error::other("cannot allocate the buffer ring"));
        }
        // SAFETY: `entries` holds COUNT entries and lives forever (see the INVARIANT).
        unsafe { ring.submitter().register_buf_ring_with_flags(entries as u64, COUNT, BGID, 0) }?;
        let mut bufs = BufRing { entries, mem, tail: 0 };
        for bid in 0..COUNT {
            bufs.give_back(bid);
        }
        Ok(bufs)
    }

    /// The first `len` bytes of buffer `bid`, which a recv CQE has just handed over.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < COUNT && len <= SIZE, "buffer {bid} of {len} bytes");
        // SAFETY: in bounds (checked above); the CQE gave buffer `bid` to us, so the kernel
        // does not write it until `give_back(bid)`, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.mem.add(bid as usize * SIZE), len) }
    }

    /// Queues buffer `bid` again for the kernel to fill.
    pub fn give_back(&mut self, bid: u16) {
        assert!(bid < COUNT, "buffer id {bid}");
        let bid_usize = bid as usize;
        // SAFETY: `tail & (COUNT - 1)` is in bounds; raw writes (no reference) of fields the
        // kernel reads only after the tail store below publishes the entry; the entry is
        // free: at most COUNT buffers exist, so at most COUNT entries are ever queued. The
        // buffer address is in bounds, as in `bytes`.
        unsafe {
            let entry = self.entries.add((self.tail & (COUNT - 1)) as usize);
            addr_of_mut!((*entry).addr).write(self.mem.add(bid_usize * SIZE) as u64);
            addr_of_mut!((*entry).len).write(SIZE as u32);
            addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail (entry 0's `resv`) is a u16 the kernel reads concurrently: only
        // atomic stores touch it; Release orders the entry writes above before it.
        unsafe { AtomicU16::from_ptr(addr_of_mut!((*self.entries).resv)) }
            .store(self.tail, Ordering::Release);
    }
}
