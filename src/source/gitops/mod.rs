//! GitOps mode, the Git view: a bare clone of the cluster repo, fetched on an interval; each new head is
//! verified under the trust policy (in `range` mode every commit since the last verified one that touches the
//! cluster path) and, when it verifies, indexed for provenance. Intents are checked against the newest
//! *verified* revision only: a head that fails verification changes nothing in the cluster, and objects that
//! Flux already updated to it are Blocked with the failing commit's reason.

mod flux_ahead;
pub mod notes_sink;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gix::ObjectId;
use tokio::sync::watch;

use super::{IntentSource, LiveIntent, Origin, PolicyTarget, SourceStatus, Verdict};
use crate::api::conditions::reasons;
use crate::git::first_seen::FirstSeen;
use crate::git::policy::TrustPolicy;
use crate::git::provenance::{LiveObject, Provenance, ProvenanceError, ProvenanceIndex};
use crate::git::remote::{self, Credentials};
use crate::git::repo::{Repo, RepoError};
use crate::git::select::{SelectError, Selection, oid_of, select};
use crate::git::sigcheck::Reason;
use crate::intent::IntentKind;

/// Where the repo is and how to trust it.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub url: String,
    pub branch: String,
    /// The cluster's path, e.g. `clusters/eu-prod-1`.
    pub path: String,
    pub policy: TrustPolicy,
    pub credentials: Credentials,
    /// The bare clone lives here; the last verified commit is kept beside it.
    pub cache_dir: PathBuf,
    /// The operator's notes key (an unencrypted OpenSSH Ed25519 private key) that signs every outcome record;
    /// `None`: records are unsigned, and readers show them as unverified.
    pub notes_signing_key: Option<PathBuf>,
}

/// Why the newest head is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeadFailure {
    head: String,
    commit: String,
    reason: &'static str,
    message: String,
}

struct State {
    repo: Repo,
    index: Option<ProvenanceIndex>,
    last_verified: Option<ObjectId>,
    status: SourceStatus,
    head_failure: Option<HeadFailure>,
    /// The manifests at the refused head (while there is one): whether a live object that differs from the view
    /// came from the refused commits (Flux synced them) or from somewhere else (a hand edit).
    head_index: Option<ProvenanceIndex>,
    /// The trust policy in force, or why the newest one does not parse (then nothing is trusted).
    policy: Result<Arc<TrustPolicy>, String>,
    /// The policy changed since the view was judged: the next sync judges the branch's whole history again
    /// under it (the persisted last verified commit was judged by the old policy, so it is no base).
    rejudge: bool,
    /// What each intent looked like (a digest of its spec, labels and annotations) when it last matched the view,
    /// and the commit and revision it matched at. Flux lags behind the view (its source-controller fetches later
    /// than we do, or is down): an intent still exactly as it was then stays trusted as of that revision instead of
    /// Blocked. Only an unchanged object gets this, never one changed back to an older signed content (a
    /// downgrade by whoever can write the object). Judged under one policy: cleared when it changes.
    last_matched: std::collections::HashMap<(IntentKind, String, String), Matched>,
    /// Intents seen lagging behind the view (never matched in this process, as the view's parent revision has
    /// them): when first seen so, by digest. [`LAG_GRACE`] after that they are Blocked if still behind.
    lagging:
        std::collections::HashMap<(IntentKind, String, String), ([u8; 32], std::time::Instant)>,
    /// The manifests at the view's first parent, built when first needed: (view revision, index or none).
    parent_index: Option<(ObjectId, Option<ProvenanceIndex>)>,
}

/// How long a fresh process waits for Flux to apply the view before it calls an intent that is still as the
/// previous revision had it Blocked (Flux's GitRepository interval is 1 minute in flux/cluster.yaml, and its
/// Kustomization applies right after). Nothing is acted on meanwhile.
pub const LAG_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// An intent as it last matched the view.
struct Matched {
    digest: [u8; 32],
    intent_commit: String,
    revision: String,
}

