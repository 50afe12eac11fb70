//! The Cluster singleton (named after the cluster id): connectivity, installed controllers, the last verified
//! commit and signer, the operator version. Maintained by a loop rather than a watch: it reports on the
//! world, not on its own spec.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::context::{Context, Transition, changed};
use crate::api::conditions::{Cond, merge_conditions};
use crate::api::conditions::{reasons, types};
use crate::api::{Cluster, ClusterPhase, ClusterSpec, ControllerPresence, FIELD_MANAGER};
use crate::source::SourceReport;

/// The engine CRDs the operator looks for besides the Helm engine's ([`helm_engine_crd`]): (name shown in
/// status, apiVersion, kind).
pub const CONTROLLERS: &[(&str, &str, &str)] = &[
    ("velero", "velero.io/v1", "Backup"),
    ("argo-workflows", "argoproj.io/v1alpha1", "Workflow"),
    ("volsync", "volsync.backube/v1alpha1", "ReplicationSource"),
    (
        "csi-snapshot",
        "snapshot.storage.k8s.io/v1",
        "VolumeSnapshot",
    ),
];

/// The configured Helm engine's CRD: Flux's HelmRelease, or Argo CD's Application.
pub fn helm_engine_crd(
    engine: &crate::render::HelmEngine,
) -> (&'static str, &'static str, &'static str) {
    match engine {
        crate::render::HelmEngine::Flux => ("flux", "helm.toolkit.fluxcd.io/v2", "HelmRelease"),
        crate::render::HelmEngine::ArgoCd { .. } => {
            ("argocd", "argoproj.io/v1alpha1", "Application")
        }
    }
}

/// What the control-plane client says about its connection, when one is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlPlaneState {
    pub configured: bool,
    pub reachable: bool,
    pub authenticated: Option<bool>,
    pub buffer_overflow: bool,
    pub message: String,
}

/// Compute the Cluster conditions and fields (pure).
pub fn cluster_conditions(
    source: &SourceReport,
    control_plane: &ControlPlaneState,
    controllers: &[ControllerPresence],
) -> (Vec<Cond>, ClusterPhase) {
    let mut conds = Vec::new();
    let connected = source.connected && (!control_plane.configured || control_plane.reachable);
    let source_auth = source
        .conditions
        .iter()
        .any(|c| c.type_ == types::AUTHENTICATED);
    for c in &source.conditions {
        if c.type_ == types::CONNECTED
            && source.connected
            && control_plane.configured
            && !control_plane.reachable
        {
            conds.push(Cond::new(
                types::CONNECTED,
                "False",
                reasons::CONTROL_PLANE_UNREACHABLE,
                control_plane.message.clone(),
            ));
        } else {
            conds.push(c.clone());
        }
    }
    if control_plane.configured && !source_auth {
        conds.push(match control_plane.authenticated {
            Some(false) => Cond::new(
                types::AUTHENTICATED,
                "False",
                reasons::CREDENTIAL_REJECTED,
                control_plane.message.clone(),
            ),
            _ => Cond::new(
                types::AUTHENTICATED,
                "True",
                reasons::CREDENTIAL_ACCEPTED,
                "",
            ),
        });
        conds.push(if control_plane.buffer_overflow {
            Cond::new(
                types::BUFFER_OVERFLOW,
                "True",
                reasons::EVENT_BUFFER_FULL,
                "the oldest events were dropped",
            )
        } else {
            Cond::new(types::BUFFER_OVERFLOW, "False", reasons::BUFFER_DRAINED, "")
        });
    }
    let missing: Vec<&str> = controllers
        .iter()
        .filter(|c| !c.installed)
        .map(|c| c.name.as_str())
        .collect();
    conds.push(if missing.is_empty() {
        Cond::new(
            types::CONTROLLERS_HEALTHY,
            "True",
            reasons::ALL_CONTROLLERS_READY,
            "all engine CRDs are installed",
        )
    } else {
        Cond::new(
            types::CONTROLLERS_HEALTHY,
            "False",
            reasons::CONTROLLER_MISSING,
            format!("missing: {}", missing.join(", ")),
        )
    });
    // The Helm engine is listed first: without it no ApplicationInstance can run.
    let helm_engine = controllers.first().is_some_and(|c| c.installed);
    let phase = match (connected, helm_engine) {
        (true, true) if missing.is_empty() => ClusterPhase::Connected,
        (true, _) => ClusterPhase::Degraded,
        (false, _) => source.phase.unwrap_or(ClusterPhase::Disconnected),
    };
    (conds, phase)
}

