//! Start: render the engine's objects for the Operation and its target, stamp them (owner, origin), check every
//! kind they need is served (the engine is installed), and — once, when the Operation has not started — create
//! them. The helm engine creates nothing: the ApplicationInstance reconciler renders the upgrade while the
//! Operation is Running (see `application::active_upgrade`).

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::admit::Admission;
use super::{Ending, Error};
use crate::api::{Engine, EngineRef, Operation};
use crate::controller::context::Context;
use crate::source::Origin;

/// The engine's objects, rendered and stamped, and the one the Operation follows.
pub(super) struct Rendered {
    pub objects: Vec<Value>,
    /// The child the Operation follows (the helm engine's HelmRelease; the first object otherwise).
    pub main: Value,
    pub engine_ref: EngineRef,
}

/// Why there is nothing to start.
pub(super) enum Unrendered {
    /// The render failed, and why.
    Failed(String),
    /// Kinds the objects need are not served (`Kind.group`): the engine is not installed.
    NotInstalled(Vec<String>),
}

/// Render and stamp the engine's objects, and check their kinds are served.
pub(super) async fn render(
    op: &Operation,
    ctx: &Context,
    admission: &Admission,
) -> Result<Result<Rendered, Unrendered>, Error> {
    let mut objects = match ctx.renderer.render_operation(op, &admission.target) {
        Ok(objects) => objects,
        Err(e) => return Ok(Err(Unrendered::Failed(e.to_string()))),
    };
    stamp(op, &mut objects, &admission.admitted.origin);
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
        return Ok(Err(Unrendered::NotInstalled(missing)));
    }
    let (main, engine_ref) = main_child(
        op.spec.engine,
        ctx.settings.helm_engine.release_kind(),
        &objects,
    );
    Ok(Ok(Rendered {
        objects,
        main,
        engine_ref,
    }))
}

/// Start: create the children (unless the namespace lost its gate meanwhile).
pub(super) async fn start(
    op: &Operation,
    ctx: &Context,
    admission: Admission,
    rendered: Rendered,
) -> Result<Ending, Error> {
    if !ctx
        .namespace_gated(&op.namespace().unwrap_or_default())
        .await?
    {
        return Ok(Ending::Ungated);
    }
    let engine = op.spec.engine;
    if engine != Engine::Helm {
        create_children(ctx, &rendered.objects).await?;
    }
    // The helm engine writes nothing itself: the upgrade starts at the target's current generation.
    let app_generation = (engine == Engine::Helm).then(|| {
        admission
            .target
            .metadata
            .generation
            .unwrap_or_default()
            .to_string()
    });
    Ok(Ending::Started {
        admitted: admission.admitted,
        engine_ref: rendered.engine_ref,
        app_generation,
    })
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

/// The child an Operation follows (the helm engine's release: `release_kind`, HelmRelease or Application;
/// the first object otherwise) and its reference.
fn main_child(engine: Engine, release_kind: &str, objects: &[Value]) -> (Value, EngineRef) {
    let main = objects
        .iter()
        .find(|o| engine != Engine::Helm || crate::render::kind(o) == release_kind)
        .cloned()
        .unwrap_or(Value::Null);
    let engine_ref = EngineRef {
        kind: crate::render::kind(&main).to_string(),
        name: crate::render::name(&main).to_string(),
        namespace: crate::render::namespace(&main).to_string(),
    };
    (main, engine_ref)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> Operation {
        serde_json::from_value(json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1",
            "kind": "Operation",
            "metadata": {"name": "op-1", "namespace": "team-a", "uid": "u-1"},
            "spec": {
                "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "web"},
                "type": "Upgrade",
                "engine": "helm",
            },
        }))
        .unwrap()
    }

    fn object(kind: &str, namespace: &str, name: &str) -> Value {
        json!({"apiVersion": "x/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}})
    }

    #[test]
    fn children_name_their_origin_and_are_owned_only_in_the_operations_namespace() {
        let mut objects = vec![
            object("Job", "team-a", "here"),
            object("Backup", "velero", "there"),
        ];
        let origin = Origin::Job {
            job_id: "j-1".into(),
            signer: "-".into(),
        };
        stamp(&op(), &mut objects, &origin);
        let (key, value) = origin.annotation();
        for obj in &objects {
            assert_eq!(obj["metadata"]["annotations"][key], json!(value));
        }
        assert_eq!(
            objects[0]["metadata"]["ownerReferences"][0]["name"],
            json!("op-1")
        );
        assert!(objects[1]["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn the_helm_engine_follows_its_helm_release_and_the_others_their_first_object() {
        let objects = [
            object("OCIRepository", "team-a", "web"),
            object("HelmRelease", "team-a", "web-hr"),
        ];
        let (main, engine_ref) = main_child(Engine::Helm, "HelmRelease", &objects);
        assert_eq!(main, objects[1]);
        assert_eq!(
            engine_ref,
            EngineRef {
                kind: "HelmRelease".into(),
                name: "web-hr".into(),
                namespace: "team-a".into(),
            }
        );
        assert_eq!(
            main_child(Engine::Job, "HelmRelease", &objects).0,
            objects[0]
        );
        assert_eq!(main_child(Engine::Helm, "HelmRelease", &[]).0, Value::Null);
        let argo = [
            object("AppProject", "argocd", "team-a-web"),
            object("Application", "team-a", "web"),
        ];
        assert_eq!(main_child(Engine::Helm, "Application", &argo).0, argo[1]);
    }

    #[test]
    fn a_job_gets_its_service_account_unless_it_runs_as_default() {
        let job = |account: &str| {
            let mut j = object("Job", "team-a", "j");
            j["spec"] = json!({"template": {"spec": {"serviceAccountName": account}}});
            j
        };
        let account = pod_service_account(&job("vworkspace-operation-runner")).unwrap();
        assert_eq!(
            (
                account["kind"].as_str(),
                crate::render::name(&account),
                crate::render::namespace(&account)
            ),
            (
                Some("ServiceAccount"),
                "vworkspace-operation-runner",
                "team-a"
            )
        );
        assert_eq!(pod_service_account(&job("default")), None);
        assert_eq!(pod_service_account(&job("")), None);
        assert_eq!(pod_service_account(&object("Backup", "velero", "b")), None);
    }
}
