//! The admin HTTP server: `/metrics` (OpenMetrics text), `/healthz` (liveness) and `/readyz` (readiness).
//!
//! - `/healthz` answers 200 while the process serves requests.
//! - `/readyz` answers 200 once every registered check passes, and 503 with a JSON body naming each failing
//!   check until then: `{"status":"unready","failed":[{"name":"crds","message":"…"}]}`. The controller
//!   registers its checks (`crds`, `caches-synced`, `leader`, …) before it starts serving; a new check fails
//!   until it is passed.
//! - `/metrics` serves [`crate::metrics::Metrics`].
//!
//! The metrics and the probes listen on separate addresses (`--metrics-addr`, `--health-addr`); when both
//! are the same address, one listener serves all three paths.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const JSON: &str = "application/json";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the {what} server on {addr} failed: {source}")]
    Serve {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
}

/// The message a check has before its first report.
pub const NOT_YET_CHECKED: &str = "not checked yet";

type CheckMap = Arc<Mutex<BTreeMap<String, Option<String>>>>;

/// The set of named readiness checks. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    // name -> None when passing, Some(message) when failing.
    checks: CheckMap,
}

/// One failing check as `/readyz` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FailedCheck {
    pub name: String,
    pub message: String,
}

/// The readiness verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadinessReport {
    pub checks: Vec<String>,
    pub failed: Vec<FailedCheck>,
}

impl ReadinessReport {
    pub fn ready(&self) -> bool {
        self.failed.is_empty()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a named check (failing with [`NOT_YET_CHECKED`] until reported). Registering a name twice
    /// returns a handle to the same check and leaves its state as it is.
    pub fn register(&self, name: &str) -> ReadinessCheck {
        lock(&self.checks)
            .entry(name.to_string())
            .or_insert_with(|| Some(NOT_YET_CHECKED.to_string()));
        ReadinessCheck {
            name: name.to_string(),
            checks: self.checks.clone(),
        }
    }

    pub fn report(&self) -> ReadinessReport {
        let checks = lock(&self.checks);
        ReadinessReport {
            checks: checks.keys().cloned().collect(),
            failed: checks
                .iter()
                .filter_map(|(name, state)| {
                    state.as_ref().map(|message| FailedCheck {
                        name: name.clone(),
                        message: message.clone(),
                    })
                })
                .collect(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent (single inserts), so keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A handle to one readiness check.
#[derive(Clone, Debug)]
pub struct ReadinessCheck {
    name: String,
    checks: CheckMap,
}

impl ReadinessCheck {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pass(&self) {
        lock(&self.checks).insert(self.name.clone(), None);
    }

    /// Mark the check failing with a message (shown on `/readyz`; keep secrets out of it).
    pub fn fail(&self, message: impl Into<String>) {
        lock(&self.checks).insert(
            self.name.clone(),
            Some(crate::secrets::redact_text(&message.into())),
        );
    }

    pub fn set(&self, result: Result<(), String>) {
        match result {
            Ok(()) => self.pass(),
            Err(message) => self.fail(message),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
}

#[derive(Serialize)]
struct ReadyBody<'a> {
    status: &'a str,
    checks: &'a [String],
    failed: &'a [FailedCheck],
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let report = state.readiness.report();
    let (code, status) = if report.ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unready")
    };
    let body = serde_json::to_vec(&ReadyBody {
        status,
        checks: &report.checks,
        failed: &report.failed,
    })
    .unwrap_or_else(|_| br#"{"status":"unready"}"#.to_vec());
    (code, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

async fn metrics_handler(State(state): State<AdminState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The `/metrics` router.
pub fn metrics_router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(AdminState { metrics, readiness })
}

/// The `/healthz` + `/readyz` router.
pub fn health_router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState { metrics, readiness })
}

/// The bound admin listeners, ready to serve.
pub struct AdminServer {
    listeners: Vec<(TcpListener, SocketAddr, &'static str, Router)>,
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
}

impl AdminServer {
    /// Bind the metrics and health addresses (port 0 picks a free port). One listener when they are equal.
    pub async fn bind(
        metrics_addr: SocketAddr,
        health_addr: SocketAddr,
        metrics: Metrics,
        readiness: Readiness,
    ) -> Result<Self, AdminError> {
        let bind = |addr: SocketAddr, what: &'static str| async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| AdminError::Bind { addr, what, source })?;
            let local =
                listener
                    .local_addr()
                    .map_err(|source| AdminError::Bind { addr, what, source })?;
            Ok::<_, AdminError>((listener, local))
        };
        if metrics_addr == health_addr {
            let what = "metrics and health probes";
            let (l, local) = bind(metrics_addr, what).await?;
            let router = metrics_router(metrics.clone(), readiness.clone())
                .merge(health_router(metrics, readiness));
            return Ok(Self {
                listeners: vec![(l, local, what, router)],
                metrics_addr: local,
                health_addr: local,
            });
        }
        let (ml, mlocal) = bind(metrics_addr, "metrics").await?;
        let (hl, hlocal) = bind(health_addr, "health probes").await?;
        Ok(Self {
            listeners: vec![
                (
                    ml,
                    mlocal,
                    "metrics",
                    metrics_router(metrics.clone(), readiness.clone()),
                ),
                (
                    hl,
                    hlocal,
                    "health probes",
                    health_router(metrics, readiness),
                ),
            ],
            metrics_addr: mlocal,
            health_addr: hlocal,
        })
    }

    /// The address `/metrics` is served on.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The address `/healthz` and `/readyz` are served on.
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// Serve until `shutdown` completes; in-flight requests finish first.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdminError> {
        let (tx, _) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for (listener, addr, what, router) in self.listeners {
            let mut rx = tx.subscribe();
            tasks.spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    })
                    .await
                    .map_err(|source| AdminError::Serve { addr, what, source })
            });
        }
        let stopper = tokio::spawn(async move {
            shutdown.await;
            tx.send_replace(true);
        });
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            if let Ok(Err(e)) = joined
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        stopper.abort();
        result
    }
}
