//! Admission cost on the test bed's real kube-apiserver (testbed/):
//!
//! 1. **Webhook latency**: the operator's webhook (in this process, real HTTPS, certificates issued by its own
//!    code) answering AdmissionReviews from a loopback client at RATE requests per second (default 200) for
//!    SECONDS (default 10): p50 / p99 / max of the round trip, for a mix of a valid ApplicationInstance, one with
//!    an inline password (refused), and an Operation (its target read from the API server).
//! 2. **The API server's added latency**: creating N ApplicationInstances (default 500, CONCURRENCY 16 in
//!    flight) in a gated namespace with no admission objects, with the ValidatingAdmissionPolicy only, and with
//!    the policy and the webhook: wall time and per-create p50 / p99.
//!
//! Run:
//!
//!     cargo bench --bench admission
//!     RATE=400 SECONDS=5 N=200 cargo bench --bench admission
//!
//! Not a test: `cargo test` does not run it (harness = false).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::testbed;
use tokio::sync::Semaphore;
use vworkspace_operator::render::{RenderOptions, Renderer, Templates};
use vworkspace_operator::webhook::{self, CertSource, WebhookConfig, WebhookServer, certs};

const CLUSTER: &str = "bench-1";
const NS: &str = "bench";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ai(name: &str, inline: Value) -> Value {
    json!({
        "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
        "metadata": {"name": name, "namespace": NS, "labels": {
            "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": CLUSTER},
            "annotations": {"ops.vworkspace.io/backup": "velero"}},
        "spec": {"appRef": {"catalogId": "nextcloud"},
                 "chart": {"sourceType": "oci", "url": "oci://ghcr.io/nextcloud/helm", "name": "nextcloud",
                           "version": "6.6.4"},
                 "release": {"name": name, "namespace": NS},
                 "values": {"source": "inline", "inline": inline}}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn api(client: &kube::Client, kind: &str) -> Api<DynamicObject> {
    testbed::intent_api(client, kind, NS)
}

/// Create `n` ApplicationInstances named `{prefix}-{i}`, `concurrency` in flight; (wall, sorted latencies).
async fn create_many(
    client: &kube::Client,
    prefix: &str,
    n: u64,
    concurrency: usize,
) -> (Duration, Vec<Duration>) {
    let apps = api(client, "ApplicationInstance");
    let gate = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let apps = apps.clone();
        let gate = gate.clone();
        let obj: DynamicObject =
            serde_json::from_value(ai(&format!("{prefix}-{i}"), json!({"replicas": 1}))).unwrap();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let t = Instant::now();
            apps.create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("create: {e}"));
            t.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    let wall = start.elapsed();
    latencies.sort();
    let _ = apps
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await;
    (wall, latencies)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = env_u64("RATE", 200);
    let seconds = env_u64("SECONDS", 10);
    let n = env_u64("N", 500);
    let concurrency = env_u64("CONCURRENCY", 16) as usize;
    vworkspace_operator::report::install_crypto_provider();
    let client = testbed::client().await;
    testbed::install_crds(&client, &testbed::project_crds()).await;
    testbed::namespace(&client, NS, true).await;
    testbed::namespace(&client, "vworkspace-system", false).await;
    testbed::cluster_object(&client, CLUSTER).await;

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = WebhookServer::bind(
        client.clone(),
        std::sync::Arc::new(Renderer::new(
            Templates::embedded(),
            RenderOptions {
                cluster_id: Some(CLUSTER.into()),
                ..RenderOptions::default()
            },
        )),
        CLUSTER.into(),
        WebhookConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            certs: CertSource::Managed {
                secret_namespace: "vworkspace-system".into(),
                secret_name: "bench-webhook-tls".into(),
                configuration: webhook::CONFIGURATION_NAME.into(),
                settings: certs::CertSettings {
                    names: vec!["127.0.0.1".into()],
                    ca_validity: Duration::from_secs(86400),
                    cert_validity: Duration::from_secs(3600),
                },
            },
            approval_key: None,
        },
        None,
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.serve(stop_rx));
    let secret = Api::<Secret>::namespaced(client.clone(), "vworkspace-system")
        .get("bench-webhook-tls")
        .await
        .unwrap();
    let ca = secret.data.unwrap()[certs::CA_CRT].0.clone();

    // The target the Operation requests read.
    api(&client, "ApplicationInstance")
        .create(
            &PostParams::default(),
            &serde_json::from_value(ai("target", json!({}))).unwrap(),
        )
        .await
        .unwrap();

    // 1. Webhook latency at a fixed rate (open loop: requests start on schedule, whatever the answers).
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let url = format!("https://{addr}/validate");
    let op = json!({
        "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
        "metadata": {"name": "nightly", "namespace": NS, "labels": {
            "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": CLUSTER}},
        "spec": {"targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                               "name": "target"},
                 "type": "Backup", "engine": "velero", "parameters": {"ttl": "72h"}}
    });
    let bodies = [
        (
            "valid ApplicationInstance",
            ai("web", json!({"replicas": 2})),
        ),
        (
            "inline password (refused)",
            ai("leaky", json!({"db": {"password": "x"}})),
        ),
        ("Operation (target read)", op),
    ];
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..total as usize {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (label, body) = &bodies[i % bodies.len()];
        let payload =
            serde_json::to_vec(&testbed::admission_review(&format!("bench-{i}"), body)).unwrap();
        let http = http.clone();
        let url = url.clone();
        let label = *label;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let res = http
                .post(&url)
                .header("content-type", "application/json")
                .body(payload)
                .send()
                .await
                .unwrap();
            let v: Value = res.json().await.unwrap();
            assert!(v["response"]["allowed"].is_boolean(), "{v}");
            (label, t.elapsed())
        }));
    }
    let sent_in = start.elapsed();
    let mut all = Vec::new();
    let mut by_label: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    for t in tasks {
        let (label, d) = t.await.unwrap();
        all.push(d);
        by_label.entry(label).or_default().push(d);
    }
    all.sort();
    println!(
        "\nWebhook latency: {total} AdmissionReviews at {rate}/s over {:.1} s (HTTPS on loopback, keep-alive)",
        sent_in.as_secs_f64()
    );
    println!("| requests | p50 | p99 | max |");
    println!("|---|---|---|---|");
    for (label, mut ds) in by_label {
        ds.sort();
        println!(
            "| {label} ({}) | {} | {} | {} |",
            ds.len(),
            ms(percentile(&ds, 0.5)),
            ms(percentile(&ds, 0.99)),
            ms(*ds.last().unwrap())
        );
    }
    println!(
        "| all ({}) | {} | {} | {} |",
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().unwrap())
    );

    // 2. The API server's added latency: the same N creates with no admission objects, with the policy, and
    // with the policy and the webhook.
    let mut manifests = webhook::admission_manifests();
    manifests[2]["webhooks"][0]["clientConfig"] =
        json!({"url": url, "caBundle": base64_encode(&ca)});
    let mut rows = Vec::new();
    for (label, objects) in [
        ("no admission objects", &manifests[..0]),
        ("admission policy", &manifests[..2]),
        ("admission policy + webhook", &manifests[..3]),
    ] {
        for m in objects {
            testbed::apply(&client, m).await.unwrap();
        }
        // Let the API server's policy and webhook informers catch up.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let prefix = format!("b{}", rows.len());
        let (wall, lat) = create_many(&client, &prefix, n, concurrency).await;
        rows.push((label, wall, lat));
    }
    println!("\nCreating {n} ApplicationInstances, {concurrency} in flight, on Kubernetes 1.37.2:");
    println!("| admission | wall | per create p50 | p99 | creates/s |");
    println!("|---|---|---|---|---|");
    for (label, wall, lat) in &rows {
        println!(
            "| {label} | {:.2} s | {} | {} | {:.0} |",
            wall.as_secs_f64(),
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.99)),
            n as f64 / wall.as_secs_f64()
        );
    }
    stop.send(true).unwrap();
    let _ = serving.await;
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
