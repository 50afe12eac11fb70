//! Validation of intents as pure functions. Every rule of API.md, each reported as a [`Problem`] naming the
//! file, the object, the field and the rule — all problems, not just the first.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::api::{
    AppMode, ApplicationInstance, ChartSourceType, Engine, Operation, ValuesSource,
    conditions::reasons, labels, template_key,
};
use crate::intent::{APPS_API_VERSION, IntentDoc, IntentKind, Problem};
use crate::render::{Renderer, is_dns_label, is_dns_subdomain};
use crate::schema;

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

static APP_SCHEMA: LazyLock<Value> = LazyLock::new(|| crd_schema(ApplicationInstance::crd()));
static OP_SCHEMA: LazyLock<Value> = LazyLock::new(|| crd_schema(Operation::crd()));

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

/// Check a document against our own CRD schema: unknown fields (which the API server would silently prune),
/// wrong types and enum values are problems.
pub fn check_schema(doc: &IntentDoc) -> Vec<Problem> {
    let schema = match doc.key.kind {
        IntentKind::ApplicationInstance => &*APP_SCHEMA,
        IntentKind::Operation => &*OP_SCHEMA,
    };
    schema::validate_object(&doc.value, schema)
        .into_iter()
        .map(|v| Problem::new(&doc.location, &doc.key, v.field, v.reason))
        .collect()
}

