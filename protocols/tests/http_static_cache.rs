//! `StaticFiles`' open-file cache over real sockets on both backends: a cached file is
//! served again without an open (counted by the handler's test hook), HEAD, ranges and
//! conditional requests answer from it alike; with a validity of 0 every use checks the
//! path, so a file replaced by rename is served new and a deleted one gets 404; the cache
//! keeps at most its entry count of files open (the process's descriptors to them, read
//! from /proc/self/fd); `off` opens the file for every GET as before. The window itself
//! (fresh, then checked) is tested without time passing in `static_files::open_cache`.
#![cfg(feature = "engine")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, TempDir, pattern};
use ringwork::BackendChoice;
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::http::services::StaticFiles;
use ringwork_protocols::http::static_files::OpenFileCacheConfig;

const BIG: usize = 64 * 1024;

/// A served root under `dir/root`: a small text file, a 64 KiB one (sent by sendfile) and
/// `count.N` files for the eviction test.
fn tree(dir: &TempDir) -> PathBuf {
    let root = dir.0.join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("hello.txt"), "hello, static world\n").unwrap();
    fs::write(root.join("big.bin"), pattern(BIG)).unwrap();
    fs::write(root.join("sub/index.html"), "<h1>index</h1>\n").unwrap();
    for i in 0..8 {
        fs::write(root.join(format!("count.{i}")), format!("file {i}\n")).unwrap();
    }
    root
}

/// A server of `tree(dir)` with `cache`; the files it opens for reading are counted.
fn start(
    backend: BackendChoice,
    dir: &TempDir,
    cache: OpenFileCacheConfig,
) -> Option<(Server, PathBuf, Arc<AtomicUsize>)> {
    let root = tree(dir);
    let opens = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&opens);
    let served = root.clone();
    let server = Server::start(backend, ServerConfig::default(), move || {
        StaticFiles::new(&served)
            .expect("serve the root")
            .with_open_file_cache(cache)
            .with_open_counter(Arc::clone(&counter))
    })?;
    Some((server, root, opens))
}

fn opened(opens: &AtomicUsize) -> usize {
    opens.load(Ordering::Relaxed)
}

/// The process's descriptors open on files directly under `root`.
fn descriptors_under(root: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.parent() == Some(root))
        .count()
}

