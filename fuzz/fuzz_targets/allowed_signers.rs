//! `sshAllowedSigners` text (git's allowed_signers format) as the policy loader parses it, then the fixed
//! SSH-signed seed commits verified against what it parsed (principals, namespaces, validity options), and no
//! key accepted on two lines.
//! Input: the allowed_signers text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vwo_fuzz::ssh_commits;
use vworkspace_operator::git::ssh::AllowedSigners;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(signers) = AllowedSigners::parse(text) else {
        return;
    };
    assert!(signers.entries().len() <= text.lines().count());
    // One key, one line: a key on a second line is a parse error.
    let mut keys = std::collections::HashSet::new();
    for e in signers.entries() {
        assert!(
            keys.insert(e.key.key_data().clone()),
            "a key on two lines was accepted"
        );
    }
    for c in ssh_commits() {
        for require_committer_match in [true, false] {
            let _ = signers.verify(
                &c.signature,
                &c.payload,
                &c.committer,
                c.time,
                require_committer_match,
            );
        }
    }
});