/// Bring the Cluster object up to date (create it if missing). Writes only when something changed.
/// `owed`: (notes pending, events buffered, the webhook certificate's expiry in Unix seconds or 0), from the
/// metrics.
pub async fn sync(
    ctx: &Arc<Context>,
    control_plane: &ControlPlaneState,
    owed: (i64, i64, i64),
) -> Result<(), kube::Error> {
    let api: Api<Cluster> = Api::all(ctx.client.clone());
    let name = ctx.settings.cluster_id.clone();
    let existing = api.get_opt(&name).await?;
    if existing.is_none() {
        let obj = json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name},
            "spec": ClusterSpec { cluster_id: Some(name.clone()), ..ClusterSpec::default() },
        });
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &kube::api::Patch::Apply(&obj),
        )
        .await?;
        ctx.metrics.write("cluster");
    }
    let cluster = match existing {
        Some(c) => c,
        None => api.get(&name).await?,
    };
    let mut controllers = Vec::new();
    ctx.resources.forget_missing().await;
    let engine = helm_engine_crd(&ctx.settings.helm_engine);
    for (label, api_version, kind) in std::iter::once(&engine).chain(CONTROLLERS) {
        let installed = ctx
            .resources
            .resolve(api_version, kind)
            .await
            .ok()
            .flatten()
            .is_some();
        controllers.push(ControllerPresence {
            name: label.to_string(),
            installed,
        });
    }
    let git = ctx.source.status();
    let report = ctx.source.report();
    let (conds, phase) = cluster_conditions(&report, control_plane, &controllers);
    let current = cluster.status.clone().unwrap_or_default();
    let mut next = current.clone();
    let now = Time(jiff::Timestamp::now());
    merge_conditions(
        &mut next.conditions,
        &conds,
        cluster.metadata.generation,
        &now,
    );
    next.phase = Some(phase);
    next.observed_generation = cluster.metadata.generation;
    next.controllers = controllers;
    next.helm_engine = Some(ctx.settings.helm_engine.name().to_string());
    next.last_verified_commit = git.last_verified_commit.clone();
    next.last_verified_signer = git.last_verified_signer.clone();
    next.last_verified_time = git.last_verified_time.clone();
    next.operator_version = Some(env!("CARGO_PKG_VERSION").to_string());
    next.last_heartbeat = report.last_heartbeat.clone();
    next.observed_token = report.observed_token.clone();
    next.credential_status = report.credential_status.clone();
    next.credentials_secret_ref = report.credentials_secret_ref.clone();
    let (notes, events, expiry) = owed;
    next.notes_pending = Some(notes);
    next.events_pending = Some(events);
    next.webhook_certificate_expiry = jiff::Timestamp::from_second(expiry)
        .ok()
        .filter(|_| expiry > 0)
        .map(|t| t.to_string());
    if next == current {
        return Ok(());
    }
    let patch =
        json!({"apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Cluster", "status": next});
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.write("status");
    let transitions = changed(&current.conditions, &conds);
    if !transitions.is_empty() {
        ctx.publish_transitions(&cluster, &transitions).await;
    }
    if current.conditions != next.conditions {
        ctx.transitions.transition(Transition {
            api_version: "ops.vworkspace.io/v1alpha1",
            kind: "Cluster",
            namespace: String::new(),
            name: cluster.name_any(),
            uid: cluster.uid().unwrap_or_default(),
            generation: cluster.metadata.generation.unwrap_or_default(),
            old: current.conditions,
            new: next.conditions,
            endpoints: Vec::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SourceStatus, git_report};

    fn present(names: &[(&str, bool)]) -> Vec<ControllerPresence> {
        names
            .iter()
            .map(|(n, i)| ControllerPresence {
                name: n.to_string(),
                installed: *i,
            })
            .collect()
    }

    #[test]
    fn cluster_conditions_follow_connectivity_and_controllers() {
        let git = SourceStatus {
            reachable: true,
            ..Default::default()
        };
        let all = present(&[("flux", true), ("velero", true)]);
        let (conds, phase) =
            cluster_conditions(&git_report(&git), &ControlPlaneState::default(), &all);
        assert_eq!(phase, ClusterPhase::Connected);
        assert!(conds.iter().all(|c| c.status == "True"));
        let (conds, phase) = cluster_conditions(
            &git_report(&git),
            &ControlPlaneState::default(),
            &present(&[("flux", true), ("velero", false)]),
        );
        assert_eq!(phase, ClusterPhase::Degraded);
        let ch = conds
            .iter()
            .find(|c| c.type_ == "ControllersHealthy")
            .unwrap();
        assert_eq!(
            (ch.status, ch.message.as_str()),
            ("False", "missing: velero")
        );
        let down = SourceStatus {
            reachable: false,
            last_error: Some("connection refused".into()),
            ..Default::default()
        };
        let (conds, phase) =
            cluster_conditions(&git_report(&down), &ControlPlaneState::default(), &all);
        assert_eq!(phase, ClusterPhase::Disconnected);
        assert_eq!(conds[0].reason, "RepoUnreachable");
        let cp = ControlPlaneState {
            configured: true,
            reachable: false,
            authenticated: Some(false),
            buffer_overflow: true,
            message: "503".into(),
        };
        let (conds, _) = cluster_conditions(&git_report(&git), &cp, &all);
        let reasons: Vec<&str> = conds.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "ControlPlaneUnreachable",
                "CredentialRejected",
                "EventBufferFull",
                "AllControllersReady"
            ]
        );
    }
}
