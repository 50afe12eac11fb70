//! What every reconciler shares: the client, configuration, renderer, the Git view, and the report sinks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ObjectReference};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::Resource;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::conditions::Cond;
use crate::k8s::apply::Resources;
use crate::render::Renderer;
use crate::source::IntentSource;
pub use crate::source::{Outcome, OutcomeSink};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// An equality-based label selector (`k=v,k2=v2`, or `k` for "has the label").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<(String, Option<String>)>);

impl Selector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match term.split_once('=') {
                Some((k, v)) => {
                    let k = k.trim_end_matches('=').trim();
                    if k.is_empty() || k.contains('!') {
                        return Err(format!(
                            "unsupported selector term {term:?} (use key=value or key)"
                        ));
                    }
                    terms.push((
                        k.to_string(),
                        Some(v.trim_start_matches('=').trim().to_string()),
                    ));
                }
                None => terms.push((term.to_string(), None)),
            }
        }
        if terms.is_empty() {
            return Err("empty namespace selector".into());
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| match v {
            Some(v) => labels.get(k) == Some(v),
            None => labels.contains_key(k),
        })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => k.clone(),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The reconcilers' settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster_id: String,
    pub namespace_selector: Selector,
    pub velero_namespace: String,
    /// HMAC key for approval claims; without one, approval-gated Operations stay Blocked.
    pub approval_key: Option<Vec<u8>>,
    /// How often a settled object is looked at again (status drift, Git changes are pushed separately).
    pub resync: Duration,
    /// Chart hosts allowed although internal (loopback, link-local, metadata, cluster names):
    /// `--allow-chart-host` (`crate::validate::hosts`).
    pub allowed_chart_hosts: Vec<String>,
    /// What installs an ApplicationInstance's chart (`--engine`): Flux, or Argo CD in its namespace.
    pub helm_engine: crate::render::HelmEngine,
}

/// A condition change of an owned object, for the control-plane event post.
#[derive(Debug, Clone)]
pub struct Transition {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    pub old: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    pub new: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    pub endpoints: Vec<crate::api::Endpoint>,
}

/// Where condition changes go (the control-plane event client).
pub trait TransitionSink: Send + Sync {
    fn transition(&self, transition: Transition);
}

/// Kubernetes Events (events.k8s.io/v1) about the objects the operator reconciles, written directly rather than
/// through kube-runtime's `Recorder`: the Recorder keeps every Event it published for six minutes to count
/// repeats and scans that cache on each publish, which with thousands of intents costs megabytes and a scan per
/// Event, while condition transitions do not repeat.
pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    /// Events waiting to be sent: a queue of the Events themselves (a few hundred bytes each), drained by one
    /// sender task started with the first Event, rather than a task per Event (a task holds its request's future,
    /// several times the Event's size: during a rollout of thousands of intents, megabytes).
    queue: tokio::sync::mpsc::UnboundedSender<KubeEvent>,
    receiver: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<KubeEvent>>>,
}

/// Events in flight at once (each request in flight is a connection).
const EVENTS_IN_FLIGHT: usize = 4;

impl EventRecorder {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        let (queue, receiver) = tokio::sync::mpsc::unbounded_channel();
        Self {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            queue,
            receiver: std::sync::Mutex::new(Some(receiver)),
        }
    }

    /// Create one Event about `regarding` (in its namespace; cluster-scoped objects' Events go to `default`) in the
    /// background: a reconcile does not wait for its Events. Failures are logged.
    pub fn publish(&self, regarding: ObjectReference, warning: bool, reason: &str, note: String) {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(receiver) = receiver {
            tokio::spawn(send_events(self.client.clone(), receiver));
        }
        // The receiver lives as long as the sender task, which ends only when every sender is gone.
        let _ = self
            .queue
            .send(self.event(regarding, warning, reason, note));
    }

    fn event(
        &self,
        regarding: ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) -> KubeEvent {
        let now = jiff::Timestamp::now();
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        KubeEvent {
            action: Some("Reconcile".into()),
            reason: Some(reason.to_string()),
            note: Some(note),
            event_time: Some(MicroTime(now)),
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            regarding: Some(regarding),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            ..KubeEvent::default()
        }
    }
}

