//! Pure status computation: conditions from child status (Flux HelmRelease, engine objects), and the
//! condition-list bookkeeping. Computed in one place from step results; the reconcilers only write it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::conditions::{Cond, cap, reasons, types};
use crate::api::{Engine, Phase};
use crate::render::HelmEngine;

/// The condition of a type in a child's `status.conditions`.
pub fn child_condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn field<'a>(cond: &'a Value, key: &str) -> &'a str {
    cond.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Flux reasons that mean the chart could not be fetched.
const CHART_REASONS: &[&str] = &[
    "ArtifactFailed",
    "SourceNotReady",
    "ChartNotFound",
    "ArtifactNotFound",
    "GetLastReleaseFailed",
];

/// The conditions of an instance from its release child, for the engine that renders it: Flux's
/// HelmRelease and chart source, or Argo CD's Application.
pub fn release_conditions(
    engine: &HelmEngine,
    desired_version: &str,
    release: Option<&Value>,
    source: Option<&Value>,
) -> Vec<Cond> {
    match engine {
        HelmEngine::Flux => application_conditions(desired_version, release, source),
        HelmEngine::ArgoCd { .. } => {
            super::argocd_status::application_conditions(desired_version, release)
        }
    }
}

/// What helm-controller's SourceNotReady message says while the chart source has not reconciled its newest
/// generation (fluxcd/pkg's "latest generation of object has not been reconciled").
const SOURCE_CATCHING_UP: &str = "latest generation of object has not been reconciled";

/// Ready / Reconciling / Degraded of an ApplicationInstance from its HelmRelease and chart source (both as
/// read from the API server) and the chart version it wants.
pub fn application_conditions(
    desired_version: &str,
    helm_release: Option<&Value>,
    source: Option<&Value>,
) -> Vec<Cond> {
    if let Some(conds) = source.and_then(source_not_ready) {
        return conds;
    }
    let Some(hr) = helm_release else {
        return vec![
            Cond::new(
                types::READY,
                "Unknown",
                reasons::RECONCILING,
                "waiting for the HelmRelease",
            ),
            Cond::new(
                types::RECONCILING,
                "True",
                reasons::HELM_RELEASE_INSTALLING,
                "HelmRelease applied",
            ),
            healthy(),
        ];
    };
    let release = Release::of(hr);
    match child_condition(hr, "Ready") {
        // helm-controller stops at the source step without updating `status.observedGeneration`: a chart failure
        // it reports for the current generation (the condition's own observedGeneration) is the answer, not a
        // stale status.
        Some(ready)
            if release.stale
                && field(ready, "status") == "False"
                && CHART_REASONS.contains(&field(ready, "reason"))
                && of_current_generation(hr, ready) =>
        {
            release.fold_ready(desired_version, ready)
        }
        _ if release.stale => {
            release.waiting("Flux has not yet reconciled the new HelmRelease generation")
        }
        None => release.waiting("the HelmRelease reports no Ready condition yet"),
        Some(ready) => release.fold_ready(desired_version, ready),
    }
}

/// `Degraded=False`: nothing is wrong with what runs.
fn healthy() -> Cond {
    Cond::new(types::DEGRADED, "False", reasons::RECOVERED, "")
}

/// `Reconciling=False`: Flux has settled.
fn stable() -> Cond {
    Cond::new(types::RECONCILING, "False", reasons::STABLE, "")
}

/// Whether a condition speaks for the object's current generation: its `observedGeneration` (Flux sets it on
/// every condition it writes) is the object's `metadata.generation`. A condition without one, or an object
/// without a generation, is taken as current.
fn of_current_generation(obj: &Value, cond: &Value) -> bool {
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = cond.get("observedGeneration").and_then(Value::as_i64);
    match (generation, observed) {
        (Some(g), Some(o)) => o >= g,
        _ => true,
    }
}

