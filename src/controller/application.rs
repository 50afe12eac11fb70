//! The ApplicationInstance reconciler, a pipeline: trust (the intent source proves the live spec) → validate →
//! render → apply (HelmRelease + chart source) → fold the children's status; then report (status, Events,
//! control-plane events, git notes). Every way it can end is an [`Ending`], whose conditions are computed in
//! one place.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, instrument, warn};

use super::chart_trust::ChartSignature;
use super::children::Lookup;
use super::context::{Context, Outcome, delays};
use super::status::release_conditions;
use super::trust::{Untrusted, trust};
use crate::api::conditions::{Cond, FAILED_READY_REASONS, merge_conditions};
use crate::api::conditions::{reasons, types};
use crate::api::{
    APP_FINALIZER, AppMode, ApplicationInstance, ApplicationInstanceStatus, AppliedChart, Engine,
    ObjectRef, Operation, OperationType, Phase, labels,
};
use crate::git::notes::NewRecord;
use crate::intent::IntentKind;
use crate::render::HelmEngine;
use crate::source::Origin;
use crate::validate;

/// Errors of one reconcile. Transient ones are retried with backoff; terminal problems of the intent are
/// not errors but Blocked conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Apply(#[from] crate::k8s::apply::ApplyError),
}

#[instrument(skip_all, fields(cluster = %ctx.settings.cluster_id, namespace = %app.namespace().unwrap_or_default(), object = %app.name_any(), reconcile_id = %fastrand::u64(..)))]
pub async fn reconcile(app: Arc<ApplicationInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = app.namespace().unwrap_or_default();
    let api: Api<ApplicationInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    if !ctx.should_act(app.as_ref(), APP_FINALIZER).await? {
        return Ok(Action::await_change());
    }
    let result = if app.meta().deletion_timestamp.is_some() {
        delete(&app, &api, &ctx).await
    } else {
        apply(&app, &api, &ctx).await
    };
    ctx.metrics
        .reconciled("applicationinstance", result.is_ok(), started.elapsed());
    result
}

pub fn error_policy(_app: Arc<ApplicationInstance>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed; retrying");
    Action::requeue(delays::ERROR)
}

/// The objects an ApplicationInstance owns with this engine, as last rendered (names are fixed by the
/// release name): the release's kind first (its own finalizer uninstalls before the rest go).
fn child_refs(app: &ApplicationInstance, engine: &HelmEngine) -> Vec<Value> {
    let namespace = app.namespace().unwrap_or_default();
    let Some(release) = &app.spec.release else {
        return Vec::new();
    };
    engine
        .child_kinds()
        .iter()
        .map(|(api_version, kind, here)| {
            let (name, ns) = if *here {
                (release.name.clone(), namespace.clone())
            } else {
                (
                    HelmEngine::project_name(&namespace, &release.name),
                    engine.argocd_namespace().to_string(),
                )
            };
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}})
        })
        .collect()
}

/// Whether a live child is this instance's: its instance label, and (outside the instance's namespace) its
/// namespace label.
fn owned_by(live: &Value, app: &ApplicationInstance) -> bool {
    let label = |key: &str| {
        live.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    };
    let namespace = app.namespace().unwrap_or_default();
    label(labels::APPLICATION_INSTANCE) == Some(&app.name_any())
        && (crate::render::namespace(live) == namespace
            || label(labels::APPLICATION_INSTANCE_NAMESPACE) == Some(namespace.as_str()))
}

