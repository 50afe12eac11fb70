//! The ApplicationInstance reconciler: fetch (the verified Git view) → verify (provenance) → render → apply
//! (HelmRelease + chart source) → report (status, Events, control-plane events, git notes).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, instrument, warn};

use super::children::Lookup;
use super::context::{Context, Outcome, Transition, changed, delays};
use super::gitops::Verdict;
use super::status::{Cond, application_conditions, merge_conditions};
use crate::api::conditions::{reasons, types};
use crate::api::{
    APP_FINALIZER, AppMode, ApplicationInstance, ApplicationInstanceStatus, AppliedChart, Engine,
    FIELD_MANAGER, ObjectRef, Operation, OperationType, Phase, labels,
};
use crate::git::notes::NewRecord;
use crate::intent::IntentKind;
use crate::validate;

/// Errors of one reconcile. Transient ones are retried with backoff; terminal problems of the intent are
/// not errors but Blocked conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Apply(#[from] super::apply::ApplyError),
}

/// Whether the operator acts on this intent at all: written by the control plane for this cluster.
pub fn is_ours(meta_labels: &BTreeMap<String, String>, cluster_id: &str) -> bool {
    meta_labels.get(labels::MANAGED_BY).map(String::as_str)
        == Some(labels::MANAGED_BY_CONTROL_PLANE)
        && meta_labels.get(labels::CLUSTER_ID).map(String::as_str) == Some(cluster_id)
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

/// The objects an ApplicationInstance owns, as last rendered (names are fixed by the release name).
fn child_refs(app: &ApplicationInstance) -> Vec<Value> {
    let namespace = app.namespace().unwrap_or_default();
    let Some(release) = &app.spec.release else {
        return Vec::new();
    };
    let mut refs = vec![
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": release.name, "namespace": namespace}}),
    ];
    for kind in ["OCIRepository", "HelmRepository"] {
        refs.push(
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": kind,
            "metadata": {"name": release.name, "namespace": namespace}}),
        );
    }
    refs
}

