//! [`StaticFiles`]: a directory served over HTTP, on the static-file building blocks.
//!
//! Owns: turning [`crate::http::static_files`] decisions into responses — 301 to the
//! slash-ended directory URL, listings (optional), 304/412 from preconditions, 206/416
//! from ranges — and sending file contents.
//! Contract: nothing blocks the core. Under io_uring the lookup runs in the core's ring
//! (`openat2` beneath the root with `RESOLVE_BENEATH`, `statx`, the open: no thread; an
//! `EXDEV` refusal goes to the pool's canonical lookup, so both decide alike); under poll
//! the lookup with the open is one job of the thread pool; directory listings are pool
//! jobs; reads go through the engine's file API ([`ringwork::fs`]: io_uring READs, or pool
//! jobs). The request is answered from a task on the core when they complete; a slow disk
//! (or file) delays only its own requests. Bodies from [`StaticFiles::SENDFILE_MIN`] up on
//! plaintext HTTP/1.1 are handed to the kernel
//! ([`BodyWriter::send_file`](crate::http::server::BodyWriter::send_file): sendfile(2),
//! whole files and ranges alike), so their bytes never pass through the process. Smaller
//! bodies, and every body the kernel cannot take (TLS, HTTP/2, an earlier response still
//! going out), are read: up to [`StaticFiles::INLINE_MAX`] as one response, larger ones
//! in [`StaticFiles::CHUNK`] pieces through a
//! [`BodyWriter`](crate::http::server::BodyWriter), waiting on its backpressure. Either
//! way a file is never read whole into memory and a slow client holds at most the
//! connection's write buffer.
//! Files found are kept open per core ([`StaticFiles::with_open_file_cache`], see
//! [`OpenFileCache`]): a request for a path checked within the validity window makes no
//! system call before its send; an older entry is looked up again (no open) and kept only
//! if the path still names the same file.
//! Does not: send files by the kernel from a ring read's pages (a disk read inside
//! sendfile(2) blocks the core for that read, as nginx's worker with `sendfile on`).

use std::cell::RefCell;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use ringwork::LocalHandle;
use ringwork::fs::{File, FileStat, Files, ReadHook};

use crate::http::date::format_http_date;
use crate::http::proto::{Method, RequestHead, Version};
use crate::http::server::{BodyWriter, Handler, Request, Responder, Response};
use crate::http::static_files::path::INDEX_FILE;
use crate::http::static_files::{
    CacheLookup, FileIdentity, OpenFileCache, OpenFileCacheConfig, PathError, Precondition,
    Preconditions, RangeOutcome, Resolved, StaticRoot, content_range, content_type, etag_from,
    fs_error, parse_range, read_listing, relative_path, render_listing, unsatisfied_range,
};

/// Serves the files under one directory (`ringwork serve web --root DIR`).
pub struct StaticFiles {
    root: Rc<StaticRoot>,
    listings: bool,
    sendfile_min: u64,
    read_hook: Option<ReadHook>,
    root_dir: RootDir,
    cache: FileCache,
    opens: Option<Arc<AtomicUsize>>,
}

/// The open-file cache of the core this handler serves on (see [`OpenFileCache`]).
type FileCache = Rc<RefCell<OpenFileCache<OsString, Rc<CachedFile>>>>;

impl StaticFiles {
    /// Files up to this size are read and sent in one piece.
    pub const INLINE_MAX: u64 = 64 * 1024;
    /// The piece size of a streamed file.
    pub const CHUNK: usize = 64 * 1024;
    /// Bodies from this size up go out by sendfile(2) when the connection allows it (see
    /// the module docs; [`StaticFiles::with_sendfile_min`] changes it).
    pub const SENDFILE_MIN: u64 = 16 * 1024;

