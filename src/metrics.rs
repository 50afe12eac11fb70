//! Prometheus metrics (docs/install.md, "Metrics and probes"): the upstream names, plus what GitOps verification and
//! the event post add. Exposed in the OpenMetrics text format by [`crate::admin`] on `/metrics`.
//!
//! Upstream metrics (names and label values as the upstream operator documents them):
//! - `vworkspace_operator_reconcile_total{controller,result}`: `controller` = applicationinstance |
//!   operation | cluster, `result` = success | requeue | error.
//! - `vworkspace_operator_reconcile_duration_seconds{controller}`: histogram, buckets 5 ms … 10 s.
//! - `vworkspace_operator_operation_total{type,engine,outcome}`: `outcome` = succeeded | failed | cancelled |
//!   blocked.
//! - `vworkspace_operator_connectivity_state{mode}`: 1 connected, 0 reconnecting, -1 disconnected; `mode` =
//!   `gitops` (the cluster repo) or `events` (the control-plane event post; added by this project).
//! - `vworkspace_operator_event_buffer_occupancy`: events waiting to be posted.
//! - `vworkspace_operator_managed_namespaces`: namespaces matching the gate selector.
//!
//! Added by this project:
//! - `vworkspace_operator_commits_verified_total{result}`: commit verifications, `result` = verified |
//!   rejected | error.
//! - `vworkspace_operator_event_posts_total{result}`: event-post requests by result (delivered, conflict,
//!   unauthorized, forbidden, rejected, rate_limited, server_error, unreachable).
//! - `vworkspace_operator_events_dropped_total{reason}`: events given up on: `overflow` (buffer full, oldest
//!   dropped) or `rejected` (the control plane refused the batch: 403 or another non-retryable 4xx).
//! - `vworkspace_operator_outcomes_pending`: outcome records (git notes) not yet on the remote.
//! - `vworkspace_operator_admission_reviews_total{kind,verdict}`: admission reviews the webhook answered, `kind`
//!   = applicationinstance | operation | other, `verdict` = allowed | warned (allowed with warnings) | denied.
//! - `vworkspace_operator_admission_review_duration_seconds`: histogram of the webhook's answer time,
//!   buckets 0.5 ms … 1 s.
//! - `vworkspace_operator_trust_policy_reloads_total{result}`: trust-policy changes picked up while running,
//!   `result` = applied | invalid (the new text does not parse: nothing is trusted until it does).
//! - `vworkspace_operator_intents{kind,state}`: this cluster's intents by state, counted every Cluster
//!   refresh: `kind` = applicationinstance | operation; `state` = ready | blocked | not_ready | unjudged
//!   (ApplicationInstance), pending | running | succeeded | failed | cancelled | blocked (Operation).
//! - `vworkspace_operator_view_verified`: 1 when the operator has a verified revision of the cluster repo
//!   (GitOps), 0 when none (nothing is acted on).
//! - `vworkspace_operator_view_differs_from_flux`: 1 when the revision Flux last applied to the cluster path
//!   (its Kustomization's `lastAppliedRevision`) is not the operator's verified view, 0 when it is; absent
//!   when neither is known.
//! - `vworkspace_operator_resident_memory_bytes`: the process's resident set (Linux `/proc/self/statm`).
//! - `vworkspace_operator_webhook_certificate_expiry_timestamp_seconds`: when the admission webhook's serving
//!   certificate expires (Unix time).
//! - `vworkspace_operator_outcome_delivery_seconds{channel}`: histogram of the time from an outcome being
//!   observed (the note record's or event's timestamp) to its confirmed delivery, `channel` = notes (on the
//!   remote's notes ref) | events (accepted by the control plane), buckets 0.1 s … 1 h.
//! - `vworkspace_operator_repo_sync_duration_seconds{result}`: histogram of the Git view's syncs (fetch the
//!   cluster repo, verify the new commits, index the verified revision), `result` = verified (a new revision
//!   became the view) | unchanged | rejected | unreachable, buckets 10 ms … 2 min.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::api::{Engine, OperationType};

