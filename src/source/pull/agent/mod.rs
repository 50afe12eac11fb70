//! The Pull-mode agent (docs/pull.md): registration and credentials, the long poll, and each job from ack to
//! result. What a job applies is then reconciled by the same controllers as in GitOps mode; the agent follows the
//! intent's conditions (from the controllers' stores: no extra API reads) to the job's outcome.
//!
//! Per job: the replay check (store) → ack → expiry (`noop`/`expired`) → signature (when the trust policy names
//! control-plane keys; refused: `failed` + audit event, nothing applied) → what it asks for (refused: `failed`
//! naming the field) → recorded as taken on (durable) → server-side apply / delete → `/status` as the intent's
//! conditions change → result (durable until posted, retried across restarts). Jobs for different objects run
//! at once; jobs for the same object in arrival order.
//!
//! One `Agent`, its methods by concern: this file holds its state, start-up and main loop;
//! `credentials.rs` registration, the credentials Secret and rotation; `poll.rs` the long poll and accepting
//! jobs; `lifecycle.rs` taking a job on and applying it; `follow.rs` the intent's conditions to the job's outcome
//! (and resuming after a restart); `results.rs` the outcome posted, the ack, `/status`, audit events and the store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};
use tracing::warn;

mod credentials;
mod follow;
mod lifecycle;
mod poll;
mod results;

pub use follow::{app_outcome, op_outcome};

use super::client::AgentClient;
use super::job::{AppliedRef, Job, ObjectKey};
use super::signing::ControlPlaneKey;
use super::store::{AppliedJobs, ConfigMapStore};
use crate::api::ClusterPhase;
use crate::api::conditions::Cond;
use crate::api::conditions::types;
use crate::k8s::apply::Resources;
use crate::k8s::watch::IntentWatches;
use crate::metrics::{Connectivity, Metrics, Mode};
use crate::report::events::{EventPoster, backoff_delay};

/// The Secret holding the agent's credential (operator namespace), as upstream names it.
pub const CREDENTIALS_SECRET: &str = "vworkspace-agent-credentials";
/// Field manager of what jobs apply (upstream's).
pub const FIELD_MANAGER: &str = "vworkspace-agent";
/// Annotation on the Cluster asking for a credential rotation (any new value rotates once).
pub const ROTATE_ANNOTATION: &str = "ops.vworkspace.io/rotate-credentials";
const DEFAULT_TOKEN_KEY: &str = "registrationToken";

/// Settings of Pull mode.
#[derive(Debug, Clone)]
pub struct PullConfig {
    pub cluster_id: String,
    /// The operator's namespace: credentials Secret, registration token Secret, applied-job store.
    pub namespace: String,
    /// The control-plane endpoint when the Cluster does not name one (`--control-plane-endpoint`).
    pub endpoint: Option<String>,
    /// `wait` of the long poll.
    pub poll_wait: Duration,
    pub request_timeout: Duration,
    /// A job that reaches no outcome within this gets `failed`.
    pub job_deadline: Duration,
    pub max_backoff: Duration,
    /// Accept `http://` endpoints (tests on loopback).
    pub allow_insecure_http: bool,
    /// The agent writes the current token here (the event poster reads it, and re-reads it on 401).
    pub token_file: std::path::PathBuf,
    /// How often a job in flight looks at its intent when no change of it woke the job before (a fallback: the
    /// intents' watches wake the job at each change).
    pub follow_interval: Duration,
}

impl PullConfig {
    pub fn new(cluster_id: &str, namespace: &str, token_file: std::path::PathBuf) -> Self {
        Self {
            cluster_id: cluster_id.to_string(),
            namespace: namespace.to_string(),
            endpoint: None,
            poll_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            job_deadline: Duration::from_secs(15 * 60),
            max_backoff: Duration::from_secs(60),
            allow_insecure_http: false,
            token_file,
            follow_interval: Duration::from_secs(5),
        }
    }
}

