//! Push mode (docs/operator.md#modes): the control plane applies intents itself with server-side apply, as the
//! ServiceAccount `vworkspace-control-plane` and the field manager `vworkspace-odoo`. The API server's RBAC is
//! the trust anchor; provenance is who owns the spec: a live intent is acted on only when every spec field is
//! owned by the configured control-plane field manager (from its managedFields). A `kubectl edit`, another
//! controller's write, or an apply by any other manager takes ownership of the fields it sets, and the intent is
//! Blocked `SpecMismatch` naming that manager until the control plane applies it again.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

use crate::api::conditions::reasons;
use crate::controller::cluster::SourceReport;
use crate::controller::gitops::{GitStatus, IntentSource, Origin, Verdict};
use crate::controller::status::Cond;
use crate::intent::IntentKind;

/// The control plane's field manager (upstream's docs).
pub const DEFAULT_FIELD_MANAGER: &str = "vworkspace-odoo";

/// Why an intent's spec is not the control plane's.
pub const REASON_NO_SPEC_OWNER: &str = "SpecNotFromControlPlane";

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
        },
    }
}

/// The intent source of Push mode.
pub struct PushSource {
    manager: String,
}

impl PushSource {
    pub fn new(manager: &str) -> Self {
        Self {
            manager: manager.to_string(),
        }
    }
}

impl IntentSource for PushSource {
    fn check(
        &self,
        kind: IntentKind,
        namespace: &str,
        name: &str,
        _spec: &Value,
        _labels: &BTreeMap<String, String>,
        _annotations: &BTreeMap<String, String>,
        managed_fields: &[ManagedFieldsEntry],
    ) -> Verdict {
        check(
            &self.manager,
            &format!("{} {namespace}/{name}", kind.as_str()),
            managed_fields,
        )
    }

    fn status(&self) -> GitStatus {
        GitStatus {
            reachable: true,
            ..GitStatus::default()
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
