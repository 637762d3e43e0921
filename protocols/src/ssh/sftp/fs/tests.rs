use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ringwork-sftp-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(path.join("root")).unwrap();
        fs::create_dir_all(path.join("outside")).unwrap();
        fs::write(path.join("outside/secret"), b"secret").unwrap();
        Self(path)
    }

    fn root(&self) -> PathBuf {
        self.0.join("root")
    }

    fn outside(&self) -> PathBuf {
        self.0.join("outside")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn session(tmp: &TempDir, read_only: bool) -> RootFs {
    let config = RootFsConfig {
        read_only,
        ..RootFsConfig::default()
    };
    RootFs::new(SftpRoot::new(tmp.root()).unwrap(), config)
}

fn code(response: &Response) -> Option<StatusCode> {
    match response {
        Response::Status { code, .. } => Some(*code),
        _ => None,
    }
}

fn handle(response: Response) -> Bytes {
    match response {
        Response::Handle(h) => h,
        other => panic!("expected a handle, got {other:?}"),
    }
}

fn open(fs: &mut RootFs, path: &str, flags: u32) -> Response {
    fs.execute(Request::Open {
        path: b(path),
        flags,
        attrs: Attrs::default(),
    })
}

fn name(response: Response) -> String {
    match response {
        Response::Name(entries) => String::from_utf8(entries[0].filename.to_vec()).unwrap(),
        other => panic!("expected a name, got {other:?}"),
    }
}

const CREATE: u32 = open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC;

#[test]
fn write_then_read_back() {
    let tmp = TempDir::new("rw");
    let mut fs = session(&tmp, false);
    let h = handle(open(&mut fs, "/dir/../f", CREATE));
    let data = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<_>>());
    let write = fs.execute(Request::Write {
        handle: h.clone(),
        offset: 10,
        data: data.clone(),
    });
    assert_eq!(code(&write), Some(StatusCode::Ok));
    assert_eq!(
        code(&fs.execute(Request::Close { handle: h.clone() })),
        Some(StatusCode::Ok)
    );
    // The closed handle is gone.
    assert_eq!(
        code(&fs.execute(Request::Close { handle: h })),
        Some(StatusCode::Failure)
    );
    assert_eq!(fs::read(tmp.root().join("f")).unwrap()[10..], data[..]);

    let h = handle(open(&mut fs, "f", open_flags::READ));
    let read = fs.execute(Request::Read {
        handle: h.clone(),
        offset: 10,
        len: 1 << 30,
    });
    let Response::Data(got) = read else {
        panic!("{read:?}")
    };
    assert_eq!(got, data);
    let eof = fs.execute(Request::Read {
        handle: h,
        offset: 1 << 20,
        len: 10,
    });
    assert_eq!(code(&eof), Some(StatusCode::Eof));
    assert_eq!(fs.open_handles(), 1);
}

#[test]
fn dot_dot_and_absolute_paths_stay_under_the_root() {
    let tmp = TempDir::new("dotdot");
    let mut fs = session(&tmp, false);
    for path in [
        "../outside/secret",
        "../../../../outside/secret",
        "/../outside/secret",
        tmp.outside().join("secret").to_str().unwrap(),
        "/etc/passwd",
        "../../etc/passwd",
    ] {
        let r = fs.execute(Request::Stat { path: b(path) });
        assert_eq!(code(&r), Some(StatusCode::NoSuchFile), "{path}");
        let r = open(&mut fs, path, open_flags::READ);
        assert_eq!(code(&r), Some(StatusCode::NoSuchFile), "{path}");
    }
    assert_eq!(name(fs.execute(Request::Realpath { path: b("..") })), "/");
    assert_eq!(name(fs.execute(Request::Realpath { path: b(".") })), "/");
    assert_eq!(
        name(fs.execute(Request::Realpath {
            path: b("/a/../../b/./c")
        })),
        "/b/c"
    );
    // Created where the client sees it: under the root.
    let h = handle(open(&mut fs, "../../new", CREATE));
    let _ = fs.execute(Request::Close { handle: h });
    assert!(tmp.root().join("new").exists());
}