/// Send queued Events, a few at a time, until every recorder handle is gone.
async fn send_events(
    client: Client,
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<KubeEvent>,
) {
    use futures::StreamExt;
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
        .for_each_concurrent(EVENTS_IN_FLIGHT, |event| {
            let client = client.clone();
            async move {
                if let Err(e) = create_event(&client, &event).await {
                    tracing::warn!(error = %e, "publishing event failed");
                }
            }
        })
        .await;
}

/// Create one Event; nothing of the answer is read (`k8s::answer`).
async fn create_event(client: &Client, event: &KubeEvent) -> Result<(), kube::Error> {
    let namespace = event.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::to_vec(event).map_err(kube::Error::SerdeError)?;
    let request = kube::core::Request::new(api.resource_url()).create(&PostParams::default(), body);
    crate::k8s::answer::send::<serde::de::IgnoredAny>(client, request, "create").await?;
    Ok(())
}

/// The status the operator last wrote for each object (by uid), with the resourceVersion that write produced.
/// The controllers' stores can lag behind the operator's own writes: a reconcile that starts from a copy older
/// than our last status write compares against what we wrote, instead of writing the same status again.
#[derive(Default)]
pub struct WrittenStatus(std::sync::Mutex<std::collections::HashMap<String, (u64, Box<str>)>>);

impl WrittenStatus {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u64, Box<str>)>> {
        match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The freshest status known for an object whose copy at hand has `resource_version` and `status`.
    pub fn current<S: serde::de::DeserializeOwned>(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        status: Option<S>,
    ) -> Option<S> {
        let seen = resource_version.and_then(|rv| rv.parse::<u64>().ok());
        let mut written = self.lock();
        match written.get(uid) {
            Some((rv, json)) if seen.is_none_or(|seen| seen < *rv) => {
                serde_json::from_str(json).ok().or(status)
            }
            Some(_) => {
                // The copy at hand has caught up with our write.
                written.remove(uid);
                status
            }
            None => status,
        }
    }

