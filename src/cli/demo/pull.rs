//! The demo's Pull-mode scene (docs/pull.md), with no cluster: a control plane on loopback (an HTTP server the
//! demo starts itself) queues two jobs for the example ApplicationInstance, one signed with the control plane's
//! key and one signed by a key the policy does not name. The demo polls it with the operator's own agent client,
//! acks each job and judges it with the agent's own rule (`pull::admit`): the signed job is admitted and
//! rendered (what the operator would apply; applying needs a cluster: `--kubeconfig`), the forged one is
//! refused, and that refusal is posted to the control plane as the job's `failed` result.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde::Serialize;
use serde_json::{Value, json};

use crate::source::pull::admit::{Admission, admit};
use crate::source::pull::client::AgentClient;
use crate::source::pull::job;
use crate::source::pull::signing::{self, ControlPlaneKey};

/// What the scene showed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullInfo {
    pub endpoint: String,
    pub jobs: Vec<PullJob>,
    /// The result bodies the control plane received, by job id.
    pub results: Vec<(String, Value)>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullJob {
    pub id: String,
    pub story: String,
    pub admitted: bool,
    /// The signer, or the refusal.
    pub verdict: String,
    /// What it renders into, when admitted.
    pub objects: Vec<String>,
}

#[derive(Default)]
struct Received {
    acks: Vec<String>,
    results: Vec<(String, Value)>,
    delivered: bool,
}

/// Run the scene for the example intent `app` (an ApplicationInstance document as JSON).
pub fn run(cluster: &str, app: Value) -> anyhow::Result<PullInfo> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(scene(cluster, app))
}

async fn scene(cluster: &str, app: Value) -> anyhow::Result<PullInfo> {
    crate::report::install_crypto_provider();
    let (keys, queue) = queue(cluster, app)?;

    // The control plane: GET /api/agent/jobs hands the queue out once; ack and result are recorded.
    let received: Arc<Mutex<Received>> = Arc::default();
    let app_router = control_plane(&received, queue);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app_router).await });

    // The operator's side: its agent client and its admission rule.
    let client = AgentClient::new(&endpoint, Duration::from_secs(5)).map_err(|e| anyhow!(e))?;
    let jobs = client
        .jobs(TOKEN, cluster, Duration::from_secs(1))
        .await
        .context("polling the demo control plane")?;
    let renderer = crate::render::renderer(None, Some(cluster), "velero")?;
    let mut lines = Vec::new();
    for parsed in jobs {
        let j = parsed?;
        client.ack(TOKEN, &j.id).await?;
        lines.push(judge(&client, &renderer, &keys, cluster, j).await?);
    }
    server.abort();
    let results = received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .results
        .clone();
    Ok(PullInfo {
        endpoint,
        jobs: lines,
        results,
    })
}

/// The agent's session token (the demo control plane takes any).
const TOKEN: &str = "demo-session-token";

/// The control plane's key (the only one the policy names) and its queue: the job for `app` signed with
/// that key, and the same job signed by a forger.
fn queue(
    cluster: &str,
    app: Value,
) -> anyhow::Result<(Result<Vec<ControlPlaneKey>, String>, Value)> {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let cp_key = ed25519_dalek::SigningKey::from_bytes(&seed);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let forger = ed25519_dalek::SigningKey::from_bytes(&seed);
    let keys = Ok(vec![ControlPlaneKey {
        name: "demo-control-plane".into(),
        key: cp_key.verifying_key(),
    }]);
    let expires = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(10)).to_string();
    let payload = json!({"intent": "ensure-application-instance", "applicationInstance": app});
    let mut signed = job::parse_job(
        json!({"id": "job-signed", "kind": "intent", "payload": payload,
        "idempotencyKey": "demo-1", "expiresAt": expires}),
    )?;
    signed.signature = Some(signing::sign(&cp_key, cluster, &signed)?);
    let mut forged = signed.clone();
    forged.id = "job-forged".into();
    forged.idempotency_key = "demo-2".into();
    forged.signature = Some(signing::sign(&forger, cluster, &forged)?);
    Ok((keys, json!({"jobs": [signed.to_json(), forged.to_json()]})))
}

