//! Admit: a verified Operation's target exists, and the Operation passes every rule (the API server's, then the
//! webhook's: its template, parameters, capability on the target, tenancy), so that an Operation admitted before
//! the policies were installed, or with admission switched off, is judged the same.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::Api;

use super::{Admitted, Ending, Error};
use crate::api::{ApplicationInstance, Operation, template_key};
use crate::controller::context::Context;
use crate::intent::IntentKind;
use crate::render::OperationTemplateSpec;
use crate::source::Origin;
use crate::validate;

/// An admitted Operation and what the later steps need of it.
pub(super) struct Admission {
    pub admitted: Admitted,
    /// Its target, as read now.
    pub target: ApplicationInstance,
    /// Its template's spec (approval, output name, children).
    pub template: OperationTemplateSpec,
}

/// The target exists and the Operation is valid: its [`Admission`], or the [`Ending`] that says why not.
pub(super) async fn admit(
    op: &Operation,
    ctx: &Context,
    origin: Origin,
) -> Result<Result<Admission, Ending>, Error> {
    let namespace = op.namespace().unwrap_or_default();
    let api: Api<ApplicationInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(target) = api.get_opt(&op.spec.target_ref.name).await? else {
        let message = format!(
            "ApplicationInstance {namespace}/{} not found",
            op.spec.target_ref.name
        );
        return Ok(Err(Ending::NoTarget { origin, message }));
    };
    let ns_annotations = ctx.namespace_annotations(&namespace).await?;
    let vctx = validate::Context {
        cluster_id: Some(&ctx.settings.cluster_id),
        renderer: &ctx.renderer,
    };
    if let Err(message) = validate(op, &target, &ns_annotations, &vctx) {
        return Ok(Err(Ending::Invalid { origin, message }));
    }
    let key = template_key(op.spec.type_, op.spec.engine);
    let template = match ctx.renderer.operation_spec(&key) {
        Some(Ok(spec)) => spec.clone(),
        _ => return Ok(Err(Ending::NoTemplate)), // validated above
    };
    Ok(Ok(Admission {
        admitted: Admitted {
            origin,
            template: key,
        },
        target,
        template,
    }))
}

/// Every rule on `op` with its `target` and its namespace's annotations: the problems, one `field: reason` each,
/// joined. The approval claim is left to the wait step, which checks it with the key.
fn validate(
    op: &Operation,
    target: &ApplicationInstance,
    ns_annotations: &BTreeMap<String, String>,
    vctx: &validate::Context,
) -> Result<(), String> {
    let namespace = op.namespace().unwrap_or_default();
    let location = format!("{namespace}/{}", op.name_any());
    let mut problems = validate::check_api_server(
        &location,
        IntentKind::Operation,
        &serde_json::to_value(op).unwrap_or_default(),
        None,
        &validate::namespace_stand_in(&namespace, Some(ns_annotations)),
        vctx,
    );
    problems.extend(validate::check_operation(&location, op, vctx));
    problems.extend(validate::check_operation_target(
        &location,
        op,
        Some(target),
    ));
    let problems: Vec<_> = problems
        .into_iter()
        // the claim is checked below with the key, which render cannot do
        .filter(|p| p.field != "spec.approvals.claim")
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.reason))
        .collect::<Vec<_>>()
        .join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{RenderOptions, Renderer, Templates};
    use serde_json::json;

    fn op(type_: &str, engine: &str, claim: bool) -> Operation {
        let mut spec = json!({
            "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "web"},
            "type": type_,
            "engine": engine,
        });
        if claim {
            spec["approvals"] = json!({"required": true});
        }
        serde_json::from_value(json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1",
            "kind": "Operation",
            "metadata": {"name": "op-1", "namespace": "team-a", "labels": {
                "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": "c1"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn target(capabilities: &[(&str, &str)]) -> ApplicationInstance {
        let annotations: BTreeMap<String, String> = capabilities
            .iter()
            .map(|(verb, engines)| {
                (
                    crate::api::labels::capability_key(verb),
                    engines.to_string(),
                )
            })
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1",
            "kind": "ApplicationInstance",
            "metadata": {"name": "web", "namespace": "team-a", "annotations": annotations},
            "spec": {"appRef": {"catalogId": "bookstack"}, "mode": "placeholder"},
        }))
        .unwrap()
    }

    fn check(op: &Operation, target: &ApplicationInstance) -> Result<(), String> {
        let renderer = Renderer::new(Templates::embedded(), RenderOptions::default());
        let vctx = validate::Context {
            cluster_id: Some("c1"),
            renderer: &renderer,
        };
        validate(op, target, &BTreeMap::new(), &vctx)
    }

    #[test]
    fn the_target_must_allow_the_operation_by_its_capability_annotation() {
        let refused = check(&op("RunCommand", "job", false), &target(&[])).unwrap_err();
        assert!(
            refused
                .contains("spec.engine: target ApplicationInstance team-a/web does not allow it"),
            "{refused}"
        );
        let allowed = check(
            &op("RunCommand", "job", false),
            &target(&[("runcommand", "job")]),
        );
        assert!(
            allowed
                .as_ref()
                .err()
                .is_none_or(|e| !e.contains("does not allow it")),
            "{allowed:?}"
        );
    }

    #[test]
    fn problems_are_joined_and_a_missing_claim_is_left_to_the_wait_step() {
        // No template backup.helm, no capability, and approval required without a claim.
        let refused = check(&op("Backup", "helm", true), &target(&[])).unwrap_err();
        assert!(
            refused.contains("spec.engine: no template backup.helm"),
            "{refused}"
        );
        assert!(
            refused
                .contains("; spec.engine: target ApplicationInstance team-a/web does not allow it"),
            "{refused}"
        );
        assert!(!refused.contains("spec.approvals.claim"), "{refused}");
    }
}
