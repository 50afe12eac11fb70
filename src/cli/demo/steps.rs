//! The demo's steps without a cluster, each with its progress line and its self-checks: build the cluster
//! repo, verify, render, hydrate, read the audit trail, and the Pull-mode scene.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use gix::ObjectId;

use super::report::{self, CommitLine, VerifyLine};
use super::{
    ALICE, BRANCH, CLUSTER, Check, INTENT_PATH, Keys, Progress, REPO_DIR, build_repo,
    check_hydrate, check_verdicts, first_application, git_log_notes, newest_verified, pull,
    render_step,
};
use crate::git::policy::{Mode, TrustPolicy};
use crate::git::repo::Repo;
use crate::git::short_id;
use crate::git::verify::{Verdict, Verifier, verify_commit};
use crate::hydrate::{HydrateOptions, hydrate_once};

/// Step 1: the keys, the demo trust policy (also written to `<dir>/policy.yaml`) and the cluster repo.
pub(super) struct Built {
    pub(super) keys: Keys,
    pub(super) policy: TrustPolicy,
    pub(super) repo_dir: PathBuf,
    /// The commits of `main`, oldest first.
    pub(super) commits: Vec<CommitLine>,
}

pub(super) fn cluster_repo(dir: &Path, progress: &mut Progress) -> anyhow::Result<Built> {
    progress.begin("building the cluster repo from examples/cluster-repo");
    let keys = Keys::generate(dir).context("step 1 (cluster repo): generating keys")?;
    let policy_text = format!(
        "# The demo's trust policy: only Alice's key may sign intent.\nmode: range\nsshAllowedSigners: |\n  {} namespaces=\"git\" {}\n",
        ALICE.email,
        keys.alice.public_key()
    );
    let policy_path = dir.join("policy.yaml");
    std::fs::write(&policy_path, &policy_text)
        .with_context(|| format!("writing {}", policy_path.display()))?;
    let policy = TrustPolicy::from_yaml(&policy_text).context("the demo trust policy")?;
    let repo_dir = dir.join(REPO_DIR);
    let commits = build_repo(&repo_dir, &keys.alice).context("step 1 (cluster repo)")?;
    progress.done(&format!("{} commits", commits.len()));
    Ok(Built {
        keys,
        policy,
        repo_dir,
        commits,
    })
}

/// Step 2: the verdicts on `main` and the newest verified revision.
pub(super) struct Verified {
    pub(super) repo: Repo,
    pub(super) head: ObjectId,
    /// The verdicts, oldest first.
    pub(super) verify: Vec<VerifyLine>,
    pub(super) revision: String,
}

pub(super) fn verify(
    built: &Built,
    progress: &mut Progress,
    checks: &mut Vec<Check>,
) -> anyhow::Result<Verified> {
    progress.begin("verifying main under the demo trust policy");
    let repo = Repo::open(&built.repo_dir)?;
    let head = repo.resolve_commit(BRANCH)?;
    let range = Verifier::new(&repo, &built.policy)
        .range(None, head, Some(INTENT_PATH), Mode::Range)
        .context("step 2 (verify)")?;
    let subject_of = |sha: &str| {
        built
            .commits
            .iter()
            .find(|c| c.sha == sha)
            .map_or_else(String::new, |c| c.subject.clone())
    };
    let mut verify: Vec<VerifyLine> = range
        .verdicts
        .iter()
        .map(|v| VerifyLine::new(v, subject_of(&v.sha)))
        .collect();
    verify.reverse(); // oldest first, as the commits were written
    check_verdicts(&built.commits, &range.verdicts, checks);
    let revision = newest_verified(&repo, head, &range.verdicts)?;
    let refused = range.verdicts.iter().filter(|v| !v.ok).count();
    progress.done(&format!(
        "{} commits, {} refused",
        range.verdicts.len(),
        refused
    ));
    let Some(revision) = revision else {
        bail!("step 2 (verify): no verified revision to render: the first commit was refused");
    };
    Ok(Verified {
        repo,
        head,
        verify,
        revision,
    })
}

/// Step 3: render the newest verified revision.
pub(super) fn render(
    repo: &Repo,
    revision: &str,
    commits: &[CommitLine],
    progress: &mut Progress,
    checks: &mut Vec<Check>,
) -> anyhow::Result<report::RenderInfo> {
    progress.begin(&format!(
        "rendering {} at {}",
        INTENT_PATH,
        short_id(revision)
    ));
    let render = render_step(repo, revision)?;
    checks.push(Check::new(
        "render: the newest verified revision is the second commit",
        commits.get(1).map(|c| c.sha.as_str()) == Some(revision),
        format!("revision {}", short_id(revision)),
    ));
    checks.push(Check::new(
        "render: every intent renders",
        render.problems.is_empty() && render.objects > 0,
        format!(
            "{} objects, {} problems",
            render.objects,
            render.problems.len()
        ),
    ));
    progress.done(&format!(
        "{} intents, {} objects",
        render.intents.len(),
        render.objects
    ));
    Ok(render)
}

