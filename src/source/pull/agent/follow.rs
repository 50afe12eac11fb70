//! The follow-up of an applied job: the intent's conditions, read from the controllers' stores (no extra API
//! reads), decide the job's outcome as docs/pull.md defines it; jobs left running are resumed after a restart.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};
use tracing::warn;

use super::*;
use crate::api::Phase;
use crate::api::conditions::types;
use crate::source::pull::job::{AppliedRef, ObjectKey, Outcome};
use crate::source::pull::provenance;
use crate::source::pull::store::Entry;

impl Agent {
    /// Follow an applied object to its outcome: intents through their conditions (from the controllers' stores),
    /// anything else is done once applied.
    pub(super) async fn follow(
        &self,
        job_id: &str,
        key: &ObjectKey,
        uid: Option<String>,
        generation: Option<i64>,
        applied: AppliedRef,
    ) -> (Outcome, Option<String>, Option<AppliedRef>) {
        if !is_intent(key) {
            return (Outcome::Succeeded, None, Some(applied));
        }
        let deadline = tokio::time::Instant::now() + self.cfg.job_deadline;
        let mut last: Option<(String, Vec<Condition>)> = None;
        // Registered before the first look: a change after it leaves a permit, so none is missed.
        let changed = self.followers.follow(&key.kind, &key.namespace, &key.name);
        loop {
            let seen = self.intent_state(key, uid.as_deref(), generation);
            match seen {
                IntentState::Gone => {
                    return (
                        Outcome::Failed,
                        Some(format!("{key} was deleted before it reached an outcome")),
                        Some(applied),
                    );
                }
                IntentState::Pending => {}
                IntentState::Progress {
                    phase,
                    conditions,
                    outcome,
                } => {
                    if last.as_ref() != Some(&(phase.clone(), conditions.clone())) {
                        let message = conditions
                            .iter()
                            .find(|c| c.type_ == types::READY || c.type_ == types::BLOCKED)
                            .map(|c| {
                                format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message)
                            });
                        self.post_status(job_id, &phase, conditions.clone(), message)
                            .await;
                        last = Some((phase, conditions));
                    }
                    if let Some((outcome, error)) = outcome {
                        return (outcome, error, Some(applied));
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                let state = last
                    .as_ref()
                    .map(|(p, c)| {
                        let conds: Vec<String> = c
                            .iter()
                            .map(|c| format!("{}={} {}", c.type_, c.status, c.reason))
                            .collect();
                        format!("{p}: {}", conds.join(", "))
                    })
                    .unwrap_or_else(|| "not reconciled".into());
                return (
                    Outcome::Failed,
                    Some(format!(
                        "no outcome within {} s (deadline): {key} is {state}",
                        self.cfg.job_deadline.as_secs()
                    )),
                    Some(applied),
                );
            }
            tokio::select! {
                () = changed.notify.notified() => {}
                () = tokio::time::sleep(self.cfg.follow_interval) => {}
            }
        }
    }

    /// Wake the jobs following an intent whenever the intents' watches apply it (the controllers' status writes
    /// included); runs for as long as the agent (pending when no watches are attached).
    pub(super) async fn wake_followers(self: Arc<Self>) {
        use futures::StreamExt;
        if let Some(w) = self.watches.get() {
            let apps = w.apps.subscribe().map(|a| Followers::key_of(&*a));
            let ops = w.ops.subscribe().map(|o| Followers::key_of(&*o));
            let mut changes = std::pin::pin!(futures::stream::select(apps, ops));
            while let Some(key) = changes.next().await {
                self.followers.wake(&key);
            }
        }
        std::future::pending::<()>().await;
    }

    pub(super) fn intent_state(
        &self,
        key: &ObjectKey,
        uid: Option<&str>,
        generation: Option<i64>,
    ) -> IntentState {
        let Some((apps, ops)) = self.watches.get().map(|w| (w.apps.store(), w.ops.store())) else {
            return IntentState::Pending;
        };
        // (uid, observed generation, conditions, the Operation's phase)
        let seen = if key.kind == "ApplicationInstance" {
            apps.get(&ObjectRef::new(&key.name).within(&key.namespace))
                .map(|app| {
                    let st = app.status.clone().unwrap_or_default();
                    (app.uid(), st.observed_generation, st.conditions, None)
                })
        } else {
            ops.get(&ObjectRef::new(&key.name).within(&key.namespace))
                .map(|op| {
                    let st = op.status.clone().unwrap_or_default();
                    (
                        op.uid(),
                        st.observed_generation,
                        st.conditions,
                        Some(st.phase.unwrap_or(Phase::Pending)),
                    )
                })
        };
        let Some((obj_uid, observed, conditions, op_phase)) = seen else {
            return IntentState::Pending;
        };
        if uid.is_some() && obj_uid.as_deref() != uid {
            return IntentState::Gone;
        }
        if generation.is_none() || observed < generation {
            return IntentState::Pending;
        }
        match op_phase {
            Some(phase) => IntentState::Progress {
                outcome: op_outcome(phase, &conditions),
                phase: format!("{phase:?}"),
                conditions,
            },
            None => IntentState::Progress {
                outcome: app_outcome(&conditions),
                phase: match cond(&conditions, types::READY) {
                    Some(c) if c.status == "True" => "Ready".into(),
                    _ => "Progressing".into(),
                },
                conditions,
            },
        }
    }

    /// After a restart: a job taken on whose outcome was not reached. Its payload is not kept; the object says
    /// whether the job was applied (its stamp names the job).
    pub(super) async fn resume(self: Arc<Self>, replay_key: String, entry: Entry) {
        let Some(r) = entry.applied_ref.clone() else {
            self.decide(
                &replay_key,
                Outcome::Failed,
                Some("the operator restarted before applying the job: send it again".into()),
                None,
            )
            .await;
            return;
        };
        let key = ObjectKey {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        };
        let obj = json!({"apiVersion": key.api_version, "kind": key.kind,
            "metadata": {"name": key.name, "namespace": key.namespace}});
        let live = match self.resources.get(&obj).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "Pull mode: resuming job {}", entry.id);
                None
            }
        };
        let stamped = live
            .as_ref()
            .and_then(|l| {
                l.pointer(&format!(
                    "/metadata/annotations/{}",
                    provenance::ANNOTATION.replace('/', "~1")
                ))
            })
            .and_then(Value::as_str)
            .is_some_and(|s| s.split(' ').nth(1) == Some(entry.id.as_str()));
        if !is_intent(&key) || !stamped {
            // Not stamped by this job (an intent), or not an intent (payloads are not kept): the job cannot be
            // finished, and the control plane is told to send it again.
            let error = if is_intent(&key) {
                "the operator restarted before applying the job: send it again"
            } else {
                "the operator restarted while applying the job: send it again"
            };
            self.decide(&replay_key, Outcome::Failed, Some(error.into()), None)
                .await;
            return;
        }
        let live = live.unwrap_or_default();
        let uid = live
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let generation = live.pointer("/metadata/generation").and_then(Value::as_i64);
        let applied = applied_ref(&key, uid.clone(), generation);
        let (outcome, error, applied) =
            self.follow(&entry.id, &key, uid, generation, applied).await;
        self.decide(&replay_key, outcome, error, applied).await;
    }
}

