//! Test support shared by the integration tests: the project's test bed (testbed/) and real git fixtures.
#![allow(dead_code)]

pub mod chart;
pub mod control_plane;
pub mod cosign;
pub mod gitfix;
pub mod helm_standin;
pub mod manifests;
pub mod node;
pub mod operator;
pub mod rbac;
pub mod receiver;
pub mod stack;
pub mod testbed;
