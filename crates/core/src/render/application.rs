//! An ApplicationInstance's children, for the engine that installs its chart: Flux (a HelmRelease and its
//! chart source, in the intent's namespace) or Argo CD (an Application in the intent's namespace and the
//! AppProject it runs under, in Argo CD's namespace). One render function for both; the engine picks the
//! templates and the kinds the output may contain.

use std::collections::BTreeMap;

use minijinja::context;
use minijinja::value::Serde;
use serde_json::{Map, Value, json};

use super::HelmEngine;
use super::engine::{Renderer, finalize, oci_chart_url};
use super::templates;
use super::{RenderError, deep_merge, sort_objects};
use crate::api::{
    AppMode, ApplicationInstance, ApplicationInstanceSpec, ChartSourceType, ChartSpec,
    Integrations, ValuesSource, ValuesSpec, labels,
};

/// Why this engine cannot serve a spec, as (field, reason): one rule for the renderer, admission and `render`.
/// Argo CD has no `valuesFrom`: a Secret's values copied into an Application would be readable by everyone
/// who can read Applications, and a copied ConfigMap would not follow its changes; both are refused.
pub fn engine_refusal(
    engine: &HelmEngine,
    spec: &ApplicationInstanceSpec,
) -> Option<(String, String)> {
    if !matches!(engine, HelmEngine::ArgoCd { .. }) || spec.mode == AppMode::Placeholder {
        return None;
    }
    let values = spec.values.as_ref()?;
    match values.source {
        ValuesSource::Inline => None,
        ValuesSource::SecretRef | ValuesSource::ConfigMapRef => Some((
            "spec.values.source".into(),
            format!(
                "{} is not served by the argocd engine: Argo CD has no valuesFrom, and the operator does not \
                 copy a Secret's or ConfigMap's values into the Application (everyone who can read Applications \
                 would read them, and later changes would not be followed); use inline values (secrets through \
                 the externalSecrets integration) or the flux engine",
                values.source.as_str()
            ),
        )),
    }
}

impl Renderer {
    /// Render an ApplicationInstance into its engine's children. Placeholder mode renders nothing.
    pub fn render_application(&self, app: &ApplicationInstance) -> Result<Vec<Value>, RenderError> {
        self.render_application_with(app, None)
    }

