use bytes::Bytes;

use super::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn full_attrs() -> Attrs {
    Attrs {
        size: Some(1 << 40),
        uid_gid: Some((1000, 100)),
        permissions: Some(0o100_644),
        atime_mtime: Some((1, u32::MAX)),
        extended: vec![(b("k@x"), b("v"))],
    }
}

/// One of every request this codec knows.
fn every_request() -> Vec<Request> {
    vec![
        Request::Open {
            path: b("/a"),
            flags: open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC,
            attrs: full_attrs(),
        },
        Request::Close { handle: b("h") },
        Request::Read {
            handle: b("h"),
            offset: u64::MAX,
            len: 32768,
        },
        Request::Write {
            handle: b("h"),
            offset: 7,
            data: Bytes::from(vec![0u8; 1000]),
        },
        Request::Lstat { path: b("l") },
        Request::Fstat { handle: b("h") },
        Request::Setstat {
            path: b("s"),
            attrs: Attrs::default(),
        },
        Request::Fsetstat {
            handle: b("h"),
            attrs: full_attrs(),
        },
        Request::Opendir { path: b("/") },
        Request::Readdir { handle: b("h") },
        Request::Remove { path: b("r") },
        Request::Mkdir {
            path: b("d"),
            attrs: Attrs {
                permissions: Some(0o755),
                ..Attrs::default()
            },
        },
        Request::Rmdir { path: b("d") },
        Request::Realpath { path: b(".") },
        Request::Stat { path: b("s") },
        Request::Rename {
            from: b("a"),
            to: b("b"),
        },
        Request::Readlink { path: b("l") },
        Request::Symlink {
            link: b("link"),
            target: b("target"),
        },
        Request::PosixRename {
            from: b("a"),
            to: b("b"),
        },
        Request::Hardlink {
            from: b("a"),
            to: b("b"),
        },
        Request::Fsync { handle: b("h") },
        Request::Limits,
        Request::CopyData {
            from: b("r"),
            from_offset: 3,
            len: 0,
            to: b("w"),
            to_offset: u64::MAX,
        },
        Request::Statvfs { path: b("/") },
        Request::ExpandPath { path: b("~/x") },
        Request::Extended {
            name: b("home-directory"),
        },
    ]
}

#[test]
fn every_request_round_trips() {
    for (id, request) in every_request().into_iter().enumerate() {
        let id = id as u32 * 1000;
        let mut wire = Vec::new();
        encode_request(id, &request, &mut wire);
        let (packet, consumed) = decode_packet(&wire, 1 << 20).unwrap().unwrap();
        assert_eq!(consumed, wire.len(), "{request:?}");
        assert_eq!(packet, Packet::Request { id, request });
    }
}

#[test]
fn symlink_is_sent_target_first_as_openssh_does() {
    // OpenSSH's sftp client: do_symlink sends oldpath (the target), then newpath (the link).
    let mut wire = vec![0, 0, 0, 0, packet_type::SYMLINK, 0, 0, 0, 9];
    for s in ["target", "link"] {
        wire.extend_from_slice(&(s.len() as u32).to_be_bytes());
        wire.extend_from_slice(s.as_bytes());
    }
    let len = (wire.len() - 4) as u32;
    wire[..4].copy_from_slice(&len.to_be_bytes());
    let (packet, _) = decode_packet(&wire, 1024).unwrap().unwrap();
    assert_eq!(
        packet,
        Packet::Request {
            id: 9,
            request: Request::Symlink {
                link: b("link"),
                target: b("target")
            }
        }
    );
}

#[test]
fn every_prefix_is_partial() {
    for request in every_request() {
        let mut wire = Vec::new();
        encode_request(1, &request, &mut wire);
        for cut in 0..wire.len() {
            assert_eq!(
                decode_packet(&wire[..cut], 1 << 20),
                Ok(None),
                "{request:?} cut {cut}"
            );
        }
    }
}

#[test]
fn length_over_the_limit_is_refused_from_the_length_field_alone() {
    let limit = 256 * 1024;
    let over = (limit as u32 + 1).to_be_bytes();
    assert_eq!(
        decode_packet(&over, limit),
        Err(CodecError::TooLong {
            len: limit as u64 + 1,
            limit
        })
    );
    assert!(matches!(
        decode_packet(&[0, 0, 0, 0], limit),
        Err(CodecError::TooLong { len: 0, .. })
    ));
    assert!(matches!(
        decode_packet(&[0xff, 0xff, 0xff, 0xff], limit),
        Err(CodecError::TooLong { .. })
    ));
    // Exactly the limit is taken (and waits for its body).
    assert_eq!(
        decode_packet(&(limit as u32).to_be_bytes(), limit),
        Ok(None)
    );
}

