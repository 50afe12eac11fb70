//! Pull mode (docs/pull.md): the operator long-polls the control plane over HTTPS for jobs.
//!
//! The pure core: the wire types ([`job`]) read as I-JSON ([`ijson`]), RFC 8785 canonical JSON ([`jcs`]), signed jobs ([`signing`]),
//! provenance stamps ([`provenance`]) and the applied-job store's rules ([`store`]). The I/O: the agent API
//! client ([`client`]) and the agent ([`agent`]) that registers, polls, applies and reports.

pub mod admit;
pub mod agent;
pub mod client;
pub mod ijson;
pub mod jcs;
pub mod job;
pub mod provenance;
pub mod signing;
pub mod source;
pub mod store;
