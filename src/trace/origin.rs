//! Where an intent came from, for `trace`: read from what the operator wrote on it (its `Verified` or `Blocked`
//! condition, the Pull stamp, the Push field manager) and the Cluster object, and — given the cluster repo — the
//! commit itself (subject, author, its signature judged under the trust policy) and the notes on it.

use serde::Serialize;
use serde_json::Value;

use super::{CondInfo, NoteInfo, RepoOptions, Target, str_at};
use crate::git::notes::auth::NotesTrust;
use crate::git::policy::TrustPolicy;
use crate::git::repo::Repo;

/// Where the intent came from, by connectivity mode.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum OriginInfo {
    /// A signed commit in the cluster repo.
    #[serde(rename = "gitops", rename_all = "camelCase")]
    GitOps {
        /// The intent commit (verified), or the refused commit the refusal names.
        commit: Option<String>,
        /// `verified: …` or `refused: <reason>: <message>`.
        verdict: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        author: Option<String>,
        /// The commit's signature judged under the trust policy (`--policy`), or why it was not.
        signature: String,
        /// The Cluster's newest verified commit, its signer and time.
        #[serde(skip_serializing_if = "Option::is_none")]
        last_verified: Option<String>,
    },
    /// A signed job long-polled from the control plane.
    #[serde(rename = "pull", rename_all = "camelCase")]
    Pull {
        job_id: Option<String>,
        /// The control-plane key that signed the job (`-`: unsigned).
        signer: Option<String>,
        /// The job's idempotency key and when the agent received it, from the applied-job store (when readable).
        #[serde(skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        received: Option<String>,
        verdict: String,
    },
    /// Applied by the control plane itself.
    #[serde(rename = "push", rename_all = "camelCase")]
    Push {
        field_manager: Option<String>,
        /// Whether the spec carries the control plane's signature annotation.
        signature_annotation: bool,
        verdict: String,
    },
    /// The operator has not judged the intent yet.
    #[serde(rename = "unknown")]
    Unknown { verdict: String },
}

const PULL_STAMP: &str = "pull.vworkspace.io/provenance";
const PUSH_SIGNATURE: &str = "push.vworkspace.io/signature";

/// The origin of `intent` from its conditions, annotations and the Cluster object; with a repo, the commit.
pub(super) fn origin(
    intent: &Value,
    cluster: Option<&Value>,
    conditions: &[CondInfo],
    repo: &RepoOptions,
    cluster_id: &str,
) -> OriginInfo {
    let find = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let verdict = match (find("Verified"), find("Blocked")) {
        (_, Some(b)) => format!("refused: {}: {}", b.reason, b.message),
        (Some(v), None) => format!("verified: {}", v.message),
        (None, None) => "not judged yet (no Verified or Blocked condition)".to_string(),
    };
    let verified_reason = find("Verified").map(|c| c.reason.as_str()).unwrap_or("");
    let annotation = |k: &str| {
        intent
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
    };
    let mode = cluster
        .map(|c| str_at(c, "/spec/connectivityMode"))
        .unwrap_or("");
    if verified_reason == "JobVerified" || annotation(PULL_STAMP).is_some() || mode == "pull" {
        let stamp: Vec<&str> = annotation(PULL_STAMP).unwrap_or("").split(' ').collect();
        return OriginInfo::Pull {
            job_id: stamp.get(1).map(|s| s.to_string()),
            signer: stamp.get(2).map(|s| s.to_string()),
            idempotency_key: None,
            received: None,
            verdict,
        };
    }
    if verified_reason == "FieldManagerVerified" || mode == "push" {
        return OriginInfo::Push {
            field_manager: spec_manager(intent),
            signature_annotation: annotation(PUSH_SIGNATURE).is_some(),
            verdict,
        };
    }
    if verified_reason.is_empty()
        && find("Blocked").is_none()
        && mode.is_empty()
        && cluster.is_none()
    {
        return OriginInfo::Unknown { verdict };
    }
    let commit = commit_of(intent, conditions);
    let (subject, author, signature) = match (&commit, &repo.repo) {
        (Some(c), Some(path)) => read_commit(path, repo.policy.as_deref(), c),
        (_, None) => (
            None,
            None,
            "not checked: give --repo (and --policy) to judge it".into(),
        ),
        (None, Some(_)) => (None, None, "no commit named".into()),
    };
    let last_verified = cluster.and_then(|c| {
        let commit = str_at(c, "/status/lastVerifiedCommit");
        (!commit.is_empty()).then(|| {
            format!(
                "{commit} signed by {} at {} (Cluster {cluster_id})",
                str_at(c, "/status/lastVerifiedSigner"),
                str_at(c, "/status/lastVerifiedTime")
            )
        })
    });
    OriginInfo::GitOps {
        commit,
        verdict,
        subject,
        author,
        signature,
        last_verified,
    }
}

/// The applied-job store's entry of `job_id` (Pull mode: the ConfigMap beside the agent's credentials):
/// (idempotency key, received). The store maps the idempotency key (or the job id) to the job.
pub(super) fn applied_job(store: &Value, job_id: &str) -> Option<(String, String)> {
    let text = str_at(store, "/data/applied-jobs.json");
    let jobs: Value = serde_json::from_str(text).ok()?;
    jobs.get("jobs")?
        .as_object()?
        .iter()
        .find_map(|(key, entry)| {
            (str_at(entry, "/id") == job_id)
                .then(|| (key.clone(), str_at(entry, "/received").to_string()))
        })
}

