//! Test support shared by the integration tests: the real API server from ../shared/envtest.
#![allow(dead_code)]

pub mod envtest;
pub mod gitfix;
