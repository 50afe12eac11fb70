//! Wait: an admitted Operation that has not started waits for the Operations on its target it conflicts with
//! (the conflict matrix, `OperationType::blocked_by`) and for its approval. Once started it never waits again.

use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::{Error, Hold, phase};
use crate::api::{Operation, Phase};
use crate::controller::context::Context;
use crate::render::OperationTemplateSpec;

/// Why `op` cannot start yet, if anything holds it.
pub(super) async fn wait(
    op: &Operation,
    ctx: &Context,
    template: &OperationTemplateSpec,
) -> Result<Option<Hold>, Error> {
    let api: Api<Operation> =
        Api::namespaced(ctx.client.clone(), &op.namespace().unwrap_or_default());
    let others = api.list(&Default::default()).await?.items;
    let blocking = conflicts(op, &others);
    if !blocking.is_empty() {
        return Ok(Some(Hold::Conflict(blocking)));
    }
    if let Err(why) = approval(
        op,
        ctx.settings.approval_key.as_deref(),
        template.requires_approval,
        jiff::Timestamp::now().as_second(),
    ) {
        return Ok(Some(Hold::Approval(why)));
    }
    Ok(None)
}

/// Other Operations on the same target that this one must wait for (the conflict matrix). Only Operations
/// created earlier count, so two conflicting Operations never wait for each other.
fn conflicts(op: &Operation, others: &[Operation]) -> Vec<String> {
    let me = (
        op.metadata.creation_timestamp.clone().map(|t| t.0),
        op.name_any(),
    );
    others
        .iter()
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
                phase(other).as_str()
            )
        })
        .collect()
}

/// Whether the Operation's approval holds at `now` (Unix seconds), or why not. `key`: the operator's approval
/// key; `required`: the template requires approval.
fn approval(op: &Operation, key: Option<&[u8]>, required: bool, now: i64) -> Result<(), String> {
    let approvals = op.spec.approvals.clone().unwrap_or_default();
    if !required && !approvals.required {
        return Ok(());
    }
    let key = key.ok_or("the operator has no approval key configured (--approval-key-file)")?;
    crate::validate::approval::verify_claim(
        approvals.claim.as_deref(),
        key,
        &op.name_any(),
        &crate::validate::approval::spec_digest(&op.namespace().unwrap_or_default(), &op.spec),
        now,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(name: &str, type_: &str, target: &str, created: &str, phase: Option<&str>) -> Operation {
        let mut op: Operation = serde_json::from_value(json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1",
            "kind": "Operation",
            "metadata": {"name": name, "namespace": "team-a", "creationTimestamp": created},
            "spec": {
                "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": target},
                "type": type_,
                "engine": "velero",
            },
        }))
        .unwrap();
        if let Some(p) = phase {
            op.status = Some(serde_json::from_value(json!({"phase": p})).unwrap());
        }
        op
    }

    #[test]
    fn only_earlier_conflicting_operations_on_the_same_target_hold_one() {
        let restore = op("restore", "Restore", "web", "2026-01-01T00:01:00Z", None);
        let others = [
            op(
                "b-early",
                "Backup",
                "web",
                "2026-01-01T00:00:00Z",
                Some("Running"),
            ),
            // Later: it waits for this one instead.
            op("b-late", "Backup", "web", "2026-01-01T00:02:00Z", None),
            // Another target, finished, or not in the matrix.
            op("b-other", "Backup", "db", "2026-01-01T00:00:00Z", None),
            op(
                "b-done",
                "Backup",
                "web",
                "2026-01-01T00:00:00Z",
                Some("Succeeded"),
            ),
            op("cmd", "RunCommand", "web", "2026-01-01T00:00:00Z", None),
            restore.clone(),
        ];
        assert_eq!(conflicts(&restore, &others), ["Backup b-early (Running)"]);
        // Runbooks wait for nothing.
        let runbook = op("rb", "Runbook", "web", "2026-01-01T00:05:00Z", None);
        assert!(conflicts(&runbook, &others).is_empty());
    }

    #[test]
    fn approval_is_needed_only_when_required_and_needs_a_key() {
        let backup = op("b", "Backup", "web", "2026-01-01T00:00:00Z", None);
        assert_eq!(approval(&backup, None, false, 0), Ok(()));
        assert_eq!(
            approval(&backup, None, true, 0),
            Err("the operator has no approval key configured (--approval-key-file)".into())
        );
        let mut asked = backup.clone();
        asked.spec.approvals = Some(crate::api::Approvals {
            required: true,
            ..Default::default()
        });
        assert!(approval(&asked, Some(b"key".as_slice()), false, 0).is_err());
    }
}
