//! Watches that keep a store: what the controllers and the admission webhook read objects from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::TryStreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};

/// A watch of `K` that keeps a store (with managedFields reduced to who owns the spec: they are most of an
/// object's size, and Push mode's provenance needs only that; see [`compact_managed_fields`]) and yields the objects it applies, as a controller's trigger. The flag turns
/// true once the store holds a complete list: asking the store itself (`wait_until_ready`) from elsewhere would
/// take the single wake-up slot of the Controller waiting on it.
pub fn stored_watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    Arc<AtomicBool>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let stream = reflector(
        writer,
        watcher(api, config).modify(|obj| compact_managed_fields(obj.managed_fields_mut())),
    )
    .inspect_ok(move |event| {
        if matches!(event, watcher::Event::InitDone) {
            flag.store(true, Ordering::Release);
        }
    })
    .applied_objects();
    (reader, synced, stream)
}

/// Keep of managedFields only the entries that own fields of `spec` on the main resource (not the status
/// subresource), each reduced to its manager, operation and a `{"f:spec": {}}` marker: what Push mode's
/// provenance reads (`crate::source::push`), in a few dozen bytes instead of the field sets.
pub fn compact_managed_fields(
    entries: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    entries.retain(|e| {
        e.subresource.as_deref().unwrap_or_default().is_empty()
            && e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
    });
    for e in entries.iter_mut() {
        e.fields_v1 = Some(FieldsV1(serde_json::json!({"f:spec": {}})));
        e.time = None;
    }
}

/// One watch of a kind for the whole process: a store every reader shares (the controllers, the admission
/// webhook, the Pull agent) and a fan-out of the objects it applies to every controller that subscribes. The
/// watch runs from start, also on a replica that waits for the Lease (its webhook reads the store); a
/// controller subscribes once it leads and is then told about every object in the store, so starting late
/// misses nothing.
pub struct Shared<K>
where
    K: kube::Resource + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    synced: Arc<AtomicBool>,
    applied: tokio::sync::broadcast::Sender<Applied<K>>,
}

impl<K> Clone for Shared<K>
where
    K: kube::Resource + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            synced: self.synced.clone(),
            applied: self.applied.clone(),
        }
    }
}

/// How many applied objects a subscriber may fall behind before it is told about the whole store instead.
const FAN_OUT: usize = 1024;

/// What a subscriber is told next.
enum Applied<K: kube::Resource>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    /// This object was applied.
    One(reflector::ObjectRef<K>),
    /// Every object in the store: after a (re)list, or when the subscriber fell behind.
    All,
}

impl<K: kube::Resource> Clone for Applied<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn clone(&self) -> Self {
        match self {
            Applied::One(r) => Applied::One(r.clone()),
            Applied::All => Applied::All,
        }
    }
}

/// What subscribers are told about a watch event, once the reflector has applied it to the store: an applied
/// object, or every object when a (re)list is done (a listed object is in the store only then: telling it
/// earlier would tell nothing about the objects created while the watch was down). Nothing for the rest.
fn to_tell<K: kube::Resource>(event: &watcher::Event<K>) -> Option<Applied<K>>
where
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    match event {
        watcher::Event::Apply(obj) => Some(Applied::One(reflector::ObjectRef::from_obj(obj))),
        watcher::Event::InitDone => Some(Applied::All),
        watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::Delete(_) => None,
    }
}

