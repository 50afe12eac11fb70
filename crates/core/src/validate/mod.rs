//! Validation of intents as pure functions. Every rule of the v1alpha1 contract (docs/api.md), each reported as a [`Problem`] naming the
//! file, the object, the field and the rule — all problems, not just the first.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use crate::api::{
    AppMode, ApplicationInstance, Operation, ValuesSource, conditions::reasons, labels,
    template_key,
};
use crate::intent::{IntentKind, Problem};
use crate::render::Renderer;
use crate::schema;

pub mod approval;
pub mod cel;
mod cel_access;
pub mod hosts;
mod memo;
pub mod names;
pub mod policy;

/// What validation needs to know beyond the intent itself.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The operator's cluster id; `None` in `render --dir` without `--cluster-id`, where the id is taken from
    /// the path (`clusters/<id>/…`) when there is one.
    pub cluster_id: Option<&'a str>,
    /// The template set (known Operation templates, their parameter schemas, catalog entries).
    pub renderer: &'a Renderer,
}

fn crd_schema(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

static APP_SCHEMA: LazyLock<Value> = LazyLock::new(|| crd_schema(crate::api::crds().remove(0)));
static OP_SCHEMA: LazyLock<Value> = LazyLock::new(|| crd_schema(crate::api::crds().remove(1)));
static APP_CEL: LazyLock<cel::CrdRules> = LazyLock::new(|| cel::CrdRules::compile(&APP_SCHEMA));
static OP_CEL: LazyLock<cel::CrdRules> = LazyLock::new(|| cel::CrdRules::compile(&OP_SCHEMA));

/// Where each rule lives (docs/admission.md). The API server applies the first three layers itself; the
/// admission webhook applies the fourth; `render`, `verify` and the reconcilers apply all four, through the
/// same rule texts and functions.
///
/// 1. the CRD's structural schema ([`check_structure`]),
/// 2. the CRD's CEL rules (`x-kubernetes-validations`, declared on the types in `crate::api`; [`check_cel`]),
/// 3. the ValidatingAdmissionPolicy (rules that need the namespace or the cluster id; [`policy`]),
/// 4. the webhook's rules ([`check_application`], [`check_operation`], [`check_operation_target`]).
///
/// What the API server would refuse for `object` (an intent as JSON) before any webhook runs: the schema, the
/// CRD's CEL rules (with `old` for an UPDATE: the transition rules) and the admission policy evaluated against
/// `namespace` (the intent's Namespace object) and `ctx.cluster_id` (when `None`, the cluster-id label is
/// only required, not compared).
pub fn check_api_server(
    location: &str,
    kind: IntentKind,
    object: &Value,
    old: Option<&Value>,
    namespace: &Value,
    ctx: &Context,
) -> Vec<Problem> {
    let key = object_label(kind, object);
    let cel = match kind {
        IntentKind::ApplicationInstance => &*APP_CEL,
        IntentKind::Operation => &*OP_CEL,
    };
    let mut out = check_structure(location, kind, object);
    out.extend(check_cel(location, &key, cel, object, old));
    let label_id = object
        .pointer(&format!(
            "/metadata/labels/{}",
            labels::CLUSTER_ID.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    let cluster_id = ctx
        .cluster_id
        .or_else(|| cluster_id_from_path(location.split('#').next().unwrap_or("")))
        .or(label_id)
        .unwrap_or_default();
    for message in policy::check(&policy::Input {
        object,
        old_object: old,
        namespace,
        cluster_id,
    }) {
        let (field, reason) = message.split_once(": ").unwrap_or(("", &message));
        out.push(Problem::new(location, &key, field, reason));
    }
    out
}

/// The first layer alone: the CRD's structural schema (types, enums, lengths, required fields, and unknown
/// fields, which the API server refuses under `kubectl`'s strict field validation). The API server words these
/// problems its own way; the field is the same.
pub fn check_structure(location: &str, kind: IntentKind, object: &Value) -> Vec<Problem> {
    let key = object_label(kind, object);
    let schema = match kind {
        IntentKind::ApplicationInstance => &*APP_SCHEMA,
        IntentKind::Operation => &*OP_SCHEMA,
    };
    let mut out: Vec<Problem> = schema::validate_object(object, schema)
        .into_iter()
        .map(|v| Problem::new(location, &key, v.field, v.reason))
        .collect();
    // The API server's own object-meta rules (names, labels, annotations), checked with the schema.
    for (field, reason) in names::check_object_meta(object) {
        out.push(Problem::new(location, &key, field, reason));
    }
    out
}

fn check_cel(
    location: &str,
    key: &str,
    rules: &cel::CrdRules,
    object: &Value,
    old: Option<&Value>,
) -> Vec<Problem> {
    rules
        .check(object, old)
        .into_iter()
        .map(|v| Problem::new(location, key, v.field, v.message))
        .collect()
}

/// `Kind/namespace/name` of a typed intent.
fn typed_label(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    format!(
        "{kind}/{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// `Kind/namespace/name` of an intent given as JSON.
fn object_label(kind: IntentKind, object: &Value) -> String {
    let meta = |k: &str| {
        object["metadata"][k]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    format!("{}/{}/{}", kind.as_str(), meta("namespace"), meta("name"))
}

/// A Namespace object for the policy when only its name is known: gated (the reconcilers check the gate with
/// their own selector first; `render` assumes a namespace whose manifest it does not have is gated) and with
/// the given annotations.
pub fn namespace_stand_in(name: &str, annotations: Option<&BTreeMap<String, String>>) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {labels::NAMESPACE_GATE_KEY: labels::NAMESPACE_GATE_VALUE},
            "annotations": annotations.cloned().unwrap_or_default(),
        }
    })
}

/// The cluster id a manifest path implies (`…clusters/<id>/…`), if any.
pub fn cluster_id_from_path(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        if p == "clusters" {
            return parts.next().filter(|id| !id.is_empty());
        }
    }
    None
}

/// The namespace directory of a manifest path (`…/namespaces/<ns>/…`) must match metadata.namespace.
fn check_path_namespace(location: &str, object: &str, namespace: &str, out: &mut Vec<Problem>) {
    let path = location.split('#').next().unwrap_or("");
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        if p == "namespaces"
            && let Some(dir) = parts.next()
            && parts.clone().next().is_some()
            && dir != namespace
        {
            out.push(Problem::new(
                location,
                object,
                "metadata.namespace",
                format!("is {namespace:?} but the manifest is under namespaces/{dir}/"),
            ));
        }
    }
}

