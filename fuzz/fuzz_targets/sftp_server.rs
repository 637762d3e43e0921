//! Fuzz target for the SFTP packet decoder and server machine, with requests run by a
//! read-only `RootFs` over a small scratch tree (or answered with canned replies): a script
//! of input chunks (split anywhere), replies now or later, the peer's end. Asserts: no
//! panic; every decoded request encodes back to the same packet; at most `max_pending`
//! requests unanswered; every byte sent is a whole reply packet of a server type, none
//! longer than the packet limit; nothing sent after the close.
#![no_main]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::kit::Machine;
use ringwork_protocols::ssh::sftp::codec::{
    decode_packet, encode_init, encode_request, packet_type,
};
use ringwork_protocols::ssh::sftp::{
    Packet, Request, Response, RootFs, RootFsConfig, SftpConfig, SftpEvent, SftpRoot, SftpServer,
};

/// A scratch root: a file, a directory with a file, a symlink out of it.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringwork-fuzz-sftp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("f"), b"0123456789").unwrap();
        std::fs::write(dir.join("d/g"), vec![7u8; 70_000]).unwrap();
        let _ = std::os::unix::fs::symlink("/etc", dir.join("out"));
        dir
    })
}

fn check_sent(mut wire: &[u8], limit: usize) {
    while !wire.is_empty() {
        assert!(wire.len() >= 5, "a partial packet header");
        let len = u32::from_be_bytes(wire[..4].try_into().unwrap()) as usize;
        assert!(len <= limit, "a reply of {len} bytes");
        assert!(wire.len() >= 4 + len, "a partial packet");
        let kind = wire[4];
        assert!(
            kind == packet_type::VERSION
                || (packet_type::STATUS..=packet_type::EXTENDED_REPLY).contains(&kind),
            "type {kind}"
        );
        wire = &wire[4 + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, script @ ..] = data else { return };
    let mut config = SftpConfig::default();
    config.max_pending = usize::from(flags >> 4) + 1;
    let max_pending = config.max_pending;
    let limit = config.max_packet_len;
    let mut server = SftpServer::new(config);
    let mut fs_config = RootFsConfig::default();
    fs_config.read_only = true;
    fs_config.max_handles = 4;
    let mut fs = (flags & 1 != 0).then(|| RootFs::new(SftpRoot::new(root()).unwrap(), fs_config));
    let now = Instant::now();
    if flags & 2 != 0 {
        let mut init = Vec::new();
        encode_init(3, &mut init);
        server.handle_input(&init, now);
    }
    let mut waiting: VecDeque<(u32, Request)> = VecDeque::new();
    let mut closed = false;
    let mut rest = script;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 8 {
            0..=5 => {
                let len = usize::from(op / 8).min(rest.len());
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                server.handle_input(chunk, now);
            }
            6 => {
                if let Some((id, request)) = waiting.pop_front() {
                    let response = match fs.as_mut() {
                        Some(fs) => fs.execute(request),
                        None => Response::ok(),
                    };
                    server.reply(id, &response);
                }
            }
            _ => server.handle_eof(now),
        }
        while let Some(event) = server.poll_event() {
            if let SftpEvent::Request { id, request } = event {
                let mut wire = Vec::new();
                encode_request(id, &request, &mut wire);
                let decoded = decode_packet(&wire, usize::MAX).unwrap().unwrap();
                assert_eq!(
                    decoded,
                    (
                        Packet::Request {
                            id,
                            request: request.clone()
                        },
                        wire.len()
                    )
                );
                waiting.push_back((id, request));
            }
        }
        assert!(server.pending() <= max_pending);
        let mut sent = Vec::new();
        while let Some(bytes) = server.poll_transmit(now) {
            assert!(!closed, "sent after the close");
            sent.extend_from_slice(&bytes);
        }
        check_sent(&sent, limit);
        if server.poll_close().is_some() {
            closed = true;
        }
    }
});
