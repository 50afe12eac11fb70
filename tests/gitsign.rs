//! gitsign (Sigstore keyless) verification, offline: real vectors from sigstore/gitsign, and cases
//! built here with a test Fulcio CA and a test Rekor log.

use vworkspace_operator::git::gitsign::{GitsignError, GitsignIdentity, TrustedRoot, verify};

const OFFLINE: &[u8] = include_bytes!("data/gitsign/offline.commit");
const ONLINE: &[u8] = include_bytes!("data/gitsign/online.commit");
const PUBLIC_GOOD: &str = include_str!("data/gitsign/sigstore-public-good-trusted_root.json");

/// Split a raw commit object into (payload without the gpgsig header, signature text), with the operator's
/// own strict commit parser.
fn split_commit(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let commit = vworkspace_operator::git::commit::parse(raw, gix::hash::Kind::Sha1)
        .expect("a well-formed commit");
    (commit.payload, commit.signature.unwrap_or_default())
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
        assert!(v.subject_is_email);
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

/// Replace the first occurrence of `find` inside the DER of a gitsign signature (same length, so
/// every DER length stays valid) and re-armor it.
fn tamper(sig: &[u8], find: &[u8], replace: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    assert_eq!(find.len(), replace.len());
    let text = std::str::from_utf8(sig).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = STANDARD.decode(body).unwrap();
    let at = der
        .windows(find.len())
        .position(|w| w == find)
        .expect("bytes to tamper with are in the signature");
    der[at..at + find.len()].copy_from_slice(replace);
    fixture::armor(&der)
}

mod real_vector_failures {
    use super::*;

    fn offline() -> (Vec<u8>, Vec<u8>) {
        split_commit(OFFLINE)
    }

    fn check(
        name: &str,
        result: Result<impl std::fmt::Debug, GitsignError>,
        want: fn(&GitsignError) -> bool,
        text: &str,
    ) {
        let err = result.expect_err(name);
        assert!(want(&err), "{name}: unexpected error {err:?}");
        assert!(
            err.to_string().contains(text),
            "{name}: message {:?} lacks {text:?}",
            err.to_string()
        );
    }

    #[test]
    fn one_changed_byte_of_the_commit_fails() {
        let (mut payload, sig) = offline();
        let at = payload.len() - 3;
        payload[at] ^= 0x01;
        check(
            "message byte",
            verify(&sig, &payload, &public_good(), &billy()),
            |e| matches!(e, GitsignError::MessageDigestMismatch { .. }),
            "changed after it was signed",
        );
        // A changed header (author line) fails the same way.
        let (payload, sig) = offline();
        let payload = String::from_utf8(payload)
            .unwrap()
            .replace("Billy Lynch", "Billy Lynck");
        check(
            "author",
            verify(&sig, payload.as_bytes(), &public_good(), &billy()),
            |e| matches!(e, GitsignError::MessageDigestMismatch { .. }),
            "messageDigest",
        );
    }

    #[test]
    fn identity_or_issuer_not_in_the_policy_fails() {
        let (payload, sig) = offline();
        let cases = [
            (
                "other subject",
                vec![
                    GitsignIdentity::exact("https://accounts.google.com", "alice@chainguard.dev")
                        .unwrap(),
                ],
            ),
            (
                "other issuer",
                vec![
                    GitsignIdentity::exact(
                        "https://github.com/login/oauth",
                        "billy@chainguard.dev",
                    )
                    .unwrap(),
                ],
            ),
            (
                "regex not matching whole subject",
                vec![
                    GitsignIdentity::regex("https://accounts.google.com", "billy@chainguard")
                        .unwrap(),
                ],
            ),
            ("empty policy", vec![]),
        ];
        for (name, ids) in cases {
            check(
                name,
                verify(&sig, &payload, &public_good(), &ids),
                |e| matches!(e, GitsignError::IdentityNotTrusted { subject, issuer } if subject == "billy@chainguard.dev" && issuer == "https://accounts.google.com"),
                "not allowed by any gitsignIdentities entry",
            );
        }
        let ok = [
            GitsignIdentity::regex("https://accounts.google.com", r".*@chainguard\.dev").unwrap(),
        ];
        assert_eq!(
            verify(&sig, &payload, &public_good(), &ok).unwrap().subject,
            "billy@chainguard.dev"
        );
    }

    fn root_without(edit: impl FnOnce(&mut serde_json::Value)) -> TrustedRoot {
        let mut doc: serde_json::Value = serde_json::from_str(PUBLIC_GOOD).unwrap();
        edit(&mut doc);
        TrustedRoot::from_json(&doc.to_string()).unwrap()
    }

    #[test]
    fn trusted_root_without_its_ca_fails() {
        let (payload, sig) = offline();
        // Keep only the 2021 CA, which did not issue this certificate.
        let root = root_without(|d| {
            d["certificateAuthorities"]
                .as_array_mut()
                .unwrap()
                .remove(1);
        });
        check(
            "no issuing CA",
            verify(&sig, &payload, &root, &billy()),
            |e| matches!(e, GitsignError::ChainNotTrusted { .. }),
            "does not chain to a Fulcio CA",
        );
        // The CA is there but its window ended before the integrated time (2023-06-05).
        let root = root_without(|d| {
            d["certificateAuthorities"][1]["validFor"]["end"] = "2023-01-01T00:00:00Z".into();
        });
        check(
            "CA window",
            verify(&sig, &payload, &root, &billy()),
            |e| matches!(e, GitsignError::CertificateAuthorityNotValid { .. }),
            "not at the integrated time 2023-06-05T16:11:20Z",
        );
    }

    #[test]
    fn trusted_root_without_its_rekor_key_fails() {
        let (payload, sig) = offline();
        let root = root_without(|d| {
            d["tlogs"].as_array_mut().unwrap().remove(0);
        });
        check(
            "no Rekor key",
            verify(&sig, &payload, &root, &billy()),
            |e| matches!(e, GitsignError::UnknownLog { .. }),
            "c0d23d6a",
        );
        // The key is there but only trusted from 2024 on.
        let root = root_without(|d| {
            d["tlogs"][0]["publicKey"]["validFor"]["start"] = "2024-01-01T00:00:00Z".into();
        });
        check(
            "Rekor key window",
            verify(&sig, &payload, &root, &billy()),
            |e| matches!(e, GitsignError::LogKeyNotValid { .. }),
            "its key is trusted from 2024-01-01T00:00:00Z",
        );
    }

    #[test]
    fn altered_log_entry_fails() {
        let (payload, sig) = offline();
        type Want = fn(&GitsignError) -> bool;
        type Case<'a> = (&'a str, &'a [u8], &'a [u8], Want, &'a str);
        let cases: &[Case<'_>] = &[
            (
                "integrated time +1s",
                &[0x20, 0xa8, 0x92, 0xf8, 0xa3, 0x06],
                &[0x20, 0xa9, 0x92, 0xf8, 0xa3, 0x06],
                |e| matches!(e, GitsignError::InclusionPromiseInvalid { .. }),
                "inclusion promise does not verify",
            ),
            (
                "log index",
                &[0x08, 0xff, 0xd4, 0xee, 0x0a],
                &[0x08, 0xfe, 0xd4, 0xee, 0x0a],
                |e| matches!(e, GitsignError::InclusionPromiseInvalid { .. }),
                "rekor.sigstore.dev",
            ),
            (
                "log id",
                &[0x0a, 0x20, 0xc0, 0xd2, 0x3d, 0x6a],
                &[0x0a, 0x20, 0xc0, 0xd2, 0x3d, 0x6b],
                |e| matches!(e, GitsignError::UnknownLog { .. }),
                "not a transparency log of the trusted root",
            ),
            (
                "kind",
                b"hashedrekord",
                b"hashedrekorD",
                |e| matches!(e, GitsignError::UnsupportedLogEntry { .. }),
                "hashedrekorD",
            ),
            (
                "signed entry timestamp",
                &[0x30, 0x44, 0x02, 0x20, 0x36, 0xba],
                &[0x30, 0x44, 0x02, 0x20, 0x36, 0xbb],
                |e| matches!(e, GitsignError::InclusionPromiseInvalid { .. }),
                "was altered",
            ),
            (
                "proof hash",
                &[0x22, 0x20, 0x6f, 0xca, 0x5c, 0x50],
                &[0x22, 0x20, 0x6f, 0xca, 0x5c, 0x51],
                |e| matches!(e, GitsignError::InclusionProofInvalid { .. }),
                "not a proof for this entry",
            ),
            (
                "proof root hash",
                &[0x12, 0x20, 0x23, 0x07, 0xb7, 0xe5],
                &[0x12, 0x20, 0x23, 0x07, 0xb7, 0xe6],
                |e| matches!(e, GitsignError::InclusionProofInvalid { .. }),
                "states root 2307b7e6",
            ),
            (
                "checkpoint text",
                b"Timestamp: 1685981480187378349",
                b"Timestamp: 1685981480187378348",
                |e| matches!(e, GitsignError::CheckpointSignatureInvalid { .. }),
                "no valid signature by the key of https://rekor.sigstore.dev",
            ),
            (
                "checkpoint signature",
                b"wNI9ajBEAiAM16zt",
                b"wNI9ajBEAiAM16zu",
                |e| matches!(e, GitsignError::CheckpointSignatureInvalid { .. }),
                "rekor.sigstore.dev - 2605736670972794746",
            ),
        ];
        for (name, find, replace, want, text) in cases {
            let altered = tamper(&sig, find, replace);
            check(
                name,
                verify(&altered, &payload, &public_good(), &billy()),
                *want,
                text,
            );
        }
    }

    #[test]
    fn altered_cms_signature_fails() {
        let (payload, sig) = offline();
        let altered = tamper(
            &sig,
            &[0x02, 0x20, 0x32, 0xf2, 0x51, 0x60],
            &[0x02, 0x20, 0x32, 0xf2, 0x51, 0x61],
        );
        check(
            "CMS signature",
            verify(&altered, &payload, &public_good(), &billy()),
            |e| matches!(e, GitsignError::BadSignature { .. }),
            "does not verify with the certificate's key",
        );
    }

    #[test]
    fn online_commit_cannot_be_verified_offline() {
        let (payload, sig) = split_commit(ONLINE);
        check(
            "online",
            verify(&sig, &payload, &public_good(), &billy()),
            |e| matches!(e, GitsignError::OfflineUnverifiable),
            "cannot be verified offline",
        );
    }

    #[test]
    fn not_a_gitsign_signature() {
        let (payload, _) = offline();
        let pgp = b"-----BEGIN PGP SIGNATURE-----\nAAAA\n-----END PGP SIGNATURE-----\n";
        check(
            "pgp armor",
            verify(pgp, &payload, &public_good(), &billy()),
            |e| matches!(e, GitsignError::Armor { .. }),
            "not a PEM SIGNED MESSAGE",
        );
        let garbage = fixture::armor(b"\x30\x03\x02\x01\x01");
        check(
            "not CMS",
            verify(&garbage, &payload, &public_good(), &billy()),
            |e| matches!(e, GitsignError::Cms { .. }),
            "malformed CMS",
        );
    }
}

/// A test Fulcio (CA chain, leaf certificates), a test Rekor log (Merkle tree, checkpoint, inclusion
/// promise), and gitsign-shaped CMS signatures, assembled from DER with the `cms` / `x509-cert` types.
mod fixture {
    use std::str::FromStr as _;
    use std::time::{Duration, SystemTime};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
        SignerInfos,
    };
    use sha2::{Digest as _, Sha256, Sha384};
    use x509_cert::attr::Attribute;
    use x509_cert::der::asn1::{
        BitString, Ia5String, ObjectIdentifier as Oid, OctetString, SetOfVec, Utf8StringRef,
    };
    use x509_cert::der::{Any, Decode as _, Encode as _};
    use x509_cert::ext::Extension;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
        SubjectKeyIdentifier,
    };
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
    use x509_cert::time::{Time, Validity};
    use x509_cert::{Certificate, TbsCertificate, Version};

    const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
    const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    const SHA256_OID: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
    const KP_CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");
    const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
    const ISSUER_V1: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.1");
    const ISSUER_V2: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.8");
    const TLOG_ENTRY: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.3.1");

    /// 2025-06-15T15:06:40Z: the integrated time of the default scenario.
    pub const T: i64 = 1_750_000_000;
    const CA_FROM: i64 = 1_577_836_800; // 2020-01-01
    const CA_UNTIL: i64 = 2_208_988_800; // 2040-01-01

    pub fn armor(der: &[u8]) -> Vec<u8> {
        let b64 = STANDARD.encode(der);
        let mut out = String::from("-----BEGIN SIGNED MESSAGE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str("-----END SIGNED MESSAGE-----\n");
        out.into_bytes()
    }

    #[derive(Clone)]
    pub enum Key {
        P256(p256::ecdsa::SigningKey),
        P384(p384::ecdsa::SigningKey),
    }

    impl Key {
        pub fn p256(seed: &str) -> Self {
            Key::P256(p256::ecdsa::SigningKey::from_slice(&Sha256::digest(seed)).unwrap())
        }
        pub fn p384(seed: &str) -> Self {
            Key::P384(p384::ecdsa::SigningKey::from_slice(&Sha384::digest(seed)).unwrap())
        }
        pub fn spki(&self) -> SubjectPublicKeyInfoOwned {
            let (curve, point) = match self {
                Key::P256(k) => (
                    SECP256R1,
                    k.verifying_key()
                        .to_encoded_point(false)
                        .as_bytes()
                        .to_vec(),
                ),
                Key::P384(k) => (
                    SECP384R1,
                    k.verifying_key()
                        .to_encoded_point(false)
                        .as_bytes()
                        .to_vec(),
                ),
            };
            SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: EC_PUBLIC_KEY,
                    parameters: Some(Any::encode_from(&curve).unwrap()),
                },
                subject_public_key: BitString::from_bytes(&point).unwrap(),
            }
        }
        pub fn spki_der(&self) -> Vec<u8> {
            self.spki().to_der().unwrap()
        }
        pub fn algorithm(&self) -> AlgorithmIdentifierOwned {
            let oid = match self {
                Key::P256(_) => ECDSA_SHA256,
                Key::P384(_) => ECDSA_SHA384,
            };
            AlgorithmIdentifierOwned {
                oid,
                parameters: None,
            }
        }
        /// DER ECDSA signature (SHA-256 for P-256, SHA-384 for P-384).
        pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
            use p256::ecdsa::signature::Signer as _;
            match self {
                Key::P256(k) => {
                    let s: p256::ecdsa::Signature = k.sign(msg);
                    s.to_der().as_bytes().to_vec()
                }
                Key::P384(k) => {
                    let s: p384::ecdsa::Signature = k.sign(msg);
                    s.to_der().as_bytes().to_vec()
                }
            }
        }
    }

    fn time(t: i64) -> Time {
        Time::try_from(SystemTime::UNIX_EPOCH + Duration::from_secs(t as u64)).unwrap()
    }

    fn ext(oid: &str, critical: bool, value: Vec<u8>) -> Extension {
        Extension {
            extn_id: Oid::new_unwrap(oid),
            critical,
            extn_value: OctetString::new(value).unwrap(),
        }
    }

    struct CertSpec {
        serial: u8,
        issuer: Name,
        subject: Name,
        not_before: i64,
        not_after: i64,
        extensions: Vec<Extension>,
    }

    fn issue(spec: CertSpec, subject_key: &Key, issuer_key: &Key) -> (Certificate, Vec<u8>) {
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&[spec.serial]).unwrap(),
            signature: issuer_key.algorithm(),
            issuer: spec.issuer,
            validity: Validity {
                not_before: time(spec.not_before),
                not_after: time(spec.not_after),
            },
            subject: spec.subject,
            subject_public_key_info: subject_key.spki(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(spec.extensions),
        };
        let signature = issuer_key.sign(&tbs.to_der().unwrap());
        let cert = Certificate {
            tbs_certificate: tbs,
            signature_algorithm: issuer_key.algorithm(),
            signature: BitString::from_bytes(&signature).unwrap(),
        };
        let der = cert.to_der().unwrap();
        (cert, der)
    }

    fn ca_extensions(path_len: Option<u8>) -> Vec<Extension> {
        vec![
            ext(
                "2.5.29.19",
                true,
                BasicConstraints {
                    ca: true,
                    path_len_constraint: path_len,
                }
                .to_der()
                .unwrap(),
            ),
            ext(
                "2.5.29.15",
                true,
                KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)
                    .to_der()
                    .unwrap(),
            ),
        ]
    }

    /// A Fulcio-like CA: a P-384 root and a P-384 intermediate that issues leaves.
    #[derive(Clone)]
    pub struct Ca {
        pub root_der: Vec<u8>,
        pub intermediate_der: Vec<u8>,
        intermediate_name: Name,
        intermediate_key: Key,
    }

    impl Ca {
        /// `names` fixes the subject names; `seed` the keys. Two CAs with the same names and other
        /// keys are indistinguishable by name.
        pub fn new(names: &str, seed: &str) -> Self {
            let root_key = Key::p384(&format!("{seed} root"));
            let intermediate_key = Key::p384(&format!("{seed} intermediate"));
            let root_name = Name::from_str(&format!("CN={names} root,O=vworkspace test")).unwrap();
            let intermediate_name =
                Name::from_str(&format!("CN={names} intermediate,O=vworkspace test")).unwrap();
            let (_, root_der) = issue(
                CertSpec {
                    serial: 1,
                    issuer: root_name.clone(),
                    subject: root_name.clone(),
                    not_before: CA_FROM,
                    not_after: CA_UNTIL,
                    extensions: ca_extensions(Some(1)),
                },
                &root_key,
                &root_key,
            );
            let (_, intermediate_der) = issue(
                CertSpec {
                    serial: 2,
                    issuer: root_name,
                    subject: intermediate_name.clone(),
                    not_before: CA_FROM,
                    not_after: CA_UNTIL,
                    extensions: ca_extensions(Some(0)),
                },
                &intermediate_key,
                &root_key,
            );
            Self {
                root_der,
                intermediate_der,
                intermediate_name,
                intermediate_key,
            }
        }
    }

    /// What the Merkle inclusion proof in the entry proves.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Proof {
        /// No inclusion proof (inclusion promise only).
        Absent,
        /// The proof of this entry's leaf.
        OfThisEntry,
        /// The (valid) proof of another leaf of the same tree.
        OfAnotherLeaf,
    }

    /// The checkpoint carried with the inclusion proof.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum CheckpointKind {
        Absent,
        SignedByLog,
        SignedByAnotherKey,
        /// Signed by the log, but for a larger tree than the proof's.
        OfAnotherTree,
    }

    /// One gitsign signing event: who, when, what the log returned, and what the trusted root says.
    #[derive(Clone)]
    pub struct Scenario {
        pub payload: Vec<u8>,
        pub integrated_time: i64,
        pub leaf_key: Key,
        pub leaf_not_before: i64,
        pub leaf_not_after: i64,
        pub signing_time: i64,
        pub san: Vec<GeneralName>,
        pub issuer_v2: Option<String>,
        pub issuer_v1: Option<String>,
        pub code_signing: bool,
        /// The CA in the trusted root.
        pub trusted_ca: Ca,
        /// The CA that actually issues the leaf (defaults to the trusted one).
        pub issuing_ca: Ca,
        pub log_key: Key,
        pub embed_entry: bool,
        pub inclusion_promise: bool,
        pub proof: Proof,
        pub checkpoint: CheckpointKind,
        /// The entry the log signed is the hashedrekord of another signature over the same payload.
        pub entry_of_another_signature: bool,
        /// Put the canonicalized body into the entry: the right one, or a different one.
        pub embedded_body: Option<bool>,
        /// Identify the signer by subject key identifier instead of issuer and serial number.
        pub sid_by_key_id: bool,
        /// Embed the signed content (an attached, not detached, signature).
        pub attached: bool,
        pub ca_window: (Option<&'static str>, Option<&'static str>),
        pub log_window: (Option<&'static str>, Option<&'static str>),
    }

    pub fn email(s: &str) -> GeneralName {
        GeneralName::Rfc822Name(Ia5String::new(s).unwrap())
    }

    pub fn uri(s: &str) -> GeneralName {
        GeneralName::UniformResourceIdentifier(Ia5String::new(s).unwrap())
    }

    pub const ISSUER: &str = "https://issuer.test.example";
    const KEY_ID: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

    impl Scenario {
        pub fn new() -> Self {
            static TRUSTED: std::sync::OnceLock<Ca> = std::sync::OnceLock::new();
            let ca = TRUSTED
                .get_or_init(|| Ca::new("test fulcio", "trusted"))
                .clone();
            Self {
                payload: b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <alice@example.com> 1750000000 +0000\ncommitter A <alice@example.com> 1750000000 +0000\n\nintent\n".to_vec(),
                integrated_time: T,
                leaf_key: Key::p256("leaf"),
                leaf_not_before: T - 60,
                leaf_not_after: T + 540,
                signing_time: T - 1,
                san: vec![email("alice@example.com")],
                issuer_v2: Some(ISSUER.into()),
                issuer_v1: Some(ISSUER.into()),
                code_signing: true,
                trusted_ca: ca.clone(),
                issuing_ca: ca,
                log_key: Key::p256("rekor"),
                embed_entry: true,
                inclusion_promise: true,
                proof: Proof::OfThisEntry,
                checkpoint: CheckpointKind::SignedByLog,
                entry_of_another_signature: false,
                embedded_body: None,
                sid_by_key_id: false,
                attached: false,
                ca_window: (Some("2020-01-01T00:00:00Z"), None),
                log_window: (Some("2020-01-01T00:00:00Z"), None),
            }
        }

        fn leaf(&self) -> (Certificate, Vec<u8>) {
            let mut extensions = vec![
                ext(
                    "2.5.29.14",
                    false,
                    OctetString::new(KEY_ID.to_vec()).unwrap().to_der().unwrap(),
                ),
                ext(
                    "2.5.29.15",
                    true,
                    KeyUsage(KeyUsages::DigitalSignature.into())
                        .to_der()
                        .unwrap(),
                ),
                ext(
                    "2.5.29.37",
                    false,
                    ExtendedKeyUsage(vec![if self.code_signing {
                        KP_CODE_SIGNING
                    } else {
                        KP_CLIENT_AUTH
                    }])
                    .to_der()
                    .unwrap(),
                ),
                ext(
                    "2.5.29.17",
                    true,
                    SubjectAltName(self.san.clone()).to_der().unwrap(),
                ),
            ];
            if let Some(issuer) = &self.issuer_v1 {
                extensions.push(Extension {
                    extn_id: ISSUER_V1,
                    critical: false,
                    extn_value: OctetString::new(issuer.as_bytes()).unwrap(),
                });
            }
            if let Some(issuer) = &self.issuer_v2 {
                extensions.push(Extension {
                    extn_id: ISSUER_V2,
                    critical: false,
                    extn_value: OctetString::new(
                        Utf8StringRef::new(issuer).unwrap().to_der().unwrap(),
                    )
                    .unwrap(),
                });
            }
            issue(
                CertSpec {
                    serial: 0x42,
                    issuer: self.issuing_ca.intermediate_name.clone(),
                    subject: Name::default(),
                    not_before: self.leaf_not_before,
                    not_after: self.leaf_not_after,
                    extensions,
                },
                &self.leaf_key,
                &self.issuing_ca.intermediate_key,
            )
        }

        fn signed_attributes(&self, payload: &[u8]) -> SetOfVec<Attribute> {
            let attr = |oid, value: Any| Attribute {
                oid,
                values: SetOfVec::try_from(vec![value]).unwrap(),
            };
            SetOfVec::try_from(vec![
                attr(CONTENT_TYPE, Any::encode_from(&ID_DATA).unwrap()),
                attr(
                    SIGNING_TIME,
                    Any::encode_from(&time(self.signing_time)).unwrap(),
                ),
                attr(
                    MESSAGE_DIGEST,
                    Any::encode_from(&OctetString::new(Sha256::digest(payload).to_vec()).unwrap())
                        .unwrap(),
                ),
            ])
            .unwrap()
        }

        /// Build the signature (PEM) and the trusted root (JSON text) for this scenario.
        pub fn build(&self) -> (Vec<u8>, String) {
            let (leaf, leaf_der) = self.leaf();
            let attrs = self.signed_attributes(&self.payload);
            let attrs_der = attrs.to_der().unwrap();
            let signature = self.leaf_key.sign(&attrs_der);

            let log_id: [u8; 32] = Sha256::digest(self.log_key.spki_der()).into();
            let logged_body = if self.entry_of_another_signature {
                let other = self.signed_attributes(b"another commit");
                let other_der = other.to_der().unwrap();
                hashedrekord(&other_der, &self.leaf_key.sign(&other_der), &leaf_der)
            } else {
                hashedrekord(&attrs_der, &signature, &leaf_der)
            };

            let mut unsigned = Vec::new();
            if self.embed_entry {
                let entry = self.log_entry(&logged_body, &log_id);
                unsigned.push(Attribute {
                    oid: TLOG_ENTRY,
                    values: SetOfVec::try_from(vec![
                        Any::encode_from(&OctetString::new(entry).unwrap()).unwrap(),
                    ])
                    .unwrap(),
                });
            }

            let signer = SignerInfo {
                version: CmsVersion::V1,
                sid: if self.sid_by_key_id {
                    SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
                        OctetString::new(KEY_ID.to_vec()).unwrap(),
                    ))
                } else {
                    SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                        issuer: leaf.tbs_certificate.issuer.clone(),
                        serial_number: leaf.tbs_certificate.serial_number.clone(),
                    })
                },
                digest_alg: AlgorithmIdentifierOwned {
                    oid: SHA256_OID,
                    parameters: None,
                },
                signed_attrs: Some(attrs),
                signature_algorithm: self.leaf_key.algorithm(),
                signature: OctetString::new(signature).unwrap(),
                unsigned_attrs: (!unsigned.is_empty())
                    .then(|| SetOfVec::try_from(unsigned).unwrap()),
            };
            let signed_data = SignedData {
                version: CmsVersion::V1,
                digest_algorithms: SetOfVec::try_from(vec![AlgorithmIdentifierOwned {
                    oid: SHA256_OID,
                    parameters: None,
                }])
                .unwrap(),
                encap_content_info: EncapsulatedContentInfo {
                    econtent_type: ID_DATA,
                    econtent: self.attached.then(|| {
                        Any::encode_from(&OctetString::new(self.payload.clone()).unwrap()).unwrap()
                    }),
                },
                certificates: Some(CertificateSet(
                    SetOfVec::try_from(vec![CertificateChoices::Certificate(
                        Certificate::from_der(&leaf_der).unwrap(),
                    )])
                    .unwrap(),
                )),
                crls: None,
                signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).unwrap()),
            };
            let info = ContentInfo {
                content_type: ID_SIGNED_DATA,
                content: Any::encode_from(&signed_data).unwrap(),
            };
            (armor(&info.to_der().unwrap()), self.trusted_root())
        }

        fn log_entry(&self, body: &[u8], log_id: &[u8; 32]) -> Vec<u8> {
            // A 7-leaf tree (shard) whose leaf 3 is this entry; the global index is 1000 + 3.
            const INDEX: usize = 3;
            let mut leaves: Vec<[u8; 32]> = (0..7)
                .map(|i| leaf_hash(format!("other entry {i}").as_bytes()))
                .collect();
            leaves[INDEX] = leaf_hash(body);
            let global_index = 1000 + INDEX as u64;
            let size = leaves.len();
            let root = mth(&leaves);

            let mut entry = Vec::new();
            pb_varint_field(&mut entry, 1, global_index);
            pb_bytes_field(&mut entry, 2, &pb_bytes(1, log_id));
            let mut kind = pb_bytes(1, b"hashedrekord");
            pb_bytes_field(&mut kind, 2, b"0.0.1");
            pb_bytes_field(&mut entry, 3, &kind);
            pb_varint_field(&mut entry, 4, self.integrated_time as u64);
            if self.inclusion_promise {
                let payload = format!(
                    r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
                    STANDARD.encode(body),
                    self.integrated_time,
                    hex::encode(log_id),
                    global_index
                );
                pb_bytes_field(
                    &mut entry,
                    5,
                    &pb_bytes(1, &self.log_key.sign(payload.as_bytes())),
                );
            }
            if self.proof != Proof::Absent {
                let proved = if self.proof == Proof::OfAnotherLeaf {
                    INDEX - 1
                } else {
                    INDEX
                };
                let mut proof = Vec::new();
                pb_varint_field(&mut proof, 1, proved as u64);
                pb_bytes_field(&mut proof, 2, &root);
                pb_varint_field(&mut proof, 3, size as u64);
                for h in path(proved, &leaves) {
                    pb_bytes_field(&mut proof, 4, &h);
                }
                let (cp_size, cp_root) = if self.checkpoint == CheckpointKind::OfAnotherTree {
                    let mut bigger = leaves.clone();
                    bigger.push(leaf_hash(b"later entry"));
                    (bigger.len(), mth(&bigger))
                } else {
                    (size, root)
                };
                let signer = if self.checkpoint == CheckpointKind::SignedByAnotherKey {
                    Key::p256("impostor")
                } else {
                    self.log_key.clone()
                };
                if self.checkpoint != CheckpointKind::Absent {
                    let note = format!(
                        "test-rekor.example - 77\n{cp_size}\n{}\nTimestamp: {}000000000\n",
                        STANDARD.encode(cp_root),
                        self.integrated_time
                    );
                    let mut sig = log_id[..4].to_vec();
                    sig.extend(signer.sign(note.as_bytes()));
                    let envelope = format!(
                        "{note}\n\u{2014} test-rekor.example {}\n",
                        STANDARD.encode(sig)
                    );
                    pb_bytes_field(&mut proof, 5, &pb_bytes(1, envelope.as_bytes()));
                }
                pb_bytes_field(&mut entry, 6, &proof);
            }
            if let Some(same) = self.embedded_body {
                let embedded = if same {
                    body.to_vec()
                } else {
                    hashedrekord(b"x", b"y", b"z")
                };
                pb_bytes_field(&mut entry, 7, &embedded);
            }
            entry
        }

        fn trusted_root(&self) -> String {
            let window = |(start, end): (Option<&str>, Option<&str>)| {
                let mut w = serde_json::Map::new();
                if let Some(s) = start {
                    w.insert("start".into(), s.into());
                }
                if let Some(e) = end {
                    w.insert("end".into(), e.into());
                }
                serde_json::Value::Object(w)
            };
            let log_der = self.log_key.spki_der();
            serde_json::json!({
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [{
                    "baseUrl": "https://test-rekor.example",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": STANDARD.encode(&log_der),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": window(self.log_window),
                    },
                    "logId": { "keyId": STANDARD.encode(Sha256::digest(&log_der)) },
                }],
                "certificateAuthorities": [{
                    "subject": { "organization": "vworkspace test", "commonName": "test fulcio" },
                    "uri": "https://test-fulcio.example",
                    "certChain": { "certificates": [
                        { "rawBytes": STANDARD.encode(&self.trusted_ca.intermediate_der) },
                        { "rawBytes": STANDARD.encode(&self.trusted_ca.root_der) },
                    ]},
                    "validFor": window(self.ca_window),
                }],
            })
            .to_string()
        }
    }

    /// The hashedrekord 0.0.1 body gitsign logs, written independently of the verifier.
    pub fn hashedrekord(signed_attrs_der: &[u8], signature: &[u8], cert_der: &[u8]) -> Vec<u8> {
        let b64 = STANDARD.encode(cert_der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        // serde_json keeps insertion order here (preserve_order); keys are written sorted.
        serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": { "hash": { "algorithm": "sha256", "value": hex::encode(Sha256::digest(signed_attrs_der)) } },
                "signature": { "content": STANDARD.encode(signature), "publicKey": { "content": STANDARD.encode(pem) } },
            },
        })
        .to_string()
        .into_bytes()
    }

    pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([0]);
        h.update(data);
        h.finalize().into()
    }

    fn node(l: &[u8], r: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([1]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    }

    /// RFC 6962 §2.1 Merkle tree hash.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = leaves.len().next_power_of_two() / 2;
        node(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    /// RFC 6962 §2.1.1 audit path.
    fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = leaves.len().next_power_of_two() / 2;
        let (mut p, sibling) = if m < k {
            (path(m, &leaves[..k]), mth(&leaves[k..]))
        } else {
            (path(m - k, &leaves[k..]), mth(&leaves[..k]))
        };
        p.push(sibling);
        p
    }

    fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn pb_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
        pb_varint(out, field << 3);
        pb_varint(out, v);
    }

    fn pb_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        pb_varint(out, (field << 3) | 2);
        pb_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn pb_bytes(field: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        pb_bytes_field(&mut out, field, bytes);
        out
    }
}

