//! The operator: reconcilers for ApplicationInstance, Operation and Cluster, and the process that runs them.

pub mod approval;
pub mod status;
