//! [`Files`]: file I/O that never blocks a core (open, stat, positioned reads, close).
//!
//! Owns: the file API a core's futures await ([`LocalHandle::files`]): [`Files::open`],
//! [`File::open_beneath`], [`File::stat`], [`Files::metadata`], [`File::read_at`] into a
//! buffer the operation owns, [`File::close`], and [`Files::run`] for other blocking
//! filesystem work (a directory listing, a path canonicalized under a root).
//! Contract: under io_uring (when the driver reports
//! [`Capabilities::file_ops`](ringwork_platform::Capabilities::file_ops)), opens, `stat`,
//! reads and closes are operations in the core's ring (IORING_OP_OPENAT2, STATX, READ,
//! CLOSE: no thread, see `ring.rs`); everything else (`metadata`, `run`), and everything
//! under poll, runs on the core's [`ThreadPool`] (the runtime's, shared by every core), its
//! value delivered on the calling core. Either way a slow disk (or a FIFO that never fills)
//! stalls only the futures that wait for it, never the core's other connections. Buffers
//! are owned: [`File::read_at`] takes the buffer by value and gives it back filled, so
//! dropping the future is safe at any point — a read already submitted keeps its buffer
//! (and the file) with the driver until its completion, or on its worker until it returns,
//! and they are dropped there. Files are opened `O_RDONLY | O_CLOEXEC`.
//! Does not: write files; confine [`File::open_beneath`] without the ring (it answers
//! `Unsupported` there); bound an operation's time (a read of a hung disk holds a worker,
//! or an io_uring worker, until it returns; a full pool queue fails fast with an error
//! instead of growing).
//!
//! [`LocalHandle::files`]: crate::LocalHandle::files

use std::fmt;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;

pub use ringwork_platform::FileStat;
use ringwork_platform::{FileDone, FileRequest};

use crate::local::LocalHandle;
use crate::threads::{ThreadPool, ThreadPoolError};

pub(crate) mod ring;

use self::ring::RingOp;

/// A test hook run on the worker before each read of a [`File`], with the file's path and
/// the read's offset: a test blocks it (on a gate it opens later) to make a file slow.
#[doc(hidden)]
pub type ReadHook = Arc<dyn Fn(&Path, u64) + Send + Sync>;

/// File operations as futures awaited on a core (see the module docs). Cheap to clone.
///
/// # Examples
/// ```no_run
/// use ringwork::{DriverConfig, Reactor, ReactorConfig};
///
/// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
/// let files = reactor.handle().files();
/// reactor.spawn_local(async move {
///     let file = files.open("/etc/hostname").await?;
///     let head = file.read_at(bytes::BytesMut::with_capacity(64), 0).await?;
///     println!("{} bytes, read off the core", head.len());
///     file.close().await
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Files {
    pool: ThreadPool,
    hook: Option<ReadHook>,
    /// The core whose ring runs opens, reads and closes (`None`: the pool does).
    ring: Option<LocalHandle>,
}

impl Files {
    /// File operations on `pool`'s threads.
    #[must_use]
    pub fn new(pool: ThreadPool) -> Self {
        Self {
            pool,
            hook: None,
            ring: None,
        }
    }

    /// Opens, reads and closes in `core`'s io_uring ring (its driver must have file
    /// operations: [`LocalHandle::files`] checks).
    pub(crate) fn with_ring(mut self, core: LocalHandle) -> Self {
        self.ring = Some(core);
        self
    }

    /// Whether opens, reads and closes run in the core's io_uring ring (else on the pool).
    #[must_use]
    pub fn in_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Runs `hook` before each read of files opened through the returned value (tests only).
    #[doc(hidden)]
    #[must_use]
    pub fn with_read_hook(mut self, hook: Option<ReadHook>) -> Self {
        self.hook = hook;
        self
    }

