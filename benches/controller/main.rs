//! The operator at scale on the real API server (the test bed, testbed/: kube-apiserver + etcd on loopback):
//!
//! 1. **Wall time.** N ApplicationInstances (default 500) from one signed commit: from "the intents are being
//!    created in the API server" until "every instance has Ready=True folded back", with this process playing
//!    Flux (kustomize-controller creates the intents, helm-controller writes each HelmRelease's Ready status as
//!    soon as it appears). Compared, in the same run, with a raw server-side-apply loop over the same rendered
//!    objects (the same render engine; HelmRelease + OCIRepository applied, then the same Ready status written),
//!    run once before and once after the operator; the faster run is the reference. The running operator is also
//!    set against the loop of its own writes, alone and with the watches its run keeps open (watched.rs).
//! 2. **API requests per intent**, counted on the operator's own client (a tower layer): every request by verb
//!    and resource, so the finalizer patches kube-runtime makes and the Events the recorder posts count too. The
//!    operator's own write counter (`Counters::writes`) is shown beside it.
//! 3. **Idle resync**: a new verified revision that changes no intent makes every instance reconcile again;
//!    the requests that resync makes (target: no write).
//! 4. **Peak RSS** of the release binary `vworkspace-operator run` as a subprocess with RSS_N intents (default
//!    1,000), read from VmHWM in /proc/<pid>/status once all are Ready; then the Git view's first sync, and one
//!    signed commit changing all of them (RSS_UPDATE=0 skips it): its sync, and the changed intents applied →
//!    all Ready at their new generation (the syncs from the operator's `repo_sync_duration_seconds`). Then the
//!    server's floor at that size: the operator run's writes for N new intents by a plain loop, beside them.
//! 5. **Churn** (`PHASES=churn`, not in the default run; issue #17 item 3): the release binary with CHURN_N
//!    intents (default 1,000), each updated CHURN_ROUNDS times (default 10) by signed commits CHURN_PAUSE seconds
//!    apart (default 15; one commit per round changes every intent): the time to bring every intent to Ready at
//!    its new generation, the RSS after each pass, and the reconcile errors from its /metrics.
//!
//! Concurrency, the same everywhere: CONCURRENCY (default 16) requests in flight for the raw loop, for creating
//! the intents and for the helm-controller stand-in; the operator runs its controllers with
//! `--max-concurrent-reconciles` set to the same number.
//!
//!     cargo bench --bench controller
//!     N=200 RSS_N=400 CONCURRENCY=8 cargo bench --bench controller
//!     PHASES=churn cargo bench --bench controller     # about 9 minutes
//!     PHASES=peer cargo bench --bench controller      # Flux Operator's ResourceSet beside the operator (peer.rs)
//!
//! Not a test: `cargo test` does not run it (harness = false; `cargo bench` does). It needs what the controller
//! tests need (git, ssh-keygen, the test bed's binaries).

mod costs;
mod fleet;
mod peer;
mod pull;
mod release;
#[path = "../../tests/support/mod.rs"]
mod support;
mod table;
mod watched;

use costs::*;
use fleet::*;
use peer::*;
use pull::*;
use release::*;
use table::*;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use support::gitfix::{GitRemote, Signer, policy_yaml};
use support::{helm_standin, testbed};
use vworkspace_operator::api::ApplicationInstance;
use vworkspace_operator::controller::context::{Selector, Settings};
use vworkspace_operator::controller::run::{Operator, OperatorConfig};
use vworkspace_operator::git::policy::TrustPolicy;
use vworkspace_operator::git::remote::Credentials;
use vworkspace_operator::render::{RenderOptions, Renderer, Templates};
use vworkspace_operator::source::SourceConfig;
use vworkspace_operator::source::gitops::RepoConfig;
use vworkspace_operator::source::gitops::notes_sink::NotesTiming;

const NAMESPACES: usize = 20;
const CHART_VERSION: &str = "6.6.4";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------------------
// Counting the operator's API requests: a tower layer on its client.

/// Requests by (verb, resource[/subresource]).
#[derive(Clone, Default)]
struct Requests(Arc<Mutex<BTreeMap<(String, String), u64>>>, Latencies);

/// Time spent waiting for answers by (verb, resource), watches excepted.
type Latencies = Arc<Mutex<BTreeMap<(String, String), Duration>>>;