mod built_cases {
    use super::fixture::{CheckpointKind, ISSUER, Key, Proof, Scenario, T, email, uri};
    use super::*;

    fn alice() -> Vec<GitsignIdentity> {
        vec![GitsignIdentity::exact(ISSUER, "alice@example.com").unwrap()]
    }

    fn run(
        s: &Scenario,
        ids: &[GitsignIdentity],
    ) -> Result<vworkspace_operator::git::gitsign::GitsignVerified, GitsignError> {
        let (sig, root) = s.build();
        verify(
            &sig,
            &s.payload,
            &TrustedRoot::from_json(&root).unwrap(),
            ids,
        )
    }

    #[test]
    fn the_test_fulcio_and_rekor_verify() {
        let v = run(&Scenario::new(), &alice()).unwrap();
        assert_eq!(v.subject, "alice@example.com");
        assert_eq!(v.issuer, ISSUER);
        assert_eq!(v.integrated_time.as_second(), T);
        assert_eq!(v.log_index, 1003);
        assert_eq!(v.log_url, "https://test-rekor.example");
        assert_eq!(v.certificate_authority, "https://test-fulcio.example");
        assert!(v.inclusion_proof);
    }

    #[test]
    fn accepted_variants() {
        let mut promise_only = Scenario::new();
        promise_only.proof = Proof::Absent;
        let mut body_embedded = Scenario::new();
        body_embedded.embedded_body = Some(true);
        let mut p384_leaf = Scenario::new();
        p384_leaf.leaf_key = Key::p384("leaf 384");
        let mut issuer_v1_only = Scenario::new();
        issuer_v1_only.issuer_v2 = None;
        let mut uri_san = Scenario::new();
        uri_san.san = vec![uri(
            "https://github.com/example/infra/.github/workflows/release.yaml@refs/heads/main",
        )];
        let mut at_not_before = Scenario::new();
        at_not_before.integrated_time = at_not_before.leaf_not_before;
        let mut by_key_id = Scenario::new();
        by_key_id.sid_by_key_id = true;
        let mut at_not_after = Scenario::new();
        at_not_after.integrated_time = at_not_after.leaf_not_after;

        let workflow = GitsignIdentity::regex(
            ISSUER,
            r"https://github\.com/example/infra/\.github/workflows/release\.yaml@refs/heads/.*",
        )
        .unwrap();
        let cases: Vec<(&str, Scenario, Vec<GitsignIdentity>, bool)> = vec![
            ("inclusion promise only", promise_only, alice(), false),
            ("canonicalized body embedded", body_embedded, alice(), true),
            ("P-384 leaf key", p384_leaf, alice(), true),
            (
                "issuer from the deprecated 1.1 extension",
                issuer_v1_only,
                alice(),
                true,
            ),
            (
                "URI SAN matched by subjectRegex",
                uri_san,
                vec![workflow],
                true,
            ),
            ("integrated at notBefore", at_not_before, alice(), true),
            ("integrated at notAfter", at_not_after, alice(), true),
            (
                "signer identified by subject key identifier",
                by_key_id,
                alice(),
                true,
            ),
        ];
        for (name, scenario, ids, proof) in cases {
            let v = run(&scenario, &ids).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(v.inclusion_proof, proof, "{name}");
        }
    }

