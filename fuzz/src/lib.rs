//! What the fuzz targets share: the fixed trust material the fuzzed bytes are judged against, and the
//! helpers that turn a raw commit into what the verifier sees.
//!
//! Nothing here is fuzzed itself; every target calls the operator's own entry points (see README.md).

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use vworkspace_operator::git::gitsign::{GitsignIdentity, TrustedRoot};
use vworkspace_operator::git::policy::TrustPolicy;

/// The SSH signers the seeds were signed by (ed25519, ECDSA P-256 with options, RSA).
pub const ALLOWED_SIGNERS: &str = include_str!("../fixtures/allowed_signers");
/// OpenPGP public keys the seeds were signed by (dave@example.com ed25519, erin@example.com RSA 2048).
pub const OPENPGP_DAVE: &str = include_str!("../fixtures/dave.asc");
pub const OPENPGP_ERIN: &str = include_str!("../fixtures/erin.asc");
/// The Sigstore public-good trusted root and a real offline gitsign commit (tests/data/gitsign).
pub const PUBLIC_GOOD_ROOT: &str =
    include_str!("../../tests/data/gitsign/sigstore-public-good-trusted_root.json");
pub const GITSIGN_OFFLINE_COMMIT: &[u8] = include_bytes!("../../tests/data/gitsign/offline.commit");

/// The time verdicts are judged at (2027-01-01T00:00:00Z, after the seed keys were made): fixed, so a run is
/// reproducible.
pub const NOW: i64 = 1_798_761_600;

/// Whether `VWO_FUZZ_VERBOSE` is set: targets then print their verdicts (to check that the seeds reach the
/// paths they should, e.g. `VWO_FUZZ_VERBOSE=1 TARGET -runs=0 seeds/TARGET`).
pub fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("VWO_FUZZ_VERBOSE").is_some())
}

/// A policy trusting every kind of key the seeds use, as an operator would load it.
pub fn policy_yaml() -> String {
    let indent =
        |text: &str, by: &str| -> String { text.lines().map(|l| format!("{by}{l}\n")).collect() };
    format!(
        "mode: range\nrequireCommitterMatch: true\nsshAllowedSigners: |\n{}openpgpKeys:\n  - |\n{}  - |\n{}\
         sigstoreTrustedRoot: |\n{}gitsignIdentities:\n  - issuer: https://accounts.google.com\n    \
         subject: billy@chainguard.dev\n  - issuer: https://token.actions.githubusercontent.com\n    \
         subjectRegex: ^https://github\\.com/example/.*$\n",
        indent(ALLOWED_SIGNERS, "  "),
        indent(OPENPGP_DAVE, "    "),
        indent(OPENPGP_ERIN, "    "),
        indent(PUBLIC_GOOD_ROOT, "  "),
    )
}

/// The fixed policy, parsed once.
pub fn policy() -> &'static TrustPolicy {
    static POLICY: OnceLock<TrustPolicy> = OnceLock::new();
    POLICY.get_or_init(|| TrustPolicy::from_yaml(&policy_yaml()).expect("the fuzz policy loads"))
}

/// The public-good trusted root, parsed once.
pub fn public_good() -> &'static TrustedRoot {
    static ROOT: OnceLock<TrustedRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        TrustedRoot::from_json(PUBLIC_GOOD_ROOT).expect("the public-good root parses")
    })
}

/// The gitsign identity the offline commit was signed by.
pub fn billy() -> &'static [GitsignIdentity] {
    static IDS: OnceLock<Vec<GitsignIdentity>> = OnceLock::new();
    IDS.get_or_init(|| {
        vec![
            GitsignIdentity::exact("https://accounts.google.com", "billy@chainguard.dev")
                .expect("a valid identity"),
        ]
    })
}

/// Split a raw commit object into (payload without the `gpgsig` header, signature text), as git does.
/// A simple splitter for building fixed inputs; the operator's own strict parser is what targets fuzz.
pub fn split_commit(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = String::from_utf8_lossy(raw);
    let (headers, message) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut payload = String::new();
    let mut signature = String::new();
    let mut in_sig = false;
    for line in headers.lines() {
        if let Some(value) = line.strip_prefix("gpgsig ") {
            in_sig = true;
            signature.push_str(value);
            signature.push('\n');
        } else if in_sig && line.starts_with(' ') {
            signature.push_str(&line[1..]);
            signature.push('\n');
        } else {
            in_sig = false;
            payload.push_str(line);
            payload.push('\n');
        }
    }
    payload.push('\n');
    payload.push_str(message);
    (payload.into_bytes(), signature.into_bytes())
}

