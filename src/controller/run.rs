//! The operator process: [`Operator::start`] composes it (servers, the shared watches, leadership, the intent
//! source, the controllers, the loops), [`Operator::stop`] ends it. Which mode runs is asked only in
//! `crate::source`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::context::{Context, EventRecorder, Settings, TransitionSink};
use super::sinks::{NoTransitions, PosterSink, StoreSnapshot};
use super::{Counters, controllers, loops, watches};
use crate::admin::Readiness;
use crate::charts::ChartTrustCell;
use crate::k8s::apply::Resources;
use crate::k8s::watch::IntentWatches;
use crate::metrics::Metrics;
use crate::render::{RenderOptions, Renderer, Templates};
use crate::report::events::{EventPoster, PosterConfig};
use crate::source::gitops::notes_sink::NotesTiming;
use crate::source::gitops::{RepoConfig, RepoSource, SyncOutcome};
use crate::source::{Deps, SourceConfig};
use crate::webhook::WebhookServer;

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
        self.source.repo_mut()
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
    /// Start everything; returns once the intent source started (GitOps: the first repo sync was attempted)
    /// and the controllers run. The composition root: servers, the shared watches, leadership, the source,
    /// the reconcilers' context, the controllers and the loops.
    pub async fn start(client: Client, config: OperatorConfig) -> anyhow::Result<Self> {
        crate::report::install_crypto_provider();
        let resources = Resources::new(client.clone());
        preflight(&resources).await?;
        let metrics = Metrics::new();
        let readiness = Readiness::new();
        readiness.register("crds").pass();
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let cluster_id = config.settings.cluster_id.clone();
        let mut admin_addrs = None;
        if let Some(addrs) = config.admin {
            let (bound, serve) = loops::admin(addrs, &metrics, &readiness, &stop_rx).await?;
            admin_addrs = Some(bound);
            tasks.push(tokio::spawn(serve));
        }
        // One renderer (templates compiled once) for the webhook and the reconcilers; the reload swaps its charts.
        let (charts, chart_changes, policy_reload) =
            chart_trust(config.source.policy(), config.policy_reload);
        let renderer = Arc::new(renderer(config.templates, &config.settings, charts));
        // This cluster's intents, watched once from start: the webhook reads them on every replica, the
        // controllers once this one leads.
        let (intents, watches) = IntentWatches::new(&client, &cluster_id);
        for w in watches {
            tasks.push(tokio::spawn(until(stop_rx.clone(), w)));
        }
        let mut webhook_addr = None;
        if let Some(webhook) = config.webhook.clone() {
            let server = WebhookServer::bind_shared(
                client.clone(),
                renderer.clone(),
                cluster_id.clone(),
                webhook,
                Some(metrics.clone()),
                intents.clone(),
            )
            .await?;
            webhook_addr = Some(server.local_addr());
            tasks.push(tokio::spawn(server.serve(stop_rx.clone())));
        }

        let leadership = match &config.leader_election {
            Some(lease) => Some(lead(client.clone(), lease).await?),
            None => None,
        };
        // A standby is ready (it serves the webhook and is healthy): what follows is checked once it leads, so
        // every replica of a Deployment becomes Ready and the one that leads stays so only while it can act.
        let caches_check = readiness.register("caches-synced");
        let mut source = crate::source::start(
            config.source,
            Deps {
                client: client.clone(),
                resources: resources.clone(),
                metrics: metrics.clone(),
                cluster_id: cluster_id.clone(),
                state_dir: config.state_dir.clone(),
                notes: config.notes,
                fetch_interval: config.fetch_interval,
                ready: readiness.register("source"),
                stop: stop_rx.clone(),
            },
        )
        .await?;
        let control_plane = source.control_plane.take().or(config.control_plane);
        let poster = start_poster(control_plane, &intents, &cluster_id, &metrics).await?;
        let (namespaces, namespaces_live, watch_namespaces) =
            loops::namespaces(&client, stop_rx.clone());
        tasks.push(tokio::spawn(watch_namespaces));

        let counters = Counters::with_metrics(metrics.clone());
        let ctx = Arc::new(Context {
            client: client.clone(),
            settings: config.settings,
            renderer,
            source: source.source.clone(),
            resources,
            events: EventRecorder::new(
                client,
                "vworkspace-operator",
                std::env::var("POD_NAME").ok(),
            ),
            outcomes: source.outcomes.clone(),
            transitions: transition_sink(poster.as_ref()),
            metrics: counters.clone(),
            namespaces,
            namespaces_live,
            operations: intents.ops.store().clone(),
            operations_synced: intents.ops.synced_flag(),
            children: Arc::default(),
            written: Default::default(),
        });

        let changes = source.run(&intents, poster.clone(), policy_reload);
        let children = watches::watch_children(&ctx, &intents, &stop_rx, &mut tasks).await?;
        let concurrency = config.max_concurrent_reconciles;
        tasks.push(tokio::spawn(controllers::applications(
            ctx.clone(),
            &intents,
            children.apps,
            changes.clone(),
            chart_changes,
            concurrency,
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(controllers::operations(
            ctx.clone(),
            &intents,
            children.ops,
            changes.clone(),
            concurrency,
            stop_rx.clone(),
        )));
        let fleet = (intents.apps.store().clone(), source.repo().is_some()); // the cluster loop's gauges
        tasks.push(tokio::spawn(loops::caches_synced(
            intents,
            caches_check,
            poster.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(loops::cluster(
            ctx,
            poster.clone(),
            config.cluster_interval,
            changes,
            metrics.clone(),
            fleet,
            stop_rx.clone(),
        )));
        if let Some(held) = &leadership {
            tasks.push(tokio::spawn(loops::leadership(
                held.rx.clone(),
                stop.clone(),
                stop_rx,
            )));
        }
        tasks.append(&mut source.tasks);
        Ok(Self {
            counters,
            repo: source.repo(),
            agent: source.agent(),
            source: source.source,
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

/// The chart trust in force (from the policy at start), the ticks of its changes, and the policy reload that
/// replaces it.
fn chart_trust(
    policy: &crate::git::policy::TrustPolicy,
    reload: Option<crate::source::policy_watch::PolicyReload>,
) -> (
    ChartTrustCell,
    watch::Receiver<u64>,
    Option<crate::source::policy_watch::PolicyReload>,
) {
    let cell = ChartTrustCell::new(policy.charts().clone());
    let (changed, changes) = watch::channel(0u64);
    let reload = reload.map(|mut r| {
        r.charts = Some(crate::source::policy_watch::ChartReload {
            cell: cell.clone(),
            changed: Arc::new(changed),
        });
        r
    });
    (cell, changes, reload)
}

/// The renderer of this cluster's settings.
fn renderer(templates: Templates, settings: &Settings, charts: ChartTrustCell) -> Renderer {
    Renderer::new(
        templates,
        RenderOptions {
            cluster_id: Some(settings.cluster_id.clone()),
            velero_namespace: settings.velero_namespace.clone(),
            allowed_chart_hosts: settings.allowed_chart_hosts.clone(),
            helm_engine: settings.helm_engine.clone(),
            chart_trust: charts,
            ..RenderOptions::default()
        },
    )
}

/// The control-plane event poster, when one is configured. The snapshot (what transitions a previous process
/// may have lost) is read from the intents' stores: it is requested once they have synced
/// ([`loops::caches_synced`]), not at the poster's start, when they are still empty.
async fn start_poster(
    config: Option<PosterConfig>,
    intents: &IntentWatches,
    cluster_id: &str,
    metrics: &Metrics,
) -> anyhow::Result<Option<Arc<EventPoster>>> {
    let Some(mut pc) = config else {
        return Ok(None);
    };
    pc.snapshot_on_start = false;
    let snapshot = Arc::new(StoreSnapshot {
        apps: intents.apps.store().clone(),
        ops: intents.ops.store().clone(),
        cluster_id: cluster_id.to_string(),
    });
    let poster = EventPoster::start(pc, snapshot, Some(metrics.event_metrics())).await?;
    Ok(Some(Arc::new(poster)))
}

/// Where condition changes go: the control-plane event post, when one is configured.
fn transition_sink(poster: Option<&Arc<EventPoster>>) -> Arc<dyn TransitionSink> {
    match poster {
        Some(p) => Arc::new(PosterSink(p.clone())),
        None => Arc::new(NoTransitions),
    }
}

/// Run `work` until `stop` turns true.
async fn until(mut stop: watch::Receiver<bool>, work: impl Future<Output = ()>) {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        _ = work => {}
    }
}