ringwork::platform::test_all_backends! {
    /// Cached for a minute: the second GET, HEADs, ranges and conditional requests open
    /// nothing, and carry what the first did.
    fn a_cached_file_is_served_without_an_open(backend: BackendChoice) {
        let dir = TempDir::new("static-cache-hit");
        let config = OpenFileCacheConfig { entries: 16, valid: Duration::from_secs(60) };
        let Some((server, _root, opens)) = start(backend, &dir, config) else { return };
        let mut client = server.client();
        let first = client.get("/big.bin", "");
        assert_eq!((first.status, first.body.len()), (200, BIG));
        assert_eq!(opened(&opens), 1);
        let again = client.get("/big.bin", "");
        assert!(again.body == pattern(BIG), "the cached file's bytes differ");
        assert_eq!(again.header("etag"), first.header("etag"));
        assert_eq!(again.header("last-modified"), first.header("last-modified"));
        assert_eq!(again.header("content-length"), Some("65536"));
        // A range (read, then by sendfile), a HEAD and the conditional requests.
        let range = client.get("/big.bin", "Range: bytes=10-19\r\n");
        assert_eq!(range.status, 206);
        assert_eq!(range.header("content-range"), Some("bytes 10-19/65536"));
        assert!(range.body == pattern(BIG)[10..20]);
        let range = client.get("/big.bin", "Range: bytes=100-\r\n");
        assert_eq!(range.header("content-length"), Some("65436"));
        assert!(range.body == pattern(BIG)[100..]);
        client.send("HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = client.response_to(true);
        assert_eq!((head.status, head.header("content-length")), (200, Some("65536")));
        let etag = first.header("etag").unwrap().to_owned();
        let not_modified = client.get("/big.bin", &format!("If-None-Match: {etag}\r\n"));
        assert_eq!(not_modified.status, 304);
        assert_eq!(client.get("/big.bin", "If-Match: \"other\"\r\n").status, 412);
        // A directory's index is cached under the directory's path.
        assert_eq!(client.get("/sub/", "").text(), "<h1>index</h1>\n");
        assert_eq!(client.get("/sub/", "").text(), "<h1>index</h1>\n");
        assert_eq!(client.get("/hello.txt", "").text(), "hello, static world\n");
        assert_eq!(opened(&opens), 3, "big.bin, sub/index.html and hello.txt once each");
    }

    /// Validity 0: every use stats the path. A file replaced by rename is served new (and
    /// opened again), an unchanged one is not reopened, a deleted one is a 404.
    fn a_replaced_or_deleted_file_is_seen_after_the_window(backend: BackendChoice) {
        let dir = TempDir::new("static-cache-replace");
        let config = OpenFileCacheConfig { entries: 16, valid: Duration::ZERO };
        let Some((server, root, opens)) = start(backend, &dir, config) else { return };
        let mut client = server.client();
        assert_eq!(client.get("/hello.txt", "").text(), "hello, static world\n");
        assert_eq!(client.get("/hello.txt", "").text(), "hello, static world\n");
        assert_eq!(opened(&opens), 1, "unchanged: checked, not reopened");
        let new = dir.0.join("new.txt");
        fs::write(&new, "replaced\n").unwrap();
        fs::rename(&new, root.join("hello.txt")).unwrap();
        assert_eq!(client.get("/hello.txt", "").text(), "replaced\n");
        assert_eq!(opened(&opens), 2);
        client.send("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(client.response_to(true).header("content-length"), Some("9"));
        fs::remove_file(root.join("hello.txt")).unwrap();
        assert_eq!(client.get("/hello.txt", "").status, 404);
        client.send("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(client.response_to(true).status, 404);
        // And back: found again.
        fs::write(root.join("hello.txt"), "back\n").unwrap();
        assert_eq!(client.get("/hello.txt", "").text(), "back\n");
        assert_eq!(opened(&opens), 3);
    }

    /// Two entries: eight files served leave at most two of them open (evicted files are
    /// closed), and the last two are still served without an open.
    fn eviction_closes_files_and_keeps_the_bound(backend: BackendChoice) {
        let dir = TempDir::new("static-cache-evict");
        let config = OpenFileCacheConfig { entries: 2, valid: Duration::from_secs(60) };
        let Some((server, root, opens)) = start(backend, &dir, config) else { return };
        let mut client = server.client();
        for i in 0..8 {
            assert_eq!(client.get(&format!("/count.{i}"), "").text(), format!("file {i}\n"));
        }
        assert_eq!(opened(&opens), 8);
        // The closes of evicted files are not awaited by the responses: each round trip
        // lets the core (or the pool) run them; `LIMIT` bounds the wait as a failure.
        let deadline = Instant::now() + common::LIMIT;
        while descriptors_under(&root) > 2 {
            assert!(Instant::now() < deadline, "{} files open", descriptors_under(&root));
            assert_eq!(client.get("/missing", "").status, 404);
        }
        assert_eq!(client.get("/count.7", "").text(), "file 7\n");
        assert_eq!(client.get("/count.6", "").text(), "file 6\n");
        assert_eq!(opened(&opens), 8, "the two most recent are still open");
        assert_eq!(client.get("/count.0", "").text(), "file 0\n");
        assert_eq!(opened(&opens), 9, "the oldest was evicted");
    }

    /// `off`: every GET opens its file, as without the cache; a changed file is served new
    /// at once.
    fn off_opens_the_file_for_every_get(backend: BackendChoice) {
        let dir = TempDir::new("static-cache-off");
        let Some((server, root, opens)) = start(backend, &dir, OpenFileCacheConfig::OFF) else {
            return;
        };
        let mut client = server.client();
        for _ in 0..3 {
            assert_eq!(client.get("/hello.txt", "").text(), "hello, static world\n");
        }
        client.send("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(client.response_to(true).status, 200);
        assert_eq!(opened(&opens), 3, "a GET opens, a HEAD does not");
        fs::write(root.join("hello.txt"), "changed\n").unwrap();
        assert_eq!(client.get("/hello.txt", "").text(), "changed\n");
        let deadline = Instant::now() + common::LIMIT;
        while descriptors_under(&root) > 0 {
            assert!(Instant::now() < deadline, "{} files open", descriptors_under(&root));
            assert_eq!(client.get("/missing", "").status, 404);
        }
    }
}
