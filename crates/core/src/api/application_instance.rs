use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::KeyRef;

/// "Run this chart at this version with these values in this namespace."
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode != 'placeholder' || !has(self.chart)", "fieldPath": ".chart", "reason": "FieldValueForbidden",
     "message": "must not be set in placeholder mode (a placeholder installs nothing)"},
    {"rule": "self.mode != 'placeholder' || !has(self.release)", "fieldPath": ".release", "reason": "FieldValueForbidden",
     "message": "must not be set in placeholder mode (a placeholder installs nothing)"},
    {"rule": "self.mode != 'placeholder' || !has(self.values)", "fieldPath": ".values", "reason": "FieldValueForbidden",
     "message": "must not be set in placeholder mode (a placeholder installs nothing)"},
    {"rule": "self.mode != 'placeholder' || !has(self.integrations)", "fieldPath": ".integrations",
     "reason": "FieldValueForbidden", "message": "must not be set in placeholder mode (a placeholder installs nothing)"},
    {"rule": "self.mode == 'placeholder' || has(self.chart)", "fieldPath": ".chart", "reason": "FieldValueRequired",
     "message": "must be set in managed mode"},
    {"rule": "self.mode == 'placeholder' || has(self.release)", "fieldPath": ".release", "reason": "FieldValueRequired",
     "message": "must be set in managed mode"},
    {"rule": "self.mode == 'placeholder' || has(self.values)", "fieldPath": ".values", "reason": "FieldValueRequired",
     "message": "must be set in managed mode"}
]))]
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.sourceType != 'oci' || self.url.startsWith('oci://')", "fieldPath": ".url",
     "message": "must be an oci:// URL for sourceType oci"},
    {"rule": "self.sourceType != 'helm' || self.url.startsWith('https://')", "fieldPath": ".url",
     "message": "must be an https:// Helm repository URL for sourceType helm"},
    {"rule": "!self.url.contains('@')", "fieldPath": ".url",
     "message": "must not carry credentials (use a Secret on the chart source)"},
    {"rule": "!has(self.digest) || self.sourceType == 'oci'", "fieldPath": ".digest",
     "message": "pins an OCI artifact: only for sourceType oci (a Helm repository chart has no digest to pin)"},
    {"rule": "self.sourceType != 'oci' || !self.url.startsWith('oci://') || self.url.contains('@') || self.url.matches('^oci://[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?([.][A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*)+/?$')",
     "fieldPath": ".url",
     "message": "must be oci://HOST[:PORT]/PATH: a DNS name or IPv4 address, an optional port, and a repository path of lower-case components separated by '/' (no query or fragment)"},
    {"rule": "self.sourceType != 'helm' || !self.url.startsWith('https://') || self.url.contains('@') || self.url.matches('^https://[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?([.][A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9/._~%-]*)?$')",
     "fieldPath": ".url",
     "message": "must be https://HOST[:PORT][/PATH]: a DNS name or IPv4 address, an optional port, and a path of letters, digits and '/', '-', '.', '_', '~', '%' (no query or fragment)"}
]))]
pub struct ChartSpec {
    pub source_type: ChartSourceType,
    /// `oci://…` for oci, `https://…` (a Helm repository index) for helm. It is copied into the chart source as
    /// it is, so only a plain URL passes.
    #[schemars(length(max = 1024))]
    pub url: String,
    /// One OCI repository path component (Helm's naming convention): it lands in the OCIRepository URL and
    /// the HelmRelease's chart reference.
    #[schemars(length(max = 128), extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]+(([.]|_|__|-+)[a-z0-9]+)*$')",
         "message": "must be a chart name: lower-case letters and digits, separated by '.', '_', '__' or '-' (at most 128 characters)"}
    ]))]
    pub name: String,
    /// An exact semver version: no ranges, no `latest`.
    #[schemars(length(max = 128), extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)(-[0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?([+][0-9A-Za-z-]+([.][0-9A-Za-z-]+)*)?$')",
         "messageExpression": "self + ' is not an exact semver version such as 1.2.3 (no ranges, no latest, no leading v)'"}
    ]))]
    pub version: String,
    /// Pins the chart's OCI artifact (`sha256:` and 64 lower-case hex digits, the manifest digest `helm push`
    /// prints): Flux pulls exactly these bytes and never reads the tag, so a re-pushed tag changes nothing.
    /// Optional; `oci` charts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 71), extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^sha256:[0-9a-f]{64}$')",
         "message": "must be sha256: followed by 64 lower-case hex digits (the chart's OCI manifest digest)"}
    ]))]
    pub digest: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.name == oldSelf.name", "fieldPath": ".name", "messageExpression": "'immutable: was ' + oldSelf.name"},
    {"rule": "self.__namespace__ == oldSelf.__namespace__", "fieldPath": ".namespace",
     "messageExpression": "'immutable: was ' + oldSelf.__namespace__"}
]))]
pub struct ReleaseSpec {
    /// Becomes the HelmRelease name; immutable.
    #[schemars(length(max = 63), extend("x-kubernetes-validations" = [
        {"rule": "size(self) <= 53 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
         "message": "must be a DNS-1123 label of at most 53 characters (a Helm release name)"}
    ]))]
    pub name: String,
    /// Must equal metadata.namespace (the admission policy checks it: a CRD rule cannot see the namespace);
    /// immutable.
    #[schemars(length(max = 63))]
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.inline) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) + (has(self.configMapRef) ? 1 : 0) == 1 && (self.source == 'inline' ? has(self.inline) : self.source == 'secretRef' ? has(self.secretRef) : has(self.configMapRef))",
     "messageExpression": "'exactly one values source must be populated and match values.source ' + self.source + '; populated: [' + (has(self.inline) ? 'inline' : '') + (has(self.inline) && (has(self.secretRef) || has(self.configMapRef)) ? ', ' : '') + (has(self.secretRef) ? 'secretRef' : '') + (has(self.secretRef) && has(self.configMapRef) ? ', ' : '') + (has(self.configMapRef) ? 'configMapRef' : '') + ']'"}
]))]
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.certManager) && self.certManager.enabled) || (has(self.ingress) && self.ingress.enabled)",
     "fieldPath": ".certManager", "message": "needs integrations.ingress (certificates are for the ingress host)"}
]))]
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
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!self.enabled || (has(self.host) && size(self.host) > 0)", "fieldPath": ".host",
     "reason": "FieldValueRequired", "message": "must be set when ingress is enabled"}
]))]
pub struct IngressIntegration {
    #[serde(default)]
    pub enabled: bool,
    /// Required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = [
        {"rule": "size(self) == 0 || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
         "message": "must be a host name (a DNS-1123 subdomain)"}
    ]))]
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
