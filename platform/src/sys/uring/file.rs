//! File operations under io_uring: OPENAT2, STATX, READ and CLOSE for
//! [`Driver::file`](crate::Driver::file).
//!
//! Owns: [`FileOps`], the in-flight file operations of one driver and the memory each
//! points the kernel at (path and `open_how`, the `statx` buffer, the read buffer and the
//! file being read), keyed by the `slot` of their `OpId` (kind [`OpKind::File`]).
//! Contract: an operation's memory is dropped only at its CQE — also when the caller
//! forgot it ([`FileOps::forget`]): its result is then dropped (an opened file closed)
//! instead of delivered. Every pointer handed to the kernel targets a heap allocation
//! (`CString`, boxes, a `BytesMut`'s buffer), so the table may move its entries.
//!
//! Safety: as the backend's (see the module above): if the driver gives up draining, the
//! table is leaked with the other memory.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::{io, mem};

use bytes::BytesMut;
use io_uring::types::{Fd, OpenHow};
use io_uring::{opcode, squeue};
use slab::Slab;

use crate::error::OpError;
use crate::file::{FileDone, FileOpId, FileRequest, FileStat};
use crate::id::{GENERATION_MASK, OpId, OpKind};

/// `RESOLVE_NO_MAGICLINKS` (linux/openat2.h): no `/proc/self/fd`-style links.
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `RESOLVE_BENEATH` (linux/openat2.h): resolution may not leave the directory.
const RESOLVE_BENEATH: u64 = 0x08;
/// Largest read submitted at once (a read's length is a `u32`; Linux caps reads there too).
const MAX_READ: usize = 0x7fff_f000;

/// The in-flight file operations of one driver.
#[derive(Default)]
pub(super) struct FileOps {
    ops: Slab<InFlight>,
    /// Generation of the next operation (wraps at 2^24, as in `user_data`).
    next_generation: u32,
}

struct InFlight {
    generation: u32,
    /// The caller lost interest: drop the result at the CQE.
    forgotten: bool,
    memory: Memory,
}

/// What the kernel may touch until the CQE.
enum Memory {
    Open {
        // Held so that the descriptor the SQE names stays open.
        _dir: Option<Arc<File>>,
        _path: CString,
        _how: Box<OpenHow>,
    },
    Stat {
        _file: Arc<File>,
        buf: Box<libc::statx>,
    },
    Read {
        _file: Arc<File>,
        buf: BytesMut,
    },
    Close,
}

impl FileOps {
    /// Takes `request`'s memory and builds its SQE.
    pub(super) fn start(&mut self, request: FileRequest) -> (FileOpId, squeue::Entry) {
        let generation = self.next_generation & GENERATION_MASK;
        self.next_generation = self.next_generation.wrapping_add(1);
        let entry = self.ops.vacant_entry();
        // INVARIANT: slab keys are dense; more than 2^32 operations in flight is impossible
        // (each holds memory and an SQ/CQ slot).
        let slot = u32::try_from(entry.key()).expect("fewer than 2^32 file operations");
        let user_data = OpId {
            slot,
            generation,
            kind: OpKind::File,
        }
        .encode();
        let (memory, sqe) = match request {
            FileRequest::Open {
                dir,
                path,
                beneath,
                path_only,
            } => {
                let resolve = if beneath {
                    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
                } else {
                    0
                };
                let access = if path_only {
                    libc::O_PATH
                } else {
                    libc::O_RDONLY | libc::O_NOCTTY
                };
                let flags = (access | libc::O_CLOEXEC) as u64;
                let how = Box::new(OpenHow::new().flags(flags).resolve(resolve));
                let dirfd = dir.as_ref().map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
                let sqe = opcode::OpenAt2::new(Fd(dirfd), path.as_ptr(), &raw const *how).build();
                let memory = Memory::Open {
                    _dir: dir,
                    _path: path,
                    _how: how,
                };
                (memory, sqe)
            }
            FileRequest::Stat { file } => {
                // SAFETY: statx is plain old data; all-zero is a valid value.
                let mut buf: Box<libc::statx> = Box::new(unsafe { mem::zeroed() });
                let sqe = opcode::Statx::new(
                    Fd(file.as_raw_fd()),
                    c"".as_ptr(),
                    (&raw mut *buf).cast::<io_uring::types::statx>(),
                )
                .flags(libc::AT_EMPTY_PATH)
                .mask(libc::STATX_BASIC_STATS)
                .build();
                (Memory::Stat { _file: file, buf }, sqe)
            }
            FileRequest::Read {
                file,
                mut buf,
                offset,
            } => {
                let spare = buf.spare_capacity_mut();
                let len = spare.len().min(MAX_READ) as u32;
                let sqe =
                    opcode::Read::new(Fd(file.as_raw_fd()), spare.as_mut_ptr().cast::<u8>(), len)
                        .offset(offset)
                        .build();
                (Memory::Read { _file: file, buf }, sqe)
            }
            FileRequest::Close { file } => {
                // The kernel owns the descriptor from here: it is closed even if nobody
                // waits for the CQE.
                let fd = file.into_raw_fd();
                (Memory::Close, opcode::Close::new(Fd(fd)).build())
            }
        };
        entry.insert(InFlight {
            generation,
            forgotten: false,
            memory,
        });
        (FileOpId { slot, generation }, sqe.user_data(user_data))
    }