/// What the agent reports for the Cluster object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    pub phase: ClusterPhase,
    /// (status, reason, message)
    pub authenticated: Option<(bool, &'static str, String)>,
    pub connected: (bool, &'static str, String),
    pub last_heartbeat: Option<Timestamp>,
    pub observed_token: Option<String>,
    pub registered_at: Option<String>,
    pub registration_token_consumed: bool,
}

impl AgentStatus {
    /// Before the first round trip.
    pub fn initial() -> Self {
        Self {
            connected: (
                false,
                crate::api::conditions::reasons::CONTROL_PLANE_UNREACHABLE,
                "not connected yet".into(),
            ),
            ..Self::default()
        }
    }

    /// The Connected and Authenticated conditions.
    pub fn conditions(&self) -> Vec<Cond> {
        let mut out = vec![Cond::new(
            types::CONNECTED,
            if self.connected.0 { "True" } else { "False" },
            self.connected.1,
            self.connected.2.clone(),
        )];
        if let Some((ok, reason, message)) = &self.authenticated {
            out.push(Cond::new(
                types::AUTHENTICATED,
                if *ok { "True" } else { "False" },
                *reason,
                message.clone(),
            ));
        }
        out
    }
}

/// The trust policy's control-plane keys, or why no policy is in force; shared by the agent (which admits jobs)
/// and the Pull intent source (which re-judges applied intents when the keys change).
pub type SharedKeys = Arc<RwLock<Result<Vec<ControlPlaneKey>, String>>>;

/// The credential in use.
#[derive(Clone, PartialEq, Eq)]
struct Creds {
    base: String,
    token: String,
}

/// The first 16 hex digits of the token's SHA-256 (what status shows; never the token).
pub fn fingerprint(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))[..16].to_string()
}

/// The agent. Shared by its tasks and the Pull intent source (which reads the provenance key).
pub struct Agent {
    cfg: PullConfig,
    kube: Client,
    resources: Resources,
    /// The intents' watches, shared with the controllers (set by [`Agent::attach`]): their stores say where a
    /// job's intent is, their changes wake the jobs following it.
    watches: std::sync::OnceLock<IntentWatches>,
    /// Jobs waiting for their intent's next change.
    followers: follow::Followers,
    /// The trust policy's control-plane keys, or why no policy is in force (then every job is refused).
    keys: SharedKeys,
    provenance_key: Arc<RwLock<Option<Vec<u8>>>>,
    status: watch::Sender<AgentStatus>,
    creds: RwLock<Option<Creds>>,
    /// The control-plane client last built, for its endpoint: one connection pool (and its TLS sessions) for every
    /// ack, status, result and poll, instead of a new client, so a new connection, per request.
    http: Mutex<Option<AgentClient>>,
    /// Raised when a request met 401: the poll loop re-reads the credential.
    unauthorized: Notify,
    /// A request to the control plane succeeded after failures: every loop waiting out a backoff tries again now.
    reachable: Notify,
    store: Mutex<AppliedJobs>,
    store_io: tokio::sync::Mutex<ConfigMapStore>,
    /// Changes made to the store (counted by [`Agent::save`]), and how many of them the last write covered.
    changes: std::sync::atomic::AtomicU64,
    saved: std::sync::atomic::AtomicU64,
    queues: Mutex<HashMap<ObjectKey, VecDeque<Job>>>,
    poster: std::sync::OnceLock<Arc<EventPoster>>,
    metrics: Option<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Agent {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: PullConfig,
        kube: Client,
        resources: Resources,
        keys: SharedKeys,
        provenance_key: Arc<RwLock<Option<Vec<u8>>>>,
        status: watch::Sender<AgentStatus>,
        metrics: Option<Metrics>,
    ) -> Arc<Self> {
        let store_io = ConfigMapStore::new(kube.clone(), &cfg.namespace);
        Arc::new(Self {
            status,
            cfg,
            kube,
            resources,
            watches: std::sync::OnceLock::new(),
            followers: follow::Followers::default(),
            keys,
            provenance_key,
            creds: RwLock::default(),
            http: Mutex::default(),
            unauthorized: Notify::new(),
            reachable: Notify::new(),
            store: Mutex::default(),
            store_io: tokio::sync::Mutex::new(store_io),
            changes: Default::default(),
            saved: Default::default(),
            queues: Mutex::default(),
            poster: std::sync::OnceLock::new(),
            metrics,
        })
    }

    /// Give the agent the intents' watches (to follow intents: their stores, and their changes to wake the jobs
    /// following them) and the event poster (audit events); before [`Agent::run`].
    pub fn attach(&self, intents: &IntentWatches, poster: Option<Arc<EventPoster>>) {
        let _ = self.watches.set(intents.clone());
        if let Some(p) = poster {
            let _ = self.poster.set(p);
        }
    }