    /// As [`render_application`](Self::render_application), with an upgrade applied on top: a new chart
    /// version and/or a values patch (the `helm` engine's parameters).
    pub(super) fn render_application_with(
        &self,
        app: &ApplicationInstance,
        upgrade: Option<(&Option<String>, &Option<Value>)>,
    ) -> Result<Vec<Value>, RenderError> {
        let spec = &app.spec;
        if spec.mode == AppMode::Placeholder {
            return Ok(Vec::new());
        }
        let engine = &self.options().helm_engine;
        if let Some((field, reason)) = engine_refusal(engine, spec) {
            return Err(RenderError::Intent { field, reason });
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
        // Built once as a template value and shared (reference-counted) by every template of this intent.
        // The spec is converted only if a template reads into it (the shipped ones do not).
        let app_ctx = context! {
            name => app_name,
            namespace => namespace,
            labels => Serde(app.metadata.labels.as_ref().unwrap_or(&EMPTY)),
            annotations => Serde(app.metadata.annotations.as_ref().unwrap_or(&EMPTY)),
            spec => super::lazy::map(spec.clone()),
        };
        let integrations = spec.integrations.clone().unwrap_or_default();
        let integrations_ctx = integrations_context(&integrations);
        let release_ctx = minijinja::Value::from(Serde(release));

        // Values: the catalog's translation of integrations, then the inline values on top, then an upgrade's patch.
        let any_integration = integrations.external_secrets_enabled()
            || integrations.cert_manager_enabled()
            || integrations.ingress_enabled();
        let mut values = if any_integration {
            let ctx = context! {
                app => app_ctx.clone(),
                release => release_ctx.clone(),
                integrations => integrations_ctx.clone(),
                clusterId => cluster_id,
            };
            self.integration_values(&spec.app_ref.catalog_id, ctx)?
        } else {
            Value::Object(Map::new())
        };
        let values_from = merge_intent_values(values_spec, &mut values)?;
        if let Some((version, patch)) = upgrade {
            if let Some(v) = version {
                chart.version = v.clone();
            }
            if let Some(p) = patch {
                deep_merge(&mut values, p);
            }
        }

        let trust = self.options().chart_trust.get();
        if let Some((field, reason)) = super::chart_trust::chart_refusal_of(engine, &trust, &chart)
        {
            return Err(RenderError::Intent { field, reason });
        }
        let verify = super::chart_trust::source_verify(&trust, &chart, &release.name);
        let (source_kind, source_template, source_url) = chart_source(&chart);
        let (first, second) = match engine {
            HelmEngine::Flux => (source_template, templates::HELM_RELEASE),
            HelmEngine::ArgoCd { .. } => (templates::ARGOCD_PROJECT, templates::ARGOCD_APPLICATION),
        };
        let argocd = match engine {
            HelmEngine::Flux => minijinja::Value::UNDEFINED,
            HelmEngine::ArgoCd {
                namespace: argocd_ns,
            } => context! {
                namespace => argocd_ns,
                project => HelmEngine::project_name(namespace, &release.name),
            },
        };
        let ctx = context! {
            app => app_ctx,
            chart => Serde(&chart),
            release => release_ctx,
            values => super::lazy::json(values),
            valuesFrom => super::lazy::json(Value::Array(values_from)),
            source => context! {
                kind => source_kind,
                apiVersion => "source.toolkit.fluxcd.io/v1",
                name => &release.name,
                namespace => namespace,
                url => source_url,
                verify => verify.as_ref().map(|v| Serde(v.verify.clone())),
                keys => verify.as_ref().and_then(|v| v.keys_secret.as_ref()).map(Serde),
            },
            argocd => argocd,
            integrations => integrations_ctx,
            clusterId => cluster_id,
        };
        let mut objects = self.render_objects(first, ctx.clone(), "spec.chart")?;
        let first_count = objects.len();
        objects.extend(self.render_objects(second, ctx, "spec.release")?);
        let names = [first, second];
        finalize_app_children(
            engine,
            &mut objects,
            first_count,
            names,
            cluster_id,
            app_name,
            namespace,
        )?;
        sort_objects(&mut objects);
        Ok(objects)
    }

    /// The chart values the catalog entry's integrations template translates the enabled integrations into
    /// (rendered with `ctx`): one YAML mapping, or nothing (no values).
    fn integration_values(
        &self,
        catalog_id: &str,
        ctx: minijinja::Value,
    ) -> Result<Value, RenderError> {
        let name = templates::catalog_values(catalog_id);
        if !self.templates().contains(&name) {
            return Err(RenderError::Intent {
                field: "spec.integrations".into(),
                reason: format!(
                    "catalog entry {catalog_id:?} has no integrations template ({name}); integrations cannot be translated"
                ),
            });
        }
        let mut docs = self.render_objects(&name, ctx, "spec.integrations")?;
        match docs.as_mut_slice() {
            [] => Ok(Value::Object(Map::new())),
            [v @ Value::Object(_)] => Ok(std::mem::take(v)),
            _ => Err(RenderError::Output {
                name,
                reason: "must render exactly one YAML mapping of chart values".into(),
            }),
        }
    }
}

/// The template context of an intent's integrations.
fn integrations_context(integrations: &Integrations) -> minijinja::Value {
    context! {
        externalSecrets => integrations.external_secrets_enabled(),
        certManager => integrations.cert_manager_enabled(),
        ingress => context! {
            enabled => integrations.ingress_enabled(),
            host => integrations.ingress.as_ref().and_then(|i| i.host.as_deref()).unwrap_or_default(),
        },
    }
}

/// The chart's source: its Flux kind, the Flux template that renders it and its URL (for an OCI chart the
/// chart's own repository, `oci://…/<chart>`, which is also what Argo CD's native OCI source takes).
fn chart_source(chart: &ChartSpec) -> (&'static str, &'static str, String) {
    match chart.source_type {
        ChartSourceType::Oci => (
            "OCIRepository",
            templates::SOURCE_OCI,
            oci_chart_url(&chart.url, &chart.name),
        ),
        ChartSourceType::Helm => ("HelmRepository", templates::SOURCE_HELM, chart.url.clone()),
    }
}

/// Merge the intent's values into `values`: inline values on top of them; a Secret or ConfigMap reference
/// is returned as the HelmRelease's `valuesFrom` instead (referenced, never copied).
fn merge_intent_values(
    values_spec: &ValuesSpec,
    values: &mut Value,
) -> Result<Vec<Value>, RenderError> {
    let mut values_from = Vec::new();
    match values_spec.source {
        ValuesSource::Inline => {
            if let Some(inline) = &values_spec.inline {
                deep_merge(values, &Value::Object(inline.clone()));
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
    Ok(values_from)
}

/// Check and label every rendered child of an ApplicationInstance (see [`finalize`]): the first
/// `first_count` come from `names[0]`, the rest from `names[1]`. A child outside the intent's namespace (the
/// AppProject) also carries the intent's namespace in a label, to be mapped back to its intent.
fn finalize_app_children(
    engine: &HelmEngine,
    objects: &mut [Value],
    first_count: usize,
    names: [&str; 2],
    cluster_id: &str,
    app_name: &str,
    namespace: &str,
) -> Result<(), RenderError> {
    let argocd_namespace = engine.argocd_namespace();
    let allowed: Vec<(&str, &str, &str)> = engine
        .child_kinds()
        .iter()
        .map(|(v, k, here)| {
            let ns = if *here { namespace } else { argocd_namespace };
            (super::group(v), *k, ns)
        })
        .chain(
            // The chart source's Secret of public keys (chart trust), beside the OCIRepository.
            matches!(engine, HelmEngine::Flux).then_some(("", "Secret", namespace)),
        )
        .collect();
    // In key order, as they have always been written.
    let child_labels = [
        (labels::APPLICATION_INSTANCE, app_name),
        (labels::CLUSTER_ID, cluster_id),
        (labels::MANAGED_BY, labels::MANAGED_BY_OPERATOR),
    ];
    let shared_labels = [
        (labels::APPLICATION_INSTANCE, app_name),
        (labels::APPLICATION_INSTANCE_NAMESPACE, namespace),
        (labels::CLUSTER_ID, cluster_id),
        (labels::MANAGED_BY, labels::MANAGED_BY_OPERATOR),
    ];
    for (i, obj) in objects.iter_mut().enumerate() {
        let name = names[usize::from(i >= first_count)];
        // An object outside the intent's namespace (Argo CD's AppProject) also names that namespace.
        let shared = allowed.iter().any(|(g, k, ns)| {
            *ns != namespace
                && *k == super::kind(obj)
                && *g == super::group(super::api_version(obj))
        });
        let stamp = if shared {
            &shared_labels[..]
        } else {
            &child_labels[..]
        };
        finalize(obj, name, i, &allowed, stamp)?;
    }
    Ok(())
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Engine, Operation};
    use crate::render::{ARGOCD_RESOURCES_FINALIZER, RenderOptions, Templates};

    fn argocd() -> Renderer {
        Renderer::new(
            Templates::embedded(),
            RenderOptions {
                helm_engine: HelmEngine::parse("argocd", "argo").unwrap(),
                ..RenderOptions::default()
            },
        )
    }

    fn app(source_type: &str, url: &str, values: Value) -> ApplicationInstance {
        serde_json::from_value(json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "wiki", "namespace": "team-a", "generation": 1,
                "labels": {"app.vworkspace.io/cluster-id": "c1"}},
            "spec": {
                "appRef": {"catalogId": "wiki"}, "mode": "managed",
                "chart": {"sourceType": source_type, "url": url, "name": "wiki", "version": "1.2.3"},
                "release": {"name": "wiki", "namespace": "team-a"},
                "values": values,
            }
        }))
        .unwrap()
    }

