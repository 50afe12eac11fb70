//! Read-only views of the cluster for people: `trace` (one intent) and `status` ([`cluster`]: the cluster).
//!
//! `trace KIND/NAMESPACE/NAME`: why an intent is (not) running, top to bottom — where it came from and how that
//! was proven, the verdict and conditions with how long each has held, what was rendered and its live state, the
//! outcome records (git notes, Events), and what to do next. It reads the cluster with whatever the caller may
//! read (a namespace reader's RBAC is enough; what it may not read is listed, never fatal) and, when given, the
//! cluster repo. The collection ([`collect`]) does the I/O; [`text`] and the JSON form are pure.

pub mod cluster;
mod origin;
mod read;
pub mod remedy;
pub mod text;

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::Client;
use serde::Serialize;
use serde_json::Value;

pub use origin::OriginInfo;
use read::Reader;

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `ApplicationInstance` or `Operation`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl Target {
    /// `KIND/NAMESPACE/NAME`, the kind as its name, plural, short name (`ai`, `op`) or lower case.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.splitn(3, '/');
        let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{text:?}: expected KIND/NAMESPACE/NAME"));
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "applicationinstance" | "applicationinstances" | "ai" => "ApplicationInstance",
            "operation" | "operations" | "op" => "Operation",
            other => {
                return Err(format!(
                    "{other:?}: the kind is ApplicationInstance (ai) or Operation (op)"
                ));
            }
        };
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!("{text:?}: expected KIND/NAMESPACE/NAME"));
        }
        Ok(Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    fn api_version(&self) -> &'static str {
        match self.kind {
            "Operation" => "ops.vworkspace.io/v1alpha1",
            _ => "apps.vworkspace.io/v1alpha1",
        }
    }
}

/// Where the cluster repo is, to show the commit, its signature and its notes.
#[derive(Debug, Clone, Default)]
pub struct RepoOptions {
    /// A clone of the cluster repo (bare or not).
    pub repo: Option<PathBuf>,
    /// The trust policy: its keys verify the commit's signature, its `notesKeys` the notes.
    pub policy: Option<PathBuf>,
}

/// One condition and how long it has held.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CondInfo {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    /// `lastTransitionTime`, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// How long it has held, in seconds, when `since` parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_seconds: Option<i64>,
}

/// A rendered child or engine object, as it is live.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChildInfo {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// False when it does not exist (or could not be read: see `unreadable`).
    pub found: bool,
    pub conditions: Vec<CondInfo>,
    /// What else its status says: revisions, digests, the release history, phases.
    pub facts: BTreeMap<String, String>,
}

/// A Flux object that applies the cluster path.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FluxInfo {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The artifact's revision (GitRepository) or the last applied revision (Kustomization).
    pub revision: String,
    pub ready: String,
}

/// A Kubernetes Event about the intent.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventInfo {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i64,
    pub last: String,
}

/// A note record on the intent commit about this intent.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NoteInfo {
    pub commit: String,
    pub outcome: String,
    pub reason: String,
    pub message: String,
    pub generation: i64,
    /// `genuine`, `unverified (…)` or `conflicting`.
    pub authenticity: String,
    pub child_refs: BTreeMap<String, String>,
}

/// What to do about one condition that is not as it should be.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NextStep {
    pub condition: String,
    pub reason: String,
    /// docs/conditions.md's "What to do".
    pub remedy: String,
    pub command: String,
}

/// Everything `trace` shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub cluster_id: String,
    pub origin: OriginInfo,
    pub conditions: Vec<CondInfo>,
    pub flux: Vec<FluxInfo>,
    pub children: Vec<ChildInfo>,
    pub notes: Vec<NoteInfo>,
    pub events: Vec<EventInfo>,
    pub next: Vec<NextStep>,
    /// What could not be read, and why (`<what>: <why>`).
    pub unreadable: Vec<String>,
}

