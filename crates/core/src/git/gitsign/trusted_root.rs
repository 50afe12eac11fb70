//! The Sigstore trusted root (`trusted_root.json`, media type
//! `application/vnd.dev.sigstore.trustedroot+json`): the Fulcio certificate authorities and the Rekor
//! transparency-log keys a gitsign signature is checked against, each with its validity window.
//!
//! Parsing is pure (the caller reads the file). Only the parts gitsign verification uses are kept:
//! `certificateAuthorities` and `tlogs`; `ctlogs` and `timestampAuthorities` are accepted and ignored.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::oids;

const MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.trustedroot";

/// Why a trusted root document was rejected. Every message names the field (JSON path) at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrustedRootError {
    #[error("trusted root is not a valid trusted_root.json document: at {path}: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "trusted root mediaType {found:?} is not a Sigstore trusted root \
         (expected {MEDIA_TYPE_PREFIX}+json;version=…)"
    )]
    MediaType { found: String },
    #[error("trusted root {field}: invalid base64: {source}")]
    Base64 {
        field: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("trusted root {field}: invalid RFC 3339 time {value:?}: {reason}")]
    Time {
        field: String,
        value: String,
        reason: String,
    },
    #[error("trusted root {field}: validity window ends ({end}) before it starts ({start})")]
    EmptyWindow {
        field: String,
        start: Timestamp,
        end: Timestamp,
    },
    #[error("trusted root {field}: not a DER X.509 certificate: {reason}")]
    Certificate { field: String, reason: String },
    #[error("trusted root {field}: certificate cannot be a trust anchor: {reason}")]
    TrustAnchor { field: String, reason: String },
    #[error("trusted root {field}: certChain.certificates is empty")]
    EmptyChain { field: String },
    #[error("trusted root {field}: publicKey.rawBytes is missing")]
    MissingPublicKey { field: String },
    #[error("trusted root {field}: not a DER SubjectPublicKeyInfo: {reason}")]
    PublicKey { field: String, reason: String },
    #[error(
        "trusted root lists no {what}: it cannot verify any gitsign signature \
         (use the Sigstore trusted_root.json that matches the Fulcio and Rekor instances the signers use)"
    )]
    Missing { what: &'static str },
}

/// A time range `[start, end]` (both inclusive, either open). The JSON `validFor` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidityWindow {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

impl ValidityWindow {
    /// Whether `time` lies inside the window.
    pub fn contains(&self, time: Timestamp) -> bool {
        self.start.is_none_or(|s| s <= time) && self.end.is_none_or(|e| time <= e)
    }
}

impl fmt::Display for ValidityWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.start, self.end) {
            (Some(s), Some(e)) => write!(f, "from {s} to {e}"),
            (Some(s), None) => write!(f, "from {s}"),
            (None, Some(e)) => write!(f, "until {e}"),
            (None, None) => write!(f, "at any time"),
        }
    }
}

/// A transparency-log verification key, as far as gitsign verification can use it.
#[derive(Debug, Clone)]
pub(crate) enum LogKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    /// A key this verifier cannot use (for example the Ed25519 keys of Rekor v2 logs); an entry that
    /// names such a log fails with a clear reason.
    Unsupported(String),
}

/// One Rekor transparency log of the trusted root.
#[derive(Debug, Clone)]
pub struct TransparencyLog {
    /// `baseUrl`, used in messages.
    pub base_url: String,
    /// SHA-256 of the key's DER SubjectPublicKeyInfo: the Rekor v1 log id that entries, inclusion
    /// promises and checkpoint key hints refer to. Computed here, never taken from the document.
    pub log_id: [u8; 32],
    /// When the log key may be trusted (`publicKey.validFor`).
    pub valid: ValidityWindow,
    pub(crate) key: LogKey,
}

/// One Fulcio certificate authority: its chain (issuing CA first, root last) and validity window.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// `uri` of the CA, used in messages.
    pub uri: String,
    /// When certificates issued by this CA may be trusted (`validFor`).
    pub valid: ValidityWindow,
    pub(crate) anchor: TrustAnchor<'static>,
    /// The chain without its last (root) certificate.
    pub(crate) intermediates: Vec<CertificateDer<'static>>,
}

/// A parsed Sigstore trusted root: the Fulcio CAs and Rekor logs gitsign signatures are checked against.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub(crate) logs: Vec<TransparencyLog>,
    pub(crate) authorities: Vec<CertificateAuthority>,
}

