//! The strict commit object parser, and the whole verification of a commit object (parse, dispatch on the
//! signature armor, SSH / OpenPGP / gitsign check) against a fixed policy trusting the seeds' keys.
//! Input: a raw commit object (the bytes after `commit <len>\0`), as read from an untrusted repository.
#![no_main]

use gix::ObjectId;
use gix::hash::Kind;
use libfuzzer_sys::fuzz_target;
use vwo_fuzz::{NOW, policy, verbose};
use vworkspace_operator::git::commit;
use vworkspace_operator::git::verify::verify_commit_object;

fuzz_target!(|data: &[u8]| {
    // The operator is built for SHA-1 repositories only (gix feature `sha1`).
    for kind in [Kind::Sha1] {
        if let Ok(parsed) = commit::parse(data, kind) {
            // The signed payload is the object without its signature header: it parses, unsigned, and says
            // the same as the object (else a verifier and git would disagree about what was signed).
            let payload = commit::parse(&parsed.payload, kind)
                .expect("the payload of an accepted commit is an accepted commit");
            assert!(payload.signature.is_none());
            assert_eq!(payload.tree, parsed.tree);
            assert_eq!(payload.parents, parsed.parents);
            assert_eq!(payload.author, parsed.author);
            assert_eq!(payload.committer, parsed.committer);
            assert_eq!(payload.payload, parsed.payload);
        }
    }
    let (verdict, parsed) =
        verify_commit_object(ObjectId::null(Kind::Sha1), data, Kind::Sha1, policy(), NOW);
    if verbose() {
        eprintln!("{verdict:?}");
    }
    assert!(!verdict.ok || parsed.is_some_and(|p| p.signature.is_some()));
});
