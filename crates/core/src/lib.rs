#![forbid(unsafe_code)]
//! The pure core of vworkspace-operator: what intent is and how it is proven, validated and rendered, with no
//! Kubernetes client (the operator crate does the I/O with the cluster).
//!
//! [`api`] holds the CRD types and their vocabulary; [`charts`] the signatures charts must carry; [`intent`] finds manifests; [`git`] reads repos and verifies
//! where they came from (signatures, trust policy, provenance, notes); [`validate`] holds every API rule and
//! [`render`] the template engine; [`tree`] validates and renders a tree of manifests; [`hydrate`] commits
//! verified renderings back to Git.

pub mod api;
pub mod charts;
pub mod escape;
pub mod git;
pub mod hydrate;
pub mod intent;
pub mod par;
pub mod pem;
pub mod render;
pub mod schema;
pub mod secrets;
pub mod tree;
pub mod validate;
