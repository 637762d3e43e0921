//! SFTP requests run against a root directory with blocking file I/O.
//!
//! Owns: [`RootFs`]: the open handles (a bounded table; a handle is 8 bytes, slot and
//! generation, so a closed handle's number is never taken for a newer one), each request of
//! [`Request`] turned into filesystem calls on paths confined by [`SftpRoot`] — checked by
//! path, then used through descriptors opened beneath the root (`openat2`) and `*at` calls
//! on a parent directory's descriptor — the `--read-only` refusal, and the mapping of I/O
//! errors to `SSH_FX_*` codes.
//! Contract: [`RootFs::execute`] answers every request (never panics on its contents);
//! error messages carry no server paths. Writes, creations, renames and removals are
//! refused with `SSH_FX_PERMISSION_DENIED` when read-only.
//! Does not: speak the wire protocol (see `server.rs`), or run without blocking: it is
//! meant for a process per session, as OpenSSH's `sftp-server` (`ringwork sftp-server`).
//! Tests: `fs/tests.rs`.

use std::fs::{File, FileTimes, Metadata, Permissions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustix::fs::{AtFlags, Mode, OFlags, Stat, StatVfsMountFlags};

use super::codec::{Attrs, Limits, NameEntry, Request, Response, StatVfs, StatusCode, open_flags};
use super::path::{SftpPathError, SftpRoot};
use super::server::{DEFAULT_MAX_PACKET_LEN, DEFAULT_MAX_READ_LEN};

/// Directory entries per `READDIR` answer (OpenSSH's server sends 100).
const READDIR_BATCH: usize = 100;

/// Options of a [`RootFs`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RootFsConfig {
    /// Refuse every change to the tree. Default false.
    pub read_only: bool,
    /// Open files and directories at once. Default 256.
    pub max_handles: usize,
    /// The most bytes one `READ` returns. Default [`DEFAULT_MAX_READ_LEN`].
    pub max_read_len: usize,
}

impl Default for RootFsConfig {
    fn default() -> Self {
        Self {
            read_only: false,
            max_handles: 256,
            max_read_len: DEFAULT_MAX_READ_LEN,
        }
    }
}

/// One SFTP session's view of a root directory: its open handles and the requests run on
/// them. See the module docs.
#[derive(Debug)]
pub struct RootFs {
    root: SftpRoot,
    config: RootFsConfig,
    slots: Vec<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    open: Option<Open>,
}

#[derive(Debug)]
enum Open {
    File(File),
    /// A directory being listed: its entries, and its descriptor for their `lstat`.
    Dir {
        entries: rustix::fs::Dir,
        fd: OwnedFd,
    },
}

impl RootFs {
    /// A session over `root` with no handles open.
    #[must_use]
    pub fn new(root: SftpRoot, config: RootFsConfig) -> Self {
        Self {
            root,
            config,
            slots: Vec::new(),
        }
    }

    /// Handles open now.
    #[must_use]
    pub fn open_handles(&self) -> usize {
        self.slots.iter().filter(|s| s.open.is_some()).count()
    }

    /// Runs `request` and returns its answer.
    pub fn execute(&mut self, request: Request) -> Response {
        if self.config.read_only && request.writes() {
            return Response::status(StatusCode::PermissionDenied, "read-only server");
        }
        self.run(request).unwrap_or_else(|response| response)
    }