    /// Serves `dir`, with directory listings on.
    ///
    /// # Errors
    /// `dir` does not exist or is not a directory.
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self {
            root: Rc::new(StaticRoot::new(dir)?),
            listings: true,
            sendfile_min: Self::SENDFILE_MIN,
            read_hook: None,
            root_dir: RootDir::default(),
            cache: Rc::new(RefCell::new(OpenFileCache::new(
                OpenFileCacheConfig::DEFAULT,
            ))),
            opens: None,
        })
    }

    /// Keeps up to `config.entries` files open on each core, each used without a `stat`
    /// for `config.valid` after it was last checked (default
    /// [`OpenFileCacheConfig::DEFAULT`]; [`OpenFileCacheConfig::OFF`]: every request looks
    /// its file up and opens it). A file changed on disk is served as it was for up to
    /// `valid` (docs/http.md, "Open-file cache").
    #[must_use]
    pub fn with_open_file_cache(mut self, config: OpenFileCacheConfig) -> Self {
        self.cache = Rc::new(RefCell::new(OpenFileCache::new(config)));
        self
    }

    /// Counts in `opens` every file opened for reading (tests: a cache hit opens nothing).
    #[doc(hidden)]
    #[must_use]
    pub fn with_open_counter(mut self, opens: Arc<AtomicUsize>) -> Self {
        self.opens = Some(opens);
        self
    }

    /// Runs `hook` on the worker before each file read (tests: a slow file).
    #[doc(hidden)]
    #[must_use]
    pub fn with_read_hook(mut self, hook: ReadHook) -> Self {
        self.read_hook = Some(hook);
        self
    }

    /// Whether a directory without `index.html` gets a listing (else 403).
    #[must_use]
    pub fn with_listings(mut self, listings: bool) -> Self {
        self.listings = listings;
        self
    }

    /// Sends bodies of at least `min` bytes by sendfile(2) where the connection allows it
    /// (default [`StaticFiles::SENDFILE_MIN`]; `u64::MAX`: never, every body is read).
    #[must_use]
    pub fn with_sendfile_min(mut self, min: u64) -> Self {
        self.sendfile_min = min;
        self
    }

    /// The directory served.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Handler for StaticFiles {
    /// A method this handler refuses is answered at once, without its body: so a client
    /// waiting for `100 Continue` gets the 405 instead and uploads nothing.
    fn stream_body(&self, head: &RequestHead) -> bool {
        !matches!(head.method, Method::Get | Method::Head)
    }

    fn handle(&self, request: Request, respond: Responder) {
        if !matches!(request.method(), Method::Get | Method::Head) {
            respond.send(Response::error(405).header("Allow", "GET, HEAD"));
            return;
        }
        let handle: LocalHandle = request.handle().clone();
        let serve = Serve {
            files: handle.files().with_read_hook(self.read_hook.clone()),
            handle: handle.clone(),
            root: Rc::clone(&self.root),
            root_dir: Rc::clone(&self.root_dir),
            cache: Rc::clone(&self.cache),
            opens: self.opens.clone(),
            listings: self.listings,
            // The kernel can take the body on plaintext HTTP/1.x only.
            sendfile_min: if request.is_tls() || request.version() == Version::Http2 {
                u64::MAX
            } else {
                self.sendfile_min
            },
        };
        handle.spawn_local(serve.run(request, respond));
    }
}

/// What one request's task needs of its [`StaticFiles`].
struct Serve {
    files: Files,
    handle: LocalHandle,
    root: Rc<StaticRoot>,
    root_dir: RootDir,
    cache: FileCache,
    opens: Option<Arc<AtomicUsize>>,
    listings: bool,
    sendfile_min: u64,
}

impl Serve {
    /// Answers `request`: from the open-file cache when it holds the path (checked again
    /// once its validity ran out), else by a lookup.
    async fn run(self, request: Request, respond: Responder) {
        let key = self.cache_key(request.path());
        let found = key
            .as_ref()
            .map(|key| self.cache.borrow_mut().get(key, self.handle.now()));
        if let Some(CacheLookup::Fresh(cached)) = found {
            self.serve_cached(request, respond, &cached).await;
            return;
        }
        let stale = matches!(found, Some(CacheLookup::Stale(_)));
        // The lookups' futures live in their own allocation: a hit's task (this future,
        // copied whole when spawned) stays the size of the send alone.
        Box::pin(self.look_up_and_answer(request, respond, key, stale)).await;
    }

