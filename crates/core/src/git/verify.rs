//! Commit verification: one commit ([`verify_commit`]) or the history the operator is about to trust
//! ([`verify_range`]).
//!
//! A verdict is computed from the raw object bytes: the strict parser ([`super::commit`]) produces the signed
//! payload exactly as git does, and the trust policy checks the signature over it. Anything unexpected is a
//! rejected verdict, never an accepted one (fail closed).
//!
//! In `range` mode, every commit reachable from the target but not from the base that touches the path is
//! checked — both sides of merges are walked, and a commit touches the path when its tree at the path (entry
//! id and mode) differs from any parent's, so a merge is checked whenever its result differs from one of its
//! parents there. A commit that cannot be parsed strictly is always reported. In `head` mode only the target
//! is checked. Signed tags play no part: a revision is peeled to its commit, and the commit must be signed.

use std::collections::HashMap;

use gix::ObjectId;
use gix::hash::Kind;
use serde::Serialize;

use super::commit::{self, ParsedCommit};
use super::policy::{Mode, SignatureKind, TrustPolicy};
use super::repo::{Repo, RepoError};
use super::sigcheck::{Failure, Reason, Span, fmt_time};

/// The verdict on one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub sha: String,
    pub ok: bool,
    pub kind: Option<SignatureKind>,
    /// Who signed: the matching SSH principal, OpenPGP user ID, or gitsign identity (SAN email or URI).
    pub signer: Option<String>,
    /// The OIDC issuer of a gitsign identity.
    pub issuer: Option<String>,
    /// The signing key: `SHA256:…` for SSH, the upper-case hex fingerprint for OpenPGP, `sha256:<hex>` of
    /// the certificate for gitsign.
    pub fingerprint: Option<String>,
    /// Why the commit is not trusted; `None` when `ok`.
    pub reason: Option<Failure>,
}

impl Verdict {
    fn rejected(sha: ObjectId, failure: Failure) -> Self {
        Self {
            sha: sha.to_string(),
            ok: false,
            kind: None,
            signer: None,
            issuer: None,
            fingerprint: None,
            reason: Some(failure),
        }
    }
}

/// The verdicts for a range, in walk order (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RangeReport {
    pub mode: Mode,
    pub base: Option<String>,
    pub target: String,
    pub path: Option<String>,
    pub verdicts: Vec<Verdict>,
}

impl RangeReport {
    /// True when every checked commit verified.
    pub fn ok(&self) -> bool {
        self.verdicts.iter().all(|v| v.ok)
    }
}

/// A range could not be walked (as opposed to: a commit did not verify).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("path {path:?}: {reason}")]
    BadPath { path: String, reason: &'static str },
}

/// Verify a raw commit object (the bytes after the object header). Pure.
/// Returns the verdict and, when the object parsed, the parsed commit.
pub fn verify_commit_object(
    sha: ObjectId,
    data: &[u8],
    hash_kind: Kind,
    policy: &TrustPolicy,
    now: i64,
) -> (Verdict, Option<ParsedCommit>) {
    let parsed = match commit::parse(data, hash_kind) {
        Ok(p) => p,
        Err(e) => return (Verdict::rejected(sha, parse_failure(&e)), None),
    };
    let verdict = verdict_for(sha, &parsed, policy, now, None);
    (verdict, Some(parsed))
}

/// The rejection for a commit the strict parser refused.
fn parse_failure(e: &commit::CommitError) -> Failure {
    let reason = match e {
        commit::CommitError::MultipleSignatures(_) => Reason::MultipleSignatures,
        _ => Reason::MalformedCommit,
    };
    Failure::new(reason, e.to_string())
}

/// The verdict on a parsed commit. `seen`: when the verifier first saw it (the operator's record), `None`
/// offline; SSH key validity is judged over the span from the committer time to then.
fn verdict_for(
    sha: ObjectId,
    parsed: &ParsedCommit,
    policy: &TrustPolicy,
    now: i64,
    seen: Option<i64>,
) -> Verdict {
    let Some(signature) = &parsed.signature else {
        return Verdict::rejected(
            sha,
            Failure::new(Reason::Unsigned, "the commit is not signed"),
        );
    };
    let (kind, check) = policy.check(
        signature,
        &parsed.payload,
        &parsed.committer.email,
        Span {
            from: parsed.committer.time,
            to: seen.unwrap_or(parsed.committer.time),
        },
        now,
    );
    Verdict {
        sha: sha.to_string(),
        ok: check.failure.is_none(),
        kind,
        signer: check.signer,
        issuer: check.issuer,
        fingerprint: check.fingerprint,
        reason: check.failure,
    }
}

