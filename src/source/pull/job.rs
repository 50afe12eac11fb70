//! Pull mode's wire types (docs/pull.md, the upstream agent API v1): jobs as the control plane sends them, and
//! the status and result bodies the operator posts back. Parsing is strict where acting depends on it (a job the
//! operator cannot understand is refused with a result naming the field) and lenient elsewhere (unknown fields
//! are ignored, as the contract says).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ijson;

/// `Accept` and `Content-Type` of every request.
pub const MEDIA_TYPE: &str = "application/vnd.vworkspace.agent.v1+json";

/// What a Go server writes for an unset time: treated as absent.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The three job kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Apply,
    Delete,
    Intent,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Apply => "apply",
            JobKind::Delete => "delete",
            JobKind::Intent => "intent",
        }
    }
}

/// One job, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub payload: Value,
    /// Opaque; may be empty (then the job id stands in for it).
    pub idempotency_key: String,
    pub created_at: Option<Timestamp>,
    /// `expiresAt` as received (what a job signature covers), `None` when absent or Go's zero time.
    pub expires_at_text: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// Base64 Ed25519 signature (docs/pull.md#signed-jobs).
    pub signature: Option<String>,
}

impl Job {
    /// The key replays are recognised by: the idempotency key, or the job id when it is empty.
    pub fn replay_key(&self) -> &str {
        if self.idempotency_key.is_empty() {
            &self.id
        } else {
            &self.idempotency_key
        }
    }

    /// Whether the job expired before `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// The job as JSON again (what `sign-job` prints), with the times as received.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("kind".into(), Value::String(self.kind.as_str().into()));
        m.insert("payload".into(), self.payload.clone());
        m.insert(
            "idempotencyKey".into(),
            Value::String(self.idempotency_key.clone()),
        );
        if let Some(t) = self.created_at {
            m.insert("createdAt".into(), Value::String(t.to_string()));
        }
        if let Some(t) = &self.expires_at_text {
            m.insert("expiresAt".into(), Value::String(t.clone()));
        }
        if let Some(s) = &self.signature {
            m.insert("signature".into(), Value::String(s.clone()));
        }
        Value::Object(m)
    }
}

/// A job that cannot be understood: which one (when its id could be read), which field, why; `code` is the
/// refusal's reason when it has one (it then starts the message, as a refused signature's does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub id: Option<String>,
    pub field: String,
    pub reason: String,
    pub code: Option<&'static str>,
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(code) = self.code {
            write!(f, "{code}: ")?;
        }
        let id = self.id.as_deref().unwrap_or("(no id)");
        write!(f, "job {id}: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for JobError {}

impl JobError {
    pub fn new(id: Option<&str>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            id: id.map(str::to_string),
            field: field.into(),
            reason: reason.into(),
            code: None,
        }
    }

    /// A job the I-JSON reader refuses ([`ijson`]).
    pub fn refused(id: Option<&str>, p: ijson::Problem) -> Self {
        Self {
            code: Some(p.reason),
            ..Self::new(id, p.path, p.message)
        }
    }
}

/// A response that is not a job list at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GET /api/agent/jobs: {0}")]
pub struct ResponseError(pub String);

/// Read a `GET /api/agent/jobs` response body: `{"jobs": [...]}` (`null` or absent = none). Each job is read on
/// its own, as I-JSON ([`ijson`]), so one malformed or ambiguous job is refused (by id, when it has one) without
/// losing the others.
pub fn parse_jobs(body: &[u8]) -> Result<Vec<Result<Job, JobError>>, ResponseError> {
    let elements = ijson::job_list(body).map_err(ResponseError)?;
    Ok(elements
        .into_iter()
        .map(|e| match e.value {
            Ok(v) => parse_job(v),
            Err(p) => Err(JobError::refused(e.id.as_deref(), p)),
        })
        .collect())
}

