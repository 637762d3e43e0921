//! Fuzz target for DNS message reading and writing: no panic on any bytes; a query that
//! reads has its question inside the message; a message that reads is written back (records
//! in their sections) and reads back the same, and never larger than the limit given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::dns::proto::message::{
    Message, MessageWriter, Record, Section, parse_query,
};

/// Records with their owner names lowercased, as text (record data names too).
fn folded(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}",
                r.name,
                r.class,
                r.ttl,
                r.rtype().0,
                r.data
            )
            .to_ascii_lowercase()
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = parse_query(data) {
        assert!(query.question.end <= data.len());
        assert!(query.qname.wire().len() <= 255);
    }
    let Ok(message) = Message::parse(data) else {
        return;
    };
    for limit in [512usize, 65_535] {
        let mut writer = MessageWriter::new(Vec::new(), message.header, limit);
        for q in &message.questions {
            writer.question_raw(q.name.wire(), q.qtype, q.qclass);
        }
        let mut complete = true;
        for (section, records) in [
            (Section::Answer, &message.answers),
            (Section::Authority, &message.authority),
            (Section::Additional, &message.additional),
        ] {
            for record in records {
                complete &= writer.record(section, record);
            }
        }
        let bytes = writer.finish();
        // The question alone may exceed a small limit; records never push past it.
        let question_len: usize = 12
            + message
                .questions
                .iter()
                .map(|q| q.name.wire().len() + 4)
                .sum::<usize>();
        assert!(
            bytes.len() <= limit.max(question_len),
            "{} > {limit}",
            bytes.len()
        );
        let again = Message::parse(&bytes).expect("what we write reads back");
        if complete {
            // Compression matches names case-insensitively (as BIND and Knot do): a name may
            // come back in the case of the name it was compressed against.
            assert_eq!(folded(&again.answers), folded(&message.answers));
            assert_eq!(folded(&again.authority), folded(&message.authority));
            assert_eq!(folded(&again.additional), folded(&message.additional));
        }
        assert_eq!(again.questions, message.questions);
    }
});
