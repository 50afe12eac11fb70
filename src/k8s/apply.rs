//! Writing children: server-side apply of rendered objects (as DynamicObjects) with the operator's field
//! manager, skipped when the live object already carries every rendered field (so a resync with nothing
//! changed writes nothing), and deletion for finalizers and cancellation.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::api::FIELD_MANAGER;

/// Errors writing children.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{kind} is not served by the API server (is its CRD installed?)")]
    NotInstalled { kind: String },
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what}: rendered object has no apiVersion/kind/name")]
    Malformed { what: String },
}

/// Discovery answers by (apiVersion, kind); `None` when the server does not serve the kind.
type DiscoveryCache = BTreeMap<(String, String), Option<(ApiResource, ApiCapabilities)>>;

/// Resolves apiVersion/kind to API resources by discovery, caching answers (also negative ones, which expire
/// when [`Resources::forget_missing`] is called, e.g. after an engine is installed).
#[derive(Clone)]
pub struct Resources {
    client: Client,
    cache: Arc<RwLock<DiscoveryCache>>,
}

impl Resources {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Arc::default(),
        }
    }

    /// The resource of an apiVersion/kind, or None when the server does not serve it.
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<ApiResource>, ApplyError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(hit) = self.cache.read().await.get(&key) {
            return Ok(hit.as_ref().map(|(ar, _)| ar.clone()));
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok(found) => Some(found),
            Err(kube::Error::Api(e)) if e.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(source) => {
                return Err(ApplyError::Kube {
                    what: format!("discovering {api_version}/{kind}"),
                    source,
                });
            }
        };
        let ar = found.as_ref().map(|(ar, _)| ar.clone());
        self.cache.write().await.insert(key, found);
        Ok(ar)
    }

    /// Drop negative cache entries so newly installed CRDs are found.
    pub async fn forget_missing(&self) {
        self.cache.write().await.retain(|_, v| v.is_some());
    }

    /// The namespaced API for an object.
    pub async fn api_for(&self, obj: &Value) -> Result<(Api<DynamicObject>, String), ApplyError> {
        let what = crate::render::object_id(obj);
        let api_version = crate::render::api_version(obj);
        let kind = crate::render::kind(obj);
        let name = crate::render::name(obj).to_string();
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(ApplyError::Malformed { what });
        }
        let ar =
            self.resolve(api_version, kind)
                .await?
                .ok_or_else(|| ApplyError::NotInstalled {
                    kind: format!("{kind}.{}", crate::render::group(api_version)),
                })?;
        let api = match crate::render::namespace(obj) {
            "" => Api::all_with(self.client.clone(), &ar),
            ns => Api::namespaced_with(self.client.clone(), ns, &ar),
        };
        Ok((api, name))
    }

    /// The live object, if it exists.
    pub async fn get(&self, obj: &Value) -> Result<Option<Value>, ApplyError> {
        let (api, name) = self.api_for(obj).await?;
        match api.get_opt(&name).await {
            Ok(found) => Ok(found.map(|o| serde_json::to_value(o).unwrap_or(Value::Null))),
            Err(source) => Err(ApplyError::Kube {
                what: format!("reading {}", crate::render::object_id(obj)),
                source,
            }),
        }
    }

    /// Server-side apply `obj` unless `live` already has every field of it. Returns the object as the server
    /// answered the apply (without its managedFields), or None when nothing was written.
    pub async fn apply(
        &self,
        obj: &Value,
        live: Option<&Value>,
    ) -> Result<Option<Value>, ApplyError> {
        if live.is_some_and(|l| is_subset(obj, l)) {
            return Ok(None);
        }
        let (api, name) = self.api_for(obj).await?;
        let request = super::answer::patch(
            api.resource_url(),
            &name,
            None,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        );
        let super::answer::Object(applied) = super::answer::send(&self.client, request, "patch")
            .await
            .map_err(|source| ApplyError::Kube {
                what: format!("applying {}", crate::render::object_id(obj)),
                source,
            })?;
        Ok(Some(applied))
    }

    /// Make the object exactly `obj`, without reading it first (for Secrets, which the operator may write but
    /// not read): replace it (an unconditional update: fields, data keys and labels others added are gone),
    /// or create it when it does not exist. Returns the object as the server answered.
    pub async fn replace(&self, obj: &Value) -> Result<Value, ApplyError> {
        let (api, name) = self.api_for(obj).await?;
        let dynamic: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|_| ApplyError::Malformed {
                what: crate::render::object_id(obj),
            })?;
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let written = match api.replace(&name, &params, &dynamic).await {
            Err(kube::Error::Api(e)) if e.code == 404 => api.create(&params, &dynamic).await,
            other => other,
        };
        written
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
            .map_err(|source| ApplyError::Kube {
                what: format!("writing {}", crate::render::object_id(obj)),
                source,
            })
    }

    /// Create `obj` once; an existing object is left untouched (engine children are never edited).
    /// Returns whether it wrote.
    pub async fn create_once(&self, obj: &Value) -> Result<bool, ApplyError> {
        let (api, _) = self.api_for(obj).await?;
        let dynamic: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|_| ApplyError::Malformed {
                what: crate::render::object_id(obj),
            })?;
        match api
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                },
                &dynamic,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(source) => Err(ApplyError::Kube {
                what: format!("creating {}", crate::render::object_id(obj)),
                source,
            }),
        }
    }

    /// Delete an object (foreground propagation); a missing object is fine. Returns whether it still exists.
    pub async fn delete(&self, obj: &Value) -> Result<bool, ApplyError> {
        let (api, name) = match self.api_for(obj).await {
            Ok(x) => x,
            Err(ApplyError::NotInstalled { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        match api.get_opt(&name).await {
            Ok(None) => return Ok(false),
            Ok(Some(o)) if o.metadata.deletion_timestamp.is_some() => return Ok(true),
            Ok(Some(_)) => {}
            Err(source) => {
                return Err(ApplyError::Kube {
                    what: format!("reading {}", crate::render::object_id(obj)),
                    source,
                });
            }
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(source) => Err(ApplyError::Kube {
                what: format!("deleting {}", crate::render::object_id(obj)),
                source,
            }),
        }
    }

    /// Whether the server is namespaced for the kind (for owner references).
    pub async fn is_namespaced(&self, api_version: &str, kind: &str) -> bool {
        let key = (api_version.to_string(), kind.to_string());
        let _ = self.resolve(api_version, kind).await;
        self.cache
            .read()
            .await
            .get(&key)
            .and_then(|v| v.as_ref())
            .is_some_and(|(_, caps)| caps.scope == Scope::Namespaced)
    }
}

/// Whether every field of `want` is present with the same value in `live` (maps compared key by key,
/// everything else by equality). Fields the server adds (defaults, status, managedFields) do not matter.
pub fn is_subset(want: &Value, live: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| is_subset(v, lv))),
        (Value::Array(w), Value::Array(l)) => {
            w.len() == l.len() && w.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_added_fields_but_not_changes() {
        let want = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"interval": "10m", "list": [{"a": 1}]}});
        let live = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}, "managedFields": []},
            "spec": {"interval": "10m", "timeout": "5m", "list": [{"a": 1.0, "b": 2}]}, "status": {}});
        assert!(is_subset(&want, &live));
        let changed = json!({"metadata": {"name": "a", "labels": {"x": "2"}}});
        assert!(!is_subset(&changed, &live));
        assert!(!is_subset(
            &json!({"spec": {"list": [{"a": 1}, {"a": 2}]}}),
            &live
        ));
    }
}
