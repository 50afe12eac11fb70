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