    fn run(&mut self, request: Request) -> Result<Response, Response> {
        match request {
            Request::Open { path, flags, attrs } => self.open(&path, flags, &attrs),
            Request::Close { handle } => {
                let slot = self.slot(&handle)?;
                self.slots[slot].open = None;
                Ok(Response::ok())
            }
            Request::Read {
                handle,
                offset,
                len,
            } => {
                let file = self.file(&handle)?;
                let len = (len as usize).min(self.config.max_read_len);
                read_at(file, offset, len)
            }
            Request::Write {
                handle,
                offset,
                data,
            } => {
                let file = self.file(&handle)?;
                file.write_all_at(&data, offset).map_err(io_status)?;
                Ok(Response::ok())
            }
            // The root itself has no name in a parent to lstat: it is the root directory
            // (as a chroot's `/`), which `ls /` and `ls .` ask about.
            Request::Lstat { path }
                if SftpRoot::normalize(&path).is_ok_and(|segments| segments.is_empty()) =>
            {
                let root = self.root.follow(&path).map_err(path_status)?;
                let stat = self.stat_beneath(&root).map_err(io_status)?;
                Ok(Response::Attrs(FileInfo::from_stat(&stat).attrs()))
            }
            Request::Lstat { path } => {
                let entry = self.root.entry(&path).map_err(path_status)?;
                let (dir, name) = self.root.parent_beneath(&entry).map_err(io_status)?;
                let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno_status)?;
                Ok(Response::Attrs(FileInfo::from_stat(&stat).attrs()))
            }
            Request::Stat { path } => {
                let path = self.root.follow(&path).map_err(path_status)?;
                let stat = self.stat_beneath(&path).map_err(io_status)?;
                Ok(Response::Attrs(FileInfo::from_stat(&stat).attrs()))
            }
            Request::Fstat { handle } => {
                let info = match self.open_of(&handle)? {
                    Open::File(file) => {
                        FileInfo::from_metadata(&file.metadata().map_err(io_status)?)
                    }
                    Open::Dir { fd, .. } => {
                        FileInfo::from_stat(&rustix::fs::fstat(fd).map_err(errno_status)?)
                    }
                };
                Ok(Response::Attrs(info.attrs()))
            }
            Request::Setstat { path, attrs } => {
                let path = self.root.follow(&path).map_err(path_status)?;
                // Changed through a descriptor opened beneath the root: a symlink swapped
                // in after the check cannot turn a chmod onto a file outside.
                let flags = if attrs.size.is_some() {
                    OFlags::WRONLY
                } else {
                    OFlags::RDONLY
                };
                let file = self
                    .root
                    .open_beneath(&path, flags, Mode::empty())
                    .map(File::from)
                    .map_err(io_status)?;
                set_attrs(&file, &attrs).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Fsetstat { handle, attrs } => {
                match self.open_of(&handle)? {
                    Open::File(file) => set_attrs(file, &attrs),
                    Open::Dir { fd, .. } => {
                        let dir = fd.try_clone().map(File::from).map_err(io_status)?;
                        set_attrs(&dir, &attrs)
                    }
                }
                .map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Opendir { path } => {
                let path = self.root.follow(&path).map_err(path_status)?;
                if self.free_slot().is_none() {
                    return Err(too_many_handles());
                }
                let fd = self
                    .root
                    .open_beneath(&path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
                    .map_err(io_status)?;
                let entries = rustix::fs::Dir::read_from(&fd).map_err(errno_status)?;
                self.insert(Open::Dir { entries, fd })
            }
            Request::Readdir { handle } => self.readdir(&handle),
            Request::Remove { path } => {
                let entry = self.root.entry(&path).map_err(path_status)?;
                let (dir, name) = self.root.parent_beneath(&entry).map_err(io_status)?;
                rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(errno_status)?;
                Ok(Response::ok())
            }
            Request::Mkdir { path, attrs } => {
                let entry = self.root.entry(&path).map_err(path_status)?;
                let (dir, name) = self.root.parent_beneath(&entry).map_err(io_status)?;
                let mode = mode_of(&attrs, 0o777);
                rustix::fs::mkdirat(&dir, name, mode).map_err(errno_status)?;
                Ok(Response::ok())
            }
            Request::Rmdir { path } => {
                let entry = self.root.entry(&path).map_err(path_status)?;
                let (dir, name) = self.root.parent_beneath(&entry).map_err(io_status)?;
                rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).map_err(errno_status)?;
                Ok(Response::ok())
            }
            Request::Realpath { path } => self.realpath(&path),
            Request::ExpandPath { path } => {
                // `~` and `~/..` name the home directory, the root here; another user's
                // `~name` is not known.
                let rest = match path.strip_prefix(b"~") {
                    None => &path[..],
                    Some(rest) if rest.is_empty() || rest.starts_with(b"/") => rest,
                    Some(_) => {
                        return Err(Response::status(
                            StatusCode::NoSuchFile,
                            "no home directory for another user",
                        ));
                    }
                };
                self.realpath(rest)
            }
            Request::Rename { from, to } => self.rename(&from, &to, false),
            Request::PosixRename { from, to } => self.rename(&from, &to, true),
            Request::Hardlink { from, to } => {
                let from = self.root.entry(&from).map_err(path_status)?;
                let to = self.root.entry(&to).map_err(path_status)?;
                let (from_dir, from_name) = self.root.parent_beneath(&from).map_err(io_status)?;
                let (to_dir, to_name) = self.root.parent_beneath(&to).map_err(io_status)?;
                // No AT_SYMLINK_FOLLOW: a symlink is linked as itself, not its target.
                rustix::fs::linkat(&from_dir, from_name, &to_dir, to_name, AtFlags::empty())
                    .map_err(errno_status)?;
                Ok(Response::ok())
            }
            Request::Readlink { path } => {
                let entry = self.root.entry(&path).map_err(path_status)?;
                let (dir, name) = self.root.parent_beneath(&entry).map_err(io_status)?;
                let target =
                    rustix::fs::readlinkat(&dir, name, Vec::new()).map_err(errno_status)?;
                let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
                // An absolute target inside the root is shown as the client sees it.
                let shown = self
                    .root
                    .to_virtual(target)
                    .unwrap_or_else(|| target.as_os_str().as_bytes().to_vec());
                Ok(name_reply(Bytes::from(shown)))
            }
            Request::Symlink { link, target } => {
                let link = self.root.entry(&link).map_err(path_status)?;
                // An absolute target means the client's `/`, the root: stored as the server
                // path, so the link works here. Relative targets are stored as given;
                // either is checked when followed.
                let target = if target.starts_with(b"/") {
                    let segments = SftpRoot::normalize(&target).map_err(path_status)?;
                    self.root.join(&segments)
                } else {
                    if target.contains(&0) {
                        return Err(path_status(SftpPathError::Bad("NUL byte in path")));
                    }
                    PathBuf::from(std::ffi::OsStr::from_bytes(&target))
                };
                let (dir, name) = self.root.parent_beneath(&link).map_err(io_status)?;
                rustix::fs::symlinkat(&target, &dir, name).map_err(errno_status)?;
                Ok(Response::ok())
            }
            Request::Fsync { handle } => {
                self.file(&handle)?.sync_all().map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::CopyData {
                from,
                from_offset,
                len,
                to,
                to_offset,
            } => {
                let from_slot = self.slot(&from)?;
                let to_slot = self.slot(&to)?;
                // OpenSSH's server: copying a file onto an overlapping part of itself is
                // refused (the result would depend on the copy order).
                if from_slot == to_slot {
                    let end = |offset: u64| offset.saturating_add(len.max(1));
                    if len == 0 || (from_offset < end(to_offset) && to_offset < end(from_offset)) {
                        return Err(Response::status(
                            StatusCode::Failure,
                            "overlapping copy within one file",
                        ));
                    }
                }
                copy_data(
                    self.file(&from)?,
                    from_offset,
                    len,
                    self.file(&to)?,
                    to_offset,
                )?;
                Ok(Response::ok())
            }
            Request::Limits => Ok(Response::Limits(Limits {
                max_packet_len: DEFAULT_MAX_PACKET_LEN as u64,
                max_read_len: self.config.max_read_len as u64,
                max_write_len: DEFAULT_MAX_READ_LEN as u64,
                max_open_handles: self.config.max_handles as u64,
            })),
            Request::Statvfs { path } => {
                let path = self.root.follow(&path).map_err(path_status)?;
                let fd = self
                    .root
                    .open_beneath(&path, OFlags::RDONLY, Mode::empty())
                    .map_err(io_status)?;
                let vfs = rustix::fs::fstatvfs(&fd).map_err(errno_status)?;
                // OpenSSH's SSH2_FXE_STATVFS_ST_RDONLY (1) and _ST_NOSUID (2).
                let flag = |set: StatVfsMountFlags, bit: u64| {
                    if vfs.f_flag.contains(set) { bit } else { 0 }
                };
                Ok(Response::StatVfs(StatVfs {
                    block_size: vfs.f_bsize,
                    fragment_size: vfs.f_frsize,
                    blocks: vfs.f_blocks,
                    blocks_free: vfs.f_bfree,
                    blocks_available: vfs.f_bavail,
                    files: vfs.f_files,
                    files_free: vfs.f_ffree,
                    files_available: vfs.f_favail,
                    fs_id: vfs.f_fsid,
                    flags: flag(StatVfsMountFlags::RDONLY, 1) | flag(StatVfsMountFlags::NOSUID, 2),
                    max_name_len: vfs.f_namemax,
                }))
            }
            Request::Extended { .. } => Err(Response::status(
                StatusCode::OpUnsupported,
                "unsupported extension",
            )),
        }
    }

    fn open(&mut self, raw: &[u8], flags: u32, attrs: &Attrs) -> Result<Response, Response> {
        let create = flags & open_flags::CREAT != 0;
        let write = flags & (open_flags::WRITE | open_flags::APPEND) != 0;
        // Neither READ nor WRITE: OpenSSH opens for reading.
        let mut oflags = match (flags & open_flags::READ != 0, write) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            (_, false) => OFlags::RDONLY,
        };
        if flags & open_flags::APPEND != 0 {
            oflags |= OFlags::APPEND;
        }
        if flags & open_flags::TRUNC != 0 && write {
            oflags |= OFlags::TRUNC;
        }
        // O_NONBLOCK: opening a FIFO must not wait for a writer (no effect on regular
        // files, the only kind served).
        oflags |= OFlags::NONBLOCK;
        let mut mode = Mode::empty();
        let segments = SftpRoot::normalize(raw).map_err(path_status)?;
        let exists = std::fs::symlink_metadata(self.root.join(&segments));
        let path = match exists {
            Ok(_) if create && flags & open_flags::EXCL != 0 => {
                return Err(Response::status(StatusCode::Failure, "file exists"));
            }
            // An existing name, or a symlink: followed, and refused if it leaves the root
            // (also a dangling symlink, which creating through would write outside).
            Ok(_) => self.root.follow(raw).map_err(path_status)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                // O_CREAT|O_EXCL never follows a symlink: one made meanwhile fails the open.
                oflags |= OFlags::CREATE | OFlags::EXCL;
                mode = mode_of(attrs, 0o666);
                self.root.entry(raw).map_err(path_status)?
            }
            Err(e) => return Err(io_status(e)),
        };
        if self.free_slot().is_none() {
            return Err(too_many_handles());
        }
        let file = self
            .root
            .open_beneath(&path, oflags, mode)
            .map(File::from)
            .map_err(io_status)?;
        let meta = file.metadata().map_err(io_status)?;
        if meta.is_dir() {
            return Err(Response::status(StatusCode::Failure, "is a directory"));
        }
        // A FIFO or device under the root is not served: reading one could block the
        // session for ever (O_NONBLOCK kept the open itself from blocking).
        if !meta.is_file() {
            return Err(Response::status(StatusCode::Failure, "not a regular file"));
        }
        self.insert(Open::File(file))
    }

