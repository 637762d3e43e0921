//! Fuzz target for SSH key material and the `authorized_keys` file: OpenSSH private key
//! files (the binary format inside the PEM armour, unencrypted, and the encrypted header up
//! to the passphrase), public key blobs with signature checks, `authorized_keys` lines with
//! options (quoting, `from=` patterns, `permitopen=`, `expiry-time=`), and `pty-req`
//! terminal modes. Nothing panics; what parses behaves consistently.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::ssh::keys::{AuthorizedKeys, PublicKey, SigningKey};
use ringwork_protocols::ssh::server::decode_terminal_modes;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            // The binary private key format, armoured as a file would be.
            let text = format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                B64.encode(rest)
            );
            if let Ok(key) = SigningKey::from_openssh(&text) {
                let again = SigningKey::from_openssh(&key.to_openssh()).expect("re-reads");
                assert_eq!(again.public_blob(), key.public_blob());
                let sig = key.sign(b"data").expect("signs");
                assert!(key.public().verify(b"data", &sig));
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            let keys = AuthorizedKeys::parse(&text);
            assert!(keys.len() + keys.skipped() <= text.lines().count());
            for ip in ["127.0.0.1", "::1", "10.1.2.3"] {
                let ip = ip.parse().ok();
                let _ = keys.find_for(b"", ip, 0);
            }
        }
        2 => {
            // A public key blob, then a signature blob over fixed data.
            let (blob, sig) = rest.split_at(rest.len() / 2);
            if let Ok(key) = PublicKey::from_blob(blob) {
                assert_eq!(key.blob(), blob);
                let _ = key.verify(b"data", sig);
                let _ = PublicKey::from_openssh(&key.to_openssh()).expect("re-reads");
            }
        }
        _ => {
            let modes = decode_terminal_modes(rest);
            assert!(modes.len() <= 256);
            assert!(modes.iter().all(|&(op, _)| op > 0 && op < 160));
        }
    }
});