    /// Remember a status written for an object; `resource_version` is the one the write returned.
    pub fn record<S: serde::Serialize>(
        &self,
        uid: &str,
        resource_version: Option<&str>,
        status: &S,
    ) {
        let (Some(rv), Ok(json)) = (
            resource_version.and_then(|rv| rv.parse::<u64>().ok()),
            serde_json::to_string(status),
        ) else {
            return;
        };
        self.lock()
            .insert(uid.to_string(), (rv, json.into_boxed_str()));
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub renderer: Arc<Renderer>,
    pub source: Arc<dyn IntentSource>,
    pub resources: Resources,
    pub events: EventRecorder,
    pub outcomes: Arc<dyn OutcomeSink>,
    pub transitions: Arc<dyn TransitionSink>,
    pub metrics: Arc<crate::controller::Counters>,
    /// Namespaces as last seen by a watch: the namespace gate.
    pub namespaces: Store<Namespace>,
    /// Whether that watch is live: false from a watch error until it delivers again. While it is not, the gate
    /// is read from the API server.
    pub namespaces_live: Arc<std::sync::atomic::AtomicBool>,
    /// The Operation controller's store (to know whether an upgrade Operation targets an instance at all), and
    /// whether it holds a complete list yet.
    pub operations: Store<crate::api::Operation>,
    pub operations_synced: Arc<std::sync::atomic::AtomicBool>,
    /// ApplicationInstances' children as their watches last saw them.
    pub children: Arc<super::children::ChildCache>,
    /// The operator's own last status writes (read-your-writes over the stores).
    pub written: WrittenStatus,
}

/// Whether the operator acts on this intent at all: written by the control plane for this cluster.
pub fn is_ours(meta_labels: &BTreeMap<String, String>, cluster_id: &str) -> bool {
    meta_labels
        .get(crate::api::labels::MANAGED_BY)
        .map(String::as_str)
        == Some(crate::api::labels::MANAGED_BY_CONTROL_PLANE)
        && meta_labels
            .get(crate::api::labels::CLUSTER_ID)
            .map(String::as_str)
            == Some(cluster_id)
}

impl Context {
    fn gate(&self, ns: &Namespace) -> bool {
        ns.metadata.deletion_timestamp.is_none()
            && self
                .settings
                .namespace_selector
                .matches(ns.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
    }

    /// Whether a namespace carries the gate labels, as the namespace watch last saw it; read from the API server
    /// when the watch has not seen the namespace or is not live (after a watch error, until it delivers again).
    /// Checked when a reconcile starts and again right before it writes children: the watch delivers a label
    /// change within milliseconds, so a long reconcile (rendering, waiting for a slot) still sees it; a GET per
    /// write would not close the remaining race either (the label can change between the GET and the write) and
    /// would cost one request per intent.
    pub async fn namespace_gated(&self, namespace: &str) -> Result<bool, kube::Error> {
        if self
            .namespaces_live
            .load(std::sync::atomic::Ordering::Acquire)
            && let Some(ns) = self.namespaces.get(&ObjectRef::new(namespace))
        {
            return Ok(self.gate(&ns));
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        Ok(api
            .get_opt(namespace)
            .await?
            .is_some_and(|ns| self.gate(&ns)))
    }

    /// Whether to act on an intent now: written by the control plane for this cluster, in a gated namespace —
    /// or one we already own that is being deleted (its finalizer must be released).
    pub async fn should_act<K: Resource>(
        &self,
        obj: &K,
        finalizer: &str,
    ) -> Result<bool, kube::Error> {
        let meta = obj.meta();
        let deleting_ours = meta.deletion_timestamp.is_some()
            && meta
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|x| x == finalizer));
        if deleting_ours {
            return Ok(true);
        }
        let ours = meta
            .labels
            .as_ref()
            .is_some_and(|l| is_ours(l, &self.settings.cluster_id));
        Ok(ours
            && self
                .namespace_gated(meta.namespace.as_deref().unwrap_or_default())
                .await?)
    }

    /// The annotations of a namespace.
    pub async fn namespace_annotations(
        &self,
        namespace: &str,
    ) -> Result<BTreeMap<String, String>, kube::Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        Ok(api
            .get_opt(namespace)
            .await?
            .and_then(|ns| ns.metadata.annotations)
            .unwrap_or_default())
    }

    /// The one status write of a reconcile, for both intent kinds: server-side apply `status` to `obj`'s status
    /// subresource, remember what was written, and announce the conditions that changed from `old`
    /// (Kubernetes Events for the `desired` conditions that changed, and a transition to the control plane).
    pub async fn apply_status<K, S>(
        &self,
        obj: &K,
        (api_version, kind): (&'static str, &'static str),
        status: &S,
        old: Vec<Condition>,
        desired: &[Cond],
        endpoints: Vec<crate::api::Endpoint>,
    ) -> Result<(), kube::Error>
    where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        S: serde::Serialize + HasConditions,
    {
        use kube::ResourceExt;
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({"apiVersion": api_version, "kind": kind, "status": status});
        // Of the answer only its resourceVersion is read (`k8s::answer`).
        let request = crate::k8s::answer::patch(
            api.resource_url(),
            &obj.name_any(),
            Some("status"),
            &kube::api::PatchParams::apply(crate::api::FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&patch),
        );
        let written: crate::k8s::answer::Version =
            crate::k8s::answer::send(&self.client, request, "patch_status").await?;
        let uid = obj.uid().unwrap_or_default();
        self.written
            .record(&uid, written.resource_version(), status);
        self.metrics.write("status");
        let transitions = changed(&old, desired);
        if !transitions.is_empty() {
            self.publish_transitions(obj, &transitions).await;
        }
        if old.as_slice() != status.conditions() {
            self.transitions.transition(Transition {
                api_version,
                kind,
                namespace: obj.namespace().unwrap_or_default(),
                name: obj.name_any(),
                uid,
                generation: obj.meta().generation.unwrap_or_default(),
                old,
                new: status.conditions().to_vec(),
                endpoints,
            });
        }
        Ok(())
    }

