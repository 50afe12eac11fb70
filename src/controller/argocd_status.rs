//! Pure status computation for the Argo CD engine: an ApplicationInstance's Ready / Reconciling / Degraded
//! from its Argo CD Application, with the same conditions and reasons the Flux engine gives
//! (`status::application_conditions`); `status::release_conditions` picks the engine's reading.
//!
//! What an Application's status says, as Argo CD's application-controller writes it: `sync.status`
//! (Synced, OutOfSync, Unknown) with `sync.comparedTo.source` (the source it last compared: the operator's
//! freshness check, since an Application has no observedGeneration), `health.status` (Healthy, Progressing,
//! Degraded, Suspended, Missing, Unknown), `operationState` (the last sync: Running, Succeeded, Failed, Error,
//! Terminating, with its message and the revision it synced), `history` (successful syncs) and `conditions`
//! (ComparisonError, InvalidSpecError, SyncError, …). Argo CD does not roll back: a failed upgrade stays
//! failed, which the operator says as Ready=False/HelmReleaseFailed with Degraded=True/UpgradeFailed.

use serde_json::Value;

use crate::api::conditions::{Cond, reasons, types};

/// Ready / Reconciling / Degraded from an Argo CD Application (as read from the API server) and the chart
/// version wanted.
pub fn application_conditions(desired_version: &str, application: Option<&Value>) -> Vec<Cond> {
    let Some(app) = application else {
        return waiting(
            reasons::HELM_RELEASE_INSTALLING,
            "waiting for the Application",
        );
    };
    let a = App::of(app);
    if app.get("status").is_none_or(Value::is_null) {
        return waiting(
            a.in_progress,
            "Argo CD has not reported on the Application yet",
        );
    }
    if let Some(compared) = a.compared_revision
        && compared != desired_version
    {
        return waiting(
            a.in_progress,
            &format!("Argo CD has not yet compared {desired_version} (last compared {compared})"),
        );
    }
    if a.compared_revision.is_none() && a.error.is_none() {
        return waiting(
            a.in_progress,
            "Argo CD has not compared the Application yet",
        );
    }
    if let Some(conds) = a.spec_error() {
        return conds;
    }
    if let Some(conds) = a.sync_failed(desired_version) {
        return conds;
    }
    a.fold_health(desired_version)
}

/// `Degraded=False`: nothing is wrong with what runs.
fn healthy() -> Cond {
    Cond::new(types::DEGRADED, "False", reasons::RECOVERED, "")
}

/// `Reconciling=False`: the engine has settled.
fn stable() -> Cond {
    Cond::new(types::RECONCILING, "False", reasons::STABLE, "")
}

/// Ready unknown (`message`) while Argo CD works.
fn waiting(in_progress: &'static str, message: &str) -> Vec<Cond> {
    vec![
        Cond::new(types::READY, "Unknown", reasons::RECONCILING, message),
        Cond::new(
            types::RECONCILING,
            "True",
            in_progress,
            "waiting for Argo CD",
        ),
        healthy(),
    ]
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Words in a manifest-generation error that say the chart could not be fetched (rather than rendered).
const FETCH_FAILURES: &[&str] = &[
    "not found",
    "failed to fetch",
    "failed to pull",
    "unable to",
    "no such host",
    "connection refused",
    "unauthorized",
    "forbidden",
    "manifest unknown",
    "name unknown",
    "i/o timeout",
    "tls:",
    "repository",
];

/// What an Application's status says.
struct App<'a> {
    app: &'a Value,
    /// The chart version Argo CD last compared the cluster against (`sync.comparedTo.source.targetRevision`).
    compared_revision: Option<&'a str>,
    /// The chart version of the newest successful sync, once there was one.
    running: Option<&'a str>,
    /// `HelmReleaseUpgrading` once a sync succeeded, `HelmReleaseInstalling` before.
    in_progress: &'static str,
    /// The first error condition Argo CD reports (type, message).
    error: Option<(&'a str, &'a str)>,
}

