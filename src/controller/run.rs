//! The operator process: preflight, the Git view, the controllers, the Cluster loop, the report workers,
//! the admin server and leader election.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::cluster::{self, ControlPlaneState};
use super::context::{Context, EventRecorder, OutcomeSink, Settings, TransitionSink};
use super::sinks::{NoTransitions, NotesSink, NotesTiming, PosterSink, StoreSnapshot};
use super::{Counters, application, operation};
use crate::api::{ApplicationInstance, Operation, labels};
use crate::k8s::apply::Resources;
use crate::k8s::watch::stored_watch;
use crate::render::{RenderOptions, Renderer, Templates};
use crate::report::events::{EventPoster, PosterConfig};
use crate::source::gitops::{RepoConfig, RepoSource, SyncOutcome};

/// Leader election on a Lease.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long the lease holds without renewal: after a leader dies without releasing it, another replica
    /// takes over within this time (whole seconds, at least 2).
    pub duration: Duration,
    /// The leader renews this long before the lease expires (whole seconds, less than `duration`).
    pub grace: Duration,
}

impl LeaseSettings {
    /// A lease of 15 s, renewed 5 s before it expires.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }
}

/// The held lease: released (gracefully, so a standby takes over at once) when the last receiver is dropped
/// and the manager's task has run.
struct HeldLease {
    rx: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
}

/// Where intent comes from (docs/operator.md#modes).
pub enum SourceConfig {
    /// Signed commits in the cluster repo.
    GitOps(RepoConfig),
    /// Jobs long-polled from the control plane.
    Pull(PullSettings),
    /// Intents applied by the control plane itself, proven by their spec's field manager (and signature
    /// annotation, when the policy names control-plane keys).
    Push {
        field_manager: String,
        policy: crate::git::policy::TrustPolicy,
    },
}

/// Pull mode's settings.
pub struct PullSettings {
    pub agent: crate::source::pull::agent::PullConfig,
    /// The trust policy: its control-plane keys make signed jobs mandatory.
    pub policy: crate::git::policy::TrustPolicy,
    /// Standard Webhooks signing key file for the event post (which uses the agent's endpoint and token).
    pub event_signing_key_file: Option<PathBuf>,
}

/// Everything the operator needs to run.
pub struct OperatorConfig {
    pub settings: Settings,
    pub source: SourceConfig,
    pub fetch_interval: Duration,
    pub templates: Templates,
    /// Pending notes and the notes work repo live here.
    pub state_dir: PathBuf,
    pub control_plane: Option<PosterConfig>,
    /// (metrics, health) addresses; port 0 picks a free port.
    pub admin: Option<(SocketAddr, SocketAddr)>,
    pub leader_election: Option<LeaseSettings>,
    /// How often the Cluster object is refreshed.
    pub cluster_interval: Duration,
    /// How often undelivered notes are retried, and how pushes are batched.
    pub notes: NotesTiming,
    /// Reconciles in flight per controller (ApplicationInstance, Operation); 0 means no limit.
    pub max_concurrent_reconciles: u16,
    /// The admission webhook, served by every replica from start (before leader election).
    pub webhook: Option<crate::webhook::WebhookConfig>,
    /// Reload the trust policy when its source changes (None: the policy given at start stays).
    pub policy_reload: Option<crate::source::policy_watch::PolicyReload>,
}

impl OperatorConfig {
    /// The cluster repo's settings, in GitOps mode.
    pub fn repo_mut(&mut self) -> Option<&mut RepoConfig> {
        match &mut self.source {
            SourceConfig::GitOps(r) => Some(r),
            SourceConfig::Pull(_) | SourceConfig::Push { .. } => None,
        }
    }
}

