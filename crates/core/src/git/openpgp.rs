//! OpenPGP commit signatures (`-----BEGIN PGP SIGNATURE-----`, a detached signature over the commit
//! payload) checked against armored public keys, with rPGP.
//!
//! rPGP verifies cryptography; the certificate rules are ours and are evaluated once, when the keys are
//! loaded:
//! - only self-signatures that verify count; third-party certifications are ignored;
//! - a primary key with a valid key-revocation signature is revoked, and so is a subkey with a valid
//!   subkey-revocation signature (any reason: "superseded" and "retired" included);
//! - the newest valid self-signature (user ID certification or direct-key signature) gives the primary key's
//!   flags and expiry; the newest valid binding signature gives a subkey's, and a signing subkey needs a
//!   valid back-signature (primary key binding);
//! - a key signs only if its key flags say so (no flags means it does not sign).
//!
//! At verification, for the key that made the signature: it must not be revoked, must have been created
//! no later than the signature, must not be expired at the signature time nor now (gpg reports a signature
//! by a key expired now as EXPKEYSIG, which git does not accept), and must be a signing key. The signature
//! must be a binary-document signature (type 0x00, what git makes) with a creation time no more than
//! [`FUTURE_SKEW_SECS`] in the future, not expired, and made with a hash other than MD5, SHA-1 or RIPEMD-160.

use std::collections::HashMap;
use std::io::Cursor;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{self, SignatureType};
use pgp::types::{KeyDetails, Tag};

use super::sigcheck::{Failure, Reason, SigCheck, fmt_time};

/// How far in the future a signature's creation time may be before it is refused.
pub const FUTURE_SKEW_SECS: i64 = 300;

/// An armored key that could not be loaded. `index` is the position in `openpgpKeys`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenPgpKeyError {
    #[error("openpgpKeys[{index}]: cannot parse the armored public key: {message}")]
    Parse { index: usize, message: String },
    #[error("openpgpKeys[{index}]: the armored block holds no public key")]
    Empty { index: usize },
    #[error(
        "openpgpKeys[{index}]: {what} {fingerprint} is already in openpgpKeys[{first}]: a key is listed \
         once (with two exports, which one is judged would depend on their order; merge them into one \
         export: `gpg --armor --export {fingerprint}` after importing both)"
    )]
    Duplicate {
        index: usize,
        first: usize,
        what: &'static str,
        fingerprint: String,
    },
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    Primary(packet::PublicKey),
    Sub(packet::PublicSubkey),
}

/// A primary key or subkey, with the properties its certificate gives it.
#[derive(Debug, Clone)]
struct Component {
    material: KeyMaterial,
    fingerprint: String,
    created: i64,
    /// When the key expires, if it does.
    expires: Option<i64>,
    can_sign: bool,
    /// Why the key is revoked, if it is.
    revoked: Option<String>,
    /// Why the key cannot be used at all (no valid binding), if so.
    unusable: Option<String>,
}

/// One certificate (transferable public key).
#[derive(Debug, Clone)]
struct Cert {
    /// Position in `openpgpKeys`.
    source: usize,
    primary_fingerprint: String,
    /// User IDs with a valid, unrevoked self-certification: (text, email).
    user_ids: Vec<(String, Option<String>)>,
    /// Index 0 is the primary key.
    components: Vec<Component>,
}

/// The OpenPGP keys of a trust policy, parsed and evaluated once.
#[derive(Debug, Clone, Default)]
pub struct OpenPgpKeyring {
    certs: Vec<Cert>,
    /// Upper-case hex fingerprint → (cert, component).
    by_fingerprint: HashMap<String, Vec<(usize, usize)>>,
    /// Upper-case hex key id → (cert, component).
    by_key_id: HashMap<String, Vec<(usize, usize)>>,
}