    fn readdir(&mut self, handle: &[u8]) -> Result<Response, Response> {
        let Open::Dir { entries, fd } = self.open_of_mut(handle)? else {
            return Err(Response::status(
                StatusCode::Failure,
                "not a directory handle",
            ));
        };
        let now = SystemTime::now();
        let mut names = Vec::new();
        for entry in entries.by_ref() {
            let Ok(entry) = entry else { break };
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            // An lstat, as OpenSSH's server: a symlink is shown as itself.
            let Ok(stat) = rustix::fs::statat(&*fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let info = FileInfo::from_stat(&stat);
            let name = name.to_bytes();
            names.push(NameEntry {
                filename: Bytes::copy_from_slice(name),
                longname: Bytes::from(info.longname(name, now)),
                attrs: info.attrs(),
            });
            if names.len() == READDIR_BATCH {
                break;
            }
        }
        if names.is_empty() {
            return Err(Response::status(StatusCode::Eof, "end of directory"));
        }
        Ok(Response::Name(names))
    }

    fn realpath(&self, raw: &[u8]) -> Result<Response, Response> {
        let segments = SftpRoot::normalize(raw).map_err(path_status)?;
        let shown = match std::fs::canonicalize(self.root.join(&segments)) {
            Ok(canonical) => self
                .root
                .to_virtual(&canonical)
                .ok_or_else(|| path_status(SftpPathError::Escapes))?,
            // A path that does not exist yet (a `put` target) is shown as normalized.
            Err(e) if e.kind() == io::ErrorKind::NotFound => SftpRoot::virtual_path(&segments),
            Err(e) => return Err(io_status(e)),
        };
        Ok(name_reply(Bytes::from(shown)))
    }

    fn rename(&self, from: &[u8], to: &[u8], replace: bool) -> Result<Response, Response> {
        let from = self.root.entry(from).map_err(path_status)?;
        let to = self.root.entry(to).map_err(path_status)?;
        let (from_dir, from_name) = self.root.parent_beneath(&from).map_err(io_status)?;
        let (to_dir, to_name) = self.root.parent_beneath(&to).map_err(io_status)?;
        // Draft-02 §6.5: renaming onto an existing file is an error (OpenSSH's server
        // agrees); `posix-rename@openssh.com` replaces it.
        if !replace && rustix::fs::statat(&to_dir, to_name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            return Err(Response::status(StatusCode::Failure, "target exists"));
        }
        rustix::fs::renameat(&from_dir, from_name, &to_dir, to_name).map_err(errno_status)?;
        Ok(Response::ok())
    }

    /// `stat` of a checked path, through a descriptor opened beneath the root.
    fn stat_beneath(&self, path: &Path) -> io::Result<Stat> {
        // O_PATH (Linux): no read permission needed to stat.
        #[cfg(target_os = "linux")]
        let flags = OFlags::PATH;
        #[cfg(not(target_os = "linux"))]
        let flags = OFlags::RDONLY;
        let fd = self.root.open_beneath(path, flags, Mode::empty())?;
        Ok(rustix::fs::fstat(&fd)?)
    }

    fn free_slot(&self) -> Option<usize> {
        match self.slots.iter().position(|s| s.open.is_none()) {
            Some(slot) => Some(slot),
            None if self.slots.len() < self.config.max_handles => Some(self.slots.len()),
            None => None,
        }
    }

    fn insert(&mut self, open: Open) -> Result<Response, Response> {
        let Some(index) = self.free_slot() else {
            return Err(too_many_handles());
        };
        if index == self.slots.len() {
            self.slots.push(Slot::default());
        }
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        slot.open = Some(open);
        let mut handle = Vec::with_capacity(8);
        // Slots are bounded by `max_handles`, far below u32::MAX.
        handle.extend_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
        handle.extend_from_slice(&slot.generation.to_be_bytes());
        Ok(Response::Handle(Bytes::from(handle)))
    }

    fn slot(&self, handle: &[u8]) -> Result<usize, Response> {
        let invalid = || Response::status(StatusCode::Failure, "invalid handle");
        let [a, b, c, d, e, f, g, h] = *handle else {
            return Err(invalid());
        };
        let index = u32::from_be_bytes([a, b, c, d]) as usize;
        let generation = u32::from_be_bytes([e, f, g, h]);
        match self.slots.get(index) {
            Some(slot) if slot.generation == generation && slot.open.is_some() => Ok(index),
            _ => Err(invalid()),
        }
    }

    fn open_of(&self, handle: &[u8]) -> Result<&Open, Response> {
        let slot = self.slot(handle)?;
        self.slots[slot]
            .open
            .as_ref()
            .ok_or_else(|| Response::status(StatusCode::Failure, "invalid handle"))
    }

    fn open_of_mut(&mut self, handle: &[u8]) -> Result<&mut Open, Response> {
        let slot = self.slot(handle)?;
        self.slots[slot]
            .open
            .as_mut()
            .ok_or_else(|| Response::status(StatusCode::Failure, "invalid handle"))
    }

    fn file(&self, handle: &[u8]) -> Result<&File, Response> {
        match self.open_of(handle)? {
            Open::File(file) => Ok(file),
            Open::Dir { .. } => Err(Response::status(StatusCode::Failure, "not a file handle")),
        }
    }
}

fn read_at(file: &File, offset: u64, len: usize) -> Result<Response, Response> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let at = offset.saturating_add(filled as u64);
        match file.read_at(&mut buf[filled..], at) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_status(e)),
        }
    }
    if filled == 0 && len > 0 {
        return Err(Response::status(StatusCode::Eof, "end of file"));
    }
    buf.truncate(filled);
    Ok(Response::Data(Bytes::from(buf)))
}

