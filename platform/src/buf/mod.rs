//! Receive buffer pool: fixed-size buffers lent to the caller without a copy.
//!
//! Owns: one allocation of `count` buffers of `size` bytes per driver, and [`RecvBuf`], the
//! owned view of one filled buffer that hands it back to the pool when dropped.
//! Contract: the same [`RecvBuf`] type under both backends. Under io_uring the pool is a
//! provided-buffer ring (buf_ring) that the kernel picks buffers from; under poll it is a
//! free list the driver reads into.
//!
//! Safety model (who may touch which memory, and until when):
//! - A buffer is in exactly one place: in the ring / free list (the kernel, or the poll
//!   backend's next read, may write it), or lent out as a [`RecvBuf`] (read-only for the
//!   caller, untouched by anyone else).
//! - The kernel hands a buffer back with a completion; [`BufPool::claim`] turns that into a
//!   [`RecvBuf`]. Dropping the `RecvBuf` puts the buffer back at the ring's tail, publishing
//!   it to the kernel with a release store.
//! - The allocation lives as long as the pool or any `RecvBuf` (both hold an `Rc`). If a
//!   driver is dropped while the kernel may still write into the pool, it calls
//!   [`BufPool::leak`] and the memory is never freed.
#![allow(unsafe_code)] // Raw buffer memory shared with the kernel; every block has a SAFETY note.

use std::alloc::Layout;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::ops::Deref;
use std::ptr::NonNull;
use std::rc::Rc;

#[cfg(feature = "bench-internals")]
pub(crate) mod bench;

/// One entry of the kernel's `struct io_uring_buf`; entry 0's `resv` field is the ring tail.
#[cfg(uring)]
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

enum Mode {
    /// Buffers live in a kernel-visible provided-buffer ring.
    #[cfg(uring)]
    Ring {
        // INVARIANT: `entries` points to `count` zero-initialised `RingEntry`s allocated with
        // `layout` (page aligned, as the kernel requires), alive as long as the pool.
        entries: NonNull<RingEntry>,
        layout: Layout,
        /// Our copy of the tail (the kernel only reads it).
        tail: Cell<u16>,
        /// By buffer id: the ring position (tail value) it was last published at, where a
        /// receive bundle that starts with it finds the buffers that follow it.
        positions: Box<[Cell<u16>]>,
    },
    /// Buffers live in a free list that the poll backend reads into.
    List { free: RefCell<Vec<u16>> },
}

struct PoolInner {
    // INVARIANT: `mem` points to `count * size` zeroed bytes from `Pages::zeroed(mem_layout)`,
    // alive until
    // this value is dropped (or forever once `leaked`).
    mem: NonNull<u8>,
    mem_layout: Layout,
    size: u32,
    count: u16,
    mode: Mode,
    /// Buffers in the ring or free list (not lent out).
    available: Cell<u32>,
    leaked: Cell<bool>,
}

/// A per-driver pool of receive buffers. Cloning shares the pool.
#[derive(Clone)]
pub(crate) struct BufPool {
    inner: Rc<PoolInner>,
}

