use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The per-cluster singleton, named after the cluster id. The operator creates and maintains it; its status
/// reports connectivity, which controllers are installed, and the last verified commit.
///
/// **Decision:** the contract fixes no spec fields for Cluster (docs/api.md, decision 16); this project's spec is informational and optional.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
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
    /// How intent reaches the cluster (docs/operator.md#modes); `run --mode` wins when given. Default gitops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectivity_mode: Option<ConnectivityMode>,
    /// Pull mode: the control plane's base URL (`https://…`; `http://` only with `--allow-insecure-http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub control_plane_endpoint: Option<String>,
    /// Pull mode: the Secret (operator namespace) holding the one-time registration token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_secret_ref: Option<SecretKeyRef>,
    /// Pull mode: rotate the control-plane credential (once per generation with this set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_credentials: Option<bool>,
    /// Reserved by the upstream API (any value is kept, none is acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value_schema")]
    pub capabilities: Option<serde_json::Value>,
}

fn any_value_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-preserve-unknown-fields": true})
}

/// How intent reaches the cluster.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectivityMode {
    /// Signed commits in the cluster repo, synced by Flux.
    #[default]
    Gitops,
    /// The operator long-polls the control plane for jobs.
    Pull,
    /// The control plane applies the intents itself.
    Push,
}

/// A key of a Secret in the operator's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    pub name: String,
    /// Default `registrationToken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Pull mode: the credential the operator holds.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_namespace: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_consumed: Option<bool>,
}

/// A Secret's name and namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretRef {
    pub name: String,
    pub namespace: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ClusterPhase {
    #[default]
    Pending,
    /// Pull mode: registering with the control plane.
    Registering,
    Connected,
    Degraded,
    Disconnected,
    /// Pull mode: a configuration error the operator cannot retry its way out of (see the conditions).
    Error,
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
    /// The engine that installs ApplicationInstances' charts on this cluster: `flux` or `argocd` (the
    /// operator's `--engine`; not chosen per intent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_engine: Option<String>,
    /// Which engine CRDs are installed: the Helm engine's first (flux or argocd), then velero,
    /// argo-workflows, volsync, csi-snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<ControllerPresence>,
    /// Pull mode: the last successful round trip to the control plane (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_status: Option<CredentialStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The first 16 hex digits of the SHA-256 of the token in use (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_token: Option<String>,
    /// Outcome records (git notes) written but not yet on the remote (added by this project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes_pending: Option<i64>,
    /// Condition changes waiting to be posted to the control plane (added by this project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_pending: Option<i64>,
    /// When the admission webhook's serving certificate expires, RFC 3339 (added by this project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_certificate_expiry: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerPresence {
    pub name: String,
    pub installed: bool,
}