/// The chart source (OCIRepository, HelmRepository) says it is not ready for its current generation: the chart
/// cannot be fetched. (A failure of the previous tag is not the answer for the new one.)
fn source_not_ready(src: &Value) -> Option<Vec<Cond>> {
    let ready = child_condition(src, "Ready")?;
    if field(ready, "status") != "False" || !of_current_generation(src, ready) {
        return None;
    }
    let msg = format!(
        "{} {}: {}",
        src["kind"].as_str().unwrap_or("source"),
        field(ready, "reason"),
        field(ready, "message")
    );
    Some(vec![
        Cond::new(
            types::READY,
            "False",
            reasons::CHART_UNREACHABLE,
            msg.clone(),
        ),
        Cond::new(
            types::RECONCILING,
            "True",
            reasons::CHART_SOURCE_SYNCING,
            msg,
        ),
        healthy(),
    ])
}

/// What a HelmRelease's status says besides its Ready condition.
struct Release<'a> {
    hr: &'a Value,
    /// The chart version of the newest release in its history, once one was attempted.
    history_version: Option<String>,
    /// A release of it was ever deployed: some snapshot in its history is `deployed` or `superseded` (a history
    /// of failed and uninstalled snapshots only is an install that never succeeded; snapshots without a status,
    /// as older records have, count as deployed).
    installed: bool,
    /// `HelmReleaseUpgrading` once a release was installed, `HelmReleaseInstalling` before.
    in_progress: &'static str,
    /// helm-controller has not observed the HelmRelease's newest generation.
    stale: bool,
}

impl<'a> Release<'a> {
    fn of(hr: &'a Value) -> Self {
        let history_version = hr
            .pointer("/status/history/0/chartVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let installed = hr
            .pointer("/status/history")
            .and_then(Value::as_array)
            .is_some_and(|h| {
                h.iter().any(|s| {
                    matches!(
                        s.get("status").and_then(Value::as_str),
                        None | Some("deployed" | "superseded")
                    )
                })
            });
        let in_progress = if installed {
            reasons::HELM_RELEASE_UPGRADING
        } else {
            reasons::HELM_RELEASE_INSTALLING
        };
        let generation = hr.pointer("/metadata/generation").and_then(Value::as_i64);
        let observed = hr
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        let stale = matches!((generation, observed), (Some(g), Some(o)) if o < g)
            || (generation.is_some() && observed.is_none());
        Self {
            hr,
            history_version,
            installed,
            in_progress,
            stale,
        }
    }

    fn installed(&self) -> bool {
        self.installed
    }

    /// `Upgrading` once installed, `Installing` before.
    fn moving(&self) -> &'static str {
        if self.installed() {
            reasons::UPGRADING
        } else {
            reasons::INSTALLING
        }
    }

    /// Ready unknown (`message`) while helm-controller works.
    fn waiting(&self, message: &str) -> Vec<Cond> {
        vec![
            Cond::new(types::READY, "Unknown", reasons::RECONCILING, message),
            Cond::new(
                types::RECONCILING,
                "True",
                self.in_progress,
                "waiting for helm-controller",
            ),
            healthy(),
        ]
    }

