//! The render engine: (intent, templates) → Kubernetes objects. Pure: no I/O, no kube client.
//!
//! The same functions serve the controller, `render` (PR review) and `hydrate`, so what a reviewer sees is
//! what gets applied. Templates decide the shape of objects; this module enforces the invariants a template
//! must not be able to break: which kinds an intent may produce, in which namespace, with which labels, and
//! how much work and output a render may take.

mod application;
mod chart_trust;
mod embed;
#[cfg(test)]
mod embed_tests;
mod engine;
mod helm_engine;
mod lazy;
pub mod templates;
pub mod tenancy;

pub use application::engine_refusal;
pub use chart_trust::chart_refusal;
pub use engine::{
    ChildKind, Limits, OperationTemplateSpec, Placement, RenderOptions, Renderer, is_dns_label,
    is_dns_subdomain, oci_chart_url,
};
pub use helm_engine::{ARGOCD_RESOURCES_FINALIZER, DEFAULT_ARGOCD_NAMESPACE, HelmEngine};
pub use templates::Templates;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Errors rendering one intent. All are terminal for that intent (a template or spec must change).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    #[error("template {name} is missing (needed for {needed_for})")]
    MissingTemplate { name: String, needed_for: String },
    #[error("template {name}: output is not valid YAML: {reason}")]
    Output { name: String, reason: String },
    #[error("template {name}: rendered object #{index} ({what}): {reason}")]
    Object {
        name: String,
        index: usize,
        what: String,
        reason: String,
    },
    #[error("{field}: {reason}")]
    Intent { field: String, reason: String },
    #[error("template directory {path}: {reason}")]
    TemplateDir { path: String, reason: String },
    /// The rendered objects refer outside the Operation's namespace ([`tenancy`]).
    #[error("{}", join_violations(violations))]
    Tenancy {
        violations: Vec<tenancy::TenancyViolation>,
    },
}

fn join_violations(violations: &[tenancy::TenancyViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl RenderError {
    /// The intent field this error is about, when it is about one.
    pub fn field(&self) -> &str {
        match self {
            Self::Intent { field, .. } => field,
            Self::Tenancy { violations } => violations.first().map_or("", |v| v.field.as_str()),
            _ => "",
        }
    }
}

/// The renderer the commands build from their common flags (`--templates`, `--cluster-id`,
/// `--velero-namespace`): the embedded templates, or a directory overriding some of them.
pub fn renderer(
    templates: Option<&std::path::Path>,
    cluster_id: Option<&str>,
    velero_namespace: &str,
) -> Result<Renderer, RenderError> {
    let templates = match templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::embedded(),
    };
    Ok(Renderer::new(
        templates,
        RenderOptions {
            cluster_id: cluster_id.map(str::to_string),
            velero_namespace: velero_namespace.to_string(),
            ..RenderOptions::default()
        },
    ))
}

/// `apiVersion` of an object.
pub fn api_version(obj: &Value) -> &str {
    obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")
}

/// `kind` of an object.
pub fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// `metadata.name` of an object.
pub fn name(obj: &Value) -> &str {
    metadata_str(obj, "name")
}

/// `metadata.namespace` of an object.
pub fn namespace(obj: &Value) -> &str {
    metadata_str(obj, "namespace")
}

/// A string field of `metadata` (direct lookups: `Value::pointer` allocates for every path segment).
fn metadata_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The API group of an `apiVersion` (`""` for the core group).
pub fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// `Kind/namespace/name`, for messages and stable ordering.
pub fn object_id(obj: &Value) -> String {
    format!("{}/{}/{}", kind(obj), namespace(obj), name(obj))
}

/// Deep-merge `overlay` into `base`: maps merge key by key, anything else is replaced.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// A stable order for rendered objects: sources (and Argo CD projects) before releases (and Applications), then by namespace and name.
pub fn sort_objects(objects: &mut [Value]) {
    if objects.len() < 2 {
        return;
    }
    fn rank(kind: &str) -> u8 {
        match kind {
            "HelmRepository" | "OCIRepository" | "AppProject" => 0,
            "HelmRelease" | "Application" => 1,
            _ => 2,
        }
    }
    objects.sort_by(|a, b| {
        (rank(kind(a)), namespace(a), kind(a), name(a)).cmp(&(
            rank(kind(b)),
            namespace(b),
            kind(b),
            name(b),
        ))
    });
}

/// Deterministic child name of an Operation: the Operation name, or `<namespace>-<name>` for children in a
/// shared namespace (Velero). Names over 63 characters are cut and suffixed with a hash so they stay unique
/// and valid as label values (Jobs put their name in a label).
pub fn child_name(namespace: &str, op_name: &str, shared_namespace: bool) -> String {
    let full = if shared_namespace {
        format!("{namespace}-{op_name}")
    } else {
        op_name.to_string()
    };
    if full.len() <= 63 {
        return full;
    }
    let hash = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    let cut = full[..54].trim_end_matches(['-', '.']);
    format!("{cut}-{hash}")
}
