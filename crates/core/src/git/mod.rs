//! Everything Git: reading repos without a work tree, commit signature verification, the trust policy,
//! provenance, and git notes as the audit trail. Nothing here imports the kube client.

pub mod bounded;
pub mod bounds;
pub mod commit;
pub mod first_seen;
pub mod gitsign;
pub mod notes;
pub mod openpgp;
pub mod pack;
pub mod policy;
pub mod provenance;
pub mod remote;
pub mod repo;
pub mod select;
pub mod sigcheck;
pub mod sign;
pub mod ssh;
pub mod verify;
pub mod write;

/// A commit id cut to 7 characters for reports (the whole id when it is shorter).
pub fn short_id(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
