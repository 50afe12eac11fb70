//! `hydrate` (render-and-commit): from the verified intent of a cluster, commit the rendered manifests to an
//! output branch (or a path of the intent branch) for Flux to sync; no cluster access needed.
//!
//! One pass ([`hydrate_once`]):
//! 1. **fetch** the intent branch, the output branch and the cluster's notes ref into a bare cache;
//! 2. find the **last hydrated intent commit**: the `Intent-Commit` trailer of the newest output commit of
//!    this cluster signed by the operator's own key (see [`message`]); there is no other state;
//! 3. **verify** what is new on the intent branch since then, restricted to the cluster's intent path,
//!    under the trust policy, and choose the newest revision whose intent changes are all verified (in
//!    `range` mode nothing after a refused commit is rendered: fail closed);
//! 4. **render** the intents at that revision with [`crate::tree::render_tree`] (the function `render`
//!    and the controller use); any problem means no output at all;
//! 5. **plan** one file per object against the output location ([`plan`]: pure) and, when something
//!    changed, **commit** it (signed in process with [`crate::git::sign`]) with trailers naming the intent
//!    commit;
//! 6. **push** it with compare-and-swap ([`crate::git::remote::push_cas`], never forced); on rejection,
//!    fetch and plan again, with backoff;
//! 7. write a `Rendered` or `Rejected` **note** on each intent commit processed
//!    ([`crate::git::notes::NotesWriter`]: merged, compare-and-swap, stable record ids).
//!
//! A second pass with nothing new changes nothing; two concurrent passes on separate caches converge to one
//! output commit per rendered state and one record per outcome. Blocking (git network, files): call it from
//! `spawn_blocking` in async code. See docs/hydrate.md.

pub mod guard;
pub mod message;
pub mod plan;
mod report_text;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use gix::ObjectId;
use serde::Serialize;

use crate::api::conditions::reasons;
use crate::git::notes::{
    self, NewRecord, NoteEntry, NoteLine, NotesError, NotesWriter, OutcomeRecord, RetryPolicy,
};
use crate::git::policy::{Mode, TrustPolicy};
use crate::git::remote::{self, Credentials, PushOutcome, RemoteError};
use crate::git::repo::load_rev;
use crate::git::repo::{Repo, RepoError};
use crate::git::select::{SelectError, Selection, oid_of, range_graph, select};
use crate::git::sigcheck::Reason;
use crate::git::sign::{SignError, SigningKey};
use crate::git::verify::{Verdict, Verifier, VerifyError};
use crate::git::write;
use crate::intent::Problem;
use crate::render::Renderer;
use crate::tree::render_tree;
use message::{OutputMessage, VerifiedIntent};
use plan::{CurrentEntry, DesiredFile, Plan};

/// The intent branch when none is given.
pub const DEFAULT_BRANCH: &str = "main";
/// The `kind` of the outcome records hydrate writes (one per intent commit; `uid` is the commit id).
pub const RECORD_KIND: &str = "Hydration";
/// Outcome of an intent commit whose changes were rendered into the output.
pub const OUTCOME_RENDERED: &str = "Rendered";
/// Outcome of an intent commit that was refused (untrusted) or whose revision does not render.
pub const OUTCOME_REJECTED: &str = "Rejected";

/// Where the rendered manifests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutTarget {
    /// The root of this branch (default `hydrated/<cluster-id>`), which holds nothing but the rendering.
    Branch(String),
    /// This path of the intent branch; it must not overlap the intent path.
    Path(String),
}

/// Everything a pass needs. [`HydrateOptions::new`] sets the defaults.
#[derive(Debug, Clone)]
pub struct HydrateOptions {
    /// The cluster repo: a local path, `file://`, `https://`, `ssh://` or `user@host:path`. It is fetched
    /// into a cache and pushed to; it is never checked out.
    pub repo: String,
    pub cluster_id: String,
    /// Who may sign intent, and whether every commit (`range`) or only the head (`head`) must be signed.
    pub policy: TrustPolicy,
    /// The intent branch; `None`: [`DEFAULT_BRANCH`].
    pub branch: Option<String>,
    /// The output; `None`: the branch `hydrated/<cluster-id>`.
    pub out: Option<OutTarget>,
    /// The operator's own key (OpenSSH private key or armored OpenPGP secret key) that signs output
    /// commits. Without it output commits are unsigned, and every pass verifies the whole history of the
    /// intent path (an unsigned output commit cannot vouch for what was verified before).
    pub signing_key: Option<PathBuf>,
    /// The operator's notes key (an unencrypted OpenSSH Ed25519 private key) that signs every outcome record.
    /// Without it records are unsigned, and readers show them as unverified.
    pub notes_signing_key: Option<PathBuf>,
    /// The intent path; `None`: `clusters/<cluster-id>`.
    pub repo_path: Option<String>,
    /// Template override directory.
    pub templates: Option<PathBuf>,
    /// Namespace of Velero (where Backups and Restores go).
    pub velero_namespace: String,
    /// The bare cache of the repo and the pending notes store live here. One directory per process.
    pub work_dir: PathBuf,
    pub credentials: Credentials,
    /// Author and committer of output commits.
    pub author_name: String,
    pub author_email: String,
    /// How often and how patiently a rejected push is retried (output and notes).
    pub retry: RetryPolicy,
    /// `--allow-empty`, `--namespaces`, `--allow-chart-host` ([`guard`]).
    pub guards: guard::Guards,
}

