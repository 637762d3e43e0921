//! `ringwork serve dns` against real peers nobody here wrote, on both backends: `dig` (BIND's
//! bind9-dnsutils) over UDP and TCP — every type of the zone, NXDOMAIN, REFUSED, a referral,
//! truncation and dig's retry over TCP, EDNS sizes — and dnspython (pipelined TCP queries,
//! a malformed query answered FORMERR). Both peers are installed by
//! `scripts/install-dns-test-deps.sh`; a missing peer fails the test under `CI=true`, and is
//! skipped with a loud line otherwise.

use std::process::Command;

use ringwork_protocols::Endpoint;
use support::{Server, TempDir, backend, free_tcp_udp_port, peer};

#[macro_use]
mod support;

const ZONE: &str = r#"$ORIGIN example.com.
$TTL 1h
@   IN SOA ns1 hostmaster ( 2026120701 2h 15m 1w 300 )
    IN NS  ns1
    IN MX  10 mail
    IN TXT "v=spf1 -all" "second string"
    IN CAA 0 issue "letsencrypt.org"
ns1 IN A 192.0.2.1
mail IN A 192.0.2.10
     IN AAAA 2001:db8::10
www IN CNAME web
web IN A 192.0.2.20
_http._tcp IN SRV 10 5 80 web
sub IN NS ns.sub
ns.sub IN A 192.0.2.53
2.0.192 IN PTR ns1
"#;

/// The zone plus 60 A records at big.example.com. (too many for 512 bytes).
fn zone_text() -> String {
    let mut text = ZONE.to_owned();
    for i in 0..60 {
        text.push_str(&format!("big IN A 198.51.100.{i}\n"));
    }
    text
}

/// A DNS server on one core for the test zone; its UDP and TCP ports (the same one).
fn serve(backend: &str, dir: &TempDir) -> (Server, u16, u16) {
    serve_with(backend, dir, &[])
}

