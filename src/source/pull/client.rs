//! The agent API client (docs/pull.md): one request per call, each answer classified the way the documented
//! error handling needs it. Retrying, backoff and credential re-reads are the agent's ([`super::agent`]).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{Value, json};

use super::job::{self, Job, JobError, JobResult, JobStatus, MEDIA_TYPE};
use crate::report::events::{parse_retry_after, response_detail};

/// The largest `GET /api/agent/jobs` answer read: 16 MiB. A job's payload is one Kubernetes object (etcd stores at
/// most 1.5 MiB, the API server takes at most 3 MiB per request), so this holds a full batch of ordinary jobs and
/// several of the largest; a larger answer is refused whole (nothing is acked, so nothing is lost) and the poll
/// retried with backoff.
pub const MAX_JOBS_ANSWER: usize = 16 << 20;
/// The largest other answer read (registration, rotation: a token and a few fields): 64 KiB.
pub const MAX_ANSWER: usize = 64 << 10;
/// How much of an error answer's body is read for its message.
const ERROR_DETAIL: usize = 4096;

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("401 Unauthorized{0}")]
    Unauthorized(String),
    #[error("403 Forbidden{0}")]
    Forbidden(String),
    #[error("404 Not Found{0}")]
    NotFound(String),
    #[error("409 Conflict{0}")]
    Conflict(String),
    #[error("429 Too Many Requests{}", retry_text(.0))]
    TooManyRequests(Option<Duration>),
    #[error("{0}{1}")]
    Server(u16, String),
    #[error("{0}")]
    Network(String),
    /// A 2xx answer the client cannot read.
    #[error("{0}")]
    Protocol(String),
}

fn retry_text(d: &Option<Duration>) -> String {
    d.map(|d| format!(" (Retry-After {} s)", d.as_secs()))
        .unwrap_or_default()
}

impl ApiError {
    /// Transient: worth retrying with backoff (5xx, 429, network).
    pub fn transient(&self) -> bool {
        matches!(
            self,
            ApiError::TooManyRequests(_) | ApiError::Server(..) | ApiError::Network(_)
        )
    }
}

/// A registration's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub cluster_id: String,
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A rotation's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotated {
    pub token: String,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The agent API at one base URL.
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
}

