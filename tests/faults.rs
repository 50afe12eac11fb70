//! Faults injected on the real stack (issue #17 item 2): this test binary runs an API server of its own (the test
//! bed's kube-apiserver and etcd, not shared with other tests) and kills its processes with SIGKILL while the
//! operator is rolling intents out, then starts them again on the same ports and data. At the end every intent has
//! converged and its outcome is in the audit trail exactly once: one git note record per outcome, none lost, none
//! doubled.
//!
//! Played: helm-controller (no chart can install here), by `support::helm_standin`, which writes the Ready status
//! helm-controller would write for each HelmRelease and keeps retrying through the outages; and
//! kustomize-controller, by this test applying the intents with server-side apply as it would (retrying while the
//! API server is away, as it does).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::gitfix::{GitRemote, Signer, policy_yaml};
use support::helm_standin;
use support::testbed::{self, ApiServer};
use vworkspace_operator::api::ApplicationInstance;
use vworkspace_operator::controller::run::{Operator, OperatorConfig};

const CLUSTER: &str = "faults";
const INTENTS: usize = 200;
const NAMESPACES: usize = 4;

fn ns_of(i: usize) -> String {
    format!("faults-{}", i % NAMESPACES)
}

/// Intent `i` with `replicas` in its values (what the second commit changes: helm-controller's stand-in answers a
/// HelmRelease's new generation, as helm-controller upgrades on a spec change).
fn app_yaml(i: usize, replicas: usize) -> String {
    support::manifests::nextcloud_app(
        CLUSTER,
        &ns_of(i),
        i,
        "1.0.0",
        &format!("{{replicaCount: {replicas}}}"),
    )
}

/// Every intent with `replicas` in one signed commit; returns the commit.
fn publish_all(remote: &GitRemote, signer: &Signer, replicas: usize) -> String {
    for i in 0..INTENTS {
        remote.write(
            &format!(
                "clusters/{CLUSTER}/namespaces/{}/applicationinstance-app-{i}.yaml",
                ns_of(i)
            ),
            &app_yaml(i, replicas),
        );
    }
    remote.commit(
        &format!("{INTENTS} intents, {replicas} replicas each"),
        Some(signer),
        &signer.email,
    )
}

/// Apply every intent with `replicas` as kustomize-controller would, 8 at a time, each retried until the API server
/// takes it; `applied` counts them (the test kills a process half-way).
async fn flux_apply_all(client: Client, replicas: usize, applied: Arc<AtomicUsize>) {
    use futures::StreamExt;
    futures::stream::iter(0..INTENTS)
        .map(|i| {
            let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), &ns_of(i));
            let value: Value = serde_saphyr::from_str(&app_yaml(i, replicas)).unwrap();
            let applied = applied.clone();
            async move {
                loop {
                    let patched = api
                        .patch(
                            &format!("app-{i}"),
                            &PatchParams::apply("kustomize-controller").force(),
                            &Patch::Apply(&value),
                        )
                        .await;
                    if patched.is_ok() {
                        applied.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
}

/// How many intents are Ready=True at their current generation (None while the API server does not answer).
async fn ready_now(client: &Client) -> Option<usize> {
    let api: Api<ApplicationInstance> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(&format!("app.vworkspace.io/cluster-id={CLUSTER}")))
        .await
        .ok()?;
    Some(
        list.items
            .iter()
            .filter(|a| {
                let generation = a.metadata.generation;
                a.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == "Ready"
                            && c.status == "True"
                            && c.observed_generation == generation
                    })
                })
            })
            .count(),
    )
}