    fn inline() -> Value {
        json!({"source": "inline", "inline": {"replicas": 2, "namespace": "elsewhere"}})
    }

    #[test]
    fn an_oci_chart_becomes_an_application_with_a_native_oci_source_and_a_scoped_project() {
        let objects = argocd()
            .render_application(&app("oci", "oci://registry.example/charts", inline()))
            .unwrap();
        let kinds: Vec<&str> = objects.iter().map(crate::render::kind).collect();
        assert_eq!(kinds, ["AppProject", "Application"]);
        let (project, application) = (&objects[0], &objects[1]);
        assert_eq!(crate::render::namespace(project), "argo");
        assert_eq!(crate::render::name(project), "team-a.wiki");
        assert_eq!(
            project["metadata"]["labels"][labels::APPLICATION_INSTANCE_NAMESPACE],
            "team-a"
        );
        assert_eq!(
            project["spec"]["sourceRepos"],
            json!(["oci://registry.example/charts/wiki"])
        );
        assert_eq!(project["spec"]["sourceNamespaces"], json!(["team-a"]));
        assert_eq!(
            project["spec"]["destinations"][0]["namespace"],
            json!("team-a")
        );
        assert_eq!(project["spec"]["clusterResourceWhitelist"], json!([]));

        assert_eq!(crate::render::namespace(application), "team-a");
        assert!(
            application["metadata"]["labels"]
                .get(labels::APPLICATION_INSTANCE_NAMESPACE)
                .is_none()
        );
        assert_eq!(
            application["metadata"]["labels"][labels::APPLICATION_INSTANCE],
            "wiki"
        );
        assert_eq!(
            application["metadata"]["finalizers"],
            json!([ARGOCD_RESOURCES_FINALIZER])
        );
        let source = &application["spec"]["source"];
        assert_eq!(source["repoURL"], "oci://registry.example/charts/wiki");
        assert_eq!(source["path"], ".");
        assert!(source.get("chart").is_none());
        assert_eq!(source["targetRevision"], "1.2.3");
        assert_eq!(
            source["helm"]["valuesObject"],
            json!({"replicas": 2, "namespace": "elsewhere"})
        );
        assert_eq!(application["spec"]["project"], "team-a.wiki");
        assert_eq!(
            application["spec"]["syncPolicy"]["automated"],
            json!({"prune": true, "selfHeal": true})
        );
    }