    /// The conditions from the HelmRelease's Ready condition `r`.
    fn fold_ready(&self, desired_version: &str, r: &Value) -> Vec<Cond> {
        let (status, reason, message) =
            (field(r, "status"), field(r, "reason"), field(r, "message"));
        let flux = format!("{reason}: {message}");
        let remediated = child_condition(self.hr, "Remediated").is_some_and(|c| {
            field(c, "status") == "True" && field(c, "reason") == "RollbackSucceeded"
        });
        let failure = match status {
            "True" => remediated || reason == "RollbackSucceeded",
            "False" => !CHART_REASONS.contains(&reason) && reason != "Progressing",
            _ => false,
        };
        // A failure (or rollback) Flux reports for another version than the one wanted now is stale: with an
        // OCI chart source the HelmRelease's generation does not change with the version, so only the
        // attempted revision tells that Flux has not tried the new version yet.
        if failure
            && let Some(last) = attempted_revision(self.hr)
                .filter(|a| !desired_version.is_empty() && !same_revision(a, desired_version))
        {
            return vec![
                Cond::new(
                    types::READY,
                    "False",
                    self.moving(),
                    format!(
                        "Flux has not attempted {desired_version} yet (last attempt {last}: {flux})"
                    ),
                ),
                Cond::new(
                    types::RECONCILING,
                    "True",
                    self.in_progress,
                    "waiting for helm-controller",
                ),
                healthy(),
            ];
        }
        // helm-controller marks a remediated release Ready=False (reason RollbackSucceeded, Remediated=True):
        // "any remediated state is considered an error". The running release is the previous one, healthy;
        // the contract (docs/conditions.md) says Ready=True/RolledBack plus Degraded=True/UpgradeFailed.
        if failure && (remediated || reason == "RollbackSucceeded") {
            return self.rolled_back(desired_version, &flux);
        }
        match status {
            "True" => self.ready(desired_version, flux),
            "False" => self.not_ready(reason, flux),
            _ => vec![
                Cond::new(types::READY, "Unknown", reasons::RECONCILING, flux.clone()),
                Cond::new(types::RECONCILING, "True", self.in_progress, flux),
                healthy(),
            ],
        }
    }

    /// Flux rolled the release back after a failed upgrade: the previous release runs.
    fn rolled_back(&self, desired_version: &str, flux: &str) -> Vec<Cond> {
        let at = self.history_version.clone().unwrap_or_default();
        vec![
            Cond::new(
                types::READY,
                "True",
                reasons::ROLLED_BACK,
                format!("Flux rolled back to {at}: {flux}"),
            ),
            stable(),
            Cond::new(
                types::DEGRADED,
                "True",
                reasons::UPGRADE_FAILED,
                format!("upgrade to {desired_version} failed and was rolled back to {at}"),
            ),
        ]
    }

    /// Ready=True from Flux: ready at the wanted version, or still upgrading to it.
    fn ready(&self, desired_version: &str, flux: String) -> Vec<Cond> {
        match &self.history_version {
            Some(running) if !same_revision(running, desired_version) => vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::UPGRADING,
                    format!("running {running} , upgrading to {desired_version}"),
                ),
                Cond::new(
                    types::RECONCILING,
                    "True",
                    reasons::HELM_RELEASE_UPGRADING,
                    flux,
                ),
                healthy(),
            ],
            _ => vec![
                Cond::new(types::READY, "True", reasons::HELM_RELEASE_READY, flux),
                stable(),
                healthy(),
            ],
        }
    }

    /// Ready=False from Flux with `reason`.
    fn not_ready(&self, reason: &str, flux: String) -> Vec<Cond> {
        // helm-controller says SourceNotReady while source-controller has not yet reconciled the HelmChart's new
        // generation (every version change passes through it): that is Flux at work, not a chart failure.
        if CHART_REASONS.contains(&reason) && flux.contains(SOURCE_CATCHING_UP) {
            return self
                .waiting("Flux's chart source has not reconciled the new chart version yet");
        }
        if CHART_REASONS.contains(&reason) {
            return vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::CHART_UNREACHABLE,
                    flux.clone(),
                ),
                Cond::new(
                    types::RECONCILING,
                    "True",
                    reasons::CHART_SOURCE_SYNCING,
                    flux,
                ),
                healthy(),
            ];
        }
        match reason {
            "UpgradeFailed" => vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::HELM_RELEASE_FAILED,
                    flux.clone(),
                ),
                stable(),
                Cond::new(types::DEGRADED, "True", reasons::UPGRADE_FAILED, flux),
            ],
            "Progressing" => vec![
                Cond::new(types::READY, "False", self.moving(), flux.clone()),
                Cond::new(types::RECONCILING, "True", self.in_progress, flux),
                healthy(),
            ],
            _ => vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::HELM_RELEASE_FAILED,
                    flux.clone(),
                ),
                stable(),
                if self.installed() {
                    Cond::new(
                        types::DEGRADED,
                        "True",
                        reasons::HELM_RELEASE_DEGRADED,
                        flux,
                    )
                } else {
                    healthy()
                },
            ],
        }
    }
}