/// Buckets of the reconcile-duration histogram (seconds), as upstream documents them.
pub const RECONCILE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot encode the metrics registry in the OpenMetrics text format")]
    Encode(#[from] std::fmt::Error),
}

/// Label values written as fixed lowercase strings.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl $name {
            /// Every value, to create each series at 0 from start (a rate over a series that does not exist
            /// yet is no rate at all: alerts on errors would only see the second one).
            pub const ALL: &[Self] = &[$(Self::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_enum!(
    /// The `controller` label.
    Controller {
        ApplicationInstance => "applicationinstance",
        Operation => "operation",
        Cluster => "cluster",
    }
);
label_enum!(
    /// The `result` label of `reconcile_total`.
    ReconcileResult {
        Success => "success",
        Requeue => "requeue",
        Error => "error",
    }
);
label_enum!(
    /// The `outcome` label of `operation_total`.
    OperationOutcome {
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        Blocked => "blocked",
    }
);
label_enum!(
    /// The `outcome` label of `applied_jobs_total` (a Pull job's posted result).
    JobOutcome {
        Succeeded => "succeeded",
        Failed => "failed",
        Noop => "noop",
        Conflict => "conflict",
    }
);
label_enum!(
    /// The `mode` label of `connectivity_state`.
    Mode {
        GitOps => "gitops",
        Pull => "pull",
        Events => "events",
    }
);
label_enum!(
    /// The `result` label of `commits_verified_total`.
    VerifyResult {
        Verified => "verified",
        Rejected => "rejected",
        Error => "error",
    }
);
label_enum!(
    /// The `result` label of `repo_sync_duration_seconds`.
    SyncResult {
        Verified => "verified",
        Unchanged => "unchanged",
        Rejected => "rejected",
        Unreachable => "unreachable",
    }
);
label_enum!(
    /// The `result` label of `event_posts_total`.
    PostResult {
        Delivered => "delivered",
        Conflict => "conflict",
        Unauthorized => "unauthorized",
        Forbidden => "forbidden",
        Rejected => "rejected",
        RateLimited => "rate_limited",
        ServerError => "server_error",
        Unreachable => "unreachable",
    }
);
label_enum!(
    /// The `channel` label of `outcome_delivery_seconds`.
    Channel {
        Notes => "notes",
        Events => "events",
    }
);
label_enum!(
    /// The `reason` label of `events_dropped_total`.
    DropReason {
        Overflow => "overflow",
        Rejected => "rejected",
    }
);

/// The value of `connectivity_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connectivity {
    Connected,
    Reconnecting,
    Disconnected,
}

impl Connectivity {
    pub fn value(self) -> i64 {
        match self {
            Self::Connected => 1,
            Self::Reconnecting => 0,
            Self::Disconnected => -1,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: Controller,
    result: ReconcileResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: Controller,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    r#type: &'static str,
    engine: &'static str,
    outcome: OperationOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: Mode,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerifyLabels {
    result: VerifyResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    result: SyncResult,
}

/// Buckets of `repo_sync_duration_seconds`: an unchanged fetch at best, a first clone of a large history at
/// worst.
pub const SYNC_BUCKETS: [f64; 11] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];

fn sync_histogram() -> Histogram {
    Histogram::new(SYNC_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PostLabels {
    result: PostResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel: Channel,
}

/// Buckets of `outcome_delivery_seconds`: a batch window and one push at best, an outage at worst.
pub const DELIVERY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

fn delivery_histogram() -> Histogram {
    Histogram::new(DELIVERY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: DropReason,
}

label_enum!(
    /// The `verdict` label of admission reviews.
    AdmissionVerdict { Allowed => "allowed", Warned => "warned", Denied => "denied" }
);

label_enum!(
    /// The `result` label of trust-policy reloads.
    PolicyReloadResult { Applied => "applied", Invalid => "invalid" }
);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyReloadLabels {
    result: PolicyReloadResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    kind: &'static str,
    verdict: AdmissionVerdict,
}

/// Buckets of the admission-review histogram (seconds).
pub const ADMISSION_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

type HistogramFamily = Family<ControllerLabels, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

/// Every metric of the operator and the registry that exposes them. Cheap to clone (handles share state).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily,
    operation_total: Family<OperationLabels, Counter>,
    connectivity_state: Family<ModeLabels, Gauge>,
    event_buffer_occupancy: Gauge,
    managed_namespaces: Gauge,
    commits_verified_total: Family<VerifyLabels, Counter>,
    event_posts_total: Family<PostLabels, Counter>,
    events_dropped_total: Family<DropLabels, Counter>,
    outcomes_pending: Gauge,
    admission_reviews_total: Family<AdmissionLabels, Counter>,
    admission_review_duration: Histogram,
    trust_policy_reloads_total: Family<PolicyReloadLabels, Counter>,
    applied_jobs_total: Family<JobOutcomeLabels, Counter>,
    pull_job_lag: Histogram,
    credential_age: Gauge,
    outcome_delivery: Family<ChannelLabels, Histogram, fn() -> Histogram>,
    repo_sync_duration: Family<SyncLabels, Histogram, fn() -> Histogram>,
    fleet: FleetGauges,
}

/// The gauges the chart's dashboard and alerts read about the cluster as a whole (`controller::fleet`).
#[derive(Clone, Debug, Default)]
struct FleetGauges {
    intents: Family<IntentStateLabels, Gauge>,
    view_verified: Gauge,
    view_differs_from_flux: Gauge,
    resident_memory: Gauge,
    webhook_certificate_expiry: Gauge,
}

impl FleetGauges {
    fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        registry.register(
            "intents",
            "This cluster's intents by kind and state",
            g.intents.clone(),
        );
        registry.register(
            "view_verified",
            "1 when a revision of the cluster repo is verified (GitOps)",
            g.view_verified.clone(),
        );
        registry.register(
            "view_differs_from_flux",
            "1 when the revision Flux last applied to the cluster path is not the operator's verified view",
            g.view_differs_from_flux.clone(),
        );
        registry.register_with_unit(
            "resident_memory",
            "Resident memory of the operator process",
            Unit::Bytes,
            g.resident_memory.clone(),
        );
        registry.register_with_unit(
            "webhook_certificate_expiry_timestamp",
            "When the admission webhook's serving certificate expires (Unix time)",
            Unit::Seconds,
            g.webhook_certificate_expiry.clone(),
        );
        g
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntentStateLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobOutcomeLabels {
    outcome: JobOutcome,
}

/// Buckets of `pull_job_lag_seconds`: from a job's creation to the operator receiving it.
pub const JOB_LAG_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `vworkspace_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vworkspace_operator");
        let reconcile_total = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles per controller and result",
            reconcile_total.clone(),
        );
        let reconcile_duration: HistogramFamily =
            Family::new_with_constructor(reconcile_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "Reconcile wall time",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let operation_total = Family::<OperationLabels, Counter>::default();
        registry.register(
            "operation",
            "Operation completions by type, engine and outcome",
            operation_total.clone(),
        );
        let connectivity_state = Family::<ModeLabels, Gauge>::default();
        registry.register(
            "connectivity_state",
            "Connectivity: 1 connected, 0 reconnecting, -1 disconnected (mode gitops: the cluster repo; events: the control-plane event post)",
            connectivity_state.clone(),
        );
        let event_buffer_occupancy = Gauge::default();
        registry.register(
            "event_buffer_occupancy",
            "Events waiting to be posted to the control plane",
            event_buffer_occupancy.clone(),
        );
        let managed_namespaces = Gauge::default();
        registry.register(
            "managed_namespaces",
            "Namespaces matching the namespace gate selector",
            managed_namespaces.clone(),
        );
        let commits_verified_total = Family::<VerifyLabels, Counter>::default();
        registry.register(
            "commits_verified",
            "Commit signature verifications by result",
            commits_verified_total.clone(),
        );
        let event_posts_total = Family::<PostLabels, Counter>::default();
        registry.register(
            "event_posts",
            "Event-post requests to the control plane by result",
            event_posts_total.clone(),
        );
        let events_dropped_total = Family::<DropLabels, Counter>::default();
        registry.register(
            "events_dropped",
            "Events given up on: overflow (buffer full, oldest dropped) or rejected (control plane refused them)",
            events_dropped_total.clone(),
        );
        let outcomes_pending = Gauge::default();
        registry.register(
            "outcomes_pending",
            "Outcome records (git notes) not yet on the remote",
            outcomes_pending.clone(),
        );
        let trust_policy_reloads_total = Family::<PolicyReloadLabels, Counter>::default();
        registry.register(
            "trust_policy_reloads",
            "Trust-policy changes picked up while running: applied, or invalid (nothing trusted until fixed)",
            trust_policy_reloads_total.clone(),
        );
        let admission_reviews_total = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "Admission reviews answered by the webhook, by kind and verdict",
            admission_reviews_total.clone(),
        );
        let admission_review_duration = Histogram::new(ADMISSION_BUCKETS);
        registry.register_with_unit(
            "admission_review_duration",
            "Time the webhook took to answer an admission review",
            Unit::Seconds,
            admission_review_duration.clone(),
        );
        let applied_jobs_total = Family::<JobOutcomeLabels, Counter>::default();
        registry.register(
            "applied_jobs",
            "Pull-mode jobs by the result posted to the control plane",
            applied_jobs_total.clone(),
        );
        let pull_job_lag = Histogram::new(JOB_LAG_BUCKETS);
        registry.register_with_unit(
            "pull_job_lag",
            "Pull mode: time from a job's createdAt to the operator receiving it",
            Unit::Seconds,
            pull_job_lag.clone(),
        );
        let credential_age = Gauge::default();
        registry.register_with_unit(
            "credential_age",
            "Pull mode: age of the control-plane credential (since registration or the last rotation)",
            Unit::Seconds,
            credential_age.clone(),
        );
        let outcome_delivery: Family<ChannelLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(delivery_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "outcome_delivery",
            "Time from an outcome observed to its confirmed delivery, by channel (git notes, control-plane events)",
            Unit::Seconds,
            outcome_delivery.clone(),
        );
        let repo_sync_duration: Family<SyncLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(sync_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "repo_sync_duration",
            "Wall time of a Git view sync (fetch, verify, index), by result",
            Unit::Seconds,
            repo_sync_duration.clone(),
        );
        let fleet = FleetGauges::register(&mut registry);
        let metrics = Self {
            outcome_delivery,
            repo_sync_duration,
            registry: Arc::new(registry),
            fleet,
            applied_jobs_total,
            pull_job_lag,
            credential_age,
            reconcile_total,
            reconcile_duration,
            operation_total,
            connectivity_state,
            event_buffer_occupancy,
            managed_namespaces,
            commits_verified_total,
            event_posts_total,
            events_dropped_total,
            outcomes_pending,
            admission_reviews_total,
            admission_review_duration,
            trust_policy_reloads_total,
        };
        metrics.zero_series();
        metrics
    }

    /// Create every labelled series at 0 from start (a rate over a series that does not exist yet is no rate at
    /// all: an alert on errors would only see the second one).
    fn zero_series(&self) {
        for &controller in Controller::ALL {
            let _ = self
                .reconcile_duration
                .get_or_create(&ControllerLabels { controller });
            for &result in ReconcileResult::ALL {
                let _ = self
                    .reconcile_total
                    .get_or_create(&ReconcileLabels { controller, result });
            }
        }
        for &result in VerifyResult::ALL {
            let _ = self
                .commits_verified_total
                .get_or_create(&VerifyLabels { result });
        }
        for &result in PostResult::ALL {
            let _ = self.event_posts_total.get_or_create(&PostLabels { result });
        }
        for &reason in DropReason::ALL {
            let _ = self
                .events_dropped_total
                .get_or_create(&DropLabels { reason });
        }
        for &channel in Channel::ALL {
            let _ = self
                .outcome_delivery
                .get_or_create(&ChannelLabels { channel });
        }
        for &result in SyncResult::ALL {
            let _ = self
                .repo_sync_duration
                .get_or_create(&SyncLabels { result });
        }
        for &outcome in JobOutcome::ALL {
            let _ = self
                .applied_jobs_total
                .get_or_create(&JobOutcomeLabels { outcome });
        }
        for &result in PolicyReloadResult::ALL {
            let _ = self
                .trust_policy_reloads_total
                .get_or_create(&PolicyReloadLabels { result });
        }
        for kind in ["applicationinstance", "operation", "other"] {
            for &verdict in AdmissionVerdict::ALL {
                let _ = self
                    .admission_reviews_total
                    .get_or_create(&AdmissionLabels { kind, verdict });
            }
        }
    }

    /// Count one admission review (`kind` as the request named it) and the time its answer took.
    pub fn admission_review(&self, kind: &str, verdict: AdmissionVerdict, took: Duration) {
        let kind = match kind {
            "ApplicationInstance" => "applicationinstance",
            "Operation" => "operation",
            _ => "other",
        };
        self.admission_reviews_total
            .get_or_create(&AdmissionLabels { kind, verdict })
            .inc();
        self.admission_review_duration.observe(took.as_secs_f64());
    }

    /// The registry in the OpenMetrics text format (what `/metrics` serves).
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Start timing a reconcile. When the timer is dropped it records the duration and counts the reconcile
    /// with the result set by [`ReconcileTimer::set_result`], or `error` when none was set (an early `?`
    /// return is an error).
    pub fn reconcile_timer(&self, controller: Controller) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            controller,
            start: Instant::now(),
            result: ReconcileResult::Error,
        }
    }

    /// Count one reconcile and its duration (what the timer does on drop).
    pub fn record_reconcile(
        &self,
        controller: Controller,
        result: ReconcileResult,
        duration: Duration,
    ) {
        self.reconcile_total
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels { controller })
            .observe(duration.as_secs_f64());
    }

    /// Count an Operation reaching an outcome.
    pub fn operation_outcome(
        &self,
        type_: OperationType,
        engine: Engine,
        outcome: OperationOutcome,
    ) {
        self.operation_total
            .get_or_create(&OperationLabels {
                r#type: type_.as_str(),
                engine: engine.as_str(),
                outcome,
            })
            .inc();
    }

    pub fn set_connectivity(&self, mode: Mode, state: Connectivity) {
        self.connectivity_state
            .get_or_create(&ModeLabels { mode })
            .set(state.value());
    }

    /// The intents of one kind by state; every state of `states` is set (0 when absent from `counts`).
    pub fn set_intents(
        &self,
        kind: &'static str,
        states: &[&'static str],
        counts: &[(&'static str, usize)],
    ) {
        for state in states {
            let n = counts
                .iter()
                .filter(|(s, _)| s == state)
                .map(|(_, n)| *n)
                .sum::<usize>();
            self.fleet
                .intents
                .get_or_create(&IntentStateLabels { kind, state })
                .set(saturating_i64(n));
        }
    }

    /// Whether a revision is verified, and whether Flux's applied revision differs from it (None: unknown).
    pub fn set_view(&self, verified: bool, differs_from_flux: Option<bool>) {
        self.fleet.view_verified.set(i64::from(verified));
        if let Some(d) = differs_from_flux {
            self.fleet.view_differs_from_flux.set(i64::from(d));
        }
    }

    pub fn set_resident_memory(&self, bytes: u64) {
        self.fleet
            .resident_memory
            .set(saturating_i64(bytes as usize));
    }

    /// What is owed, for the Cluster object: (notes pending, events buffered, the webhook certificate's expiry
    /// in Unix seconds or 0 when none is served).
    pub fn owed(&self) -> (i64, i64, i64) {
        (
            self.outcomes_pending.get(),
            self.event_buffer_occupancy.get(),
            self.fleet.webhook_certificate_expiry.get(),
        )
    }

    pub fn set_webhook_certificate_expiry(&self, unix_seconds: i64) {
        self.fleet.webhook_certificate_expiry.set(unix_seconds);
    }

    pub fn set_managed_namespaces(&self, count: usize) {
        self.managed_namespaces.set(saturating_i64(count));
    }

    pub fn trust_policy_reloaded(&self, result: PolicyReloadResult) {
        self.trust_policy_reloads_total
            .get_or_create(&PolicyReloadLabels { result })
            .inc();
    }

    pub fn commit_verified(&self, result: VerifyResult) {
        self.commits_verified_total
            .get_or_create(&VerifyLabels { result })
            .inc();
    }

    /// One Git view sync: its result and wall time.
    pub fn repo_synced(&self, result: SyncResult, took: Duration) {
        self.repo_sync_duration
            .get_or_create(&SyncLabels { result })
            .observe(took.as_secs_f64());
    }

    pub fn set_outcomes_pending(&self, count: usize) {
        self.outcomes_pending.set(saturating_i64(count));
    }

    /// Count a Pull job's posted result.
    pub fn job_result(&self, outcome: JobOutcome) {
        self.applied_jobs_total
            .get_or_create(&JobOutcomeLabels { outcome })
            .inc();
    }

    /// A Pull job received `lag` after its createdAt.
    pub fn job_lag(&self, lag: Duration) {
        self.pull_job_lag.observe(lag.as_secs_f64());
    }

    pub fn set_credential_age(&self, age: Duration) {
        self.credential_age
            .set(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
    }

    /// Outcomes confirmed delivered on `channel`, each with the RFC 3339 time it was observed (a time that
    /// does not parse, or lies ahead of the clock, counts as 0).
    pub fn outcomes_delivered<'a>(
        &self,
        channel: Channel,
        observed: impl IntoIterator<Item = &'a str>,
    ) {
        let histogram = self
            .outcome_delivery
            .get_or_create_owned(&ChannelLabels { channel });
        let now = jiff::Timestamp::now();
        for time in observed {
            let age = time
                .parse::<jiff::Timestamp>()
                .ok()
                .and_then(|t| now.duration_since(t).try_into().ok())
                .map_or(0.0, |d: Duration| d.as_secs_f64());
            histogram.observe(age);
        }
    }

    /// The handles the event poster updates itself.
    pub fn event_metrics(&self) -> EventMetrics {
        EventMetrics {
            metrics: self.clone(),
            occupancy: self.event_buffer_occupancy.clone(),
            connectivity: self
                .connectivity_state
                .get_or_create_owned(&ModeLabels { mode: Mode::Events }),
            posts: self.event_posts_total.clone(),
            dropped: self.events_dropped_total.clone(),
        }
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Measures one reconcile; records on drop (see [`Metrics::reconcile_timer`]).
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Metrics,
    controller: Controller,
    start: Instant,
    result: ReconcileResult,
}

impl ReconcileTimer {
    pub fn set_result(&mut self, result: ReconcileResult) {
        self.result = result;
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .record_reconcile(self.controller, self.result, self.start.elapsed());
    }
}

/// The metrics the control-plane event poster maintains: buffer occupancy, its connectivity state, posts
/// and dropped events.
#[derive(Clone, Debug)]
pub struct EventMetrics {
    metrics: Metrics,
    occupancy: Gauge,
    connectivity: Gauge,
    posts: Family<PostLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
}

impl EventMetrics {
    pub fn set_occupancy(&self, count: usize) {
        self.occupancy.set(saturating_i64(count));
    }

    pub fn set_connectivity(&self, state: Connectivity) {
        self.connectivity.set(state.value());
    }

    pub fn post(&self, result: PostResult) {
        self.posts.get_or_create(&PostLabels { result }).inc();
    }

    /// Events accepted by the control plane, by their timestamps.
    pub fn delivered<'a>(&self, timestamps: impl IntoIterator<Item = &'a str>) {
        self.metrics.outcomes_delivered(Channel::Events, timestamps);
    }

    pub fn dropped(&self, reason: DropReason, count: usize) {
        self.dropped
            .get_or_create(&DropLabels { reason })
            .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn upstream_names_and_labels_are_exposed() {
        let m = Metrics::new();
        m.record_reconcile(
            Controller::ApplicationInstance,
            ReconcileResult::Success,
            Duration::from_millis(30),
        );
        m.operation_outcome(
            OperationType::Restore,
            Engine::Velero,
            OperationOutcome::Succeeded,
        );
        m.set_connectivity(Mode::GitOps, Connectivity::Disconnected);
        m.set_managed_namespaces(3);
        m.commit_verified(VerifyResult::Rejected);
        let ev = m.event_metrics();
        ev.set_occupancy(17);
        ev.set_connectivity(Connectivity::Connected);
        ev.post(PostResult::RateLimited);
        ev.dropped(DropReason::Overflow, 5);
        m.set_outcomes_pending(2);
        m.repo_synced(SyncResult::Verified, Duration::from_millis(40));
        m.admission_review(
            "Operation",
            AdmissionVerdict::Denied,
            Duration::from_micros(700),
        );
        let text = m.encode().unwrap();
        for want in [
            r#"vworkspace_operator_reconcile_total{controller="applicationinstance",result="success"} 1"#,
            r#"vworkspace_operator_reconcile_duration_seconds_bucket{le="0.05",controller="applicationinstance"} 1"#,
            r#"vworkspace_operator_reconcile_duration_seconds_bucket{le="0.025",controller="applicationinstance"} 0"#,
            r#"vworkspace_operator_reconcile_duration_seconds_count{controller="applicationinstance"} 1"#,
            r#"vworkspace_operator_operation_total{type="Restore",engine="velero",outcome="succeeded"} 1"#,
            r#"vworkspace_operator_connectivity_state{mode="gitops"} -1"#,
            r#"vworkspace_operator_connectivity_state{mode="events"} 1"#,
            "vworkspace_operator_event_buffer_occupancy 17",
            "vworkspace_operator_managed_namespaces 3",
            r#"vworkspace_operator_commits_verified_total{result="rejected"} 1"#,
            r#"vworkspace_operator_event_posts_total{result="rate_limited"} 1"#,
            r#"vworkspace_operator_events_dropped_total{reason="overflow"} 5"#,
            "vworkspace_operator_outcomes_pending 2",
            r#"vworkspace_operator_repo_sync_duration_seconds_bucket{le="0.05",result="verified"} 1"#,
            r#"vworkspace_operator_repo_sync_duration_seconds_bucket{le="0.025",result="verified"} 0"#,
            r#"vworkspace_operator_repo_sync_duration_seconds_count{result="unreachable"} 0"#,
            r#"vworkspace_operator_admission_reviews_total{kind="operation",verdict="denied"} 1"#,
            r#"vworkspace_operator_admission_review_duration_seconds_bucket{le="0.001"} 1"#,
            r#"vworkspace_operator_admission_review_duration_seconds_bucket{le="0.0005"} 0"#,
            "# TYPE vworkspace_operator_reconcile_duration_seconds histogram",
            "# UNIT vworkspace_operator_reconcile_duration_seconds seconds",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_timer_records_on_drop_and_defaults_to_error() {
        let m = Metrics::new();
        {
            let _t = m.reconcile_timer(Controller::Operation);
        }
        {
            let mut t = m.reconcile_timer(Controller::Operation);
            t.set_result(ReconcileResult::Requeue);
        }
        let text = m.encode().unwrap();
        let count = |prefix: &str| line(&text, prefix).map(|l| l.rsplit(' ').next().unwrap());
        assert_eq!(
            count(r#"vworkspace_operator_reconcile_total{controller="operation",result="error"}"#),
            Some("1")
        );
        assert_eq!(
            count(
                r#"vworkspace_operator_reconcile_total{controller="operation",result="requeue"}"#
            ),
            Some("1")
        );
        assert_eq!(
            count(
                r#"vworkspace_operator_reconcile_duration_seconds_count{controller="operation"}"#
            ),
            Some("2")
        );
        // Every series exists from start, at 0 until counted.
        assert_eq!(
            count(r#"vworkspace_operator_reconcile_total{controller="cluster",result="error"}"#),
            Some("0")
        );
    }
}
