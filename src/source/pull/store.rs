//! The applied-job store: which jobs the operator has taken on, their outcomes and whether each result reached
//! the control plane. It makes jobs idempotent (a replayed idempotency key is a `noop`) and results durable (a
//! result not yet posted is posted after a restart), in one ConfigMap, `vworkspace-applied-jobs`, key
//! `applied-jobs.json`, in the operator's namespace.
//!
//! Bounded (upstream's store grows for ever): an entry is kept until its job expires (`expiresAt`, or 24 h after
//! it was received when the job has no expiry), and at most [`MAX_ENTRIES`] entries, the oldest posted ones
//! going first; an entry whose result has not been posted is never dropped.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use super::job::{AppliedRef, Outcome};

pub const CONFIG_MAP: &str = "vworkspace-applied-jobs";
pub const KEY: &str = "applied-jobs.json";
/// A posted entry is about 230 bytes (its error and applied object are dropped once posted): 2,000 of them and
/// the few results still owed fit well inside a ConfigMap's 1 MiB.
pub const MAX_ENTRIES: usize = 2000;
/// How long a job without `expiresAt` is remembered.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// One job the operator took on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The job id.
    pub id: String,
    pub received: Timestamp,
    /// Forgotten after this.
    pub until: Timestamp,
    /// Set once the job reached its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_ref: Option<AppliedRef>,
    /// When the outcome was reached (the result's timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<Timestamp>,
    /// Whether the control plane has the result.
    #[serde(default)]
    pub posted: bool,
}

/// The store's content, keyed by replay key (the idempotency key, or the job id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedJobs {
    #[serde(default)]
    pub jobs: BTreeMap<String, Entry>,
}

impl AppliedJobs {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.jobs.get(key)
    }

    pub fn insert(&mut self, key: &str, entry: Entry) {
        self.jobs.insert(key.to_string(), entry);
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.jobs.get_mut(key)
    }

    /// The control plane has the result: keep only what replay detection needs.
    pub fn mark_posted(&mut self, key: &str) {
        if let Some(e) = self.jobs.get_mut(key) {
            e.posted = true;
            e.error = None;
            e.applied_ref = None;
        }
    }

    /// Results decided and not yet posted (after a restart: to post again).
    pub fn unposted(&self) -> Vec<(String, Entry)> {
        self.jobs
            .iter()
            .filter(|(_, e)| e.outcome.is_some() && !e.posted)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Jobs taken on with no outcome yet (after a restart: to finish).
    pub fn undecided(&self) -> Vec<(String, Entry)> {
        self.jobs
            .iter()
            .filter(|(_, e)| e.outcome.is_none())
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Forget what expired, then the oldest posted entries beyond `max`.
    pub fn prune(&mut self, now: Timestamp, max: usize) {
        self.jobs.retain(|_, e| e.until > now || !e.posted);
        if self.jobs.len() <= max {
            return;
        }
        let mut posted: Vec<(Timestamp, String)> = self
            .jobs
            .iter()
            .filter(|(_, e)| e.posted)
            .map(|(k, e)| (e.received, k.clone()))
            .collect();
        posted.sort();
        let excess = self.jobs.len() - max;
        for (_, k) in posted.into_iter().take(excess) {
            self.jobs.remove(&k);
        }
    }
}

/// The ConfigMap behind the store: read once at start, written whole with optimistic concurrency (the operator
/// is its only writer; a conflict means someone edited it, and the write is retried on the fresh copy's
/// resourceVersion with our content, which is the truth).
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    resource_version: Option<String>,
}