/// The digest [`State::last_matched`] keeps of a live object.
fn live_digest(live: &LiveObject<'_>) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in [
        serde_json::to_vec(live.spec).unwrap_or_default(),
        serde_json::to_vec(live.labels).unwrap_or_default(),
        serde_json::to_vec(live.annotations).unwrap_or_default(),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(&part);
    }
    hasher.finalize().into()
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Nothing new on the branch.
    Unchanged,
    /// A new head verified and is now the view.
    Verified { head: String },
    /// The new head did not verify. The view is the newest revision before the first refused commit (range
    /// mode) or the newest verified intent change (head mode); `None` when no revision verifies at all.
    Rejected {
        head: String,
        reason: String,
        view: Option<String>,
    },
    /// The remote could not be reached or read.
    Unreachable { error: String },
}

pub struct RepoSource {
    config: RepoConfig,
    state: Mutex<State>,
    /// When each commit of the branch was first fetched: SSH key validity is judged up to then, never only at
    /// the committer date its signer chose (crate::git::first_seen). Held for a whole [`RepoSource::sync`], so
    /// one sync runs at a time: two at once (the Git view's loop and `Operator::sync_now`) would fetch into one
    /// clone together, and the second's ref update fails on the first's lock.
    first_seen: Mutex<FirstSeen>,
    changes: watch::Sender<u64>,
    /// Commits Flux has of the cluster path that the view may not have yet (`source::flux_watch`).
    flux_ahead: flux_ahead::FluxAhead,
}

fn anchor_file(config: &RepoConfig) -> PathBuf {
    config.cache_dir.join("vworkspace-last-verified")
}

impl RepoSource {
    /// Open (or create) the bare clone; nothing is fetched yet.
    pub fn open(config: RepoConfig) -> Result<Self, remote::RemoteError> {
        std::fs::create_dir_all(&config.cache_dir).map_err(|e| remote::RemoteError::Cache {
            path: config.cache_dir.clone(),
            message: e.to_string(),
        })?;
        let repo_dir = config.cache_dir.join("repo.git");
        let repo = remote::open_or_init_cache(&repo_dir)?;
        let last_verified = std::fs::read_to_string(anchor_file(&config))
            .ok()
            .and_then(|s| ObjectId::from_hex(s.trim().as_bytes()).ok());
        let (changes, _) = watch::channel(0);
        let policy = Ok(Arc::new(config.policy.clone()));
        let seen_file = config.cache_dir.join("vworkspace-first-seen");
        let first_seen = FirstSeen::open(&seen_file).map_err(|e| remote::RemoteError::Cache {
            path: seen_file.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            first_seen: Mutex::new(first_seen),
            config,
            state: Mutex::new(State {
                repo,
                index: None,
                last_verified,
                status: SourceStatus::default(),
                head_failure: None,
                head_index: None,
                policy,
                rejudge: false,
                last_matched: Default::default(),
                lagging: Default::default(),
                parent_index: None,
            }),
            changes,
            flux_ahead: Default::default(),
        })
    }

    /// A new trust policy (or the error that the new policy text gave): the next [`RepoSource::sync`] judges the
    /// branch again under it, from the start of its history, and moves the view to what it then trusts: back
    /// before a commit signed only by a removed key, forward to a head signed by an added key. With an error,
    /// nothing is trusted (fail closed) until a policy parses again.
    pub fn set_policy(&self, policy: Result<TrustPolicy, String>) {
        let mut state = self.lock();
        state.policy = policy.map(Arc::new);
        state.rejudge = true;
    }

    /// A receiver that ticks each time a new revision becomes the verified view.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Fetch, verify and index. Blocking (git network and object reads): call it in `spawn_blocking`. One
    /// sync runs at a time (a second caller waits for the first to finish, then syncs). The view's lock is held
    /// only to read the last verified commit and to publish the result, never while fetching or verifying.
    ///
    /// The steps: fetch the branch (`fetch_branch`); open the clone at its head (`open_head`), done when the
    /// head is the view or a head already refused (`settled`); verify, selecting the revision to trust
    /// (`select_view`); then refuse with no view (`no_view`), keep the view (`view_stays`), or index the new
    /// view and publish it (`index_view`, `publish`).
    pub fn sync(&self) -> SyncOutcome {
        let mut first_seen = self
            .first_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = std::time::Instant::now();
        let outcome = self.sync_branch(&mut first_seen);
        if !matches!(outcome, SyncOutcome::Unreachable { .. }) {
            self.flux_ahead.settle(started);
        }
        outcome
    }