/// `copy-data`: `len` bytes (0: to the end) from `from` at `from_offset` to `to` at
/// `to_offset`, through a 64 KiB buffer.
fn copy_data(
    from: &File,
    mut from_offset: u64,
    len: u64,
    to: &File,
    mut to_offset: u64,
) -> Result<(), Response> {
    let mut buf = vec![0; 64 * 1024];
    let mut left = if len == 0 { u64::MAX } else { len };
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match from.read_at(&mut buf[..want], from_offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_status(e)),
        };
        to.write_all_at(&buf[..n], to_offset).map_err(io_status)?;
        from_offset = from_offset.saturating_add(n as u64);
        to_offset = to_offset.saturating_add(n as u64);
        left -= n as u64;
    }
    Ok(())
}

fn name_reply(path: Bytes) -> Response {
    Response::Name(vec![NameEntry {
        filename: path.clone(),
        longname: path,
        attrs: Attrs::default(),
    }])
}

fn too_many_handles() -> Response {
    Response::status(StatusCode::Failure, "too many open handles")
}

/// Permission bits of `attrs` for a new file or directory, `default` without them.
fn mode_of(attrs: &Attrs, default: u32) -> Mode {
    Mode::from_bits_truncate((attrs.permissions.unwrap_or(default) & 0o7777) as _)
}