/// Step 4: hydrate's report, the verdict on its output commit (under the operator's key), and the cluster
/// repo opened again (it now holds the output and the notes).
pub(super) struct Hydrated {
    pub(super) report: crate::hydrate::HydrateReport,
    pub(super) output_signed: Option<Verdict>,
    pub(super) repo: Repo,
}

pub(super) fn hydrate_output(
    dir: &Path,
    built: &Built,
    revision: &str,
    progress: &mut Progress,
    checks: &mut Vec<Check>,
) -> anyhow::Result<Hydrated> {
    progress.begin("hydrating: committing the rendering, signed by the operator's key");
    let mut opts = HydrateOptions::new(
        built.repo_dir.display().to_string(),
        CLUSTER,
        built.policy.clone(),
        dir.join("hydrate"),
    );
    opts.signing_key = Some(built.keys.operator_path.clone());
    // The same Ed25519 key signs the outcome records: `notes log --notes-key keys/operator.pub` shows them genuine.
    opts.notes_signing_key = Some(built.keys.operator_path.clone());
    let hydrated = hydrate_once(&opts).context("step 4 (hydrate)")?;
    let repo = Repo::open(&built.repo_dir)?;
    let output_signed = match &hydrated.output_commit {
        Some(c) => {
            let id = ObjectId::from_hex(c.as_bytes())
                .map_err(|e| anyhow!("hydrate reported output commit {c:?}: {e}"))?;
            Some(verify_commit(&repo, id, &built.keys.operator.own_policy()?))
        }
        None => None,
    };
    check_hydrate(
        &built.commits,
        revision,
        &hydrated,
        output_signed.as_ref(),
        checks,
    );
    progress.done(&format!(
        "{} files in {}",
        hydrated.added.len() + hydrated.changed.len(),
        short_id(hydrated.output_commit.as_deref().unwrap_or("-"))
    ));
    Ok(Hydrated {
        report: hydrated,
        output_signed,
        repo,
    })
}

/// Step 5: the audit trail as `git log --notes` prints it.
pub(super) fn audit_trail(
    repo_dir: &Path,
    progress: &mut Progress,
    checks: &mut Vec<Check>,
) -> anyhow::Result<String> {
    progress.begin("reading the audit trail with git log --notes");
    let log = git_log_notes(repo_dir)?;
    let rendered = log.matches("\"outcome\":\"Rendered\"").count();
    let rejected = log.matches("\"outcome\":\"Rejected\"").count();
    checks.push(Check::new(
        "notes: git log shows 2 Rendered and 2 Rejected records",
        rendered == 2 && rejected == 2,
        format!("{rendered} Rendered, {rejected} Rejected"),
    ));
    progress.done(&format!("{} records", rendered + rejected));
    Ok(log)
}

/// Step 6: the Pull-mode scene with the first ApplicationInstance at `revision`.
pub(super) fn pull_scene(
    repo: &Repo,
    revision: &str,
    progress: &mut Progress,
    checks: &mut Vec<Check>,
) -> anyhow::Result<pull::PullInfo> {
    progress.begin("Pull mode: a signed and a forged job from a control plane on loopback");
    let app = first_application(repo, revision).context("step 6 (pull)")?;
    let pull = pull::run(CLUSTER, app).context("step 6 (pull)")?;
    let admitted: Vec<&str> = pull
        .jobs
        .iter()
        .filter(|j| j.admitted)
        .map(|j| j.id.as_str())
        .collect();
    checks.push(Check::new(
        "pull: the signed job is admitted and renders, the forged one is refused",
        admitted == ["job-signed"]
            && pull.jobs.iter().any(|j| {
                j.id == "job-forged" && j.verdict.starts_with("JobPayloadSignatureInvalid")
            })
            && pull
                .jobs
                .iter()
                .all(|j| !j.admitted || !j.objects.is_empty()),
        format!("admitted {admitted:?}"),
    ));
    checks.push(Check::new(
        "pull: the control plane received the refusal as the forged job's failed result",
        pull.results.len() == 1
            && pull.results[0].0 == "job-forged"
            && pull.results[0].1["outcome"] == "failed",
        format!("{} result(s)", pull.results.len()),
    ));
    progress.done(&format!("{} jobs", pull.jobs.len()));
    Ok(pull)
}
