//! The worker: flushes the buffer every second or at a full batch, re-sends the snapshot after an outage, and
//! handles every answer (401 refresh, 403 drop, 409 delivered, 429 Retry-After, 5xx and connection errors
//! with backoff); the helpers that read answers and errors.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use tokio::time::Instant;

use crate::metrics::{Connectivity, DropReason, PostResult};
use crate::secrets::redact_text;

use super::shared::{Credentials, Outcome, Shared, SnapshotSource};
use super::signing::message_id;
use super::state::PosterState;
use super::wire::{Event, EventBatch, ResourceRef, heartbeat_event, snapshot_events};
use super::{
    DISCONNECTED_AFTER_FAILURES, MAX_QUOTED_BODY, MAX_RETRY_AFTER, MEDIA_TYPE, MIN_RETRY_INTERVAL,
    WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};

/// What the worker does next.
pub(super) enum Action {
    Snapshot,
    Batch,
    Heartbeat,
    WaitUntil(Option<Instant>),
}

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) client: reqwest::Client,
    pub(super) url: reqwest::Url,
    pub(super) credentials: Credentials,
    pub(super) snapshot: Arc<dyn SnapshotSource>,
    pub(super) failures: u32,
    pub(super) last_contact: Instant,
}

impl Worker {
    pub(super) async fn run(mut self) {
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

    pub(super) fn next_action(&self) -> Action {
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
    pub(super) async fn send_snapshot(&mut self) -> Result<(), Duration> {
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
    pub(super) async fn send_buffered(&mut self) -> Result<(), Duration> {
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
            if let Some(m) = &self.shared.metrics {
                if sent.dropped {
                    m.dropped(DropReason::Rejected, batch.len());
                } else {
                    m.delivered(batch.iter().map(|e| e.timestamp.as_str()));
                }
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
    pub(super) async fn final_flush(&mut self) {
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
    pub(super) fn backoff(&self) -> Duration {
        backoff_delay(
            self.failures,
            self.shared.config.max_backoff,
            fastrand::f64(),
        )
    }

    /// POST one batch (with the 401 refresh) and record the outcome in the state and metrics.
    pub(super) async fn send(&mut self, events: &[Event]) -> Sent {
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

    pub(super) async fn post(&mut self, body: &[u8]) -> Outcome {
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

    pub(super) fn record(&mut self, outcome: Outcome, count: usize) -> Sent {
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
pub(super) struct Sent {
    /// Delivered or dropped: not to be sent again.
    pub(super) done: bool,
    /// Refused for good (403 or another non-retryable 4xx).
    pub(super) dropped: bool,
    /// Wait this long before the next attempt.
    pub(super) retry_after: Option<Duration>,
}

pub(super) fn unix_now() -> i64 {
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
pub(super) fn describe_transport_error(e: reqwest::Error) -> String {
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
pub(super) async fn error_detail(response: reqwest::Response) -> String {
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

/// The detail [`super::EventPoster`] quotes from an error response's body (the first 4 KiB or so of it): see
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
