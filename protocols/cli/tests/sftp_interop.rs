//! `ringwork sftp-server` against OpenSSH's own `sftp` client, without ssh: `sftp -D
//! "ringwork sftp-server --root DIR" -b BATCH` runs the server on the client's pipes, as an
//! SSH server's `sftp` subsystem would. Put/get of 10 MiB compared byte for byte, ls,
//! rename, rm, mkdir, rmdir, chmod, symlink, ln, cp, df, put -f; escapes refused (`..`, absolute paths, a
//! symlink to a directory outside the root); `--read-only`; an oversized packet closes.
//!
//! The SFTP server runs no reactor (blocking file I/O in a process per session, as
//! OpenSSH's), so there is no backend to choose and each test runs once.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use support::{LIMIT, TempDir, peer};

/// Whether OpenSSH's `sftp` is installed; under CI=true a missing client is a failure.
fn have_sftp() -> bool {
    peer(
        "sh",
        &["-c", "command -v sftp"],
        "install-sftp-test-deps.sh",
    )
}

/// Waits for `child` with [`LIMIT`] as the failure bound: past it, the child is killed.
fn wait_bounded(child: std::process::Child) -> Output {
    let pid = child.id().to_string();
    let (done, watchdog) = mpsc::channel::<()>();
    let guard = thread::spawn(move || {
        if watchdog.recv_timeout(LIMIT * 3).is_err() {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            return true;
        }
        false
    });
    let output = child.wait_with_output().expect("wait for the child");
    let _ = done.send(());
    assert!(
        !guard.join().unwrap(),
        "the child ran past the limit and was killed"
    );
    output
}

/// Runs `sftp -b` with `batch` against `ringwork sftp-server --root root extra..`, in `cwd`.
fn sftp(root: &Path, extra: &str, cwd: &Path, batch: &str) -> Output {
    let batch_file = cwd.join("batch");
    std::fs::write(&batch_file, batch).unwrap();
    let server = format!(
        "{} sftp-server --root {} {extra}",
        env!("CARGO_BIN_EXE_ringwork"),
        root.display()
    );
    let child = Command::new("sftp")
        .arg("-D")
        .arg(server)
        .arg("-b")
        .arg(&batch_file)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sftp");
    let output = wait_bounded(child);
    eprintln!(
        "--- sftp stdout:\n{}--- sftp stderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `len` bytes from a xorshift generator: no period a misplaced block could hide in.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn setup(name: &str) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = TempDir::new(name);
    let root = dir.0.join("root");
    let local = dir.0.join("local");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&local).unwrap();
    (dir, root, local)
}

#[test]
fn put_get_ls_rename_rm_mkdir_rmdir_chmod_symlink() {
    if !have_sftp() {
        return;
    }
    let (_dir, root, local) = setup("sftp-ops");
    let data = noise(10 * 1024 * 1024);
    std::fs::write(local.join("big"), &data).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello\n").unwrap();
    let output = sftp(
        &root,
        "",
        &local,
        "pwd\n\
         put big\n\
         get big big.back\n\
         ls -l\n\
         rename big big2\n\
         mkdir d1\n\
         mkdir d2\n\
         rmdir d1\n\
         put -f big d2/copy\n\
         chmod 600 hello.txt\n\
         ln hello.txt hard\n\
         cp hello.txt copied.txt\n\
         df /\n\
         symlink hello.txt link\n\
         get link via-link\n\
         rm d2/copy\n\
         ls\n",
    );
    assert!(output.status.success(), "sftp failed: {:?}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Remote working directory: /\n"), "{stdout}");
    assert!(
        stdout.contains(" 10485760 ") && stdout.contains(" big\n"),
        "ls -l shows the size and name: {stdout}"
    );
    let back = std::fs::read(local.join("big.back")).unwrap();
    assert!(back == data, "get returned other bytes than put sent");
    assert!(std::fs::read(root.join("big2")).unwrap() == data);
    assert!(!root.join("big").exists());
    assert!(!root.join("d1").exists());
    assert!(root.join("d2").is_dir());
    assert!(!root.join("d2/copy").exists());
    let mode = std::fs::metadata(root.join("hello.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_link(root.join("link")).unwrap(),
        Path::new("hello.txt")
    );
    assert_eq!(std::fs::read(local.join("via-link")).unwrap(), b"hello\n");
    // ln: hardlink@openssh.com; df: statvfs@openssh.com (its header line); put -f:
    // fsync@openssh.com (OpenSSH's client says nothing when it succeeds).
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(root.join("hard")).unwrap().ino(),
        std::fs::metadata(root.join("hello.txt")).unwrap().ino()
    );
    assert!(
        stdout.contains("Avail"),
        "df shows the filesystem: {stdout}"
    );
}

