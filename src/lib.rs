#![forbid(unsafe_code)]
//! vworkspace-operator: a GitOps operator that acts only on signed, verified intent.
//!
//! Data flows intent → verified → rendered → applied → reported:
//! [`intent`] finds manifests, [`git`] verifies where they came from, [`validate`] and [`render`] are pure,
//! and the controller and report sinks do the I/O; [`hydrate`] commits verified renderings back to Git.

pub mod admin;
pub mod cli;
pub mod controller;
pub mod k8s;
pub mod metrics;
pub mod report;
pub mod source;
pub mod trace;
pub mod webhook;

// The pure core (crates/core), at the same paths as before it was a crate of its own.
pub use vworkspace_core::{
    api, charts, escape, git, hydrate, intent, par, render, schema, secrets, tree, validate,
};

/// The allocator of every binary built on this crate (the operator, its tests and benchmarks alike):
/// rendering and the controller allocate many small JSON values, and mimalloc serves them in about two thirds
/// of the time glibc malloc takes (measured in docs/render.md). The feature `system-allocator` leaves the
/// system's malloc in place, for heap profilers that intercept malloc (heaptrack; docs/operator.md).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