    /// Opens `path` for reading (`O_RDONLY | O_CLOEXEC`).
    ///
    /// # Errors
    /// The OS error of `open(2)`, or the pool's refusal ([`io::ErrorKind::Other`] wrapping a
    /// [`ThreadPoolError`]: its queue is full).
    ///
    /// # Cancellation
    /// Dropping the future before the open ran skips it; an open that ran has its file
    /// closed on the worker.
    pub async fn open(&self, path: impl Into<PathBuf>) -> io::Result<File> {
        let path: Arc<Path> = Arc::from(path.into());
        if let Some(core) = &self.ring {
            use std::os::unix::ffi::OsStrExt;
            let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte")
            })?;
            let request = FileRequest::Open {
                dir: None,
                path: c_path,
                beneath: false,
                path_only: false,
            };
            return match RingOp::new(core.clone(), request).await {
                Ok(FileDone::Opened(file)) => Ok(self.adopt_shared(file, path)),
                Ok(other) => Err(unexpected(&other)),
                Err(error) => Err(io::Error::new(
                    error.kind(),
                    format!("opening {}: {}", path.display(), error.source),
                )),
            };
        }
        let opened = {
            let path = Arc::clone(&path);
            self.run(move || std::fs::File::open(&path)).await?
        };
        Ok(self.adopt_shared(opened, path))
    }

    /// A [`File`] for `file`, opened by a job of [`Files::run`] (for example together with
    /// the checks that chose it, in one trip to the pool). No I/O.
    #[must_use]
    pub fn adopt(&self, file: std::fs::File, path: impl Into<PathBuf>) -> File {
        self.adopt_shared(file, Arc::from(path.into()))
    }

    fn adopt_shared(&self, file: std::fs::File, path: Arc<Path>) -> File {
        File {
            file: Some(Arc::new(file)),
            path,
            pool: self.pool.clone(),
            hook: self.hook.clone(),
            ring: self.ring.clone(),
        }
    }

    /// The metadata of `path`, symlinks followed (`statx(2)`).
    ///
    /// # Errors
    /// As [`Files::open`], for `stat`.
    pub async fn metadata(&self, path: impl Into<PathBuf>) -> io::Result<Metadata> {
        let path = path.into();
        self.run(move || std::fs::metadata(path)).await
    }

    /// Runs other blocking filesystem work `f` on the pool (reading a directory,
    /// canonicalizing a path) and yields its result on this core.
    ///
    /// # Errors
    /// The error `f` returns, or the pool's refusal (see [`Files::open`]).
    ///
    /// # Cancellation
    /// Dropping the future before `f` started skips it; once started, `f` runs to its end.
    pub async fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let job = self.pool.spawn(f).map_err(pool_error)?;
        job.await.map_err(pool_error)?
    }
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files")
            .field("pool", &self.pool)
            .field("read_hook", &self.hook.is_some())
            .field("in_ring", &self.ring.is_some())
            .finish()
    }
}

/// The pool refused or lost a job: an I/O error for the caller, with the reason.
fn pool_error(error: ThreadPoolError) -> io::Error {
    io::Error::other(error)
}

/// A ring operation gave back what another kind gives (a bug).
fn unexpected(done: &FileDone) -> io::Error {
    io::Error::other(format!("unexpected file completion {done:?}"))
}

/// A file open for reading, from [`Files::open`].
///
/// Dropping it closes the file on the pool, without waiting (or here, when the pool's queue
/// is full; a read still running keeps the file open until it returns). [`File::close`]
/// closes it on the pool and waits. Close errors are not reported, as with
/// [`std::fs::File`].
pub struct File {
    // Shared with reads running on workers: the descriptor lives until the last returns.
    // INVARIANT: `Some` until `close` or `drop` takes it.
    file: Option<Arc<std::fs::File>>,
    path: Arc<Path>,
    pool: ThreadPool,
    hook: Option<ReadHook>,
    ring: Option<LocalHandle>,
}

impl File {
    /// The path it was opened with.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open descriptor, for the kernel to read from ([`crate::Context::send_file`]);
    /// `None` once closed, or with a test read hook (whose reads must pass through it).
    pub(crate) fn descriptor(&self) -> Option<Arc<std::fs::File>> {
        if self.hook.is_some() {
            return None;
        }
        self.file.as_ref().map(Arc::clone)
    }

