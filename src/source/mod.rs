//! How intent gets in, whatever the mode (docs/operator.md#modes): the reconcilers ask an [`IntentSource`]
//! whether a live intent is proven ([`Verdict`]) and where it came from ([`Origin`]); they never ask which mode
//! runs. This file holds that question and its answers; the folder holds the three ways in:
//!
//! - [`gitops`]: [`gitops::RepoSource`], a fetched, verified clone of the cluster repo (fetch → verify → index);
//! - [`pull`]: the Pull agent, which long-polls the control plane for jobs and applies them, and
//!   [`pull::source::PullSource`], which proves an intent by the provenance stamp of the job that applied it;
//! - [`push`]: [`push::PushSource`], the control plane's field manager (and signature) on the live object.
//!
//! A policy change goes to the source through [`PolicyTarget`] ([`policy_watch`] re-reads the trust policy
//! while running); the Cluster object reads the connection through [`IntentSource::report`]. The controller
//! imports this module; nothing here imports the controller.

pub mod flux_watch;
pub mod gitops;
pub mod policy_watch;
pub mod pull;
pub mod push;
mod start;

pub use start::{Deps, PullSettings, SourceConfig, Started, start};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::Value;

use crate::api::ClusterPhase;
use crate::api::conditions::{Cond, reasons, types};
use crate::git::policy::TrustPolicy;
use crate::git::provenance::LiveObject;
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
    pub fn verified_condition(&self) -> Cond {
        use crate::api::conditions::{reasons, types};
        match self {
            Origin::Commit { intent_commit, .. } => Cond::new(
                types::VERIFIED,
                "True",
                reasons::COMMIT_VERIFIED,
                format!("intent commit {intent_commit}"),
            ),
            Origin::Job { job_id, signer } => Cond::new(
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
            Origin::FieldManager { manager, signer } => Cond::new(
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
    /// Not acted on, and nothing said yet: the live object is as the previous revision had it while the view has
    /// moved on, and this process has never seen it match (a new leader, a restart): Flux has most likely not
    /// applied the new revision yet. The status stays as it is; the reconciler asks again soon, and after a grace
    /// period the verdict is Blocked if the object still differs (never Verified by waiting).
    Pending { message: String },
}

/// The state of the verified view, for the Cluster status (GitOps: the cluster repo; Pull and Push fill what
/// applies to them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStatus {
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
    /// GitOps: the commit Flux last applied to the cluster path (its Kustomization's `lastAppliedRevision`), as
    /// `source::flux_watch` follows it; `None` when Flux is absent or has applied nothing.
    pub flux_applied_commit: Option<String>,
}

/// A live intent as the reconcilers see it: what [`IntentSource::check`] judges.
#[derive(Debug, Clone, Copy)]
pub struct LiveIntent<'a> {
    pub kind: IntentKind,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The typed spec as JSON.
    pub spec: &'a Value,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    /// The spec owners of its managedFields (the stores keep only those: see `compact_managed_fields`).
    pub managed_fields: &'a [ManagedFieldsEntry],
}

impl<'a> LiveIntent<'a> {
    /// What Git provenance compares: everything but the managed fields.
    pub fn object(&self) -> LiveObject<'a> {
        LiveObject {
            kind: self.kind,
            namespace: self.namespace,
            name: self.name,
            spec: self.spec,
            labels: self.labels,
            annotations: self.annotations,
        }
    }
}

/// What the reconcilers ask, whatever the transport (docs/operator.md#modes): is this live intent proven, and
/// where did it come from? Implemented by the Git view (GitOps), the Pull agent's provenance stamps (Pull) and
/// the field-manager check (Push).
pub trait IntentSource: Send + Sync {
    /// Judge a live intent: its typed spec, labels, annotations and the spec owners of its managedFields.
    fn check(&self, live: &LiveIntent<'_>) -> Verdict;

    /// The state of the view (GitOps: the last verified commit).
    fn status(&self) -> SourceStatus;

    /// The connection, for the Cluster object.
    fn report(&self) -> SourceReport {
        git_report(&self.status())
    }
}

/// What a policy change is given to: the Git view (GitOps mode), the Pull agent or the Push source (their
/// control-plane keys).
pub trait PolicyTarget: Send + Sync {
    /// The policy now in force, or why none is (then nothing is trusted).
    fn set_policy(&self, policy: Result<TrustPolicy, String>);
}

/// What the intent source says about its connection, for the Cluster object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceReport {
    /// Connected (and, in Pull mode, Authenticated).
    pub conditions: Vec<Cond>,
    pub connected: bool,
    /// The phase while not connected, when the source knows better than `Disconnected` (Pull: Pending,
    /// Registering, Error).
    pub phase: Option<ClusterPhase>,
    pub last_heartbeat: Option<String>,
    pub observed_token: Option<String>,
    pub credential_status: Option<crate::api::CredentialStatus>,
    pub credentials_secret_ref: Option<crate::api::SecretRef>,
}

/// GitOps mode: connected when the cluster repo was reachable at the last fetch.
pub fn git_report(git: &SourceStatus) -> SourceReport {
    let cond = if git.reachable {
        Cond::new(
            types::CONNECTED,
            "True",
            reasons::ROUND_TRIP_OK,
            "repo reachable",
        )
    } else {
        Cond::new(
            types::CONNECTED,
            "False",
            reasons::REPO_UNREACHABLE,
            git.last_error
                .clone()
                .unwrap_or_else(|| "the cluster repo has not been fetched yet".into()),
        )
    };
    SourceReport {
        conditions: vec![cond],
        connected: git.reachable,
        ..SourceReport::default()
    }
}

/// An outcome worth recording in Git: a note record on the intent commit.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub intent_commit: String,
    pub record: crate::git::notes::NewRecord,
}

/// Where outcomes go: git notes on the intent commit (GitOps); nowhere in Pull and Push mode, whose outcomes
/// reach the control plane as job results and events. Must be idempotent: the same outcome may be offered many times.
pub trait OutcomeSink: Send + Sync {
    fn record(&self, outcome: Outcome);

    /// Resolves once every outcome recorded so far is durable (in the notes writer's pending store), so a
    /// reconciler can let go of the object it came from (release a finalizer) without losing it to a crash.
    fn settled(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Pull and Push mode: outcomes are job results and events the control plane receives; nothing is noted in Git.
pub struct NoOutcomes;

impl OutcomeSink for NoOutcomes {
    fn record(&self, _: Outcome) {}
}