impl OpenPgpKeyring {
    /// Load armored public keys; each entry may hold several keys.
    pub fn load<S: AsRef<str>>(armored: &[S]) -> Result<Self, OpenPgpKeyError> {
        let mut ring = Self::default();
        for (index, text) in armored.iter().enumerate() {
            let keys = SignedPublicKey::from_armor_many(Cursor::new(text.as_ref().as_bytes()))
                .map_err(|e| OpenPgpKeyError::Parse {
                    index,
                    message: pgp_error(&e),
                })?
                .0;
            let mut count = 0;
            for key in keys {
                let key = key.map_err(|e| OpenPgpKeyError::Parse {
                    index,
                    message: pgp_error(&e),
                })?;
                ring.add(index, &key)?;
                count += 1;
            }
            if count == 0 {
                return Err(OpenPgpKeyError::Empty { index });
            }
        }
        Ok(ring)
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Primary key fingerprints, in load order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|c| c.primary_fingerprint.clone())
            .collect()
    }

    /// The component of the first certificate that gpg would sign with at `now`: the newest usable signing
    /// subkey, else the primary key when it may sign. `None` when the certificate is revoked, expired or
    /// has no usable signing key. Returns the upper-case hex fingerprint.
    pub fn signing_fingerprint(&self, now: i64) -> Option<String> {
        let cert = self.certs.first()?;
        let usable = |c: &Component| {
            c.revoked.is_none()
                && c.unusable.is_none()
                && c.created <= now
                && c.expires.is_none_or(|e| e > now)
        };
        let primary = cert.components.first()?;
        if !usable(primary) {
            return None;
        }
        cert.components[1..]
            .iter()
            .filter(|c| c.can_sign && usable(c))
            .max_by_key(|c| c.created)
            .or_else(|| primary.can_sign.then_some(primary))
            .map(|c| c.fingerprint.clone())
    }

    /// The user IDs (text) of the first certificate with a valid self-certification, primary first.
    pub fn user_ids(&self) -> Vec<String> {
        self.certs
            .first()
            .map(|c| c.user_ids.iter().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// Add one certificate. One key, one entry: a primary key or subkey already in the ring (a second
    /// export of the same key, stale or revoked, or a subkey also bound to another primary) is an error
    /// naming both entries.
    fn add(&mut self, source: usize, key: &SignedPublicKey) -> Result<(), OpenPgpKeyError> {
        let cert = evaluate(source, key);
        let ci = self.certs.len();
        let mut seen = std::collections::HashSet::new();
        for (k, comp) in cert.components.iter().enumerate() {
            let first = match self.by_fingerprint.get(&comp.fingerprint) {
                Some(at) => at.first().map(|(c, _)| self.certs[*c].source),
                None => (!seen.insert(&comp.fingerprint)).then_some(source),
            };
            if let Some(first) = first {
                return Err(OpenPgpKeyError::Duplicate {
                    index: source,
                    first,
                    what: if k == 0 { "primary key" } else { "subkey" },
                    fingerprint: comp.fingerprint.clone(),
                });
            }
        }
        for (k, comp) in cert.components.iter().enumerate() {
            self.by_fingerprint
                .entry(comp.fingerprint.clone())
                .or_default()
                .push((ci, k));
            let key_id = match &comp.material {
                KeyMaterial::Primary(p) => p.legacy_key_id(),
                KeyMaterial::Sub(s) => s.legacy_key_id(),
            };
            self.by_key_id
                .entry(hex::encode_upper(key_id))
                .or_default()
                .push((ci, k));
        }
        self.certs.push(cert);
        Ok(())
    }

    /// Verify an armored detached signature over `payload` for a commit by `committer_email`, at `now`
    /// (seconds since the epoch).
    pub fn verify(
        &self,
        armored: &[u8],
        payload: &[u8],
        committer_email: &str,
        now: i64,
        require_committer_match: bool,
    ) -> SigCheck {
        let sig = match decode_signature(armored) {
            Ok(sig) => sig,
            Err(failure) => return SigCheck::failed(None, failure),
        };
        let (candidates, issuer) = self.candidates(&sig);
        if candidates.is_empty() {
            return SigCheck::failed(
                issuer.clone(),
                Failure::new(
                    Reason::UnknownKey,
                    format!(
                        "key {} is not in openpgpKeys",
                        issuer.as_deref().unwrap_or("(no issuer in the signature)")
                    ),
                ),
            );
        }
        if let Err(failure) = refuse_weak_hash(&sig) {
            return SigCheck::failed(issuer, failure);
        }
        let (ci, k) = match self.verifying_key(&sig, payload, &candidates, issuer.as_deref()) {
            Ok(found) => found,
            Err(failure) => return SigCheck::failed(issuer, failure),
        };
        let cert = &self.certs[ci];
        let fp = Some(cert.components[k].fingerprint.clone());
        let judged = signature_time(&sig, now)
            .and_then(|created| check_key(cert, k, created, now))
            .and_then(|()| signer(cert, committer_email, require_committer_match));
        match judged {
            Ok(signer) => SigCheck {
                signer: Some(signer),
                issuer: None,
                fingerprint: fp,
                failure: None,
            },
            Err(failure) => SigCheck::failed(fp, failure),
        }
    }

    /// The keys that may have made `sig`: by issuer fingerprint, else by issuer key id; with the issuer the
    /// signature names (its first fingerprint, else its first key id), for messages.
    fn candidates(&self, sig: &packet::Signature) -> (Vec<(usize, usize)>, Option<String>) {
        let mut candidates: Vec<(usize, usize)> = Vec::new();
        for fp in sig.issuer_fingerprint() {
            if let Some(c) = self.by_fingerprint.get(&hex::encode_upper(fp.as_bytes())) {
                candidates.extend(c);
            }
        }
        if candidates.is_empty() {
            for id in sig.issuer_key_id() {
                if let Some(c) = self.by_key_id.get(&hex::encode_upper(id)) {
                    candidates.extend(c);
                }
            }
        }
        candidates.dedup();
        let issuer = sig
            .issuer_fingerprint()
            .first()
            .map(|f| hex::encode_upper(f.as_bytes()))
            .or_else(|| sig.issuer_key_id().first().map(hex::encode_upper));
        (candidates, issuer)
    }

    /// The cryptographic check: the first candidate over whose key `sig` verifies over `payload`.
    fn verifying_key(
        &self,
        sig: &packet::Signature,
        payload: &[u8],
        candidates: &[(usize, usize)],
        issuer: Option<&str>,
    ) -> Result<(usize, usize), Failure> {
        let mut last_err = String::new();
        for &(ci, k) in candidates {
            let comp = &self.certs[ci].components[k];
            let res = match &comp.material {
                KeyMaterial::Primary(p) => sig.verify(p, payload),
                KeyMaterial::Sub(s) => sig.verify(s, payload),
            };
            match res {
                Ok(()) => return Ok((ci, k)),
                Err(e) => last_err = pgp_error(&e),
            }
        }
        Err(Failure::new(
            Reason::BadSignature,
            format!(
                "the OpenPGP signature by {} does not verify over the commit: {last_err}",
                issuer.unwrap_or("?")
            ),
        ))
    }
}

/// Decode the armored block: exactly one signature, a binary-document one (what git makes).
fn decode_signature(armored: &[u8]) -> Result<packet::Signature, Failure> {
    let malformed = |msg: String| Failure::new(Reason::MalformedSignature, msg);
    let undecodable = |e: &pgp::errors::Error| {
        malformed(format!(
            "cannot decode the OpenPGP signature: {}",
            pgp_error(e)
        ))
    };
    let (iter, _) =
        DetachedSignature::from_armor_many(Cursor::new(armored)).map_err(|e| undecodable(&e))?;
    let mut sigs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| undecodable(&e))?;
    if sigs.len() > 1 {
        return Err(Failure::new(
            Reason::MultipleSignatures,
            format!(
                "the OpenPGP block holds {} signatures; exactly one is accepted",
                sigs.len()
            ),
        ));
    }
    let Some(sig) = sigs.pop() else {
        return Err(malformed(
            "the OpenPGP block holds no signature".to_string(),
        ));
    };
    let sig = sig.signature;
    match sig.typ() {
        Some(SignatureType::Binary) => Ok(sig),
        other => Err(malformed(format!(
            "signature type {other:?} is not accepted; git signs commits with binary-document signatures (0x00)"
        ))),
    }
}