/// The control plane's routes: GET /api/agent/jobs hands `queue` out once; acks and results are recorded in
/// `received`.
fn control_plane(received: &Arc<Mutex<Received>>, queue: Value) -> axum::Router {
    let (r1, r2) = (received.clone(), received.clone());
    axum::Router::new()
        .route(
            "/api/agent/jobs",
            axum::routing::get(move || {
                let r = r1.clone();
                let queue = queue.clone();
                async move {
                    let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
                    let body = if r.delivered {
                        json!({"jobs": null})
                    } else {
                        queue
                    };
                    r.delivered = true;
                    body.to_string()
                }
            }),
        )
        .route(
            "/api/agent/jobs/{id}/{what}",
            axum::routing::post(
                move |axum::extract::Path((id, what)): axum::extract::Path<(String, String)>,
                      body: axum::body::Bytes| {
                    let r = r2.clone();
                    async move {
                        let mut r = r.lock().unwrap_or_else(|e| e.into_inner());
                        match what.as_str() {
                            "ack" => r.acks.push(id),
                            "result" => r
                                .results
                                .push((id, serde_json::from_slice(&body).unwrap_or(Value::Null))),
                            _ => {}
                        }
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        )
}

/// Judge one job with the agent's rule: an admitted job is rendered (what the operator would apply); a
/// refused one is posted back to the control plane as a `failed` result.
async fn judge(
    client: &AgentClient,
    renderer: &crate::render::Renderer,
    keys: &Result<Vec<ControlPlaneKey>, String>,
    cluster: &str,
    j: job::Job,
) -> anyhow::Result<PullJob> {
    let now = jiff::Timestamp::now();
    let story = if j.id == "job-signed" {
        "signed with the control plane's key"
    } else {
        "the same payload, signed with a key the policy does not name"
    };
    match admit(&j, keys, cluster, now) {
        Admission::Accept { action, signer } => {
            let job::Action::Apply(obj) = action else {
                anyhow::bail!("the demo job is an apply");
            };
            let app: crate::api::ApplicationInstance = serde_json::from_value(obj)?;
            let objects = renderer
                .render_application(&app)
                .map_err(|e| anyhow!("{e}"))?
                .iter()
                .map(|o| {
                    format!(
                        "{} {}/{}",
                        crate::render::kind(o),
                        crate::render::namespace(o),
                        crate::render::name(o)
                    )
                })
                .collect();
            Ok(PullJob {
                id: j.id.clone(),
                story: story.into(),
                admitted: true,
                verdict: format!("signed by {signer}"),
                objects,
            })
        }
        Admission::Noop(error) | Admission::Refuse { error, .. } => {
            client
                .result(
                    TOKEN,
                    &j.id,
                    &job::JobResult {
                        outcome: job::Outcome::Failed,
                        error: Some(error.clone()),
                        applied_ref: None,
                        timestamp: now.to_string(),
                    },
                )
                .await?;
            Ok(PullJob {
                id: j.id.clone(),
                story: story.into(),
                admitted: false,
                verdict: error,
                objects: Vec::new(),
            })
        }
    }
}

impl std::fmt::Display for PullInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "6. Pull mode (docs/pull.md): a control plane on loopback ({}) queued two jobs; the operator's agent \
             polled, acked and judged them (no cluster: nothing applied)",
            self.endpoint
        )?;
        for j in &self.jobs {
            writeln!(
                f,
                "   {:11} {:8} {}: {}",
                j.id,
                if j.admitted { "ADMITTED" } else { "REFUSED" },
                j.story,
                j.verdict
            )?;
            for o in &j.objects {
                writeln!(f, "               would apply {o}")?;
            }
        }
        for (id, r) in &self.results {
            writeln!(f, "   the control plane received for {id}: {r}")?;
        }
        Ok(())
    }
}
