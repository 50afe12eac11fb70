//! Pure status computation of an ApplicationInstance: its conditions from its release (Flux's HelmRelease and
//! chart source here, Argo CD's Application in `argocd_status.rs`; `release_conditions` picks). An Operation's
//! state from its engine's child is `engine_state.rs`. Computed in one place; the reconcilers only write it.

use serde_json::Value;

use super::chart_trust::ChartSignature;
pub use super::child_status::child_condition;
use super::child_status::{field, of_current_generation};
use crate::api::conditions::{Cond, reasons, types};
use crate::render::HelmEngine;

/// Flux reasons that mean the chart could not be fetched.
const CHART_REASONS: &[&str] = &[
    "ArtifactFailed",
    "SourceNotReady",
    "ChartNotFound",
    "ArtifactNotFound",
    "GetLastReleaseFailed",
];

/// Ready=False reasons helm-controller (v1.6.4, `reconcileRelease`) writes when it stops before any Helm action:
/// values it cannot compose, a chart it cannot mutate, a client it cannot build, a source it may not read. Nothing
/// was installed, upgraded or rolled back, so what runs is unchanged (not Degraded).
const PREREQUISITE_REASONS: &[&str] = &[
    "ValuesError",
    "ChartMutateError",
    "RESTClientError",
    "ResourceManagerError",
    "FactoryError",
    "ConfigFactoryErr",
    "AccessDenied",
    "InvalidCELExpression",
];

/// Flux's reason for a HelmRelease waiting on another (`spec.dependsOn`).
const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";

