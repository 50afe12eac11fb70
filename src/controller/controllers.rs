//! The two controllers, on the shared watches: what wakes each, and its reconciler.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{mpsc, watch};

use super::context::Context;
use super::watches::{only_changed, released_by, stream, ticks, upgrade_target, wait_stop};
use super::{application, operation};
use crate::api::{ApplicationInstance, Operation};
use crate::k8s::watch::IntentWatches;

/// ApplicationInstances: woken by a change of the instance (not by its status), by its children, by an
/// upgrade Operation on it, and all at once when the intent source's view changes or the trust policy's chart
/// trust does (every chart source is rendered again under it).
pub(super) fn applications(
    ctx: Arc<Context>,
    intents: &IntentWatches,
    children: mpsc::Receiver<ObjectRef<ApplicationInstance>>,
    changes: watch::Receiver<u64>,
    chart_changes: watch::Receiver<u64>,
    concurrency: u16,
    stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let store = intents.apps.store().clone();
    Controller::for_shared_stream(only_changed(intents.apps.subscribe(), store.clone()), store)
        .with_config(Config::default().concurrency(concurrency))
        .reconcile_on(stream(children))
        .watches_shared_stream(intents.ops.subscribe(), upgrade_target)
        .reconcile_all_on(ticks(changes))
        .reconcile_all_on(ticks(chart_changes))
        .graceful_shutdown_on(wait_stop(stop))
        .run(application::reconcile, application::error_policy, ctx)
        .for_each(|_| async {})
}

/// Operations: woken by any change of the Operation, by its engine's children, when an Operation on the
/// same target finishes (releasing those waiting for it), and all at once when the view changes.
pub(super) fn operations(
    ctx: Arc<Context>,
    intents: &IntentWatches,
    children: mpsc::Receiver<ObjectRef<Operation>>,
    changes: watch::Receiver<u64>,
    concurrency: u16,
    stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let ops = intents.ops.clone();
    Controller::for_shared_stream(intents.ops.subscribe(), ops.store().clone())
        .with_config(Config::default().concurrency(concurrency))
        .reconcile_on(stream(children))
        .watches_shared_stream(intents.ops.subscribe(), move |done| {
            released_by(&ops, &done)
        })
        .reconcile_all_on(ticks(changes))
        .graceful_shutdown_on(wait_stop(stop))
        .run(operation::reconcile, operation::error_policy, ctx)
        .for_each(|_| async {})
}
