//! Tenant isolation of Operation children: an Operation acts on its own namespace and on nothing another
//! namespace owns. One rule, applied to the objects an Operation renders (so it holds for every engine, every
//! parameter and every override template), by [`super::Renderer::render_operation`] (the reconcilers and
//! `render`) and, through `validate::check_operation`, by the admission webhook.
//!
//! What an object may refer to:
//!
//! - **Namespaces**: every field named `namespace` or `…Namespace`, every element of a `…Namespaces` list and
//!   every key and value of a `namespaceMapping` is the Operation's namespace (`excluded…` fields excepted:
//!   excluding is harmless). A `namespaceSelector` is refused. Velero Backups and Restores must list their
//!   namespaces (`spec.includedNamespaces`): Velero reads an empty list as every namespace.
//! - **Names** resolve in the child's own namespace, which the engine pins to the Operation's (or Velero's).
//!   In the shared Velero namespace the only names a child may carry are the backup it restores, which must be
//!   one this operator made for the namespace (named `<namespace>-<operation>`, see [`super::child_name`]), and
//!   the storage and snapshot locations (cluster infrastructure). Velero ConfigMap references
//!   (`resourcePolicy`, `resourceModifier`) are refused: those ConfigMaps belong to no tenant.
//! - **Cluster-scoped objects** that hold or reach another tenant's data are refused: cluster workflow
//!   templates (`clusterWorkflowTemplateRef`, `clusterScope: true`), pre-provisioned snapshot contents
//!   (`volumeSnapshotContentName`), persistent volumes by name (`volumeName`), another cluster
//!   (`kubeConfig`), cluster-scoped resources in Velero (`includeClusterResources: true`,
//!   `includedClusterScopedResources`). Classes (`volumeSnapshotClassName`, `storageClassName`) are the cluster
//!   admin's offer to every tenant and may be named.
//!
//! Opaque payloads are not read as references: `labels`, `annotations` and the chart values of a HelmRelease
//! (`spec.values`) or an Argo CD Application (`spec.source.helm.valuesObject`).

use serde_json::Value;

/// One reference that leaves the Operation's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenancyViolation {
    /// The Operation field the value came from (`spec.parameters.namespaceMapping.team-alpha`), or
    /// `spec.engine` when the template wrote it.
    pub field: String,
    /// `Kind namespace/name`: the rendered object.
    pub object: String,
    /// The path in the rendered object (`spec.includedNamespaces[0]`).
    pub path: String,
    /// Why it is refused.
    pub reason: String,
}

impl TenancyViolation {
    /// The reason with the rendered object and path it was found at, for a problem about `field`.
    pub fn explained(&self) -> String {
        format!(
            "{} (rendered as {} {})",
            self.reason, self.object, self.path
        )
    }
}

impl std::fmt::Display for TenancyViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.explained())
    }
}

/// Cluster-scoped references that reach objects no namespace owns, with what they name.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("clusterWorkflowTemplateRef", "a ClusterWorkflowTemplate"),
    ("volumeSnapshotContentName", "a VolumeSnapshotContent"),
    ("volumeName", "a PersistentVolume"),
    ("kubeConfig", "another cluster's credentials"),
    ("resourcePolicy", "a ConfigMap in the Velero namespace"),
    ("resourceModifier", "a ConfigMap in the Velero namespace"),
];

/// Check every object an Operation in `namespace` rendered. `params` is `spec.parameters` as written (no
/// defaults), used to name the parameter an offending value came from.
pub fn check_children(namespace: &str, params: &Value, objects: &[Value]) -> Vec<TenancyViolation> {
    let mut out = Vec::new();
    for obj in objects {
        let mut walk = Walk {
            namespace,
            params,
            object: format!(
                "{} {}/{}",
                super::kind(obj),
                super::namespace(obj),
                super::name(obj)
            ),
            values_path: match super::kind(obj) {
                "HelmRelease" => "spec.values",
                "Application" => "spec.source.helm.valuesObject",
                _ => "",
            },
            out: &mut out,
        };
        if let Some(map) = obj.as_object() {
            for (key, value) in map {
                if key != "metadata" {
                    walk.value(key, key, value, 0);
                }
            }
        }
        if super::group(super::api_version(obj)) == "velero.io" {
            walk.velero(super::kind(obj), obj);
        }
    }
    out
}

struct Walk<'a> {
    namespace: &'a str,
    params: &'a Value,
    object: String,
    /// Where the chart values are in this object (a HelmRelease's or an Argo CD Application's), if anywhere.
    values_path: &'static str,
    out: &'a mut Vec<TenancyViolation>,
}