impl HydrateOptions {
    /// Options with the defaults: branch `main`, output branch `hydrated/<cluster-id>`, intent path
    /// `clusters/<cluster-id>`, embedded templates, no signing key, no credentials.
    pub fn new(
        repo: impl Into<String>,
        cluster_id: impl Into<String>,
        policy: TrustPolicy,
        work_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            repo: repo.into(),
            cluster_id: cluster_id.into(),
            policy,
            branch: None,
            out: None,
            signing_key: None,
            notes_signing_key: None,
            repo_path: None,
            templates: None,
            velero_namespace: "velero".to_string(),
            work_dir: work_dir.into(),
            credentials: Credentials::None,
            author_name: notes::NOTES_AUTHOR_NAME.to_string(),
            author_email: notes::NOTES_AUTHOR_EMAIL.to_string(),
            retry: RetryPolicy::default(),
            guards: guard::Guards::default(),
        }
    }
}

/// Why a pass could not run. [`HydrateError::is_config`] tells usage and configuration errors (fix the
/// options) from the others (the remote, the repository, the disk).
#[derive(Debug, thiserror::Error)]
pub enum HydrateError {
    #[error("option {option}: {reason}")]
    Option {
        option: &'static str,
        reason: String,
    },
    #[error(transparent)]
    SigningKey(#[from] SignError),
    #[error("templates: {0}")]
    Templates(String),
    #[error("branch {branch} does not exist on {url}")]
    MissingBranch { branch: String, url: String },
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Notes(#[from] NotesError),
    #[error("{what}: {message}")]
    Git { what: String, message: String },
    #[error(
        "refused: the intent path {intent_path} renders nothing, and the output {output} holds {files} \
         file(s): Flux would prune every object; check --repo-path, or pass --allow-empty to empty it"
    )]
    EmptyOutput {
        intent_path: String,
        output: String,
        files: usize,
    },
    #[error(
        "push of {reference} to {url} was rejected {attempts} time(s): other writers keep moving it; run again"
    )]
    Contention {
        reference: String,
        url: String,
        attempts: u32,
    },
}

impl HydrateError {
    /// A usage or configuration error (exit code 2 in the CLI, not worth retrying).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Option { .. } | Self::SigningKey(_) | Self::Templates(_)
        )
    }
}

impl From<SelectError> for HydrateError {
    fn from(e: SelectError) -> Self {
        match e {
            SelectError::Verify(e @ VerifyError::BadPath { .. }) => HydrateError::Option {
                option: "repo-path",
                reason: e.to_string(),
            },
            SelectError::Walk { what, message } => git_err(what, message),
            SelectError::Refused { what, source } => git_err(what, format!("refused: {source}")),
        }
    }
}

fn git_err(what: impl Into<String>, e: impl fmt::Display) -> HydrateError {
    HydrateError::Git {
        what: what.into(),
        message: e.to_string(),
    }
}

/// What happened to one intent commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CommitOutcome {
    /// Verified, and its changes are in the rendering.
    Rendered,
    /// Its signature is not trusted: nothing after it (range mode) is rendered.
    Refused,
    /// Verified, but the revision it belongs to does not render (validation or template problems).
    Invalid,
    /// Verified, but not rendered yet: it comes after a refused commit, or the revision is invalid.
    Waiting,
}

/// One intent commit processed by a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitReport {
    pub commit: String,
    pub outcome: CommitOutcome,
    /// The verdict: kind, signer, key fingerprint, and the reason when refused.
    pub verdict: Verdict,
}

/// A note record written (or still pending) by a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteReport {
    pub commit: String,
    pub outcome: String,
    pub reason: String,
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HydrateReport {
    pub cluster_id: String,
    pub intent_branch: String,
    pub intent_path: String,
    /// The output as named in notes: `<branch>` or `<intent-branch>:<path>`.
    pub output: String,
    /// The intent branch head fetched.
    pub intent_head: String,
    /// The last hydrated intent commit (from the newest trusted output commit), when there is one.
    pub last_hydrated: Option<String>,
    /// The intent revision rendered; `None` when nothing verified could be rendered.
    pub revision: Option<String>,
    /// The intent commits that changed the intent path since the last hydrated one, newest first.
    pub commits: Vec<CommitReport>,
    /// Objects rendered at `revision`.
    pub objects: usize,
    /// Files (full paths) added, changed and removed by the output commit.
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Why the revision did not render (`path: Kind/ns/name: field: reason`); nothing was committed.
    pub problems: Vec<String>,
    /// Why a rendering that changed was not committed, when it was not (path mode, unverified head).
    pub not_committed: Option<String>,
    /// The new output commit; `None` when the output already held the rendering (or nothing rendered).
    pub output_commit: Option<String>,
    /// Output pushes attempted (rejections included).
    pub push_attempts: u32,
    /// Records written to the notes ref in this pass.
    pub notes: Vec<NoteReport>,
    /// Records still waiting for delivery (kept in the work dir for the next pass).
    pub notes_pending: usize,
}

