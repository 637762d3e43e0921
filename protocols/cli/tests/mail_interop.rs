//! `ringwork serve smtp` against real clients, on both backends: Python's smtplib (plain,
//! pipelining, 8BITMIME, size refusal, relay refusal, STARTTLS then AUTH PLAIN and LOGIN)
//! and swaks (STARTTLS + AUTH). Every accepted message must be complete in `new/`. And
//! `ringwork serve pop3` against Python's poplib over the same Maildir (STLS, USER/PASS,
//! CAPA, STAT, LIST, UIDL, TOP, RETR, DELE, RSET, NOOP, QUIT; removals only at QUIT).

#[macro_use]
mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{Server, TempDir, backend, peer};

fn users_file(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("users");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["passwd", "--file"])
        .arg(&file)
        .arg("alice")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ringwork passwd");
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    assert!(child.wait().unwrap().success());
    file
}

fn serve(backend: &str, dir: &TempDir) -> (Server, u16) {
    serve_mail(
        "smtp",
        backend,
        dir,
        &["--domain", "example.org", "--max-message-size", "100000"],
    )
}

fn serve_mail(service: &str, backend: &str, dir: &TempDir, extra: &[&str]) -> (Server, u16) {
    let users = users_file(&dir.0);
    let maildir = dir.0.join("mail");
    let mut args = vec![
        "serve",
        service,
        "--backend",
        backend,
        "--cores",
        "1",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--maildir",
        maildir.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args);
    let port = server.listening(1)[0].port().expect("a TCP port");
    (server, port)
}

/// The messages in `DIR/mail/alice/new`, in name order.
fn delivered(dir: &TempDir) -> Vec<String> {
    let new = dir.0.join("mail").join("alice").join("new");
    let mut names: Vec<_> = std::fs::read_dir(&new)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
        .collect()
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
code, text = s.ehlo("client.test")
assert code == 250 and b"PIPELINING" in text and b"8BITMIME" in text and b"STARTTLS" in text, text
assert b"AUTH" not in text, "AUTH before TLS"
assert s.sendmail("bob@x.test", ["alice@example.org"], b"Subject: one\r\n\r\nplain\r\n.dot line\r\n") == {}
try:
    s.sendmail("bob@x.test", ["carol@elsewhere.test"], b"x")
    raise SystemExit("relay accepted")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["carol@elsewhere.test"][0] == 554, e
try:
    s.sendmail("bob@x.test", ["nobody@example.org"], b"x")
    raise SystemExit("unknown user accepted")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["nobody@example.org"][0] == 550, e
try:
    s.sendmail("bob@x.test", ["alice@example.org"], b"y" * 200000)
    raise SystemExit("oversized accepted")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 552, e
try:
    s.login("alice", "s3cret")
    raise SystemExit("AUTH in the clear")
except smtplib.SMTPNotSupportedError:
    pass
s.starttls(context=ssl._create_unverified_context())
code, text = s.ehlo("client.test")
assert b"AUTH PLAIN LOGIN" in text and b"STARTTLS" not in text, text
try:
    s.login("alice", "wrong")
    raise SystemExit("wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.login("alice", "s3cret")
assert s.sendmail("alice@example.org", ["alice@example.org"], "Subject: two\r\n\r\n\u00fc 8bit\r\n".encode(),
                  mail_options=["BODY=8BITMIME"]) == {}
s.quit()
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.starttls(context=ssl._create_unverified_context())
s.ehlo()
s.user, s.password = "alice", "s3cret"
code, _ = s.auth("LOGIN", s.auth_login)
assert code == 235, code
s.quit()
print("ok")
"#;

fn smtplib_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer(
        "python3",
        &["-c", "import smtplib, ssl"],
        "install-mail-test-deps.sh",
    ) {
        return;
    }
    let dir = TempDir::new(&format!("smtplib-{name}"));
    let (server, port) = serve(backend, &dir);
    let out = Command::new("python3")
        .args(["-c", SMTPLIB, &port.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "smtplib on {backend}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = delivered(&dir);
    assert_eq!(mail.len(), 2, "{mail:?}");
    let (one, two) = (&mail[0], &mail[1]);
    let (first, second) = if one.contains("Subject: one") {
        (one, two)
    } else {
        (two, one)
    };
    assert!(
        first.starts_with(
            "Return-Path: <bob@x.test>\r\nReceived: from client.test by example.org with ESMTP;"
        ),
        "{first}"
    );
    assert!(
        first.ends_with("Subject: one\r\n\r\nplain\r\n.dot line\r\n"),
        "{first:?}"
    );
    assert!(second.contains("with ESMTPSA;"), "{second}");
    assert!(
        second.ends_with("Subject: two\r\n\r\n\u{fc} 8bit\r\n"),
        "{second:?}"
    );
    assert!(server.terminate(), "clean exit");
}

fn swaks_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer("swaks", &["--version"], "install-mail-test-deps.sh") {
        return;
    }
    let dir = TempDir::new(&format!("swaks-{name}"));
    let (server, port) = serve(backend, &dir);
    let out = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--to",
            "alice@example.org",
        ])
        .args([
            "--from",
            "alice@example.org",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
        ])
        .args([
            "--auth-password",
            "s3cret",
            "--pipeline",
            "--header",
            "Subject: swaks",
        ])
        .args(["--body", "from swaks", "--timeout", "20"])
        .output()
        .expect("run swaks");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "swaks on {backend}:\n{transcript}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(transcript.contains("235 2.7.0"), "{transcript}");
    let mail = delivered(&dir);
    assert_eq!(mail.len(), 1, "{transcript}");
    assert!(
        mail[0].contains("Subject: swaks") && mail[0].contains("from swaks"),
        "{}",
        mail[0]
    );
    assert!(server.terminate(), "clean exit");
}