impl<K> Shared<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    /// The shared watch, and the future that runs it (poll it for as long as the process reads the store).
    pub fn new(
        api: Api<K>,
        config: watcher::Config,
    ) -> (Self, futures::future::BoxFuture<'static, ()>) {
        use futures::StreamExt;
        let (store, writer) = reflector::store();
        let synced = Arc::new(AtomicBool::new(false));
        let (applied, _) = tokio::sync::broadcast::channel(FAN_OUT);
        let (tx, flag) = (applied.clone(), synced.clone());
        let events = reflector(
            writer,
            watcher(api, config).modify(|obj| compact_managed_fields(obj.managed_fields_mut())),
        );
        let run = Box::pin(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                // Sent once the store holds the object (the reflector writes it first). A send with no
                // subscriber (a standby) tells no one, and is not needed.
                match event {
                    Ok(event) => {
                        if matches!(event, watcher::Event::InitDone) {
                            flag.store(true, Ordering::Release);
                        }
                        if let Some(told) = to_tell(&event) {
                            drop(tx.send(told));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, kind = %K::kind(&Default::default()), "watch failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        (
            Self {
                store,
                synced,
                applied,
            },
            run,
        )
    }

    /// The store (objects with compacted managedFields, see [`compact_managed_fields`]).
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Whether the store holds a complete list.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The flag behind [`Shared::synced`].
    pub fn synced_flag(&self) -> Arc<AtomicBool> {
        self.synced.clone()
    }

    /// The objects this watch applies from now on, as a controller's trigger: first every object in the
    /// store once it holds a complete list, then each object as it is applied, and again every object after
    /// the watch listed again (objects created while it was down are in that list, and in the store only once
    /// the list is complete) or when this subscriber fell more than [`FAN_OUT`] behind. Deletions are not
    /// told: a deleted intent with a finalizer is an update.
    pub fn subscribe(&self) -> impl futures::Stream<Item = Arc<K>> + Send + 'static {
        use futures::StreamExt;
        let rx = self.applied.subscribe();
        let (store, synced) = (self.store.clone(), self.synced.clone());
        let initial = futures::stream::once(async move {
            while !synced.load(Ordering::Acquire) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
        .map(|()| Applied::All);
        let live = futures::stream::unfold(rx, |mut rx| async move {
            use tokio::sync::broadcast::error::RecvError;
            match rx.recv().await {
                Ok(next) => Some((next, rx)),
                Err(RecvError::Lagged(_)) => Some((Applied::All, rx)),
                Err(RecvError::Closed) => None,
            }
        });
        initial.chain(live).flat_map(move |next| {
            futures::stream::iter(match next {
                Applied::One(r) => store.get(&r).into_iter().collect::<Vec<_>>(),
                Applied::All => store.state(),
            })
        })
    }
}

/// This cluster's intents, watched once per process: the stores the webhook reads, shared with the
/// controllers when it runs inside the operator.
#[derive(Clone)]
pub struct IntentWatches {
    pub apps: Shared<crate::api::ApplicationInstance>,
    pub ops: Shared<crate::api::Operation>,
}

impl IntentWatches {
    /// Watch the intents labelled with this cluster's id; the futures run the watches (poll them while the
    /// stores are read).
    pub fn new(
        client: &kube::Client,
        cluster_id: &str,
    ) -> (Self, Vec<futures::future::BoxFuture<'static, ()>>) {
        let selector = format!("{}={}", crate::api::labels::CLUSTER_ID, cluster_id);
        let (apps, run_apps) = Shared::new(
            Api::<crate::api::ApplicationInstance>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        );
        let (ops, run_ops) = Shared::new(
            Api::<crate::api::Operation>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        );
        (Self { apps, ops }, vec![run_apps, run_ops])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("n".into());
        cm
    }

    #[test]
    fn a_relist_is_told_as_every_object_once_it_is_in_the_store() {
        let told = |e: watcher::Event<ConfigMap>| match to_tell(&e) {
            Some(Applied::One(r)) => format!("one {}", r.name),
            Some(Applied::All) => "all".into(),
            None => "nothing".into(),
        };
        assert_eq!(told(watcher::Event::Apply(cm("a"))), "one a");
        // Listed objects are not in the store yet: telling them one by one would tell nothing.
        assert_eq!(told(watcher::Event::Init), "nothing");
        assert_eq!(told(watcher::Event::InitApply(cm("b"))), "nothing");
        assert_eq!(told(watcher::Event::InitDone), "all");
        assert_eq!(told(watcher::Event::Delete(cm("a"))), "nothing");
    }
}
