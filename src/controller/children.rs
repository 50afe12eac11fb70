//! What the watches of an ApplicationInstance's children (HelmRelease, OCIRepository, HelmRepository, or Argo CD's
//! Application and AppProject) last saw,
//! so a reconcile reads its children without a request. Objects are kept as compact JSON text (a few kB each,
//! where a parsed object tree takes several times that), parsed when read, without managedFields and with only
//! the status fields the instance's conditions are computed from (Flux keeps up to ten release snapshots in a
//! HelmRelease's history, of which only each one's chart version and status count).
//!
//! The watch that fills this cache is the same stream that triggers the reconcile, so a reconcile caused by a
//! child's change sees that change. Before a kind's first list is complete every answer is [`Lookup::Unknown`]
//! and the reconciler asks the API server, as it does when the cached object differs from what it would apply
//! (the cache may lag behind the reconciler's own writes).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use serde_json::Value;

/// One cached object: its resourceVersion (an etcd revision) and its JSON text.
struct Entry {
    resource_version: Option<u64>,
    json: Box<str>,
}

#[derive(Default)]
struct Kind {
    objects: HashMap<(String, String), Entry>,
    /// Objects of a re-list in progress (between `Init` and `InitDone`).
    relist: Option<HashMap<(String, String), Entry>>,
    synced: bool,
}

/// The answer of the cache about one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The kind's watch has not completed its first list: ask the API server.
    Unknown,
    /// The watch has not seen the object.
    Absent,
    Present(Value),
}

/// Children last seen by their watches, by kind.
#[derive(Default)]
pub struct ChildCache {
    kinds: Mutex<HashMap<String, Kind>>,
}

/// The status fields kept of Flux's kinds (see `status::application_conditions`).
const STATUS_KEPT: &[&str] = &[
    "observedGeneration",
    "conditions",
    "history",
    "lastAttemptedRevision",
];

/// The status fields kept of an Argo CD Application (see `argocd_status::application_conditions`).
const APPLICATION_STATUS_KEPT: &[&str] =
    &["conditions", "history", "sync", "health", "operationState"];

/// Only what the instance's conditions are computed from: Flux keeps the newest release first in its
/// history (each snapshot's chart version, status and artifact digest count), Argo CD appends its newest sync last; of an Application's sources only the target revision
/// counts, and none of the per-resource results.
fn compact_status(kind: &str, status: &mut serde_json::Map<String, Value>) {
    let application = kind == "Application";
    let kept = if application {
        APPLICATION_STATUS_KEPT
    } else {
        STATUS_KEPT
    };
    status.retain(|k, _| kept.contains(&k.as_str()));
    if let Some(history) = status.get_mut("history").and_then(Value::as_array_mut) {
        if application {
            let newest = history.pop();
            history.clear();
            history.extend(newest);
        } else {
            // The newest snapshot's chart version, and whether any was ever deployed.
            for snapshot in history.iter_mut() {
                if let Some(map) = snapshot.as_object_mut() {
                    map.retain(|k, _| k == "chartVersion" || k == "status" || k == "ociDigest");
                }
            }
        }
    }
    if !application {
        return;
    }
    let revision_only = |source: &mut Value| {
        if let Some(map) = source.as_object_mut() {
            map.retain(|k, _| k == "targetRevision");
        }
    };
    for pointer in [
        "/sync/comparedTo/source",
        "/operationState/operation/sync/source",
        "/operationState/syncResult/source",
    ] {
        if let Some(source) = pointer_mut(status, pointer) {
            revision_only(source);
        }
    }
    if let Some(history) = status.get_mut("history").and_then(Value::as_array_mut) {
        for h in history {
            if let Some(source) = h.get_mut("source") {
                revision_only(source);
            }
        }
    }
    if let Some(result) =
        pointer_mut(status, "/operationState/syncResult").and_then(Value::as_object_mut)
    {
        result.remove("resources");
    }
    if let Some(sync) = status.get_mut("sync").and_then(Value::as_object_mut)
        && let Some(compared) = sync.get_mut("comparedTo").and_then(Value::as_object_mut)
    {
        compared.remove("destination");
    }
}

/// A JSON pointer into a status map.
fn pointer_mut<'a>(
    status: &'a mut serde_json::Map<String, Value>,
    pointer: &str,
) -> Option<&'a mut Value> {
    let (first, rest) = pointer.trim_start_matches('/').split_once('/')?;
    status.get_mut(first)?.pointer_mut(&format!("/{rest}"))
}

/// The cache's entry for an object (as a watch delivered it, or as the API server answered a write): without
/// managedFields, with only the status fields the conditions are computed from.
fn entry(kind: &str, mut obj: Value) -> ((String, String), Entry) {
    if let Some(map) = obj.as_object_mut() {
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        if let Some(status) = map.get_mut("status").and_then(Value::as_object_mut) {
            compact_status(kind, status);
        }
    }
    let meta = |field: &str| {
        obj.get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
    };
    let key = (
        meta("namespace").unwrap_or_default().to_string(),
        meta("name").unwrap_or_default().to_string(),
    );
    let resource_version = meta("resourceVersion").and_then(|rv| rv.parse::<u64>().ok());
    let json = serde_json::to_string(&obj)
        .unwrap_or_default()
        .into_boxed_str();
    (
        key,
        Entry {
            resource_version,
            json,
        },
    )
}

/// A watched object's entry.
fn watched(kind: &str, obj: &DynamicObject) -> ((String, String), Entry) {
    entry(kind, serde_json::to_value(obj).unwrap_or_default())
}