#[test]
fn symlinks_out_of_the_root_are_refused_when_followed() {
    let tmp = TempDir::new("symlink");
    std::os::unix::fs::symlink(tmp.outside(), tmp.root().join("out")).unwrap();
    std::os::unix::fs::symlink(tmp.outside().join("secret"), tmp.root().join("s")).unwrap();
    std::os::unix::fs::symlink(tmp.outside().join("nothing"), tmp.root().join("dangling")).unwrap();
    let mut fs = session(&tmp, false);
    let denied = Some(StatusCode::PermissionDenied);
    assert_eq!(code(&open(&mut fs, "s", open_flags::READ)), denied);
    assert_eq!(code(&open(&mut fs, "out/secret", open_flags::READ)), denied);
    assert_eq!(code(&open(&mut fs, "out/secret", CREATE)), denied);
    assert_eq!(code(&fs.execute(Request::Stat { path: b("s") })), denied);
    assert_eq!(
        code(&fs.execute(Request::Opendir { path: b("out") })),
        denied
    );
    assert_eq!(
        code(&fs.execute(Request::Realpath { path: b("out") })),
        denied
    );
    assert_eq!(
        code(&fs.execute(Request::Lstat {
            path: b("out/secret")
        })),
        denied
    );
    assert_eq!(
        code(&fs.execute(Request::Remove {
            path: b("out/secret")
        })),
        denied
    );
    let setstat = Request::Setstat {
        path: b("s"),
        attrs: Attrs {
            permissions: Some(0o777),
            ..Attrs::default()
        },
    };
    assert_eq!(code(&fs.execute(setstat)), denied);
    // Creating through a dangling link would write outside: refused (the link is
    // followed and its target is missing), nothing made.
    assert_eq!(
        code(&open(&mut fs, "dangling", CREATE)),
        Some(StatusCode::NoSuchFile)
    );
    assert!(!tmp.outside().join("nothing").exists());
    // Renaming into the outside directory through the link: refused.
    fs::write(tmp.root().join("mine"), b"x").unwrap();
    let rename = Request::PosixRename {
        from: b("mine"),
        to: b("out/moved"),
    };
    assert_eq!(code(&fs.execute(rename)), denied);
    assert!(!tmp.outside().join("moved").exists());
    // The link itself can be looked at (LSTAT) and removed.
    assert!(matches!(
        fs.execute(Request::Lstat { path: b("s") }),
        Response::Attrs(_)
    ));
    assert_eq!(
        code(&fs.execute(Request::Remove { path: b("s") })),
        Some(StatusCode::Ok)
    );
    assert_eq!(fs::read(tmp.outside().join("secret")).unwrap(), b"secret");
    assert_eq!(fs.open_handles(), 0);
}

#[test]
fn symlinks_inside_the_root_work() {
    let tmp = TempDir::new("inside");
    fs::create_dir(tmp.root().join("d")).unwrap();
    fs::write(tmp.root().join("d/f"), b"data").unwrap();
    let mut fs = session(&tmp, false);
    // An absolute target is the client's `/`: stored under the root.
    let r = fs.execute(Request::Symlink {
        link: b("abs"),
        target: b("/d/f"),
    });
    assert_eq!(code(&r), Some(StatusCode::Ok));
    assert_eq!(
        fs::read_link(tmp.root().join("abs")).unwrap(),
        fs::canonicalize(tmp.root()).unwrap().join("d/f")
    );
    assert_eq!(
        name(fs.execute(Request::Readlink { path: b("abs") })),
        "/d/f"
    );
    let r = fs.execute(Request::Symlink {
        link: b("rel"),
        target: b("d"),
    });
    assert_eq!(code(&r), Some(StatusCode::Ok));
    assert_eq!(name(fs.execute(Request::Readlink { path: b("rel") })), "d");
    assert_eq!(
        name(fs.execute(Request::Realpath { path: b("rel/f") })),
        "/d/f"
    );
    let h = handle(open(&mut fs, "abs", open_flags::READ));
    let read = fs.execute(Request::Read {
        handle: h,
        offset: 0,
        len: 100,
    });
    assert_eq!(read, Response::Data(b("data")));
}

