//! SFTP v3 packets: framing, request decoding, reply encoding (sans-IO).
//!
//! Owns: [`Request`] and [`Response`], [`Attrs`], [`decode_packet`] (one length-prefixed
//! packet from the front of a buffer) and [`encode_response`] / [`encode_request`].
//! Contract: a packet is `uint32 length, byte type, payload`; a length over the caller's
//! limit is [`CodecError::TooLong`] before any of it is buffered, a truncated or
//! inconsistent payload is [`CodecError::Malformed`] (with the request id when one was read,
//! so the server can answer `SSH_FX_BAD_MESSAGE`). Never panics on input.
//! Does not: touch files or paths (see `fs.rs`), keep state between packets (see
//! `server.rs`).
//! Spec: draft-ietf-secsh-filexfer-02 (protocol version 3) and OpenSSH's `PROTOCOL` file
//! for the `@openssh.com` extensions. Tests: `tests.rs`; fuzz target `fuzz/sftp_server`.

use bytes::Bytes;

/// `SSH_FXP_*` packet types (draft-ietf-secsh-filexfer-02 §3).
pub mod packet_type {
    #![allow(missing_docs)]
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// `SSH_FXF_*` open flags (§6.3).
pub mod open_flags {
    #![allow(missing_docs)]
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

/// `SSH_FILEXFER_ATTR_*` flags of an [`Attrs`] (§5).
pub mod attr_flags {
    #![allow(missing_docs)]
    pub const SIZE: u32 = 0x01;
    pub const UIDGID: u32 = 0x02;
    pub const PERMISSIONS: u32 = 0x04;
    pub const ACMODTIME: u32 = 0x08;
    pub const EXTENDED: u32 = 0x8000_0000;
}

/// The protocol version this server speaks (and answers to any `SSH_FXP_INIT`).
pub const VERSION: u32 = 3;

/// `SSH_FX_*` status codes (§7).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum StatusCode {
    /// `SSH_FX_OK`.
    Ok = 0,
    /// `SSH_FX_EOF`: end of file, or no more directory entries.
    Eof = 1,
    /// `SSH_FX_NO_SUCH_FILE`.
    NoSuchFile = 2,
    /// `SSH_FX_PERMISSION_DENIED`: also every refused escape and every write under
    /// `--read-only`.
    PermissionDenied = 3,
    /// `SSH_FX_FAILURE`: any other error.
    Failure = 4,
    /// `SSH_FX_BAD_MESSAGE`: a malformed packet.
    BadMessage = 5,
    /// `SSH_FX_OP_UNSUPPORTED`: an unknown packet type or extension.
    OpUnsupported = 8,
}

/// File attributes (§5); `None` fields are absent on the wire.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Attrs {
    /// File size in bytes.
    pub size: Option<u64>,
    /// Owner and group ids.
    pub uid_gid: Option<(u32, u32)>,
    /// `st_mode`: file type and permission bits.
    pub permissions: Option<u32>,
    /// Access and modification times, seconds since the epoch.
    pub atime_mtime: Option<(u32, u32)>,
    /// Extended attributes (type, data), passed through and ignored by this server.
    pub extended: Vec<(Bytes, Bytes)>,
}