impl ChildCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kind>> {
        match self.kinds.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Apply one watch event of `kind`.
    pub fn observe(&self, kind: &str, event: &watcher::Event<DynamicObject>) {
        let mut kinds = self.lock();
        let k = kinds.entry(kind.to_string()).or_default();
        match event {
            watcher::Event::Apply(obj) => {
                let (key, e) = watched(kind, obj);
                keep_newer(&mut k.objects, key, e);
            }
            watcher::Event::Delete(obj) => {
                k.objects
                    .remove(&(obj.namespace().unwrap_or_default(), obj.name_any()));
            }
            watcher::Event::Init => k.relist = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                let (key, e) = watched(kind, obj);
                k.relist.get_or_insert_with(HashMap::new).insert(key, e);
            }
            watcher::Event::InitDone => {
                if let Some(objects) = k.relist.take() {
                    k.objects = objects;
                }
                k.synced = true;
            }
        }
    }

    /// The object of `kind` named `namespace/name`, as last seen.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Lookup {
        let kinds = self.lock();
        let Some(k) = kinds.get(kind).filter(|k| k.synced) else {
            return Lookup::Unknown;
        };
        match k.objects.get(&(namespace.to_string(), name.to_string())) {
            Some(e) => serde_json::from_str(&e.json).map_or(Lookup::Unknown, Lookup::Present),
            None => Lookup::Absent,
        }
    }

    /// Remember an object as the API server returned it from a write, unless the watch has already seen the
    /// same or a newer version of it.
    pub fn written(&self, kind: &str, obj: &Value) {
        let (key, e) = entry(kind, obj.clone());
        if e.resource_version.is_none() {
            return;
        }
        let mut kinds = self.lock();
        let k = kinds.entry(kind.to_string()).or_default();
        keep_newer(&mut k.objects, key, e);
    }
}

/// Keep `e` unless the cache holds the same or a newer version of the object: a watch event that was on its
/// way while our own write was answered must not take the cache back to before that write (the reconciler
/// would then apply again what is already there).
fn keep_newer(objects: &mut HashMap<(String, String), Entry>, key: (String, String), e: Entry) {
    let stale = objects.get(&key).is_some_and(|old| {
        matches!((old.resource_version, e.resource_version), (Some(old), Some(new)) if new <= old)
    });
    if !stale {
        objects.insert(key, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hr(name: &str, rv: &str, ready: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
                "managedFields": [{"manager": "x", "operation": "Apply"}]},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                "history": [{"chartVersion": "2.0.0", "status": "failed", "digest": "sha256:b"},
                    {"chartVersion": "1.0.0", "status": "superseded", "digest": "sha256:a"}],
                "lastAttemptedRevision": "2.0.0", "storageNamespace": "ns"}
        }))
        .unwrap()
    }

    fn ready(l: &Lookup) -> Option<&str> {
        match l {
            Lookup::Present(v) => v.pointer("/status/conditions/0/status")?.as_str(),
            _ => None,
        }
    }

    #[test]
    fn the_cache_follows_the_watch_and_never_goes_back_in_time() {
        let cache = ChildCache::default();
        let kind = "HelmRelease";
        assert_eq!(cache.get(kind, "ns", "a"), Lookup::Unknown);
        cache.observe(kind, &watcher::Event::Init);
        cache.observe(kind, &watcher::Event::InitApply(hr("a", "10", "False")));
        assert_eq!(
            cache.get(kind, "ns", "a"),
            Lookup::Unknown,
            "not synced yet"
        );
        cache.observe(kind, &watcher::Event::InitDone);
        let a = cache.get(kind, "ns", "a");
        assert_eq!(ready(&a), Some("False"));
        let Lookup::Present(v) = &a else { panic!() };
        assert!(v.pointer("/metadata/managedFields").is_none());
        assert_eq!(
            v["status"]["history"],
            json!([{"chartVersion": "2.0.0", "status": "failed"}, {"chartVersion": "1.0.0", "status": "superseded"}]),
            "each release's chart version and status only"
        );
        assert!(v.pointer("/status/storageNamespace").is_none());
        assert_eq!(v["status"]["lastAttemptedRevision"], "2.0.0");
        assert_eq!(cache.get(kind, "ns", "b"), Lookup::Absent);
        // A write the watch has not delivered yet is remembered; an older one is not.
        let written = serde_json::to_value(hr("b", "12", "Unknown")).unwrap();
        cache.written(kind, &written);
        assert_eq!(ready(&cache.get(kind, "ns", "b")), Some("Unknown"));
        cache.observe(kind, &watcher::Event::Apply(hr("a", "15", "True")));
        let stale = serde_json::to_value(hr("a", "11", "False")).unwrap();
        cache.written(kind, &stale);
        assert_eq!(ready(&cache.get(kind, "ns", "a")), Some("True"));
        // A watch event older than our own write (it was on its way when the write was answered).
        cache.observe(kind, &watcher::Event::Apply(hr("b", "11", "False")));
        assert_eq!(ready(&cache.get(kind, "ns", "b")), Some("Unknown"));
        cache.observe(kind, &watcher::Event::Apply(hr("b", "13", "True")));
        assert_eq!(ready(&cache.get(kind, "ns", "b")), Some("True"));
        // Deletion, and a re-list that no longer has the object.
        cache.observe(kind, &watcher::Event::Delete(hr("b", "16", "Unknown")));
        assert_eq!(cache.get(kind, "ns", "b"), Lookup::Absent);
        cache.observe(kind, &watcher::Event::Init);
        cache.observe(kind, &watcher::Event::InitDone);
        assert_eq!(cache.get(kind, "ns", "a"), Lookup::Absent);
    }
}