/// The current time in seconds since the epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Verify one commit under `policy`, now.
pub fn verify_commit(repo: &Repo, id: ObjectId, policy: &TrustPolicy) -> Verdict {
    Verifier::new(repo, policy).commit(id)
}

/// Verify what `mode` requires between `base` (the last verified commit, excluded) and `target`, for
/// changes under `path` (the whole tree when `None`), now.
pub fn verify_range(
    repo: &Repo,
    base: Option<ObjectId>,
    target: ObjectId,
    path: Option<&str>,
    mode: Mode,
    policy: &TrustPolicy,
) -> Result<RangeReport, VerifyError> {
    Verifier::new(repo, policy).range(base, target, path, mode)
}

/// A path's entry in a tree: mode and object id; `None` when absent.
type PathEntry = Option<(gix::objs::tree::EntryMode, ObjectId)>;

/// A commit met during a walk.
struct Node {
    /// Committer time; malformed or unreadable commits sort last.
    time: i64,
    tree: Option<ObjectId>,
    /// Parents from the strict parse; empty when the commit could not be parsed.
    parents: Vec<ObjectId>,
    /// The parsed commit until it is verified (then dropped to bound memory).
    parsed: Option<ParsedCommit>,
    /// Why the commit cannot be verified at all (unreadable, malformed).
    failure: Option<Failure>,
    /// Reachable from the base.
    hidden: bool,
    in_queue: bool,
    popped: bool,
}

/// Read and strictly parse commit `id` into a walk node.
fn read_node(repo: &Repo, buf: &mut Vec<u8>, id: ObjectId) -> Node {
    let mut node = Node {
        time: i64::MIN,
        tree: None,
        parents: Vec::new(),
        parsed: None,
        failure: None,
        hidden: false,
        in_queue: false,
        popped: false,
    };
    let kind = repo.gix().object_hash();
    let unreadable = |m: String| Failure::new(Reason::UnreadableObject, m);
    let data = match repo.read(id, buf) {
        Ok(Some(d)) => d,
        Ok(None) => {
            node.failure = Some(unreadable(format!("object {id} is missing")));
            return node;
        }
        Err(RepoError::Exceeded(e)) => {
            node.failure = Some(Failure::new(Reason::BoundExceeded, e.to_string()));
            return node;
        }
        Err(e) => {
            node.failure = Some(unreadable(format!("cannot read object {id}: {e}")));
            return node;
        }
    };
    if data.kind != gix::object::Kind::Commit {
        node.failure = Some(unreadable(format!(
            "object {id} is a {}, not a commit",
            data.kind
        )));
        return node;
    }
    match commit::parse(data.data, kind) {
        Ok(parsed) => {
            node.time = parsed.committer.time;
            node.tree = Some(parsed.tree);
            node.parents = parsed.parents.clone();
            node.parsed = Some(parsed);
        }
        Err(e) => node.failure = Some(parse_failure(&e)),
    }
    node
}

/// A commit of a range to judge: already judged (it cannot be read, or its date is refused), or parsed.
enum ToJudge {
    Done(Verdict),
    Parsed(Box<ParsedCommit>, Option<i64>),
}

/// Verification with caches: a walk reads and parses each commit object once, and tree lookups
/// are cached by (depth, tree id).
pub struct Verifier<'a> {
    repo: &'a Repo,
    policy: &'a TrustPolicy,
    now: i64,
    buf: Vec<u8>,
    nodes: HashMap<ObjectId, Node>,
    entries: HashMap<(usize, ObjectId), PathEntry>,
    first_seen: Option<&'a HashMap<ObjectId, i64>>,
}

impl<'a> Verifier<'a> {
    pub fn new(repo: &'a Repo, policy: &'a TrustPolicy) -> Self {
        Self {
            repo,
            policy,
            now: now(),
            buf: Vec::new(),
            nodes: HashMap::new(),
            entries: HashMap::new(),
            first_seen: None,
        }
    }

    /// Judge SSH key validity up to the time each commit was first seen (the operator's record, see
    /// [`super::first_seen`]), not only at its committer time, which its signer chose. A commit missing
    /// from `seen` is judged as first seen now.
    pub fn first_seen(mut self, seen: &'a HashMap<ObjectId, i64>) -> Self {
        self.first_seen = Some(seen);
        self
    }

    /// When `id` was first seen: `None` offline (judged at the committer time alone).
    fn seen(&self, id: ObjectId) -> Option<i64> {
        self.first_seen
            .map(|m| m.get(&id).copied().unwrap_or(self.now))
    }

