//! Authenticating outcome records: each record is signed, on its own, by the operator's notes key (Ed25519),
//! over a canonical byte string that binds every field, the key and the commit the note is attached to.
//!
//! - [`NotesSigner`]: the operator's private key (an unencrypted OpenSSH Ed25519 key file, what
//!   `ssh-keygen -t ed25519 -N ''` writes); [`NotesSigner::sign`] fills a record's `key` and `signature`.
//! - [`NotesTrust`]: the public keys a reader accepts (the trust policy's `notesKeys`, or `--notes-key`).
//! - [`check`]: one record, alone: genuine (id bound to its content, signed by a trusted key, for this commit
//!   and this cluster) or unverified, with the reason.
//! - [`already_noted`]: the writer's rule for "this outcome is already in the note", which a record written by
//!   anyone else cannot satisfy for a signed record.
//!
//! The signed bytes are documented in docs/audit-trail.md#authenticity so that other tools can check them.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use gix::ObjectId;
use serde::Deserialize;

use super::{OutcomeRecord, record_id};

/// The first field of the signed bytes: what is signed, and the version of the encoding.
pub const SIGNATURE_DOMAIN: &str = "vworkspace.io/notes-record/v1";

/// Largest key file read, in bytes.
const MAX_KEY_BYTES: u64 = 64 << 10;

/// A notes key that cannot be used. Messages name the file or field, never key material.
#[derive(Debug, thiserror::Error)]
#[error("notes signing key {origin}: {message}")]
pub struct NotesKeyError {
    pub origin: String,
    pub message: String,
}

/// The operator's notes signing key.
pub struct NotesSigner {
    key: SigningKey,
    /// The public key, standard base64 of its 32 bytes (the records' `key` field).
    public: String,
}

impl std::fmt::Debug for NotesSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotesSigner")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl NotesSigner {
    /// Read an unencrypted OpenSSH Ed25519 private key file.
    pub fn load(path: &std::path::Path) -> Result<Self, NotesKeyError> {
        let err = |message: String| NotesKeyError {
            origin: path.display().to_string(),
            message,
        };
        let meta =
            std::fs::metadata(path).map_err(|e| err(format!("cannot read: {}", e.kind())))?;
        if meta.len() > MAX_KEY_BYTES {
            return Err(err(format!(
                "{} bytes is larger than the {MAX_KEY_BYTES}-byte limit",
                meta.len()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {}", e.kind())))?;
        Self::from_openssh(&text, &path.display().to_string())
    }

    /// Parse an OpenSSH private key; `origin` names it in errors.
    pub fn from_openssh(text: &str, origin: &str) -> Result<Self, NotesKeyError> {
        let err = |message: String| NotesKeyError {
            origin: origin.to_string(),
            message,
        };
        let key = ssh_key::PrivateKey::from_openssh(text.trim())
            .map_err(|e| err(format!("not a valid OpenSSH private key: {e}")))?;
        if key.is_encrypted() {
            return Err(err(
                "the key is protected by a passphrase; give an unencrypted key (e.g. from a mounted Secret)"
                    .into(),
            ));
        }
        let pair = key.key_data().ed25519().ok_or_else(|| {
            err(format!(
                "{} key: notes are signed with Ed25519 keys only (ssh-keygen -t ed25519)",
                key.algorithm()
            ))
        })?;
        Ok(Self::from_bytes(&pair.private.to_bytes()))
    }

    /// A signer from the 32 secret bytes (tests, the demo's throwaway key).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(secret);
        let public = b64().encode(key.verifying_key().to_bytes());
        Self { key, public }
    }

    /// The public key as the records carry it (standard base64 of the 32 bytes).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The public key as an OpenSSH line (`ssh-ed25519 AAAA…`), for `notesKeys` or `--notes-key`.
    pub fn openssh_public_key(&self) -> String {
        let data = ssh_key::public::Ed25519PublicKey(self.key.verifying_key().to_bytes());
        ssh_key::PublicKey::from(data)
            .to_openssh()
            .unwrap_or_default()
    }

    /// The key as a trusted notes key named `name`.
    pub fn trusted(&self, name: &str) -> NotesKey {
        NotesKey {
            name: name.to_string(),
            key: self.key.verifying_key(),
        }
    }

    /// Sign `record`, a note on `commit`: set its `key` and `signature` (replacing any earlier ones).
    pub fn sign(&self, commit: &ObjectId, record: &mut OutcomeRecord) {
        record.key = Some(self.public.clone());
        let bytes = signed_bytes(commit, record);
        record.signature = Some(b64().encode(self.key.sign(&bytes).to_bytes()));
    }
}

/// The bytes a record's signature covers: each of the following as an 8-byte big-endian length and its
/// UTF-8 bytes: [`SIGNATURE_DOMAIN`], the annotated commit (hex), `id`, `cluster`, `kind`, `namespace`,
/// `name`, `uid`, `generation` (decimal), `outcome`, `reason`, `message`, the number of `childRefs`
/// (decimal) then each key and value in key order, `time`, `operatorVersion`, `key` (empty when absent).
pub fn signed_bytes(commit: &ObjectId, r: &OutcomeRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + r.message.len());
    let mut put = |s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    put(SIGNATURE_DOMAIN);
    put(&commit.to_string());
    for field in [
        &r.id,
        &r.cluster,
        &r.kind,
        &r.namespace,
        &r.name,
        &r.uid,
        &r.generation.to_string(),
        &r.outcome,
        &r.reason,
        &r.message,
        &r.child_refs.len().to_string(),
    ] {
        put(field);
    }
    for (k, v) in &r.child_refs {
        put(k);
        put(v);
    }
    put(&r.time);
    put(&r.operator_version);
    put(r.key.as_deref().unwrap_or(""));
    out
}

/// A public key a reader trusts for notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotesKey {
    pub name: String,
    pub key: VerifyingKey,
}

