//! gitsign (Sigstore keyless) commit signatures, verified offline.
//!
//! A gitsign signature is a PEM `SIGNED MESSAGE`: a detached CMS SignedData whose signer holds a
//! short-lived Fulcio certificate bound to an OIDC identity. In gitsign's offline mode
//! (`gitsign.rekorMode=offline`) the Rekor transparency-log entry for the signature is embedded as an
//! unauthenticated attribute, so the signature can be verified without any network access against
//! a Sigstore trusted root.
//!
//! [`verify`] is pure: bytes in, verdict out. It checks, in this order:
//! 1. the CMS structure, the messageDigest signed attribute against the commit payload (the commit
//!    object without its `gpgsig` header), and the ECDSA signature over the DER signed attributes
//!    with the leaf certificate's key;
//! 2. the embedded Rekor entry: present (else the signature cannot be verified offline), its body is
//!    the hashedrekord of *this* signature and certificate, its signed inclusion promise verifies
//!    with the Rekor key of the trusted root (log id = SHA-256 of the key) valid at the integrated
//!    time, and, when the entry carries one, its Merkle inclusion proof reaches a root that a
//!    checkpoint signed by the same key commits to;
//! 3. the leaf certificate was valid at the integrated time the log signed (never "now", never the
//!    signing time the signer wrote), is a code-signing certificate, and chains at that time to a
//!    Fulcio CA of the trusted root whose validity window contains that time;
//! 4. the certificate's SAN (email or URI) and OIDC issuer match a `gitsignIdentities` entry.
//!
//! The chain is judged at the integrated time, which only step 2 establishes: that is why the log
//! is checked before the chain.

mod certificate;
mod identity;
mod oids;
mod signature;
mod tlog;
mod trusted_root;

use jiff::Timestamp;
use sha2::{Digest as _, Sha256};

pub use identity::{GitsignIdentity, IdentityError, SubjectMatcher};
pub use trusted_root::{
    CertificateAuthority, TransparencyLog, TrustedRoot, TrustedRootError, ValidityWindow,
};

/// A gitsign signature that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitsignVerified {
    /// The certificate's SAN (email or URI) that matched the policy.
    pub subject: String,
    /// Whether `subject` is an email address (else a URI, e.g. a CI workflow identity).
    pub subject_is_email: bool,
    /// The OIDC issuer from the certificate.
    pub issuer: String,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub cert_fingerprint: String,
    /// When Rekor integrated the signature (signed by the log in the inclusion promise).
    pub integrated_time: Timestamp,
    /// The entry's index in the log.
    pub log_index: u64,
    /// `baseUrl` of the Rekor log of the trusted root that logged it.
    pub log_url: String,
    /// `uri` of the Fulcio CA of the trusted root the certificate chains to.
    pub certificate_authority: String,
    /// Whether the entry carried a Merkle inclusion proof (and so it and its checkpoint were checked).
    pub inclusion_proof: bool,
}