async fn wait_all_ready(client: &Client, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let ready = ready_now(client).await;
        if ready == Some(INTENTS) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), &ns_of(0));
            let sample = api.get_opt("app-0").await.ok().flatten();
            panic!(
                "{what}: {ready:?} of {INTENTS} Ready after 600 s; app-0: generation {:?}, status {}",
                sample.as_ref().and_then(|a| a.metadata.generation),
                serde_json::to_string(&sample.and_then(|a| a.status)).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The note records on `commit` in the git server's repository, as plain git shows them.
fn notes(remote: &GitRemote, commit: &str) -> Vec<Value> {
    remote
        .try_git(
            &remote.bare,
            &[
                "notes",
                "--ref",
                &format!("vworkspace/{CLUSTER}"),
                "show",
                commit,
            ],
        )
        .map(|text| {
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until every intent has its Ready record on `commit`; then check that no record is there twice.
async fn exactly_one_ready_note_each(remote: &GitRemote, commit: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let records = notes(remote, commit);
        let mut per_intent: BTreeMap<(String, String), usize> = BTreeMap::new();
        for r in &records {
            let key = (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["outcome"].as_str().unwrap_or_default().to_string(),
            );
            *per_intent.entry(key).or_default() += 1;
        }
        let doubled: Vec<_> = per_intent.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            doubled.is_empty(),
            "{what}: records written twice: {doubled:?}"
        );
        let ready = per_intent.keys().filter(|(_, o)| o == "Ready").count();
        if ready == INTENTS {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {ready} of {INTENTS} Ready records on {commit} after 120 s ({} records)",
            records.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What every test here starts from: an API server of its own with the CRDs and the gated namespaces, and a cluster
/// repo with one signed commit.
struct Bed {
    server: ApiServer,
    client: Client,
    tmp: tempfile::TempDir,
    remote: GitRemote,
    signer: Signer,
}

async fn bed() -> Bed {
    let server = ApiServer::start_own();
    let client = testbed::client_for(&server.kubeconfig).await;
    let mut crds = testbed::project_crds();
    crds.extend(testbed::upstream_crds());
    testbed::install_crds(&client, &crds).await;
    for i in 0..NAMESPACES {
        testbed::namespace(&client, &ns_of(i), true).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (remote, signer) = support::operator::signed_repo(tmp.path());
    Bed {
        server,
        client,
        tmp,
        remote,
        signer,
    }
}

/// The in-process operator's settings for this test's cluster, posting events to `control_plane` if given.
fn operator_config(
    tmp: &std::path::Path,
    remote: &GitRemote,
    signer: &Signer,
    control_plane: Option<vworkspace_operator::report::events::PosterConfig>,
) -> OperatorConfig {
    let mut config = support::operator::gitops_config(tmp, remote, signer, CLUSTER);
    config.control_plane = control_plane;
    config.cluster_interval = Duration::from_secs(5);
    config.max_concurrent_reconciles = 16;
    config
}

/// Roll every intent out with `replicas` (this test applying them as Flux), and SIGKILL `process` once half of
/// them are applied; start it again 3 s later.
async fn roll_out_killing(server: &ApiServer, client: &Client, replicas: usize, process: &str) {
    let applied = Arc::new(AtomicUsize::new(0));
    let rollout = tokio::spawn(flux_apply_all(client.clone(), replicas, applied.clone()));
    while applied.load(Ordering::SeqCst) < INTENTS / 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill(process);
    eprintln!(
        "{process} killed (SIGKILL) with {} of {INTENTS} intents applied",
        applied.load(Ordering::SeqCst)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = std::time::Instant::now();
    server.restart(process);
    eprintln!(
        "{process} started again ({:.1} s to ready)",
        restarted.elapsed().as_secs_f64()
    );
    rollout.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_and_etcd_killed_mid_rollout_lose_and_double_nothing() {
    let Bed {
        server,
        client,
        tmp,
        remote,
        signer,
    } = bed().await;
    let first = publish_all(&remote, &signer, 1);

    let config = operator_config(tmp.path(), &remote, &signer, None);
    let operator = Operator::start(client.clone(), config).await.unwrap();
    let hr = testbed::api_resource(
        &client,
        &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}),
    )
    .await;
    let helm = helm_standin::play(client.clone(), hr, CLUSTER, "1.0.0", 8);

    // 1. kube-apiserver killed while the 200 intents are being created.
    roll_out_killing(&server, &client, 1, "kube-apiserver").await;
    wait_all_ready(&client, "after kube-apiserver's crash").await;
    exactly_one_ready_note_each(&remote, &first, "after kube-apiserver's crash").await;

    // 2. etcd killed while all 200 are being changed by a second signed commit.
    let second = publish_all(&remote, &signer, 2);
    operator.sync_now().await;
    roll_out_killing(&server, &client, 2, "etcd").await;
    wait_all_ready(&client, "after etcd's crash").await;
    exactly_one_ready_note_each(&remote, &second, "after etcd's crash").await;

    // Nothing more arrives later: the records stay as they are, and the first commit's are untouched.
    let settled = (notes(&remote, &first), notes(&remote, &second));
    tokio::time::sleep(Duration::from_secs(3)).await;
    exactly_one_ready_note_each(&remote, &first, "at the end").await;
    assert_eq!(settled, (notes(&remote, &first), notes(&remote, &second)));
    helm.abort();
    operator.stop().await;
}

/// `vworkspace-operator run` as a process on this test's API server and repo, posting events to `receiver`.
fn start_operator_process(
    server: &ApiServer,
    tmp: &std::path::Path,
    remote: &GitRemote,
    signer: &Signer,
    receiver: &support::receiver::Receiver,
    log_name: &str,
) -> std::process::Child {
    let policy = tmp.join("policy.yaml");
    std::fs::write(&policy, policy_yaml(&[signer], "range")).unwrap();
    let token = tmp.join("cp-token");
    std::fs::write(&token, "faults-token").unwrap();
    let log = std::fs::File::create(tmp.join(log_name)).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
        .env("KUBECONFIG", &server.kubeconfig)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("RUST_LOG", "info")
        .args(["run", "--cluster-id", CLUSTER, "--repo-url", &remote.url()])
        .arg("--policy")
        .arg(&policy)
        .arg("--state-dir")
        .arg(tmp.join("state"))
        .args([
            "--log-format=text",
            "--fetch-interval=1s",
            "--notes-batch-window=200ms",
            "--leader-election=false",
            "--metrics-addr=127.0.0.1:0",
            "--health-addr=127.0.0.1:0",
        ])
        .arg(format!("--control-plane-endpoint=http://{}", receiver.addr))
        .arg("--control-plane-token-file")
        .arg(&token)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start the operator")
}

/// The operator process killed with SIGKILL while outcomes are being written (notes pushed in batches, events
/// posted in batches) and started again on the same state directory: every outcome reaches the audit trail exactly
/// once, and every Ready transition reaches the control plane (events are delivered at least once, each with its
/// `eventKey`, on which the control plane deduplicates: docs/events.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_killed_while_writing_outcomes_delivers_each_once_after_restart() {
    let Bed {
        server,
        client,
        tmp,
        remote,
        signer,
    } = bed().await;
    let commit = publish_all(&remote, &signer, 1);
    let receiver = support::receiver::Receiver::start().await;
    let hr = testbed::api_resource(
        &client,
        &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}),
    )
    .await;
    let helm = helm_standin::play(client.clone(), hr, CLUSTER, "1.0.0", 8);

    let mut first = start_operator_process(
        &server,
        tmp.path(),
        &remote,
        &signer,
        &receiver,
        "operator-1.log",
    );
    flux_apply_all(client.clone(), 1, Arc::new(AtomicUsize::new(0))).await;
    // Kill it once outcomes are flowing: some notes on the remote, more still to come.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let noted = notes(&remote, &commit).len();
        if (20..INTENTS).contains(&noted) {
            break;
        }
        assert!(
            noted < INTENTS,
            "every outcome was noted before the kill: lower the pace or raise INTENTS"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notes after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    eprintln!(
        "operator killed (SIGKILL) with {} of {INTENTS} Ready records on the remote, {} events received",
        notes(&remote, &commit).len(),
        receiver.keys().len()
    );

    let mut second = start_operator_process(
        &server,
        tmp.path(),
        &remote,
        &signer,
        &receiver,
        "operator-2.log",
    );
    wait_all_ready(&client, "after the operator's restart").await;
    exactly_one_ready_note_each(&remote, &commit, "after the operator's restart").await;
    // Every Ready transition reached the control plane.
    wait_ready_events(&receiver).await;
    let keys = receiver.keys();
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    eprintln!(
        "events: {} received, {} distinct keys (the rest are redeliveries of the same key)",
        keys.len(),
        distinct.len()
    );
    let _ = second.kill();
    let _ = second.wait();
    helm.abort();
}

/// Wait (up to 120 s) until every intent's Ready=True transition is among the events the receiver got.
async fn wait_ready_events(receiver: &support::receiver::Receiver) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let missing = missing_ready_events(receiver);
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ready never reached the control plane for {} intents, e.g. app-{}",
            missing.len(),
            missing[0]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Which intents have no Ready=True transition among the events the receiver got.
fn missing_ready_events(receiver: &support::receiver::Receiver) -> Vec<usize> {
    let keys = receiver.keys();
    (0..INTENTS)
        .filter(|i| {
            let prefix = format!(
                "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/{}/app-{i}/",
                ns_of(*i)
            );
            !keys
                .iter()
                .any(|k| k.starts_with(&prefix) && k.contains("/Ready/True"))
        })
        .collect()
}

/// The control plane slow (each answer takes 10 s, the request timeout), then failing (500), then throttling (429),
/// while 200 intents roll out: reconciles are not held up by it, the event buffer stays within its capacity
/// (dropping the oldest, reported on the Cluster), and once the control plane answers again the snapshot brings
/// every Ready transition to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_then_failing_control_plane_blocks_no_reconcile_and_loses_no_state() {
    let Bed {
        server: _server,
        client,
        tmp,
        remote,
        signer,
    } = bed().await;
    publish_all(&remote, &signer, 1);
    let receiver = support::receiver::Receiver::start().await;
    receiver.delay_ms.store(10_000, Ordering::SeqCst);
    let token = tmp.path().join("token");
    std::fs::write(&token, "faults-token").unwrap();
    let mut pc = vworkspace_operator::report::events::PosterConfig::new(
        format!("http://{}", receiver.addr),
        token,
        CLUSTER,
    );
    // Smaller than what 200 intents transition through, so the bound shows.
    pc.buffer_capacity = 200;
    pc.max_backoff = Duration::from_secs(2);
    let capacity = pc.buffer_capacity;
    let operator = Operator::start(
        client.clone(),
        operator_config(tmp.path(), &remote, &signer, Some(pc)),
    )
    .await
    .unwrap();
    let poster = operator.poster.clone().expect("the event poster");
    let hr = testbed::api_resource(
        &client,
        &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}),
    )
    .await;
    let helm = helm_standin::play(client.clone(), hr, CLUSTER, "1.0.0", 8);

    // Slow: every post times out. The intents converge anyway, and the buffer never holds more than it may.
    let started = std::time::Instant::now();
    // Ends only if the buffer ever holds more than its capacity.
    let over_capacity = {
        let poster = poster.clone();
        tokio::spawn(async move {
            loop {
                let buffered = poster.stats().buffered;
                if buffered > capacity {
                    return buffered;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    flux_apply_all(client.clone(), 1, Arc::new(AtomicUsize::new(0))).await;
    wait_all_ready(&client, "while the control plane is slow").await;
    let converged = started.elapsed();
    if over_capacity.is_finished() {
        panic!("the buffer held {:?} events", over_capacity.await);
    }
    over_capacity.abort();
    let stats = poster.stats();
    assert!(
        stats.dropped_overflow > 0,
        "the bound was never reached: {stats:?}"
    );
    assert!(poster.state().overflow, "BufferOverflow is reported");
    eprintln!(
        "slow control plane: 200 intents Ready in {:.1} s; {} events dropped (oldest first), buffer ≤ {capacity}",
        converged.as_secs_f64(),
        stats.dropped_overflow
    );

    // Failing, then throttling, then back.
    receiver.delay_ms.store(0, Ordering::SeqCst);
    receiver.status.store(500, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    receiver.status.store(429, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    receiver.status.store(204, Ordering::SeqCst);
    wait_ready_events(&receiver).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while poster.state().overflow {
        assert!(
            tokio::time::Instant::now() < deadline,
            "BufferOverflow still set after the buffer drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    helm.abort();
    operator.stop().await;
}
