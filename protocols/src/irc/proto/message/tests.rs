use super::*;

fn tag(key: &str, value: Option<&str>) -> Tag {
    Tag::new(key, value.map(str::to_owned))
}

/// Lines from RFC 2812 §2.3 and the IRCv3 message-tags and parser-tests suites
/// (ircdocs/parser-tests `msg-split.yaml`), with what they parse to.
#[test]
fn parses_reference_lines() {
    type Case = (
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        ("foo bar baz asdf", None, "FOO", &["bar", "baz", "asdf"]),
        (
            ":coolguy foo bar baz asdf",
            Some("coolguy"),
            "FOO",
            &["bar", "baz", "asdf"],
        ),
        (
            "foo bar baz :asdf quux",
            None,
            "FOO",
            &["bar", "baz", "asdf quux"],
        ),
        ("foo bar baz :", None, "FOO", &["bar", "baz", ""]),
        ("foo bar baz ::asdf", None, "FOO", &["bar", "baz", ":asdf"]),
        (
            ":coolguy foo bar baz :  asdf quux ",
            Some("coolguy"),
            "FOO",
            &["bar", "baz", "  asdf quux "],
        ),
        (
            ":coolguy PRIVMSG bar :lol :) ",
            Some("coolguy"),
            "PRIVMSG",
            &["bar", "lol :) "],
        ),
        (":src JOIN #chan", Some("src"), "JOIN", &["#chan"]),
        (":src JOIN :#chan", Some("src"), "JOIN", &["#chan"]),
        (":src AWAY", Some("src"), "AWAY", &[]),
        (":src AWAY ", Some("src"), "AWAY", &[]),
        (
            ":cool\tguy foo bar baz",
            Some("cool\tguy"),
            "FOO",
            &["bar", "baz"],
        ),
        (
            ":irc.example.com 001 nick :Welcome",
            Some("irc.example.com"),
            "001",
            &["nick", "Welcome"],
        ),
        (
            "PING :irc.example.com\r",
            None,
            "PING",
            &["irc.example.com"],
        ),
        (
            ":nick!user@host   PRIVMSG   #c   :hi",
            Some("nick!user@host"),
            "PRIVMSG",
            &["#c", "hi"],
        ),
        // Found by fuzzing: an empty source is none (it could not be encoded back).
        (": 353 me = #c :@a", None, "353", &["me", "=", "#c", "@a"]),
    ];
    for (line, prefix, command, params) in cases {
        let m = Message::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(m.prefix.as_deref(), *prefix, "{line}");
        assert_eq!(m.command, *command, "{line}");
        assert_eq!(m.params, params.to_vec(), "{line}");
    }
}

#[test]
fn parses_and_unescapes_tags() {
    let m = Message::parse(br"@a=b\\and\nk;c=72\s45;d=gh\:764 foo").expect("parse");
    assert_eq!(
        m.tags,
        vec![
            tag("a", Some("b\\and\nk")),
            tag("c", Some("72 45")),
            tag("d", Some("gh;764"))
        ]
    );
    let m = Message::parse(b"@c;h=;a=b :quux ab cd").expect("parse");
    assert_eq!(
        m.tags,
        vec![tag("c", None), tag("h", Some("")), tag("a", Some("b"))]
    );
    assert_eq!(m.tag("c"), Some(""));
    assert_eq!(m.tag("a"), Some("b"));
    assert_eq!(m.prefix.as_deref(), Some("quux"));
    let m = Message::parse(br"@+example.com/typing=a\bc\ PRIVMSG #x :hi").expect("parse");
    assert_eq!(m.tags, vec![tag("+example.com/typing", Some("abc"))]);
    assert!(m.tags[0].is_client_only());
}

#[test]
fn refuses_bad_lines() {
    assert_eq!(Message::parse(b""), Err(ParseError::Empty));
    assert_eq!(Message::parse(b"   "), Err(ParseError::Empty));
    assert_eq!(Message::parse(b":prefix"), Err(ParseError::NoCommand));
    assert_eq!(Message::parse(b"@a=b"), Err(ParseError::NoCommand));
    assert_eq!(Message::parse(b"PRIV-MSG x"), Err(ParseError::BadCommand));
    assert_eq!(Message::parse(b"1234 x"), Err(ParseError::BadCommand));
    assert_eq!(
        Message::parse(b"PRIVMSG a\0b"),
        Err(ParseError::ForbiddenByte)
    );
    let sixteen = format!("CMD{}", " p".repeat(16));
    assert_eq!(
        Message::parse(sixteen.as_bytes()),
        Err(ParseError::TooManyParams { limit: 15 })
    );
    let fifteen = format!("CMD{} :last one", " p".repeat(14));
    assert_eq!(
        Message::parse(fifteen.as_bytes()).expect("15").params.len(),
        15
    );
}

