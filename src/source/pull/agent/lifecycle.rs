//! One job from taking it on to what it applies: recorded as taken on (durable), what it asks for checked
//! (`prepare`), then server-side apply or delete with the agent's field manager.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tracing::warn;

use super::*;
use crate::api::labels;
use crate::source::pull::job::{self, Action, AppliedRef, Job, JobResult, ObjectKey, Outcome};
use crate::source::pull::provenance;
use crate::source::pull::store::{DEFAULT_RETENTION, Entry, MAX_ENTRIES};

impl Agent {
    pub(super) async fn run_job(self: &Arc<Self>, j: Job) {
        let replay_key = j.replay_key().to_string();
        let now = Timestamp::now();
        // A replay of a job that already succeeded: noop (the contract).
        let seen = lock(&self.store).get(&replay_key).cloned();
        // The same job again while it is being finished (after a restart): its own run posts the result.
        if seen
            .as_ref()
            .is_some_and(|e| e.outcome.is_none() && e.id == j.id)
        {
            return;
        }
        if let Some(e) = &seen
            && e.outcome == Some(Outcome::Succeeded)
        {
            {
                self.ack(&j.id).await;
                let result = JobResult {
                    outcome: Outcome::Noop,
                    error: Some(format!(
                        "already applied as job {} (idempotency key {replay_key:?})",
                        e.id
                    )),
                    applied_ref: None,
                    timestamp: now.to_string(),
                };
                self.send_result_once(&j.id, &result).await;
                return;
            }
        }
        self.ack(&j.id).await;
        let keys = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (outcome, error) = match crate::source::pull::admit::admit(
            &j,
            &keys,
            &self.cfg.cluster_id,
            now,
        ) {
            crate::source::pull::admit::Admission::Accept { action, signer } => {
                match self.prepare(&j, action, &signer) {
                    Ok(action) => {
                        self.take_on(&j, &replay_key, action, now).await;
                        return;
                    }
                    Err(e) => (Outcome::Failed, e.to_string()),
                }
            }
            crate::source::pull::admit::Admission::Noop(error) => (Outcome::Noop, error),
            crate::source::pull::admit::Admission::Refuse { error, refusal } => {
                if let Some(r) = refusal {
                    warn!(job = %j.id, reason = r.reason, "Pull mode: job refused: {}", r.message);
                    self.audit(&j, r.reason, &r.message);
                }
                (Outcome::Failed, error)
            }
        };
        let result = JobResult {
            outcome,
            error: Some(error),
            applied_ref: None,
            timestamp: now.to_string(),
        };
        self.send_result_once(&j.id, &result).await;
    }

    /// An admitted job: recorded as taken on, applied, followed to its outcome, reported.
    pub(super) async fn take_on(
        self: &Arc<Self>,
        j: &Job,
        replay_key: &str,
        action: Action,
        now: Timestamp,
    ) {
        let key = action.key();
        // Taken on: durable before anything is applied, so a restart finishes (or fails) it instead of losing it.
        let until = j
            .expires_at
            .unwrap_or(now + DEFAULT_RETENTION)
            .max(now + Duration::from_secs(60));
        {
            let mut s = lock(&self.store);
            s.insert(
                replay_key,
                Entry {
                    id: j.id.clone(),
                    received: now,
                    until,
                    outcome: None,
                    error: None,
                    applied_ref: Some(applied_ref(&key, None, None)),
                    decided: None,
                    posted: false,
                },
            );
            s.prune(now, MAX_ENTRIES);
        }
        self.save().await;
        let (outcome, error, applied) = self.execute(j, &action).await;
        self.decide(replay_key, outcome, error, applied).await;
    }

