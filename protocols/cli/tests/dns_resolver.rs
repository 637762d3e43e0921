//! Our stub resolver (`dns::resolver::Resolver`) against real servers, on both backends:
//! Knot (Debian's `knot`, an authoritative server the test starts), `ringwork serve dns`,
//! and a dnspython-scripted server for what a real server will not do on demand — TC over
//! UDP then the answer over TCP, SERVFAIL, silence, a wrong id, a reply from another port,
//! a reply to another question. The peers are installed by
//! `scripts/install-dns-test-deps.sh`; a missing peer fails the test under `CI=true`, and
//! is skipped with a loud line otherwise. Resolver timeouts are configured short (200 ms);
//! waits turn the reactor until the lookup's future is done (bounded by `LIMIT`), or read
//! a peer's output; nothing sleeps.

use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use ringwork::{BackendChoice, DriverConfig, Reactor, ReactorConfig};
use ringwork_protocols::Endpoint;
use ringwork_protocols::dns::proto::{Name, RData, RType};
use ringwork_protocols::dns::resolver::{
    IpOrder, ResolveError, Resolver, ResolverConfig, ServerErrorKind, Source,
};
use support::{LIMIT, Server, TempDir, backend, free_tcp_udp_port, peer};

#[macro_use]
mod support;

const ZONE: &str = r#"$ORIGIN example.com.
$TTL 1h
@   IN SOA ns1 hostmaster ( 2026120701 2h 15m 1w 300 )
    IN NS  ns1
    IN MX  10 mail
    IN TXT "v=spf1 -all"
ns1 IN A 192.0.2.1
mail IN A 192.0.2.10
     IN AAAA 2001:db8::10
www IN CNAME web
web IN A 192.0.2.20
_http._tcp IN SRV 10 5 80 web
"#;

/// The zone plus 100 A records at big.example.com. (more than 1232 bytes: TC over UDP).
fn zone_text() -> String {
    let mut text = ZONE.to_owned();
    for i in 0..100 {
        text.push_str(&format!("big IN A 198.51.100.{i}\n"));
    }
    text
}

/// A single-threaded reactor on `name`'s backend (`None`: skipped, said on stderr).
fn reactor(name: &str) -> Option<Reactor> {
    let name = backend(name)?;
    let backend = match name {
        "uring" => BackendChoice::Uring,
        _ => BackendChoice::Poll,
    };
    let driver = DriverConfig {
        backend,
        ..DriverConfig::default()
    };
    Some(Reactor::new(ReactorConfig::default(), driver).expect("a reactor"))
}

/// Runs `future` on `reactor` until it is done; fails after [`LIMIT`].
fn block_on<T: 'static>(reactor: &mut Reactor, future: impl Future<Output = T> + 'static) -> T {
    let out = Rc::new(RefCell::new(None));
    let slot = Rc::clone(&out);
    reactor.spawn_local(async move {
        *slot.borrow_mut() = Some(future.await);
    });
    let done = reactor
        .run_until(LIMIT, |_| out.borrow().is_some())
        .expect("reactor turn");
    assert!(done, "the lookup did not finish within {LIMIT:?}");
    out.borrow_mut().take().expect("done")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect(text)
}

fn name(text: &str) -> Name {
    Name::parse(text, None).expect(text)
}

