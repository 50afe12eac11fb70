//! Provenance in Pull mode: is a live intent's spec the payload of the job the operator last applied for it?
//!
//! When the agent applies an intent it stamps it with the annotation `pull.vworkspace.io/provenance`:
//! `v1 <job id> <signer> <HMAC>`, the HMAC-SHA256 (key: `provenance-key` of the agent's credentials Secret,
//! which only the operator reads) over the object's identity, the job, the signer and the digest of what the
//! operator acts on: the typed spec (API-server defaults are not differences, as in GitOps mode) and the
//! `*.vworkspace.io/*` labels and annotations. An edit of any of those after the apply — by hand, by another
//! controller, or a stamp copied from another object — no longer matches: the intent is Blocked `SpecMismatch`.
//! No stamp at all: Blocked `SpecNotFromControlPlane`. The stamp lives on the object, so it needs no store and
//! survives restarts; without the key (the Secret deleted) nothing matches: fail closed.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::git::provenance::is_vworkspace_key;

pub const ANNOTATION: &str = "pull.vworkspace.io/provenance";

/// What a valid stamp says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub job_id: String,
    /// The control-plane key that signed the job, or `-` for an unsigned job.
    pub signer: String,
}

/// Why a live intent is not the payload of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub reason: &'static str,
    pub message: String,
}

pub const REASON_NOT_FROM_CONTROL_PLANE: &str = "SpecNotFromControlPlane";

/// The digest of what the operator acts on: kind, typed spec, `*.vworkspace.io/*` labels and annotations
/// (the stamp excluded).
pub fn intent_digest(
    kind: &str,
    typed_spec: &Value,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> String {
    let keep = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| is_vworkspace_key(k) && k.as_str() != ANNOTATION)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let doc = json!({"kind": kind, "spec": typed_spec, "labels": keep(labels), "annotations": keep(annotations)});
    // Canonical JSON cannot fail here: the spec came from serde (finite numbers only).
    let text = super::jcs::canonicalize(&doc).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn mac(key: &[u8], identity: &str, job_id: &str, signer: &str, digest: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(format!("v1\n{identity}\n{job_id}\n{signer}\n{digest}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// `kind/namespace/name`.
pub fn identity(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// The annotation value for an intent applied by `job_id`.
pub fn stamp(key: &[u8], identity: &str, job_id: &str, signer: &str, digest: &str) -> String {
    let signer = if signer.is_empty() { "-" } else { signer };
    format!(
        "v1 {job_id} {signer} {}",
        mac(key, identity, job_id, signer, digest)
    )
}

/// Check a live intent's stamp against its current digest.
pub fn check(
    key: &[u8],
    identity: &str,
    annotation: Option<&str>,
    digest: &str,
) -> Result<Stamp, Mismatch> {
    let Some(value) = annotation else {
        return Err(Mismatch {
            reason: REASON_NOT_FROM_CONTROL_PLANE,
            message: format!(
                "{identity} was not applied by a control-plane job (no {ANNOTATION} annotation): Pull mode acts only \
                 on intents its jobs applied"
            ),
        });
    };
    let parts: Vec<&str> = value.split(' ').collect();
    let [version, job_id, signer, tag] = parts[..] else {
        return Err(mismatch(identity, "the annotation is malformed"));
    };
    if version != "v1" {
        return Err(mismatch(
            identity,
            "the annotation is of an unknown version",
        ));
    }
    let want = mac(key, identity, job_id, signer, digest);
    // Constant time is not needed for a tag the object's writer can read anyway, but costs nothing.
    let same = want.len() == tag.len()
        && want
            .bytes()
            .zip(tag.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(mismatch(
            identity,
            &format!(
                "the live spec, or its vworkspace labels or annotations, differ from the payload of job {job_id} \
                 (changed after the operator applied it)"
            ),
        ));
    }
    Ok(Stamp {
        job_id: job_id.to_string(),
        signer: signer.to_string(),
    })
}

fn mismatch(identity: &str, why: &str) -> Mismatch {
    Mismatch {
        reason: crate::api::conditions::reasons::SPEC_MISMATCH,
        message: format!("{identity}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_matches_its_digest_only_for_its_object() {
        let key = b"0123456789abcdef0123456789abcdef";
        let spec = json!({"chart": {"version": "1.0.0"}});
        let labels = BTreeMap::from([
            (
                "app.vworkspace.io/cluster-id".to_string(),
                "eu-1".to_string(),
            ),
            ("team".to_string(), "a".to_string()),
        ]);
        let mut annotations = BTreeMap::new();
        let d = intent_digest("ApplicationInstance", &spec, &labels, &annotations);
        let id = identity("ApplicationInstance", "t", "web");
        let s = stamp(key, &id, "job-1", "cp", &d);
        annotations.insert(ANNOTATION.to_string(), s.clone());
        // The stamp itself and labels outside the API are not part of the digest.
        let mut other_labels = labels.clone();
        other_labels.insert("team".into(), "b".into());
        let d2 = intent_digest("ApplicationInstance", &spec, &other_labels, &annotations);
        assert_eq!(d, d2);
        assert_eq!(
            check(key, &id, Some(&s), &d2).unwrap(),
            Stamp {
                job_id: "job-1".into(),
                signer: "cp".into()
            }
        );
        // A changed spec, another object, another key: SpecMismatch.
        let edited = intent_digest(
            "ApplicationInstance",
            &json!({"chart": {"version": "2.0.0"}}),
            &labels,
            &annotations,
        );
        assert_eq!(
            check(key, &id, Some(&s), &edited).unwrap_err().reason,
            "SpecMismatch"
        );
        let other = identity("ApplicationInstance", "t", "docs");
        assert!(check(key, &other, Some(&s), &d).is_err());
        assert!(check(b"another key", &id, Some(&s), &d).is_err());
        assert_eq!(
            check(key, &id, None, &d).unwrap_err().reason,
            REASON_NOT_FROM_CONTROL_PLANE
        );
        assert!(check(key, &id, Some("v1 job-1"), &d).is_err());
        // A vworkspace annotation edited (e.g. the pause annotation) is a difference.
        let mut paused = annotations.clone();
        paused.insert("apps.vworkspace.io/reconcile".into(), "disabled".into());
        let d3 = intent_digest("ApplicationInstance", &spec, &labels, &paused);
        assert!(check(key, &id, Some(&s), &d3).is_err());
    }
}
