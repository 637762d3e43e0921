//! nginx as a test peer: serves two files (`/small.txt`, `/big.bin`) from a temporary prefix,
//! over plain HTTP/1.1 or over TLS with HTTP/2; stopped and removed on drop.
//!
//! A missing nginx skips the test with a loud line, except under `CI=true`, where the peer is
//! installed by `scripts/install-http-test-deps.sh` and its absence fails the test.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringwork::testing::certs::TestCert;

const NGINX: &str = "/usr/sbin/nginx";

/// A running nginx (daemon mode, one worker) on a free loopback port.
pub struct Nginx {
    prefix: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The content of `/small.txt`.
    pub small: Vec<u8>,
    /// The content of `/big.bin` (300,000 bytes).
    pub big: Vec<u8>,
}

impl Nginx {
    /// nginx over plain HTTP/1.1; `None` (after a loud line) when nginx is not installed
    /// and the run is not CI.
    pub fn plain() -> Option<Nginx> {
        Nginx::start(None)
    }

    /// nginx over TLS with `http2` on, presenting `cert`.
    pub fn h2_tls(cert: &TestCert) -> Option<Nginx> {
        Nginx::start(Some(cert))
    }

    fn start(cert: Option<&TestCert>) -> Option<Nginx> {
        if !Path::new(NGINX).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nginx is missing under CI=true: scripts/install-http-test-deps.sh installs it"
            );
            eprintln!("skipped: nginx not installed (scripts/install-http-test-deps.sh)");
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let prefix =
            std::env::temp_dir().join(format!("ringwork-nginx-{}-{n}", std::process::id()));
        let www = prefix.join("www");
        std::fs::create_dir_all(&www).expect("temp dir");
        let small = b"small file from nginx\n".to_vec();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(www.join("small.txt"), &small).expect("write");
        std::fs::write(www.join("big.bin"), &big).expect("write");
        // A free port: bound and released (nginx binds it a moment later).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let listen = match cert {
            None => format!("listen 127.0.0.1:{port};"),
            Some(cert) => {
                let (cert_file, key_file) = cert.write_pem(&prefix, "server");
                format!(
                    "listen 127.0.0.1:{port} ssl http2; ssl_certificate {}; ssl_certificate_key {};",
                    cert_file.display(),
                    key_file.display()
                )
            }
        };
        let p = prefix.display();
        let user = if std::env::var("USER").as_deref() == Ok("root") {
            "user root;"
        } else {
            ""
        };
        let config = format!(
            "{user}\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n access_log off;\n client_body_temp_path {p}/body;\n\
             proxy_temp_path {p}/proxy;\n fastcgi_temp_path {p}/fastcgi;\n\
             uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n\
             server {{ {listen} root {p}/www; }}\n}}\n"
        );
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config).expect("write config");
        // Daemon mode: the command returns once the master bound its socket.
        let status = Command::new(NGINX)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .status()
            .expect("run nginx");
        let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
        assert!(status.success(), "nginx failed to start: {log}");
        Some(Nginx {
            prefix,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            small,
            big,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(NGINX)
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(self.prefix.join("nginx.conf"))
            .args(["-s", "stop"])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}
