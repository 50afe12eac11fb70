//! The Operation reconciler: verify (provenance) → admit (validation, capability, allowed types) → wait
//! (conflicts, approval, engine installed) → start (create the engine's child once) → follow (fold the
//! child's status) → report (status, Events, control-plane events, git notes). Deleting a running Operation
//! cancels it: its child is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{instrument, warn};

use super::application::Error;
use super::context::{Context, Outcome, Transition, changed, delays};
use super::status::{engine_state, job_pods_failure};
use super::trust::{Untrusted, trust};
use crate::api::conditions::{Cond, merge_conditions};
use crate::api::conditions::{reasons, types};
use crate::api::{
    ApplicationInstance, Engine, EngineRef, FIELD_MANAGER, OPERATION_FINALIZER, Operation,
    OperationStatus, Phase, template_key,
};
use crate::git::notes::NewRecord;
use crate::intent::IntentKind;
use crate::source::Origin;
use crate::validate;

#[instrument(skip_all, fields(cluster = %ctx.settings.cluster_id, namespace = %op.namespace().unwrap_or_default(), object = %op.name_any(), reconcile_id = %fastrand::u64(..)))]
pub async fn reconcile(op: Arc<Operation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = op.namespace().unwrap_or_default();
    let api: Api<Operation> = Api::namespaced(ctx.client.clone(), &namespace);
    if !ctx.should_act(op.as_ref(), OPERATION_FINALIZER).await? {
        return Ok(Action::await_change());
    }
    let result = if op.meta().deletion_timestamp.is_some() {
        cancel(&op, &api, &ctx).await
    } else {
        apply(&op, &api, &ctx).await
    };
    ctx.metrics
        .reconciled("operation", result.is_ok(), started.elapsed());
    result
}

pub fn error_policy(_op: Arc<Operation>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed; retrying");
    Action::requeue(delays::ERROR)
}

fn phase(op: &Operation) -> Phase {
    op.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

/// What a status update says.
struct Update {
    phase: Phase,
    conds: Vec<Cond>,
    /// Conditions that no longer apply (e.g. Blocked once unblocked is set False instead; kept for clarity).
    fill: Box<dyn FnOnce(&mut OperationStatus) + Send>,
}

impl Update {
    fn new(phase: Phase, conds: Vec<Cond>) -> Self {
        Self {
            phase,
            conds,
            fill: Box::new(|_| {}),
        }
    }
    fn with(mut self, fill: impl FnOnce(&mut OperationStatus) + Send + 'static) -> Self {
        self.fill = Box::new(fill);
        self
    }
}

/// The rendered children of an Operation, stamped with ownership labels (and an owner reference when they
/// live in the Operation's namespace).
fn stamp(op: &Operation, objects: &mut [Value], origin: &Origin) {
    let namespace = op.namespace().unwrap_or_default();
    let owner = op
        .controller_owner_ref(&())
        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
    for obj in objects {
        let same_ns = crate::render::namespace(obj) == namespace;
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if same_ns && let Some(owner) = &owner {
                meta.insert("ownerReferences".into(), json!([owner]));
            }
            if let Some(a) = meta
                .entry("annotations")
                .or_insert_with(|| json!({}))
                .as_object_mut()
            {
                let (key, value) = origin.annotation();
                a.insert(key.into(), Value::String(value));
            }
        }
    }
}

async fn target(op: &Operation, ctx: &Context) -> Result<Option<ApplicationInstance>, Error> {
    let api: Api<ApplicationInstance> =
        Api::namespaced(ctx.client.clone(), &op.namespace().unwrap_or_default());
    Ok(api.get_opt(&op.spec.target_ref.name).await?)
}