#[test]
fn malformed_payloads_carry_the_id_and_length() {
    // READ with a handle string longer than the packet.
    let wire = [0, 0, 0, 9, packet_type::READ, 0, 0, 0, 5, 0, 0, 0, 200];
    assert_eq!(
        decode_packet(&wire, 1024),
        Err(CodecError::Malformed {
            packet_type: packet_type::READ,
            id: Some(5),
            what: "string longer than its packet",
            consumed: 13,
        })
    );
    // Trailing bytes after a complete CLOSE.
    let mut wire = Vec::new();
    encode_request(6, &Request::Close { handle: b("h") }, &mut wire);
    wire.push(0);
    wire[3] += 1;
    assert!(matches!(
        decode_packet(&wire, 1024),
        Err(CodecError::Malformed { id: Some(6), .. })
    ));
    // An extended-attribute count larger than the packet is refused before allocating.
    let mut wire = vec![
        0,
        0,
        0,
        0,
        packet_type::SETSTAT,
        0,
        0,
        0,
        7,
        0,
        0,
        0,
        1,
        b'x',
    ];
    wire.extend_from_slice(&attr_flags::EXTENDED.to_be_bytes());
    wire.extend_from_slice(&u32::MAX.to_be_bytes());
    let len = (wire.len() - 4) as u32;
    wire[..4].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(
        decode_packet(&wire, 1024),
        Err(CodecError::Malformed {
            id: Some(7),
            what: "extended count larger than its packet",
            ..
        })
    ));
}

#[test]
fn unknown_types_and_missing_ids() {
    let wire = [0, 0, 0, 5, 99, 0, 0, 0, 3];
    assert_eq!(
        decode_packet(&wire, 1024),
        Ok(Some((
            Packet::Unsupported {
                id: Some(3),
                packet_type: 99
            },
            9
        )))
    );
    let wire = [0, 0, 0, 1, packet_type::OPEN];
    assert_eq!(
        decode_packet(&wire, 1024),
        Ok(Some((
            Packet::Unsupported {
                id: None,
                packet_type: packet_type::OPEN
            },
            5
        )))
    );
}

#[test]
fn init_and_version_bytes() {
    let mut wire = Vec::new();
    encode_init(3, &mut wire);
    assert_eq!(wire, [0, 0, 0, 5, 1, 0, 0, 0, 3]);
    assert_eq!(
        decode_packet(&wire, 1024),
        Ok(Some((Packet::Init { version: 3 }, 9)))
    );
    let mut out = Vec::new();
    encode_version(&[("a@b", "1")], &mut out);
    assert_eq!(
        out,
        [
            0, 0, 0, 17, 2, 0, 0, 0, 3, 0, 0, 0, 3, b'a', b'@', b'b', 0, 0, 0, 1, b'1'
        ]
    );
}

#[test]
fn response_bytes() {
    let mut out = Vec::new();
    encode_response(7, &Response::status(StatusCode::Eof, "x"), &mut out);
    assert_eq!(
        out,
        [
            0, 0, 0, 18, 101, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, b'x', 0, 0, 0, 0
        ]
    );
    out.clear();
    encode_response(1, &Response::Data(b("ab")), &mut out);
    assert_eq!(out, [0, 0, 0, 11, 103, 0, 0, 0, 1, 0, 0, 0, 2, b'a', b'b']);
    out.clear();
    let attrs = Attrs {
        size: Some(5),
        permissions: Some(0o644),
        ..Attrs::default()
    };
    encode_response(2, &Response::Attrs(attrs), &mut out);
    assert_eq!(
        out,
        [
            0, 0, 0, 21, 105, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 1, 0xa4
        ]
    );
    out.clear();
    encode_response(
        3,
        &Response::Name(vec![NameEntry {
            filename: b("f"),
            longname: b("l"),
            attrs: Attrs::default(),
        }]),
        &mut out,
    );
    assert_eq!(
        out,
        [
            0, 0, 0, 23, 104, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1, b'f', 0, 0, 0, 1, b'l', 0, 0, 0,
            0
        ]
    );
}

#[test]
fn writes_classifies_requests() {
    let writing: Vec<bool> = every_request().iter().map(Request::writes).collect();
    let reading_open = Request::Open {
        path: b("a"),
        flags: open_flags::READ,
        attrs: Attrs::default(),
    };
    assert!(!reading_open.writes());
    // Open(write), Write, Setstat, Fsetstat, Remove, Mkdir, Rmdir, Rename, Symlink,
    // PosixRename, Hardlink, CopyData.
    assert_eq!(writing.iter().filter(|w| **w).count(), 12);
}