    /// Flux has these commits of the cluster path and the view is not one of them: until the next sync that
    /// reaches the remote, an intent that differs from the view waits instead of being Blocked.
    pub fn flux_has(&self, commits: &[String]) {
        self.flux_ahead.note(commits);
    }

    /// The repository's URL and branch.
    pub fn repo(&self) -> (&str, &str) {
        (&self.config.url, &self.config.branch)
    }

    /// The commit Flux last applied to the cluster path (`None`: none), reported in [`SourceStatus`].
    pub fn set_flux_applied(&self, commit: Option<String>) {
        self.flux_ahead.set_applied(commit);
    }

    fn sync_branch(&self, first_seen: &mut FirstSeen) -> SyncOutcome {
        let fetched = self.fetch_branch();
        let start = self.sync_start();
        // A policy change is applied even while the remote is unreachable: a revoked key must stop being
        // trusted whether or not the remote answers (the local clone holds what was fetched).
        let fetch_error = fetched.err().map(|e| e.to_string());
        if let Some(e) = &fetch_error
            && !start.rejudge
        {
            return self.unreachable(e.clone(), false);
        }
        let policy = match start.policy {
            Ok(p) => p,
            Err(e) if start.rejudge => return self.distrust_all(e),
            Err(e) => {
                return SyncOutcome::Rejected {
                    head: String::new(),
                    reason: format!("the trust policy is invalid, so nothing is trusted: {e}"),
                    view: None,
                };
            }
        };
        let pass = match self.open_head(start.indexed, start.rejudge, fetch_error) {
            Ok(pass) => pass,
            Err(outcome) => return outcome,
        };
        if let Some(outcome) = self.settled(&pass, start.known_failure) {
            return outcome;
        }
        let seen = record_first_seen(first_seen, &pass.repo, start.seen_base, pass.head);
        let selection = match self.select_view(&pass, &policy, start.last_verified, &seen) {
            Ok(s) => s,
            Err(failure) => return self.reject(pass, failure),
        };
        let failure = refused_commit_failure(&selection, &pass.head_hex);
        let Some(target) = selection.target else {
            return self.no_view(pass, failure);
        };
        if pass.indexed == Some(target) {
            return self.view_stays(pass, failure);
        }
        self.index_view(pass, &selection, target, failure)
    }

    /// Where the bare clone is.
    fn repo_dir(&self) -> PathBuf {
        self.config.cache_dir.join("repo.git")
    }

    /// Fetch the branch into the bare clone.
    fn fetch_branch(&self) -> Result<remote::FetchOutcome, remote::RemoteError> {
        let refspec = format!("+refs/heads/{0}:refs/heads/{0}", self.config.branch);
        remote::fetch(
            &self.repo_dir(),
            &self.config.url,
            &[refspec.as_str()],
            &self.config.credentials,
        )
    }

    /// What a sync starts from, read under the view's lock.
    fn sync_start(&self) -> SyncStart {
        let (last_verified, indexed, known_failure, policy, rejudge) = {
            let state = self.lock();
            (
                state.last_verified,
                state.index.as_ref().map(ProvenanceIndex::revision),
                state.head_failure.clone(),
                state.policy.clone(),
                state.rejudge,
            )
        };
        let seen_base = last_verified; // what is below it was recorded as first seen when it came
        // Judged again under a new policy: no base, no remembered verdict.
        let (last_verified, known_failure) = if rejudge {
            (None, None)
        } else {
            (last_verified, known_failure)
        };
        SyncStart {
            last_verified,
            seen_base,
            indexed,
            known_failure,
            policy,
            rejudge,
        }
    }