impl ConfigMapStore {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            resource_version: None,
        }
    }

    /// Read the store (empty when the ConfigMap does not exist). An unreadable store is an error: starting
    /// from nothing would forget which jobs were applied and which results are owed.
    pub async fn load(&mut self) -> Result<AppliedJobs, String> {
        let Some(cm) = self
            .api
            .get_opt(CONFIG_MAP)
            .await
            .map_err(|e| format!("reading ConfigMap {CONFIG_MAP}: {e}"))?
        else {
            self.resource_version = None;
            return Ok(AppliedJobs::default());
        };
        self.resource_version = cm.metadata.resource_version.clone();
        match cm.data.as_ref().and_then(|d| d.get(KEY)) {
            None => Ok(AppliedJobs::default()),
            Some(text) => {
                serde_json::from_str(text).map_err(|e| format!("ConfigMap {CONFIG_MAP} {KEY}: {e}"))
            }
        }
    }

    /// Write the store.
    pub async fn save(&mut self, jobs: &AppliedJobs) -> Result<(), String> {
        let text = serde_json::to_string(jobs).map_err(|e| e.to_string())?;
        for _ in 0..3 {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIG_MAP.into()),
                    resource_version: self.resource_version.clone(),
                    labels: Some(
                        [(
                            "app.kubernetes.io/managed-by".to_string(),
                            "vworkspace-operator".to_string(),
                        )]
                        .into(),
                    ),
                    ..ObjectMeta::default()
                },
                data: Some([(KEY.to_string(), text.clone())].into()),
                ..ConfigMap::default()
            };
            let written = match &self.resource_version {
                None => self.api.create(&PostParams::default(), &cm).await,
                Some(_) => {
                    self.api
                        .replace(CONFIG_MAP, &PostParams::default(), &cm)
                        .await
                }
            };
            match written {
                Ok(cm) => {
                    self.resource_version = cm.metadata.resource_version;
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    self.resource_version = self
                        .api
                        .get_opt(CONFIG_MAP)
                        .await
                        .map_err(|e| format!("reading ConfigMap {CONFIG_MAP}: {e}"))?
                        .and_then(|cm| cm.metadata.resource_version);
                }
                Err(e) => return Err(format!("writing ConfigMap {CONFIG_MAP}: {e}")),
            }
        }
        Err(format!(
            "writing ConfigMap {CONFIG_MAP}: conflicts on three attempts"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, received: &str, until: &str, posted: bool) -> Entry {
        Entry {
            id: id.into(),
            received: received.parse().unwrap(),
            until: until.parse().unwrap(),
            outcome: posted.then_some(Outcome::Succeeded),
            error: None,
            applied_ref: None,
            decided: None,
            posted,
        }
    }

    #[test]
    fn expired_entries_go_unposted_ones_stay_and_the_cap_drops_the_oldest_posted() {
        let mut s = AppliedJobs::default();
        s.insert(
            "old",
            entry("1", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", true),
        );
        s.insert(
            "owed",
            entry("2", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", false),
        );
        s.insert(
            "a",
            entry("3", "2026-12-04T01:00:00Z", "2026-12-05T00:00:00Z", true),
        );
        s.insert(
            "b",
            entry("4", "2026-12-04T02:00:00Z", "2026-12-05T00:00:00Z", true),
        );
        s.prune("2026-12-04T03:00:00Z".parse().unwrap(), 10);
        assert_eq!(
            s.jobs.keys().collect::<Vec<_>>(),
            ["a", "b", "owed"],
            "expired and posted: gone; owed a result: kept"
        );
        s.prune("2026-12-04T03:00:00Z".parse().unwrap(), 2);
        assert_eq!(s.jobs.keys().collect::<Vec<_>>(), ["b", "owed"]);
        assert_eq!(s.undecided().len(), 1);
    }

    #[test]
    fn a_full_store_fits_a_config_map() {
        let mut s = AppliedJobs::default();
        for i in 0..MAX_ENTRIES {
            let mut e = entry(
                &format!("job-{i:08}-0123456789abcdef"),
                "2026-12-04T01:00:00Z",
                "2026-12-05T00:00:00Z",
                true,
            );
            e.decided = Some("2026-12-04T01:00:05Z".parse().unwrap());
            s.insert(&format!("idem-{i:08}-0123456789abcdef"), e);
        }
        // And 200 results still owed, with their applied object and error.
        for i in 0..200 {
            let mut e = entry(
                &format!("owed-{i:08}-0123456789abcdef"),
                "2026-12-04T01:00:00Z",
                "2026-12-05T00:00:00Z",
                false,
            );
            e.outcome = Some(Outcome::Failed);
            e.error = Some("x".repeat(300));
            e.applied_ref = Some(AppliedRef {
                api_version: "apps.vworkspace.io/v1alpha1".into(),
                kind: "ApplicationInstance".into(),
                namespace: "tenant-0123456789".into(),
                name: format!("app-{i:08}"),
                uid: Some("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
                generation: Some(3),
            });
            s.insert(&format!("owed-{i:08}"), e);
        }
        let size = serde_json::to_string(&s).unwrap().len();
        assert!(size < 900 * 1024, "{size} bytes");
    }
}