    /// Hold a credential: read it from the credentials Secret, or register. Retries until it has one; returns
    /// false when `stop` turned true first. The operator starts the rest of Pull mode after this: until the
    /// cluster is registered there is no job, and no intent to trust.
    pub async fn bootstrap(&self, mut stop: watch::Receiver<bool>) -> bool {
        let mut failures = 0u32;
        loop {
            match self.ensure_credentials().await {
                Ok(()) => return true,
                Err(wait) => {
                    failures += 1;
                    let wait = wait.unwrap_or_else(|| self.backoff(failures));
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return false,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// The control plane's base URL in use.
    pub fn base_url(&self) -> Option<String> {
        self.token().map(|c| c.base)
    }

    /// The file the current token is written to.
    pub fn token_file(&self) -> &std::path::Path {
        &self.cfg.token_file
    }

    /// The control-plane keys changed (trust policy reloaded), or no policy is in force.
    pub fn set_keys(&self, keys: Result<Vec<ControlPlaneKey>, String>) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    pub fn subscribe(&self) -> watch::Receiver<AgentStatus> {
        self.status.subscribe()
    }

    pub fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut AgentStatus)) {
        self.status.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
        if let Some(m) = &self.metrics {
            let s = self.status.borrow();
            m.set_connectivity(
                Mode::Pull,
                match (s.connected.0, s.phase) {
                    (true, _) => Connectivity::Connected,
                    (false, ClusterPhase::Disconnected | ClusterPhase::Error) => {
                        Connectivity::Disconnected
                    }
                    _ => Connectivity::Reconnecting,
                },
            );
        }
    }

    fn token(&self) -> Option<Creds> {
        self.creds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The client for `base`: the one already built while the endpoint stays the same (its connections are
    /// reused), a new one when it changes.
    fn client(&self, base: &str) -> Result<AgentClient, String> {
        let mut cached = lock(&self.http);
        if let Some(client) = cached
            .as_ref()
            .filter(|c| c.base() == base.trim_end_matches('/'))
        {
            return Ok(client.clone());
        }
        let client = AgentClient::new(base, self.cfg.request_timeout)?;
        *cached = Some(client.clone());
        Ok(client)
    }

    /// Run until `stop` turns true: resume what the store says is owed, then poll.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            _ = self.clone().main() => {}
            _ = self.clone().wake_followers() => {}
        }
    }

    async fn main(self: Arc<Self>) {
        // The store first: without it, replays and owed results would be forgotten.
        let mut failures = 0u32;
        loop {
            let loaded = self.store_io.lock().await.load().await;
            match loaded {
                Ok(s) => {
                    *lock(&self.store) = s;
                    break;
                }
                Err(e) => {
                    failures += 1;
                    warn!(error = %e, "Pull mode: reading the applied-job store");
                    self.set_status(|s| {
                        s.phase = ClusterPhase::Pending;
                        s.connected = (
                            false,
                            crate::api::conditions::reasons::CONTROL_PLANE_UNREACHABLE,
                            format!("the applied-job store cannot be read: {e}"),
                        );
                    });
                    tokio::time::sleep(self.backoff(failures)).await;
                }
            }
        }
        let mut failures = 0u32;
        loop {
            match self.ensure_credentials().await {
                Ok(()) => break,
                Err(wait) => {
                    failures += 1;
                    tokio::time::sleep(wait.unwrap_or_else(|| self.backoff(failures))).await;
                }
            }
        }
        // Results owed from before a restart, and jobs taken on whose outcome was not reached.
        let owed = lock(&self.store).unposted();
        for (key, entry) in owed {
            let this = self.clone();
            tokio::spawn(async move { this.post_result(&key, &entry).await });
        }
        let undecided = lock(&self.store).undecided();
        for (key, entry) in undecided {
            let this = self.clone();
            tokio::spawn(async move { this.resume(key, entry).await });
        }
        self.poll_loop().await;
    }

    fn backoff(&self, failures: u32) -> Duration {
        backoff_delay(failures, self.cfg.max_backoff, fastrand::f64())
    }

    /// Wait out a backoff, or less: until a request elsewhere reaches the control plane again (but never less
    /// than a second: a failing endpoint is not retried faster than that).
    async fn back_off(&self, wait: Duration) {
        let floor = wait.min(Duration::from_secs(1));
        tokio::time::sleep(floor).await;
        tokio::select! {
            _ = tokio::time::sleep(wait - floor) => {}
            _ = self.reachable.notified() => {}
        }
    }

    /// The control plane answered after failures: wake every loop waiting out a backoff.
    fn reached_again(&self) {
        self.reachable.notify_waiters();
    }
}

fn is_intent(key: &ObjectKey) -> bool {
    matches!(
        (key.api_version.as_str(), key.kind.as_str()),
        ("apps.vworkspace.io/v1alpha1", "ApplicationInstance")
            | ("ops.vworkspace.io/v1alpha1", "Operation")
    )
}

fn applied_ref(key: &ObjectKey, uid: Option<String>, generation: Option<i64>) -> AppliedRef {
    AppliedRef {
        api_version: key.api_version.clone(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid,
        generation,
    }
}

fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(data) = &secret.data {
        for (k, v) in data {
            if let Ok(s) = String::from_utf8(v.0.clone()) {
                out.insert(k.clone(), s);
            }
        }
    }
    if let Some(data) = &secret.string_data {
        for (k, v) in data {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_fingerprints_are_16_hex_digits() {
        assert_eq!(fingerprint("t").len(), 16);
        assert_ne!(fingerprint("t"), fingerprint("u"));
    }
}
