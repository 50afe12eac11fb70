//! Reading the API server's answers to the operator's own writes, keeping only what the operator uses.
//!
//! An answer to a write is the whole object, and most of its bytes are often `metadata.managedFields` (each field
//! manager's set of owned fields, a tree as deep as the object). Parsing those trees was a tenth of the
//! operator's CPU, more than half of it in answers, from which nothing reads them: a status write needs only
//! the new `resourceVersion`, an Event's answer nothing at all, a child's answer everything but its field
//! owners. So the answers are parsed into these types, which skip what they do not keep while parsing (serde's
//! `IgnoredAny`: the bytes are still checked to be JSON, but no tree is built).

use std::fmt;

use kube::Client;
use kube::core::Request;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An object as the API server answered a write, without `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct Object(pub Value);

/// Only the `resourceVersion` of the answer.
#[derive(Debug, Default, Deserialize)]
pub struct Version {
    #[serde(default)]
    metadata: VersionMeta,
}

#[derive(Debug, Default, Deserialize)]
struct VersionMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
}

impl Version {
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }
}

/// Send one write and parse its answer as `T` (one of the types above, or `IgnoredAny`). `verb` names the
/// request as kube's own methods do (its tracing reads it).
pub async fn send<T: DeserializeOwned>(
    client: &Client,
    request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    verb: &'static str,
) -> Result<T, kube::Error> {
    let mut request = request.map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert(verb);
    client.request::<T>(request).await
}

/// A patch of `name` under `url` (a collection's path, `Api::resource_url`), or of its `subresource`.
pub fn patch<P: Serialize>(
    url: &str,
    name: &str,
    subresource: Option<&str>,
    params: &kube::api::PatchParams,
    patch: &kube::api::Patch<P>,
) -> Result<http::Request<Vec<u8>>, kube::core::request::Error> {
    let request = Request::new(url);
    match subresource {
        Some(sub) => request.patch_subresource(sub, name, params, patch),
        None => request.patch(name, params, patch),
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(MapVisitor { metadata: true })
            .map(|map| Object(Value::Object(map)))
    }
}

/// A JSON object; at the top (`metadata: true`) its `metadata` is read by a visitor that skips
/// `managedFields`.
struct MapVisitor {
    metadata: bool,
}

impl<'de> Visitor<'de> for MapVisitor {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if self.metadata && key == "metadata" {
                let meta = access.next_value::<Metadata>()?;
                map.insert(key, Value::Object(meta.0));
            } else if !self.metadata && key == "managedFields" {
                access.next_value::<IgnoredAny>()?;
            } else {
                let value = access.next_value::<Value>()?;
                map.insert(key, value);
            }
        }
        Ok(map)
    }
}

struct Metadata(Map<String, Value>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(MapVisitor { metadata: false })
            .map(Metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_keeps_everything_but_its_field_owners() {
        let answer = json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7", "labels": {"x": "1"},
                "managedFields": [{"manager": "m", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"managedFields": "kept: only metadata's are field owners"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        let Object(read) = serde_json::from_str(&answer.to_string()).unwrap();
        let mut expected = answer.clone();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(read, expected);
        // Key order is the answer's.
        let keys: Vec<&String> = read["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "namespace", "resourceVersion", "labels"]);
    }

    #[test]
    fn only_the_version_of_a_status_answer_is_read() {
        let v: Version = serde_json::from_str(
            r#"{"metadata": {"name": "a", "resourceVersion": "42", "managedFields": [{"x": [1, {"y": null}]}]},
                "status": {"deep": [[[{}]]]}}"#,
        )
        .unwrap();
        assert_eq!(v.resource_version(), Some("42"));
        let none: Version = serde_json::from_str(r#"{"kind": "Status"}"#).unwrap();
        assert_eq!(none.resource_version(), None);
    }

    #[test]
    fn bytes_that_are_not_json_are_refused_even_where_skipped() {
        assert!(serde_json::from_str::<Object>(r#"{"metadata": {"managedFields": [1,}}"#).is_err());
        assert!(serde_json::from_str::<Version>(r#"{"status": {"a": tru}}"#).is_err());
        assert!(serde_json::from_str::<Object>("[]").is_err());
    }
}
