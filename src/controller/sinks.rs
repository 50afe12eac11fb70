//! Adapters from the reconcilers' transition sink to the control-plane event poster, and the snapshot the
//! poster re-sends after an outage. (Outcomes go where the intent source says: `crate::source`.)

use std::sync::Arc;

use kube::runtime::reflector::Store;

use super::context::{Transition, TransitionSink};
use crate::api::{ApplicationInstance, Operation};
use crate::report::events::{
    EventPoster, ObjectSnapshot, ResourceRef, SnapshotSource, condition_transitions,
};

/// Transitions go to the control-plane event poster.
pub struct PosterSink(pub Arc<EventPoster>);

impl TransitionSink for PosterSink {
    fn transition(&self, t: Transition) {
        let r = ResourceRef {
            api_version: t.api_version.into(),
            kind: t.kind.into(),
            namespace: t.namespace,
            name: t.name,
            uid: t.uid,
            generation: t.generation,
        };
        let events =
            condition_transitions(&r, &t.old, &t.new, &t.endpoints, jiff::Timestamp::now());
        self.0.submit_all(events);
    }
}

/// No control plane configured: transitions are only Kubernetes Events.
pub struct NoTransitions;

impl TransitionSink for NoTransitions {
    fn transition(&self, _: Transition) {}
}

/// The current conditions of every object the operator owns, from the controllers' caches.
pub struct StoreSnapshot {
    pub apps: Store<ApplicationInstance>,
    pub ops: Store<Operation>,
    pub cluster_id: String,
}

impl SnapshotSource for StoreSnapshot {
    fn snapshot(&self) -> Vec<ObjectSnapshot> {
        let ours = |labels: &std::collections::BTreeMap<String, String>| {
            labels.get(crate::api::labels::CLUSTER_ID) == Some(&self.cluster_id)
        };
        let mut out = Vec::new();
        for app in self.apps.state() {
            if let Some(status) = &app.status
                && ours(app.metadata.labels.as_ref().unwrap_or(&Default::default()))
            {
                out.push(ObjectSnapshot {
                    resource_ref: ResourceRef::of(app.as_ref()),
                    conditions: status.conditions.clone(),
                    endpoints: status.endpoints.clone(),
                });
            }
        }
        for op in self.ops.state() {
            if let Some(status) = &op.status
                && ours(op.metadata.labels.as_ref().unwrap_or(&Default::default()))
            {
                out.push(ObjectSnapshot {
                    resource_ref: ResourceRef::of(op.as_ref()),
                    conditions: status.conditions.clone(),
                    endpoints: Vec::new(),
                });
            }
        }
        out
    }
}
