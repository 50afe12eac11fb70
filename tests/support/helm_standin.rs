//! Playing Flux's helm-controller where it cannot run (the controller tests and benches have no chart to install):
//! every HelmRelease of a cluster that appears, or changes generation, gets the Ready status helm-controller writes
//! after a successful install. It rides out API outages: watch errors are retried (with backoff) and a status
//! write that fails is written again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// The status helm-controller writes for a release installed at `version`.
pub fn status(name: &str, ns: &str, generation: i64, version: &str) -> Value {
    json!({"status": {"observedGeneration": generation,
        "lastAttemptedRevision": format!("{version}+0123456789ab"), "lastAttemptedGeneration": generation,
        "conditions": [{"type": "Ready", "status": "True", "reason": "InstallSucceeded",
            "message": "Helm install succeeded", "lastTransitionTime": "2026-11-21T00:00:00Z",
            "observedGeneration": generation}],
        "history": [{"chartName": "nextcloud", "chartVersion": version, "configDigest": "sha256:x",
            "digest": "sha256:y", "firstDeployed": "2026-11-21T00:00:00Z", "lastDeployed": "2026-11-21T00:00:00Z",
            "name": name, "namespace": ns, "status": "deployed", "version": 1}]}})
}

/// Write that status, again every 200 ms while the API server refuses or cannot be reached; gives up when the
/// HelmRelease is gone.
pub async fn write_status(
    api: &Api<DynamicObject>,
    name: &str,
    ns: &str,
    generation: i64,
    version: &str,
) {
    let body = status(name, ns, generation, version);
    loop {
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Play helm-controller for one cluster's HelmReleases, `concurrency` writes at a time, until aborted.
pub fn play(
    client: Client,
    hr: ApiResource,
    cluster: &str,
    version: &str,
    concurrency: usize,
) -> tokio::task::JoinHandle<()> {
    let selector = format!("app.vworkspace.io/cluster-id={cluster}");
    let version = version.to_string();
    tokio::spawn(async move {
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &hr);
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut done: HashSet<(String, String, i64)> = HashSet::new();
        let mut stream = std::pin::pin!(
            watcher(all, watcher::Config::default().labels(&selector))
                .default_backoff()
                .applied_objects()
        );
        while let Some(item) = stream.next().await {
            // A watch error (the API server away) is retried by the backoff; the stream goes on.
            let Ok(obj) = item else { continue };
            let generation = obj.metadata.generation.unwrap_or_default();
            let observed = obj
                .data
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64);
            let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
            if observed == Some(generation) || !done.insert((ns.clone(), name.clone(), generation))
            {
                continue;
            }
            let permit = permits.clone().acquire_owned().await.expect("semaphore");
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &hr);
            let version = version.clone();
            tokio::spawn(async move {
                write_status(&api, &name, &ns, generation, &version).await;
                drop(permit);
            });
        }
    })
}