/// A running operator.
pub struct Operator {
    pub counters: Arc<Counters>,
    /// The Git view (GitOps mode).
    pub repo: Option<Arc<RepoSource>>,
    /// The Pull agent (Pull mode).
    pub agent: Option<Arc<crate::source::pull::agent::Agent>>,
    /// What the reconcilers ask.
    pub source: Arc<dyn crate::source::IntentSource>,
    pub metrics: crate::metrics::Metrics,
    /// Bound (metrics, health) addresses, when the admin server runs.
    pub admin_addrs: Option<(SocketAddr, SocketAddr)>,
    /// The admission webhook's bound address, when it runs.
    pub webhook_addr: Option<SocketAddr>,
    pub poster: Option<Arc<EventPoster>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    lease: Option<HeldLease>,
}

/// Fail early, with the fix, when our CRDs are not installed.
pub async fn preflight(resources: &Resources) -> anyhow::Result<()> {
    for (api_version, kind) in [
        ("apps.vworkspace.io/v1alpha1", "ApplicationInstance"),
        ("ops.vworkspace.io/v1alpha1", "Operation"),
        ("ops.vworkspace.io/v1alpha1", "Cluster"),
    ] {
        if resources.resolve(api_version, kind).await?.is_none() {
            anyhow::bail!(
                "CRD {kind} ({api_version}) is not installed: run `kubectl apply -f crds/` (or `vworkspace-operator crdgen | kubectl apply -f -`)"
            );
        }
    }
    Ok(())
}

/// What an intent's reconcile depends on, hashed: everything but the status (and the bookkeeping that changes
/// with every write: resourceVersion, managedFields). An update that leaves it equal, such as a status write,
/// does not trigger a reconcile.
pub fn intent_trigger<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Ticks of a watch channel as a stream (for `reconcile_all_on`).
fn ticks(rx: watch::Receiver<u64>) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    })
}

/// Wait until this process holds the lease; its receiver turns false when leadership is lost.
async fn lead(client: Client, lease: &LeaseSettings) -> anyhow::Result<HeldLease> {
    let duration = lease.duration.as_secs().max(2);
    let grace = lease.grace.as_secs().clamp(1, duration - 1);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(duration)
        .with_grace(grace)
        .with_field_manager(crate::api::FIELD_MANAGER)
        .build()
        .await
        .context("leader election")?;
    let (mut rx, task) = manager.watch().await;
    info!(lease = %lease.name, identity = %lease.identity, "waiting for leadership");
    while !*rx.borrow_and_update() {
        rx.changed().await.context("leader election stopped")?;
    }
    info!(lease = %lease.name, identity = %lease.identity, "leading");
    Ok(HeldLease { rx, task })
}