    /// Publish one Kubernetes Event for the conditions of one status change: its reason is the most significant
    /// changed condition's (a warning one first), its note lists every changed condition. Published in the
    /// background; failures are logged, never fatal.
    pub async fn publish_transitions<K>(&self, obj: &K, changes: &[Cond])
    where
        K: Resource<DynamicType = ()>,
    {
        if let Some((warning, reason, note)) = event_summary(changes) {
            self.events
                .publish(obj.object_ref(&()), warning, &reason, note);
        }
    }
}

/// Whether a condition change deserves a Warning Event.
fn is_warning(c: &Cond) -> bool {
    matches!(
        (c.type_, c.status),
        ("Ready", "False")
            | ("Degraded", "True")
            | ("Failed", "True")
            | ("Blocked", "True")
            | ("Accepted", "False")
    )
}

/// The Event for a set of condition changes: (warning, reason, note), or None when nothing changed.
pub fn event_summary(changes: &[Cond]) -> Option<(bool, String, String)> {
    const ORDER: &[&str] = &[
        "Failed",
        "Succeeded",
        "Cancelled",
        "Ready",
        "Degraded",
        "Blocked",
        "Accepted",
        "Running",
        "Deleting",
        "Verified",
        "Reconciling",
        "Suspended",
    ];
    let rank = |c: &Cond| {
        (
            !is_warning(c),
            ORDER
                .iter()
                .position(|t| *t == c.type_)
                .unwrap_or(ORDER.len()),
        )
    };
    let primary = changes.iter().min_by_key(|c| rank(c))?;
    let mut note = changes
        .iter()
        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
        .collect::<Vec<_>>()
        .join("; ");
    // events.k8s.io/v1 notes are limited to 1 kB.
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    Some((changes.iter().any(is_warning), primary.reason.clone(), note))
}

const MAX_NOTE: usize = 1024;

/// Conditions in `new` whose status or reason differ from `old` (the transitions worth an Event).
pub fn changed(
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    new: &[Cond],
) -> Vec<Cond> {
    new.iter()
        .filter(|c| {
            !old.iter()
                .any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
        })
        .cloned()
        .collect()
}

/// Requeue delays.
pub mod delays {
    use super::Duration;
    /// After a transient error.
    pub const ERROR: Duration = Duration::from_secs(5);
    /// While an engine or Flux is working.
    pub const PROGRESS: Duration = Duration::from_secs(10);
    /// While waiting on something outside (approval, a conflicting Operation, an engine being installed).
    pub const WAITING: Duration = Duration::from_secs(30);
}

/// A status with conditions (both intents' statuses).
pub trait HasConditions {
    fn conditions(&self) -> &[Condition];
}

impl HasConditions for crate::api::ApplicationInstanceStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl HasConditions for crate::api::OperationStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_status_change_names_every_changed_condition() {
        assert_eq!(event_summary(&[]), None);
        let (warning, reason, note) = event_summary(&[
            Cond::new("Reconciling", "False", "Stable", ""),
            Cond::new("Ready", "True", "HelmReleaseReady", "InstallSucceeded: ok"),
        ])
        .unwrap();
        assert!(!warning);
        assert_eq!(reason, "HelmReleaseReady");
        assert_eq!(
            note,
            "Reconciling=False Stable: Stable; Ready=True HelmReleaseReady: InstallSucceeded: ok"
        );
        // A warning change gives the reason, whatever its type.
        let (warning, reason, _) = event_summary(&[
            Cond::new("Ready", "True", "RolledBack", "rolled back"),
            Cond::new("Degraded", "True", "UpgradeFailed", "upgrade failed"),
        ])
        .unwrap();
        assert!(warning);
        assert_eq!(reason, "UpgradeFailed");
        let long = "é".repeat(2000);
        let (_, _, note) = event_summary(&[Cond::new("Ready", "False", "X", long)]).unwrap();
        assert!(note.len() <= MAX_NOTE && note.ends_with('…'));
    }
}
