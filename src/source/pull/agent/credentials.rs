//! The agent's credentials: the credentials Secret, registration with the control plane (the one-time token),
//! the provenance key, and rotation on request (the Cluster's rotate annotation).

use std::sync::PoisonError;
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use super::*;
use crate::api::{Cluster, ClusterPhase};
use crate::source::pull::client::ApiError;

impl Agent {
    pub(super) fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), &self.cfg.namespace)
    }

    /// Read the credentials Secret; register when there is none. `Err(Some(d))`: try again after `d`.
    pub(super) async fn ensure_credentials(&self) -> Result<(), Option<Duration>> {
        let secret = self
            .secrets()
            .get_opt(CREDENTIALS_SECRET)
            .await
            .map_err(|e| {
                warn!(error = %e, "Pull mode: reading the credentials Secret");
                None
            })?;
        if let Some(secret) = secret {
            let data = secret_data(&secret);
            if let (Some(base), Some(token)) =
                (data.get("control-plane-base-url"), data.get("token"))
                && !token.is_empty()
            {
                let key = match data.get("provenance-key") {
                    Some(k) if k.len() >= 32 => k.as_bytes().to_vec(),
                    _ => self.add_provenance_key().await.map_err(|e| {
                        warn!(error = %e, "Pull mode: storing the provenance key");
                        None
                    })?,
                };
                *self
                    .provenance_key
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(key);
                self.use_token(base, token, data.get("registered-at").cloned())
                    .await;
                return Ok(());
            }
        }
        self.register().await
    }

    pub(super) async fn use_token(&self, base: &str, token: &str, registered_at: Option<String>) {
        let creds = Creds {
            base: base.to_string(),
            token: token.to_string(),
        };
        *self.creds.write().unwrap_or_else(PoisonError::into_inner) = Some(creds);
        if let Err(e) = write_private(&self.cfg.token_file, token.as_bytes()).await {
            warn!(error = %e, file = %self.cfg.token_file.display(), "Pull mode: writing the token file");
        }
        if let (Some(m), Some(at)) = (
            &self.metrics,
            registered_at
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok()),
        ) {
            let age = Timestamp::now().duration_since(at);
            m.set_credential_age(Duration::try_from(age).unwrap_or_default());
        }
        let fp = fingerprint(token);
        self.set_status(|s| {
            s.observed_token = Some(fp);
            s.registered_at = registered_at;
        });
    }

    pub(super) async fn add_provenance_key(&self) -> Result<Vec<u8>, kube::Error> {
        let key = new_provenance_key();
        self.secrets()
            .patch(
                CREDENTIALS_SECRET,
                &PatchParams::apply(crate::api::FIELD_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": CREDENTIALS_SECRET},
                    "stringData": {"provenance-key": key},
                })),
            )
            .await?;
        Ok(key.into_bytes())
    }

    /// Validate an endpoint as the contract and our decision say: `https://`, or `http://` when allowed.
    pub(super) fn check_endpoint(&self, endpoint: &str) -> Result<(), String> {
        if endpoint.starts_with("https://") {
            Ok(())
        } else if endpoint.starts_with("http://") {
            if self.cfg.allow_insecure_http {
                Ok(())
            } else {
                Err(format!(
                    "controlPlaneEndpoint {endpoint:?} is plain http: refused (set --allow-insecure-http for a test \
                     control plane on loopback)"
                ))
            }
        } else {
            Err(format!(
                "controlPlaneEndpoint {endpoint:?} is not an http(s) URL"
            ))
        }
    }

    pub(super) async fn cluster(&self) -> Result<Option<Cluster>, kube::Error> {
        Api::<Cluster>::all(self.kube.clone())
            .get_opt(&self.cfg.cluster_id)
            .await
    }

    /// Register with the one-time token named by the Cluster.
    pub(super) async fn register(&self) -> Result<(), Option<Duration>> {
        let missing = |message: String| {
            self.set_status(|s| {
                s.phase = ClusterPhase::Pending;
                s.authenticated = Some((false, "TokenSecretMissing", message.clone()));
                s.connected = (false, "CredentialMissing", message);
            });
            Some(Duration::from_secs(5))
        };
        let cluster = self.cluster().await.map_err(|e| {
            warn!(error = %e, "Pull mode: reading the Cluster");
            None
        })?;
        let spec = cluster.map(|c| c.spec).unwrap_or_default();
        let Some(endpoint) = spec
            .control_plane_endpoint
            .clone()
            .or_else(|| self.cfg.endpoint.clone())
        else {
            return Err(missing(format!(
                "no control-plane endpoint: set spec.controlPlaneEndpoint of Cluster {}",
                self.cfg.cluster_id
            )));
        };
        if let Err(message) = self.check_endpoint(&endpoint) {
            self.set_status(|s| {
                s.phase = ClusterPhase::Error;
                s.authenticated = Some((false, "RegistrationFailed", message.clone()));
                s.connected = (false, "CredentialMissing", message);
            });
            return Err(Some(Duration::from_secs(10)));
        }
        let Some(token_ref) = spec.registration_token_secret_ref.clone() else {
            return Err(missing(format!(
                "no credentials Secret {CREDENTIALS_SECRET} and no spec.registrationTokenSecretRef on Cluster {} to \
                 register with",
                self.cfg.cluster_id
            )));
        };
        let key = token_ref
            .key
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_KEY.into());
        let reg_secret = self.secrets().get_opt(&token_ref.name).await.map_err(|e| {
            warn!(error = %e, "Pull mode: reading the registration token Secret");
            None
        })?;
        let Some(registration_token) = reg_secret
            .as_ref()
            .and_then(|s| secret_data(s).get(&key).cloned())
            .filter(|t| !t.is_empty())
        else {
            return Err(missing(format!(
                "Secret {}/{} has no key {key:?} (the registration token)",
                self.cfg.namespace, token_ref.name
            )));
        };
        self.set_status(|s| s.phase = ClusterPhase::Registering);
        let client = self.client(&endpoint).map_err(|e| {
            warn!(error = %e, "Pull mode: HTTP client");
            None
        })?;
        match client
            .register(registration_token.trim(), &self.cfg.cluster_id, None)
            .await
        {
            Ok(r) => {
                if r.cluster_id != self.cfg.cluster_id {
                    let message = format!(
                        "the control plane registered this cluster as {:?}, but the operator runs as {:?}",
                        r.cluster_id, self.cfg.cluster_id
                    );
                    self.set_status(|s| {
                        s.phase = ClusterPhase::Error;
                        s.authenticated = Some((false, "RegistrationFailed", message.clone()));
                    });
                    return Err(Some(Duration::from_secs(30)));
                }
                let now = Timestamp::now().to_string();
                let pkey = new_provenance_key();
                let written = self
                    .secrets()
                    .patch(
                        CREDENTIALS_SECRET,
                        &PatchParams::apply(crate::api::FIELD_MANAGER).force(),
                        &Patch::Apply(json!({
                            "apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": CREDENTIALS_SECRET, "labels": {"app.kubernetes.io/managed-by": "vworkspace-operator"}},
                            "type": "Opaque",
                            "stringData": {
                                "control-plane-base-url": endpoint.trim_end_matches('/'),
                                "cluster-id": r.cluster_id,
                                "token": r.token,
                                "registered-at": now,
                                "provenance-key": pkey,
                            },
                        })),
                    )
                    .await;
                if let Err(e) = written {
                    warn!(error = %e, "Pull mode: storing the credential");
                    return Err(None);
                }
                *self
                    .provenance_key
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(pkey.into_bytes());
                info!(cluster = %self.cfg.cluster_id, "Pull mode: registered with the control plane");
                self.use_token(endpoint.trim_end_matches('/'), &r.token, Some(now))
                    .await;
                self.set_status(|s| {
                    s.registration_token_consumed = true;
                    s.authenticated = Some((
                        true,
                        "RegistrationComplete",
                        "registered with the control plane".into(),
                    ));
                });
                Ok(())
            }
            Err(e) => {
                let transient = e.transient();
                let message = format!("registration failed: {e}");
                self.set_status(|s| {
                    s.phase = if transient {
                        ClusterPhase::Disconnected
                    } else {
                        ClusterPhase::Error
                    };
                    s.authenticated = Some((false, "RegistrationFailed", message.clone()));
                    if transient {
                        s.connected = (
                            false,
                            crate::api::conditions::reasons::CONTROL_PLANE_UNREACHABLE,
                            message,
                        );
                    }
                });
                match e {
                    ApiError::TooManyRequests(d) => Err(d),
                    _ if transient => Err(None),
                    // Refused: wait for the registration Secret to change.
                    _ => Err(Some(Duration::from_secs(10))),
                }
            }
        }
    }

    /// Re-read the credentials Secret; whether it holds another token than the one in use.
    pub(super) async fn reread(&self) -> bool {
        let before = self.token();
        if self.ensure_credentials().await.is_err() {
            return false;
        }
        self.token() != before
    }

    /// Rotate when the Cluster asks (spec flag, once per generation; or a new annotation value).
    pub(super) async fn maybe_rotate(&self) {
        let Ok(Some(cluster)) = self.cluster().await else {
            return;
        };
        let Ok(Some(secret)) = self.secrets().get_opt(CREDENTIALS_SECRET).await else {
            return;
        };
        let data = secret_data(&secret);
        let generation = cluster.metadata.generation.unwrap_or_default().to_string();
        let by_spec = cluster.spec.rotate_credentials == Some(true)
            && data.get("rotated-generation") != Some(&generation);
        let annotation = cluster.annotations().get(ROTATE_ANNOTATION).cloned();
        let by_annotation = annotation
            .as_ref()
            .is_some_and(|a| !a.is_empty() && data.get("rotated-annotation") != Some(a));
        if !by_spec && !by_annotation {
            return;
        }
        let Some(creds) = self.token() else { return };
        let Ok(client) = self.client(&creds.base) else {
            return;
        };
        match client.rotate(&creds.token).await {
            Ok(r) => {
                let now = Timestamp::now().to_string();
                let mut data = json!({"token": r.token, "registered-at": now});
                if by_spec {
                    data["rotated-generation"] = json!(generation);
                }
                if let Some(a) = annotation.filter(|_| by_annotation) {
                    data["rotated-annotation"] = json!(a);
                }
                let written = self
                    .secrets()
                    .patch(
                        CREDENTIALS_SECRET,
                        &PatchParams::apply(crate::api::FIELD_MANAGER).force(),
                        &Patch::Apply(json!({
                            "apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": CREDENTIALS_SECRET},
                            "stringData": data,
                        })),
                    )
                    .await;
                // The old token is invalid from now on: use the new one even if storing it failed.
                self.use_token(&creds.base, &r.token, Some(now)).await;
                match written {
                    Ok(_) => {
                        info!("Pull mode: credential rotated");
                        self.set_status(|s| {
                            s.authenticated = Some((
                                true,
                                "CredentialRotated",
                                "the control-plane credential was rotated".into(),
                            ));
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "Pull mode: storing the rotated credential");
                        self.set_status(|s| {
                            s.authenticated = Some((
                                true,
                                "RotationFailed",
                                format!(
                                    "rotated, but the new credential could not be stored ({e}); it is held in memory"
                                ),
                            ));
                        });
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "Pull mode: credential rotation");
                self.set_status(|s| {
                    s.authenticated =
                        Some((false, "RotationFailed", format!("rotation failed: {e}")));
                });
            }
        }
    }
}

/// 32 random bytes, base64: the HMAC key of provenance stamps.
pub(super) fn new_provenance_key() -> String {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Write a file only the operator reads (0600), replacing it atomically.
pub(super) async fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        std::io::Write::write_all(&mut f, data)?;
    }
    tokio::fs::rename(&tmp, path).await
}
