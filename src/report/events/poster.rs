//! [`EventPoster`], the handle the operator submits events to: it checks the configuration, reads the
//! credentials and starts the worker, then queues events into the buffer the worker drains.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::metrics::{Connectivity, DropReason, EventMetrics};

use super::shared::{Credentials, Inner, PosterConfig, Queued, Shared, SnapshotSource, events_url};
use super::state::{PosterState, PosterStats};
use super::wire::Event;
use super::worker::Worker;
use super::{EventError, MIN_RETRY_INTERVAL};

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