#[test]
fn smtplib_against_serve_smtp_uring() {
    smtplib_suite("uring");
}

#[test]
fn smtplib_against_serve_smtp_poll() {
    smtplib_suite("poll");
}

#[test]
fn swaks_against_serve_smtp_uring() {
    swaks_suite("uring");
}

#[test]
fn swaks_against_serve_smtp_poll() {
    swaks_suite("poll");
}

const POPLIB: &str = r#"
import poplib, ssl, sys
port = int(sys.argv[1])
p = poplib.POP3("127.0.0.1", port, timeout=20)
caps = p.capa()
assert "STLS" in caps and "UIDL" in caps and "TOP" in caps and "USER" not in caps, caps
try:
    p.user("alice")
    raise SystemExit("USER in the clear")
except poplib.error_proto as e:
    assert b"STLS" in e.args[0], e
p.stls(context=ssl._create_unverified_context())
assert "USER" in p.capa()
p.user("alice")
try:
    p.pass_("wrong")
    raise SystemExit("wrong password accepted")
except poplib.error_proto as e:
    assert e.args[0].startswith(b"-ERR [AUTH]"), e
p.user("alice")
p.pass_("s3cret")
count, size = p.stat()
assert count == 2, (count, size)
resp, listing, _ = p.list()
sizes = [int(l.split()[1]) for l in listing]
assert sum(sizes) == size, (listing, size)
resp, uids, _ = p.uidl()
assert [u.split()[1] for u in uids] == [b"1000.a", b"2000.b"], uids
resp, lines, _ = p.retr(1)
assert lines == [b"Subject: first", b"", b"line one", b".dot", b"line three"], lines
resp, lines, _ = p.top(1, 1)
assert lines == [b"Subject: first", b"", b"line one"], lines
p.dele(1)
try:
    p.retr(1)
    raise SystemExit("deleted message retrieved")
except poplib.error_proto:
    pass
p.rset()
p.dele(2)
p.noop()
assert p.stat()[0] == 1
p.quit()
# A session that drops without QUIT removes nothing.
p = poplib.POP3("127.0.0.1", port, timeout=20)
p.stls(context=ssl._create_unverified_context())
p.user("alice"); p.pass_("s3cret")
assert p.stat()[0] == 1
p.dele(1)
p.sock.close()
print("ok")
"#;

fn poplib_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer(
        "python3",
        &["-c", "import poplib, ssl"],
        "install-mail-test-deps.sh",
    ) {
        return;
    }
    let dir = TempDir::new(&format!("poplib-{name}"));
    let cur = dir.0.join("mail").join("alice").join("cur");
    let new = dir.0.join("mail").join("alice").join("new");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(
        cur.join("1000.a:2,S"),
        "Subject: first\r\n\r\nline one\r\n.dot\r\nline three\r\n",
    )
    .unwrap();
    std::fs::write(new.join("2000.b"), "Subject: second\r\n\r\nbody\r\n").unwrap();
    let (server, port) = serve_mail("pop3", backend, &dir, &[]);
    let out = Command::new("python3")
        .args(["-c", POPLIB, &port.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "poplib on {backend}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The second session's DELE without QUIT must not remove anything: a third session
    // still sees the message.
    let check = Command::new("python3")
        .args(["-c", "import poplib,ssl,sys\np=poplib.POP3('127.0.0.1',int(sys.argv[1]),timeout=20)\np.stls(context=ssl._create_unverified_context())\np.user('alice');p.pass_('s3cret')\nprint(p.stat()[0])\np.quit()", &port.to_string()])
        .output()
        .expect("run python3");
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "1",
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(cur.join("1000.a:2,S").exists(), "message 1 was RSET");
    assert!(!new.join("2000.b").exists(), "message 2 removed at QUIT");
    assert!(server.terminate(), "clean exit");
}

#[test]
fn poplib_against_serve_pop3_uring() {
    poplib_suite("uring");
}

#[test]
fn poplib_against_serve_pop3_poll() {
    poplib_suite("poll");
}
