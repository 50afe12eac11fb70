//! Test support shared by the integration tests: the project's test bed (testbed/) and real git fixtures.
#![allow(dead_code)]

pub mod gitfix;
pub mod testbed;
pub mod stack;
pub mod receiver;
pub mod manifests;
