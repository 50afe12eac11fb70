//! A Rekor `TransparencyLogEntry` (protobuf, as gitsign embeds it in the CMS signature): decoded, checked
//! against the public-good trusted root for the body it embeds, its inclusion proof and checkpoint parsed.
//! Input: the serialized entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::public_good;
use vworkspace_operator::git::gitsign::decode_log_entry;

fuzz_target!(|data: &[u8]| {
    let _ = decode_log_entry(data, public_good());
});
