//! A Sigstore `trusted_root.json` as `sigstoreTrustedRoot` loads it, then the real offline gitsign commit
//! verified against it (log keys, CA chains, validity windows). Input: the JSON text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::{billy, gitsign_offline};
use vworkspace_operator::git::gitsign::{TrustedRoot, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(root) = TrustedRoot::from_json(text) else {
        return;
    };
    let _ = (
        root.transparency_logs().len(),
        root.certificate_authorities().len(),
    );
    let (payload, signature) = gitsign_offline();
    let _ = verify(signature, payload, &root, billy());
});