/// One SFTP request (a packet with an id; `SSH_FXP_INIT` is handled by the machine).
///
/// Paths and handles are raw bytes, as on the wire: a path's meaning is settled by the
/// file system side (`fs.rs`).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// `SSH_FXP_OPEN`.
    Open {
        /// The file.
        path: Bytes,
        /// `SSH_FXF_*` flags ([`open_flags`]).
        flags: u32,
        /// Attributes for a created file (its permissions).
        attrs: Attrs,
    },
    /// `SSH_FXP_CLOSE`.
    Close {
        /// A handle from `Open` or `Opendir`.
        handle: Bytes,
    },
    /// `SSH_FXP_READ`.
    Read {
        /// A file handle.
        handle: Bytes,
        /// Where to start.
        offset: u64,
        /// At most this many bytes.
        len: u32,
    },
    /// `SSH_FXP_WRITE`.
    Write {
        /// A file handle.
        handle: Bytes,
        /// Where to write.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// `SSH_FXP_LSTAT`: attributes of a path, not following a final symlink.
    Lstat {
        /// The path.
        path: Bytes,
    },
    /// `SSH_FXP_FSTAT`.
    Fstat {
        /// An open handle.
        handle: Bytes,
    },
    /// `SSH_FXP_SETSTAT`.
    Setstat {
        /// The path.
        path: Bytes,
        /// What to change.
        attrs: Attrs,
    },
    /// `SSH_FXP_FSETSTAT`.
    Fsetstat {
        /// An open handle.
        handle: Bytes,
        /// What to change.
        attrs: Attrs,
    },
    /// `SSH_FXP_OPENDIR`.
    Opendir {
        /// The directory.
        path: Bytes,
    },
    /// `SSH_FXP_READDIR`.
    Readdir {
        /// A directory handle.
        handle: Bytes,
    },
    /// `SSH_FXP_REMOVE`.
    Remove {
        /// The file.
        path: Bytes,
    },
    /// `SSH_FXP_MKDIR`.
    Mkdir {
        /// The new directory.
        path: Bytes,
        /// Its attributes (permissions).
        attrs: Attrs,
    },
    /// `SSH_FXP_RMDIR`.
    Rmdir {
        /// The directory.
        path: Bytes,
    },
    /// `SSH_FXP_REALPATH`.
    Realpath {
        /// The path to canonicalize.
        path: Bytes,
    },
    /// `SSH_FXP_STAT`: attributes, following symlinks.
    Stat {
        /// The path.
        path: Bytes,
    },
    /// `SSH_FXP_RENAME`: fails if `to` exists.
    Rename {
        /// The old path.
        from: Bytes,
        /// The new path.
        to: Bytes,
    },
    /// `SSH_FXP_READLINK`.
    Readlink {
        /// The symlink.
        path: Bytes,
    },
    /// `SSH_FXP_SYMLINK`. On the wire OpenSSH sends the target first, then the link path
    /// (the reverse of the draft); this server follows OpenSSH, as every client does.
    Symlink {
        /// The new symlink.
        link: Bytes,
        /// What it points to.
        target: Bytes,
    },
    /// `posix-rename@openssh.com`: rename, replacing `to`.
    PosixRename {
        /// The old path.
        from: Bytes,
        /// The new path.
        to: Bytes,
    },
    /// `hardlink@openssh.com`.
    Hardlink {
        /// The existing file.
        from: Bytes,
        /// The new link.
        to: Bytes,
    },
    /// `fsync@openssh.com`.
    Fsync {
        /// A file handle.
        handle: Bytes,
    },
    /// `limits@openssh.com`: the server's packet, read, write and handle limits.
    Limits,
    /// `copy-data`: copies bytes between two open files on the server (the client's `cp`).
    CopyData {
        /// A handle open for reading.
        from: Bytes,
        /// Where to start reading.
        from_offset: u64,
        /// How many bytes; 0: up to the end of the file.
        len: u64,
        /// A handle open for writing.
        to: Bytes,
        /// Where to start writing.
        to_offset: u64,
    },
    /// `expand-path@openssh.com`: `REALPATH` that also expands a leading `~` (the home
    /// directory, which is the root here).
    ExpandPath {
        /// The path.
        path: Bytes,
    },
    /// `statvfs@openssh.com`: the figures of the filesystem holding a path.
    Statvfs {
        /// The path.
        path: Bytes,
    },
    /// Any other `SSH_FXP_EXTENDED` request: answered `SSH_FX_OP_UNSUPPORTED`.
    Extended {
        /// The extension's name.
        name: Bytes,
    },
}