impl AgentClient {
    /// `base`: the control-plane endpoint (trailing `/` trimmed). `request_timeout` bounds every request but the
    /// long poll, which gets its `wait` on top.
    pub fn new(base: &str, request_timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vworkspace-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        timeout: Option<Duration>,
        limit: usize,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(ACCEPT, MEDIA_TYPE);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, MEDIA_TYPE)
                .body(serde_json::to_vec(&body).unwrap_or_default());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Network(network_text(&e)))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        if status.is_success() {
            let what = path.split('?').next().unwrap_or_default();
            return Ok((status, read_bounded(resp, limit, what).await?));
        }
        let bytes = read_prefix(resp, ERROR_DETAIL).await;
        let detail = response_detail(&bytes);
        Err(match status.as_u16() {
            401 => ApiError::Unauthorized(detail),
            403 => ApiError::Forbidden(detail),
            404 => ApiError::NotFound(detail),
            409 => ApiError::Conflict(detail),
            429 => ApiError::TooManyRequests(retry_after),
            code => ApiError::Server(code, detail),
        })
    }

    /// `POST /api/agent/register` with the one-time registration token as bearer.
    pub async fn register(
        &self,
        registration_token: &str,
        cluster_id: &str,
        display_name: Option<&str>,
    ) -> Result<Registered, ApiError> {
        let mut body = json!({"registrationToken": registration_token, "clusterId": cluster_id});
        if let Some(d) = display_name {
            body["displayName"] = json!(d);
        }
        let (_, bytes) = self
            .send(
                reqwest::Method::POST,
                "/api/agent/register",
                registration_token,
                Some(body),
                None,
                MAX_ANSWER,
            )
            .await?;
        let r: Registered = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Protocol(format!("register: unreadable answer: {e}")))?;
        if r.token.is_empty() {
            return Err(ApiError::Protocol(
                "register: the answer has no token".into(),
            ));
        }
        Ok(r)
    }

    /// `GET /api/agent/jobs?cluster=<id>&wait=<secs>`: the long poll.
    pub async fn jobs(
        &self,
        token: &str,
        cluster_id: &str,
        wait: Duration,
    ) -> Result<Vec<Result<Job, JobError>>, ApiError> {
        let path = format!(
            "/api/agent/jobs?cluster={}&wait={}",
            url_escape(cluster_id),
            wait.as_secs()
        );
        let (_, bytes) = self
            .send(
                reqwest::Method::GET,
                &path,
                token,
                None,
                Some(wait + Duration::from_secs(15)),
                MAX_JOBS_ANSWER,
            )
            .await?;
        job::parse_jobs(&bytes).map_err(|e| ApiError::Protocol(e.to_string()))
    }

    /// `POST /api/agent/jobs/{id}/ack`; 409 (already closed) counts as done.
    pub async fn ack(&self, token: &str, id: &str) -> Result<(), ApiError> {
        self.post_job(token, id, "ack", None).await
    }

    /// `POST /api/agent/jobs/{id}/status`.
    pub async fn status(&self, token: &str, id: &str, status: &JobStatus) -> Result<(), ApiError> {
        self.post_job(token, id, "status", Some(json!(status)))
            .await
    }

    /// `POST /api/agent/jobs/{id}/result`; 409 (already recorded) counts as done.
    pub async fn result(&self, token: &str, id: &str, result: &JobResult) -> Result<(), ApiError> {
        self.post_job(token, id, "result", Some(json!(result)))
            .await
    }

    async fn post_job(
        &self,
        token: &str,
        id: &str,
        what: &str,
        body: Option<Value>,
    ) -> Result<(), ApiError> {
        let path = format!("/api/agent/jobs/{}/{what}", url_escape(id));
        match self
            .send(reqwest::Method::POST, &path, token, body, None, MAX_ANSWER)
            .await
        {
            Ok(_) | Err(ApiError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/agent/credentials/rotate`: the old token is invalid once this returns.
    pub async fn rotate(&self, token: &str) -> Result<Rotated, ApiError> {
        let (_, bytes) = self
            .send(
                reqwest::Method::POST,
                "/api/agent/credentials/rotate",
                token,
                Some(json!({})),
                None,
                MAX_ANSWER,
            )
            .await?;
        let r: Rotated = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Protocol(format!("rotate: unreadable answer: {e}")))?;
        if r.token.is_empty() {
            return Err(ApiError::Protocol("rotate: the answer has no token".into()));
        }
        Ok(r)
    }
}

/// A success answer's body, refused beyond `limit` bytes (announced or streamed): chunks are read one at a time,
/// so no more than `limit` plus one chunk is ever held. The request's timeout bounds the time.
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::Protocol(format!(
            "{what}: the answer is larger than {limit} bytes: refused"
        ))
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ApiError::Network(network_text(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first `limit` bytes (or so) of an error answer's body, for its message; the rest is not read.
async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())])
            }
            _ => break,
        }
    }
    body
}

/// A request error without the URL (it may carry a query string) or credentials.
fn network_text(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(e);
    if let Some(s) = source.take() {
        text.push_str(&format!(": {s}"));
    }
    crate::secrets::redact_text(&text)
}

/// Percent-encode a path or query component (ids are opaque strings).
pub fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control plane on loopback whose answers are larger than the bounds: a job list streamed in chunks (no
    /// length announced) one byte over 16 MiB, and a registration answer announcing 1 MiB. Both are valid JSON, so
    /// only the bound refuses them; a job list at the bound is read.
    #[tokio::test]
    async fn answers_beyond_the_bounds_are_refused() {
        use axum::body::Body;
        use axum::routing::{get, post};
        // `{"jobs":null,"pad":"aaa…"}` of exactly `len` bytes, in 64 KiB chunks.
        fn padded(len: usize) -> Body {
            let head = br#"{"jobs":null,"pad":""#.to_vec();
            let pad = len - head.len() - 2;
            let mut chunks = vec![Ok::<_, std::io::Error>(head)];
            chunks.extend(
                (0..pad.div_ceil(65536)).map(|i| Ok(vec![b'a'; 65536.min(pad - i * 65536)])),
            );
            chunks.push(Ok(b"\"}".to_vec()));
            Body::from_stream(futures::stream::iter(chunks))
        }
        let app = axum::Router::new()
            .route(
                "/api/agent/jobs",
                get(|q: axum::extract::RawQuery| async move {
                    let over = q.0.unwrap_or_default().contains("cluster=over");
                    padded(MAX_JOBS_ANSWER + usize::from(over))
                }),
            )
            .route(
                "/api/agent/register",
                post(|| async {
                    let mut body = br#"{"clusterId":"c","token":"t","pad":""#.to_vec();
                    body.resize(1 << 20, b'a');
                    body.extend_from_slice(b"\"}");
                    body
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = AgentClient::new(&url, Duration::from_secs(60)).unwrap();
        let wait = Duration::from_secs(1);
        assert_eq!(client.jobs("t", "at", wait).await.unwrap(), vec![]);
        match client.jobs("t", "over", wait).await {
            Err(ApiError::Protocol(m)) => assert_eq!(
                m,
                "/api/agent/jobs: the answer is larger than 16777216 bytes: refused"
            ),
            other => panic!("{other:?}"),
        }
        match client.register("r", "c", None).await {
            Err(ApiError::Protocol(m)) => assert!(m.contains("larger than 65536 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(url_escape("job-1"), "job-1");
        assert_eq!(url_escape("a/../b?x=1"), "a%2F..%2Fb%3Fx%3D1");
    }
}
