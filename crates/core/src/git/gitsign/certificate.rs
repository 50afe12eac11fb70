//! The Fulcio leaf certificate: its validity at the logged time, its usage, its chain to a Fulcio CA
//! of the trusted root, and the identity (SAN + OIDC issuer) it binds.

use jiff::Timestamp;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage as X509KeyUsage, KeyUsages,
};

use super::trusted_root::{CertificateAuthority, TrustedRoot};
use super::{GitsignError, oids};

/// DER contents of the id-kp-codeSigning OID (1.3.6.1.5.5.7.3.3), as webpki wants it.
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// Certificate signature algorithms accepted along the chain (Fulcio CAs use ECDSA).
static CHAIN_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
];

fn time_of(t: x509_cert::time::Time) -> Timestamp {
    let d = t.to_unix_duration();
    // X.509 times are between 1950 and 9999, inside jiff's range; MAX is unreachable.
    Timestamp::from_second(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

/// The leaf must be valid at the integrated time the log signed, not "now" and not a time the
/// signer wrote into the signature.
pub(crate) fn check_validity_at(
    leaf: &Certificate,
    fingerprint: &str,
    time: Timestamp,
) -> Result<(), GitsignError> {
    let validity = &leaf.tbs_certificate.validity;
    let (not_before, not_after) = (time_of(validity.not_before), time_of(validity.not_after));
    if time < not_before || time > not_after {
        return Err(GitsignError::CertificateNotValidAtIntegratedTime {
            fingerprint: fingerprint.to_string(),
            not_before,
            not_after,
            time,
        });
    }
    Ok(())
}

/// A Fulcio signing certificate: not a CA, keyUsage (if present) allows digitalSignature, and
/// extKeyUsage includes codeSigning.
pub(crate) fn check_usage(leaf: &Certificate) -> Result<(), GitsignError> {
    let tbs = &leaf.tbs_certificate;
    let usage = |reason: String| GitsignError::CertificateUsage { reason };
    let ext_err = |oid, e: x509_cert::der::Error| GitsignError::CertificateExtension {
        oid,
        reason: e.to_string(),
    };
    if let Some((_, bc)) = tbs
        .get::<BasicConstraints>()
        .map_err(|e| ext_err(oids::BASIC_CONSTRAINTS.to_string(), e))?
        && bc.ca
    {
        return Err(usage("it is a CA certificate".into()));
    }
    if let Some((_, ku)) = tbs
        .get::<X509KeyUsage>()
        .map_err(|e| ext_err(oids::KEY_USAGE.to_string(), e))?
        && !ku.0.contains(KeyUsages::DigitalSignature)
    {
        return Err(usage("its keyUsage does not allow digitalSignature".into()));
    }
    match tbs
        .get::<ExtendedKeyUsage>()
        .map_err(|e| ext_err(oids::EXT_KEY_USAGE.to_string(), e))?
    {
        Some((_, eku)) if eku.0.contains(&oids::KP_CODE_SIGNING) => Ok(()),
        Some(_) => Err(usage("its extKeyUsage does not include codeSigning".into())),
        None => Err(usage(
            "it has no extKeyUsage (codeSigning is required)".into(),
        )),
    }
}

fn webpki_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => {
            "no certificate of the CA's chain issued it (unknown issuer)".into()
        }
        webpki::Error::InvalidSignatureForPublicKey => {
            "the issuer's signature on a certificate does not verify".into()
        }
        webpki::Error::CertExpired { .. } => {
            "a CA certificate of the chain had expired at the integrated time".into()
        }
        webpki::Error::CertNotValidYet { .. } => {
            "a CA certificate of the chain was not yet valid at the integrated time".into()
        }
        other => format!("{other:?}"),
    }
}