/// A deleted instance: delete its children, say so while they go, and release the finalizer once they are
/// gone (Flux's own finalizer on the HelmRelease, or Argo CD's resources finalizer on the Application,
/// uninstalls the release first).
async fn delete(
    app: &ApplicationInstance,
    api: &Api<ApplicationInstance>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !super::finalize::has(app, APP_FINALIZER) {
        return Ok(Action::await_change());
    }
    let mut remaining = Vec::new();
    let namespace = app.namespace().unwrap_or_default();
    for child in child_refs(app, &ctx.settings.helm_engine) {
        let owned = match ctx.resources.get(&child).await {
            Ok(Some(live)) => owned_by(&live, app),
            Ok(None) | Err(crate::k8s::apply::ApplyError::NotInstalled { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        // A child outside the namespace (Argo CD's AppProject) goes last: Argo CD needs the project to
        // uninstall the Application's resources.
        let later = crate::render::namespace(&child) != namespace && !remaining.is_empty();
        if owned && (later || ctx.resources.delete(&child).await?) {
            remaining.push(crate::render::object_id(&child));
        }
    }
    if remaining.is_empty() {
        super::finalize::remove(api, app, APP_FINALIZER).await?;
        ctx.metrics.write("finalizer");
        info!("children removed; finalizer released");
        Ok(Action::await_change())
    } else {
        let conds = [Cond::new(
            types::DELETING,
            "True",
            reasons::WAITING_FOR_CHILD_RESOURCES,
            format!("waiting for {}", remaining.join(", ")),
        )];
        write_status(app, ctx, &conds, |_| {}).await?;
        Ok(Action::requeue(delays::PROGRESS))
    }
}

/// The newest upgrade Operation (helm engine) that currently shapes this instance's HelmRelease: Running or
/// Succeeded, started at the instance's current generation. The Operation never writes the HelmRelease
/// itself; this reconciler renders it with the upgrade applied, so the two never fight.
pub async fn active_upgrade(
    app: &ApplicationInstance,
    ctx: &Context,
) -> Result<Option<Operation>, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let targets_app = |op: &Operation| {
        op.spec.engine == Engine::Helm
            && op.spec.type_ == OperationType::Upgrade
            && op.spec.target_ref.name == app.name_any()
            && op.namespace().as_deref() == Some(namespace.as_str())
    };
    // Most instances have no upgrade Operation at all: the Operation controller's store says so without a
    // request. An Operation can only be Running or Succeeded after that controller saw it, so once the store
    // has synced, absence there is absence. Candidates are read fresh from the API server.
    // At start the instances' store can be ready before the Operations' store: wait for it (it takes
    // milliseconds) rather than list Operations once per instance (0.55 lists per instance on 500 at start, in
    // the controller bench). After 10 s without a complete list, the API server is asked.
    let mut waited = std::time::Duration::ZERO;
    let synced = loop {
        if ctx
            .operations_synced
            .load(std::sync::atomic::Ordering::Acquire)
        {
            break true;
        }
        if waited >= std::time::Duration::from_secs(10) {
            break false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += std::time::Duration::from_millis(50);
    };
    if synced && ctx.operations.find(|op| targets_app(op)).is_none() {
        return Ok(None);
    }
    let api: Api<Operation> = Api::namespaced(ctx.client.clone(), &namespace);
    let generation = app.metadata.generation.unwrap_or_default().to_string();
    let mut candidates: Vec<Operation> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|op| {
            targets_app(op)
                && op.meta().deletion_timestamp.is_none()
                && op.status.as_ref().is_some_and(|s| {
                    matches!(s.phase, Some(Phase::Running | Phase::Succeeded))
                        && s.outputs.get("appGeneration") == Some(&generation)
                })
        })
        .collect();
    candidates.sort_by_key(|op| op.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(candidates.pop())
}

/// Where a reconcile of a live (not deleted) instance ended. The pipeline — [`trust`] (shared with the
/// Operation reconciler) → [`validate`] → [`render`] → [`apply_children`] → fold — stops at the first step
/// that cannot go on; [`Ending::conditions`] computes the status of every ending in one place, and
/// [`Ending::next`] when to look again.
enum Ending {
    /// `apps.vworkspace.io/reconcile=disabled`: children left as they are.
    Paused,
    /// The intent source does not prove this spec (Blocked with its reason).
    Untrusted {
        reason: &'static str,
        message: String,
    },
    /// Proven, but refused by the API server's rules or the webhook's (PolicyDenied).
    Invalid {
        origin: Origin,
        message: String,
    },
    /// `mode: placeholder`: nothing to install.
    Placeholder {
        origin: Origin,
    },
    RenderFailed {
        origin: Origin,
        message: String,
    },
    /// A kind to write is not served (Flux not installed).
    MissingDependencies {
        origin: Origin,
        message: String,
    },
    /// The namespace lost its gate label while rendering: nothing written, nothing said.
    Ungated,
    /// The intent source cannot tell yet (Flux has likely not applied the newest revision): nothing written,
    /// nothing said, asked again soon.
    Pending,
    /// Children applied: their status folded in.
    Applied(Box<Applied>),
}

struct Applied {
    origin: Origin,
    engine: HelmEngine,
    upgrade: Option<Operation>,
    desired_version: String,
    /// The release's child: Flux's HelmRelease or Argo CD's Application.
    helm_release: Option<Value>,
    /// Flux's chart source.
    source: Option<Value>,
    /// What the trust policy requires of the chart, when it requires a signature.
    signature: Option<ChartSignature>,
}

impl Ending {
    fn origin(&self) -> Option<&Origin> {
        match self {
            Ending::Invalid { origin, .. }
            | Ending::Placeholder { origin }
            | Ending::RenderFailed { origin, .. }
            | Ending::MissingDependencies { origin, .. } => Some(origin),
            Ending::Applied(a) => Some(&a.origin),
            Ending::Paused | Ending::Untrusted { .. } | Ending::Ungated | Ending::Pending => None,
        }
    }

    /// The conditions of this ending (the one place they are computed).
    fn conditions(&self) -> Vec<Cond> {
        let active = Cond::new(types::SUSPENDED, "False", reasons::ACTIVE, "");
        let unblocked = || Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, "");
        let blocked_not_ready = |reason: &'static str, message: &str| {
            vec![
                Cond::new(types::BLOCKED, "True", reason, message),
                Cond::new(types::READY, "False", reason, message),
            ]
        };
        let mut conds = match self {
            Ending::Paused => {
                return vec![Cond::new(
                    types::SUSPENDED,
                    "True",
                    reasons::RECONCILE_PAUSED,
                    "annotation apps.vworkspace.io/reconcile=disabled",
                )];
            }
            Ending::Ungated | Ending::Pending => return Vec::new(),
            Ending::Untrusted { reason, message } => {
                return vec![
                    active,
                    Cond::new(types::VERIFIED, "False", *reason, message.clone()),
                    Cond::new(types::BLOCKED, "True", *reason, message.clone()),
                ];
            }
            _ => vec![active],
        };
        if let Some(origin) = self.origin() {
            conds.push(origin.verified_condition());
        }
        match self {
            Ending::Invalid { message, .. } => {
                conds.extend(blocked_not_ready(reasons::POLICY_DENIED, message))
            }
            Ending::RenderFailed { message, .. } => {
                conds.extend(blocked_not_ready(reasons::RENDER_FAILED, message))
            }
            Ending::MissingDependencies { message, .. } => {
                conds.extend(blocked_not_ready(reasons::MISSING_DEPENDENCIES, message))
            }
            Ending::Placeholder { .. } => conds.extend([
                unblocked(),
                Cond::new(
                    types::READY,
                    "True",
                    reasons::PLACEHOLDER,
                    "placeholder: nothing to install",
                ),
                Cond::new(types::RECONCILING, "False", reasons::STABLE, ""),
            ]),
            Ending::Applied(a) => {
                conds.push(unblocked());
                conds.extend(release_conditions(
                    &a.engine,
                    &a.desired_version,
                    a.helm_release.as_ref(),
                    a.source.as_ref(),
                    a.signature.as_ref(),
                ));
            }
            Ending::Paused | Ending::Ungated | Ending::Pending | Ending::Untrusted { .. } => {}
        }
        conds
    }

    /// When to look again.
    fn next(&self, conds: &[Cond], resync: std::time::Duration) -> Action {
        match self {
            Ending::Paused
            | Ending::Ungated
            | Ending::Invalid { .. }
            | Ending::RenderFailed { .. } => Action::await_change(),
            Ending::Untrusted { .. } | Ending::MissingDependencies { .. } => {
                Action::requeue(delays::WAITING)
            }
            Ending::Pending => Action::requeue(delays::PROGRESS),
            Ending::Placeholder { .. } => Action::requeue(resync),
            Ending::Applied(_) => {
                let settled = conds
                    .iter()
                    .any(|c| c.type_ == types::RECONCILING && c.status == "False");
                Action::requeue(if settled { resync } else { delays::PROGRESS })
            }
        }
    }
}

/// A live instance: the pipeline, then its status, then its outcome.
async fn apply(
    app: &ApplicationInstance,
    api: &Api<ApplicationInstance>,
    ctx: &Context,
) -> Result<Action, Error> {
    // The finalizer may be added on the way (before the first child is written): the instance as the API
    // server last answered.
    let mut current = std::borrow::Cow::Borrowed(app);
    let ending = pipeline(&mut current, api, ctx).await?;
    let app = current.as_ref();
    let conds = ending.conditions();
    if !conds.is_empty() {
        let intent_commit = ending
            .origin()
            .and_then(Origin::intent_commit)
            .map(str::to_string);
        let applied = match &ending {
            Ending::Applied(a) => Some(a),
            _ => None,
        };
        let chart = app.spec.chart.clone();
        let release = app.spec.release.clone().unwrap_or_default();
        write_status(app, ctx, &conds, |s| {
            // Where the intent came from is recorded once it is acted on; a refusal keeps the last record.
            if matches!(ending, Ending::Placeholder { .. } | Ending::Applied(_)) {
                s.intent_commit = intent_commit.clone();
            }
            if let Some(a) = applied {
                s.helm_release_ref = Some(ObjectRef {
                    name: release.name.clone(),
                    namespace: release.namespace.clone(),
                });
                s.last_applied_chart = chart.as_ref().map(|c| AppliedChart {
                    source_type: c.source_type,
                    url: c.url.clone(),
                    name: c.name.clone(),
                    version: a.desired_version.clone(),
                });
            }
        })
        .await?;
    }
    if let Ending::Applied(a) = &ending {
        record_outcome(app, ctx, a, &conds);
    }
    Ok(ending.next(&conds, ctx.settings.resync))
}

/// trust → validate → render → apply → fold.
async fn pipeline(
    app: &mut std::borrow::Cow<'_, ApplicationInstance>,
    api: &Api<ApplicationInstance>,
    ctx: &Context,
) -> Result<Ending, Error> {
    if app.annotations().get(labels::RECONCILE).map(String::as_str)
        == Some(labels::RECONCILE_DISABLED)
    {
        return Ok(Ending::Paused);
    }
    let origin = match trust(
        ctx.source.as_ref(),
        IntentKind::ApplicationInstance,
        app.as_ref(),
    ) {
        Ok(origin) => origin,
        Err(Untrusted::Blocked { reason, message }) => {
            return Ok(Ending::Untrusted { reason, message });
        }
        Err(Untrusted::Pending { .. }) => return Ok(Ending::Pending),
    };
    if let Err(message) = validate(app, ctx) {
        return Ok(Ending::Invalid { origin, message });
    }
    if app.spec.mode == AppMode::Placeholder {
        return Ok(Ending::Placeholder { origin });
    }
    let upgrade = active_upgrade(app, ctx).await?;
    let objects = match render(app, ctx, &origin, upgrade.as_ref()) {
        Ok(objects) => objects,
        Err(message) => return Ok(Ending::RenderFailed { origin, message }),
    };
    let live = match apply_children(app, api, ctx, &objects).await? {
        Applying::Done(live) => live,
        Applying::Missing(message) => {
            return Ok(Ending::MissingDependencies { origin, message });
        }
        Applying::Ungated => return Ok(Ending::Ungated),
    };
    // Fold: the release (HelmRelease or Application) and the chart source (Flux), as last written or seen.
    let release_kind = ctx.settings.helm_engine.release_kind();
    let live_of = |want: &dyn Fn(&str) -> bool| {
        objects
            .iter()
            .find(|o| want(crate::render::kind(o)))
            .and_then(|o| live.get(&crate::render::object_id(o)).cloned().flatten())
    };
    let helm_release = live_of(&|k| k == release_kind);
    let source = live_of(&|k| k == "OCIRepository" || k == "HelmRepository");
    let mut desired_version = app
        .spec
        .chart
        .as_ref()
        .map(|c| c.version.clone())
        .unwrap_or_default();
    if let Some(v) = upgrade
        .as_ref()
        .and_then(|op| op.spec.parameters.as_ref())
        .and_then(|p| p.get("targetVersion"))
        .and_then(Value::as_str)
    {
        desired_version = v.to_string();
    }
    let signature = chart_signature(app, ctx, &desired_version);
    Ok(Ending::Applied(Box::new(Applied {
        origin,
        engine: ctx.settings.helm_engine.clone(),
        upgrade,
        desired_version,
        helm_release,
        source,
        signature,
    })))
}

/// What the chart trust requires of the chart at `version` (an upgrade's included), when it is a signature.
fn chart_signature(
    app: &ApplicationInstance,
    ctx: &Context,
    version: &str,
) -> Option<ChartSignature> {
    let mut chart = app.spec.chart.clone()?;
    chart.version = version.to_string();
    let trust = ctx.renderer.options().chart_trust.get();
    let crate::charts::Requirement::Signed(rule) = trust.requirement(&chart) else {
        return None;
    };
    let pin = chart
        .digest
        .as_ref()
        .map_or_else(String::new, |d| format!("@{d}"));
    Some(ChartSignature {
        chart: format!("{}:{version}{pin}", crate::charts::chart_reference(&chart)),
        expected: rule.expected_signer(),
    })
}

/// Validate: every layer (the API server's rules first, then the webhook's), so that an intent admitted before
/// the policies were installed, or with admission switched off, is judged the same.
fn validate(app: &ApplicationInstance, ctx: &Context) -> Result<(), String> {
    let namespace = app.namespace().unwrap_or_default();
    let vctx = validate::Context {
        cluster_id: Some(&ctx.settings.cluster_id),
        renderer: &ctx.renderer,
    };
    let location = format!("{namespace}/{}", app.name_any());
    let mut problems = validate::check_api_server(
        &location,
        IntentKind::ApplicationInstance,
        &serde_json::to_value(app).unwrap_or_default(),
        None,
        &validate::namespace_stand_in(&namespace, None),
        &vctx,
    );
    problems.extend(validate::check_application(&location, app, &vctx));
    if problems.is_empty() {
        return Ok(());
    }
    Err(problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.reason))
        .collect::<Vec<_>>()
        .join("; "))
}

