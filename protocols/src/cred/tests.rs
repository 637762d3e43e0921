use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn creds(user: &str, password: &str) -> Credentials {
    Credentials::UsernamePassword {
        username: user.into(),
        password: password.as_bytes().into(),
    }
}

#[test]
fn password_file_checks_and_round_trips() {
    let mut file = PasswordFile::new();
    file.set_password("alice", b"wonderland").unwrap();
    assert_eq!(
        file.check(&creds("alice", "wonderland")),
        Ok(AvatarId("alice".into()))
    );
    assert_eq!(
        file.check(&creds("alice", "wrong")),
        Err(CredError::Unauthorized)
    );
    assert_eq!(
        file.check(&creds("bob", "wonderland")),
        Err(CredError::Unauthorized)
    );

    let text = file.to_text();
    assert!(text.contains("alice:$argon2id$"), "{text}");
    let again = PasswordFile::parse(&text, "mem").unwrap();
    assert_eq!(
        again.check(&creds("alice", "wonderland")),
        Ok(AvatarId("alice".into()))
    );

    let dir = std::env::temp_dir().join(format!("ringwork-cred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("users");
    again.save(&path).unwrap();
    let loaded = PasswordFile::load(&path, false).unwrap();
    assert!(loaded.contains("alice"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn password_file_refuses_bad_lines_and_users() {
    assert!(PasswordFile::parse("alice\n", "f").is_err());
    assert!(PasswordFile::parse("alice:plain\n", "f").is_err());
    assert!(
        PasswordFile::parse(
            "../x:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g\n",
            "f"
        )
        .is_err()
    );
    let err = PasswordFile::parse("# c\n\nbob:nope\n", "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(PasswordFile::new().set_password("a/b", b"x").is_err());
    assert!(PasswordFile::new().set_password("", b"x").is_err());
}

#[test]
fn sasl_plain_decodes() {
    let c = sasl_plain(b"\0alice\0pw").unwrap();
    let Credentials::UsernamePassword { username, password } = c;
    assert_eq!(
        (username.as_str(), password.as_slice()),
        ("alice", &b"pw"[..])
    );
    assert!(sasl_plain(b"alice\0alice\0pw").is_ok());
    assert!(sasl_plain(b"bob\0alice\0pw").is_err());
    assert!(sasl_plain(b"\0alice").is_err());
    assert!(sasl_plain(b"\0alice\0pw\0x").is_err());
    assert!(!format!("{:?}", creds("u", "secret")).contains("secret"));
}

#[test]
fn failure_delays_grow_cap_expire_and_stay_bounded() {
    let config = FailureDelaysConfig {
        base: Duration::from_millis(100),
        max: Duration::from_millis(350),
        forget_after: Duration::from_secs(10),
        max_peers: 3,
    };
    let mut table = FailureDelays::new(config);
    let t0 = Instant::now();
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(table.delay(peer, t0), Duration::ZERO);
    table.record_failure(peer, t0);
    assert_eq!(table.delay(peer, t0), Duration::from_millis(100));
    table.record_failure(peer, t0);
    assert_eq!(table.delay(peer, t0), Duration::from_millis(200));
    table.record_failure(peer, t0);
    assert_eq!(table.delay(peer, t0), Duration::from_millis(350));
    assert_eq!(
        table.delay(peer, t0 + Duration::from_secs(10)),
        Duration::ZERO
    );
    table.record_failure(peer, t0 + Duration::from_secs(11));
    assert_eq!(
        table.delay(peer, t0 + Duration::from_secs(11)),
        Duration::from_millis(100)
    );
    table.record_success(peer);
    assert_eq!(table.delay(peer, t0), Duration::ZERO);

    for i in 0..100u8 {
        table.record_failure(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)),
            t0 + Duration::from_millis(u64::from(i)),
        );
        assert!(table.len() <= 3);
    }
    // The newest peers are the ones kept.
    assert!(
        table.delay(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 99)),
            t0 + Duration::from_secs(1)
        ) > Duration::ZERO
    );
    assert_eq!(
        table.delay(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 0)),
            t0 + Duration::from_secs(1)
        ),
        Duration::ZERO
    );
}
