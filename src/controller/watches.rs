//! What wakes the controllers, watched once per process: the intents (shared watches, [`IntentWatches`], which
//! the admission webhook reads too) and the children the operator writes (one watch per kind, whose events
//! fill the children cache and wake the intent they belong to, in whichever controller follows that kind).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use super::context::Context;
use crate::api::{ApplicationInstance, Engine, Operation, labels};
use crate::k8s::watch::IntentWatches;

/// How many child events may wait for a controller before the watch waits for it.
const BACKLOG: usize = 1024;

/// The intents the children's events wake, per controller.
pub(super) struct ChildTriggers {
    pub apps: mpsc::Receiver<ObjectRef<ApplicationInstance>>,
    pub ops: mpsc::Receiver<ObjectRef<Operation>>,
}

/// A receiver as a stream (a controller's trigger).
pub(super) fn stream<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}

/// Watch every kind of child once (those an instance renders, and those the operation templates list) with
/// the operator's labels for this cluster. Children in the Velero namespace cannot have owner references, so
/// they map back to their intent through labels.
pub(super) async fn watch_children(
    ctx: &Arc<Context>,
    intents: &IntentWatches,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<ChildTriggers, crate::k8s::apply::ApplyError> {
    let selector = format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_OPERATOR,
        labels::CLUSTER_ID,
        ctx.settings.cluster_id
    );
    let (app_tx, apps) = mpsc::channel(BACKLOG);
    let (op_tx, ops) = mpsc::channel(BACKLOG);
    // The kinds an ApplicationInstance renders with this cluster's engine: their events fill the children
    // cache.
    let engine = &ctx.settings.helm_engine;
    let mut kinds: Vec<(String, String, bool, bool)> = engine
        .child_kinds()
        .iter()
        .map(|(v, k, _)| (v.to_string(), k.to_string(), true, false))
        .collect();
    for (api_version, kind) in operation_kinds(ctx) {
        // The helm engine follows its target's release (HelmRelease or Application); the other objects it
        // lists are the instance's and carry no Operation labels, so following them would wake nothing, and
        // the kinds of the engine this cluster does not run are never written.
        let rendered_by_instances = [
            "HelmRelease",
            "OCIRepository",
            "HelmRepository",
            "Application",
            "AppProject",
        ];
        if rendered_by_instances.contains(&kind.as_str()) && kind != engine.release_kind() {
            continue;
        }
        match kinds
            .iter_mut()
            .find(|(v, k, _, _)| *v == api_version && *k == kind)
        {
            Some(entry) => entry.3 = true,
            None => kinds.push((api_version, kind, false, true)),
        }
    }
    for (api_version, kind, for_apps, for_ops) in kinds {
        let Some(ar) = ctx.resources.resolve(&api_version, &kind).await? else {
            if for_apps {
                warn!(
                    kind,
                    "not installed: ApplicationInstances wait (Blocked/MissingDependencies) until it is"
                );
            }
            continue;
        };
        // A kind the instances keep outside their namespaces (Argo CD's AppProject) is watched where it lives:
        // the operator may read it there only.
        let elsewhere = for_apps
            && engine
                .child_kinds()
                .iter()
                .any(|(v, k, here)| !here && *v == api_version && *k == kind);
        let api = if elsewhere {
            Api::<DynamicObject>::namespaced_with(
                ctx.client.clone(),
                engine.argocd_namespace(),
                &ar,
            )
        } else {
            Api::<DynamicObject>::all_with(ctx.client.clone(), &ar)
        };
        let events = watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
        let fan_out = FanOut {
            kind,
            ctx: ctx.clone(),
            ops_store: intents.ops.clone(),
            apps: for_apps.then(|| app_tx.clone()),
            ops: for_ops.then(|| op_tx.clone()),
        };
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = fan_out.run(events) => {}
            }
        }));
    }
    Ok(ChildTriggers { apps, ops })
}

/// The child kinds the operation templates write.
fn operation_kinds(ctx: &Context) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = Vec::new();
    for key in ctx.renderer.templates().operation_keys() {
        if let Some(Ok(spec)) = ctx.renderer.operation_spec(&key) {
            for c in &spec.children {
                let k = (c.api_version.clone(), c.kind.clone());
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
    }
    kinds
}

/// One kind's events: into the children cache, then to the intents they wake.
struct FanOut {
    kind: String,
    ctx: Arc<Context>,
    ops_store: crate::k8s::watch::Shared<Operation>,
    apps: Option<mpsc::Sender<ObjectRef<ApplicationInstance>>>,
    ops: Option<mpsc::Sender<ObjectRef<Operation>>>,
}

impl FanOut {
    async fn run(
        self,
        events: impl futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>>,
    ) {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    warn!(kind = %self.kind, error = %e, "watching children failed; retrying");
                    continue;
                }
            };
            if self.apps.is_some() {
                // The cache is filled before the instance is woken: its reconcile reads it.
                self.ctx.children.observe(&self.kind, &event);
            }
            let touched = match &event {
                watcher::Event::Apply(o)
                | watcher::Event::InitApply(o)
                | watcher::Event::Delete(o) => Some(o),
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            let Some(obj) = touched else { continue };
            if let (Some(tx), Some(app)) = (&self.apps, instance_of(obj)) {
                let _ = tx.send(app).await;
            }
            if let Some(tx) = &self.ops {
                for op in self.operations_of(obj) {
                    let _ = tx.send(op).await;
                }
            }
        }
    }

    /// The Operations a child belongs to: by its labels, or (the helm engine follows its target's
    /// HelmRelease) every helm-engine Operation on the instance the HelmRelease belongs to.
    fn operations_of(&self, obj: &DynamicObject) -> Vec<ObjectRef<Operation>> {
        let l = obj.labels();
        if let (Some(name), Some(ns)) = (
            l.get(labels::OPERATION_NAME),
            l.get(labels::OPERATION_NAMESPACE),
        ) {
            return vec![ObjectRef::new(name).within(ns)];
        }
        let (Some(app), Some(ns)) = (l.get(labels::APPLICATION_INSTANCE), obj.namespace()) else {
            return Vec::new();
        };
        if self.kind != self.ctx.settings.helm_engine.release_kind() {
            return Vec::new();
        }
        self.ops_store
            .store()
            .state()
            .iter()
            .filter(|op| {
                op.spec.engine == Engine::Helm
                    && op.spec.target_ref.name == *app
                    && op.namespace().as_deref() == Some(ns.as_str())
            })
            .map(|op| ObjectRef::from_obj(op.as_ref()))
            .collect()
    }
}

