//! Cancel: deleting an Operation that has not finished cancels it: its child is deleted (the helm engine has
//! none: the ApplicationInstance goes back to its own spec), and once the child is gone the Operation says
//! Cancelled, its outcome is recorded, and the finalizer is released. A finished Operation is released at once.

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use serde_json::json;

use super::report::{record_outcome, write_status};
use super::{Error, phase};
use crate::api::conditions::{Cond, reasons, types};
use crate::api::{Engine, OPERATION_FINALIZER, Operation, Phase, template_key};
use crate::controller::context::{Context, delays};
use crate::controller::finalize;

/// How long a deleted Operation waits for its outcome to be durable before it is looked at again (the notes
/// writer takes new records between pushes; a push can take long while the Git remote is slow).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A deleted Operation: delete its child, then say Cancelled, record the outcome and release the finalizer.
pub(super) async fn cancel(
    op: &Operation,
    api: &Api<Operation>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !finalize::has(op, OPERATION_FINALIZER) {
        return Ok(Action::await_change());
    }
    if phase(op).is_terminal() {
        // Its outcome was recorded when it finished; offered again (the sink drops repeats) and made durable
        // before the object can go.
        record_outcome(op, ctx);
        return release(op, api, ctx).await;
    }
    if phase(op) == Phase::Running && delete_child(op, ctx).await? {
        // Deleting (or already being deleted): its watch event brings the next look.
        ctx.metrics.write("child");
        return Ok(Action::requeue(delays::PROGRESS));
    }
    let conds = [Cond::new(
        types::CANCELLED,
        "True",
        reasons::USER_CANCELLED,
        "the Operation was deleted",
    )];
    let now = jiff::Timestamp::now().to_string();
    let finished = write_status(op, ctx, Phase::Cancelled, &conds, |s| {
        s.finished_at = Some(now)
    })
    .await?;
    // The status write finished it (a transition to a terminal phase): its Cancelled outcome is recorded, and
    // is in the pending store before the object can go.
    if let Some(finished) = finished {
        record_outcome(&finished, ctx);
    }
    release(op, api, ctx).await
}

/// Delete a running Operation's child, when it has one and it is its own (a child of the same name made for
/// another Operation stays): whether it is deleting (or already being deleted).
async fn delete_child(op: &Operation, ctx: &Context) -> Result<bool, Error> {
    if op.spec.engine == Engine::Helm {
        return Ok(false);
    }
    let Some(er) = op.status.as_ref().and_then(|s| s.engine_ref.clone()) else {
        return Ok(false);
    };
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
    let Some(api_version) = child else {
        return Ok(false);
    };
    let obj = json!({"apiVersion": api_version, "kind": er.kind, "metadata": {"name": er.name, "namespace": er.namespace}});
    let own = ctx.resources.get(&obj).await?.is_some_and(|live| {
        crate::render::tenancy::foreign_owner(
            &live,
            &op.namespace().unwrap_or_default(),
            &op.name_any(),
        )
        .is_none()
    });
    Ok(own && ctx.resources.delete(&obj).await?)
}

/// Release the finalizer once every outcome recorded so far is durable (waiting at most [`SETTLE`]; otherwise
/// looked at again after it).
async fn release(op: &Operation, api: &Api<Operation>, ctx: &Context) -> Result<Action, Error> {
    if tokio::time::timeout(SETTLE, ctx.outcomes.settled())
        .await
        .is_err()
    {
        return Ok(Action::requeue(SETTLE));
    }
    finalize::remove(api, op, OPERATION_FINALIZER).await?;
    ctx.metrics.write("finalizer");
    Ok(Action::await_change())
}