/// Refuse a signature made with no hash, MD5, SHA-1 or RIPEMD-160.
fn refuse_weak_hash(sig: &packet::Signature) -> Result<(), Failure> {
    if let Some(hash) = sig.hash_alg()
        && matches!(
            hash,
            HashAlgorithm::None
                | HashAlgorithm::Md5
                | HashAlgorithm::Sha1
                | HashAlgorithm::Ripemd160
        )
    {
        return Err(Failure::new(
            Reason::UnsupportedAlgorithm,
            format!("the signature uses the weak hash {hash}"),
        ));
    }
    Ok(())
}

/// The signature's creation time, once it is known to be neither too far in the future nor expired at
/// `now`.
fn signature_time(sig: &packet::Signature, now: i64) -> Result<i64, Failure> {
    let Some(created) = sig.created().map(|t| i64::from(t.as_secs())) else {
        return Err(Failure::new(
            Reason::MalformedSignature,
            "the signature has no creation time",
        ));
    };
    if created > now + FUTURE_SKEW_SECS {
        return Err(Failure::new(
            Reason::SignatureInFuture,
            format!(
                "the signature claims to be made at {}, in the future",
                fmt_time(created)
            ),
        ));
    }
    if let Some(exp) = sig.signature_expiration_time()
        && exp.as_secs() > 0
    {
        let until = created + i64::from(exp.as_secs());
        if until <= now {
            return Err(Failure::new(
                Reason::SignatureExpired,
                format!("the signature expired at {}", fmt_time(until)),
            ));
        }
    }
    Ok(created)
}

