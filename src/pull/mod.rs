//! Pull mode (docs/pull.md): the operator long-polls the control plane over HTTPS for jobs.
//!
//! The pure core lives here: the wire types ([`job`]), RFC 8785 canonical JSON ([`jcs`]) and signed jobs
//! ([`signing`]).

pub mod jcs;
pub mod job;
pub mod signing;