impl Walk<'_> {
    fn refuse(&mut self, path: &str, value: Option<&str>, reason: String) {
        let field = value
            .and_then(|v| param_source(self.params, v, "spec.parameters"))
            .unwrap_or_else(|| "spec.engine".into());
        self.out.push(TenancyViolation {
            field,
            object: self.object.clone(),
            path: path.to_string(),
            reason,
        });
    }

    fn outside(&mut self, path: &str, value: &Value) {
        if value.as_str() == Some(self.namespace) {
            return;
        }
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        let reason = format!(
            "{shown} is outside the Operation's namespace {}",
            self.namespace
        );
        self.refuse(path, value.as_str(), reason);
    }

    fn value(&mut self, key: &str, path: &str, value: &Value, depth: usize) {
        if depth > 64 || matches!(key, "labels" | "annotations") {
            return;
        }
        if !self.values_path.is_empty() && path == self.values_path {
            return; // chart values: the chart's business, never a reference we render
        }
        if self.reference(key, path, value) {
            return;
        }
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    self.value(k, &format!("{path}.{k}"), v, depth + 1);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.value(key, &format!("{path}[{i}]"), v, depth + 1);
                }
            }
            _ => {}
        }
    }

    /// Judge `value` when `key` makes it a reference; `true` when it was judged (nothing more to walk).
    fn reference(&mut self, key: &str, path: &str, value: &Value) -> bool {
        if value.is_null() || key.starts_with("excluded") {
            return false;
        }
        if key == "namespace" || key.ends_with("Namespace") {
            self.outside(path, value);
            return true;
        }
        if key.ends_with("Namespaces") && !value.is_array() {
            self.outside(path, value);
            return true;
        }
        if key == "namespaceMapping" {
            match value.as_object() {
                Some(map) => {
                    for (from, to) in map {
                        self.outside(
                            &format!("{path}.{from} (source)"),
                            &Value::from(from.as_str()),
                        );
                        self.outside(&format!("{path}.{from}"), to);
                    }
                }
                None => self.outside(path, value),
            }
            return true;
        }
        if key == "namespaceSelector" {
            self.refuse(
                path,
                None,
                "selects namespaces: name the Operation's own instead".into(),
            );
            return true;
        }
        if let Some((_, what)) = CLUSTER_SCOPED.iter().find(|(k, _)| *k == key) {
            let shown = value.as_str();
            let reason = format!("names {what}, which no namespace owns");
            self.refuse(path, shown, reason);
            return true;
        }
        let cluster_wide = match key {
            "clusterScope" | "includeClusterResources" => value.as_bool() == Some(true),
            "includedClusterScopedResources" => value.as_array().is_some_and(|a| !a.is_empty()),
            _ => false,
        };
        if cluster_wide {
            self.refuse(
                path,
                None,
                "reaches cluster-scoped objects, which no namespace owns".into(),
            );
            return true;
        }
        false
    }

    /// Velero's own rules: the namespaces must be listed, and a Restore's backup must be one made for this
    /// namespace.
    fn velero(&mut self, kind: &str, obj: &Value) {
        let spec = &obj["spec"];
        if matches!(kind, "Backup" | "Restore")
            && spec["includedNamespaces"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            self.refuse(
                "spec.includedNamespaces",
                None,
                format!(
                    "must list the Operation's namespace {}: Velero reads no list as every namespace",
                    self.namespace
                ),
            );
        }
        if kind != "Restore" {
            return;
        }
        let prefix = format!("{}-", self.namespace);
        for field in ["backupName", "scheduleName"] {
            if let Some(name) = spec.get(field).filter(|v| !v.is_null()) {
                let owned = name.as_str().is_some_and(|n| n.starts_with(&prefix));
                if !owned {
                    let shown = name
                        .as_str()
                        .map_or_else(|| name.to_string(), str::to_string);
                    let reason = format!(
                        "{shown} is not a backup made for namespace {}: its backups are named {prefix}<operation>",
                        self.namespace
                    );
                    self.refuse(&format!("spec.{field}"), name.as_str(), reason);
                }
            }
        }
    }
}

/// The path in `params` of the first string value, or map key, equal to `needle`.
/// Whether a live child (read back by name) is this Operation's own: its operation labels, which only the
/// operator writes, must name this Operation's namespace and name. Child names in the shared Velero namespace
/// are `<namespace>-<operation>` (cut and hashed when long), so two Operations of different namespaces can
/// render the same name (`team` + `beta-x` and `team-beta` + `x`); a child that is not its own is neither
/// followed nor deleted. `None` when it is its own, else the owner it names.
pub fn foreign_owner(live: &Value, namespace: &str, name: &str) -> Option<String> {
    let label = |key: &str| {
        live.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    };
    let owner_ns = label(crate::api::labels::OPERATION_NAMESPACE);
    let owner = label(crate::api::labels::OPERATION_NAME);
    if owner_ns == Some(namespace) && owner == Some(name) {
        return None;
    }
    Some(match (owner_ns, owner) {
        (Some(ns), Some(n)) => format!("Operation {ns}/{n}"),
        _ => "no Operation (it carries no operation labels)".to_string(),
    })
}