impl BufPool {
    fn allocate(size: u32, count: u16, mode: Mode) -> io::Result<Self> {
        let total = (size as usize)
            .checked_mul(count as usize)
            .filter(|total| *total > 0)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "empty or oversized pool")
            })?;
        let mem_layout = Layout::from_size_align(total, 4096)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mem = Pages::zeroed(mem_layout)?;
        Ok(Self {
            inner: Rc::new(PoolInner {
                mem,
                mem_layout,
                size,
                count,
                mode,
                available: Cell::new(u32::from(count)),
                leaked: Cell::new(false),
            }),
        })
    }

    /// A pool for the poll backend: a free list of `count` buffers of `size` bytes.
    pub(crate) fn new_list(size: u32, count: u16) -> io::Result<Self> {
        let free = (0..count).rev().collect();
        Self::allocate(
            size,
            count,
            Mode::List {
                free: RefCell::new(free),
            },
        )
    }

    /// A pool laid out as a provided-buffer ring of `count` entries (a power of two), every
    /// buffer already published at the tail. Register it with [`BufPool::ring_addr`].
    #[cfg(uring)]
    pub(crate) fn new_ring(size: u32, count: u16) -> io::Result<Self> {
        assert!(
            count.is_power_of_two(),
            "ring size must be a power of two (validated config)"
        );
        let layout = Layout::array::<RingEntry>(count as usize)
            .and_then(|layout| layout.align_to(4096))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `layout` is non-zero sized (`count >= 1`).
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<RingEntry>();
        let entries =
            NonNull::new(entries).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let pool = Self::allocate(
            size,
            count,
            Mode::Ring {
                entries,
                layout,
                tail: Cell::new(0),
                positions: (0..count).map(|_| Cell::new(0)).collect(),
            },
        )
        .inspect_err(|_| {
            // SAFETY: allocated just above with `layout`, not shared with anyone yet.
            unsafe { std::alloc::dealloc(entries.as_ptr().cast(), layout) }
        })?;
        pool.inner.available.set(0);
        for bid in 0..count {
            pool.inner.give_back(bid);
        }
        Ok(pool)
    }

    /// Address of the ring entries, for `IORING_REGISTER_PBUF_RING`.
    #[cfg(uring)]
    pub(crate) fn ring_addr(&self) -> u64 {
        match &self.inner.mode {
            Mode::Ring { entries, .. } => entries.as_ptr() as u64,
            Mode::List { .. } => unreachable!("ring_addr on a list pool"),
        }
    }

    /// Size of each buffer.
    pub(crate) fn buf_size(&self) -> u32 {
        self.inner.size
    }

    /// Number of buffers in the pool.
    #[cfg(uring)]
    pub(crate) fn count(&self) -> u16 {
        self.inner.count
    }

    /// Buffers not lent out (in the ring or the free list).
    pub(crate) fn available(&self) -> u32 {
        self.inner.available.get()
    }

    /// Takes a free buffer (list mode), lets `read` fill it, and returns the filled part as
    /// a [`RecvBuf`]; `None` when no buffer is free. A read of 0 bytes yields an empty
    /// `RecvBuf` (end of stream); an error returns the buffer to the pool.
    pub(crate) fn read_with(
        &self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> Option<io::Result<RecvBuf>> {
        let free = match &self.inner.mode {
            Mode::List { free } => free,
            #[cfg(uring)]
            Mode::Ring { .. } => {
                unreachable!("read_with on a ring pool: the kernel picks ring buffers")
            }
        };
        let bid = free.borrow_mut().pop()?;
        self.inner.available.set(self.inner.available.get() - 1);
        let size = self.inner.size as usize;
        // SAFETY: `bid < count` (free list holds only valid ids) so the range is inside `mem`;
        // the buffer was in the free list, so nobody else holds a view of it, and this `&mut`
        // ends before the buffer is lent out or returned.
        let slice = unsafe {
            std::slice::from_raw_parts_mut(self.inner.mem.as_ptr().add(bid as usize * size), size)
        };
        let result = read(slice);
        let mut buf = RecvBuf {
            pool: Rc::clone(&self.inner),
            bid,
            start: 0,
            len: 0,
        };
        Some(result.map(|len| {
            buf.len = len.min(size) as u32;
            buf
        }))
    }

    /// [`BufPool::read_with`] for several buffers: takes up to `max` (at most `N`) free
    /// buffers (list mode) and lets `read` fill a prefix of them. `read` gets each buffer's
    /// start and the buffer size, and returns how many buffers it filled, each one's length
    /// and what else it learnt about it (`M`) in `filled`; those are handed to `each` as
    /// [`RecvBuf`]s, in order, and the rest go back to the pool. `None` when no buffer is
    /// free; an error returns every buffer.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn read_batch<const N: usize, M: Copy + Default>(
        &self,
        max: usize,
        read: impl FnOnce(&[NonNull<u8>], usize, &mut [(usize, M); N]) -> io::Result<usize>,
        mut each: impl FnMut(RecvBuf, M),
    ) -> Option<io::Result<usize>> {
        let free = match &self.inner.mode {
            Mode::List { free } => free,
            #[cfg(uring)]
            Mode::Ring { .. } => {
                unreachable!("read_batch on a ring pool: the kernel picks ring buffers")
            }
        };
        let size = self.inner.size as usize;
        let mut bids = [0u16; N];
        let mut starts = [NonNull::dangling(); N];
        let mut taken = 0;
        {
            let mut free = free.borrow_mut();
            while taken < max.min(N) {
                let Some(bid) = free.pop() else { break };
                bids[taken] = bid;
                // SAFETY: `bid < count` (the free list holds only valid ids), so the offset
                // is inside `mem`.
                starts[taken] = unsafe { self.inner.mem.add(bid as usize * size) };
                taken += 1;
            }
        }
        if taken == 0 {
            return None;
        }
        self.inner
            .available
            .set(self.inner.available.get() - taken as u32);
        let mut filled = [(0usize, M::default()); N];
        // The buffers were in the free list: nobody else holds a view of them until they
        // are lent out below or returned.
        let result = read(&starts[..taken], size, &mut filled);
        let count = result.as_ref().map_or(0, |n| (*n).min(taken));
        for (i, &bid) in bids[..taken].iter().enumerate() {
            let buf = RecvBuf {
                pool: Rc::clone(&self.inner),
                bid,
                start: 0,
                len: filled[i].0.min(size) as u32,
            };
            if i < count {
                each(buf, filled[i].1);
            }
            // Otherwise dropped: back to the free list.
        }
        Some(result.map(|_| count))
    }

    /// Takes ownership of ring buffer `bid`, which the kernel filled with `len` bytes.
    ///
    /// # Safety
    /// `bid` must come from a completion of this pool's ring (IORING_CQE_F_BUFFER), and each
    /// such completion may be claimed once: the kernel then no longer writes to the buffer
    /// and no other `RecvBuf` for it exists.
    #[cfg(uring)]
    pub(crate) unsafe fn claim(&self, bid: u16, len: u32) -> RecvBuf {
        debug_assert!(bid < self.inner.count);
        debug_assert!(len <= self.inner.size);
        self.inner
            .available
            .set(self.inner.available.get().saturating_sub(1));
        RecvBuf {
            pool: Rc::clone(&self.inner),
            bid,
            start: 0,
            len: len.min(self.inner.size),
        }
    }

    /// Takes ownership of the buffers of a receive bundle (IORING_RECVSEND_BUNDLE): `len`
    /// bytes in buffer `first` and the buffers published after it, each filled to its size
    /// but the last. Returns the first; the others are appended to `rest`, in order.
    ///
    /// # Safety
    /// As [`BufPool::claim`], for a bundle completion: the kernel took `first` and the
    /// buffers after it in ring order (it consumes the ring in order and commits a
    /// bundle's buffers at its completion). Those ring entries cannot have been published
    /// again since: their buffers are not back (this claim is their only one), and every
    /// buffer taken after them belongs to a later completion, not claimed yet, so the tail
    /// stays less than a ring's length past them.
    #[cfg(uring)]
    pub(crate) unsafe fn claim_bundle(
        &self,
        first: u16,
        len: u32,
        rest: &mut Vec<RecvBuf>,
    ) -> RecvBuf {
        let size = self.inner.size;
        // SAFETY: the caller's promise for `first`.
        let head = unsafe { self.claim(first, len.min(size)) };
        let Mode::Ring {
            entries, positions, ..
        } = &self.inner.mode
        else {
            unreachable!("claim_bundle on a list pool");
        };
        let mask = self.inner.count - 1;
        let start = positions[usize::from(first.min(mask))].get();
        let bid_at = |position: u16| {
            // SAFETY: `position & mask < count`: inside the ring allocation. The kernel does
            // not write entries (no incremental consumption), and this one is not being
            // published (see the function's safety note).
            unsafe { (*entries.as_ptr().add(usize::from(position & mask))).bid }
        };
        if bid_at(start) != first {
            // The layout is not what the kernel promises: claim nothing more than `first`
            // (a lost buffer beats two owners of one).
            tracing::error!(first, len, "receive bundle not found in ring order");
            return head;
        }
        let mut left = len.saturating_sub(size);
        let mut position = start;
        while left > 0 {
            position = position.wrapping_add(1);
            let bid = bid_at(position);
            let take = left.min(size);
            // SAFETY: the bundle's next buffer, claimed once (see the function's note).
            rest.push(unsafe { self.claim(bid, take) });
            left -= take;
        }
        head
    }

    /// Never free the memory: the kernel may still write into it.
    #[cfg_attr(not(uring), allow(dead_code))]
    pub(crate) fn leak(&self) {
        self.inner.leaked.set(true);
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("size", &self.inner.size)
            .field("count", &self.inner.count)
            .field("available", &self.inner.available.get())
            .finish()
    }
}

