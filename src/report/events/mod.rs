//! The control-plane event post (docs/events.md).
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
//!
//! The files follow these seams, each using only those before it: [`wire`] (the events and the pure functions
//! that build them), [`signing`], [`state`] (what the controller reads), `shared` (configuration, credentials,
//! the buffer), `worker` (the flush loop and every answer) and `poster` ([`EventPoster`], which starts the
//! worker).

use std::path::PathBuf;
use std::time::Duration;

mod poster;
mod shared;
pub mod signing;
pub mod state;
#[cfg(test)]
mod tests;
pub mod wire;
mod worker;

pub use poster::*;
pub use shared::*;
pub use signing::*;
pub use state::*;
pub use wire::*;
pub use worker::*;

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
