//! Reading the cluster for `trace` with whatever the caller may read: every read that fails (forbidden, a kind
//! not served, the API server) is written down as what could not be shown and why, and the trace goes on.

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use crate::k8s::apply::{ApplyError, Resources};

/// A reader that keeps what it could not read.
pub struct Reader {
    client: Client,
    resources: Resources,
    /// `<what>: <why>`, in the order met.
    pub unreadable: Vec<String>,
}

impl Reader {
    pub fn new(client: Client) -> Self {
        Self {
            resources: Resources::new(client.clone()),
            client,
            unreadable: Vec::new(),
        }
    }

    fn note(&mut self, what: String, error: &ApplyError) {
        let why = match error {
            ApplyError::Kube {
                source: kube::Error::Api(e),
                ..
            } if e.code == 403 => "not permitted (RBAC)".to_string(),
            ApplyError::NotInstalled { kind } => format!("{kind} is not served here"),
            ApplyError::Kube { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        let line = format!("{what}: {why}");
        if !self.unreadable.contains(&line) {
            self.unreadable.push(line);
        }
    }

    /// One object; None when it does not exist or cannot be read (then written down).
    pub async fn get(
        &mut self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let probe = serde_json::json!({
            "apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}
        });
        match self.resources.get(&probe).await {
            Ok(found) => found,
            Err(e) => {
                let what = if ns.is_empty() {
                    format!("{kind} {name}")
                } else {
                    format!("{kind} {ns}/{name}")
                };
                self.note(what, &e);
                None
            }
        }
    }

    /// The objects of a kind everywhere with a label selector; empty when they cannot be listed (then written
    /// down).
    pub async fn list_labelled(
        &mut self,
        api_version: &str,
        kind: &str,
        labels: &str,
    ) -> Vec<Value> {
        self.list_with(
            api_version,
            kind,
            None,
            ListParams::default().labels(labels),
        )
        .await
    }

    /// The objects of a kind (in `ns`, or everywhere), optionally by field selector; empty when they cannot be
    /// listed (then written down).
    pub async fn list(
        &mut self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        fields: Option<&str>,
    ) -> Vec<Value> {
        let mut params = ListParams::default();
        if let Some(f) = fields {
            params = params.fields(f);
        }
        self.list_with(api_version, kind, ns, params).await
    }

    async fn list_with(
        &mut self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        params: ListParams,
    ) -> Vec<Value> {
        let what = match ns {
            Some(ns) => format!("{kind} in {ns}"),
            None => format!("{kind} in every namespace"),
        };
        let ar = match self.resources.resolve(api_version, kind).await {
            Ok(Some(ar)) => ar,
            Ok(None) => {
                self.note(
                    what,
                    &ApplyError::NotInstalled {
                        kind: format!("{kind}.{}", crate::render::group(api_version)),
                    },
                );
                return Vec::new();
            }
            Err(e) => {
                self.note(what, &e);
                return Vec::new();
            }
        };
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        match api.list(&params).await {
            Ok(list) => list
                .items
                .into_iter()
                .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                .collect(),
            Err(source) => {
                self.note(what.clone(), &ApplyError::Kube { what, source });
                Vec::new()
            }
        }
    }
}