impl<'a> App<'a> {
    fn of(app: &'a Value) -> Self {
        let running = app
            .pointer("/status/history")
            .and_then(Value::as_array)
            .and_then(|h| h.last())
            .and_then(|h| text(h, "/source/targetRevision").or_else(|| text(h, "/revision")));
        let error = app
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|c| {
                let t = text(c, "/type")?;
                t.ends_with("Error")
                    .then(|| (t, text(c, "/message").unwrap_or_default()))
            });
        Self {
            app,
            compared_revision: text(app, "/status/sync/comparedTo/source/targetRevision"),
            running,
            in_progress: if running.is_some() {
                reasons::HELM_RELEASE_UPGRADING
            } else {
                reasons::HELM_RELEASE_INSTALLING
            },
            error,
        }
    }

    /// `Upgrading` once installed, `Installing` before.
    fn moving(&self) -> &'static str {
        if self.running.is_some() {
            reasons::UPGRADING
        } else {
            reasons::INSTALLING
        }
    }

    /// Argo CD cannot generate the manifests (the chart cannot be fetched or rendered) or refuses the spec.
    fn spec_error(&self) -> Option<Vec<Cond>> {
        let (kind, message) = self.error?;
        let said = format!("{kind}: {message}");
        let lower = message.to_ascii_lowercase();
        if kind == "ComparisonError" && FETCH_FAILURES.iter().any(|w| lower.contains(w)) {
            return Some(vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::CHART_UNREACHABLE,
                    said.clone(),
                ),
                Cond::new(
                    types::RECONCILING,
                    "True",
                    reasons::CHART_SOURCE_SYNCING,
                    said,
                ),
                healthy(),
            ]);
        }
        if matches!(kind, "ComparisonError" | "InvalidSpecError") {
            // The chart does not render with these values, or the Application is refused (its project):
            // nothing new was applied; what ran before still runs.
            return Some(vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::HELM_RELEASE_FAILED,
                    said.clone(),
                ),
                stable(),
                healthy(),
            ]);
        }
        None
    }

    /// The last sync of the wanted version failed (Argo CD keeps what it applied; there is no rollback).
    fn sync_failed(&self, desired_version: &str) -> Option<Vec<Cond>> {
        let op = self.app.pointer("/status/operationState")?;
        let phase = text(op, "/phase")?;
        if !matches!(phase, "Failed" | "Error") {
            return None;
        }
        let synced = text(op, "/syncResult/source/targetRevision")
            .or_else(|| text(op, "/operation/sync/source/targetRevision"))
            .or_else(|| text(op, "/syncResult/revision"))
            .or_else(|| text(op, "/operation/sync/revision"));
        if synced.is_some_and(|r| r != desired_version) {
            return None; // an older attempt: the new one has not started yet
        }
        let message = format!(
            "sync {phase}: {}",
            text(op, "/message").unwrap_or("no message")
        );
        let mut conds = vec![
            Cond::new(
                types::READY,
                "False",
                reasons::HELM_RELEASE_FAILED,
                message.clone(),
            ),
            stable(),
        ];
        conds.push(match self.running {
            // Something ran before: the failed upgrade leaves it partly changed, and Argo CD does not roll back.
            Some(running) if running != desired_version => Cond::new(
                types::DEGRADED,
                "True",
                reasons::UPGRADE_FAILED,
                format!(
                    "upgrade from {running} to {desired_version} failed and was not rolled back (Argo CD does not roll back): {message}"
                ),
            ),
            // Never installed: there is no workload to call degraded.
            _ => healthy(),
        });
        Some(conds)
    }

    /// Sync and health, once Argo CD has compared the wanted version.
    fn fold_health(&self, desired_version: &str) -> Vec<Cond> {
        let sync = text(self.app, "/status/sync/status").unwrap_or("Unknown");
        let health = text(self.app, "/status/health/status").unwrap_or("Unknown");
        let running_op = text(self.app, "/status/operationState/phase")
            .is_some_and(|p| matches!(p, "Running" | "Terminating"));
        let health_message = text(self.app, "/status/health/message").unwrap_or_default();
        let said = if health_message.is_empty() {
            format!("Argo CD: {sync}, {health}")
        } else {
            format!("Argo CD: {sync}, {health}: {health_message}")
        };
        let progressing = || {
            vec![
                Cond::new(types::READY, "False", self.moving(), said.clone()),
                Cond::new(types::RECONCILING, "True", self.in_progress, said.clone()),
                healthy(),
            ]
        };
        if running_op || sync != "Synced" {
            return progressing();
        }
        match health {
            "Healthy" => vec![
                Cond::new(
                    types::READY,
                    "True",
                    reasons::HELM_RELEASE_READY,
                    format!("Argo CD: Synced at {desired_version}, Healthy"),
                ),
                stable(),
                healthy(),
            ],
            "Degraded" => vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::HELM_RELEASE_FAILED,
                    said.clone(),
                ),
                stable(),
                Cond::new(
                    types::DEGRADED,
                    "True",
                    reasons::HELM_RELEASE_DEGRADED,
                    said,
                ),
            ],
            "Progressing" | "Missing" => progressing(),
            // Suspended (a paused workload) and Unknown: not ready, not failed; looked at again.
            _ => vec![
                Cond::new(types::READY, "Unknown", reasons::RECONCILING, said.clone()),
                Cond::new(types::RECONCILING, "True", self.in_progress, said),
                healthy(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An Application's status as Argo CD writes it: compared at `compared`, `sync`/`health`, an optional
    /// last operation (phase, message, revision) and the revisions of its successful syncs.
    fn app(
        compared: &str,
        sync: &str,
        health: &str,
        op: Option<(&str, &str, &str)>,
        history: &[&str],
    ) -> Value {
        let mut status = json!({
            "sync": {"status": sync, "comparedTo": {"source": {"repoURL": "oci://r/c", "targetRevision": compared}}},
            "health": {"status": health},
            "history": history.iter().enumerate().map(|(i, v)| json!({"id": i, "revision": v, "source": {"targetRevision": v}})).collect::<Vec<_>>(),
        });
        if let Some((phase, message, revision)) = op {
            status["operationState"] = json!({"phase": phase, "message": message,
                "operation": {"sync": {"revision": revision}},
                "syncResult": {"revision": revision, "source": {"targetRevision": revision}}});
        }
        json!({"kind": "Application", "metadata": {"generation": 2}, "status": status})
    }

    fn of(conds: &[Cond], t: &str) -> (String, String) {
        let c = conds.iter().find(|c| c.type_ == t).unwrap();
        (c.status.to_string(), c.reason.to_string())
    }

    fn pair(s: &str, r: &str) -> (String, String) {
        (s.to_string(), r.to_string())
    }

    #[test]
    fn synced_and_healthy_at_the_wanted_version_is_ready() {
        let c = application_conditions(
            "1.0.0",
            Some(&app(
                "1.0.0",
                "Synced",
                "Healthy",
                Some(("Succeeded", "ok", "1.0.0")),
                &["1.0.0"],
            )),
        );
        assert_eq!(
            of(&c, types::READY),
            pair("True", reasons::HELM_RELEASE_READY)
        );
        assert_eq!(of(&c, types::RECONCILING), pair("False", reasons::STABLE));
        assert_eq!(of(&c, types::DEGRADED), pair("False", reasons::RECOVERED));
    }

    #[test]
    fn nothing_reported_or_an_older_comparison_is_waiting_never_a_stale_verdict() {
        let c = application_conditions("1.0.0", None);
        assert_eq!(of(&c, types::READY), pair("Unknown", reasons::RECONCILING));
        let bare = json!({"kind": "Application", "metadata": {}});
        let c = application_conditions("1.0.0", Some(&bare));
        assert_eq!(of(&c, types::READY), pair("Unknown", reasons::RECONCILING));
        // Ready at 1.0.0, but 1.1.0 is wanted and not compared yet; even an old failure is not repeated.
        let mut old = app(
            "1.0.0",
            "Synced",
            "Healthy",
            Some(("Failed", "old", "1.0.0")),
            &["1.0.0"],
        );
        let c = application_conditions("1.1.0", Some(&old));
        assert_eq!(of(&c, types::READY), pair("Unknown", reasons::RECONCILING));
        assert_eq!(
            of(&c, types::RECONCILING),
            pair("True", reasons::HELM_RELEASE_UPGRADING)
        );
        old["status"]["conditions"] = json!([{"type": "ComparisonError", "message": "old error"}]);
        let c = application_conditions("1.1.0", Some(&old));
        assert_eq!(of(&c, types::READY), pair("Unknown", reasons::RECONCILING));
    }

    #[test]
    fn progressing_missing_and_out_of_sync_are_installing_or_upgrading() {
        for (sync, health, op) in [
            ("Synced", "Progressing", None),
            ("Synced", "Missing", None),
            ("OutOfSync", "Missing", None),
            ("Synced", "Healthy", Some(("Running", "syncing", "1.0.0"))),
        ] {
            let c = application_conditions("1.0.0", Some(&app("1.0.0", sync, health, op, &[])));
            assert_eq!(
                of(&c, types::READY),
                pair("False", reasons::INSTALLING),
                "{sync} {health}"
            );
            assert_eq!(
                of(&c, types::RECONCILING),
                pair("True", reasons::HELM_RELEASE_INSTALLING)
            );
            let c = application_conditions(
                "1.1.0",
                Some(&app(
                    "1.1.0",
                    sync,
                    health,
                    op.map(|(p, m, _)| (p, m, "1.1.0")),
                    &["1.0.0"],
                )),
            );
            assert_eq!(
                of(&c, types::READY),
                pair("False", reasons::UPGRADING),
                "{sync} {health}"
            );
        }
    }

    #[test]
    fn a_failed_upgrade_is_degraded_and_not_rolled_back_a_failed_install_is_not_degraded() {
        let failed = app(
            "1.1.0",
            "OutOfSync",
            "Healthy",
            Some(("Failed", "one or more objects failed to apply", "1.1.0")),
            &["1.0.0"],
        );
        let c = application_conditions("1.1.0", Some(&failed));
        assert_eq!(
            of(&c, types::READY),
            pair("False", reasons::HELM_RELEASE_FAILED)
        );
        assert_eq!(
            of(&c, types::DEGRADED),
            pair("True", reasons::UPGRADE_FAILED)
        );
        assert_eq!(of(&c, types::RECONCILING), pair("False", reasons::STABLE));
        let d = c.iter().find(|c| c.type_ == types::DEGRADED).unwrap();
        assert!(
            d.message.contains("from 1.0.0 to 1.1.0") && d.message.contains("does not roll back"),
            "{}",
            d.message
        );

        let install = app(
            "1.0.0",
            "OutOfSync",
            "Missing",
            Some(("Error", "boom", "1.0.0")),
            &[],
        );
        let c = application_conditions("1.0.0", Some(&install));
        assert_eq!(
            of(&c, types::READY),
            pair("False", reasons::HELM_RELEASE_FAILED)
        );
        assert_eq!(of(&c, types::DEGRADED), pair("False", reasons::RECOVERED));
        // A failure of an older attempt does not speak for the wanted version.
        let older = app(
            "1.1.0",
            "OutOfSync",
            "Healthy",
            Some(("Failed", "x", "1.0.5")),
            &["1.0.0"],
        );
        let c = application_conditions("1.1.0", Some(&older));
        assert_eq!(of(&c, types::READY), pair("False", reasons::UPGRADING));
    }

    #[test]
    fn degraded_health_and_manifest_errors() {
        let c = application_conditions(
            "1.0.0",
            Some(&app("1.0.0", "Synced", "Degraded", None, &["1.0.0"])),
        );
        assert_eq!(
            of(&c, types::READY),
            pair("False", reasons::HELM_RELEASE_FAILED)
        );
        assert_eq!(
            of(&c, types::DEGRADED),
            pair("True", reasons::HELM_RELEASE_DEGRADED)
        );

        let mut missing = app("2.0.0", "Unknown", "Healthy", None, &["1.0.0"]);
        missing["status"]["conditions"] = json!([{"type": "ComparisonError", "message": "Failed to load target state: chart version 2.0.0 not found"}]);
        let c = application_conditions("2.0.0", Some(&missing));
        assert_eq!(
            of(&c, types::READY),
            pair("False", reasons::CHART_UNREACHABLE)
        );
        assert!(c[0].message.contains("2.0.0 not found"));

        let mut broken = app("2.0.0", "Unknown", "Healthy", None, &["1.0.0"]);
        broken["status"]["conditions"] = json!([{"type": "ComparisonError", "message": "template: x.yaml:3: executing: nil pointer"}]);
        let c = application_conditions("2.0.0", Some(&broken));
        assert_eq!(
            of(&c, types::READY),
            pair("False", reasons::HELM_RELEASE_FAILED)
        );
        assert_eq!(of(&c, types::DEGRADED), pair("False", reasons::RECOVERED));

        let mut refused = app("2.0.0", "Unknown", "Healthy", None, &[]);
        refused["status"]["conditions"] = json!([{"type": "InvalidSpecError", "message": "application destination is not permitted in project"}]);
        let c = application_conditions("2.0.0", Some(&refused));
        assert_eq!(
            of(&c, types::READY),
            pair("False", reasons::HELM_RELEASE_FAILED)
        );
        // A warning condition is not an error.
        let mut warned = app("1.0.0", "Synced", "Healthy", None, &["1.0.0"]);
        warned["status"]["conditions"] =
            json!([{"type": "OrphanedResourceWarning", "message": "x"}]);
        let c = application_conditions("1.0.0", Some(&warned));
        assert_eq!(
            of(&c, types::READY),
            pair("True", reasons::HELM_RELEASE_READY)
        );
    }

    #[test]
    fn suspended_and_unknown_health_wait() {
        for health in ["Suspended", "Unknown"] {
            let c = application_conditions(
                "1.0.0",
                Some(&app("1.0.0", "Synced", health, None, &["1.0.0"])),
            );
            assert_eq!(
                of(&c, types::READY),
                pair("Unknown", reasons::RECONCILING),
                "{health}"
            );
            assert_eq!(of(&c, types::DEGRADED), pair("False", reasons::RECOVERED));
        }
    }
}