    #[test]
    fn rejected_cases() {
        type Want = fn(&GitsignError) -> bool;
        let mut cases: Vec<(&str, Scenario, Want, &str)> = Vec::new();
        let mut add = |name, edit: &dyn Fn(&mut Scenario), want: Want, text| {
            let mut s = Scenario::new();
            edit(&mut s);
            cases.push((name, s, want, text));
        };
        add(
            "chain does not reach the root: leaf from an unknown CA",
            &|s| s.issuing_ca = fixture::Ca::new("rogue fulcio", "rogue"),
            |e| matches!(e, GitsignError::ChainNotTrusted { .. }),
            "unknown issuer",
        );
        add(
            "chain does not reach the root: impostor CA with the trusted CA's names",
            &|s| s.issuing_ca = fixture::Ca::new("test fulcio", "impostor"),
            |e| matches!(e, GitsignError::ChainNotTrusted { .. }),
            "does not chain to a Fulcio CA",
        );
        add(
            "certificate expired at the integrated time",
            &|s| s.integrated_time = s.leaf_not_after + 1,
            |e| matches!(e, GitsignError::CertificateNotValidAtIntegratedTime { .. }),
            "was not valid at the integrated time 2025-06-15T15:15:41Z",
        );
        add(
            "certificate not yet valid at the integrated time",
            &|s| s.integrated_time = s.leaf_not_before - 1,
            |e| matches!(e, GitsignError::CertificateNotValidAtIntegratedTime { .. }),
            "valid from 2025-06-15T15:05:40Z",
        );
        add(
            "signer-chosen signing time inside the validity does not help",
            &|s| {
                s.signing_time = s.leaf_not_before + 10;
                s.integrated_time = s.leaf_not_after + 3600;
            },
            |e| matches!(e, GitsignError::CertificateNotValidAtIntegratedTime { .. }),
            "not valid at the integrated time",
        );
        add(
            "inclusion proof for another leaf",
            &|s| s.proof = Proof::OfAnotherLeaf,
            |e| matches!(e, GitsignError::InclusionProofInvalid { .. }),
            "not a proof for this entry",
        );
        add(
            "log entry of another signature",
            &|s| s.entry_of_another_signature = true,
            |e| matches!(e, GitsignError::InclusionPromiseInvalid { .. }),
            "inclusion promise does not verify",
        );
        add(
            "embedded body of something else",
            &|s| s.embedded_body = Some(false),
            |e| matches!(e, GitsignError::LogEntryBodyMismatch),
            "not the hashedrekord of this signature",
        );
        add(
            "attached (not detached) signature",
            &|s| s.attached = true,
            |e| matches!(e, GitsignError::NotDetached),
            "must be detached",
        );
        add(
            "no inclusion promise",
            &|s| s.inclusion_promise = false,
            |e| matches!(e, GitsignError::NoInclusionPromise),
            "integrated time is not signed by the log",
        );
        add(
            "inclusion proof without checkpoint",
            &|s| s.checkpoint = CheckpointKind::Absent,
            |e| matches!(e, GitsignError::CheckpointMissing),
            "no checkpoint",
        );
        add(
            "checkpoint signed by another key",
            &|s| s.checkpoint = CheckpointKind::SignedByAnotherKey,
            |e| matches!(e, GitsignError::CheckpointSignatureInvalid { .. }),
            "test-rekor.example - 77",
        );
        add(
            "checkpoint of another tree",
            &|s| s.checkpoint = CheckpointKind::OfAnotherTree,
            |e| matches!(e, GitsignError::CheckpointMismatch { .. }),
            "tree size 8 differs from the proof's 7",
        );
        add(
            "no embedded log entry",
            &|s| s.embed_entry = false,
            |e| matches!(e, GitsignError::OfflineUnverifiable),
            "gitsign.rekorMode offline",
        );
        add(
            "CA not trusted at the integrated time",
            &|s| s.ca_window = (Some("2020-01-01T00:00:00Z"), Some("2025-01-01T00:00:00Z")),
            |e| matches!(e, GitsignError::CertificateAuthorityNotValid { .. }),
            "https://test-fulcio.example, which is trusted from 2020-01-01T00:00:00Z to 2025-01-01T00:00:00Z",
        );
        add(
            "log key not trusted at the integrated time",
            &|s| s.log_window = (Some("2026-01-01T00:00:00Z"), None),
            |e| matches!(e, GitsignError::LogKeyNotValid { .. }),
            "https://test-rekor.example: its key is trusted from 2026-01-01T00:00:00Z",
        );
        add(
            "leaf without codeSigning",
            &|s| s.code_signing = false,
            |e| matches!(e, GitsignError::CertificateUsage { .. }),
            "does not include codeSigning",
        );
        add(
            "leaf without issuer extension",
            &|s| {
                s.issuer_v1 = None;
                s.issuer_v2 = None;
            },
            |e| matches!(e, GitsignError::MissingIssuer),
            "no OIDC issuer extension",
        );
        add(
            "identity not in the policy",
            &|s| s.san = vec![email("mallory@example.com")],
            |e| matches!(e, GitsignError::IdentityNotTrusted { .. }),
            "mallory@example.com (issuer https://issuer.test.example)",
        );
        add(
            "issuer not in the policy",
            &|s| s.issuer_v2 = Some("https://other-issuer.example".into()),
            |e| matches!(e, GitsignError::IdentityNotTrusted { .. }),
            "issuer https://other-issuer.example",
        );
        for (name, scenario, want, text) in cases {
            let err = run(&scenario, &alice()).expect_err(name);
            assert!(want(&err), "{name}: unexpected error {err:?}");
            assert!(
                err.to_string().contains(text),
                "{name}: {:?} lacks {text:?}",
                err.to_string()
            );
        }
    }