    /// The caller will not wait for `id`: its result is dropped at its CQE. `false` if it
    /// is not in flight.
    pub(super) fn forget(&mut self, id: FileOpId) -> bool {
        match self.ops.get_mut(id.slot as usize) {
            Some(op) if op.generation == id.generation => {
                op.forgotten = true;
                true
            }
            _ => false,
        }
    }

    /// The CQE of operation `op` with `result`: its completion, or `None` when it was
    /// forgotten (or is unknown: a logic error, logged).
    pub(super) fn complete(
        &mut self,
        op: OpId,
        result: i32,
    ) -> Option<(FileOpId, Result<FileDone, OpError>)> {
        let slot = op.slot as usize;
        if self
            .ops
            .get(slot)
            .is_none_or(|entry| entry.generation != op.generation)
        {
            tracing::error!(slot, "completion of an unknown file operation");
            return None;
        }
        let InFlight {
            generation,
            forgotten,
            memory,
        } = self.ops.remove(slot);
        let id = FileOpId {
            slot: op.slot,
            generation,
        };
        let outcome = if result < 0 {
            Err(OpError::new(
                OpKind::File,
                None,
                io::Error::from_raw_os_error(-result),
            ))
        } else {
            Ok(match memory {
                Memory::Open { .. } => {
                    // SAFETY: a non-negative OPENAT2 result is a new descriptor that nothing
                    // else owns.
                    FileDone::Opened(unsafe { File::from_raw_fd(result) })
                }
                Memory::Stat { buf, .. } => FileDone::Stat(FileStat {
                    len: buf.stx_size,
                    mode: u32::from(buf.stx_mode),
                    modified: FileStat::time(buf.stx_mtime.tv_sec, buf.stx_mtime.tv_nsec),
                    ino: buf.stx_ino,
                    dev: libc::makedev(buf.stx_dev_major, buf.stx_dev_minor),
                }),
                Memory::Read { mut buf, .. } => {
                    let filled = result as usize;
                    debug_assert!(filled <= buf.capacity() - buf.len());
                    // SAFETY: the kernel wrote `filled` bytes (at most the length submitted,
                    // the spare capacity) at the start of the spare capacity, and nothing
                    // touched the buffer since it was submitted.
                    unsafe { buf.set_len(buf.len() + filled) };
                    FileDone::Read(buf)
                }
                Memory::Close => FileDone::Closed,
            })
        };
        // A forgotten open's file is closed as the result drops.
        (!forgotten).then_some((id, outcome))
    }

    /// Operations in flight.
    pub(super) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Gives up the memory of every operation still in flight (the driver could not reap
    /// them): leaked, never freed while the kernel may use it.
    pub(super) fn leak(&mut self) {
        mem::forget(mem::take(&mut self.ops));
    }
}
