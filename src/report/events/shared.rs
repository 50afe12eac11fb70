//! What the poster and its worker share: the configuration, the credentials read from files, the bounded
//! buffer, and the outcome of one POST.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::metrics::EventMetrics;
use crate::secrets::redact_text;

use super::signing::SigningKey;
use super::state::{PosterState, PosterStats};
use super::wire::{Event, ObjectSnapshot};
use super::{
    DEFAULT_BUFFER_CAPACITY, DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_BATCH,
    DEFAULT_REQUEST_TIMEOUT, EVENTS_PATH, EventError,
};

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
/// `--control-plane-hmac-key-file`; the rest are the defaults docs/events.md names: 1,000 events buffered, 100 a
/// batch, a flush every second).
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
    /// Upper bound of the exponential backoff (at least [`super::MIN_RETRY_INTERVAL`]).
    pub max_backoff: Duration,
    pub request_timeout: Duration,
    /// Send a `ClusterHeartbeat` when nothing was delivered for this long.
    pub heartbeat_interval: Option<Duration>,
    /// Send the snapshot before anything else at start (the operator may have missed transitions while it
    /// was down). The operator turns this off and calls [`super::EventPoster::request_snapshot`] once its caches have
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
pub(super) fn events_url(endpoint: &str) -> Result<(reqwest::Url, String), EventError> {
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
pub(super) struct Credentials {
    pub(super) token_file: PathBuf,
    pub(super) key_file: Option<PathBuf>,
    pub(super) authorization: HeaderValue,
    pub(super) key: Option<SigningKey>,
}

impl Credentials {
    pub(super) async fn load(
        token_file: &Path,
        key_file: Option<&Path>,
    ) -> Result<Self, EventError> {
        let token = read_credential_file("token", token_file).await?;
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
                let content = read_credential_file("signing key", path).await?;
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

    pub(super) async fn reload(&mut self) -> Result<(), EventError> {
        *self = Self::load(&self.token_file, self.key_file.as_deref()).await?;
        Ok(())
    }
}

/// Largest control-plane token or signing key file read, in bytes: a token or a key is a few hundred bytes.
pub(super) const MAX_CREDENTIAL_FILE_BYTES: u64 = 64 << 10;

/// Read the control-plane `what` file at `path`: a regular file of at most [`MAX_CREDENTIAL_FILE_BYTES`] (a
/// bigger one, or a FIFO or device, is refused without being read whole), off the async workers.
async fn read_credential_file(what: &'static str, path: &Path) -> Result<Vec<u8>, EventError> {
    use crate::git::bounded::{BoundedReadError, read};
    let owned = path.to_path_buf();
    let result = tokio::task::spawn_blocking(move || read(&owned, MAX_CREDENTIAL_FILE_BYTES))
        .await
        .map_err(|e| BoundedReadError::Io {
            kind: std::io::ErrorKind::Other,
            message: e.to_string(),
        })
        .and_then(|r| r);
    result.map_err(|e| match e {
        e @ BoundedReadError::Io { .. } => EventError::ReadFile {
            what,
            path: path.to_path_buf(),
            source: e.into(),
        },
        other => EventError::BadFile {
            what,
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

pub(super) struct Queued {
    pub(super) seq: u64,
    pub(super) since: Instant,
    pub(super) event: Event,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) queue: VecDeque<Queued>,
    pub(super) next_seq: u64,
    pub(super) needs_snapshot: bool,
    pub(super) stats: PosterStats,
}

pub(super) struct Shared {
    pub(super) config: PosterConfig,
    pub(super) inner: Mutex<Inner>,
    pub(super) wake: Notify,
    pub(super) state: watch::Sender<PosterState>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(super) metrics: Option<EventMetrics>,
}

impl Shared {
    pub(super) fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves Inner consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn update_state(&self, f: impl FnOnce(&mut PosterState)) {
        self.state.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            *s != before
        });
    }

    pub(super) fn occupancy(&self, n: usize) {
        if let Some(m) = &self.metrics {
            m.set_occupancy(n);
        }
    }
}

/// The outcome of one POST (after the 401 refresh).
pub(super) enum Outcome {
    Delivered,
    Conflict,
    Unauthorized(String),
    Forbidden(String),
    Rejected(String),
    RateLimited(Option<Duration>),
    ServerError(String),
    Unreachable(String),
}
