//! The wire format: what an event is (`{"events":[…]}`, camelCase, full conditions) and the pure functions
//! that build events: condition transitions, snapshots, audit and heartbeat events.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::api::Endpoint;
use crate::api::conditions::types;
use crate::secrets::redact_text;

/// The object an event is about.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects (the Cluster).
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
    /// `metadata.generation` (0 when unknown).
    #[serde(default)]
    pub generation: i64,
}

impl ResourceRef {
    /// The reference of a typed object (apiVersion and kind from its type).
    pub fn of<K: kube::Resource<DynamicType = ()>>(obj: &K) -> Self {
        let meta = obj.meta();
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            generation: meta.generation.unwrap_or(0),
        }
    }

    /// The Cluster singleton of `cluster_id` (uid may be empty before the object exists).
    pub fn cluster(cluster_id: &str, uid: &str, generation: i64) -> Self {
        Self {
            api_version: "ops.vworkspace.io/v1alpha1".into(),
            kind: "Cluster".into(),
            namespace: String::new(),
            name: cluster_id.into(),
            uid: uid.into(),
            generation,
        }
    }
}

/// The event kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    ConditionTransition,
    ClusterHeartbeat,
    /// An audit kind such as `OperationSucceeded` or `ReconcileFailed`.
    Audit(String),
}

impl EventKind {
    pub fn as_str(&self) -> &str {
        match self {
            Self::ConditionTransition => "ConditionTransition",
            Self::ClusterHeartbeat => "ClusterHeartbeat",
            Self::Audit(kind) => kind,
        }
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "ConditionTransition" => Self::ConditionTransition,
            "ClusterHeartbeat" => Self::ClusterHeartbeat,
            _ => Self::Audit(s),
        })
    }
}

/// One event of the `{"events":[…]}` body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The receiver deduplicates on it.
    pub event_key: String,
    pub kind: EventKind,
    pub resource_ref: ResourceRef,
    /// Full condition objects (for a ConditionTransition: the condition that changed).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The object's endpoints (on an ApplicationInstance's `Ready` events).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
}

impl Event {
    /// The same event with secret material in condition messages and endpoint notes replaced by
    /// `[REDACTED]` (the poster applies this to everything it sends).
    pub fn redacted(mut self) -> Self {
        for c in &mut self.conditions {
            c.message = redact_text(&c.message);
        }
        for e in &mut self.endpoints {
            if let Some(notes) = &e.notes {
                e.notes = Some(redact_text(notes));
            }
        }
        self
    }
}

/// The request body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-06-03T12:00:00.123Z`.
pub fn format_timestamp(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(super) fn or_placeholder(s: &str) -> &str {
    if s.is_empty() { "_" } else { s }
}

/// `condition/{apiVersion}/{kind}/{namespace}/{name}/{uid}/{type}/{status}@{generation}`. An empty namespace
/// (cluster-scoped object) or uid is written as `_`, as the upstream operator does.
pub fn condition_event_key(r: &ResourceRef, condition_type: &str, status: &str) -> String {
    format!(
        "condition/{}/{}/{}/{}/{}/{}/{}@{}",
        r.api_version,
        r.kind,
        or_placeholder(&r.namespace),
        r.name,
        or_placeholder(&r.uid),
        condition_type,
        status,
        r.generation
    )
}

/// The conditions of `new` that are absent from `old` or differ in status, reason or message (a change of
/// lastTransitionTime or observedGeneration alone is not a transition). Removed conditions yield nothing.
pub fn changed_conditions<'a>(old: &[Condition], new: &'a [Condition]) -> Vec<&'a Condition> {
    new.iter()
        .filter(|n| {
            !old.iter().any(|o| {
                o.type_ == n.type_
                    && o.status == n.status
                    && o.reason == n.reason
                    && o.message == n.message
            })
        })
        .collect()
}

pub(super) fn condition_event(
    r: &ResourceRef,
    c: &Condition,
    endpoints: &[Endpoint],
    timestamp: &str,
) -> Event {
    Event {
        event_key: condition_event_key(r, &c.type_, &c.status),
        kind: EventKind::ConditionTransition,
        resource_ref: r.clone(),
        conditions: vec![c.clone()],
        endpoints: if c.type_ == types::READY {
            endpoints.to_vec()
        } else {
            Vec::new()
        },
        timestamp: timestamp.to_string(),
    }
    .redacted()
}

/// One `ConditionTransition` per changed condition between `old` and `new` of the object `r`. The changed
/// condition is the event's only condition; `endpoints` ride on the `Ready` event.
pub fn condition_transitions(
    r: &ResourceRef,
    old: &[Condition],
    new: &[Condition],
    endpoints: &[Endpoint],
    now: Timestamp,
) -> Vec<Event> {
    let ts = format_timestamp(now);
    changed_conditions(old, new)
        .into_iter()
        .map(|c| condition_event(r, c, endpoints, &ts))
        .collect()
}

/// An owned object's current state, as the snapshot provider reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectSnapshot {
    pub resource_ref: ResourceRef,
    pub conditions: Vec<Condition>,
    pub endpoints: Vec<Endpoint>,
}

/// The current condition snapshot of one object: one `ConditionTransition` per condition, with the same
/// event keys a transition into that state had, so the receiver deduplicates what it already has.
pub fn snapshot_events(snapshot: &ObjectSnapshot, now: Timestamp) -> Vec<Event> {
    let ts = format_timestamp(now);
    snapshot
        .conditions
        .iter()
        .map(|c| condition_event(&snapshot.resource_ref, c, &snapshot.endpoints, &ts))
        .collect()
}

/// An audit event (`OperationSucceeded`, `ReconcileFailed`, …). Key `{kind}/{uid}/{first condition type}`
/// (`{kind}/{uid}` without conditions), as the upstream operator writes it.
pub fn audit_event(
    kind: &str,
    r: &ResourceRef,
    conditions: Vec<Condition>,
    now: Timestamp,
) -> Event {
    let event_key = match conditions.first() {
        Some(c) => format!("{kind}/{}/{}", or_placeholder(&r.uid), c.type_),
        None => format!("{kind}/{}", or_placeholder(&r.uid)),
    };
    Event {
        event_key,
        kind: EventKind::Audit(kind.to_string()),
        resource_ref: r.clone(),
        conditions,
        endpoints: Vec::new(),
        timestamp: format_timestamp(now),
    }
    .redacted()
}

/// A `ClusterHeartbeat` for the Cluster `cluster`. Key `heartbeat/{name}/{uid}@{unix seconds}`.
pub fn heartbeat_event(cluster: &ResourceRef, now: Timestamp) -> Event {
    Event {
        event_key: format!(
            "heartbeat/{}/{}@{}",
            cluster.name,
            or_placeholder(&cluster.uid),
            now.as_second()
        ),
        kind: EventKind::ClusterHeartbeat,
        resource_ref: cluster.clone(),
        conditions: Vec::new(),
        endpoints: Vec::new(),
        timestamp: format_timestamp(now),
    }
}