    /// Reads at most `buf`'s spare capacity (`capacity - len`) from `offset`, appended to
    /// `buf`, and gives `buf` back: fewer bytes only at the end of the file (an empty
    /// append is the end). `pread(2)`, so reads at different offsets need no seeking.
    ///
    /// # Errors
    /// The OS error of the read (with the path), or the pool's refusal.
    ///
    /// # Cancellation
    /// Safe at any point: the buffer belongs to the operation until it returns, on its
    /// worker, which then drops it.
    pub async fn read_at(&self, buf: BytesMut, offset: u64) -> io::Result<BytesMut> {
        match &self.ring {
            Some(core) => self.read_in_ring(core, buf, offset).await,
            None => self.read_on_pool(buf, offset).await,
        }
    }

    /// [`File::read_at`] in the ring: READs until `buf` is full or the file ends.
    async fn read_in_ring(
        &self,
        core: &LocalHandle,
        mut buf: BytesMut,
        offset: u64,
    ) -> io::Result<BytesMut> {
        if let Some(hook) = &self.hook {
            // The test hook runs on a worker (it may block), then the read goes to the ring.
            let (hook, path) = (Arc::clone(hook), Arc::clone(&self.path));
            Files::new(self.pool.clone())
                .run(move || {
                    hook(&path, offset);
                    Ok(())
                })
                .await?;
        }
        let start = buf.len();
        while buf.len() < buf.capacity() {
            let before = buf.len();
            let request = FileRequest::Read {
                file: self.shared(),
                buf,
                offset: offset + (before - start) as u64,
            };
            buf = match RingOp::new(core.clone(), request).await {
                Ok(FileDone::Read(buf)) => buf,
                Ok(other) => return Err(unexpected(&other)),
                Err(error) => {
                    return Err(io::Error::new(
                        error.kind(),
                        format!(
                            "reading {} at {}: {}",
                            self.path.display(),
                            offset + (before - start) as u64,
                            error.source
                        ),
                    ));
                }
            };
            if buf.len() == before {
                break; // the end of the file
            }
        }
        Ok(buf)
    }

