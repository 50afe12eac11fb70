//! The minijinja environment, the render entry points and the invariants checked on every output.

use std::collections::BTreeMap;
use std::io::Write;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::templates::{self, Templates};
use super::{RenderError, deep_merge, sort_objects};
use crate::api::{
    AppMode, ApplicationInstance, ChartSourceType, Operation, ValuesSource, labels, template_key,
};

/// Bounds on one template render, so that a broken or hostile template errors instead of hanging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// minijinja fuel (roughly: instructions executed) per template render.
    pub fuel: u64,
    /// Recursion limit (macros, includes, nested blocks).
    pub recursion: usize,
    /// Largest output of one template render, in bytes.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 1_000_000,
            recursion: 64,
            max_output_bytes: 1 << 20,
        }
    }
}

/// What the renderer needs to know about the cluster it renders for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// The cluster id written into every child's `app.vworkspace.io/cluster-id` label. When `None`, the
    /// intent's own cluster-id label is used.
    pub cluster_id: Option<String>,
    /// Namespace of Velero (Backups and Restores are created there).
    pub velero_namespace: String,
    pub limits: Limits,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            cluster_id: None,
            velero_namespace: "velero".into(),
            limits: Limits::default(),
        }
    }
}

/// Where an Operation template's child lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Placement {
    /// The Operation's (and target's) namespace.
    Target,
    /// The configured Velero namespace.
    Velero,
}

/// A kind an Operation template may produce.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChildKind {
    pub api_version: String,
    pub kind: String,
    #[serde(default = "default_placement")]
    pub namespace: Placement,
}

fn default_placement() -> Placement {
    Placement::Target
}

/// `operation/<key>.spec.yaml`: what an Operation template accepts and may produce.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationTemplateSpec {
    /// Whether an approval claim is always required.
    #[serde(default)]
    pub requires_approval: bool,
    /// The kinds this template may produce (anything else is refused).
    pub children: Vec<ChildKind>,
    /// Output names set on the Operation status when the child is created (`backupName`, `jobName`, …).
    #[serde(default)]
    pub output_name: Option<String>,
    /// OpenAPI v3 schema of `spec.parameters`.
    pub parameters: Value,
}

/// The compiled template set with its render bounds. Build once, render many.
pub struct Renderer {
    env: Environment<'static>,
    /// Templates that failed to compile, with the reason; rendering with one of them is an error.
    broken: BTreeMap<String, String>,
    specs: BTreeMap<String, Result<OperationTemplateSpec, String>>,
    templates: Templates,
    options: RenderOptions,
}

/// Kinds an ApplicationInstance may render: (API group, kind).
const APP_CHILD_KINDS: &[(&str, &str)] = &[
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ("source.toolkit.fluxcd.io", "OCIRepository"),
    ("source.toolkit.fluxcd.io", "HelmRepository"),
];

