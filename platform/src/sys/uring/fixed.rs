//! The ring's fixed (registered) file table, for stream sockets.
//!
//! An operation on a fixed file skips the kernel's per-operation descriptor lookup and its
//! reference count (`fdget`/`fput`, atomic in a multi-threaded process). Choice: each stream
//! socket (accepted or connected) keeps its ordinary descriptor and is *also* installed in
//! the table (`IORING_REGISTER_FILES_UPDATE`, one system call per socket), rather than being
//! accepted as a direct descriptor only (`IORING_FILE_INDEX_ALLOC`). Everything that needs a
//! real descriptor then keeps working unchanged: socket options (`Driver::with_socket`),
//! splice, descriptor passing, the TLS ULP, and operations this backend submits rarely
//! (polls, cancels). Receives, sends, connects and shutdowns name the socket by its table
//! entry. At close, the entry is closed first (a hard-linked `IORING_OP_CLOSE` on the fixed
//! index), then the descriptor; the index is reused only after both.
//!
//! The table's size is [`DriverConfig::fixed_files`](crate::DriverConfig::fixed_files);
//! when it is full, a new socket simply goes without an entry (`Stats::fixed_table_full`).

use std::os::fd::RawFd;

use io_uring::IoUring;

/// How an SQE names a socket: its descriptor, or its entry in the fixed file table.
#[derive(Clone, Copy, Debug)]
pub(super) enum SockFd {
    Raw(RawFd),
    Fixed(u32),
}

/// Free entries of the ring's fixed file table.
#[derive(Default)]
pub(super) struct FixedFiles {
    /// Entries not in use; popped from the back.
    free: Vec<u32>,
    size: u32,
}

impl FixedFiles {
    /// Registers a sparse table of `size` entries (`size` 0: none). A kernel that refuses
    /// (too old, or `size` above RLIMIT_NOFILE) leaves the table empty, said in one line.
    pub(super) fn register(ring: &IoUring, size: u32) -> Self {
        if size == 0 {
            return Self::default();
        }
        if let Err(error) = ring.submitter().register_files_sparse(size) {
            tracing::info!(size, %error, "no fixed file table: sockets use plain descriptors");
            return Self::default();
        }
        Self {
            free: (0..size).rev().collect(),
            size,
        }
    }

    /// Entries the table has (0 when there is none).
    pub(super) fn size(&self) -> u32 {
        self.size
    }

    /// Installs `raw` in a free entry; `None` when the table is full (or the kernel refused).
    pub(super) fn install(&mut self, ring: &IoUring, raw: RawFd) -> Option<u32> {
        let index = self.free.pop()?;
        match ring.submitter().register_files_update(index, &[raw]) {
            Ok(1) => Some(index),
            result => {
                tracing::debug!(index, ?result, "fixed file update failed: plain descriptor");
                self.free.push(index);
                None
            }
        }
    }

    /// Entry `index` was closed: it can be used again.
    pub(super) fn release(&mut self, index: u32) {
        debug_assert!(index < self.size && !self.free.contains(&index));
        self.free.push(index);
    }
}