/// The key rules at the signature's creation time `created` and at `now`: the primary key first, then the
/// signing component `k` (when a subkey), each neither revoked, unusable, newer than the signature nor
/// expired; then the component must be a signing key.
fn check_key(cert: &Cert, k: usize, created: i64, now: i64) -> Result<(), Failure> {
    let comp = &cert.components[k];
    let mut chain = vec![&cert.components[0]];
    if k != 0 {
        chain.push(comp);
    }
    for c in chain {
        let what = if std::ptr::eq(c, &cert.components[0]) {
            format!(
                "primary key {} (openpgpKeys[{}])",
                c.fingerprint, cert.source
            )
        } else {
            format!("subkey {} (openpgpKeys[{}])", c.fingerprint, cert.source)
        };
        check_component(c, &what, created, now)?;
    }
    if !comp.can_sign {
        return Err(Failure::new(
            Reason::KeyCannotSign,
            format!(
                "key {} is not a signing key (its key flags lack \"sign\")",
                comp.fingerprint
            ),
        ));
    }
    Ok(())
}

/// One component of the chain (`what` names it in messages): not revoked, usable, created no later than the
/// signature, not expired at the signature time nor at `now`.
fn check_component(c: &Component, what: &str, created: i64, now: i64) -> Result<(), Failure> {
    if let Some(why) = &c.revoked {
        return Err(Failure::new(
            Reason::KeyRevoked,
            format!("{what} is revoked: {why}"),
        ));
    }
    if let Some(why) = &c.unusable {
        return Err(Failure::new(
            Reason::KeyCannotSign,
            format!("{what} is not usable: {why}"),
        ));
    }
    if c.created > created {
        return Err(Failure::new(
            Reason::KeyNotYetValid,
            format!(
                "{what} was created at {}, after the signature ({})",
                fmt_time(c.created),
                fmt_time(created)
            ),
        ));
    }
    if let Some(exp) = c.expires {
        if exp <= created {
            return Err(Failure::new(
                Reason::KeyExpired,
                format!(
                    "{what} expired at {}, before the signature ({})",
                    fmt_time(exp),
                    fmt_time(created)
                ),
            ));
        }
        if exp <= now {
            return Err(Failure::new(
                Reason::KeyExpired,
                format!("{what} expired at {}", fmt_time(exp)),
            ));
        }
    }
    Ok(())
}

/// Who signed: the user ID of `cert` whose email is the committer's (case-insensitively). Without one, a
/// failure when `require_committer_match`, else the first user ID, else the primary fingerprint.
fn signer(
    cert: &Cert,
    committer_email: &str,
    require_committer_match: bool,
) -> Result<String, Failure> {
    let wanted = committer_email.to_ascii_lowercase();
    let matching = cert.user_ids.iter().find(|(_, email)| {
        email
            .as_deref()
            .is_some_and(|e| e.to_ascii_lowercase() == wanted)
    });
    match (matching, require_committer_match) {
        (Some((uid, _)), _) => Ok(uid.clone()),
        (None, true) => {
            let uids: Vec<&str> = cert.user_ids.iter().map(|(u, _)| u.as_str()).collect();
            Err(Failure::new(
                Reason::SignerMismatch,
                format!(
                    "committer email {committer_email:?} is not a user ID of key {} (openpgpKeys[{}]; user IDs: {uids:?})",
                    cert.primary_fingerprint, cert.source
                ),
            ))
        }
        (None, false) => Ok(cert
            .user_ids
            .first()
            .map(|(u, _)| u.clone())
            .unwrap_or_else(|| cert.primary_fingerprint.clone())),
    }
}

