//! The gitsign signature itself: a PEM `SIGNED MESSAGE` holding a detached CMS SignedData (RFC 5652)
//! with one signer, its Fulcio leaf certificate, and (offline mode) the Rekor log entry as an
//! unauthenticated attribute.
//!
//! Bytes that are hashed or signed (the signed attributes, the certificates) are taken from the
//! signature exactly as encoded: a typed decode sorts SET OF members, and re-encoding could change
//! them. The typed `cms` structures are used only to read values.

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::asn1::{ObjectIdentifier, OctetStringRef};
use x509_cert::der::{
    AnyRef, Decode as _, Encode as _, Reader as _, SliceReader, Tag, TagNumber, Tagged as _,
};
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use super::{GitsignError, oids};

const BEGIN: &str = "-----BEGIN SIGNED MESSAGE-----";
const END: &str = "-----END SIGNED MESSAGE-----";

/// What verification needs from a parsed gitsign signature.
#[derive(Debug)]
pub(crate) struct SignedMessage {
    /// The signer's (leaf) certificate, DER exactly as embedded.
    pub leaf_der: Vec<u8>,
    pub leaf: Certificate,
    pub digest_algorithm: ObjectIdentifier,
    /// The messageDigest signed attribute.
    pub message_digest: Vec<u8>,
    /// The signed attributes as the DER `SET OF Attribute` that was signed (RFC 5652 §5.4).
    pub signed_attrs_der: Vec<u8>,
    pub signature_algorithm: ObjectIdentifier,
    pub signature: Vec<u8>,
    /// The serialized Rekor `TransparencyLogEntry` (offline mode), if embedded.
    pub log_entry: Option<Vec<u8>>,
}

/// Remove the PEM armor and decode the base64 body.
pub(crate) fn decode_armor(text: &[u8]) -> Result<Vec<u8>, GitsignError> {
    use crate::pem::PemError;
    let armor = |reason: &str| GitsignError::Armor {
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(text).map_err(|_| armor("the signature is not UTF-8 text"))?;
    crate::pem::decode(text, "SIGNED MESSAGE").map_err(|e| match e {
        PemError::NoBegin => armor(&format!("it does not start with {BEGIN}")),
        PemError::Header => armor("PEM headers are not allowed"),
        PemError::NoEnd => armor(&format!("{END} is missing")),
        PemError::TrailingText => armor(&format!("there is text after {END}")),
        PemError::Base64(e) => armor(&format!("invalid base64: {e}")),
    })
}

fn cms_err(what: &'static str) -> impl Fn(x509_cert::der::Error) -> GitsignError {
    move |e| GitsignError::Cms {
        what,
        reason: e.to_string(),
    }
}

/// The members of a constructed DER value, in their encoded order.
fn members(value: &[u8]) -> Result<Vec<AnyRef<'_>>, x509_cert::der::Error> {
    let mut reader = SliceReader::new(value)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(reader.decode::<AnyRef<'_>>()?);
    }
    Ok(out)
}

const fn context(number: TagNumber) -> Tag {
    Tag::ContextSpecific {
        constructed: true,
        number,
    }
}

