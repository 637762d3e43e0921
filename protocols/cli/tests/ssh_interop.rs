//! `ringwork serve ssh` against OpenSSH's `ssh` client, on both backends: exec with exit
//! codes under Ed25519, RSA (rsa-sha2) and ECDSA keys, a key not in authorized_keys
//! refused, both ciphers, re-keying under a small RekeyLimit, password login through
//! `--users` (right and wrong password), a shell on a PTY (`ssh -tt`), and `ssh -L`
//! carrying 100 MiB with a checksum, and OpenSSH's `sftp` and `scp` through the `sftp`
//! subsystem (`--sftp-root`, which runs `ringwork sftp-server`).

#[macro_use]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Server, TempDir, backend};

/// Whether OpenSSH's client is here; under CI=true a missing peer is a failure.
fn have_ssh() -> bool {
    let ok = Command::new("ssh")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ssh is missing: scripts/install-ssh-test-deps.sh installs it"
        );
        eprintln!("skipped: OpenSSH is not installed (scripts/install-ssh-test-deps.sh)");
    }
    ok
}

fn keygen(dir: &Path, name: &str, kind: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .args(kind)
        .stdout(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success());
    path
}

struct Setup {
    _dir: TempDir,
    dir: PathBuf,
    server: Server,
    port: u16,
}

fn setup(name: &str, backend: &str) -> Setup {
    setup_with(name, backend, |_| Vec::new())
}

/// [`setup`] with more `serve ssh` arguments, made from the setup's directory.
fn setup_with(name: &str, backend: &str, extra: impl FnOnce(&Path) -> Vec<String>) -> Setup {
    let dir = TempDir::new(&format!("ssh-{name}-{backend}"));
    let path = dir.0.clone();
    let mut authorized = String::new();
    for (key, kind) in [
        ("id_ed25519", &["-t", "ed25519"][..]),
        ("id_rsa", &["-t", "rsa", "-b", "2048"]),
        ("id_ecdsa", &["-t", "ecdsa", "-b", "256"]),
    ] {
        let key = keygen(&path, key, kind);
        authorized.push_str(&std::fs::read_to_string(key.with_extension("pub")).unwrap());
    }
    keygen(&path, "id_other", &["-t", "ed25519"]);
    std::fs::write(path.join("authorized_keys"), authorized).unwrap();
    // A password user for --users.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["passwd", "--file"])
        .arg(path.join("users"))
        .arg("alice")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ringwork passwd");
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    assert!(child.wait().unwrap().success());
    let host_key = path.join("host_key");
    let authorized_path = path.join("authorized_keys");
    let users_path = path.join("users");
    let args = [
        "serve",
        "ssh",
        "--backend",
        backend,
        "--cores",
        "1",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--host-key",
        host_key.to_str().unwrap(),
        "--authorized-keys",
        authorized_path.to_str().unwrap(),
        "--users",
        users_path.to_str().unwrap(),
    ];
    let extra = extra(&path);
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect();
    let mut server = Server::start(&args);
    let port = server.listening(1)[0].port().expect("a TCP port");
    // The host key was generated, owner-only, in OpenSSH's format.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&host_key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let public = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&host_key)
        .output()
        .unwrap();
    assert!(public.status.success(), "ssh-keygen -y reads the host key");
    let known = format!(
        "[127.0.0.1]:{port} {}",
        String::from_utf8_lossy(&public.stdout)
    );
    std::fs::write(path.join("known_hosts"), known).unwrap();
    Setup {
        _dir: dir,
        dir: path,
        server,
        port,
    }
}

impl Setup {
    /// `ssh` with this setup's known_hosts (strict checking) and no agent or config.
    fn ssh(&self, key: &str, extra: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            self.dir.join("known_hosts").display()
        ))
        .arg("-i")
        .arg(self.dir.join(key))
        .args(["-p", &self.port.to_string()])
        .args(extra)
        .env_remove("SSH_AUTH_SOCK");
        c
    }

    fn run(&self, key: &str, extra: &[&str], command: &str) -> Output {
        let mut c = self.ssh(key, extra);
        c.arg("alice@127.0.0.1").arg(command).stdin(Stdio::null());
        c.output().expect("run ssh")
    }
}