/// An rPGP error as text for a verdict or policy message. rPGP formats `InvalidPacketContent` with the inner
/// error's `Debug`, which holds a captured backtrace when `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` is set: the
/// message of a crafted signature then carried the operator's stack (into verdicts, notes and events), and
/// resolving it cost a few hundred MiB (found by fuzz/fuzz_targets/openpgp_signature). The inner error is
/// shown by its `Display` instead.
fn pgp_error(e: &pgp::errors::Error) -> String {
    match e {
        pgp::errors::Error::InvalidPacketContent { source } => {
            format!("invalid packet content: {}", pgp_error(source))
        }
        e => e.to_string(),
    }
}

fn secs(t: pgp::types::Timestamp) -> i64 {
    i64::from(t.as_secs())
}

fn is_user_certification(t: Option<SignatureType>) -> bool {
    matches!(
        t,
        Some(
            SignatureType::CertGeneric
                | SignatureType::CertPersona
                | SignatureType::CertCasual
                | SignatureType::CertPositive
        )
    )
}

/// The email of a user ID: the part in angle brackets, or the whole ID when it is a bare address.
fn email_of(uid: &str) -> Option<String> {
    if let (Some(lt), Some(gt)) = (uid.rfind('<'), uid.rfind('>'))
        && lt < gt
    {
        return Some(uid[lt + 1..gt].to_string());
    }
    let t = uid.trim();
    (t.contains('@') && !t.contains(char::is_whitespace)).then(|| t.to_string())
}

/// Evaluate a certificate's self-signatures once.
fn evaluate(source: usize, key: &SignedPublicKey) -> Cert {
    let primary = &key.primary_key;
    let primary_fp = hex::encode_upper(primary.fingerprint().as_bytes());

    // Key revocation.
    let revoked = key
        .details
        .revocation_signatures
        .iter()
        .find(|s| s.verify_key(primary).is_ok())
        .map(revocation_text);

    // Valid self-signatures: direct-key signatures and user ID certifications.
    let mut self_sigs: Vec<&packet::Signature> = key
        .details
        .direct_signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::Key) && s.verify_key(primary).is_ok())
        .collect();
    let mut user_ids = Vec::new();
    for user in &key.details.users {
        let certs: Vec<&packet::Signature> = user
            .signatures
            .iter()
            .filter(|s| {
                is_user_certification(s.typ())
                    && s.verify_certification(primary, Tag::UserId, &user.id)
                        .is_ok()
            })
            .collect();
        let Some(newest) = certs.iter().max_by_key(|s| s.created().map(secs)) else {
            continue;
        };
        let revoked_at = user
            .signatures
            .iter()
            .filter(|s| {
                s.typ() == Some(SignatureType::CertRevocation)
                    && s.verify_certification(primary, Tag::UserId, &user.id)
                        .is_ok()
            })
            .filter_map(|s| s.created().map(secs))
            .max();
        let cert_at = newest.created().map(secs).unwrap_or(0);
        if revoked_at.is_some_and(|r| r >= cert_at) {
            continue;
        }
        self_sigs.push(newest);
        let text = String::from_utf8_lossy(user.id.id()).into_owned();
        let email = email_of(&text);
        user_ids.push((text, email));
    }
    // The primary user ID first.
    if let Some(pos) = key.details.users.iter().position(|u| u.is_primary()) {
        let text = String::from_utf8_lossy(key.details.users[pos].id.id()).into_owned();
        if let Some(i) = user_ids.iter().position(|(t, _)| *t == text) {
            let p = user_ids.remove(i);
            user_ids.insert(0, p);
        }
    }

    let primary_created = secs(primary.created_at());
    let newest_self = self_sigs
        .iter()
        .max_by_key(|s| s.created().map(secs))
        .copied();
    let primary_comp = match newest_self {
        Some(sig) => Component {
            material: KeyMaterial::Primary(primary.clone()),
            fingerprint: primary_fp.clone(),
            created: primary_created,
            expires: expiry(primary_created, sig),
            can_sign: sig.key_flags().sign(),
            revoked: revoked.clone(),
            unusable: None,
        },
        None => Component {
            material: KeyMaterial::Primary(primary.clone()),
            fingerprint: primary_fp.clone(),
            created: primary_created,
            expires: None,
            can_sign: false,
            revoked: revoked.clone(),
            unusable: Some("no valid self-signature".to_string()),
        },
    };

    let mut components = vec![primary_comp];
    for sub in &key.public_subkeys {
        let fp = hex::encode_upper(sub.key.fingerprint().as_bytes());
        let created = secs(sub.key.created_at());
        let sub_revoked = sub
            .signatures
            .iter()
            .find(|s| {
                s.typ() == Some(SignatureType::SubkeyRevocation)
                    && s.verify_subkey_binding(primary, &sub.key).is_ok()
            })
            .map(revocation_text);
        let binding = sub
            .signatures
            .iter()
            .filter(|s| {
                s.typ() == Some(SignatureType::SubkeyBinding)
                    && s.verify_subkey_binding(primary, &sub.key).is_ok()
            })
            .max_by_key(|s| s.created().map(secs));
        let comp = match binding {
            None => Component {
                material: KeyMaterial::Sub(sub.key.clone()),
                fingerprint: fp,
                created,
                expires: None,
                can_sign: false,
                revoked: sub_revoked,
                unusable: Some("no valid subkey binding signature".to_string()),
            },
            Some(b) => {
                let can_sign = b.key_flags().sign();
                let backsig_ok = b
                    .embedded_signature()
                    .is_some_and(|bs| bs.verify_primary_key_binding(&sub.key, primary).is_ok());
                Component {
                    material: KeyMaterial::Sub(sub.key.clone()),
                    fingerprint: fp,
                    created,
                    expires: expiry(created, b),
                    can_sign,
                    revoked: sub_revoked,
                    unusable: (can_sign && !backsig_ok).then(|| {
                        "signing subkey without a valid back-signature (primary key binding)"
                            .to_string()
                    }),
                }
            }
        };
        components.push(comp);
    }

    Cert {
        source,
        primary_fingerprint: primary_fp,
        user_ids,
        components,
    }
}