/// [`serve`] with `extra` flags.
fn serve_with(backend: &str, dir: &TempDir, extra: &[&str]) -> (Server, u16, u16) {
    let zone = dir.0.join("example.zone");
    std::fs::write(&zone, zone_text()).expect("write the zone");
    let zone = zone.to_str().expect("a UTF-8 path").to_owned();
    let port = free_tcp_udp_port();
    let udp_endpoint = format!("udp:{port}:interface=127.0.0.1");
    let tcp_endpoint = format!("tcp:{port}:interface=127.0.0.1");
    let mut server = Server::start(
        &[
            "serve",
            "dns",
            "--zone",
            &zone,
            "--listen",
            &udp_endpoint,
            "--listen",
            &tcp_endpoint,
            "--cores",
            "1",
            "--backend",
            backend,
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    );
    let mut udp = 0;
    let mut tcp = 0;
    for endpoint in server.listening(2) {
        match endpoint {
            Endpoint::Udp { addr } => udp = addr.port(),
            Endpoint::Tcp { addr } => tcp = addr.port(),
            other => panic!("unexpected endpoint {other}"),
        }
    }
    (server, udp, tcp)
}

/// `dig` against the server; its stdout.
fn dig(port: u16, args: &[&str]) -> String {
    let output = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=5", "+tries=1"])
        .args(args)
        .output()
        .expect("run dig");
    assert!(output.status.success(), "dig {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The answer lines (`+short`) of a query.
fn short(port: u16, name: &str, qtype: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![name, qtype, "+short"];
    args.extend_from_slice(extra);
    let mut lines: Vec<String> = dig(port, &args)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.starts_with(';'))
        .collect();
    lines.sort();
    lines
}

fn dig_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer("dig", &["-v"], "install-dns-test-deps.sh") {
        return;
    }
    let dir = TempDir::new("dns-dig");
    let (server, udp, tcp) = serve(backend, &dir);
    for (port, transport) in [(udp, None), (tcp, Some("+tcp"))] {
        let extra: Vec<&str> = transport.into_iter().collect();
        assert_eq!(short(port, "web.example.com", "A", &extra), ["192.0.2.20"]);
        assert_eq!(
            short(port, "mail.example.com", "AAAA", &extra),
            ["2001:db8::10"]
        );
        assert_eq!(
            short(port, "example.com", "MX", &extra),
            ["10 mail.example.com."]
        );
        assert_eq!(
            short(port, "example.com", "NS", &extra),
            ["ns1.example.com."]
        );
        assert_eq!(
            short(port, "example.com", "TXT", &extra),
            ["\"v=spf1 -all\" \"second string\""]
        );
        assert_eq!(
            short(port, "example.com", "CAA", &extra),
            ["0 issue \"letsencrypt.org\""]
        );
        assert_eq!(
            short(port, "_http._tcp.example.com", "SRV", &extra),
            ["10 5 80 web.example.com."]
        );
        assert_eq!(
            short(port, "2.0.192.example.com", "PTR", &extra),
            ["ns1.example.com."]
        );
        assert_eq!(
            short(port, "www.example.com", "A", &extra),
            ["192.0.2.20", "web.example.com."]
        );
        let soa = short(port, "example.com", "SOA", &extra);
        assert_eq!(
            soa,
            ["ns1.example.com. hostmaster.example.com. 2026120701 7200 900 604800 300"]
        );
    }
    // Negative answers and refusals, with their status.
    let nx = dig(udp, &["nothing.example.com", "A"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains("flags: qr aa"), "{nx}");
    assert!(nx.contains("IN\tSOA"), "{nx}");
    let refused = dig(udp, &["example.org", "A"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    let referral = dig(udp, &["host.sub.example.com", "A"]);
    assert!(
        referral.contains("AUTHORITY: 1") && referral.contains("192.0.2.53"),
        "{referral}"
    );
    // Truncation: without EDNS the 60 records do not fit 512 bytes; dig sees TC and
    // retries over TCP by itself, which gets them all.
    let truncated = dig(udp, &["big.example.com", "A", "+noedns", "+ignore"]);
    assert!(truncated.contains("flags: qr aa tc"), "{truncated}");
    assert_eq!(short(udp, "big.example.com", "A", &["+noedns"]).len(), 60);
    // With a 4096-byte EDNS size they fit in one datagram.
    let edns = dig(udp, &["big.example.com", "A", "+bufsize=4096", "+ignore"]);
    assert!(!edns.contains(" tc"), "{edns}");
    assert!(edns.contains("ANSWER: 60"), "{edns}");
    assert!(edns.contains("udp: 1232"), "our EDNS size: {edns}");
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

/// dnspython: pipelined queries on one TCP connection, answered in order; a malformed query
/// answered FORMERR with its id.
const DNSPYTHON: &str = r#"
import socket, struct, sys
import dns.message, dns.rcode
udp, tcp = int(sys.argv[1]), int(sys.argv[2])
names = ["web.example.com.", "mail.example.com.", "nothing.example.com.", "example.com."]
types = ["A", "AAAA", "A", "MX"]
queries = [dns.message.make_query(n, t) for n, t in zip(names, types)]
s = socket.create_connection(("127.0.0.1", tcp), timeout=10)
s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (q.to_wire() for q in queries)))
def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit("closed early")
        data += chunk
    return data
for q in queries:
    (n,) = struct.unpack("!H", read_exact(2))
    r = dns.message.from_wire(read_exact(n))
    assert r.id == q.id, (r.id, q.id)
    print(dns.rcode.to_text(r.rcode()), len(r.answer))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
bad = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x03abc"
u.sendto(bad, ("127.0.0.1", udp))
data, _ = u.recvfrom(4096)
(rid, flags) = struct.unpack("!HH", data[:4])
print("formerr", hex(rid), flags & 0xF)
"#;

fn dnspython_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer(
        "python3",
        &["-c", "import dns.message"],
        "install-dns-test-deps.sh",
    ) {
        return;
    }
    let dir = TempDir::new("dns-python");
    let (_server, udp, tcp) = serve(backend, &dir);
    let output = Command::new("python3")
        .args(["-c", DNSPYTHON, &udp.to_string(), &tcp.to_string()])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "NOERROR 1",
            "NOERROR 1",
            "NXDOMAIN 0",
            "NOERROR 1",
            "formerr 0xbeef 1"
        ]
    );
}

#[test]
fn dig_against_serve_dns_uring() {
    dig_suite("uring");
}

#[test]
fn dig_against_serve_dns_poll() {
    dig_suite("poll");
}

#[test]
fn dnspython_against_serve_dns_uring() {
    dnspython_suite("uring");
}

#[test]
fn dnspython_against_serve_dns_poll() {
    dnspython_suite("poll");
}

/// A query for `name` (dotted, no final dot) of type `qtype` with id `id` and RD.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut msg = id.to_be_bytes().to_vec();
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    msg
}