/// The same checks against any authoritative server for the test zone at `port`.
fn authoritative_suite(reactor: &mut Reactor, port: u16) {
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let config = ResolverConfig::with_servers([server])
        .timeout(Duration::from_secs(2))
        .attempts(2)
        .search(vec![name("example.com.")], 1);
    let resolver = Resolver::new(reactor.handle(), config).expect("a resolver");
    resolver.set_ip_order(IpOrder::Ipv4First);
    let r = resolver.clone();
    let ips = block_on(
        reactor,
        async move { r.lookup_ip("web.example.com.").await },
    );
    assert_eq!(ips.unwrap(), [ip("192.0.2.20")]);
    // Both families, in the order asked for; the second time from the cache.
    let r = resolver.clone();
    let ips = block_on(
        reactor,
        async move { r.lookup_ip("mail.example.com.").await },
    );
    assert_eq!(ips.unwrap(), [ip("192.0.2.10"), ip("2001:db8::10")]);
    resolver.set_ip_order(IpOrder::Ipv6First);
    let sent = resolver.stats().udp_sent;
    let r = resolver.clone();
    let ips = block_on(
        reactor,
        async move { r.lookup_ip("mail.example.com.").await },
    );
    assert_eq!(ips.unwrap(), [ip("2001:db8::10"), ip("192.0.2.10")]);
    assert_eq!(resolver.stats().udp_sent, sent, "answered from the cache");
    // A CNAME inside the zone, followed.
    let r = resolver.clone();
    let answer = block_on(reactor, async move {
        r.lookup("www.example.com.", RType::A).await
    })
    .expect("www");
    assert_eq!(answer.canonical(), &name("web.example.com."));
    assert_eq!(answer.ips(), [ip("192.0.2.20")]);
    assert_eq!(answer.source, Source::Server(server));
    // MX, TXT, SRV.
    let r = resolver.clone();
    let mx = block_on(
        reactor,
        async move { r.lookup("example.com.", RType::MX).await },
    )
    .unwrap();
    assert_eq!(
        mx.records[0].data,
        RData::Mx {
            preference: 10,
            exchange: name("mail.example.com.")
        }
    );
    let r = resolver.clone();
    let txt = block_on(reactor, async move {
        r.lookup("example.com.", RType::TXT).await
    })
    .unwrap();
    assert_eq!(
        txt.records[0].data,
        RData::Txt(vec![b"v=spf1 -all".to_vec()])
    );
    let r = resolver.clone();
    let srv = block_on(reactor, async move {
        r.lookup("_http._tcp.example.com.", RType::SRV).await
    })
    .unwrap();
    assert_eq!(srv.records[0].data.to_string(), "10 5 80 web.example.com.");
    // The search list: "ns1" is ns1.example.com.
    let r = resolver.clone();
    let answer = block_on(reactor, async move { r.lookup("ns1", RType::A).await }).unwrap();
    assert_eq!(answer.name, name("ns1.example.com."));
    // NXDOMAIN, then from the negative cache; NODATA.
    let r = resolver.clone();
    let nx = block_on(reactor, async move {
        r.lookup("nothing.example.com.", RType::A).await
    });
    assert!(matches!(nx, Err(ResolveError::NxDomain { .. })), "{nx:?}");
    let sent = resolver.stats().udp_sent;
    let r = resolver.clone();
    let nx = block_on(reactor, async move {
        r.lookup("nothing.example.com.", RType::AAAA).await
    });
    assert!(matches!(nx, Err(ResolveError::NxDomain { .. })), "{nx:?}");
    assert_eq!(
        resolver.stats().udp_sent,
        sent,
        "NXDOMAIN cached for the name"
    );
    let r = resolver.clone();
    let nodata = block_on(reactor, async move {
        r.lookup("web.example.com.", RType::AAAA).await
    });
    assert!(
        matches!(nodata, Err(ResolveError::NoRecords { .. })),
        "{nodata:?}"
    );
    // 100 records do not fit 1232 bytes: TC over UDP, then TCP.
    let r = resolver.clone();
    let big = block_on(reactor, async move {
        r.lookup("big.example.com.", RType::A).await
    })
    .expect("big over TCP");
    assert_eq!(big.records.len(), 100);
    assert_eq!(resolver.stats().tcp_sent, 1);
    // Two lookups of one name at once share one query.
    let (r1, r2) = (resolver.clone(), resolver.clone());
    let joined = resolver.stats().joined;
    let (first, second) = block_on(reactor, async move {
        let first = r1.lookup("ns1.example.com.", RType::AAAA);
        let second = r2.lookup("ns1.example.com.", RType::AAAA);
        (first.await, second.await)
    });
    assert_eq!(first, second);
    assert_eq!(resolver.stats().joined, joined + 1);
    assert_eq!(resolver.stats().ignored, 0, "{:?}", resolver.stats());
    // Every socket and connection of the exchanges is closed.
    let done = reactor
        .run_until(LIMIT, |_| resolver.open_exchanges() == 0)
        .expect("turn");
    assert!(done, "{} exchanges still open", resolver.open_exchanges());
}

