use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::KeyRef;

/// "Run this chart at this version with these values in this namespace."
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "apps.vworkspace.io",
    version = "v1alpha1",
    kind = "ApplicationInstance",
    namespaced,
    shortname = "appinst",
    status = "ApplicationInstanceStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Chart", type_ = "string", json_path = ".spec.chart.name"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.chart.version"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationInstanceSpec {
    /// The catalog entry this instance runs.
    pub app_ref: AppRef,
    /// `managed` (default) installs the chart; `placeholder` reserves the name and renders nothing.
    #[serde(default)]
    pub mode: AppMode,
    /// The chart to install (required in managed mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartSpec>,
    /// The Helm release (required in managed mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseSpec>,
    /// Chart values (required in managed mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<ValuesSpec>,
    /// Platform integrations, translated into chart values per catalog entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrations: Option<Integrations>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppRef {
    /// Catalog id, e.g. nextcloud, mattermost, vaultwarden.
    #[schemars(length(min = 1))]
    pub catalog_id: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AppMode {
    #[default]
    Managed,
    Placeholder,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ChartSourceType {
    /// An OCI registry: `oci://…`, rendered as an OCIRepository.
    Oci,
    /// A Helm repository index: `https://…`, rendered as a HelmRepository.
    Helm,
}

impl ChartSourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oci => "oci",
            Self::Helm => "helm",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChartSpec {
    pub source_type: ChartSourceType,
    /// `oci://…` for oci, `https://…` (a Helm repository index) for helm.
    pub url: String,
    pub name: String,
    /// An exact semver version: no ranges, no `latest`.
    pub version: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// Becomes the HelmRelease name; immutable.
    pub name: String,
    /// Must equal metadata.namespace; immutable.
    pub namespace: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ValuesSource {
    Inline,
    SecretRef,
    ConfigMapRef,
}

impl ValuesSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::SecretRef => "secretRef",
            Self::ConfigMapRef => "configMapRef",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValuesSpec {
    pub source: ValuesSource,
    /// Passed verbatim to the chart; the inline-secret rule set applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::free_object_schema")]
    pub inline: Option<serde_json::Map<String, serde_json::Value>>,
    /// A Secret whose key holds a YAML values document (referenced, never copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeyRef>,
    /// A ConfigMap whose key holds a YAML values document (referenced, never copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<KeyRef>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Integrations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_secrets: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressIntegration>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toggle {
    #[serde(default)]
    pub enabled: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressIntegration {
    #[serde(default)]
    pub enabled: bool,
    /// Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Integrations {
    pub fn external_secrets_enabled(&self) -> bool {
        self.external_secrets.as_ref().is_some_and(|t| t.enabled)
    }
    pub fn cert_manager_enabled(&self) -> bool {
        self.cert_manager.as_ref().is_some_and(|t| t.enabled)
    }
    pub fn ingress_enabled(&self) -> bool {
        self.ingress.as_ref().is_some_and(|t| t.enabled)
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationInstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_release_ref: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_chart: Option<AppliedChart>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// The intent commit the applied rendering came from (GitOps provenance; added by this project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_commit: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub name: String,
    pub namespace: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedChart {
    pub source_type: ChartSourceType,
    pub url: String,
    pub name: String,
    pub version: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}
