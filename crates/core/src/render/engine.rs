//! The minijinja environment, the render entry points and the invariants checked on every output.

use std::collections::BTreeMap;
use std::io::Write;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::HelmEngine;
use super::child_name;
use super::embed::Embeds;
use super::templates::{self, Templates};
use super::{RenderError, sort_objects};
use crate::api::{ApplicationInstance, Operation, labels, template_key};

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
    /// Chart hosts allowed although they are loopback, link-local, metadata or cluster-internal
    /// (`--allow-chart-host`; `crate::validate::hosts`). Empty: none.
    pub allowed_chart_hosts: Vec<String>,
    /// What installs an ApplicationInstance's chart: Flux (the default) or Argo CD.
    pub helm_engine: HelmEngine,
    /// Which signatures charts must carry (the trust policy's `charts` section), shared with the policy
    /// reload: a changed policy is rendered at the next reconcile.
    pub chart_trust: crate::charts::ChartTrustCell,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            cluster_id: None,
            velero_namespace: "velero".into(),
            limits: Limits::default(),
            allowed_chart_hosts: Vec::new(),
            helm_engine: HelmEngine::Flux,
            chart_trust: crate::charts::ChartTrustCell::default(),
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
    /// Argo CD's namespace (AppProjects live there; `--argocd-namespace`).
    Argocd,
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
        // `a | merge(b)`: deep merge of two maps (b wins), the same merge the renderer applies to values.
        env.add_filter("merge", merge_filter);
        env.add_filter("tojson", tojson_filter);
        // `value | embed`: the value itself in the output object, without a text round trip (embed.rs).
        env.add_filter(
            "embed",
            super::embed::filter(options.limits.max_output_bytes),
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

    /// The same renderer with this chart-host allow-list ([`RenderOptions::allowed_chart_hosts`]).
    pub fn with_allowed_chart_hosts(mut self, hosts: Vec<String>) -> Self {
        self.options.allowed_chart_hosts = hosts;
        self
    }

    /// The same renderer with this chart trust ([`RenderOptions::chart_trust`]).
    pub fn with_chart_trust(mut self, trust: crate::charts::ChartTrustCell) -> Self {
        self.options.chart_trust = trust;
        self
    }

    /// The same renderer for this Helm engine ([`RenderOptions::helm_engine`]).
    pub fn with_helm_engine(mut self, engine: HelmEngine) -> Self {
        self.options.helm_engine = engine;
        self
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

    pub(super) fn cluster_id<'a>(
        &'a self,
        labels: Option<&'a BTreeMap<String, String>>,
    ) -> &'a str {
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
        ctx: minijinja::Value,
        needed_for: &str,
    ) -> Result<(String, Option<Embeds>), RenderError> {
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
        let cap = self.options.limits.max_output_bytes;
        let mut out = CappedWriter::new(cap);
        let result = tmpl.render_captured_to(ctx, &mut out);
        let too_big = || RenderError::Template {
            name: name.into(),
            reason: format!("output exceeds the limit of {cap} bytes"),
        };
        if out.overflowed {
            return Err(too_big());
        }
        let mut captured = result.map_err(|e| RenderError::Template {
            name: name.into(),
            reason: describe(&e),
        })?;
        let embeds = captured
            .with_state_mut(|state| state.get_extension_mut::<Embeds>().map(std::mem::take));
        if embeds
            .as_ref()
            .is_some_and(|e| e.bytes.saturating_add(out.buf.len()) > cap)
        {
            return Err(too_big());
        }
        let text = String::from_utf8(out.buf).map_err(|e| RenderError::Output {
            name: name.into(),
            reason: e.to_string(),
        })?;
        Ok((text, embeds))
    }

    /// Render a template and parse its output as a stream of YAML documents (empty ones dropped); see
    /// [`parse_output`]. Values the template `embed`s are put in their places. The context is taken: an
    /// intent's values held only by it are moved into the objects, not copied (embed.rs).
    pub(super) fn render_objects(
        &self,
        name: &str,
        ctx: minijinja::Value,
        needed_for: &str,
    ) -> Result<Vec<Value>, RenderError> {
        let (text, embeds) = self.render_template(name, ctx, needed_for)?;
        let output_error = |reason| RenderError::Output {
            name: name.into(),
            reason,
        };
        let mut docs = parse_output(&text).map_err(output_error)?;
        if let Some(embeds) = embeds {
            super::embed::place(&mut docs, embeds).map_err(|reason| RenderError::Template {
                name: name.into(),
                reason,
            })?;
        }
        Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
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
        let ctx = minijinja::Value::from(Serde(&ctx));
        let mut objects = self.render_objects(&name, ctx, "spec.engine")?;
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
                    Placement::Argocd => self.options.helm_engine.argocd_namespace().to_string(),
                };
                (super::group(&c.api_version).to_string(), c.kind.clone(), ns)
            })
            .collect();
        let child_labels: Vec<(&str, &str)> = child_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (i, obj) in objects.iter_mut().enumerate() {
            finalize(obj, &name, i, &allowed, &child_labels)?;
        }
        let written = Value::Object(op.spec.parameters.clone().unwrap_or_default());
        let violations = super::tenancy::check_children(namespace, &written, &objects);
        if !violations.is_empty() {
            return Err(RenderError::Tenancy { violations });
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

/// Check one rendered object against the invariants and stamp the operator's labels on it. `allowed` lists
/// (group, kind, namespace) of what may be rendered; `child_labels` are stamped over the template's.
pub(super) fn finalize<S: AsRef<str>>(
    obj: &mut Value,
    template: &str,
    index: usize,
    allowed: &[(S, S, S)],
    child_labels: &[(&str, &str)],
) -> Result<(), RenderError> {
    let err = |what: String, reason: String| RenderError::Object {
        name: template.into(),
        index,
        what,
        reason,
    };
    if !obj.is_object() {
        return Err(err(super::object_id(obj), "not a mapping".into()));
    }
    let (api_version, kind, name) = (super::api_version(obj), super::kind(obj), super::name(obj));
    if api_version.is_empty() || kind.is_empty() {
        return Err(err(
            super::object_id(obj),
            "apiVersion and kind are required".into(),
        ));
    }
    if !is_dns_subdomain(name) {
        return Err(err(
            super::object_id(obj),
            format!("metadata.name {name:?} is not a valid DNS subdomain name"),
        ));
    }
    let group = super::group(api_version);
    let Some((_, _, expected_ns)) = allowed
        .iter()
        .find(|(g, k, _)| g.as_ref() == group && k.as_ref() == kind)
    else {
        let list: Vec<String> = allowed
            .iter()
            .map(|(g, k, _)| format!("{}.{}", k.as_ref(), g.as_ref()))
            .collect();
        return Err(err(
            super::object_id(obj),
            format!(
                "{kind} ({api_version}) may not be rendered here; allowed: {}",
                list.join(", ")
            ),
        ));
    };
    let expected_ns = expected_ns.as_ref();
    // Every check reads the object; only then is it changed (nothing to undo, nothing copied to check).
    let Some(meta) = obj.get("metadata").and_then(Value::as_object) else {
        return Err(err(
            format!("{kind}//{name}"),
            "metadata must be a mapping".into(),
        ));
    };
    let namespace = meta.get("namespace").and_then(Value::as_str);
    if let Some(ns) = namespace.filter(|ns| *ns != expected_ns) {
        let reason = format!("namespace {ns:?} is not allowed; {kind} must be in {expected_ns:?}");
        return Err(err(format!("{kind}/{ns}/{name}"), reason));
    }
    if meta.get("labels").is_some_and(|l| !l.is_object()) {
        return Err(err(
            format!("{kind}/{expected_ns}/{name}"),
            "metadata.labels must be a mapping".into(),
        ));
    }
    let set_namespace = namespace.is_none().then(|| expected_ns.to_string());
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(ns) = set_namespace {
            meta.insert("namespace".into(), Value::String(ns));
        }
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            for (k, v) in child_labels {
                labels.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
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

/// Parse a template's output: a stream of YAML documents. Output whose first non-blank character is `{`, `[`
/// or `"` (a whole output that is one embedded value) is read as a stream of JSON values first (JSON is YAML,
/// one document per value) because serde_json parses it an order of magnitude faster than the YAML parser; output that is not valid JSON is read as YAML,
/// so the result never depends on which parser succeeded, only the speed does.
pub(super) fn parse_output(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['{', '[', '"'])
        && let Ok(docs) = serde_json::Deserializer::from_str(trimmed)
            .into_iter::<Value>()
            .collect::<Result<Vec<Value>, _>>()
    {
        return Ok(docs);
    }
    #[cfg(test)]
    YAML_PARSES.with(|n| n.set(n.get() + 1));
    serde_saphyr::from_multiple(text).map_err(|e| e.to_string())
}

#[cfg(test)]
thread_local! {
    /// How many template outputs this thread parsed with the YAML parser (tests check the fast path is taken).
    static YAML_PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// `tojson` without arguments writes compact JSON with serde_json (several times faster than the built-in
/// filter, which also escapes `<`, `>`, `&` and `'` for HTML; nothing here is HTML). With `indent` it is the
/// built-in filter.
fn tojson_filter(
    value: &minijinja::Value,
    indent: Option<minijinja::Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    if indent.is_some() || kwargs.args().next().is_some() {
        return minijinja::filters::tojson(value, indent, kwargs);
    }
    match super::lazy::as_json(value) {
        Some(json) => serde_json::to_string(json),
        None => serde_json::to_string(value),
    }
    .map(minijinja::Value::from_safe_string)
    .map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "cannot serialize to JSON",
        )
        .with_source(e)
    })
}

