//! The long poll: ask the control plane for jobs, accept each (replay check, expiry, signature) and hand it to
//! its object's queue, so jobs for different objects run at once and jobs for one object in arrival order.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tracing::warn;

use super::*;
use crate::api::ClusterPhase;
use crate::source::pull::client::{AgentClient, ApiError};
use crate::source::pull::job::{self, Job, JobResult, ObjectKey, Outcome};

/// The longest wait between two polls while the control plane fails (one request per this interval).
const POLL_RETRY_MAX: Duration = Duration::from_secs(5);

impl Agent {
    pub(super) async fn poll_loop(self: &Arc<Self>) {
        let mut failures = 0u32;
        let mut unauthorized_retried = false;
        loop {
            self.maybe_rotate().await;
            let Some(creds) = self.token() else {
                if let Err(wait) = self.ensure_credentials().await {
                    tokio::time::sleep(wait.unwrap_or(Duration::from_secs(5))).await;
                }
                continue;
            };
            let client = match self.client(&creds.base) {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "Pull mode: HTTP client");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let answer = tokio::select! {
                a = client.jobs(&creds.token, &self.cfg.cluster_id, self.cfg.poll_wait) => a,
                // A job request met 401: look at the credential now rather than after the poll.
                _ = self.unauthorized.notified() => Err(ApiError::Unauthorized(String::new())),
            };
            match answer {
                Ok(jobs) => {
                    if failures > 0 {
                        self.reached_again();
                    }
                    failures = 0;
                    unauthorized_retried = false;
                    self.set_status(|s| {
                        s.phase = ClusterPhase::Connected;
                        s.connected = (true, "RoundTripOK", "polling the control plane".into());
                        s.last_heartbeat = Some(Timestamp::now());
                        if !s.authenticated.as_ref().is_some_and(|a| a.0) {
                            s.authenticated = Some((
                                true,
                                crate::api::conditions::reasons::CREDENTIAL_ACCEPTED,
                                String::new(),
                            ));
                        }
                    });
                    self.accept(jobs, &client, &creds).await;
                }
                Err(ApiError::Unauthorized(detail)) => {
                    // Re-read the credential and retry once; then stop until it changes.
                    if self.reread().await || !unauthorized_retried {
                        unauthorized_retried = true;
                        continue;
                    }
                    self.refused(format!(
                        "the control plane refused the credential (401{detail}); waiting for a new one in Secret \
                         {CREDENTIALS_SECRET}"
                    ))
                    .await;
                    unauthorized_retried = false;
                }
                Err(ApiError::Forbidden(detail)) => {
                    self.refused(format!(
                        "the control plane forbids this cluster (403{detail}): waiting for re-registration (a new \
                         credential in Secret {CREDENTIALS_SECRET}, or the Secret deleted to register again)"
                    ))
                    .await;
                }
                Err(ApiError::TooManyRequests(after)) => {
                    let wait = after
                        .unwrap_or_else(|| self.backoff(1))
                        .max(Duration::from_secs(1));
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    failures += 1;
                    // The poll is the agent's probe of the control plane: it retries within POLL_RETRY_MAX
                    // whatever the backoff has grown to, so a queued job waits seconds, not a minute, once the
                    // control plane is back (and its success wakes the other loops).
                    let wait = self.backoff(failures).min(POLL_RETRY_MAX);
                    // One failed poll is a blip; three in a row is a disconnection.
                    if failures >= 3 {
                        let message = format!("polling the control plane: {e}");
                        self.set_status(|s| {
                            s.phase = ClusterPhase::Disconnected;
                            s.connected = (
                                false,
                                crate::api::conditions::reasons::CONTROL_PLANE_UNREACHABLE,
                                message,
                            );
                        });
                    }
                    warn!(error = %e, retry_in = ?wait, "Pull mode: polling");
                    self.back_off(wait).await;
                }
            }
        }
    }

    /// The control plane refused the credential (401 after the retry, or 403): say so and stop polling until it
    /// changes.
    pub(super) async fn refused(&self, message: String) {
        warn!("{message}");
        self.set_status(|s| {
            s.phase = ClusterPhase::Disconnected;
            s.authenticated = Some((false, "ControlPlaneAuthenticationFailed", message.clone()));
            s.connected = (false, "CredentialMissing", message);
        });
        self.wait_for_new_credential().await;
    }

    /// Wait until the credentials Secret holds another token (or is gone, then register again).
    pub(super) async fn wait_for_new_credential(&self) {
        let before = self.token();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            match self.secrets().get_opt(CREDENTIALS_SECRET).await {
                Ok(None) => {
                    *self.creds.write().unwrap_or_else(PoisonError::into_inner) = None;
                    return;
                }
                Ok(Some(s)) => {
                    let token = secret_data(&s).get("token").cloned();
                    if token.as_deref() != before.as_ref().map(|c| c.token.as_str()) {
                        let _ = self.ensure_credentials().await;
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "Pull mode: reading the credentials Secret"),
            }
        }
    }

    /// Take on the jobs of one poll: record them (one store write for the lot), then run them.
    pub(super) async fn accept(
        self: &Arc<Self>,
        jobs: Vec<Result<Job, job::JobError>>,
        client: &AgentClient,
        creds: &Creds,
    ) {
        if jobs.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let mut run = Vec::new();
        for parsed in jobs {
            match parsed {
                Ok(j) => {
                    if let (Some(m), Some(created)) = (&self.metrics, j.created_at) {
                        m.job_lag(
                            Duration::try_from(now.duration_since(created)).unwrap_or_default(),
                        );
                    }
                    run.push(j);
                }
                Err(e) => {
                    // Unreadable: refused by id when it has one; otherwise there is no one to answer.
                    warn!(error = %e, "Pull mode: a job the operator cannot read");
                    if let Some(id) = e.id.clone() {
                        let result = JobResult {
                            outcome: Outcome::Failed,
                            error: Some(e.to_string()),
                            applied_ref: None,
                            timestamp: now.to_string(),
                        };
                        let _ = client.ack(&creds.token, &id).await;
                        // In the background: a control plane that refuses results must not stop the poll.
                        let this = self.clone();
                        tokio::spawn(async move { this.send_result_once(&id, &result).await });
                    }
                }
            }
        }
        for j in run {
            self.dispatch(j);
        }
    }

    /// Queue a job behind earlier jobs for the same object; start a worker for the object when none runs.
    pub(super) fn dispatch(self: &Arc<Self>, j: Job) {
        let key = match job::action(&j) {
            Ok(a) => a.key(),
            // Refused anyway: by itself.
            Err(_) => ObjectKey {
                api_version: String::new(),
                kind: "job".into(),
                namespace: String::new(),
                name: j.id.clone(),
            },
        };
        let mut queues = lock(&self.queues);
        if let Some(q) = queues.get_mut(&key) {
            q.push_back(j);
            return;
        }
        queues.insert(key.clone(), VecDeque::from([j]));
        drop(queues);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut queues = lock(&this.queues);
                    let q = queues.get_mut(&key).expect("the worker's queue");
                    match q.pop_front() {
                        Some(j) => j,
                        None => {
                            queues.remove(&key);
                            return;
                        }
                    }
                };
                this.run_job(next).await;
            }
        });
    }
}