/// The field manager that owns the intent's spec (Push mode).
fn spec_manager(intent: &Value) -> Option<String> {
    intent
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|m| m.pointer("/fieldsV1/f:spec").is_some())
        .map(|m| str_at(m, "/manager").to_string())
}

/// The intent commit (the Verified message, an Operation's `status.intentCommit`) or, when Blocked, the commit
/// the refusal names last (the refused one: a refusal names the verified revision first, then the commit it
/// does not trust).
fn commit_of(intent: &Value, conditions: &[CondInfo]) -> Option<String> {
    let blocked = conditions
        .iter()
        .find(|c| c.type_ == "Blocked" && c.status == "True");
    let verified = conditions
        .iter()
        .find(|c| c.type_ == "Verified" && c.status == "True");
    blocked
        .and_then(|c| shas(&c.message).last().map(|s| s.to_string()))
        .or_else(|| verified.and_then(|c| shas(&c.message).first().map(|s| s.to_string())))
        .or_else(|| {
            Some(str_at(intent, "/status/intentCommit").to_string()).filter(|s| !s.is_empty())
        })
}

/// The 40- or 64-digit lower-case hex words of a message (commit ids), in order.
fn shas(message: &str) -> Vec<&str> {
    message
        .split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| (w.len() == 40 || w.len() == 64) && w.bytes().all(|b| !b.is_ascii_uppercase()))
        .collect()
}

/// The commit's subject and author, and its signature judged under the policy (when given).
fn read_commit(
    path: &std::path::Path,
    policy: Option<&std::path::Path>,
    commit: &str,
) -> (Option<String>, Option<String>, String) {
    let repo = match Repo::open(path) {
        Ok(r) => r,
        Err(e) => {
            return (
                None,
                None,
                format!("not checked: cannot open {}: {e}", path.display()),
            );
        }
    };
    let id = match repo.resolve_commit(commit) {
        Ok(id) => id,
        Err(e) => {
            return (
                None,
                None,
                format!("not checked: {commit} is not in the repo: {e}"),
            );
        }
    };
    let mut buf = Vec::new();
    let (subject, author) = match repo.read(id, &mut buf) {
        Ok(Some(data)) => {
            let text = String::from_utf8_lossy(data.data);
            let subject = text
                .split_once("\n\n")
                .and_then(|(_, body)| body.lines().next())
                .map(str::to_string);
            let author = text
                .lines()
                .find_map(|l| l.strip_prefix("author "))
                .map(|a| a.rsplitn(3, ' ').last().unwrap_or(a).to_string());
            (subject, author)
        }
        _ => (None, None),
    };
    let signature = match policy.map(TrustPolicy::load) {
        None => "not checked: give --policy to judge the signature".into(),
        Some(Err(e)) => format!("not checked: {e}"),
        Some(Ok(policy)) => {
            let v = crate::git::verify::verify_commit(&repo, id, &policy);
            let who = [
                v.signer.as_deref(),
                v.fingerprint.as_deref(),
                v.issuer.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            match (&v.reason, v.ok) {
                (None, true) => format!(
                    "verified: {} {who}",
                    v.kind.map(|k| format!("{k:?}")).unwrap_or_default()
                ),
                (Some(f), _) => format!("refused: {}: {}", f.reason, f.message),
                (None, false) => "refused".into(),
            }
        }
    };
    (subject, author, signature)
}

/// The notes on `commit` about the traced intent (judged with the policy's `notesKeys`).
pub(super) fn notes(
    repo: &RepoOptions,
    cluster_id: &str,
    commit: &str,
    target: &Target,
    unreadable: &mut Vec<String>,
) -> Vec<NoteInfo> {
    let Some(path) = &repo.repo else {
        return Vec::new();
    };
    let read = || -> anyhow::Result<Vec<NoteInfo>> {
        let trust = match &repo.policy {
            Some(p) => TrustPolicy::load(p)?.notes_keys().clone(),
            None => NotesTrust::default(),
        };
        let r = Repo::open(path)?;
        let id = r.resolve_commit(commit)?;
        let refs = vec![crate::git::notes::notes_ref(cluster_id)?];
        let judged = crate::git::notes::judge::read_judged(r.gix(), &refs, id, &trust)?;
        Ok(judged
            .into_iter()
            .flat_map(|n| n.records)
            .filter(|j| {
                j.record.kind == target.kind
                    && j.record.namespace == target.namespace
                    && j.record.name == target.name
            })
            .map(|j| NoteInfo {
                commit: commit.to_string(),
                outcome: j.record.outcome,
                reason: j.record.reason,
                message: j.record.message,
                generation: j.record.generation,
                authenticity: match &j.verification.problem {
                    Some(p) => format!("{} ({p})", j.verification.status.as_str()),
                    None => j.verification.status.as_str().to_string(),
                },
                child_refs: j.record.child_refs,
            })
            .collect())
    };
    read().unwrap_or_else(|e| {
        unreadable.push(format!("notes on {commit}: {e:#}"));
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_ids_are_found_in_messages() {
        let (a, b) = (
            "0123456789abcdef0123456789abcdef01234567",
            "89abcdef0123456789abcdef0123456789abcdef",
        );
        assert_eq!(shas(&format!("intent commit {a}")), [a]);
        assert_eq!(
            shas(&format!(
                "at verified commit {a}; the newer head {b} is not trusted: commit {b} …"
            )),
            [a, b, b]
        );
        assert!(shas("nothing here, deadbeef").is_empty());
        assert!(shas(&a.to_uppercase()).is_empty());
    }
}