/// Other Operations on the same target that this one must wait for (the conflict matrix). Only Operations
/// created earlier count, so two conflicting Operations never wait for each other.
async fn conflicts(op: &Operation, ctx: &Context) -> Result<Vec<String>, Error> {
    let api: Api<Operation> =
        Api::namespaced(ctx.client.clone(), &op.namespace().unwrap_or_default());
    let me = (
        op.metadata.creation_timestamp.clone().map(|t| t.0),
        op.name_any(),
    );
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|other| {
            other.name_any() != op.name_any()
                && other.spec.target_ref.name == op.spec.target_ref.name
                && matches!(phase(other), Phase::Pending | Phase::Running)
                && other.meta().deletion_timestamp.is_none()
                && op.spec.type_.blocked_by(other.spec.type_)
                && (
                    other.metadata.creation_timestamp.clone().map(|t| t.0),
                    other.name_any(),
                ) < me
        })
        .map(|other| {
            format!(
                "{} {} ({})",
                other.spec.type_.as_str(),
                other.name_any(),
                phase(&other).as_str()
            )
        })
        .collect())
}

/// Whether the Operation's approval holds, or why not.
fn approval(op: &Operation, ctx: &Context, required: bool) -> Result<(), String> {
    let approvals = op.spec.approvals.clone().unwrap_or_default();
    if !required && !approvals.required {
        return Ok(());
    }
    let key = ctx
        .settings
        .approval_key
        .as_deref()
        .ok_or("the operator has no approval key configured (--approval-key-file)")?;
    crate::validate::approval::verify_claim(
        approvals.claim.as_deref(),
        key,
        &op.name_any(),
        &crate::validate::approval::spec_digest(&op.namespace().unwrap_or_default(), &op.spec),
        jiff::Timestamp::now().as_second(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Keep an Operation Pending: its engine has not started because of `reason` (Blocked=True), and it is looked at
/// again later.
async fn hold(
    op: &Operation,
    ctx: &Context,
    mut conds: Vec<Cond>,
    reason: &'static str,
    message: impl Into<String>,
    note: &str,
    intent_commit: &Option<String>,
) -> Result<Action, Error> {
    conds.push(Cond::new(types::BLOCKED, "True", reason, message));
    conds.push(Cond::new(
        types::RUNNING,
        "False",
        reasons::ENGINE_NOT_STARTED,
        note,
    ));
    let ic = intent_commit.clone();
    write_status(
        op,
        ctx,
        Update::new(Phase::Pending, conds).with(move |s| s.intent_commit = ic),
    )
    .await?;
    Ok(Action::requeue(delays::WAITING))
}

async fn apply(op: &Operation, api: &Api<Operation>, ctx: &Context) -> Result<Action, Error> {
    let namespace = op.namespace().unwrap_or_default();
    let current_phase = phase(op);
    if current_phase.is_terminal() {
        record_outcome(op, ctx, current_phase);
        return Ok(Action::await_change());
    }
    let key = template_key(op.spec.type_, op.spec.engine);

    // Verify.
    let origin = match trust(ctx.source.as_ref(), IntentKind::Operation, op) {
        Ok(origin) => origin,
        Err(Untrusted::Blocked { reason, message }) => {
            let conds = vec![
                Cond::new(types::VERIFIED, "False", reason, message.clone()),
                Cond::new(types::BLOCKED, "True", reason, message),
                Cond::new(
                    types::RUNNING,
                    "False",
                    reasons::ENGINE_NOT_STARTED,
                    "not verified",
                ),
            ];
            write_status(op, ctx, Update::new(current_phase, conds)).await?;
            return Ok(Action::requeue(delays::WAITING));
        }
        Err(Untrusted::Pending { .. }) => return Ok(Action::requeue(delays::PROGRESS)),
    };
    // From here on the Operation has an outcome to report, and may get a child to clean up: the finalizer
    // keeps it until its Cancelled outcome is recorded and its child is gone. The rest of the reconcile goes
    // on with the object as the API server answered.
    let added;
    let op = if super::finalize::has(op, OPERATION_FINALIZER) {
        op
    } else {
        added = super::finalize::add(api, op, OPERATION_FINALIZER).await?;
        ctx.metrics.write("finalizer");
        &added
    };
    let verified = origin.verified_condition();
    let intent_commit = origin.intent_commit().map(str::to_string);
    let ic = intent_commit.clone();
    let with_commit = move |s: &mut OperationStatus| s.intent_commit = ic;

    // Admit.
    let target = target(op, ctx).await?;
    let Some(target) = target else {
        let msg = format!(
            "ApplicationInstance {namespace}/{} not found",
            op.spec.target_ref.name
        );
        return hold(
            op,
            ctx,
            vec![verified],
            reasons::DEPENDENCY_MISSING,
            msg,
            "waiting for the target",
            &intent_commit,
        )
        .await;
    };
    let ns_annotations = ctx.namespace_annotations(&namespace).await?;
    let vctx = validate::Context {
        cluster_id: Some(&ctx.settings.cluster_id),
        renderer: &ctx.renderer,
    };
    let location = format!("{namespace}/{}", op.name_any());
    let mut problems = validate::check_api_server(
        &location,
        IntentKind::Operation,
        &serde_json::to_value(op).unwrap_or_default(),
        None,
        &validate::namespace_stand_in(&namespace, Some(&ns_annotations)),
        &vctx,
    );
    problems.extend(validate::check_operation(&location, op, &vctx));
    problems.extend(validate::check_operation_target(
        &location,
        op,
        Some(&target),
    ));
    let problems: Vec<_> = problems
        .into_iter()
        // the claim is checked below with the key, which render cannot do
        .filter(|p| p.field != "spec.approvals.claim")
        .collect();
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.reason))
            .collect::<Vec<_>>()
            .join("; ");
        let conds = vec![
            verified,
            Cond::new(
                types::ACCEPTED,
                "False",
                reasons::VALIDATION_FAILED,
                message,
            ),
            Cond::new(
                types::RUNNING,
                "False",
                reasons::ENGINE_NOT_STARTED,
                "not admitted",
            ),
        ];
        write_status(
            op,
            ctx,
            Update::new(Phase::Pending, conds).with(with_commit),
        )
        .await?;
        return Ok(Action::await_change());
    }
    let accepted = Cond::new(
        types::ACCEPTED,
        "True",
        reasons::ADMISSION_PASSED,
        format!("template {key}"),
    );
    let tspec = match ctx.renderer.operation_spec(&key) {
        Some(Ok(spec)) => spec.clone(),
        _ => return Ok(Action::await_change()), // validated above
    };

    // Started already? Then follow the child; waiting rules only gate the start.
    let started = current_phase == Phase::Running;
    if !started {
        let blocking = conflicts(op, ctx).await?;
        if !blocking.is_empty() {
            return hold(
                op,
                ctx,
                vec![verified, accepted],
                reasons::CONFLICTING_OPERATION,
                format!("waiting for {}", blocking.join(", ")),
                "blocked",
                &intent_commit,
            )
            .await;
        }
        if let Err(why) = approval(op, ctx, tspec.requires_approval) {
            return hold(
                op,
                ctx,
                vec![verified, accepted],
                reasons::AWAITING_APPROVAL,
                why,
                "awaiting approval",
                &intent_commit,
            )
            .await;
        }
    }

    // Render and start.
    let mut objects = match ctx.renderer.render_operation(op, &target) {
        Ok(objects) => objects,
        Err(e) => {
            let conds = vec![
                verified,
                accepted,
                Cond::new(
                    types::BLOCKED,
                    "True",
                    reasons::RENDER_FAILED,
                    e.to_string(),
                ),
                Cond::new(
                    types::RUNNING,
                    "False",
                    reasons::ENGINE_NOT_STARTED,
                    "render failed",
                ),
            ];
            write_status(op, ctx, Update::new(current_phase, conds).with(with_commit)).await?;
            return Ok(Action::await_change());
        }
    };
    stamp(op, &mut objects, &origin);
    let mut missing = Vec::new();
    for obj in &objects {
        if ctx
            .resources
            .resolve(crate::render::api_version(obj), crate::render::kind(obj))
            .await?
            .is_none()
        {
            missing.push(format!(
                "{}.{}",
                crate::render::kind(obj),
                crate::render::group(crate::render::api_version(obj))
            ));
        }
    }
    if !missing.is_empty() {
        ctx.resources.forget_missing().await;
        return hold(
            op,
            ctx,
            vec![verified, accepted],
            reasons::ENGINE_NOT_INSTALLED,
            format!("not installed: {}", missing.join(", ")),
            "engine missing",
            &intent_commit,
        )
        .await;
    }
    let engine = op.spec.engine;
    let main = objects
        .iter()
        .find(|o| engine != Engine::Helm || crate::render::kind(o) == "HelmRelease")
        .cloned()
        .unwrap_or(Value::Null);
    let child_name = crate::render::name(&main).to_string();
    let engine_ref = EngineRef {
        kind: crate::render::kind(&main).to_string(),
        name: child_name.clone(),
        namespace: crate::render::namespace(&main).to_string(),
    };
    let target_generation = target.metadata.generation.unwrap_or_default().to_string();
    if !started {
        if !ctx.namespace_gated(&namespace).await? {
            return Ok(Action::await_change());
        }
        if engine != Engine::Helm {
            create_children(ctx, &objects).await?;
        }
        // The helm engine writes nothing itself: the ApplicationInstance reconciler renders the upgrade
        // while this Operation is Running (see application::active_upgrade).
        let er = engine_ref.clone();
        let tg = target_generation.clone();
        let ic = intent_commit.clone();
        let conds = vec![
            verified,
            accepted,
            Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
            Cond::new(
                types::RUNNING,
                "True",
                reasons::ENGINE_STARTED,
                format!("{} {}", er.kind, er.name),
            ),
        ];
        write_status(
            op,
            ctx,
            Update::new(Phase::Running, conds).with(move |s| {
                s.engine_ref = Some(er);
                s.started_at
                    .get_or_insert_with(|| jiff::Timestamp::now().to_string());
                if engine == Engine::Helm {
                    s.outputs.insert("appGeneration".into(), tg);
                }
                s.intent_commit = ic;
            }),
        )
        .await?;
        return Ok(Action::requeue(delays::PROGRESS));
    }

    // Follow.
    let live = ctx.resources.get(&main).await?;
    let Some(live) = live else {
        if engine == Engine::Helm {
            return Ok(Action::requeue(delays::PROGRESS));
        }
        let msg = format!("{} {} disappeared", engine_ref.kind, engine_ref.name);
        return engine_lost(op, ctx, [verified, accepted], msg, "child deleted").await;
    };
    if engine != Engine::Helm
        && let Some(owner) =
            crate::render::tenancy::foreign_owner(&live, &namespace, &op.name_any())
    {
        // Another tenant's child under the same name (render::tenancy::foreign_owner): never followed, never
        // deleted (cancel checks the same).
        let msg = format!(
            "{} {}/{} belongs to {owner}, not to this Operation (child names collide): rename the Operation",
            engine_ref.kind, engine_ref.namespace, engine_ref.name
        );
        return engine_lost(op, ctx, [verified, accepted], msg, "child not ours").await;
    }
    let desired_version = op
        .spec
        .parameters
        .as_ref()
        .and_then(|p| p.get("targetVersion"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| target.spec.chart.as_ref().map(|c| c.version.clone()));
    let mut state = engine_state(
        engine,
        &live,
        tspec.output_name.as_deref(),
        &child_name,
        desired_version.as_deref(),
    );
    if matches!(engine, Engine::Job | Engine::HelmHookJob) && state.phase == Phase::Failed {
        add_pod_reasons(ctx, &namespace, &engine_ref.name, &mut state.message).await;
    }
    let mut conds = vec![verified, accepted];
    let terminal_conds = match state.phase {
        Phase::Succeeded => Some((types::SUCCEEDED, reasons::ENGINE_COMPLETED)),
        Phase::Failed => Some((types::FAILED, reasons::ENGINE_FAILED)),
        _ => None,
    };
    match terminal_conds {
        Some((terminal, running_reason)) => {
            conds.push(Cond::new(
                terminal,
                "True",
                state.reason,
                state.message.clone(),
            ));
            conds.push(Cond::new(types::RUNNING, "False", running_reason, ""));
            conds.push(Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""));
        }
        None => {
            conds.push(Cond::new(
                types::RUNNING,
                "True",
                reasons::ENGINE_STARTED,
                state.message.clone(),
            ));
            match state.blocked {
                Some(reason) => conds.push(Cond::new(
                    types::BLOCKED,
                    "True",
                    reason,
                    state.message.clone(),
                )),
                None => conds.push(Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, "")),
            }
        }
    }
    if let Some(w) = &state.warning {
        ctx.publish_transitions(
            op,
            &[Cond::new(
                types::SUCCEEDED,
                "True",
                "PartiallyFailed",
                w.clone(),
            )],
        )
        .await;
    }
    let terminal = state.phase.is_terminal();
    let st = state.clone();
    write_status(
        op,
        ctx,
        Update::new(state.phase, conds).with(move |s| {
            for (k, v) in st.outputs {
                s.outputs.insert(k, v);
            }
            if s.started_at.is_none() {
                s.started_at = st.started_at;
            }
            if terminal {
                s.finished_at = st
                    .finished_at
                    .or_else(|| Some(jiff::Timestamp::now().to_string()));
            }
        }),
    )
    .await?;
    Ok(if terminal {
        Action::await_change()
    } else {
        Action::requeue(delays::PROGRESS)
    })
}