/// The `merge` filter: `base | merge(overlay)` deep-merges two maps: maps merge key by key (keys keep their
/// first position), anything else is replaced by the overlay's value. The same rule as [`deep_merge`].
fn merge_filter(
    base: minijinja::Value,
    overlay: minijinja::Value,
) -> Result<minijinja::Value, minijinja::Error> {
    use minijinja::value::ValueKind;
    for (side, v) in [("value", &base), ("argument", &overlay)] {
        if v.kind() != ValueKind::Map {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("merge: the {side} must be a map, got {}", v.kind()),
            ));
        }
    }
    Ok(merge_values(&base, &overlay))
}

fn merge_values(base: &minijinja::Value, overlay: &minijinja::Value) -> minijinja::Value {
    use minijinja::value::ValueKind;
    // A map's (key, value) pairs as it iterates them (no lookup per key).
    let pairs = |v: &minijinja::Value| {
        (v.kind() == ValueKind::Map)
            .then(|| v.as_object().and_then(|o| o.try_iter_pairs()))
            .flatten()
    };
    let (Some(base_pairs), Some(overlay_pairs)) = (pairs(base), pairs(overlay)) else {
        return overlay.clone();
    };
    let mut merged: Vec<(minijinja::Value, minijinja::Value)> = base_pairs.collect();
    for (key, value) in overlay_pairs {
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => *existing = merge_values(existing, &value),
            None => merged.push((key, value)),
        }
    }
    minijinja::Value::from_pairs(merged)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{IntentKind, SourceFile, parse_files};

    fn yaml_parses() -> usize {
        YAML_PARSES.with(|n| n.get())
    }

    #[test]
    fn json_output_parses_like_yaml_and_anything_else_falls_back_to_yaml() {
        let json = r#"{"a": {"b": [1, "x", true, null]}, "c": "d"} {"e": 1.5}"#;
        let yaml = "a: {b: [1, x, true, null]}\nc: d\n---\ne: 1.5\n";
        let before = yaml_parses();
        assert_eq!(parse_output(json).unwrap(), parse_output(yaml).unwrap());
        assert_eq!(
            yaml_parses(),
            before + 1,
            "only the YAML text goes to the YAML parser"
        );
        // A YAML flow mapping that is not JSON still parses, as YAML.
        assert_eq!(parse_output("{a: 1}").unwrap(), vec![json!({"a": 1})],);
        assert_eq!(yaml_parses(), before + 2);
        assert!(parse_output("{a: [").is_err());
    }

    #[test]
    fn merge_filter_deep_merges_maps_and_refuses_anything_else() {
        let mut env = Environment::new();
        env.add_filter("merge", merge_filter);
        env.add_filter("tojson", tojson_filter);
        let out = env
            .render_str(
                r#"{{ {"a": {"x": 1, "y": [1]}, "b": 1} | merge({"a": {"y": [2], "z": 3}, "c": "<&>"}) | tojson }}"#,
                (),
            )
            .unwrap();
        assert_eq!(out, r#"{"a":{"x":1,"y":[2],"z":3},"b":1,"c":"<&>"}"#);
        let err = env
            .render_str(r#"{{ {"a": 1} | merge([1]) }}"#, ())
            .unwrap_err();
        assert!(
            describe(&err).contains("merge: the argument must be a map"),
            "{err}"
        );
        // tojson with an indent is the built-in filter.
        let pretty = env
            .render_str(r#"{{ {"a": 1} | tojson(indent=2) }}"#, ())
            .unwrap();
        assert_eq!(pretty, "{\n  \"a\": 1\n}");
    }

    #[test]
    fn the_built_in_application_and_catalog_templates_take_the_json_fast_path() {
        let (mut files, root) = (Vec::new(), env!("CARGO_MANIFEST_DIR"));
        let mut stack = vec![std::path::Path::new(root).join("../../examples/cluster-repo")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml") {
                    files.push(SourceFile {
                        path: path.display().to_string(),
                        data: std::fs::read(&path).unwrap(),
                    });
                }
            }
        }
        let (docs, problems) = parse_files(&files);
        assert!(problems.is_empty(), "{problems:?}");
        let renderer = Renderer::new(Templates::embedded(), RenderOptions::default());
        let mut catalogs = std::collections::BTreeSet::new();
        let mut rendered = 0;
        for doc in &docs {
            if doc.key.kind != IntentKind::ApplicationInstance {
                continue;
            }
            let app = doc.application_instance().unwrap();
            let before = yaml_parses();
            let objects = renderer.render_application(&app).unwrap();
            assert_eq!(
                yaml_parses(),
                before,
                "{}: a template output went to the YAML parser",
                doc.key
            );
            rendered += objects.len();
            if app.spec.integrations.is_some() {
                catalogs.insert(app.spec.app_ref.catalog_id.clone());
            }
        }
        assert!(rendered >= 8, "rendered {rendered} objects");
        assert_eq!(
            catalogs.len(),
            3,
            "every catalog template is exercised: {catalogs:?}"
        );
    }
}