/// The conditions of an instance from its release child, for the engine that renders it: Flux's
/// HelmRelease and chart source, or Argo CD's Application.
/// With `signature` (the trust policy requires the chart to be signed), a failed verification comes first and a
/// Ready release says which digest runs and who signed it.
pub fn release_conditions(
    engine: &HelmEngine,
    desired_version: &str,
    release: Option<&Value>,
    source: Option<&Value>,
    signature: Option<&ChartSignature>,
) -> Vec<Cond> {
    match engine {
        HelmEngine::Flux => {
            if let (Some(sig), Some(src)) = (signature, source)
                && let Some(conds) = super::chart_trust::source_unverified(src, sig)
            {
                return conds;
            }
            let mut conds = application_conditions(desired_version, release, source);
            if let Some(sig) = signature {
                super::chart_trust::with_verified(&mut conds, release, source, sig);
            }
            conds
        }
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
    let conds = match (source.and_then(source_not_ready), helm_release) {
        (Some(conds), _) => conds,
        (None, None) => vec![
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
        ],
        (None, Some(hr)) => helm_release_conditions(desired_version, hr),
    };
    match [helm_release, source]
        .into_iter()
        .flatten()
        .find(|o| is_suspended(o))
    {
        Some(suspended) => while_suspended(suspended, conds),
        None => conds,
    }
}

/// The conditions from the HelmRelease, its chart source being ready.
fn helm_release_conditions(desired_version: &str, hr: &Value) -> Vec<Cond> {
    let release = Release::of(hr);
    let conds = match child_condition(hr, "Ready") {
        // helm-controller leaves `status.observedGeneration` behind whenever it returns without finishing: it
        // stopped short of a release (a chart it cannot fetch or load, values it cannot compose, a dependency
        // not ready) or it remediates. A Ready condition it wrote for the current generation (the condition's own
        // observedGeneration) is then the answer, not the stale status. Ready=True is not: it is only written
        // with the status.
        Some(ready)
            if release.stale
                && field(ready, "status") != "True"
                && of_current_generation(hr, ready) =>
        {
            release.fold_ready(desired_version, ready)
        }
        _ if release.stale => {
            release.waiting("Flux has not yet reconciled the new HelmRelease generation")
        }
        None => release.waiting("the HelmRelease reports no Ready condition yet"),
        Some(ready) => release.fold_ready(desired_version, ready),
    };
    with_drift(hr, conds)
}

/// `spec.suspend: true` on a HelmRelease or chart source: Flux does not act on it (`flux suspend`). The operator
/// renders no `suspend`, so someone else set it.
fn is_suspended(obj: &Value) -> bool {
    obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
}

/// A suspended child holds the intent where it is: unless it is Ready, it says so instead of waiting forever
/// (helm-controller writes nothing while suspended, so its status stays at the previous generation).
fn while_suspended(obj: &Value, mut conds: Vec<Cond>) -> Vec<Cond> {
    let Some(ready) = conds.iter_mut().find(|c| c.type_ == types::READY) else {
        return conds;
    };
    if ready.status == "True" {
        return conds;
    }
    let kind = obj["kind"].as_str().unwrap_or("HelmRelease");
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let resume = match kind {
        "OCIRepository" => "source oci",
        "HelmRepository" => "source helm",
        "HelmChart" => "source chart",
        _ => "helmrelease",
    };
    let message = format!(
        "{kind} {namespace}/{name} is suspended (spec.suspend: true): Flux does not install or upgrade it \
         until it is resumed (`flux resume {resume} -n {namespace} {name}`); before: {}",
        ready.message
    );
    *ready = Cond::new(
        types::READY,
        "False",
        reasons::HELM_RELEASE_SUSPENDED,
        message.clone(),
    );
    if let Some(r) = conds.iter_mut().find(|c| c.type_ == types::RECONCILING) {
        *r = Cond::new(types::RECONCILING, "False", reasons::STABLE, message);
    }
    conds
}

/// helm-controller found the cluster drifted from the release (`Drifted=True`: drift detection in `warn` mode, or
/// while it corrects in `enabled` mode). The operator renders no `driftDetection` (Flux's default: disabled), so
/// someone turned it on; what it found is the running release's trouble.
fn with_drift(hr: &Value, mut conds: Vec<Cond>) -> Vec<Cond> {
    let Some(drift) = child_condition(hr, "Drifted").filter(|c| field(c, "status") == "True")
    else {
        return conds;
    };
    if let Some(d) = conds
        .iter_mut()
        .find(|c| c.type_ == types::DEGRADED && c.status == "False")
    {
        let first = field(drift, "message").lines().next().unwrap_or_default();
        *d = Cond::new(types::DEGRADED, "True", reasons::DRIFTED, first);
    }
    conds
}

/// `Degraded=False`: nothing is wrong with what runs.
fn healthy() -> Cond {
    Cond::new(types::DEGRADED, "False", reasons::RECOVERED, "")
}

/// `Reconciling=False`: Flux has settled.
fn stable() -> Cond {
    Cond::new(types::RECONCILING, "False", reasons::STABLE, "")
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
            "False" => {
                !CHART_REASONS.contains(&reason)
                    && !PREREQUISITE_REASONS.contains(&reason)
                    && reason != DEPENDENCY_NOT_READY
                    && reason != "Progressing"
            }
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

    /// Flux's message, and that helm-controller stopped retrying when it did (`Stalled=True`, e.g. RetriesExceeded
    /// once the remediation retries are spent): nothing happens until the intent changes.
    fn with_stall(&self, flux: String) -> String {
        match child_condition(self.hr, "Stalled").filter(|c| field(c, "status") == "True") {
            Some(s) => format!(
                "{flux}; Flux stopped retrying ({}: {}): a new commit retries",
                field(s, "reason"),
                field(s, "message")
            ),
            None => flux,
        }
    }

    /// Flux rolled the release back after a failed upgrade: the previous release runs.
    fn rolled_back(&self, desired_version: &str, flux: &str) -> Vec<Cond> {
        let at = self.history_version.clone().unwrap_or_default();
        let flux = self.with_stall(flux.to_string());
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
        if reason == DEPENDENCY_NOT_READY {
            return vec![
                Cond::new(types::READY, "False", reasons::DEPENDENCY_NOT_READY, flux),
                Cond::new(
                    types::RECONCILING,
                    "True",
                    self.in_progress,
                    "helm-controller retries until its dependencies are Ready",
                ),
                healthy(),
            ];
        }
        if PREREQUISITE_REASONS.contains(&reason) {
            return vec![
                Cond::new(
                    types::READY,
                    "False",
                    reasons::HELM_RELEASE_FAILED,
                    format!("{flux} (no Helm action ran: what runs is unchanged)"),
                ),
                stable(),
                healthy(),
            ];
        }
        let flux = self.with_stall(flux);
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

#[cfg(test)]
mod tests {
    use super::*;
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
        // The attempt at the wanted version failed: rolled back, and the upgrade Operation failed.
        let current = rolled_back("2.0.1+0123456789ab");
        assert_eq!(
            ready(&application_conditions("2.0.1", Some(&current), None)),
            ("True", "RolledBack")
        );
        // A HelmRepository source reports the bare chart version; 2.0.10 is not 2.0.1.
        assert!(same_revision("2.0.1", "2.0.1"));
        assert!(!same_revision("2.0.10", "2.0.1"));
        let mut failed = hr(Some(("False", "UpgradeFailed")), Some("1.0.0"), json!([]));
        failed["status"]["lastAttemptedRevision"] = json!("2.0.10");
        assert_eq!(
            ready(&application_conditions("2.0.1", Some(&failed), None)),
            ("False", "Upgrading")
        );
    }
    /// States helm-controller v1.6.4 writes without updating `status.observedGeneration` (it returned early), and
    /// states someone else's edit of the HelmRelease brings (`dependsOn`, `suspend`, `driftDetection`).
    #[test]
    fn prerequisites_dependencies_suspension_drift_and_stalls_tell_the_truth() {
        let lagging = |reason: &str, installed: bool| {
            let mut h = hr(Some(("False", reason)), Some("1.0.0"), json!([]));
            if !installed {
                h["status"]["history"] = json!([]);
            }
            h["metadata"]["generation"] = json!(2);
            h["status"]["conditions"][0]["observedGeneration"] = json!(2);
            h
        };
        let degraded = |c: &[Cond]| {
            let d = c.iter().find(|c| c.type_ == "Degraded").unwrap();
            (d.status, d.reason.clone())
        };
        // Values that cannot be composed: failed, nothing ran, what runs is unchanged.
        let c = application_conditions("1.0.0", Some(&lagging("ValuesError", true)), None);
        assert_eq!(ready(&c), ("False", "HelmReleaseFailed"));
        assert!(c[0].message.contains("no Helm action ran"), "{:?}", c[0]);
        assert_eq!(degraded(&c), ("False", "Recovered".to_string()));
        // A new version with broken values is not "not attempted yet": Flux stopped before the attempt.
        let mut both = lagging("ValuesError", true);
        both["status"]["lastAttemptedRevision"] = json!("1.0.0");
        assert_eq!(
            ready(&application_conditions("2.0.0", Some(&both), None)),
            ("False", "HelmReleaseFailed")
        );
        // The same condition from the previous generation is not the answer.
        let mut old = lagging("ValuesError", true);
        old["status"]["conditions"][0]["observedGeneration"] = json!(1);
        assert_eq!(
            ready(&application_conditions("1.0.0", Some(&old), None)),
            ("Unknown", "Reconciling")
        );
        // A dependency not ready: a wait, Flux retries.
        let c = application_conditions("1.0.0", Some(&lagging("DependencyNotReady", false)), None);
        assert_eq!(ready(&c), ("False", "DependencyNotReady"));
        assert!(
            c.iter()
                .any(|c| c.type_ == "Reconciling" && c.status == "True")
        );
        // Suspended: says so instead of waiting for ever; a Ready release stays Ready.
        let mut suspended = lagging("ValuesError", true);
        suspended["status"]["conditions"][0]["observedGeneration"] = json!(1);
        suspended["spec"] = json!({"suspend": true});
        suspended["metadata"]["namespace"] = json!("team");
        suspended["metadata"]["name"] = json!("web");
        let c = application_conditions("1.0.0", Some(&suspended), None);
        assert_eq!(ready(&c), ("False", "HelmReleaseSuspended"));
        assert!(
            c[0].message.contains("flux resume helmrelease -n team web"),
            "{:?}",
            c[0]
        );
        let mut ok = hr(Some(("True", "UpgradeSucceeded")), Some("1.0.0"), json!([]));
        ok["spec"] = json!({"suspend": true});
        assert_eq!(
            ready(&application_conditions("1.0.0", Some(&ok), None)),
            ("True", "HelmReleaseReady")
        );
        let source = json!({"kind": "OCIRepository", "metadata": {"namespace": "team", "name": "web"},
                            "spec": {"suspend": true}});
        let upgrading = hr(Some(("True", "UpgradeSucceeded")), Some("1.0.0"), json!([]));
        let c = application_conditions("2.0.0", Some(&upgrading), Some(&source));
        assert_eq!(ready(&c), ("False", "HelmReleaseSuspended"));
        assert!(
            c[0].message.contains("flux resume source oci"),
            "{:?}",
            c[0]
        );
        // Drift found (warn mode): the running release is degraded, still Ready.
        let drifted = hr(
            Some(("True", "UpgradeSucceeded")),
            Some("1.0.0"),
            json!([{"type": "Drifted", "status": "True", "reason": "DriftDetected",
                    "message": "Cluster state of release team/web.v1 has drifted from the desired state:\nConfigMap/team/web changed (0 additions, 1 changes, 0 removals)"}]),
        );
        let c = application_conditions("1.0.0", Some(&drifted), None);
        assert_eq!(ready(&c), ("True", "HelmReleaseReady"));
        let (status, reason) = degraded(&c);
        assert_eq!((status, reason.as_str()), ("True", "Drifted"));
        // Flux out of retries: said, with what retries.
        let stalled = hr(
            Some(("False", "InstallFailed")),
            None,
            json!([{"type": "Stalled", "status": "True", "reason": "RetriesExceeded",
                    "message": "Failed to install after 2 attempt(s)"}]),
        );
        let c = application_conditions("1.0.0", Some(&stalled), None);
        assert_eq!(ready(&c), ("False", "HelmReleaseFailed"));
        assert!(
            c[0].message.contains(
                "Flux stopped retrying (RetriesExceeded: Failed to install after 2 attempt(s))"
            ),
            "{:?}",
            c[0]
        );
    }
}
