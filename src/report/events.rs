//! The control-plane event post (API.md, "Control-plane events"; docs/events.md).
//!
//! `POST {endpoint}/api/agent/events` with `Authorization: Bearer <token>`, `Content-Type` and `Accept`
//! `application/vnd.vworkspace.agent.v1+json`, body `{"events":[…]}`, 204 expected, and Standard Webhooks
//! signature headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) when a signing key is set.
//!
//! The pure part builds events: [`condition_transitions`] (one `ConditionTransition` per changed condition),
//! [`snapshot_events`], [`audit_event`], [`heartbeat_event`], and signs bodies ([`SigningKey`]).
//! The I/O part is [`EventPoster`]: a bounded buffer (1000 by default; overflow drops the oldest event and sets
//! `BufferOverflow=True/EventBufferFull` until the buffer drains), a worker that flushes every second or at 100
//! events, re-sends the condition snapshot of every owned object first after an outage, and handles errors:
//! 401 → re-read the token (and key) files and retry once, then `Authenticated=False/CredentialRejected`;
//! 403 → drop the batch, no retry; 409 → delivered; 429 → wait for `Retry-After`; 5xx and connection errors
//! → exponential backoff with jitter, never more than one attempt per second.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::api::Endpoint;
use crate::api::conditions::Cond;
use crate::api::conditions::{reasons, types};
use crate::metrics::{Connectivity, DropReason, EventMetrics, PostResult};
use crate::secrets::redact_text;

/// Media type of requests and accepted responses.
pub const MEDIA_TYPE: &str = "application/vnd.vworkspace.agent.v1+json";
/// Path of the events endpoint below the control-plane base URL.
pub const EVENTS_PATH: &str = "/api/agent/events";
/// Standard Webhooks header: the message id (the same for retries of the same body).
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks header: seconds since the Unix epoch when the request was signed.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks header: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Prefix of a Standard Webhooks secret (`whsec_<base64 key>`).
pub const WHSEC_PREFIX: &str = "whsec_";

/// Flush a non-empty buffer once its oldest event has waited this long.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Flush as soon as this many events are buffered; also the largest batch.
pub const DEFAULT_MAX_BATCH: usize = 100;
/// Buffer capacity; beyond it the oldest event is dropped.
pub const DEFAULT_BUFFER_CAPACITY: usize = 1000;
/// Failed attempts are never retried faster than this.
pub const MIN_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Upper bound of the exponential backoff.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A `Retry-After` longer than this is cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Per-request timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After this many consecutive failed attempts the connectivity metric says disconnected (-1) rather
/// than reconnecting (0).
pub const DISCONNECTED_AFTER_FAILURES: u32 = 3;
/// Largest part of an error response body quoted in messages.
const MAX_QUOTED_BODY: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("control-plane endpoint {endpoint:?} is not usable: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("cannot read the control-plane {what} file {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the control-plane {what} file {path} is not usable: {reason}")]
    BadFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("event poster configuration: {0}")]
    Config(String),
    #[error("cannot build the HTTP client for the control plane: {0}")]
    HttpClient(String),
}

// ---------------------------------------------------------------------------------------------------------
// Wire format

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

fn or_placeholder(s: &str) -> &str {
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

fn condition_event(
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

// ---------------------------------------------------------------------------------------------------------
// Signing (Standard Webhooks)

type HmacSha256 = Hmac<Sha256>;

/// The request-signing key.
///
/// Read from a file: content starting with `whsec_` is a Standard Webhooks secret and the key is the base64
/// text after the prefix (surrounding whitespace ignored); any other content is the key itself, raw bytes,
/// minus one trailing newline (LF or CRLF).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    pub fn parse(content: &[u8]) -> Result<Self, String> {
        let trimmed = content.trim_ascii();
        let key = if let Some(b64) = trimmed.strip_prefix(WHSEC_PREFIX.as_bytes()) {
            STANDARD
                .decode(b64)
                .map_err(|_| "the text after \"whsec_\" is not base64".to_string())?
        } else {
            let raw = content
                .strip_suffix(b"\r\n")
                .or_else(|| content.strip_suffix(b"\n"))
                .unwrap_or(content);
            raw.to_vec()
        };
        if key.is_empty() {
            return Err("the key is empty".into());
        }
        Ok(Self(key))
    }

    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// `v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length; new_from_slice cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The message id of a body: `msg_` + the first 32 hex digits of its SHA-256. A retry of the same batch
/// sends the same body and so the same id.
pub fn message_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("msg_{}", &hex::encode(digest)[..32])
}

// ---------------------------------------------------------------------------------------------------------
// State exposed to the controller

/// What the Cluster conditions are computed from. Changes only when a condition would change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PosterState {
    /// The endpoint (without credentials), for messages.
    pub endpoint: String,
    /// Whether the last request got an HTTP answer other than a 5xx; `None` before the first attempt.
    pub reachable: Option<bool>,
    /// Why the control plane is unreachable (redacted).
    pub unreachable_reason: String,
    /// Whether the credentials were accepted; `None` before the first answer.
    pub authenticated: Option<bool>,
    /// Why the credentials were rejected (redacted).
    pub rejection_reason: String,
    /// Events were dropped because the buffer was full, and it has not drained since.
    pub overflow: bool,
    pub buffer_capacity: usize,
}

