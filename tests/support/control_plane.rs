//! A control plane on loopback for Pull mode: a real HTTP server implementing the agent API of docs/pull.md
//! (register, the long poll, ack, status, result, events, credential rotation), with upstream's mock quirks
//! (403 rather than 401 for a bad token on `/jobs`, `{"jobs": null}`, each job delivered once whether or not it
//! is acked, ack/result of an unknown id answered 204, the old token invalid the moment a rotation returns), and
//! faults a test can inject (answers of a given status, `Retry-After`, a slow answer, down).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One injected answer for the next `/jobs` requests: status and `Retry-After`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub retry_after: Option<String>,
}

#[derive(Default)]
pub struct CpState {
    /// One-time registration tokens still valid.
    pub registration_tokens: HashSet<String>,
    /// Valid agent tokens → cluster id.
    pub tokens: HashMap<String, String>,
    issued: u64,
    /// Jobs not yet delivered.
    pub queue: VecDeque<Value>,
    /// Every result post by job id (a correct agent posts one each).
    pub results: BTreeMap<String, Vec<Value>>,
    pub statuses: BTreeMap<String, Vec<Value>>,
    pub acks: BTreeMap<String, usize>,
    pub events: Vec<Value>,
    /// Answers to give to the next `/jobs` requests instead of jobs.
    pub faults: VecDeque<Fault>,
    /// When each `/jobs` request arrived, and what it was answered.
    pub polls: Vec<(Instant, u16)>,
    /// Requests per path kind (`register`, `jobs`, `ack`, `status`, `result`, `events`, `rotate`).
    pub requests: BTreeMap<&'static str, usize>,
    /// Down: every request answered 503.
    pub down: bool,
    /// Go down (as `down`) right after acknowledging this job's ack: the job's result is then owed, however fast
    /// the agent reaches the outcome.
    pub down_after_ack: Option<String>,
    /// Answer a bad token with 401 (the documented contract) instead of the mock's 403.
    pub strict_401: bool,
    /// Long polls being held open now (a poll whose client went away ends when the server sees the
    /// connection closed).
    pub polls_waiting: usize,
}

/// Counts a held long poll for as long as its handler lives.
struct Waiting(ControlPlane);

impl Waiting {
    fn new(cp: &ControlPlane) -> Self {
        cp.lock().polls_waiting += 1;
        Self(cp.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.lock().polls_waiting -= 1;
    }
}

#[derive(Clone)]
pub struct ControlPlane {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<CpState>>,
    changed: Arc<Notify>,
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

/// A JSON answer, in the agent API's media type.
fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/vnd.vworkspace.agent.v1+json")],
        body.to_string(),
    )
        .into_response()
}

fn ok_json(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"error": code, "message": message, "requestId": "req-1"}),
    )
}

impl ControlPlane {
    pub async fn start() -> Self {
        let state: Arc<Mutex<CpState>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let cp = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            state: state.clone(),
            changed: changed.clone(),
        };
        let app = axum::Router::new()
            .route("/api/agent/register", axum::routing::post(register))
            .route("/api/agent/jobs", axum::routing::get(jobs))
            .route("/api/agent/jobs/{id}/{what}", axum::routing::post(job_post))
            .route("/api/agent/events", axum::routing::post(events))
            .route("/api/agent/credentials/rotate", axum::routing::post(rotate))
            .with_state(cp.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, ..cp }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, CpState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_registration_token(&self, token: &str) {
        self.lock().registration_tokens.insert(token.to_string());
    }

    /// Queue jobs; a waiting poll gets them at once.
    pub fn push(&self, jobs: impl IntoIterator<Item = Value>) {
        self.lock().queue.extend(jobs);
        self.changed.notify_waiters();
    }

    /// The result posts of a job.
    pub fn results(&self, id: &str) -> Vec<Value> {
        self.lock().results.get(id).cloned().unwrap_or_default()
    }