/// The chart version of Flux's last attempt (`status.lastAttemptedRevision`), when Flux reports it.
fn attempted_revision(hr: &Value) -> Option<&str> {
    hr.pointer("/status/lastAttemptedRevision")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
}

/// Whether a Flux revision or a release's chart version names this chart version: equal, or the version followed by
/// the `+<digest>` Flux appends for OCI sources (helm-controller records `1.0.0+62a821e576b6` both as
/// `lastAttemptedRevision` and as the `chartVersion` of the release history).
fn same_revision(revision: &str, version: &str) -> bool {
    revision
        .strip_prefix(version)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
}

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

    fn hr(ready: Option<(&str, &str)>, version: Option<&str>, extra: Value) -> Value {
        let mut conds = vec![];
        if let Some((s, r)) = ready {
            conds.push(json!({"type": "Ready", "status": s, "reason": r, "message": "m"}));
        }
        if let Some(arr) = extra.as_array() {
            conds.extend(arr.iter().cloned());
        }
        let mut status = json!({"observedGeneration": 1, "conditions": conds});
        if let Some(v) = version {
            status["history"] = json!([{"chartVersion": v}]);
        }
        json!({"kind": "HelmRelease", "metadata": {"generation": 1}, "status": status})
    }

    fn ready(conds: &[Cond]) -> (&str, &str) {
        let c = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        (c.status, c.reason.as_str())
    }

    /// helm-controller with a chart version missing from its repository: it stops at the source step, so
    /// `status.observedGeneration` stays at the previous generation, but its Ready condition is about the new one.
    #[test]
    fn a_chart_failure_of_the_current_generation_is_reported_though_the_status_lags() {
        let mut lagging = hr(Some(("False", "SourceNotReady")), Some("1.0.0"), json!([]));
        lagging["metadata"]["generation"] = json!(2);
        lagging["status"]["conditions"][0]["observedGeneration"] = json!(2);
        let c = application_conditions("9.9.9", Some(&lagging), None);
        assert_eq!(ready(&c), ("False", "ChartUnreachable"));
        // While source-controller has not reconciled the HelmChart's new generation, helm-controller says
        // SourceNotReady too (real message): waiting, not a failure.
        lagging["status"]["conditions"][0]["message"] = json!(
            "HelmChart 'ns/ns-docs' is not ready: latest generation of object has not been reconciled"
        );
        let c = application_conditions("9.9.9", Some(&lagging), None);
        assert_eq!(ready(&c), ("Unknown", "Reconciling"));
        lagging["status"]["conditions"][0]["message"] = json!("m");
        // The same condition left from the previous generation is not the answer yet.
        lagging["status"]["conditions"][0]["observedGeneration"] = json!(1);
        let c = application_conditions("9.9.9", Some(&lagging), None);
        assert_eq!(ready(&c), ("Unknown", "Reconciling"));
        // A chart source failing for its previous tag does not speak for the new one either.
        let src = |observed: i64| {
            json!({"kind": "OCIRepository", "metadata": {"generation": 3}, "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "OCIArtifactPullFailed", "message": "not found",
                 "observedGeneration": observed}]}})
        };
        let ok = hr(Some(("True", "UpgradeSucceeded")), Some("1.0.0"), json!([]));
        assert_eq!(
            ready(&application_conditions("1.0.0", Some(&ok), Some(&src(3)))),
            ("False", "ChartUnreachable")
        );
        assert_ne!(
            ready(&application_conditions("1.0.0", Some(&ok), Some(&src(2)))).1,
            "ChartUnreachable"
        );
    }

    /// An install that failed (helm-controller keeps the failed and the uninstalled snapshots, none deployed)
    /// is not ready and not degraded: nothing runs.
    #[test]
    fn a_release_that_never_installed_is_failed_not_degraded() {
        let mut failed = hr(Some(("False", "InstallFailed")), Some("2.0.0"), json!([]));
        failed["status"]["history"] = json!([
            {"chartVersion": "2.0.0", "status": "failed"},
            {"chartVersion": "2.0.0", "status": "uninstalled"}
        ]);
        let c = application_conditions("2.0.0", Some(&failed), None);
        assert_eq!(ready(&c), ("False", "HelmReleaseFailed"));
        let degraded = c.iter().find(|c| c.type_ == "Degraded").unwrap();
        assert_eq!(
            (degraded.status, degraded.reason.as_str()),
            ("False", "Recovered")
        );
        // Once one was deployed, a later failure is the running release's trouble.
        failed["status"]["history"][1]["status"] = json!("superseded");
        let c = application_conditions("2.0.0", Some(&failed), None);
        let degraded = c.iter().find(|c| c.type_ == "Degraded").unwrap();
        assert_eq!(
            (degraded.status, degraded.reason.as_str()),
            ("True", "HelmReleaseDegraded")
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
    fn helm_release_states_fold_into_application_conditions() {
        assert_eq!(
            ready(&application_conditions("1.0.0", None, None)),
            ("Unknown", "Reconciling")
        );
        let ok = hr(Some(("True", "UpgradeSucceeded")), Some("1.0.0"), json!([]));
        let c = application_conditions("1.0.0", Some(&ok), None);
        assert_eq!(ready(&c), ("True", "HelmReleaseReady"));
        // helm-controller records an OCI chart's version with the artifact digest as build metadata.
        let oci = hr(
            Some(("True", "InstallSucceeded")),
            Some("1.0.0+62a821e576b6"),
            json!([]),
        );
        assert_eq!(
            ready(&application_conditions("1.0.0", Some(&oci), None)),
            ("True", "HelmReleaseReady")
        );
        assert_eq!(
            ready(&application_conditions("1.0.1", Some(&oci), None)),
            ("False", "Upgrading")
        );
        assert!(
            c.iter()
                .any(|c| c.type_ == "Degraded" && c.status == "False")
        );
        let rolled = hr(
            Some(("True", "RollbackSucceeded")),
            Some("1.0.0"),
            json!([{"type": "Remediated", "status": "True", "reason": "RollbackSucceeded", "message": "x"}]),
        );
        let c = application_conditions("2.0.0", Some(&rolled), None);
        assert_eq!(ready(&c), ("True", "RolledBack"));
        // What helm-controller v1.6 really writes after a rollback: Ready=False with the Remediated reason.
        let mut real = hr(
            Some(("False", "RollbackSucceeded")),
            Some("1.0.0+62a821e576b6"),
            json!([{"type": "Remediated", "status": "True", "reason": "RollbackSucceeded", "message": "x"},
                   {"type": "Released", "status": "False", "reason": "UpgradeFailed", "message": "y"}]),
        );
        real["status"]["lastAttemptedRevision"] = json!("2.0.0+0123456789ab");
        let c = application_conditions("2.0.0", Some(&real), None);
        assert_eq!(ready(&c), ("True", "RolledBack"));
        assert!(
            c.iter()
                .any(|c| c.type_ == "Degraded" && c.reason == "UpgradeFailed")
        );
        assert!(
            c.iter().any(|c| c.type_ == "Degraded"
                && c.status == "True"
                && c.reason == "UpgradeFailed")
        );
        let failed = hr(Some(("False", "UpgradeFailed")), Some("1.0.0"), json!([]));
        let c = application_conditions("2.0.0", Some(&failed), None);
        assert_eq!(ready(&c), ("False", "HelmReleaseFailed"));
        assert!(
            c.iter()
                .any(|c| c.reason == "UpgradeFailed" && c.status == "True")
        );
        let install_failed = hr(Some(("False", "InstallFailed")), None, json!([]));
        assert_eq!(
            ready(&application_conditions(
                "1.0.0",
                Some(&install_failed),
                None
            )),
            ("False", "HelmReleaseFailed")
        );
        let chart = hr(Some(("False", "ArtifactFailed")), None, json!([]));
        assert_eq!(
            ready(&application_conditions("1.0.0", Some(&chart), None)),
            ("False", "ChartUnreachable")
        );
        let old = hr(Some(("True", "UpgradeSucceeded")), Some("1.0.0"), json!([]));
        assert_eq!(
            ready(&application_conditions("2.0.0", Some(&old), None)),
            ("False", "Upgrading")
        );
        let mut stale = ok.clone();
        stale["metadata"]["generation"] = json!(2);
        assert_eq!(
            ready(&application_conditions("1.0.0", Some(&stale), None)),
            ("Unknown", "Reconciling")
        );
        let src = json!({"kind": "OCIRepository", "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "OCIArtifactPullFailed", "message": "not found"}]}});
        assert_eq!(
            ready(&application_conditions("1.0.0", Some(&ok), Some(&src))),
            ("False", "ChartUnreachable")
        );
    }

    #[test]
    fn a_failure_flux_reports_for_another_version_is_stale() {
        let rolled_back = |attempted: &str| {
            let mut h = hr(
                Some(("True", "RollbackSucceeded")),
                Some("1.0.0"),
                json!([{"type": "Remediated", "status": "True", "reason": "RollbackSucceeded", "message": "x"}]),
            );
            h["status"]["lastAttemptedRevision"] = json!(attempted);
            h
        };
        // Flux rolled back 2.0.0; 2.0.1 is wanted now and not attempted yet: an upgrade in progress.
        let stale = rolled_back("2.0.0+0123456789ab");
        let c = application_conditions("2.0.1", Some(&stale), None);
        assert_eq!(ready(&c), ("False", "Upgrading"));
        assert!(
            c.iter()
                .any(|c| c.type_ == "Degraded" && c.status == "False")
        );
        let s = engine_state(Engine::Helm, &stale, None, "app", Some("2.0.1"));
        assert_eq!(s.phase, Phase::Running);
        // The attempt at the wanted version failed: rolled back, and the upgrade Operation failed.
        let current = rolled_back("2.0.1+0123456789ab");
        assert_eq!(
            ready(&application_conditions("2.0.1", Some(&current), None)),
            ("True", "RolledBack")
        );
        let s = engine_state(Engine::Helm, &current, None, "app", Some("2.0.1"));
        assert_eq!((s.phase, s.reason), (Phase::Failed, reasons::ENGINE_FAILED));
        // A HelmRepository source reports the bare chart version; 2.0.10 is not 2.0.1.
        assert!(same_revision("2.0.1", "2.0.1"));
        assert!(!same_revision("2.0.10", "2.0.1"));
        let mut failed = hr(Some(("False", "UpgradeFailed")), Some("1.0.0"), json!([]));
        failed["status"]["lastAttemptedRevision"] = json!("2.0.10");
        assert_eq!(
            ready(&application_conditions("2.0.1", Some(&failed), None)),
            ("False", "Upgrading")
        );
        // Success needs the release history at the wanted version.
        let mut ok = hr(Some(("True", "UpgradeSucceeded")), Some("2.0.1"), json!([]));
        ok["status"]["lastAttemptedRevision"] = json!("2.0.1+0123456789ab");
        assert_eq!(
            engine_state(Engine::Helm, &ok, None, "app", Some("2.0.1")).phase,
            Phase::Succeeded
        );
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
