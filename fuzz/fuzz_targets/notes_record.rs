//! A git note as read back from the remote notes ref (`read_notes`: the blob, lossily UTF-8, parsed line by
//! line), and the merge the notes writer does with its own records before pushing.
//! Input: the note blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::sample_record;
use vworkspace_operator::git::notes::{NoteLine, OutcomeRecord, merge_note, parse_note};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = parse_note(&text);
    // Merging is a set union keyed by record id: a record read back is already there.
    for line in &lines {
        if let NoteLine::Record(r) = line
            && !r.id.is_empty()
        {
            assert_eq!(
                merge_note(&text, [r.as_ref()]),
                None,
                "record {} read back but merged again",
                r.id
            );
        }
    }
    let ours: &OutcomeRecord = sample_record();
    if let Some(merged) = merge_note(&text, [ours]) {
        assert!(
            parse_note(&merged)
                .iter()
                .any(|l| matches!(l, NoteLine::Record(r) if **r == *ours)),
            "the merged note lost our record"
        );
        assert_eq!(
            merge_note(&merged, [ours]),
            None,
            "merging twice changed the note"
        );
    }
});
