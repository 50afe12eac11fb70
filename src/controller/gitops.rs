//! The controller's view of Git: for each intent, whether its live spec is the manifest of a verified commit.
//!
//! [`IntentSource`] is what the reconcilers ask; [`crate::controller::repo_source::RepoSource`] answers from a
//! fetched, verified clone of the cluster repo.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::intent::IntentKind;

/// Where an intent stands with respect to verified Git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The live spec equals the manifest in the verified revision; `intent_commit` last changed it.
    Verified {
        intent_commit: String,
        revision: String,
    },
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

/// What the reconcilers need from Git.
pub trait IntentSource: Send + Sync {
    /// Check an intent against the newest verified revision.
    fn check(
        &self,
        kind: IntentKind,
        namespace: &str,
        name: &str,
        spec: &Value,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Verdict;

    /// The state of the view.
    fn status(&self) -> GitStatus;
}