/// Every rule of the contract for an ApplicationInstance (docs/api.md, "Validation rules").
pub fn check_application(location: &str, app: &ApplicationInstance, ctx: &Context) -> Vec<Problem> {
    let mut out = Vec::new();
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let object = typed_label("ApplicationInstance", &app.metadata);
    let mut p =
        |field: &str, reason: String| out.push(Problem::new(location, &object, field, reason));
    let spec = &app.spec;
    if let Some(reason) = names::reserved_namespace(namespace) {
        p("metadata.namespace", reason);
    }
    if let Some(values) = &spec.values
        && values.source == ValuesSource::Inline
        && let Some(inline) = &values.inline
    {
        for (field, rule) in crate::secrets::find_inline_secrets(
            &Value::Object(inline.clone()),
            "spec.values.inline",
        ) {
            p(
                &field,
                format!("{}: {rule}", reasons::INLINE_SECRET_MATERIAL_REJECTED),
            );
        }
    }
    if let Some((field, reason)) =
        crate::render::engine_refusal(&ctx.renderer.options().helm_engine, spec)
    {
        p(&field, reason);
    }
    if let Some((field, reason)) = crate::render::chart_refusal(
        &ctx.renderer.options().helm_engine,
        &ctx.renderer.options().chart_trust.get(),
        spec,
    ) {
        p(&field, reason);
    }
    if spec.mode == AppMode::Managed
        && let Some(chart) = &spec.chart
        && let Some(reason) =
            hosts::chart_host_refusal(&chart.url, &ctx.renderer.options().allowed_chart_hosts)
    {
        p("spec.chart.url", reason);
    }
    if spec.mode == AppMode::Managed
        && let Some(integrations) = &spec.integrations
        && (integrations.external_secrets_enabled()
            || integrations.cert_manager_enabled()
            || integrations.ingress_enabled())
        && !ctx.renderer.has_catalog(&spec.app_ref.catalog_id)
    {
        p(
            "spec.integrations",
            format!(
                "catalog entry {:?} has no integrations template (templates/catalog/{}/values.yaml.j2)",
                spec.app_ref.catalog_id, spec.app_ref.catalog_id
            ),
        );
    }
    check_path_namespace(location, &object, namespace, &mut out);
    out
}

