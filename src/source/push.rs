//! Push mode (docs/operator.md#modes): the control plane applies intents itself with server-side apply, as the
//! ServiceAccount `vworkspace-control-plane` and the field manager `vworkspace-odoo`. The API server's RBAC is
//! the trust anchor; provenance is who owns the spec: a live intent is acted on only when every spec field is
//! owned by the configured control-plane field manager (from its managedFields). A `kubectl edit`, another
//! controller's write, or an apply by any other manager takes ownership of the fields it sets, and the intent is
//! Blocked `SpecMismatch` naming that manager until the control plane applies it again.

use std::sync::{PoisonError, RwLock};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Value, json};

use crate::git::policy::ControlPlaneKey;
use crate::git::policy::TrustPolicy;

use crate::api::conditions::Cond;
use crate::api::conditions::reasons;
use crate::intent::IntentKind;
use crate::source::{IntentSource, LiveIntent, Origin, SourceReport, SourceStatus, Verdict};

/// The control plane's field manager (upstream's docs).
pub const DEFAULT_FIELD_MANAGER: &str = "vworkspace-odoo";

/// Why an intent's spec is not the control plane's.
pub const REASON_NO_SPEC_OWNER: &str = "SpecNotFromControlPlane";
/// Keys are configured and the intent carries no signature annotation.
pub const REASON_UNSIGNED: &str = "IntentUnsigned";
/// The signature annotation does not verify, or does not sign this object's spec.
pub const REASON_SIGNATURE_INVALID: &str = "IntentSignatureInvalid";

/// The signature annotation (docs/operator.md#push-mode): `<base64url of the envelope>.<base64 Ed25519 signature
/// over the envelope>`, the envelope being the RFC 8785 canonical JSON of
/// `{"clusterId", "kind", "name", "namespace", "spec", "v": "vworkspace.io/intent-signature/v1"}` with the spec as
/// the control plane applies it.
pub const SIGNATURE_ANNOTATION: &str = "push.vworkspace.io/signature";
pub const SIGNATURE_VERSION: &str = "vworkspace.io/intent-signature/v1";

/// The annotation value for `obj` (an ApplicationInstance or Operation as the control plane applies it).
pub fn sign_intent(
    key: &ed25519_dalek::SigningKey,
    cluster_id: &str,
    obj: &Value,
) -> Result<String, String> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let envelope = json!({"v": SIGNATURE_VERSION, "clusterId": cluster_id, "kind": s("/kind"),
        "namespace": s("/metadata/namespace"), "name": s("/metadata/name"),
        "spec": obj.get("spec").cloned().unwrap_or(Value::Null)});
    let text = crate::source::pull::jcs::canonicalize(&envelope).map_err(|e| e.to_string())?;
    let sig = key.sign(text.as_bytes());
    Ok(format!(
        "{}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.as_bytes()),
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
    ))
}

/// Check the signature annotation of a live intent whose typed spec is `live_spec`: signed by one of `keys`,
/// for this cluster and object, over a spec whose typed form is the live one. Returns the signer's name.
pub fn check_signature(
    keys: &[ControlPlaneKey],
    cluster_id: &str,
    kind: IntentKind,
    namespace: &str,
    name: &str,
    live_spec: &Value,
    annotation: Option<&str>,
) -> Result<String, (&'static str, String)> {
    let invalid = |why: String| (REASON_SIGNATURE_INVALID, why);
    let Some(value) = annotation else {
        return Err((
            REASON_UNSIGNED,
            format!(
                "the trust policy names control-plane keys and the intent has no {SIGNATURE_ANNOTATION} annotation"
            ),
        ));
    };
    let (envelope_b64, sig_b64) = value.split_once('.').ok_or_else(|| {
        invalid(format!(
            "{SIGNATURE_ANNOTATION}: not <envelope>.<signature>"
        ))
    })?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(envelope_b64)
        .map_err(|e| invalid(format!("{SIGNATURE_ANNOTATION}: envelope: {e}")))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_b64)
        .ok()
        .and_then(|raw| Signature::from_slice(&raw).ok())
        .ok_or_else(|| {
            invalid(format!(
                "{SIGNATURE_ANNOTATION}: not a base64 Ed25519 signature"
            ))
        })?;
    let signer = keys
        .iter()
        // Strict: a small-order key or `R` would let one fixed signature verify every envelope.
        .find(|k| k.key.verify_strict(&text, &sig).is_ok())
        .ok_or_else(|| {
            invalid(format!(
                "the signature does not verify under any of the {} control-plane key(s)",
                keys.len()
            ))
        })?;
    let envelope: Value = serde_json::from_slice(&text)
        .map_err(|e| invalid(format!("{SIGNATURE_ANNOTATION}: envelope: {e}")))?;
    let field = |f: &str| envelope.get(f).and_then(Value::as_str).unwrap_or_default();
    for (f, want) in [
        ("v", SIGNATURE_VERSION),
        ("clusterId", cluster_id),
        ("kind", kind.as_str()),
        ("namespace", namespace),
        ("name", name),
    ] {
        if field(f) != want {
            return Err(invalid(format!(
                "signed for {f} {:?}, this is {want:?}",
                field(f)
            )));
        }
    }
    let signed_spec = kind
        .typed_spec(envelope.get("spec").unwrap_or(&Value::Null))
        .map_err(|e| invalid(format!("the signed spec does not read: {e}")))?;
    if &signed_spec != live_spec {
        return Err(invalid(
            "the live spec differs from the spec the control plane signed".to_string(),
        ));
    }
    Ok(signer.name.clone())
}

