//! cosign public keys as the trust policy lists them: PEM `PUBLIC KEY` blocks (what `cosign generate-key-pair`
//! writes to `cosign.pub`), parsed and checked before anything is rendered from them, and named by their
//! fingerprint in conditions, notes and events.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

/// The largest PEM text one key entry may hold (an RSA-4096 public key is about 800 bytes).
pub const MAX_KEY_PEM_BYTES: usize = 16 * 1024;

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const RSA: &str = "1.2.840.113549.1.1.1";
const ED25519: &str = "1.3.101.112";

/// A cosign public key from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignKey {
    /// The entry's name (unique in its rule): the key's name in the rendered Secret.
    pub name: String,
    /// The key as a canonical PEM block (re-encoded from the DER, whatever the policy's line wrapping).
    pub pem: String,
    /// `SHA256:` and the unpadded base64 of the SHA-256 of the DER SubjectPublicKeyInfo, as SSH prints keys.
    pub fingerprint: String,
    /// `ecdsa-p256`, `ecdsa-p384`, `rsa` or `ed25519`.
    pub algorithm: &'static str,
}

/// Parse one PEM public key: exactly one `PUBLIC KEY` block, a SubjectPublicKeyInfo of a kind cosign verifies
/// (ECDSA P-256 or P-384, RSA of at least 2048 bits, Ed25519), with a valid point for ECDSA.
pub fn parse_public_key(name: &str, text: &str) -> Result<CosignKey, String> {
    if text.len() > MAX_KEY_PEM_BYTES {
        return Err(format!(
            "is {} bytes; a public key is at most {MAX_KEY_PEM_BYTES}",
            text.len()
        ));
    }
    let der = pem_body(text)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&der)
        .map_err(|e| format!("is not a DER SubjectPublicKeyInfo: {e}"))?;
    let key_bits = spki.subject_public_key.raw_bytes();
    let oid = spki.algorithm.oid.to_string();
    let algorithm = match oid.as_str() {
        EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                .map(|o| o.to_string())
                .unwrap_or_default();
            match curve.as_str() {
                P256 => {
                    p256::PublicKey::from_sec1_bytes(key_bits)
                        .map_err(|_| "is not a valid P-256 point".to_string())?;
                    "ecdsa-p256"
                }
                P384 => {
                    p384::PublicKey::from_sec1_bytes(key_bits)
                        .map_err(|_| "is not a valid P-384 point".to_string())?;
                    "ecdsa-p384"
                }
                other => {
                    return Err(format!(
                        "is an ECDSA key on curve {other:?}: cosign keys are P-256 or P-384"
                    ));
                }
            }
        }
        RSA => {
            // The modulus is the first INTEGER of the RSAPublicKey SEQUENCE: its length bounds the key size.
            let bits = rsa_modulus_bits(key_bits).ok_or("is not a valid RSA public key")?;
            if bits < 2048 {
                return Err(format!(
                    "is an RSA key of {bits} bits: at least 2048 are needed"
                ));
            }
            "rsa"
        }
        ED25519 if key_bits.len() == 32 => "ed25519",
        ED25519 => return Err("is not a valid Ed25519 key (not 32 bytes)".into()),
        other => {
            return Err(format!(
                "has algorithm {other}: cosign keys are ECDSA (P-256, P-384), RSA or Ed25519"
            ));
        }
    };
    let canonical = spki
        .to_der()
        .map_err(|e| format!("cannot be re-encoded: {e}"))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&canonical);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    Ok(CosignKey {
        name: name.to_string(),
        pem,
        fingerprint: fingerprint(&canonical),
        algorithm,
    })
}

/// `SHA256:<unpadded base64>` of DER bytes.
pub fn fingerprint(der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(der))
    )
}

/// The DER inside one `PUBLIC KEY` PEM block; nothing but blank lines around it.
fn pem_body(text: &str) -> Result<Vec<u8>, String> {
    use crate::pem::PemError;
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    crate::pem::decode(text, "PUBLIC KEY").map_err(|e| match e {
        PemError::NoBegin if text.contains("PRIVATE KEY-----") => {
            "is a PRIVATE key: list the public key (cosign.pub), never the private one".into()
        }
        PemError::NoBegin => format!("must be one PEM block starting with {BEGIN}"),
        PemError::Header => "has a header line inside the PEM block".into(),
        PemError::NoEnd => "has no -----END PUBLIC KEY----- line".into(),
        PemError::TrailingText => {
            "holds more than one PEM block: list each key as its own entry".into()
        }
        PemError::Base64(e) => format!("the PEM body is not base64: {e}"),
    })
}

/// The bit length of an RSAPublicKey's modulus (DER `SEQUENCE { INTEGER n, INTEGER e }`), if it parses.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    use x509_cert::der::asn1::UintRef;
    use x509_cert::der::{Reader, SliceReader};
    let mut reader = SliceReader::new(der).ok()?;
    let modulus = reader
        .sequence(|r| {
            let n = UintRef::decode(r)?;
            let _exponent = UintRef::decode(r)?;
            Ok(n.as_bytes().to_vec())
        })
        .ok()?;
    reader.finish(()).ok()?;
    let first = *modulus.first()?;
    Some((modulus.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::charts::test_keys::KEY_A as P256_PEM;

    /// An RSA key of 1024 bits: too weak.
    const RSA_1024_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCthjfV+AzMamnTa+yeDFPNhrTK
e/wHHx+8H98URxjzhc87RM+8JbZd4ixnJWnyoc3E+N0wnaDRSmvLjnohyDcxtplX
aft+kYM/aJs+c6BVsP6Wly3Yo34CZAh+xOzRBbMunOfZDRwSbFxcgYbVOtJuR5O9
MiJ9yRMGNO5lRriACQIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn a_p256_key_parses_and_is_named_by_its_fingerprint_whatever_its_wrapping() {
        let k = parse_public_key("release", P256_PEM).unwrap();
        assert_eq!(k.algorithm, "ecdsa-p256");
        assert!(k.fingerprint.starts_with("SHA256:"), "{}", k.fingerprint);
        let rewrapped = P256_PEM.replace('\n', "\n\n").replace("MFkw", "  MFkw");
        let again = parse_public_key("release", &rewrapped).unwrap();
        assert_eq!(again.fingerprint, k.fingerprint);
        assert_eq!(again.pem, k.pem);
    }

    #[test]
    fn what_is_not_one_public_key_is_refused_with_the_reason() {
        let cases = [
            ("", "must be one PEM block"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                "PRIVATE",
            ),
            (
                "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAA\n",
                "PRIVATE",
            ),
            ("-----BEGIN PUBLIC KEY-----\nMFkw\n", "no -----END"),
            (
                "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----",
                "base64",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
                "SubjectPublicKeyInfo",
            ),
        ];
        for (text, want) in cases {
            let err = parse_public_key("k", text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let twice = format!("{P256_PEM}{P256_PEM}");
        assert!(
            parse_public_key("k", &twice)
                .unwrap_err()
                .contains("more than one")
        );
        let huge = "A".repeat(MAX_KEY_PEM_BYTES + 1);
        assert!(
            parse_public_key("k", &huge)
                .unwrap_err()
                .contains("at most")
        );
        // A point off the curve: one byte of the key's x coordinate changed.
        let off = P256_PEM.replace("e/FgJb", "e/FgJc");
        assert!(parse_public_key("k", &off).unwrap_err().contains("P-256"));
        let weak = parse_public_key("k", RSA_1024_PEM).unwrap_err();
        assert!(weak.contains("1024 bits"), "{weak}");
    }
}