/// Collect the trace of `target`. Fails only when the intent itself cannot be read.
pub async fn collect(client: Client, target: &Target, repo: &RepoOptions) -> anyhow::Result<Trace> {
    let mut reader = Reader::new(client);
    let intent = reader
        .get(
            target.api_version(),
            target.kind,
            &target.namespace,
            &target.name,
        )
        .await;
    let Some(intent) = intent else {
        let why = reader.unreadable.first().cloned().unwrap_or_else(|| {
            format!(
                "{} {}/{} does not exist",
                target.kind, target.namespace, target.name
            )
        });
        anyhow::bail!("{why}");
    };
    let now = jiff::Timestamp::now();
    let conditions = conditions_of(&intent, now);
    let cluster_id = label(&intent, crate::api::labels::CLUSTER_ID).to_string();
    let cluster = match cluster_id.as_str() {
        "" => None,
        id => {
            reader
                .get("ops.vworkspace.io/v1alpha1", "Cluster", "", id)
                .await
        }
    };
    let mut origin = origin::origin(&intent, cluster.as_ref(), &conditions, repo, &cluster_id);
    if let OriginInfo::Pull {
        job_id: Some(job),
        idempotency_key,
        received,
        ..
    } = &mut origin
    {
        // The store lives beside the agent's credentials (the operator's namespace).
        let ns = cluster
            .as_ref()
            .map_or("", |c| str_at(c, "/status/credentialsSecretRef/namespace"));
        if !ns.is_empty()
            && let Some(store) = reader
                .get("v1", "ConfigMap", ns, "vworkspace-applied-jobs")
                .await
            && let Some((key, at)) = origin::applied_job(&store, job)
        {
            (*idempotency_key, *received) = (Some(key), Some(at));
        }
    }
    let flux = if matches!(origin, OriginInfo::GitOps { .. }) {
        flux_objects(&mut reader, &cluster_id).await
    } else {
        Vec::new()
    };
    let children = children(&mut reader, target, &intent, cluster.as_ref(), now).await;
    let notes = match (&origin, &repo.repo) {
        (
            OriginInfo::GitOps {
                commit: Some(c), ..
            },
            Some(_),
        ) => origin::notes(repo, &cluster_id, c, target, &mut reader.unreadable),
        _ => Vec::new(),
    };
    let events = events(&mut reader, target).await;
    let next = next_steps(target, &intent, &conditions);
    Ok(Trace {
        kind: target.kind.to_string(),
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        generation: intent
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        cluster_id,
        origin,
        conditions,
        flux,
        children,
        notes,
        events,
        next,
        unreadable: reader.unreadable,
    })
}

fn label<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// An object's conditions with how long each has held at `now`.
fn conditions_of(obj: &Value, now: jiff::Timestamp) -> Vec<CondInfo> {
    let Some(list) = obj.pointer("/status/conditions").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|c| {
            let since = c
                .get("lastTransitionTime")
                .and_then(Value::as_str)
                .map(str::to_string);
            let held_seconds = since
                .as_deref()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .map(|t| now.as_second() - t.as_second());
            CondInfo {
                type_: str_at(c, "/type").to_string(),
                status: str_at(c, "/status").to_string(),
                reason: str_at(c, "/reason").to_string(),
                message: str_at(c, "/message").to_string(),
                since,
                held_seconds,
            }
        })
        .collect()
}

/// The Flux Kustomizations that apply the cluster's path (`clusters/<id>`), and their GitRepositories.
async fn flux_objects(reader: &mut Reader, cluster_id: &str) -> Vec<FluxInfo> {
    const KS: &str = "kustomize.toolkit.fluxcd.io/v1";
    const GIT: &str = "source.toolkit.fluxcd.io/v1";
    let mut out = Vec::new();
    if cluster_id.is_empty() {
        return out;
    }
    for ks in reader.list(KS, "Kustomization", None, None).await {
        if !crate::source::flux_watch::applies_cluster_path(str_at(&ks, "/spec/path"), cluster_id) {
            continue;
        }
        let ns = str_at(&ks, "/metadata/namespace").to_string();
        out.push(FluxInfo {
            kind: "Kustomization".into(),
            namespace: ns.clone(),
            name: str_at(&ks, "/metadata/name").into(),
            revision: str_at(&ks, "/status/lastAppliedRevision").into(),
            ready: ready_of(&ks),
        });
        if str_at(&ks, "/spec/sourceRef/kind") == "GitRepository" {
            let src_ns = match str_at(&ks, "/spec/sourceRef/namespace") {
                "" => ns.clone(),
                n => n.to_string(),
            };
            let name = str_at(&ks, "/spec/sourceRef/name").to_string();
            if let Some(git) = reader.get(GIT, "GitRepository", &src_ns, &name).await {
                out.push(FluxInfo {
                    kind: "GitRepository".into(),
                    namespace: src_ns,
                    name,
                    revision: str_at(&git, "/status/artifact/revision").into(),
                    ready: ready_of(&git),
                });
            }
        }
    }
    out
}

