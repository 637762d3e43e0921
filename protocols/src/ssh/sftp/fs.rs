//! SFTP requests run against a root directory with blocking file I/O.
//!
//! Owns: [`RootFs`]: the open handles (a bounded table; a handle is 8 bytes, slot and
//! generation, so a closed handle's number is never taken for a newer one), each request of
//! [`Request`] turned into filesystem calls on paths confined by [`SftpRoot`], the
//! `--read-only` refusal, and the mapping of I/O errors to `SSH_FX_*` codes.
//! Contract: [`RootFs::execute`] answers every request (never panics on its contents);
//! error messages carry no server paths. Writes, creations, renames and removals are
//! refused with `SSH_FX_PERMISSION_DENIED` when read-only.
//! Does not: speak the wire protocol (see `server.rs`), or run without blocking: it is
//! meant for a process per session, as OpenSSH's `sftp-server` (`ringwork sftp-server`).
//! Tests: `fs/tests.rs`.

use std::fs::{self, File, FileTimes, Metadata, OpenOptions, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::codec::{Attrs, Limits, NameEntry, Request, Response, StatusCode, open_flags};
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
    Dir { entries: fs::ReadDir, path: PathBuf },
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
            Request::Lstat { path } => {
                let path = self.root.entry(&path).map_err(path_status)?;
                let meta = fs::symlink_metadata(path).map_err(io_status)?;
                Ok(Response::Attrs(attrs_of(&meta)))
            }
            Request::Stat { path } => {
                let path = self.root.follow(&path).map_err(path_status)?;
                let meta = fs::metadata(path).map_err(io_status)?;
                Ok(Response::Attrs(attrs_of(&meta)))
            }
            Request::Fstat { handle } => {
                let meta = match self.open_of(&handle)? {
                    Open::File(file) => file.metadata(),
                    Open::Dir { path, .. } => fs::metadata(path),
                };
                Ok(Response::Attrs(attrs_of(&meta.map_err(io_status)?)))
            }
            Request::Setstat { path, attrs } => {
                let path = self.root.follow(&path).map_err(path_status)?;
                set_attrs_path(&path, &attrs).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Fsetstat { handle, attrs } => {
                match self.open_of(&handle)? {
                    Open::File(file) => set_attrs_file(file, &attrs),
                    Open::Dir { path, .. } => set_attrs_path(path, &attrs),
                }
                .map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Opendir { path } => {
                let path = self.root.follow(&path).map_err(path_status)?;
                let entries = fs::read_dir(&path).map_err(io_status)?;
                self.insert(Open::Dir { entries, path })
            }
            Request::Readdir { handle } => self.readdir(&handle),
            Request::Remove { path } => {
                let path = self.root.entry(&path).map_err(path_status)?;
                fs::remove_file(path).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Mkdir { path, attrs } => {
                let path = self.root.entry(&path).map_err(path_status)?;
                fs::DirBuilder::new()
                    .mode(attrs.permissions.map_or(0o777, |mode| mode & 0o7777))
                    .create(path)
                    .map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Rmdir { path } => {
                let path = self.root.entry(&path).map_err(path_status)?;
                fs::remove_dir(path).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Realpath { path } => self.realpath(&path),
            Request::Rename { from, to } => {
                let from = self.root.entry(&from).map_err(path_status)?;
                let to = self.root.entry(&to).map_err(path_status)?;
                // Draft-02 §6.5: renaming onto an existing file is an error (OpenSSH's
                // server agrees); `posix-rename@openssh.com` replaces it.
                if fs::symlink_metadata(&to).is_ok() {
                    return Err(Response::status(StatusCode::Failure, "target exists"));
                }
                fs::rename(from, to).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::PosixRename { from, to } => {
                let from = self.root.entry(&from).map_err(path_status)?;
                let to = self.root.entry(&to).map_err(path_status)?;
                fs::rename(from, to).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Hardlink { from, to } => {
                let from = self.root.entry(&from).map_err(path_status)?;
                let to = self.root.entry(&to).map_err(path_status)?;
                fs::hard_link(from, to).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Readlink { path } => {
                let path = self.root.entry(&path).map_err(path_status)?;
                let target = fs::read_link(path).map_err(io_status)?;
                // An absolute target inside the root is shown as the client sees it.
                let shown = self
                    .root
                    .to_virtual(&target)
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
                std::os::unix::fs::symlink(target, link).map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Fsync { handle } => {
                self.file(&handle)?.sync_all().map_err(io_status)?;
                Ok(Response::ok())
            }
            Request::Limits => Ok(Response::Limits(Limits {
                max_packet_len: DEFAULT_MAX_PACKET_LEN as u64,
                max_read_len: self.config.max_read_len as u64,
                max_write_len: DEFAULT_MAX_READ_LEN as u64,
                max_open_handles: self.config.max_handles as u64,
            })),
            Request::Statvfs { .. } | Request::Extended { .. } => Err(Response::status(
                StatusCode::OpUnsupported,
                "unsupported extension",
            )),
        }
    }

    fn open(&mut self, raw: &[u8], flags: u32, attrs: &Attrs) -> Result<Response, Response> {
        let create = flags & open_flags::CREAT != 0;
        let mut options = OpenOptions::new();
        let write = flags & (open_flags::WRITE | open_flags::APPEND) != 0;
        // Neither READ nor WRITE: OpenSSH opens for reading.
        options
            .read(flags & open_flags::READ != 0 || !write)
            .write(write)
            .append(flags & open_flags::APPEND != 0)
            .truncate(flags & open_flags::TRUNC != 0 && write);
        let segments = SftpRoot::normalize(raw).map_err(path_status)?;
        let exists = fs::symlink_metadata(self.root.join(&segments));
        let path = match exists {
            Ok(_) if create && flags & open_flags::EXCL != 0 => {
                return Err(Response::status(StatusCode::Failure, "file exists"));
            }
            // An existing name, or a symlink: followed, and refused if it leaves the root
            // (also a dangling symlink, which creating through would write outside).
            Ok(_) => self.root.follow(raw).map_err(path_status)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                // O_CREAT|O_EXCL never follows a symlink: one made meanwhile fails the open.
                options
                    .create_new(true)
                    .mode(attrs.permissions.map_or(0o666, |mode| mode & 0o7777));
                self.root.entry(raw).map_err(path_status)?
            }
            Err(e) => return Err(io_status(e)),
        };
        if self.free_slot().is_none() {
            return Err(Response::status(
                StatusCode::Failure,
                "too many open handles",
            ));
        }
        let file = options.open(&path).map_err(io_status)?;
        if file.metadata().map_err(io_status)?.is_dir() {
            return Err(Response::status(StatusCode::Failure, "is a directory"));
        }
        self.insert(Open::File(file))
    }

    fn readdir(&mut self, handle: &[u8]) -> Result<Response, Response> {
        let Open::Dir { entries, .. } = self.open_of_mut(handle)? else {
            return Err(Response::status(
                StatusCode::Failure,
                "not a directory handle",
            ));
        };
        let now = SystemTime::now();
        let mut names = Vec::new();
        for entry in entries.by_ref() {
            let Ok(entry) = entry else { continue };
            // DirEntry::metadata does not follow symlinks: an lstat, as OpenSSH's server.
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name();
            let name = name.as_bytes();
            names.push(NameEntry {
                filename: Bytes::copy_from_slice(name),
                longname: Bytes::from(longname(name, &meta, now)),
                attrs: attrs_of(&meta),
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
        let shown = match fs::canonicalize(self.root.join(&segments)) {
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

    fn free_slot(&self) -> Option<usize> {
        match self.slots.iter().position(|s| s.open.is_none()) {
            Some(slot) => Some(slot),
            None if self.slots.len() < self.config.max_handles => Some(self.slots.len()),
            None => None,
        }
    }

    fn insert(&mut self, open: Open) -> Result<Response, Response> {
        let Some(index) = self.free_slot() else {
            return Err(Response::status(
                StatusCode::Failure,
                "too many open handles",
            ));
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

fn name_reply(path: Bytes) -> Response {
    Response::Name(vec![NameEntry {
        filename: path.clone(),
        longname: path,
        attrs: Attrs::default(),
    }])
}

/// The attributes of `meta` as SFTP sends them (times clamped to 32 bits).
#[must_use]
pub fn attrs_of(meta: &Metadata) -> Attrs {
    let clamp = |t: i64| u32::try_from(t.max(0)).unwrap_or(u32::MAX);
    Attrs {
        size: Some(meta.size()),
        uid_gid: Some((meta.uid(), meta.gid())),
        permissions: Some(meta.mode()),
        atime_mtime: Some((clamp(meta.atime()), clamp(meta.mtime()))),
        extended: Vec::new(),
    }
}

fn set_attrs_path(path: &Path, attrs: &Attrs) -> io::Result<()> {
    if let Some(size) = attrs.size {
        OpenOptions::new().write(true).open(path)?.set_len(size)?;
    }
    if let Some((uid, gid)) = attrs.uid_gid {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    if let Some(mode) = attrs.permissions {
        fs::set_permissions(path, Permissions::from_mode(mode & 0o7777))?;
    }
    if let Some(times) = attrs.atime_mtime {
        File::open(path)?.set_times(file_times(times))?;
    }
    Ok(())
}

fn set_attrs_file(file: &File, attrs: &Attrs) -> io::Result<()> {
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
        // OS error texts name no paths ("File exists (os error 17)").
        _ => Response::status(StatusCode::Failure, error.to_string()),
    }
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

/// An `ls -l` line, as OpenSSH's `sftp-server` writes for `READDIR` (numeric owners).
fn longname(name: &[u8], meta: &Metadata, now: SystemTime) -> Vec<u8> {
    let mode = meta.mode();
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
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        perms.push(match (mode & special != 0, exec) {
            (true, true) => special_char,
            (true, false) => special_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    let mtime = meta.mtime();
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let date = ls_date(mtime, now_secs);
    let mut line = format!(
        "{perms} {:>3} {:<8} {:<8} {:>8} {date} ",
        meta.nlink(),
        meta.uid(),
        meta.gid(),
        meta.size()
    )
    .into_bytes();
    line.extend_from_slice(name);
    line
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