/// What SFTP shows of a file, from std's `Metadata` or rustix's `Stat`.
#[derive(Clone, Copy, Debug)]
struct FileInfo {
    size: u64,
    uid: u32,
    gid: u32,
    mode: u32,
    nlink: u64,
    atime: i64,
    mtime: i64,
}

impl FileInfo {
    fn from_metadata(meta: &Metadata) -> Self {
        Self {
            size: meta.size(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
            nlink: meta.nlink(),
            atime: meta.atime(),
            mtime: meta.mtime(),
        }
    }

    // The field types of `struct stat` differ between targets (u32 or u64 link counts,
    // 32- or 64-bit times): the casts are identities on some of them, and widen on others.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    fn from_stat(stat: &Stat) -> Self {
        Self {
            size: u64::try_from(stat.st_size).unwrap_or(0),
            uid: stat.st_uid as u32,
            gid: stat.st_gid as u32,
            mode: stat.st_mode as u32,
            nlink: stat.st_nlink as u64,
            atime: stat.st_atime as i64,
            mtime: stat.st_mtime as i64,
        }
    }

    /// The attributes as SFTP sends them (times clamped to 32 bits).
    fn attrs(&self) -> Attrs {
        let clamp = |t: i64| u32::try_from(t.max(0)).unwrap_or(u32::MAX);
        Attrs {
            size: Some(self.size),
            uid_gid: Some((self.uid, self.gid)),
            permissions: Some(self.mode),
            atime_mtime: Some((clamp(self.atime), clamp(self.mtime))),
            extended: Vec::new(),
        }
    }

