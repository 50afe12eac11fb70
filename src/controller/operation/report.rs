//! Report: the Operation's status, written only when something changed, with a Kubernetes Event and a
//! control-plane transition for its changed conditions; and its outcome, noted on the intent commit (GitOps)
//! once it finished.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{Error, phase};
use crate::api::conditions::{Cond, merge_conditions, types};
use crate::api::{Operation, OperationStatus, Phase};
use crate::controller::context::{Context, Outcome};
use crate::git::notes::NewRecord;

/// Merge `conds` into the status, set `phase` and the fields `fill` sets, and write it — only when something
/// changed. Publishes Kubernetes Events and control-plane transitions for changed conditions. Returns the
/// Operation as written when this write finished it (a transition to a terminal phase): its outcome is to be
/// recorded ([`record_outcome`]).
pub(super) async fn write_status(
    op: &Operation,
    ctx: &Context,
    phase: Phase,
    conds: &[Cond],
    fill: impl FnOnce(&mut OperationStatus),
) -> Result<Option<Operation>, Error> {
    let uid = op.uid().unwrap_or_default();
    let current = ctx
        .written
        .current(&uid, op.resource_version().as_deref(), op.status.clone())
        .unwrap_or_default();
    let mut next = current.clone();
    let now = Time(jiff::Timestamp::now());
    merge_conditions(&mut next.conditions, conds, op.metadata.generation, &now);
    next.phase = Some(phase);
    next.observed_generation = op.metadata.generation;
    fill(&mut next);
    if next == current {
        return Ok(None);
    }
    let old_phase = current.phase;
    ctx.apply_status(
        op,
        ("ops.vworkspace.io/v1alpha1", "Operation"),
        &next,
        current.conditions,
        conds,
        Vec::new(),
    )
    .await?;
    if next.phase.is_some_and(Phase::is_terminal) && old_phase != next.phase {
        let mut finished = op.clone();
        finished.status = Some(next);
        return Ok(Some(finished));
    }
    Ok(None)
}

/// A Velero backup that only partly succeeded says so in an Event (its phase is Succeeded).
pub(super) async fn warn_partially_failed(op: &Operation, ctx: &Context, warning: &str) {
    ctx.publish_transitions(
        op,
        &[Cond::new(
            types::SUCCEEDED,
            "True",
            "PartiallyFailed",
            warning,
        )],
    )
    .await;
}

/// Offer the outcome of a finished Operation to the sinks (idempotent: the sink drops records it has seen).
pub(super) fn record_outcome(op: &Operation, ctx: &Context) {
    if let Some(outcome) = outcome(op, &ctx.settings.cluster_id) {
        ctx.outcomes.record(outcome);
    }
}

/// The outcome of a finished Operation, noted on its intent commit (GitOps); `None` while it runs, and for an
/// Operation from a Pull job (the agent reports its result) or pushed (events only).
fn outcome(op: &Operation, cluster: &str) -> Option<Outcome> {
    let status = op.status.clone().unwrap_or_default();
    let (type_, outcome) = match phase(op) {
        Phase::Succeeded => (types::SUCCEEDED, "Succeeded"),
        Phase::Failed => (types::FAILED, "Failed"),
        Phase::Cancelled => (types::CANCELLED, "Cancelled"),
        _ => return None,
    };
    let cond = status.conditions.iter().find(|c| c.type_ == type_);
    let mut children: BTreeMap<String, String> = status.outputs.clone();
    if let Some(er) = &status.engine_ref {
        children.insert(
            "engineRef".into(),
            format!("{}/{}/{}", er.kind, er.namespace, er.name),
        );
    }
    let intent_commit = status.intent_commit.clone()?;
    Some(Outcome {
        intent_commit,
        record: NewRecord {
            cluster: cluster.to_string(),
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(status: serde_json::Value) -> Operation {
        serde_json::from_value(json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1",
            "kind": "Operation",
            "metadata": {"name": "b-1", "namespace": "team-a", "uid": "u-1", "generation": 3},
            "spec": {
                "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "web"},
                "type": "Backup",
                "engine": "velero",
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_finished_operation_from_a_commit_has_an_outcome_with_its_child() {
        let done = op(json!({
            "phase": "Succeeded",
            "observedGeneration": 2,
            "intentCommit": "c0ffee",
            "engineRef": {"kind": "Backup", "name": "team-a-b-1", "namespace": "velero"},
            "outputs": {"backupName": "team-a-b-1"},
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "EngineCompleted",
                            "message": "Velero reports Completed", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        }));
        let outcome = outcome(&done, "c1").unwrap();
        assert_eq!(outcome.intent_commit, "c0ffee");
        let r = outcome.record;
        assert_eq!(
            (
                r.cluster.as_str(),
                r.namespace.as_str(),
                r.name.as_str(),
                r.uid.as_str(),
                r.generation
            ),
            ("c1", "team-a", "b-1", "u-1", 2)
        );
        assert_eq!(
            (r.outcome.as_str(), r.reason.as_str(), r.message.as_str()),
            ("Succeeded", "EngineCompleted", "Velero reports Completed")
        );
        assert_eq!(r.child_refs["engineRef"], "Backup/velero/team-a-b-1");
        assert_eq!(r.child_refs["backupName"], "team-a-b-1");
    }

    #[test]
    fn no_outcome_while_it_runs_or_without_an_intent_commit() {
        assert!(outcome(&op(json!({"phase": "Running", "intentCommit": "c"})), "c1").is_none());
        assert!(outcome(&op(json!({"phase": "Failed"})), "c1").is_none());
        // No condition for the outcome: its name is the reason.
        let cancelled = outcome(
            &op(json!({"phase": "Cancelled", "intentCommit": "c"})),
            "c1",
        )
        .unwrap()
        .record;
        assert_eq!(
            (
                cancelled.reason.as_str(),
                cancelled.message.as_str(),
                cancelled.generation
            ),
            ("Cancelled", "", 3)
        );
    }
}