impl Request {
    /// Whether this request changes the file system (refused under `--read-only`). An
    /// `Open` counts when its flags ask for writing, creating, truncating or appending.
    #[must_use]
    pub fn writes(&self) -> bool {
        match self {
            Self::Open { flags, .. } => {
                flags
                    & (open_flags::WRITE
                        | open_flags::APPEND
                        | open_flags::CREAT
                        | open_flags::TRUNC
                        | open_flags::EXCL)
                    != 0
            }
            Self::Write { .. }
            | Self::Setstat { .. }
            | Self::Fsetstat { .. }
            | Self::Remove { .. }
            | Self::Mkdir { .. }
            | Self::Rmdir { .. }
            | Self::Rename { .. }
            | Self::Symlink { .. }
            | Self::PosixRename { .. }
            | Self::Hardlink { .. }
            | Self::CopyData { .. } => true,
            _ => false,
        }
    }
}

/// One directory entry of an `SSH_FXP_NAME` reply.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct NameEntry {
    /// The file name (or a whole path, for `REALPATH`).
    pub filename: Bytes,
    /// An `ls -l` style line for display.
    pub longname: Bytes,
    /// The entry's attributes.
    pub attrs: Attrs,
}

/// The server's limits, as `limits@openssh.com` reports them.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Limits {
    /// The longest packet taken, length field excluded.
    pub max_packet_len: u64,
    /// The most bytes one `READ` returns.
    pub max_read_len: u64,
    /// The most bytes one `WRITE` should carry.
    pub max_write_len: u64,
    /// The most handles open at once.
    pub max_open_handles: u64,
}

/// A filesystem's figures, as `statvfs@openssh.com` reports them (OpenSSH's `PROTOCOL`
/// §4.4; `statvfs(3)` fields).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct StatVfs {
    /// `f_bsize`: file system block size.
    pub block_size: u64,
    /// `f_frsize`: fundamental block size.
    pub fragment_size: u64,
    /// `f_blocks`: size in `f_frsize` units.
    pub blocks: u64,
    /// `f_bfree`: free blocks.
    pub blocks_free: u64,
    /// `f_bavail`: free blocks for unprivileged users.
    pub blocks_available: u64,
    /// `f_files`: inodes.
    pub files: u64,
    /// `f_ffree`: free inodes.
    pub files_free: u64,
    /// `f_favail`: free inodes for unprivileged users.
    pub files_available: u64,
    /// `f_fsid`: file system id.
    pub fs_id: u64,
    /// `f_flag`: 1 read-only, 2 nosuid.
    pub flags: u64,
    /// `f_namemax`: longest file name.
    pub max_name_len: u64,
}

/// A reply to one [`Request`].
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Response {
    /// `SSH_FXP_STATUS`.
    Status {
        /// The code.
        code: StatusCode,
        /// A human-readable message (no server paths in it).
        message: String,
    },
    /// `SSH_FXP_HANDLE`.
    Handle(Bytes),
    /// `SSH_FXP_DATA`.
    Data(Bytes),
    /// `SSH_FXP_NAME`.
    Name(Vec<NameEntry>),
    /// `SSH_FXP_ATTRS`.
    Attrs(Attrs),
    /// `SSH_FXP_EXTENDED_REPLY` to `limits@openssh.com`.
    Limits(Limits),
    /// `SSH_FXP_EXTENDED_REPLY` to `statvfs@openssh.com`.
    StatVfs(StatVfs),
}

impl Response {
    /// A status reply.
    #[must_use]
    pub fn status(code: StatusCode, message: impl Into<String>) -> Self {
        Self::Status {
            code,
            message: message.into(),
        }
    }

    /// `SSH_FX_OK`.
    #[must_use]
    pub fn ok() -> Self {
        Self::status(StatusCode::Ok, "Success")
    }
}

/// A packet decoded from the front of a buffer.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Packet {
    /// `SSH_FXP_INIT` with the client's version (its extension pairs are ignored).
    Init {
        /// The client's protocol version.
        version: u32,
    },
    /// A request with its id.
    Request {
        /// The id the reply must carry.
        id: u32,
        /// The request.
        request: Request,
    },
    /// A packet type this server does not know (or a reply type sent to it), with its id:
    /// answered `SSH_FX_OP_UNSUPPORTED`.
    Unsupported {
        /// The id, if the packet was long enough to hold one.
        id: Option<u32>,
        /// The packet type.
        packet_type: u8,
    },
}