fn expiry(created: i64, sig: &packet::Signature) -> Option<i64> {
    sig.key_expiration_time()
        .filter(|d| d.as_secs() > 0)
        .map(|d| created + i64::from(d.as_secs()))
}

fn revocation_text(sig: &packet::Signature) -> String {
    let when = sig
        .created()
        .map(|t| fmt_time(secs(t)))
        .unwrap_or_else(|| "unknown time".to_string());
    let code = sig
        .revocation_reason_code()
        .map(|c| format!("{c:?}"))
        .unwrap_or_else(|| "no reason given".to_string());
    format!("revoked at {when} ({code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_of_user_ids() {
        assert_eq!(
            email_of("Alice <alice@example.com>").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            email_of("alice@example.com").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(email_of("Alice (no mail)"), None);
        assert_eq!(
            email_of("A <x> B <b@example.com>").as_deref(),
            Some("b@example.com")
        );
    }

    #[test]
    fn garbage_keys_are_errors_naming_the_entry() {
        let err = OpenPgpKeyring::load(&["not a key"]).unwrap_err();
        assert!(err.to_string().starts_with("openpgpKeys[0]:"), "{err}");
        let err = OpenPgpKeyring::load(&[
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
        ])
        .unwrap_err();
        assert!(err.to_string().starts_with("openpgpKeys[0]:"), "{err}");
    }

    #[test]
    fn malformed_signature_messages_hold_no_debug_output() {
        // Found by fuzz/fuzz_targets/openpgp_signature: a signature packet with an inconsistent subpacket
        // length, which rPGP reports as `InvalidPacketContent` (formatted with the inner error's Debug,
        // backtrace included).
        let sig = include_bytes!(
            "../../../../fuzz/regressions/openpgp_signature/invalid-packet-content.asc"
        );
        let check = OpenPgpKeyring::default().verify(sig, b"payload", "a@example.com", 0, true);
        let failure = check.failure.expect("a malformed signature fails");
        assert_eq!(failure.reason, Reason::MalformedSignature);
        let message = failure.message;
        assert!(
            message.contains("Inconsistent subpacket length"),
            "{message}"
        );
        assert!(!message.contains("backtrace"), "{message}");
        assert!(!message.contains("Message {"), "{message}");
    }
}