    /// Apply jobs: the cluster's labels forced, and an intent stamped with its provenance.
    pub(super) fn prepare(
        &self,
        j: &Job,
        action: Action,
        signer: &str,
    ) -> Result<Action, job::JobError> {
        let Action::Apply(mut obj) = action else {
            return Ok(action);
        };
        let err = |field: &str, reason: String| job::JobError::new(Some(&j.id), field, reason);
        let meta = obj
            .as_object_mut()
            .and_then(|o| o.get_mut("metadata"))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| err("metadata", "not an object".into()))?;
        let labels_v = meta.entry("labels").or_insert_with(|| json!({}));
        let labels_m = labels_v
            .as_object_mut()
            .ok_or_else(|| err("metadata.labels", "not an object".into()))?;
        labels_m.insert(
            labels::MANAGED_BY.into(),
            json!(labels::MANAGED_BY_CONTROL_PLANE),
        );
        labels_m.insert(labels::CLUSTER_ID.into(), json!(self.cfg.cluster_id));
        // Nothing else may carry a stamp: only the agent writes it.
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(provenance::ANNOTATION);
        }
        let key = job::object_key(&obj).map_err(|(f, r)| err(&f, r))?;
        if let Some(typed) = typed_spec(&key, &obj).map_err(|r| err("spec", r))? {
            let pkey = self
                .provenance_key
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .ok_or_else(|| err("payload", "the provenance key is not loaded".into()))?;
            let (labels_map, annotations_map) = string_maps(&obj);
            let digest =
                provenance::intent_digest(&key.kind, &typed, &labels_map, &annotations_map);
            let stamp = provenance::stamp(
                &pkey,
                &provenance::identity(&key.kind, &key.namespace, &key.name),
                &j.id,
                signer,
                &digest,
            );
            let meta = obj["metadata"].as_object_mut().expect("checked above");
            let a = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = a.as_object_mut() {
                a.insert(provenance::ANNOTATION.into(), json!(stamp));
            }
        }
        Ok(Action::Apply(obj))
    }

    /// Apply or delete, then follow the object to its outcome.
    pub(super) async fn execute(
        self: &Arc<Self>,
        j: &Job,
        action: &Action,
    ) -> (Outcome, Option<String>, Option<AppliedRef>) {
        let key = action.key();
        match action {
            Action::Apply(obj) => {
                let applied = self.apply(obj).await;
                match applied {
                    Ok(live) => {
                        let uid = live
                            .pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        let generation =
                            live.pointer("/metadata/generation").and_then(Value::as_i64);
                        let r = applied_ref(&key, uid.clone(), generation);
                        self.post_status(
                            &j.id,
                            "Applied",
                            Vec::new(),
                            Some(format!("applied {key}")),
                        )
                        .await;
                        self.follow(&j.id, &key, uid, generation, r).await
                    }
                    Err(e) => (Outcome::Failed, Some(e), None),
                }
            }
            Action::Delete(_) => match self.delete(&key).await {
                Ok(()) => (
                    Outcome::Succeeded,
                    None,
                    Some(applied_ref(&key, None, None)),
                ),
                Err(e) => (Outcome::Failed, Some(e), None),
            },
        }
    }

    pub(super) async fn apply(&self, obj: &Value) -> Result<Value, String> {
        let (api, name) = self
            .resources
            .api_for(obj)
            .await
            .map_err(|e| e.to_string())?;
        let mut last = String::new();
        for attempt in 0..3u32 {
            match api
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(obj),
                )
                .await
            {
                Ok(o) => return Ok(serde_json::to_value(o).unwrap_or(Value::Null)),
                // The API server's own refusal (validation, admission): final.
                Err(kube::Error::Api(s)) if (400..500).contains(&s.code) && s.code != 429 => {
                    return Err(format!(
                        "the API server refused {}: {}",
                        crate::render::object_id(obj),
                        s.message
                    ));
                }
                Err(e) => {
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
            }
        }
        Err(format!(
            "applying {}: {last}",
            crate::render::object_id(obj)
        ))
    }

    /// Delete and wait until the object is gone (finalizers released).
    pub(super) async fn delete(&self, key: &ObjectKey) -> Result<(), String> {
        let obj = json!({"apiVersion": key.api_version, "kind": key.kind,
            "metadata": {"name": key.name, "namespace": key.namespace}});
        let deadline = tokio::time::Instant::now() + self.cfg.job_deadline;
        loop {
            match self.resources.delete(&obj).await {
                Ok(false) => return Ok(()),
                Ok(true) => {}
                Err(crate::k8s::apply::ApplyError::NotInstalled { .. }) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{key} still exists {} s after it was deleted (a finalizer holds it)",
                    self.cfg.job_deadline.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The typed spec of an intent payload (what provenance digests), `None` for other kinds.
pub(super) fn typed_spec(key: &ObjectKey, obj: &Value) -> Result<Option<Value>, String> {
    if !is_intent(key) {
        return Ok(None);
    }
    let kind = if key.kind == "ApplicationInstance" {
        crate::intent::IntentKind::ApplicationInstance
    } else {
        crate::intent::IntentKind::Operation
    };
    kind.typed_spec(obj.get("spec").unwrap_or(&Value::Null))
        .map(Some)
}

pub(super) fn string_maps(obj: &Value) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let m = |field: &str| -> BTreeMap<String, String> {
        obj.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    (m("labels"), m("annotations"))
}