impl TrustedRoot {
    /// Parse a `trusted_root.json` document (text).
    pub fn from_json(text: &str) -> Result<Self, TrustedRootError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let raw: RawRoot =
            serde_path_to_error::deserialize(de).map_err(|e| TrustedRootError::Json {
                path: e.path().to_string(),
                source: e.into_inner(),
            })?;
        if !raw.media_type.starts_with(MEDIA_TYPE_PREFIX) {
            return Err(TrustedRootError::MediaType {
                found: raw.media_type,
            });
        }
        let logs = raw
            .tlogs
            .into_iter()
            .enumerate()
            .map(|(i, log)| parse_log(&format!("tlogs[{i}]"), log))
            .collect::<Result<Vec<_>, _>>()?;
        let authorities = raw
            .certificate_authorities
            .into_iter()
            .enumerate()
            .map(|(i, ca)| parse_authority(&format!("certificateAuthorities[{i}]"), ca))
            .collect::<Result<Vec<_>, _>>()?;
        if authorities.is_empty() {
            return Err(TrustedRootError::Missing {
                what: "certificateAuthorities (Fulcio CAs)",
            });
        }
        if logs.is_empty() {
            return Err(TrustedRootError::Missing {
                what: "tlogs (Rekor transparency logs)",
            });
        }
        Ok(Self { logs, authorities })
    }

    /// The Rekor logs, in document order.
    pub fn transparency_logs(&self) -> &[TransparencyLog] {
        &self.logs
    }

    /// The Fulcio certificate authorities, in document order.
    pub fn certificate_authorities(&self) -> &[CertificateAuthority] {
        &self.authorities
    }

    pub(crate) fn log_by_id(&self, log_id: &[u8]) -> Option<&TransparencyLog> {
        self.logs.iter().find(|l| l.log_id.as_slice() == log_id)
    }
}

fn parse_log(field: &str, raw: RawLog) -> Result<TransparencyLog, TrustedRootError> {
    let key_field = format!("{field}.publicKey.rawBytes");
    let der = match raw.public_key.raw_bytes {
        Some(b64) => decode_b64(&key_field, &b64)?,
        None => {
            return Err(TrustedRootError::MissingPublicKey {
                field: field.into(),
            });
        }
    };
    let key = parse_log_key(&der).map_err(|reason| TrustedRootError::PublicKey {
        field: key_field,
        reason,
    })?;
    let valid = parse_window(
        &format!("{field}.publicKey.validFor"),
        raw.public_key.valid_for,
    )?;
    Ok(TransparencyLog {
        base_url: raw.base_url,
        log_id: Sha256::digest(&der).into(),
        valid,
        key,
    })
}

/// Parse a DER SubjectPublicKeyInfo into a log key. Unknown algorithms are kept as `Unsupported`.
fn parse_log_key(der: &[u8]) -> Result<LogKey, String> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| e.to_string())?;
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "the public key BIT STRING has unused bits".to_string())?;
    if spki.algorithm.oid == oids::EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters_oid()
            .map_err(|e| format!("EC key without a named curve: {e}"))?;
        if curve == oids::SECP256R1 {
            return p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(LogKey::P256)
                .map_err(|_| "invalid P-256 point".to_string());
        }
        if curve == oids::SECP384R1 {
            return p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(LogKey::P384)
                .map_err(|_| "invalid P-384 point".to_string());
        }
        return Ok(LogKey::Unsupported(format!("EC key on curve {curve}")));
    }
    Ok(LogKey::Unsupported(oids::name(&spki.algorithm.oid)))
}

fn parse_authority(
    field: &str,
    raw: RawAuthority,
) -> Result<CertificateAuthority, TrustedRootError> {
    let mut chain = Vec::with_capacity(raw.cert_chain.certificates.len());
    for (i, cert) in raw.cert_chain.certificates.into_iter().enumerate() {
        let cert_field = format!("{field}.certChain.certificates[{i}].rawBytes");
        let der = decode_b64(&cert_field, &cert.raw_bytes)?;
        Certificate::from_der(&der).map_err(|e| TrustedRootError::Certificate {
            field: cert_field.clone(),
            reason: e.to_string(),
        })?;
        chain.push(CertificateDer::from(der));
    }
    let Some(root) = chain.pop() else {
        return Err(TrustedRootError::EmptyChain {
            field: field.into(),
        });
    };
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map(|a| a.to_owned())
        .map_err(|e| TrustedRootError::TrustAnchor {
            field: format!("{field}.certChain.certificates[{}]", chain.len()),
            reason: format!("{e:?}"),
        })?;
    Ok(CertificateAuthority {
        uri: raw.uri,
        valid: parse_window(&format!("{field}.validFor"), raw.valid_for)?,
        anchor,
        intermediates: chain,
    })
}