/// Who owns the spec of an object: the managers of the main-resource entries that own fields under `spec`.
pub fn spec_owners(entries: &[ManagedFieldsEntry]) -> Vec<(&str, &str)> {
    entries
        .iter()
        .filter(|e| e.subresource.as_deref().unwrap_or_default().is_empty())
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
        })
        .map(|e| {
            (
                e.manager.as_deref().unwrap_or("(unnamed)"),
                e.operation.as_deref().unwrap_or(""),
            )
        })
        .collect()
}

/// Judge an intent by its spec's owners (pure).
pub fn check(manager: &str, identity: &str, entries: &[ManagedFieldsEntry]) -> Verdict {
    check_owners(manager, identity, entries, None)
}

fn check_owners(
    manager: &str,
    identity: &str,
    entries: &[ManagedFieldsEntry],
    signer: Option<String>,
) -> Verdict {
    let owners = spec_owners(entries);
    if owners.is_empty() {
        return Verdict::Blocked {
            reason: REASON_NO_SPEC_OWNER,
            message: format!(
                "{identity}: no field manager owns its spec (it was not applied by the control plane's {manager})"
            ),
        };
    }
    let others: Vec<String> = owners
        .iter()
        .filter(|(m, _)| *m != manager)
        .map(|(m, op)| {
            if op.is_empty() {
                m.to_string()
            } else {
                format!("{m} ({op})")
            }
        })
        .collect();
    if !others.is_empty() {
        return Verdict::Blocked {
            reason: reasons::SPEC_MISMATCH,
            message: format!(
                "{identity}: spec fields are owned by field manager {}, not only by the control plane's {manager} \
                 (changed after the control plane applied it)",
                others.join(", ")
            ),
        };
    }
    Verdict::Verified {
        origin: Origin::FieldManager {
            manager: manager.to_string(),
            signer,
        },
    }
}

/// The intent source of Push mode.
pub struct PushSource {
    manager: String,
    cluster_id: String,
    /// The trust policy's control-plane keys (empty: no signature required), or why no policy is in force.
    keys: RwLock<Result<Vec<ControlPlaneKey>, String>>,
}

impl PushSource {
    pub fn new(manager: &str, cluster_id: &str, keys: Vec<ControlPlaneKey>) -> Self {
        Self {
            manager: manager.to_string(),
            cluster_id: cluster_id.to_string(),
            keys: RwLock::new(Ok(keys)),
        }
    }
}

impl crate::source::PolicyTarget for PushSource {
    fn set_policy(&self, policy: Result<TrustPolicy, String>) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) =
            policy.map(|p| p.control_plane_keys().to_vec());
    }
}