impl PoolInner {
    fn give_back(&self, bid: u16) {
        match &self.mode {
            #[cfg(uring)]
            Mode::Ring {
                entries,
                tail,
                positions,
                ..
            } => {
                let mask = self.count - 1;
                let index = tail.get() & mask;
                positions[usize::from(bid)].set(tail.get());
                let addr = self.mem.as_ptr() as u64 + u64::from(bid) * u64::from(self.size);
                // SAFETY: `index < count`, so the entry is inside the ring allocation. The
                // kernel reads entries only between its head and the published tail, and this
                // one is past the tail until the release store below. `resv` is not written:
                // in entry 0 it is the tail itself.
                unsafe {
                    let entry = entries.as_ptr().add(index as usize);
                    (&raw mut (*entry).addr).write(addr);
                    (&raw mut (*entry).len).write(self.size);
                    (&raw mut (*entry).bid).write(bid);
                }
                let next = tail.get().wrapping_add(1);
                tail.set(next);
                // SAFETY: entry 0's `resv` is the ring tail (`struct io_uring_buf_ring`); it is
                // 2-byte aligned, lives as long as the ring, and the kernel reads it atomically.
                let shared_tail = unsafe {
                    &*(&raw const (*entries.as_ptr()).resv).cast::<std::sync::atomic::AtomicU16>()
                };
                shared_tail.store(next, std::sync::atomic::Ordering::Release);
            }
            Mode::List { free } => free.borrow_mut().push(bid),
        }
        self.available.set(self.available.get() + 1);
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if self.leaked.get() {
            return;
        }
        // SAFETY: from `Pages::zeroed(mem_layout)` in `allocate`; no `RecvBuf` is left (each
        // holds an `Rc` to this value) and the kernel is done with it (else `leaked` would be
        // set).
        unsafe { Pages::free(self.mem, self.mem_layout) };
        #[cfg(uring)]
        if let Mode::Ring {
            entries, layout, ..
        } = &self.mode
        {
            // SAFETY: allocated in `new_ring` with `layout`; same argument as above.
            unsafe { std::alloc::dealloc(entries.as_ptr().cast(), *layout) };
        }
    }
}

