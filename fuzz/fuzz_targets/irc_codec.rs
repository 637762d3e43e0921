//! Fuzz target for the IRC codec (`irc::proto::message`, `ctcp`): every line of the input
//! is parsed without panic; a parsed message re-encodes (unless a limit is passed by the
//! lossy UTF-8 replacement or the trailing `:`, or a tag key the encoder refuses) and
//! parses back to itself; what the encoder refuses it refuses without writing; a cut
//! encoding fits the line limit; tag values survive escaping; CTCP parse and mask matching
//! never panic, and CTCP re-encodes to what it parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::irc::proto::message::{
    EncodeError, MAX_LINE, Message, escape_tag_value, unescape_tag_value,
};
use ringwork_protocols::irc::proto::{Ctcp, mask_matches};

/// Tags without values and with empty values are the same on the wire.
fn normalized(mut message: Message) -> Message {
    for tag in &mut message.tags {
        if tag.value.as_deref() == Some("") {
            tag.value = None;
        }
    }
    message
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let Ok(message) = Message::parse(line) else {
            continue;
        };
        assert!(!message.command.is_empty());
        assert!(message.params.len() <= 15);
        let mut out = b"keep".to_vec();
        match message.encode(&mut out) {
            Ok(()) => {
                assert!(out.ends_with(b"\r\n"));
                let again = Message::parse(&out[4..out.len() - 2]).expect("our line parses");
                assert_eq!(normalized(again), normalized(message.clone()));
            }
            Err(
                EncodeError::LineTooLong { .. }
                | EncodeError::TagsTooLong { .. }
                | EncodeError::BadTagKey(_),
            ) => assert_eq!(out, b"keep", "nothing written on error"),
            Err(other) => panic!("a parsed message refused: {other:?} {message:?}"),
        }
        let mut cut = Vec::new();
        let mut untagged = message.clone();
        untagged.tags.clear();
        if untagged.encode_truncated(&mut cut).is_ok() {
            assert!(cut.len() <= MAX_LINE, "{}", cut.len());
            assert!(std::str::from_utf8(&cut).is_ok());
        }
        for param in &message.params {
            if let Some(ctcp) = Ctcp::parse(param) {
                let encoded = ctcp.encode();
                assert_eq!(
                    Ctcp::parse(&encoded).map(|c| c.command),
                    Some(ctcp.command.clone())
                );
            }
            let _ = mask_matches(message.param(0), param);
        }
    }
    let text = String::from_utf8_lossy(data);
    assert_eq!(unescape_tag_value(&escape_tag_value(&text)), text);
});