    /// The remote or the clone cannot be read: the view stays, the status says why.
    fn unreachable(&self, error: String, reachable: bool) -> SyncOutcome {
        let mut state = self.lock();
        state.status.reachable = reachable;
        state.status.last_error = Some(error.clone());
        SyncOutcome::Unreachable { error }
    }

    /// Open the clone and resolve the branch's head.
    fn open_head(
        &self,
        indexed: Option<ObjectId>,
        rejudge: bool,
        fetch_error: Option<String>,
    ) -> Result<Pass, SyncOutcome> {
        let repo = match Repo::open(self.repo_dir()) {
            Ok(repo) => repo,
            Err(e) => return Err(self.unreachable(e.to_string(), true)),
        };
        let head = match repo.resolve_commit(&format!("refs/heads/{}", self.config.branch)) {
            Ok(h) => h,
            Err(e) => {
                return Err(self.unreachable(format!("branch {}: {e}", self.config.branch), true));
            }
        };
        Ok(Pass {
            head_hex: head.to_string(),
            repo,
            head,
            indexed,
            rejudge,
            fetch_error,
        })
    }

    /// The outcome when there is nothing to judge: the head is the view (and no new policy asks to judge it
    /// again), or the head is one already refused.
    fn settled(&self, pass: &Pass, known_failure: Option<HeadFailure>) -> Option<SyncOutcome> {
        if pass.indexed == Some(pass.head) && !pass.rejudge {
            let mut state = self.lock();
            state.status.reachable = true;
            state.status.last_error = None;
            return Some(SyncOutcome::Unchanged);
        }
        let f = known_failure.filter(|f| f.head == pass.head_hex)?;
        let mut state = self.lock();
        state.status.reachable = true;
        state.status.last_error = Some(f.message.clone());
        Some(SyncOutcome::Rejected {
            head: f.head,
            reason: f.message,
            view: pass.indexed.map(|i| i.to_string()),
        })
    }

    /// The verification: the newest revision whose intent changes since the last verified one all verify
    /// (range mode), or whose newest intent change verifies (head mode): see crate::git::select. A head that
    /// cannot be judged (over a bound, or unreadable) is refused with why.
    fn select_view(
        &self,
        pass: &Pass,
        policy: &TrustPolicy,
        last_verified: Option<ObjectId>,
        seen: &std::collections::HashMap<ObjectId, i64>,
    ) -> Result<Selection, HeadFailure> {
        if last_verified == Some(pass.head) {
            return Ok(Selection {
                target: Some(pass.head),
                ..Selection::default()
            });
        }
        select(
            &pass.repo,
            policy,
            &self.config.path,
            last_verified,
            pass.head,
            Some(seen),
        )
        .map_err(|e| {
            let reason = match &e {
                SelectError::Refused { .. } => reasons::BOUND_EXCEEDED,
                _ => reasons::UNTRUSTED_SIGNATURE,
            };
            HeadFailure {
                head: pass.head_hex.clone(),
                commit: pass.head_hex.clone(),
                reason,
                message: e.to_string(),
            }
        })
    }

    /// The manifests at the head, for a refused head (built once per head: a head already known to fail was
    /// settled before).
    fn head_index(&self, pass: &Pass) -> Option<ProvenanceIndex> {
        ProvenanceIndex::build(&pass.repo, pass.head, &self.config.path).ok()
    }

    /// Refuse the head with `failure`; the view stays where it was (or there is none).
    fn reject(&self, pass: Pass, failure: HeadFailure) -> SyncOutcome {
        let refused = self.head_index(&pass);
        let mut state = self.lock();
        state.repo = pass.repo;
        state.head_index = refused;
        state.status.reachable = pass.fetch_error.is_none();
        state.status.last_error = Some(failure.message.clone());
        state.rejudge = false;
        let outcome = SyncOutcome::Rejected {
            head: failure.head.clone(),
            reason: failure.message.clone(),
            view: state.index.as_ref().map(|i| i.revision().to_string()),
        };
        state.head_failure = Some(failure);
        outcome
    }

