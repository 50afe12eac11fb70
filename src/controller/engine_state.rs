//! An Operation's state from its engine's child (Velero, Argo Workflows, Job, CSI snapshot, VolSync, and the
//! helm engine's release as the ApplicationInstance reads it): pure, computed in one place.

use std::collections::BTreeMap;

use serde_json::Value;

use super::child_status::{child_condition, field};
use super::status::application_conditions;
use crate::api::conditions::{cap, reasons, types};
use crate::api::{Engine, Phase};

/// What an engine's child says about the Operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineState {
    pub phase: Phase,
    /// Reason for the terminal condition (Succeeded/Failed), or for Blocked while running.
    pub reason: &'static str,
    pub message: String,
    /// Set while Running when the engine waits for a human (Argo suspended): Blocked=True with this reason.
    pub blocked: Option<&'static str>,
    pub outputs: BTreeMap<String, String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// A warning worth an Event (Velero PartiallyFailed).
    pub warning: Option<String>,
}

impl EngineState {
    fn running(message: impl Into<String>) -> Self {
        Self {
            phase: Phase::Running,
            reason: reasons::ENGINE_STARTED,
            message: message.into(),
            blocked: None,
            outputs: BTreeMap::new(),
            started_at: None,
            finished_at: None,
            warning: None,
        }
    }
    fn succeeded(message: impl Into<String>) -> Self {
        Self {
            phase: Phase::Succeeded,
            reason: reasons::ENGINE_COMPLETED,
            ..Self::running(message)
        }
    }
    fn failed(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            phase: Phase::Failed,
            reason,
            ..Self::running(cap(&message.into()))
        }
    }
}

