//! Which revision of a branch may be acted on: the newest one whose intent changes all verify under the
//! trust policy. The controller, `hydrate` and the demo choose the same way.
//!
//! - `range` mode: every commit between the last revision acted on and the branch head that touches the
//!   intent path is verified (both sides of merges); the target is the newest commit of the head's
//!   first-parent chain none of whose ancestors in the range was refused. Nothing from the first refused
//!   commit on is acted on (fail closed); what came before it still is.
//! - `head` mode: only the newest commit that touches the path must verify; when it is refused, the newest
//!   older one that verifies is the target.

use std::collections::{HashMap, HashSet};

use gix::ObjectId;

use crate::git::policy::{Mode, TrustPolicy};
use crate::git::repo::{Repo, RepoError};
use crate::git::verify::{Verdict, Verifier, VerifyError};

/// A range could not be walked or verified.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{what}: {message}")]
    Walk { what: String, message: String },
    /// A commit in the range is over a bound (crate::git::bounds): refused unread.
    #[error("{what}: {source}")]
    Refused {
        what: String,
        source: crate::git::bounds::Exceeded,
    },
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

fn walk_err(what: String, e: RepoError) -> SelectError {
    match e {
        RepoError::Exceeded(source) => SelectError::Refused { what, source },
        e => SelectError::Walk {
            what,
            message: e.to_string(),
        },
    }
}

/// The intent commits sorted out by the verification.
#[derive(Debug, Default)]
pub struct Selection {
    /// The revision to act on: the newest whose intent changes all verify (`None`: none does, and there is
    /// no earlier verified base).
    pub target: Option<ObjectId>,
    /// Verified commits taken in by `target`, newest first.
    pub processed: Vec<Verdict>,
    /// Refused commits, newest first.
    pub refused: Vec<Verdict>,
    /// Verified, but not taken in (after a refused commit).
    pub waiting: Vec<Verdict>,
    /// Position of each checked commit in the verification walk (newest first).
    pub order: HashMap<String, usize>,
}

/// The id of a verdict's commit.
pub fn oid_of(v: &Verdict) -> Option<ObjectId> {
    ObjectId::from_hex(v.sha.as_bytes()).ok()
}

/// The commits reachable from `head` and not from `base` with their parents, and the first-parent chain
/// from `head` within them (newest first).
pub type RangeGraph = (HashMap<ObjectId, Vec<ObjectId>>, Vec<ObjectId>);

pub fn range_graph(
    repo: &Repo,
    base: Option<ObjectId>,
    head: ObjectId,
) -> Result<RangeGraph, SelectError> {
    let what = || format!("walking {head} (excluding {base:?})");
    let walk = repo
        .walk_newest_first([head], base)
        .map_err(|e| walk_err(what(), e))?;
    let mut parents = HashMap::new();
    for info in walk {
        let info = info.map_err(|e| walk_err(what(), e))?;
        parents.insert(info.id, info.parent_ids.iter().copied().collect::<Vec<_>>());
    }
    let mut chain = Vec::new();
    let mut at = Some(head);
    while let Some(c) = at.filter(|c| parents.contains_key(c)) {
        chain.push(c);
        at = parents.get(&c).and_then(|ps| ps.first().copied());
    }
    Ok((parents, chain))
}

/// Whether `commit` changes `path` against one of its parents (or adds it, for a root commit).
pub fn touches(repo: &Repo, commit: ObjectId, parents: &[ObjectId], path: &str) -> bool {
    let Ok(mine) = repo.entry_id(commit, path) else {
        return true;
    };
    if parents.is_empty() {
        return mine.is_some();
    }
    parents
        .iter()
        .any(|p| !repo.entry_id(*p, path).is_ok_and(|theirs| theirs == mine))
}

/// Verify what is new between `base` (the last revision acted on, excluded) and `head` for changes under
/// `path`, and choose the revision to act on (see the module documentation). `first_seen`: when each commit
/// was first seen (the operator's record, [`crate::git::first_seen`]); SSH key validity is then judged up
/// to that time too.
pub fn select(
    repo: &Repo,
    policy: &TrustPolicy,
    path: &str,
    base: Option<ObjectId>,
    head: ObjectId,
    first_seen: Option<&HashMap<ObjectId, i64>>,
) -> Result<Selection, SelectError> {
    let verifier = || {
        let v = Verifier::new(repo, policy);
        match first_seen {
            Some(seen) => v.first_seen(seen),
            None => v,
        }
    };
    let (parents, chain) = range_graph(repo, base, head)?;
    if chain.is_empty() {
        return Ok(Selection {
            target: Some(head),
            ..Default::default()
        });
    }
    let mut sel = Selection::default();
    match policy.mode {
        Mode::Range => {
            let report = verifier().range(base, head, Some(path), Mode::Range)?;
            // Verdicts outside the range graph (possible with skewed commit dates) are history that was
            // acted on already.
            let verdicts: Vec<Verdict> = report
                .verdicts
                .into_iter()
                .filter(|v| oid_of(v).is_some_and(|id| parents.contains_key(&id)))
                .collect();
            sel.order = verdicts
                .iter()
                .enumerate()
                .map(|(i, v)| (v.sha.clone(), i))
                .collect();
            let bad: HashSet<ObjectId> = verdicts
                .iter()
                .filter(|v| !v.ok)
                .filter_map(oid_of)
                .collect();
            sel.target = select_range(&chain, &parents, &bad)
                .map(|i| chain[i])
                .or(base);
            let taken = sel
                .target
                .map(|t| reachable(t, &parents))
                .unwrap_or_default();
            for v in verdicts {
                if !v.ok {
                    sel.refused.push(v);
                } else if oid_of(&v).is_some_and(|id| taken.contains(&id)) {
                    sel.processed.push(v);
                } else {
                    sel.waiting.push(v);
                }
            }
        }
        Mode::Head => {
            // Only the newest commit that changed the intent path must be signed; a refused one leaves
            // the newest older one that verifies.
            let mut verifier = verifier();
            let candidates: Vec<ObjectId> = chain
                .iter()
                .copied()
                .filter(|c| {
                    touches(
                        repo,
                        *c,
                        parents.get(c).map(Vec::as_slice).unwrap_or(&[]),
                        path,
                    )
                })
                .collect();
            sel.target = if candidates.is_empty() {
                Some(head)
            } else {
                base
            };
            for (i, c) in candidates.iter().enumerate() {
                let v = verifier.commit(*c);
                sel.order.insert(v.sha.clone(), i);
                if v.ok {
                    sel.target = Some(if i == 0 { head } else { *c });
                    sel.processed.push(v);
                    break;
                }
                sel.refused.push(v);
            }
        }
    }
    Ok(sel)
}