    /// Nothing verifies and there is no earlier verified revision: no view (fail closed). Judged again under
    /// a new policy, the old view goes too.
    fn no_view(&self, pass: Pass, failure: Option<HeadFailure>) -> SyncOutcome {
        let failure = failure.unwrap_or_else(|| HeadFailure {
            head: pass.head_hex.clone(),
            commit: pass.head_hex.clone(),
            reason: reasons::UNTRUSTED_SIGNATURE,
            message: format!("no revision of {} verifies", self.config.branch),
        });
        if !pass.rejudge {
            return self.reject(pass, failure);
        }
        // Judged again, nothing is trusted any more: the old view goes too.
        {
            let mut state = self.lock();
            state.index = None;
            state.last_matched.clear();
            state.last_verified = None;
        }
        let _ = std::fs::remove_file(anchor_file(&self.config));
        let outcome = self.reject(pass, failure);
        self.changes.send_modify(|n| *n += 1);
        outcome
    }

    /// The revision to trust is the view already: the view stays where it is, and the newer head (if refused)
    /// waits.
    fn view_stays(&self, pass: Pass, failure: Option<HeadFailure>) -> SyncOutcome {
        let rejudge = pass.rejudge;
        let outcome = match failure {
            Some(f) => self.reject(pass, f),
            None if rejudge => {
                // Judged again and trusted as it is: whatever was refused before no longer is.
                let mut state = self.lock();
                state.repo = pass.repo;
                state.head_failure = None;
                state.head_index = None;
                state.last_matched.clear();
                state.rejudge = false;
                state.status.reachable = pass.fetch_error.is_none();
                state.status.last_error = pass.fetch_error;
                SyncOutcome::Verified {
                    head: pass.head_hex,
                }
            }
            None => SyncOutcome::Unchanged,
        };
        if rejudge {
            // The verdicts on live objects may have changed even where the view did not.
            self.changes.send_modify(|n| *n += 1);
        }
        outcome
    }

    /// Index `target`, the new view, and publish it (with `failure`, the refused commit the head waits on, if
    /// any). A revision whose index cannot be built is refused with its reason, never read as "no intents".
    fn index_view(
        &self,
        pass: Pass,
        selection: &Selection,
        target: ObjectId,
        failure: Option<HeadFailure>,
    ) -> SyncOutcome {
        let signer = selection
            .processed
            .iter()
            .find(|v| oid_of(v) == Some(target))
            .or(selection.processed.first())
            .map(|v| {
                format!(
                    "{} ({})",
                    v.signer.clone().unwrap_or_default(),
                    v.fingerprint.clone().unwrap_or_default()
                )
            });
        let index = match ProvenanceIndex::build(&pass.repo, target, &self.config.path) {
            Ok(i) => i,
            // The path missing at the revision, or over a bound: refused with its reason (the view stays where
            // it was, or there is none), never read as "no intents".
            Err(e) => match refusal_reason(&e) {
                Some(reason) => {
                    let failure = HeadFailure {
                        head: pass.head_hex.clone(),
                        commit: target.to_string(),
                        reason,
                        message: format!("revision {target} is refused: {e}"),
                    };
                    return self.reject(pass, failure);
                }
                None => return self.unreachable(e.to_string(), true),
            },
        };
        self.publish(pass, index, target, signer, failure)
    }

