//! `ringwork serve smtp` against real clients, on both backends: Python's smtplib (plain,
//! pipelining, 8BITMIME, size refusal, relay refusal, STARTTLS then AUTH PLAIN and LOGIN)
//! and swaks (STARTTLS + AUTH). Every accepted message must be complete in `new/`. And
//! `ringwork serve pop3` against Python's poplib over the same Maildir (STLS, USER/PASS,
//! CAPA, STAT, LIST, UIDL, TOP, RETR, DELE, RSET, NOOP, QUIT; removals only at QUIT). And
//! `ringwork serve imap` against Python's imaplib (every command of the server, STARTTLS,
//! IMAPS, LITERAL+, IDLE seeing mail delivered by `serve smtp` and mail written into the
//! Maildir).

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
# RFC 1939's exclusive access: a second session of the user is refused meanwhile.
q = poplib.POP3("127.0.0.1", port, timeout=20)
q.stls(context=ssl._create_unverified_context())
q.user("alice")
try:
    q.pass_("s3cret")
    raise SystemExit("a second session got the locked maildrop")
except poplib.error_proto as e:
    assert e.args[0].startswith(b"-ERR [IN-USE]"), e
q.quit()
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
# The lock went with the connection: the next session (below) logs in.
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

const IMAPLIB: &str = r#"
import imaplib, os, re, smtplib, socket, ssl, sys, time
port, imaps, smtp_port, maildir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl._create_unverified_context()
M = imaplib.IMAP4("127.0.0.1", port, timeout=20)
assert "LOGINDISABLED" in M.capabilities and "STARTTLS" in M.capabilities, M.capabilities
try:
    M.login("alice", "s3cret")
    raise SystemExit("LOGIN in the clear")
except imaplib.IMAP4.error as e:
    assert "PRIVACYREQUIRED" in str(e), e
M.starttls(ssl_context=ctx)
assert "AUTH=PLAIN" in M.capabilities and "IDLE" in M.capabilities, M.capabilities
try:
    M.login("alice", "wrong")
    raise SystemExit("wrong password accepted")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
M.login("alice", "s3cret")
assert M.list() == ("OK", [b'() "." "INBOX"']), M.list()
assert M.create("Archive")[0] == "OK"
assert M.list('""', "*")[1] == [b'() "." "INBOX"', b'() "." "Archive"'], M.list('""', "*")
assert M.lsub('""', "Arch%")[1] == [b'() "." "Archive"'], M.lsub('""', "Arch%")
typ, data = M.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
assert re.match(rb'"INBOX" \(MESSAGES 2 RECENT 1 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 1\)', data[0]), data
assert M.select("INBOX", readonly=True) == ("OK", [b"2"])
assert M.select("INBOX") == ("OK", [b"2"])
validity = M.response("UIDVALIDITY")[1][0]
typ, data = M.fetch("1:2", "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")
assert b'UID 1 FLAGS (\\Seen) RFC822.SIZE 34 INTERNALDATE "' in data[0], data
assert b'ENVELOPE (NIL "first" NIL NIL NIL NIL NIL NIL NIL NIL)' in data[0], data
assert b'UID 2 FLAGS (\\Recent)' in data[1] and b'((NIL NIL "bob" "x.test"))' in data[1], data
typ, data = M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<5.3>)")
assert data[0][1] == b"Subject: first\r\n\r\n" and data[1][1] == b"one", data
typ, data = M.fetch("2", "(BODY.PEEK[HEADER] BODY.PEEK[TEXT] RFC822.HEADER)")
assert data[0][1].startswith(b"From: bob@x.test\r\n") and data[1][1] == b"body two\r\n", data
typ, data = M.fetch("2", "(BODY[])")
assert data[0][1] == open(os.path.join(maildir, "cur", sorted(os.listdir(os.path.join(maildir, "cur")))[1]), "rb").read(), data
assert b"FLAGS (\\Seen \\Recent)" in data[0][0] + data[1], data
typ, data = M.fetch("1", "RFC822")
assert data[0][1].endswith(b"line one\r\n.dot\r\n"), data
typ, data = M.uid("FETCH", "2:*", "(FLAGS)")
assert data == [b"2 (UID 2 FLAGS (\\Seen \\Recent))"], data
typ, data = M.store("2", "+FLAGS", "(\\Flagged \\Deleted)")
assert data == [b"2 (FLAGS (\\Flagged \\Seen \\Deleted \\Recent))"], data
assert M.uid("STORE", "2", "-FLAGS.SILENT", "(\\Deleted)") == ("OK", [None])
assert M.store("1", "-FLAGS", "\\Seen")[1] == [b"1 (FLAGS ())"]
def search(*keys, uid=False):
    typ, data = M.uid("SEARCH", *keys) if uid else M.search(None, *keys)
    assert typ == "OK", (keys, data)
    return data[0].decode()