/// Deleting an Operation that has not finished cancels it: its child is deleted (the helm engine has none:
/// the ApplicationInstance goes back to its own spec), and once the child is gone the Operation says
/// Cancelled, its outcome is recorded, and the finalizer is released. A finished Operation is released at once.
async fn cancel(op: &Operation, api: &Api<Operation>, ctx: &Context) -> Result<Action, Error> {
    if !super::finalize::has(op, OPERATION_FINALIZER) {
        return Ok(Action::await_change());
    }
    if phase(op).is_terminal() {
        // Its outcome was recorded when it finished; offered again (the sink drops repeats) and made durable
        // before the object can go.
        record_outcome(op, ctx, phase(op));
        if !outcomes_durable(ctx).await {
            return Ok(Action::requeue(SETTLE));
        }
        super::finalize::remove(api, op, OPERATION_FINALIZER).await?;
        ctx.metrics.write("finalizer");
        return Ok(Action::await_change());
    }
    if phase(op) == Phase::Running
        && op.spec.engine != Engine::Helm
        && let Some(er) = op.status.as_ref().and_then(|s| s.engine_ref.clone())
    {
        let child = ctx
            .renderer
            .operation_spec(&template_key(op.spec.type_, op.spec.engine))
            .and_then(Result::ok)
            .and_then(|s| {
                s.children
                    .iter()
                    .find(|c| c.kind == er.kind)
                    .map(|c| c.api_version.clone())
            });
        if let Some(api_version) = child {
            let obj = json!({"apiVersion": api_version, "kind": er.kind, "metadata": {"name": er.name, "namespace": er.namespace}});
            // Only its own child is deleted: a child of the same name made for another Operation stays.
            let own = ctx.resources.get(&obj).await?.is_some_and(|live| {
                crate::render::tenancy::foreign_owner(
                    &live,
                    &op.namespace().unwrap_or_default(),
                    &op.name_any(),
                )
                .is_none()
            });
            if own && ctx.resources.delete(&obj).await? {
                // Deleting (or already being deleted): its watch event brings the next look.
                ctx.metrics.write("child");
                return Ok(Action::requeue(delays::PROGRESS));
            }
        }
    }
    let conds = vec![Cond::new(
        types::CANCELLED,
        "True",
        reasons::USER_CANCELLED,
        "the Operation was deleted",
    )];
    write_status(
        op,
        ctx,
        Update::new(Phase::Cancelled, conds)
            .with(|s| s.finished_at = Some(jiff::Timestamp::now().to_string())),
    )
    .await?;
    // The status write recorded the Cancelled outcome (a transition to a terminal phase): it is in the pending
    // store before the object can go.
    if !outcomes_durable(ctx).await {
        return Ok(Action::requeue(SETTLE));
    }
    super::finalize::remove(api, op, OPERATION_FINALIZER).await?;
    ctx.metrics.write("finalizer");
    Ok(Action::await_change())
}