    /// [`File::read_at`] on a worker (`pread(2)` until `buf` is full or the file ends).
    async fn read_on_pool(&self, mut buf: BytesMut, offset: u64) -> io::Result<BytesMut> {
        let file = self.shared();
        let path = Arc::clone(&self.path);
        let hook = self.hook.clone();
        let files = Files::new(self.pool.clone());
        files
            .run(move || {
                if let Some(hook) = &hook {
                    hook(&path, offset);
                }
                // Read into the spare capacity as it is: no zeroing of bytes about to be
                // overwritten (a memset per byte served).
                let start = buf.len();
                while buf.len() < buf.capacity() {
                    let at = offset + (buf.len() - start) as u64;
                    match ringwork_platform::read_at_spare(&file, &mut buf, at) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            return Err(io::Error::new(
                                e.kind(),
                                format!("reading {} at {at}: {e}", path.display()),
                            ));
                        }
                    }
                }
                Ok(buf)
            })
            .await
    }

    /// Reads exactly `len` bytes from `offset` into a new buffer.
    ///
    /// # Errors
    /// As [`File::read_at`]; [`io::ErrorKind::UnexpectedEof`] when the file ends first (it
    /// shrank since it was measured).
    ///
    /// # Cancellation
    /// As [`File::read_at`].
    pub async fn read_exact_at(&self, len: usize, offset: u64) -> io::Result<BytesMut> {
        let buf = self.read_at(BytesMut::with_capacity(len), offset).await?;
        if buf.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended at {} bytes, {len} wanted from {offset}",
                    self.path.display(),
                    offset + buf.len() as u64
                ),
            ));
        }
        Ok(buf)
    }

    /// Opens `path` (relative) beneath this directory, in the ring (`openat2(2)` with
    /// `RESOLVE_BENEATH`: `..`, absolute paths and symlinks leaving the directory fail with
    /// [`io::ErrorKind::CrossesDevices`] (`EXDEV`)); `path_only` opens an `O_PATH` handle,
    /// good for [`File::stat`] only, which never blocks (a FIFO included). An empty `path`
    /// is the directory itself.
    ///
    /// # Errors
    /// The OS error (with the path); [`io::ErrorKind::Unsupported`] when files do not go
    /// through the ring ([`Files::in_ring`]: the pool has no confined open).
    ///
    /// # Cancellation
    /// Safe: the driver keeps the request until the kernel is done; a file it opened for a
    /// dropped future is closed.
    pub async fn open_beneath(&self, path: &Path, path_only: bool) -> io::Result<File> {
        use std::os::unix::ffi::OsStrExt;
        let Some(core) = &self.ring else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a confined open needs the io_uring ring",
            ));
        };
        let bytes = path.as_os_str().as_bytes();
        let bytes = if bytes.is_empty() {
            b".".as_slice()
        } else {
            bytes
        };
        let c_path = std::ffi::CString::new(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
        let request = FileRequest::Open {
            dir: Some(self.shared()),
            path: c_path,
            beneath: true,
            path_only,
        };
        let joined: Arc<Path> = Arc::from(self.path.join(path));
        match RingOp::new(core.clone(), request).await {
            Ok(FileDone::Opened(file)) => Ok(File {
                file: Some(Arc::new(file)),
                path: joined,
                pool: self.pool.clone(),
                hook: self.hook.clone(),
                ring: self.ring.clone(),
            }),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => Err(io::Error::new(
                error.kind(),
                format!("opening {}: {}", joined.display(), error.source),
            )),
        }
    }

    /// The file's type, length, modification time and identity: `statx(2)` in the ring, or
    /// `fstat(2)` on the pool.
    ///
    /// # Errors
    /// The OS error (with the path), or the pool's refusal.
    pub async fn stat(&self) -> io::Result<FileStat> {
        let Some(core) = &self.ring else {
            return self
                .metadata()
                .await
                .map(|metadata| FileStat::from_metadata(&metadata));
        };
        let request = FileRequest::Stat {
            file: self.shared(),
        };
        match RingOp::new(core.clone(), request).await {
            Ok(FileDone::Stat(stat)) => Ok(stat),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => Err(io::Error::new(
                error.kind(),
                format!("stat of {}: {}", self.path.display(), error.source),
            )),
        }
    }

    /// The file's metadata (`fstat(2)`), for its length and validators.
    ///
    /// # Errors
    /// As [`File::read_at`].
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let file = self.shared();
        Files::new(self.pool.clone())
            .run(move || file.metadata())
            .await
    }

    /// Closes the file on the pool. Reads still running on workers keep the descriptor
    /// until they return; the close then happens there and its error is not seen.
    ///
    /// # Errors
    /// The pool's refusal (the file is then closed here, at once).
    pub async fn close(mut self) -> io::Result<()> {
        let file = self.file.take();
        if let Some(core) = &self.ring {
            // The last holder closes in the ring; a read still running keeps it open.
            let Some(Ok(file)) = file.map(Arc::try_unwrap) else {
                return Ok(());
            };
            return match RingOp::new(core.clone(), FileRequest::Close { file }).await {
                Ok(_) => Ok(()),
                Err(error) => Err(io::Error::new(error.kind(), error.source)),
            };
        }
        Files::new(self.pool.clone())
            .run(move || {
                drop(file);
                Ok(())
            })
            .await
    }

    /// The descriptor, shared with a job.
    fn shared(&self) -> Arc<std::fs::File> {
        // INVARIANT: `file` is `Some` while `self` is usable (see the field).
        Arc::clone(self.file.as_ref().expect("an open file"))
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else {
            return;
        };
        if let Some(core) = &self.ring {
            // Closed in the ring, nobody waiting; by a read still running otherwise.
            if let Ok(file) = Arc::try_unwrap(file) {
                RingOp::detached(core, FileRequest::Close { file });
            }
            return;
        }
        {
            // Nobody awaits the job: the pool skips it and drops it, with the file, on a
            // worker (or here, when the queue is full).
            drop(self.pool.spawn(move || drop(file)));
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("path", &self.path).finish()
    }
}
