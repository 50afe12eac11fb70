//! Follow: a started Operation reads its child as it is live and folds the engine's state of it
//! ([`engine_state`]) into its phase and conditions. A child that is gone, or that belongs to another tenant
//! (`render::tenancy::foreign_owner`), fails the Operation.

use kube::ResourceExt;
use kube::api::Api;
use serde_json::Value;
use tracing::warn;

use super::admit::Admission;
use super::start::Rendered;
use super::{Ending, Error};
use crate::api::conditions::{Cond, reasons, types};
use crate::api::{ApplicationInstance, Engine, Operation, Phase};
use crate::controller::context::Context;
use crate::controller::engine_state::{EngineState, engine_state, job_pods_failure};

/// The engine state of the started Operation's child.
pub(super) async fn follow(
    op: &Operation,
    ctx: &Context,
    admission: Admission,
    rendered: Rendered,
) -> Result<Ending, Error> {
    let Admission {
        admitted,
        target,
        template,
    } = admission;
    let Rendered {
        main, engine_ref, ..
    } = rendered;
    let namespace = op.namespace().unwrap_or_default();
    let engine = op.spec.engine;
    let Some(live) = ctx.resources.get(&main).await? else {
        if engine == Engine::Helm {
            return Ok(Ending::Unseen);
        }
        return Ok(Ending::Lost {
            admitted,
            message: format!("{} {} disappeared", engine_ref.kind, engine_ref.name),
            running: "child deleted",
        });
    };
    if engine != Engine::Helm
        && let Some(owner) =
            crate::render::tenancy::foreign_owner(&live, &namespace, &op.name_any())
    {
        // Another tenant's child under the same name (render::tenancy::foreign_owner): never followed, never
        // deleted (cancel checks the same).
        return Ok(Ending::Lost {
            admitted,
            message: format!(
                "{} {}/{} belongs to {owner}, not to this Operation (child names collide): rename the Operation",
                engine_ref.kind, engine_ref.namespace, engine_ref.name
            ),
            running: "child not ours",
        });
    }
    let mut state = engine_state(
        engine,
        &live,
        template.output_name.as_deref(),
        &engine_ref.name,
        desired_version(op, &target).as_deref(),
    );
    if matches!(engine, Engine::Job | Engine::HelmHookJob) && state.phase == Phase::Failed {
        add_pod_reasons(ctx, &namespace, &engine_ref.name, &mut state.message).await;
    }
    Ok(Ending::Followed { admitted, state })
}

/// The chart version an upgrade goes to: its `targetVersion` parameter, or the target's chart version.
fn desired_version(op: &Operation, target: &ApplicationInstance) -> Option<String> {
    op.spec
        .parameters
        .as_ref()
        .and_then(|p| p.get("targetVersion"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| target.spec.chart.as_ref().map(|c| c.version.clone()))
}

/// The conditions of a followed child's state (besides Verified and Accepted): the terminal condition once it
/// finished; Running and Blocked (an engine waiting for a human) while it runs.
pub(super) fn conditions(state: &EngineState) -> Vec<Cond> {
    let terminal = match state.phase {
        Phase::Succeeded => Some((types::SUCCEEDED, reasons::ENGINE_COMPLETED)),
        Phase::Failed => Some((types::FAILED, reasons::ENGINE_FAILED)),
        _ => None,
    };
    if let Some((terminal, running_reason)) = terminal {
        return vec![
            Cond::new(terminal, "True", state.reason, state.message.clone()),
            Cond::new(types::RUNNING, "False", running_reason, ""),
            Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
        ];
    }
    vec![
        Cond::new(
            types::RUNNING,
            "True",
            reasons::ENGINE_STARTED,
            state.message.clone(),
        ),
        match state.blocked {
            Some(reason) => Cond::new(types::BLOCKED, "True", reason, state.message.clone()),
            None => Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
        },
    ]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn state(phase: Phase, reason: &'static str, blocked: Option<&'static str>) -> EngineState {
        EngineState {
            phase,
            reason,
            message: "m".into(),
            blocked,
            outputs: BTreeMap::new(),
            started_at: None,
            finished_at: None,
            warning: None,
        }
    }

    #[test]
    fn a_finished_child_gives_its_terminal_condition() {
        assert_eq!(
            conditions(&state(Phase::Succeeded, reasons::ENGINE_COMPLETED, None)),
            [
                Cond::new(types::SUCCEEDED, "True", reasons::ENGINE_COMPLETED, "m"),
                Cond::new(types::RUNNING, "False", reasons::ENGINE_COMPLETED, ""),
                Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
            ]
        );
        assert_eq!(
            conditions(&state(Phase::Failed, reasons::TIMEOUT, None)),
            [
                Cond::new(types::FAILED, "True", reasons::TIMEOUT, "m"),
                Cond::new(types::RUNNING, "False", reasons::ENGINE_FAILED, ""),
                Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
            ]
        );
    }

    #[test]
    fn a_running_child_is_running_and_blocked_while_it_waits_for_a_human() {
        assert_eq!(
            conditions(&state(Phase::Running, reasons::ENGINE_STARTED, None)),
            [
                Cond::new(types::RUNNING, "True", reasons::ENGINE_STARTED, "m"),
                Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
            ]
        );
        assert_eq!(
            conditions(&state(
                Phase::Running,
                reasons::ENGINE_STARTED,
                Some(reasons::AWAITING_RESUME)
            )),
            [
                Cond::new(types::RUNNING, "True", reasons::ENGINE_STARTED, "m"),
                Cond::new(types::BLOCKED, "True", reasons::AWAITING_RESUME, "m"),
            ]
        );
    }

    #[test]
    fn an_upgrade_goes_to_its_target_version_or_the_targets_chart_version() {
        let target: ApplicationInstance = serde_json::from_value(json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1",
            "kind": "ApplicationInstance",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"appRef": {"catalogId": "c"},
                     "chart": {"sourceType": "oci", "url": "oci://r.io/c", "name": "c", "version": "1.0.0"}},
        }))
        .unwrap();
        let op = |parameters: Value| -> Operation {
            serde_json::from_value(json!({
                "apiVersion": "ops.vworkspace.io/v1alpha1",
                "kind": "Operation",
                "metadata": {"name": "up", "namespace": "team-a"},
                "spec": {
                    "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "web"},
                    "type": "Upgrade", "engine": "helm", "parameters": parameters,
                },
            }))
            .unwrap()
        };
        assert_eq!(
            desired_version(&op(json!({"targetVersion": "2.0.0"})), &target).as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            desired_version(&op(json!({})), &target).as_deref(),
            Some("1.0.0")
        );
    }
}