    /// Answers a request the cache holds no fresh entry for: a `stale` entry under `key`
    /// is checked (a stat of the path, no open) and kept if the file is the same; otherwise
    /// the path is looked up, and a GET's file opened and kept.
    async fn look_up_and_answer(
        &self,
        request: Request,
        respond: Responder,
        key: Option<OsString>,
        stale: bool,
    ) {
        // A GET needs the file open; a HEAD only its metadata.
        let get = *request.method() == Method::Get;
        if let (Some(key), true) = (&key, stale) {
            let checked = self.lookup(request.path(), false).await;
            let identity = match &checked {
                Ok(Lookup::File { stat, .. }) => Some(identity_of(stat)),
                _ => None,
            };
            let kept = self
                .cache
                .borrow_mut()
                .revalidated(key, identity, self.handle.now());
            if let Some(cached) = kept {
                self.serve_cached(request, respond, &cached).await;
                return;
            }
            if !get || identity.is_none() {
                // A HEAD needs no file, and a path that names no file any more is answered
                // as the lookup says (404 for a deleted file).
                self.answer(request, respond, checked, None).await;
                return;
            }
            // A GET of a changed file: opened again below.
        }
        let looked_up = self.lookup(request.path(), get).await;
        let key = key.filter(|_| get);
        self.answer(request, respond, looked_up, key).await;
    }

    /// The cache key of a request path: its path relative to the root, with a trailing
    /// `/` kept (a directory's index is cached under it); `None` when the cache is off or
    /// the path is not one the lookup accepts (it answers the error).
    fn cache_key(&self, request_path: &[u8]) -> Option<OsString> {
        if !self.cache.borrow().enabled() {
            return None;
        }
        let mut key = relative_path(request_path).ok()?.into_os_string();
        if request_path.ends_with(b"/") {
            key.push("/");
        }
        Some(key)
    }

    /// The lookup in the ring (when the core has one), else, or when the ring cannot
    /// decide, on the pool.
    async fn lookup(&self, request_path: &[u8], open: bool) -> Result<Lookup, LookupError> {
        if self.files.in_ring() {
            let found =
                lookup_in_ring(&self.files, &self.root_dir, &self.root, request_path, open).await;
            if !matches!(found, Err(LookupError::Fallback)) {
                return found;
            }
        }
        lookup_on_pool(
            &self.files,
            StaticRoot::clone(&self.root),
            request_path.to_vec(),
            open,
        )
        .await
    }

    /// Answers from a lookup's result; a GET's file opened by it is kept in the cache under
    /// `key` (when given) once a `stat` of the open file shows it is the one looked up.
    async fn answer(
        &self,
        request: Request,
        respond: Responder,
        looked_up: Result<Lookup, LookupError>,
        key: Option<OsString>,
    ) {
        match looked_up {
            Err(LookupError::Shed(error)) => {
                // The pool refused the job (its queue is full): shed the request.
                tracing::warn!(%error, "static file lookup not run");
                respond.send(Response::error(503));
            }
            Err(LookupError::Path(error)) => {
                tracing::debug!(%error, "static file not served");
                respond.send(Response::error(error.status()));
            }
            Err(LookupError::Fallback) => {
                // Not reached: the pool's lookup never falls back.
                respond.send(Response::error(500));
            }
            Ok(Lookup::RedirectToSlash) => {
                let mut location = request.path().to_vec();
                location.push(b'/');
                if let Some(query) = request.query() {
                    location.push(b'?');
                    location.extend_from_slice(query);
                }
                respond.send(Response::error(301).header("Location", location));
            }
            Ok(Lookup::Directory(path)) => {
                respond.send(listing(&self.files, self.listings, &request, path).await);
            }
            Ok(Lookup::File { path, stat, opened }) => {
                let opened = opened.map(|opened| opened.map(Rc::new));
                if let Some(Ok(_)) = &opened
                    && let Some(opens) = &self.opens
                {
                    opens.fetch_add(1, Ordering::Relaxed);
                }
                let meta = FileMeta::new(path, stat);
                if let (Some(key), Some(Ok(file))) = (key, &opened) {
                    // The open file must be the one stat'ed (not replaced in between) to be
                    // kept: its own stat says.
                    if let Ok(open_stat) = file.stat().await
                        && identity_of(&open_stat) == identity_of(&meta.stat)
                    {
                        let cached = Rc::new(CachedFile {
                            file: Rc::clone(file),
                            meta,
                        });
                        let identity = identity_of(&cached.meta.stat);
                        self.cache.borrow_mut().insert(
                            key,
                            identity,
                            Rc::clone(&cached),
                            self.handle.now(),
                        );
                        self.serve_cached(request, respond, &cached).await;
                        return;
                    }
                }
                serve_file(request, respond, opened, &meta, self.sendfile_min).await;
            }
        }
    }

