//! Reporting a job: its outcome decided and posted (durable until posted, retried across restarts), the ack,
//! `/status` as it runs, the audit event and the applied-job store.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;
use tracing::{info, warn};

use super::*;
use crate::metrics::JobOutcome;
use crate::report::events::{ResourceRef, audit_event};
use crate::source::pull::client::ApiError;
use crate::source::pull::job::{AppliedRef, Job, JobResult, JobStatus, Outcome};
use crate::source::pull::signing::{self};
use crate::source::pull::store::Entry;

impl Agent {
    /// Record the outcome durably, then post it until the control plane has it.
    pub(super) async fn decide(
        &self,
        replay_key: &str,
        outcome: Outcome,
        error: Option<String>,
        applied: Option<AppliedRef>,
    ) {
        let now = Timestamp::now();
        let error = error.map(|e| truncate(&e, 1024));
        let entry = {
            let mut s = lock(&self.store);
            let Some(e) = s.get_mut(replay_key) else {
                return;
            };
            e.outcome = Some(outcome);
            e.error = error;
            e.applied_ref = applied;
            e.decided = Some(now);
            e.clone()
        };
        self.save().await;
        self.post_result(replay_key, &entry).await;
    }

    pub(super) async fn post_result(&self, replay_key: &str, entry: &Entry) {
        let Some(outcome) = entry.outcome else { return };
        let result = JobResult {
            outcome,
            error: entry.error.clone(),
            applied_ref: entry.applied_ref.clone(),
            timestamp: entry.decided.unwrap_or_else(Timestamp::now).to_string(),
        };
        self.send_result_once(&entry.id, &result).await;
        lock(&self.store).mark_posted(replay_key);
        self.save().await;
    }

    /// Post a result until it is delivered (204, 409, or 404: the job is gone), whatever the wait.
    pub(super) async fn send_result_once(&self, id: &str, result: &JobResult) {
        let mut failures = 0u32;
        loop {
            let Some(creds) = self.token() else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let Ok(client) = self.client(&creds.base) else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            match client.result(&creds.token, id, result).await {
                Ok(()) | Err(ApiError::NotFound(_)) => {
                    if failures > 0 {
                        self.reached_again();
                    }
                    if let Some(m) = &self.metrics {
                        m.job_result(match result.outcome {
                            Outcome::Succeeded => JobOutcome::Succeeded,
                            Outcome::Failed => JobOutcome::Failed,
                            Outcome::Noop => JobOutcome::Noop,
                            Outcome::Conflict => JobOutcome::Conflict,
                        });
                    }
                    info!(job = id, outcome = ?result.outcome, error = ?result.error, "Pull mode: result posted");
                    return;
                }
                Err(e) => {
                    failures += 1;
                    let wait = match &e {
                        ApiError::TooManyRequests(Some(d)) => *d,
                        ApiError::Unauthorized(_) => {
                            self.unauthorized.notify_one();
                            Duration::from_secs(1)
                        }
                        _ => self.backoff(failures),
                    };
                    warn!(job = id, error = %e, retry_in = ?wait, "Pull mode: posting a result");
                    // Reset once the control plane answers again elsewhere: the next try comes at once.
                    let wait = wait.max(Duration::from_secs(1));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let woken = tokio::select! {
                        _ = tokio::time::sleep(wait - Duration::from_secs(1)) => false,
                        _ = self.reachable.notified() => true,
                    };
                    if woken {
                        failures = 0;
                    }
                }
            }
        }
    }

    pub(super) async fn ack(&self, id: &str) {
        for attempt in 0..5u32 {
            let Some(creds) = self.token() else { return };
            let Ok(client) = self.client(&creds.base) else {
                return;
            };
            match client.ack(&creds.token, id).await {
                Ok(()) | Err(ApiError::NotFound(_)) => return,
                Err(ApiError::TooManyRequests(d)) => {
                    tokio::time::sleep(d.unwrap_or(Duration::from_secs(1))).await;
                }
                Err(ApiError::Unauthorized(_)) => {
                    self.unauthorized.notify_one();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) if e.transient() => {
                    tokio::time::sleep(self.backoff(attempt + 1)).await;
                }
                // Refused (403…): the result says what happened; nothing more to do for the ack.
                Err(e) => {
                    warn!(job = id, error = %e, "Pull mode: ack refused");
                    return;
                }
            }
        }
    }

    /// `/status` on the way (best effort: a lost status is superseded by the next, and by the result).
    pub(super) async fn post_status(
        &self,
        id: &str,
        phase: &str,
        conditions: Vec<Condition>,
        message: Option<String>,
    ) {
        let Some(creds) = self.token() else { return };
        let Ok(client) = self.client(&creds.base) else {
            return;
        };
        let status = JobStatus {
            phase: phase.to_string(),
            conditions: conditions
                .into_iter()
                .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
                .collect(),
            message,
            timestamp: Timestamp::now().to_string(),
        };
        if let Err(e) = client.status(&creds.token, id, &status).await {
            if matches!(e, ApiError::Unauthorized(_)) {
                self.unauthorized.notify_one();
            }
            warn!(job = id, error = %e, "Pull mode: posting a status");
        }
    }

    /// The audit event for a refused job (to the control plane's event endpoint).
    pub(super) fn audit(&self, j: &Job, reason: &str, message: &str) {
        let Some(poster) = self.poster.get() else {
            return;
        };
        let now = Timestamp::now();
        let r = ResourceRef::cluster(&self.cfg.cluster_id, "", 0);
        let cond = Condition {
            type_: "JobAccepted".into(),
            status: "False".into(),
            reason: reason.into(),
            message: format!("job {}: {message}", j.id),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            observed_generation: None,
        };
        // One audit kind for every refusal (docs/pull.md, "Per job"); the precise reason is the condition's.
        let mut event = audit_event(signing::reasons::SIGNATURE_INVALID, &r, vec![cond], now);
        event.event_key = format!(
            "{}/{}/{}",
            signing::reasons::SIGNATURE_INVALID,
            self.cfg.cluster_id,
            j.id
        );
        poster.submit(event);
    }

    /// Make the store durable with the caller's change (made before the call). Concurrent callers share writes
    /// (group commit): whoever holds the writer writes the store as it is then, covering every change counted
    /// so far, and a caller whose change that write covered returns without writing. 500 jobs at once cost a
    /// few ConfigMap writes, not one per change. A failed write is logged and retried by the next save.
    pub(super) async fn save(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let mine = self.changes.fetch_add(1, SeqCst) + 1;
        let mut io = self.store_io.lock().await;
        if self.saved.load(SeqCst) >= mine {
            return;
        }
        // A moment for the changes of jobs arriving together to join this write.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let covered = self.changes.load(SeqCst);
        let snapshot = lock(&self.store).clone();
        match io.save(&snapshot).await {
            Ok(()) => self.saved.fetch_max(covered, SeqCst),
            Err(e) => {
                warn!(error = %e, "Pull mode: writing the applied-job store");
                0
            }
        };
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