impl HydrateReport {
    /// True when nothing was refused or invalid (exit code 0); false means exit code 1.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
            && self.not_committed.is_none()
            && self
                .commits
                .iter()
                .all(|c| matches!(c.outcome, CommitOutcome::Rendered | CommitOutcome::Waiting))
    }
}

/// A branch name git accepts (a subset: what `git check-ref-format --branch` accepts for plain names).
fn check_branch(option: &'static str, name: &str) -> Result<(), HydrateError> {
    let bad = name.is_empty()
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.contains("/.")
        || name
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
    if bad {
        return Err(HydrateError::Option {
            option,
            reason: format!("{name:?} is not a valid branch name"),
        });
    }
    Ok(())
}

/// A `/`-separated path inside the repo, without empty, `.` or `..` components; returned trimmed.
fn check_path(option: &'static str, path: &str) -> Result<String, HydrateError> {
    let p = path.trim_matches('/');
    if p.is_empty() || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(HydrateError::Option {
            option,
            reason: format!("{path:?} must be a relative path without empty, '.' or '..' parts"),
        });
    }
    Ok(p.to_string())
}

/// Whether one path is the other or lies below it.
fn overlaps(a: &str, b: &str) -> bool {
    let within = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
    within(a, b) || within(b, a)
}

/// The resolved configuration of a pass.
struct Setup<'a> {
    opts: &'a HydrateOptions,
    branch: String,
    intent_path: String,
    intent_ref: String,
    /// The ref the output is pushed to (the intent ref in path mode).
    out_ref: String,
    /// The output prefix in the output tree (`""`: the root of the output branch).
    out_prefix: String,
    path_mode: bool,
    /// The output as named in notes and reports.
    output_name: String,
    notes_ref: String,
    key: Option<SigningKey>,
    /// Signs the outcome records.
    notes_signer: Option<std::sync::Arc<notes::auth::NotesSigner>>,
    /// The policy that trusts exactly the signing key: how output commits are recognised.
    own_policy: Option<TrustPolicy>,
    renderer: Renderer,
    cache: PathBuf,
}

impl<'a> Setup<'a> {
    fn new(opts: &'a HydrateOptions) -> Result<Self, HydrateError> {
        let notes_ref = notes::notes_ref(&opts.cluster_id).map_err(|e| HydrateError::Option {
            option: "cluster-id",
            reason: e.to_string(),
        })?;
        if opts.repo.trim().is_empty() {
            return Err(HydrateError::Option {
                option: "repo",
                reason: "empty".into(),
            });
        }
        let branch = opts
            .branch
            .clone()
            .unwrap_or_else(|| DEFAULT_BRANCH.to_string());
        check_branch("branch", &branch)?;
        let intent_path = check_path(
            "repo-path",
            &opts
                .repo_path
                .clone()
                .unwrap_or_else(|| format!("clusters/{}", opts.cluster_id)),
        )?;
        let out = opts
            .out
            .clone()
            .unwrap_or_else(|| OutTarget::Branch(format!("hydrated/{}", opts.cluster_id)));
        let (out_ref, out_prefix, path_mode, output_name) = match &out {
            OutTarget::Branch(b) => {
                check_branch("out-branch", b)?;
                if *b == branch {
                    return Err(HydrateError::Option {
                        option: "out-branch",
                        reason: format!(
                            "{b:?} is the intent branch; use --out-path to write into it"
                        ),
                    });
                }
                (format!("refs/heads/{b}"), String::new(), false, b.clone())
            }
            OutTarget::Path(p) => {
                let p = check_path("out-path", p)?;
                if overlaps(&p, &intent_path) {
                    return Err(HydrateError::Option {
                        option: "out-path",
                        reason: format!(
                            "{p:?} overlaps the intent path {intent_path:?}: the output must stay out of the intents"
                        ),
                    });
                }
                (
                    format!("refs/heads/{branch}"),
                    p.clone(),
                    true,
                    format!("{branch}:{p}"),
                )
            }
        };
        let key = opts
            .signing_key
            .as_deref()
            .map(SigningKey::load)
            .transpose()?;
        let own_policy = key.as_ref().map(SigningKey::own_policy).transpose()?;
        let notes_signer = opts
            .notes_signing_key
            .as_deref()
            .map(notes::auth::NotesSigner::load)
            .transpose()
            .map_err(|e| HydrateError::Option {
                option: "notes-signing-key",
                reason: e.to_string(),
            })?
            .map(std::sync::Arc::new);
        let renderer = crate::render::renderer(
            opts.templates.as_deref(),
            Some(&opts.cluster_id),
            &opts.velero_namespace,
        )
        .map_err(|e| HydrateError::Templates(e.to_string()))?
        .with_allowed_chart_hosts(opts.guards.allowed_chart_hosts.clone());
        Ok(Self {
            opts,
            intent_ref: format!("refs/heads/{branch}"),
            branch,
            intent_path,
            out_ref,
            out_prefix,
            path_mode,
            output_name,
            notes_ref,
            key,
            notes_signer,
            own_policy,
            renderer,
            cache: opts.work_dir.join("repo.git"),
        })
    }

