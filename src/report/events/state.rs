//! What the poster exposes to the controller: its state (for the Cluster conditions), its counters, and the
//! snapshot source it re-sends after an outage.

use crate::api::conditions::Cond;
use crate::api::conditions::{reasons, types};

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
