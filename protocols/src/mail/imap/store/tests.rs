//! The machine and a real [`Session`] over a temporary Maildir, no reactor: every mailbox
//! command, UIDs kept across sessions, flags in file names, new/ → cur/.

use std::time::Instant;

use super::*;
use crate::cred::{AvatarId, Credentials};
use crate::kit::Machine;
use crate::kit::sim::{Pair, RawPeer};
use crate::mail::imap::proto::{ImapConfig, ImapEvent, ImapServer};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("ringwork-imap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        maildir::create(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const ONE: &str = "From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: first\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000\r\n\r\nHello there\r\nsecond line\r\n";
const TWO: &str = "From: carol@x.test\r\nSubject: second\r\n\r\nNothing to see\r\n";

struct Client {
    pair: Pair<RawPeer, ImapServer>,
    session: Session,
}

impl Client {
    fn new(dir: &Path) -> Client {
        let mut pair = Pair::new(
            RawPeer::new(),
            ImapServer::new(ImapConfig::default(), false),
        );
        pair.drive();
        pair.client.take_received();
        let mut client = Client {
            pair,
            session: Session::new(dir.to_owned(), "test"),
        };
        client.talk("l LOGIN alice pw\r\n");
        client
    }

    fn talk(&mut self, script: &str) -> String {
        self.pair.client.send(script.as_bytes());
        for _ in 0..10_000 {
            self.pair.drive();
            let Some(event) = self.pair.server.poll_event() else {
                break;
            };
            match event {
                ImapEvent::Login(Credentials::UsernamePassword { username, .. }) => {
                    self.pair.server.login_result(Ok(AvatarId(username)));
                }
                ImapEvent::Request { command, .. } => {
                    let outcome = self.session.run(command);
                    self.answer(outcome);
                }
                ImapEvent::More => {
                    let outcome = self.session.fetch_more();
                    self.answer(outcome);
                }
                ImapEvent::Idle => {
                    let data = self.session.idle_poll();
                    self.pair.server.unsolicited(&data);
                }
                ImapEvent::IdleDone => {
                    let data = self.session.idle_poll();
                    self.pair
                        .server
                        .respond(Response::new(data, Status::Ok, "IDLE terminated"));
                }
                ImapEvent::StartTls => {}
            }
        }
        self.pair.drive();
        String::from_utf8_lossy(&self.pair.client.take_received()).into_owned()
    }

    fn answer(&mut self, outcome: Outcome) {
        if outcome.more {
            self.pair.server.respond_part(outcome.response.data);
        } else {
            self.pair.server.respond(outcome.response);
        }
    }
}

fn file_names(dir: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn uidvalidity(text: &str) -> &str {
    let at = text.find("[UIDVALIDITY ").unwrap() + 13;
    let end = text[at..].find(']').unwrap();
    &text[at..at + end]
}

#[test]
fn select_moves_new_to_cur_and_uids_persist() {
    let dir = Dir::new("select");
    fs::write(dir.0.join("new").join("1000.a.test"), ONE).unwrap();
    fs::write(dir.0.join("cur").join("0900.b.test:2,S"), TWO).unwrap();
    let mut c = Client::new(&dir.0);
    let text = c.talk("e EXAMINE INBOX\r\n");
    assert!(
        text.contains("* 2 EXISTS\r\n* 1 RECENT\r\n* OK [UNSEEN 2]"),
        "{text}"
    );
    assert!(
        text.contains("[PERMANENTFLAGS ()]")
            && text.ends_with("e OK [READ-ONLY] EXAMINE completed\r\n"),
        "{text}"
    );
    assert_eq!(
        file_names(&dir.0, "new"),
        ["1000.a.test"],
        "EXAMINE moves nothing"
    );
    let validity = uidvalidity(&text).to_owned();
    let text = c.talk("s SELECT INBOX\r\nf FETCH 1:* (UID FLAGS)\r\n");
    assert!(
        text.contains("[UIDNEXT 3]") && text.contains("[READ-WRITE]"),
        "{text}"
    );
    assert!(
        text.contains("* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* 2 FETCH (UID 2 FLAGS (\\Recent))\r\n"),
        "{text}"
    );
    assert!(file_names(&dir.0, "new").is_empty());
    assert_eq!(
        file_names(&dir.0, "cur"),
        ["0900.b.test:2,S", "1000.a.test:2,"]
    );
    // A new session sees the same UIDs and UIDVALIDITY; a new message gets UID 3.
    fs::write(dir.0.join("new").join("2000.c.test"), TWO).unwrap();
    let mut d = Client::new(&dir.0);
    let text = d.talk("s SELECT INBOX\r\nu UID FETCH 1:* FLAGS\r\n");
    assert_eq!(uidvalidity(&text), validity);
    assert!(
        text.contains("* 3 FETCH (UID 3 FLAGS (\\Recent))"),
        "{text}"
    );
    // The first session learns of it at NOOP.
    let text = c.talk("n NOOP\r\n");
    assert_eq!(text, "* 3 EXISTS\r\n* 1 RECENT\r\nn OK NOOP completed\r\n");
}

#[test]
fn fetch_items_sections_and_partials() {
    let dir = Dir::new("fetch");
    fs::write(dir.0.join("cur").join("1000.a.test:2,"), ONE).unwrap();
    let mut c = Client::new(&dir.0);
    c.talk("s SELECT INBOX\r\n");
    let header_len = ONE.find("\r\n\r\n").unwrap() + 4;
    let text = c.talk("f FETCH 1 (RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (subject)] BODY.PEEK[TEXT]<6.5>)\r\n");
    assert_eq!(
        text,
        format!(
            "* 1 FETCH (RFC822.SIZE {} ENVELOPE (\"Mon, 7 Dec 2026 09:00:00 +0000\" \"first\" ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) ((\"Bob\" NIL \"bob\" \"example.org\")) ((NIL NIL \"alice\" \"example.org\")) NIL NIL NIL NIL) BODY[HEADER.FIELDS (SUBJECT)] {{18}}\r\nSubject: first\r\n\r\n BODY[TEXT]<6> {{5}}\r\nthere)\r\nf OK FETCH completed\r\n",
            ONE.len()
        )
    );
    let text = c.talk("g FETCH 1 (BODY[HEADER] FLAGS)\r\n");
    assert_eq!(
        text,
        format!(
            "* 1 FETCH (BODY[HEADER] {{{header_len}}}\r\n{} FLAGS (\\Seen))\r\ng OK FETCH completed\r\n",
            &ONE[..header_len]
        )
    );
    assert_eq!(
        file_names(&dir.0, "cur"),
        ["1000.a.test:2,S"],
        "BODY[] sets \\Seen"
    );
    let text = c.talk("h UID FETCH 1 (RFC822 INTERNALDATE)\r\n");
    assert!(
        text.starts_with(&format!(
            "* 1 FETCH (UID 1 RFC822 {{{}}}\r\n{ONE} INTERNALDATE \"",
            ONE.len()
        )),
        "{text}"
    );
    let text = c.talk("i FETCH 1 RFC822.HEADER\r\nj FETCH 1 BODY[]<1000.5>\r\n");
    assert!(text.contains("RFC822.HEADER {"), "{text}");
    assert!(text.contains("* 1 FETCH (BODY[]<1000> {0}\r\n)"), "{text}");
}

#[test]
fn a_big_fetch_comes_in_parts() {
    let dir = Dir::new("big");
    let body = "x".repeat(700 * 1024);
    let big = format!("Subject: big\r\n\r\n{body}");
    fs::write(dir.0.join("cur").join("1000.a.test:2,S"), &big).unwrap();
    let mut session = Session::new(dir.0.clone(), "test");
    session.run(Command::Select {
        mailbox: "INBOX".into(),
        read_only: true,
    });
    let mut outcome = session.run(
        super::super::parse::parse(&[super::super::parse::Part::Text("t FETCH 1 BODY[]".into())])
            .unwrap()
            .1,
    );
    let mut all = Vec::new();
    let mut parts = 0;
    while outcome.more {
        assert!(outcome.response.data.len() <= FETCH_CHUNK + 64 * 1024);
        all.extend_from_slice(&outcome.response.data);
        parts += 1;
        outcome = session.fetch_more();
    }
    all.extend_from_slice(&outcome.response.data);
    assert!(parts >= 2, "{parts} parts");
    assert_eq!(
        all,
        format!("* 1 FETCH (BODY[] {{{}}}\r\n{big})\r\n", big.len()).into_bytes()
    );
}

#[test]
fn store_search_copy_expunge_append() {
    let dir = Dir::new("store");
    fs::write(dir.0.join("cur").join("1000.a.test:2,"), ONE).unwrap();
    fs::write(dir.0.join("cur").join("1001.b.test:2,S"), TWO).unwrap();
    let mut c = Client::new(&dir.0);
    c.talk("s SELECT INBOX\r\n");
    let text = c.talk("a STORE 1 +FLAGS (\\Flagged \\Deleted)\r\nb UID STORE 2 -FLAGS.SILENT (\\Seen)\r\nc STORE 2 FLAGS (\\Answered)\r\n");
    assert_eq!(
        text,
        "* 1 FETCH (FLAGS (\\Flagged \\Deleted))\r\na OK STORE completed\r\nb OK STORE completed\r\n* 2 FETCH (FLAGS (\\Answered))\r\nc OK STORE completed\r\n"
    );
    assert_eq!(
        file_names(&dir.0, "cur"),
        ["1000.a.test:2,FT", "1001.b.test:2,R"]
    );
    let text = c.talk(
        "a SEARCH FLAGGED\r\nb SEARCH UNSEEN FROM carol\r\nc UID SEARCH OR SUBJECT first BODY nothing\r\n\
         d SEARCH NOT DELETED\r\ne SEARCH LARGER 100 SMALLER 1000\r\nf SEARCH TEXT \"hello THERE\"\r\n\
         g SEARCH SINCE 1-Jan-2000 BEFORE 1-Jan-2100\r\nh SEARCH ON 1-Jan-2000\r\ni SEARCH UID 2:* ALL\r\n\
         j SEARCH 1,2 ANSWERED\r\nk SEARCH CHARSET UTF-8 TO alice\r\nl SEARCH FOO\r\n",
    );
    assert_eq!(
        text,
        "* SEARCH 1\r\na OK SEARCH completed\r\n* SEARCH 2\r\nb OK SEARCH completed\r\n\
         * SEARCH 1 2\r\nc OK SEARCH completed\r\n* SEARCH 2\r\nd OK SEARCH completed\r\n\
         * SEARCH 1\r\ne OK SEARCH completed\r\n* SEARCH 1\r\nf OK SEARCH completed\r\n\
         * SEARCH 1 2\r\ng OK SEARCH completed\r\n* SEARCH\r\nh OK SEARCH completed\r\n\
         * SEARCH 2\r\ni OK SEARCH completed\r\n* SEARCH 2\r\nj OK SEARCH completed\r\n\
         * SEARCH 1\r\nk OK SEARCH completed\r\nl BAD Unsupported search key FOO\r\n"
    );
    let text = c.talk("a CREATE Archive\r\nb COPY 1:2 Archive\r\nc UID COPY 1 Nowhere\r\nd LIST \"\" *\r\ne STATUS Archive (MESSAGES UIDNEXT UNSEEN)\r\n");
    assert!(
        text.starts_with("a OK CREATE completed\r\nb OK [COPYUID "),
        "{text}"
    );
    assert!(
        text.contains(" 1:2] ") || text.contains(" 1,2 1,2] COPY completed"),
        "{text}"
    );
    assert!(text.contains("c NO [TRYCREATE]"), "{text}");
    assert!(
        text.contains("* LIST () \".\" \"INBOX\"\r\n* LIST () \".\" \"Archive\"\r\n"),
        "{text}"
    );
    assert!(
        text.contains("* STATUS \"Archive\" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)"),
        "{text}"
    );
    assert_eq!(file_names(&dir.0.join(".Archive"), "cur").len(), 2);
    let text = c.talk("a EXPUNGE\r\nb FETCH 1:* UID\r\n");
    assert_eq!(
        text,
        "* 1 EXPUNGE\r\na OK EXPUNGE completed\r\n* 1 FETCH (UID 2)\r\nb OK FETCH completed\r\n"
    );
    let text = c.talk("a APPEND INBOX (\\Seen) \"07-Dec-2026 10:00:00 +0100\" {7+}\r\nX: y\r\n\r\n\r\nb FETCH 2 (UID FLAGS INTERNALDATE)\r\n");
    assert!(
        text.starts_with("* 2 EXISTS\r\n* 0 RECENT\r\na OK [APPENDUID "),
        "{text}"
    );
    assert!(text.contains(" 3] APPEND completed"), "{text}");
    assert!(
        text.contains(
            "* 2 FETCH (UID 3 FLAGS (\\Seen) INTERNALDATE \"07-Dec-2026 09:00:00 +0000\")"
        ),
        "{text}"
    );
    let text =
        c.talk("a STORE 2 +FLAGS (\\Deleted)\r\nb CLOSE\r\nc FETCH 1 UID\r\nd SELECT Nope\r\n");
    assert!(text.ends_with("b OK Mailbox closed\r\nc BAD No mailbox selected\r\nd NO [NONEXISTENT] No such mailbox\r\n"), "{text}");
    assert_eq!(file_names(&dir.0, "cur").len(), 1, "CLOSE expunged");
    let text = c.talk("a RENAME Archive Old\r\nb DELETE Old\r\nc LIST \"\" %\r\nd CREATE ../x\r\n");
    assert_eq!(
        text,
        "a OK RENAME completed\r\nb OK DELETE completed\r\n* LIST () \".\" \"INBOX\"\r\nc OK LIST completed\r\nd NO [CANNOT] Bad mailbox name\r\n"
    );
}

#[test]
fn idle_sees_a_delivery_and_an_expunge_elsewhere() {
    let dir = Dir::new("idle");
    fs::write(dir.0.join("cur").join("1000.a.test:2,"), ONE).unwrap();
    let mut c = Client::new(&dir.0);
    c.talk("s SELECT INBOX\r\n");
    assert_eq!(c.talk("i IDLE\r\n"), "+ idling\r\n");
    maildir::deliver(&dir.0, "test", &[TWO.as_bytes()]).unwrap();
    fs::remove_file(dir.0.join("cur").join("1000.a.test:2,")).unwrap();
    let data = c.session.idle_poll();
    c.pair.server.unsolicited(&data);
    c.pair.drive();
    assert_eq!(
        c.pair.client.take_received(),
        b"* 1 EXPUNGE\r\n* 1 EXISTS\r\n* 1 RECENT\r\n"
    );
    assert_eq!(c.talk("DONE\r\n"), "i OK IDLE terminated\r\n");
    let _ = Instant::now();
}

#[test]
fn a_store_after_another_session_renamed_the_file() {
    let dir = Dir::new("rename");
    fs::write(dir.0.join("cur").join("1000.a.test:2,"), ONE).unwrap();
    let mut c = Client::new(&dir.0);
    let mut d = Client::new(&dir.0);
    c.talk("s SELECT INBOX\r\n");
    d.talk("s SELECT INBOX\r\n");
    d.talk("f STORE 1 +FLAGS (\\Flagged)\r\n");
    assert!(
        c.talk("p FETCH 1 BODY.PEEK[TEXT]\r\n")
            .starts_with("* 1 FETCH (BODY[TEXT] {26}\r\nHello there"),
        "a body is read where the file is now"
    );
    assert_eq!(
        c.talk("a STORE 1 +FLAGS (\\Seen)\r\nb FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n"),
        "* 1 FETCH (FLAGS (\\Flagged \\Seen))\r\na OK STORE completed\r\n\
         * 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: first\r\n\r\n)\r\nb OK FETCH completed\r\n"
    );
    assert_eq!(file_names(&dir.0, "cur"), ["1000.a.test:2,FS"]);
}