impl PosterState {
    /// `Connected` as far as the control plane is concerned (`None` before the first attempt). The
    /// controller combines it with the repo's reachability.
    pub fn connected_condition(&self) -> Option<Cond> {
        Some(match self.reachable? {
            true => Cond::new(
                types::CONNECTED,
                "True",
                reasons::ROUND_TRIP_OK,
                format!("control plane {} reachable", self.endpoint),
            ),
            false => Cond::new(
                types::CONNECTED,
                "False",
                reasons::CONTROL_PLANE_UNREACHABLE,
                format!(
                    "control plane {} unreachable: {}; events are buffered and retried",
                    self.endpoint, self.unreachable_reason
                ),
            ),
        })
    }

    /// `Authenticated` (`None` before the control plane answered).
    pub fn authenticated_condition(&self) -> Option<Cond> {
        Some(match self.authenticated? {
            true => Cond::new(
                types::AUTHENTICATED,
                "True",
                reasons::CREDENTIAL_ACCEPTED,
                "the control plane accepted the operator's token",
            ),
            false => Cond::new(
                types::AUTHENTICATED,
                "False",
                reasons::CREDENTIAL_REJECTED,
                self.rejection_reason.clone(),
            ),
        })
    }

    /// `BufferOverflow`.
    pub fn buffer_overflow_condition(&self) -> Cond {
        if self.overflow {
            Cond::new(
                types::BUFFER_OVERFLOW,
                "True",
                reasons::EVENT_BUFFER_FULL,
                format!(
                    "the event buffer (capacity {}) was full and its oldest events were dropped; the current \
                     state of every object is re-sent once delivery resumes",
                    self.buffer_capacity
                ),
            )
        } else {
            Cond::new(
                types::BUFFER_OVERFLOW,
                "False",
                reasons::BUFFER_DRAINED,
                "no events are being dropped",
            )
        }
    }

    /// The conditions the poster knows: Connected and Authenticated once known, BufferOverflow always.
    pub fn conditions(&self) -> Vec<Cond> {
        let mut out: Vec<Cond> = [self.connected_condition(), self.authenticated_condition()]
            .into_iter()
            .flatten()
            .collect();
        out.push(self.buffer_overflow_condition());
        out
    }
}

/// Counters, for tests and diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PosterStats {
    pub buffered: usize,
    pub delivered: u64,
    pub dropped_overflow: u64,
    pub dropped_rejected: u64,
    pub requests: u64,
    pub consecutive_failures: u32,
}

// ---------------------------------------------------------------------------------------------------------
// The poster

/// Every owned object with its current conditions; the controller implements it (from its reflector stores).
/// Called after an outage, before buffered events are sent again, and at start (see
/// [`PosterConfig::snapshot_on_start`]). Must be quick: it runs on the poster's task.
pub trait SnapshotSource: Send + Sync + 'static {
    fn snapshot(&self) -> Vec<ObjectSnapshot>;
}

impl<F> SnapshotSource for F
where
    F: Fn() -> Vec<ObjectSnapshot> + Send + Sync + 'static,
{
    fn snapshot(&self) -> Vec<ObjectSnapshot> {
        self()
    }
}

/// Configuration of the event poster (flags `--control-plane-endpoint`, `--control-plane-token-file`,
/// `--control-plane-hmac-key-file`; the rest are the API.md defaults).
#[derive(Clone, Debug)]
pub struct PosterConfig {
    /// Base URL of the control plane (`https://…`; `http://` is accepted for tests and in-cluster
    /// receivers). Must not embed credentials.
    pub endpoint: String,
    /// File holding the bearer token (re-read on 401).
    pub token_file: PathBuf,
    /// File holding the signing key (see [`SigningKey`]); unsigned requests when `None`.
    pub signing_key_file: Option<PathBuf>,
    /// The cluster id (for heartbeats).
    pub cluster_id: String,
    pub flush_interval: Duration,
    pub max_batch: usize,
    pub buffer_capacity: usize,
    /// Upper bound of the exponential backoff (at least [`MIN_RETRY_INTERVAL`]).
    pub max_backoff: Duration,
    pub request_timeout: Duration,
    /// Send a `ClusterHeartbeat` when nothing was delivered for this long.
    pub heartbeat_interval: Option<Duration>,
    /// Send the snapshot before anything else at start (the operator may have missed transitions while it
    /// was down). The operator turns this off and calls [`EventPoster::request_snapshot`] once its caches have
    /// synced: a snapshot read from empty stores sends nothing (issue #17's fault test found the lost events).
    pub snapshot_on_start: bool,
}

impl PosterConfig {
    pub fn new(
        endpoint: impl Into<String>,
        token_file: impl Into<PathBuf>,
        cluster_id: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            token_file: token_file.into(),
            signing_key_file: None,
            cluster_id: cluster_id.into(),
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_batch: DEFAULT_MAX_BATCH,
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            max_backoff: DEFAULT_MAX_BACKOFF,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            heartbeat_interval: Some(Duration::from_secs(60)),
            snapshot_on_start: true,
        }
    }
}