fn text(obj: &Value, pointer: &str) -> Option<String> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What a failed Job's Pods say about why (the Job's own condition says only "BackoffLimitExceeded"): each
/// terminated container as `pod P: container C terminated: REASON (exit code N): MESSAGE`, the newest Pod first,
/// at most three; `None` when no Pod has a terminated container (deleted, or never started).
pub fn job_pods_failure(pods: &[Value]) -> Option<String> {
    let mut pods: Vec<&Value> = pods.iter().collect();
    pods.sort_by(|a, b| {
        let created = |p: &Value| text(p, "/metadata/creationTimestamp").unwrap_or_default();
        created(b).cmp(&created(a))
    });
    let mut lines = Vec::new();
    for pod in pods {
        let pod_name = text(pod, "/metadata/name").unwrap_or_default();
        let statuses = ["/status/initContainerStatuses", "/status/containerStatuses"]
            .into_iter()
            .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
            .flatten();
        for status in statuses {
            let Some(done) = status
                .pointer("/state/terminated")
                .or_else(|| status.pointer("/lastState/terminated"))
            else {
                continue;
            };
            let code = done.get("exitCode").and_then(Value::as_i64).unwrap_or(-1);
            if code == 0 {
                continue;
            }
            let mut line = format!(
                "pod {pod_name}: container {} terminated: {} (exit code {code})",
                field(status, "name"),
                field(done, "reason")
            );
            let message = field(done, "message").trim();
            if !message.is_empty() {
                line.push_str(": ");
                line.extend(message.chars().take(200));
            }
            lines.push(line);
        }
    }
    lines.truncate(3);
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// The state of an Operation from its engine's child. `child_name` and `output_name` name the output
/// (`backupName`, …); `desired_version` is the helm engine's target version (HelmRelease child).
pub fn engine_state(
    engine: Engine,
    child: &Value,
    output_name: Option<&str>,
    child_name: &str,
    desired_version: Option<&str>,
) -> EngineState {
    let mut state = match engine {
        Engine::Velero => velero_state(child),
        Engine::Workflow => workflow_state(child),
        Engine::Job | Engine::HelmHookJob => job_state(child),
        Engine::Snapshot => snapshot_state(child),
        Engine::Volsync => volsync_state(child),
        Engine::Helm => helm_state(child, desired_version.unwrap_or_default()),
    };
    if let Some(name) = output_name {
        state
            .outputs
            .insert(name.to_string(), child_name.to_string());
    }
    let (start, end) = match engine {
        Engine::Velero => ("/status/startTimestamp", "/status/completionTimestamp"),
        Engine::Workflow => ("/status/startedAt", "/status/finishedAt"),
        Engine::Job | Engine::HelmHookJob => ("/status/startTime", "/status/completionTime"),
        _ => ("/metadata/creationTimestamp", "/status/creationTime"),
    };
    state.started_at = text(child, start).or_else(|| text(child, "/metadata/creationTimestamp"));
    if state.phase.is_terminal() {
        state.finished_at = text(child, end);
    }
    state
}

/// A Velero Backup or Restore, by its `status.phase`.
fn velero_state(child: &Value) -> EngineState {
    match child
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("New")
    {
        "Completed" => EngineState::succeeded("Velero reports Completed"),
        "PartiallyFailed" => {
            let mut s = EngineState::succeeded("Velero reports PartiallyFailed");
            let errors = child
                .pointer("/status/errors")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            s.warning = Some(format!(
                "PartiallyFailed with {errors} error(s); see `velero describe`"
            ));
            s
        }
        p @ ("Failed" | "FailedValidation") => {
            let errs = child
                .pointer("/status/validationErrors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .or_else(|| text(child, "/status/failureReason"))
                .unwrap_or_default();
            EngineState::failed(
                reasons::ENGINE_FAILED,
                format!("Velero reports {p}: {errs}"),
            )
        }
        p => EngineState::running(format!("Velero reports {p}")),
    }
}

/// An Argo Workflow, by its `status.phase` (suspended: Blocked, waiting to be resumed).
fn workflow_state(child: &Value) -> EngineState {
    match child
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
    {
        "Succeeded" => EngineState::succeeded("Workflow Succeeded"),
        p @ ("Failed" | "Error") => {
            let msg = text(child, "/status/message").unwrap_or_default();
            let reason = if msg.to_lowercase().contains("deadline") {
                reasons::TIMEOUT
            } else {
                reasons::ENGINE_FAILED
            };
            EngineState::failed(reason, format!("Workflow {p}: {msg}"))
        }
        p => {
            let mut s = EngineState::running(format!("Workflow {p}"));
            if child.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
                s.blocked = Some(reasons::AWAITING_RESUME);
                s.message = "the Workflow is suspended; resume it to continue".into();
            }
            s
        }
    }
}

/// A Job (the job and helmHookJob engines), by its Complete and Failed conditions.
fn job_state(child: &Value) -> EngineState {
    let done = |t: &str| child_condition(child, t).is_some_and(|c| field(c, "status") == "True");
    if done("Complete") {
        EngineState::succeeded("Job Complete")
    } else if done("Failed") {
        let c = child_condition(child, "Failed")
            .cloned()
            .unwrap_or_default();
        let reason = if field(&c, "reason") == "DeadlineExceeded" {
            reasons::TIMEOUT
        } else {
            reasons::ENGINE_FAILED
        };
        EngineState::failed(
            reason,
            format!(
                "Job failed: {}: {}",
                field(&c, "reason"),
                field(&c, "message")
            ),
        )
    } else {
        let active = child
            .pointer("/status/active")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        EngineState::running(format!("Job running ({active} active pod(s))"))
    }
}

/// A VolumeSnapshot, by `status.readyToUse` and `status.error`.
fn snapshot_state(child: &Value) -> EngineState {
    if child.pointer("/status/readyToUse").and_then(Value::as_bool) == Some(true) {
        let mut s = EngineState::succeeded("VolumeSnapshot ready to use");
        if let Some(size) = text(child, "/status/restoreSize") {
            s.outputs.insert("restoreSize".into(), size);
        }
        s
    } else if let Some(err) = child.pointer("/status/error") {
        EngineState::failed(
            reasons::ENGINE_FAILED,
            format!("VolumeSnapshot error: {}", field(err, "message")),
        )
    } else {
        EngineState::running("VolumeSnapshot not ready yet")
    }
}

/// A VolSync ReplicationSource: done once its manual trigger was synced; failed when its mover failed.
fn volsync_state(child: &Value) -> EngineState {
    let manual = text(child, "/spec/trigger/manual");
    let last_manual = text(child, "/status/lastManualSync");
    let failed = child
        .pointer("/status/latestMoverStatus/result")
        .and_then(Value::as_str)
        .is_some_and(|r| r == "Failed");
    let mut s = if failed {
        let logs = text(child, "/status/latestMoverStatus/logs").unwrap_or_default();
        EngineState::failed(
            reasons::ENGINE_FAILED,
            format!("VolSync mover failed: {logs}"),
        )
    } else if manual.is_some() && manual == last_manual {
        EngineState::succeeded("VolSync one-off replication done")
    } else {
        EngineState::running("VolSync replicating")
    };
    if let Some(t) = text(child, "/status/lastSyncTime") {
        s.outputs.insert("lastSyncTime".into(), t);
    }
    s
}

/// The helm engine's release (Flux's HelmRelease or Argo CD's Application, told by its kind), as the
/// ApplicationInstance would read it at the `desired` version.
fn helm_state(child: &Value, desired: &str) -> EngineState {
    let conds = if child.get("kind").and_then(Value::as_str) == Some("Application") {
        super::argocd_status::application_conditions(desired, Some(child))
    } else {
        application_conditions(desired, Some(child), None)
    };
    let ready = conds.iter().find(|c| c.type_ == types::READY);
    match ready {
        Some(c) if c.status == "True" && c.reason == reasons::HELM_RELEASE_READY => {
            EngineState::succeeded(format!(
                "{} Ready at {desired}",
                child
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("release")
            ))
        }
        Some(c) if c.reason == reasons::ROLLED_BACK || c.reason == reasons::HELM_RELEASE_FAILED => {
            EngineState::failed(reasons::ENGINE_FAILED, c.message.clone())
        }
        Some(c) => EngineState::running(c.message.clone()),
        None => EngineState::running("waiting for the release"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::MAX_MESSAGE;
    use serde_json::json;

    /// A HelmRelease rolled back (or upgraded) by helm-controller, having last attempted `attempted`.
    fn release(ready: (&str, &str), installed: &str, attempted: &str, remediated: bool) -> Value {
        let mut conds =
            vec![json!({"type": "Ready", "status": ready.0, "reason": ready.1, "message": "m"})];
        if remediated {
            conds.push(json!({"type": "Remediated", "status": "True", "reason": "RollbackSucceeded", "message": "x"}));
        }
        json!({"kind": "HelmRelease", "metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "conditions": conds, "history": [{"chartVersion": installed}], "lastAttemptedRevision": attempted}})
    }

    /// The helm engine follows the release as the instance reads it: an attempt at another version is still
    /// running, a rollback of the wanted one failed the Operation, success needs the wanted version installed.
    #[test]
    fn the_helm_engine_follows_the_release_as_the_instance_reads_it() {
        let stale = release(
            ("True", "RollbackSucceeded"),
            "1.0.0",
            "2.0.0+0123456789ab",
            true,
        );
        let s = engine_state(Engine::Helm, &stale, None, "app", Some("2.0.1"));
        assert_eq!(s.phase, Phase::Running);
        let current = release(
            ("True", "RollbackSucceeded"),
            "1.0.0",
            "2.0.1+0123456789ab",
            true,
        );
        let s = engine_state(Engine::Helm, &current, None, "app", Some("2.0.1"));
        assert_eq!((s.phase, s.reason), (Phase::Failed, reasons::ENGINE_FAILED));
        let ok = release(
            ("True", "UpgradeSucceeded"),
            "2.0.1",
            "2.0.1+0123456789ab",
            false,
        );
        assert_eq!(
            engine_state(Engine::Helm, &ok, None, "app", Some("2.0.1")).phase,
            Phase::Succeeded
        );
    }

    #[test]
    fn job_pods_failure_names_the_terminated_container_and_its_exit_code() {
        let pod = |name: &str, created: &str, state: Value| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                   "status": {"containerStatuses": [{"name": "run", "state": state}]}})
        };
        let failed = pod(
            "j-abc",
            "2026-12-06T10:00:00Z",
            json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
        );
        let oom = pod(
            "j-def",
            "2026-12-06T10:01:00Z",
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "out of memory"}}),
        );
        let running = pod("j-ghi", "2026-12-06T10:02:00Z", json!({"running": {}}));
        assert_eq!(
            job_pods_failure(&[failed.clone(), oom, running.clone()]).as_deref(),
            Some(
                "pod j-def: container run terminated: OOMKilled (exit code 137): out of memory; \
                 pod j-abc: container run terminated: Error (exit code 1)"
            )
        );
        assert_eq!(job_pods_failure(&[running]), None);
        assert_eq!(job_pods_failure(&[]), None);
    }

    #[test]
    fn engine_children_fold_into_operation_state() {
        let velero = |p: &str| json!({"status": {"phase": p, "startTimestamp": "2026-01-01T00:00:00Z", "completionTimestamp": "2026-01-01T00:05:00Z"}});
        let s = engine_state(
            Engine::Velero,
            &velero("Completed"),
            Some("backupName"),
            "ns-b",
            None,
        );
        assert_eq!(
            (s.phase, s.outputs["backupName"].as_str()),
            (Phase::Succeeded, "ns-b")
        );
        assert_eq!(s.finished_at.as_deref(), Some("2026-01-01T00:05:00Z"));
        let s = engine_state(Engine::Velero, &velero("PartiallyFailed"), None, "b", None);
        assert!(s.phase == Phase::Succeeded && s.warning.is_some());
        assert_eq!(
            engine_state(Engine::Velero, &velero("FailedValidation"), None, "b", None).phase,
            Phase::Failed
        );
        assert_eq!(
            engine_state(Engine::Velero, &velero("InProgress"), None, "b", None).phase,
            Phase::Running
        );
        let job = |t: &str, r: &str| json!({"status": {"conditions": [{"type": t, "status": "True", "reason": r}]}});
        assert_eq!(
            engine_state(Engine::Job, &job("Complete", ""), None, "j", None).phase,
            Phase::Succeeded
        );
        let s = engine_state(
            Engine::Job,
            &job("Failed", "DeadlineExceeded"),
            None,
            "j",
            None,
        );
        assert_eq!((s.phase, s.reason), (Phase::Failed, reasons::TIMEOUT));
        let wf = json!({"spec": {"suspend": true}, "status": {"phase": "Running"}});
        assert_eq!(
            engine_state(Engine::Workflow, &wf, None, "w", None).blocked,
            Some(reasons::AWAITING_RESUME)
        );
        let wf = json!({"status": {"phase": "Error", "message": "boom"}});
        assert_eq!(
            engine_state(Engine::Workflow, &wf, None, "w", None).phase,
            Phase::Failed
        );
        let vs = json!({"status": {"readyToUse": true, "restoreSize": "10Gi"}});
        let s = engine_state(Engine::Snapshot, &vs, Some("volumeSnapshotName"), "s", None);
        assert_eq!(
            (s.phase, s.outputs["restoreSize"].as_str()),
            (Phase::Succeeded, "10Gi")
        );
        let rs = json!({"spec": {"trigger": {"schedule": "0 * * * *"}}, "status": {"lastSyncTime": "2026-01-01T01:00:00Z"}});
        let s = engine_state(Engine::Volsync, &rs, None, "r", None);
        assert_eq!(
            (s.phase, s.outputs["lastSyncTime"].as_str()),
            (Phase::Running, "2026-01-01T01:00:00Z")
        );
        let huge = json!({"status": {"phase": "Failed", "failureReason": "x".repeat(5000)}});
        assert!(
            engine_state(Engine::Velero, &huge, None, "b", None)
                .message
                .len()
                <= MAX_MESSAGE + 4
        );
    }
}