    async fn serve_cached(&self, request: Request, respond: Responder, cached: &CachedFile) {
        let file = Some(Ok(Rc::clone(&cached.file)));
        serve_file(request, respond, file, &cached.meta, self.sendfile_min).await;
    }
}

/// A file kept open by the cache, with what its metadata gives the response.
struct CachedFile {
    file: Rc<File>,
    meta: FileMeta,
}

/// A file's metadata and the response fields derived from it (made once per cached file).
struct FileMeta {
    /// The path (for logs).
    path: PathBuf,
    stat: FileStat,
    etag: String,
    etag_field: Bytes,
    last_modified: Bytes,
    content_type: &'static str,
    /// `Content-Length` of the whole file.
    length_field: Bytes,
}

impl FileMeta {
    fn new(path: PathBuf, stat: FileStat) -> Self {
        let etag = etag_from(stat.len, Some(stat.modified));
        Self {
            etag_field: Bytes::copy_from_slice(etag.as_bytes()),
            etag,
            last_modified: Bytes::copy_from_slice(&format_http_date(stat.modified)),
            content_type: content_type(&path),
            length_field: Bytes::from(stat.len.to_string()),
            path,
            stat,
        }
    }
}

/// What the cache compares to tell a changed file.
fn identity_of(stat: &FileStat) -> FileIdentity {
    FileIdentity {
        dev: stat.dev,
        ino: stat.ino,
        len: stat.len,
        modified: stat.modified,
    }
}

/// What a request path names, looked up (see [`resolve`](crate::http::static_files::resolve)).
enum Lookup {
    RedirectToSlash,
    Directory(PathBuf),
    File {
        /// The path (for the content type and logs).
        path: PathBuf,
        stat: FileStat,
        /// The file opened for a GET (`None` for a HEAD), or why it could not be.
        opened: Option<io::Result<File>>,
    },
}

enum LookupError {
    /// The path is not served (400, 403, 404, 500).
    Path(PathError),
    /// The thread pool refused the lookup: 503.
    Shed(io::Error),
    /// The ring cannot decide (a symlink that `RESOLVE_BENEATH` refuses, which may still
    /// stay inside the root): look up on the pool.
    Fallback,
}

/// The lookup (checks, canonicalize, stat) and a GET's open, in one job of the pool.
async fn lookup_on_pool(
    files: &Files,
    root: StaticRoot,
    request_path: Vec<u8>,
    open: bool,
) -> Result<Lookup, LookupError> {
    let resolved = files
        .run(move || {
            Ok(root.resolve(&request_path).map(|resolved| {
                let file = match &resolved {
                    Resolved::File { path, .. } if open => {
                        Some(std::fs::File::open(path).map(|f| (f, path.clone())))
                    }
                    _ => None,
                };
                (resolved, file)
            }))
        })
        .await
        .map_err(LookupError::Shed)?;
    match resolved.map_err(LookupError::Path)? {
        (Resolved::RedirectToSlash, _) => Ok(Lookup::RedirectToSlash),
        (Resolved::Directory { path }, _) => Ok(Lookup::Directory(path)),
        (Resolved::File { path, metadata }, opened) => Ok(Lookup::File {
            path,
            stat: FileStat::from_metadata(&metadata),
            opened: opened.map(|o| o.map(|(file, path)| files.adopt(file, path))),
        }),
    }
}

