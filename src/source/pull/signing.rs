//! Signed jobs (ours; upstream parses `signature` and never checks it): Ed25519 over the RFC 8785 canonical JSON
//! of an envelope that binds the payload to the job, the cluster and the expiry. The exact byte string is in
//! docs/pull.md#signed-jobs, so the control plane can produce it.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::jcs;
use super::job::Job;
/// The keys jobs are checked against: the trust policy's `controlPlaneKeys`.
pub use crate::git::policy::ControlPlaneKey;

/// The `v` member of the signed envelope.
pub const SIGNATURE_VERSION: &str = "vworkspace.io/job-signature/v1";

/// A signed job must expire at most this long after the operator receives it: replays are remembered until a
/// job expires, and this bounds that memory.
pub const MAX_SIGNED_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The bytes a job's signature covers: the canonical JSON (RFC 8785) of
/// `{"v", "clusterId", "id", "kind", "idempotencyKey", "expiresAt", "payload"}`, `expiresAt` being the text
/// the job carries (or `null`).
pub fn signed_bytes(cluster_id: &str, job: &Job) -> Result<Vec<u8>, jcs::JcsError> {
    let envelope = json!({
        "v": SIGNATURE_VERSION,
        "clusterId": cluster_id,
        "id": job.id,
        "kind": job.kind.as_str(),
        "idempotencyKey": job.idempotency_key,
        "expiresAt": job.expires_at_text.as_deref().map_or(Value::Null, |t| Value::String(t.to_string())),
        "payload": job.payload,
    });
    Ok(jcs::canonicalize(&envelope)?.into_bytes())
}

/// Sign a job for `cluster_id`: the standard, padded base64 of the Ed25519 signature.
pub fn sign(key: &SigningKey, cluster_id: &str, job: &Job) -> Result<String, jcs::JcsError> {
    let bytes = signed_bytes(cluster_id, job)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key.sign(&bytes).to_bytes()))
}

/// Read a private key for `sign-job`: an unencrypted OpenSSH Ed25519 private key (what `ssh-keygen -t ed25519
/// -N ''` writes).
pub fn parse_private_key(text: &str) -> Result<SigningKey, String> {
    let key = ssh_key::PrivateKey::from_openssh(text).map_err(|e| e.to_string())?;
    if key.is_encrypted() {
        return Err("the key is encrypted: sign-job reads unencrypted keys".into());
    }
    let pair = key
        .key_data()
        .ed25519()
        .ok_or_else(|| format!("{} key: only Ed25519 keys sign jobs", key.algorithm()))?;
    Ok(SigningKey::from_bytes(&pair.private.to_bytes()))
}

/// Why a job's signature is refused. `reason` is the result's `error` code and the audit event's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

pub mod reasons {
    pub const UNSIGNED: &str = "JobUnsigned";
    pub const SIGNATURE_INVALID: &str = "JobPayloadSignatureInvalid";
    pub const EXPIRY_MISSING: &str = "JobExpiryMissing";
    pub const LIFETIME_TOO_LONG: &str = "JobLifetimeTooLong";
}