    fn url(&self) -> String {
        remote::display_url(&self.opts.repo)
    }
}

/// The newest output commit of this cluster that the operator can vouch for.
struct LastOutput {
    commit: ObjectId,
    trailers: message::Trailers,
    /// Signed by the operator's own key (always false without a signing key).
    trusted: bool,
}

impl Setup<'_> {
    /// The newest commit reachable from `tip` whose trailers name this cluster, preferring (and, with a
    /// signing key, requiring) one signed by the operator's key.
    fn last_output(&self, repo: &Repo, tip: ObjectId) -> Result<Option<LastOutput>, HydrateError> {
        let what = || format!("walking {} for output commits", self.out_ref);
        let walk = repo
            .walk_newest_first([tip], [])
            .map_err(|e| git_err(what(), e))?;
        let mut buf = Vec::new();
        for info in walk {
            let info = info.map_err(|e| git_err(what(), e))?;
            // Read within the bounds (crate::git::bounds): the output branch can be pushed to by anyone with
            // push access.
            let data = repo
                .read(info.id, &mut buf)
                .map_err(|e| git_err(what(), e))?;
            let trailers = message::parse(&message::body(data.map(|d| d.data).unwrap_or_default()));
            if trailers.cluster.as_deref() != Some(self.opts.cluster_id.as_str())
                || trailers.intent_commit.is_none()
            {
                continue;
            }
            match &self.own_policy {
                None => {
                    return Ok(Some(LastOutput {
                        commit: info.id,
                        trailers,
                        trusted: false,
                    }));
                }
                Some(policy) => {
                    if Verifier::new(repo, policy).commit(info.id).ok {
                        return Ok(Some(LastOutput {
                            commit: info.id,
                            trailers,
                            trusted: true,
                        }));
                    }
                    tracing::warn!(commit = %info.id, "output commit not signed by the operator's key; ignored");
                }
            }
        }
        Ok(None)
    }

    /// Verify what is new and choose the revision to render.
    fn select(
        &self,
        repo: &Repo,
        base: Option<ObjectId>,
        head: ObjectId,
    ) -> Result<Selection, HydrateError> {
        Ok(select(
            repo,
            &self.opts.policy,
            &self.intent_path,
            base,
            head,
            None,
        )?)
    }

    /// The entries below the output prefix in the tree of `tip`.
    fn current_entries(
        &self,
        repo: &Repo,
        tip: Option<ObjectId>,
    ) -> Result<BTreeMap<String, CurrentEntry>, HydrateError> {
        let mut out = BTreeMap::new();
        let Some(tip) = tip else {
            return Ok(out);
        };
        let what = || format!("reading the output tree of {tip}");
        let (tree, _) = repo
            .commit_tree_and_parents(tip)
            .map_err(|e| git_err(what(), e))?;
        let start = match repo
            .lookup(tree, &self.out_prefix)
            .map_err(|e| git_err(what(), e))?
        {
            None => return Ok(out),
            Some((mode, id)) if mode.is_tree() => id,
            Some((_, id)) => {
                out.insert(
                    self.out_prefix.clone(),
                    CurrentEntry {
                        id,
                        regular_file: false,
                    },
                );
                return Ok(out);
            }
        };
        let hash = repo.gix().object_hash();
        let mut buf = Vec::new();
        let mut stack = vec![(start, self.out_prefix.clone())];
        while let Some((id, base)) = stack.pop() {
            let data = match repo.read(id, &mut buf).map_err(|e| git_err(what(), e))? {
                Some(d) if d.kind == gix::objs::Kind::Tree => d.data,
                _ => return Err(git_err(what(), format!("tree {id} is missing"))),
            };
            for entry in gix::objs::TreeRefIter::from_bytes(data, hash) {
                let entry = entry.map_err(|e| git_err(what(), e))?;
                let bound = crate::git::bounds::Bound::TreeEntries;
                if (out.len() + stack.len()) as u64 >= bound.limit() {
                    return Err(git_err(what(), format!("refused: (bound: {bound})")));
                }
                let name = String::from_utf8_lossy(entry.filename);
                let path = plan::join(&base, &name);
                if entry.mode.is_tree() {
                    stack.push((entry.oid.to_owned(), path));
                } else {
                    out.insert(
                        path,
                        CurrentEntry {
                            id: entry.oid.to_owned(),
                            regular_file: entry.mode.kind() == gix::objs::tree::EntryKind::Blob,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Write the output commit (on top of `tip`) as one pack; returns its id. No ref is moved.
    fn write_output(
        &self,
        repo: &Repo,
        tip: Option<ObjectId>,
        plan: &Plan,
        desired: &BTreeMap<String, DesiredFile>,
        message: String,
    ) -> Result<ObjectId, HydrateError> {
        let what = "writing the output commit";
        let err = |e: &dyn fmt::Display| git_err(what, e);
        let hash = repo.gix().object_hash();
        let mut mem = repo.gix().clone().with_object_memory();
        let base_tree = match tip {
            Some(t) => mem
                .find_commit(t)
                .map_err(|e| err(&e))?
                .tree_id()
                .map_err(|e| err(&e))?
                .detach(),
            None => ObjectId::empty_tree(hash),
        };
        let files = plan.added.iter().chain(&plan.changed).filter_map(|path| {
            desired
                .get(path)
                .map(|f| (path.as_str(), f.data.as_slice()))
        });
        let removed = plan.removed.iter().map(String::as_str);
        let tree = write::edit_tree(&mem, base_tree, removed, files).map_err(|e| err(&e))?;
        let person = write::person(
            &self.opts.author_name,
            &self.opts.author_email,
            gix::date::Time::now_utc(),
        );
        let commit = write::new_commit(
            &mem,
            tree,
            tip,
            person.clone(),
            person,
            message,
            self.key.as_ref(),
        )?;
        let id = mem.write_object(&commit).map_err(|e| err(&e))?.detach();
        if let Some(objects) = mem.objects.take_object_memory() {
            notes::write_pack(repo.gix(), &objects).map_err(|e| err(&e))?;
        }
        Ok(id)
    }

    fn record(
        &self,
        commit: &str,
        outcome: &str,
        reason: &str,
        message: String,
        child_refs: BTreeMap<String, String>,
    ) -> Result<OutcomeRecord, HydrateError> {
        Ok(OutcomeRecord::new(NewRecord {
            cluster: self.opts.cluster_id.clone(),
            kind: RECORD_KIND.to_string(),
            namespace: String::new(),
            name: self.output_name.clone(),
            uid: commit.to_string(),
            generation: 0,
            outcome: outcome.to_string(),
            reason: reason.to_string(),
            message,
            child_refs,
            time: None,
        })?)
    }

    /// The `Rendered` record of an intent commit taken in by the output commit `output` at `revision`.
    fn rendered_record(
        &self,
        v: &VerifiedIntent,
        revision: ObjectId,
        output: ObjectId,
    ) -> Result<NoteEntry, HydrateError> {
        let record = self.record(
            &v.commit.to_string(),
            OUTCOME_RENDERED,
            reasons::COMMIT_VERIFIED,
            format!(
                "signed by {} ({} key {}); rendered at revision {revision} into {} (output commit {output})",
                v.signer, v.kind, v.fingerprint, self.output_name
            ),
            BTreeMap::from([
                ("intentRevision".to_string(), revision.to_string()),
                ("outputCommit".to_string(), output.to_string()),
                ("output".to_string(), self.output_name.clone()),
                ("signer".to_string(), v.signer.clone()),
                ("key".to_string(), v.fingerprint.clone()),
            ]),
        )?;
        Ok(NoteEntry {
            commit: v.commit,
            record,
        })
    }

    /// The `Rejected` record of a refused commit.
    fn refused_record(&self, v: &Verdict) -> Result<Option<NoteEntry>, HydrateError> {
        let Some(commit) = oid_of(v) else {
            return Ok(None);
        };
        let (reason, why) = match &v.reason {
            Some(f) if f.reason == Reason::Unsigned => (
                reasons::UNSIGNED_COMMIT,
                format!("{}: {}", f.reason, f.message),
            ),
            Some(f) => (
                reasons::UNTRUSTED_SIGNATURE,
                format!("{}: {}", f.reason, f.message),
            ),
            None => (reasons::UNTRUSTED_SIGNATURE, "not trusted".to_string()),
        };
        let after = match self.opts.policy.mode {
            Mode::Range => "; intent changes after it are not rendered while it is in the history",
            Mode::Head => "",
        };
        let mut refs = BTreeMap::from([("output".to_string(), self.output_name.clone())]);
        if let Some(r) = &v.reason {
            refs.insert("verdict".to_string(), r.reason.as_str().to_string());
        }
        if let Some(fp) = &v.fingerprint {
            refs.insert("key".to_string(), fp.clone());
        }
        let record = self.record(
            &v.sha,
            OUTCOME_REJECTED,
            reason,
            format!("not hydrated: the commit is not trusted: {why}{after}"),
            refs,
        )?;
        Ok(Some(NoteEntry { commit, record }))
    }

    /// The `Rejected` record of the newest verified commit of a revision that does not render.
    fn invalid_record(
        &self,
        v: &Verdict,
        revision: ObjectId,
        problems: &[Problem],
    ) -> Result<Option<NoteEntry>, HydrateError> {
        let Some(commit) = oid_of(v) else {
            return Ok(None);
        };
        let render_failed = problems
            .iter()
            .any(|p| p.reason.contains(reasons::RENDER_FAILED) || p.reason.contains("template"));
        let reason = if render_failed {
            reasons::RENDER_FAILED
        } else {
            reasons::INVALID_SPEC
        };
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let record = self.record(
            &v.sha,
            OUTCOME_REJECTED,
            reason,
            format!(
                "revision {revision} does not render ({} problem(s)); nothing was committed to {}: {}",
                problems.len(),
                self.output_name,
                list.join("; ")
            ),
            BTreeMap::from([
                ("intentRevision".to_string(), revision.to_string()),
                ("output".to_string(), self.output_name.clone()),
            ]),
        )?;
        Ok(Some(NoteEntry { commit, record }))
    }

    /// Sign the records, then drop those already in the fetched notes ref ([`notes::auth::already_noted`]:
    /// a record someone else wrote with the same id does not count).
    fn unwritten(&self, repo: &Repo, entries: Vec<NoteEntry>) -> Vec<NoteEntry> {
        let mut present: HashMap<ObjectId, Vec<OutcomeRecord>> = HashMap::new();
        let refs = [self.notes_ref.clone()];
        let mut out = Vec::new();
        for mut e in entries {
            if let Some(signer) = &self.notes_signer {
                signer.sign(&e.commit, &mut e.record);
            }
            let records = present.entry(e.commit).or_insert_with(|| {
                match notes::read_notes(repo.gix(), &refs, e.commit) {
                    Ok(notes) => notes
                        .into_iter()
                        .flat_map(|(_, lines)| lines)
                        .filter_map(|l| match l {
                            NoteLine::Record(r) => Some(*r),
                            NoteLine::Other(_) => None,
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                }
            });
            if !records
                .iter()
                .any(|r| notes::auth::already_noted(&e.commit, r, &e.record))
            {
                records.push(e.record.clone());
                out.push(e);
            }
        }
        out
    }
}

/// The verdict as it goes into a `Verified-Intent` trailer.
fn verified_intent(v: &Verdict) -> Option<VerifiedIntent> {
    Some(VerifiedIntent {
        commit: oid_of(v)?,
        kind: v.kind.map_or("unknown", |k| k.as_str()).to_string(),
        fingerprint: v.fingerprint.clone().unwrap_or_else(|| "-".to_string()),
        signer: v.signer.clone().unwrap_or_default(),
    })
}

/// The files of a revision's rendering, or the problems that stop it.
struct Rendering {
    /// Objects rendered (by the intents that rendered).
    objects: usize,
    desired: BTreeMap<String, DesiredFile>,
    /// Validation, render and naming problems: any of them means no output.
    problems: Vec<Problem>,
}

impl Setup<'_> {
    /// Read the intents at `target` from git objects and render them (the function `render` and the
    /// controller use), then name their files.
    fn render_at(&self, repo: &Repo, target: ObjectId) -> Result<Rendering, HydrateError> {
        let mut problems = Vec::new();
        let files = match load_rev(repo, &target.to_string(), &self.intent_path) {
            Ok(files) => files,
            // Refused contents (a symlink, a bound exceeded, the path missing): no output, never an empty one.
            Err(e) if e.is_refusal() => {
                problems.push(Problem::new(&self.intent_path, "", "", e.to_string()));
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        let result = render_tree(&files, &self.renderer, Some(&self.opts.cluster_id));
        problems.extend(result.problems.iter().cloned());
        problems.extend(guard::namespace_problems(&self.opts.guards, &result));
        let (desired, naming) = plan::desired_files(&result, &self.out_prefix);
        problems.extend(naming);
        Ok(Rendering {
            objects: result.objects().count(),
            desired,
            problems,
        })
    }
}

/// One computed pass: the report so far, the output commit to push, and the notes to write once it is
/// pushed.
struct Pass {
    report: HydrateReport,
    /// The new output commit and the value the output ref must still have on the remote.
    push: Option<(ObjectId, Option<ObjectId>)>,
    notes: Vec<NoteEntry>,
}

impl Setup<'_> {
    /// Fetch, verify, render and plan; write the output commit locally if something changed.
    fn pass(&self) -> Result<Pass, HydrateError> {
        let opts = self.opts;
        let mut refspecs = vec![
            format!("+{0}:{0}", self.intent_ref),
            format!("+{0}:{0}", self.notes_ref),
        ];
        if !self.path_mode {
            refspecs.push(format!("+{0}:{0}", self.out_ref));
        }
        let specs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
        let fetched = remote::fetch(&self.cache, &opts.repo, &specs, &opts.credentials)?;
        let remote_ref = |name: &str| {
            fetched
                .remote_refs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, id)| *id)
        };
        let head = remote_ref(&self.intent_ref).ok_or_else(|| HydrateError::MissingBranch {
            branch: self.branch.clone(),
            url: self.url(),
        })?;
        let out_tip = if self.path_mode {
            Some(head)
        } else {
            remote_ref(&self.out_ref)
        };
        let notes_on_remote = remote_ref(&self.notes_ref).is_some();
        let repo = Repo::open(&self.cache)?;

        let last = match out_tip {
            Some(tip) => self.last_output(&repo, tip)?,
            None => None,
        };
        let last_intent = last
            .as_ref()
            .and_then(|l| l.trailers.intent_commit)
            .filter(|id| repo.gix().find_commit(*id).is_ok());
        // Only an output commit signed by the operator's key vouches for what was verified before.
        let base = last.as_ref().filter(|l| l.trusted).and(last_intent);
        let mut sel = self.select(&repo, base, head)?;
        if base.is_none()
            && let Some(seen) = last_intent
        {
            // Unsigned output: everything was verified again; report (and note) only what is new since
            // the last output commit.
            let (parents, _) = range_graph(&repo, None, seen)?;
            let old = |v: &Verdict| oid_of(v).is_some_and(|id| parents.contains_key(&id));
            sel.processed.retain(|v| !old(v));
        }

        let mut report = HydrateReport {
            cluster_id: opts.cluster_id.clone(),
            intent_branch: self.branch.clone(),
            intent_path: self.intent_path.clone(),
            output: self.output_name.clone(),
            intent_head: head.to_string(),
            last_hydrated: last_intent.map(|id| id.to_string()),
            revision: sel.target.map(|t| t.to_string()),
            commits: Vec::new(),
            objects: 0,
            added: Vec::new(),
            changed: Vec::new(),
            removed: Vec::new(),
            problems: Vec::new(),
            not_committed: None,
            output_commit: None,
            push_attempts: 0,
            notes: Vec::new(),
            notes_pending: 0,
        };
        let mut notes = Vec::new();
        // Heal: the Rendered records of the last trusted output commit (a crash may have lost them).
        if let Some(l) = last.as_ref().filter(|l| l.trusted)
            && let Some(rev) = l.trailers.intent_commit
        {
            for v in &l.trailers.verified {
                notes.push(self.rendered_record(v, rev, l.commit)?);
            }
        }
        for v in &sel.refused {
            notes.extend(self.refused_record(v)?);
        }

        let mut push = None;
        if let Some(target) = sel.target {
            let Rendering {
                objects,
                desired,
                problems,
            } = self.render_at(&repo, target)?;
            report.objects = objects;
            if !problems.is_empty() {
                report.problems = problems.iter().map(ToString::to_string).collect();
                if let Some(newest) = sel.processed.first() {
                    notes.extend(self.invalid_record(newest, target, &problems)?);
                }
                for (i, v) in sel.processed.iter().enumerate() {
                    let outcome = if i == 0 {
                        CommitOutcome::Invalid
                    } else {
                        CommitOutcome::Waiting
                    };
                    report.commits.push(CommitReport {
                        commit: v.sha.clone(),
                        outcome,
                        verdict: v.clone(),
                    });
                }
            } else {
                let current = self.current_entries(&repo, out_tip)?;
                let (path, out) = (&self.intent_path, &self.output_name);
                guard::refuse_empty(&opts.guards, &desired, &current, path, out)?;
                let plan = plan::plan(&desired, &current, repo.gix().object_hash());
                let verified: Vec<VerifiedIntent> =
                    sel.processed.iter().filter_map(verified_intent).collect();
                let mut output = out_tip;
                if !plan.is_empty() {
                    if self.path_mode && target != head {
                        report.not_committed = Some(format!(
                            "the head of {} has intent commits that are not verified; an output commit signed \
                             on top of it would vouch for them",
                            self.branch
                        ));
                    } else {
                        let text = message::format(&OutputMessage {
                            cluster: &opts.cluster_id,
                            intent_path: &self.intent_path,
                            intent_commit: target,
                            objects: desired.len(),
                            added: plan.added.len(),
                            changed: plan.changed.len(),
                            removed: plan.removed.len(),
                            verified: &verified,
                        });
                        let id = self.write_output(&repo, out_tip, &plan, &desired, text)?;
                        push = Some((id, out_tip));
                        output = Some(id);
                    }
                    report.added = plan.added;
                    report.changed = plan.changed;
                    report.removed = plan.removed;
                }
                if report.not_committed.is_none()
                    && let Some(output) = output
                {
                    for v in &verified {
                        notes.push(self.rendered_record(v, target, output)?);
                    }
                }
                let outcome = if report.not_committed.is_some() {
                    CommitOutcome::Waiting
                } else {
                    CommitOutcome::Rendered
                };
                for v in &sel.processed {
                    report.commits.push(CommitReport {
                        commit: v.sha.clone(),
                        outcome,
                        verdict: v.clone(),
                    });
                }
            }
        }
        for v in &sel.refused {
            report.commits.push(CommitReport {
                commit: v.sha.clone(),
                outcome: CommitOutcome::Refused,
                verdict: v.clone(),
            });
        }
        for v in &sel.waiting {
            report.commits.push(CommitReport {
                commit: v.sha.clone(),
                outcome: CommitOutcome::Waiting,
                verdict: v.clone(),
            });
        }
        // Newest first, in the order the verification walked them.
        report
            .commits
            .sort_by_key(|c| sel.order.get(&c.commit).copied().unwrap_or(usize::MAX));
        let notes = if notes_on_remote {
            self.unwritten(&repo, notes)
        } else {
            notes
        };
        Ok(Pass {
            report,
            push,
            notes,
        })
    }
}

/// One hydrate pass; see the module documentation. Refused or invalid intent is not an error: it is in
/// the report ([`HydrateReport::ok`] is false). Errors are configuration, remote or repository failures.
pub fn hydrate_once(opts: &HydrateOptions) -> Result<HydrateReport, HydrateError> {
    let setup = Setup::new(opts)?;
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| HydrateError::Option {
        option: "work-dir",
        reason: format!("cannot create {}: {e}", opts.work_dir.display()),
    })?;
    remote::open_or_init_cache(&setup.cache)?;
    let mut attempts = 0u32;
    let mut rejections = 0u32;
    let pass = loop {
        let pass = setup.pass()?;
        let Some((new, expected)) = pass.push else {
            break pass;
        };
        attempts += 1;
        match remote::push_cas(
            &setup.cache,
            &opts.repo,
            new,
            &setup.out_ref,
            expected,
            &opts.credentials,
        )? {
            PushOutcome::Accepted => {
                tracing::info!(output = %setup.output_name, commit = %new, "output commit pushed");
                let mut pass = pass;
                pass.report.output_commit = Some(new.to_string());
                break pass;
            }
            PushOutcome::Rejected { reason } => {
                rejections += 1;
                tracing::info!(output = %setup.output_name, %reason, "output push rejected; fetching and planning again");
                if attempts >= opts.retry.max_attempts.max(1) {
                    return Err(HydrateError::Contention {
                        reference: setup.out_ref.clone(),
                        url: setup.url(),
                        attempts,
                    });
                }
                std::thread::sleep(opts.retry.delay(rejections - 1));
            }
        }
    };
    let Pass {
        mut report, notes, ..
    } = pass;
    report.push_attempts = attempts;
    let mut writer = NotesWriter::new(
        &setup.cache,
        opts.repo.clone(),
        &opts.cluster_id,
        &opts.work_dir,
    )?
    .with_credentials(opts.credentials.clone())
    .with_retry(opts.retry.clone());
    if let Some(signer) = &setup.notes_signer {
        writer = writer.with_signer(signer.clone());
    }
    report.notes = notes
        .iter()
        .map(|e| NoteReport {
            commit: e.commit.to_string(),
            outcome: e.record.outcome.clone(),
            reason: e.record.reason.clone(),
        })
        .collect();
    writer.enqueue(notes)?;
    if !writer.pending().is_empty() {
        let flushed = writer.flush()?;
        report.notes_pending = flushed.pending;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let policy = TrustPolicy::from_yaml(
            "sshAllowedSigners: |\n  a@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti\n",
        )
        .unwrap();
        let base = HydrateOptions::new("/nowhere", "c1", policy, "/tmp/x");
        let setup = Setup::new(&base).unwrap();
        assert_eq!(setup.out_ref, "refs/heads/hydrated/c1");
        assert_eq!(setup.intent_path, "clusters/c1");
        assert_eq!(setup.output_name, "hydrated/c1");
        let err = |o: &HydrateOptions| Setup::new(o).err().map(|e| e.to_string());
        let mut o = base.clone();
        o.out = Some(OutTarget::Path("clusters/c1/out".into()));
        assert!(err(&o).unwrap().contains("overlaps the intent path"));
        o.out = Some(OutTarget::Path("clusters".into()));
        assert!(err(&o).unwrap().contains("overlaps"));
        o.out = Some(OutTarget::Path("../x".into()));
        assert!(err(&o).unwrap().starts_with("option out-path:"));
        o.out = Some(OutTarget::Path("hydrated/c1".into()));
        let s = Setup::new(&o).unwrap();
        assert_eq!(
            (
                s.out_ref.as_str(),
                s.out_prefix.as_str(),
                s.output_name.as_str()
            ),
            ("refs/heads/main", "hydrated/c1", "main:hydrated/c1")
        );
        o.out = Some(OutTarget::Branch("main".into()));
        assert!(err(&o).unwrap().contains("is the intent branch"));
        o.out = Some(OutTarget::Branch("a..b".into()));
        assert!(err(&o).unwrap().contains("not a valid branch name"));
        let mut o = base.clone();
        o.cluster_id = "a/b".into();
        assert!(err(&o).unwrap().starts_with("option cluster-id:"));
        let mut o = base;
        o.signing_key = Some("/nonexistent/key".into());
        let e = Setup::new(&o)
            .err()
            .expect("a missing key file is an error");
        assert!(
            e.is_config() && e.to_string().contains("/nonexistent/key"),
            "{e}"
        );
    }
}
