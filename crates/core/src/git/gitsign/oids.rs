//! Object identifiers used by gitsign verification (evaluated at compile time).

use x509_cert::der::oid::ObjectIdentifier as Oid;

/// CMS content types (RFC 5652).
pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// CMS signed attributes (RFC 5652 §11).
pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");

/// Digest algorithms (NIST).
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

/// ECDSA signature algorithms (RFC 5758) and EC keys (RFC 5480).
pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");

/// X.509 extensions (RFC 5280).
pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
pub const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
pub const KP_CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");

/// Fulcio certificate extensions: the OIDC issuer, DER-encoded UTF8String (current) and raw bytes
/// (deprecated, still written).
pub const FULCIO_ISSUER_V2: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.8");
pub const FULCIO_ISSUER_V1: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.1.1");

/// gitsign's unauthenticated CMS attribute holding a serialized Rekor `TransparencyLogEntry` proto
/// (sigstore/rekor#1390, sigstore/gitsign#220).
pub const REKOR_TRANSPARENCY_LOG_ENTRY: Oid = Oid::new_unwrap("1.3.6.1.4.1.57264.3.1");

/// A readable name for an OID in messages.
pub fn name(oid: &Oid) -> String {
    let known = [
        (ID_DATA, "id-data"),
        (ID_SIGNED_DATA, "id-signedData"),
        (SHA256, "sha256"),
        (SHA384, "sha384"),
        (SHA512, "sha512"),
        (ECDSA_SHA256, "ecdsa-with-SHA256"),
        (ECDSA_SHA384, "ecdsa-with-SHA384"),
        (ECDSA_SHA512, "ecdsa-with-SHA512"),
        (EC_PUBLIC_KEY, "id-ecPublicKey"),
        (ED25519, "Ed25519"),
        (RSA_ENCRYPTION, "rsaEncryption"),
    ];
    known
        .iter()
        .find(|(k, _)| k == oid)
        .map_or_else(|| oid.to_string(), |(_, n)| format!("{n} ({oid})"))
}