/// Check a job's signature with the policy's control-plane keys, judged at `now`. Returns the name of the key
/// that signed. Expiry itself is not judged here (an expired job is a `noop`, signed or not); a signed job must
/// carry an expiry no further than [`MAX_SIGNED_LIFETIME`] ahead.
pub fn check(
    keys: &[ControlPlaneKey],
    cluster_id: &str,
    job: &Job,
    now: Timestamp,
) -> Result<String, Refusal> {
    let refuse = |reason, message: String| Refusal { reason, message };
    let Some(signature) = &job.signature else {
        return Err(refuse(
            reasons::UNSIGNED,
            "the trust policy names control-plane keys and the job carries no signature".into(),
        ));
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|e| {
            refuse(
                reasons::SIGNATURE_INVALID,
                format!("signature: not base64: {e}"),
            )
        })?;
    let sig = Signature::from_slice(&raw).map_err(|_| {
        refuse(
            reasons::SIGNATURE_INVALID,
            format!(
                "signature: {} bytes, an Ed25519 signature has 64",
                raw.len()
            ),
        )
    })?;
    let bytes = signed_bytes(cluster_id, job)
        .map_err(|e| refuse(reasons::SIGNATURE_INVALID, format!("payload: {e}")))?;
    // Strict: no small-order key or `R`, no non-canonical encoding (plain `verify` lets a small-order key
    // "verify" every message with one fixed signature).
    let Some(signer) = keys
        .iter()
        .find(|k| k.key.verify_strict(&bytes, &sig).is_ok())
    else {
        return Err(refuse(
            reasons::SIGNATURE_INVALID,
            format!(
                "the signature does not verify under any of the {} control-plane key(s) for cluster {cluster_id} \
                 (signed for another cluster, another job, or altered)",
                keys.len()
            ),
        ));
    };
    let Some(expires) = job.expires_at else {
        return Err(refuse(
            reasons::EXPIRY_MISSING,
            "a signed job must carry expiresAt (replays are refused until then)".into(),
        ));
    };
    let limit = now + MAX_SIGNED_LIFETIME;
    if expires > limit {
        return Err(refuse(
            reasons::LIFETIME_TOO_LONG,
            format!(
                "expiresAt {expires} is more than 24 h ahead (the longest a signed job may live)"
            ),
        ));
    }
    Ok(signer.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pull::job::parse_job;
    use ed25519_dalek::VerifyingKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn job(expires: &str) -> Job {
        parse_job(json!({"id": "j1", "kind": "apply", "idempotencyKey": "k",
            "payload": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}, "data": {"x": "1.50"}},
            "expiresAt": expires}))
        .unwrap()
    }

    #[test]
    fn the_signed_bytes_are_the_documented_envelope() {
        let j = job("2026-12-04T10:30:00Z");
        assert_eq!(
            String::from_utf8(signed_bytes("eu-1", &j).unwrap()).unwrap(),
            r#"{"clusterId":"eu-1","expiresAt":"2026-12-04T10:30:00Z","id":"j1","idempotencyKey":"k","kind":"apply","payload":{"apiVersion":"v1","data":{"x":"1.50"},"kind":"ConfigMap","metadata":{"name":"a","namespace":"n"}},"v":"vworkspace.io/job-signature/v1"}"#
        );
    }

    #[test]
    fn signed_verifies_and_every_change_is_refused() {
        let now: Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let keys = [ControlPlaneKey {
            name: "cp".into(),
            key: key(1).verifying_key(),
        }];
        let mut j = job("2026-12-04T10:30:00Z");
        j.signature = Some(sign(&key(1), "eu-1", &j).unwrap());
        assert_eq!(check(&keys, "eu-1", &j, now).unwrap(), "cp");
        // Another cluster, another payload, another kind, another expiry, another key: refused.
        assert_eq!(
            check(&keys, "eu-2", &j, now).unwrap_err().reason,
            reasons::SIGNATURE_INVALID
        );
        let mut changed = j.clone();
        changed.payload["data"]["x"] = json!("2");
        assert_eq!(
            check(&keys, "eu-1", &changed, now).unwrap_err().reason,
            reasons::SIGNATURE_INVALID
        );
        let mut changed = j.clone();
        changed.kind = crate::source::pull::job::JobKind::Delete;
        assert!(check(&keys, "eu-1", &changed, now).is_err());
        let mut changed = j.clone();
        changed.expires_at_text = Some("2026-12-04T11:30:00Z".into());
        assert!(check(&keys, "eu-1", &changed, now).is_err());
        let mut other = j.clone();
        other.signature = Some(sign(&key(2), "eu-1", &j).unwrap());
        assert!(check(&keys, "eu-1", &other, now).is_err());
        let mut unsigned = j.clone();
        unsigned.signature = None;
        assert_eq!(
            check(&keys, "eu-1", &unsigned, now).unwrap_err().reason,
            reasons::UNSIGNED
        );
        let mut short = j.clone();
        short.signature = Some("AAAA".into());
        assert!(
            check(&keys, "eu-1", &short, now)
                .unwrap_err()
                .message
                .contains("3 bytes")
        );
        // Expiry: required, and at most 24 h ahead.
        let mut forever = job("2027-12-04T10:30:00Z");
        forever.signature = Some(sign(&key(1), "eu-1", &forever).unwrap());
        assert_eq!(
            check(&keys, "eu-1", &forever, now).unwrap_err().reason,
            reasons::LIFETIME_TOO_LONG
        );
        let mut never = job("0001-01-01T00:00:00Z");
        never.signature = Some(sign(&key(1), "eu-1", &never).unwrap());
        assert_eq!(
            check(&keys, "eu-1", &never, now).unwrap_err().reason,
            reasons::EXPIRY_MISSING
        );
    }

    /// A job signed by another implementation (Python's `cryptography` over its own RFC 8785 encoder, the
    /// script that made fuzz/seeds/pull_job) verifies here.
    #[test]
    fn a_job_signed_elsewhere_verifies() {
        let j = parse_job(json!({"id": "j-2", "kind": "delete", "idempotencyKey": "", "expiresAt": "2027-01-01T00:30:00Z",
            "payload": {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "namespace": "n"},
            "signature": "9q4ZgFumCy/ohB+JGEkOopJPd4MHfjOGjGkfNgiETQiYU02fVo/i2z6+cIAt/q6VaeOLy9l4Hwv09tyj3e1CBg=="}))
        .unwrap();
        let keys = [ControlPlaneKey {
            name: "cp".into(),
            key: key(7).verifying_key(),
        }];
        let now: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(check(&keys, "fuzz-cluster", &j, now).unwrap(), "cp");
    }

    /// A small-order public key (the identity point) and the signature `(R = identity, s = 0)` pass
    /// ed25519-dalek's plain `verify` for every message; `verify_strict` refuses them.
    #[test]
    fn a_small_order_key_does_not_verify_every_job() {
        use ed25519_dalek::Verifier as _;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&identity);
        let sig = Signature::from_bytes(&raw);
        let now: Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let mut j = job("2026-12-04T10:30:00Z");
        let bytes = signed_bytes("eu-1", &j).unwrap();
        assert!(
            weak.verify(&bytes, &sig).is_ok(),
            "the vector is the weak case"
        );
        j.signature = Some(base64::engine::general_purpose::STANDARD.encode(raw));
        let keys = [ControlPlaneKey {
            name: "weak".into(),
            key: weak,
        }];
        assert_eq!(
            check(&keys, "eu-1", &j, now).unwrap_err().reason,
            reasons::SIGNATURE_INVALID
        );
    }

    /// Control-plane keys as the trust policy parses them.
    fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
        crate::git::ssh::parse_ed25519_public_key(text, "jobs")
    }

    #[test]
    fn public_keys_as_ssh_lines_or_raw_base64() {
        let k = key(7).verifying_key();
        let b64 = base64::engine::general_purpose::STANDARD.encode(k.to_bytes());
        assert_eq!(parse_public_key(&b64).unwrap(), k);
        let ssh = ssh_key::PublicKey::from(ssh_key::public::Ed25519PublicKey(k.to_bytes()))
            .to_openssh()
            .unwrap();
        assert_eq!(parse_public_key(&format!("{ssh} cp@example")).unwrap(), k);
        assert!(parse_public_key("AAAA").unwrap_err().contains("3 bytes"));
    }

    /// A job with `payload` (JSON text, as sent), read as the agent reads a job list.
    fn one_job(payload: &str) -> Result<Job, crate::source::pull::job::JobError> {
        let body = format!(
            r#"{{"jobs":[{{"id":"j1","kind":"apply","expiresAt":"2026-12-04T10:30:00Z","payload":{payload}}}]}}"#
        );
        crate::source::pull::job::parse_jobs(body.as_bytes())
            .unwrap()
            .remove(0)
    }

    /// One signature, one applied payload: `1` and `1.0` sign alike and are applied alike.
    #[test]
    fn payloads_that_sign_alike_are_applied_alike() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let keys = [ControlPlaneKey {
            name: "cp".into(),
            key: key.verifying_key(),
        }];
        let now: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let mut signed = one_job(r#"{"replicas":1,"ratio":0.5}"#).unwrap();
        let signature = sign(&key, "c", &signed).unwrap();
        signed.signature = Some(signature.clone());
        let mut variant = one_job(r#"{"ratio":5e-1,"replicas":1.0}"#).unwrap();
        variant.signature = Some(signature);
        assert_eq!(check(&keys, "c", &variant, now).unwrap(), "cp");
        assert_eq!(variant.payload, signed.payload);
        assert_eq!(
            serde_json::to_string(&variant.payload["replicas"]).unwrap(),
            "1"
        );
    }
}