fn param_source(params: &Value, needle: &str, path: &str) -> Option<String> {
    match params {
        Value::String(s) if s == needle => Some(path.to_string()),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = format!("{path}.{k}");
            if k == needle && v.is_string() {
                return Some(here);
            }
            param_source(v, needle, &here)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| param_source(v, needle, &format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(params: Value, obj: Value) -> Vec<String> {
        check_children("team-beta", &params, &[obj])
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn restore(spec: Value) -> Value {
        json!({"apiVersion": "velero.io/v1", "kind": "Restore",
               "metadata": {"name": "team-beta-r", "namespace": "velero",
                            "labels": {"ops.vworkspace.io/operation-namespace": "team-beta"}},
               "spec": spec})
    }

    #[test]
    fn the_own_namespace_and_its_own_backups_pass() {
        let ok = restore(json!({"backupName": "team-beta-nightly",
                                "includedNamespaces": ["team-beta"],
                                "namespaceMapping": {"team-beta": "team-beta"},
                                "excludedNamespaces": ["kube-system"]}));
        assert_eq!(check(json!({}), ok), Vec::<String>::new());
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                         "spec": {"template": {"spec": {"serviceAccountName": "runner",
                                  "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}}});
        assert_eq!(check(json!({}), job), Vec::<String>::new());
        let hr = json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
                        "metadata": {"name": "x"},
                        "spec": {"targetNamespace": "team-beta", "values": {"namespace": "monitoring"},
                                 "chart": {"spec": {"sourceRef": {"namespace": "team-beta"}}}}});
        assert_eq!(check(json!({}), hr), Vec::<String>::new());
    }

    #[test]
    fn a_cross_tenant_restore_is_refused_naming_the_parameter() {
        let got = check(
            json!({"backupName": "team-alpha-nightly", "namespaceMapping": {"team-alpha": "team-beta"}}),
            restore(json!({"backupName": "team-alpha-nightly",
                           "includedNamespaces": ["team-alpha"],
                           "namespaceMapping": {"team-alpha": "team-beta"}})),
        );
        assert_eq!(
            got,
            [
                "spec.parameters.namespaceMapping.team-alpha: team-alpha is outside the Operation's namespace team-beta (rendered as Restore velero/team-beta-r spec.includedNamespaces[0])",
                "spec.parameters.namespaceMapping.team-alpha: team-alpha is outside the Operation's namespace team-beta (rendered as Restore velero/team-beta-r spec.namespaceMapping.team-alpha (source))",
                "spec.parameters.backupName: team-alpha-nightly is not a backup made for namespace team-beta: its backups are named team-beta-<operation> (rendered as Restore velero/team-beta-r spec.backupName)",
            ]
        );
    }

    #[test]
    fn every_kind_of_escape_is_refused() {
        let cases = [
            restore(json!({"backupName": "team-beta-x"})),
            restore(json!({"backupName": "team-beta-x", "includedNamespaces": ["*"]})),
            restore(
                json!({"backupName": "team-beta-x", "includedNamespaces": ["team-beta"],
                           "includeClusterResources": true}),
            ),
            restore(
                json!({"backupName": "team-beta-x", "includedNamespaces": ["team-beta"],
                           "resourceModifier": {"kind": "ConfigMap", "name": "m"}}),
            ),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
                   "spec": {"workflowTemplateRef": {"name": "t", "clusterScope": true}}}),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
                   "spec": {"workflowTemplateRef": {"name": "t", "namespace": "team-alpha"}}}),
            json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                   "metadata": {"name": "s"}, "spec": {"source": {"volumeSnapshotContentName": "c"}}}),
            json!({"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource",
                   "metadata": {"name": "r"}, "spec": {"restic": {"repositoryNamespace": "team-alpha"}}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": {"template": {"spec": {"volumes": [{"name": "v", "ephemeral": {"volumeClaimTemplate":
                     {"spec": {"volumeName": "pv-of-team-alpha"}}}}]}}}}),
        ];
        for obj in cases {
            let got = check(json!({}), obj.clone());
            assert_eq!(got.len(), 1, "{obj}: {got:?}");
            assert!(got[0].starts_with("spec.engine: "), "{got:?}");
        }
    }

    #[test]
    fn a_child_of_the_same_name_made_for_another_namespace_is_not_ours() {
        let child = |ns: &str, n: &str| {
            serde_json::json!({"metadata": {"name": "team-beta-x", "labels": {
                "ops.vworkspace.io/operation-namespace": ns, "ops.vworkspace.io/operation-name": n}}})
        };
        assert_eq!(
            foreign_owner(&child("team-beta", "x"), "team-beta", "x"),
            None
        );
        assert_eq!(
            foreign_owner(&child("team-beta", "x"), "team", "beta-x").as_deref(),
            Some("Operation team-beta/x")
        );
        let unlabelled = serde_json::json!({"metadata": {"name": "team-beta-x"}});
        assert!(foreign_owner(&unlabelled, "team", "beta-x").is_some());
    }
}
