//! The Kubernetes plumbing below the controllers, the admission webhook and the Pull agent, which all use it:
//! server-side apply with a discovery cache ([`apply`]) and watches that keep a store ([`watch`]). It knows
//! nothing of intents, sources or reconcilers.

pub mod apply;
pub mod watch;
