//! Finalizers of the intents: added (with the operator's field manager) before the operator first creates
//! something it must clean up or report on, and removed only once that cleanup is complete, so a deleted
//! ApplicationInstance stays visible (Deleting=True) until its HelmRelease and chart source are gone, and a
//! deleted Operation until its child is gone and its Cancelled outcome is recorded.
//!
//! Both patches are JSON patches with a `test` operation, so a concurrent change of the finalizer list makes
//! the patch fail (and the reconcile retry) instead of overwriting another controller's finalizer.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::FIELD_MANAGER;

/// Whether `obj` carries `finalizer`.
pub fn has<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.finalizers().iter().any(|f| f == finalizer)
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The JSON patch that adds `finalizer` to an object whose finalizer list is `current`.
fn add_patch(current: &[String], finalizer: &str) -> Value {
    if current.is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
        ])
    }
}

/// The JSON patch that removes `finalizer`, or None when the list does not hold it.
fn remove_patch(current: &[String], finalizer: &str) -> Option<Value> {
    let i = current.iter().position(|f| f == finalizer)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(json!([
        {"op": "test", "path": path, "value": finalizer},
        {"op": "remove", "path": path},
    ]))
}

/// Add `finalizer` unless present; returns `obj` with it and with the resourceVersion the API server answered
/// (of the answer nothing else is read: its managedFields stay as they were in `obj`, which nothing after the
/// trust check reads).
pub async fn add<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if has(obj, finalizer) {
        return Ok(obj.clone());
    }
    let patch: json_patch::Patch = serde_json::from_value(add_patch(obj.finalizers(), finalizer))
        .map_err(kube::Error::SerdeError)?;
    let answer: crate::k8s::answer::Version = send(api, obj, patch).await?;
    let mut added = obj.clone();
    let meta = added.meta_mut();
    meta.finalizers
        .get_or_insert_with(Vec::new)
        .push(finalizer.to_string());
    meta.resource_version = answer.resource_version().map(str::to_string);
    Ok(added)
}

/// Send a JSON patch of `obj` and read its answer as `T` (`k8s::answer`).
async fn send<K, T>(api: &Api<K>, obj: &K, patch: json_patch::Patch) -> Result<T, kube::Error>
where
    K: Resource + Clone,
    T: DeserializeOwned,
{
    let name = obj.name_any();
    let request = crate::k8s::answer::patch(
        api.resource_url(),
        &name,
        None,
        &params(),
        &Patch::Json::<()>(patch),
    );
    crate::k8s::answer::send(&api.clone().into_client(), request, "patch").await
}

/// Remove `finalizer` when present.
pub async fn remove<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let Some(patch) = remove_patch(obj.finalizers(), finalizer) else {
        return Ok(());
    };
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    match send::<K, serde::de::IgnoredAny>(api, obj, patch).await {
        Ok(_) => Ok(()),
        // Already gone: the last finalizer was removed by someone else in between.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patches_test_the_list_they_change() {
        assert_eq!(
            add_patch(&[], "a/f"),
            json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                   {"op": "add", "path": "/metadata/finalizers", "value": ["a/f"]}])
        );
        assert_eq!(
            add_patch(&list(&["other"]), "a/f"),
            json!([{"op": "test", "path": "/metadata/finalizers", "value": ["other"]},
                   {"op": "add", "path": "/metadata/finalizers/-", "value": "a/f"}])
        );
        assert_eq!(
            remove_patch(&list(&["other", "a/f"]), "a/f"),
            Some(
                json!([{"op": "test", "path": "/metadata/finalizers/1", "value": "a/f"},
                       {"op": "remove", "path": "/metadata/finalizers/1"}])
            )
        );
        assert_eq!(remove_patch(&list(&["other"]), "a/f"), None);
    }
}
