//! The condition vocabulary of the v1alpha1 contract, plus the GitOps verification reasons this project adds.
//! Every type and reason is documented in docs/conditions.md. [`Cond`] is a condition as computed, and
//! [`merge_conditions`] folds computed conditions into an object's list: the reconcilers, the Pull agent and the
//! event sink all speak it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::secrets::redact_text;

/// Condition types.
pub mod types {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const DEGRADED: &str = "Degraded";
    pub const SUSPENDED: &str = "Suspended";
    pub const BLOCKED: &str = "Blocked";
    pub const DELETING: &str = "Deleting";
    pub const ACCEPTED: &str = "Accepted";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const CANCELLED: &str = "Cancelled";
    pub const CONNECTED: &str = "Connected";
    pub const AUTHENTICATED: &str = "Authenticated";
    pub const CONTROLLERS_HEALTHY: &str = "ControllersHealthy";
    pub const BUFFER_OVERFLOW: &str = "BufferOverflow";
    /// Added by this project: the outcome of commit-signature and provenance checks.
    pub const VERIFIED: &str = "Verified";
}

/// Condition reasons.
pub mod reasons {
    // ApplicationInstance Ready
    pub const HELM_RELEASE_READY: &str = "HelmReleaseReady";
    pub const HELM_RELEASE_READY_WITH_WARNINGS: &str = "HelmReleaseReadyWithWarnings";
    pub const PLACEHOLDER: &str = "Placeholder";
    pub const HELM_RELEASE_FAILED: &str = "HelmReleaseFailed";
    pub const CHART_UNREACHABLE: &str = "ChartUnreachable";
    /// The chart's signature did not verify under the trust policy's charts section.
    pub const CHART_UNVERIFIED: &str = "ChartUnverified";
    pub const INSTALLING: &str = "Installing";
    pub const UPGRADING: &str = "Upgrading";
    pub const RECONCILING: &str = "Reconciling";
    /// The HelmRelease waits for a HelmRelease it depends on (`spec.dependsOn`, which the operator does not
    /// render: someone added it to the child).
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// The HelmRelease or its chart source is suspended (`spec.suspend: true`, set by someone else, e.g.
    /// `flux suspend`): Flux does not install or upgrade it.
    pub const HELM_RELEASE_SUSPENDED: &str = "HelmReleaseSuspended";
    // Reconciling
    pub const HELM_RELEASE_INSTALLING: &str = "HelmReleaseInstalling";
    pub const HELM_RELEASE_UPGRADING: &str = "HelmReleaseUpgrading";
    pub const CHART_SOURCE_SYNCING: &str = "ChartSourceSyncing";
    pub const STABLE: &str = "Stable";
    // Degraded
    pub const HELM_RELEASE_DEGRADED: &str = "HelmReleaseDegraded";
    pub const UPGRADE_FAILED: &str = "UpgradeFailed";
    pub const DRIFTED: &str = "Drifted";
    pub const RECOVERED: &str = "Recovered";
    /// Flux's reason on Ready=True after a remediation rollback.
    pub const ROLLED_BACK: &str = "RolledBack";
    // Suspended
    pub const RECONCILE_PAUSED: &str = "ReconcilePaused";
    pub const MAINTENANCE_WINDOW: &str = "MaintenanceWindow";
    pub const ACTIVE: &str = "Active";
    // Blocked (ApplicationInstance and Operation)
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    pub const MISSING_CHART_SOURCE: &str = "MissingChartSource";
    pub const MISSING_DEPENDENCIES: &str = "MissingDependencies";
    pub const POLICY_DENIED: &str = "PolicyDenied";
    pub const UNBLOCKED: &str = "Unblocked";
    pub const CONFLICTING_OPERATION: &str = "ConflictingOperation";
    pub const TARGET_NOT_READY: &str = "TargetNotReady";
    pub const DEPENDENCY_MISSING: &str = "DependencyMissing";
    pub const ENGINE_NOT_INSTALLED: &str = "EngineNotInstalled";
    pub const AWAITING_RESUME: &str = "AwaitingResume";
    // Deleting
    pub const UNINSTALLING: &str = "Uninstalling";
    pub const WAITING_FOR_CHILD_RESOURCES: &str = "WaitingForChildResources";
    // Operation
    pub const ADMISSION_PASSED: &str = "AdmissionPassed";
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    pub const ENGINE_STARTED: &str = "EngineStarted";
    pub const ENGINE_NOT_STARTED: &str = "EngineNotStarted";
    pub const ENGINE_COMPLETED: &str = "EngineCompleted";
    pub const ENGINE_FAILED: &str = "EngineFailed";
    pub const TIMEOUT: &str = "Timeout";
    pub const PRECONDITION_FAILED: &str = "PreconditionFailed";
    pub const USER_CANCELLED: &str = "UserCancelled";
    pub const SUPERSEDED_BY_OPERATION: &str = "SupersededByOperation";
    // Cluster
    pub const ROUND_TRIP_OK: &str = "RoundTripOK";
    pub const CONTROL_PLANE_UNREACHABLE: &str = "ControlPlaneUnreachable";
    pub const REPO_UNREACHABLE: &str = "RepoUnreachable";
    pub const CREDENTIAL_ACCEPTED: &str = "CredentialAccepted";
    pub const CREDENTIAL_REJECTED: &str = "CredentialRejected";
    pub const ALL_CONTROLLERS_READY: &str = "AllControllersReady";
    pub const CONTROLLER_MISSING: &str = "ControllerMissing";
    pub const EVENT_BUFFER_FULL: &str = "EventBufferFull";
    pub const BUFFER_DRAINED: &str = "BufferDrained";
    // Validation and rendering (this project)
    pub const INLINE_SECRET_MATERIAL_REJECTED: &str = "InlineSecretMaterialRejected";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const RENDER_FAILED: &str = "RenderFailed";
    // GitOps verification (this project): Verified / Blocked reasons
    pub const COMMIT_VERIFIED: &str = "CommitVerified";
    /// Pull mode: the live spec is the payload of the job last applied for it.
    pub const JOB_VERIFIED: &str = "JobVerified";
    /// Push mode: every spec field is owned by the control plane's field manager.
    pub const FIELD_MANAGER_VERIFIED: &str = "FieldManagerVerified";
    pub const UNSIGNED_COMMIT: &str = "UnsignedCommit";
    pub const UNTRUSTED_SIGNATURE: &str = "UntrustedSignature";
    pub const SPEC_NOT_IN_GIT: &str = "SpecNotInGit";
    pub const SPEC_MISMATCH: &str = "SpecMismatch";
    /// The cluster's path does not exist at the revision the operator would act on: blocked, never read as
    /// "no intents" (which would let everything be removed).
    pub const CLUSTER_PATH_MISSING: &str = "ClusterPathMissing";
    /// A commit, tree or file read before trust was decided is over a bound (`crate::git::bounds`): refused
    /// unread.
    pub const BOUND_EXCEEDED: &str = "BoundExceeded";
    pub const REPO_UNAVAILABLE: &str = "RepoUnavailable";
    pub const TRUST_POLICY_INVALID: &str = "TrustPolicyInvalid";
    pub const CLUSTER_MISMATCH: &str = "ClusterMismatch";
}

