//! [`StaticFiles`]: a directory served over HTTP, on the static-file building blocks.
//!
//! Owns: turning [`crate::http::static_files`] decisions into responses — 301 to the
//! slash-ended directory URL, listings (optional), 304/412 from preconditions, 206/416
//! from ranges — and sending file contents.
//! Contract: nothing blocks the core: resolving the path (checks, canonicalize, stat) with
//! the open, and directory listings, are jobs of the thread pool; reads go through the
//! engine's file API ([`ringwork::fs`]: io_uring READs, or pool jobs under poll); the
//! request is answered from a task on the core when they complete; a slow disk (or file) delays only its own requests. Files up
//! to [`StaticFiles::INLINE_MAX`] go out as one response; larger ones stream in
//! [`StaticFiles::CHUNK`] pieces through a [`BodyWriter`](crate::http::server::BodyWriter),
//! waiting on its backpressure, so a file is never read whole into memory and a slow client
//! holds at most the connection's write buffer.
//! Does not: use `sendfile`/`splice` yet, or resolve paths in the ring (the lookup is one
//! trip to a worker and back per request).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use ringwork::LocalHandle;
use ringwork::fs::{File, Files, ReadHook};

use crate::http::date::format_http_date;
use crate::http::proto::{Method, RequestHead};
use crate::http::server::{Handler, Request, Responder, Response};
use crate::http::static_files::{
    Precondition, Preconditions, RangeOutcome, Resolved, StaticRoot, content_range, content_type,
    etag_for, parse_range, read_listing, render_listing, unsatisfied_range,
};

/// Serves the files under one directory (`ringwork serve web --root DIR`).
pub struct StaticFiles {
    root: StaticRoot,
    listings: bool,
    read_hook: Option<ReadHook>,
}

impl StaticFiles {
    /// Files up to this size are read and sent in one piece.
    pub const INLINE_MAX: u64 = 64 * 1024;
    /// The piece size of a streamed file.
    pub const CHUNK: usize = 64 * 1024;

    /// Serves `dir`, with directory listings on.
    ///
    /// # Errors
    /// `dir` does not exist or is not a directory.
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self {
            root: StaticRoot::new(dir)?,
            listings: true,
            read_hook: None,
        })
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
        let files = handle.files().with_read_hook(self.read_hook.clone());
        let root = self.root.clone();
        let listings = self.listings;
        // A GET needs the file open: opened in the lookup's trip to the pool.
        let open = *request.method() == Method::Get;
        handle.spawn_local(async move {
            let path = request.path().to_vec();
            let resolved = files
                .run(move || {
                    Ok(root.resolve(&path).map(|resolved| {
                        let file = match &resolved {
                            Resolved::File { path, .. } if open => {
                                Some(std::fs::File::open(path).map(|f| (f, path.clone())))
                            }
                            _ => None,
                        };
                        (resolved, file)
                    }))
                })
                .await;
            match resolved {
                Err(error) => {
                    // The pool refused the job (its queue is full): shed the request.
                    tracing::warn!(%error, "static file lookup not run");
                    respond.send(Response::error(503));
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "static file not served");
                    respond.send(Response::error(error.status()));
                }
                Ok(Ok((Resolved::RedirectToSlash, _))) => {
                    let mut location = request.path().to_vec();
                    location.push(b'/');
                    if let Some(query) = request.query() {
                        location.push(b'?');
                        location.extend_from_slice(query);
                    }
                    respond.send(Response::error(301).header("Location", location));
                }
                Ok(Ok((Resolved::Directory { path }, _))) => {
                    respond.send(listing(&files, listings, &request, path).await);
                }
                Ok(Ok((Resolved::File { path, metadata }, opened))) => {
                    let opened = opened.map(|o| o.map(|(file, path)| files.adopt(file, path)));
                    serve_file(request, respond, opened, &path, &metadata).await;
                }
            }
        });
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
async fn serve_file(
    request: Request,
    respond: Responder,
    opened: Option<std::io::Result<File>>,
    path: &Path,
    metadata: &std::fs::Metadata,
) {
    let len = metadata.len();
    let etag = etag_for(metadata);
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
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
            .header("ETag", etag.clone())
            .header("Last-Modified", format_http_date(modified).to_vec())
    };
    match preconditions.evaluate(true, &etag, modified) {
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
                && preconditions.if_range_allows(&etag, modified) =>
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
    let mut response = validators(Response::new(status))
        .header("Content-Type", content_type(path))
        .header("Accept-Ranges", "bytes")
        .header("Content-Length", count.to_string());
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
    let mut writer = respond.stream(response);
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