impl Operator {
    /// Start everything; returns once the first repo sync was attempted and the controllers run.
    pub async fn start(client: Client, mut config: OperatorConfig) -> anyhow::Result<Self> {
        crate::report::install_crypto_provider();
        let resources = Resources::new(client.clone());
        preflight(&resources).await?;
        let metrics = crate::metrics::Metrics::new();
        let readiness = crate::admin::Readiness::new();
        let crds_check = readiness.register("crds");
        crds_check.pass();
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let mut admin_addrs = None;
        if let Some((metrics_addr, health_addr)) = config.admin {
            let server = crate::admin::AdminServer::bind(
                metrics_addr,
                health_addr,
                metrics.clone(),
                readiness.clone(),
            )
            .await?;
            admin_addrs = Some((server.metrics_addr(), server.health_addr()));
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = server.serve(shutdown).await {
                    error!(error = %e, "admin server stopped");
                }
            }));
        }

        // One renderer (templates compiled once) for the webhook and the reconcilers.
        let renderer = Arc::new(Renderer::new(
            config.templates,
            RenderOptions {
                cluster_id: Some(config.settings.cluster_id.clone()),
                velero_namespace: config.settings.velero_namespace.clone(),
                allowed_chart_hosts: config.settings.allowed_chart_hosts.clone(),
                ..RenderOptions::default()
            },
        ));
        let mut webhook_addr = None;
        if let Some(webhook) = config.webhook.clone() {
            let server = crate::webhook::WebhookServer::bind(
                client.clone(),
                renderer.clone(),
                config.settings.cluster_id.clone(),
                webhook,
                Some(metrics.clone()),
            )
            .await?;
            webhook_addr = Some(server.local_addr());
            info!(addr = %server.local_addr(), "admission webhook serving");
            tasks.push(tokio::spawn(server.serve(stop_rx.clone())));
        }

        let mut leadership = None;
        if let Some(lease) = &config.leader_election {
            leadership = Some(lead(client.clone(), lease).await?);
        }
        // A standby is ready (it serves the webhook and is healthy): what follows is checked once it leads, so
        // every replica of a Deployment becomes Ready and the one that leads stays so only while it can act.
        let git_check = readiness.register("git");
        let caches_check = readiness.register("caches-synced");

        let cluster_id = config.settings.cluster_id.clone();
        // The intent source, and where outcomes go: git notes (GitOps) or job results (Pull, posted by the agent).
        let mut repo = None;
        let mut pull = None;
        let mut push: Option<Arc<crate::source::push::PushSource>> = None;
        let (source, outcomes): (Arc<dyn crate::source::IntentSource>, Arc<dyn OutcomeSink>) =
            match config.source {
                SourceConfig::GitOps(repo_config) => {
                    let credentials = repo_config.credentials.clone();
                    let remote_url = repo_config.url.clone();
                    let notes_signer = repo_config
                        .notes_signing_key
                        .as_deref()
                        .map(crate::git::notes::auth::NotesSigner::load)
                        .transpose()?
                        .map(Arc::new);
                    if notes_signer.is_none() {
                        tracing::warn!(
                            "no notes signing key: outcome records are written unsigned, and readers show them as unverified"
                        );
                    }
                    let source =
                        Arc::new(RepoSource::open(repo_config).context("opening the repo cache")?);
                    {
                        let s = source.clone();
                        let outcome = tokio::task::spawn_blocking(move || s.sync()).await?;
                        report_sync(&outcome, &metrics, &git_check);
                    }
                    let (notes, notes_worker) = NotesSink::new(
                        &cluster_id,
                        config.state_dir.join("notes.git"),
                        &remote_url,
                        super::sinks::NotesAccess {
                            credentials,
                            signer: notes_signer,
                        },
                        config.state_dir.clone(),
                        config.notes,
                        Some(metrics.clone()),
                    )?;
                    tasks.push(tokio::spawn(notes_worker.run(stop_rx.clone())));
                    repo = Some(source.clone());
                    (source, notes)
                }
                SourceConfig::Pull(settings) => {
                    // Nothing to fetch before the controllers start: the agent proves each intent as it applies
                    // it. Readiness does not wait for the control plane once the cluster is registered.
                    let key = Arc::new(std::sync::RwLock::new(None));
                    let keys: crate::source::pull::agent::SharedKeys =
                        Arc::new(std::sync::RwLock::new(Ok(settings
                            .policy
                            .control_plane_keys()
                            .to_vec())));
                    let (status_tx, status_rx) =
                        watch::channel(crate::source::pull::agent::AgentStatus::initial());
                    let source = Arc::new(crate::source::pull::source::PullSource::new(
                        key.clone(),
                        keys.clone(),
                        status_rx,
                        &settings.agent.namespace,
                    ));
                    let agent = crate::source::pull::agent::Agent::new(
                        settings.agent,
                        client.clone(),
                        resources.clone(),
                        keys,
                        key,
                        status_tx,
                        Some(metrics.clone()),
                    );
                    // A credential first (from its Secret, or by registering): the event post needs its token.
                    info!("Pull mode: reading or obtaining the control-plane credential");
                    if !agent.bootstrap(stop_rx.clone()).await {
                        anyhow::bail!("stopped before the cluster was registered");
                    }
                    git_check.pass();
                    if let Some(base) = agent.base_url() {
                        let mut pc = PosterConfig::new(base, agent.token_file(), &cluster_id);
                        pc.signing_key_file = settings.event_signing_key_file.clone();
                        config.control_plane = Some(pc);
                    }
                    pull = Some(agent);
                    (source, Arc::new(super::sinks::NoOutcomes))
                }
                SourceConfig::Push {
                    field_manager,
                    policy,
                } => {
                    git_check.pass();
                    info!(field_manager = %field_manager, "Push mode: acting on intents whose spec the control plane owns");
                    let source = Arc::new(crate::source::push::PushSource::new(
                        &field_manager,
                        &cluster_id,
                        policy.control_plane_keys().to_vec(),
                    ));
                    push = Some(source.clone());
                    (source, Arc::new(super::sinks::NoOutcomes))
                }
            };

        let counters = Arc::new(Counters::default());
        counters.attach(metrics.clone());
        let events = EventRecorder::new(
            client.clone(),
            "vworkspace-operator",
            std::env::var("POD_NAME").ok(),
        );

        let selector = format!("{}={}", labels::CLUSTER_ID, cluster_id);
        let controller_config = kube::runtime::controller::Config::default()
            .concurrency(config.max_concurrent_reconciles);
        let (app_store, apps_synced, app_stream) = stored_watch(
            Api::<ApplicationInstance>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        );
        // The instances' own status writes (ours, mostly) do not trigger a reconcile: nothing the reconciler
        // acts on is in the status. Timed requeues and the periodic resync still visit every instance.
        let app_stream = app_stream.predicate_filter(intent_trigger, Default::default());
        let app_controller = Controller::for_stream(app_stream, app_store.clone())
            .with_config(controller_config.clone());
        let (op_store, ops_synced, op_stream) = stored_watch(
            Api::<Operation>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        );
        let op_controller =
            Controller::for_stream(op_stream, op_store.clone()).with_config(controller_config);
        // Namespaces, for the gate (read from the API server while this watch is not live).
        let (namespaces, _, ns_stream) = stored_watch(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        );
        let namespaces_live = Arc::new(AtomicBool::new(false));
        {
            let mut stop = stop_rx.clone();
            let live = namespaces_live.clone();
            tasks.push(tokio::spawn(async move {
                let live = &live;
                let drain = ns_stream.for_each(|result| async move {
                    match result {
                        Ok(_) => live.store(true, Ordering::Release),
                        Err(e) => {
                            live.store(false, Ordering::Release);
                            warn!(error = %e, "watching namespaces");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                });
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {}
                    _ = drain => {}
                }
            }));
        }

        let mut poster = None;
        let transitions: Arc<dyn TransitionSink> = match config.control_plane {
            Some(mut pc) => {
                // The snapshot (what transitions a previous process may have lost) is read from the stores: it is
                // requested once they have synced (below), not at the poster's start, when they are still empty.
                pc.snapshot_on_start = false;
                let snapshot = Arc::new(StoreSnapshot {
                    apps: app_store.clone(),
                    ops: op_store.clone(),
                    cluster_id: cluster_id.clone(),
                });
                let p = Arc::new(
                    EventPoster::start(pc, snapshot, Some(metrics.event_metrics())).await?,
                );
                poster = Some(p.clone());
                Arc::new(PosterSink(p))
            }
            None => Arc::new(NoTransitions),
        };

        let ctx = Arc::new(Context {
            client: client.clone(),
            settings: config.settings,
            renderer,
            source: source.clone(),
            resources: resources.clone(),
            events,
            outcomes,
            transitions,
            metrics: counters.clone(),
            namespaces,
            namespaces_live,
            operations: op_store.clone(),
            operations_synced: ops_synced.clone(),
            children: Arc::default(),
            written: Default::default(),
        });

        // Children map back to their intent through labels (children in the Velero namespace cannot have
        // owner references).
        let child_selector = format!(
            "{}={},{}={}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_OPERATOR,
            labels::CLUSTER_ID,
            cluster_id
        );
        let mut app_controller = app_controller;
        for (api_version, kind) in [
            ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
            ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
            ("source.toolkit.fluxcd.io/v1", "HelmRepository"),
        ] {
            if let Some(ar) = resources.resolve(api_version, kind).await? {
                let api = Api::<kube::api::DynamicObject>::all_with(client.clone(), &ar);
                // The watch that triggers the instance also fills the children cache, before the trigger.
                let children = ctx.children.clone();
                let trigger = watcher(api, watcher::Config::default().labels(&child_selector))
                    .inspect_ok(move |event| children.observe(kind, event))
                    .touched_objects();
                app_controller = app_controller.watches_stream_with(
                    trigger,
                    |obj| {
                        let app = obj.labels().get(labels::APPLICATION_INSTANCE).cloned();
                        let ns = obj.namespace();
                        app.zip(ns)
                            .map(|(name, ns)| ObjectRef::new(&name).within(&ns))
                    },
                    ar,
                );
            } else {
                warn!(
                    kind,
                    "not installed: ApplicationInstances wait (Blocked/MissingDependencies) until it is"
                );
            }
        }
        // An upgrade Operation (helm engine) changes what its target renders.
        app_controller = app_controller.watches(
            Api::<Operation>::all(client.clone()),
            watcher::Config::default().labels(&selector),
            |op| {
                (op.spec.engine == crate::api::Engine::Helm)
                    .then(|| {
                        op.namespace()
                            .map(|ns| ObjectRef::new(&op.spec.target_ref.name).within(&ns))
                    })
                    .flatten()
            },
        );
        let mut op_controller = op_controller;
        let mut op_kinds: Vec<(String, String)> = Vec::new();
        for key in ctx.renderer.templates().operation_keys() {
            if let Some(Ok(spec)) = ctx.renderer.operation_spec(&key) {
                for c in &spec.children {
                    if !op_kinds.contains(&(c.api_version.clone(), c.kind.clone())) {
                        op_kinds.push((c.api_version.clone(), c.kind.clone()));
                    }
                }
            }
        }
        for (api_version, kind) in &op_kinds {
            // The helm engine follows its target's HelmRelease; the chart sources it lists are the instance's
            // and carry no Operation labels, so watching them would wake nothing.
            if kind == "OCIRepository" || kind == "HelmRepository" {
                continue;
            }
            if let Some(ar) = resources.resolve(api_version, kind).await? {
                let api = Api::<kube::api::DynamicObject>::all_with(client.clone(), &ar);
                let helm = kind == "HelmRelease";
                let store = op_store.clone();
                op_controller = op_controller.watches_with(
                    api,
                    ar,
                    watcher::Config::default().labels(&child_selector),
                    move |obj| {
                        let l = obj.labels();
                        let mut refs = Vec::new();
                        if let (Some(name), Some(ns)) = (
                            l.get(labels::OPERATION_NAME),
                            l.get(labels::OPERATION_NAMESPACE),
                        ) {
                            refs.push(ObjectRef::new(name).within(ns));
                        } else if helm
                            && let (Some(app), Some(ns)) =
                                (l.get(labels::APPLICATION_INSTANCE), obj.namespace())
                        {
                            // The helm engine follows its target's HelmRelease.
                            for op in store.state() {
                                if op.spec.engine == crate::api::Engine::Helm
                                    && op.spec.target_ref.name == *app
                                    && op.namespace().as_deref() == Some(ns.as_str())
                                {
                                    refs.push(ObjectRef::from_obj(op.as_ref()));
                                }
                            }
                        }
                        refs
                    },
                );
            }
        }

        // An Operation that finishes or goes away releases the Operations waiting for it on the same target
        // (Blocked/ConflictingOperation) at once, instead of at their next periodic look.
        {
            let store = op_store.clone();
            op_controller = op_controller.watches(
                Api::<Operation>::all(client.clone()),
                watcher::Config::default().labels(&selector),
                move |done| {
                    let finished = done.meta().deletion_timestamp.is_some()
                        || done
                            .status
                            .as_ref()
                            .and_then(|s| s.phase)
                            .is_some_and(crate::api::Phase::is_terminal);
                    if !finished {
                        return Vec::new();
                    }
                    store
                        .state()
                        .into_iter()
                        .filter(|op| {
                            op.namespace() == done.namespace()
                                && op.spec.target_ref.name == done.spec.target_ref.name
                                && op.name_any() != done.name_any()
                                && op.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
                                    == crate::api::Phase::Pending
                        })
                        .map(|op| ObjectRef::from_obj(op.as_ref()))
                        .collect()
                },
            );
        }

        // Reconcile everything again when the view changes: a new verified revision (GitOps), or the agent's
        // state (Pull: e.g. the provenance key loaded, so intents waiting for it are judged).
        // Asked when the trust policy changed: judge again now (GitOps: the repo loop; Push: every intent).
        let judge_now = Arc::new(tokio::sync::Notify::new());
        let git_ticks = match (&repo, &pull) {
            (Some(repo), _) => repo.subscribe(),
            (None, Some(agent)) => {
                let (tx, rx) = watch::channel(0u64);
                let mut status = agent.subscribe();
                let mut stop = stop_rx.clone();
                let judge_now = judge_now.clone();
                tasks.push(tokio::spawn(async move {
                    let mut last = status.borrow().clone();
                    loop {
                        tokio::select! {
                            _ = stop.wait_for(|s| *s) => return,
                            // The trust policy changed: every applied intent is judged again under it.
                            _ = judge_now.notified() => {
                                tx.send_modify(|n| *n += 1);
                                continue;
                            }
                            changed = status.changed() => {
                                if changed.is_err() {
                                    return;
                                }
                            }
                        }
                        let now = status.borrow().clone();
                        // Heartbeats alone do not re-judge anything.
                        let mut a = last.clone();
                        a.last_heartbeat = now.last_heartbeat;
                        if a != now {
                            tx.send_modify(|n| *n += 1);
                        }
                        last = now;
                    }
                }));
                rx
            }
            (None, None) => {
                // Push mode: every intent is judged again when the trust policy changes (its control-plane
                // keys decide whether a signature is required); otherwise the watches trigger reconciles.
                let (tx, rx) = watch::channel(0u64);
                let mut stop = stop_rx.clone();
                let judge_now = judge_now.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stop.wait_for(|s| *s) => return,
                            _ = judge_now.notified() => tx.send_modify(|n| *n += 1),
                        }
                    }
                }));
                rx
            }
        };
        // The Pull agent runs once the stores it follows exist.
        let agent = pull;
        if let Some(a) = &agent {
            a.attach(app_store.clone(), op_store.clone(), poster.clone());
            tasks.push(tokio::spawn(a.clone().run(stop_rx.clone())));
        }
        let app_task = app_controller
            .reconcile_all_on(ticks(git_ticks.clone()))
            .graceful_shutdown_on(wait_stop(stop_rx.clone()))
            .run(
                application::reconcile,
                application::error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {});
        let op_task = op_controller
            .reconcile_all_on(ticks(git_ticks.clone()))
            .graceful_shutdown_on(wait_stop(stop_rx.clone()))
            .run(operation::reconcile, operation::error_policy, ctx.clone())
            .for_each(|_| async {});
        tasks.push(tokio::spawn(app_task));
        tasks.push(tokio::spawn(op_task));

        // The Git view: fetch, verify, index on an interval, and at once when the trust policy changes.
        if let Some(reload) = config.policy_reload.clone() {
            let target: Option<Arc<dyn crate::source::PolicyTarget>> = match (&repo, &agent, &push)
            {
                (Some(r), _, _) => Some(r.clone()),
                (None, Some(a), _) => Some(a.clone()),
                (None, None, Some(p)) => Some(p.clone()),
                (None, None, None) => None,
            };
            if let Some(target) = target {
                tasks.push(tokio::spawn(crate::source::policy_watch::run(
                    reload,
                    client.clone(),
                    target,
                    judge_now.clone(),
                    metrics.clone(),
                    stop_rx.clone(),
                )));
            }
        }
        if let Some(source) = repo.clone() {
            let metrics = metrics.clone();
            let mut stop = stop_rx.clone();
            let interval = config.fetch_interval;
            let judge_now = judge_now.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(interval) => {}
                        _ = judge_now.notified() => {}
                    }
                    let s = source.clone();
                    match tokio::task::spawn_blocking(move || s.sync()).await {
                        Ok(outcome) => report_sync(&outcome, &metrics, &git_check),
                        Err(e) => error!(error = %e, "repo sync task failed"),
                    }
                }
            }));
        }

        // Readiness: the controllers' caches have synced. A Store wakes only one waiter (kube-runtime keeps a
        // single waker per store, and each Controller waits on its own store), so this looks at the flags the
        // watches set instead, every 250 ms until both are set or the operator stops.
        // Then the control plane gets the snapshot of every owned object's conditions: transitions the previous
        // process made but had not posted when it stopped (or crashed) reach it this way.
        {
            let (apps, ops) = (apps_synced, ops_synced);
            let mut stop = stop_rx.clone();
            let poster = poster.clone();
            tasks.push(tokio::spawn(async move {
                let synced = async {
                    while !(apps.load(Ordering::Acquire) && ops.load(Ordering::Acquire)) {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                };
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => {}
                    _ = synced => {
                        caches_check.pass();
                        if let Some(p) = &poster {
                            p.request_snapshot();
                        }
                    }
                }
            }));
        }

        // The Cluster singleton.
        {
            let ctx = ctx.clone();
            let mut stop = stop_rx.clone();
            let poster = poster.clone();
            let interval = config.cluster_interval;
            let mut git_ticks = git_ticks.clone();
            let metrics = metrics.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let cp = match &poster {
                        Some(p) => {
                            let st = p.state();
                            ControlPlaneState {
                                configured: true,
                                reachable: st
                                    .connected_condition()
                                    .is_none_or(|c| c.status == "True"),
                                authenticated: st
                                    .authenticated_condition()
                                    .map(|c| c.status == "True"),
                                buffer_overflow: st.buffer_overflow_condition().status == "True",
                                message: st
                                    .connected_condition()
                                    .map(|c| c.message)
                                    .unwrap_or_default(),
                            }
                        }
                        None => ControlPlaneState::default(),
                    };
                    if let Err(e) = cluster::sync(&ctx, &cp).await {
                        warn!(error = %e, "updating the Cluster object failed");
                    }
                    let gated = count_gated(&ctx).await;
                    metrics.set_managed_namespaces(gated);
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(interval) => {}
                        _ = git_ticks.changed() => {}
                    }
                }
            }));
        }

        // Losing leadership stops the process (the Deployment starts a fresh one that waits for the lease).
        if let Some(held) = &leadership {
            let stop = stop.clone();
            let mut rx = held.rx.clone();
            let mut stopping = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopping.wait_for(|s| *s) => return,
                        changed = rx.changed() => {
                            if changed.is_err() || !*rx.borrow() {
                                error!("leadership lost; stopping");
                                let _ = stop.send(true);
                                return;
                            }
                        }
                    }
                }
            }));
        }
        Ok(Self {
            counters,
            repo,
            agent,
            source,
            metrics,
            admin_addrs,
            webhook_addr,
            poster,
            stop,
            tasks,
            lease: leadership,
        })
    }

    /// Fetch and verify now (tests, and the demo; GitOps mode).
    pub async fn sync_now(&self) -> SyncOutcome {
        let Some(s) = self.repo.clone() else {
            return SyncOutcome::Unreachable {
                error: "not in GitOps mode: there is no cluster repo".into(),
            };
        };
        tokio::task::spawn_blocking(move || s.sync())
            .await
            .unwrap_or(SyncOutcome::Unreachable {
                error: "sync task failed".into(),
            })
    }

    /// A receiver that turns true when the operator stops (leadership lost, or `stop`).
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stop every task and wait for them (the controllers finish their running reconciles).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(p) = &self.poster {
            p.shutdown().await;
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        // Only now that nothing writes any more: release the lease, so a standby leads without waiting for
        // it to expire.
        if let Some(HeldLease { rx, task }) = self.lease {
            drop(rx);
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(Ok(_))) => info!("lease released"),
                Ok(Ok(Err(e))) => {
                    warn!(error = %e, "releasing the lease failed; it expires on its own")
                }
                _ => warn!("releasing the lease timed out; it expires on its own"),
            }
        }
    }
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn report_sync(
    outcome: &SyncOutcome,
    metrics: &crate::metrics::Metrics,
    check: &crate::admin::ReadinessCheck,
) {
    use crate::metrics::{Connectivity, Mode, VerifyResult};
    match outcome {
        SyncOutcome::Verified { head } => {
            info!(%head, "verified new revision");
            metrics.commit_verified(VerifyResult::Verified);
            metrics.set_connectivity(Mode::GitOps, Connectivity::Connected);
            check.pass();
        }
        SyncOutcome::Unchanged => {
            metrics.set_connectivity(Mode::GitOps, Connectivity::Connected);
            check.pass();
        }
        SyncOutcome::Rejected { head, reason, view } => {
            metrics.commit_verified(VerifyResult::Rejected);
            metrics.set_connectivity(Mode::GitOps, Connectivity::Connected);
            match view {
                Some(view) => {
                    warn!(%head, %reason, %view, "branch head not trusted; acting on the newest verified revision before it");
                    check.pass();
                }
                None => {
                    warn!(%head, %reason, "branch head not trusted and no revision verifies; every intent is Blocked");
                    check.fail(format!("no verified revision: {reason}"));
                }
            }
        }
        SyncOutcome::Unreachable { error } => {
            warn!(%error, "cluster repo unreachable");
            metrics.set_connectivity(Mode::GitOps, Connectivity::Disconnected);
            check.fail(error.clone());
        }
    }
}