/// A `notesKeys` entry of the trust policy: `{name, key}`, the key an `ssh-ed25519 AAAA…` line or the standard
/// base64 of the 32 raw bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub key: String,
}

/// Parse a notes public key: an OpenSSH line (`ssh-ed25519 AAAA… comment`) or the standard base64 of the 32
/// bytes; a small-order key is refused (the rule of every Ed25519 key list: [`crate::git::ssh::parse_ed25519_public_key`]).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    crate::git::ssh::parse_ed25519_public_key(text, "notes")
}

/// The keys whose records a reader accepts as genuine. Empty: nothing is genuine (fail-closed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotesTrust {
    keys: Vec<NotesKey>,
}

impl NotesTrust {
    pub fn new(keys: Vec<NotesKey>) -> Self {
        Self { keys }
    }

    /// The trust policy's `notesKeys`. On error: the field (`notesKeys[i].key`) and the reason.
    pub fn from_entries(entries: &[KeyEntry]) -> Result<Self, (String, String)> {
        let mut keys: Vec<NotesKey> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.name.is_empty() {
                return Err((format!("notesKeys[{i}].name"), "empty".into()));
            }
            if keys.iter().any(|k| k.name == e.name) {
                return Err((
                    format!("notesKeys[{i}].name"),
                    format!("{:?} is named twice", e.name),
                ));
            }
            // No small-order key (refused by the parser: such a key admits signatures made without any secret),
            // and one key, one entry (as for every key list of the policy).
            let key = parse_public_key(&e.key).map_err(|m| (format!("notesKeys[{i}].key"), m))?;
            if let Some(j) = keys.iter().position(|k| k.key == key) {
                return Err((
                    format!("notesKeys[{i}].key"),
                    format!(
                        "the same key as notesKeys[{j}] ({:?}): list each key once",
                        keys[j].name
                    ),
                ));
            }
            keys.push(NotesKey {
                name: e.name.clone(),
                key,
            });
        }
        Ok(Self { keys })
    }

    pub fn push(&mut self, key: NotesKey) {
        self.keys.push(key);
    }

    pub fn extend(&mut self, other: &NotesTrust) {
        self.keys.extend(other.keys.iter().cloned());
    }

    pub fn keys(&self) -> &[NotesKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a reader may conclude about one record on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Signed by the trusted key named here, for this commit, with an id that matches its content.
    Genuine { signer: String },
    /// Anything else; the reason says what is missing or wrong.
    Unverified { problem: String },
}