    /// An `ls -l` line, as OpenSSH's `sftp-server` writes for `READDIR` (numeric owners).
    fn longname(&self, name: &[u8], now: SystemTime) -> Vec<u8> {
        let mode = self.mode;
        let kind = match mode & 0o170_000 {
            0o040_000 => 'd',
            0o120_000 => 'l',
            0o020_000 => 'c',
            0o060_000 => 'b',
            0o010_000 => 'p',
            0o140_000 => 's',
            _ => '-',
        };
        let mut perms = String::with_capacity(10);
        perms.push(kind);
        let specials = [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')];
        for (shift, special, special_char) in specials {
            let bits = (mode >> shift) & 7;
            perms.push(if bits & 4 != 0 { 'r' } else { '-' });
            perms.push(if bits & 2 != 0 { 'w' } else { '-' });
            perms.push(match (mode & special != 0, bits & 1 != 0) {
                (true, true) => special_char,
                (true, false) => special_char.to_ascii_uppercase(),
                (false, true) => 'x',
                (false, false) => '-',
            });
        }
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let date = ls_date(self.mtime, now_secs);
        let mut line = format!(
            "{perms} {:>3} {:<8} {:<8} {:>8} {date} ",
            self.nlink, self.uid, self.gid, self.size
        )
        .into_bytes();
        line.extend_from_slice(name);
        line
    }
}

fn set_attrs(file: &File, attrs: &Attrs) -> io::Result<()> {
    if let Some(size) = attrs.size {
        file.set_len(size)?;
    }
    if let Some((uid, gid)) = attrs.uid_gid {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
    }
    if let Some(mode) = attrs.permissions {
        file.set_permissions(Permissions::from_mode(mode & 0o7777))?;
    }
    if let Some(times) = attrs.atime_mtime {
        file.set_times(file_times(times))?;
    }
    Ok(())
}

fn file_times((atime, mtime): (u32, u32)) -> FileTimes {
    let at = |secs: u32| UNIX_EPOCH + Duration::from_secs(u64::from(secs));
    FileTimes::new()
        .set_accessed(at(atime))
        .set_modified(at(mtime))
}

fn io_status(error: io::Error) -> Response {
    match error.kind() {
        io::ErrorKind::NotFound => Response::status(StatusCode::NoSuchFile, "No such file"),
        io::ErrorKind::PermissionDenied => {
            Response::status(StatusCode::PermissionDenied, "Permission denied")
        }
        // EXDEV from openat2(RESOLVE_BENEATH): a component now leads outside the root.
        io::ErrorKind::CrossesDevices => {
            Response::status(StatusCode::PermissionDenied, "path leaves the root")
        }
        // OS error texts name no paths ("File exists (os error 17)").
        _ => Response::status(StatusCode::Failure, error.to_string()),
    }
}

fn errno_status(errno: rustix::io::Errno) -> Response {
    io_status(io::Error::from(errno))
}

fn path_status(error: SftpPathError) -> Response {
    match error {
        SftpPathError::Escapes => {
            Response::status(StatusCode::PermissionDenied, "path leaves the root")
        }
        SftpPathError::Bad(what) => Response::status(StatusCode::Failure, what),
        SftpPathError::Io(kind) => io_status(io::Error::from(kind)),
    }
}

/// `Mon DD HH:MM` within six months of now, `Mon DD  YYYY` otherwise (UTC).
fn ls_date(secs: i64, now: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let month = MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)];
    if (now - secs).abs() < 182 * 86_400 {
        format!(
            "{month} {day:>2} {:02}:{:02}",
            of_day / 3600,
            of_day % 3600 / 60
        )
    } else {
        format!("{month} {day:>2}  {year}")
    }
}

/// Howard Hinnant's days-to-civil: (year, month 1..=12, day 1..=31) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