/// Parse one job object.
pub fn parse_job(value: Value) -> Result<Job, JobError> {
    let Value::Object(mut m) = value else {
        return Err(JobError::new(None, "job", "not a JSON object"));
    };
    let id = match m.remove("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s,
        Some(Value::String(s)) if s.is_empty() => {
            return Err(JobError::new(None, "id", "empty"));
        }
        Some(Value::String(_)) => {
            return Err(JobError::new(None, "id", "longer than 256 characters"));
        }
        Some(_) => return Err(JobError::new(None, "id", "not a string")),
        None => return Err(JobError::new(None, "id", "missing")),
    };
    // Every number exact, as its canonical form reads back (the signature covers that form).
    for (name, v) in m.iter_mut() {
        ijson::exact_numbers(v, &mut vec![ijson::Seg::Key(name.clone())])
            .map_err(|p| JobError::refused(Some(&id), p))?;
    }
    let err = |field: &str, reason: String| JobError::new(Some(&id), field, reason);
    let kind = match m.remove("kind") {
        Some(Value::String(s)) => match s.as_str() {
            "apply" => JobKind::Apply,
            "delete" => JobKind::Delete,
            "intent" => JobKind::Intent,
            other => {
                return Err(err(
                    "kind",
                    format!("unknown kind {other:?} (apply, delete or intent)"),
                ));
            }
        },
        Some(_) => return Err(err("kind", "not a string".into())),
        None => return Err(err("kind", "missing".into())),
    };
    let payload = match m.remove("payload") {
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err(err("payload", "not a JSON object".into())),
        None => return Err(err("payload", "missing".into())),
    };
    let idempotency_key = match m.remove("idempotencyKey") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(err("idempotencyKey", "not a string".into())),
    };
    let time = |field: &str, v: Option<Value>| -> Result<Option<(String, Timestamp)>, JobError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s == GO_ZERO_TIME || s.is_empty() => Ok(None),
            Some(Value::String(s)) => match s.parse::<Timestamp>() {
                Ok(t) => Ok(Some((s, t))),
                Err(e) => Err(err(field, format!("not an RFC 3339 time: {e}"))),
            },
            Some(_) => Err(err(field, "not a string".into())),
        }
    };
    let created_at = time("createdAt", m.remove("createdAt"))?.map(|(_, t)| t);
    let expires = time("expiresAt", m.remove("expiresAt"))?;
    let signature = match m.remove("signature") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        None | Some(Value::Null) => None,
        Some(Value::String(_)) => None,
        Some(_) => return Err(err("signature", "not a string".into())),
    };
    let (expires_at_text, expires_at) = match expires {
        Some((text, t)) => (Some(text), Some(t)),
        None => (None, None),
    };
    Ok(Job {
        id,
        kind,
        payload,
        idempotency_key,
        created_at,
        expires_at_text,
        expires_at,
        signature,
    })
}

/// What a job asks for, once understood: one object applied, or one object deleted.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Server-side apply of a whole object (labels for the cluster are added by the applier).
    Apply(Value),
    Delete(ObjectKey),
}

/// An object's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectKey {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl Action {
    /// The object the action is about.
    pub fn key(&self) -> ObjectKey {
        match self {
            Action::Delete(k) => k.clone(),
            Action::Apply(obj) => object_key(obj).expect("checked when the action was made"),
        }
    }
}

/// The identity of a whole object (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`).
pub fn object_key(obj: &Value) -> Result<ObjectKey, (String, String)> {
    let s = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).unwrap_or("");
    let missing = |field: &str| (field.to_string(), "missing or not a string".to_string());
    let key = ObjectKey {
        api_version: s("/apiVersion").to_string(),
        kind: s("/kind").to_string(),
        namespace: s("/metadata/namespace").to_string(),
        name: s("/metadata/name").to_string(),
    };
    if key.api_version.is_empty() {
        return Err(missing("apiVersion"));
    }
    if key.kind.is_empty() {
        return Err(missing("kind"));
    }
    if key.name.is_empty() {
        return Err(missing("metadata.name"));
    }
    Ok(key)
}

