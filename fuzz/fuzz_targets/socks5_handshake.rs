//! Fuzz target for the SOCKS5 server handshake: no panic, `consumed <= input`, at most one
//! message held unconsumed, split-insensitivity (the same replies, events and error whole
//! and cut at a fuzzer-chosen offset), and nothing consumed past the request; for
//! `parse_request` alone, `consumed <= input`, the request alone parses the same, and every
//! proper prefix of it is `Partial`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::socks5::proto::{
    Auth, Event, Handshake, MAX_MESSAGE, Parsed, Socks5Error, Status, parse_request,
};

type Outcome = (Vec<u8>, Vec<Event>, Option<Socks5Error>, Vec<u8>);

fn run(auth: &Auth, chunks: &[&[u8]]) -> Outcome {
    let mut hs = Handshake::new(auth.clone());
    let (mut sent, mut events, mut buf) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let result = hs.handle_input(&buf);
        while let Some(bytes) = hs.poll_transmit() {
            sent.extend(bytes);
        }
        while let Some(event) = hs.poll_event() {
            events.push(event);
        }
        match result {
            Ok(n) => {
                assert!(n <= buf.len());
                buf.drain(..n);
                assert!(hs.is_done() || buf.len() <= MAX_MESSAGE + chunk.len());
            }
            Err(e) => return (sent, events, Some(e), Vec::new()),
        }
    }
    (sent, events, None, buf)
}

fuzz_target!(|data: &[u8]| {
    let [mode, cut, input @ ..] = data else {
        return;
    };
    let auth = if mode & 1 == 0 {
        Auth::None
    } else {
        Auth::UserPass(vec![(b"user".to_vec(), b"pass".to_vec())])
    };
    let whole = run(&auth, &[input]);
    let cut = usize::from(*cut).min(input.len());
    let split = run(&auth, &[&input[..cut], &input[cut..]]);
    assert_eq!(whole, split);
    assert!(whole.1.len() <= 1, "one request at most");

    if let Ok(Status::Complete(Parsed { value, consumed })) = parse_request(input) {
        assert!(consumed > 0 && consumed <= input.len());
        let request = &input[..consumed];
        assert_eq!(
            parse_request(request),
            Ok(Status::Complete(Parsed { value, consumed }))
        );
        for cut in 0..consumed {
            assert_eq!(
                parse_request(&request[..cut]),
                Ok(Status::Partial),
                "prefix {cut}"
            );
        }
    }
});