/// Is the record's id the one its cluster, uid, generation and outcome give? `None` when it is.
pub fn id_problem(r: &OutcomeRecord) -> Option<String> {
    let expected = record_id(&r.cluster, &r.uid, r.generation, &r.outcome);
    (r.id != expected).then(|| {
        format!(
            "id {} is not the id of its cluster, uid, generation and outcome ({expected})",
            short(&r.id)
        )
    })
}

fn short(s: &str) -> String {
    s.chars().take(12).collect()
}

/// Check the record's signature under the key it names (integrity only: whether that key is trusted is
/// the caller's question). Returns the key.
pub fn self_signed(commit: &ObjectId, r: &OutcomeRecord) -> Result<VerifyingKey, String> {
    let (Some(key), Some(signature)) = (&r.key, &r.signature) else {
        return Err("unsigned (a legacy record, or written without a notes signing key)".into());
    };
    let key = parse_public_key(key).map_err(|e| format!("key: {e}"))?;
    let raw = b64()
        .decode(signature)
        .map_err(|e| format!("signature: not base64: {e}"))?;
    let sig = Signature::from_slice(&raw).map_err(|_| {
        format!(
            "signature: {} bytes, an Ed25519 signature has 64",
            raw.len()
        )
    })?;
    key.verify(&signed_bytes(commit, r), &sig).map_err(|_| {
        "the signature does not verify (the record was altered, or copied from another commit)"
            .to_string()
    })?;
    Ok(key)
}

/// Judge one record, a note on `commit` read from the notes ref of `ref_cluster` (when known).
pub fn check(
    commit: &ObjectId,
    r: &OutcomeRecord,
    trust: &NotesTrust,
    ref_cluster: Option<&str>,
) -> Check {
    let unverified = |problem: String| Check::Unverified { problem };
    if let Some(problem) = id_problem(r) {
        return unverified(problem);
    }
    if let Some(cluster) = ref_cluster
        && cluster != r.cluster
    {
        return unverified(format!(
            "a record of cluster {:?} in the notes ref of cluster {cluster:?}",
            r.cluster
        ));
    }
    let key = match self_signed(commit, r) {
        Ok(k) => k,
        Err(problem) => return unverified(problem),
    };
    match trust.keys.iter().find(|k| k.key == key) {
        Some(k) => Check::Genuine {
            signer: k.name.clone(),
        },
        None if trust.is_empty() => unverified(
            "signed, but no notes key is trusted (give --notes-key or the policy's notesKeys)"
                .into(),
        ),
        None => unverified(format!(
            "signed by key {}, which is not a trusted notes key",
            r.key.as_deref().unwrap_or("")
        )),
    }
}

