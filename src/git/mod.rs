//! Everything Git: reading repos without a work tree, commit signature verification, the trust policy,
//! provenance, and git notes as the audit trail. Nothing here imports the kube client.

pub mod gitsign;
pub mod repo;