impl IntentSource for PushSource {
    fn check(&self, live: &LiveIntent<'_>) -> Verdict {
        let LiveIntent {
            kind,
            namespace,
            name,
            spec,
            annotations,
            managed_fields,
            ..
        } = *live;
        let identity = format!("{} {namespace}/{name}", kind.as_str());
        let keys = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let signer = match keys {
            Err(why) => {
                return Verdict::Blocked {
                    reason: reasons::TRUST_POLICY_INVALID,
                    message: format!("no usable trust policy: {why}"),
                };
            }
            Ok(keys) if keys.is_empty() => None,
            Ok(keys) => match check_signature(
                &keys,
                &self.cluster_id,
                kind,
                namespace,
                name,
                spec,
                annotations.get(SIGNATURE_ANNOTATION).map(String::as_str),
            ) {
                Ok(signer) => Some(signer),
                Err((reason, message)) => {
                    return Verdict::Blocked {
                        reason,
                        message: format!("{identity}: {message}"),
                    };
                }
            },
        };
        check_owners(&self.manager, &identity, managed_fields, signer)
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            reachable: true,
            ..SourceStatus::default()
        }
    }

    fn report(&self) -> SourceReport {
        SourceReport {
            conditions: vec![Cond::new(
                crate::api::conditions::types::CONNECTED,
                "True",
                reasons::ROUND_TRIP_OK,
                format!(
                    "push mode: the control plane applies intents (field manager {})",
                    self.manager
                ),
            )],
            connected: true,
            ..SourceReport::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    fn entry(manager: &str, op: &str, sub: Option<&str>, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(op.into()),
            subresource: sub.map(str::to_string),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn a_signed_intent_verifies_only_as_signed() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let keys = [ControlPlaneKey {
            name: "cp".into(),
            key: key.verifying_key(),
        }];
        let obj = json!({"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "web", "namespace": "t"},
            "spec": {"appRef": {"catalogId": "nc"}, "chart": {"sourceType": "oci", "url": "oci://r/c", "name": "nc", "version": "1.0.0"},
                "release": {"name": "web", "namespace": "t"}}});
        let annotation = sign_intent(&key, "c", &obj).unwrap();
        let kind = IntentKind::ApplicationInstance;
        // The live spec as the API server returns it, defaults filled in: still the signed one.
        let live = kind.typed_spec(&obj["spec"]).unwrap();
        assert_eq!(
            check_signature(&keys, "c", kind, "t", "web", &live, Some(&annotation)).unwrap(),
            "cp"
        );
        let mut edited = obj["spec"].clone();
        edited["chart"]["version"] = json!("2.0.0");
        let edited = kind.typed_spec(&edited).unwrap();
        let e =
            check_signature(&keys, "c", kind, "t", "web", &edited, Some(&annotation)).unwrap_err();
        assert_eq!(e.0, REASON_SIGNATURE_INVALID);
        assert!(e.1.contains("differs"), "{}", e.1);
        let e =
            check_signature(&keys, "c", kind, "t", "docs", &live, Some(&annotation)).unwrap_err();
        assert!(e.1.contains("name"), "{}", e.1);
        let e = check_signature(&keys, "other", kind, "t", "web", &live, Some(&annotation))
            .unwrap_err();
        assert!(e.1.contains("clusterId"), "{}", e.1);
        assert_eq!(
            check_signature(&keys, "c", kind, "t", "web", &live, None)
                .unwrap_err()
                .0,
            REASON_UNSIGNED
        );
        let other = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
        let forged = sign_intent(&other, "c", &obj).unwrap();
        assert_eq!(
            check_signature(&keys, "c", kind, "t", "web", &live, Some(&forged))
                .unwrap_err()
                .0,
            REASON_SIGNATURE_INVALID
        );
    }

    /// A small-order key (the identity point) with `(R = identity, s = 0)` passes plain `verify` for any
    /// envelope; the annotation check is strict.
    #[test]
    fn a_small_order_key_does_not_verify_every_intent() {
        use ed25519_dalek::Verifier as _;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&identity);
        let envelope = br#"{"clusterId":"c","kind":"ApplicationInstance","name":"web","namespace":"t","spec":{},"v":"vworkspace.io/intent-signature/v1"}"#;
        assert!(
            weak.verify(envelope, &Signature::from_bytes(&raw)).is_ok(),
            "the vector is the weak case"
        );
        let annotation = format!(
            "{}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(envelope),
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let keys = [ControlPlaneKey {
            name: "weak".into(),
            key: weak,
        }];
        let kind = IntentKind::ApplicationInstance;
        let e = check_signature(
            &keys,
            "c",
            kind,
            "t",
            "web",
            &Value::Null,
            Some(&annotation),
        )
        .unwrap_err();
        assert_eq!(e.0, REASON_SIGNATURE_INVALID);
        assert!(e.1.contains("does not verify"), "{}", e.1);
    }

    #[test]
    fn only_the_control_plane_may_own_the_spec() {
        let cp = entry(
            "vworkspace-odoo",
            "Apply",
            None,
            json!({"f:spec": {"f:chart": {}}}),
        );
        let status = entry(
            "vworkspace-operator",
            "Apply",
            Some("status"),
            json!({"f:status": {}}),
        );
        let finalizer = entry(
            "vworkspace-operator",
            "Update",
            None,
            json!({"f:metadata": {"f:finalizers": {}}}),
        );
        let ok = check(
            "vworkspace-odoo",
            "ApplicationInstance t/web",
            &[cp.clone(), status, finalizer],
        );
        assert!(matches!(ok, Verdict::Verified { .. }), "{ok:?}");
        let edit = entry(
            "kubectl-edit",
            "Update",
            None,
            json!({"f:spec": {"f:chart": {"f:version": {}}}}),
        );
        match check("vworkspace-odoo", "ApplicationInstance t/web", &[cp, edit]) {
            Verdict::Blocked { reason, message } => {
                assert_eq!(reason, "SpecMismatch");
                assert!(message.contains("kubectl-edit (Update)"), "{message}");
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            check("vworkspace-odoo", "x", &[]),
            Verdict::Blocked {
                reason: REASON_NO_SPEC_OWNER,
                ..
            }
        ));
    }
}