    #[test]
    fn a_helm_repository_chart_is_named_by_chart_and_the_flux_engine_is_unchanged() {
        let a = app("helm", "https://charts.example", inline());
        let objects = argocd().render_application(&a).unwrap();
        let source = &objects[1]["spec"]["source"];
        assert_eq!(source["repoURL"], "https://charts.example");
        assert_eq!(source["chart"], "wiki");
        assert!(source.get("path").is_none());
        let flux = Renderer::new(Templates::embedded(), RenderOptions::default())
            .render_application(&a)
            .unwrap();
        let kinds: Vec<&str> = flux.iter().map(crate::render::kind).collect();
        assert_eq!(kinds, ["HelmRepository", "HelmRelease"]);
    }

    #[test]
    fn values_from_a_secret_or_config_map_are_refused_by_the_argocd_engine_only() {
        for (source, key) in [("secretRef", "secretRef"), ("configMapRef", "configMapRef")] {
            let values = json!({"source": source, key: {"name": "v", "key": "values.yaml"}});
            let a = app("oci", "oci://r.example/c", values);
            let err = argocd().render_application(&a).unwrap_err();
            assert_eq!(err.field(), "spec.values.source", "{err}");
            assert!(
                err.to_string().contains("Argo CD has no valuesFrom"),
                "{err}"
            );
            assert!(
                Renderer::new(Templates::embedded(), RenderOptions::default())
                    .render_application(&a)
                    .is_ok()
            );
        }
    }