/// Labels every intent must carry: managed-by=control-plane, and a cluster-id equal to the operator's.
fn check_intent_labels(
    location: &str,
    object: &str,
    meta_labels: Option<&BTreeMap<String, String>>,
    ctx: &Context,
    out: &mut Vec<Problem>,
) {
    let get = |k: &str| meta_labels.and_then(|l| l.get(k)).map(String::as_str);
    let field = |k: &str| format!("metadata.labels[{k}]");
    match get(labels::MANAGED_BY) {
        Some(labels::MANAGED_BY_CONTROL_PLANE) => {}
        Some(other) => out.push(Problem::new(
            location,
            object,
            field(labels::MANAGED_BY),
            format!("is {other:?}; intents must be managed-by=control-plane or the operator ignores them"),
        )),
        None => out.push(Problem::new(
            location,
            object,
            field(labels::MANAGED_BY),
            "missing; intents must carry app.vworkspace.io/managed-by=control-plane or the operator ignores them",
        )),
    }
    let expected = ctx
        .cluster_id
        .or_else(|| cluster_id_from_path(location.split('#').next().unwrap_or("")));
    match (get(labels::CLUSTER_ID), expected) {
        (None, _) => out.push(Problem::new(
            location,
            object,
            field(labels::CLUSTER_ID),
            "missing",
        )),
        (Some(id), Some(want)) if id != want => out.push(Problem::new(
            location,
            object,
            field(labels::CLUSTER_ID),
            format!("is {id:?} but this is cluster {want:?}"),
        )),
        _ => {}
    }
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

/// Every rule of API.md for an ApplicationInstance.
pub fn check_application(location: &str, app: &ApplicationInstance, ctx: &Context) -> Vec<Problem> {
    let mut out = Vec::new();
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let object = format!(
        "ApplicationInstance/{namespace}/{}",
        app.metadata.name.as_deref().unwrap_or_default()
    );
    let mut p =
        |field: &str, reason: String| out.push(Problem::new(location, &object, field, reason));
    let spec = &app.spec;
    if spec.app_ref.catalog_id.is_empty() {
        p("spec.appRef.catalogId", "must not be empty".into());
    }
    match spec.mode {
        AppMode::Placeholder => {
            for (field, set) in [
                ("spec.chart", spec.chart.is_some()),
                ("spec.release", spec.release.is_some()),
                ("spec.values", spec.values.is_some()),
                ("spec.integrations", spec.integrations.is_some()),
            ] {
                if set {
                    p(
                        field,
                        "must not be set in placeholder mode (a placeholder installs nothing)"
                            .into(),
                    );
                }
            }
        }
        AppMode::Managed => {
            match &spec.chart {
                None => p("spec.chart", "required in managed mode".into()),
                Some(chart) => {
                    if let Some(reason) = chart_url_problem(&chart.source_type, &chart.url) {
                        p("spec.chart.url", reason);
                    }
                    if let Some(reason) = chart_name_problem(&chart.name) {
                        p("spec.chart.name", reason);
                    }
                    if let Err(e) = semver::Version::parse(&chart.version) {
                        p(
                            "spec.chart.version",
                            format!(
                                "{:?} is not an exact semver version (no ranges, no latest): {e}",
                                chart.version
                            ),
                        );
                    }
                }
            }
            match &spec.release {
                None => p("spec.release", "required in managed mode".into()),
                Some(release) => {
                    if !is_dns_label(&release.name) || release.name.len() > 53 {
                        p(
                            "spec.release.name",
                            format!(
                                "{:?} must be a DNS-1123 label of at most 53 characters (a Helm release name)",
                                release.name
                            ),
                        );
                    }
                    if release.namespace != namespace {
                        p(
                            "spec.release.namespace",
                            format!(
                                "{:?} must equal metadata.namespace {namespace:?}",
                                release.namespace
                            ),
                        );
                    }
                }
            }
            match &spec.values {
                None => p("spec.values", "required in managed mode".into()),
                Some(values) => {
                    let populated: Vec<&str> = [
                        ("inline", values.inline.is_some()),
                        ("secretRef", values.secret_ref.is_some()),
                        ("configMapRef", values.config_map_ref.is_some()),
                    ]
                    .into_iter()
                    .filter_map(|(n, set)| set.then_some(n))
                    .collect();
                    let source = values.source.as_str();
                    if populated != [source] {
                        p(
                            "spec.values",
                            format!(
                                "exactly one values source must be populated and match values.source {source:?}; populated: [{}]",
                                populated.join(", ")
                            ),
                        );
                    }
                    for (field, r) in [
                        ("secretRef", &values.secret_ref),
                        ("configMapRef", &values.config_map_ref),
                    ] {
                        if let Some(r) = r {
                            if !is_dns_subdomain(&r.name) {
                                p(
                                    &format!("spec.values.{field}.name"),
                                    format!("{:?} is not a valid object name", r.name),
                                );
                            }
                            if r.key.is_empty() {
                                p(
                                    &format!("spec.values.{field}.key"),
                                    "must not be empty".into(),
                                );
                            }
                        }
                    }
                    if values.source == ValuesSource::Inline
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
                }
            }
            if let Some(integrations) = &spec.integrations {
                if let Some(ingress) = &integrations.ingress
                    && ingress.enabled
                {
                    match ingress.host.as_deref() {
                        None | Some("") => p(
                            "spec.integrations.ingress.host",
                            "required when ingress is enabled".into(),
                        ),
                        Some(host) if !is_dns_subdomain(host) => p(
                            "spec.integrations.ingress.host",
                            format!("{host:?} is not a valid host name"),
                        ),
                        _ => {}
                    }
                }
                let any = integrations.external_secrets_enabled()
                    || integrations.cert_manager_enabled()
                    || integrations.ingress_enabled();
                if any && !ctx.renderer.has_catalog(&spec.app_ref.catalog_id) {
                    p(
                        "spec.integrations",
                        format!(
                            "catalog entry {:?} has no integrations template (templates/catalog/{}/values.yaml.j2)",
                            spec.app_ref.catalog_id, spec.app_ref.catalog_id
                        ),
                    );
                }
                if integrations.cert_manager_enabled() && !integrations.ingress_enabled() {
                    p(
                        "spec.integrations.certManager",
                        "needs integrations.ingress (certificates are for the ingress host)".into(),
                    );
                }
            }
        }
    }
    check_intent_labels(
        location,
        &object,
        app.metadata.labels.as_ref(),
        ctx,
        &mut out,
    );
    check_path_namespace(location, &object, namespace, &mut out);
    out
}

/// Immutable fields of an ApplicationInstance: release.name and release.namespace.
pub fn check_application_update(
    location: &str,
    old: &ApplicationInstance,
    new: &ApplicationInstance,
) -> Vec<Problem> {
    let object = format!(
        "ApplicationInstance/{}/{}",
        new.metadata.namespace.as_deref().unwrap_or_default(),
        new.metadata.name.as_deref().unwrap_or_default()
    );
    let mut out = Vec::new();
    let (o, n) = (old.spec.release.as_ref(), new.spec.release.as_ref());
    if let (Some(o), Some(n)) = (o, n) {
        if o.name != n.name {
            out.push(Problem::new(
                location,
                &object,
                "spec.release.name",
                format!("immutable: was {:?}", o.name),
            ));
        }
        if o.namespace != n.namespace {
            out.push(Problem::new(
                location,
                &object,
                "spec.release.namespace",
                format!("immutable: was {:?}", o.namespace),
            ));
        }
    }
    out
}

/// Every rule of API.md for an Operation. `target` is the ApplicationInstance named by targetRef, when found;
/// `namespace_annotations` the annotations of the Operation's namespace, when known.
pub fn check_operation(
    location: &str,
    op: &Operation,
    target: Option<&ApplicationInstance>,
    namespace_annotations: Option<&BTreeMap<String, String>>,
    ctx: &Context,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let namespace = op.metadata.namespace.as_deref().unwrap_or_default();
    let object = format!(
        "Operation/{namespace}/{}",
        op.metadata.name.as_deref().unwrap_or_default()
    );
    let mut p =
        |field: &str, reason: String| out.push(Problem::new(location, &object, field, reason));
    let spec = &op.spec;
    if spec.target_ref.api_version != APPS_API_VERSION {
        p(
            "spec.targetRef.apiVersion",
            format!(
                "{:?} must be {APPS_API_VERSION}",
                spec.target_ref.api_version
            ),
        );
    }
    if spec.target_ref.kind != "ApplicationInstance" {
        p(
            "spec.targetRef.kind",
            format!("{:?} must be ApplicationInstance", spec.target_ref.kind),
        );
    }
    if spec.target_ref.name.is_empty() {
        p("spec.targetRef.name", "must not be empty".into());
    }
    let key = template_key(spec.type_, spec.engine);
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
            for v in schema::validate_value(&params, &tspec.parameters, "spec.parameters") {
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
    if let Some(params) = &spec.parameters
        && spec.engine == Engine::Velero
        && let Some(mapping) = params.get("namespaceMapping").and_then(Value::as_object)
    {
        for (from, to) in mapping {
            if to.as_str() != Some(namespace) {
                p(
                    &format!("spec.parameters.namespaceMapping.{from}"),
                    format!(
                        "restores may only target the Operation's namespace {namespace:?}, not {to}"
                    ),
                );
            }
        }
    }
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
    if let Some(types) = namespace_annotations.and_then(|a| a.get(labels::ALLOWED_TYPES)) {
        let allowed = types
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(spec.type_.as_str()));
        if !allowed {
            p(
                "spec.type",
                format!(
                    "{} is not allowed in namespace {namespace} ({}={types:?})",
                    spec.type_.as_str(),
                    labels::ALLOWED_TYPES
                ),
            );
        }
    }
    check_intent_labels(
        location,
        &object,
        op.metadata.labels.as_ref(),
        ctx,
        &mut out,
    );
    check_path_namespace(location, &object, namespace, &mut out);
    out
}

/// Immutable fields of an Operation: targetRef, type, engine; parameters once the phase left Pending.
pub fn check_operation_update(location: &str, old: &Operation, new: &Operation) -> Vec<Problem> {
    let object = format!(
        "Operation/{}/{}",
        new.metadata.namespace.as_deref().unwrap_or_default(),
        new.metadata.name.as_deref().unwrap_or_default()
    );
    let mut out = Vec::new();
    if old.spec.target_ref != new.spec.target_ref {
        out.push(Problem::new(
            location,
            &object,
            "spec.targetRef",
            "immutable",
        ));
    }
    if old.spec.type_ != new.spec.type_ {
        out.push(Problem::new(location, &object, "spec.type", "immutable"));
    }
    if old.spec.engine != new.spec.engine {
        out.push(Problem::new(location, &object, "spec.engine", "immutable"));
    }
    let started = old
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p != crate::api::Phase::Pending);
    if started && old.spec.parameters != new.spec.parameters {
        out.push(Problem::new(
            location,
            &object,
            "spec.parameters",
            "immutable once the phase left Pending",
        ));
    }
    out
}

