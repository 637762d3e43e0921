//! `servers` entries and the `tls_*` keys of upstream pools: parsing, defaults, and load
//! errors that name the line, the key and the file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ringwork::testing::certs::TestCa;
use ringwork::tls::ServerName;

use super::ServerEntry;
use crate::http::reverse_proxy::{ConfigError, ProxyConfig};

#[test]
fn server_entries() {
    // (entry, https, host, authority)
    let table = [
        ("10.0.0.1:80", false, "10.0.0.1", "10.0.0.1:80"),
        ("http://10.0.0.1", false, "10.0.0.1", "10.0.0.1:80"),
        ("https://10.0.0.1", true, "10.0.0.1", "10.0.0.1:443"),
        (
            "HTTPS://api.internal:8443/",
            true,
            "api.internal",
            "api.internal:8443",
        ),
        ("https://[::1]:9443", true, "::1", "[::1]:9443"),
        ("https://[::1]", true, "::1", "[::1]:443"),
        ("[::1]:80", false, "::1", "[::1]:80"),
    ];
    for (text, https, host, authority) in table {
        let entry = ServerEntry::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            (entry.https, entry.host.as_str(), entry.authority.as_str()),
            (https, host, authority),
            "{text}"
        );
    }
    // (entry, error contains)
    let bad = [
        ("ftp://10.0.0.1:21", "only http:// and https://"),
        ("https://10.0.0.1/api", "no path"),
        ("https://user@10.0.0.1", "user info"),
        ("https://", "no host"),
        ("https://10.0.0.1:443x", "bad port"),
        ("https://[::1", "unclosed"),
        ("10.0.0.1", "not host:port"),
    ];
    for (text, reason) in bad {
        match ServerEntry::parse(text) {
            Err(e) => assert!(e.contains(reason), "{text}: {e}"),
            Ok(entry) => panic!("{text}: parsed as {entry:?}"),
        }
    }
    let ip = ServerEntry::parse("https://127.0.0.1").unwrap();
    let ip_name = ServerName::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap().into());
    assert_eq!(ip.server_name().unwrap(), ip_name);
    let dns = ServerEntry::parse("https://localhost:1").unwrap();
    assert_eq!(
        dns.server_name().unwrap(),
        ServerName::try_from("localhost").unwrap()
    );
}

/// A temporary directory with `ca.pem`, `client.pem`/`client.key` (of the CA),
/// `other.key` (a key of another certificate) and `junk.pem`; removed on drop.
struct Files(PathBuf);

