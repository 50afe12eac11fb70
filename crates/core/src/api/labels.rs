//! Label and annotation keys of the v1alpha1 contract (docs/api.md, "Labels and annotations").

/// On intents: `control-plane`; on children: `vworkspace-operator`.
pub const MANAGED_BY: &str = "app.vworkspace.io/managed-by";
/// Value of [`MANAGED_BY`] on intents written by the control plane.
pub const MANAGED_BY_CONTROL_PLANE: &str = "control-plane";
/// Value of [`MANAGED_BY`] on every object the operator writes.
pub const MANAGED_BY_OPERATOR: &str = "vworkspace-operator";
/// On intents and every child: must equal the operator's cluster id.
pub const CLUSTER_ID: &str = "app.vworkspace.io/cluster-id";
/// On HelmRelease, chart sources and Operation children: the ApplicationInstance name.
pub const APPLICATION_INSTANCE: &str = "app.vworkspace.io/application-instance";
/// On an instance's children outside its namespace (Argo CD's AppProject; added by this project): the
/// ApplicationInstance's namespace, to map the child back to its intent.
pub const APPLICATION_INSTANCE_NAMESPACE: &str = "app.vworkspace.io/application-instance-namespace";
/// On Operation children: the Operation UID.
pub const OPERATION: &str = "ops.vworkspace.io/operation";
/// On Operation children (added by this project): the Operation name, for readable selectors.
pub const OPERATION_NAME: &str = "ops.vworkspace.io/operation-name";
/// On Operation children (added by this project): the Operation namespace (children in the shared Velero
/// namespace are mapped back to their Operation with it).
pub const OPERATION_NAMESPACE: &str = "ops.vworkspace.io/operation-namespace";
/// On helmHookJob Jobs: the chart hook the Job is shaped like.
pub const SOURCE_HOOK: &str = "ops.vworkspace.io/source-hook";
/// Namespace gate label key (default selector `managed-by=vworkspace`).
pub const NAMESPACE_GATE_KEY: &str = "managed-by";
/// Namespace gate label value.
pub const NAMESPACE_GATE_VALUE: &str = "vworkspace";
/// Default namespace selector.
pub const DEFAULT_NAMESPACE_SELECTOR: &str = "managed-by=vworkspace";
/// Pause annotation on an ApplicationInstance: `disabled` pauses reconciliation.
pub const RECONCILE: &str = "apps.vworkspace.io/reconcile";
/// Value of [`RECONCILE`] that pauses.
pub const RECONCILE_DISABLED: &str = "disabled";
/// Prefix of capability annotations on an ApplicationInstance: `ops.vworkspace.io/<verb>=<engine>`.
pub const CAPABILITY_PREFIX: &str = "ops.vworkspace.io/";
/// Namespace annotation limiting the Operation types allowed there (comma list).
pub const ALLOWED_TYPES: &str = "ops.vworkspace.io/allowed-types";
/// Annotation on rendered children naming the intent commit they were rendered from (GitOps provenance).
pub const INTENT_COMMIT: &str = "app.vworkspace.io/intent-commit";
/// Pull mode: the job whose payload a child's intent is (the Pull counterpart of [`INTENT_COMMIT`]).
pub const INTENT_JOB: &str = "app.vworkspace.io/intent-job";
/// Push mode: the field manager that owns the intent's spec.
pub const INTENT_MANAGER: &str = "app.vworkspace.io/intent-manager";
/// The capability verbs: one per Operation type.
pub const CAPABILITY_VERBS: &[&str] = &[
    "backup",
    "restore",
    "upgrade",
    "migration",
    "runcommand",
    "runbook",
    "snapshot",
    "replicate",
];

/// The capability annotation key for a verb, e.g. `ops.vworkspace.io/backup`.
pub fn capability_key(verb: &str) -> String {
    format!("{CAPABILITY_PREFIX}{verb}")
}
