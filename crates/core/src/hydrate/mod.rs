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
//!
//! This file holds the options, errors and report and [`hydrate_once`]; `setup.rs` resolves the options of a
//! pass, `pass.rs` runs its steps, `output.rs` reads and writes the output side, `records.rs` builds the notes.

pub mod guard;
pub mod message;
mod output;
mod pass;
pub mod plan;
mod records;
mod report_text;
mod setup;

use pass::Pass;
use setup::Setup;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::git::notes::{self, NotesError, NotesWriter, RetryPolicy};
use crate::git::policy::TrustPolicy;
use crate::git::remote::{self, Credentials, PushOutcome, RemoteError};
use crate::git::repo::RepoError;
use crate::git::select::SelectError;
use crate::git::sign::SignError;
use crate::git::verify::{Verdict, VerifyError};

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
    /// What the intents are rendered for: Flux (the default) or Argo CD (`--engine`).
    pub helm_engine: crate::render::HelmEngine,
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
            helm_engine: crate::render::HelmEngine::Flux,
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
