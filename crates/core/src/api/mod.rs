//! The vworkspace v1alpha1 API: CRD types, the condition vocabulary and label/annotation keys.
//!
//! Only types and constants live here; behaviour is in `validate`, `render` and `controller`.

// kube's derive takes one `printcolumn(...)` per column; clippy mistakes the repeated keys for duplicates.
#[allow(clippy::duplicated_attributes)]
mod application_instance;
#[allow(clippy::duplicated_attributes)]
mod cluster;
pub mod conditions;
pub mod labels;
#[allow(clippy::duplicated_attributes)]
mod operation;

pub use application_instance::*;
pub use cluster::*;
pub use operation::*;

use kube_core::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The finalizer the operator puts on ApplicationInstances.
pub const APP_FINALIZER: &str = "apps.vworkspace.io/finalizer";
/// The finalizer the operator puts on Operations.
pub const OPERATION_FINALIZER: &str = "ops.vworkspace.io/finalizer";
/// The finalizer the operator puts on the Cluster singleton.
pub const CLUSTER_FINALIZER: &str = "ops.vworkspace.io/cluster-cleanup";
/// Field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "vworkspace-operator";

/// A `{name, key}` reference to a Secret or ConfigMap in the intent's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct KeyRef {
    /// Name of the Secret or ConfigMap (same namespace as the intent).
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
         "message": "must be an object name (a DNS-1123 subdomain)"}
    ]))]
    pub name: String,
    /// Key that holds a YAML values document.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

type Crd =
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD of the API, in a stable order (the order `crdgen` prints them), made structural for every
/// supported Kubernetes version: an optional enum is `nullable`, never an enum that lists `null` (which
/// older API servers cannot read).
pub fn crds() -> Vec<Crd> {
    [ApplicationInstance::crd(), Operation::crd(), Cluster::crd()]
        .into_iter()
        .map(|crd| {
            let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
            strip_null_from_enums(&mut value);
            let rules = root_rules(value["spec"]["names"]["kind"].as_str().unwrap_or_default());
            if !rules.is_empty() {
                value["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] =
                    serde_json::Value::Array(rules);
            }
            serde_json::from_value(value).expect("a CRD deserializes")
        })
        .collect()
}

/// CEL rules on the whole object (they see `status` beside `spec`; kube's derive has no attribute for them on a
/// `JsonSchema` type, so they are added here).
fn root_rules(kind: &str) -> Vec<serde_json::Value> {
    match kind {
        // The contract (docs/api.md): parameters are immutable once the phase left Pending. A transition rule: it runs on updates
        // only, against the stored object (whose status the API server keeps on a spec update).
        "Operation" => vec![serde_json::json!({
            "rule": "!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase == 'Pending' || \
                     (has(self.spec.parameters) ? (has(oldSelf.spec.parameters) && self.spec.parameters == oldSelf.spec.parameters) \
                     : !has(oldSelf.spec.parameters))",
            "fieldPath": ".spec.parameters",
            "message": "immutable once the phase left Pending",
        })],
        _ => Vec::new(),
    }
}

fn strip_null_from_enums(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(items)) = map.get_mut("enum") {
                items.retain(|v| !v.is_null());
            }
            map.values_mut().for_each(strip_null_from_enums);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_null_from_enums),
        _ => {}
    }
}

/// The list-map schema for `conditions[]`: metav1.Condition items, `x-kubernetes-list-type: map` keyed by
/// `type`. Written out here (the schema the API server publishes for metav1.Condition) rather than derived
/// from k8s-openapi, whose `schemars` feature would build a schema for every Kubernetes type to get this one.
pub(crate) fn conditions_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "description": "Condition contains details for one aspect of the current state of this API Resource.",
            "type": "object",
            "properties": {
                "lastTransitionTime": {
                    "description": "lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable.",
                    "type": "string",
                    "format": "date-time"
                },
                "message": {
                    "description": "message is a human readable message indicating details about the transition. This may be an empty string.",
                    "type": "string"
                },
                "observedGeneration": {
                    "description": "observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance.",
                    "type": "integer",
                    "format": "int64"
                },
                "reason": {
                    "description": "reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty.",
                    "type": "string"
                },
                "status": {
                    "description": "status of the condition, one of True, False, Unknown.",
                    "type": "string"
                },
                "type": {
                    "description": "type of condition in CamelCase or in foo.example.com/CamelCase.",
                    "type": "string"
                }
            },
            "required": ["lastTransitionTime", "message", "reason", "status", "type"]
        },
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"]
    })
}

/// A free-form object (`x-kubernetes-preserve-unknown-fields`).
pub(crate) fn free_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// A string map (`additionalProperties: string`).
pub(crate) fn string_map_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string"}
    })
}
