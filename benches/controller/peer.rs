//! A peer on the same work (PHASES=peer; issue #25 item 6): Flux Operator's ResourceSet, the closest widely used
//! tool to the operator's intent → HelmRelease rendering, produces the same N HelmReleases + OCIRepositories from
//! N inputs of one ResourceSet on the same API server; the operator (the release binary) produces them from N
//! signed intents. Both run as processes of their own, one after the other, in the same run:
//!
//! - Flux Operator v0.59.0 (testbed/go/flux-operator, built on demand): from creating the ResourceSet until every
//!   object exists (a watch of both kinds by the ResourceSet's labels), and until the ResourceSet is Ready; its
//!   peak RSS.
//! - The operator: from the moment this process starts creating the intents (as Flux's kustomize-controller
//!   would, from one signed commit the operator verifies) until every object exists, and until every instance
//!   is Ready (this process plays helm-controller, as in the other phases); its peak RSS.
//!
//! The ResourceSet's templates are the operator's own rendering of intent 0 with its name and namespace made
//! template expressions, so both write the same objects (less the owner reference to an instance, which a
//! ResourceSet has no use for; it tracks its objects in its inventory).

use super::*;

pub(crate) struct PeerRun {
    pub(crate) label: String,
    pub(crate) applied: Duration,
    pub(crate) ready: Duration,
    pub(crate) vm_hwm_kib: u64,
    /// CPU seconds by process from the start of the clock until all are Ready.
    pub(crate) cpu: String,
}

/// Flux Operator, then the operator, on the same N objects.
pub(crate) async fn peer_runs(client: &Client, n: usize, concurrency: usize) -> Vec<PeerRun> {
    testbed::install_crds(client, &testbed::peer_crds()).await;
    vec![
        flux_operator_run(client, n, concurrency).await,
        operator_peer_run(client, n, concurrency).await,
        operator_started_run(client, n, concurrency).await,
    ]
}

/// Every string of `v` with `from` replaced by `to`.
fn replace_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|i| replace_strings(i, from, to)),
        Value::Object(map) => map.values_mut().for_each(|i| replace_strings(i, from, to)),
        _ => {}
    }
}

/// The ResourceSet: the operator's objects for intent 0 of `cluster` in `prefix-0`, as templates over
/// `inputs.name` and `inputs.namespace`, and one input per intent.
fn resource_set(cluster: &str, prefix: &str, n: usize) -> Value {
    let (ns0, yaml0) = intents(cluster, prefix, 1).remove(0);
    let app: ApplicationInstance = serde_saphyr::from_str(&yaml0).expect("intent");
    let mut resources = renderer(cluster).render_application(&app).expect("render");
    for r in &mut resources {
        if let Some(meta) = r["metadata"].as_object_mut() {
            meta.remove("ownerReferences");
        }
        replace_strings(r, &ns0, "<< inputs.namespace >>");
        replace_strings(r, "app-0", "<< inputs.name >>");
    }
    let inputs: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("app-{i}"), "namespace": namespace(prefix, i)}))
        .collect();
    json!({
        "apiVersion": "fluxcd.controlplane.io/v1",
        "kind": "ResourceSet",
        "metadata": {"name": "peer", "namespace": "flux-system"},
        "spec": {"inputs": inputs, "resources": resources},
    })
}

/// Wait until `n` objects of each kind carry `selector` (watches); the time it took from `started`.
async fn all_applied(
    client: &Client,
    selector: &str,
    n: usize,
    started: Instant,
    timeout: Duration,
) -> Duration {
    let kinds = [
        ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
    ];
    let waits = kinds.map(|(api_version, kind)| async move {
        let ar = resource(client, api_version, kind).await;
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut stream = std::pin::pin!(
            watcher(api, watcher::Config::default().labels(selector))
                .default_backoff()
                .applied_objects()
        );
        let deadline = tokio::time::Instant::now() + timeout;
        while seen.len() < n {
            match tokio::time::timeout_at(deadline, stream.try_next()).await {
                Ok(Ok(Some(o))) => {
                    seen.insert((o.namespace().unwrap_or_default(), o.name_any()));
                }
                Ok(_) => {}
                Err(_) => panic!("only {} of {n} {kind}s after {timeout:?}", seen.len()),
            }
        }
        started.elapsed()
    });
    let [a, b] = waits;
    let (a, b) = futures::join!(a, b);
    a.max(b)
}

