//! An `openpgpKeys` entry (armored public keys) as the policy loader reads it, then the keyring's views and
//! the fixed OpenPGP-signed seed commits verified against it (expiry, revocation, user IDs, subkeys).
//! Input: the armored key text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::{NOW, openpgp_commits};
use vworkspace_operator::git::openpgp::OpenPgpKeyring;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ring) = OpenPgpKeyring::load(&[text]) else {
        return;
    };
    let _ = (
        ring.fingerprints(),
        ring.user_ids(),
        ring.signing_fingerprint(NOW),
    );
    for c in openpgp_commits() {
        for require_committer_match in [true, false] {
            let _ = ring.verify(
                &c.signature,
                &c.payload,
                &c.committer,
                NOW,
                require_committer_match,
            );
        }
    }
});
