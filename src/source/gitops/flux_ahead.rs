//! Commits Flux has of the cluster path that the Git view may not have yet.
//!
//! `source::flux_watch` notes every commit Flux's GitRepository or Kustomization names that is not the view, and
//! wakes a fetch. kustomize-controller may apply such a commit before that fetch is verified: an intent that then
//! differs from the view is Flux being ahead of the operator, not a hand edit, and waits (`Verdict::Pending`)
//! instead of being Blocked. A sync that reaches the remote and started after a commit was noted settles it (the
//! branch it fetched holds the commit, if the branch has it at all); an intent that still differs is judged as
//! usual then. A commit is never waited on for longer than [`super::LAG_GRACE`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct FluxAhead {
    noted: Mutex<BTreeMap<String, Instant>>,
    /// The commit Flux last applied to the cluster path, for the status and the gauges.
    applied: Mutex<Option<String>>,
}

impl FluxAhead {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Instant>> {
        self.noted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn set_applied(&self, commit: Option<String>) {
        *self
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = commit;
    }

    pub(super) fn applied(&self) -> Option<String> {
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Flux has these commits (noted once: the first time counts).
    pub(super) fn note(&self, commits: &[String]) {
        let now = Instant::now();
        let mut noted = self.lock();
        for c in commits {
            noted.entry(c.clone()).or_insert(now);
        }
    }

    /// A sync that started at `started` reached the remote: every commit noted before then is fetched (or not on
    /// the branch).
    pub(super) fn settle(&self, started: Instant) {
        self.lock().retain(|_, at| *at > started);
    }

    /// Why an intent that differs from the view waits: a commit Flux has that no finished fetch covers yet.
    pub(super) fn pending(&self) -> Option<String> {
        let mut noted = self.lock();
        noted.retain(|_, at| at.elapsed() < super::LAG_GRACE);
        let commit = noted.keys().next()?;
        Some(format!(
            "Flux has commit {commit} of the cluster path, which the verified view does not have yet; it is being \
             fetched and verified"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_flux_has_is_waited_for_until_a_later_fetch_settles_it() {
        let ahead = FluxAhead::default();
        assert!(ahead.pending().is_none());
        let before = Instant::now();
        ahead.note(&["abc".to_string()]);
        let message = ahead.pending().unwrap();
        assert!(message.contains("abc"), "{message}");
        // A sync that started before Flux named it does not settle it.
        ahead.settle(before);
        assert!(ahead.pending().is_some());
        ahead.settle(Instant::now());
        assert!(ahead.pending().is_none());
    }
}