fn openssh_exec_auth_and_rekey(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    let s = setup("exec", backend);
    for key in ["id_ed25519", "id_rsa", "id_ecdsa"] {
        let out = s.run(key, &[], "echo hello; echo oops >&2; exit 3");
        assert_eq!(
            out.status.code(),
            Some(3),
            "{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"hello\n", "{key}");
        assert_eq!(out.stderr, b"oops\n", "{key}");
    }
    let out = s.run("id_other", &[], "true");
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    for cipher in ["aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"] {
        let out = s.run("id_ed25519", &["-c", cipher], "echo $((6*7))");
        assert_eq!(out.stdout, b"42\n", "{cipher}");
    }
    // Re-keying every 64 KiB while 3 MB flow each way.
    let out = s.run(
        "id_ed25519",
        &["-o", "RekeyLimit=64K"],
        "head -c 3000000 /dev/zero | tr '\\0' x",
    );
    assert_eq!(out.stdout.len(), 3_000_000);
    assert!(out.stdout.iter().all(|&b| b == b'x'));
    // Password through --users (SSH_ASKPASS answers the prompt).
    for (password, code) in [("s3cret", Some(0)), ("wrong", Some(255))] {
        let askpass = s.dir.join(format!("askpass-{password}"));
        std::fs::write(&askpass, format!("#!/bin/sh\necho {password}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut c = Command::new("ssh");
        c.args([
            "-F",
            "/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ])
        .args([
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            s.dir.join("known_hosts").display()
        ))
        .args(["-p", &s.port.to_string(), "alice@127.0.0.1", "true"])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null());
        let out = c.output().expect("run ssh");
        assert_eq!(
            out.status.code(),
            code,
            "password {password}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(s.server);
}

/// `ssh-keygen -y` of `key` (with its passphrase): the public key line.
fn public_of(key: &Path, passphrase: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(key)
        .output()
        .expect("run ssh-keygen -y");
    assert!(out.status.success(), "ssh-keygen -y {}", key.display());
    String::from_utf8(out.stdout).unwrap()
}

fn openssh_ecdsa_host_keys(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    // Four host keys: the generated Ed25519 one of `setup`, an ECDSA P-256 key made by
    // `ssh-keygen -N` (encrypted, its passphrase in a file), an ECDSA P-384 key generated
    // by the server (`--host-key-type ecdsa384` at its position), an RSA key made by
    // ssh-keygen (offered as rsa-sha2-512 and rsa-sha2-256).
    let s = setup_with("hostkeys", backend, |dir| {
        let encrypted = dir.join("host_ecdsa");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-b", "256", "-N", "pass phrase", "-f"])
            .arg(&encrypted)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::write(dir.join("passphrase"), "pass phrase\n").unwrap();
        let rsa = keygen(dir, "host_rsa", &["-t", "rsa", "-b", "2048"]);
        [
            "--host-key",
            encrypted.to_str().unwrap(),
            "--host-key",
            dir.join("host_ecdsa384").to_str().unwrap(),
            "--host-key",
            rsa.to_str().unwrap(),
            "--host-key-type",
            "ed25519",
            "--host-key-type",
            "ecdsa",
            "--host-key-type",
            "ecdsa384",
            "--host-key-passphrase-file",
            dir.join("passphrase").to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    });
    let mut known = std::fs::read_to_string(s.dir.join("known_hosts")).unwrap();
    for (key, passphrase) in [
        ("host_ecdsa", "pass phrase"),
        ("host_ecdsa384", ""),
        ("host_rsa", ""),
    ] {
        known.push_str(&format!(
            "\n[127.0.0.1]:{} {}",
            s.port,
            public_of(&s.dir.join(key), passphrase)
        ));
    }
    std::fs::write(s.dir.join("known_hosts"), known).unwrap();
    // OpenSSH checks the host key of the type it asked for against known_hosts: a server
    // signing with another key would fail the exchange.
    for alg in [
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-ed25519",
    ] {
        let out = s.run(
            "id_ecdsa",
            &["-o", &format!("HostKeyAlgorithms={alg}")],
            "echo ok",
        );
        assert_eq!(
            out.stdout,
            b"ok\n",
            "{alg}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A wrong passphrase stops the server at start, saying so.
    std::fs::write(s.dir.join("wrong"), "nope\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["serve", "ssh", "--backend", backend, "--host-key"])
        .arg(s.dir.join("host_ecdsa"))
        .arg("--host-key-passphrase-file")
        .arg(s.dir.join("wrong"))
        .arg("--authorized-keys")
        .arg(s.dir.join("authorized_keys"))
        .args(["--listen", "tcp:0:interface=127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("wrong passphrase"), "{err}");
}

fn openssh_authorized_keys_options(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    // Two targets for `ssh -W` that greet each connection: permitopen names the first.
    let greeter = || {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = target.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in target.incoming() {
                let Ok(mut conn) = conn else { break };
                let _ = conn.write_all(b"greetings\n");
            }
        });
        port
    };
    let (target_port, other_port) = (greeter(), greeter());
    let s = setup_with("options", backend, |dir| {
        let public = |key: &str| std::fs::read_to_string(dir.join(format!("{key}.pub"))).unwrap();
        let lines = format!(
            "command=\"echo forced:$SSH_ORIGINAL_COMMAND\",no-pty {}\
             from=\"127.0.0.0/8,!127.0.0.2\",permitopen=\"127.0.0.1:{target_port}\" {}\
             restrict {}\
             environment=\"A=b\" {}",
            public("id_ed25519"),
            public("id_rsa"),
            public("id_ecdsa"),
            public("id_other"),
        );
        std::fs::write(dir.join("authorized_keys"), lines).unwrap();
        Vec::new()
    });
    // The forced command runs instead of the client's.
    let out = s.run("id_ed25519", &[], "uname");
    assert_eq!(
        out.stdout,
        b"forced:uname\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // no-pty and restrict refuse -tt's terminal (OpenSSH then gives up: -tt forces one);
    // restrict still runs commands.
    for key in ["id_ed25519", "id_ecdsa"] {
        let out = s.run(key, &["-tt"], "echo on a tty");
        assert_eq!(out.status.code(), Some(255), "{key}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("PTY allocation request failed"),
            "{key}: {stderr}"
        );
    }
    let out = s.run("id_ecdsa", &[], "echo restricted");
    assert_eq!(
        out.stdout,
        b"restricted\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // from=: 127.0.0.1 is admitted, 127.0.0.2 (another loopback source) is not.
    let out = s.run("id_rsa", &[], "echo admitted");
    assert_eq!(
        out.stdout,
        b"admitted\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.run("id_rsa", &["-b", "127.0.0.2"], "echo admitted");
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    // permitopen: the one destination opens (`ssh -W`, a direct-tcpip channel as -L's),
    // another listening port is refused.
    let forward = |port: u16| {
        let mut c = s.ssh("id_rsa", &["-W", &format!("127.0.0.1:{port}")]);
        c.arg("alice@127.0.0.1").stdin(Stdio::null());
        c.output().expect("run ssh -W")
    };
    let out = forward(target_port);
    assert_eq!(
        out.stdout,
        b"greetings\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = forward(other_port);
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stdio forwarding failed"), "{stderr}");
    // environment= refuses its line: that key does not log in.
    let out = s.run("id_other", &[], "true");
    assert_eq!(out.status.code(), Some(255));
}

fn openssh_shell_on_a_pty(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    let s = setup("pty", backend);
    let mut c = s.ssh("id_ed25519", &["-tt"]);
    c.arg("alice@127.0.0.1")
        .env("TERM", "xterm-ringwork")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run ssh -tt");
    let mut stdin = child.stdin.take().unwrap();
    // The shell reads from the terminal: it prints TERM and whether stdin is a tty.
    stdin
        .write_all(b"echo T=$TERM; test -t 0 && echo IS-A-TTY; exit 7\n")
        .unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("T=xterm-ringwork"), "{text}");
    assert!(text.contains("IS-A-TTY"), "{text}");
    assert_eq!(status.code(), Some(7), "{text}");
}

fn openssh_terminal_modes_reach_the_pty(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    let s = setup("modes", backend);
    let mut c = s.ssh("id_ed25519", &["-tt"]);
    c.arg("alice@127.0.0.1").arg("stty -a");
    let quote = |a: &std::ffi::OsStr| format!("'{}'", a.to_str().unwrap().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(quote)
        .collect();
    // ssh sends the modes of its own terminal: `script` gives it one, set by stty first.
    let shell = format!("stty intr ^T -echoe -onlcr; {}", line.join(" "));
    let out = Command::new("script")
        .args(["-qec", &shell, "/dev/null"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ';')
        .collect();
    assert!(text.contains("intr = ^T"), "{text}");
    assert!(
        words.contains(&"-echoe") && words.contains(&"-onlcr"),
        "{text}"
    );
    assert!(
        words.contains(&"icanon") && words.contains(&"echo"),
        "{text}"
    );
}

/// FNV-1a over a stream: the checksum both ends compute.
fn fnv(hash: &mut u64, data: &[u8]) {
    for &b in data {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

const FORWARDED: usize = 100 * 1024 * 1024;

/// A target that counts and checksums what arrives on its one connection, then answers
/// with both; its port and the thread.
fn checksum_sink() -> (u16, std::thread::JoinHandle<()>) {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    let sink = std::thread::spawn(move || {
        let (mut conn, _) = target.accept().unwrap();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            fnv(&mut hash, &buf[..n]);
            total += n;
        }
        conn.write_all(format!("{total} {hash:x}\n").as_bytes())
            .unwrap();
    });
    (port, sink)
}

/// A stream through a forward to [`checksum_sink`]: sends [`FORWARDED`] bytes, ends its
/// writing half, and checks the sink's count and checksum.
trait Forwarded: Read + Write {
    fn bound(&self, timeout: Duration);
    fn end_writing(&self);
}

impl Forwarded for UnixStream {
    fn bound(&self, timeout: Duration) {
        self.set_read_timeout(Some(timeout)).unwrap();
        self.set_write_timeout(Some(timeout)).unwrap();
    }
    fn end_writing(&self) {
        self.shutdown(std::net::Shutdown::Write).unwrap();
    }
}

impl Forwarded for std::net::TcpStream {
    fn bound(&self, timeout: Duration) {
        self.set_read_timeout(Some(timeout)).unwrap();
        self.set_write_timeout(Some(timeout)).unwrap();
    }
    fn end_writing(&self) {
        self.shutdown(std::net::Shutdown::Write).unwrap();
    }
}

fn send_checked(mut conn: impl Forwarded) {
    // A stalled forward fails the test instead of hanging it.
    conn.bound(Duration::from_secs(120));
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut chunk = vec![0u8; 1024 * 1024];
    for i in 0..FORWARDED / chunk.len() {
        for (j, b) in chunk.iter_mut().enumerate() {
            *b = (i * 31 + j * 7 + j / 251) as u8;
        }
        fnv(&mut hash, &chunk);
        conn.write_all(&chunk).unwrap();
    }
    conn.end_writing();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, format!("{FORWARDED} {hash:x}\n"));
}

fn openssh_local_forward_carries_100_mib(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    let s = setup("fwd", backend);
    // The target: counts and checksums what arrives, answers with both.
    let (target_port, sink) = checksum_sink();
    // ssh listens on a Unix socket: no local port to pick (and race for).
    let local = s.dir.join("forward.sock");
    let mut c = s.ssh(
        "id_ed25519",
        &[
            "-N",
            "-v",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "LogLevel=VERBOSE",
        ],
    );
    c.arg("-L")
        .arg(format!("{}:127.0.0.1:{target_port}", local.display()))
        .arg("alice@127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut ssh = c.spawn().expect("run ssh -L");
    // Wait for "Local forwarding listening on ..." (ssh's own log line).
    let mut lines = BufReader::new(ssh.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("ssh exited before forwarding").unwrap();
        if line.contains("Local forwarding listening on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let started = Instant::now();
    let conn = UnixStream::connect(&local).unwrap();
    send_checked(conn);
    let elapsed = started.elapsed();
    eprintln!(
        "ssh -L ({name}, debug build): {} MiB in {:.2} s = {:.1} MB/s",
        FORWARDED >> 20,
        elapsed.as_secs_f64(),
        FORWARDED as f64 / elapsed.as_secs_f64() / 1e6
    );
    sink.join().unwrap();
    let _ = ssh.kill();
    let _ = ssh.wait();
}

/// The options `sftp` and `scp` need to use this setup (its key and known_hosts).
fn transfer_options(s: &Setup, port_flag: &str) -> Vec<String> {
    vec![
        "-F".into(),
        "/dev/null".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", s.dir.join("known_hosts").display()),
        "-i".into(),
        s.dir.join("id_ed25519").display().to_string(),
        port_flag.into(),
        s.port.to_string(),
    ]
}

/// OpenSSH's `sftp` (a batch: put, ls, rename, get, an escape) and `scp` (SFTP mode) through
/// `serve ssh --sftp-root`: the subsystem runs `ringwork sftp-server` under the root.
fn openssh_sftp_and_scp_through_the_subsystem(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    let s = setup_with("sftp", backend, |dir| {
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        vec!["--sftp-root".into(), root.display().to_string()]
    });
    let root = s.dir.join("root");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(s.dir.join("upload.bin"), &data).unwrap();
    let batch = s.dir.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {up} /up.bin\nls -l /\nrename /up.bin /moved.bin\nget /moved.bin {down}\n\
             -get ../../../etc/hostname {escape}\n",
            up = s.dir.join("upload.bin").display(),
            down = s.dir.join("download.bin").display(),
            escape = s.dir.join("escape").display(),
        ),
    )
    .unwrap();
    let out = Command::new("sftp")
        .args(transfer_options(&s, "-P"))
        .arg("-b")
        .arg(&batch)
        .arg("alice@127.0.0.1")
        .stdin(Stdio::null())
        .output()
        .expect("run sftp");
    assert!(
        out.status.success(),
        "sftp on {backend}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("up.bin"),
        "ls shows the upload"
    );
    assert_eq!(
        std::fs::read(root.join("moved.bin")).unwrap(),
        data,
        "stored under the root"
    );
    assert_eq!(
        std::fs::read(s.dir.join("download.bin")).unwrap(),
        data,
        "got back"
    );
    // `..` stops at the root: there is no ROOT/etc/hostname, so nothing came back.
    assert!(!s.dir.join("escape").exists(), "a path escaped the root");
    // scp (SFTP protocol by default in OpenSSH 9) into the root and back.
    let target = "alice@127.0.0.1:/scp.bin";
    let up = Command::new("scp")
        .args(transfer_options(&s, "-P"))
        .arg(s.dir.join("upload.bin"))
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .expect("run scp");
    assert!(
        up.status.success(),
        "scp up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(std::fs::read(root.join("scp.bin")).unwrap(), data);
}

/// `ssh -R 0:127.0.0.1:TARGET` against `serve ssh`: the server binds a loopback port for
/// the forward (ssh reports it), 100 MiB sent to that port reach the target through a
/// `forwarded-tcpip` channel with the same checksum, and the listener closes with the SSH
/// connection (the port then refuses).
fn openssh_remote_forward_carries_100_mib(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !have_ssh() {
        return;
    }
    let mut s = setup("rfwd", backend);
    let (target_port, sink) = checksum_sink();
    let mut c = s.ssh(
        "id_ed25519",
        &[
            "-N",
            // -v: the log level is set by the first -o LogLevel (ERROR, in `ssh`), and
            // "Allocated port" is an INFO line.
            "-v",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "LogLevel=VERBOSE",
        ],
    );
    c.arg("-R")
        .arg(format!("0:127.0.0.1:{target_port}"))
        .arg("alice@127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut ssh = c.spawn().expect("run ssh -R");
    // "Allocated port N for remote forward to 127.0.0.1:TARGET" (ssh's own log line).
    let mut lines = BufReader::new(ssh.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("ssh exited before forwarding").unwrap();
        if let Some(rest) = line.split("Allocated port ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no port in {line:?}"));
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let started = Instant::now();
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    send_checked(conn);
    let elapsed = started.elapsed();
    eprintln!(
        "ssh -R ({name}, debug build): {} MiB in {:.2} s = {:.1} MB/s",
        FORWARDED >> 20,
        elapsed.as_secs_f64(),
        FORWARDED as f64 / elapsed.as_secs_f64() / 1e6
    );
    sink.join().unwrap();
    // The SSH connection ends: its forward's listener is closed with it.
    let _ = ssh.kill();
    let _ = ssh.wait();
    s.server.line_with("ssh: remote forward closed");
    // The core closes the listener in its next turns (under io_uring once its accept's
    // cancel came back): connects until one is refused, bounded by LIMIT.
    let deadline = Instant::now() + support::LIMIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the forward's port still accepts"
        );
    }
}

both_backends!(
    openssh_exec_auth_and_rekey,
    openssh_ecdsa_host_keys,
    openssh_authorized_keys_options,
    openssh_terminal_modes_reach_the_pty,
    openssh_shell_on_a_pty,
    openssh_local_forward_carries_100_mib,
    openssh_sftp_and_scp_through_the_subsystem,
    openssh_remote_forward_carries_100_mib,
);