/// The events URL and a credential-free rendering of the endpoint for messages.
fn events_url(endpoint: &str) -> Result<(reqwest::Url, String), EventError> {
    let invalid = |reason: &str| EventError::InvalidEndpoint {
        endpoint: redact_text(endpoint),
        reason: reason.to_string(),
    };
    let url = reqwest::Url::parse(endpoint.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("the scheme must be https (or http)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EventError::InvalidEndpoint {
            endpoint: "(not shown: it embeds credentials)".into(),
            reason: "credentials belong in the token file, not in the URL".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| invalid("the URL has no host"))?;
    let base = url.path().trim_end_matches('/');
    let shown = match url.port() {
        Some(port) => format!("{}://{host}:{port}{base}", url.scheme()),
        None => format!("{}://{host}{base}", url.scheme()),
    };
    let mut events = url.clone();
    events.set_path(&format!("{base}{EVENTS_PATH}"));
    Ok((events, shown))
}

/// Token and signing key, read from their files.
struct Credentials {
    token_file: PathBuf,
    key_file: Option<PathBuf>,
    authorization: HeaderValue,
    key: Option<SigningKey>,
}

impl Credentials {
    async fn load(token_file: &Path, key_file: Option<&Path>) -> Result<Self, EventError> {
        let token = tokio::fs::read(token_file)
            .await
            .map_err(|source| EventError::ReadFile {
                what: "token",
                path: token_file.to_path_buf(),
                source,
            })?;
        let bad = |reason: &str| EventError::BadFile {
            what: "token",
            path: token_file.to_path_buf(),
            reason: reason.into(),
        };
        let token = std::str::from_utf8(&token)
            .map_err(|_| bad("it is not UTF-8 text"))?
            .trim();
        if token.is_empty() {
            return Err(bad("it is empty"));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| bad("the token has characters not allowed in an HTTP header"))?;
        authorization.set_sensitive(true);
        let key = match key_file {
            None => None,
            Some(path) => {
                let content =
                    tokio::fs::read(path)
                        .await
                        .map_err(|source| EventError::ReadFile {
                            what: "signing key",
                            path: path.to_path_buf(),
                            source,
                        })?;
                Some(
                    SigningKey::parse(&content).map_err(|reason| EventError::BadFile {
                        what: "signing key",
                        path: path.to_path_buf(),
                        reason,
                    })?,
                )
            }
        };
        Ok(Self {
            token_file: token_file.to_path_buf(),
            key_file: key_file.map(Path::to_path_buf),
            authorization,
            key,
        })
    }

    async fn reload(&mut self) -> Result<(), EventError> {
        *self = Self::load(&self.token_file, self.key_file.as_deref()).await?;
        Ok(())
    }
}

struct Queued {
    seq: u64,
    since: Instant,
    event: Event,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Queued>,
    next_seq: u64,
    needs_snapshot: bool,
    stats: PosterStats,
}

struct Shared {
    config: PosterConfig,
    inner: Mutex<Inner>,
    wake: Notify,
    state: watch::Sender<PosterState>,
    stop: watch::Sender<bool>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    metrics: Option<EventMetrics>,
}

impl Shared {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves Inner consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update_state(&self, f: impl FnOnce(&mut PosterState)) {
        self.state.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    fn occupancy(&self, n: usize) {
        if let Some(m) = &self.metrics {
            m.set_occupancy(n);
        }
    }
}

/// The event poster: submit events, read the state for the Cluster conditions. Cheap to clone.
#[derive(Clone)]
pub struct EventPoster {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EventPoster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPoster")
            .field("endpoint", &self.shared.state.borrow().endpoint)
            .finish_non_exhaustive()
    }
}

/// The outcome of one POST (after the 401 refresh).
enum Outcome {
    Delivered,
    Conflict,
    Unauthorized(String),
    Forbidden(String),
    Rejected(String),
    RateLimited(Option<Duration>),
    ServerError(String),
    Unreachable(String),
}

impl EventPoster {
    /// Validate the configuration, read the credentials and start the worker on the current tokio runtime.
    /// Call [`crate::report::install_crypto_provider`] first when the endpoint is https.
    pub async fn start(
        mut config: PosterConfig,
        snapshot: Arc<dyn SnapshotSource>,
        metrics: Option<EventMetrics>,
    ) -> Result<Self, EventError> {
        let (url, shown) = events_url(&config.endpoint)?;
        if config.max_batch == 0 {
            return Err(EventError::Config(
                "the batch size must be at least 1".into(),
            ));
        }
        if config.buffer_capacity < config.max_batch {
            return Err(EventError::Config(format!(
                "the buffer capacity ({}) must be at least the batch size ({})",
                config.buffer_capacity, config.max_batch
            )));
        }
        if config.flush_interval.is_zero() {
            return Err(EventError::Config(
                "the flush interval must be positive".into(),
            ));
        }
        config.max_backoff = config.max_backoff.max(MIN_RETRY_INTERVAL);
        if let Some(hb) = config.heartbeat_interval {
            config.heartbeat_interval = Some(hb.max(MIN_RETRY_INTERVAL));
        }
        let credentials =
            Credentials::load(&config.token_file, config.signing_key_file.as_deref()).await?;
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vworkspace-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EventError::HttpClient(e.without_url().to_string()))?;
        let state = PosterState {
            endpoint: shown,
            buffer_capacity: config.buffer_capacity,
            ..PosterState::default()
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                needs_snapshot: config.snapshot_on_start,
                ..Inner::default()
            }),
            config,
            wake: Notify::new(),
            state: watch::channel(state).0,
            stop: watch::channel(false).0,
            worker: Mutex::new(None),
            metrics,
        });
        if let Some(m) = &shared.metrics {
            m.set_occupancy(0);
            m.set_connectivity(Connectivity::Reconnecting);
        }
        let worker = Worker {
            shared: shared.clone(),
            client,
            url,
            credentials,
            snapshot,
            failures: 0,
            last_contact: Instant::now(),
        };
        let handle = tokio::spawn(worker.run());
        *shared.worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(Self { shared })
    }

    /// Queue one event (redacted). When the buffer is full the oldest event is dropped.
    pub fn submit(&self, event: Event) {
        self.submit_all(std::iter::once(event));
    }

    /// Queue events in order (redacted). When the buffer is full the oldest events are dropped.
    pub fn submit_all(&self, events: impl IntoIterator<Item = Event>) {
        let capacity = self.shared.config.buffer_capacity;
        let (len, dropped) = {
            let mut inner = self.shared.inner();
            let mut dropped = 0usize;
            for event in events {
                if inner.queue.len() >= capacity {
                    inner.queue.pop_front();
                    dropped += 1;
                }
                let seq = inner.next_seq;
                inner.next_seq += 1;
                inner.queue.push_back(Queued {
                    seq,
                    since: Instant::now(),
                    event: event.redacted(),
                });
            }
            if dropped > 0 {
                inner.stats.dropped_overflow += dropped as u64;
                inner.needs_snapshot = true;
            }
            inner.stats.buffered = inner.queue.len();
            (inner.queue.len(), dropped)
        };
        if dropped > 0 {
            tracing::warn!(
                dropped,
                capacity,
                "event buffer full: dropped the oldest events"
            );
            if let Some(m) = &self.shared.metrics {
                m.dropped(DropReason::Overflow, dropped);
            }
            self.shared.update_state(|s| s.overflow = true);
        }
        self.shared.occupancy(len);
        self.shared.wake.notify_one();
    }

    /// Re-send the snapshot before the next buffered events (e.g. once the controller's caches synced).
    pub fn request_snapshot(&self) {
        self.shared.inner().needs_snapshot = true;
        self.shared.wake.notify_one();
    }

    /// The state the Cluster conditions are computed from.
    pub fn state(&self) -> PosterState {
        self.shared.state.borrow().clone()
    }

    /// Notified whenever [`Self::state`] changes (to trigger a Cluster reconcile).
    pub fn subscribe(&self) -> watch::Receiver<PosterState> {
        self.shared.state.subscribe()
    }

    pub fn stats(&self) -> PosterStats {
        self.shared.inner().stats.clone()
    }

    /// Stop: one last attempt to deliver what is buffered (stops at the first failure), then end the worker.
    pub async fn shutdown(&self) {
        self.shared.stop.send_replace(true);
        let handle = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

/// What the worker does next.
enum Action {
    Snapshot,
    Batch,
    Heartbeat,
    WaitUntil(Option<Instant>),
}

struct Worker {
    shared: Arc<Shared>,
    client: reqwest::Client,
    url: reqwest::Url,
    credentials: Credentials,
    snapshot: Arc<dyn SnapshotSource>,
    failures: u32,
    last_contact: Instant,
}

impl Worker {
    async fn run(mut self) {
        let mut stop = self.shared.stop.subscribe();
        let mut retry_at: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                self.final_flush().await;
                return;
            }
            if let Some(at) = retry_at {
                if at > Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                retry_at = None;
            }
            let result = match self.next_action() {
                Action::WaitUntil(at) => {
                    let sleep = async {
                        match at {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = sleep => {}
                        _ = self.shared.wake.notified() => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                Action::Snapshot => self.send_snapshot().await,
                Action::Batch => self.send_buffered().await,
                Action::Heartbeat => {
                    let cluster = ResourceRef::cluster(&self.shared.config.cluster_id, "", 0);
                    let hb = heartbeat_event(&cluster, Timestamp::now());
                    match self.send(&[hb]).await.retry_after {
                        Some(delay) => Err(delay),
                        None => Ok(()),
                    }
                }
            };
            if let Err(delay) = result {
                retry_at = Some(Instant::now() + delay);
            }
        }
    }

    fn next_action(&self) -> Action {
        let config = &self.shared.config;
        let inner = self.shared.inner();
        if inner.needs_snapshot {
            return Action::Snapshot;
        }
        let now = Instant::now();
        if let Some(oldest) = inner.queue.front() {
            let flush_at = oldest.since + config.flush_interval;
            if inner.queue.len() >= config.max_batch || flush_at <= now {
                return Action::Batch;
            }
            return Action::WaitUntil(Some(flush_at));
        }
        match config.heartbeat_interval.map(|i| self.last_contact + i) {
            Some(at) if at <= now => Action::Heartbeat,
            at => Action::WaitUntil(at),
        }
    }

    /// Send the snapshot in batches. On failure the snapshot stays pending and is sent whole next time.
    async fn send_snapshot(&mut self) -> Result<(), Duration> {
        self.shared.inner().needs_snapshot = false;
        let now = Timestamp::now();
        let events: Vec<Event> = self
            .snapshot
            .snapshot()
            .iter()
            .flat_map(|s| snapshot_events(s, now))
            .collect();
        tracing::info!(events = events.len(), "re-sending the condition snapshot");
        for chunk in events.chunks(self.shared.config.max_batch) {
            let sent = self.send(chunk).await;
            if !sent.done {
                self.shared.inner().needs_snapshot = true;
            }
            if let Some(delay) = sent.retry_after {
                // Not delivered (sent whole again later) or refused (the rest is abandoned).
                return Err(delay);
            }
        }
        Ok(())
    }

    /// Send the oldest batch of the buffer; remove it when delivered or refused for good.
    async fn send_buffered(&mut self) -> Result<(), Duration> {
        let max_batch = self.shared.config.max_batch;
        let (batch, last_seq) = {
            let inner = self.shared.inner();
            let batch: Vec<Event> = inner
                .queue
                .iter()
                .take(max_batch)
                .map(|q| q.event.clone())
                .collect();
            let last_seq = batch
                .len()
                .checked_sub(1)
                .and_then(|i| inner.queue.get(i))
                .map(|q| q.seq);
            (batch, last_seq)
        };
        let Some(last_seq) = last_seq else {
            return Ok(());
        };
        let sent = self.send(&batch).await;
        if sent.done {
            let len = {
                let mut inner = self.shared.inner();
                // Overflow may have dropped some of this batch meanwhile: remove by sequence number.
                while inner.queue.front().is_some_and(|q| q.seq <= last_seq) {
                    inner.queue.pop_front();
                }
                if sent.dropped {
                    inner.stats.dropped_rejected += batch.len() as u64;
                } else {
                    inner.stats.delivered += batch.len() as u64;
                }
                inner.stats.buffered = inner.queue.len();
                inner.queue.len()
            };
            if sent.dropped
                && let Some(m) = &self.shared.metrics
            {
                m.dropped(DropReason::Rejected, batch.len());
            }
            self.shared.occupancy(len);
            if len == 0 {
                self.shared.update_state(|s| s.overflow = false);
            }
        }
        match sent.retry_after {
            Some(delay) => Err(delay),
            None => Ok(()),
        }
    }

    /// Final delivery attempt at shutdown: batches until the buffer is empty or one is not delivered.
    async fn final_flush(&mut self) {
        loop {
            if self.shared.inner().queue.is_empty() {
                return;
            }
            if self.send_buffered().await.is_err() {
                let left = self.shared.inner().queue.len();
                tracing::warn!(
                    left,
                    "shutting down with undelivered events; the snapshot re-sent after the next start covers them"
                );
                return;
            }
        }
    }

    /// The delay before the next attempt after `failures` consecutive failures: exponential from
    /// [`MIN_RETRY_INTERVAL`], capped, with equal jitter, and never below the minimum.
    fn backoff(&self) -> Duration {
        backoff_delay(
            self.failures,
            self.shared.config.max_backoff,
            fastrand::f64(),
        )
    }

    /// POST one batch (with the 401 refresh) and record the outcome in the state and metrics.
    async fn send(&mut self, events: &[Event]) -> Sent {
        let body = match serde_json::to_vec(&EventBatch {
            events: events.to_vec(),
        }) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an event batch; dropping it");
                return Sent {
                    done: true,
                    dropped: true,
                    retry_after: None,
                };
            }
        };
        let mut outcome = self.post(&body).await;
        if let Outcome::Unauthorized(_) = outcome {
            // Refresh once: the token (or key) may have been rotated under us.
            match self.credentials.reload().await {
                Ok(()) => outcome = self.post(&body).await,
                Err(e) => outcome = Outcome::Unauthorized(e.to_string()),
            }
        }
        self.record(outcome, events.len())
    }

    async fn post(&mut self, body: &[u8]) -> Outcome {
        self.shared.inner().stats.requests += 1;
        let mut request = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.credentials.authorization.clone())
            .header(CONTENT_TYPE, MEDIA_TYPE)
            .header(ACCEPT, MEDIA_TYPE);
        if let Some(key) = &self.credentials.key {
            let id = message_id(body);
            let ts = unix_now();
            let signature = key.sign(&id, ts, body);
            request = request
                .header(WEBHOOK_ID, id)
                .header(WEBHOOK_TIMESTAMP, ts.to_string())
                .header(WEBHOOK_SIGNATURE, signature);
        }
        let response = match request.body(body.to_vec()).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Unreachable(describe_transport_error(e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Timestamp::now()));
        if status.is_success() {
            return Outcome::Delivered;
        }
        let code = status.as_u16();
        let detail = format!("HTTP {code}{}", error_detail(response).await);
        match code {
            409 => Outcome::Conflict,
            401 => Outcome::Unauthorized(detail),
            403 => Outcome::Forbidden(detail),
            429 => Outcome::RateLimited(retry_after),
            408 | 425 | 500..=599 => Outcome::ServerError(detail),
            _ => Outcome::Rejected(detail),
        }
    }

    fn record(&mut self, outcome: Outcome, count: usize) -> Sent {
        let metrics = self.shared.metrics.clone();
        let post = |r: PostResult| {
            if let Some(m) = &metrics {
                m.post(r);
            }
        };
        let reached = |s: &mut PosterState| {
            s.reachable = Some(true);
            s.unreachable_reason.clear();
        };
        let conflict = matches!(outcome, Outcome::Conflict);
        let forbidden = matches!(outcome, Outcome::Forbidden(_));
        let server_error = matches!(outcome, Outcome::ServerError(_));
        let result = match outcome {
            Outcome::Delivered | Outcome::Conflict => {
                post(if conflict {
                    PostResult::Conflict
                } else {
                    PostResult::Delivered
                });
                if self.failures > 0 {
                    tracing::info!(
                        failures = self.failures,
                        "control plane reachable again; events delivered"
                    );
                }
                self.failures = 0;
                self.last_contact = Instant::now();
                self.shared.update_state(|s| {
                    reached(s);
                    s.authenticated = Some(true);
                    s.rejection_reason.clear();
                });
                Sent {
                    done: true,
                    dropped: false,
                    retry_after: None,
                }
            }
            Outcome::Unauthorized(detail) => {
                post(PostResult::Unauthorized);
                self.failures += 1;
                let reason = format!(
                    "the control plane rejected the token ({detail}) after it was re-read from {}",
                    self.credentials.token_file.display()
                );
                tracing::warn!(reason = %redact_text(&reason), "event post: credential rejected");
                self.shared.update_state(|s| {
                    reached(s);
                    s.authenticated = Some(false);
                    s.rejection_reason = redact_text(&reason);
                });
                Sent {
                    done: false,
                    dropped: false,
                    retry_after: Some(self.backoff()),
                }
            }
            Outcome::Forbidden(detail) | Outcome::Rejected(detail) => {
                post(if forbidden {
                    PostResult::Forbidden
                } else {
                    PostResult::Rejected
                });
                self.failures += 1;
                let reason = format!(
                    "the control plane refused a batch of {count} events ({detail}); they were dropped"
                );
                tracing::warn!(reason = %redact_text(&reason), "event post: batch refused");
                self.shared.update_state(|s| {
                    reached(s);
                    if forbidden {
                        s.authenticated = Some(false);
                        s.rejection_reason = redact_text(&reason);
                    }
                });
                Sent {
                    done: true,
                    dropped: true,
                    retry_after: Some(self.backoff()),
                }
            }
            Outcome::RateLimited(retry_after) => {
                post(PostResult::RateLimited);
                self.failures += 1;
                let delay = match retry_after {
                    Some(d) => d.clamp(MIN_RETRY_INTERVAL, MAX_RETRY_AFTER),
                    None => self.backoff(),
                };
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "event post rate limited (429)"
                );
                self.shared.update_state(reached);
                Sent {
                    done: false,
                    dropped: false,
                    retry_after: Some(delay),
                }
            }
            Outcome::ServerError(detail) | Outcome::Unreachable(detail) => {
                post(if server_error {
                    PostResult::ServerError
                } else {
                    PostResult::Unreachable
                });
                self.failures += 1;
                // Whatever happened meanwhile may be lost: re-send the current state first next time.
                self.shared.inner().needs_snapshot = true;
                let reason = redact_text(&detail);
                tracing::warn!(reason = %reason, failures = self.failures, "event post failed; retrying");
                self.shared.update_state(|s| {
                    s.reachable = Some(false);
                    s.unreachable_reason = reason;
                });
                Sent {
                    done: false,
                    dropped: false,
                    retry_after: Some(self.backoff()),
                }
            }
        };
        if let Some(m) = &self.shared.metrics {
            m.set_connectivity(match self.shared.state.borrow().reachable {
                Some(true) => Connectivity::Connected,
                _ if self.failures >= DISCONNECTED_AFTER_FAILURES => Connectivity::Disconnected,
                _ => Connectivity::Reconnecting,
            });
        }
        self.shared.inner().stats.consecutive_failures = self.failures;
        result
    }
}

