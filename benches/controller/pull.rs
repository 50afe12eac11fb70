//! Pull mode (6): N signed jobs queued at once on a control plane on loopback.

use super::*;
// ---------------------------------------------------------------------------------------------------------
// 6. Pull mode (issue #14): N signed jobs queued at once on a control plane on loopback.

pub(crate) struct PullRun {
    /// From queuing the jobs (a poll is waiting) to the last result posted.
    pub(crate) wall: Duration,
    /// Requests to the control plane by kind, during that time.
    pub(crate) control_plane: BTreeMap<String, usize>,
    /// Requests to the API server by the operator's client, during that time.
    pub(crate) requests: BTreeMap<(String, String), u64>,
    pub(crate) outcomes: BTreeMap<String, usize>,
}

pub(crate) async fn pull_run(client: &Client, n: usize, concurrency: usize) -> PullRun {
    use support::control_plane::ControlPlane;
    use vworkspace_operator::source::PullSettings;
    use vworkspace_operator::source::pull::{agent::PullConfig, job, signing};
    let (cluster, prefix, sys) = ("bench-pull", "pl", "bench-pull-system");
    gated_namespaces(client, prefix).await;
    testbed::namespace(client, sys, false).await;
    let cp = ControlPlane::start().await;
    cp.add_registration_token("bench-registration");
    testbed::apply(
        client,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registration", "namespace": sys},
            "stringData": {"registrationToken": "bench-registration"}}),
    )
    .await
    .expect("registration Secret");
    testbed::apply(
        client,
        &json!({"apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Cluster", "metadata": {"name": cluster},
            "spec": {"clusterId": cluster, "connectivityMode": "pull", "controlPlaneEndpoint": cp.url(),
                "registrationTokenSecretRef": {"name": "registration"}}}),
    )
    .await
    .expect("Cluster");
    // Signed jobs, as a careful control plane sends them.
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let public = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        key.verifying_key().to_bytes(),
    );
    let policy = TrustPolicy::from_yaml(&format!(
        "controlPlaneKeys:\n  - name: bench\n    key: {public}\n"
    ))
    .expect("policy");
    let expires = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2)).to_string();
    let jobs: Vec<Value> = intents(cluster, prefix, n)
        .into_iter()
        .enumerate()
        .map(|(i, (_, yaml))| {
            let payload: Value = serde_saphyr::from_str(&yaml).expect("intent YAML");
            let mut j = job::parse_job(
                json!({"id": format!("job-{i}"), "kind": "apply", "payload": payload,
                "idempotencyKey": format!("k-{i}"), "expiresAt": expires}),
            )
            .expect("job");
            j.signature = Some(signing::sign(&key, cluster, &j).expect("sign"));
            j.to_json()
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let requests = Requests::default();
    let operator_client = counted_client(&requests).await;
    let mut agent = PullConfig::new(cluster, sys, tmp.path().join("state/pull/token"));
    agent.allow_insecure_http = true;
    agent.poll_wait = Duration::from_secs(5);
    agent.job_deadline = Duration::from_secs(900);
    let config = bench_config(
        cluster,
        SourceConfig::Pull(PullSettings {
            agent,
            policy,
            event_signing_key_file: None,
        }),
        tmp.path(),
        concurrency,
    );
    let hr = resource(client, "helm.toolkit.fluxcd.io/v2", "HelmRelease").await;
    let operator = Operator::start(operator_client, config)
        .await
        .expect("operator start");
    let flux = play_helm_controller(client.clone(), hr, cluster, concurrency);
    // Registered and polling; start-up requests pass before counting.
    while cp.requests("jobs") == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = requests.snapshot();
    let cp_before = cp.lock().requests.clone();
    let started = Instant::now();
    cp.push(jobs);
    let deadline = Instant::now() + Duration::from_secs(900);
    while cp.lock().results.len() < n {
        assert!(Instant::now() < deadline, "not every job got a result");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = started.elapsed();
    let after = requests.snapshot();
    let cp_after = cp.lock().requests.clone();
    let control_plane = cp_after
        .iter()
        .map(|(k, v)| (k.to_string(), v - cp_before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let mut outcomes = BTreeMap::new();
    for results in cp.lock().results.values() {
        let o = results[0]["outcome"].as_str().unwrap_or("?").to_string();
        *outcomes.entry(o).or_insert(0) += 1;
    }
    flux.abort();
    operator.stop().await;
    PullRun {
        wall,
        control_plane,
        requests: diff(&after, &before),
        outcomes,
    }
}