#[test]
fn line_and_tag_budgets_are_separate() {
    // 510 bytes without tags is the longest line; 511 is too long.
    let fits = format!("PRIVMSG #c :{}", "x".repeat(510 - 12));
    assert_eq!(fits.len(), 510);
    assert!(Message::parse(fits.as_bytes()).is_ok());
    let over = format!("{fits}x");
    assert_eq!(
        Message::parse(over.as_bytes()),
        Err(ParseError::LineTooLong { limit: 512 })
    );
    // 8191 bytes of tags (with `@` and the space) are allowed on top of it.
    let tags = format!("@a={} ", "v".repeat(8191 - 4));
    assert_eq!(tags.len(), 8191);
    assert!(Message::parse(format!("{tags}{fits}").as_bytes()).is_ok());
    let tags = format!("@a={} ", "v".repeat(8191 - 3));
    assert_eq!(
        Message::parse(format!("{tags}{fits}").as_bytes()),
        Err(ParseError::TagsTooLong { limit: 8191 })
    );
}

#[test]
fn encodes_and_round_trips() {
    let mut m = Message::new("PRIVMSG", vec!["#chan".into(), "hello world".into()])
        .with_prefix("nick!user@host");
    m.tags = vec![
        tag("time", Some("2026-12-07T06:00:00.000Z")),
        tag("+x", Some("a; b\\")),
        tag("k", None),
    ];
    let line = m.to_line().expect("encode");
    assert_eq!(
        line,
        b"@time=2026-12-07T06:00:00.000Z;+x=a\\:\\sb\\\\;k :nick!user@host PRIVMSG #chan :hello world\r\n"
    );
    assert_eq!(Message::parse(&line[..line.len() - 2]).expect("parse"), m);
    // A last parameter that is empty or starts with ':' is sent as trailing.
    for last in ["", ":)", "x"] {
        let m = Message::new("TOPIC", vec!["#c".into(), last.into()]);
        let line = m.to_line().expect("encode");
        assert_eq!(Message::parse(&line[..line.len() - 2]).expect("parse"), m);
    }
    assert_eq!(Message::new("PING", vec!["x".into()]).to_string(), "PING x");
}

#[test]
fn encode_refuses_what_would_change_meaning() {
    let bad = |m: Message| m.to_line().expect_err("refused");
    assert_eq!(
        bad(Message::new("PRIV MSG", vec![])),
        EncodeError::BadCommand("PRIV MSG".into())
    );
    assert_eq!(
        bad(Message::new("X", vec!["a b".into(), "c".into()])),
        EncodeError::BadMiddle { index: 0 }
    );
    assert_eq!(
        bad(Message::new("X", vec!["".into(), "c".into()])),
        EncodeError::BadMiddle { index: 0 }
    );
    assert_eq!(
        bad(Message::new("X", vec![":a".into(), "c".into()])),
        EncodeError::BadMiddle { index: 0 }
    );
    assert_eq!(
        bad(Message::new("X", vec!["a\r\nQUIT".into()])),
        EncodeError::ForbiddenByte
    );
    let mut tagged = Message::new("X", vec![]);
    tagged.tags = vec![tag("a b", None)];
    assert_eq!(bad(tagged), EncodeError::BadTagKey("a b".into()));
    let long = Message::new("PRIVMSG", vec!["#c".into(), "é".repeat(300)]);
    assert_eq!(bad(long.clone()), EncodeError::LineTooLong { limit: 512 });
    let mut out = Vec::new();
    long.encode_truncated(&mut out).expect("cut");
    assert!(out.len() <= 512, "{}", out.len());
    assert!(out.ends_with(b"\r\n"));
    let text = std::str::from_utf8(&out).expect("cut at a character boundary");
    assert!(text.starts_with("PRIVMSG #c :éé"), "{text}");
}

#[test]
fn split_point_parsing_is_whole_line_only() {
    // The codec parses whole lines; a line cut anywhere parses as its prefix or fails,
    // never panics.
    let line = b"@a=b\\s;c :n!u@h PRIVMSG #chan :hello there";
    for cut in 0..=line.len() {
        let _ = Message::parse(&line[..cut]);
    }
}

#[test]
fn case_mapping_and_names() {
    assert_eq!(irc_lower("Nick[A]\\~"), "nick{a}|^");
    assert!(is_valid_nick("Nick[a]`_^{|}-9", 30));
    assert!(!is_valid_nick("9nick", 30));
    assert!(!is_valid_nick("ni ck", 30));
    assert!(!is_valid_nick("", 30));
    assert!(!is_valid_nick("abcdef", 5));
    assert!(is_valid_channel("#rust", 50));
    assert!(is_valid_channel("&local", 50));
    assert!(!is_valid_channel("#", 50));
    assert!(!is_valid_channel("rust", 50));
    assert!(!is_valid_channel("#a,b", 50));
    assert_eq!(
        Prefix::parse("nick!user@host"),
        Prefix {
            nick: "nick".into(),
            user: Some("user".into()),
            host: Some("host".into())
        }
    );
    assert_eq!(
        Prefix::parse("irc.example.com").to_string(),
        "irc.example.com"
    );
}

#[test]
fn masks() {
    assert!(mask_matches("*!*@*", "nick!user@host"));
    assert!(mask_matches("Bad*!*@*", "badguy!u@h"));
    assert!(mask_matches("n?ck!*@host", "NICK!u@host"));
    assert!(!mask_matches("nick!*@other", "nick!u@host"));
    assert!(mask_matches("*", ""));
    assert!(!mask_matches("a", ""));
    assert!(mask_matches("[x]*", "{X}yz"));
}
