//! An OpenPGP signature (`-----BEGIN PGP SIGNATURE-----`) as the verifier sees it: armor detection, then
//! the check against the fixed keyring over a fixed commit payload.
//! Input: one byte choosing which seed commit's payload and committer, then the armored signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::{NOW, openpgp_commits, policy, verbose};
use vworkspace_operator::git::policy::SignatureKind;

fuzz_target!(|data: &[u8]| {
    let Some((&which, signature)) = data.split_first() else {
        return;
    };
    let commits = openpgp_commits();
    let c = &commits[usize::from(which) % commits.len()];
    let _ = SignatureKind::detect(signature);
    for require_committer_match in [true, false] {
        let check = policy().openpgp().verify(
            signature,
            &c.payload,
            &c.committer,
            NOW,
            require_committer_match,
        );
        if verbose() {
            eprintln!("{check:?}");
        }
        assert!(check.failure.is_some() || check.signer.is_some());
    }
});