/// Render the children (with an active upgrade applied), owned by the instance and naming its origin. Only
/// children in the instance's namespace get the owner reference: Kubernetes treats a reference to an owner in
/// another namespace as absent and would collect the child (Argo CD's AppProject, in Argo CD's namespace, is
/// deleted by the finalizer instead).
fn render(
    app: &ApplicationInstance,
    ctx: &Context,
    origin: &Origin,
    upgrade: Option<&Operation>,
) -> Result<Vec<Value>, String> {
    let mut objects = match upgrade {
        Some(op) => ctx.renderer.render_operation(op, app),
        None => ctx.renderer.render_application(app),
    }
    .map_err(|e| e.to_string())?;
    let owner = app
        .controller_owner_ref(&())
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    let (key, value) = origin.annotation();
    let namespace = app.namespace().unwrap_or_default();
    for obj in &mut objects {
        let same_ns = crate::render::namespace(obj) == namespace;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if same_ns && let Some(owner) = &owner {
                meta.insert("ownerReferences".into(), json!([owner]));
            }
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(key.into(), Value::String(value.clone()));
            }
        }
    }
    Ok(objects)
}

enum Applying {
    /// Every child as it is now (object id → live object).
    Done(BTreeMap<String, Option<Value>>),
    /// Kinds not served.
    Missing(String),
    /// The namespace lost its gate label.
    Ungated,
}