    /// Wait until no long poll is held open: after an agent was killed, its poll (the server notices the closed
    /// connection soon, not at once) must not take jobs queued for the next agent. Upstream delivers a job once
    /// whether or not it is acked, so a job handed to a dead connection is lost, here as there.
    pub async fn no_poll_waiting(&self, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.lock().polls_waiting > 0 {
            assert!(
                Instant::now() < deadline,
                "a long poll still held {secs} s after its agent was stopped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn statuses(&self, id: &str) -> Vec<Value> {
        self.lock().statuses.get(id).cloned().unwrap_or_default()
    }

    /// Invalidate every agent token (a revoked credential).
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// A token valid for `cluster` (what an admin would put in the credentials Secret after re-issuing one).
    pub fn issue_token(&self, cluster: &str) -> String {
        let mut s = self.lock();
        s.issued += 1;
        let t = format!("tok-{}-{}", s.issued, fastrand::u64(..));
        s.tokens.insert(t.clone(), cluster.to_string());
        t
    }

    pub fn requests(&self, kind: &str) -> usize {
        self.lock().requests.get(kind).copied().unwrap_or(0)
    }
}

fn count(cp: &ControlPlane, kind: &'static str) -> Option<Response> {
    let mut s = cp.lock();
    *s.requests.entry(kind).or_default() += 1;
    s.down
        .then(|| error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "down"))
}

async fn register(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = count(&cp, "register") {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = body["registrationToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cluster = body["clusterId"].as_str().unwrap_or_default().to_string();
    if bearer(&headers) != token || !cp.lock().registration_tokens.remove(&token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_registration_token",
            "unknown or used token",
        );
    }
    let t = cp.issue_token(&cluster);
    ok_json(json!({"clusterId": cluster, "token": t}))
}

struct JobsQuery {
    cluster: String,
    wait: Option<u64>,
}

fn jobs_query(raw: Option<String>) -> JobsQuery {
    let mut q = JobsQuery {
        cluster: String::new(),
        wait: None,
    };
    for pair in raw.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("cluster", v)) => q.cluster = v.to_string(),
            Some(("wait", v)) => q.wait = v.parse().ok(),
            _ => {}
        }
    }
    q
}

async fn jobs(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = jobs_query(raw);
    if let Some(r) = count(&cp, "jobs") {
        cp.lock().polls.push((Instant::now(), 503));
        return r;
    }
    let fault = cp.lock().faults.pop_front();
    if let Some(f) = fault {
        cp.lock().polls.push((Instant::now(), f.status));
        let mut resp = error(StatusCode::from_u16(f.status).unwrap(), "fault", "injected");
        if let Some(ra) = f.retry_after {
            resp.headers_mut()
                .insert("retry-after", ra.parse().unwrap());
        }
        return resp;
    }
    let (valid, strict) = {
        let s = cp.lock();
        (
            s.tokens.get(&bearer(&headers)) == Some(&q.cluster),
            s.strict_401,
        )
    };
    if !valid {
        let code = if strict {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        cp.lock().polls.push((Instant::now(), code.as_u16()));
        return error(code, "forbidden", "bad token");
    }
    cp.lock().polls.push((Instant::now(), 200));
    let _waiting = Waiting::new(&cp);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(30).min(300));
    loop {
        let notified = cp.changed.notified();
        {
            let mut s = cp.lock();
            if !s.queue.is_empty() {
                let jobs: Vec<Value> = s.queue.drain(..).collect();
                return ok_json(json!({"jobs": jobs}));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok_json(json!({"jobs": null}));
        }
    }
}

async fn job_post(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let kind = match what.as_str() {
        "ack" => "ack",
        "status" => "status",
        "result" => "result",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if let Some(r) = count(&cp, kind) {
        return r;
    }
    if !cp.lock().tokens.contains_key(&bearer(&headers)) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad token");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = cp.lock();
    match kind {
        "ack" => {
            if s.down_after_ack.as_deref() == Some(id.as_str()) {
                s.down_after_ack = None;
                s.down = true;
            }
            *s.acks.entry(id).or_default() += 1
        }
        "status" => s.statuses.entry(id).or_default().push(body),
        _ => {
            let list = s.results.entry(id).or_default();
            list.push(body);
            if list.len() > 1 {
                return error(
                    StatusCode::CONFLICT,
                    "already_recorded",
                    "result already recorded",
                );
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn events(
    State(cp): State<ControlPlane>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = count(&cp, "events") {
        return r;
    }
    if !cp.lock().tokens.contains_key(&bearer(&headers)) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad token");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(list) = body["events"].as_array() {
        cp.lock().events.extend(list.iter().cloned());
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn rotate(State(cp): State<ControlPlane>, headers: HeaderMap) -> Response {
    if let Some(r) = count(&cp, "rotate") {
        return r;
    }
    let old = bearer(&headers);
    let cluster = cp.lock().tokens.remove(&old);
    let Some(cluster) = cluster else {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "bad token");
    };
    let t = cp.issue_token(&cluster);
    ok_json(json!({"token": t}))
}