/// The buffers' memory. On Unix an anonymous private mapping: zeroed by the kernel and backed
/// by pages only where something was written, so a pool of 1024 × 16 KiB costs no resident
/// memory until receives fill it (`alloc_zeroed` with page alignment wrote all of it at start:
/// 16 MiB of RSS before the first connection, issue 16).
struct Pages;

impl Pages {
    /// `layout.size()` zeroed bytes aligned to at least `layout.align()` (at most a page).
    #[cfg(unix)]
    fn zeroed(layout: Layout) -> io::Result<NonNull<u8>> {
        debug_assert!(layout.align() <= 4096, "mmap aligns to pages only");
        // SAFETY: a fresh anonymous mapping (no address hint, no file): it aliases nothing.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(mem.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    #[cfg(not(unix))]
    fn zeroed(layout: Layout) -> io::Result<NonNull<u8>> {
        // SAFETY: `layout` has a non-zero size (checked by the caller).
        let mem = unsafe { std::alloc::alloc_zeroed(layout) };
        NonNull::new(mem).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    /// Releases memory from [`Pages::zeroed`].
    ///
    /// # Safety
    /// `mem` came from `Pages::zeroed(layout)` and nothing uses it any more.
    #[cfg(unix)]
    unsafe fn free(mem: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract: our own mapping of `layout.size()` bytes, unused.
        unsafe { libc::munmap(mem.as_ptr().cast(), layout.size()) };
    }

    /// Releases memory from [`Pages::zeroed`].
    ///
    /// # Safety
    /// `mem` came from `Pages::zeroed(layout)` and nothing uses it any more.
    #[cfg(not(unix))]
    unsafe fn free(mem: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { std::alloc::dealloc(mem.as_ptr(), layout) };
    }
}

/// Received bytes in a pool buffer, lent to the caller without a copy.
///
/// Dereferences to `&[u8]`. Dropping it returns the buffer to the pool, so hold it only while
/// parsing: a protocol that must keep bytes copies just those. It is `!Send`: buffers belong
/// to the driver's thread.
pub struct RecvBuf {
    pool: Rc<PoolInner>,
    bid: u16,
    /// Where the bytes start in the buffer (a multishot recvmsg puts a header and the
    /// sender's address before the payload).
    start: u32,
    len: u32,
}

impl RecvBuf {
    /// The buffer's index in its pool (diagnostics and tests).
    #[must_use]
    pub fn buffer_id(&self) -> u16 {
        self.bid
    }

    /// Narrows the view to `range` of its current bytes (the payload of a multishot recvmsg,
    /// after the header the kernel wrote before it).
    ///
    /// # Panics
    /// If `range` is not inside the view (a bug in the caller, never peer input: callers
    /// take the range from a parse of these very bytes).
    #[cfg(uring)]
    pub(crate) fn narrow(mut self, range: std::ops::Range<usize>) -> RecvBuf {
        assert!(
            range.start <= range.end && range.end <= self.len as usize,
            "narrow {range:?} outside a view of {} bytes",
            self.len
        );
        self.start += range.start as u32;
        self.len = (range.end - range.start) as u32;
        self
    }
}

impl Deref for RecvBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let offset = self.bid as usize * self.pool.size as usize + self.start as usize;
        // SAFETY: `bid < count` and `start + len <= size` (checked where made and narrowed), so the range is inside
        // `mem`, which the `Rc` keeps alive. The buffer is lent to this `RecvBuf` alone: the
        // kernel and the poll backend write only buffers in the ring or free list.
        unsafe { std::slice::from_raw_parts(self.pool.mem.as_ptr().add(offset), self.len as usize) }
    }
}