assert search("ALL") == "1 2"
assert search("FLAGGED") == "2" and search("UNSEEN") == "1" and search("SEEN") == "2"
assert search("DELETED") == "" and search("NOT", "FLAGGED") == "1"
assert search("OR", "FROM", "bob", "SUBJECT", "first") == "1 2"
assert search("TO", "alice") == "2" and search("SUBJECT", "FIRST") == "1"
assert search("BODY", "two") == "2" and search("TEXT", "x.test") == "2"
assert search("SINCE", "1-Jan-2000", "BEFORE", "1-Jan-2100") == "1 2"
assert search("ON", "1-Jan-2000") == "" and search("LARGER", "34") == "2" and search("SMALLER", "35") == "1"
assert search("UID", "2:*", uid=True) == "2" and search("2") == "2"
typ, data = M.copy("1:2", "Archive")
copyuid = M.response("COPYUID")[1][0].split()
assert typ == "OK" and copyuid[1:] == [b"1,2", b"1,2"], copyuid
assert M.uid("COPY", "1", "Nowhere")[0] == "NO"
typ, data = M.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(1700000000), b"Subject: appended\r\n\r\nhi\r\n")
appenduid = M.response("APPENDUID")[1][0].split()
assert typ == "OK" and appenduid == [validity, b"3"], (data, appenduid)
M.store("1", "+FLAGS", "\\Deleted")
assert M.expunge() == ("OK", [b"1"]), "EXPUNGE"
typ, data = M.fetch("2", "(UID INTERNALDATE)")
assert data == [b'2 (UID 3 INTERNALDATE "14-Nov-2023 22:13:20 +0000")'], data
assert M.noop()[0] == "OK" and M.check()[0] == "OK"
tag = M._new_tag()
M.send(tag + b" FROB\r\n")
assert M.readline() == tag + b" BAD Unknown command\r\n"
assert M.noop()[0] == "OK"

def idle_until(send):
    tag = M._new_tag()
    M.send(tag + b" IDLE\r\n")
    assert M.readline() == b"+ idling\r\n"
    send()
    while True:
        line = M.readline()
        assert line, "EOF while idling"
        if line.endswith(b"EXISTS\r\n"):
            break
    M.send(b"DONE\r\n")
    while True:
        line = M.readline()
        if line.startswith(tag):
            assert b"OK" in line, line
            return
def deliver():
    s = smtplib.SMTP("127.0.0.1", smtp_port, timeout=20)
    s.sendmail("bob@x.test", ["alice@localhost"], b"Subject: while idling\r\n\r\nhello\r\n")
    s.quit()
idle_until(deliver)
def drop():
    with open(os.path.join(maildir, "tmp", "9.dropped"), "wb") as f:
        f.write(b"Subject: dropped\r\n\r\nin\r\n")
    os.rename(os.path.join(maildir, "tmp", "9.dropped"), os.path.join(maildir, "new", "9999999999.dropped"))
