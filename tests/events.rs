//! The control-plane event post against a real HTTP receiver on loopback, and the admin server (metrics and
//! probes) against a real HTTP client. No timing assertion here has an upper bound that a slow machine could
//! miss: "not before" bounds follow from the client's own waits, "eventually" bounds are generous timeouts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;
use tokio::net::TcpListener;

use vworkspace_operator::admin::{AdminServer, Readiness};
use vworkspace_operator::metrics::{Controller, Metrics, ReconcileResult};
use vworkspace_operator::report::events::{
    Event, EventBatch, EventPoster, MEDIA_TYPE, ObjectSnapshot, PosterConfig, ResourceRef,
    SnapshotSource, condition_transitions,
};

// ------------------------------------------------------------------------------------------------------
// A real HTTP receiver on loopback

#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn batch(&self) -> EventBatch {
        serde_json::from_slice(&self.body).expect("the body is an event batch")
    }

    fn names(&self) -> Vec<String> {
        self.batch()
            .events
            .iter()
            .map(|e| e.resource_ref.name.clone())
            .collect()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Answers request number `n` (0-based, counted across restarts of the receiver).
type Responder = Arc<dyn Fn(usize, &Received) -> Response + Send + Sync>;

#[derive(Clone)]
struct ReceiverState {
    log: Arc<Mutex<Vec<Received>>>,
    responder: Responder,
}

struct Receiver {
    addr: SocketAddr,
    state: ReceiverState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(
    State(state): State<ReceiverState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        at: Instant::now(),
        method,
        path: uri.path().to_string(),
        headers,
        body,
    };
    let n = {
        let mut log = state.log.lock().unwrap();
        log.push(received.clone());
        log.len() - 1
    };
    (state.responder)(n, &received)
}

impl Receiver {
    async fn start(addr: &str, responder: Responder) -> Self {
        let state = ReceiverState {
            log: Arc::default(),
            responder,
        };
        Self::serve(addr.parse().unwrap(), state).await
    }

    async fn serve(addr: SocketAddr, state: ReceiverState) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(receive).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            state,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stop listening and close every connection (the port then refuses connections).
    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Listen again on the same port, keeping the log and responder.
    async fn restart(&mut self) {
        let again = Self::serve(self.addr, self.state.clone()).await;
        self.stop = again.stop;
        self.task = again.task;
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Received> {
        self.state.log.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        wait_until(&format!("{n} requests"), || self.requests().len() >= n).await;
        self.requests()
    }
}

fn status(code: u16) -> Responder {
    Arc::new(move |_, _| StatusCode::from_u16(code).unwrap().into_response())
}

/// A scripted answer: status, headers, body.
type Scripted = (u16, &'static [(&'static str, &'static str)], &'static str);

/// Answer the scripted codes in order, then 204.
fn script(codes: &[Scripted]) -> Responder {
    let codes: Arc<Mutex<VecDeque<_>>> = Arc::new(Mutex::new(codes.iter().cloned().collect()));
    Arc::new(move |_, _| match codes.lock().unwrap().pop_front() {
        Some((code, headers, body)) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), body).into_response();
            for (k, v) in headers {
                response
                    .headers_mut()
                    .insert(*k, axum::http::HeaderValue::from_static(v));
            }
            response
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback address nothing listens on (yet).
async fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// ------------------------------------------------------------------------------------------------------
// Events and posters

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(1),
        last_transition_time: Time("2026-06-03T12:00:00Z".parse().unwrap()),
    }
}

fn app_ref(name: &str) -> ResourceRef {
    ResourceRef {
        api_version: "apps.vworkspace.io/v1alpha1".into(),
        kind: "ApplicationInstance".into(),
        namespace: "team-alpha".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        generation: 1,
    }
}

/// One ConditionTransition for the object `name` (Ready becomes True).
fn event(name: &str) -> Event {
    condition_transitions(
        &app_ref(name),
        &[],
        &[cond("Ready", "True", "HelmReleaseReady", "release ready")],
        &[],
        jiff::Timestamp::now(),
    )
    .remove(0)
}

fn events(prefix: &str, range: std::ops::Range<usize>) -> Vec<Event> {
    range.map(|i| event(&format!("{prefix}{i}"))).collect()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(token: &str) -> Self {
        vworkspace_operator::report::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
        Self { dir }
    }

    fn token(&self) -> PathBuf {
        self.dir.path().join("token")
    }

    fn set_token(&self, token: &str) {
        std::fs::write(self.token(), token).unwrap();
    }

    fn key(&self, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join("hmac-key");
        std::fs::write(&path, content).unwrap();
        path
    }
}

fn config(endpoint: &str, token: &Path) -> PosterConfig {
    let mut c = PosterConfig::new(endpoint, token, "test-cluster");
    c.heartbeat_interval = None;
    c.snapshot_on_start = false;
    c.max_backoff = Duration::from_secs(2);
    c
}

fn no_snapshot() -> Arc<dyn SnapshotSource> {
    Arc::new(Vec::new)
}

async fn start(config: PosterConfig) -> EventPoster {
    EventPoster::start(config, no_snapshot(), None)
        .await
        .expect("start the poster")
}

async fn wait_state(poster: &EventPoster, what: &str, f: impl Fn(&EventPoster) -> bool) {
    wait_until(what, || f(poster)).await;
}

// ------------------------------------------------------------------------------------------------------
// Wire format

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn posts_the_wire_format_with_verifiable_signature() {
    let files = Files::new("tok-1");
    let rx = Receiver::start("127.0.0.1:0", status(204)).await;
    let mut cfg = config(&rx.url(), &files.token());
    cfg.signing_key_file = Some(files.key(format!("{WHSEC}\n").as_bytes()));
    let poster = start(cfg).await;

    let mut secret_event = event("app-secret");
    secret_event.conditions[0].message =
        "install failed: token: abc123 and password=hunter2".into();
    poster.submit_all([event("app-0"), event("app-1"), secret_event]);
    let req = rx.wait_for(1).await.remove(0);

    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/api/agent/events");
    assert_eq!(req.header("authorization"), "Bearer tok-1");
    assert_eq!(req.header("content-type"), MEDIA_TYPE);
    assert_eq!(req.header("accept"), MEDIA_TYPE);

    // The Standard Webhooks reference implementation verifies the signature.
    let wh = standardwebhooks::Webhook::new(WHSEC).unwrap();
    wh.verify(&req.body, &req.headers)
        .expect("signature verifies");
    let wrong = standardwebhooks::Webhook::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    assert!(wrong.verify(&req.body, &req.headers).is_err());
    let mut tampered = req.body.to_vec();
    tampered[0] = b' ';
    assert!(wh.verify(&tampered, &req.headers).is_err());
    assert!(req.header("webhook-id").starts_with("msg_"));

    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let evs = body["events"].as_array().unwrap();
    assert_eq!(evs.len(), 3);
    assert_eq!(
        evs[0]["eventKey"],
        "condition/apps.vworkspace.io/v1alpha1/ApplicationInstance/team-alpha/app-0/uid-app-0/Ready/True@1"
    );
    assert_eq!(evs[0]["kind"], "ConditionTransition");
    assert_eq!(
        evs[0]["resourceRef"],
        serde_json::json!({"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "namespace": "team-alpha", "name": "app-0", "uid": "uid-app-0", "generation": 1})
    );
    assert_eq!(evs[0]["conditions"][0]["type"], "Ready");
    assert_eq!(evs[0]["conditions"][0]["reason"], "HelmReleaseReady");
    assert_eq!(
        evs[0]["conditions"][0]["lastTransitionTime"],
        "2026-06-03T12:00:00Z"
    );
    assert!(evs[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    // Messages are redacted before they leave the process.
    assert_eq!(
        evs[2]["conditions"][0]["message"],
        "install failed: token: [REDACTED] and password=[REDACTED]"
    );
    assert!(!String::from_utf8_lossy(&req.body).contains("hunter2"));

    wait_state(&poster, "delivered", |p| p.stats().delivered == 3).await;
    let state = poster.state();
    assert_eq!(state.reachable, Some(true));
    assert_eq!(state.authenticated, Some(true));
    let conds: Vec<String> = state
        .conditions()
        .iter()
        .map(|c| format!("{}={}/{}", c.type_, c.status, c.reason))
        .collect();
    assert_eq!(
        conds,
        [
            "Connected=True/RoundTripOK",
            "Authenticated=True/CredentialAccepted",
            "BufferOverflow=False/BufferDrained"
        ]
    );
    poster.shutdown().await;
}

#[tokio::test]
async fn a_raw_signing_key_signs_too() {
    let files = Files::new("tok");
    let rx = Receiver::start("127.0.0.1:0", status(204)).await;
    let mut cfg = config(&rx.url(), &files.token());
    // Not whsec_: the file's bytes (minus one trailing newline) are the key.
    cfg.signing_key_file = Some(files.key(b"raw-key-bytes\n"));
    let poster = start(cfg).await;
    poster.submit(event("a"));
    let req = rx.wait_for(1).await.remove(0);
    let wh = standardwebhooks::Webhook::from_bytes(b"raw-key-bytes".to_vec()).unwrap();
    wh.verify(&req.body, &req.headers)
        .expect("signature verifies");
    // Without a key file, requests are not signed.
    let rx2 = Receiver::start("127.0.0.1:0", status(204)).await;
    let unsigned = start(config(&rx2.url(), &files.token())).await;
    unsigned.submit(event("b"));
    let req = rx2.wait_for(1).await.remove(0);
    assert_eq!(req.header("webhook-signature"), "");
    poster.shutdown().await;
    unsigned.shutdown().await;
}

// ------------------------------------------------------------------------------------------------------
// Batching

#[tokio::test]
async fn batches_at_100_and_flushes_the_rest_after_the_interval() {
    let files = Files::new("tok");
    let rx = Receiver::start("127.0.0.1:0", status(204)).await;
    let poster = start(config(&rx.url(), &files.token())).await;
    let submitted = Instant::now();
    poster.submit_all(events("e", 0..250));
    let reqs = rx.wait_for(3).await;
    let sizes: Vec<usize> = reqs.iter().map(|r| r.batch().events.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let names: Vec<String> = reqs.iter().flat_map(Received::names).collect();
    let want: Vec<String> = (0..250).map(|i| format!("e{i}")).collect();
    assert_eq!(names, want, "events arrive once, in order");
    // The remainder waited for the flush interval (the client's own wait: a lower bound only).
    assert!(reqs[2].at.duration_since(submitted) >= Duration::from_secs(1));
    poster.shutdown().await;
}

#[tokio::test]
async fn a_single_event_is_flushed_after_a_second_not_before() {
    let files = Files::new("tok");
    let rx = Receiver::start("127.0.0.1:0", status(204)).await;
    let poster = start(config(&rx.url(), &files.token())).await;
    let submitted = Instant::now();
    poster.submit(event("lonely"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.requests().len(), 0, "not sent before the flush interval");
    let req = rx.wait_for(1).await.remove(0);
    assert_eq!(req.names(), ["lonely"]);
    assert!(req.at.duration_since(submitted) >= Duration::from_secs(1));
    poster.shutdown().await;
}

#[tokio::test]
async fn shutdown_delivers_what_is_buffered() {
    let files = Files::new("tok");
    let rx = Receiver::start("127.0.0.1:0", status(204)).await;
    let poster = start(config(&rx.url(), &files.token())).await;
    poster.submit_all(events("s", 0..5));
    poster.shutdown().await;
    let reqs = rx.requests();
    assert_eq!(
        reqs.len(),
        1,
        "delivered at shutdown, before the flush interval"
    );
    assert_eq!(reqs[0].names(), ["s0", "s1", "s2", "s3", "s4"]);
}

#[tokio::test]
async fn heartbeats_when_idle() {
    let files = Files::new("tok");
    let rx = Receiver::start("127.0.0.1:0", status(204)).await;
    let mut cfg = config(&rx.url(), &files.token());
    cfg.heartbeat_interval = Some(Duration::from_secs(1));
    let poster = start(cfg).await;
    let req = rx.wait_for(1).await.remove(0);
    let batch = req.batch();
    assert_eq!(batch.events.len(), 1);
    let hb = &batch.events[0];
    assert_eq!(hb.kind.as_str(), "ClusterHeartbeat");
    assert_eq!(hb.resource_ref.kind, "Cluster");
    assert_eq!(hb.resource_ref.name, "test-cluster");
    assert!(hb.event_key.starts_with("heartbeat/test-cluster/"));
    poster.shutdown().await;
}

// ------------------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn unauthorized_rereads_the_token_once_then_reports_rejected() {
    let files = Files::new("old");
    let accepted = Arc::new(Mutex::new("Bearer new".to_string()));
    let acc = accepted.clone();
    let rx = Receiver::start(
        "127.0.0.1:0",
        Arc::new(move |_, r: &Received| {
            if r.header("authorization") == *acc.lock().unwrap() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }),
    )
    .await;
    let poster = start(config(&rx.url(), &files.token())).await;
    // Rotated after the poster read it: the 401 makes it read the file again and retry once.
    files.set_token("new");
    poster.submit(event("a"));
    let reqs = rx.wait_for(2).await;
    let auth: Vec<&str> = reqs.iter().map(|r| r.header("authorization")).collect();
    assert_eq!(auth, ["Bearer old", "Bearer new"]);
    assert_eq!(reqs[0].body, reqs[1].body, "the same batch is retried");
    wait_state(&poster, "delivered", |p| p.stats().delivered == 1).await;
    assert_eq!(poster.state().authenticated, Some(true));

    // Now the control plane revokes the token: one refresh, still 401, then Authenticated=False.
    *accepted.lock().unwrap() = "Bearer rotated".into();
    poster.submit(event("b"));
    wait_state(&poster, "rejected", |p| {
        p.state().authenticated == Some(false)
    })
    .await;
    assert_eq!(
        rx.requests().len(),
        4,
        "exactly one retry with the re-read token"
    );
    let cond = poster.state().authenticated_condition().unwrap();
    assert_eq!(
        (cond.status, cond.reason.as_str()),
        ("False", "CredentialRejected")
    );
    assert!(cond.message.contains("HTTP 401"), "{}", cond.message);
    assert_eq!(poster.stats().buffered, 1, "the event is kept");

    // The new token lands in the file: the next retry (after backoff) reads it and delivers.
    files.set_token("rotated");
    wait_state(&poster, "delivered after rotation", |p| {
        p.stats().delivered == 2
    })
    .await;
    assert_eq!(poster.state().authenticated, Some(true));
    let last = rx.requests().pop().unwrap();
    assert_eq!(last.header("authorization"), "Bearer rotated");
    assert_eq!(last.names(), ["b"]);
    poster.shutdown().await;
}

#[tokio::test]
async fn forbidden_drops_the_batch_without_retry() {
    let files = Files::new("tok");
    let rx = Receiver::start(
        "127.0.0.1:0",
        script(&[(
            403,
            &[("content-type", "application/json")],
            r#"{"error":"forbidden","message":"cluster not enrolled, password=p4ss"}"#,
        )]),
    )
    .await;
    let poster = start(config(&rx.url(), &files.token())).await;
    poster.submit_all(events("x", 0..3));
    wait_state(&poster, "dropped", |p| p.stats().dropped_rejected == 3).await;
    assert_eq!(poster.stats().buffered, 0);
    let state = poster.state();
    assert_eq!(state.authenticated, Some(false));
    assert!(
        state.rejection_reason.contains("HTTP 403")
            && state.rejection_reason.contains("cluster not enrolled"),
        "{}",
        state.rejection_reason
    );
    assert!(!state.rejection_reason.contains("p4ss"));
    // The next request carries only new events: the refused batch was not retried.
    poster.submit(event("y"));
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].names(), ["y"]);
    wait_state(&poster, "delivered", |p| p.stats().delivered == 1).await;
    poster.shutdown().await;
}

#[tokio::test]
async fn conflict_counts_as_delivered() {
    let files = Files::new("tok");
    let rx = Receiver::start("127.0.0.1:0", script(&[(409, &[], "duplicate")])).await;
    let poster = start(config(&rx.url(), &files.token())).await;
    poster.submit_all(events("c", 0..2));
    wait_state(&poster, "delivered", |p| p.stats().delivered == 2).await;
    poster.submit(event("d"));
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[0].names(), ["c0", "c1"]);
    assert_eq!(reqs[1].names(), ["d"]);
    assert_eq!(poster.state().reachable, Some(true));
    poster.shutdown().await;
}

#[tokio::test]
async fn rate_limited_waits_for_retry_after() {
    let files = Files::new("tok");
    let rx = Receiver::start("127.0.0.1:0", script(&[(429, &[("retry-after", "2")], "")])).await;
    let mut cfg = config(&rx.url(), &files.token());
    cfg.signing_key_file = Some(files.key(WHSEC.as_bytes()));
    let poster = start(cfg).await;
    poster.submit(event("r"));
    let reqs = rx.wait_for(2).await;
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= Duration::from_secs(2),
        "retried before Retry-After"
    );
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(
        reqs[0].header("webhook-id"),
        reqs[1].header("webhook-id"),
        "a retry keeps its message id"
    );
    wait_state(&poster, "delivered", |p| p.stats().delivered == 1).await;
    poster.shutdown().await;
}

#[tokio::test]
async fn server_errors_back_off_no_faster_than_once_a_second() {
    let files = Files::new("tok");
    let rx = Receiver::start(
        "127.0.0.1:0",
        script(&[(503, &[], "maintenance"), (500, &[], "boom")]),
    )
    .await;
    let metrics = Metrics::new();
    let poster = EventPoster::start(
        config(&rx.url(), &files.token()),
        no_snapshot(),
        Some(metrics.event_metrics()),
    )
    .await
    .unwrap();
    poster.submit(event("s"));
    wait_state(&poster, "unreachable", |p| {
        p.state().reachable == Some(false)
    })
    .await;
    let cond = poster.state().connected_condition().unwrap();
    assert_eq!(
        (cond.status, cond.reason.as_str()),
        ("False", "ControlPlaneUnreachable")
    );
    assert!(cond.message.contains("HTTP 503"), "{}", cond.message);
    let reqs = rx.wait_for(3).await;
    for pair in reqs.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_secs(1));
        assert_eq!(pair[0].body, pair[1].body);
    }
    wait_state(&poster, "delivered", |p| p.stats().delivered == 1).await;
    assert_eq!(
        poster.state().connected_condition().unwrap().reason,
        "RoundTripOK"
    );
    let text = metrics.encode().unwrap();
    for want in [
        r#"vworkspace_operator_event_posts_total{result="server_error"} 2"#,
        r#"vworkspace_operator_event_posts_total{result="delivered"} 1"#,
        r#"vworkspace_operator_connectivity_state{mode="events"} 1"#,
        "vworkspace_operator_event_buffer_occupancy 0",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    poster.shutdown().await;
}

// ------------------------------------------------------------------------------------------------------
// Outages: snapshot re-send and the bounded buffer

#[tokio::test]
async fn receiver_down_then_up_resends_the_snapshot_first() {
    let files = Files::new("tok");
    let mut rx = Receiver::start("127.0.0.1:0", status(204)).await;
    let owned = Arc::new(Mutex::new(vec![
        ObjectSnapshot {
            resource_ref: app_ref("snap-a"),
            conditions: vec![
                cond("Ready", "True", "HelmReleaseReady", ""),
                cond("Degraded", "False", "Recovered", ""),
            ],
            endpoints: vec![],
        },
        ObjectSnapshot {
            resource_ref: app_ref("snap-b"),
            conditions: vec![cond("Ready", "False", "Installing", "")],
            endpoints: vec![],
        },
    ]));
    let source = owned.clone();
    let snapshot: Arc<dyn SnapshotSource> = Arc::new(move || source.lock().unwrap().clone());
    let mut cfg = config(&rx.url(), &files.token());
    cfg.snapshot_on_start = true;
    let poster = EventPoster::start(cfg, snapshot, None).await.unwrap();

    // First contact: the snapshot, then events as they come.
    let reqs = rx.wait_for(1).await;
    assert_eq!(reqs[0].names(), ["snap-a", "snap-a", "snap-b"]);
    poster.submit(event("live-1"));
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs[1].names(), ["live-1"]);

    // Down: events buffer, the client backs off.
    rx.stop().await;
    owned.lock().unwrap()[1].conditions = vec![cond("Ready", "True", "HelmReleaseReady", "")];
    poster.submit_all([event("outage-1"), event("outage-2")]);
    wait_state(&poster, "unreachable", |p| {
        p.state().reachable == Some(false)
    })
    .await;
    assert_eq!(poster.stats().buffered, 2);

    // Up: the current snapshot goes first, then what was buffered.
    rx.restart().await;
    wait_state(&poster, "delivered", |p| p.stats().delivered == 3).await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 4);
    let resent = reqs[2].batch();
    assert_eq!(reqs[2].names(), ["snap-a", "snap-a", "snap-b"]);
    assert!(
        resent.events[2]
            .event_key
            .ends_with("/snap-b/uid-snap-b/Ready/True@1"),
        "the snapshot is the current state: {}",
        resent.events[2].event_key
    );
    assert_eq!(reqs[3].names(), ["outage-1", "outage-2"]);
    assert_eq!(poster.state().reachable, Some(true));
    poster.shutdown().await;
}