/// Apply: server-side apply what differs from the live children (the finalizer first, so deleting the
/// instance cleans up).
async fn apply_children(
    app: &mut std::borrow::Cow<'_, ApplicationInstance>,
    api: &Api<ApplicationInstance>,
    ctx: &Context,
    objects: &[Value],
) -> Result<Applying, Error> {
    let mut missing = Vec::new();
    let mut live = BTreeMap::new();
    for obj in objects {
        // The chart source's Secret of public keys: written every time (the operator may not read Secrets).
        if is_write_only(obj) {
            continue;
        }
        let (kind, ns, name) = (
            crate::render::kind(obj),
            crate::render::namespace(obj),
            crate::render::name(obj),
        );
        // The watch's copy (the cache also holds the answers to our own writes, so it does not lag behind
        // them: a copy that differs from what we would apply is applied over, without reading it first), or
        // the live object while the kind's watch has not listed yet.
        let found = match ctx.children.get(kind, ns, name) {
            Lookup::Present(cached) => Ok(Some(cached)),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => ctx.resources.get(obj).await,
        };
        match found {
            Ok(found) => {
                live.insert(crate::render::object_id(obj), found);
            }
            Err(crate::k8s::apply::ApplyError::NotInstalled { kind }) => missing.push(kind),
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        return Ok(Applying::Missing(format!(
            "not installed: {} ({})",
            missing.join(", "),
            ctx.settings.helm_engine.install_hint()
        )));
    }
    let needs_write = objects.iter().any(|o| {
        !live
            .get(&crate::render::object_id(o))
            .and_then(|l| l.as_ref())
            .is_some_and(|l| crate::k8s::apply::is_subset(o, l))
    });
    if !needs_write {
        return Ok(Applying::Done(live));
    }
    // Re-check the gate right before writing.
    if !ctx
        .namespace_gated(&app.namespace().unwrap_or_default())
        .await?
    {
        return Ok(Applying::Ungated);
    }
    if !super::finalize::has(app.as_ref(), APP_FINALIZER) {
        *app = std::borrow::Cow::Owned(super::finalize::add(api, app, APP_FINALIZER).await?);
        ctx.metrics.write("finalizer");
    }
    // The children do not depend on each other: apply them at once.
    let applied = futures::future::try_join_all(objects.iter().map(|obj| async {
        if is_write_only(obj) {
            return ctx.resources.replace(obj).await.map(Some);
        }
        let current = live
            .get(&crate::render::object_id(obj))
            .and_then(|l| l.as_ref());
        ctx.resources.apply(obj, current).await
    }))
    .await?;
    for (obj, applied) in objects.iter().zip(applied) {
        if let Some(applied) = applied {
            ctx.metrics.write("child");
            if !is_write_only(obj) {
                ctx.children.written(crate::render::kind(obj), &applied);
            }
            live.insert(crate::render::object_id(obj), Some(applied));
        }
    }
    Ok(Applying::Done(live))
}

/// A child the operator writes but may not read (a Secret: the chart source's public keys). It is replaced
/// whole on every reconcile that renders it, so keys someone else added to it are gone at once; it is never
/// cached.
fn is_write_only(obj: &Value) -> bool {
    crate::render::kind(obj) == "Secret" && crate::render::api_version(obj) == "v1"
}

/// Outcomes are noted on the intent commit (GitOps; idempotent: the sink drops records it has seen). A Pull
/// job's result is posted by the agent, which follows the same conditions; Push mode reports by events.
fn record_outcome(app: &ApplicationInstance, ctx: &Context, a: &Applied, conds: &[Cond]) {
    let Some(intent_commit) = a.origin.intent_commit() else {
        return;
    };
    let ready = conds.iter().find(|c| c.type_ == types::READY);
    let degraded = conds
        .iter()
        .find(|c| c.type_ == types::DEGRADED && c.status == "True");
    let (outcome, cond) = match (ready, degraded) {
        (_, Some(d)) => ("Degraded", d),
        (Some(r), None) if r.status == "True" => ("Ready", r),
        // The chart cannot be fetched (a version missing from its repository, a registry refusing): nothing
        // was installed for this generation, and the audit trail says so.
        (Some(r), None)
            if r.status == "False" && FAILED_READY_REASONS.contains(&r.reason.as_str()) =>
        {
            ("Failed", r)
        }
        _ => return,
    };
    let namespace = app.namespace().unwrap_or_default();
    let release = app.spec.release.clone().unwrap_or_default();
    let release_key = match a.engine {
        HelmEngine::Flux => "helmRelease",
        HelmEngine::ArgoCd { .. } => "application",
    };
    let mut children = BTreeMap::from([
        (
            release_key.to_string(),
            format!("{}/{}", namespace, release.name),
        ),
        ("chartVersion".to_string(), a.desired_version.clone()),
    ]);
    if let Some(op) = &a.upgrade {
        children.insert("upgradeOperation".into(), op.name_any());
    }
    // Chart trust: which bytes run (the digest helm-controller installed) and who had to sign them.
    if let Some(sig) = &a.signature {
        children.insert("chartSigner".into(), sig.expected.clone());
        if outcome == "Ready"
            && let Some(digest) = super::chart_trust::installed_digest(a.helm_release.as_ref())
        {
            children.insert("chartDigest".into(), digest.to_string());
        }
    }
    ctx.outcomes.record(Outcome {
        intent_commit: intent_commit.to_string(),
        record: NewRecord {
            cluster: ctx.settings.cluster_id.clone(),
            kind: "ApplicationInstance".into(),
            namespace,
            name: app.name_any(),
            uid: app.uid().unwrap_or_default(),
            generation: app.metadata.generation.unwrap_or_default(),
            outcome: outcome.into(),
            reason: cond.reason.clone(),
            message: cond.message.clone(),
            child_refs: children,
            time: None,
        },
    });
}

/// Merge computed conditions (and other status fields) into the status and write it — only when something
/// changed. Publishes Kubernetes Events and control-plane transitions for changed conditions.
async fn write_status(
    app: &ApplicationInstance,
    ctx: &Context,
    conds: &[Cond],
    fill: impl FnOnce(&mut ApplicationInstanceStatus),
) -> Result<(), Error> {
    let uid = app.uid().unwrap_or_default();
    let current = ctx
        .written
        .current(&uid, app.resource_version().as_deref(), app.status.clone())
        .unwrap_or_default();
    let mut next = current.clone();
    let now = Time(jiff::Timestamp::now());
    merge_conditions(&mut next.conditions, conds, app.metadata.generation, &now);
    next.observed_generation = app.metadata.generation;
    fill(&mut next);
    let mut compare = next.clone();
    compare.last_reconcile_time = current.last_reconcile_time.clone();
    if compare == current {
        return Ok(());
    }
    next.last_reconcile_time = Some(now.0.to_string());
    let endpoints = next.endpoints.clone();
    ctx.apply_status(
        app,
        ("apps.vworkspace.io/v1alpha1", "ApplicationInstance"),
        &next,
        current.conditions,
        conds,
        endpoints,
    )
    .await?;
    Ok(())
}