impl Requests {
    fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap().clone()
    }

    fn latencies(&self) -> BTreeMap<(String, String), Duration> {
        self.1.lock().unwrap().clone()
    }

    fn count<B>(&self, req: &http::Request<B>) -> (String, String) {
        let query = req.uri().query().unwrap_or_default();
        let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
        // /api/v1/... or /apis/<group>/<version>/...; then [namespaces/<ns>/]<resource>[/<name>[/<sub>]]
        let rest: &[&str] = match path.first() {
            Some(&"api") => path.get(2..).unwrap_or_default(),
            Some(&"apis") => path.get(3..).unwrap_or_default(),
            _ => &[],
        };
        let rest = match rest {
            ["namespaces", _, more @ ..] if !more.is_empty() => more,
            other => other,
        };
        let (resource, named) = match rest {
            [] => ("discovery".to_string(), false),
            [r] => (r.to_string(), false),
            [r, _] => (r.to_string(), true),
            [r, _, sub, ..] => (format!("{r}/{sub}"), true),
        };
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let verb = match *req.method() {
            http::Method::GET if query.contains("watch=true") => "watch",
            http::Method::GET if named => "get",
            http::Method::GET => "list",
            http::Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
            http::Method::PATCH => "patch",
            http::Method::POST => "create",
            http::Method::PUT => "update",
            http::Method::DELETE => "delete",
            _ => "other",
        };
        let key = (verb.to_string(), resource);
        *self.0.lock().unwrap().entry(key.clone()).or_default() += 1;
        key
    }
}

fn diff(
    after: &BTreeMap<(String, String), u64>,
    before: &BTreeMap<(String, String), u64>,
) -> BTreeMap<(String, String), u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or_default();
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

struct CountLayer(Requests);

impl<S> tower::Layer<S> for CountLayer {
    type Service = Count<S>;
    fn layer(&self, inner: S) -> Count<S> {
        Count {
            inner,
            requests: self.0.clone(),
        }
    }
}

struct Count<S> {
    inner: S,
    requests: Requests,
}

type ResponseFuture<R, E> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<R, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Count<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let key = self.requests.count(&req);
        let latencies = self.requests.1.clone();
        let started = Instant::now();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let result = answer.await;
            if key.0 != "watch" {
                *latencies.lock().unwrap().entry(key).or_default() += started.elapsed();
            }
            result
        })
    }
}

async fn counted_client(requests: &Requests) -> Client {
    let path = &testbed::server().kubeconfig;
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    ClientBuilder::try_from(config)
        .expect("client")
        .with_layer(&CountLayer(requests.clone()))
        .build()
}

// ---------------------------------------------------------------------------------------------------------
// 1. The raw loop.

struct RawRun {
    wall: Duration,
    /// CPU seconds by process during the run.
    cpu: String,
    requests: BTreeMap<(String, String), u64>,
    latencies: BTreeMap<(String, String), Duration>,
}

/// Render each intent with the operator's render engine, server-side apply its objects one by one, then write
/// the HelmRelease's Ready status; `concurrency` intents in flight. With `with_intents`, each intent is first
/// applied itself (as kustomize-controller would), so the loop does what the live operator run's API server
/// sees minus the operator's own work.
/// What a raw loop writes per intent.
#[derive(Clone, Copy, PartialEq)]
enum Loop {
    /// The children (HelmRelease, OCIRepository), then the HelmRelease's Ready status.
    Children,
    /// The intents exist before the clock starts; the children, the HelmRelease's status, then the instance's
    /// Ready status: the end state of the operator's start-up run.
    EndState,
    /// The intent itself first, then as `EndState`: the end state of the running operator's run.
    WithIntents,
    /// Every write of the running operator's run, in its order: the intent, the finalizer, the children, the
    /// Reconciling status and its Event, the HelmRelease's status, the Ready status and its Event. What is
    /// left between this loop and the operator is the machinery (watches, caches, scheduling, verification,
    /// rendering, notes).
    SameWrites,
    /// As `SameWrites`, with the watches the running operator's run has open on these objects (watched.rs):
    /// what is left is the operator's own work.
    SameWritesWatched,
}

