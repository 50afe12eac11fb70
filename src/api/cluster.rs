use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The per-cluster singleton, named after the cluster id. The operator creates and maintains it; its status
/// reports connectivity, which controllers are installed, and the last verified commit.
///
/// **Decision:** API.md fixes no spec fields for Cluster; this project's spec is informational and optional.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ops.vworkspace.io",
    version = "v1alpha1",
    kind = "Cluster",
    shortname = "cluster",
    status = "ClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Connected",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Connected\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The cluster id (equals metadata.name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The Git path this cluster's intent lives under (default `clusters/<cluster-id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_path: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    #[default]
    Pending,
    Connected,
    Degraded,
    Disconnected,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClusterPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The newest commit verified under the trust policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_commit: Option<String>,
    /// Who signed it (principal or OpenPGP user id) and with which key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_signer: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<String>,
    /// Version of the operator maintaining this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_version: Option<String>,
    /// Which engine CRDs are installed (flux, velero, argo-workflows, volsync, csi-snapshot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<ControllerPresence>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerPresence {
    pub name: String,
    pub installed: bool,
}
