//! The SSH client machine on real connections, both backends: against OpenSSH's `sshd`
//! started by the test (its own config, host key and authorized_keys in a temp dir, on a
//! loopback port) and against our own server ([`SshService`]). Each run checks the host key
//! against a known_hosts file, logs in with an Ed25519 key, runs a command and streams its
//! output and exit status, and carries bytes over a `direct-tcpip` channel to an echo
//! service. A host key not in known_hosts is refused. Waits are bounded by a limit only.
#![cfg(feature = "engine")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use ringwork::platform::testing;
use ringwork::{BackendChoice, Context, DriverConfig, Runtime, ShutdownHandle};
use ringwork_protocols::kit::adapter::{Adapter, Application, Mailbox};
use ringwork_protocols::ssh::channel::ChannelId;
use ringwork_protocols::ssh::client::{ClientConfig, ClientConn, ClientEvent, known_hosts_check};
use ringwork_protocols::ssh::keys::{AuthorizedKeys, KnownHosts, SigningKey};
use ringwork_protocols::ssh::server::ServerConfig;
use ringwork_protocols::ssh::service::SshService;

const LIMIT: Duration = Duration::from_secs(30);

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("ringwork-ssh-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An echo service on a thread: returns what it read once the writer finished.
fn echo_service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        conn.read_to_end(&mut all).unwrap();
        conn.write_all(&all).unwrap();
    });
    port
}

/// Passes every event to the test thread, releasing data at once.
struct Collect {
    events: mpsc::Sender<String>,
}

/// A call on the machine, posted from the test.
type Call = Box<dyn FnOnce(&mut ClientConn)>;

impl Application<ClientConn> for Collect {
    type Command = Call;
    type Status = ();

    fn event(
        &mut self,
        machine: &mut ClientConn,
        event: ClientEvent,
        _ctx: &mut Context<'_>,
        _mb: &Mailbox<Call>,
    ) {
        let text = match &event {
            ClientEvent::Authenticated => format!("auth strict={}", machine.is_strict_kex()),
            ClientEvent::Data {
                channel,
                data,
                stderr,
            } => {
                machine.release(*channel, data.len());
                format!(
                    "data {} {} {}",
                    channel.0,
                    stderr,
                    String::from_utf8_lossy(data)
                )
            }
            ClientEvent::ExitStatus { channel, code } => format!("exit {} {code}", channel.0),
            ClientEvent::Closed { channel } => format!("closed {}", channel.0),
            ClientEvent::Disconnected { reason } => format!("disconnected {reason}"),
            other => format!("{other:?}"),
        };
        let _ = self.events.send(text);
    }

    fn command(&mut self, machine: &mut ClientConn, call: Call, _ctx: &mut Context<'_>) {
        call(machine);
    }
}

/// What one client run saw.
#[derive(Debug, Default)]
struct Run {
    log: Vec<String>,
    session_out: String,
    session_err: String,
    tcp_out: String,
}

/// Connects to `addr`, runs a command and a direct-tcpip round trip; returns the events.
fn client_run(
    backend: BackendChoice,
    addr: SocketAddr,
    tcp_host: &str,
    user: &str,
    key: &Arc<SigningKey>,
    known: &str,
) -> Run {
    let echo_port = echo_service();
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    let mut reactor =
        ringwork::Reactor::new(ringwork::ReactorConfig::default(), driver).expect("a reactor");
    let config = ClientConfig {
        transport: Default::default(),
        user: user.into(),
        key: Arc::clone(key),
        host_key_check: known_hosts_check(
            KnownHosts::parse(known),
            "127.0.0.1".into(),
            addr.port(),
        ),
    };
    let mut machine = ClientConn::new(config);
    // Queued until logged in.
    let session = machine.open_session();
    machine.exec(session, "echo hello; echo oops >&2; exit 5");
    let tcp = machine.open_direct_tcpip(tcp_host, u32::from(echo_port));
    machine.send_data(tcp, b"through the tunnel");
    machine.send_eof(tcp);
    let (tx, rx) = mpsc::channel();
    reactor
        .connect(
            &addr.into(),
            Adapter::new(machine, Collect { events: tx }),
            ringwork::ConnectOptions::new(),
        )
        .expect("connect");
    let mut run = Run::default();
    let mut closed = 0;
    let finished = reactor
        .run_until(LIMIT, |_| {
            while let Ok(line) = rx.try_recv() {
                if line.starts_with("closed") {
                    closed += 1;
                }
                let ends = line.starts_with("disconnected") || line.contains("AuthFailed");
                run.log.push(line);
                if ends {
                    return true;
                }
            }
            closed == 2
        })
        .expect("turn");
    assert!(finished, "no end in time: {:?}", run.log);
    let chan = |c: ChannelId, prefix: &str| {
        run.log
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("data {} {prefix} ", c.0)))
            .collect::<String>()
    };
    run.session_out = chan(session, "false");
    run.session_err = chan(session, "true");
    run.tcp_out = chan(tcp, "false");
    run
}