/// A query's name, type, and its answer's rcode, an address it holds, TC.
type Kind = (&'static str, u16, u8, Option<[u8; 4]>, bool);

/// Bursts of queries of many answer sizes sent from one socket before any answer is read:
/// the server queues the answers of a burst together and sends them grouped by size as
/// UDP GSO runs (`udp_gso_gather`), out of order. Every query still gets its own answer
/// once: its id, its question as sent (case included), its rcode, its address, TC for a
/// name too big for 512 bytes.
fn udp_bursts_get_every_answer(name: &str) {
    udp_bursts(name, &[]);
}

/// [`udp_bursts_get_every_answer`] with `--batch-wait 32,100us` (io_uring waits for 32
/// completions or 100 µs after a busy turn; poll ignores it), then a lone query after the
/// bursts, answered too.
fn batched_waits_answer_bursts_and_lone_queries(name: &str) {
    udp_bursts(name, &["--batch-wait", "32,100us"]);
}

/// `socket.recv`, again when a signal to the test process interrupts it (EINTR: it
/// happened in CI).
fn recv(socket: &std::net::UdpSocket, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match socket.recv(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

fn udp_bursts(name: &str, extra: &[&str]) {
    let Some(backend) = backend(name) else { return };
    let dir = TempDir::new("dns-bursts");
    let (server, udp, _tcp) = serve_with(backend, &dir, extra);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("set a read timeout");
    socket.connect(("127.0.0.1", udp)).expect("connect");
    let kinds: [Kind; 7] = [
        ("ns1.Example.com", 1, 0, Some([192, 0, 2, 1]), false),
        ("MAIL.example.com", 1, 0, Some([192, 0, 2, 10]), false),
        ("web.example.COM", 1, 0, Some([192, 0, 2, 20]), false),
        ("www.example.com", 1, 0, Some([192, 0, 2, 20]), false),
        ("example.com", 15, 0, None, false),
        ("big.example.com", 1, 0, None, true),
        ("absent.example.com", 1, 3, None, false),
    ];
    let mut id: u16 = 0;
    for _burst in 0..3 {
        let mut expected = std::collections::HashMap::new();
        // 100 queries a burst: their answers fit the client's default receive buffer.
        for i in 0..100 {
            id += 1;
            let kind = kinds[(i * 5 + usize::from(id) / 7) % kinds.len()];
            // Names of several lengths: "absent" gets a number of 1 to 3 digits.
            let owned;
            let qname = if kind.0.starts_with("absent") {
                owned = format!("absent{}.example.com", usize::from(id) % 1000);
                owned.as_str()
            } else {
                kind.0
            };
            let msg = query(id, qname, kind.1);
            socket.send(&msg).expect("send a query");
            expected.insert(id, (msg, kind));
        }
        let mut buf = [0u8; 4096];
        while !expected.is_empty() {
            let len = recv(&socket, &mut buf)
                .unwrap_or_else(|e| panic!("{} answers missing: {e}", expected.len()));
            let answer = &buf[..len];
            let got_id = u16::from_be_bytes([answer[0], answer[1]]);
            let (msg, (name, _, rcode, address, truncated)) = expected
                .remove(&got_id)
                .unwrap_or_else(|| panic!("an answer to id {got_id}, unexpected or twice"));
            assert_eq!(answer[2] & 0x80, 0x80, "{name}: QR");
            assert_eq!(answer[2] & 0x02 != 0, truncated, "{name}: TC");
            assert_eq!(answer[3] & 0x0F, rcode, "{name}: rcode");
            assert_eq!(&answer[4..6], &[0, 1], "{name}: one question");
            assert_eq!(
                &answer[12..msg.len()],
                &msg[12..],
                "{name}: the question as sent"
            );
            if let Some(address) = address {
                assert!(
                    answer[msg.len()..].windows(4).any(|w| w == address),
                    "{name}: the address"
                );
            }
        }
    }
    // A lone query after the bursts (a batch wait, if engaged, ends at its delay).
    socket
        .send(&query(id + 1, "www.example.com", 1))
        .expect("send a lone query");
    let mut buf = [0u8; 512];
    let len = recv(&socket, &mut buf).expect("the lone query's answer");
    assert_eq!(
        u16::from_be_bytes([buf[0], buf[1]]),
        id + 1,
        "the lone answer's id"
    );
    assert!(len > 12);
    drop(server);
}

both_backends!(
    udp_bursts_get_every_answer,
    batched_waits_answer_bursts_and_lone_queries
);