fn parse_window(field: &str, raw: Option<RawWindow>) -> Result<ValidityWindow, TrustedRootError> {
    let raw = raw.unwrap_or_default();
    let parse =
        |name: &str, value: Option<String>| -> Result<Option<Timestamp>, TrustedRootError> {
            value
                .map(|v| {
                    v.parse::<Timestamp>().map_err(|e| TrustedRootError::Time {
                        field: format!("{field}.{name}"),
                        value: v.clone(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
    let window = ValidityWindow {
        start: parse("start", raw.start)?,
        end: parse("end", raw.end)?,
    };
    if let (Some(start), Some(end)) = (window.start, window.end)
        && end < start
    {
        return Err(TrustedRootError::EmptyWindow {
            field: field.into(),
            start,
            end,
        });
    }
    Ok(window)
}

fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, TrustedRootError> {
    STANDARD
        .decode(text.trim())
        .map_err(|source| TrustedRootError::Base64 {
            field: field.into(),
            source,
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawPublicKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    raw_bytes: Option<String>,
    valid_for: Option<RawWindow>,
}

#[derive(Deserialize, Default)]
struct RawWindow {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    valid_for: Option<RawWindow>,
}

#[derive(Deserialize)]
struct RawChain {
    #[serde(default)]
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_GOOD: &str =
        include_str!("../../../../../tests/data/gitsign/sigstore-public-good-trusted_root.json");

    #[test]
    fn parses_public_good_root() {
        let root = TrustedRoot::from_json(PUBLIC_GOOD).unwrap();
        assert_eq!(root.certificate_authorities().len(), 2);
        assert_eq!(root.transparency_logs().len(), 2);
        let rekor = &root.transparency_logs()[0];
        assert_eq!(rekor.base_url, "https://rekor.sigstore.dev");
        // The document's logId.keyId for this Rekor v1 log is the SHA-256 of the key.
        assert_eq!(
            STANDARD.encode(rekor.log_id),
            "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="
        );
        assert!(matches!(rekor.key, LogKey::P256(_)));
        // The Rekor v2 log has an Ed25519 key: kept, but marked unusable.
        assert!(matches!(
            root.transparency_logs()[1].key,
            LogKey::Unsupported(_)
        ));
        let second = &root.certificate_authorities()[1];
        assert_eq!(second.intermediates.len(), 1);
        assert_eq!(second.valid.end, None);
        let first = &root.certificate_authorities()[0];
        assert!(first.intermediates.is_empty());
        assert_eq!(
            first.valid.end,
            Some("2022-12-31T23:59:59.999Z".parse().unwrap())
        );
    }

    #[test]
    fn window_bounds_are_inclusive() {
        let w = ValidityWindow {
            start: Some("2023-01-01T00:00:00Z".parse().unwrap()),
            end: Some("2023-01-02T00:00:00Z".parse().unwrap()),
        };
        assert!(w.contains("2023-01-01T00:00:00Z".parse().unwrap()));
        assert!(w.contains("2023-01-02T00:00:00Z".parse().unwrap()));
        assert!(!w.contains("2022-12-31T23:59:59Z".parse().unwrap()));
        assert!(!w.contains("2023-01-02T00:00:01Z".parse().unwrap()));
        let open = ValidityWindow {
            start: None,
            end: None,
        };
        assert!(open.contains(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn rejects_bad_documents_naming_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("not json", "{", "not a valid trusted_root.json"),
            (
                "media type",
                r#"{"mediaType":"application/json"}"#,
                "is not a Sigstore trusted root",
            ),
            (
                "no CAs",
                r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[]}"#,
                "no certificateAuthorities",
            ),
            (
                "bad base64",
                r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                   "certificateAuthorities":[{"certChain":{"certificates":[{"rawBytes":"%%%"}]}}]}"#,
                "certificateAuthorities[0].certChain.certificates[0].rawBytes: invalid base64",
            ),
            (
                "not a certificate",
                r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                   "certificateAuthorities":[{"certChain":{"certificates":[{"rawBytes":"AAAA"}]}}]}"#,
                "certificateAuthorities[0].certChain.certificates[0].rawBytes: not a DER X.509",
            ),
            (
                "empty chain",
                r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                   "certificateAuthorities":[{"certChain":{"certificates":[]}}]}"#,
                "certificateAuthorities[0]: certChain.certificates is empty",
            ),
            (
                "wrong type",
                r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":{}}"#,
                "at tlogs",
            ),
        ];
        for (name, doc, want) in cases {
            let err = TrustedRoot::from_json(doc).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn rejects_bad_times_and_keys() {
        let mut doc: serde_json::Value = serde_json::from_str(PUBLIC_GOOD).unwrap();
        doc["tlogs"][0]["publicKey"]["validFor"]["start"] = "yesterday".into();
        let err = TrustedRoot::from_json(&doc.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tlogs[0].publicKey.validFor.start"), "{err}");

        let mut doc: serde_json::Value = serde_json::from_str(PUBLIC_GOOD).unwrap();
        doc["certificateAuthorities"][0]["validFor"]["end"] = "2020-01-01T00:00:00Z".into();
        let err = TrustedRoot::from_json(&doc.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ends"), "{err}");

        let mut doc: serde_json::Value = serde_json::from_str(PUBLIC_GOOD).unwrap();
        doc["tlogs"][0]["publicKey"]["rawBytes"] = "AAAA".into();
        let err = TrustedRoot::from_json(&doc.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tlogs[0].publicKey.rawBytes: not a DER"),
            "{err}"
        );
    }
}