/// The jobs following an intent, by kind, namespace and name, each with what wakes it. Jobs for one object run
/// one after another, but a resumed job may overlap a new one: each follower has its own wake-up.
#[derive(Default)]
pub(super) struct Followers(std::sync::Mutex<HashMap<String, Vec<Arc<Notify>>>>);

/// One job following an intent; leaves [`Followers`] when dropped.
pub(super) struct Following<'a> {
    followers: &'a Followers,
    key: String,
    pub(super) notify: Arc<Notify>,
}

impl Followers {
    fn key(kind: &str, namespace: &str, name: &str) -> String {
        format!("{kind}/{namespace}/{name}")
    }

    /// The key of an intent the watches applied (its kind is the type's: what a job's object key names).
    fn key_of<K: kube::Resource<DynamicType = ()>>(obj: &K) -> String {
        Self::key(
            &K::kind(&()),
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
        )
    }

    pub(super) fn follow(&self, kind: &str, namespace: &str, name: &str) -> Following<'_> {
        let key = Self::key(kind, namespace, name);
        let notify = Arc::new(Notify::new());
        lock(&self.0)
            .entry(key.clone())
            .or_default()
            .push(notify.clone());
        Following {
            followers: self,
            key,
            notify,
        }
    }

    /// The intent changed: its followers look again (a follower not waiting yet keeps the wake-up as a permit).
    fn wake(&self, key: &str) {
        if let Some(waiting) = lock(&self.0).get(key) {
            waiting.iter().for_each(|n| n.notify_one());
        }
    }
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        let mut map = lock(&self.followers.0);
        if let Some(waiting) = map.get_mut(&self.key) {
            waiting.retain(|n| !Arc::ptr_eq(n, &self.notify));
            if waiting.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

pub(super) enum IntentState {
    /// Not seen at the applied generation yet.
    Pending,
    /// Deleted, or replaced by another object of the same name.
    Gone,
    Progress {
        phase: String,
        conditions: Vec<Condition>,
        outcome: Option<(Outcome, Option<String>)>,
    },
}

pub(super) fn cond<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// An ApplicationInstance's outcome as docs/pull.md defines it: Ready=True succeeded; Blocked, Degraded or a
/// failed release failed.
pub fn app_outcome(conds: &[Condition]) -> Option<(Outcome, Option<String>)> {
    let text = |c: &Condition| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message);
    if let Some(b) = cond(conds, types::BLOCKED).filter(|c| c.status == "True") {
        return Some((Outcome::Failed, Some(text(b))));
    }
    if let Some(d) = cond(conds, types::DEGRADED).filter(|c| c.status == "True") {
        return Some((Outcome::Failed, Some(text(d))));
    }
    match cond(conds, types::READY) {
        Some(r) if r.status == "True" => Some((Outcome::Succeeded, None)),
        Some(r)
            if r.status == "False"
                && crate::api::conditions::FAILED_READY_REASONS.contains(&r.reason.as_str()) =>
        {
            Some((Outcome::Failed, Some(text(r))))
        }
        _ => None,
    }
}