impl AsRef<[u8]> for RecvBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBuf")
            .field("bid", &self.bid)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        self.pool.give_back(self.bid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pool_lends_and_takes_back() {
        let pool = BufPool::new_list(8, 2).unwrap();
        let a = pool.read_with(|b| {
            b[..3].copy_from_slice(b"abc");
            Ok(3)
        });
        let a = a.unwrap().unwrap();
        assert_eq!(&*a, b"abc");
        assert_eq!(pool.available(), 1);
        let b = pool.read_with(|b| {
            b.fill(7);
            Ok(8)
        });
        let b = b.unwrap().unwrap();
        assert_eq!(&*b, &[7; 8]);
        assert!(pool.read_with(|_| Ok(1)).is_none(), "pool is empty");
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.read_with(|b| Ok(b.len())).unwrap().unwrap();
        assert_eq!(c.len(), 8);
        drop((b, c));
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn read_errors_and_eof_return_the_buffer() {
        let pool = BufPool::new_list(4, 1).unwrap();
        let err = pool
            .read_with(|_| Err(io::ErrorKind::WouldBlock.into()))
            .unwrap();
        assert!(err.is_err());
        assert_eq!(pool.available(), 1);
        let eof = pool.read_with(|_| Ok(0)).unwrap().unwrap();
        assert!(eof.is_empty());
        drop(eof);
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn a_view_outlives_its_pool_handle() {
        let pool = BufPool::new_list(4, 1).unwrap();
        let buf = pool.read_with(|b| {
            b.copy_from_slice(b"live");
            Ok(4)
        });
        drop(pool);
        assert_eq!(&*buf.unwrap().unwrap(), b"live");
    }

    #[cfg(uring)]
    #[test]
    fn ring_pool_publishes_every_buffer_and_takes_back_in_order() {
        let pool = BufPool::new_ring(16, 4).unwrap();
        assert_eq!(pool.available(), 4);
        let Mode::Ring { entries, tail, .. } = &pool.inner.mode else {
            unreachable!()
        };
        assert_eq!(tail.get(), 4);
        // SAFETY: test reads entries of a ring never registered with a kernel.
        let bids: Vec<u16> = (0..4)
            .map(|i| unsafe { (*entries.as_ptr().add(i)).bid })
            .collect();
        assert_eq!(bids, [0, 1, 2, 3]);
        // SAFETY: buffer 2 is treated as handed back by a (simulated) completion, once.
        let buf = unsafe { pool.claim(2, 5) };
        assert_eq!(buf.len(), 5);
        assert_eq!(pool.available(), 3);
        drop(buf);
        assert_eq!(tail.get(), 5);
        // SAFETY: as above.
        let reused = unsafe { (*entries.as_ptr()).bid };
        assert_eq!(reused, 2, "slot 4 & mask = 0 now holds buffer 2");
        assert_eq!(pool.available(), 4);
    }

    #[cfg(uring)]
    #[test]
    fn a_bundle_is_claimed_in_ring_order_not_buffer_id_order() {
        let pool = BufPool::new_ring(16, 4).unwrap();
        // Buffers 1 and 0 come back in that order: the ring now reads 2, 3, 1, 0.
        // SAFETY: simulated completions, each claimed once.
        let (one, zero) = unsafe { (pool.claim(1, 16), pool.claim(0, 16)) };
        drop(one);
        drop(zero);
        let mut rest = Vec::new();
        // SAFETY: a simulated bundle of three buffers starting at buffer 2, claimed once.
        let first = unsafe { pool.claim_bundle(2, 40, &mut rest) };
        assert_eq!(first.buffer_id(), 2);
        assert_eq!(first.len(), 16);
        let tail: Vec<(u16, usize)> = rest.iter().map(|b| (b.buffer_id(), b.len())).collect();
        assert_eq!(tail, [(3, 16), (1, 8)]);
        assert_eq!(pool.available(), 1);
        drop((first, rest));
        assert_eq!(pool.available(), 4);
    }
}