    /// Make `index` (of `target`) the view: the status, the persisted last verified commit and a tick to the
    /// subscribers.
    fn publish(
        &self,
        pass: Pass,
        index: ProvenanceIndex,
        target: ObjectId,
        signer: Option<String>,
        failure: Option<HeadFailure>,
    ) -> SyncOutcome {
        let refused = failure.as_ref().and_then(|_| self.head_index(&pass));
        let outcome = {
            let mut state = self.lock();
            state.repo = pass.repo;
            if pass.rejudge {
                // Judged under another policy: what matched before proves nothing now.
                state.last_matched.clear();
            }
            // Only intents the new view defines can lag behind it: forget the others (deleted from Git).
            state
                .last_matched
                .retain(|(kind, ns, name), _| index.defines(*kind, ns, name));
            state.index = Some(index);
            state.head_index = refused;
            state.last_verified = Some(target);
            state.rejudge = false;
            state.status.reachable = pass.fetch_error.is_none();
            state.status.last_verified_commit = Some(target.to_string());
            if signer.is_some() {
                state.status.last_verified_signer = signer;
            }
            state.status.last_verified_time = Some(jiff::Timestamp::now().to_string());
            state.status.last_error = failure
                .as_ref()
                .map(|f| f.message.clone())
                .or(pass.fetch_error);
            let outcome = match &failure {
                None => SyncOutcome::Verified {
                    head: target.to_string(),
                },
                Some(f) => SyncOutcome::Rejected {
                    head: f.head.clone(),
                    reason: f.message.clone(),
                    view: Some(target.to_string()),
                },
            };
            state.head_failure = failure;
            outcome
        };
        let _ = std::fs::write(anchor_file(&self.config), target.to_string());
        self.changes.send_modify(|n| *n += 1);
        outcome
    }