/// An Operation's outcome: Succeeded succeeded; Failed or Cancelled failed; not trusted (Verified=False) or not
/// admitted (Accepted=False) failed. Blocked while it waits for approval, a conflicting Operation or an engine
/// is not an outcome.
pub fn op_outcome(phase: Phase, conds: &[Condition]) -> Option<(Outcome, Option<String>)> {
    let text = |c: &Condition| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message);
    match phase {
        Phase::Succeeded => Some((Outcome::Succeeded, None)),
        Phase::Failed | Phase::Cancelled => Some((
            Outcome::Failed,
            cond(conds, types::FAILED)
                .or_else(|| cond(conds, types::CANCELLED))
                .map(text)
                .or_else(|| Some(format!("{phase:?}"))),
        )),
        // Not trusted, or not admitted (its spec fails validation): final until a new job changes it.
        _ => cond(conds, types::VERIFIED)
            .filter(|c| c.status == "False")
            .or_else(|| cond(conds, types::ACCEPTED).filter(|c| c.status == "False"))
            .map(|c| (Outcome::Failed, Some(text(c)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApplicationInstance;
    use jiff::Timestamp;

    fn c(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn outcomes_follow_the_documented_meaning() {
        assert_eq!(
            app_outcome(&[c("Ready", "True", "HelmReleaseReady")])
                .unwrap()
                .0,
            Outcome::Succeeded
        );
        assert_eq!(app_outcome(&[c("Ready", "Unknown", "Progressing")]), None);
        assert_eq!(
            app_outcome(&[
                c("Ready", "True", "RolledBack"),
                c("Degraded", "True", "UpgradeFailed")
            ])
            .unwrap()
            .0,
            Outcome::Failed
        );
        assert_eq!(
            app_outcome(&[c("Blocked", "True", "SpecMismatch")])
                .unwrap()
                .0,
            Outcome::Failed
        );
        assert_eq!(
            op_outcome(Phase::Succeeded, &[]).unwrap().0,
            Outcome::Succeeded
        );
        assert_eq!(
            op_outcome(Phase::Pending, &[c("Blocked", "True", "AwaitingApproval")]),
            None,
            "waiting for approval is not an outcome"
        );
        assert_eq!(
            op_outcome(Phase::Pending, &[c("Verified", "False", "SpecMismatch")])
                .unwrap()
                .0,
            Outcome::Failed
        );
        assert_eq!(
            op_outcome(
                Phase::Pending,
                &[c("Accepted", "False", "ValidationFailed")]
            )
            .unwrap()
            .0,
            Outcome::Failed
        );
    }

    #[tokio::test]
    async fn a_change_wakes_the_jobs_following_that_intent_and_no_other() {
        let followers = Followers::default();
        // What the watches tell is keyed as the jobs' object keys name it.
        let mut live = ApplicationInstance::new("shop", Default::default());
        live.metadata.namespace = Some("team-a".into());
        assert_eq!(
            Followers::key_of(&live),
            Followers::key("ApplicationInstance", "team-a", "shop")
        );
        let a = followers.follow("ApplicationInstance", "team-a", "shop");
        let overlapping = followers.follow("ApplicationInstance", "team-a", "shop");
        let b = followers.follow("Operation", "team-a", "shop");
        // Woken before it waits: the permit is kept, so a change between a look and the wait is not missed.
        followers.wake(&Followers::key("ApplicationInstance", "team-a", "shop"));
        for f in [&a, &overlapping] {
            tokio::time::timeout(std::time::Duration::from_secs(5), f.notify.notified())
                .await
                .expect("woken");
        }
        let not_woken =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.notify.notified()).await;
        assert!(
            not_woken.is_err(),
            "another kind's object of the same name was not changed"
        );
        drop(a);
        drop(overlapping);
        assert!(!lock(&followers.0).contains_key(&Followers::key(
            "ApplicationInstance",
            "team-a",
            "shop"
        )));
        drop(b);
        assert!(
            lock(&followers.0).is_empty(),
            "an intent nobody follows holds no entry"
        );
    }
}
