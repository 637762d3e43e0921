//! `ringwork passwd`: writes Argon2id entries the checker accepts (no I/O backend involved).

use std::io::Write;
use std::process::{Command, Stdio};

use ringwork_protocols::cred::{AvatarId, Checker, Credentials, PasswordFile};

fn passwd(file: &std::path::Path, user: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["passwd", "--file"])
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringwork");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn creds(user: &str, password: &str) -> Credentials {
    Credentials::UsernamePassword {
        username: user.into(),
        password: password.as_bytes().into(),
    }
}

#[test]
fn passwd_adds_and_replaces_users() {
    let dir = std::env::temp_dir().join(format!("ringwork-passwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users");
    let out = passwd(&file, "alice", "first\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(passwd(&file, "bob", "builder\n").status.success());
    let out = passwd(&file, "alice", "second\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("replaced alice"));

    let users = PasswordFile::load(&file, false).unwrap();
    assert_eq!(
        users.check(&creds("alice", "second")),
        Ok(AvatarId("alice".into()))
    );
    assert!(users.check(&creds("alice", "first")).is_err());
    assert_eq!(
        users.check(&creds("bob", "builder")),
        Ok(AvatarId("bob".into()))
    );

    let out = passwd(&file, "../etc", "x\n");
    assert!(!out.status.success());
    let out = passwd(&file, "carol", "");
    assert!(!out.status.success(), "an empty password is refused");
    std::fs::remove_dir_all(&dir).unwrap();
}