fn check(run: &Run) {
    assert_eq!(
        run.log.first().map(String::as_str),
        Some("auth strict=true"),
        "{:?}",
        run.log
    );
    assert_eq!(run.session_out, "hello\n", "{:?}", run.log);
    assert_eq!(run.session_err, "oops\n", "{:?}", run.log);
    assert!(run.log.contains(&"exit 0 5".to_string()), "{:?}", run.log);
    assert_eq!(run.tcp_out, "through the tunnel", "{:?}", run.log);
}

/// `sshd` from openssh-server; under CI=true a missing one is a failure.
fn sshd_path() -> Option<&'static str> {
    let path = "/usr/sbin/sshd";
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "sshd is missing: scripts/install-ssh-test-deps.sh installs it"
    );
    eprintln!("skipped: sshd is not installed (scripts/install-ssh-test-deps.sh)");
    None
}

struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sshd -D -e -f CONFIG` on a loopback port with `key` authorized; waits for its
/// "Server listening" line.
fn start_sshd(sshd: &str, dir: &Path, user_key: &SigningKey) -> Option<Sshd> {
    let authorized = format!("{}\n", user_key.public().to_openssh());
    start_sshd_with(sshd, dir, "ed25519", &authorized)
}

/// [`start_sshd`] with a host key of `host_type` (`ssh-keygen -t`, in
/// `ssh_host_{host_type}_key`) and these authorized_keys lines.
fn start_sshd_with(sshd: &str, dir: &Path, host_type: &str, authorized: &str) -> Option<Sshd> {
    // Privilege separation wants this directory (created at boot by the service).
    let _ = std::fs::create_dir_all("/run/sshd");
    let host_key = dir.join(format!("ssh_host_{host_type}_key"));
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", host_type, "-N", "", "-f"])
        .arg(&host_key)
        .status()
        .ok()?;
    assert!(status.success());
    std::fs::write(dir.join("authorized_keys"), authorized).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
         UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nLogLevel INFO\n",
        host_key.display(),
        dir.join("authorized_keys").display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    let mut child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sshd");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("sshd ended before listening");
        };
        if line.contains("Server listening on 127.0.0.1") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Some(Sshd { child, port })
}

fn user_name() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

ringwork::platform::test_all_backends! {
    fn our_client_against_openssh_sshd(backend: BackendChoice) {
        if testing::driver(backend, DriverConfig::default()).is_none() {
            return;
        }
        let Some(sshd) = sshd_path() else { return };
        let dir = TempDir::new(&format!("sshd-{backend:?}"));
        let key = Arc::new(SigningKey::generate("client").unwrap());
        let Some(server) = start_sshd(sshd, &dir.0, &key) else { return };
        let public = Command::new("ssh-keygen").arg("-y").arg("-f").arg(dir.0.join("ssh_host_ed25519_key")).output().unwrap();
        let known = format!("[127.0.0.1]:{} {}", server.port, String::from_utf8_lossy(&public.stdout));
        let addr = SocketAddr::from(([127, 0, 0, 1], server.port));
        let run = client_run(backend, addr, "127.0.0.1", &user_name(), &key, &known);
        check(&run);
        // Another host's key in known_hosts: refused before logging in.
        let other = SigningKey::generate("other").unwrap();
        let wrong = format!("[127.0.0.1]:{} {}", server.port, other.public().to_openssh());
        let run = client_run(backend, addr, "127.0.0.1", &user_name(), &key, &wrong);
        assert!(run.log.iter().any(|l| l.starts_with("disconnected") && l.contains("CHANGED")), "{:?}", run.log);
        assert!(!run.log.iter().any(|l| l.starts_with("auth")), "{:?}", run.log);
    }

    fn our_client_with_ssh_keygen_keys_against_sshd_with_an_ecdsa_host_key(backend: BackendChoice) {
        if testing::driver(backend, DriverConfig::default()).is_none() {
            return;
        }
        let Some(sshd) = sshd_path() else { return };
        let dir = TempDir::new(&format!("sshd-keys-{backend:?}"));
        // User keys of each type made by ssh-keygen; the Ed25519 one passphrase-protected.
        let kinds: [(&str, &[&str], &str); 4] = [
            ("id_ed25519", &["-t", "ed25519"], "pass phrase"),
            ("id_ecdsa256", &["-t", "ecdsa", "-b", "256"], ""),
            ("id_ecdsa384", &["-t", "ecdsa", "-b", "384"], ""),
            ("id_rsa", &["-t", "rsa", "-b", "3072"], ""),
        ];
        let mut authorized = String::new();
        for (name, args, passphrase) in kinds {
            let path = dir.0.join(name);
            let status = Command::new("ssh-keygen").args(["-q", "-N", passphrase, "-f"]).arg(&path).args(args).stdout(Stdio::null()).status().unwrap();
            assert!(status.success());
            authorized.push_str(&std::fs::read_to_string(path.with_extension("pub")).unwrap());
        }
        let Some(server) = start_sshd_with(sshd, &dir.0, "ecdsa", &authorized) else { return };
        let public = Command::new("ssh-keygen").arg("-y").arg("-f").arg(dir.0.join("ssh_host_ecdsa_key")).output().unwrap();
        let known = format!("[127.0.0.1]:{} {}", server.port, String::from_utf8_lossy(&public.stdout));
        let addr = SocketAddr::from(([127, 0, 0, 1], server.port));
        for (name, _, passphrase) in kinds {
            let passphrase = (!passphrase.is_empty()).then_some(passphrase.as_bytes());
            let key = SigningKey::load_with_passphrase(&dir.0.join(name), passphrase).unwrap();
            let run = client_run(backend, addr, "127.0.0.1", &user_name(), &Arc::new(key), &known);
            check(&run);
        }
        let wrong = SigningKey::load_with_passphrase(&dir.0.join("id_ed25519"), Some(b"nope")).unwrap_err();
        assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
    }

    fn our_client_against_our_server(backend: BackendChoice) {
        if testing::driver(backend, DriverConfig::default()).is_none() {
            return;
        }
        let host = Arc::new(SigningKey::generate("host").unwrap());
        let key = Arc::new(SigningKey::generate("client").unwrap());
        let service = SshService {
            config: ServerConfig::new(Arc::clone(&host), Arc::new(AuthorizedKeys::parse(&key.public().to_openssh()))),
            checker: None,
            // A stand-in for `ringwork sftp-server`: the subsystem's plumbing, not SFTP.
            sftp_command: Some(ringwork::ProcessCommand::new("cat")),
            forwarding: true,
        };
        let served = serve(backend, service);
        let known = format!("[127.0.0.1]:{} {}", served.addr.port(), host.public().to_openssh());
        // A name: resolved by the server (the engine's resolver, Happy Eyeballs).
        let run = client_run(backend, served.addr, "localhost", "anyone", &key, &known);
        check(&run);
        // A terminal: its size from pty-req, then from window-change; a signal ends it.
        let log = pty_run(backend, served.addr, &key, &known);
        let text: String = log.iter().filter_map(|l| l.strip_prefix("data 0 false ")).collect();
        assert!(text.contains("size 24 80"), "{log:?}");
        assert!(text.contains("size 50 100"), "{log:?}");
        assert!(log.iter().any(|l| l.contains("ExitSignal") && l.contains("\"TERM\"")), "{log:?}");
        // The sftp subsystem runs its configured command on the channel's stdin/stdout.
        let log = subsystem_run(backend, served.addr, &key, &known, "sftp");
        assert!(log.contains(&"data 0 false subsystem bytes".to_string()), "{log:?}");
        assert!(log.contains(&"exit 0 0".to_string()), "{log:?}");
        let log = subsystem_run(backend, served.addr, &key, &known, "other");
        assert!(log.iter().any(|l| l.contains("ok: false")), "{log:?}");
    }
}

/// A shell-less terminal session: prints its size, waits for a line, prints it again, then
/// waits to be signalled.
fn pty_run(
    backend: BackendChoice,
    addr: SocketAddr,
    key: &Arc<SigningKey>,
    known: &str,
) -> Vec<String> {
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    let mut reactor =
        ringwork::Reactor::new(ringwork::ReactorConfig::default(), driver).expect("a reactor");
    let config = ClientConfig {
        transport: Default::default(),
        user: "tty".into(),
        key: Arc::clone(key),
        host_key_check: known_hosts_check(
            KnownHosts::parse(known),
            "127.0.0.1".into(),
            addr.port(),
        ),
    };
    let mut machine = ClientConn::new(config);
    let session = machine.open_session();
    machine.request_pty(session, "xterm", 80, 24);
    machine.exec(
        session,
        "echo size $(stty size); read line; echo size $(stty size); echo ready; sleep 60",
    );
    let (tx, rx) = mpsc::channel();
    let adapter = Adapter::new(machine, Collect { events: tx });
    let sender = adapter.sender();
    reactor
        .connect(&addr.into(), adapter, ringwork::ConnectOptions::new())
        .expect("connect");
    let mut log: Vec<String> = Vec::new();
    let mut step = 0;
    let finished = reactor
        .run_until(LIMIT, |_| {
            while let Ok(line) = rx.try_recv() {
                log.push(line);
            }
            let text: String = log
                .iter()
                .filter_map(|l| l.strip_prefix("data 0 false "))
                .collect();
            if step == 0 && text.contains("size 24 80") {
                step = 1;
                let _ = sender.post(Box::new(move |m: &mut ClientConn| {
                    m.window_change(session, 100, 50);
                    m.send_data(session, b"go\n");
                }));
            } else if step == 1 && text.contains("ready") {
                step = 2;
                let _ = sender.post(Box::new(move |m: &mut ClientConn| {
                    m.signal(session, "TERM")
                }));
            }
            log.iter().any(|l| l.starts_with("closed"))
        })
        .expect("turn");
    assert!(finished, "no end in time: {log:?}");
    log
}

/// Starts subsystem `name`, writes to it, ends its input; the events until the channel
/// closes.
fn subsystem_run(
    backend: BackendChoice,
    addr: SocketAddr,
    key: &Arc<SigningKey>,
    known: &str,
    name: &str,
) -> Vec<String> {
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    let mut reactor =
        ringwork::Reactor::new(ringwork::ReactorConfig::default(), driver).expect("a reactor");
    let config = ClientConfig {
        transport: Default::default(),
        user: "files".into(),
        key: Arc::clone(key),
        host_key_check: known_hosts_check(
            KnownHosts::parse(known),
            "127.0.0.1".into(),
            addr.port(),
        ),
    };
    let mut machine = ClientConn::new(config);
    let session = machine.open_session();
    machine.subsystem(session, name);
    machine.send_data(session, b"subsystem bytes");
    machine.send_eof(session);
    let (tx, rx) = mpsc::channel();
    reactor
        .connect(
            &addr.into(),
            Adapter::new(machine, Collect { events: tx }),
            ringwork::ConnectOptions::new(),
        )
        .expect("connect");
    let mut log: Vec<String> = Vec::new();
    let finished = reactor
        .run_until(LIMIT, |_| {
            while let Ok(line) = rx.try_recv() {
                log.push(line);
            }
            log.iter()
                .any(|l| l.starts_with("closed") || l.contains("ok: false"))
        })
        .expect("turn");
    assert!(finished, "no end in time: {log:?}");
    log
}

struct Served {
    addr: SocketAddr,
    handle: ShutdownHandle,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.handle.shutdown(Duration::ZERO);
    }
}

fn serve(backend: BackendChoice, service: SshService) -> Served {
    let runtime = Runtime::builder()
        .cores(1)
        .pin(false)
        .backend(backend)
        .build()
        .expect("a runtime");
    let handle = runtime.shutdown_handle();
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        runtime.run(move |reactor| {
            let service = service.clone();
            let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), move || {
                service.protocol()
            })?;
            let _ = addr_tx.send(addr);
            Ok(())
        })
    });
    let addr = addr_rx.recv_timeout(LIMIT).expect("the server to listen");
    Served { addr, handle }
}