/// The lookup in the ring: the lexical checks, then `openat2` beneath the root directory
/// (the kernel confines the walk: `RESOLVE_BENEATH`) as an `O_PATH` handle (never blocks,
/// even on a FIFO), `statx` on it, and for a GET the open for reading. No thread.
async fn lookup_in_ring(
    files: &Files,
    root_dir: &RootDir,
    root: &StaticRoot,
    request_path: &[u8],
    open: bool,
) -> Result<Lookup, LookupError> {
    let rel = relative_path(request_path).map_err(LookupError::Path)?;
    let dir = open_root(files, root_dir, root).await?;
    let joined = root.path().join(&rel);
    let stat = stat_beneath(&dir, &rel, &joined).await?;
    let wants_dir = request_path.ends_with(b"/");
    if stat.is_dir() {
        if !wants_dir {
            return Ok(Lookup::RedirectToSlash);
        }
        let index_rel = rel.join(INDEX_FILE);
        let index_path = joined.join(INDEX_FILE);
        return match stat_beneath(&dir, &index_rel, &index_path).await {
            Ok(index) if index.is_file() => {
                file_in_ring(&dir, index_rel, index_path, index, open).await
            }
            // No index (or not a file): the directory's listing.
            Ok(_) | Err(LookupError::Path(PathError::NotFound { .. })) => {
                Ok(Lookup::Directory(joined))
            }
            Err(error) => Err(error),
        };
    }
    if wants_dir {
        // `/file.txt/`: a file is not a directory.
        return Err(LookupError::Path(PathError::NotFound { path: joined }));
    }
    if !stat.is_file() {
        return Err(LookupError::Path(PathError::Forbidden { path: joined }));
    }
    file_in_ring(&dir, rel, joined, stat, open).await
}

/// The root directory opened on this core, for lookups in the ring (at the first one).
type RootDir = Rc<RefCell<Option<Rc<File>>>>;

async fn open_root(
    files: &Files,
    slot: &RootDir,
    root: &StaticRoot,
) -> Result<Rc<File>, LookupError> {
    if let Some(dir) = slot.borrow().as_ref() {
        return Ok(Rc::clone(dir));
    }
    let dir = files.open(root.path()).await.map_err(|error| {
        tracing::warn!(%error, "cannot open the static root");
        LookupError::Path(fs_error(&error, root.path()))
    })?;
    let dir = Rc::new(dir);
    *slot.borrow_mut() = Some(Rc::clone(&dir));
    Ok(dir)
}

/// `statx` of `rel` beneath `dir` through an `O_PATH` handle.
async fn stat_beneath(dir: &File, rel: &Path, joined: &Path) -> Result<FileStat, LookupError> {
    let handle = dir
        .open_beneath(rel, true)
        .await
        .map_err(|e| ring_error(&e, joined))?;
    handle.stat().await.map_err(|e| ring_error(&e, joined))
}

/// A regular file found in the ring; opened for reading for a GET.
async fn file_in_ring(
    dir: &File,
    rel: PathBuf,
    path: PathBuf,
    stat: FileStat,
    open: bool,
) -> Result<Lookup, LookupError> {
    let opened = if open {
        Some(dir.open_beneath(&rel, false).await)
    } else {
        None
    };
    Ok(Lookup::File { path, stat, opened })
}

/// A ring lookup's error: `EXDEV` (`RESOLVE_BENEATH` refused a symlink) goes to the pool,
/// which decides by the canonical path; the rest as the pool's lookup maps them.
fn ring_error(error: &io::Error, path: &Path) -> LookupError {
    if error.kind() == io::ErrorKind::CrossesDevices {
        LookupError::Fallback
    } else {
        LookupError::Path(fs_error(error, path))
    }
}

impl std::fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticFiles")
            .field("root", &self.root)
            .field("listings", &self.listings)
            .finish_non_exhaustive()
    }
}

/// A directory's listing (read on the pool), or 403 when listings are off or it cannot
/// be read.
async fn listing(files: &Files, listings: bool, request: &Request, dir: PathBuf) -> Response {
    if !listings {
        return Response::error(403);
    }
    let Ok(mut entries) = files.run(move || read_listing(&dir)).await else {
        return Response::error(403);
    };
    let shown = String::from_utf8_lossy(request.path()).into_owned();
    Response::new(200)
        .header("Content-Type", "text/html; charset=utf-8")
        .with_body(render_listing(&shown, &mut entries))
}