/// Why a packet could not be decoded. Display texts are unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The length field is over the limit (or zero): the connection must close.
    #[error("packet length {len} is over the limit of {limit} bytes")]
    TooLong {
        /// The length field.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// The payload is truncated or inconsistent.
    #[error("malformed packet of type {packet_type}: {what}")]
    Malformed {
        /// The packet type.
        packet_type: u8,
        /// The request id, if one was read: the server answers `SSH_FX_BAD_MESSAGE`.
        id: Option<u32>,
        /// What is wrong.
        what: &'static str,
        /// The packet's whole length (length field included), so the caller can skip it.
        consumed: usize,
    },
}

/// Decodes one packet from the front of `buf`: `Ok(None)` until it is complete.
///
/// Returns the packet and the bytes it took (length field included).
///
/// # Errors
/// [`CodecError::TooLong`] as soon as the length field is read and exceeds `max_len` (or is
/// zero); [`CodecError::Malformed`] for a complete packet whose payload does not parse.
pub fn decode_packet(buf: &[u8], max_len: usize) -> Result<Option<(Packet, usize)>, CodecError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let len_usize = len as usize;
    if len == 0 || len_usize > max_len {
        return Err(CodecError::TooLong {
            len: u64::from(len),
            limit: max_len,
        });
    }
    let Some(body) = buf.get(4..4 + len_usize) else {
        return Ok(None);
    };
    let consumed = 4 + len_usize;
    let packet_type = body[0];
    let mut reader = Reader::new(&body[1..]);
    let malformed = |id: Option<u32>, what: &'static str| CodecError::Malformed {
        packet_type,
        id,
        what,
        consumed,
    };
    if packet_type == packet_type::INIT {
        let version = reader.u32().ok_or_else(|| malformed(None, "no version"))?;
        // Extension pairs of a client's INIT are not used by this server.
        return Ok(Some((Packet::Init { version }, consumed)));
    }
    let Some(id) = reader.u32() else {
        return Ok(Some((
            Packet::Unsupported {
                id: None,
                packet_type,
            },
            consumed,
        )));
    };
    match decode_request(packet_type, &mut reader) {
        Ok(Some(request)) => {
            if !reader.is_empty() && !matches!(request, Request::Extended { .. }) {
                return Err(malformed(Some(id), "trailing bytes"));
            }
            Ok(Some((Packet::Request { id, request }, consumed)))
        }
        Ok(None) => Ok(Some((
            Packet::Unsupported {
                id: Some(id),
                packet_type,
            },
            consumed,
        ))),
        Err(what) => Err(malformed(Some(id), what)),
    }
}