/// The chart name: one repository path component as OCI registries accept it
/// (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`), which is also Helm's naming convention (lower case, digits, dashes). It
/// lands in the OCIRepository URL and in the HelmRelease's chart reference, so nothing else may pass.
fn chart_name_problem(name: &str) -> Option<String> {
    (name.len() > 128 || !is_oci_path_component(name)).then(|| {
        format!(
            "{name:?} must be a chart name: lower-case letters and digits, separated by '.', '_', '__' or '-' \
             (at most 128 characters)"
        )
    })
}

/// One component of an OCI repository path: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_oci_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// The chart URL: `oci://HOST[:PORT]/PATH` for OCI (each path component as registries accept it), or
/// `https://HOST[:PORT][/PATH]` for a Helm repository. No credentials, query, fragment, spaces or quotes: the URL
/// is copied into the chart source as it is.
fn chart_url_problem(source_type: &ChartSourceType, url: &str) -> Option<String> {
    let scheme = match source_type {
        ChartSourceType::Oci => "oci://",
        ChartSourceType::Helm => "https://",
    };
    let Some(rest) = url.strip_prefix(scheme) else {
        return Some(match source_type {
            ChartSourceType::Oci => format!("{url:?} must be an oci:// URL for sourceType oci"),
            ChartSourceType::Helm => {
                format!("{url:?} must be an https:// Helm repository URL for sourceType helm")
            }
        });
    };
    if rest.contains('@') {
        return Some("must not carry credentials (use a Secret on the chart source)".into());
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = !authority.contains(':')
        || (port.bytes().all(|c| c.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !host_ok || !port_ok {
        return Some(format!(
            "{url:?}: the host must be a DNS name or an IPv4 address, with an optional port"
        ));
    }
    let path = path.trim_end_matches('/');
    let path_ok = match source_type {
        ChartSourceType::Oci => !path.is_empty() && path.split('/').all(is_oci_path_component),
        ChartSourceType::Helm => path.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'.' | b'_' | b'~' | b'%')
        }),
    };
    (!path_ok).then(|| match source_type {
        ChartSourceType::Oci => format!(
            "{url:?}: the path must be a repository path (lower-case components separated by '/'; no query \
             or fragment)"
        ),
        ChartSourceType::Helm => format!(
            "{url:?}: the path may hold only letters, digits and '/', '-', '.', '_', '~', '%' (no query or \
             fragment)"
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn chart_names_and_urls_cannot_carry_anything_into_the_rendered_objects() {
        use ChartSourceType::{Helm, Oci};
        for ok in ["nextcloud", "vwo-test", "a.b_c__d--e", "x1"] {
            assert_eq!(chart_name_problem(ok), None, "{ok}");
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
            assert!(chart_name_problem(bad).is_some(), "{bad:?}");
        }
        assert!(chart_name_problem(&"a".repeat(129)).is_some());
        for (t, ok) in [
            (&Oci, "oci://ghcr.io/nextcloud/helm"),
            (&Oci, "oci://127.0.0.1:5000/charts"),
            (&Oci, "oci://registry.example/a/b/"),
            (&Helm, "https://charts.example.com"),
            (&Helm, "https://127.0.0.1:8443/charts/"),
            (&Helm, "https://example.com/~team/helm-charts_v2"),
        ] {
            assert_eq!(chart_url_problem(t, ok), None, "{ok}");
        }
        for (t, bad) in [
            (&Oci, "https://ghcr.io/x"),
            (&Oci, "oci://ghcr.io"),
            (&Oci, "oci://ghcr.io/Upper"),
            (&Oci, "oci://user:pw@ghcr.io/x"),
            (&Oci, "oci://ghcr.io/x?tag=1"),
            (&Oci, "oci://ghcr.io:0/x"),
            (&Oci, "oci://ghcr.io:99999/x"),
            (&Oci, "oci://gh cr.io/x"),
            (&Helm, "http://charts.example.com"),
            (&Helm, "https://"),
            (&Helm, "https://charts.example.com/a?b"),
            (&Helm, "https://charts.example.com/#x"),
            (&Helm, "https://charts.example.com/\"}"),
            (&Helm, "https://-bad.example.com"),
        ] {
            assert!(chart_url_problem(t, bad).is_some(), "{bad:?}");
        }
    }

    use super::*;
    use crate::api::{OperationType, Phase};

    fn app(release: &str, ns: &str) -> ApplicationInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "a", "namespace": "n"},
            "spec": {"appRef": {"catalogId": "c"}, "release": {"name": release, "namespace": ns}}
        }))
        .unwrap()
    }

    fn op(target: &str, engine: &str, params: serde_json::Value, phase: Option<&str>) -> Operation {
        let mut v = serde_json::json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
            "metadata": {"name": "o", "namespace": "n"},
            "spec": {"targetRef": {"apiVersion": APPS_API_VERSION, "kind": "ApplicationInstance", "name": target},
                     "type": "Backup", "engine": engine, "parameters": params}
        });
        if let Some(p) = phase {
            v["status"] = serde_json::json!({"phase": p});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn release_name_and_namespace_are_immutable() {
        assert!(check_application_update("f", &app("r", "n"), &app("r", "n")).is_empty());
        let p: Vec<String> = check_application_update("f", &app("r", "n"), &app("r2", "m"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            p,
            [
                "f: ApplicationInstance/n/a: spec.release.name: immutable: was \"r\"",
                "f: ApplicationInstance/n/a: spec.release.namespace: immutable: was \"n\""
            ]
        );
    }

    #[test]
    fn operation_target_engine_are_immutable_and_parameters_once_started() {
        let base = op("t", "velero", serde_json::json!({"a": 1}), None);
        assert!(
            check_operation_update(
                "f",
                &base,
                &op("t", "velero", serde_json::json!({"a": 2}), None)
            )
            .is_empty()
        );
        let started = op("t", "velero", serde_json::json!({"a": 1}), Some("Running"));
        let fields: Vec<String> = check_operation_update(
            "f",
            &started,
            &op("u", "snapshot", serde_json::json!({"a": 2}), None),
        )
        .into_iter()
        .map(|p| p.field)
        .collect();
        assert_eq!(fields, ["spec.targetRef", "spec.engine", "spec.parameters"]);
        assert_eq!(started.status.as_ref().unwrap().phase, Some(Phase::Running));
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
