//! The operator's loops besides the controllers: the admin server, the namespaces watch (the gate), readiness
//! once the caches synced, the Cluster singleton, and leadership. Each runs until the operator stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::watch;
use tracing::{error, warn};

use super::cluster::{self, ControlPlaneState};
use super::context::Context;
use crate::admin::{AdminServer, Readiness, ReadinessCheck};
use crate::k8s::watch::{IntentWatches, stored_watch};
use crate::metrics::Metrics;
use crate::report::events::EventPoster;

/// Serve `/metrics`, `/healthz` and `/readyz`; the bound (metrics, health) addresses.
pub(super) async fn admin(
    addrs: (SocketAddr, SocketAddr),
    metrics: &Metrics,
    readiness: &Readiness,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<(
    (SocketAddr, SocketAddr),
    impl Future<Output = ()> + Send + 'static,
)> {
    let server = AdminServer::bind(addrs.0, addrs.1, metrics.clone(), readiness.clone()).await?;
    let stop = stop.clone();
    let bound = (server.metrics_addr(), server.health_addr());
    let run = async move {
        let mut stop = stop;
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = server.serve(shutdown).await {
            error!(error = %e, "admin server stopped");
        }
    };
    Ok((bound, run))
}

/// Namespaces, for the gate: the store, whether the watch is live (while it is not, the gate is read from
/// the API server), and the future that runs the watch until `stop`.
pub(super) fn namespaces(
    client: &Client,
    stop: watch::Receiver<bool>,
) -> (
    Store<Namespace>,
    Arc<AtomicBool>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (store, _, stream) = stored_watch(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    );
    let live = Arc::new(AtomicBool::new(false));
    let flag = live.clone();
    let run = async move {
        let mut stop = stop;
        let live = &flag;
        let drain = stream.for_each(|result| async move {
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
    };
    (store, live, run)
}

/// Readiness: the intents' caches have synced (the flags the watches set, every 250 ms until both are set or
/// the operator stops). Then the control plane gets the snapshot of every owned object's conditions:
/// transitions the previous process made but had not posted when it stopped (or crashed) reach it this way.
pub(super) async fn caches_synced(
    intents: IntentWatches,
    check: ReadinessCheck,
    poster: Option<Arc<EventPoster>>,
    mut stop: watch::Receiver<bool>,
) {
    let synced = async {
        while !(intents.apps.synced() && intents.ops.synced()) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        _ = synced => {
            check.pass();
            if let Some(p) = &poster {
                p.request_snapshot();
            }
        }
    }
}

/// The Cluster singleton: refreshed on an interval and whenever the intent source's view changes.
pub(super) async fn cluster(
    ctx: Arc<Context>,
    poster: Option<Arc<EventPoster>>,
    interval: Duration,
    mut changes: watch::Receiver<u64>,
    metrics: Metrics,
    fleet: (
        kube::runtime::reflector::Store<crate::api::ApplicationInstance>,
        bool,
    ),
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let cp = poster
            .as_deref()
            .map(control_plane_state)
            .unwrap_or_default();
        if let Err(e) = cluster::sync(&ctx, &cp, metrics.owed()).await {
            warn!(error = %e, "updating the Cluster object failed");
        }
        metrics.set_managed_namespaces(count_gated(&ctx).await);
        super::fleet::refresh(&ctx, &fleet.0, fleet.1, &metrics).await;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(interval) => {}
            _ = changes.changed() => {}
        }
    }
}

/// The control-plane connection as the Cluster object shows it.
fn control_plane_state(p: &EventPoster) -> ControlPlaneState {
    let st = p.state();
    ControlPlaneState {
        configured: true,
        reachable: st.connected_condition().is_none_or(|c| c.status == "True"),
        authenticated: st.authenticated_condition().map(|c| c.status == "True"),
        buffer_overflow: st.buffer_overflow_condition().status == "True",
        message: st
            .connected_condition()
            .map(|c| c.message)
            .unwrap_or_default(),
    }
}

async fn count_gated(ctx: &Context) -> usize {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
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

/// Losing leadership stops the process (the Deployment starts a fresh one that waits for the lease).
pub(super) async fn leadership(
    mut held: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            changed = held.changed() => {
                if changed.is_err() || !*held.borrow() {
                    error!("leadership lost; stopping");
                    let _ = stop.send(true);
                    return;
                }
            }
        }
    }
}