#[tokio::test]
async fn overflow_drops_the_oldest_until_drained() {
    let files = Files::new("tok");
    let addr = free_addr().await;
    let metrics = Metrics::new();
    let poster = EventPoster::start(
        config(&format!("http://{addr}"), &files.token()),
        no_snapshot(),
        Some(metrics.event_metrics()),
    )
    .await
    .unwrap();
    poster.submit_all(events("o", 0..1200));
    let stats = poster.stats();
    assert_eq!((stats.buffered, stats.dropped_overflow), (1000, 200));
    let state = poster.state();
    assert!(state.overflow);
    let cond = state.buffer_overflow_condition();
    assert_eq!(
        (cond.status, cond.reason.as_str()),
        ("True", "EventBufferFull")
    );
    let text = metrics.encode().unwrap();
    assert!(text.contains("vworkspace_operator_event_buffer_occupancy 1000"));
    assert!(text.contains(r#"vworkspace_operator_events_dropped_total{reason="overflow"} 200"#));

    wait_state(&poster, "unreachable", |p| {
        p.state().reachable == Some(false)
    })
    .await;
    let rx = Receiver::start(&addr.to_string(), status(204)).await;
    wait_state(&poster, "drained", |p| p.stats().delivered == 1000).await;
    let names: Vec<String> = rx.requests().iter().flat_map(Received::names).collect();
    let want: Vec<String> = (200..1200).map(|i| format!("o{i}")).collect();
    assert_eq!(
        names, want,
        "the 200 oldest were dropped; the rest arrive in order"
    );
    assert!(rx.requests().iter().all(|r| r.batch().events.len() <= 100));
    let state = poster.state();
    assert!(!state.overflow);
    assert_eq!(state.buffer_overflow_condition().reason, "BufferDrained");
    assert!(
        metrics
            .encode()
            .unwrap()
            .contains("vworkspace_operator_event_buffer_occupancy 0")
    );
    poster.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_is_refused_at_start() {
    let files = Files::new("tok");
    let err = EventPoster::start(
        config("https://user:pw@cp.example.com", &files.token()),
        no_snapshot(),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("credentials") && !err.contains("pw@"), "{err}");
    let missing = files.dir.path().join("missing");
    let err = EventPoster::start(
        config("https://cp.example.com", &missing),
        no_snapshot(),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("token file") && err.contains("missing"),
        "{err}"
    );
    files.set_token("  \n");
    let err = EventPoster::start(
        config("https://cp.example.com", &files.token()),
        no_snapshot(),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("empty"), "{err}");
}

// ------------------------------------------------------------------------------------------------------
// The admin server: /metrics, /healthz, /readyz

async fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.expect("GET");
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (code, ct, r.text().await.unwrap())
}

#[tokio::test]
async fn admin_serves_probes_and_metrics_on_separate_ports() {
    vworkspace_operator::report::install_crypto_provider();
    let metrics = Metrics::new();
    let readiness = Readiness::new();
    let crds = readiness.register("crds");
    let caches = readiness.register("caches-synced");
    let server = AdminServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.2:0".parse().unwrap(),
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .unwrap();
    let (m, h) = (server.metrics_addr(), server.health_addr());
    assert_ne!(m, h);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));

    let (code, _, body) = get(&format!("http://{h}/healthz")).await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    let (code, ct, body) = get(&format!("http://{h}/readyz")).await;
    assert_eq!((code, ct.as_str()), (503, "application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unready");
    assert_eq!(
        v["failed"],
        serde_json::json!([
            {"name": "caches-synced", "message": "not checked yet"},
            {"name": "crds", "message": "not checked yet"}
        ])
    );

    caches.pass();
    crds.fail("CRD operations.ops.vworkspace.io is not installed: apply crds/");
    let (code, _, body) = get(&format!("http://{h}/readyz")).await;
    assert_eq!(code, 503);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["failed"],
        serde_json::json!([{"name": "crds",
            "message": "CRD operations.ops.vworkspace.io is not installed: apply crds/"}])
    );

    crds.pass();
    let (code, _, body) = get(&format!("http://{h}/readyz")).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["checks"], serde_json::json!(["caches-synced", "crds"]));

    // A check registered later (e.g. "leader") makes it unready again until it passes.
    let leader = readiness.register("leader");
    assert_eq!(get(&format!("http://{h}/readyz")).await.0, 503);
    leader.pass();
    assert_eq!(get(&format!("http://{h}/readyz")).await.0, 200);

    {
        let mut timer = metrics.reconcile_timer(Controller::Cluster);
        timer.set_result(ReconcileResult::Success);
    }
    let (code, ct, body) = get(&format!("http://{m}/metrics")).await;
    assert_eq!(code, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(body.contains(
        r#"vworkspace_operator_reconcile_total{controller="cluster",result="success"} 1"#
    ));
    assert!(body.contains("# TYPE vworkspace_operator_managed_namespaces gauge"));

    // Each port serves only its own paths.
    assert_eq!(get(&format!("http://{m}/readyz")).await.0, 404);
    assert_eq!(get(&format!("http://{h}/metrics")).await.0, 404);

    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
    assert!(reqwest::get(format!("http://{h}/healthz")).await.is_err());
}

#[tokio::test]
async fn admin_uses_one_listener_when_the_addresses_match() {
    vworkspace_operator::report::install_crypto_provider();
    let addr = free_addr().await;
    let readiness = Readiness::new();
    let server = AdminServer::bind(addr, addr, Metrics::new(), readiness.clone())
        .await
        .unwrap();
    assert_eq!(server.metrics_addr(), server.health_addr());
    let a = server.metrics_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));
    assert_eq!(get(&format!("http://{a}/healthz")).await.0, 200);
    assert_eq!(
        get(&format!("http://{a}/readyz")).await.0,
        200,
        "no checks registered"
    );
    assert_eq!(get(&format!("http://{a}/metrics")).await.0, 200);
    // A second server cannot take the same port: a clear error.
    let err = AdminServer::bind(a, a, Metrics::new(), readiness)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&a.to_string()), "{err}");
    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