/// The webhook's rules for an Operation that need only the Operation and the template set: the template for
/// `<type>.<engine>`, its parameter schema, the approval claim it requires, and tenant isolation of what the
/// parameters render into ([`crate::render::tenancy`]). The rules about its target are
/// [`check_operation_target`].
pub fn check_operation(location: &str, op: &Operation, ctx: &Context) -> Vec<Problem> {
    let mut out = Vec::new();
    let namespace = op.metadata.namespace.as_deref().unwrap_or_default();
    let object = typed_label("Operation", &op.metadata);
    let mut p =
        |field: &str, reason: String| out.push(Problem::new(location, &object, field, reason));
    let spec = &op.spec;
    if let Some(reason) = names::reserved_namespace(namespace) {
        p("metadata.namespace", reason);
    }
    let key = template_key(spec.type_, spec.engine);
    let mut renderable = false;
    match ctx.renderer.operation_spec(&key) {
        None => {
            let known = ctx.renderer.templates().operation_keys().join(", ");
            p(
                "spec.engine",
                format!(
                    "no template {key} for type {} with engine {}; known: {known}",
                    spec.type_.as_str(),
                    spec.engine.as_str()
                ),
            );
        }
        Some(Err(e)) => p("spec.engine", e.to_string()),
        Some(Ok(tspec)) => {
            let params = Value::Object(spec.parameters.clone().unwrap_or_default());
            let invalid = schema::validate_value(&params, &tspec.parameters, "spec.parameters");
            renderable = invalid.is_empty();
            for v in invalid {
                p(&v.field, format!("{} (template {key})", v.reason));
            }
            let approvals = spec.approvals.as_ref();
            if (tspec.requires_approval || approvals.is_some_and(|a| a.required))
                && approvals
                    .and_then(|a| a.claim.as_deref())
                    .is_none_or(str::is_empty)
            {
                p(
                    "spec.approvals.claim",
                    format!(
                        "{key} requires an approval claim; the operator keeps the Operation Blocked/AwaitingApproval without one"
                    ),
                );
            }
        }
    }
    // Engine-specific rules the parameter schema cannot express.
    if let Some(env) = spec
        .parameters
        .as_ref()
        .and_then(|p| p.get("env"))
        .and_then(Value::as_object)
    {
        for name in env.keys().filter(|n| !names::is_env_var_name(n)) {
            p(
                &format!("spec.parameters.env[{name:?}]"),
                "an environment variable name is printable ASCII other than '=' (the API server refuses \
                 the Job otherwise)"
                    .into(),
            );
        }
    }
    // Tenant isolation (crates/core/src/render/tenancy.rs): judged on what the parameters render into, once they are
    // valid. The target only matters to the helm engine, which the reconciler and `render` judge with the
    // real one.
    if renderable {
        out.extend(tenancy_problems(location, &object, op, ctx));
    }
    check_path_namespace(location, &object, namespace, &mut out);
    out
}