    /// The trust policy does not parse: no revision is trusted. Every intent is Blocked with the policy's error
    /// until a policy parses again (nothing is deleted: Blocked only stops the operator acting).
    fn distrust_all(&self, error: String) -> SyncOutcome {
        let message = format!("the trust policy is invalid, so nothing is trusted: {error}");
        {
            let mut state = self.lock();
            state.index = None;
            state.last_matched.clear();
            state.head_index = None;
            state.last_verified = None;
            state.rejudge = false;
            state.status.last_error = Some(message.clone());
            state.head_failure = Some(HeadFailure {
                head: String::new(),
                commit: String::new(),
                reason: reasons::TRUST_POLICY_INVALID,
                message: message.clone(),
            });
        }
        let _ = std::fs::remove_file(anchor_file(&self.config));
        self.changes.send_modify(|n| *n += 1);
        SyncOutcome::Rejected {
            head: String::new(),
            reason: message,
            view: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// What a sync starts from: the view's state when it began.
struct SyncStart {
    /// The base of the verification: the last verified commit, none when judged again under a new policy.
    last_verified: Option<ObjectId>,
    /// The persisted last verified commit whatever the policy: what is below it was recorded as first seen
    /// when it came.
    seen_base: Option<ObjectId>,
    /// The view's revision.
    indexed: Option<ObjectId>,
    /// Why the newest head was refused, if it was (none when judged again).
    known_failure: Option<HeadFailure>,
    policy: Result<Arc<TrustPolicy>, String>,
    /// Judged again under a new policy.
    rejudge: bool,
}

/// One sync past the fetch: the clone opened at the branch's head.
struct Pass {
    repo: Repo,
    head: ObjectId,
    head_hex: String,
    /// The view's revision when the sync began.
    indexed: Option<ObjectId>,
    /// Judged again under a new policy.
    rejudge: bool,
    /// Why the fetch failed (a new policy is applied to the local clone all the same).
    fetch_error: Option<String>,
}

/// Why the head waits when the selection refused a commit: the oldest refused commit (everything from it on
/// waits).
fn refused_commit_failure(selection: &Selection, head_hex: &str) -> Option<HeadFailure> {
    selection.refused.last().map(|bad| {
        let why = bad.reason.clone();
        let reason = match why.as_ref().map(|f| f.reason) {
            Some(Reason::Unsigned) => reasons::UNSIGNED_COMMIT,
            Some(Reason::BoundExceeded) => reasons::BOUND_EXCEEDED,
            _ => reasons::UNTRUSTED_SIGNATURE,
        };
        let message = format!(
            "commit {} is not trusted: {}",
            bad.sha,
            why.map(|f| format!("{}: {}", f.reason.as_str(), f.message))
                .unwrap_or_default()
        );
        HeadFailure {
            head: head_hex.to_string(),
            commit: bad.sha.clone(),
            reason,
            message,
        }
    })
}

/// The condition reason for an index that cannot be built because of what the revision holds.
fn refusal_reason(e: &ProvenanceError) -> Option<&'static str> {
    let ProvenanceError::Read { source, .. } = e else {
        return None;
    };
    match source {
        RepoError::PathMissing { .. } => Some(reasons::CLUSTER_PATH_MISSING),
        RepoError::Exceeded(_) => Some(reasons::BOUND_EXCEEDED),
        _ => None,
    }
}

/// [`Verdict::Pending`]'s message while `live` (never matched in this process) is as the view's first parent has
/// it and was first seen so less than [`LAG_GRACE`] ago; `None` otherwise (then the verdict is Blocked).
struct Lag<'a> {
    repo: &'a Repo,
    revision: ObjectId,
    path: &'a str,
    parent_index: &'a mut Option<(ObjectId, Option<ProvenanceIndex>)>,
    lagging: &'a mut std::collections::HashMap<
        (IntentKind, String, String),
        ([u8; 32], std::time::Instant),
    >,
}

fn lag_pending(
    lag: Lag<'_>,
    live: &LiveObject<'_>,
    key: &(IntentKind, String, String),
    digest: [u8; 32],
) -> Option<String> {
    let Lag {
        repo,
        revision,
        path,
        parent_index,
        lagging,
    } = lag;
    if parent_index.as_ref().is_none_or(|(r, _)| *r != revision) {
        let parent = repo.parents(revision).ok().and_then(|p| p.first().copied());
        let index = parent.and_then(|p| ProvenanceIndex::build(repo, p, path).ok());
        *parent_index = Some((revision, index));
    }
    let (_, Some(parent)) = parent_index.as_ref()? else {
        return None;
    };
    if !matches!(parent.lookup(repo, live), Ok(Provenance::Match { .. })) {
        return None;
    }
    let now = std::time::Instant::now();
    let (seen_digest, since) = lagging.entry(key.clone()).or_insert((digest, now));
    if *seen_digest != digest {
        *seen_digest = digest;
        *since = now;
    }
    let waited = now.duration_since(*since);
    (waited < LAG_GRACE).then(|| {
        format!(
            "as revision {revision}'s parent has it: waiting for Flux to apply {revision} ({}s of {}s)",
            waited.as_secs(),
            LAG_GRACE.as_secs()
        )
    })
}

impl IntentSource for RepoSource {
    fn check(&self, intent: &LiveIntent<'_>) -> Verdict {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(index) = &state.index else {
            let message = match (&state.head_failure, &state.status.last_error) {
                (Some(f), _) => f.message.clone(),
                (None, Some(e)) => format!("no verified revision yet: {e}"),
                (None, None) => "no verified revision yet (the repo has not been fetched)".into(),
            };
            let reason = state
                .head_failure
                .as_ref()
                .map_or(reasons::REPO_UNAVAILABLE, |f| f.reason);
            return Verdict::Blocked { reason, message };
        };
        let live = intent.object();
        let revision = index.revision().to_string();
        let pending = state
            .head_failure
            .as_ref()
            .map(|f| format!("; the newer head {} is not trusted: {}", f.head, f.message))
            .unwrap_or_default();
        // With a refused head, a live object that differs from the view is blamed on the refused commits when it
        // equals the manifest at that head (Flux synced them; also when that cannot be told), on itself otherwise
        // (edited by hand, or never in Git).
        let blame = |otherwise: &'static str| match &state.head_failure {
            Some(f)
                if state.head_index.as_ref().is_none_or(|h| {
                    matches!(h.lookup(&state.repo, &live), Ok(Provenance::Match { .. }))
                }) =>
            {
                f.reason
            }
            _ => otherwise,
        };
        let lookup = index.lookup(&state.repo, &live);
        let key = (
            intent.kind,
            intent.namespace.to_string(),
            intent.name.to_string(),
        );
        let digest = live_digest(&live);
        match &lookup {
            Ok(Provenance::Match { intent_commit, .. }) => {
                state.last_matched.insert(
                    key,
                    Matched {
                        digest,
                        intent_commit: intent_commit.to_string(),
                        revision: revision.clone(),
                    },
                );
            }
            Ok(Provenance::Mismatch { .. } | Provenance::NotInGit) => {
                // Unchanged since it matched an earlier view, and not as this view has it: Flux has not applied
                // the view yet. Trusted as of the revision it matched at.
                if let Some(m) = state.last_matched.get(&key).filter(|m| m.digest == digest) {
                    return Verdict::Verified {
                        origin: Origin::Commit {
                            intent_commit: m.intent_commit.clone(),
                            revision: m.revision.clone(),
                        },
                    };
                }
                // Flux has a commit the view may not have yet (Flux applied it before the fetch it triggered
                // finished): not judged against a view that is behind.
                if let Some(message) = self.flux_ahead.pending() {
                    return Verdict::Pending { message };
                }
                // Never seen matching here, and as the view's parent has it: most likely Flux's lag, seen by a
                // process that started after the object last matched. Not acted on; not Blocked yet either.
                if !state.last_matched.contains_key(&key)
                    && let Some(message) = lag_pending(
                        Lag {
                            repo: &state.repo,
                            revision: index.revision(),
                            path: &self.config.path,
                            parent_index: &mut state.parent_index,
                            lagging: &mut state.lagging,
                        },
                        &live,
                        &key,
                        digest,
                    )
                {
                    return Verdict::Pending { message };
                }
            }
            Err(_) => {}
        }
        match lookup {
            Ok(Provenance::Match { intent_commit, .. }) => Verdict::Verified {
                origin: Origin::Commit {
                    intent_commit: intent_commit.to_string(),
                    revision,
                },
            },
            Ok(Provenance::Mismatch { path, fields }) => Verdict::Blocked {
                reason: blame(reasons::SPEC_MISMATCH),
                message: format!(
                    "the live object differs from {path} at verified commit {revision} in {}{pending}",
                    fields.join(", ")
                ),
            },
            Ok(Provenance::NotInGit) => Verdict::Blocked {
                reason: blame(reasons::SPEC_NOT_IN_GIT),
                message: format!(
                    "not in {} at verified commit {revision}{pending}",
                    self.config.path
                ),
            },
            Err(e) => Verdict::Blocked {
                reason: reasons::REPO_UNAVAILABLE,
                message: e.to_string(),
            },
        }
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            flux_applied_commit: self.flux_ahead.applied(),
            ..self.lock().status.clone()
        }
    }
}