#[test]
fn read_only_refuses_every_change() {
    let tmp = TempDir::new("ro");
    fs::create_dir(tmp.root().join("d")).unwrap();
    fs::write(tmp.root().join("f"), b"keep").unwrap();
    let mut fs = session(&tmp, true);
    let denied = Some(StatusCode::PermissionDenied);
    let attrs = Attrs {
        permissions: Some(0o600),
        ..Attrs::default()
    };
    for flags in [
        open_flags::WRITE,
        open_flags::READ | open_flags::APPEND,
        open_flags::READ | open_flags::CREAT,
        open_flags::READ | open_flags::TRUNC,
    ] {
        assert_eq!(code(&open(&mut fs, "f", flags)), denied, "flags {flags:#x}");
    }
    let h = handle(open(&mut fs, "f", open_flags::READ));
    let changes = [
        Request::Write {
            handle: h.clone(),
            offset: 0,
            data: b("x"),
        },
        Request::Setstat {
            path: b("f"),
            attrs: attrs.clone(),
        },
        Request::Fsetstat {
            handle: h.clone(),
            attrs: attrs.clone(),
        },
        Request::Remove { path: b("f") },
        Request::Mkdir {
            path: b("new"),
            attrs,
        },
        Request::Rmdir { path: b("d") },
        Request::Rename {
            from: b("f"),
            to: b("g"),
        },
        Request::PosixRename {
            from: b("f"),
            to: b("g"),
        },
        Request::Hardlink {
            from: b("f"),
            to: b("g"),
        },
        Request::Symlink {
            link: b("l"),
            target: b("f"),
        },
    ];
    for request in changes {
        assert_eq!(code(&fs.execute(request.clone())), denied, "{request:?}");
    }
    assert_eq!(fs::read(tmp.root().join("f")).unwrap(), b"keep");
    assert!(tmp.root().join("d").is_dir());
    assert!(!tmp.root().join("g").exists());
    // Reading still works.
    let read = fs.execute(Request::Read {
        handle: h,
        offset: 0,
        len: 10,
    });
    assert_eq!(read, Response::Data(b("keep")));
}

#[test]
fn handles_are_bounded_and_not_reused_after_close() {
    let tmp = TempDir::new("handles");
    fs::write(tmp.root().join("f"), b"x").unwrap();
    let config = RootFsConfig {
        max_handles: 2,
        ..RootFsConfig::default()
    };
    let mut fs = RootFs::new(SftpRoot::new(tmp.root()).unwrap(), config);
    let a = handle(open(&mut fs, "f", open_flags::READ));
    let _b = handle(fs.execute(Request::Opendir { path: b("/") }));
    assert_eq!(
        code(&open(&mut fs, "f", open_flags::READ)),
        Some(StatusCode::Failure)
    );
    assert_eq!(
        code(&fs.execute(Request::Opendir { path: b("/") })),
        Some(StatusCode::Failure)
    );
    let _ = fs.execute(Request::Close { handle: a.clone() });
    let c = handle(open(&mut fs, "f", open_flags::READ));
    assert_ne!(a, c, "a new generation in the same slot");
    let stale = fs.execute(Request::Read {
        handle: a,
        offset: 0,
        len: 1,
    });
    assert_eq!(code(&stale), Some(StatusCode::Failure));
    for bogus in [&b""[..], b"1234567", b"\xff\xff\xff\xff\0\0\0\x01"] {
        let r = fs.execute(Request::Fstat {
            handle: Bytes::copy_from_slice(bogus),
        });
        assert_eq!(code(&r), Some(StatusCode::Failure));
    }
}

#[test]
fn readdir_lists_in_batches_then_eof() {
    let tmp = TempDir::new("readdir");
    for i in 0..250 {
        fs::write(tmp.root().join(format!("f{i}")), b"").unwrap();
    }
    let mut fs = session(&tmp, false);
    let h = handle(fs.execute(Request::Opendir { path: b("/") }));
    let mut names = Vec::new();
    loop {
        match fs.execute(Request::Readdir { handle: h.clone() }) {
            Response::Name(entries) => {
                assert!(entries.len() <= READDIR_BATCH);
                for e in entries {
                    assert!(e.longname.starts_with(b"-rw"), "{:?}", e.longname);
                    assert!(e.longname.ends_with(&e.filename));
                    names.push(e.filename);
                }
            }
            other => {
                assert_eq!(code(&other), Some(StatusCode::Eof));
                break;
            }
        }
    }
    assert_eq!(names.len(), 250);
}