/// Why a gitsign signature was rejected. Each variant is one failed check; the message says which
/// and why (docs/gitsign.md explains what to do about each).
#[derive(Debug, thiserror::Error)]
pub enum GitsignError {
    #[error("gitsign signature: not a PEM SIGNED MESSAGE: {reason}")]
    Armor { reason: String },
    #[error("gitsign signature: malformed CMS {what}: {reason}")]
    Cms { what: &'static str, reason: String },
    #[error("gitsign signature: CMS content type is {found}, not SignedData")]
    NotSignedData { found: String },
    #[error("gitsign signature: it embeds the signed content; a git signature must be detached")]
    NotDetached,
    #[error("gitsign signature: it has {count} signers; exactly one is required")]
    SignerCount { count: usize },
    #[error("gitsign signature: the signer's certificate ({sid}) is not included in the signature")]
    SignerCertificateMissing { sid: String },
    #[error(
        "gitsign signature: it has no signed attributes (the messageDigest attribute is required)"
    )]
    NoSignedAttributes,
    #[error("gitsign signature: signed attribute {attribute} {problem}")]
    SignedAttribute {
        attribute: &'static str,
        problem: String,
    },
    #[error("gitsign signature: unsupported digest algorithm {oid}")]
    UnsupportedDigest { oid: String },
    #[error(
        "gitsign signature: the signed messageDigest ({signed}) is not the {algorithm} of the commit \
         ({computed}): the commit was changed after it was signed"
    )]
    MessageDigestMismatch {
        algorithm: &'static str,
        signed: String,
        computed: String,
    },
    #[error(
        "gitsign signature: unsupported signature algorithm {oid} (ECDSA with SHA-2 is required)"
    )]
    UnsupportedSignatureAlgorithm { oid: String },
    #[error(
        "gitsign signature: the certificate key is {algorithm}; only ECDSA P-256 and P-384 are supported"
    )]
    UnsupportedKey { algorithm: String },
    #[error(
        "gitsign signature: the signature over the signed attributes does not verify with the certificate's key: {reason}"
    )]
    BadSignature { reason: String },
    #[error(
        "gitsign signature has no embedded Rekor log entry (it was made in gitsign's online mode): it \
         cannot be verified offline; sign with `git config gitsign.rekorMode offline`"
    )]
    OfflineUnverifiable,
    #[error("Rekor log entry (attribute 1.3.6.1.4.1.57264.3.1) is malformed: {reason}")]
    LogEntryMalformed { reason: String },
    #[error(
        "Rekor log entry is of kind {kind:?} version {version:?}; only hashedrekord 0.0.1 is supported"
    )]
    UnsupportedLogEntry { kind: String, version: String },
    #[error("Rekor log entry body is not the hashedrekord of this signature and certificate")]
    LogEntryBodyMismatch,
    #[error(
        "Rekor log entry names log id {log_id}, which is not a transparency log of the trusted root"
    )]
    UnknownLog { log_id: String },
    #[error(
        "transparency log {url}: its key ({algorithm}) is not supported; Rekor v1 ECDSA P-256/P-384 keys are"
    )]
    UnsupportedLogKey { url: String, algorithm: String },
    #[error(
        "Rekor log entry has no signed inclusion promise: its integrated time is not signed by the log, \
         so the short-lived certificate cannot be judged offline"
    )]
    NoInclusionPromise,
    #[error(
        "Rekor signed inclusion promise does not verify with the key of {url}: the log entry (integrated \
         time, index, log id) or the signature was altered"
    )]
    InclusionPromiseInvalid { url: String },
    #[error(
        "transparency log {url}: its key is trusted {window}, not at the entry's integrated time {time}"
    )]
    LogKeyNotValid {
        url: String,
        window: ValidityWindow,
        time: Timestamp,
    },
    #[error("Rekor inclusion proof is invalid: {reason}")]
    InclusionProofInvalid { reason: String },
    #[error("Rekor inclusion proof has no checkpoint, so its root hash is not signed by the log")]
    CheckpointMissing,
    #[error("Rekor checkpoint is malformed: {reason}")]
    CheckpointMalformed { reason: String },
    #[error("Rekor checkpoint ({origin}) has no valid signature by the key of {url}")]
    CheckpointSignatureInvalid { url: String, origin: String },
    #[error("Rekor checkpoint does not match the inclusion proof: {what}")]
    CheckpointMismatch { what: String },
    #[error(
        "certificate {fingerprint} was not valid at the integrated time {time} (valid from {not_before} \
         to {not_after})"
    )]
    CertificateNotValidAtIntegratedTime {
        fingerprint: String,
        not_before: Timestamp,
        not_after: Timestamp,
        time: Timestamp,
    },
    #[error("certificate is not a code-signing certificate: {reason}")]
    CertificateUsage { reason: String },
    #[error("certificate extension {oid} is malformed: {reason}")]
    CertificateExtension { oid: String, reason: String },
    #[error("certificate does not chain to a Fulcio CA of the trusted root: {reason}")]
    ChainNotTrusted { reason: String },
    #[error(
        "certificate chains to Fulcio CA {uri}, which is trusted {window}, not at the integrated time {time}"
    )]
    CertificateAuthorityNotValid {
        uri: String,
        window: ValidityWindow,
        time: Timestamp,
    },
    #[error(
        "certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.8 or 1.3.6.1.4.1.57264.1.1)"
    )]
    MissingIssuer,
    #[error("certificate has no email or URI subject alternative name")]
    MissingSubject,
    #[error(
        "identity {subject} (issuer {issuer}) is not allowed by any gitsignIdentities entry of the trust policy"
    )]
    IdentityNotTrusted { subject: String, issuer: String },
}