/// How long a deleted Operation waits for its outcome to be durable before it is looked at again (the notes
/// writer takes new records between pushes; a push can take long while the Git remote is slow).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether every outcome recorded so far is durable, waiting at most [`SETTLE`].
async fn outcomes_durable(ctx: &Context) -> bool {
    tokio::time::timeout(SETTLE, ctx.outcomes.settled())
        .await
        .is_ok()
}

fn record_outcome(op: &Operation, ctx: &Context, phase: Phase) {
    let status = op.status.clone().unwrap_or_default();
    let (type_, outcome) = match phase {
        Phase::Succeeded => (types::SUCCEEDED, "Succeeded"),
        Phase::Failed => (types::FAILED, "Failed"),
        Phase::Cancelled => (types::CANCELLED, "Cancelled"),
        _ => return,
    };
    let cond = status.conditions.iter().find(|c| c.type_ == type_);
    let mut children: BTreeMap<String, String> = status.outputs.clone();
    if let Some(er) = &status.engine_ref {
        children.insert(
            "engineRef".into(),
            format!("{}/{}/{}", er.kind, er.namespace, er.name),
        );
    }
    // Noted on the intent commit (GitOps); a Pull job's result is the agent's.
    let Some(intent_commit) = status.intent_commit.clone() else {
        return;
    };
    ctx.outcomes.record(Outcome {
        intent_commit,
        record: NewRecord {
            cluster: ctx.settings.cluster_id.clone(),
            kind: "Operation".into(),
            namespace: op.namespace().unwrap_or_default(),
            name: op.name_any(),
            uid: op.uid().unwrap_or_default(),
            // The generation the outcome was reached at: deleting the object bumps metadata.generation, and
            // the same outcome offered again then must keep its record id.
            generation: status
                .observed_generation
                .or(op.metadata.generation)
                .unwrap_or_default(),
            outcome: outcome.into(),
            reason: cond
                .map(|c| c.reason.clone())
                .unwrap_or_else(|| outcome.into()),
            message: cond.map(|c| c.message.clone()).unwrap_or_default(),
            child_refs: children,
            time: None,
        },
    });
}