#[test]
fn rename_mkdir_rmdir_remove_setstat() {
    let tmp = TempDir::new("ops");
    let root = tmp.root();
    fs::write(root.join("a"), b"a").unwrap();
    fs::write(root.join("b"), b"b").unwrap();
    let mut fs = session(&tmp, false);
    let ok = Some(StatusCode::Ok);
    let rename = |from: &str, to: &str| Request::Rename {
        from: b(from),
        to: b(to),
    };
    assert_eq!(
        code(&fs.execute(rename("a", "b"))),
        Some(StatusCode::Failure)
    );
    assert_eq!(code(&fs.execute(rename("a", "c"))), ok);
    let posix = Request::PosixRename {
        from: b("c"),
        to: b("b"),
    };
    assert_eq!(code(&fs.execute(posix)), ok);
    assert_eq!(fs::read(root.join("b")).unwrap(), b"a");
    let mkdir = Request::Mkdir {
        path: b("d"),
        attrs: Attrs {
            permissions: Some(0o700),
            ..Attrs::default()
        },
    };
    assert_eq!(code(&fs.execute(mkdir)), ok);
    assert_eq!(
        fs::metadata(root.join("d")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(code(&fs.execute(Request::Rmdir { path: b("d") })), ok);
    // The root itself cannot be removed or renamed.
    let denied = Some(StatusCode::PermissionDenied);
    assert_eq!(code(&fs.execute(Request::Rmdir { path: b("/") })), denied);
    assert_eq!(code(&fs.execute(Request::Rmdir { path: b("..") })), denied);
    assert_eq!(code(&fs.execute(rename("/", "x"))), denied);
    let setstat = Request::Setstat {
        path: b("b"),
        attrs: Attrs {
            size: Some(0),
            permissions: Some(0o640),
            atime_mtime: Some((1_000_000, 2_000_000)),
            ..Attrs::default()
        },
    };
    assert_eq!(code(&fs.execute(setstat)), ok);
    let Response::Attrs(attrs) = fs.execute(Request::Stat { path: b("b") }) else {
        panic!()
    };
    assert_eq!(attrs.size, Some(0));
    assert_eq!(attrs.permissions.map(|m| m & 0o7777), Some(0o640));
    assert_eq!(attrs.atime_mtime, Some((1_000_000, 2_000_000)));
    assert_eq!(code(&fs.execute(Request::Remove { path: b("b") })), ok);
    assert_eq!(
        code(&fs.execute(Request::Remove { path: b("b") })),
        Some(StatusCode::NoSuchFile)
    );
    let Response::StatVfs(vfs) = fs.execute(Request::Statvfs { path: b("/") }) else {
        panic!("statvfs answered otherwise")
    };
    assert!(vfs.blocks > 0 && vfs.max_name_len >= 255, "{vfs:?}");
}

#[test]
fn exclusive_create_and_only_regular_files_open() {
    let tmp = TempDir::new("excl");
    fs::create_dir(tmp.root().join("d")).unwrap();
    let mut fs = session(&tmp, false);
    let excl = open_flags::WRITE | open_flags::CREAT | open_flags::EXCL;
    let _ = handle(open(&mut fs, "x", excl));
    assert_eq!(code(&open(&mut fs, "x", excl)), Some(StatusCode::Failure));
    assert_eq!(
        code(&open(&mut fs, "d", open_flags::READ)),
        Some(StatusCode::Failure)
    );
    // A FIFO would block the open (no writer) and then every read: refused at once.
    let root = std::fs::File::open(tmp.root()).unwrap();
    rustix::fs::mknodat(
        &root,
        "fifo",
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o600),
        0,
    )
    .unwrap();
    assert_eq!(
        open(&mut fs, "fifo", open_flags::READ),
        Response::status(StatusCode::Failure, "not a regular file")
    );
    assert_eq!(fs.open_handles(), 1);
}

#[test]
fn bad_paths_are_refused() {
    let tmp = TempDir::new("bad");
    let mut fs = session(&tmp, false);
    let long = "a".repeat(256);
    for path in ["a\0b", long.as_str()] {
        let r = fs.execute(Request::Stat { path: b(path) });
        assert_eq!(code(&r), Some(StatusCode::Failure), "{path}");
    }
    let r = fs.execute(Request::Symlink {
        link: b("l"),
        target: b("x\0y"),
    });
    assert_eq!(code(&r), Some(StatusCode::Failure));
}

#[test]
fn ls_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    let now = 1_765_000_000; // 2025-12-06
    assert_eq!(ls_date(now - 3600, now), "Dec  6 04:46");
    assert_eq!(ls_date(0, now), "Jan  1  1970");
    let _ = Path::new("/");
}

