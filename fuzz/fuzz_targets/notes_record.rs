//! A git note as read back from the remote notes ref (`read_notes`: the blob, lossily UTF-8, parsed line by
//! line), judged as a reader does (`judge`), and the merge the notes writer does with its own signed record
//! before pushing.
//! Input: the note blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::sample_record;
use vworkspace_operator::git::notes::auth::{NotesSigner, NotesTrust};
use vworkspace_operator::git::notes::judge::{Status, judge};
use vworkspace_operator::git::notes::{NoteLine, OutcomeRecord, merge_note, parse_note};

fuzz_target!(|data: &[u8]| {
    let commit = gix::ObjectId::from_hex(b"0123456789abcdef0123456789abcdef01234567").expect("hex");
    let signer = NotesSigner::from_bytes(&[42; 32]);
    let trust = NotesTrust::new(vec![signer.trusted("operator")]);
    let text = String::from_utf8_lossy(data);
    let lines = parse_note(&text);
    let records: Vec<OutcomeRecord> = lines
        .iter()
        .filter_map(|l| match l {
            NoteLine::Record(r) => Some((**r).clone()),
            NoteLine::Other(_) => None,
        })
        .collect();
    // Nothing is dropped by judging; no input is genuine without the key's signature.
    let judged = judge(&commit, Some("eu-prod-1"), records.clone(), &trust);
    assert_eq!(judged.len(), records.len());
    // Our signed record is written unless a record genuinely signed by our key with its id is there.
    let mut ours: OutcomeRecord = sample_record().clone();
    signer.sign(&commit, &mut ours);
    let genuine_there = judged
        .iter()
        .any(|j| j.verification.status == Status::Genuine && j.record.id == ours.id);
    match merge_note(&commit, &text, [&ours]) {
        Some(merged) => {
            assert!(
                parse_note(&merged)
                    .iter()
                    .any(|l| matches!(l, NoteLine::Record(r) if **r == ours)),
                "the merged note lost our record"
            );
            assert_eq!(
                merge_note(&commit, &merged, [&ours]),
                None,
                "merging twice changed the note"
            );
            // Every line of the note is still there (a trailing CR is part of the line ending).
            for line in text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty())
            {
                assert!(
                    merged.lines().any(|m| m == line),
                    "the merge dropped {line:?}"
                );
            }
        }
        None => assert!(
            genuine_there,
            "our record was taken as written without a genuine copy"
        ),
    }
});