async fn raw_loop(
    client: &Client,
    cluster: &str,
    prefix: &str,
    n: usize,
    concurrency: usize,
    kind: Loop,
) -> RawRun {
    let with_intents = matches!(
        kind,
        Loop::WithIntents | Loop::SameWrites | Loop::SameWritesWatched
    );
    let fold_back = kind != Loop::Children;
    let operator_writes = matches!(kind, Loop::SameWrites | Loop::SameWritesWatched);
    gated_namespaces(client, prefix).await;
    // The watches of `SameWritesWatched` are not the loop's requests: they read on a client of their own.
    let watch_client = client.clone();
    let requests = Requests::default();
    let client = &counted_client(&requests).await;
    let apps: Vec<(Value, ApplicationInstance)> = intents(cluster, prefix, n)
        .iter()
        .map(|(_, yaml)| {
            let value: Value = serde_saphyr::from_str(yaml).expect("intent YAML");
            let app = serde_json::from_value(value.clone()).expect("intent");
            (value, app)
        })
        .collect();
    let hr = resource(client, "helm.toolkit.fluxcd.io/v2", "HelmRelease").await;
    let oci = resource(client, "source.toolkit.fluxcd.io/v1", "OCIRepository").await;
    let renderer = renderer(cluster);
    if fold_back && !with_intents {
        // The intents exist before the clock starts, as in the operator's start run.
        create_intents(client, &intents(cluster, prefix, n), concurrency).await;
    }
    let watches = match kind {
        Loop::SameWritesWatched => {
            Some(watched::Watches::open(&watch_client, cluster, &hr, &oci).await)
        }
        _ => None,
    };
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    futures::stream::iter(&apps)
        .map(|(value, app)| {
            let (renderer, hr, oci) = (&renderer, &hr, &oci);
            async move {
                let ns = app.namespace().unwrap_or_default();
                if with_intents {
                    let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), &ns);
                    api.patch(
                        &app.name_any(),
                        &PatchParams::apply("kustomize-controller").force(),
                        &Patch::Apply(value),
                    )
                    .await
                    .expect("create intent");
                }
                let instances: Api<ApplicationInstance> = Api::namespaced(client.clone(), &ns);
                if operator_writes {
                    add_finalizer(&instances, &app.name_any()).await;
                }
                let mut generation = 0;
                for obj in renderer.render_application(app).expect("render") {
                    let kind = obj["kind"].as_str().unwrap_or_default();
                    let ar = if kind == "HelmRelease" { hr } else { oci };
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, ar);
                    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                    let applied = api
                        .patch(
                            name,
                            &PatchParams::apply("vworkspace-operator").force(),
                            &Patch::Apply(&obj),
                        )
                        .await
                        .expect("apply");
                    if kind == "HelmRelease" {
                        generation = applied.metadata.generation.unwrap_or_default();
                    }
                }
                let status =
                    |conditions: &'static [(&'static str, &'static str, &'static str)]| {
                        write_instance_status(&instances, app.name_any(), conditions, true)
                    };
                if operator_writes {
                    status(&PROGRESSING_CONDITIONS).await;
                    create_event(client, &ns, &app.name_any(), "Progressing").await;
                }
                let release = app.spec.release.as_ref().expect("release").name.clone();
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, hr);
                write_flux_status(&api, &release, &ns, generation).await;
                if fold_back {
                    // The end state the operator reaches: the instance's status says Ready (one apply of the
                    // status the operator writes last).
                    status(&READY_CONDITIONS).await;
                }
                if operator_writes {
                    create_event(client, &ns, &app.name_any(), "HelmReleaseReady").await;
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let (wall, cpu) = (started.elapsed(), cpu_diff(&cpu_seconds(), &cpu_before));
    if let Some(watches) = watches {
        watches.close();
    }
    RawRun {
        wall,
        cpu,
        requests: requests.snapshot(),
        latencies: requests.latencies(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2 and 3. The operator in this process.

struct OperatorRun {
    wall: Duration,
    /// CPU seconds by process from the start of the clock until all are Ready.
    cpu: String,
    create: Duration,
    requests: BTreeMap<(String, String), u64>,
    latencies: BTreeMap<(String, String), Duration>,
    /// Mean time of an ApplicationInstance reconcile.
    reconcile_mean: Duration,
    reconcile_errors: u64,
    own_writes: BTreeMap<String, u64>,
    reconciles: u64,
    resync_requests: BTreeMap<(String, String), u64>,
    resync_own_writes: u64,
    resync_reconciles: u64,
}

fn app_reconcile_errors(operator: &Operator) -> u64 {
    operator
        .counters
        .reconciles()
        .get(&("applicationinstance".to_string(), false))
        .copied()
        .unwrap_or_default()
}

fn app_reconciles(operator: &Operator) -> u64 {
    operator
        .counters
        .reconciles()
        .iter()
        .filter(|((c, _), _)| c == "applicationinstance")
        .map(|(_, n)| n)
        .sum()
}

/// The operator's configuration in the bench runs: `source` for `cluster`, state under `dir`, the `run`
/// command's defaults for the loops (the fetch and notes loops cost CPU on the machine under test).
fn bench_config(
    cluster: &str,
    source: SourceConfig,
    dir: &Path,
    concurrency: usize,
) -> OperatorConfig {
    OperatorConfig {
        settings: Settings {
            cluster_id: cluster.into(),
            namespace_selector: Selector::parse("managed-by=vworkspace").expect("selector"),
            velero_namespace: "velero".into(),
            approval_key: None,
            resync: Duration::from_secs(300),
            allowed_chart_hosts: Vec::new(),
            helm_engine: Default::default(),
        },
        source,
        fetch_interval: Duration::from_secs(30),
        templates: Templates::embedded(),
        state_dir: dir.join("state"),
        control_plane: None,
        admin: None,
        leader_election: None,
        cluster_interval: Duration::from_secs(30),
        notes: NotesTiming::new(Duration::from_secs(10)),
        max_concurrent_reconciles: u16::try_from(concurrency).unwrap_or(u16::MAX),
        webhook: None,
        policy_reload: None,
    }
}

/// How the intents meet the operator.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The operator runs; the intents are created (as Flux would) while the clock runs.
    Live,
    /// The intents exist; the clock starts when the operator starts (start-up, fetch and verification count).
    Start,
}

async fn operator_run(client: &Client, n: usize, concurrency: usize, mode: Mode) -> OperatorRun {
    let (cluster, prefix) = match mode {
        Mode::Live => ("bench", "op"),
        Mode::Start => ("bench-start", "st"),
    };
    let fleet = Fleet::new(client, cluster, prefix, n).await;
    let (tmp, intents, remote, signer) = (&fleet.tmp, &fleet.intents, &fleet.remote, &fleet.signer);
    let requests = Requests::default();
    let operator_client = counted_client(&requests).await;
    let config = bench_config(
        cluster,
        SourceConfig::GitOps(RepoConfig {
            url: remote.url(),
            branch: "main".into(),
            path: format!("clusters/{cluster}"),
            policy: TrustPolicy::from_yaml(&policy_yaml(&[signer], "range")).expect("policy"),
            credentials: Credentials::None,
            cache_dir: tmp.path().join("state/cache"),
            notes_signing_key: None,
        }),
        tmp.path(),
        concurrency,
    );
    let hr = resource(client, "helm.toolkit.fluxcd.io/v2", "HelmRelease").await;
    let mut started = Instant::now();
    let mut cpu_before = cpu_seconds();
    if mode == Mode::Start {
        create_intents(client, intents, concurrency).await;
        started = Instant::now();
        cpu_before = cpu_seconds();
    }
    let operator = Operator::start(operator_client, config)
        .await
        .expect("operator start");
    let flux = play_helm_controller(client.clone(), hr, cluster, concurrency);
    if mode == Mode::Live {
        // Let the start-up requests (discovery, the Cluster object, the first lists) pass before counting.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let before = requests.snapshot();
    let latencies_before = requests.latencies();
    let durations_before = operator.counters.durations();
    let own_before = operator.counters.writes_by_kind();
    let reconciles_before = app_reconciles(&operator);
    let errors_before = app_reconcile_errors(&operator);

    let mut create = Duration::ZERO;
    if mode == Mode::Live {
        started = Instant::now();
        cpu_before = cpu_seconds();
        create_intents(client, intents, concurrency).await;
        create = started.elapsed();
    }
    all_ready(client, cluster, n, Duration::from_secs(900)).await;
    let wall = started.elapsed();
    let cpu = cpu_diff(&cpu_seconds(), &cpu_before);

    // Let the last status writes' own watch events be reconciled, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = requests.snapshot();
    let latencies: BTreeMap<(String, String), Duration> = requests
        .latencies()
        .into_iter()
        .map(|(k, d)| {
            let d = d - latencies_before.get(&k).copied().unwrap_or_default();
            (k, d)
        })
        .collect();
    let own_after = operator.counters.writes_by_kind();
    let own_writes: BTreeMap<String, u64> = own_after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v - own_before.get(k).copied().unwrap_or_default(),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    let reconciles = app_reconciles(&operator) - reconciles_before;
    let reconcile_errors = app_reconcile_errors(&operator) - errors_before;
    let durations = operator.counters.durations();
    let (count, seconds) = durations
        .get("applicationinstance")
        .copied()
        .unwrap_or_default();
    let (count0, seconds0) = durations_before
        .get("applicationinstance")
        .copied()
        .unwrap_or_default();
    let reconcile_mean =
        Duration::from_secs_f64((seconds - seconds0) / (count - count0).max(1) as f64);

    // Idle resync (measured once, in the live run): a new verified revision that changes no intent reconciles
    // every instance again.
    let (mut resync_requests, mut resync_own_writes, mut resync_reconciles) =
        (BTreeMap::new(), 0, 0);
    if mode == Mode::Live {
        remote.write("README.md", "cluster repo, revised\n");
        remote.commit("unrelated change", Some(signer), &signer.email);
        operator.sync_now().await;
        let resync_started = app_reconciles(&operator);
        let deadline = Instant::now() + Duration::from_secs(600);
        while app_reconciles(&operator) < resync_started + n as u64 {
            assert!(
                Instant::now() < deadline,
                "the resync did not reach every instance"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        resync_requests = diff(&requests.snapshot(), &after);
        resync_own_writes = operator.counters.writes() - own_after.values().sum::<u64>();
        resync_reconciles = app_reconciles(&operator) - resync_started;
    }
    flux.abort();
    operator.stop().await;
    OperatorRun {
        wall,
        cpu,
        create,
        requests: diff(&after, &before),
        latencies,
        reconcile_mean,
        reconcile_errors,
        own_writes,
        reconciles,
        resync_requests,
        resync_own_writes,
        resync_reconciles,
    }
}

fn main() {
    let n = env_usize("N", 500);
    let rss_n = env_usize("RSS_N", 1000);
    let concurrency = env_usize("CONCURRENCY", 16).max(1);
    // PHASES: any of raw, start, operator, pull, rss (default all; e.g. PHASES=rss to profile memory alone), peer
    // (not in the default: Flux Operator, built on demand, beside the operator; peer.rs), and churn
    // (not in the default: CHURN_N intents, default 1,000, each updated CHURN_ROUNDS times, default 10, by
    // signed commits CHURN_PAUSE seconds apart, default 15).
    let phases = std::env::var("PHASES").unwrap_or_else(|_| "raw,start,operator,pull,rss".into());
    let phase = |name: &str| phases.split(',').any(|p| p.trim() == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = testbed::client().await;
        let mut crds = testbed::project_crds();
        crds.extend(testbed::upstream_crds());
        testbed::install_crds(&client, &crds).await;
        // Warm the server's handlers for these kinds, outside the timings.
        let _ = raw_loop(&client, "bench-warm", "warm", 20, concurrency, Loop::SameWrites).await;

        // Each operator run is compared with the raw loop of the same requests minus the operator's: the start
        // run with the children-only loop, the live run (which also creates the intents) with the loop that
        // creates them too. Each loop runs before and after the operator runs; the faster run counts.
        let (mut raw, mut raw_end, mut raw_intents, mut raw_same, mut raw_watched) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let raw_loops = |round: usize| {
            let client = client.clone();
            async move {
                eprintln!("raw loops, round {round} ({n} intents each)…");
                let name = |kind: &str| (format!("bench-{kind}{round}"), format!("{kind}{round}"));
                let (c, p) = name("raw");
                let children = raw_loop(&client, &c, &p, n, concurrency, Loop::Children).await;
                let (c, p) = name("rawe");
                let end = raw_loop(&client, &c, &p, n, concurrency, Loop::EndState).await;
                let (c, p) = name("rawi");
                let intents = raw_loop(&client, &c, &p, n, concurrency, Loop::WithIntents).await;
                let (c, p) = name("raws");
                let same = raw_loop(&client, &c, &p, n, concurrency, Loop::SameWrites).await;
                let (c, p) = name("rawsw");
                let watched =
                    raw_loop(&client, &c, &p, n, concurrency, Loop::SameWritesWatched).await;
                (children, end, intents, same, watched)
            }
        };
        // The start-up run goes first: its lists cover every object of a kind in the API server, and the other
        // runs leave thousands of objects behind (of other cluster ids; a cluster has only its own).
        let start = if phase("start") {
            eprintln!("operator started on {n} existing intents…");
            Some(operator_run(&client, n, concurrency, Mode::Start).await)
        } else {
            None
        };
        if phase("raw") {
            let (c, e, i, s, w) = raw_loops(1).await;
            raw.push(c);
            raw_end.push(e);
            raw_intents.push(i);
            raw_same.push(s);
            raw_watched.push(w);
        }
        let op = if phase("operator") {
            eprintln!("operator running while {n} intents are created…");
            Some(operator_run(&client, n, concurrency, Mode::Live).await)
        } else {
            None
        };
        if phase("raw") && (op.is_some() || start.is_some()) {
            let (c, e, i, s, w) = raw_loops(2).await;
            raw.push(c);
            raw_end.push(e);
            raw_intents.push(i);
            raw_same.push(s);
            raw_watched.push(w);
        }
        let pull = if phase("pull") {
            eprintln!("Pull mode: {n} signed jobs queued at once…");
            Some(pull_run(&client, n, concurrency).await)
        } else {
            None
        };
        let costs = if phase("costs") {
            eprintln!("request costs ({n} each)…");
            costs(&client, n, concurrency).await
        } else {
            Vec::new()
        };
        let rss = if phase("rss") {
            eprintln!("release binary ({rss_n} intents)…");
            let update = env_usize("RSS_UPDATE", 1) != 0;
            let run = rss_run(&client, rss_n, concurrency, update).await;
            // The API server's own cost at this size: the operator run's writes for N new intents by a plain
            // loop, on the server that now holds these RSS_N intents and their children (the scale curve's
            // floor: what the server alone does slower at 10,000 than at 1,000).
            eprintln!("the same writes by a plain loop, {n} intents, beside the {rss_n}…");
            let probe = raw_loop(&client, "bench-probe", "probe", n, concurrency, Loop::SameWrites).await;
            Some((run, probe))
        } else {
            None
        };
        let (churn_n, churn_rounds) = (env_usize("CHURN_N", 1000), env_usize("CHURN_ROUNDS", 10));
        let churn = if phase("churn") {
            eprintln!("churn: {churn_n} intents, {churn_rounds} signed updates each…");
            let pause = Duration::from_secs(env_usize("CHURN_PAUSE", 15) as u64);
            Some(churn_run(&client, churn_n, churn_rounds, pause, concurrency).await)
        } else {
            None
        };
        let peers = if phase("peer") {
            eprintln!("a peer on the same work: Flux Operator's ResourceSet, then the operator ({n} each)…");
            peer_runs(&client, n, concurrency).await
        } else {
            Vec::new()
        };

        println!();
        println!(
            "controller bench: N={n} ApplicationInstances in {NAMESPACES} namespaces from one signed commit; \
             concurrency {concurrency}; kube-apiserver + etcd of the test bed on loopback"
        );
        println!();
        println!("| measure | value | target |");
        println!("|---|---|---|");
        raw_rows("raw SSA loop: render, apply HelmRelease + OCIRepository, write Ready status", &raw);
        raw_rows("raw SSA loop to the same end state: as above, then apply the instance's Ready status", &raw_end);
        raw_rows("raw SSA loop with the intents: apply the intent, then as above", &raw_intents);
        raw_rows(
            "raw loop of the operator run's writes: the intent, the finalizer, the children, a status and an Event, \
             the HelmRelease status, the Ready status and an Event",
            &raw_same,
        );
        raw_rows(
            "raw loop of the same writes with the running operator run's watches open, read by this process \
             (the operator's on the intents and children, the helm-controller stand-in's, the wait for Ready)",
            &raw_watched,
        );
        if let Some(op) = &start {
            op_rows(
                &format!("operator started on {n} existing intents → all Ready=True folded back"),
                op,
                &[(&raw_end, "end-state raw loop"), (&raw, "children-only raw loop")],
                n,
            );
        }
        if let Some(op) = &op {
            op_rows(
                &format!("operator running: {n} intents created → all Ready=True folded back"),
                op,
                &[
                    (&raw_intents, "raw loop with the intents"),
                    (&raw_same, "raw loop of the same writes"),
                    (&raw_watched, "raw loop of the same writes with the watches"),
                ],
                n,
            );
            println!(
                "| … of which creating the {n} intents (this process, as Flux) | {} | |",
                secs(op.create)
            );
            let (cluster, intents): (BTreeMap<_, _>, BTreeMap<_, _>) = op
                .resync_requests
                .clone()
                .into_iter()
                .partition(|((_, res), _)| res.starts_with("clusters"));
            println!(
                "| idle resync ({} reconciles): writes to intents and children / reads | {} / {} | 0 writes |",
                op.resync_reconciles,
                sum(&intents, WRITES),
                sum(&intents, READS)
            );
            println!(
                "| … and the Cluster object's status (it names the new verified commit): writes | {} | |",
                sum(&cluster, WRITES)
            );
        }
        if let Some((rss, probe)) = &rss {
            println!(
                "| release binary, {rss_n} intents: created → all Ready | {} | |",
                secs(rss.wall)
            );
            println!(
                "| release binary, {rss_n} intents: peak RSS (VmHWM), binary {} the page cache at start | {} | ≤ 32 MiB |",
                if code_cache_cold() { "not in" } else { "in" },
                mib(rss.vm_hwm_kib)
            );
            println!(
                "| … RSS when all are Ready: total / anonymous / file-backed (code); threads | {} / {} / {}; {} | |",
                mib(rss.vm_rss_kib),
                mib(rss.rss_anon_kib),
                mib(rss.rss_file_kib),
                rss.threads
            );
            println!(
                "| … the Git view's first sync (fetch, verify, index {rss_n} intents) | {} | |",
                secs(rss.first_sync)
            );
            if let Some((wall, sync, hwm)) = rss.update {
                println!(
                    "| … one signed commit changing all {rss_n}: the view's sync of it (fetch, verify, index); the intents applied → all Ready at the new generation; peak RSS after | {} ; {} ; {} | |",
                    secs(sync),
                    secs(wall),
                    mib(hwm)
                );
                println!(
                    "| … per intent: created → Ready / the update → Ready | {:.1} ms / {:.1} ms | |",
                    rss.wall.as_secs_f64() * 1e3 / rss_n as f64,
                    wall.as_secs_f64() * 1e3 / rss_n as f64
                );
            }
            println!(
                "| … the server's floor: the same writes for {n} new intents by a plain loop, the {rss_n} present: per intent | {:.1} ms | |",
                probe.wall.as_secs_f64() * 1e3 / n as f64
            );
            println!(
                "| … the operator's CPU per intent (its `git` included): created / the update | {:.2} ms / {:.2} ms | |",
                rss.cpu_secs.0 * 1e3 / rss_n as f64,
                rss.cpu_secs.1 * 1e3 / rss_n as f64
            );
            println!(
                "| … reconcile errors / ApplicationInstance reconciles over the creation and the update (per intent), from its /metrics | {} / {} ({:.2}) | 0 errors |",
                rss.reconcile_errors,
                rss.reconciles,
                rss.reconciles / rss_n as f64
            );
        }
        for p in &peers {
            println!(
                "| peer: {}: to all {n} HelmReleases + OCIRepositories applied / to Ready; peak RSS | {} / {}; {} | |",
                p.label,
                secs(p.applied),
                secs(p.ready),
                mib(p.vm_hwm_kib)
            );
            println!("| … CPU seconds: {} | | |", p.cpu);
        }
        if let Some(churn) = &churn {
            let created = &churn.rounds[0];
            // The first pass of the churn is the first update round (the creation pass has never held two
            // revisions of every intent).
            let first = churn.rounds.get(1).unwrap_or(created);
            let last = churn.rounds.last().expect("rounds");
            let growth = |from: &ChurnRound| {
                (last.vm_rss_kib as f64 / from.vm_rss_kib.max(1) as f64 - 1.0) * 100.0
            };
            println!();
            println!(
                "Churn: the release binary with {churn_n} intents, each updated {churn_rounds} times by signed \
                 commits (one commit per round changing every intent), {} in all:",
                secs(churn.total)
            );
            println!();
            println!(
                "| pass | all Ready at the new generation | RSS (total / anonymous) | the operator's CPU |"
            );
            println!("|---|---|---|---|");
            for r in &churn.rounds {
                let label = if r.round == 0 {
                    "first (create)".to_string()
                } else {
                    format!("update {}", r.round)
                };
                println!(
                    "| {label} | {} | {} / {} | {:.2} s |",
                    secs(r.wall),
                    mib(r.vm_rss_kib),
                    mib(r.rss_anon_kib),
                    r.cpu_secs
                );
            }
            println!();
            println!("| measure | value | target |");
            println!("|---|---|---|");
            println!(
                "| RSS at the end against after the first update pass | {:+.1} % ({} → {}) | ≤ +3 % |",
                growth(first),
                mib(first.vm_rss_kib),
                mib(last.vm_rss_kib)
            );
            println!(
                "| … against after the creation pass | {:+.1} % ({} → {}) | |",
                growth(created),
                mib(created.vm_rss_kib),
                mib(last.vm_rss_kib)
            );
            println!(
                "| trend over the update passes (least-squares slope of the RSS) | {:+.2} MiB a pass | no rising trend |",
                slope(&churn.rounds[1..])
            );
            println!("| peak RSS (VmHWM) | {} | |", mib(churn.vm_hwm_kib));
            println!(
                "| reconcile errors / ApplicationInstance reconciles | {} / {} | 0 errors |",
                churn.reconcile_errors, churn.reconciles
            );
        }
        if !costs.is_empty() {
            println!();
            println!("What {n} requests of one kind cost ({concurrency} in flight):");
            println!();
            println!("| request | wall | CPU seconds |");
            println!("|---|---|---|");
            for (label, wall, cpu) in &costs {
                println!("| {label} | {} | {cpu} |", secs(*wall));
            }
        }
        for (label, run) in [("started on existing intents", &start), ("running while the intents are created", &op)] {
            let Some(run) = run else { continue };
            println!();
            println!("Operator requests ({label}) while bringing {n} intents to Ready, by verb and resource:");
            println!();
            println!("| verb | resource | requests | per intent | mean answer time |");
            println!("|---|---|---|---|---|");
            for (key, count) in &run.requests {
                let mean = run
                    .latencies
                    .get(key)
                    .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0 / *count as f64))
                    .unwrap_or_else(|| "–".into());
                println!(
                    "| {} | {} | {count} | {} | {mean} |",
                    key.0,
                    key.1,
                    per(*count, n)
                );
            }
        }
        if let Some(op) = &op {
            println!();
            println!("Operator requests during the idle resync:");
            println!();
            println!("| verb | resource | requests |");
            println!("|---|---|---|");
            for ((verb, res), count) in &op.resync_requests {
                println!("| {verb} | {res} | {count} |");
            }
            println!(
                "\n(the operator's own write counter during the resync: {})",
                op.resync_own_writes
            );
        }
        if let Some(p) = &pull {
            println!();
            println!(
                "Pull mode: {n} signed jobs queued at once on a control plane on loopback, to {n} results posted \
                 (outcomes: {:?}); the GitOps run above (operator running, {n} intents created → all Ready): {}",
                p.outcomes,
                op.as_ref().map(|o| secs(o.wall)).unwrap_or_else(|| "not run".into())
            );
            println!();
            println!("| measure | value |");
            println!("|---|---|");
            let against = op
                .as_ref()
                .map(|o| {
                    format!(
                        " ({:.2}× the GitOps run; target ≤ 1.2×)",
                        p.wall.as_secs_f64() / o.wall.as_secs_f64()
                    )
                })
                .unwrap_or_default();
            println!(
                "| Pull mode, 500 signed jobs: wall time, jobs queued → last result posted | {}{against} |",
                secs(p.wall)
            );
            for (kind, count) in &p.control_plane {
                println!(
                    "| control-plane requests: {kind} (per job) | {count} ({}) |",
                    per(*count as u64, n)
                );
            }
            let total: u64 = p.requests.values().sum();
            println!(
                "| API-server requests (per job) | {total} ({}) |",
                per(total, n)
            );
            for ((verb, res), count) in &p.requests {
                println!("| … {verb} {res} | {count} ({}) |", per(*count, n));
            }
        }
    });
}