    #[test]
    fn the_log_key_of_another_log_does_not_verify() {
        // Same tree, same entry, but the trusted root holds another Rekor key.
        let s = Scenario::new();
        let (sig, _) = s.build();
        let mut other = Scenario::new();
        other.log_key = Key::p256("another rekor");
        let (_, other_root) = other.build();
        let err = verify(
            &sig,
            &s.payload,
            &TrustedRoot::from_json(&other_root).unwrap(),
            &alice(),
        )
        .unwrap_err();
        assert!(matches!(err, GitsignError::UnknownLog { .. }), "{err:?}");
    }
}

/// gitsign through the trust policy (`sigstoreTrustedRoot`, `gitsignIdentities`) and the `verify` CLI.
mod policy_and_cli {
    use std::path::Path;
    use std::process::Command;

    use vworkspace_operator::git::policy::{SignatureKind, TrustPolicy};
    use vworkspace_operator::git::sigcheck::Reason;

    use super::fixture::{ISSUER, Scenario, uri};
    use super::*;

    const ROOT_FILE: &str = "sigstore-public-good-trusted_root.json";
    const BILLY: &str = "gitsignIdentities:\n  - issuer: https://accounts.google.com\n    subject: billy@chainguard.dev\n";

    fn data_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitsign")
    }

    fn policy(extra: &str) -> TrustPolicy {
        let root = data_dir().join(ROOT_FILE);
        TrustPolicy::from_yaml(&format!("sigstoreTrustedRoot: {}\n{extra}", root.display()))
            .unwrap()
    }

    /// `(kind, signer, issuer, fingerprint, reason)` of a verdict.
    type Checked = (
        Option<SignatureKind>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<Reason>,
    );

    /// Check `raw` under `policy` as committed by `committer`.
    fn check(policy: &TrustPolicy, raw: &[u8], committer: &str) -> Checked {
        let (payload, sig) = split_commit(raw);
        let (kind, c) = policy.check(&sig, &payload, committer, 0, 0);
        (
            kind,
            c.signer,
            c.issuer,
            c.fingerprint,
            c.failure.map(|f| f.reason),
        )
    }

    #[test]
    fn the_trusted_root_is_a_path_json_text_or_a_mapping() {
        let json = PUBLIC_GOOD.trim();
        let indented: String = json.lines().map(|l| format!("  {l}\n")).collect();
        let forms = [
            (
                "absolute path",
                format!(
                    "sigstoreTrustedRoot: {}\n",
                    data_dir().join(ROOT_FILE).display()
                ),
            ),
            ("JSON text", format!("sigstoreTrustedRoot: |\n{indented}")),
            (
                "mapping (JSON is YAML)",
                format!("sigstoreTrustedRoot: {}\n", json.replace('\n', " ")),
            ),
        ];
        for (name, field) in forms {
            let p = TrustPolicy::from_yaml(&format!("{field}{BILLY}"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let trust = p.gitsign().unwrap();
            assert_eq!(trust.identities.len(), 1, "{name}");
            assert_eq!(trust.root.certificate_authorities().len(), 2, "{name}");
            let (_, signer, ..) = check(&p, OFFLINE, "billy@chainguard.dev");
            assert_eq!(signer.as_deref(), Some("billy@chainguard.dev"), "{name}");
        }

        // A relative path is relative to the policy file.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(data_dir().join(ROOT_FILE), dir.path().join("root.json")).unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, format!("sigstoreTrustedRoot: root.json\n{BILLY}")).unwrap();
        assert!(TrustPolicy::load(&file).unwrap().gitsign().is_some());
        // …and means nothing for a policy that is not a file (a Secret's data).
        let err = TrustPolicy::from_yaml(&format!("sigstoreTrustedRoot: root.json\n{BILLY}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sigstoreTrustedRoot") && err.contains("absolute path"),
            "{err}"
        );
    }

    #[test]
    fn policy_errors_name_the_field() {
        let root = data_dir().join(ROOT_FILE);
        let root = root.display();
        let cases = [
            (
                BILLY.to_string(),
                "gitsignIdentities: needs sigstoreTrustedRoot",
            ),
            (
                format!("sigstoreTrustedRoot: {root}\n"),
                "sigstoreTrustedRoot: is set but gitsignIdentities is empty",
            ),
            (
                format!("sigstoreTrustedRoot: {root}\ngitsignIdentities:\n  - issuer: x\n"),
                "gitsignIdentities[0]: gitsignIdentities entry for issuer x: set exactly one of subject or subjectRegex",
            ),
            (
                format!(
                    "sigstoreTrustedRoot: {root}\ngitsignIdentities:\n  - issuer: x\n    subjectRegex: '('\n"
                ),
                "gitsignIdentities[0]",
            ),
            (
                format!("sigstoreTrustedRoot: /nonexistent/root.json\n{BILLY}"),
                "sigstoreTrustedRoot: cannot read /nonexistent/root.json",
            ),
            (
                format!("sigstoreTrustedRoot: '{{\"mediaType\": \"x\"}}'\n{BILLY}"),
                "sigstoreTrustedRoot: trusted root mediaType \"x\"",
            ),
            (
                format!("sigstoreTrustedRoot: 42\n{BILLY}"),
                "sigstoreTrustedRoot: must be the trusted_root.json document",
            ),
            (
                "mode: range\n".to_string(),
                "sshAllowedSigners, openpgpKeys, gitsignIdentities and/or controlPlaneKeys",
            ),
        ];
        for (yaml, want) in cases {
            let err = TrustPolicy::from_yaml(&yaml).unwrap_err().to_string();
            assert!(err.contains(want), "{yaml:?}: {err} (wanted {want:?})");
        }
        // A trusted-root file that is not a trusted root names the file and the JSON field.
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("root.json");
        std::fs::write(&bad, r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":5}"#).unwrap();
        let err =
            TrustPolicy::from_yaml(&format!("sigstoreTrustedRoot: {}\n{BILLY}", bad.display()))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("root.json") && err.contains("at tlogs"),
            "{err}"
        );
    }

    #[test]
    fn verdicts_through_the_policy() {
        let billy = policy(BILLY);
        let (kind, signer, issuer, fingerprint, reason) =
            check(&billy, OFFLINE, "billy@chainguard.dev");
        assert_eq!(kind, Some(SignatureKind::X509));
        assert_eq!(reason, None);
        assert_eq!(signer.as_deref(), Some("billy@chainguard.dev"));
        assert_eq!(issuer.as_deref(), Some("https://accounts.google.com"));
        assert!(fingerprint.unwrap().starts_with("sha256:"));

        // requireCommitterMatch (the default) binds an email identity to the committer.
        let (.., fingerprint, reason) = check(&billy, OFFLINE, "mallory@example.com");
        assert_eq!(reason, Some(Reason::SignerMismatch));
        assert!(fingerprint.is_some());
        let relaxed = policy(&format!("requireCommitterMatch: false\n{BILLY}"));
        assert_eq!(check(&relaxed, OFFLINE, "mallory@example.com").4, None);
        assert_eq!(check(&billy, OFFLINE, "BILLY@chainguard.dev").4, None);

        let cases: Vec<(&str, TrustPolicy, &[u8], Reason)> = vec![
            ("online mode", policy(BILLY), ONLINE, Reason::OfflineUnverifiable),
            (
                "other identity",
                policy("gitsignIdentities:\n  - issuer: https://accounts.google.com\n    subject: alice@chainguard.dev\n"),
                OFFLINE,
                Reason::UntrustedIdentity,
            ),
            (
                "no gitsign trust in the policy",
                TrustPolicy::from_yaml("sshAllowedSigners: \"a@x ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti\"\n").unwrap(),
                OFFLINE,
                Reason::UntrustedSignatureKind,
            ),
        ];
        for (name, p, raw, want) in cases {
            assert_eq!(
                check(&p, raw, "billy@chainguard.dev").4,
                Some(want),
                "{name}"
            );
        }
        let tampered = String::from_utf8(OFFLINE.to_vec())
            .unwrap()
            .replace("Mon Jun", "Tue Jun");
        assert_eq!(
            check(&billy, tampered.as_bytes(), "billy@chainguard.dev").4,
            Some(Reason::BadSignature)
        );
    }

    #[test]
    fn reasons_for_built_cases() {
        let through_policy = |s: &Scenario, identities: &str, committer: &str| {
            let (sig, root) = s.build();
            let p = TrustPolicy::from_yaml(&format!(
                "sigstoreTrustedRoot: |\n{}\n{identities}",
                root.lines()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
            .unwrap();
            let (_, c) = p.check(&sig, &s.payload, committer, 0, 0);
            (c.signer, c.failure.map(|f| f.reason))
        };
        let alice =
            format!("gitsignIdentities:\n  - issuer: {ISSUER}\n    subject: alice@example.com\n");
        let mut expired = Scenario::new();
        expired.integrated_time = expired.leaf_not_after + 1;
        let mut early = Scenario::new();
        early.integrated_time = early.leaf_not_before - 1;
        let mut rogue = Scenario::new();
        rogue.issuing_ca = fixture::Ca::new("rogue fulcio", "rogue");
        let mut other_leaf = Scenario::new();
        other_leaf.proof = fixture::Proof::OfAnotherLeaf;
        for (name, s, want) in [
            ("expired", expired, Reason::KeyExpired),
            ("not yet valid", early, Reason::KeyNotYetValid),
            ("unknown CA", rogue, Reason::UntrustedCertificate),
            (
                "proof of another leaf",
                other_leaf,
                Reason::TransparencyLogInvalid,
            ),
        ] {
            assert_eq!(
                through_policy(&s, &alice, "alice@example.com").1,
                Some(want),
                "{name}"
            );
        }
        // A workflow (URI) identity has no email to bind to the committer: its explicit entry trusts it.
        let mut workflow = Scenario::new();
        let id = "https://github.com/example/infra/.github/workflows/release.yaml@refs/heads/main";
        workflow.san = vec![uri(id)];
        let entry = format!("gitsignIdentities:\n  - issuer: {ISSUER}\n    subject: {id}\n");
        let (signer, reason) = through_policy(
            &workflow,
            &entry,
            "41898282+github-actions[bot]@users.noreply.github.com",
        );
        assert_eq!(reason, None);
        assert_eq!(signer.as_deref(), Some(id));
    }

    /// A git command isolated from the user's configuration.
    fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
        use std::io::Write as _;
        let mut child = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or_default())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn verify_cli_reports_gitsign_identity_and_issuer() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "--bare"], None);
        // The real commits, as objects (their trees and parents are not needed in head mode).
        let write = |raw: &[u8]| {
            git(
                &repo,
                &["hash-object", "-w", "-t", "commit", "--stdin"],
                Some(raw),
            )
        };
        let offline = write(OFFLINE);
        let online = write(ONLINE);
        let tampered = write(
            String::from_utf8(OFFLINE.to_vec())
                .unwrap()
                .replace("Mon Jun", "Tue Jun")
                .as_bytes(),
        );

        let policy = tmp.path().join("policy.yaml");
        std::fs::copy(
            data_dir().join(ROOT_FILE),
            tmp.path().join("trusted_root.json"),
        )
        .unwrap();
        std::fs::write(
            &policy,
            format!("mode: head\nsigstoreTrustedRoot: trusted_root.json\n{BILLY}"),
        )
        .unwrap();
        let other = tmp.path().join("other.yaml");
        std::fs::write(&other, "mode: head\nsigstoreTrustedRoot: trusted_root.json\ngitsignIdentities:\n  - issuer: https://github.com/login/oauth\n    subject: billy@chainguard.dev\n").unwrap();

        let cli = |policy: &Path, rev: &str, json: bool| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"));
            cmd.args(["verify", "--repo"])
                .arg(&repo)
                .arg("--policy")
                .arg(policy);
            if json {
                cmd.args(["--output", "json"]);
            }
            let out = cmd.arg(rev).output().unwrap();
            (out.status.code(), String::from_utf8(out.stdout).unwrap())
        };

        let (code, out) = cli(&policy, &offline, false);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.starts_with(&format!("{offline} verified kind=x509 signer=billy@chainguard.dev issuer=https://accounts.google.com key=sha256:")),
            "{out}"
        );
        let (code, out) = cli(&policy, &offline, true);
        assert_eq!(code, Some(0), "{out}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["verdict"], "verified");
        assert_eq!(v["signer"], "billy@chainguard.dev");
        assert_eq!(v["issuer"], "https://accounts.google.com");

        let rejected = [
            (
                &policy,
                &online,
                "reason=OfflineUnverifiable: gitsign signature has no embedded Rekor log entry",
            ),
            (
                &policy,
                &tampered,
                "reason=BadSignature: gitsign signature: the signed messageDigest",
            ),
            (
                &other,
                &offline,
                "reason=UntrustedIdentity: identity billy@chainguard.dev (issuer https://accounts.google.com)",
            ),
        ];
        for (policy, rev, want) in rejected {
            let (code, out) = cli(policy, rev, false);
            assert_eq!(code, Some(1), "{out}");
            assert!(
                out.contains(&format!("{rev} rejected kind=x509")) && out.contains(want),
                "{out}"
            );
        }
    }
}