async fn count_gated(ctx: &Context) -> usize {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    api.list(&Default::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|ns| {
                    ctx.settings
                        .namespace_selector
                        .matches(ns.metadata.labels.as_ref().unwrap_or(&Default::default()))
                })
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn app() -> ApplicationInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "a", "namespace": "n", "generation": 1, "resourceVersion": "10",
                "labels": {"app.vworkspace.io/cluster-id": "c"}},
            "spec": {"appRef": {"catalogId": "x"}},
        }))
        .unwrap()
    }

    #[test]
    fn status_writes_do_not_trigger_but_everything_the_reconciler_reads_does() {
        let base = intent_trigger(&app());
        let mut status_only = app();
        status_only.metadata.resource_version = Some("11".into());
        status_only.status = Some(Default::default());
        assert_eq!(intent_trigger(&status_only), base);

        let mut changes: Vec<ApplicationInstance> = Vec::new();
        let mut a = app();
        a.metadata.generation = Some(2);
        changes.push(a);
        let mut a = app();
        a.labels_mut().insert("x".into(), "y".into());
        changes.push(a);
        let mut a = app();
        a.annotations_mut()
            .insert(labels::RECONCILE.into(), labels::RECONCILE_DISABLED.into());
        changes.push(a);
        let mut a = app();
        a.finalizers_mut().push(crate::api::APP_FINALIZER.into());
        changes.push(a);
        let mut a = app();
        a.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        changes.push(a);
        for changed in &changes {
            assert_ne!(intent_trigger(changed), base, "{:?}", changed.metadata);
        }
    }
}
