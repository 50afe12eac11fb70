//! The operator: reconcilers for ApplicationInstance, Operation and Cluster, and the process that runs them.

pub mod application;
pub mod argocd_status;
pub mod chart_trust;
mod child_status;
pub mod children;
pub mod cluster;
pub mod context;
mod controllers;
pub mod engine_state;
pub mod finalize;
pub mod fleet;
mod loops;
pub mod operation;
pub mod run;
pub mod sinks;
pub mod status;
pub mod trust;
mod watches;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the reconcilers keep: API writes by kind (children, status) and reconciles by result. The
/// Prometheus metrics read from here, and the benchmarks use the write count (writes per intent, writes on
/// an idle resync).
#[derive(Debug, Default)]
pub struct Counters {
    writes: AtomicU64,
    by_kind: Mutex<BTreeMap<String, u64>>,
    reconciles: Mutex<BTreeMap<(String, bool), u64>>,
    durations: Mutex<BTreeMap<String, (u64, f64)>>,
    prom: std::sync::OnceLock<crate::metrics::Metrics>,
}

impl Counters {
    /// Counters that also send reconcile counts and durations to `metrics`.
    pub fn with_metrics(metrics: crate::metrics::Metrics) -> Arc<Self> {
        let counters = Arc::new(Self::default());
        counters.attach(metrics);
        counters
    }

    /// Send reconcile counts and durations to the Prometheus metrics too.
    pub fn attach(&self, metrics: crate::metrics::Metrics) {
        let _ = self.prom.set(metrics);
    }

    /// Count one reconcile of `controller` that took `elapsed`.
    pub fn reconciled(&self, controller: &str, ok: bool, elapsed: std::time::Duration) {
        if let Ok(mut r) = self.reconciles.lock() {
            *r.entry((controller.to_string(), ok)).or_default() += 1;
        }
        if let Ok(mut d) = self.durations.lock() {
            let e = d.entry(controller.to_string()).or_default();
            e.0 += 1;
            e.1 += elapsed.as_secs_f64();
        }
        if let Some(m) = self.prom.get() {
            use crate::metrics::{Controller, ReconcileResult};
            let c = match controller {
                "applicationinstance" => Controller::ApplicationInstance,
                "operation" => Controller::Operation,
                _ => Controller::Cluster,
            };
            m.record_reconcile(
                c,
                if ok {
                    ReconcileResult::Success
                } else {
                    ReconcileResult::Error
                },
                elapsed,
            );
        }
    }

    /// Count one API write (`child`, `status`, `finalizer`, …).
    pub fn write(&self, what: &str) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut w) = self.by_kind.lock() {
            *w.entry(what.to_string()).or_default() += 1;
        }
    }

    /// API writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// API writes so far by kind.
    pub fn writes_by_kind(&self) -> BTreeMap<String, u64> {
        self.by_kind.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Reconciles so far by (controller, succeeded).
    pub fn reconciles(&self) -> BTreeMap<(String, bool), u64> {
        self.reconciles
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Reconcile (count, total seconds) by controller.
    pub fn durations(&self) -> BTreeMap<String, (u64, f64)> {
        self.durations.lock().map(|d| d.clone()).unwrap_or_default()
    }
}