/// The committer time of commit `id`, by the strict parser.
fn commit_time(repo: &Repo, id: ObjectId) -> Option<i64> {
    use gix::objs::Find as _;
    let mut buf = Vec::new();
    let data = repo.gix().objects.try_find(&id, &mut buf).ok()??;
    crate::git::commit::parse(data.data, repo.gix().object_hash())
        .ok()
        .map(|c| c.committer.time)
}

impl PolicyTarget for RepoSource {
    fn set_policy(&self, policy: Result<TrustPolicy, String>) {
        RepoSource::set_policy(self, policy);
    }
}

/// Record the commits reachable from `head` and not from `base` as first seen now (the first sync of an
/// empty record: at their committer dates), and return every time recorded. A commit that cannot be read
/// counts as seen now. A record that cannot be written keeps the times in memory: after a restart those
/// commits are recorded again, later (stricter).
fn record_first_seen(
    seen: &mut FirstSeen,
    repo: &Repo,
    base: Option<ObjectId>,
    head: ObjectId,
) -> std::collections::HashMap<ObjectId, i64> {
    let now = jiff::Timestamp::now().as_second();
    let mut new = Vec::new();
    if let Ok(walk) = repo.gix().rev_walk([head]).with_hidden(base).all() {
        for info in walk.flatten() {
            if !seen.times().contains_key(&info.id) {
                new.push((info.id, commit_time(repo, info.id).unwrap_or(now)));
            }
        }
    }
    if let Err(e) = seen.record(new, now) {
        tracing::warn!(error = %e, "cannot write the first-seen record");
    }
    seen.times().clone()
}

#[cfg(test)]
mod tests;