fn decode_request(packet_type: u8, r: &mut Reader<'_>) -> Result<Option<Request>, &'static str> {
    use self::packet_type as t;
    let request = match packet_type {
        t::OPEN => Request::Open {
            path: r.string()?,
            flags: r.u32().ok_or("no open flags")?,
            attrs: r.attrs()?,
        },
        t::CLOSE => Request::Close {
            handle: r.string()?,
        },
        t::READ => Request::Read {
            handle: r.string()?,
            offset: r.u64().ok_or("no offset")?,
            len: r.u32().ok_or("no length")?,
        },
        t::WRITE => Request::Write {
            handle: r.string()?,
            offset: r.u64().ok_or("no offset")?,
            data: r.string()?,
        },
        t::LSTAT => Request::Lstat { path: r.string()? },
        t::FSTAT => Request::Fstat {
            handle: r.string()?,
        },
        t::SETSTAT => Request::Setstat {
            path: r.string()?,
            attrs: r.attrs()?,
        },
        t::FSETSTAT => Request::Fsetstat {
            handle: r.string()?,
            attrs: r.attrs()?,
        },
        t::OPENDIR => Request::Opendir { path: r.string()? },
        t::READDIR => Request::Readdir {
            handle: r.string()?,
        },
        t::REMOVE => Request::Remove { path: r.string()? },
        t::MKDIR => Request::Mkdir {
            path: r.string()?,
            attrs: r.attrs()?,
        },
        t::RMDIR => Request::Rmdir { path: r.string()? },
        t::REALPATH => {
            let path = r.string()?;
            // Version 6's optional control byte and compose paths are not v3: ignored.
            r.skip_rest();
            Request::Realpath { path }
        }
        t::STAT => Request::Stat { path: r.string()? },
        t::RENAME => Request::Rename {
            from: r.string()?,
            to: r.string()?,
        },
        t::READLINK => Request::Readlink { path: r.string()? },
        t::SYMLINK => {
            // OpenSSH's order: target first, then the link (see `Request::Symlink`).
            let target = r.string()?;
            let link = r.string()?;
            Request::Symlink { link, target }
        }
        t::EXTENDED => decode_extended(r)?,
        _ => return Ok(None),
    };
    Ok(Some(request))
}

fn decode_extended(r: &mut Reader<'_>) -> Result<Request, &'static str> {
    let name = r.string()?;
    let request = match &name[..] {
        b"posix-rename@openssh.com" => Request::PosixRename {
            from: r.string()?,
            to: r.string()?,
        },
        b"hardlink@openssh.com" => Request::Hardlink {
            from: r.string()?,
            to: r.string()?,
        },
        b"fsync@openssh.com" => Request::Fsync {
            handle: r.string()?,
        },
        b"limits@openssh.com" => Request::Limits,
        b"copy-data" => Request::CopyData {
            from: r.string()?,
            from_offset: r.u64().ok_or("no read offset")?,
            len: r.u64().ok_or("no length")?,
            to: r.string()?,
            to_offset: r.u64().ok_or("no write offset")?,
        },
        b"statvfs@openssh.com" => Request::Statvfs { path: r.string()? },
        b"expand-path@openssh.com" => Request::ExpandPath { path: r.string()? },
        _ => {
            r.skip_rest();
            Request::Extended { name }
        }
    };
    Ok(request)
}

/// Appends the `SSH_FXP_VERSION` packet offering `extensions` (name, data) to `out`.
pub fn encode_version(extensions: &[(&str, &str)], out: &mut Vec<u8>) {
    let mut w = Writer::start(out, packet_type::VERSION);
    w.u32(VERSION);
    for (name, data) in extensions {
        w.string(name.as_bytes());
        w.string(data.as_bytes());
    }
    w.finish();
}

/// Appends the reply packet for request `id` to `out`.
pub fn encode_response(id: u32, response: &Response, out: &mut Vec<u8>) {
    let packet_type = match response {
        Response::Status { .. } => packet_type::STATUS,
        Response::Handle(_) => packet_type::HANDLE,
        Response::Data(_) => packet_type::DATA,
        Response::Name(_) => packet_type::NAME,
        Response::Attrs(_) => packet_type::ATTRS,
        Response::Limits(_) | Response::StatVfs(_) => packet_type::EXTENDED_REPLY,
    };
    let mut w = Writer::start(out, packet_type);
    w.u32(id);
    match response {
        Response::Status { code, message } => {
            w.u32(*code as u32);
            w.string(message.as_bytes());
            w.string(b"");
        }
        Response::Handle(bytes) | Response::Data(bytes) => w.string(bytes),
        Response::Name(entries) => {
            w.u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
            for entry in entries {
                w.string(&entry.filename);
                w.string(&entry.longname);
                w.attrs(&entry.attrs);
            }
        }
        Response::Attrs(attrs) => w.attrs(attrs),
        Response::Limits(limits) => {
            w.u64(limits.max_packet_len);
            w.u64(limits.max_read_len);
            w.u64(limits.max_write_len);
            w.u64(limits.max_open_handles);
        }
        Response::StatVfs(vfs) => {
            for value in [
                vfs.block_size,
                vfs.fragment_size,
                vfs.blocks,
                vfs.blocks_free,
                vfs.blocks_available,
                vfs.files,
                vfs.files_free,
                vfs.files_available,
                vfs.fs_id,
                vfs.flags,
                vfs.max_name_len,
            ] {
                w.u64(value);
            }
        }
    }
    w.finish();
}

/// Appends request `id` as a client would send it (tests, fuzzing, a future client).
///
/// `Request::Extended` is encoded with its name only; `Limits` and the other
/// `@openssh.com` requests with their names and fields.
pub fn encode_request(id: u32, request: &Request, out: &mut Vec<u8>) {
    use self::packet_type as t;
    let (kind, extension): (u8, Option<&[u8]>) = match request {
        Request::Open { .. } => (t::OPEN, None),
        Request::Close { .. } => (t::CLOSE, None),
        Request::Read { .. } => (t::READ, None),
        Request::Write { .. } => (t::WRITE, None),
        Request::Lstat { .. } => (t::LSTAT, None),
        Request::Fstat { .. } => (t::FSTAT, None),
        Request::Setstat { .. } => (t::SETSTAT, None),
        Request::Fsetstat { .. } => (t::FSETSTAT, None),
        Request::Opendir { .. } => (t::OPENDIR, None),
        Request::Readdir { .. } => (t::READDIR, None),
        Request::Remove { .. } => (t::REMOVE, None),
        Request::Mkdir { .. } => (t::MKDIR, None),
        Request::Rmdir { .. } => (t::RMDIR, None),
        Request::Realpath { .. } => (t::REALPATH, None),
        Request::Stat { .. } => (t::STAT, None),
        Request::Rename { .. } => (t::RENAME, None),
        Request::Readlink { .. } => (t::READLINK, None),
        Request::Symlink { .. } => (t::SYMLINK, None),
        Request::PosixRename { .. } => (t::EXTENDED, Some(b"posix-rename@openssh.com")),
        Request::Hardlink { .. } => (t::EXTENDED, Some(b"hardlink@openssh.com")),
        Request::Fsync { .. } => (t::EXTENDED, Some(b"fsync@openssh.com")),
        Request::Limits => (t::EXTENDED, Some(b"limits@openssh.com")),
        Request::CopyData { .. } => (t::EXTENDED, Some(b"copy-data")),
        Request::Statvfs { .. } => (t::EXTENDED, Some(b"statvfs@openssh.com")),
        Request::ExpandPath { .. } => (t::EXTENDED, Some(b"expand-path@openssh.com")),
        Request::Extended { name } => (t::EXTENDED, Some(&name[..])),
    };
    let mut w = Writer::start(out, kind);
    w.u32(id);
    if let Some(name) = extension {
        w.string(name);
    }
    match request {
        Request::Open { path, flags, attrs } => {
            w.string(path);
            w.u32(*flags);
            w.attrs(attrs);
        }
        Request::Read {
            handle,
            offset,
            len,
        } => {
            w.string(handle);
            w.u64(*offset);
            w.u32(*len);
        }
        Request::Write {
            handle,
            offset,
            data,
        } => {
            w.string(handle);
            w.u64(*offset);
            w.string(data);
        }
        Request::Setstat { path: s, attrs }
        | Request::Fsetstat { handle: s, attrs }
        | Request::Mkdir { path: s, attrs } => {
            w.string(s);
            w.attrs(attrs);
        }
        Request::Close { handle: s }
        | Request::Fstat { handle: s }
        | Request::Readdir { handle: s }
        | Request::Fsync { handle: s }
        | Request::Lstat { path: s }
        | Request::Opendir { path: s }
        | Request::Remove { path: s }
        | Request::Rmdir { path: s }
        | Request::Realpath { path: s }
        | Request::Stat { path: s }
        | Request::Readlink { path: s }
        | Request::Statvfs { path: s }
        | Request::ExpandPath { path: s } => w.string(s),
        Request::Rename { from, to }
        | Request::PosixRename { from, to }
        | Request::Hardlink { from, to } => {
            w.string(from);
            w.string(to);
        }
        Request::Symlink { link, target } => {
            w.string(target);
            w.string(link);
        }
        Request::CopyData {
            from,
            from_offset,
            len,
            to,
            to_offset,
        } => {
            w.string(from);
            w.u64(*from_offset);
            w.u64(*len);
            w.string(to);
            w.u64(*to_offset);
        }
        Request::Limits | Request::Extended { .. } => {}
    }
    w.finish();
}

/// Appends the `SSH_FXP_INIT` packet a client sends first.
pub fn encode_init(version: u32, out: &mut Vec<u8>) {
    let mut w = Writer::start(out, packet_type::INIT);
    w.u32(version);
    w.finish();
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn skip_rest(&mut self) {
        self.buf = &[];
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Some((u64::from(hi) << 32) | u64::from(lo))
    }

    fn string(&mut self) -> Result<Bytes, &'static str> {
        let len = self.u32().ok_or("truncated string length")? as usize;
        let bytes = self.take(len).ok_or("string longer than its packet")?;
        Ok(Bytes::copy_from_slice(bytes))
    }

    fn attrs(&mut self) -> Result<Attrs, &'static str> {
        let flags = self.u32().ok_or("no attribute flags")?;
        let mut attrs = Attrs::default();
        if flags & attr_flags::SIZE != 0 {
            attrs.size = Some(self.u64().ok_or("truncated size")?);
        }
        if flags & attr_flags::UIDGID != 0 {
            let uid = self.u32().ok_or("truncated uid")?;
            let gid = self.u32().ok_or("truncated gid")?;
            attrs.uid_gid = Some((uid, gid));
        }
        if flags & attr_flags::PERMISSIONS != 0 {
            attrs.permissions = Some(self.u32().ok_or("truncated permissions")?);
        }
        if flags & attr_flags::ACMODTIME != 0 {
            let atime = self.u32().ok_or("truncated atime")?;
            let mtime = self.u32().ok_or("truncated mtime")?;
            attrs.atime_mtime = Some((atime, mtime));
        }
        if flags & attr_flags::EXTENDED != 0 {
            let count = self.u32().ok_or("truncated extended count")?;
            // Each pair takes at least 8 bytes, so the packet bounds the count (and the
            // allocation) before any is read.
            if count as usize > self.buf.len() / 8 {
                return Err("extended count larger than its packet");
            }
            for _ in 0..count {
                let kind = self.string()?;
                let data = self.string()?;
                attrs.extended.push((kind, data));
            }
        }
        Ok(attrs)
    }
}

