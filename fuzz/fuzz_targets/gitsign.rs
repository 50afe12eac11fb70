//! A gitsign signature (CMS SignedData with the Fulcio certificate and the embedded Rekor entry) verified
//! offline against the Sigstore public-good trusted root, over the payload of the real offline commit.
//! Input: the CMS DER (armored here as gitsign does), or, when it starts with `-----`, the armored text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::{armor_signed_message, billy, gitsign_offline, public_good, verbose};
use vworkspace_operator::git::gitsign::verify;

fuzz_target!(|data: &[u8]| {
    let (payload, _) = gitsign_offline();
    let armored;
    let signature = if data.starts_with(b"-----") {
        data
    } else {
        armored = armor_signed_message(data);
        &armored
    };
    let result = verify(signature, payload, public_good(), billy());
    if verbose() {
        eprintln!("{result:?}");
    }
});
