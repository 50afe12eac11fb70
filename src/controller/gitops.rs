//! The controller's view of Git: for each intent, whether its live spec is the manifest of a verified commit.
//!
//! [`IntentSource`] is what the reconcilers ask; [`crate::controller::repo_source::RepoSource`] answers from a
//! fetched, verified clone of the cluster repo.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

use crate::intent::IntentKind;

/// Where a trusted intent came from: what the intent source proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// GitOps: the live spec equals the manifest in the verified `revision`; `intent_commit` last changed it.
    Commit {
        intent_commit: String,
        revision: String,
    },
    /// Pull: the live spec is the payload of job `job_id`, signed by the control-plane key `signer` (`-`:
    /// unsigned, the policy names no control-plane key).
    Job { job_id: String, signer: String },
    /// Push: every spec field is owned by the control plane's field manager `manager`; `signer` the
    /// control-plane key of its signature annotation, when the policy names keys.
    FieldManager {
        manager: String,
        signer: Option<String>,
    },
}

impl Origin {
    /// The commit the intent came from (GitOps): where outcomes are noted.
    pub fn intent_commit(&self) -> Option<&str> {
        match self {
            Origin::Commit { intent_commit, .. } => Some(intent_commit),
            Origin::Job { .. } | Origin::FieldManager { .. } => None,
        }
    }

    /// The `Verified=True` condition.
    pub fn verified_condition(&self) -> crate::api::conditions::Cond {
        use crate::api::conditions::{reasons, types};
        match self {
            Origin::Commit { intent_commit, .. } => crate::api::conditions::Cond::new(
                types::VERIFIED,
                "True",
                reasons::COMMIT_VERIFIED,
                format!("intent commit {intent_commit}"),
            ),
            Origin::Job { job_id, signer } => crate::api::conditions::Cond::new(
                types::VERIFIED,
                "True",
                reasons::JOB_VERIFIED,
                if signer == "-" {
                    format!(
                        "the payload of job {job_id} (unsigned: the policy names no control-plane key)"
                    )
                } else {
                    format!("the payload of job {job_id}, signed by control-plane key {signer}")
                },
            ),
            Origin::FieldManager { manager, signer } => crate::api::conditions::Cond::new(
                types::VERIFIED,
                "True",
                reasons::FIELD_MANAGER_VERIFIED,
                match signer {
                    Some(key) => format!(
                        "every spec field is owned by the control plane's field manager {manager}, and the spec is \
                         signed by control-plane key {key}"
                    ),
                    None => format!(
                        "every spec field is owned by the control plane's field manager {manager}"
                    ),
                },
            ),
        }
    }

    /// The annotation children carry to name where their intent came from.
    pub fn annotation(&self) -> (&'static str, String) {
        match self {
            Origin::Commit { intent_commit, .. } => {
                (crate::api::labels::INTENT_COMMIT, intent_commit.clone())
            }
            Origin::Job { job_id, .. } => (crate::api::labels::INTENT_JOB, job_id.clone()),
            Origin::FieldManager { manager, .. } => {
                (crate::api::labels::INTENT_MANAGER, manager.clone())
            }
        }
    }
}

/// Where an intent stands with respect to its proven source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proven: act on it.
    Verified { origin: Origin },
    /// Not acted on: the reason (a Blocked condition reason) and a precise message.
    Blocked {
        reason: &'static str,
        message: String,
    },
}

/// The state of the verified view, for the Cluster status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitStatus {
    /// The newest commit verified under the trust policy.
    pub last_verified_commit: Option<String>,
    /// Who signed it (identity and key fingerprint).
    pub last_verified_signer: Option<String>,
    /// RFC 3339.
    pub last_verified_time: Option<String>,
    /// Whether the last fetch reached the remote.
    pub reachable: bool,
    /// Why the last fetch or verification failed, when it did.
    pub last_error: Option<String>,
}

/// What the reconcilers ask, whatever the transport (docs/operator.md#modes): is this live intent proven, and
/// where did it come from? Implemented by the Git view (GitOps), the Pull agent's provenance stamps (Pull) and
/// the field-manager check (Push).
pub trait IntentSource: Send + Sync {
    /// Judge a live intent: its typed spec, labels, annotations and the spec owners of its managedFields (the
    /// stores keep only those: see `compact_managed_fields`).
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        kind: IntentKind,
        namespace: &str,
        name: &str,
        spec: &Value,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
        managed_fields: &[ManagedFieldsEntry],
    ) -> Verdict;

    /// The state of the view (GitOps: the last verified commit).
    fn status(&self) -> GitStatus;

    /// The connection, for the Cluster object.
    fn report(&self) -> crate::controller::cluster::SourceReport {
        crate::controller::cluster::git_report(&self.status())
    }
}