/// The writer's rule: does `existing`, read from the note on `commit`, already record `ours`?
///
/// A signed record of ours is there only when a record with its id is signed by the same key and verifies
/// (for this commit): a record written by anyone without the key never stands in for ours. An unsigned
/// record of ours (a writer without a key) is there when a record with its id has that id bound to the
/// same cluster, uid, generation and outcome.
pub fn already_noted(commit: &ObjectId, existing: &OutcomeRecord, ours: &OutcomeRecord) -> bool {
    if existing.id != ours.id || id_problem(existing).is_some() {
        return false;
    }
    match &ours.key {
        Some(key) => existing.key.as_ref() == Some(key) && self_signed(commit, existing).is_ok(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, key: &[u8; 32]) -> KeyEntry {
        use base64::Engine as _;
        KeyEntry {
            name: name.into(),
            key: base64::engine::general_purpose::STANDARD.encode(key),
        }
    }

    #[test]
    fn a_notes_key_is_listed_once_and_weak_keys_are_refused() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes();
        assert!(NotesTrust::from_entries(&[entry("a", &key)]).is_ok());
        let (field, msg) =
            NotesTrust::from_entries(&[entry("a", &key), entry("b", &key)]).unwrap_err();
        assert_eq!(field, "notesKeys[1].key");
        assert!(
            msg.contains("notesKeys[0]") && msg.contains("\"a\""),
            "{msg}"
        );
        // The identity point: a small-order key.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let (field, msg) = NotesTrust::from_entries(&[entry("w", &weak)]).unwrap_err();
        assert_eq!(field, "notesKeys[0].key");
        assert!(msg.contains("weak"), "{msg}");
    }

    /// `--notes-key` and a record's `key` go through the same parser as `notesKeys`: a small-order key is
    /// refused there too (a reader told to trust one would take records anyone can sign as genuine).
    #[test]
    fn notes_public_keys_refuse_small_order_keys() {
        let key = SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert_eq!(
            parse_public_key(&b64().encode(key.to_bytes())).unwrap(),
            key
        );
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let err = parse_public_key(&b64().encode(weak)).unwrap_err();
        assert!(err.contains("small-order (weak)"), "{err}");
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC+mBKA3a0p2pX6ibeasxCMtGhImOeIC2UpNLQ8+PhjiKwPfFTqdtBMZ8WkI4R+C/paA3zFxSfa+ey99RPaO2h23Blmzzfd6macpi2lEV0XlZXJTWURPqOMtKyhA8oBW5ij3vAKCKSgdwU7D/fHYQVt4Jge8jLiUzr3ugaYLxP2Gw== r@x";
        let err = parse_public_key(rsa).unwrap_err();
        assert_eq!(err, "ssh-rsa key: only ssh-ed25519 keys sign notes");
    }

    /// Fuzz finding (notes_record smoke run): a last line ending in a bare CR came back without it after a merge
    /// and a read back, so the merge seemed to drop it. A trailing CR is now part of the line ending.
    #[test]
    fn a_line_ending_in_a_carriage_return_survives_a_merge() {
        let commit = gix::ObjectId::from_hex(b"0123456789abcdef0123456789abcdef01234567").unwrap();
        let signer = NotesSigner::from_bytes(&[42; 32]);
        let mut ours: crate::git::notes::OutcomeRecord =
            serde_json::from_value(serde_json::json!({
                "id": "x", "cluster": "c", "kind": "ApplicationInstance", "namespace": "n", "name": "a",
                "uid": "u", "generation": 1, "outcome": "Ready", "reason": "CommitVerified", "message": "m",
                "time": "2026-12-06T00:00:00Z", "operatorVersion": "0.1.0"
            }))
            .unwrap();
        ours.id = crate::git::notes::record_id("c", "u", 1, "Ready");
        signer.sign(&commit, &mut ours);
        let existing = "first line\r\nsecond line\r";
        let merged = crate::git::notes::merge_note(&commit, existing, [&ours]).unwrap();
        for line in ["first line", "second line"] {
            assert!(merged.lines().any(|m| m == line), "{merged:?}");
        }
        // Written with plain line ends: what is read back is what was merged.
        assert!(!merged.contains('\r'), "{merged:?}");
        // The input the fuzzer found (fuzz/regressions/notes_record/).
        let found = String::from_utf8_lossy(include_bytes!(
            "../../../../../fuzz/regressions/notes_record/trailing-cr.note"
        ));
        let merged = crate::git::notes::merge_note(&commit, &found, [&ours]).unwrap();
        for line in crate::git::notes::judge::note_lines(&found) {
            assert!(merged.lines().any(|m| m == line), "dropped {line:?}");
        }
        assert_eq!(
            crate::git::notes::merge_note(&commit, &merged, [&ours]),
            None
        );
    }
}