/// The instance a child of an instance belongs to (by its label, in its namespace, or in the namespace its
/// label names when it lives elsewhere: Argo CD's AppProject).
fn instance_of(obj: &DynamicObject) -> Option<ObjectRef<ApplicationInstance>> {
    let app = obj.labels().get(labels::APPLICATION_INSTANCE)?;
    let namespace = match obj.labels().get(labels::APPLICATION_INSTANCE_NAMESPACE) {
        Some(ns) => ns.clone(),
        None => obj.namespace()?,
    };
    Some(ObjectRef::new(app).within(&namespace))
}

/// An upgrade Operation (helm engine) changes what its target renders: it wakes the instance.
pub(super) fn upgrade_target(op: Arc<Operation>) -> Option<ObjectRef<ApplicationInstance>> {
    if op.spec.engine != Engine::Helm {
        return None;
    }
    Some(ObjectRef::new(&op.spec.target_ref.name).within(&op.namespace()?))
}

/// An Operation that finishes or goes away releases the Operations waiting for it on the same target
/// (Blocked/ConflictingOperation) at once, instead of at their next periodic look.
pub(super) fn released_by(
    ops: &crate::k8s::watch::Shared<Operation>,
    done: &Operation,
) -> Vec<ObjectRef<Operation>> {
    let finished = done.meta().deletion_timestamp.is_some()
        || done
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(crate::api::Phase::is_terminal);
    if !finished {
        return Vec::new();
    }
    ops.store()
        .state()
        .into_iter()
        .filter(|op| {
            op.namespace() == done.namespace()
                && op.spec.target_ref.name == done.spec.target_ref.name
                && op.name_any() != done.name_any()
                && op.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
                    == crate::api::Phase::Pending
        })
        .map(|op| ObjectRef::from_obj(op.as_ref()))
        .collect()
}

/// Only the intents whose reconcile-relevant part changed ([`intent_trigger`]): the instances'
/// own status writes (ours, mostly) do not wake them. Timed requeues and the periodic resync still visit
/// every instance. Entries of objects no longer in the store are dropped as the map grows.
pub(super) fn only_changed<K>(
    objects: impl futures::Stream<Item = Arc<K>> + Send + 'static,
    store: kube::runtime::reflector::Store<K>,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    const MIN_PRUNE: usize = 1024;
    let mut seen: HashMap<ObjectRef<K>, u64> = HashMap::new();
    let mut prune_at = MIN_PRUNE;
    objects.filter(move |obj| {
        let key = ObjectRef::from_obj(obj.as_ref());
        let changed = match intent_trigger(obj.as_ref()) {
            Some(h) => seen.insert(key, h) != Some(h),
            None => true,
        };
        if seen.len() > prune_at {
            seen.retain(|k, _| store.get(k).is_some());
            prune_at = (2 * seen.len()).max(MIN_PRUNE);
        }
        std::future::ready(changed)
    })
}

/// What an intent's reconcile depends on, hashed: everything but the status (and the bookkeeping that changes
/// with every write: resourceVersion, managedFields). An update that leaves it equal, such as a status write,
/// does not trigger a reconcile.
pub(super) fn intent_trigger<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Ticks of a watch channel as a stream (for `reconcile_all_on`).
pub(super) fn ticks(rx: watch::Receiver<u64>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
}

/// Resolves once `rx` turns true.
pub(super) async fn wait_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn app() -> ApplicationInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "a", "namespace": "n", "generation": 1, "resourceVersion": "10",
                "labels": {"app.vworkspace.io/cluster-id": "c"}},
            "spec": {"appRef": {"catalogId": "x"}},
        }))
        .unwrap()
    }

    #[test]
    fn status_writes_do_not_trigger_but_everything_the_reconciler_reads_does() {
        let base = intent_trigger(&app());
        let mut status_only = app();
        status_only.metadata.resource_version = Some("11".into());
        status_only.status = Some(Default::default());
        assert_eq!(intent_trigger(&status_only), base);

        let mut changes: Vec<ApplicationInstance> = Vec::new();
        let mut a = app();
        a.metadata.generation = Some(2);
        changes.push(a);
        let mut a = app();
        a.labels_mut().insert("x".into(), "y".into());
        changes.push(a);
        let mut a = app();
        a.annotations_mut()
            .insert(labels::RECONCILE.into(), labels::RECONCILE_DISABLED.into());
        changes.push(a);
        let mut a = app();
        a.finalizers_mut().push(crate::api::APP_FINALIZER.into());
        changes.push(a);
        let mut a = app();
        a.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        changes.push(a);
        for changed in &changes {
            assert_ne!(intent_trigger(changed), base, "{:?}", changed.metadata);
        }
    }
}
