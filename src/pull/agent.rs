//! The Pull-mode agent (docs/pull.md): registration and credentials, the long poll, and each job from ack to
//! result. What a job applies is then reconciled by the same controllers as in GitOps mode; the agent follows the
//! intent's conditions (from the controllers' stores: no extra API reads) to the job's outcome.
//!
//! Per job: the replay check (store) → ack → expiry (`noop`/`expired`) → signature (when the trust policy names
//! control-plane keys; refused: `failed` + audit event, nothing applied) → what it asks for (refused: `failed`
//! naming the field) → recorded as taken on (durable) → server-side apply / delete → `/status` as the intent's
//! conditions change → result (durable until posted, retried across restarts). Jobs for different objects run
//! at once; jobs for the same object in arrival order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::client::{AgentClient, ApiError};
use super::job::{self, Action, AppliedRef, Job, JobResult, JobStatus, ObjectKey, Outcome};
use super::provenance;
use super::signing::{self, ControlPlaneKey};
use super::store::{AppliedJobs, ConfigMapStore, DEFAULT_RETENTION, Entry, MAX_ENTRIES};
use crate::api::conditions::Cond;
use crate::api::conditions::types;
use crate::api::{ApplicationInstance, Cluster, ClusterPhase, Operation, Phase, labels};
use crate::k8s::apply::Resources;
use crate::metrics::{Connectivity, JobOutcome, Metrics, Mode};
use crate::report::events::{EventPoster, ResourceRef, audit_event, backoff_delay};

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
    /// How often the agent looks at in-flight jobs' intents.
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
            follow_interval: Duration::from_millis(500),
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
    /// The controllers' stores (set by [`Agent::attach`] once they exist).
    stores: std::sync::OnceLock<(Store<ApplicationInstance>, Store<Operation>)>,
    /// The trust policy's control-plane keys, or why no policy is in force (then every job is refused).
    keys: SharedKeys,
    provenance_key: Arc<RwLock<Option<Vec<u8>>>>,
    status: watch::Sender<AgentStatus>,
    creds: RwLock<Option<Creds>>,
    /// Raised when a request met 401: the poll loop re-reads the credential.
    unauthorized: Notify,
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
            stores: std::sync::OnceLock::new(),
            keys,
            provenance_key,
            creds: RwLock::default(),
            unauthorized: Notify::new(),
            store: Mutex::default(),
            store_io: tokio::sync::Mutex::new(store_io),
            changes: Default::default(),
            saved: Default::default(),
            queues: Mutex::default(),
            poster: std::sync::OnceLock::new(),
            metrics,
        })
    }

    /// Give the agent the controllers' stores (to follow intents) and the event poster (audit events); before
    /// [`Agent::run`].
    pub fn attach(
        &self,
        apps: Store<ApplicationInstance>,
        ops: Store<Operation>,
        poster: Option<Arc<EventPoster>>,
    ) {
        let _ = self.stores.set((apps, ops));
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

    fn client(&self, base: &str) -> Result<AgentClient, String> {
        AgentClient::new(base, self.cfg.request_timeout)
    }

    /// Run until `stop` turns true: resume what the store says is owed, then poll.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            _ = self.clone().main() => {}
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

    // ---------------------------------------------------------------------------------------------------
    // Credentials

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), &self.cfg.namespace)
    }

    /// Read the credentials Secret; register when there is none. `Err(Some(d))`: try again after `d`.
    async fn ensure_credentials(&self) -> Result<(), Option<Duration>> {
        let secret = self
            .secrets()
            .get_opt(CREDENTIALS_SECRET)
            .await
            .map_err(|e| {
                warn!(error = %e, "Pull mode: reading the credentials Secret");
                None
            })?;
        if let Some(secret) = secret {
            let data = secret_data(&secret);
            if let (Some(base), Some(token)) =
                (data.get("control-plane-base-url"), data.get("token"))
                && !token.is_empty()
            {
                let key = match data.get("provenance-key") {
                    Some(k) if k.len() >= 32 => k.as_bytes().to_vec(),
                    _ => self.add_provenance_key().await.map_err(|e| {
                        warn!(error = %e, "Pull mode: storing the provenance key");
                        None
                    })?,
                };
                *self
                    .provenance_key
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(key);
                self.use_token(base, token, data.get("registered-at").cloned())
                    .await;
                return Ok(());
            }
        }
        self.register().await
    }

    async fn use_token(&self, base: &str, token: &str, registered_at: Option<String>) {
        let creds = Creds {
            base: base.to_string(),
            token: token.to_string(),
        };
        *self.creds.write().unwrap_or_else(PoisonError::into_inner) = Some(creds);
        if let Err(e) = write_private(&self.cfg.token_file, token.as_bytes()).await {
            warn!(error = %e, file = %self.cfg.token_file.display(), "Pull mode: writing the token file");
        }
        if let (Some(m), Some(at)) = (
            &self.metrics,
            registered_at
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok()),
        ) {
            let age = Timestamp::now().duration_since(at);
            m.set_credential_age(Duration::try_from(age).unwrap_or_default());
        }
        let fp = fingerprint(token);
        self.set_status(|s| {
            s.observed_token = Some(fp);
            s.registered_at = registered_at;
        });
    }

    async fn add_provenance_key(&self) -> Result<Vec<u8>, kube::Error> {
        let key = new_provenance_key();
        self.secrets()
            .patch(
                CREDENTIALS_SECRET,
                &PatchParams::apply(crate::api::FIELD_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": CREDENTIALS_SECRET},
                    "stringData": {"provenance-key": key},
                })),
            )
            .await?;
        Ok(key.into_bytes())
    }

    /// Validate an endpoint as the contract and our decision say: `https://`, or `http://` when allowed.
    fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
        if endpoint.starts_with("https://") {
            Ok(())
        } else if endpoint.starts_with("http://") {
            if self.cfg.allow_insecure_http {
                Ok(())
            } else {
                Err(format!(
                    "controlPlaneEndpoint {endpoint:?} is plain http: refused (set --allow-insecure-http for a test \
                     control plane on loopback)"
                ))
            }
        } else {
            Err(format!(
                "controlPlaneEndpoint {endpoint:?} is not an http(s) URL"
            ))
        }
    }

    async fn cluster(&self) -> Result<Option<Cluster>, kube::Error> {
        Api::<Cluster>::all(self.kube.clone())
            .get_opt(&self.cfg.cluster_id)
            .await
    }

    /// Register with the one-time token named by the Cluster.
    async fn register(&self) -> Result<(), Option<Duration>> {
        let missing = |message: String| {
            self.set_status(|s| {
                s.phase = ClusterPhase::Pending;
                s.authenticated = Some((false, "TokenSecretMissing", message.clone()));
                s.connected = (false, "CredentialMissing", message);
            });
            Some(Duration::from_secs(5))
        };
        let cluster = self.cluster().await.map_err(|e| {
            warn!(error = %e, "Pull mode: reading the Cluster");
            None
        })?;
        let spec = cluster.map(|c| c.spec).unwrap_or_default();
        let Some(endpoint) = spec
            .control_plane_endpoint
            .clone()
            .or_else(|| self.cfg.endpoint.clone())
        else {
            return Err(missing(format!(
                "no control-plane endpoint: set spec.controlPlaneEndpoint of Cluster {}",
                self.cfg.cluster_id
            )));
        };
        if let Err(message) = self.check_endpoint(&endpoint) {
            self.set_status(|s| {
                s.phase = ClusterPhase::Error;
                s.authenticated = Some((false, "RegistrationFailed", message.clone()));
                s.connected = (false, "CredentialMissing", message);
            });
            return Err(Some(Duration::from_secs(10)));
        }
        let Some(token_ref) = spec.registration_token_secret_ref.clone() else {
            return Err(missing(format!(
                "no credentials Secret {CREDENTIALS_SECRET} and no spec.registrationTokenSecretRef on Cluster {} to \
                 register with",
                self.cfg.cluster_id
            )));
        };
        let key = token_ref
            .key
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_KEY.into());
        let reg_secret = self.secrets().get_opt(&token_ref.name).await.map_err(|e| {
            warn!(error = %e, "Pull mode: reading the registration token Secret");
            None
        })?;
        let Some(registration_token) = reg_secret
            .as_ref()
            .and_then(|s| secret_data(s).get(&key).cloned())
            .filter(|t| !t.is_empty())
        else {
            return Err(missing(format!(
                "Secret {}/{} has no key {key:?} (the registration token)",
                self.cfg.namespace, token_ref.name
            )));
        };
        self.set_status(|s| s.phase = ClusterPhase::Registering);
        let client = self.client(&endpoint).map_err(|e| {
            warn!(error = %e, "Pull mode: HTTP client");
            None
        })?;
        match client
            .register(registration_token.trim(), &self.cfg.cluster_id, None)
            .await
        {
            Ok(r) => {
                if r.cluster_id != self.cfg.cluster_id {
                    let message = format!(
                        "the control plane registered this cluster as {:?}, but the operator runs as {:?}",
                        r.cluster_id, self.cfg.cluster_id
                    );
                    self.set_status(|s| {
                        s.phase = ClusterPhase::Error;
                        s.authenticated = Some((false, "RegistrationFailed", message.clone()));
                    });
                    return Err(Some(Duration::from_secs(30)));
                }
                let now = Timestamp::now().to_string();
                let pkey = new_provenance_key();
                let written = self
                    .secrets()
                    .patch(
                        CREDENTIALS_SECRET,
                        &PatchParams::apply(crate::api::FIELD_MANAGER).force(),
                        &Patch::Apply(json!({
                            "apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": CREDENTIALS_SECRET, "labels": {"app.kubernetes.io/managed-by": "vworkspace-operator"}},
                            "type": "Opaque",
                            "stringData": {
                                "control-plane-base-url": endpoint.trim_end_matches('/'),
                                "cluster-id": r.cluster_id,
                                "token": r.token,
                                "registered-at": now,
                                "provenance-key": pkey,
                            },
                        })),
                    )
                    .await;
                if let Err(e) = written {
                    warn!(error = %e, "Pull mode: storing the credential");
                    return Err(None);
                }
                *self
                    .provenance_key
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(pkey.into_bytes());
                info!(cluster = %self.cfg.cluster_id, "Pull mode: registered with the control plane");
                self.use_token(endpoint.trim_end_matches('/'), &r.token, Some(now))
                    .await;
                self.set_status(|s| {
                    s.registration_token_consumed = true;
                    s.authenticated = Some((
                        true,
                        "RegistrationComplete",
                        "registered with the control plane".into(),
                    ));
                });
                Ok(())
            }
            Err(e) => {
                let transient = e.transient();
                let message = format!("registration failed: {e}");
                self.set_status(|s| {
                    s.phase = if transient {
                        ClusterPhase::Disconnected
                    } else {
                        ClusterPhase::Error
                    };
                    s.authenticated = Some((false, "RegistrationFailed", message.clone()));
                    if transient {
                        s.connected = (
                            false,
                            crate::api::conditions::reasons::CONTROL_PLANE_UNREACHABLE,
                            message,
                        );
                    }
                });
                match e {
                    ApiError::TooManyRequests(d) => Err(d),
                    _ if transient => Err(None),
                    // Refused: wait for the registration Secret to change.
                    _ => Err(Some(Duration::from_secs(10))),
                }
            }
        }
    }

    /// Re-read the credentials Secret; whether it holds another token than the one in use.
    async fn reread(&self) -> bool {
        let before = self.token();
        if self.ensure_credentials().await.is_err() {
            return false;
        }
        self.token() != before
    }

    /// Rotate when the Cluster asks (spec flag, once per generation; or a new annotation value).
    async fn maybe_rotate(&self) {
        let Ok(Some(cluster)) = self.cluster().await else {
            return;
        };
        let Ok(Some(secret)) = self.secrets().get_opt(CREDENTIALS_SECRET).await else {
            return;
        };
        let data = secret_data(&secret);
        let generation = cluster.metadata.generation.unwrap_or_default().to_string();
        let by_spec = cluster.spec.rotate_credentials == Some(true)
            && data.get("rotated-generation") != Some(&generation);
        let annotation = cluster.annotations().get(ROTATE_ANNOTATION).cloned();
        let by_annotation = annotation
            .as_ref()
            .is_some_and(|a| !a.is_empty() && data.get("rotated-annotation") != Some(a));
        if !by_spec && !by_annotation {
            return;
        }
        let Some(creds) = self.token() else { return };
        let Ok(client) = self.client(&creds.base) else {
            return;
        };
        match client.rotate(&creds.token).await {
            Ok(r) => {
                let now = Timestamp::now().to_string();
                let mut data = json!({"token": r.token, "registered-at": now});
                if by_spec {
                    data["rotated-generation"] = json!(generation);
                }
                if let Some(a) = annotation.filter(|_| by_annotation) {
                    data["rotated-annotation"] = json!(a);
                }
                let written = self
                    .secrets()
                    .patch(
                        CREDENTIALS_SECRET,
                        &PatchParams::apply(crate::api::FIELD_MANAGER).force(),
                        &Patch::Apply(json!({
                            "apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": CREDENTIALS_SECRET},
                            "stringData": data,
                        })),
                    )
                    .await;
                // The old token is invalid from now on: use the new one even if storing it failed.
                self.use_token(&creds.base, &r.token, Some(now)).await;
                match written {
                    Ok(_) => {
                        info!("Pull mode: credential rotated");
                        self.set_status(|s| {
                            s.authenticated = Some((
                                true,
                                "CredentialRotated",
                                "the control-plane credential was rotated".into(),
                            ));
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "Pull mode: storing the rotated credential");
                        self.set_status(|s| {
                            s.authenticated = Some((
                                true,
                                "RotationFailed",
                                format!(
                                    "rotated, but the new credential could not be stored ({e}); it is held in memory"
                                ),
                            ));
                        });
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "Pull mode: credential rotation");
                self.set_status(|s| {
                    s.authenticated =
                        Some((false, "RotationFailed", format!("rotation failed: {e}")));
                });
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // The long poll

    async fn poll_loop(self: &Arc<Self>) {
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
                    let wait = self.backoff(failures);
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
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The control plane refused the credential (401 after the retry, or 403): say so and stop polling until it
    /// changes.
    async fn refused(&self, message: String) {
        warn!("{message}");
        self.set_status(|s| {
            s.phase = ClusterPhase::Disconnected;
            s.authenticated = Some((false, "ControlPlaneAuthenticationFailed", message.clone()));
            s.connected = (false, "CredentialMissing", message);
        });
        self.wait_for_new_credential().await;
    }

    /// Wait until the credentials Secret holds another token (or is gone, then register again).
    async fn wait_for_new_credential(&self) {
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
    async fn accept(
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
    fn dispatch(self: &Arc<Self>, j: Job) {
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

    // ---------------------------------------------------------------------------------------------------
    // One job

    async fn run_job(self: &Arc<Self>, j: Job) {
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
        let (outcome, error) = match super::admit::admit(&j, &keys, &self.cfg.cluster_id, now) {
            super::admit::Admission::Accept { action, signer } => {
                match self.prepare(&j, action, &signer) {
                    Ok(action) => {
                        self.take_on(&j, &replay_key, action, now).await;
                        return;
                    }
                    Err(e) => (Outcome::Failed, e.to_string()),
                }
            }
            super::admit::Admission::Noop(error) => (Outcome::Noop, error),
            super::admit::Admission::Refuse { error, refusal } => {
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
    async fn take_on(self: &Arc<Self>, j: &Job, replay_key: &str, action: Action, now: Timestamp) {
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
    fn prepare(&self, j: &Job, action: Action, signer: &str) -> Result<Action, job::JobError> {
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
    async fn execute(
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

    async fn apply(&self, obj: &Value) -> Result<Value, String> {
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
    async fn delete(&self, key: &ObjectKey) -> Result<(), String> {
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

    /// Follow an applied object to its outcome: intents through their conditions (from the controllers' stores),
    /// anything else is done once applied.
    async fn follow(
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
            tokio::time::sleep(self.cfg.follow_interval).await;
        }
    }

    fn intent_state(
        &self,
        key: &ObjectKey,
        uid: Option<&str>,
        generation: Option<i64>,
    ) -> IntentState {
        let Some((apps, ops)) = self.stores.get() else {
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
    async fn resume(self: Arc<Self>, replay_key: String, entry: Entry) {
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

    // ---------------------------------------------------------------------------------------------------
    // Reporting

    /// Record the outcome durably, then post it until the control plane has it.
    async fn decide(
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

    async fn post_result(&self, replay_key: &str, entry: &Entry) {
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
    async fn send_result_once(&self, id: &str, result: &JobResult) {
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
                    tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
                }
            }
        }
    }

    async fn ack(&self, id: &str) {
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
    async fn post_status(
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
    fn audit(&self, j: &Job, reason: &str, message: &str) {
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
        // One audit kind for every refusal (CONNECTIVITY.md); the precise reason is the condition's.
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
    async fn save(&self) {
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

enum IntentState {
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

fn cond<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
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
        Some(r) if r.reason == crate::api::conditions::reasons::HELM_RELEASE_FAILED => {
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

fn is_intent(key: &ObjectKey) -> bool {
    matches!(
        (key.api_version.as_str(), key.kind.as_str()),
        ("apps.vworkspace.io/v1alpha1", "ApplicationInstance")
            | ("ops.vworkspace.io/v1alpha1", "Operation")
    )
}

/// The typed spec of an intent payload (what provenance digests), `None` for other kinds.
fn typed_spec(key: &ObjectKey, obj: &Value) -> Result<Option<Value>, String> {
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

fn string_maps(obj: &Value) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
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

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// 32 random bytes, base64: the HMAC key of provenance stamps.
fn new_provenance_key() -> String {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Write a file only the operator reads (0600), replacing it atomically.
async fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, data)?;
    }
    tokio::fs::rename(&tmp, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn token_fingerprints_are_16_hex_digits() {
        assert_eq!(fingerprint("t").len(), 16);
        assert_ne!(fingerprint("t"), fingerprint("u"));
    }
}
