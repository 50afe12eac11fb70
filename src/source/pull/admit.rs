//! What to do with a job before anything is applied (pure): expiry, signature and what it asks for, the rules
//! of docs/pull.md ("Per job", steps 3 to 5). The agent and the demo call this one function.

use jiff::Timestamp;

use super::job::{self, Action, Job};
use super::signing::{self, ControlPlaneKey, Refusal};

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Apply or delete. `signer`: the control-plane key that signed it, `-` when the policy names none.
    Accept { action: Action, signer: String },
    /// Result `noop` with this error (the job expired).
    Noop(String),
    /// Result `failed` with this error; `refusal` is set for a refused signature (it gets an audit event).
    Refuse {
        error: String,
        refusal: Option<Refusal>,
    },
}

/// Decide on `j` for cluster `cluster_id` at `now`, with the trust policy's control-plane keys (or why no policy
/// is in force).
pub fn admit(
    j: &Job,
    keys: &Result<Vec<ControlPlaneKey>, String>,
    cluster_id: &str,
    now: Timestamp,
) -> Admission {
    // Expiry first: an expired job is a noop, signed or not (the contract).
    if j.expired(now) {
        return Admission::Noop("expired".into());
    }
    let signer = match keys {
        Ok(keys) if keys.is_empty() => Ok("-".to_string()),
        Ok(keys) => signing::check(keys, cluster_id, j, now),
        Err(why) => Err(Refusal {
            reason: crate::api::conditions::reasons::TRUST_POLICY_INVALID,
            message: format!("no usable trust policy: {why}"),
        }),
    };
    let signer = match signer {
        Ok(s) => s,
        Err(refusal) => {
            return Admission::Refuse {
                error: refusal.to_string(),
                refusal: Some(refusal),
            };
        }
    };
    match job::action(j) {
        Ok(action) => Admission::Accept { action, signer },
        Err(e) => Admission::Refuse {
            error: e.to_string(),
            refusal: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expiry_then_signature_then_the_action() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let keys = Ok(vec![ControlPlaneKey {
            name: "cp".into(),
            key: key.verifying_key(),
        }]);
        let now: Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let job = |expires: &str, payload: serde_json::Value| {
            let mut j = job::parse_job(
                json!({"id": "j", "kind": "apply", "payload": payload, "expiresAt": expires}),
            )
            .unwrap();
            j.signature = Some(signing::sign(&key, "c", &j).unwrap());
            j
        };
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}});
        assert!(matches!(
            admit(&job("2026-12-04T10:30:00Z", cm.clone()), &keys, "c", now),
            Admission::Accept { ref signer, .. } if signer == "cp"
        ));
        assert_eq!(
            admit(&job("2026-12-04T09:00:00Z", cm.clone()), &keys, "c", now),
            Admission::Noop("expired".into())
        );
        match admit(
            &job("2026-12-04T10:30:00Z", cm.clone()),
            &keys,
            "other",
            now,
        ) {
            Admission::Refuse {
                refusal: Some(r), ..
            } => {
                assert_eq!(r.reason, "JobPayloadSignatureInvalid")
            }
            a => panic!("{a:?}"),
        }
        match admit(
            &job("2026-12-04T10:30:00Z", json!({"kind": "ConfigMap"})),
            &keys,
            "c",
            now,
        ) {
            Admission::Refuse {
                refusal: None,
                error,
            } => {
                assert!(error.contains("payload.apiVersion"), "{error}")
            }
            a => panic!("{a:?}"),
        }
        match admit(
            &job("2026-12-04T10:30:00Z", cm),
            &Err("broken".into()),
            "c",
            now,
        ) {
            Admission::Refuse {
                refusal: Some(r), ..
            } => assert_eq!(r.reason, "TrustPolicyInvalid"),
            a => panic!("{a:?}"),
        }
    }
}