/// Knot (Debian's `knot`), on a free port, serving the test zone; killed on drop.
fn knot(dir: &TempDir) -> (Server, u16) {
    let zone = dir.0.join("example.zone");
    std::fs::write(&zone, zone_text()).expect("write the zone");
    let port = free_tcp_udp_port();
    let root = dir.0.display();
    let conf = dir.0.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{root}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             log:\n  - target: stderr\n    any: info\n\
             database:\n    storage: \"{root}\"\n\
             template:\n  - id: default\n    storage: \"{root}\"\n    semantic-checks: off\n\
             zone:\n  - domain: example.com\n    file: \"{}\"\n",
            zone.display()
        ),
    )
    .expect("write knot.conf");
    let mut command = Command::new("knotd");
    command.arg("-c").arg(&conf);
    let mut server = Server::spawn(command);
    // Ready once the zone is loaded and the server started (in either order).
    let (mut loaded, mut started) = (false, false);
    while !(loaded && started) {
        let line = server
            .next_line()
            .unwrap_or_else(|| panic!("knotd ended: {}", server.seen.join("\n")));
        loaded |= line.contains("[example.com.] loaded");
        started |= line.contains("server started");
    }
    (server, port)
}

fn knot_suite(backend: &str) {
    let Some(mut reactor) = reactor(backend) else {
        return;
    };
    if !peer("knotd", &["-V"], "install-dns-test-deps.sh") {
        return;
    }
    let dir = TempDir::new(&format!("resolver-knot-{backend}"));
    let (_knot, port) = knot(&dir);
    authoritative_suite(&mut reactor, port);
}

