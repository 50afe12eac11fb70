//! An SSH signature (the `gpgsig` header value, `-----BEGIN SSH SIGNATURE-----` armor) as the verifier sees
//! it: armor detection, then the check against the fixed allowed signers over a fixed commit payload.
//! Input: one byte choosing which seed commit's payload and committer the signature is judged for, then
//! the armored signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::{policy, ssh_commits, verbose};
use vworkspace_operator::git::policy::SignatureKind;

fuzz_target!(|data: &[u8]| {
    let Some((&which, signature)) = data.split_first() else {
        return;
    };
    let commits = ssh_commits();
    let c = &commits[usize::from(which) % commits.len()];
    let _ = SignatureKind::detect(signature);
    for require_committer_match in [true, false] {
        let check = policy().ssh().verify(
            signature,
            &c.payload,
            &c.committer,
            c.time,
            require_committer_match,
        );
        if verbose() {
            eprintln!("{check:?}");
        }
        assert!(check.failure.is_some() || check.signer.is_some());
    }
});