#[test]
fn escapes_are_refused_and_absolute_paths_stay_inside() {
    if !have_sftp() {
        return;
    }
    let (dir, root, local) = setup("sftp-escape");
    let outside = dir.0.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/passwd"), b"inside the root\n").unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etclink")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("outlink")).unwrap();
    std::fs::write(local.join("payload"), b"payload").unwrap();
    // `-` before a command: a failure does not end the batch.
    let output = sftp(
        &root,
        "",
        &local,
        "-get ../../etc/passwd dotdot\n\
         -get /etc/passwd absolute\n\
         -get etclink/passwd via-etclink\n\
         -get outlink/secret via-outlink\n\
         -put payload outlink/planted\n\
         -put payload ../../planted\n\
         -cd etclink\n\
         -ls outlink\n\
         -rename etc/passwd outlink/moved\n\
         -symlink /etc/passwd abs-link\n\
         -get abs-link via-abs-link\n",
    );
    assert!(output.status.success(), "{:?}", output.status);
    // `..` stops at the root, `/` is the root: both name ROOT/etc/passwd.
    assert_eq!(
        std::fs::read(local.join("dotdot")).unwrap(),
        b"inside the root\n"
    );
    assert_eq!(
        std::fs::read(local.join("absolute")).unwrap(),
        b"inside the root\n"
    );
    // A symlink to a directory outside is refused when followed.
    assert!(!local.join("via-etclink").exists());
    assert!(!local.join("via-outlink").exists());
    assert!(!outside.join("planted").exists());
    assert!(!outside.join("moved").exists());
    assert!(root.join("etc/passwd").exists());
    // `put ../../planted` lands in the root, not two levels up.
    assert!(root.join("planted").exists());
    assert!(!dir.0.join("planted").exists());
    // An absolute symlink target is the client's `/`: it points inside the root.
    assert_eq!(
        std::fs::read(local.join("via-abs-link")).unwrap(),
        b"inside the root\n"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("path leaves the root"), "{stderr}");
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
}

#[test]
fn read_only_refuses_changes_and_serves_reads() {
    if !have_sftp() {
        return;
    }
    let (_dir, root, local) = setup("sftp-ro");
    std::fs::write(root.join("f"), b"keep").unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    std::fs::write(local.join("new"), b"new").unwrap();
    let output = sftp(
        &root,
        "--read-only",
        &local,
        "-put new\n\
         -rm f\n\
         -mkdir m\n\
         -rmdir d\n\
         -rename f g\n\
         -chmod 777 f\n\
         -symlink f l\n\
         get f got\n",
    );
    assert!(output.status.success(), "{:?}", output.status);
    assert_eq!(std::fs::read(local.join("got")).unwrap(), b"keep");
    let names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "nothing added or removed: {names:?}");
    assert_eq!(std::fs::read(root.join("f")).unwrap(), b"keep");
    let mode = std::fs::metadata(root.join("f"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o777);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
}

/// Sends `INIT`, then a packet whose length field is over 256 KiB: the server answers the
/// INIT, then closes (stdout ends) and exits 0 without reading the body.
#[test]
fn an_oversized_packet_closes_the_session() {
    let (_dir, root, _local) = setup("sftp-oversized");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["sftp-server", "--root"])
        .arg(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringwork sftp-server");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[0, 0, 0, 5, 1, 0, 0, 0, 3]).unwrap();
    stdin.write_all(&(256 * 1024 + 1u32).to_be_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        stdout.read_to_end(&mut all).map(|_| all)
    });
    // stdin stays open: the close must come from the server, not from our EOF.
    let output = wait_bounded(child);
    drop(stdin);
    let sent = reader.join().unwrap().unwrap();
    assert_eq!(sent[4], 2, "the first packet is SSH_FXP_VERSION");
    let version_len = 4 + u32::from_be_bytes(sent[..4].try_into().unwrap()) as usize;
    assert_eq!(sent.len(), version_len, "nothing after the VERSION");
    assert!(output.status.success(), "{:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("over the limit"), "{stderr}");
}