impl Renderer {
    /// Compile every template. A template that does not compile is recorded, not fatal: only intents that need
    /// it fail, each with a clear error.
    pub fn new(templates: Templates, options: RenderOptions) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(options.limits.fuel));
        env.set_recursion_limit(options.limits.recursion);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // `fail(message)`: a template's way to refuse an input it cannot render.
        env.add_function(
            "fail",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        let mut broken = BTreeMap::new();
        let mut specs = BTreeMap::new();
        for (name, source) in templates.iter() {
            if name.ends_with(".j2") {
                if let Err(e) = env.add_template_owned(name.to_string(), source.to_string()) {
                    broken.insert(name.to_string(), describe(&e));
                }
            } else if let Some(key) = name
                .strip_prefix("operation/")
                .and_then(|n| n.strip_suffix(".spec.yaml"))
            {
                let spec = serde_saphyr::from_str::<OperationTemplateSpec>(source)
                    .map_err(|e| e.to_string());
                specs.insert(key.to_string(), spec);
            }
        }
        Self {
            env,
            broken,
            specs,
            templates,
            options,
        }
    }

    pub fn options(&self) -> &RenderOptions {
        &self.options
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// The spec of an Operation template, by key (`backup.velero`); `None` when no such template exists.
    pub fn operation_spec(&self, key: &str) -> Option<Result<&OperationTemplateSpec, RenderError>> {
        let spec = self.specs.get(key)?;
        if !self.templates.contains(&templates::operation_template(key)) {
            return None;
        }
        Some(spec.as_ref().map_err(|reason| RenderError::Template {
            name: templates::operation_spec(key),
            reason: reason.clone(),
        }))
    }

    /// Whether a catalog entry has an integrations template.
    pub fn has_catalog(&self, catalog_id: &str) -> bool {
        self.templates
            .contains(&templates::catalog_values(catalog_id))
    }

    fn cluster_id<'a>(&'a self, labels: Option<&'a BTreeMap<String, String>>) -> &'a str {
        self.options
            .cluster_id
            .as_deref()
            .or_else(|| {
                labels
                    .and_then(|l| l.get(labels::CLUSTER_ID))
                    .map(String::as_str)
            })
            .unwrap_or("")
    }

    /// Render one template to text, within the limits.
    fn render_template(
        &self,
        name: &str,
        ctx: &Value,
        needed_for: &str,
    ) -> Result<String, RenderError> {
        if let Some(reason) = self.broken.get(name) {
            return Err(RenderError::Template {
                name: name.into(),
                reason: reason.clone(),
            });
        }
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|_| RenderError::MissingTemplate {
                name: name.into(),
                needed_for: needed_for.into(),
            })?;
        let mut out = CappedWriter::new(self.options.limits.max_output_bytes);
        let result = tmpl.render_captured_to(minijinja::value::Serde(ctx), &mut out);
        if out.overflowed {
            return Err(RenderError::Template {
                name: name.into(),
                reason: format!(
                    "output exceeds the limit of {} bytes",
                    self.options.limits.max_output_bytes
                ),
            });
        }
        result.map_err(|e| RenderError::Template {
            name: name.into(),
            reason: describe(&e),
        })?;
        String::from_utf8(out.buf).map_err(|e| RenderError::Output {
            name: name.into(),
            reason: e.to_string(),
        })
    }

    /// Render a template and parse its output as a stream of YAML documents (empty ones dropped).
    fn render_objects(
        &self,
        name: &str,
        ctx: &Value,
        needed_for: &str,
    ) -> Result<Vec<Value>, RenderError> {
        let text = self.render_template(name, ctx, needed_for)?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| RenderError::Output {
                name: name.into(),
                reason: e.to_string(),
            })?;
        Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
    }

    /// Render an ApplicationInstance into its HelmRelease and chart source. Placeholder mode renders nothing.
    pub fn render_application(&self, app: &ApplicationInstance) -> Result<Vec<Value>, RenderError> {
        self.render_application_with(app, None)
    }

    /// As [`render_application`](Self::render_application), with an upgrade applied on top: a new chart
    /// version and/or a values patch (the `helm` engine's parameters).
    fn render_application_with(
        &self,
        app: &ApplicationInstance,
        upgrade: Option<(&Option<String>, &Option<Value>)>,
    ) -> Result<Vec<Value>, RenderError> {
        let spec = &app.spec;
        if spec.mode == AppMode::Placeholder {
            return Ok(Vec::new());
        }
        let missing = |field: &str| RenderError::Intent {
            field: field.into(),
            reason: "required in managed mode".into(),
        };
        let mut chart = spec.chart.clone().ok_or_else(|| missing("spec.chart"))?;
        let release = spec
            .release
            .as_ref()
            .ok_or_else(|| missing("spec.release"))?;
        let values_spec = spec.values.as_ref().ok_or_else(|| missing("spec.values"))?;
        let app_name = app.metadata.name.as_deref().unwrap_or_default();
        let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
        let cluster_id = self.cluster_id(app.metadata.labels.as_ref());
        let app_ctx = json!({
            "name": app_name,
            "namespace": namespace,
            "labels": app.metadata.labels.clone().unwrap_or_default(),
            "annotations": app.metadata.annotations.clone().unwrap_or_default(),
            "spec": spec,
        });
        let integrations = spec.integrations.clone().unwrap_or_default();
        let integrations_ctx = json!({
            "externalSecrets": integrations.external_secrets_enabled(),
            "certManager": integrations.cert_manager_enabled(),
            "ingress": {
                "enabled": integrations.ingress_enabled(),
                "host": integrations.ingress.as_ref().and_then(|i| i.host.clone()).unwrap_or_default(),
            },
        });

        // Values: the catalog's translation of integrations, then the inline values on top, then an upgrade's patch.
        let mut values = Value::Object(Map::new());
        let any_integration = integrations.external_secrets_enabled()
            || integrations.cert_manager_enabled()
            || integrations.ingress_enabled();
        if any_integration {
            let name = templates::catalog_values(&spec.app_ref.catalog_id);
            if !self.templates.contains(&name) {
                return Err(RenderError::Intent {
                    field: "spec.integrations".into(),
                    reason: format!(
                        "catalog entry {:?} has no integrations template ({name}); integrations cannot be translated",
                        spec.app_ref.catalog_id
                    ),
                });
            }
            let ctx = json!({
                "app": app_ctx, "release": release, "integrations": integrations_ctx, "clusterId": cluster_id,
            });
            let docs = self.render_objects(&name, &ctx, "spec.integrations")?;
            match docs.as_slice() {
                [] => {}
                [v @ Value::Object(_)] => values = v.clone(),
                _ => {
                    return Err(RenderError::Output {
                        name,
                        reason: "must render exactly one YAML mapping of chart values".into(),
                    });
                }
            }
        }
        let mut values_from = Vec::new();
        match values_spec.source {
            ValuesSource::Inline => {
                if let Some(inline) = &values_spec.inline {
                    deep_merge(&mut values, &Value::Object(inline.clone()));
                }
            }
            ValuesSource::SecretRef | ValuesSource::ConfigMapRef => {
                let (kind, r) = match values_spec.source {
                    ValuesSource::SecretRef => ("Secret", &values_spec.secret_ref),
                    _ => ("ConfigMap", &values_spec.config_map_ref),
                };
                let r = r.as_ref().ok_or_else(|| RenderError::Intent {
                    field: format!("spec.values.{}", values_spec.source.as_str()),
                    reason: format!(
                        "required when values.source is {}",
                        values_spec.source.as_str()
                    ),
                })?;
                values_from.push(json!({"kind": kind, "name": r.name, "valuesKey": r.key}));
            }
        }
        if let Some((version, patch)) = upgrade {
            if let Some(v) = version {
                chart.version = v.clone();
            }
            if let Some(p) = patch {
                deep_merge(&mut values, p);
            }
        }

        let (source_kind, source_template) = match chart.source_type {
            ChartSourceType::Oci => ("OCIRepository", templates::SOURCE_OCI),
            ChartSourceType::Helm => ("HelmRepository", templates::SOURCE_HELM),
        };
        let source_url = match chart.source_type {
            ChartSourceType::Oci => oci_chart_url(&chart.url, &chart.name),
            ChartSourceType::Helm => chart.url.clone(),
        };
        let ctx = json!({
            "app": app_ctx,
            "chart": chart,
            "release": release,
            "values": values,
            "valuesFrom": values_from,
            "source": {
                "kind": source_kind,
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "name": release.name,
                "namespace": namespace,
                "url": source_url,
            },
            "integrations": integrations_ctx,
            "clusterId": cluster_id,
        });
        let mut objects = self.render_objects(source_template, &ctx, "spec.chart")?;
        let source_count = objects.len();
        objects.extend(self.render_objects(templates::HELM_RELEASE, &ctx, "spec.release")?);
        let child_labels = BTreeMap::from([
            (
                labels::MANAGED_BY.to_string(),
                labels::MANAGED_BY_OPERATOR.to_string(),
            ),
            (labels::CLUSTER_ID.to_string(), cluster_id.to_string()),
            (
                labels::APPLICATION_INSTANCE.to_string(),
                app_name.to_string(),
            ),
        ]);
        let allowed: Vec<(String, String, String)> = APP_CHILD_KINDS
            .iter()
            .map(|(g, k)| (g.to_string(), k.to_string(), namespace.to_string()))
            .collect();
        for (i, obj) in objects.iter_mut().enumerate() {
            let name = if i < source_count {
                source_template
            } else {
                templates::HELM_RELEASE
            };
            finalize(obj, name, i, &allowed, &child_labels)?;
        }
        sort_objects(&mut objects);
        Ok(objects)
    }

    /// Render an Operation into its engine's child object(s). `target` is the ApplicationInstance named by
    /// `spec.targetRef` (needed by every engine: its release, and for `helm` its rendering).
    pub fn render_operation(
        &self,
        op: &Operation,
        target: &ApplicationInstance,
    ) -> Result<Vec<Value>, RenderError> {
        let key = template_key(op.spec.type_, op.spec.engine);
        let spec = match self.operation_spec(&key) {
            None => {
                return Err(RenderError::Intent {
                    field: "spec.engine".into(),
                    reason: format!(
                        "no template {key} (type {} with engine {})",
                        op.spec.type_.as_str(),
                        op.spec.engine.as_str()
                    ),
                });
            }
            Some(spec) => spec?,
        };
        let op_name = op.metadata.name.as_deref().unwrap_or_default();
        let namespace = op.metadata.namespace.as_deref().unwrap_or_default();
        let uid = op.metadata.uid.as_deref().unwrap_or_default();
        let cluster_id = self.cluster_id(op.metadata.labels.as_ref());
        let params = with_defaults(
            op.spec.parameters.clone().unwrap_or_default(),
            &spec.parameters,
        );
        let target_name = target.metadata.name.as_deref().unwrap_or_default();

        let is_helm = op.spec.engine == crate::api::Engine::Helm;
        let app_objects = if is_helm {
            let version = params
                .get("targetVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            let patch = params.get("valuesPatch").cloned();
            self.render_application_with(target, Some((&version, &patch)))?
        } else {
            Vec::new()
        };
        let ctx = json!({
            "op": {
                "name": op_name,
                "namespace": namespace,
                "uid": uid,
                "labels": op.metadata.labels.clone().unwrap_or_default(),
                "annotations": op.metadata.annotations.clone().unwrap_or_default(),
                "spec": op.spec,
            },
            "params": params,
            "target": {
                "name": target_name,
                "namespace": target.metadata.namespace.as_deref().unwrap_or_default(),
                "labels": target.metadata.labels.clone().unwrap_or_default(),
                "spec": target.spec,
            },
            "childName": child_name(namespace, op_name, false),
            "veleroChildName": child_name(namespace, op_name, true),
            "veleroNamespace": self.options.velero_namespace,
            "clusterId": cluster_id,
            "appObjects": app_objects,
        });
        let name = templates::operation_template(&key);
        let mut objects = self.render_objects(&name, &ctx, "spec.engine")?;
        if objects.is_empty() {
            return Err(RenderError::Output {
                name,
                reason: "rendered no object".into(),
            });
        }
        let mut child_labels = BTreeMap::from([
            (
                labels::MANAGED_BY.to_string(),
                labels::MANAGED_BY_OPERATOR.to_string(),
            ),
            (labels::CLUSTER_ID.to_string(), cluster_id.to_string()),
            (
                labels::APPLICATION_INSTANCE.to_string(),
                target_name.to_string(),
            ),
        ]);
        if !is_helm {
            // The helm engine changes the ApplicationInstance's own objects, which keep their labels.
            child_labels.insert(labels::OPERATION_NAME.into(), op_name.to_string());
            child_labels.insert(labels::OPERATION_NAMESPACE.into(), namespace.to_string());
            if !uid.is_empty() {
                child_labels.insert(labels::OPERATION.into(), uid.to_string());
            }
        }
        let allowed: Vec<(String, String, String)> = spec
            .children
            .iter()
            .map(|c| {
                let ns = match c.namespace {
                    Placement::Target => namespace.to_string(),
                    Placement::Velero => self.options.velero_namespace.clone(),
                };
                (super::group(&c.api_version).to_string(), c.kind.clone(), ns)
            })
            .collect();
        for (i, obj) in objects.iter_mut().enumerate() {
            finalize(obj, &name, i, &allowed, &child_labels)?;
        }
        sort_objects(&mut objects);
        Ok(objects)
    }
}