idle_until(drop)
assert search("SUBJECT", "idling") == "3" and search("SUBJECT", "dropped") == "4", search("ALL")
assert M.close()[0] == "OK" and M.select("Archive", readonly=True) == ("OK", [b"2"])
assert M.store("1", "+FLAGS", "\\Seen")[0] == "NO"
assert M.unselect()[0] == "OK" if hasattr(M, "unselect") else True
M.logout()

# IMAPS, AUTHENTICATE PLAIN, LITERAL+ and a BAD that keeps the session, on a raw socket.
M = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=20)
assert "STARTTLS" not in M.capabilities and "AUTH=PLAIN" in M.capabilities
M.authenticate("PLAIN", lambda _: b"\0alice\0s3cret")
# A 3 MB message: APPEND's literal, and FETCH's answer in parts streamed from the file.
big = b"Subject: big\r\n\r\n" + (b"0123456789" * 100 + b"\r\n") * 3000
assert M.append("INBOX", None, None, big)[0] == "OK"
typ, data = M.select("INBOX")
typ, data = M.fetch(data[0], "(BODY.PEEK[] BODY.PEEK[]<2000000.10>)")
assert data[0][1] == big and data[1][1] == big[2000000:2000010], (len(data[0][1]), data[1])
M.logout()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", imaps), timeout=20))
f = s.makefile("rb")
f.readline()
s.sendall(b"a LOGIN alice {6+}\r\ns3cret\r\nb APPEND INBOX {5+}\r\nhello\r\nc FETCH 1 FLAGS\r\nd NOOP\r\n")
lines = []
while not lines or not lines[-1].startswith(b"d "):
    lines.append(f.readline())
assert lines[0].startswith(b"a OK") and lines[1].startswith(b"b OK [APPENDUID"), lines
assert lines[2] == b"c BAD No mailbox selected\r\n" and lines[3] == b"d OK NOOP completed\r\n", lines
s.close()
print("ok")
"#;

fn imaplib_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer(
        "python3",
        &["-c", "import imaplib, smtplib, ssl"],
        "install-mail-test-deps.sh",
    ) {
        return;
    }
    let dir = TempDir::new(&format!("imaplib-{name}"));
    let inbox = dir.0.join("mail").join("alice");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(inbox.join(sub)).unwrap();
    }
    std::fs::write(
        inbox.join("cur").join("1000.a:2,S"),
        "Subject: first\r\n\r\nline one\r\n.dot\r\n",
    )
    .unwrap();
    std::fs::write(
        inbox.join("new").join("2000.b"),
        "From: bob@x.test\r\nTo: alice@localhost\r\nSubject: second\r\n\r\nbody two\r\n",
    )
    .unwrap();
    let (smtp, smtp_port) = serve_mail("smtp", backend, &dir, &[]);
    let (mut imap, port) = serve_mail(
        "imap",
        backend,
        &dir,
        &["--listen", "tls:0:interface=127.0.0.1"],
    );
    let imaps = imap.listening(1)[0].port().expect("a TCP port");
    let out = Command::new("python3")
        .args(["-c", IMAPLIB])
        .args([
            &port.to_string(),
            &imaps.to_string(),
            &smtp_port.to_string(),
        ])
        .arg(&inbox)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "imaplib on {backend}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = std::fs::read_dir(inbox.join(".Archive").join("cur"))
        .unwrap()
        .count();
    assert_eq!(archive, 2, "COPY wrote two files");
    let uidlist = std::fs::read_to_string(inbox.join("ringwork-uidlist")).unwrap();
    assert!(uidlist.starts_with("ringwork-uidlist 1 "), "{uidlist}");
    assert!(imap.terminate() && smtp.terminate(), "clean exits");
}

#[test]
fn imaplib_against_serve_imap_uring() {
    imaplib_suite("uring");
}

#[test]
fn imaplib_against_serve_imap_poll() {
    imaplib_suite("poll");
}