/// The tenancy rule ([`crate::render::tenancy`]) on the objects `op` renders, with a stand-in for its target
/// (only its name and namespace are known here). Other render errors are not reported here: the reconciler
/// and `render` report them when they render with the real target.
fn tenancy_problems(location: &str, object: &str, op: &Operation, ctx: &Context) -> Vec<Problem> {
    let mut target = ApplicationInstance::new(&op.spec.target_ref.name, Default::default());
    target.metadata.namespace = op.metadata.namespace.clone();
    match ctx.renderer.render_operation(op, &target) {
        Err(crate::render::RenderError::Tenancy { violations }) => violations
            .iter()
            .map(|v| Problem::new(location, object, &v.field, v.explained()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The webhook's rules for an Operation that depend on another object: its target (the ApplicationInstance
/// named by targetRef, `None` when there is none) exists and allows the Operation by its capability annotation.
pub fn check_operation_target(
    location: &str,
    op: &Operation,
    target: Option<&ApplicationInstance>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let namespace = op.metadata.namespace.as_deref().unwrap_or_default();
    let object = typed_label("Operation", &op.metadata);
    let mut p =
        |field: &str, reason: String| out.push(Problem::new(location, &object, field, reason));
    let spec = &op.spec;
    match target {
        None => p(
            "spec.targetRef.name",
            format!(
                "ApplicationInstance {namespace}/{} not found",
                spec.target_ref.name
            ),
        ),
        Some(target) => {
            let verb = spec.type_.capability_verb();
            let key = labels::capability_key(verb);
            let value = target
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(&key));
            let allowed =
                value.is_some_and(|v| v.split(',').any(|e| e.trim() == spec.engine.as_str()));
            if !allowed {
                p(
                    "spec.engine",
                    format!(
                        "target ApplicationInstance {namespace}/{} does not allow it: annotation {key}={} is {}",
                        spec.target_ref.name,
                        spec.engine.as_str(),
                        value.map_or("missing".to_string(), |v| format!("{v:?}"))
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OperationType;
    use serde_json::json;

    fn renderer() -> Renderer {
        Renderer::new(
            crate::render::Templates::embedded(),
            crate::render::RenderOptions::default(),
        )
    }

    fn app(chart: Value, release: Value) -> Value {
        json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "a", "namespace": "n", "labels": {
                "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": "c1"}},
            "spec": {"appRef": {"catalogId": "c"}, "chart": chart, "release": release,
                     "values": {"source": "inline", "inline": {}}}
        })
    }

    fn api_server(object: &Value, old: Option<&Value>) -> Vec<String> {
        let r = renderer();
        let ctx = Context {
            cluster_id: Some("c1"),
            renderer: &r,
        };
        let kind = if object["kind"] == "Operation" {
            IntentKind::Operation
        } else {
            IntentKind::ApplicationInstance
        };
        check_api_server("f", kind, object, old, &namespace_stand_in("n", None), &ctx)
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.reason))
            .collect()
    }

    #[test]
    fn chart_names_and_urls_cannot_carry_anything_into_the_rendered_objects() {
        let release = json!({"name": "r", "namespace": "n"});
        let chart = |t: &str, url: &str, name: &str| json!({"sourceType": t, "url": url, "name": name, "version": "1.0.0"});
        for ok in ["nextcloud", "vwo-test", "a.b_c__d--e", "x1"] {
            let problems = api_server(
                &app(chart("oci", "oci://r.io/c", ok), release.clone()),
                None,
            );
            assert!(problems.is_empty(), "{ok}: {problems:?}");
        }
        // The injection #17 found: it rendered into the OCIRepository URL unchanged.
        for bad in [
            "n\"}, \"namespace\": \"kube-system",
            "",
            "Nextcloud",
            "a/b",
            "..",
            "-a",
            "a-",
            "a..b",
            "a b",
        ] {
            let problems = api_server(
                &app(chart("oci", "oci://r.io/c", bad), release.clone()),
                None,
            );
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("spec.chart.name: must be a chart name")),
                "{bad:?}: {problems:?}"
            );
        }
        for (t, ok) in [
            ("oci", "oci://ghcr.io/nextcloud/helm"),
            ("oci", "oci://127.0.0.1:5000/charts"),
            ("oci", "oci://registry.example/a/b/"),
            ("helm", "https://charts.example.com"),
            ("helm", "https://127.0.0.1:8443/charts/"),
            ("helm", "https://example.com/~team/helm-charts_v2"),
        ] {
            let problems = api_server(&app(chart(t, ok, "c"), release.clone()), None);
            assert!(problems.is_empty(), "{ok}: {problems:?}");
        }
        for (t, bad) in [
            ("oci", "https://ghcr.io/x"),
            ("oci", "oci://ghcr.io"),
            ("oci", "oci://ghcr.io/Upper"),
            ("oci", "oci://user:pw@ghcr.io/x"),
            ("oci", "oci://ghcr.io/x?tag=1"),
            ("oci", "oci://ghcr.io:0/x"),
            ("oci", "oci://ghcr.io:99999/x"),
            ("oci", "oci://gh cr.io/x"),
            ("helm", "http://charts.example.com"),
            ("helm", "https://"),
            ("helm", "https://charts.example.com/a?b"),
            ("helm", "https://charts.example.com/#x"),
            ("helm", "https://charts.example.com/\"}"),
            ("helm", "https://-bad.example.com"),
        ] {
            let problems = api_server(&app(chart(t, bad, "c"), release.clone()), None);
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("spec.chart.url: must")),
                "{bad:?}: {problems:?}"
            );
        }
    }

    #[test]
    fn release_name_and_namespace_are_immutable() {
        let chart =
            json!({"sourceType": "oci", "url": "oci://r.io/c", "name": "c", "version": "1.0.0"});
        let old = app(chart.clone(), json!({"name": "r", "namespace": "n"}));
        assert!(api_server(&old, Some(&old)).is_empty());
        let new = app(chart, json!({"name": "r2", "namespace": "m"}));
        assert_eq!(
            api_server(&new, Some(&old)),
            [
                "spec.release.name: immutable: was r",
                "spec.release.namespace: immutable: was n",
                "spec.release.namespace: m must equal metadata.namespace n",
            ]
        );
    }

    fn op(target: &str, engine: &str, params: Value, phase: Option<&str>) -> Value {
        let mut v = json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
            "metadata": {"name": "o", "namespace": "n", "labels": {
                "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": "c1"}},
            "spec": {"targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                                   "name": target},
                     "type": "Backup", "engine": engine, "parameters": params}
        });
        if let Some(p) = phase {
            v["status"] = json!({"phase": p});
        }
        v
    }

    #[test]
    fn operation_target_engine_are_immutable_and_parameters_once_started() {
        let base = op("t", "velero", json!({"a": 1}), None);
        assert!(api_server(&op("t", "velero", json!({"a": 2}), None), Some(&base)).is_empty());
        let started = op("t", "velero", json!({"a": 1}), Some("Running"));
        let mut new = op("u", "snapshot", json!({"a": 2}), None);
        new["status"] = started["status"].clone();
        let mut problems = api_server(&new, Some(&started));
        problems.sort();
        assert_eq!(
            problems,
            [
                "spec.engine: immutable",
                "spec.parameters: immutable once the phase left Pending",
                "spec.targetRef: immutable",
            ]
        );
    }

    #[test]
    fn the_webhook_rules_refuse_a_cross_tenant_restore() {
        let r = renderer();
        let ctx = Context {
            cluster_id: Some("c1"),
            renderer: &r,
        };
        let mut doc = op("t", "velero", json!({}), None);
        doc["metadata"]["namespace"] = json!("team-beta");
        doc["spec"]["type"] = json!("Restore");
        doc["spec"]["approvals"] = json!({"required": true, "claim": "vws1.e30.00"});
        let judge = |params: Value| {
            let mut doc = doc.clone();
            doc["spec"]["parameters"] = params;
            let op: Operation = serde_json::from_value(doc).unwrap();
            check_operation("f", &op, &ctx)
                .into_iter()
                .map(|p| format!("{}: {}", p.field, p.reason))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            judge(json!({"backupName": "team-beta-nightly"})),
            Vec::<String>::new()
        );
        let got = judge(json!({"backupName": "team-alpha-nightly",
                               "namespaceMapping": {"team-alpha": "team-beta"}}));
        assert!(
            got.iter().any(|p| p.starts_with(
                "spec.parameters.namespaceMapping.team-alpha: team-alpha is outside the Operation's namespace team-beta"
            )) && got.iter().any(|p| p.starts_with(
                "spec.parameters.backupName: team-alpha-nightly is not a backup made for namespace team-beta"
            )),
            "{got:#?}"
        );
    }

    #[test]
    fn conflict_matrix() {
        use OperationType::*;
        assert!(Upgrade.blocked_by(Upgrade));
        assert!(Restore.blocked_by(Upgrade) && Restore.blocked_by(Backup));
        assert!(Backup.blocked_by(Restore));
        assert!(!Backup.blocked_by(Backup) && !Backup.blocked_by(Upgrade));
        for other in OperationType::ALL {
            assert!(!RunCommand.blocked_by(other) && !Runbook.blocked_by(other));
        }
    }

    #[test]
    fn cluster_id_comes_from_the_path() {
        assert_eq!(
            cluster_id_from_path("x/clusters/eu-1/namespaces/a/b.yaml"),
            Some("eu-1")
        );
        assert_eq!(cluster_id_from_path("namespaces/a/b.yaml"), None);
    }
}