/// The window between the path check and the use: a directory checked as inside the root is
/// swapped for a symlink to the outside before the open (as a second session racing this
/// one could). The open beneath the root's descriptor must refuse, and create nothing
/// outside.
#[test]
fn a_directory_swapped_for_a_symlink_after_the_check_is_refused() {
    use rustix::fs::{Mode, OFlags};

    let tmp = TempDir::new("race");
    fs::create_dir(tmp.root().join("d")).unwrap();
    fs::write(tmp.root().join("d/f"), b"inside").unwrap();
    let root = SftpRoot::new(tmp.root()).unwrap();
    let existing = root.follow(b"d/f").unwrap();
    let new = root.entry(b"d/new").unwrap();
    // The swap.
    fs::rename(tmp.root().join("d"), tmp.root().join("d.old")).unwrap();
    std::os::unix::fs::symlink(tmp.outside(), tmp.root().join("d")).unwrap();
    fs::write(tmp.outside().join("f"), b"outside").unwrap();

    let read = root.open_beneath(&existing, OFlags::RDONLY, Mode::empty());
    let create = root.open_beneath(
        &new,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_bits_truncate(0o644),
    );
    let parent = root.parent_beneath(&new);
    if cfg!(target_os = "linux")
        && rustix::fs::openat2(
            rustix::fs::CWD,
            ".",
            OFlags::RDONLY,
            Mode::empty(),
            rustix::fs::ResolveFlags::BENEATH,
        )
        .is_ok()
    {
        for result in [read.map(drop), create.map(drop), parent.map(drop)] {
            let error = result.expect_err("an open through the swapped-in symlink");
            assert_eq!(error.kind(), io::ErrorKind::CrossesDevices);
        }
        assert!(!tmp.outside().join("new").exists());
    } else {
        eprintln!("skipped: openat2 is not available, the race stays open here");
    }
    // And the error the client sees.
    assert_eq!(
        io_status(io::Error::from(io::ErrorKind::CrossesDevices)),
        Response::status(StatusCode::PermissionDenied, "path leaves the root")
    );
}

#[test]
fn copy_data_between_handles() {
    let tmp = TempDir::new("copy");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(tmp.root().join("src"), &data).unwrap();
    let mut fs = session(&tmp, false);
    let from = handle(open(&mut fs, "src", open_flags::READ));
    let to = handle(open(&mut fs, "dst", CREATE));
    let copy = |from: &Bytes, from_offset, len, to: &Bytes, to_offset| Request::CopyData {
        from: from.clone(),
        from_offset,
        len,
        to: to.clone(),
        to_offset,
    };
    // All of it (length 0: to the end), then a slice to an offset.
    assert_eq!(
        code(&fs.execute(copy(&from, 0, 0, &to, 0))),
        Some(StatusCode::Ok)
    );
    assert_eq!(fs::read(tmp.root().join("dst")).unwrap(), data);
    assert_eq!(
        code(&fs.execute(copy(&from, 10, 5, &to, 300_000))),
        Some(StatusCode::Ok)
    );
    let copied = fs::read(tmp.root().join("dst")).unwrap();
    assert_eq!(copied.len(), 300_005);
    assert_eq!(copied[300_000..], data[10..15]);
    // Within one file: overlapping ranges refused, disjoint ones copied.
    let both = handle(open(&mut fs, "src", open_flags::READ | open_flags::WRITE));
    assert_eq!(
        code(&fs.execute(copy(&both, 0, 100, &both, 50))),
        Some(StatusCode::Failure)
    );
    assert_eq!(
        code(&fs.execute(copy(&both, 0, 0, &both, 1_000_000))),
        Some(StatusCode::Failure)
    );
    assert_eq!(
        code(&fs.execute(copy(&both, 0, 100, &both, 100))),
        Some(StatusCode::Ok)
    );
    // A read-only handle cannot be written to.
    assert_eq!(
        code(&fs.execute(copy(&to, 0, 10, &from, 0))),
        Some(StatusCode::Failure)
    );
}

#[test]
fn expand_path_takes_the_root_as_home() {
    let tmp = TempDir::new("expand");
    fs::create_dir(tmp.root().join("d")).unwrap();
    let mut fs = session(&tmp, false);
    let expand = |fs: &mut RootFs, path: &str| fs.execute(Request::ExpandPath { path: b(path) });
    assert_eq!(name(expand(&mut fs, "~")), "/");
    assert_eq!(name(expand(&mut fs, "~/d/../d")), "/d");
    assert_eq!(name(expand(&mut fs, "d")), "/d");
    assert_eq!(name(expand(&mut fs, "~/../..")), "/");
    assert_eq!(
        code(&expand(&mut fs, "~root/x")),
        Some(StatusCode::NoSuchFile)
    );
}

/// LSTAT of the root (`/`, `.`, `/.`, `..`) answers the root directory's attributes: OpenSSH's
/// `ls /` and `ls .` ask for it (it has no name in a parent, which LSTAT of others uses).
#[test]
fn lstat_of_the_root_is_the_root_directory() {
    let tmp = TempDir::new("lstat-root");
    let mut fs = session(&tmp, false);
    for path in ["/", ".", "/.", "..", ""] {
        match fs.execute(Request::Lstat { path: b(path) }) {
            Response::Attrs(attrs) => {
                let mode = attrs.permissions.expect("permissions");
                assert_eq!(mode & 0o170_000, 0o040_000, "{path:?} is a directory");
            }
            other => panic!("{path:?}: {other:?}"),
        }
    }
}