/// What became of a batch.
struct Sent {
    /// Delivered or dropped: not to be sent again.
    done: bool,
    /// Refused for good (403 or another non-retryable 4xx).
    dropped: bool,
    /// Wait this long before the next attempt.
    retry_after: Option<Duration>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Exponential backoff with equal jitter: `e = min(1 s · 2^(failures-1), max)`, delay uniformly in
/// `[e/2, e]`, and never below [`MIN_RETRY_INTERVAL`]. `jitter` is in `[0, 1)`.
pub fn backoff_delay(failures: u32, max: Duration, jitter: f64) -> Duration {
    let max = max.max(MIN_RETRY_INTERVAL);
    let exp = MIN_RETRY_INTERVAL
        .checked_mul(1u32 << failures.saturating_sub(1).min(20))
        .unwrap_or(max)
        .min(max);
    let half = exp / 2;
    (half + half.mul_f64(jitter.clamp(0.0, 1.0))).max(MIN_RETRY_INTERVAL)
}

/// `Retry-After`: delay-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let secs = at.as_second() - now.as_second();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// A transport error without the URL (it is in the state already) and with its cause chain.
fn describe_transport_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    let e = e.without_url();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    let mut depth = 0;
    while let Some(cause) = source {
        if depth == 3 {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    redact_text(&text)
}

/// ` (code: message)` from an `{"error": …, "message": …}` body, else the start of the body; redacted and
/// cut short.
async fn error_detail(response: reqwest::Response) -> String {
    let mut response = response;
    let mut body = Vec::new();
    while body.len() < 4096 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    response_detail(&body)
}

/// The detail [`EventPoster`] quotes from an error response's body (the first 4 KiB or so of it): see
/// `error_detail`. Pure, and public for the fuzz target of control-plane responses (fuzz/).
pub fn response_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ApiError {
        #[serde(default)]
        error: String,
        #[serde(default)]
        message: String,
    }
    let text = match serde_json::from_slice::<ApiError>(body) {
        Ok(e) if !e.error.is_empty() || !e.message.is_empty() => [e.error, e.message]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        _ => String::from_utf8_lossy(body).trim().to_string(),
    };
    if text.is_empty() {
        return String::new();
    }
    let mut text = redact_text(&text);
    if text.len() > MAX_QUOTED_BODY {
        let mut end = MAX_QUOTED_BODY;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    format!(" ({text})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(3),
            last_transition_time: Time("2026-06-03T12:00:00Z".parse().unwrap()),
        }
    }

    fn app() -> ResourceRef {
        ResourceRef {
            api_version: "apps.vworkspace.io/v1alpha1".into(),
            kind: "ApplicationInstance".into(),
            namespace: "team-alpha".into(),
            name: "nextcloud".into(),
            uid: "0b6f-11".into(),
            generation: 3,
        }
    }

    fn now() -> Timestamp {
        "2026-06-03T12:00:01.5Z".parse().unwrap()
    }

    #[test]
    fn event_keys_follow_the_upstream_format() {
        assert_eq!(
            condition_event_key(&app(), "Ready", "True"),
            "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/team-alpha/nextcloud/0b6f-11/Ready/True@3"
        );
        let cluster = ResourceRef::cluster("eu-prod-1", "", 0);
        assert_eq!(
            condition_event_key(&cluster, "Connected", "False"),
            "condition/ops.vworkspace.io/v1alpha1/Cluster/_/eu-prod-1/_/Connected/False@0"
        );
        assert_eq!(
            heartbeat_event(&cluster, now()).event_key,
            "heartbeat/eu-prod-1/_@1780488001"
        );
        let audit = audit_event(
            "OperationSucceeded",
            &app(),
            vec![cond("Succeeded", "True", "EngineCompleted", "")],
            now(),
        );
        assert_eq!(audit.event_key, "OperationSucceeded/0b6f-11/Succeeded");
        assert_eq!(audit.kind, EventKind::Audit("OperationSucceeded".into()));
    }

    #[test]
    fn one_transition_per_changed_condition() {
        let old = vec![
            cond("Ready", "False", "Installing", "installing"),
            cond("Reconciling", "True", "HelmReleaseInstalling", ""),
            cond("Degraded", "False", "Recovered", ""),
            cond("Suspended", "False", "Active", ""),
        ];
        let mut new = vec![
            cond("Ready", "True", "HelmReleaseReady", "release ready"), // status
            cond("Reconciling", "True", "ChartSourceSyncing", ""),      // reason
            cond("Degraded", "False", "Recovered", "ok now"),           // message
            cond("Suspended", "False", "Active", ""),                   // unchanged
            cond("Blocked", "False", "Unblocked", ""),                  // new
        ];
        // A new lastTransitionTime or observedGeneration alone is not a transition.
        new[3].observed_generation = Some(4);
        new[3].last_transition_time = Time("2026-06-04T00:00:00Z".parse().unwrap());
        let endpoints = vec![Endpoint {
            name: "web".into(),
            url: "https://cloud.example.com".into(),
            type_: None,
            notes: None,
        }];
        let events = condition_transitions(&app(), &old, &new, &endpoints, now());
        let keys: Vec<&str> = events.iter().map(|e| e.event_key.as_str()).collect();
        let base = "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/team-alpha/nextcloud/0b6f-11";
        assert_eq!(
            keys,
            vec![
                format!("{base}/Ready/True@3"),
                format!("{base}/Reconciling/True@3"),
                format!("{base}/Degraded/False@3"),
                format!("{base}/Blocked/False@3"),
            ]
        );
        for e in &events {
            assert_eq!(e.kind, EventKind::ConditionTransition);
            assert_eq!(e.conditions.len(), 1);
            assert_eq!(e.timestamp, "2026-06-03T12:00:01.500Z");
            assert_eq!(
                e.endpoints.len(),
                usize::from(e.conditions[0].type_ == "Ready")
            );
        }
        assert!(condition_transitions(&app(), &new, &new, &endpoints, now()).is_empty());
        // Removing a condition is not a transition.
        assert!(condition_transitions(&app(), &new, &new[..2], &[], now()).is_empty());
    }

    #[test]
    fn the_wire_format_is_camel_case_with_full_conditions() {
        let e = condition_transitions(
            &app(),
            &[],
            &[cond(
                "Ready",
                "False",
                "HelmReleaseFailed",
                "install failed: password=hunter2",
            )],
            &[],
            now(),
        )
        .remove(0);
        let v = serde_json::to_value(EventBatch { events: vec![e] }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"events": [{
                "eventKey": "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/team-alpha/nextcloud/0b6f-11/Ready/False@3",
                "kind": "ConditionTransition",
                "resourceRef": {
                    "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                    "namespace": "team-alpha", "name": "nextcloud", "uid": "0b6f-11", "generation": 3
                },
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "HelmReleaseFailed",
                    "message": "install failed: password=[REDACTED]",
                    "observedGeneration": 3, "lastTransitionTime": "2026-06-03T12:00:00Z"
                }],
                "endpoints": [],
                "timestamp": "2026-06-03T12:00:01.500Z"
            }]})
        );
        let back: EventBatch = serde_json::from_value(v).unwrap();
        assert_eq!(back.events[0].kind, EventKind::ConditionTransition);
    }

    #[test]
    fn snapshots_reuse_the_transition_keys() {
        let snap = ObjectSnapshot {
            resource_ref: app(),
            conditions: vec![
                cond("Ready", "True", "HelmReleaseReady", ""),
                cond("Degraded", "False", "Recovered", ""),
            ],
            endpoints: vec![],
        };
        let events = snapshot_events(&snap, now());
        let from_scratch = condition_transitions(&app(), &[], &snap.conditions, &[], now());
        assert_eq!(events, from_scratch);
    }

    #[test]
    fn signing_matches_the_standard_webhooks_test_vector() {
        let key = SigningKey::parse(b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").unwrap();
        assert_eq!(
            key.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        // Raw keys: the bytes minus one trailing newline.
        assert_eq!(
            SigningKey::parse(b"raw key\n").unwrap(),
            SigningKey::from_bytes(b"raw key".to_vec())
        );
        assert_eq!(
            SigningKey::parse(b"raw key \r\n").unwrap(),
            SigningKey::from_bytes(b"raw key ".to_vec())
        );
        assert!(SigningKey::parse(b"whsec_***").is_err());
        assert!(SigningKey::parse(b"\n").is_err());
        assert_eq!(format!("{key:?}"), "SigningKey([REDACTED])");
        assert_eq!(message_id(b"{}"), message_id(b"{}"));
        assert_ne!(message_id(b"{}"), message_id(b"{ }"));
        assert!(message_id(b"{}").starts_with("msg_") && message_id(b"{}").len() == 36);
    }

    #[test]
    fn backoff_grows_with_jitter_and_never_below_a_second() {
        let max = Duration::from_secs(60);
        for jitter in [0.0, 0.5, 0.999] {
            assert_eq!(backoff_delay(1, max, jitter), Duration::from_secs(1));
            let d2 = backoff_delay(2, max, jitter);
            assert!(d2 >= Duration::from_secs(1) && d2 <= Duration::from_secs(2));
            let d4 = backoff_delay(4, max, jitter);
            assert!(d4 >= Duration::from_secs(4) && d4 <= Duration::from_secs(8));
            let big = backoff_delay(40, max, jitter);
            assert!(big >= Duration::from_secs(30) && big <= max);
            assert_eq!(
                backoff_delay(5, Duration::from_millis(10), jitter),
                Duration::from_secs(1)
            );
        }
        assert_ne!(backoff_delay(6, max, 0.0), backoff_delay(6, max, 0.9));
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now: Timestamp = "2026-06-03T12:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 03 Jun 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 03 Jun 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn endpoints_are_checked_and_shown_without_credentials() {
        let (url, shown) = events_url("https://cp.example.com/base/").unwrap();
        assert_eq!(url.as_str(), "https://cp.example.com/base/api/agent/events");
        assert_eq!(shown, "https://cp.example.com/base");
        let (url, _) = events_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/api/agent/events");
        let err = events_url("https://user:s3cret@cp.example.com")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(events_url("ftp://cp.example.com").is_err());
        assert!(events_url("https://cp.example.com/?token=x").is_err());
        assert!(events_url("not a url").is_err());
    }

    #[test]
    fn conditions_for_the_cluster() {
        let mut s = PosterState {
            endpoint: "https://cp.example.com".into(),
            buffer_capacity: 1000,
            ..PosterState::default()
        };
        let summary = |s: &PosterState| -> Vec<(String, String)> {
            s.conditions()
                .into_iter()
                .map(|c| (c.type_.to_string(), format!("{}/{}", c.status, c.reason)))
                .collect()
        };
        assert_eq!(
            summary(&s),
            vec![("BufferOverflow".into(), "False/BufferDrained".into())]
        );
        s.reachable = Some(false);
        s.unreachable_reason = "cannot connect".into();
        s.overflow = true;
        assert_eq!(
            summary(&s),
            vec![
                ("Connected".into(), "False/ControlPlaneUnreachable".into()),
                ("BufferOverflow".into(), "True/EventBufferFull".into()),
            ]
        );
        s.reachable = Some(true);
        s.authenticated = Some(false);
        s.rejection_reason = "HTTP 401".into();
        assert_eq!(
            summary(&s)[..2],
            [
                ("Connected".into(), "True/RoundTripOK".into()),
                ("Authenticated".into(), "False/CredentialRejected".into()),
            ]
        );
    }
}
