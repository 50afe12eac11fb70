//! The edges of a hydrate pass that the render alone cannot see: an output about to become empty, and the
//! namespaces this hydrate may write for.
//!
//! - **Empty output.** Flux prunes what leaves its source: replacing a non-empty rendering with an empty one
//!   (a wrong `--repo-path`, a deleted cluster directory) would uninstall every release. It is refused
//!   unless `--allow-empty` is given.
//! - **Namespaces.** The reserved namespaces (`kube-*`, `flux-system`, `vworkspace-system`) are refused for
//!   every intent by the validation `render`, the webhook and the reconcilers share
//!   ([`crate::validate::names::reserved_namespace`]); a Namespace manifest in the tree without the gate
//!   label is refused by the admission policy's rule (`NamespaceNotGated`). Hydrate is offline and cannot
//!   read the cluster's Namespaces, so `--namespaces` names the ones it may render for; every other
//!   namespace is then refused here.

use std::collections::BTreeMap;

use crate::intent::Problem;
use crate::tree::TreeRender;

/// Hydrate's own guards (`--allow-empty`, `--namespaces`, `--allow-chart-host`).
#[derive(Debug, Clone, Default)]
pub struct Guards {
    /// Allow an output commit that empties a non-empty output.
    pub allow_empty: bool,
    /// The namespaces intents may be in; empty: any namespace that is not reserved.
    pub namespaces: Vec<String>,
    /// Chart hosts allowed although internal ([`crate::validate::hosts`]).
    pub allowed_chart_hosts: Vec<String>,
}

/// The refusal of an output that would empty a non-empty one, naming the intent path and the output.
pub fn refuse_empty<D, C>(
    guards: &Guards,
    desired: &BTreeMap<String, D>,
    current: &BTreeMap<String, C>,
    intent_path: &str,
    output: &str,
) -> Result<(), super::HydrateError> {
    if guards.allow_empty || !desired.is_empty() || current.is_empty() {
        return Ok(());
    }
    Err(super::HydrateError::EmptyOutput {
        intent_path: intent_path.to_string(),
        output: output.to_string(),
        files: current.len(),
    })
}

/// A problem for every rendered intent outside `--namespaces` (none when the list is empty).
pub fn namespace_problems(guards: &Guards, result: &TreeRender) -> Vec<Problem> {
    if guards.namespaces.is_empty() {
        return Vec::new();
    }
    result
        .intents
        .iter()
        .filter(|i| !guards.namespaces.contains(&i.key.namespace))
        .map(|i| {
            Problem::new(
                &i.location,
                &i.key,
                "metadata.namespace",
                format!(
                    "NamespaceNotGated: {} is not among hydrate's --namespaces ({})",
                    i.key.namespace,
                    guards.namespaces.join(", ")
                ),
            )
        })
        .collect()
}