/// The Ready=False reasons of an ApplicationInstance that are an outcome: the release failed, or nothing can be
/// installed for this generation. One list for the git note (`Failed`) and a Pull job's result (`failed`); every
/// other Ready=False reason (Installing, Upgrading, DependencyNotReady, HelmReleaseSuspended) is a wait, whose
/// outcome comes when it ends.
pub const FAILED_READY_REASONS: &[&str] = &[
    reasons::HELM_RELEASE_FAILED,
    reasons::CHART_UNREACHABLE,
    reasons::CHART_UNVERIFIED,
];

/// A condition as computed, before timestamps: (type, status, reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        // An empty message becomes the reason: server-side apply on older API servers turns an empty string
        // into null, which the condition schema refuses.
        let reason = reason.into();
        let message = message.into();
        let message = if message.trim().is_empty() {
            reason.clone()
        } else {
            redact_text(&message)
        };
        Self {
            type_,
            status,
            reason,
            message,
        }
    }
}

/// Largest condition message kept (engine messages are capped at 1 KiB).
pub const MAX_MESSAGE: usize = 1024;

pub fn cap(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// Merge computed conditions into a condition list: a condition whose status did not change keeps its
/// lastTransitionTime; reason/message/observedGeneration are updated. Returns whether anything changed.
pub fn merge_conditions(
    current: &mut Vec<Condition>,
    computed: &[Cond],
    generation: Option<i64>,
    now: &Time,
) -> bool {
    let mut changed = false;
    for c in computed {
        let message = cap(&c.message);
        match current.iter_mut().find(|x| x.type_ == c.type_) {
            Some(existing) => {
                if existing.status != c.status {
                    existing.status = c.status.to_string();
                    existing.last_transition_time = now.clone();
                    changed = true;
                }
                if existing.reason != c.reason
                    || existing.message != message
                    || existing.observed_generation != generation
                {
                    existing.reason = c.reason.clone();
                    existing.message = message;
                    existing.observed_generation = generation;
                    changed = true;
                }
            }
            None => {
                current.push(Condition {
                    type_: c.type_.to_string(),
                    status: c.status.to_string(),
                    reason: c.reason.clone(),
                    message,
                    observed_generation: generation,
                    last_transition_time: now.clone(),
                });
                changed = true;
            }
        }
    }
    current.sort_by(|a, b| a.type_.cmp(&b.type_));
    changed
}

/// Remove conditions of the given types. Returns whether anything was removed.
pub fn remove_conditions(current: &mut Vec<Condition>, types: &[&str]) -> bool {
    let before = current.len();
    current.retain(|c| !types.contains(&c.type_.as_str()));
    before != current.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_transition_time_when_status_is_unchanged() {
        let t0 = Time(jiff::Timestamp::from_second(1000).unwrap());
        let t1 = Time(jiff::Timestamp::from_second(2000).unwrap());
        let mut list = vec![];
        assert!(merge_conditions(
            &mut list,
            &[Cond::new("Ready", "False", "A", "m")],
            Some(1),
            &t0
        ));
        assert!(!merge_conditions(
            &mut list,
            &[Cond::new("Ready", "False", "A", "m")],
            Some(1),
            &t1
        ));
        assert!(merge_conditions(
            &mut list,
            &[Cond::new("Ready", "False", "B", "m")],
            Some(1),
            &t1
        ));
        assert_eq!(list[0].last_transition_time, t0);
        assert!(merge_conditions(
            &mut list,
            &[Cond::new("Ready", "True", "B", "m")],
            Some(1),
            &t1
        ));
        assert_eq!(list[0].last_transition_time, t1);
        // secrets never reach a condition message
        merge_conditions(
            &mut list,
            &[Cond::new("Ready", "True", "B", "password=hunter2")],
            Some(1),
            &t1,
        );
        assert_eq!(list[0].message, "password=[REDACTED]");
    }
}