/// The OCIRepository URL of a chart: `chart.url` is the repository and the chart name is appended, unless
/// the URL already ends with it. The `oci://` scheme is kept.
pub fn oci_chart_url(url: &str, chart: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.rsplit('/').next() == Some(chart) {
        url.to_string()
    } else {
        format!("{url}/{chart}")
    }
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

/// Apply the top-level `default`s of a parameter schema.
fn with_defaults(mut params: Map<String, Value>, schema: &Value) -> Value {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, prop) in props {
            if let Some(d) = prop.get("default")
                && !params.contains_key(k)
            {
                params.insert(k.clone(), d.clone());
            }
        }
    }
    Value::Object(params)
}

/// Check one rendered object against the invariants and stamp the operator's labels on it.
fn finalize(
    obj: &mut Value,
    template: &str,
    index: usize,
    allowed: &[(String, String, String)],
    child_labels: &BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let err = |obj: &Value, reason: String| RenderError::Object {
        name: template.into(),
        index,
        what: super::object_id(obj),
        reason,
    };
    if !obj.is_object() {
        return Err(err(obj, "not a mapping".into()));
    }
    let api_version = super::api_version(obj).to_string();
    let kind = super::kind(obj).to_string();
    if api_version.is_empty() || kind.is_empty() {
        return Err(err(obj, "apiVersion and kind are required".into()));
    }
    let name = super::name(obj).to_string();
    if !is_dns_subdomain(&name) {
        return Err(err(
            obj,
            format!("metadata.name {name:?} is not a valid DNS subdomain name"),
        ));
    }
    let group = super::group(&api_version);
    let Some((_, _, expected_ns)) = allowed.iter().find(|(g, k, _)| g == group && *k == kind)
    else {
        let list: Vec<String> = allowed.iter().map(|(g, k, _)| format!("{k}.{g}")).collect();
        return Err(err(
            obj,
            format!(
                "{kind} ({api_version}) may not be rendered here; allowed: {}",
                list.join(", ")
            ),
        ));
    };
    let meta = obj
        .as_object_mut()
        .and_then(|o| o.get_mut("metadata"))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| RenderError::Object {
            name: template.into(),
            index,
            what: format!("{kind}//{name}"),
            reason: "metadata must be a mapping".into(),
        })?;
    match meta.get("namespace").and_then(Value::as_str) {
        None => {
            meta.insert("namespace".into(), Value::String(expected_ns.clone()));
        }
        Some(ns) if ns == expected_ns => {}
        Some(ns) => {
            let reason =
                format!("namespace {ns:?} is not allowed; {kind} must be in {expected_ns:?}");
            return Err(RenderError::Object {
                name: template.into(),
                index,
                what: format!("{kind}/{ns}/{name}"),
                reason,
            });
        }
    }
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(labels) = labels.as_object_mut() else {
        return Err(RenderError::Object {
            name: template.into(),
            index,
            what: format!("{kind}/{expected_ns}/{name}"),
            reason: "metadata.labels must be a mapping".into(),
        });
    };
    for (k, v) in child_labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    Ok(())
}

/// RFC 1123 subdomain: at most 253 characters of lowercase alphanumerics, `-` and `.`, alphanumeric at both ends.
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// RFC 1123 label: at most 63 characters of lowercase alphanumerics and `-`, alphanumeric at both ends.
pub fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// A writer that refuses to grow past a cap (minijinja has no output limit of its own).
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    overflowed: bool,
}

impl CappedWriter {
    fn new(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(4096),
            cap,
            overflowed: false,
        }
    }
}

impl Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