/// Parse the CMS SignedData (DER) of a gitsign signature.
pub(crate) fn parse(der: &[u8]) -> Result<SignedMessage, GitsignError> {
    let info = ContentInfo::from_der(der).map_err(cms_err("ContentInfo"))?;
    if info.content_type != oids::ID_SIGNED_DATA {
        return Err(GitsignError::NotSignedData {
            found: oids::name(&info.content_type),
        });
    }
    let signed: SignedData = info.content.decode_as().map_err(cms_err("SignedData"))?;
    if signed.encap_content_info.econtent.is_some() {
        return Err(GitsignError::NotDetached);
    }
    if signed.encap_content_info.econtent_type != oids::ID_DATA {
        return Err(GitsignError::Cms {
            what: "encapContentInfo",
            reason: format!(
                "content type is {}, expected id-data",
                oids::name(&signed.encap_content_info.econtent_type)
            ),
        });
    }

    // Raw walk of SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
    // [0] certificates OPTIONAL, [1] crls OPTIONAL, signerInfos }.
    let sd_members = members(info.content.value()).map_err(cms_err("SignedData"))?;
    let mut raw_certs = Vec::new();
    for member in &sd_members {
        if member.tag() == context(TagNumber::N0) {
            for cert in members(member.value()).map_err(cms_err("certificates"))? {
                if cert.tag() == Tag::Sequence {
                    raw_certs.push(cert.to_der().map_err(cms_err("certificates"))?);
                }
            }
        }
    }
    let signer_infos = sd_members.last().ok_or_else(|| GitsignError::Cms {
        what: "SignedData",
        reason: "empty".into(),
    })?;
    let raw_signers = members(signer_infos.value()).map_err(cms_err("signerInfos"))?;
    if raw_signers.len() != 1 || signed.signer_infos.0.len() != 1 {
        return Err(GitsignError::SignerCount {
            count: raw_signers.len(),
        });
    }
    let raw_signer = raw_signers[0];
    let signer: SignerInfo = raw_signer.decode_as().map_err(cms_err("SignerInfo"))?;

    // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, [0] signedAttrs OPTIONAL, … }
    // (by position: a subjectKeyIdentifier sid is also tagged [0], primitive)
    let signed_attrs_der = members(raw_signer.value())
        .map_err(cms_err("SignerInfo"))?
        .get(3)
        .filter(|m| m.tag() == context(TagNumber::N0))
        .map(|m| {
            AnyRef::new(Tag::Set, m.value())
                .and_then(|set| set.to_der())
                .map_err(cms_err("signedAttrs"))
        })
        .transpose()?
        .ok_or(GitsignError::NoSignedAttributes)?;
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or(GitsignError::NoSignedAttributes)?;

    let content_type: ObjectIdentifier =
        single_attribute(attrs, oids::CONTENT_TYPE, "contentType")?
            .decode_as()
            .map_err(|e| GitsignError::SignedAttribute {
                attribute: "contentType",
                problem: format!("is not an object identifier: {e}"),
            })?;
    if content_type != signed.encap_content_info.econtent_type {
        return Err(GitsignError::SignedAttribute {
            attribute: "contentType",
            problem: format!(
                "is {}, not the encapsulated content type",
                oids::name(&content_type)
            ),
        });
    }
    let message_digest = single_attribute(attrs, oids::MESSAGE_DIGEST, "messageDigest")?
        .decode_as::<OctetStringRef<'_>>()
        .map_err(|e| GitsignError::SignedAttribute {
            attribute: "messageDigest",
            problem: format!("is not an OCTET STRING: {e}"),
        })?
        .as_bytes()
        .to_vec();

    let log_entry = match &signer.unsigned_attrs {
        None => None,
        Some(unsigned) => {
            let mut found = unsigned
                .iter()
                .filter(|a| a.oid == oids::REKOR_TRANSPARENCY_LOG_ENTRY);
            match (found.next(), found.next()) {
                (None, _) => None,
                (Some(_), Some(_)) => {
                    return Err(GitsignError::LogEntryMalformed {
                        reason: "the attribute appears more than once".into(),
                    });
                }
                (Some(attr), None) => {
                    let value = match attr.values.as_slice() {
                        [value] => value,
                        _ => {
                            return Err(GitsignError::LogEntryMalformed {
                                reason: format!(
                                    "the attribute has {} values, expected 1",
                                    attr.values.len()
                                ),
                            });
                        }
                    };
                    let bytes = value.decode_as::<OctetStringRef<'_>>().map_err(|e| {
                        GitsignError::LogEntryMalformed {
                            reason: format!("the attribute value is not an OCTET STRING: {e}"),
                        }
                    })?;
                    Some(bytes.as_bytes().to_vec())
                }
            }
        }
    };

    let (leaf, leaf_der) = find_signer_certificate(&signed, &raw_certs, &signer.sid)?;
    Ok(SignedMessage {
        leaf_der,
        leaf,
        digest_algorithm: signer.digest_alg.oid,
        message_digest,
        signed_attrs_der,
        signature_algorithm: signer.signature_algorithm.oid,
        signature: signer.signature.as_bytes().to_vec(),
        log_entry,
    })
}

/// The one value of the one signed attribute `oid` (RFC 5652 §11: each appears once, single-valued).
fn single_attribute<'a>(
    attrs: &'a x509_cert::attr::Attributes,
    oid: ObjectIdentifier,
    attribute: &'static str,
) -> Result<&'a x509_cert::der::Any, GitsignError> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let attr = match (found.next(), found.next()) {
        (Some(a), None) => a,
        (None, _) => {
            return Err(GitsignError::SignedAttribute {
                attribute,
                problem: "is missing".into(),
            });
        }
        (Some(_), Some(_)) => {
            return Err(GitsignError::SignedAttribute {
                attribute,
                problem: "appears more than once".into(),
            });
        }
    };
    match attr.values.as_slice() {
        [value] => Ok(value),
        values => Err(GitsignError::SignedAttribute {
            attribute,
            problem: format!("has {} values, expected 1", values.len()),
        }),
    }
}

fn find_signer_certificate(
    signed: &SignedData,
    raw_certs: &[Vec<u8>],
    sid: &SignerIdentifier,
) -> Result<(Certificate, Vec<u8>), GitsignError> {
    let typed: Vec<&Certificate> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(cert) => Some(cert),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let matches = |cert: &Certificate| match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            cert.tbs_certificate.issuer == ias.issuer
                && cert.tbs_certificate.serial_number == ias.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => cert
            .tbs_certificate
            .get::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, found)| found == *ski),
    };
    let describe = || match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            format!("issuer {}, serial {}", ias.issuer, ias.serial_number)
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("subject key identifier {}", hex::encode(ski.0.as_bytes()))
        }
    };
    let cert = typed
        .into_iter()
        .find(|c| matches(c))
        .ok_or_else(|| GitsignError::SignerCertificateMissing { sid: describe() })?;
    // The embedded bytes of that certificate (same certificate, encoded as the signer encoded it).
    let raw = raw_certs
        .iter()
        .find(|raw| Certificate::from_der(raw).is_ok_and(|c| &c == cert))
        .cloned()
        .ok_or_else(|| GitsignError::SignerCertificateMissing { sid: describe() })?;
    Ok((cert.clone(), raw))
}