/// The payload and signature of the real offline gitsign commit.
pub fn gitsign_offline() -> &'static (Vec<u8>, Vec<u8>) {
    static SPLIT: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    SPLIT.get_or_init(|| split_commit(GITSIGN_OFFLINE_COMMIT))
}

/// Armor `der` as gitsign does (`-----BEGIN SIGNED MESSAGE-----`, 64-column base64 lines).
pub fn armor_signed_message(der: &[u8]) -> Vec<u8> {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN SIGNED MESSAGE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END SIGNED MESSAGE-----\n");
    out.into_bytes()
}

/// The DER inside an armored signature (for building seeds and checks; lenient).
pub fn unarmor(armored: &[u8]) -> Vec<u8> {
    let b64: String = String::from_utf8_lossy(armored)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    STANDARD.decode(b64.trim()).unwrap_or_default()
}

/// A signed commit the targets judge fuzzed material against: its payload, signature and committer.
pub struct SignedCommit {
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub committer: String,
    pub time: i64,
}

fn signed(raw: &[u8]) -> SignedCommit {
    let parsed = vworkspace_operator::git::commit::parse(raw, gix::hash::Kind::Sha1)
        .expect("a fixture commit parses");
    SignedCommit {
        signature: parsed.signature.expect("a fixture commit is signed"),
        payload: parsed.payload,
        committer: parsed.committer.email,
        time: parsed.committer.time,
    }
}

/// Commits signed with the SSH keys of `fixtures/allowed_signers` (made with `git commit -S`,
/// `gpg.format=ssh`).
pub fn ssh_commits() -> &'static [SignedCommit] {
    static COMMITS: OnceLock<Vec<SignedCommit>> = OnceLock::new();
    COMMITS.get_or_init(|| {
        [
            &include_bytes!("../fixtures/commits/commit_ssh_ed25519")[..],
            include_bytes!("../fixtures/commits/commit_ssh_p256"),
            include_bytes!("../fixtures/commits/commit_ssh_rsa"),
        ]
        .into_iter()
        .map(signed)
        .collect()
    })
}

/// Commits signed with the OpenPGP keys of `fixtures/*.asc` (made with `git commit -S` and gpg).
pub fn openpgp_commits() -> &'static [SignedCommit] {
    static COMMITS: OnceLock<Vec<SignedCommit>> = OnceLock::new();
    COMMITS.get_or_init(|| {
        [
            &include_bytes!("../fixtures/commits/commit_pgp_ed25519")[..],
            include_bytes!("../fixtures/commits/commit_pgp_rsa"),
        ]
        .into_iter()
        .map(signed)
        .collect()
    })
}

/// Every signed fixture commit: SSH, OpenPGP and the offline gitsign one.
pub fn all_commits() -> &'static [SignedCommit] {
    static COMMITS: OnceLock<Vec<SignedCommit>> = OnceLock::new();
    COMMITS.get_or_init(|| {
        let mut all: Vec<SignedCommit> = ssh_commits()
            .iter()
            .chain(openpgp_commits())
            .map(|c| SignedCommit {
                payload: c.payload.clone(),
                signature: c.signature.clone(),
                committer: c.committer.clone(),
                time: c.time,
            })
            .collect();
        all.push(signed(GITSIGN_OFFLINE_COMMIT));
        all
    })
}

/// An outcome record as the notes writer makes one.
pub fn sample_record() -> &'static vworkspace_operator::git::notes::OutcomeRecord {
    use vworkspace_operator::git::notes::{NewRecord, OutcomeRecord};
    static RECORD: OnceLock<OutcomeRecord> = OnceLock::new();
    RECORD.get_or_init(|| {
        OutcomeRecord::new(NewRecord {
            cluster: "eu-prod-1".into(),
            kind: "ApplicationInstance".into(),
            namespace: "team-alpha".into(),
            name: "wiki".into(),
            uid: "6f1c7d2e-0000-4000-8000-000000000001".into(),
            generation: 3,
            outcome: "Rendered".into(),
            reason: "CommitVerified".into(),
            message: "rendered 4 objects".into(),
            child_refs: [("helmRelease".to_string(), "team-alpha/wiki".to_string())].into(),
            time: Some(jiff::Timestamp::from_second(NOW).expect("a valid time")),
        })
        .expect("a valid record")
    })
}

/// The control-plane key the `pull_job` seeds are signed with (a fixed seed: reproducible, not a secret).
pub fn control_plane_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}