/// Writes one packet: the length is patched in by `finish`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Writer<'a> {
    fn start(out: &'a mut Vec<u8>, packet_type: u8) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0, packet_type]);
        Self { out, start }
    }

    fn u32(&mut self, value: u32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn string(&mut self, bytes: &[u8]) {
        // Strings are bounded by the packet limits of their sources (a read of at most
        // `max_read_len`, names of at most PATH_MAX), far below u32::MAX.
        self.u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.out.extend_from_slice(bytes);
    }

    fn attrs(&mut self, attrs: &Attrs) {
        let mut flags = 0;
        if attrs.size.is_some() {
            flags |= attr_flags::SIZE;
        }
        if attrs.uid_gid.is_some() {
            flags |= attr_flags::UIDGID;
        }
        if attrs.permissions.is_some() {
            flags |= attr_flags::PERMISSIONS;
        }
        if attrs.atime_mtime.is_some() {
            flags |= attr_flags::ACMODTIME;
        }
        if !attrs.extended.is_empty() {
            flags |= attr_flags::EXTENDED;
        }
        self.u32(flags);
        if let Some(size) = attrs.size {
            self.u64(size);
        }
        if let Some((uid, gid)) = attrs.uid_gid {
            self.u32(uid);
            self.u32(gid);
        }
        if let Some(permissions) = attrs.permissions {
            self.u32(permissions);
        }
        if let Some((atime, mtime)) = attrs.atime_mtime {
            self.u32(atime);
            self.u32(mtime);
        }
        if !attrs.extended.is_empty() {
            self.u32(u32::try_from(attrs.extended.len()).unwrap_or(u32::MAX));
            for (kind, data) in &attrs.extended {
                self.string(kind);
                self.string(data);
            }
        }
    }

    fn finish(self) {
        let len = self.out.len() - self.start - 4;
        // Packets built here are bounded far below 4 GiB (see `string`).
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.out[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests;