impl Files {
    fn new(name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!(
            "ringwork-upstream-tls-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new();
        std::fs::write(dir.join("ca.pem"), &ca.cert_pem).unwrap();
        ca.client("proxy").write_pem(&dir, "client");
        let (_, other_key) = ca.client("other").write_pem(&dir, "other");
        assert!(other_key.ends_with("other.key"));
        std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();
        Files(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config with the pool `a` of `servers` and the extra keys `pool` in its table.
fn config(servers: &str, pool: &str) -> String {
    format!(
        "listen = [\"tcp:80\"]\n[upstreams.a]\nservers = [{servers}]\n{pool}\n[[routes]]\nupstream = \"a\"\n"
    )
}

#[test]
fn https_pools_load_their_files() {
    let files = Files::new("load");
    let text = config(
        "\"https://127.0.0.1:8443\", \"https://localhost:9443\"",
        &format!(
            "tls_ca = {:?}\ntls_cert = {:?}\ntls_key = {:?}",
            files.path("ca.pem"),
            files.path("client.pem"),
            files.path("client.key")
        ),
    );
    let loaded = ProxyConfig::from_toml(&text).unwrap();
    let pool = &loaded.upstreams[0];
    // A name is kept (resolved at each connect), not resolved at load.
    assert_eq!(pool.servers[1], "localhost:9443".parse().unwrap());
    let tls = pool.tls.as_ref().expect("https pool");
    assert!(tls.verify);
    assert_eq!(tls.ca.as_deref(), Some(Path::new(&files.path("ca.pem"))));
    assert!(tls.client_cert.is_some());
    // Each server is verified as the host written for it.
    let ip = ServerName::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap().into());
    assert_eq!(
        tls.server_names,
        [ip, ServerName::try_from("localhost").unwrap()]
    );
    // tls_server_name applies to every server.
    let text = config(
        "\"https://127.0.0.1:1\", \"https://127.0.0.2:1\"",
        &format!(
            "tls_ca = {:?}\ntls_server_name = \"api.internal\"",
            files.path("ca.pem")
        ),
    );
    let loaded = ProxyConfig::from_toml(&text).unwrap();
    let names = &loaded.upstreams[0].tls.as_ref().unwrap().server_names;
    assert_eq!(
        names,
        &vec![ServerName::try_from("api.internal").unwrap(); 2]
    );
    // Plaintext pools have no TLS.
    let loaded = ProxyConfig::from_toml(&config("\"http://127.0.0.1\"", "")).unwrap();
    assert!(loaded.upstreams[0].tls.is_none());
    assert_eq!(
        loaded.upstreams[0].servers[0],
        "127.0.0.1:80".parse().unwrap()
    );
}

#[test]
fn insecure_pools_and_default_roots() {
    let loaded =
        ProxyConfig::from_toml(&config("\"https://127.0.0.1\"", "tls_verify = false")).unwrap();
    let tls = loaded.upstreams[0].tls.as_ref().unwrap();
    assert!(!tls.verify);
    assert!(
        tls.connector(
            std::time::Duration::from_secs(1),
            crate::http::client::HttpProtocol::Http1
        )
        .is_ok()
    );
    assert!(
        tls.connector(
            std::time::Duration::from_secs(1),
            crate::http::client::HttpProtocol::Auto
        )
        .is_ok()
    );
    // System roots: fine where the machine has some, else a load error naming the pool.
    match ProxyConfig::from_toml(&config("\"https://127.0.0.1\"", "")) {
        Ok(loaded) => assert!(loaded.upstreams[0].tls.as_ref().unwrap().ca.is_none()),
        Err(error) => assert!(error.to_string().contains("no trusted root"), "{error}"),
    }
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let files = Files::new("relative");
    let text = config("\"https://127.0.0.1\"", "tls_ca = \"ca.pem\"");
    let file = files.0.join("proxy.toml");
    std::fs::write(&file, text).unwrap();
    let loaded = ProxyConfig::load(&file).unwrap();
    let ca = loaded.upstreams[0].tls.as_ref().unwrap().ca.clone();
    assert_eq!(ca, Some(files.0.join("ca.pem")));
}

#[test]
fn tls_errors_name_line_key_and_file() {
    let files = Files::new("errors");
    let ca = files.path("ca.pem");
    let missing = files.path("missing.pem");
    let junk = files.path("junk.pem");
    let (cert, other_key) = (files.path("client.pem"), files.path("other.key"));
    // (servers, pool keys, field, message contains)
    let cases = [
        (
            "\"https://127.0.0.1\"",
            format!("tls_ca = {missing:?}"),
            "upstreams.a.tls_ca",
            missing.clone(),
        ),
        (
            "\"https://127.0.0.1\"",
            format!("tls_ca = {junk:?}"),
            "upstreams.a.tls_ca",
            "no certificate found".to_owned(),
        ),
        (
            "\"127.0.0.1:80\"",
            format!("tls_ca = {ca:?}"),
            "upstreams.a.tls_ca",
            "need https:// servers".to_owned(),
        ),
        (
            "\"http://127.0.0.1\"",
            "tls_verify = false".to_owned(),
            "upstreams.a.tls_verify",
            "need https:// servers".to_owned(),
        ),
        (
            "\"https://127.0.0.1\", \"127.0.0.2:80\"",
            String::new(),
            "upstreams.a.servers[1]",
            "mixes http and https".to_owned(),
        ),
        (
            "\"https://127.0.0.1\"",
            format!("tls_ca = {ca:?}\ntls_cert = {cert:?}"),
            "upstreams.a.tls_cert",
            "needs tls_key".to_owned(),
        ),
        (
            "\"https://127.0.0.1\"",
            format!("tls_ca = {ca:?}\ntls_cert = {cert:?}\ntls_key = {other_key:?}"),
            "upstreams.a.tls_cert",
            "certificate key for client".to_owned(),
        ),
        (
            "\"https://127.0.0.1\"",
            format!("tls_ca = {ca:?}\ntls_cert = {cert:?}\ntls_key = {missing:?}"),
            "upstreams.a.tls_key",
            missing.clone(),
        ),
        (
            "\"https://127.0.0.1\"",
            format!("tls_ca = {ca:?}\ntls_verify = false"),
            "upstreams.a.tls_ca",
            "tls_verify = false".to_owned(),
        ),
        (
            "\"https://127.0.0.1\"",
            format!("tls_ca = {ca:?}\ntls_server_name = \"not a name\""),
            "upstreams.a.tls_server_name",
            "invalid server name".to_owned(),
        ),
        (
            "\"ftp://127.0.0.1:21\"",
            String::new(),
            "upstreams.a.servers[0]",
            "only http:// and https://".to_owned(),
        ),
    ];
    for (servers, pool, field, reason) in cases {
        let text = config(servers, &pool);
        match ProxyConfig::from_toml(&text) {
            Err(ConfigError::Invalid {
                line: Some(line),
                field: got,
                message,
            }) => {
                assert_eq!(got, field, "{text}\n{message}");
                assert!(
                    message.contains(&reason),
                    "{text}\n{message} lacks {reason}"
                );
                let key = field.rsplit('.').next().unwrap();
                let key = key.split('[').next().unwrap();
                let expected = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
                assert_eq!(line, expected, "{text}\n{message}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}