/// The Operation fails because its child is gone or is not its own: Failed/EngineFailed with `msg`, finished now;
/// nothing more to do until the object changes.
async fn engine_lost(
    op: &Operation,
    ctx: &Context,
    kept: [Cond; 2],
    msg: String,
    running: &str,
) -> Result<Action, Error> {
    let [verified, accepted] = kept;
    let conds = vec![
        verified,
        accepted,
        Cond::new(types::FAILED, "True", reasons::ENGINE_FAILED, msg),
        Cond::new(types::RUNNING, "False", reasons::ENGINE_FAILED, running),
    ];
    write_status(
        op,
        ctx,
        Update::new(Phase::Failed, conds)
            .with(|s| s.finished_at = Some(jiff::Timestamp::now().to_string())),
    )
    .await?;
    Ok(Action::await_change())
}

async fn write_status(op: &Operation, ctx: &Context, update: Update) -> Result<(), Error> {
    let namespace = op.namespace().unwrap_or_default();
    let uid = op.uid().unwrap_or_default();
    let current = ctx
        .written
        .current(&uid, op.resource_version().as_deref(), op.status.clone())
        .unwrap_or_default();
    let mut next = current.clone();
    let now = Time(jiff::Timestamp::now());
    merge_conditions(
        &mut next.conditions,
        &update.conds,
        op.metadata.generation,
        &now,
    );
    next.phase = Some(update.phase);
    next.observed_generation = op.metadata.generation;
    (update.fill)(&mut next);
    if next == current {
        return Ok(());
    }
    let api: Api<Operation> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch =
        json!({"apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation", "status": next});
    let written = api
        .patch_status(
            &op.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.written
        .record(&uid, written.resource_version().as_deref(), &next);
    ctx.metrics.write("status");
    let transitions = changed(&current.conditions, &update.conds);
    if !transitions.is_empty() {
        ctx.publish_transitions(op, &transitions).await;
    }
    if current.conditions != next.conditions {
        ctx.transitions.transition(Transition {
            api_version: "ops.vworkspace.io/v1alpha1",
            kind: "Operation",
            namespace,
            name: op.name_any(),
            uid: op.uid().unwrap_or_default(),
            generation: op.metadata.generation.unwrap_or_default(),
            old: current.conditions,
            new: next.conditions.clone(),
            endpoints: Vec::new(),
        });
    }
    if next.phase.is_some_and(Phase::is_terminal) && current.phase != next.phase {
        let mut done = op.clone();
        done.status = Some(next);
        record_outcome(
            &done,
            ctx,
            done.status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or_default(),
        );
    }
    Ok(())
}

/// Create an Operation's children (each once: a child that exists is left as it is), the ServiceAccount a Job
/// runs as first ([`pod_service_account`]).
async fn create_children(ctx: &Context, objects: &[Value]) -> Result<(), Error> {
    for obj in objects {
        if let Some(account) = pod_service_account(obj) {
            ctx.resources.create_once(&account).await?;
        }
        if ctx.resources.create_once(obj).await? {
            ctx.metrics.write("child");
        }
    }
    Ok(())
}

/// Append to a failed Job's message why its Pods failed ([`job_pods_failure`]).
async fn add_pod_reasons(ctx: &Context, namespace: &str, job: &str, message: &mut String) {
    if let Some(why) = job_pods_failure_of(ctx, namespace, job).await {
        *message = format!("{message}; {why}");
    }
}

/// Why a failed Job's Pods failed ([`job_pods_failure`]), read once when the Job has failed; `None` when the Pods
/// are gone or cannot be read (the Job's own condition is then the whole message).
async fn job_pods_failure_of(ctx: &Context, namespace: &str, job: &str) -> Option<String> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let params =
        kube::api::ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    match pods.list(&params).await {
        Ok(list) => {
            let pods: Vec<Value> = list
                .items
                .iter()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect();
            job_pods_failure(&pods)
        }
        Err(e) => {
            warn!(%namespace, %job, error = %e, "cannot read the failed Job's Pods");
            None
        }
    }
}

/// The ServiceAccount a Job child's Pods run as (`vworkspace-operation-runner` in the built-in templates), to be
/// created before the Job when the namespace has none: without it the Job controller cannot create a Pod and the
/// Job would only fail at its deadline. Not owned by the Operation (other Operations' Jobs use it too); it holds
/// no permissions until a namespace admin binds some to it.
fn pod_service_account(obj: &Value) -> Option<Value> {
    if crate::render::kind(obj) != "Job" {
        return None;
    }
    let name = obj
        .pointer("/spec/template/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && *n != "default")?;
    Some(json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": crate::render::namespace(obj),
            "labels": {"app.kubernetes.io/managed-by": "vworkspace-operator"},
        },
    }))
}
