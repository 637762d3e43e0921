//! `ringwork-load dns` against the authoritative server of `ringwork-protocols` on a reactor
//! thread, on every backend: answers are matched and counted by response code (NOERROR,
//! NXDOMAIN, REFUSED outside the zone), a server that drops queries shows as timeouts, and
//! the binary reports its counts and refuses bad query lists with the line.

mod common;

use common::Server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringwork::platform::{BackendChoice, test_all_backends};
use ringwork_loadtest::dns::{DnsSession, QueryList};
use ringwork_loadtest::{RunOptions, run_udp};
use ringwork_protocols::dns::proto::{Catalog, Zone};
use ringwork_protocols::dns::server::UdpServer;

const ZONE: &str = "$ORIGIN example.com.\n$TTL 300\n\
@ IN SOA ns1 hostmaster 1 7200 900 604800 60\n\
  IN NS ns1\n\
ns1 IN A 192.0.2.1\n\
www IN A 192.0.2.80\n";

fn serve(backend: BackendChoice) -> Option<Server> {
    let mut catalog = Catalog::new();
    catalog
        .add(Zone::parse(ZONE, "example.zone", None).expect("zone"))
        .expect("add zone");
    let catalog = Arc::new(catalog);
    common::serve(backend, move |reactor| {
        let id = reactor
            .bind_udp(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                UdpServer::new(catalog),
            )
            .expect("bind");
        common::udp_addr(reactor, id)
    })
}

fn options(addr: SocketAddr, backend: BackendChoice) -> RunOptions {
    RunOptions {
        backend,
        connections: 4,
        duration: Duration::from_millis(800),
        timeout: Some(Duration::from_millis(500)),
        depth: 4,
        ..RunOptions::new("dns", &addr.to_string(), addr)
    }
}

fn run(addr: SocketAddr, backend: BackendChoice, queries: &str) -> ringwork_loadtest::Report {
    let list = Arc::new(QueryList::parse(queries, Some(1232)).expect("queries"));
    let flows = AtomicUsize::new(0);
    run_udp(&options(addr, backend), move || {
        DnsSession::new(Arc::clone(&list), flows.fetch_add(1, Ordering::Relaxed))
    })
    .expect("run")
}

test_all_backends! {
    fn answers_are_counted_by_response_code(backend: BackendChoice) {
        let Some(server) = serve(backend) else { return };
        let r = run(
            server.addr,
            backend,
            "www.example.com A\nnothing.example.com A\nWWW.Example.COM a\nelsewhere.org A\n",
        );
        let count = |class: &str| r.responses.get(class).copied().unwrap_or(0);
        assert!(r.requests > 100, "{}", r.summary());
        assert_eq!(r.errors.total(), 0, "{}", r.summary());
        // Half the list exists, a quarter does not, a quarter is outside the zone.
        let (ok, nx, refused) = (count("NOERROR"), count("NXDOMAIN"), count("REFUSED"));
        assert_eq!(ok + nx + refused, r.requests, "{:?}", r.responses);
        for (class, n, share) in [("NOERROR", ok, 0.5), ("NXDOMAIN", nx, 0.25), ("REFUSED", refused, 0.25)] {
            let got = n as f64 / r.requests as f64;
            assert!((got - share).abs() < 0.1, "{class}: {got:.2} of answers, expected {share}: {:?}", r.responses);
        }
        assert_eq!(r.unsuccessful, refused, "REFUSED is unsuccessful, NXDOMAIN is not");
        assert!(r.summary().contains("responses  NOERROR"), "{}", r.summary());
    }

    fn a_silent_server_shows_as_timeouts(backend: BackendChoice) {
        // A bound UDP socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let r = run(addr, backend, "www.example.com A\n");
        assert_eq!(r.requests, 0, "{}", r.summary());
        assert!(r.errors.timeout > 0, "{}", r.summary());
    }
}

/// The binary: its summary has the response codes; a bad query list names the line.
#[test]
fn binary_reports_and_refuses_bad_lists() {
    let Some(server) = serve(BackendChoice::Poll) else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_ringwork-load");
    let out = std::process::Command::new(bin)
        .args([
            "dns",
            &server.addr.to_string(),
            "-Q",
            "www.example.com A",
            "-Q",
            "no.example.com",
        ])
        .args(["-c", "2", "-d", "500ms", "--quiet", "--backend", "poll"])
        .output()
        .expect("run ringwork-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("NOERROR") && stdout.contains("NXDOMAIN"),
        "{stdout}"
    );

    let dir = std::env::temp_dir().join(format!("ringwork-load-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let list = dir.join("queries.txt");
    std::fs::write(&list, "www.example.com A\nwww.example.com NOTATYPE\n").expect("write");
    for args in [
        vec![
            "dns".to_string(),
            server.addr.to_string(),
            "-f".into(),
            list.display().to_string(),
        ],
        vec!["dns".to_string(), server.addr.to_string()],
    ] {
        let out = std::process::Command::new(bin)
            .args(&args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        if args.len() > 2 {
            assert!(
                stderr.contains("line 2") && stderr.contains("NOTATYPE"),
                "{stderr}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
