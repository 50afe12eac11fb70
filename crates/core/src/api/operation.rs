use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A one-off or recurring action on an ApplicationInstance: backup, restore, upgrade, migration,
/// runbook, command, snapshot or replication, carried out by an engine.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "ops.vworkspace.io",
    version = "v1alpha1",
    kind = "Operation",
    namespaced,
    shortname = "op",
    status = "OperationStatus",
    derive = "PartialEq",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Engine", type_ = "string", json_path = ".spec.engine"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OperationSpec {
    /// The ApplicationInstance this Operation acts on (same namespace). Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "immutable"}]))]
    pub target_ref: TargetRef,
    /// What to do. Immutable.
    #[serde(rename = "type")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "immutable"}]))]
    pub type_: OperationType,
    /// Who does it. Immutable.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "immutable"}]))]
    pub engine: Engine,
    /// Engine parameters, validated per template (`<type>.<engine>`). Immutable once the phase left Pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::free_object_schema")]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Approvals>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// Must be `apps.vworkspace.io/v1alpha1`.
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = [
        {"rule": "self == 'apps.vworkspace.io/v1alpha1'", "message": "must be apps.vworkspace.io/v1alpha1"}
    ]))]
    pub api_version: String,
    /// Must be `ApplicationInstance`.
    #[schemars(length(max = 63), extend("x-kubernetes-validations" = [
        {"rule": "self == 'ApplicationInstance'", "message": "must be ApplicationInstance"}
    ]))]
    pub kind: String,
    /// An ApplicationInstance in the Operation's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Operation types. **Decision:** `Snapshot` and `Replicate` are added here for the `snapshot.snapshot` and
/// `replicate.volsync` templates (upstream names the templates but not the types).
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum OperationType {
    Backup,
    Restore,
    Upgrade,
    Migration,
    RunCommand,
    Runbook,
    Snapshot,
    Replicate,
}

impl OperationType {
    pub const ALL: [OperationType; 8] = [
        Self::Backup,
        Self::Restore,
        Self::Upgrade,
        Self::Migration,
        Self::RunCommand,
        Self::Runbook,
        Self::Snapshot,
        Self::Replicate,
    ];

    /// The name as written in `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "Backup",
            Self::Restore => "Restore",
            Self::Upgrade => "Upgrade",
            Self::Migration => "Migration",
            Self::RunCommand => "RunCommand",
            Self::Runbook => "Runbook",
            Self::Snapshot => "Snapshot",
            Self::Replicate => "Replicate",
        }
    }

    /// The first half of a template key: `backup`, `runCommand`, …
    pub fn template_prefix(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Upgrade => "upgrade",
            Self::Migration => "migration",
            Self::RunCommand => "runCommand",
            Self::Runbook => "runbook",
            Self::Snapshot => "snapshot",
            Self::Replicate => "replicate",
        }
    }

    /// The capability verb: `ops.vworkspace.io/<verb>=<engine>` on the target.
    pub fn capability_verb(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Upgrade => "upgrade",
            Self::Migration => "migration",
            Self::RunCommand => "runcommand",
            Self::Runbook => "runbook",
            Self::Snapshot => "snapshot",
            Self::Replicate => "replicate",
        }
    }

    /// Whether an Operation of type `self` must wait while `other` is Pending or Running on the same target.
    /// The conflict matrix of the contract (docs/api.md, "The conflict matrix"): Upgrade blocks Upgrade; Restore is blocked by Upgrade or Backup; Backup is
    /// blocked by Restore; RunCommand and Runbook never conflict. Snapshot and Replicate (this project's types)
    /// behave like Backup: blocked by Restore.
    pub fn blocked_by(self, other: OperationType) -> bool {
        use OperationType::*;
        match self {
            Upgrade => other == Upgrade,
            Restore => matches!(other, Upgrade | Backup | Snapshot | Replicate),
            Backup | Snapshot | Replicate => other == Restore,
            Migration => other == Restore,
            RunCommand | Runbook => false,
        }
    }
}

#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Engine {
    Velero,
    Workflow,
    Job,
    Helm,
    Volsync,
    HelmHookJob,
    /// **Decision:** CSI VolumeSnapshot is an engine here.
    Snapshot,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Velero => "velero",
            Self::Workflow => "workflow",
            Self::Job => "job",
            Self::Helm => "helm",
            Self::Volsync => "volsync",
            Self::HelmHookJob => "helmHookJob",
            Self::Snapshot => "snapshot",
        }
    }
}

/// The template key of an Operation: `<type>.<engine>`, e.g. `backup.velero`.
pub fn template_key(type_: OperationType, engine: Engine) -> String {
    format!("{}.{}", type_.template_prefix(), engine.as_str())
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approvals {
    /// Whether an approval claim is required (restore.velero always requires one).
    #[serde(default)]
    pub required: bool,
    /// A `vws1.<payload>.<hmac>` claim issued by the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_ref: Option<EngineRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// backupName, restoreName, workflowName, jobName, replicationName, volumeSnapshotName, …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "super::string_map_schema")]
    pub outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_ref: Option<LogsRef>,
    /// The intent commit this Operation came from (GitOps provenance; added by this project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_commit: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngineRef {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsRef {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