/// Check the messageDigest signed attribute against the digest of the commit payload.
pub(crate) fn check_message_digest(
    msg: &SignedMessage,
    payload: &[u8],
) -> Result<(), GitsignError> {
    let (algorithm, computed) = match msg.digest_algorithm {
        oid if oid == oids::SHA256 => ("sha256", Sha256::digest(payload).to_vec()),
        oid if oid == oids::SHA384 => ("sha384", Sha384::digest(payload).to_vec()),
        oid if oid == oids::SHA512 => ("sha512", Sha512::digest(payload).to_vec()),
        oid => {
            return Err(GitsignError::UnsupportedDigest {
                oid: oids::name(&oid),
            });
        }
    };
    if computed != msg.message_digest {
        return Err(GitsignError::MessageDigestMismatch {
            algorithm,
            signed: hex::encode(&msg.message_digest),
            computed: hex::encode(computed),
        });
    }
    Ok(())
}

/// Check the signature over the DER signed attributes with the leaf certificate's key.
pub(crate) fn check_signature(msg: &SignedMessage) -> Result<(), GitsignError> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;

    let prehash = match msg.signature_algorithm {
        oid if oid == oids::ECDSA_SHA256 => Sha256::digest(&msg.signed_attrs_der).to_vec(),
        oid if oid == oids::ECDSA_SHA384 => Sha384::digest(&msg.signed_attrs_der).to_vec(),
        oid if oid == oids::ECDSA_SHA512 => Sha512::digest(&msg.signed_attrs_der).to_vec(),
        oid => {
            return Err(GitsignError::UnsupportedSignatureAlgorithm {
                oid: oids::name(&oid),
            });
        }
    };
    let bad = |reason: &str| GitsignError::BadSignature {
        reason: reason.to_string(),
    };
    let spki = &msg.leaf.tbs_certificate.subject_public_key_info;
    let unsupported = || GitsignError::UnsupportedKey {
        algorithm: oids::name(&spki.algorithm.oid),
    };
    if spki.algorithm.oid != oids::EC_PUBLIC_KEY {
        return Err(unsupported());
    }
    let curve: ObjectIdentifier = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as().ok())
        .ok_or_else(unsupported)?;
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| bad("the certificate's public key is malformed"))?;
    if curve == oids::SECP256R1 {
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map_err(|_| bad("the certificate's P-256 public key is invalid"))?;
        let sig = p256::ecdsa::Signature::from_der(&msg.signature)
            .map_err(|_| bad("the signature is not a DER ECDSA signature"))?;
        key.verify_prehash(&prehash, &sig)
            .map_err(|_| bad("ECDSA P-256 verification failed"))
    } else if curve == oids::SECP384R1 {
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map_err(|_| bad("the certificate's P-384 public key is invalid"))?;
        let sig = p384::ecdsa::Signature::from_der(&msg.signature)
            .map_err(|_| bad("the signature is not a DER ECDSA signature"))?;
        key.verify_prehash(&prehash, &sig)
            .map_err(|_| bad("ECDSA P-384 verification failed"))
    } else {
        Err(GitsignError::UnsupportedKey {
            algorithm: format!("EC key on curve {curve}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armor_is_strict() {
        let ok = format!("{BEGIN}\nAAEC\nAw==\n{END}\n");
        assert_eq!(decode_armor(ok.as_bytes()).unwrap(), vec![0, 1, 2, 3]);
        let cases = [
            (
                "-----BEGIN PGP SIGNATURE-----\nAAAA\n-----END PGP SIGNATURE-----\n",
                "does not start",
            ),
            ("-----BEGIN SIGNED MESSAGE-----\nAAAA\n", "is missing"),
            (
                "-----BEGIN SIGNED MESSAGE-----\nVersion: 1\nAAAA\n-----END SIGNED MESSAGE-----\n",
                "headers",
            ),
            (
                "-----BEGIN SIGNED MESSAGE-----\nAA$A\n-----END SIGNED MESSAGE-----\n",
                "invalid base64",
            ),
            (
                "-----BEGIN SIGNED MESSAGE-----\nAAAA\n-----END SIGNED MESSAGE-----\nmore\n",
                "text after",
            ),
        ];
        for (input, want) in cases {
            let err = decode_armor(input.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn non_cms_is_rejected() {
        let err = parse(&[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap_err();
        assert!(
            matches!(
                err,
                GitsignError::Cms {
                    what: "ContentInfo",
                    ..
                }
            ),
            "{err}"
        );
    }
}
