//! The Kubernetes plumbing below the controllers, the admission webhook and the Pull agent, which all use it:
//! server-side apply with a discovery cache ([`apply`]), watches that keep a store ([`watch`]) and the reading
//! of the answers to the operator's own writes ([`answer`]). It knows nothing of intents, sources or
//! reconcilers.

pub mod answer;
pub mod apply;
pub mod watch;