    /// Judge time-dependent rules (OpenPGP expiry, signatures from the future) at `now` instead of the
    /// current time.
    pub fn at(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    fn kind(&self) -> Kind {
        self.repo.gix().object_hash()
    }

    /// Read and strictly parse a commit, once.
    fn load(&mut self, id: ObjectId) -> &mut Node {
        let (repo, buf) = (self.repo, &mut self.buf);
        self.nodes
            .entry(id)
            .or_insert_with(|| read_node(repo, buf, id))
    }

    /// What is needed to judge a loaded node (consumes its parsed form): its verdict when it cannot be
    /// judged, or its parsed form and when it was first seen.
    fn take_for_judging(&mut self, id: ObjectId) -> ToJudge {
        let seen = self.seen(id);
        let node = self.load(id);
        if let Some(f) = &node.failure {
            return ToJudge::Done(Verdict::rejected(id, f.clone()));
        }
        match node.parsed.take() {
            Some(parsed) => ToJudge::Parsed(Box::new(parsed), seen),
            None => ToJudge::Done(Verdict::rejected(
                id,
                Failure::new(
                    Reason::UnreadableObject,
                    format!("commit {id} was already consumed"),
                ),
            )),
        }
    }

    /// Verify one commit.
    pub fn commit(&mut self, id: ObjectId) -> Verdict {
        // A fresh read: a commit may be verified again after a walk consumed its parsed form.
        let node = read_node(self.repo, &mut self.buf, id);
        if let Some(f) = node.failure {
            return Verdict::rejected(id, f);
        }
        match node.parsed {
            Some(parsed) => verdict_for(id, &parsed, self.policy, self.now, self.seen(id)),
            None => Verdict::rejected(
                id,
                Failure::new(
                    Reason::UnreadableObject,
                    format!("commit {id} cannot be read"),
                ),
            ),
        }
    }

    /// The entry at `parts` below `tree`; `Err` when a tree on the way cannot be read.
    fn entry_at(&mut self, tree: ObjectId, parts: &[&str], depth: usize) -> Result<PathEntry, ()> {
        if let Some(e) = self.entries.get(&(depth, tree)) {
            return Ok(*e);
        }
        let kind = self.kind();
        let data = match self.repo.read(tree, &mut self.buf) {
            Ok(Some(d)) if d.kind == gix::object::Kind::Tree => d,
            _ => return Err(()),
        };
        let name = parts[depth].as_bytes();
        let mut found: PathEntry = None;
        for entry in gix::objs::TreeRefIter::from_bytes(data.data, kind) {
            let entry = entry.map_err(|_| ())?;
            if entry.filename.as_ref() as &[u8] == name {
                found = Some((entry.mode, entry.oid.to_owned()));
                break;
            }
        }
        let result = match found {
            Some((mode, id)) if depth + 1 < parts.len() => {
                if mode.is_tree() {
                    self.entry_at(id, parts, depth + 1)?
                } else {
                    None
                }
            }
            other => other,
        };
        self.entries.insert((depth, tree), result);
        Ok(result)
    }

    /// Whether the commit with `tree` and `parents` touches the path. Anything unknown counts as touching.
    fn touches(&mut self, tree: Option<ObjectId>, parents: &[ObjectId], parts: &[&str]) -> bool {
        let Some(tree) = tree else {
            return true;
        };
        let Ok(mine) = self.entry_at(tree, parts, 0) else {
            return true;
        };
        if parents.is_empty() {
            return mine.is_some();
        }
        for &p in parents {
            let Some(ptree) = self.load(p).tree else {
                return true;
            };
            match self.entry_at(ptree, parts, 0) {
                Ok(theirs) if theirs == mine => {}
                _ => return true,
            }
        }
        false
    }

    /// `range` mode: why commit `id` is refused for a committer time earlier than one of its `parents'`
    /// (loaded), if it is. A parent that could not be parsed has no time and is reported on its own.
    fn before_parent(&mut self, id: ObjectId, parents: &[ObjectId]) -> Option<Failure> {
        let time = self.load(id).time;
        let (parent, ptime) = parents
            .iter()
            .map(|&p| (p, self.load(p).time))
            .max_by_key(|&(_, t)| t)?;
        (ptime > time).then(|| {
            Failure::new(
                Reason::CommitBeforeParent,
                format!(
                    "committed at {}, before its parent {parent} (committed at {}): a commit is never \
                     dated before the history it is built on, and key validity is judged at its date",
                    fmt_time(time),
                    fmt_time(ptime)
                ),
            )
        })
    }

    /// Queue a commit for the walk.
    fn enqueue(
        &mut self,
        queue: &mut std::collections::BinaryHeap<(i64, ObjectId)>,
        interesting: &mut usize,
        id: ObjectId,
    ) {
        let node = self.load(id);
        if node.in_queue || node.popped {
            return;
        }
        node.in_queue = true;
        if !node.hidden {
            *interesting += 1;
        }
        queue.push((node.time, id));
    }

    /// Mark `id` and, for commits already walked, their ancestors as reachable from the base.
    fn hide(&mut self, id: ObjectId, interesting: &mut usize) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let node = self.load(id);
            if node.hidden {
                continue;
            }
            node.hidden = true;
            if node.in_queue {
                *interesting -= 1;
            }
            // Only a strictly parsed commit's parents are trusted to hide anything.
            if node.popped {
                stack.extend(node.parents.iter().copied());
            }
        }
    }

    /// The commits reachable from `target` but not from `base`, newest first (by committer time), each with
    /// its verdict when `select` says it must be checked.
    ///
    /// A date-ordered walk like git's `limit_list`: commits reachable from the base are painted hidden, and
    /// the walk stops when only hidden commits remain queued. With skewed commit dates a commit reachable
    /// from the base may be checked needlessly; no commit in the range is ever skipped. A commit that cannot
    /// be parsed is reported and its parents are not followed (its parent list is not trusted); when it is
    /// reachable from the base it hides nothing.
    fn walk(
        &mut self,
        base: Option<ObjectId>,
        target: ObjectId,
        parts: &[&str],
    ) -> Vec<(ObjectId, Verdict)> {
        let mut queue = std::collections::BinaryHeap::new();
        let mut interesting = 0usize;
        let mut out: Vec<(ObjectId, ToJudge)> = Vec::new();
        if let Some(b) = base {
            self.hide(b, &mut interesting);
            self.enqueue(&mut queue, &mut interesting, b);
        }
        self.enqueue(&mut queue, &mut interesting, target);
        while interesting > 0 {
            let Some((_, id)) = queue.pop() else {
                break;
            };
            let (hidden, failed, parents, tree) = {
                let node = self.load(id);
                node.in_queue = false;
                node.popped = true;
                (
                    node.hidden,
                    node.failure.is_some(),
                    node.parents.clone(),
                    node.tree,
                )
            };
            if hidden {
                for &p in &parents {
                    self.hide(p, &mut interesting);
                    self.enqueue(&mut queue, &mut interesting, p);
                }
                self.load(id).parsed = None;
                continue;
            }
            interesting -= 1;
            if failed {
                // Reported; its parents are not followed.
                let judge = self.take_for_judging(id);
                out.push((id, judge));
                continue;
            }
            for &p in &parents {
                self.enqueue(&mut queue, &mut interesting, p);
            }
            // Every commit of the range, touching the path or not: a backdated commit that does not touch
            // it would otherwise lower the dates allowed above it.
            if let Some(f) = self.before_parent(id, &parents) {
                out.push((id, ToJudge::Done(Verdict::rejected(id, f))));
                self.load(id).parsed = None;
                continue;
            }
            if parts.is_empty() || self.touches(tree, &parents, parts) {
                let judge = self.take_for_judging(id);
                out.push((id, judge));
            } else {
                self.load(id).parsed = None;
            }
        }
        out.retain(|(id, _)| !self.nodes.get(id).is_some_and(|n| n.hidden));
        // The signatures, the costly part, checked on every core once the walk has read the commits.
        let (policy, now) = (self.policy, self.now);
        let verdicts = crate::par::map(&out, |(id, judge)| match judge {
            ToJudge::Done(v) => v.clone(),
            ToJudge::Parsed(parsed, seen) => verdict_for(*id, parsed, policy, now, *seen),
        });
        out.into_iter().map(|(id, _)| id).zip(verdicts).collect()
    }

    /// Verify the commits `mode` requires; see the module documentation.
    pub fn range(
        &mut self,
        base: Option<ObjectId>,
        target: ObjectId,
        path: Option<&str>,
        mode: Mode,
    ) -> Result<RangeReport, VerifyError> {
        let path = match path.map(|p| p.trim_matches('/')) {
            Some("") | None => None,
            Some(p) => Some(p.to_string()),
        };
        let parts: Vec<&str> = match &path {
            Some(p) => {
                let parts: Vec<&str> = p.split('/').collect();
                if parts
                    .iter()
                    .any(|s| s.is_empty() || *s == "." || *s == "..")
                {
                    return Err(VerifyError::BadPath {
                        path: p.clone(),
                        reason: "empty, `.` or `..` component",
                    });
                }
                parts
            }
            None => Vec::new(),
        };
        let mut report = RangeReport {
            mode,
            base: base.map(|b| b.to_string()),
            target: target.to_string(),
            path: path.clone(),
            verdicts: Vec::new(),
        };
        match mode {
            Mode::Head => report.verdicts.push(self.commit(target)),
            Mode::Range => {
                report.verdicts = self
                    .walk(base, target, &parts)
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
            }
        }
        Ok(report)
    }
}