fn serve_dns_suite(backend: &str) {
    let Some(mut reactor) = reactor(backend) else {
        return;
    };
    let dir = TempDir::new(&format!("resolver-serve-{backend}"));
    let zone = dir.0.join("example.zone");
    std::fs::write(&zone, zone_text()).expect("write the zone");
    let port = free_tcp_udp_port();
    let mut server = Server::start(&[
        "serve",
        "dns",
        "--zone",
        zone.to_str().expect("UTF-8 path"),
        "--listen",
        &format!("udp:{port}:interface=127.0.0.1"),
        "--listen",
        &format!("tcp:{port}:interface=127.0.0.1"),
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    for endpoint in server.listening(2) {
        assert!(matches!(
            endpoint,
            Endpoint::Udp { .. } | Endpoint::Tcp { .. }
        ));
    }
    authoritative_suite(&mut reactor, port);
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

/// Two servers: A misbehaves as the query's name says, B answers everything with
/// 192.0.2.2. A also listens on TCP (same port). Each query is printed as
/// `A|B udp|tcp NAME`.
const SCRIPTED: &str = r#"
import socket, struct, sys, threading
import dns.flags, dns.message, dns.rcode, dns.rrset

def bind_pair():
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            t.bind(("127.0.0.1", port))
        except OSError:
            u.close(); t.close(); continue
        t.listen(16)
        return u, t, port

a_udp, a_tcp, a_port = bind_pair()
b_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b_udp.bind(("127.0.0.1", 0))
b_port = b_udp.getsockname()[1]
lock = threading.Lock()

def say(*words):
    with lock:
        print(*words, flush=True)

def answer(query, *ips):
    r = dns.message.make_response(query)
    r.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", *ips))
    return r.to_wire()

def a_udp_loop():
    while True:
        data, addr = a_udp.recvfrom(4096)
        q = dns.message.from_wire(data)
        name = q.question[0].name.to_text().lower()
        say("A udp", name, addr[1])
        send = lambda wire: a_udp.sendto(wire, addr)
        if name.startswith("tc."):
            r = dns.message.make_response(q)
            r.flags |= dns.flags.TC
            send(r.to_wire())
        elif name.startswith("servfail."):
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.SERVFAIL)
            send(r.to_wire())
        elif name.startswith("silent."):
            pass
        elif name.startswith("wrongid."):
            forged = bytearray(answer(q, "6.6.6.6"))
            forged[1] ^= 1
            send(bytes(forged))
            send(answer(q, "192.0.2.3"))
        elif name.startswith("othersrc."):
            b_udp.sendto(answer(q, "6.6.6.6"), addr)
            send(answer(q, "192.0.2.4"))
        elif name.startswith("otherq."):
            other = dns.message.make_query("evil.test.", "A")
            other.id = q.id
            send(answer(other, "6.6.6.6"))
            send(answer(q, "192.0.2.5"))
        else:
            send(answer(q, "192.0.2.1"))

def b_udp_loop():
    while True:
        data, addr = b_udp.recvfrom(4096)
        q = dns.message.from_wire(data)
        say("B udp", q.question[0].name.to_text().lower(), addr[1])
        b_udp.sendto(answer(q, "192.0.2.2"), addr)

def read_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data

def a_tcp_conn(s):
    try:
        (n,) = struct.unpack("!H", read_exact(s, 2))
        q = dns.message.from_wire(read_exact(s, n))
        say("A tcp", q.question[0].name.to_text().lower())
        wire = answer(q, "192.0.2.31", "192.0.2.32")
        s.sendall(struct.pack("!H", len(wire)) + wire)
    except EOFError:
        pass
    finally:
        s.close()

def a_tcp_loop():
    while True:
        s, _ = a_tcp.accept()
        threading.Thread(target=a_tcp_conn, args=(s,), daemon=True).start()

for loop in (a_udp_loop, b_udp_loop, a_tcp_loop):
    threading.Thread(target=loop, daemon=True).start()
say("ready", a_port, b_port)
threading.Event().wait()
"#;

/// The scripted server's process, killed on drop, and its output lines.
struct Scripted {
    child: Child,
    lines: mpsc::Receiver<String>,
    a: SocketAddr,
    b: SocketAddr,
}

impl Scripted {
    fn start() -> Scripted {
        let mut child = Command::new("python3")
            .args(["-c", SCRIPTED])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines
            .recv_timeout(LIMIT)
            .expect("the scripted server to start");
        let ports: Vec<u16> = ready
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected first line {ready:?}"))
            .split(' ')
            .map(|p| p.parse().expect("a port"))
            .collect();
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Scripted {
            child,
            lines,
            a: at(ports[0]),
            b: at(ports[1]),
        }
    }

    /// The queries printed (`A udp name. port`), in order, once every line of `expected`
    /// is among them (a line names a query, or a query and its source port): the server
    /// prints before it answers, but our reader may get the line after the answer.
    fn seen(&self, expected: &[&str]) -> Vec<String> {
        let matches =
            |line: &str, want: &str| line == want || line.starts_with(&format!("{want} "));
        let mut seen: Vec<String> = Vec::new();
        while let Some(missing) = expected
            .iter()
            .find(|want| !seen.iter().any(|line| matches(line, want)))
        {
            match self.lines.recv_timeout(LIMIT) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("the scripted server never printed {missing:?}: {seen:?}"),
            }
        }
        seen.extend(self.lines.try_iter());
        seen
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scripted_suite(backend: &str) {
    let Some(mut reactor) = reactor(backend) else {
        return;
    };
    if !peer(
        "python3",
        &["-c", "import dns.message"],
        "install-dns-test-deps.sh",
    ) {
        return;
    }
    let peer = Scripted::start();
    let config = ResolverConfig::with_servers([peer.a, peer.b])
        .timeout(Duration::from_millis(200))
        .attempts(1);
    let resolver = Resolver::new(reactor.handle(), config).expect("a resolver");
    let lookup = |reactor: &mut Reactor, name: &'static str| {
        let r = resolver.clone();
        block_on(reactor, async move { r.lookup(name, RType::A).await })
    };

    // TC=1 over UDP: asked again over TCP, same server.
    let answer = lookup(&mut reactor, "tc.test.").expect("tc");
    let mut ips = answer.ips();
    ips.sort(); // dnspython keeps an RRset as a set: any order
    assert_eq!(ips, [ip("192.0.2.31"), ip("192.0.2.32")]);
    assert_eq!(answer.source, Source::Server(peer.a));
    assert_eq!(resolver.stats().tcp_sent, 1);
    // SERVFAIL: the next server at once (no timeout).
    let answer = lookup(&mut reactor, "servfail.test.").expect("servfail");
    assert_eq!(answer.source, Source::Server(peer.b));
    assert_eq!(resolver.stats().timeouts, 0);
    // Silence: the next server after 200 ms.
    let answer = lookup(&mut reactor, "silent.test.").expect("silent");
    assert_eq!(answer.source, Source::Server(peer.b));
    assert_eq!(resolver.stats().timeouts, 1);
    // A wrong id, a reply from another port, a reply to another question: ignored, the
    // right reply that follows is taken.
    for (name, right) in [
        ("wrongid.test.", "192.0.2.3"),
        ("othersrc.test.", "192.0.2.4"),
        ("otherq.test.", "192.0.2.5"),
    ] {
        let ignored = resolver.stats().ignored;
        let answer = lookup(&mut reactor, name).expect(name);
        assert_eq!(answer.ips(), [ip(right)], "{name}");
        assert_eq!(answer.source, Source::Server(peer.a), "{name}");
        // The forged reply is sent first (over loopback, it is queued on our socket
        // before the right one): seen and ignored.
        assert_eq!(resolver.stats().ignored, ignored + 1, "{name}");
    }
    // A dropped lookup ends nothing but its caller's wait: its query goes on (server A
    // is silent, B answers after the timeout) and its sockets are closed at the end.
    drop(resolver.lookup("silent.dropped.test.", RType::A));
    let done = reactor
        .run_until(LIMIT, |_| {
            resolver.stats().timeouts == 2 && resolver.open_exchanges() == 0
        })
        .expect("turn");
    assert!(
        done,
        "{:?}, {} open",
        resolver.stats(),
        resolver.open_exchanges()
    );
    let seen = peer.seen(&[
        "A udp tc.test.",
        "A tcp tc.test.",
        "A udp servfail.test.",
        "B udp servfail.test.",
        "A udp silent.test.",
        "B udp silent.test.",
        "B udp silent.dropped.test.",
    ]);
    // Each UDP exchange has a socket of its own: source ports vary.
    let ports: std::collections::HashSet<&str> = seen
        .iter()
        .filter(|l| l.contains(" udp "))
        .filter_map(|l| l.rsplit(' ').next())
        .collect();
    assert!(ports.len() > 1, "one source port for every query: {seen:?}");

    // Only the misbehaving server: the errors say what happened.
    let config = ResolverConfig::with_servers([peer.a])
        .timeout(Duration::from_millis(200))
        .attempts(2);
    let only_a = Resolver::new(reactor.handle(), config).expect("a resolver");
    let r = only_a.clone();
    let silent = block_on(&mut reactor, async move {
        r.lookup("silent.test.", RType::A).await
    });
    assert_eq!(
        silent,
        Err(ResolveError::TimedOut {
            name: "silent.test.".into(),
            servers: vec![peer.a]
        })
    );
    let r = only_a.clone();
    let failed = block_on(
        &mut reactor,
        async move { r.lookup_ip("servfail.test.").await },
    );
    let Err(ResolveError::ServerFailure { failures, .. }) = failed else {
        panic!("a server failure: {failed:?}");
    };
    assert!(
        failures
            .iter()
            .all(|f| f.server == peer.a && f.kind == ServerErrorKind::Rcode(2)),
        "{failures:?}"
    );
    let done = reactor
        .run_until(LIMIT, |_| {
            resolver.open_exchanges() == 0 && only_a.open_exchanges() == 0
        })
        .expect("turn");
    assert!(done, "exchanges left open");
}

#[test]
fn resolver_against_knot_uring() {
    knot_suite("uring");
}

#[test]
fn resolver_against_knot_poll() {
    knot_suite("poll");
}

#[test]
fn resolver_against_serve_dns_uring() {
    serve_dns_suite("uring");
}

#[test]
fn resolver_against_serve_dns_poll() {
    serve_dns_suite("poll");
}

#[test]
fn resolver_against_a_scripted_server_uring() {
    scripted_suite("uring");
}

#[test]
fn resolver_against_a_scripted_server_poll() {
    scripted_suite("poll");
}