async fn flux_operator_run(client: &Client, n: usize, concurrency: usize) -> PeerRun {
    let prefix = "peer-fo";
    for i in 0..NAMESPACES {
        testbed::namespace(client, &namespace(prefix, i), false).await;
    }
    testbed::namespace(client, "flux-system", false).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(tmp.path().join("flux-operator.log")).expect("log");
    let mut child = tokio::process::Command::new(testbed::bin("flux-operator"))
        .args([
            "--enable-leader-election=false",
            "--metrics-addr=0",
            "--health-addr=0",
            "--web-server-port=0",
            &format!("--concurrent={concurrency}"),
            "--log-level=error",
        ])
        .arg(format!("--storage-path={}", tmp.path().display()))
        .env("KUBECONFIG", &testbed::server().kubeconfig)
        // It refuses to run outside FIPS 140-3 mode, which its release images switch on at build time.
        .env("GODEBUG", "fips140=on")
        .env("RUNTIME_NAMESPACE", "flux-system")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start flux-operator");
    let pid = child.id().expect("pid");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rs = resource(client, "fluxcd.controlplane.io/v1", "ResourceSet").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "flux-system", &rs);
    let set = resource_set("bench-peer", prefix, n);
    let timeout = Duration::from_secs(1800);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    api.patch(
        "peer",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&set),
    )
    .await
    .expect("create the ResourceSet");
    let selector = "resourceset.fluxcd.controlplane.io/name=peer";
    let applied = all_applied(client, selector, n, started, timeout).await;
    let deadline = Instant::now() + timeout;
    loop {
        let o = api.get("peer").await.expect("the ResourceSet");
        let ready = o.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ResourceSet is not Ready after {timeout:?}: {}",
            o.data["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = started.elapsed();
    let cpu = cpu_diff(&cpu_seconds(), &cpu_before);
    let vm_hwm_kib = proc_status(pid, "VmHWM");
    let _ = child.kill().await;
    PeerRun {
        label: "Flux Operator v0.59.0: one ResourceSet of N inputs".into(),
        applied,
        ready,
        vm_hwm_kib,
        cpu,
    }
}

async fn operator_peer_run(client: &Client, n: usize, concurrency: usize) -> PeerRun {
    let fleet = Fleet::new(client, "bench-peer-ours", "peer-op", n).await;
    let (cluster, intents) = (fleet.cluster.as_str(), &fleet.intents);
    let operator = ReleaseOperator::start(&fleet, concurrency).await;
    let flux = fleet.play_flux(client, concurrency).await;
    let timeout = Duration::from_secs(1800);
    let started = Instant::now();
    let selector = format!("app.vworkspace.io/cluster-id={cluster}");
    let cpu_before = cpu_seconds();
    let (applied, created) =
        futures::join!(all_applied(client, &selector, n, started, timeout), async {
            create_intents(client, intents, concurrency).await;
            started.elapsed()
        });
    let label = format!(
        "vworkspace-operator: N signed intents (verified, rendered, applied; creating them, as Flux, took {})",
        secs(created)
    );
    let run = Run {
        started,
        cpu_before,
        applied,
    };
    our_figures(client, &fleet, operator, flux, run, label).await
}

/// Where a run of ours stands once every object is applied.
struct Run {
    started: Instant,
    cpu_before: BTreeMap<&'static str, f64>,
    applied: Duration,
}

/// Wait until every intent of the fleet is Ready, take the figures, stop the operator and the stand-in.
async fn our_figures(
    client: &Client,
    fleet: &Fleet,
    operator: ReleaseOperator,
    flux: tokio::task::JoinHandle<()>,
    run: Run,
    label: String,
) -> PeerRun {
    all_ready(
        client,
        &fleet.cluster,
        fleet.intents.len(),
        Duration::from_secs(1800),
    )
    .await;
    let ready = run.started.elapsed();
    let cpu = cpu_diff(&cpu_seconds(), &run.cpu_before);
    let vm_hwm_kib = operator.status("VmHWM");
    flux.abort();
    operator.stop().await;
    PeerRun {
        label,
        applied: run.applied,
        ready,
        vm_hwm_kib,
        cpu,
    }
}

/// The operator started on N signed intents that already exist (as a ResourceSet's inputs exist when it is
/// created): the clock starts when the process is spawned, so it includes the operator's start-up (its lists,
/// the fetch and verification of the repo).
async fn operator_started_run(client: &Client, n: usize, concurrency: usize) -> PeerRun {
    let fleet = Fleet::new(client, "bench-peer-started", "peer-st", n).await;
    let cluster = fleet.cluster.as_str();
    create_intents(client, &fleet.intents, concurrency).await;
    let flux = fleet.play_flux(client, concurrency).await;
    let timeout = Duration::from_secs(1800);
    let selector = format!("app.vworkspace.io/cluster-id={cluster}");
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let operator = ReleaseOperator::spawn(&fleet, concurrency);
    let applied = all_applied(client, &selector, n, started, timeout).await;
    let run = Run {
        started,
        cpu_before,
        applied,
    };
    let label =
        "vworkspace-operator started on N existing signed intents (clock from its start)".into();
    our_figures(client, &fleet, operator, flux, run, label).await
}