/// What the job asks for. Intent jobs are the same two actions named by purpose.
pub fn action(job: &Job) -> Result<Action, JobError> {
    let err = |field: String, reason: String| JobError::new(Some(&job.id), field, reason);
    let whole = |obj: &Value, at: &str, want_kind: Option<&str>| -> Result<Action, JobError> {
        let key = object_key(obj).map_err(|(f, r)| err(format!("{at}.{f}"), r))?;
        if let Some(want) = want_kind
            && key.kind != want
        {
            return Err(err(
                format!("{at}.kind"),
                format!("{} where {want} was expected", key.kind),
            ));
        }
        Ok(Action::Apply(obj.clone()))
    };
    match job.kind {
        JobKind::Apply => whole(&job.payload, "payload", None),
        JobKind::Delete => {
            let key: ObjectKey = serde_json::from_value(job.payload.clone()).map_err(|e| {
                err(
                    "payload".into(),
                    format!("a delete job needs {{apiVersion, kind, name, namespace}}: {e}"),
                )
            })?;
            for (field, v) in [
                ("apiVersion", &key.api_version),
                ("kind", &key.kind),
                ("name", &key.name),
            ] {
                if v.is_empty() {
                    return Err(err(format!("payload.{field}"), "empty".into()));
                }
            }
            Ok(Action::Delete(key))
        }
        JobKind::Intent => {
            let intent = job
                .payload
                .get("intent")
                .and_then(Value::as_str)
                .ok_or_else(|| err("payload.intent".into(), "missing or not a string".into()))?;
            match intent {
                "ensure-application-instance" => {
                    let obj = job.payload.get("applicationInstance").ok_or_else(|| {
                        err("payload.applicationInstance".into(), "missing".into())
                    })?;
                    whole(
                        obj,
                        "payload.applicationInstance",
                        Some("ApplicationInstance"),
                    )
                }
                "request-operation" => {
                    let obj = job
                        .payload
                        .get("operation")
                        .ok_or_else(|| err("payload.operation".into(), "missing".into()))?;
                    whole(obj, "payload.operation", Some("Operation"))
                }
                "delete-application-instance" => {
                    let field = |f: &str| {
                        job.payload
                            .get(f)
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .ok_or_else(|| err(format!("payload.{f}"), "missing or empty".into()))
                    };
                    Ok(Action::Delete(ObjectKey {
                        api_version: "apps.vworkspace.io/v1alpha1".to_string(),
                        kind: "ApplicationInstance".into(),
                        name: field("name")?,
                        namespace: field("namespace")?,
                    }))
                }
                other => Err(err(
                    "payload.intent".into(),
                    format!(
                        "unknown intent {other:?} (ensure-application-instance, request-operation or \
                         delete-application-instance)"
                    ),
                )),
            }
        }
    }
}

/// A job's outcome, posted once to `/result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Noop,
    Conflict,
}

/// The object a job applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// The `/result` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_ref: Option<AppliedRef>,
    pub timestamp: String,
}

/// The `/status` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub timestamp: String,
}

#[cfg(test)]
mod ijson_cases;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobs_null_absent_and_a_list_with_one_bad_job() {
        assert!(parse_jobs(br#"{"jobs":null}"#).unwrap().is_empty());
        assert!(parse_jobs(br#"{}"#).unwrap().is_empty());
        assert!(parse_jobs(b"[]").is_err());
        let jobs = parse_jobs(
            br#"{"jobs":[{"id":"j1","kind":"apply","payload":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"}},
                "idempotencyKey":"k1","createdAt":"2026-12-04T10:00:00Z","expiresAt":"0001-01-01T00:00:00Z","extra":1},
               {"id":"j2","kind":"reboot","payload":{}}]}"#,
        )
        .unwrap();
        let j1 = jobs[0].as_ref().unwrap();
        assert_eq!(j1.kind, JobKind::Apply);
        assert_eq!(j1.expires_at, None, "Go's zero time is no expiry");
        assert_eq!(j1.replay_key(), "k1");
        let e = jobs[1].as_ref().unwrap_err();
        assert_eq!(e.id.as_deref(), Some("j2"));
        assert_eq!(e.field, "kind");
        assert!(
            e.to_string()
                .starts_with("job j2: kind: unknown kind \"reboot\"")
        );
    }

    #[test]
    fn actions_name_the_field_that_is_wrong() {
        let job = |kind: &str, payload: Value| {
            parse_job(json!({"id": "j", "kind": kind, "payload": payload})).unwrap()
        };
        let e = action(&job("apply", json!({"kind": "ConfigMap"}))).unwrap_err();
        assert_eq!(e.field, "payload.apiVersion");
        let e = action(&job(
            "delete",
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "payload");
        let ok = action(&job(
            "delete",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "namespace": "n"}),
        ))
        .unwrap();
        assert_eq!(ok.key().to_string(), "ConfigMap n/a");
        let e = action(&job(
            "intent",
            json!({"intent": "request-operation", "operation": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "payload.operation.kind");
        let del = action(&job(
            "intent",
            json!({"intent": "delete-application-instance", "name": "web", "namespace": "t"}),
        ))
        .unwrap();
        assert_eq!(del.key().to_string(), "ApplicationInstance t/web");
        let e = action(&job("intent", json!({"intent": "nope"}))).unwrap_err();
        assert_eq!(e.field, "payload.intent");
    }

    #[test]
    fn expiry_and_bad_times() {
        let j = parse_job(
            json!({"id": "j", "kind": "apply", "payload": {}, "expiresAt": "2026-12-04T10:00:00Z"}),
        )
        .unwrap();
        assert!(j.expired("2026-12-04T10:00:00Z".parse().unwrap()));
        assert!(!j.expired("2026-12-04T09:59:59Z".parse().unwrap()));
        let e =
            parse_job(json!({"id": "j", "kind": "apply", "payload": {}, "expiresAt": "tomorrow"}))
                .unwrap_err();
        assert_eq!(e.field, "expiresAt");
    }
}
