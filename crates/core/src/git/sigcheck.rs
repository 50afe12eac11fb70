//! What checking a commit's signature yields, shared by every signature kind (ssh, openpgp, gitsign), the
//! trust policy that dispatches to them and the verifier that walks history: the [`Reason`] a commit is not
//! trusted, a [`Failure`] (reason and message), one signature's [`SigCheck`], and the [`Span`] of time a
//! commit is judged over. Nothing here checks anything: it is the vocabulary below the checkers, so they do not
//! import each other.

use serde::Serialize;

/// Why a commit was not trusted. The names are stable: they appear in CLI output, conditions and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reason {
    /// The commit carries no signature.
    Unsigned,
    /// The commit object breaks the strict layout rules (duplicate or misplaced headers, bad identity…).
    MalformedCommit,
    /// More than one signature on the commit.
    MultipleSignatures,
    /// A signature git may know but this verifier does not accept (`-----BEGIN PGP MESSAGE-----`, …).
    UnknownSignatureFormat,
    /// A known signature kind the policy does not trust (no keys of that kind, or x509/gitsign).
    UntrustedSignatureKind,
    /// The armored signature cannot be decoded, or is of the wrong OpenPGP type.
    MalformedSignature,
    /// The SSH signature was made for another namespace than `git`.
    WrongNamespace,
    /// The key that made the signature is not in the policy.
    UnknownKey,
    /// The signature does not verify over the commit: the commit was altered after signing, or the
    /// signature was made over other bytes.
    BadSignature,
    /// The key's allowed_signers line restricts it to namespaces that exclude `git`.
    NamespaceNotAllowed,
    /// The key was not yet valid when the commit was made (SSH `valid-after`, OpenPGP key creation time).
    KeyNotYetValid,
    /// The key had expired (SSH `valid-before`, OpenPGP key expiry).
    KeyExpired,
    /// The OpenPGP key or subkey is revoked.
    KeyRevoked,
    /// The OpenPGP key is not a signing key, or has no valid binding.
    KeyCannotSign,
    /// The signer identity (SSH principal, OpenPGP user ID email) is not the committer email.
    SignerMismatch,
    /// The OpenPGP signature claims a creation time in the future.
    SignatureInFuture,
    /// The OpenPGP signature carries an expiry time that has passed.
    SignatureExpired,
    /// A hash or key algorithm this verifier does not accept.
    UnsupportedAlgorithm,
    /// The object is missing, unreadable, or not a commit.
    UnreadableObject,
    /// The commit object is over a bound on what is read before trust is decided (its size, see
    /// `crate::git::bounds`): it is refused unread.
    BoundExceeded,
    /// A gitsign signature made in online mode: no transparency-log entry is embedded, so it cannot be
    /// verified offline.
    OfflineUnverifiable,
    /// The gitsign signature's transparency-log entry does not prove it was logged: unknown log, bad
    /// inclusion promise, inclusion proof or checkpoint, or an entry for something else.
    TransparencyLogInvalid,
    /// The gitsign certificate does not chain to a trusted Fulcio CA valid at the logged time, or is not a
    /// Fulcio code-signing certificate.
    UntrustedCertificate,
    /// A valid gitsign signature by an identity (SAN and OIDC issuer) not in gitsignIdentities.
    UntrustedIdentity,
    /// `range` mode: the commit's committer time is earlier than one of its parents'. The committer date is
    /// chosen by whoever commits, and key validity is judged at it: a commit dated before the history it is
    /// built on is backdated (or made on a badly skewed clock).
    CommitBeforeParent,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsigned => "Unsigned",
            Reason::MalformedCommit => "MalformedCommit",
            Reason::MultipleSignatures => "MultipleSignatures",
            Reason::UnknownSignatureFormat => "UnknownSignatureFormat",
            Reason::UntrustedSignatureKind => "UntrustedSignatureKind",
            Reason::MalformedSignature => "MalformedSignature",
            Reason::WrongNamespace => "WrongNamespace",
            Reason::UnknownKey => "UnknownKey",
            Reason::BadSignature => "BadSignature",
            Reason::NamespaceNotAllowed => "NamespaceNotAllowed",
            Reason::KeyNotYetValid => "KeyNotYetValid",
            Reason::KeyExpired => "KeyExpired",
            Reason::KeyRevoked => "KeyRevoked",
            Reason::KeyCannotSign => "KeyCannotSign",
            Reason::SignerMismatch => "SignerMismatch",
            Reason::SignatureInFuture => "SignatureInFuture",
            Reason::SignatureExpired => "SignatureExpired",
            Reason::UnsupportedAlgorithm => "UnsupportedAlgorithm",
            Reason::UnreadableObject => "UnreadableObject",
            Reason::BoundExceeded => "BoundExceeded",
            Reason::OfflineUnverifiable => "OfflineUnverifiable",
            Reason::TransparencyLogInvalid => "TransparencyLogInvalid",
            Reason::UntrustedCertificate => "UntrustedCertificate",
            Reason::UntrustedIdentity => "UntrustedIdentity",
            Reason::CommitBeforeParent => "CommitBeforeParent",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection: the reason and a message naming the key, line or header involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The outcome of checking one signature against the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigCheck {
    pub signer: Option<String>,
    /// The OIDC issuer that vouched for the signer (gitsign only).
    pub issuer: Option<String>,
    pub fingerprint: Option<String>,
    pub failure: Option<Failure>,
}

impl SigCheck {
    pub fn ok(signer: String, fingerprint: String) -> Self {
        Self {
            signer: Some(signer),
            issuer: None,
            fingerprint: Some(fingerprint),
            failure: None,
        }
    }

    pub fn failed(fingerprint: Option<String>, failure: Failure) -> Self {
        Self {
            signer: None,
            issuer: None,
            fingerprint,
            failure: Some(failure),
        }
    }
}

/// The time span a commit is judged over: from its claimed (committer) time to the time the verifier first
/// saw it. `valid-after` must not be later than `from`, `valid-before` not earlier than `to`: a signer picks
/// `from` (the committer date) but not `to`. Offline, both are the committer time, as in git.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
}

impl From<i64> for Span {
    fn from(t: i64) -> Self {
        Self { from: t, to: t }
    }
}

/// Render seconds since the epoch as an RFC 3339 UTC time.
pub fn fmt_time(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("@{secs}"))
}
