//! File operations through the driver ([`Driver::file`](crate::Driver::file)): open, stat,
//! positioned read and close of regular files, as io_uring operations.
//!
//! Owns: the request and result types ([`FileRequest`], [`FileDone`], [`FileStat`]) and the
//! id of an operation in flight ([`FileOpId`]); [`read_at_spare`], the positioned read on a
//! thread into a buffer's uninitialised capacity (no zeroing first).
//! Contract: the driver owns everything a request carries (path, buffer, the file itself)
//! until the operation's completion arrives ([`Completion::File`](crate::Completion::File)),
//! so a caller that loses interest ([`Driver::forget_file`](crate::Driver::forget_file))
//! frees nothing the kernel may still touch: the driver drops it at the completion, which is
//! then not delivered. Only the io_uring backend runs them
//! ([`Capabilities::file_ops`](crate::Capabilities::file_ops)); elsewhere
//! [`Driver::file`](crate::Driver::file) refuses with `Unsupported` and the caller uses a
//! thread (the engine's `ringwork::fs` does).

use std::ffi::CString;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;

/// An operation of [`Driver::file`](crate::Driver::file) in flight.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct FileOpId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// A file operation for the driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileRequest {
    /// Opens `path` read-only (`O_RDONLY | O_CLOEXEC | O_NOCTTY`, `openat2(2)`): relative
    /// to `dir` when given (else to the working directory); with `beneath`, resolution may
    /// not leave `dir` (`RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: `..`, an absolute path
    /// or symlink, or a symlink out of it fails with `EXDEV`); with `path_only`, as
    /// `O_PATH` (a handle to stat, which never blocks, even on a FIFO; it cannot be read).
    Open {
        /// The directory `path` is relative to.
        dir: Option<Arc<File>>,
        /// The path (no NUL bytes).
        path: CString,
        /// Keep resolution under `dir`.
        beneath: bool,
        /// `O_PATH` instead of `O_RDONLY`.
        path_only: bool,
    },
    /// Metadata of an open file (`statx(2)` with `AT_EMPTY_PATH`).
    Stat {
        /// The file.
        file: Arc<File>,
    },
    /// Reads at most `buf`'s spare capacity (`capacity - len`, up to 2 GiB) from `offset`,
    /// appended to `buf`: fewer bytes at the end of the file, or when the kernel returns a
    /// short read (the caller reads the rest).
    Read {
        /// The file.
        file: Arc<File>,
        /// The buffer, handed back filled.
        buf: BytesMut,
        /// Where to read from.
        offset: u64,
    },
    /// Closes the file (its last handle).
    Close {
        /// The file.
        file: File,
    },
}

/// What a finished [`FileRequest`] gives back.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileDone {
    /// The opened file.
    Opened(File),
    /// The file's metadata.
    Stat(FileStat),
    /// The buffer, with the bytes read appended.
    Read(BytesMut),
    /// The file was closed.
    Closed,
}

/// The metadata of a file, from `statx(2)`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct FileStat {
    /// Size in bytes.
    pub len: u64,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// Last modification time.
    pub modified: SystemTime,
    /// Inode number.
    pub ino: u64,
    /// Device of the filesystem (`st_dev`).
    pub dev: u64,
}

impl FileStat {
    /// Whether it is a regular file.
    #[must_use]
    pub fn is_file(&self) -> bool {
        self.mode & 0o170_000 == 0o100_000
    }

    /// Whether it is a directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170_000 == 0o040_000
    }

    /// The same facts from a [`std::fs::Metadata`] (a stat made on a thread).
    #[cfg(unix)]
    #[must_use]
    pub fn from_metadata(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            len: metadata.len(),
            mode: metadata.mode(),
            modified: FileStat::time(metadata.mtime(), metadata.mtime_nsec() as u32),
            ino: metadata.ino(),
            dev: metadata.dev(),
        }
    }

    /// A time from seconds and nanoseconds since the epoch (negative: before it).
    #[cfg_attr(not(uring), allow(dead_code))] // The io_uring backend's STATX only.
    pub(crate) fn time(secs: i64, nanos: u32) -> SystemTime {
        let nanos = Duration::from_nanos(u64::from(nanos.min(999_999_999)));
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()) + nanos
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nanos
        }
    }
}

#[cfg(unix)]
pub use crate::sys::pread::read_at_spare;
