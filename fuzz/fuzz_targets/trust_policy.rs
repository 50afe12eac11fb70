//! The trust policy YAML (`TrustPolicy::from_yaml`, what the operator does with the policy Secret), then
//! every seed commit's signature checked under the policy it produced.
//! Input: the policy YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::{NOW, all_commits, verbose};
use vworkspace_operator::git::policy::TrustPolicy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = TrustPolicy::from_yaml(text) else {
        return;
    };
    for c in all_commits() {
        let (kind, check) = policy.check(&c.signature, &c.payload, &c.committer, c.time, NOW);
        if verbose() {
            eprintln!("{kind:?} {check:?}");
        }
    }
});
