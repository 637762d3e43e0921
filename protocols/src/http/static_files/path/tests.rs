use super::*;

use crate::http::static_files::test_support::TempDir;

/// What a request path resolved to, with paths relative to the root.
#[derive(Debug, Eq, PartialEq)]
enum Got {
    File(&'static str),
    Dir(&'static str),
    Redirect,
    Status(u16),
}

use Got::{Dir, File, Redirect, Status};

/// A root with: `a/b.txt`, `a/c/` (no index), `site/index.html`, `top.txt`,
/// `weird name <&>.txt`, `%41.txt`, and (Unix) a fifo plus symlinks inside and out.
// `tmp` and `outside` keep the directories alive; only the Unix tests read them.
#[cfg_attr(not(unix), allow(dead_code))]
struct Fixture {
    tmp: TempDir,
    root: StaticRoot,
    outside: TempDir,
}

fn fixture() -> Fixture {
    let tmp = TempDir::new("path");
    tmp.file("www/a/b.txt", b"b");
    tmp.dir("www/a/c");
    tmp.file("www/site/index.html", b"<p>hi</p>");
    tmp.dir("www/index-dir/index.html");
    tmp.file("www/top.txt", b"top");
    tmp.file("www/weird name <&>.txt", b"w");
    tmp.file("www/%41.txt", b"literal percent");
    let outside = TempDir::new("outside");
    outside.file("secret.txt", b"secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        let www = tmp.path().join("www");
        symlink(www.join("a/b.txt"), www.join("link-in.txt")).unwrap();
        symlink("a", www.join("link-dir")).unwrap();
        symlink("/etc", www.join("etc")).unwrap();
        symlink(outside.path().join("secret.txt"), www.join("link-out.txt")).unwrap();
        symlink(outside.path(), www.join("index-out")).unwrap();
        tmp.dir("www/escaping-index");
        symlink(
            outside.path().join("secret.txt"),
            www.join("escaping-index/index.html"),
        )
        .unwrap();
        symlink("nowhere", www.join("dangling")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(www.join("fifo"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    // Build the root through a non-canonical spelling to check that `new` canonicalizes.
    let root = StaticRoot::new(tmp.path().join("www/a/..")).unwrap();
    Fixture { tmp, root, outside }
}

fn got(f: &Fixture, request: &[u8]) -> Got {
    let rel = |p: &Path| -> &'static str {
        let r = p.strip_prefix(f.root.path()).unwrap();
        Box::leak(r.to_string_lossy().into_owned().into_boxed_str())
    };
    match f.root.resolve(request) {
        Ok(Resolved::File { path, metadata }) => {
            assert!(metadata.is_file());
            File(rel(&path))
        }
        Ok(Resolved::Directory { path }) => Dir(rel(&path)),
        Ok(Resolved::RedirectToSlash) => Redirect,
        Err(e) => Status(e.status()),
    }
}

/// (request path, expected) on every platform.
fn cases() -> Vec<(&'static [u8], Got)> {
    vec![
        (b"/top.txt", File("top.txt")),
        (b"/a/b.txt", File("a/b.txt")),
        (b"//a//b.txt", File("a/b.txt")),
        (b"/a///b.txt", File("a/b.txt")),
        (b"/%61/%62.txt", File("a/b.txt")),
        (b"/weird%20name%20%3C%26%3e.txt", File("weird name <&>.txt")),
        (b"/weird name <&>.txt", File("weird name <&>.txt")),
        (b"/%2541.txt", File("%41.txt")),
        // Directories.
        (b"/", Dir("")),
        (b"/a/c/", Dir("a/c")),
        (b"/a/c", Redirect),
        (b"/a", Redirect),
        (b"/site", Redirect),
        (b"/site/", File("site/index.html")),
        (b"/site//", File("site/index.html")),
        // `index.html` that is a directory: no index.
        (b"/index-dir/", Dir("index-dir")),
        // Missing.
        (b"/missing.txt", Status(404)),
        (b"/a/missing/", Status(404)),
        (b"/top.txt/", Status(404)),
        (b"/top.txt/x", Status(404)),
        // Traversal, literal and encoded.
        (b"/..", Status(400)),
        (b"/../etc/passwd", Status(400)),
        (b"/a/../top.txt", Status(400)),
        (b"/a/..", Status(400)),
        (b"/%2e%2e/etc/passwd", Status(400)),
        (b"/%2E%2e/", Status(400)),
        (b"/a/%2E%2E", Status(400)),
        (b"/.%2e/x", Status(400)),
        (b"/./top.txt", Status(400)),
        (b"/%2e/top.txt", Status(400)),
        // Encoded slashes, NUL, backslashes.
        (b"/a%2fb.txt", Status(400)),
        (b"/a%2Fb.txt", Status(400)),
        (b"/..%2f..%2fetc", Status(400)),
        (b"/top.txt%00.html", Status(400)),
        (b"/top\0.txt", Status(400)),
        (b"/a\\b.txt", Status(400)),
        (b"/..%5c..%5cetc", Status(400)),
        // Malformed escapes and non-origin-form.
        (b"/%", Status(400)),
        (b"/%4", Status(400)),
        (b"/%zz", Status(400)),
        (b"/%%41", Status(400)),
        (b"", Status(400)),
        (b"top.txt", Status(400)),
        (b"http://x/top.txt", Status(400)),
        (b"*", Status(400)),
    ]
}

#[test]
fn resolves_request_paths() {
    let f = fixture();
    for (request, want) in cases() {
        assert_eq!(
            got(&f, request),
            want,
            "{:?}",
            String::from_utf8_lossy(request)
        );
    }
}

#[cfg(unix)]
#[test]
fn symlinks_fifos_and_odd_names() {
    let f = fixture();
    let cases: Vec<(&[u8], Got)> = vec![
        // Symlinks inside the root are followed and reported canonically.
        (b"/link-in.txt", File("a/b.txt")),
        (b"/link-dir/b.txt", File("a/b.txt")),
        (b"/link-dir", Redirect),
        // Symlinks out of the root are forbidden.
        (b"/etc/passwd", Status(403)),
        (b"/etc/", Status(403)),
        (b"/link-out.txt", Status(403)),
        (b"/index-out/secret.txt", Status(403)),
        (b"/escaping-index/", Status(403)),
        (b"/dangling", Status(404)),
        // Only regular files are served.
        (b"/fifo", Status(403)),
        // Non-UTF-8 names are fine on Unix (missing here, so 404 not 400).
        (b"/%ff%fe.txt", Status(404)),
    ];
    for (request, want) in cases {
        assert_eq!(
            got(&f, request),
            want,
            "{:?}",
            String::from_utf8_lossy(request)
        );
    }
    f.tmp.file("www/\u{e9}t\u{e9}.txt", b"x");
    assert_eq!(got(&f, b"/%C3%A9t%c3%a9.txt"), File("\u{e9}t\u{e9}.txt"));
    drop(f.outside);
}

#[cfg(unix)]
#[test]
fn unreadable_directory_is_forbidden() {
    use std::os::unix::fs::PermissionsExt;

    let f = fixture();
    let locked = f.tmp.file("www/locked/inner.txt", b"x");
    let dir = locked.parent().unwrap().to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o000)).unwrap();
    // Root ignores permissions; only check when they apply.
    if fs::metadata(&locked).is_err() {
        assert_eq!(got(&f, b"/locked/inner.txt"), Status(403));
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn errors_carry_offsets() {
    let f = fixture();
    let err = |p: &[u8]| f.root.resolve(p).unwrap_err();
    assert_eq!(err(b"/a/%2e%2e"), PathError::Traversal { offset: 3 });
    assert_eq!(err(b"/ab%2Fc"), PathError::EncodedSlash { offset: 3 });
    assert_eq!(
        err(b"/ab%g0"),
        PathError::BadPath {
            reason: BadPathReason::BadEscape { offset: 3 }
        }
    );
    assert_eq!(
        err(b"/x/%00"),
        PathError::BadPath {
            reason: BadPathReason::Nul { offset: 3 }
        }
    );
    assert_eq!(
        err(b"x"),
        PathError::BadPath {
            reason: BadPathReason::NotAbsolute
        }
    );
}

#[test]
fn overlong_names_and_paths_are_not_found() {
    let f = fixture();
    let long_name = format!("/{}", "x".repeat(MAX_NAME_LEN + 1));
    assert_eq!(got(&f, long_name.as_bytes()), Status(404));
    let deep = "/a".repeat(MAX_PATH_LEN);
    assert_eq!(got(&f, deep.as_bytes()), Status(404));
    let encoded = "%61".repeat(MAX_NAME_LEN);
    assert_eq!(got(&f, format!("/{encoded}").as_bytes()), Status(404));
}

#[test]
fn status_codes() {
    let p = PathBuf::from("/x");
    let cases = [
        (BadPathReason::NotAbsolute.into(), 400),
        (PathError::EncodedSlash { offset: 0 }, 400),
        (PathError::Traversal { offset: 0 }, 400),
        (PathError::Forbidden { path: p.clone() }, 403),
        (PathError::NotFound { path: p.clone() }, 404),
        (
            PathError::Io {
                kind: io::ErrorKind::Other,
                path: p,
            },
            500,
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.status(), want, "{e}");
    }
}

#[test]
fn root_must_be_an_existing_directory() {
    let tmp = TempDir::new("root");
    let file = tmp.file("f.txt", b"x");
    assert_eq!(
        StaticRoot::new(&file).unwrap_err().kind(),
        io::ErrorKind::NotADirectory
    );
    assert_eq!(
        StaticRoot::new(tmp.path().join("missing"))
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    let root = StaticRoot::new(tmp.path()).unwrap();
    assert_eq!(root.path(), fs::canonicalize(tmp.path()).unwrap());
}
