//! The fleet's gauges, refreshed with the Cluster object (`loops::cluster`): this cluster's intents by state,
//! the verified view against the revision Flux applied, and the process's resident memory. What the chart's
//! dashboard and alerts read (docs/runbooks.md).

use kube::runtime::reflector::Store;

use super::context::{Context, is_ours};
use crate::api::conditions::types;
use crate::api::{ApplicationInstance, Operation};
use crate::metrics::Metrics;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The states `vworkspace_operator_intents` has for each kind (all are set, 0 when none).
pub const APP_STATES: &[&str] = &["ready", "blocked", "not_ready", "unjudged"];
pub const OP_STATES: &[&str] = &[
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "blocked",
];

/// An ApplicationInstance's state: Blocked first, then Ready, then not ready; unjudged before any condition.
pub fn app_state(conditions: &[Condition]) -> &'static str {
    let is = |t: &str, s: &str| conditions.iter().any(|c| c.type_ == t && c.status == s);
    if conditions.is_empty() {
        "unjudged"
    } else if is(types::BLOCKED, "True") {
        "blocked"
    } else if is(types::READY, "True") {
        "ready"
    } else {
        "not_ready"
    }
}

/// An Operation's state: Blocked, or its phase.
pub fn op_state(op: &Operation) -> &'static str {
    let Some(status) = &op.status else {
        return "pending";
    };
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == types::BLOCKED && c.status == "True")
    {
        return "blocked";
    }
    match status.phase.map(|p| p.as_str()).unwrap_or("Pending") {
        "Running" => "running",
        "Succeeded" => "succeeded",
        "Failed" => "failed",
        "Cancelled" => "cancelled",
        _ => "pending",
    }
}

fn count(states: impl Iterator<Item = &'static str>) -> Vec<(&'static str, usize)> {
    let mut out: Vec<(&'static str, usize)> = Vec::new();
    for s in states {
        match out.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => out.push((s, 1)),
        }
    }
    out
}

/// Refresh every gauge. `gitops`: the view and Flux's revision are compared (GitOps mode only).
pub(super) async fn refresh(
    ctx: &Context,
    apps: &Store<ApplicationInstance>,
    gitops: bool,
    metrics: &Metrics,
) {
    let id = &ctx.settings.cluster_id;
    let apps: Vec<_> = apps.state();
    let app_states = apps
        .iter()
        .filter(|a| {
            is_ours(
                a.metadata.labels.as_ref().unwrap_or(&Default::default()),
                id,
            )
        })
        .map(|a| app_state(a.status.as_ref().map_or(&[][..], |s| &s.conditions)));
    metrics.set_intents("applicationinstance", APP_STATES, &count(app_states));
    let ops: Vec<_> = ctx.operations.state();
    let op_states = ops
        .iter()
        .filter(|o| {
            is_ours(
                o.metadata.labels.as_ref().unwrap_or(&Default::default()),
                id,
            )
        })
        .map(|o| op_state(o));
    metrics.set_intents("operation", OP_STATES, &count(op_states));
    if gitops {
        let status = ctx.source.status();
        let (view, flux) = (status.last_verified_commit, status.flux_applied_commit);
        let differs = match (&view, &flux) {
            (Some(v), Some(f)) => Some(v != f),
            (None, Some(_)) => Some(true),
            _ => None,
        };
        metrics.set_view(view.is_some(), differs);
    }
    if let Some(bytes) = resident_memory() {
        metrics.set_resident_memory(bytes);
    }
}

/// The resident set of this process (`VmRSS` of `/proc/self/status`), in bytes.
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(t: &str, s: &str) -> Condition {
        serde_json::from_value(
            serde_json::json!({"type": t, "status": s, "reason": "R", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}),
        )
        .unwrap()
    }

    #[test]
    fn states_are_blocked_first_then_ready() {
        assert_eq!(app_state(&[]), "unjudged");
        assert_eq!(app_state(&[cond("Ready", "True")]), "ready");
        assert_eq!(
            app_state(&[cond("Ready", "True"), cond("Blocked", "True")]),
            "blocked"
        );
        assert_eq!(
            app_state(&[cond("Ready", "False"), cond("Blocked", "False")]),
            "not_ready"
        );
        assert_eq!(
            count(["ready", "blocked", "ready"].into_iter()),
            [("ready", 2), ("blocked", 1)]
        );
        assert!(resident_memory().is_some_and(|b| b > 0));
    }
}