/// `True`, `False (<reason>: <message>)` or `Unknown`.
fn ready_of(obj: &Value) -> String {
    let ready = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|c| str_at(c, "/type") == "Ready"));
    match ready {
        Some(c) if str_at(c, "/status") == "True" => "True".into(),
        Some(c) => format!(
            "{} ({}: {})",
            str_at(c, "/status"),
            str_at(c, "/reason"),
            str_at(c, "/message")
        ),
        None => "Unknown".into(),
    }
}

/// The rendered children (an ApplicationInstance's release and chart source) or the engine object (an
/// Operation's), as they are live.
async fn children(
    reader: &mut Reader,
    target: &Target,
    intent: &Value,
    cluster: Option<&Value>,
    now: jiff::Timestamp,
) -> Vec<ChildInfo> {
    let ns = target.namespace.as_str();
    let wanted: Vec<(String, String, String, String)> = if target.kind == "Operation" {
        let kind = str_at(intent, "/status/engineRef/kind").to_string();
        let name = str_at(intent, "/status/engineRef/name").to_string();
        let eng_ns = match str_at(intent, "/status/engineRef/namespace") {
            "" => ns.to_string(),
            n => n.to_string(),
        };
        match engine_api_version(&kind) {
            Some(v) if !name.is_empty() => vec![(v.to_string(), kind, eng_ns, name)],
            _ => Vec::new(),
        }
    } else {
        let release = str_at(intent, "/spec/release/name").to_string();
        if release.is_empty() {
            Vec::new()
        } else if cluster.is_some_and(|c| str_at(c, "/status/helmEngine") == "argocd") {
            vec![(
                "argoproj.io/v1alpha1".into(),
                "Application".into(),
                ns.into(),
                release,
            )]
        } else {
            let source = match str_at(intent, "/spec/chart/sourceType") {
                "helm" => "HelmRepository",
                _ => "OCIRepository",
            };
            vec![
                (
                    "helm.toolkit.fluxcd.io/v2".into(),
                    "HelmRelease".into(),
                    ns.into(),
                    release.clone(),
                ),
                (
                    "source.toolkit.fluxcd.io/v1".into(),
                    source.into(),
                    ns.into(),
                    release,
                ),
            ]
        }
    };
    let mut out = Vec::new();
    for (api_version, kind, child_ns, name) in wanted {
        let live = reader.get(&api_version, &kind, &child_ns, &name).await;
        out.push(ChildInfo {
            facts: live
                .as_ref()
                .map(|o| facts_of(&kind, o))
                .unwrap_or_default(),
            conditions: live
                .as_ref()
                .map(|o| conditions_of(o, now))
                .unwrap_or_default(),
            found: live.is_some(),
            kind,
            namespace: child_ns,
            name,
        });
    }
    out
}

/// The apiVersion of an Operation engine's object kind.
fn engine_api_version(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Backup" | "Restore" => "velero.io/v1",
        "Workflow" => "argoproj.io/v1alpha1",
        "Job" => "batch/v1",
        "VolumeSnapshot" => "snapshot.storage.k8s.io/v1",
        "ReplicationSource" | "ReplicationDestination" => "volsync.backube/v1alpha1",
        "HelmRelease" => "helm.toolkit.fluxcd.io/v2",
        "Application" => "argoproj.io/v1alpha1",
        _ => return None,
    })
}