/// Check that the leaf chains, at `time`, to a Fulcio CA of the trusted root whose validity window
/// contains `time`. Only the CA chains of the trusted root are used: certificates the signer put
/// into the signature besides the leaf are not trusted as intermediates.
pub(crate) fn verify_chain<'r>(
    leaf_der: &[u8],
    root: &'r TrustedRoot,
    time: Timestamp,
) -> Result<&'r CertificateAuthority, GitsignError> {
    let leaf_der = CertificateDer::from(leaf_der);
    let leaf = EndEntityCert::try_from(&leaf_der).map_err(|e| GitsignError::ChainNotTrusted {
        reason: format!("the leaf certificate cannot be parsed for path validation: {e:?}"),
    })?;
    let seconds = u64::try_from(time.as_second()).map_err(|_| GitsignError::ChainNotTrusted {
        reason: format!("integrated time {time} is before 1970"),
    })?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));

    let mut first_error = None;
    let mut outside_window = None;
    for ca in root.certificate_authorities() {
        let result = leaf.verify_for_usage(
            CHAIN_ALGORITHMS,
            std::slice::from_ref(&ca.anchor),
            &ca.intermediates,
            at,
            KeyUsage::required_if_present(CODE_SIGNING),
            None,
            None,
        );
        match result {
            Ok(_) if ca.valid.contains(time) => return Ok(ca),
            Ok(_) => {
                outside_window.get_or_insert(ca);
            }
            Err(e) => {
                // Prefer a reason from a CA whose chain the leaf names as issuer.
                if first_error.is_none() || !matches!(e, webpki::Error::UnknownIssuer) {
                    first_error = Some(e);
                }
            }
        }
    }
    if let Some(ca) = outside_window {
        return Err(GitsignError::CertificateAuthorityNotValid {
            uri: ca.uri.clone(),
            window: ca.valid,
            time,
        });
    }
    Err(GitsignError::ChainNotTrusted {
        reason: first_error.map_or_else(
            || "the trusted root has no certificate authority".into(),
            |e| webpki_reason(&e),
        ),
    })
}

/// The identity a Fulcio certificate binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateIdentity {
    /// Email and URI subject alternative names, in certificate order, each with whether it is an email.
    pub subjects: Vec<(String, bool)>,
    pub issuer: String,
}

/// Read the SAN (email or URI) and the OIDC issuer (1.3.6.1.4.1.57264.1.8, falling back to the
/// deprecated 1.3.6.1.4.1.57264.1.1) of a Fulcio certificate.
pub(crate) fn identity(leaf: &Certificate) -> Result<CertificateIdentity, GitsignError> {
    let tbs = &leaf.tbs_certificate;
    let san = tbs
        .get::<SubjectAltName>()
        .map_err(|e| GitsignError::CertificateExtension {
            oid: oids::SUBJECT_ALT_NAME.to_string(),
            reason: e.to_string(),
        })?;
    let subjects: Vec<(String, bool)> = san
        .map(|(_, san)| san.0)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|name| match name {
            GeneralName::Rfc822Name(s) => Some((s.to_string(), true)),
            GeneralName::UniformResourceIdentifier(s) => Some((s.to_string(), false)),
            _ => None,
        })
        .collect();
    if subjects.is_empty() {
        return Err(GitsignError::MissingSubject);
    }

    let extensions = tbs.extensions.as_deref().unwrap_or_default();
    let find = |oid| {
        let mut found = extensions.iter().filter(move |e| e.extn_id == oid);
        match (found.next(), found.next()) {
            (Some(_), Some(_)) => Err(GitsignError::CertificateExtension {
                oid: oid.to_string(),
                reason: "it appears more than once".into(),
            }),
            (first, _) => Ok(first),
        }
    };
    let issuer = if let Some(ext) = find(oids::FULCIO_ISSUER_V2)? {
        Utf8StringRef::from_der(ext.extn_value.as_bytes())
            .map(|s| s.as_str().to_string())
            .map_err(|e| GitsignError::CertificateExtension {
                oid: oids::FULCIO_ISSUER_V2.to_string(),
                reason: format!("not a DER UTF8String: {e}"),
            })?
    } else if let Some(ext) = find(oids::FULCIO_ISSUER_V1)? {
        String::from_utf8(ext.extn_value.as_bytes().to_vec()).map_err(|_| {
            GitsignError::CertificateExtension {
                oid: oids::FULCIO_ISSUER_V1.to_string(),
                reason: "not UTF-8".into(),
            }
        })?
    } else {
        return Err(GitsignError::MissingIssuer);
    };
    if issuer.is_empty() {
        return Err(GitsignError::MissingIssuer);
    }
    Ok(CertificateIdentity { subjects, issuer })
}