/// Verify a gitsign signature over a commit payload, offline.
///
/// `signature_pem` is the `gpgsig` header value (the `-----BEGIN SIGNED MESSAGE-----` block, with
/// git's continuation spaces removed); `payload` is the commit object without its `gpgsig` header.
pub fn verify(
    signature_pem: &[u8],
    payload: &[u8],
    root: &TrustedRoot,
    identities: &[GitsignIdentity],
) -> Result<GitsignVerified, GitsignError> {
    // 1. The CMS signature over the commit.
    let der = signature::decode_armor(signature_pem)?;
    let msg = signature::parse(&der)?;
    signature::check_message_digest(&msg, payload)?;
    signature::check_signature(&msg)?;
    let cert_fingerprint = hex::encode(Sha256::digest(&msg.leaf_der));

    // 2. The transparency-log entry of this signature and certificate.
    let entry_bytes = msg
        .log_entry
        .as_deref()
        .ok_or(GitsignError::OfflineUnverifiable)?;
    let entry = tlog::decode_entry(entry_bytes)?;
    let body = tlog::hashedrekord_body(&msg.signed_attrs_der, &msg.signature, &msg.leaf_der);
    let logged = tlog::verify_entry(&entry, &body, root)?;

    // 3. The certificate, judged at the logged time.
    certificate::check_validity_at(&msg.leaf, &cert_fingerprint, logged.integrated_time)?;
    certificate::check_usage(&msg.leaf)?;
    let ca = certificate::verify_chain(&msg.leaf_der, root, logged.integrated_time)?;

    // 4. The identity, against the policy.
    let id = certificate::identity(&msg.leaf)?;
    let (subject, subject_is_email) = id
        .subjects
        .iter()
        .find(|(s, _)| {
            identities
                .iter()
                .any(|allowed| allowed.matches(&id.issuer, s))
        })
        .ok_or_else(|| GitsignError::IdentityNotTrusted {
            subject: id
                .subjects
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            issuer: id.issuer.clone(),
        })?;

    Ok(GitsignVerified {
        subject: subject.clone(),
        subject_is_email: *subject_is_email,
        issuer: id.issuer,
        cert_fingerprint,
        integrated_time: logged.integrated_time,
        log_index: logged.log_index,
        log_url: logged.log_url,
        certificate_authority: ca.uri.clone(),
        inclusion_proof: logged.inclusion_proof,
    })
}

/// The Rekor log-entry decoders on their own, for the fuzz targets (fuzz/): decode a serialized
/// `TransparencyLogEntry` and check it against `root` for the body it embeds, as [`verify`] does; then,
/// whatever that check says, compute the root its inclusion proof leads to and parse its checkpoint (which
/// [`verify`] only reaches after the inclusion promise verified). Returns the decoding error, if any.
#[doc(hidden)]
pub fn decode_log_entry(bytes: &[u8], root: &TrustedRoot) -> Result<(), GitsignError> {
    let entry = tlog::decode_entry(bytes)?;
    let body = entry.canonicalized_body.clone().unwrap_or_default();
    let _ = tlog::verify_entry(&entry, &body, root);
    if let Some(proof) = &entry.inclusion_proof {
        let _ = tlog::root_from_inclusion_proof(
            proof.log_index,
            proof.tree_size,
            tlog::leaf_hash(&body),
            &proof.hashes,
        );
        if let Some(checkpoint) = &proof.checkpoint {
            let _ = tlog::parse_checkpoint(checkpoint);
        }
    }
    Ok(())
}
