//! Signing commits with the operator's own key, in process (no `ssh-keygen` or `gpg` at run time):
//! SSH signatures (SSHSIG, namespace `git`, SHA-512) with ssh-key from an OpenSSH private key file, OpenPGP
//! detached signatures with rPGP from an armored secret key file. The key type is detected from the file.
//!
//! A signed commit is what `git commit -S` writes: the signature over the commit object without its
//! signature header, stored in the `gpgsig` header (`gpgsig-sha256` in SHA-256 repositories). So
//! `git verify-commit`, Flux's verification and [`super::verify`] all check it.
//!
//! Key material never reaches a message: errors name the file and what is wrong, `Debug` shows the kind
//! and fingerprint only.

use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, DetachedSignature, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, Password};
use ssh_key::{HashAlg, LineEnding, PrivateKey};

use super::commit::signature_headers;
use super::openpgp::OpenPgpKeyring;
use super::policy::{PolicyError, SignatureKind, TrustPolicy};

/// Largest key file read, in bytes.
const MAX_KEY_BYTES: u64 = 1 << 20;

/// A signing key that cannot be used. Messages name the file (or "the signing key") and the problem, never
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("signing key {path}: cannot read: {message}")]
    Read { path: PathBuf, message: String },
    #[error("signing key {origin}: {message}")]
    Key { origin: String, message: String },
    #[error("signing with {kind} key {fingerprint} failed: {message}")]
    Sign {
        kind: &'static str,
        fingerprint: String,
        message: String,
    },
    #[error("cannot encode the commit to sign: {0}")]
    Encode(String),
    #[error("the trust policy for the signing key: {0}")]
    Policy(#[from] PolicyError),
}

enum Material {
    Ssh(Box<PrivateKey>),
    /// The secret key and the component that signs: 0 the primary key, n the n-th secret subkey.
    OpenPgp {
        key: Box<SignedSecretKey>,
        component: usize,
    },
}