/// A deleted instance: delete its children, say so while they go, and release the finalizer once they are
/// gone (Flux's own finalizer on the HelmRelease uninstalls the release first).
async fn delete(
    app: &ApplicationInstance,
    api: &Api<ApplicationInstance>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !super::finalize::has(app, APP_FINALIZER) {
        return Ok(Action::await_change());
    }
    let mut remaining = Vec::new();
    for child in child_refs(app) {
        let owned = match ctx.resources.get(&child).await {
            Ok(Some(live)) => {
                live.pointer("/metadata/labels")
                    .and_then(|l| l.get(labels::APPLICATION_INSTANCE))
                    .and_then(Value::as_str)
                    == Some(&app.name_any())
            }
            Ok(None) | Err(super::apply::ApplyError::NotInstalled { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if owned && ctx.resources.delete(&child).await? {
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
    let synced = ctx
        .operations_synced
        .load(std::sync::atomic::Ordering::Acquire);
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

async fn apply(
    app: &ApplicationInstance,
    api: &Api<ApplicationInstance>,
    ctx: &Context,
) -> Result<Action, Error> {
    let namespace = app.namespace().unwrap_or_default();
    let generation = app.metadata.generation;
    // Pause: keep children as they are, say so.
    if app.annotations().get(labels::RECONCILE).map(String::as_str)
        == Some(labels::RECONCILE_DISABLED)
    {
        let conds = [Cond::new(
            types::SUSPENDED,
            "True",
            reasons::RECONCILE_PAUSED,
            "annotation apps.vworkspace.io/reconcile=disabled",
        )];
        write_status(app, ctx, &conds, |_| {}).await?;
        return Ok(Action::await_change());
    }
    let active = Cond::new(types::SUSPENDED, "False", reasons::ACTIVE, "");

    // Verify: the live spec must be the manifest of a verified commit.
    let spec_json = serde_json::to_value(&app.spec).unwrap_or(Value::Null);
    let verdict = ctx.source.check(
        IntentKind::ApplicationInstance,
        &namespace,
        &app.name_any(),
        &spec_json,
        app.labels(),
        app.annotations(),
        app.managed_fields(),
    );
    let origin = match verdict {
        Verdict::Verified { origin } => origin,
        Verdict::Blocked { reason, message } => {
            let conds = [
                active,
                Cond::new(types::VERIFIED, "False", reason, message.clone()),
                Cond::new(types::BLOCKED, "True", reason, message),
            ];
            write_status(app, ctx, &conds, |_| {}).await?;
            return Ok(Action::requeue(delays::WAITING));
        }
    };
    let verified = origin.verified_condition();
    let intent_commit = origin.intent_commit().map(str::to_string);

    // Validate and render (placeholder: nothing to render).
    let vctx = validate::Context {
        cluster_id: Some(&ctx.settings.cluster_id),
        renderer: &ctx.renderer,
    };
    let location = format!("{namespace}/{}", app.name_any());
    // Every layer (the API server's rules first, then the webhook's): an intent admitted before the policies
    // were installed, or with admission switched off, is judged the same.
    let mut problems = validate::check_api_server(
        &location,
        IntentKind::ApplicationInstance,
        &serde_json::to_value(app).unwrap_or_default(),
        None,
        &validate::namespace_stand_in(&namespace, None),
        &vctx,
    );
    problems.extend(validate::check_application(&location, app, &vctx));
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.reason))
            .collect::<Vec<_>>()
            .join("; ");
        let conds = [
            active,
            verified,
            Cond::new(
                types::BLOCKED,
                "True",
                reasons::POLICY_DENIED,
                message.clone(),
            ),
            Cond::new(types::READY, "False", reasons::POLICY_DENIED, message),
        ];
        write_status(app, ctx, &conds, |_| {}).await?;
        return Ok(Action::await_change());
    }
    if app.spec.mode == AppMode::Placeholder {
        let conds = [
            active,
            verified,
            Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
            Cond::new(
                types::READY,
                "True",
                reasons::PLACEHOLDER,
                "placeholder: nothing to install",
            ),
            Cond::new(types::RECONCILING, "False", reasons::STABLE, ""),
        ];
        write_status(app, ctx, &conds, |s| {
            s.intent_commit = intent_commit.clone()
        })
        .await?;
        return Ok(Action::requeue(ctx.settings.resync));
    }
    let upgrade = active_upgrade(app, ctx).await?;
    let rendered = match &upgrade {
        Some(op) => ctx.renderer.render_operation(op, app),
        None => ctx.renderer.render_application(app),
    };
    let mut objects = match rendered {
        Ok(objects) => objects,
        Err(e) => {
            let conds = [
                active,
                verified,
                Cond::new(
                    types::BLOCKED,
                    "True",
                    reasons::RENDER_FAILED,
                    e.to_string(),
                ),
                Cond::new(types::READY, "False", reasons::RENDER_FAILED, e.to_string()),
            ];
            write_status(app, ctx, &conds, |_| {}).await?;
            return Ok(Action::await_change());
        }
    };

    // Apply: owner references and provenance, then server-side apply what differs.
    let owner = app
        .controller_owner_ref(&())
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    for obj in &mut objects {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(owner) = &owner {
                meta.insert("ownerReferences".into(), json!([owner]));
            }
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                let (key, value) = origin.annotation();
                a.insert(key.into(), Value::String(value));
            }
        }
    }
    let mut missing = Vec::new();
    let mut live = BTreeMap::new();
    for obj in &objects {
        let (kind, ns, name) = (
            crate::render::kind(obj),
            crate::render::namespace(obj),
            crate::render::name(obj),
        );
        // The watch's copy when it already carries what we would apply, or when the object does not exist;
        // otherwise (not synced yet, or different: the cache may lag behind our own writes) the live object.
        let found = match ctx.children.get(kind, ns, name) {
            Lookup::Present(cached) if super::apply::is_subset(obj, &cached) => Ok(Some(cached)),
            Lookup::Absent => Ok(None),
            Lookup::Present(_) | Lookup::Unknown => ctx.resources.get(obj).await,
        };
        match found {
            Ok(found) => {
                live.insert(crate::render::object_id(obj), found);
            }
            Err(super::apply::ApplyError::NotInstalled { kind }) => missing.push(kind),
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        let message = format!("not installed: {} (install Flux)", missing.join(", "));
        let conds = [
            active,
            verified,
            Cond::new(
                types::BLOCKED,
                "True",
                reasons::MISSING_DEPENDENCIES,
                message.clone(),
            ),
            Cond::new(
                types::READY,
                "False",
                reasons::MISSING_DEPENDENCIES,
                message,
            ),
        ];
        write_status(app, ctx, &conds, |_| {}).await?;
        return Ok(Action::requeue(delays::WAITING));
    }
    let needs_write = objects.iter().any(|o| {
        !live
            .get(&crate::render::object_id(o))
            .and_then(|l| l.as_ref())
            .is_some_and(|l| super::apply::is_subset(o, l))
    });
    // The instance as the API server last answered (it changes when the finalizer is added).
    let mut app = std::borrow::Cow::Borrowed(app);
    if needs_write {
        // Re-check the gate right before writing.
        if !ctx.namespace_gated(&namespace).await? {
            return Ok(Action::await_change());
        }
        // The finalizer goes on before the first child exists, so deleting the instance cleans up.
        if !super::finalize::has(app.as_ref(), APP_FINALIZER) {
            app = std::borrow::Cow::Owned(super::finalize::add(api, &app, APP_FINALIZER).await?);
            ctx.metrics.write("finalizer");
        }
        // The children do not depend on each other: apply them at once.
        let applied = futures::future::try_join_all(objects.iter().map(|obj| {
            let current = live
                .get(&crate::render::object_id(obj))
                .and_then(|l| l.as_ref());
            ctx.resources.apply(obj, current)
        }))
        .await?;
        for (obj, applied) in objects.iter().zip(applied) {
            if let Some(applied) = applied {
                ctx.metrics.write("child");
                ctx.children.written(crate::render::kind(obj), &applied);
                live.insert(crate::render::object_id(obj), Some(applied));
            }
        }
    }

    // Report: fold the HelmRelease and source status.
    let hr = objects
        .iter()
        .find(|o| crate::render::kind(o) == "HelmRelease");
    let src = objects
        .iter()
        .find(|o| crate::render::kind(o) != "HelmRelease");
    let hr_live = hr.and_then(|o| live.get(&crate::render::object_id(o)).cloned().flatten());
    let src_live = src.and_then(|o| live.get(&crate::render::object_id(o)).cloned().flatten());
    let chart = app.spec.chart.clone();
    let mut desired_version = chart
        .as_ref()
        .map(|c| c.version.clone())
        .unwrap_or_default();
    if let Some(op) = &upgrade
        && let Some(v) = op
            .spec
            .parameters
            .as_ref()
            .and_then(|p| p.get("targetVersion"))
            .and_then(Value::as_str)
    {
        desired_version = v.to_string();
    }
    let mut conds = vec![
        active,
        verified,
        Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
    ];
    conds.extend(application_conditions(
        &desired_version,
        hr_live.as_ref(),
        src_live.as_ref(),
    ));
    let release = app.spec.release.clone().unwrap_or_default();
    let settled = conds
        .iter()
        .any(|c| c.type_ == types::RECONCILING && c.status == "False");
    write_status(&app, ctx, &conds, |s| {
        s.helm_release_ref = Some(ObjectRef {
            name: release.name.clone(),
            namespace: release.namespace.clone(),
        });
        s.last_applied_chart = chart.as_ref().map(|c| AppliedChart {
            source_type: c.source_type,
            url: c.url.clone(),
            name: c.name.clone(),
            version: desired_version.clone(),
        });
        s.intent_commit = intent_commit.clone();
    })
    .await?;

    // Outcomes (idempotent: the sink drops records it has seen).
    let ready = conds.iter().find(|c| c.type_ == types::READY);
    let degraded = conds
        .iter()
        .find(|c| c.type_ == types::DEGRADED && c.status == "True");
    let outcome = match (ready, degraded) {
        (_, Some(d)) => Some(("Degraded", d)),
        (Some(r), None) if r.status == "True" => Some(("Ready", r)),
        (Some(r), None) if r.status == "False" && r.reason == reasons::HELM_RELEASE_FAILED => {
            Some(("Failed", r))
        }
        _ => None,
    };
    // Outcomes are noted on the intent commit (GitOps); a Pull job's result is posted by the agent, which
    // follows the same conditions.
    if let (Some((outcome, cond)), Some(intent_commit)) = (outcome, &intent_commit) {
        let mut children = BTreeMap::from([
            (
                "helmRelease".to_string(),
                format!("{}/{}", namespace, release.name),
            ),
            ("chartVersion".to_string(), desired_version.clone()),
        ]);
        if let Some(op) = &upgrade {
            children.insert("upgradeOperation".into(), op.name_any());
        }
        ctx.outcomes.record(Outcome {
            intent_commit: intent_commit.clone(),
            record: NewRecord {
                cluster: ctx.settings.cluster_id.clone(),
                kind: "ApplicationInstance".into(),
                namespace: namespace.clone(),
                name: app.name_any(),
                uid: app.uid().unwrap_or_default(),
                generation: generation.unwrap_or_default(),
                outcome: outcome.into(),
                reason: cond.reason.clone(),
                message: cond.message.clone(),
                child_refs: children,
                time: None,
            },
        });
    }
    Ok(Action::requeue(if settled {
        ctx.settings.resync
    } else {
        delays::PROGRESS
    }))
}

/// Merge computed conditions (and other status fields) into the status and write it — only when something
/// changed. Publishes Kubernetes Events and control-plane transitions for changed conditions.
async fn write_status(
    app: &ApplicationInstance,
    ctx: &Context,
    conds: &[Cond],
    fill: impl FnOnce(&mut ApplicationInstanceStatus),
) -> Result<(), Error> {
    let namespace = app.namespace().unwrap_or_default();
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
    let api: Api<ApplicationInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": "apps.vworkspace.io/v1alpha1",
        "kind": "ApplicationInstance",
        "status": next,
    });
    let written = api
        .patch_status(
            &app.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.written
        .record(&uid, written.resource_version().as_deref(), &next);
    ctx.metrics.write("status");
    let transitions = changed(&current.conditions, conds);
    if !transitions.is_empty() {
        ctx.publish_transitions(app, &transitions).await;
    }
    if current.conditions != next.conditions {
        ctx.transitions.transition(Transition {
            api_version: "apps.vworkspace.io/v1alpha1",
            kind: "ApplicationInstance",
            namespace,
            name: app.name_any(),
            uid: app.uid().unwrap_or_default(),
            generation: app.metadata.generation.unwrap_or_default(),
            old: current.conditions,
            new: next.conditions,
            endpoints: next.endpoints,
        });
    }
    Ok(())
}
