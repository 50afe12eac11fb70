//! The trust policy while the operator runs: its source (the mounted file, or the Secret) is read again every
//! few seconds; when its text changes, the new policy goes to the intent source ([`super::PolicyTarget`]): the
//! Git view judges the branch again under it at once, the Pull agent and the Push source take its keys. A policy that does not parse, or whose source is gone, distrusts
//! everything until a valid one is back (fail closed): a typo must not leave a revoked key trusted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::PolicyTarget;
use crate::git::policy::TrustPolicy;
use crate::metrics::{Metrics, PolicyReloadResult};

/// Where the trust policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOrigin {
    /// A file (the mounted Secret). Relative paths in it (`sigstoreTrustedRoot`) are relative to its
    /// directory; only the policy file's own text is watched.
    File(PathBuf),
    /// The key `policy.yaml` of a Secret, read through the API.
    Secret { namespace: String, name: String },
}

impl std::fmt::Display for PolicyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Secret { namespace, name } => write!(f, "Secret {namespace}/{name}"),
        }
    }
}

/// Reloading the trust policy while running.
#[derive(Debug, Clone)]
pub struct PolicyReload {
    pub origin: PolicyOrigin,
    /// How often the source is read.
    pub interval: Duration,
    /// The text the running policy was parsed from (a change is a different text).
    pub loaded: String,
    /// Where a changed `charts` section goes (the renderer's chart trust), and what then asks every
    /// ApplicationInstance to be rendered again. Set by the operator at start.
    pub charts: Option<ChartReload>,
}

/// The chart trust in force and the ticks that re-render every ApplicationInstance when it changes.
#[derive(Debug, Clone)]
pub struct ChartReload {
    pub cell: crate::charts::ChartTrustCell,
    pub changed: Arc<watch::Sender<u64>>,
}

impl ChartReload {
    /// Put a policy's chart trust in force; tick when it differs from what was.
    fn apply(&self, policy: &TrustPolicy) {
        if self.cell.set(policy.charts().clone()) {
            info!(
                "the trust policy's charts section changed: rendering every ApplicationInstance again"
            );
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

/// What reading the source gave.
enum Read {
    Text(String),
    /// The source is gone (file or Secret or key deleted): nothing can be trusted.
    Gone(String),
    /// A transient failure (the API server, an I/O error): keep the policy in force, try again.
    Failed(String),
}

async fn read(origin: &PolicyOrigin, client: &kube::Client) -> Read {
    match origin {
        PolicyOrigin::File(path) => {
            let path = path.clone();
            let read = tokio::task::spawn_blocking(move || {
                crate::git::policy::read_to_string_limited(&path)
            })
            .await;
            match read {
                Ok(Ok(text)) => Read::Text(text),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    Read::Gone(format!("{origin}: {e}"))
                }
                Ok(Err(e)) => Read::Failed(format!("{origin}: {e}")),
                Err(e) => Read::Failed(e.to_string()),
            }
        }
        PolicyOrigin::Secret { namespace, name } => {
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(client.clone(), namespace);
            match api.get_opt(name).await {
                Ok(None) => Read::Gone(format!("{origin} does not exist")),
                Ok(Some(secret)) => match secret.data.and_then(|d| d.get("policy.yaml").cloned()) {
                    None => Read::Gone(format!("{origin} has no key policy.yaml")),
                    Some(bytes) => match String::from_utf8(bytes.0) {
                        Ok(text) => Read::Text(text),
                        Err(_) => Read::Gone(format!("{origin}: policy.yaml is not UTF-8")),
                    },
                },
                Err(e) => Read::Failed(format!("reading {origin}: {e}")),
            }
        }
    }
}

fn parse(origin: &PolicyOrigin, text: &str) -> Result<TrustPolicy, String> {
    match origin {
        // Through the file, so relative paths resolve as at start.
        PolicyOrigin::File(path) => TrustPolicy::load(path),
        PolicyOrigin::Secret { .. } => TrustPolicy::from_yaml(text),
    }
    .map_err(|e| format!("{origin}: {e}"))
}

/// Watch the policy's source until `stop`; each change goes to `source`, and `wake` asks the Git view's loop to
/// judge again now rather than at its next fetch.
pub async fn run(
    reload: PolicyReload,
    client: kube::Client,
    source: Arc<dyn PolicyTarget>,
    wake: Arc<Notify>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    // What the view was last judged under: the text, or the reason nothing is trusted.
    let mut current: Result<String, String> = Ok(reload.loaded.clone());
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(reload.interval) => {}
        }
        let next = match read(&reload.origin, &client).await {
            Read::Text(text) => Ok(text),
            Read::Gone(why) => Err(why),
            Read::Failed(why) => {
                warn!(error = %why, "reading the trust policy failed; the policy in force stays");
                continue;
            }
        };
        if next == current {
            continue;
        }
        let policy = match &next {
            Ok(text) => parse(&reload.origin, text),
            Err(why) => Err(why.clone()),
        };
        match &policy {
            Ok(_) => {
                info!(origin = %reload.origin, "the trust policy changed: judging the cluster repo again under it");
                metrics.trust_policy_reloaded(PolicyReloadResult::Applied);
            }
            Err(e) => {
                warn!(error = %e, "the new trust policy is not usable: nothing is trusted until it is fixed");
                metrics.trust_policy_reloaded(PolicyReloadResult::Invalid);
            }
        }
        if let (Some(charts), Ok(policy)) = (&reload.charts, &policy) {
            charts.apply(policy);
        }
        source.set_policy(policy);
        wake.notify_one();
        current = next;
    }
}
