//! gitsign (Sigstore keyless) verification, offline: real vectors from sigstore/gitsign, and cases
//! built here with a test Fulcio CA and a test Rekor log.

use vworkspace_operator::git::gitsign::{GitsignError, GitsignIdentity, TrustedRoot, verify};

const OFFLINE: &[u8] = include_bytes!("data/gitsign/offline.commit");
const ONLINE: &[u8] = include_bytes!("data/gitsign/online.commit");
const PUBLIC_GOOD: &str = include_str!("data/gitsign/sigstore-public-good-trusted_root.json");

/// Split a raw commit object into (payload without the gpgsig header, signature text).
fn split_commit(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = std::str::from_utf8(raw).unwrap();
    let (headers, message) = text.split_once("\n\n").unwrap();
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

fn public_good() -> TrustedRoot {
    TrustedRoot::from_json(PUBLIC_GOOD).unwrap()
}

fn billy() -> Vec<GitsignIdentity> {
    vec![GitsignIdentity::exact("https://accounts.google.com", "billy@chainguard.dev").unwrap()]
}

mod real_vectors {
    use super::*;

    #[test]
    fn offline_commit_verifies() {
        let (payload, sig) = split_commit(OFFLINE);
        let v = verify(&sig, &payload, &public_good(), &billy()).unwrap();
        assert_eq!(v.subject, "billy@chainguard.dev");
        assert_eq!(v.issuer, "https://accounts.google.com");
        assert_eq!(v.integrated_time.as_second(), 1_685_981_480);
        assert_eq!(v.log_index, 22_784_639);
        assert_eq!(v.log_url, "https://rekor.sigstore.dev");
        assert_eq!(v.certificate_authority, "https://fulcio.sigstore.dev");
        assert!(v.inclusion_proof);
        assert_eq!(v.cert_fingerprint.len(), 64);
    }

    #[test]
    fn payload_digest_matches_sources_md() {
        use sha2::Digest as _;
        let (payload, _) = split_commit(OFFLINE);
        assert!(hex::encode(sha2::Sha256::digest(&payload)).starts_with("554b9553"));
    }
}
