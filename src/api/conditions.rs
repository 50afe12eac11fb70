//! The condition vocabulary (API.md, "Conditions"), plus the GitOps verification reasons this project adds.
//! Every type and reason is documented in docs/conditions.md.

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
    pub const INSTALLING: &str = "Installing";
    pub const UPGRADING: &str = "Upgrading";
    pub const RECONCILING: &str = "Reconciling";
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