/// The operator's own signing key.
pub struct SigningKey {
    material: Material,
    /// `SHA256:…` (SSH) or the upper-case hex fingerprint of the signing (sub)key (OpenPGP).
    fingerprint: String,
    /// The public key: an OpenSSH public key line, or an armored OpenPGP public key.
    public: String,
    /// The OpenPGP primary user ID, when there is one.
    user_id: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kind", &self.kind().as_str())
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Read a key file: an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`) or an armored
    /// OpenPGP secret key (`-----BEGIN PGP PRIVATE KEY BLOCK-----`), without a passphrase.
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let read_err = |message: String| SignError::Read {
            path: path.to_path_buf(),
            message,
        };
        // A regular file of bounded size only: a FIFO would block the reader (super::bounded).
        let text = super::bounded::read_to_string(path, MAX_KEY_BYTES)
            .map_err(|e| read_err(e.to_string()))?;
        Self::from_text(&text, &path.display().to_string())
    }

    /// Parse a key from its text; `origin` names it in errors (a path, or a Secret key).
    pub fn from_text(text: &str, origin: &str) -> Result<Self, SignError> {
        let key_err = |message: String| SignError::Key {
            origin: origin.to_string(),
            message,
        };
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let key = PrivateKey::from_openssh(text.trim())
                .map_err(|e| key_err(format!("not a valid OpenSSH private key: {e}")))?;
            if key.is_encrypted() {
                return Err(key_err(
                    "the OpenSSH private key is protected by a passphrase; give an unencrypted key \
                     (e.g. from a mounted Secret)"
                        .into(),
                ));
            }
            let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
            let public = key
                .public_key()
                .to_openssh()
                .map_err(|e| key_err(format!("cannot encode the public key: {e}")))?;
            Ok(Self {
                material: Material::Ssh(Box::new(key)),
                fingerprint,
                public,
                user_id: None,
            })
        } else if text.contains("-----BEGIN PGP PRIVATE KEY BLOCK-----") {
            let (key, _) = SignedSecretKey::from_string(text)
                .map_err(|e| key_err(format!("not a valid armored OpenPGP secret key: {e}")))?;
            let public = key
                .to_public_key()
                .to_armored_string(Default::default())
                .map_err(|e| key_err(format!("cannot encode the public key: {e}")))?;
            let ring = OpenPgpKeyring::load(&[&public])
                .map_err(|e| key_err(format!("cannot evaluate the key: {e}")))?;
            let fingerprint = ring
                .signing_fingerprint(super::verify::now())
                .ok_or_else(|| {
                    key_err(
                        "the OpenPGP key has no usable signing key (revoked, expired, or no key \
                         flagged for signing)"
                            .into(),
                    )
                })?;
            let fpr_of = |fp: pgp::types::Fingerprint| hex::encode_upper(fp.as_bytes());
            let component = if fpr_of(key.primary_key.fingerprint()) == fingerprint {
                0
            } else {
                key.secret_subkeys
                    .iter()
                    .position(|s| fpr_of(s.key.fingerprint()) == fingerprint)
                    .map(|i| i + 1)
                    .ok_or_else(|| {
                        key_err(format!(
                            "the signing subkey {fingerprint} has no secret part in the file"
                        ))
                    })?
            };
            let user_id = ring.user_ids().into_iter().next();
            Ok(Self {
                material: Material::OpenPgp {
                    key: Box::new(key),
                    component,
                },
                fingerprint,
                public,
                user_id,
            })
        } else {
            Err(key_err(
                "not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----) or an armored \
                 OpenPGP secret key (-----BEGIN PGP PRIVATE KEY BLOCK-----)"
                    .into(),
            ))
        }
    }

    pub fn kind(&self) -> SignatureKind {
        match self.material {
            Material::Ssh(_) => SignatureKind::Ssh,
            Material::OpenPgp { .. } => SignatureKind::OpenPgp,
        }
    }

    /// `SHA256:…` for SSH; the upper-case hex fingerprint of the signing (sub)key for OpenPGP.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public key: an OpenSSH public key line, or an armored OpenPGP public key (to give to Flux or
    /// to `git`'s allowed signers).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The OpenPGP primary user ID (e.g. `Hydrator <hydrate@example.com>`), when the key has one.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// An armored detached signature over `payload` (no trailing newline), as git stores it.
    pub fn sign(&self, payload: &[u8]) -> Result<String, SignError> {
        let fail = |message: String| SignError::Sign {
            kind: self.kind().as_str(),
            fingerprint: self.fingerprint.clone(),
            message,
        };
        let armored = match &self.material {
            Material::Ssh(key) => key
                .sign(super::ssh::GIT_NAMESPACE, HashAlg::Sha512, payload)
                .and_then(|sig| sig.to_pem(LineEnding::LF))
                .map_err(|e| fail(e.to_string()))?,
            Material::OpenPgp { key, component } => {
                let rng = rand::thread_rng();
                let pw = Password::empty();
                let sig = match component {
                    0 => DetachedSignature::sign_binary_data(
                        rng,
                        &key.primary_key,
                        &pw,
                        HashAlgorithm::Sha512,
                        payload,
                    ),
                    n => match key.secret_subkeys.get(n - 1) {
                        Some(sub) => DetachedSignature::sign_binary_data(
                            rng,
                            &sub.key,
                            &pw,
                            HashAlgorithm::Sha512,
                            payload,
                        ),
                        None => return Err(fail("the signing subkey is missing".into())),
                    },
                }
                .map_err(|e| {
                    fail(format!(
                        "{e} (a passphrase-protected secret key is not supported)"
                    ))
                })?;
                sig.to_armored_string(Default::default())
                    .map_err(|e| fail(e.to_string()))?
            }
        };
        Ok(armored.trim_end().to_string())
    }

    /// A trust policy that trusts exactly this key, for any committer (`requireCommitterMatch: false`):
    /// how the operator recognises its own commits.
    pub fn own_policy(&self) -> Result<TrustPolicy, SignError> {
        let doc = match self.material {
            Material::Ssh(_) => serde_json::json!({
                "mode": "head",
                "requireCommitterMatch": false,
                "sshAllowedSigners": format!("* namespaces=\"git\" {}", self.public),
            }),
            Material::OpenPgp { .. } => serde_json::json!({
                "mode": "head",
                "requireCommitterMatch": false,
                "openpgpKeys": [self.public],
            }),
        };
        // JSON is YAML.
        Ok(TrustPolicy::from_yaml(&doc.to_string())?)
    }
}

/// Sign `commit` (which must not carry a signature yet): the signature over its encoding goes into the
/// signature header for `hash_kind`, after the other headers, as git does.
pub fn sign_commit(
    commit: &mut gix::objs::Commit,
    hash_kind: gix::hash::Kind,
    key: &SigningKey,
) -> Result<(), SignError> {
    use gix::objs::WriteTo;
    let mut payload = Vec::with_capacity(512 + commit.message.len());
    commit
        .write_to(&mut payload)
        .map_err(|e| SignError::Encode(e.to_string()))?;
    let signature = key.sign(&payload)?;
    let (header, _) = signature_headers(hash_kind);
    commit
        .extra_headers
        .push((header.into(), signature.into_bytes().into()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::commit;

    const SSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACCzPq7zfqLffKoBDe/eo04kH2XxtSmk9D7RQyf1xUqrYgAAAJgAIAxdACAM
XQAAAAtzc2gtZWQyNTUxOQAAACCzPq7zfqLffKoBDe/eo04kH2XxtSmk9D7RQyf1xUqrYg
AAAEC2BsIi0QwW2uFscKTUUXNHLsYX4FxlaSDSblbAj7WR7bM+rvN+ot98qgEN796jTiQf
ZfG1KaT0PtFDJ/XFSqtiAAAAEHVzZXJAZXhhbXBsZS5jb20BAgMEBQ==
-----END OPENSSH PRIVATE KEY-----
";

    fn person(time: i64) -> gix::actor::Signature {
        gix::actor::Signature {
            name: "Hydrator".into(),
            email: "hydrate@example.com".into(),
            time: gix::date::Time::new(time, 0),
        }
    }

    #[test]
    fn ssh_signed_commits_verify_under_the_own_policy() {
        let key = SigningKey::from_text(SSH_KEY, "test").unwrap();
        assert_eq!(key.kind(), SignatureKind::Ssh);
        assert!(key.fingerprint().starts_with("SHA256:"));
        assert!(!format!("{key:?}").contains("b3BlbnNz"));
        let mut c = gix::objs::Commit {
            tree: gix::ObjectId::empty_tree(gix::hash::Kind::Sha1),
            parents: Default::default(),
            author: person(1_700_000_000),
            committer: person(1_700_000_000),
            encoding: None,
            message: "hydrate\n\nIntent-Commit: 0123\n".into(),
            extra_headers: Vec::new(),
        };
        sign_commit(&mut c, gix::hash::Kind::Sha1, &key).unwrap();
        let mut raw = Vec::new();
        gix::objs::WriteTo::write_to(&c, &mut raw).unwrap();
        let parsed = commit::parse(&raw, gix::hash::Kind::Sha1).unwrap();
        let sig = parsed.signature.expect("signed");
        assert!(sig.starts_with(b"-----BEGIN SSH SIGNATURE-----"));
        let policy = key.own_policy().unwrap();
        let (kind, check) = policy.check(
            &sig,
            &parsed.payload,
            "hydrate@example.com",
            1_700_000_000,
            1_700_000_000,
        );
        assert_eq!(kind, Some(SignatureKind::Ssh));
        assert!(check.failure.is_none(), "{check:?}");
        assert_eq!(check.fingerprint.as_deref(), Some(key.fingerprint()));
        // The payload is the commit without its signature: altering it breaks the signature.
        let mut tampered = parsed.payload.clone();
        tampered.extend_from_slice(b"x");
        let (_, check) = policy.check(&sig, &tampered, "a@b", 1_700_000_000, 1_700_000_000);
        assert!(check.failure.is_some());
    }

    #[test]
    fn other_files_are_refused_without_echoing_them() {
        let e = SigningKey::from_text("secret-ish garbage", "key.txt").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("signing key key.txt:"), "{msg}");
        assert!(!msg.contains("garbage"), "{msg}");
        let e = SigningKey::from_text(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "k",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("not a valid OpenSSH private key"),
            "{e}"
        );
    }
}
