//! The watches the running operator's run has open on the objects a loop writes, opened by a plain process that
//! only reads them: what the API server spends sending the events of the same writes to a controller's
//! watchers, without any controller (the `Loop::SameWritesWatched` reference).
//!
//! The same watches as in that run, with the same selectors, each decoding its events into the type its
//! reader decodes them into:
//! - the operator's intent watches: ApplicationInstances and Operations labelled with the cluster id, typed;
//! - its children watches: HelmReleases and OCIRepositories labelled as the operator's for the cluster;
//! - the helm-controller stand-in's watch: HelmReleases labelled with the cluster id;
//! - the bench's own wait for Ready: ApplicationInstances labelled with the cluster id.
//!
//! The operator's other watches (Namespaces, the Cluster object, the kinds of Operations) see no event from
//! these writes.

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vworkspace_operator::api::{ApplicationInstance, Operation, labels};

/// Watches that read every event until aborted.
pub(crate) struct Watches(Vec<JoinHandle<()>>);

impl Watches {
    /// Open the watches for `cluster` and return once each has listed.
    pub(crate) async fn open(
        client: &Client,
        cluster: &str,
        hr: &ApiResource,
        oci: &ApiResource,
    ) -> Self {
        let by_cluster = format!("{}={cluster}", labels::CLUSTER_ID);
        let children = format!(
            "{}={},{by_cluster}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_OPERATOR
        );
        let (listed, mut done) = mpsc::channel(8);
        let mut tasks = vec![
            drain(
                Api::<ApplicationInstance>::all(client.clone()),
                &by_cluster,
                &listed,
            ),
            drain(Api::<Operation>::all(client.clone()), &by_cluster, &listed),
            drain(
                Api::<ApplicationInstance>::all(client.clone()),
                &by_cluster,
                &listed,
            ),
        ];
        for (ar, selector) in [(hr, &children), (oci, &children), (hr, &by_cluster)] {
            tasks.push(drain(
                Api::<DynamicObject>::all_with(client.clone(), ar),
                selector,
                &listed,
            ));
        }
        for _ in 0..tasks.len() {
            done.recv().await.expect("a watch listed");
        }
        Watches(tasks)
    }

    pub(crate) fn close(self) {
        for task in self.0 {
            task.abort();
        }
    }
}

/// Read every event of a watch of `api` with `selector`; say once it has listed.
fn drain<K>(api: Api<K>, selector: &str, listed: &mpsc::Sender<()>) -> JoinHandle<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let listed = listed.clone();
    let config = watcher::Config::default().labels(selector);
    tokio::spawn(async move {
        // Errors are retried with the backoff the operator's watches use.
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::InitDone) = event {
                let _ = listed.send(()).await;
            }
        }
    })
}