/// Answers for a regular file: preconditions, range, then the bytes.
///
/// `opened` is the file opened for a GET (`None` for a HEAD), or why it could not be.
/// Bodies of at least `sendfile_min` bytes are offered to the kernel first.
async fn serve_file(
    request: Request,
    respond: Responder,
    opened: Option<io::Result<Rc<File>>>,
    meta: &FileMeta,
    sendfile_min: u64,
) {
    let len = meta.stat.len;
    let modified = meta.stat.modified;
    let etag = meta.etag.as_str();
    let path = meta.path.as_path();
    let headers = request.headers();
    let preconditions = Preconditions {
        if_match: headers.get("if-match"),
        if_none_match: headers.get("if-none-match"),
        if_modified_since: headers.get("if-modified-since"),
        if_unmodified_since: headers.get("if-unmodified-since"),
        if_range: headers.get("if-range"),
    };
    let validators = |response: Response| {
        response
            .header("ETag", meta.etag_field.clone())
            .header("Last-Modified", meta.last_modified.clone())
    };
    match preconditions.evaluate(true, etag, modified) {
        Precondition::NotModified => {
            respond.send(validators(Response::new(304)));
            return;
        }
        Precondition::Failed => {
            respond.send(Response::error(412));
            return;
        }
        _ => {}
    }
    // RFC 9110 §14.2: a server MUST ignore a Range header field received with a request
    // method other than GET.
    let range = match headers.get("range") {
        Some(value)
            if *request.method() == Method::Get
                && preconditions.if_range_allows(etag, modified) =>
        {
            parse_range(value, len)
        }
        _ => RangeOutcome::Full,
    };
    let (status, start, count) = match range {
        RangeOutcome::Partial {
            start,
            end_inclusive,
        } => (206, start, end_inclusive - start + 1),
        RangeOutcome::Unsatisfiable => {
            respond.send(Response::error(416).header("Content-Range", unsatisfied_range(len)));
            return;
        }
        _ => (200, 0, len),
    };
    let length = if count == len {
        meta.length_field.clone()
    } else {
        Bytes::from(count.to_string())
    };
    let mut response = validators(Response::new(status))
        .header("Content-Type", meta.content_type)
        .header("Accept-Ranges", "bytes")
        .header("Content-Length", length);
    if status == 206 {
        response = response.header(
            "Content-Range",
            content_range(start, start + count - 1, len),
        );
    }
    if *request.method() == Method::Head || count == 0 {
        respond.send(response);
        return;
    }
    let file = match opened {
        Some(Ok(file)) => file,
        Some(Err(error)) => {
            tracing::warn!(%error, path = %path.display(), "cannot open a resolved file");
            respond.send(Response::error(500));
            return;
        }
        None => {
            // Not reached: a GET has its file opened with the lookup, and a HEAD answered
            // above. A 500 rather than a panic if that ever changes.
            tracing::error!(path = %path.display(), "a GET without its file opened");
            respond.send(Response::error(500));
            return;
        }
    };
    if count >= sendfile_min {
        let mut writer = respond.stream(response);
        // The kernel takes the range only once this answer is the one going out.
        if writer.ready().await.is_err() {
            return;
        }
        if writer.send_file(&file, start, count).await {
            writer.finish();
        } else {
            stream_by_reading(writer, &file, start, count).await;
        }
        return;
    }
    if count <= StaticFiles::INLINE_MAX {
        // INVARIANT: count <= INLINE_MAX (64 KiB) fits in usize.
        match file.read_exact_at(count as usize, start).await {
            Ok(body) => respond.send(response.with_body(body.freeze())),
            Err(error) => {
                tracing::warn!(%error, "file read failed");
                respond.send(Response::error(500));
            }
        }
        return;
    }
    stream_by_reading(respond.stream(response), &file, start, count).await;
}

/// Sends `count` bytes of `file` from `start` as the body `writer` streams, read in
/// [`StaticFiles::CHUNK`] pieces, each waiting for the writer's backpressure.
async fn stream_by_reading(mut writer: BodyWriter, file: &File, start: u64, count: u64) {
    let mut offset = start;
    let end = start + count;
    while offset < end {
        // INVARIANT: at most CHUNK, a usize.
        let want = (end - offset).min(StaticFiles::CHUNK as u64) as usize;
        let chunk: Bytes = match file.read_exact_at(want, offset).await {
            Ok(chunk) => chunk.freeze(),
            Err(error) => {
                // Dropping the writer unfinished closes the connection: the client sees
                // a short body rather than wrong bytes.
                tracing::warn!(%error, "file read failed mid-body");
                return;
            }
        };
        offset += want as u64;
        if !writer.write(chunk) && writer.ready().await.is_err() {
            return;
        }
    }
    writer.finish();
    // The file closes on the pool as it drops (no wait for the close).
}
