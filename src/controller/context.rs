//! What every reconciler shares: the client, configuration, renderer, the Git view, and the report sinks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::Resource;
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder};

use super::apply::Resources;
use super::gitops::IntentSource;
use super::status::Cond;
use crate::render::Renderer;

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
}

/// An outcome worth recording in Git: a note record on the intent commit.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub intent_commit: String,
    pub record: crate::git::notes::NewRecord,
}

/// Where outcomes go (the git notes writer). Must be idempotent: the same outcome may be offered many times.
pub trait OutcomeSink: Send + Sync {
    fn record(&self, outcome: Outcome);
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

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub renderer: Renderer,
    pub source: Arc<dyn IntentSource>,
    pub resources: Resources,
    pub recorder: Recorder,
    pub outcomes: Arc<dyn OutcomeSink>,
    pub transitions: Arc<dyn TransitionSink>,
    pub metrics: Arc<crate::controller::Counters>,
}

impl Context {
    /// Whether a namespace carries the gate labels (read from the API server each time: re-checked right
    /// before writes).
    pub async fn namespace_gated(&self, namespace: &str) -> Result<bool, kube::Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        Ok(api.get_opt(namespace).await?.is_some_and(|ns| {
            ns.metadata.deletion_timestamp.is_none()
                && self
                    .settings
                    .namespace_selector
                    .matches(&ns.metadata.labels.unwrap_or_default())
        }))
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
            .is_some_and(|l| super::application::is_ours(l, &self.settings.cluster_id));
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

    /// Publish a Kubernetes Event for each condition that changed status or reason. Failures to publish are
    /// logged, never fatal.
    pub async fn publish_transitions<K>(&self, obj: &K, changes: &[Cond])
    where
        K: Resource<DynamicType = ()>,
    {
        let reference = obj.object_ref(&());
        for c in changes {
            let warning = matches!(
                (c.type_, c.status),
                ("Ready", "False")
                    | ("Degraded", "True")
                    | ("Failed", "True")
                    | ("Blocked", "True")
                    | ("Accepted", "False")
            );
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                note: Some(format!("{}={}: {}", c.type_, c.status, c.message)),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(e) = self.recorder.publish(&event, &reference).await {
                tracing::warn!(error = %e, "publishing event failed");
            }
        }
    }
}

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