#[test]
fn a_missing_root_is_an_error() {
    let (dir, _root, _local) = setup("sftp-noroot");
    let output = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["sftp-server", "--root"])
        .arg(dir.0.join("nothing"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--root"), "{stderr}");
}

/// OpenSSH's `scp`, which speaks SFTP since 9.0: `scp -D PROGRAM` runs the server directly
/// (a path without arguments, hence the wrapper script). 1 MiB up and back down, `~/` paths,
/// and `../../etc/passwd` not found under the root.
#[test]
fn scp_in_sftp_mode() {
    if !have_sftp() {
        return;
    }
    let (dir, root, local) = setup("sftp-scp");
    let wrapper = dir.0.join("server.sh");
    std::fs::write(
        &wrapper,
        format!(
            // Quoted: the temporary directory's name holds `(` and `)`.
            "#!/bin/sh\nexec '{}' sftp-server --root '{}'\n",
            env!("CARGO_BIN_EXE_ringwork"),
            root.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.join("in")).unwrap();
    let data = noise(1024 * 1024);
    std::fs::write(local.join("up"), &data).unwrap();
    let scp = |from: &str, to: &str| {
        let child = Command::new("scp")
            .arg("-D")
            .arg(&wrapper)
            .args([from, to])
            .current_dir(&local)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run scp");
        wait_bounded(child)
    };
    let up = scp("up", "x:in/up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(std::fs::read(root.join("in/up")).unwrap() == data);
    assert!(scp("x:~/in/up", "down").status.success());
    assert!(std::fs::read(local.join("down")).unwrap() == data);
    let escape = scp("x:../../etc/passwd", "passwd");
    assert!(!escape.status.success());
    assert!(!local.join("passwd").exists());
}

/// Paramiko's SFTP client (a second implementation, in Python) over a socket pair whose
/// other end is the server's stdin and stdout: 10 MiB pipelined write and prefetched read
/// with a SHA-256 checksum, mkdir, posix-rename, listdir, chmod, symlink/readlink/lstat,
/// remove, rmdir, normalize; a symlink to /etc refused, /etc/passwd not found under the root.
const PARAMIKO_SESSION: &str = r#"
import hashlib, os, select, socket, stat, subprocess, sys
import paramiko

exe, root = sys.argv[1:3]
ours, theirs = socket.socketpair()
server = subprocess.Popen([exe, "sftp-server", "--root", root], stdin=theirs, stdout=theirs)
theirs.close()

class Pipe:
    """The socket as paramiko's SFTPClient wants its channel (it logs get_name())."""
    def __init__(self, sock):
        self.sock = sock
    def send(self, data):
        return self.sock.send(data)
    def recv(self, n):
        return self.sock.recv(n)
    def close(self):
        self.sock.close()
    def get_name(self):
        return "ringwork-sftp-server"
    def recv_ready(self):
        return bool(select.select([self.sock], [], [], 0)[0])

sftp = paramiko.SFTPClient(Pipe(ours))

data = os.urandom(10 * 1024 * 1024)
with sftp.open("big", "wb") as f:
    f.set_pipelined(True)
    f.write(data)
with sftp.open("big", "rb") as f:
    f.prefetch()
    back = f.read()
assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest(), "checksum"
assert sftp.stat("big").st_size == len(data)

sftp.mkdir("d")
assert stat.S_ISDIR(sftp.stat("d").st_mode)
sftp.posix_rename("big", "d/big2")
assert sftp.listdir("d") == ["big2"], sftp.listdir("d")
sftp.chmod("d/big2", 0o600)
assert sftp.stat("d/big2").st_mode & 0o777 == 0o600
sftp.symlink("d/big2", "ln")
assert sftp.readlink("ln") == "d/big2"
assert stat.S_ISLNK(sftp.lstat("ln").st_mode)
sftp.remove("ln")
sftp.remove("d/big2")
sftp.rmdir("d")
assert sftp.normalize("../..") == "/"

def refused(call, *args):
    try:
        call(*args)
    except PermissionError:
        return
    raise AssertionError(f"{call.__name__}{args} was not refused")

refused(sftp.stat, "etclink/passwd")
refused(sftp.open, "etclink/passwd")
refused(sftp.listdir, "etclink")
try:
    sftp.stat("/etc/passwd")
    raise AssertionError("/etc/passwd is not under the root")
except FileNotFoundError:
    pass

sftp.close()
ours.close()
print("paramiko", paramiko.__version__, "exit", server.wait(timeout=20))
"#;

#[test]
fn paramiko_client() {
    if !peer(
        "python3",
        &["-c", "import paramiko"],
        "install-sftp-test-deps.sh",
    ) {
        return;
    }
    let (_dir, root, _local) = setup("sftp-paramiko");
    std::os::unix::fs::symlink("/etc", root.join("etclink")).unwrap();
    let child = Command::new("python3")
        .args(["-c", PARAMIKO_SESSION, env!("CARGO_BIN_EXE_ringwork")])
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let output = wait_bounded(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("exit 0"), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        1,
        "only etclink is left"
    );
}