    #[test]
    fn an_override_template_is_used_but_cannot_move_the_application_out_of_the_namespace() {
        let mut templates = Templates::embedded();
        let own = templates
            .get(templates::ARGOCD_APPLICATION)
            .unwrap()
            .replace(
                "\"revisionHistoryLimit\": 10",
                "\"revisionHistoryLimit\": 3",
            );
        templates.insert(templates::ARGOCD_APPLICATION, own.clone());
        let options = RenderOptions {
            helm_engine: HelmEngine::parse("argocd", "argocd").unwrap(),
            ..RenderOptions::default()
        };
        let r = Renderer::new(templates.clone(), options.clone());
        let objects = r
            .render_application(&app("oci", "oci://r.example/c", inline()))
            .unwrap();
        assert_eq!(objects[1]["spec"]["revisionHistoryLimit"], 3);

        let moved = own.replace(
            "\"namespace\": {{ app.namespace | tojson }},\n    \"finalizers\"",
            "\"namespace\": \"argocd\",\n    \"finalizers\"",
        );
        assert_ne!(moved, own);
        templates.insert(templates::ARGOCD_APPLICATION, moved);
        let err = Renderer::new(templates, options)
            .render_application(&app("oci", "oci://r.example/c", inline()))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("namespace \"argocd\" is not allowed; Application must be in \"team-a\""),
            "{err}"
        );
    }

    #[test]
    fn an_upgrade_operation_renders_the_application_at_the_target_version() {
        let target = app("oci", "oci://r.example/c", inline());
        let op: Operation = serde_json::from_value(json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
            "metadata": {"name": "up", "namespace": "team-a", "uid": "u1"},
            "spec": {"type": "Upgrade", "engine": "helm", "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "wiki"},
                "parameters": {"targetVersion": "1.3.0", "valuesPatch": {"replicas": 3}}}
        }))
        .unwrap();
        assert_eq!(op.spec.engine, Engine::Helm);
        let objects = argocd().render_operation(&op, &target).unwrap();
        let application = objects
            .iter()
            .find(|o| crate::render::kind(o) == "Application")
            .unwrap();
        assert_eq!(application["spec"]["source"]["targetRevision"], "1.3.0");
        assert_eq!(
            application["spec"]["source"]["helm"]["valuesObject"]["replicas"],
            3
        );
        let project = objects
            .iter()
            .find(|o| crate::render::kind(o) == "AppProject")
            .unwrap();
        assert_eq!(crate::render::namespace(project), "argo");
    }

    #[test]
    fn projects_of_different_instances_never_share_a_name() {
        // With `-` these two would both be "a-b-c".
        assert_ne!(
            HelmEngine::project_name("a-b", "c"),
            HelmEngine::project_name("a", "b-c")
        );
        let long = HelmEngine::project_name(&"n".repeat(63), &"r".repeat(53));
        assert!(crate::render::is_dns_subdomain(&long), "{long}");
    }

    #[test]
    fn the_engine_is_parsed_by_name() {
        assert_eq!(HelmEngine::parse("flux", "x").unwrap(), HelmEngine::Flux);
        assert_eq!(
            HelmEngine::parse("argocd", "x").unwrap().argocd_namespace(),
            "x"
        );
        assert!(
            HelmEngine::parse("argo", "x")
                .unwrap_err()
                .contains("flux or argocd")
        );
    }
}