/// The commits reachable from `from` (itself included) through `parents`, which holds only the commits of
/// the range: a parent outside the map ends the walk there.
pub fn reachable(from: ObjectId, parents: &HashMap<ObjectId, Vec<ObjectId>>) -> HashSet<ObjectId> {
    let mut seen = HashSet::new();
    let mut stack = vec![from];
    while let Some(id) = stack.pop() {
        if !parents.contains_key(&id) || !seen.insert(id) {
            continue;
        }
        if let Some(ps) = parents.get(&id) {
            stack.extend(ps.iter().copied());
        }
    }
    seen
}

/// `range` mode: the position in `chain` (the first-parent chain of the branch head down to the last
/// hydrated commit, newest first) of the newest commit that has no refused commit (`bad`) among its
/// ancestors in the range (itself included). `parents` holds the parents of every commit of the range.
/// `None` when every commit of the chain has a refused ancestor.
///
/// Having a refused ancestor is inherited by descendants, so along the chain the answer is monotone: once a
/// commit is clean, all older ones are.
pub fn select_range(
    chain: &[ObjectId],
    parents: &HashMap<ObjectId, Vec<ObjectId>>,
    bad: &HashSet<ObjectId>,
) -> Option<usize> {
    if bad.is_empty() {
        return (!chain.is_empty()).then_some(0);
    }
    // tainted(c) = bad(c) || any parent tainted; iterative post-order over the range.
    let mut tainted: HashMap<ObjectId, bool> = HashMap::new();
    let mut result = None;
    for (i, &c) in chain.iter().enumerate() {
        let mut stack = vec![(c, false)];
        while let Some((id, expanded)) = stack.pop() {
            if tainted.contains_key(&id) {
                continue;
            }
            let ps: &[ObjectId] = parents.get(&id).map(Vec::as_slice).unwrap_or(&[]);
            if expanded {
                let t = bad.contains(&id)
                    || ps.iter().any(|p| tainted.get(p).copied().unwrap_or(false));
                tainted.insert(id, t);
            } else {
                stack.push((id, true));
                for p in ps {
                    if parents.contains_key(p) && !tainted.contains_key(p) {
                        stack.push((*p, false));
                    }
                }
            }
        }
        if !tainted.get(&c).copied().unwrap_or(true) {
            result = Some(i);
            break;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    /// ```text
    ///   1 - 2 - 3 - 6 - 7      (first-parent chain, 7 newest)
    ///        \     /
    ///         4 - 5
    /// ```
    #[test]
    fn range_selection_stops_before_a_refused_ancestor() {
        let parents: HashMap<ObjectId, Vec<ObjectId>> = HashMap::from([
            (oid(1), vec![]),
            (oid(2), vec![oid(1)]),
            (oid(3), vec![oid(2)]),
            (oid(4), vec![oid(2)]),
            (oid(5), vec![oid(4)]),
            (oid(6), vec![oid(3), oid(5)]),
            (oid(7), vec![oid(6)]),
        ]);
        let chain = [oid(7), oid(6), oid(3), oid(2), oid(1)];
        let none = HashSet::new();
        assert_eq!(select_range(&chain, &parents, &none), Some(0));
        // A refused commit on the merged side: the merge and everything after it wait.
        assert_eq!(
            select_range(&chain, &parents, &HashSet::from([oid(4)])),
            Some(2)
        );
        // The head itself refused.
        assert_eq!(
            select_range(&chain, &parents, &HashSet::from([oid(7)])),
            Some(1)
        );
        // The first commit refused: nothing can be rendered.
        assert_eq!(
            select_range(&chain, &parents, &HashSet::from([oid(1)])),
            None
        );
        assert_eq!(select_range(&[], &parents, &none), None);
        let r = reachable(oid(6), &parents);
        assert!(r.contains(&oid(4)) && r.contains(&oid(1)) && !r.contains(&oid(7)));
    }
}