/// What a child's status says besides its conditions.
fn facts_of(kind: &str, obj: &Value) -> BTreeMap<String, String> {
    let mut facts = BTreeMap::new();
    let mut put = |key: &str, pointer: &str| {
        let v = str_at(obj, pointer);
        if !v.is_empty() {
            facts.insert(key.to_string(), v.to_string());
        }
    };
    match kind {
        "HelmRelease" => {
            put("lastAttemptedRevision", "/status/lastAttemptedRevision");
            put(
                "lastAttemptedReleaseAction",
                "/status/lastAttemptedReleaseAction",
            );
            put("observedGeneration", "/status/observedGeneration");
            if let Some(history) = obj.pointer("/status/history").and_then(Value::as_array) {
                let lines: Vec<String> = history
                    .iter()
                    .take(5)
                    .map(|s| {
                        let digest = str_at(s, "/ociDigest");
                        format!(
                            "v{} {} {}{}",
                            s.get("version").and_then(Value::as_i64).unwrap_or_default(),
                            str_at(s, "/chartVersion"),
                            str_at(s, "/status"),
                            if digest.is_empty() {
                                String::new()
                            } else {
                                format!(" {digest}")
                            }
                        )
                    })
                    .collect();
                if !lines.is_empty() {
                    facts.insert("history".into(), lines.join("; "));
                }
            }
        }
        "OCIRepository" | "HelmRepository" => {
            put("artifactRevision", "/status/artifact/revision");
            put("artifactDigest", "/status/artifact/digest");
            put("url", "/spec/url");
        }
        "Application" => {
            put("sync", "/status/sync/status");
            put("health", "/status/health/status");
            put("targetRevision", "/spec/source/targetRevision");
        }
        _ => {
            put("phase", "/status/phase");
            put("startTime", "/status/startTime");
            put("completionTime", "/status/completionTime");
        }
    }
    facts
}

/// The Events about the intent, newest last (at most 10).
async fn events(reader: &mut Reader, target: &Target) -> Vec<EventInfo> {
    let fields = format!(
        "involvedObject.kind={},involvedObject.name={}",
        target.kind, target.name
    );
    let mut out: Vec<EventInfo> = reader
        .list("v1", "Event", Some(&target.namespace), Some(&fields))
        .await
        .iter()
        .map(|e| EventInfo {
            type_: str_at(e, "/type").into(),
            reason: str_at(e, "/reason").into(),
            message: str_at(e, "/message").into(),
            count: e.get("count").and_then(Value::as_i64).unwrap_or(1),
            last: [
                str_at(e, "/lastTimestamp"),
                str_at(e, "/eventTime"),
                str_at(e, "/metadata/creationTimestamp"),
            ]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or_default()
            .to_string(),
        })
        .collect();
    out.sort_by(|a, b| a.last.cmp(&b.last));
    let skip = out.len().saturating_sub(10);
    out.drain(..skip);
    out
}

/// A step for every condition that is not as it should be: Ready not True, Blocked/Degraded/Failed True.
fn next_steps(target: &Target, intent: &Value, conditions: &[CondInfo]) -> Vec<NextStep> {
    let remedies = remedy::Remedies::documented();
    let child = match target.kind {
        "Operation" => Some(str_at(intent, "/status/engineRef/name")).filter(|s| !s.is_empty()),
        _ => Some(str_at(intent, "/spec/release/name")).filter(|s| !s.is_empty()),
    };
    conditions
        .iter()
        .filter(|c| match c.type_.as_str() {
            "Ready" => c.status != "True",
            "Blocked" | "Degraded" | "Failed" => c.status == "True",
            _ => false,
        })
        .map(|c| NextStep {
            condition: format!("{}={}", c.type_, c.status),
            reason: c.reason.clone(),
            remedy: remedies
                .remedy(target.kind, &c.type_, &c.reason)
                .unwrap_or("read the message; docs/conditions.md lists every reason")
                .to_string(),
            command: remedy::command(
                target.kind,
                &target.namespace,
                &target.name,
                &c.reason,
                child,
            ),
        })
        .collect()
}
