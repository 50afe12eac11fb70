//! The demo's report: what it built, what each step said, and the self-checks. JSON as serialized, text by
//! `Display` (short: it is the first thing a newcomer reads).

use std::fmt;

use serde::Serialize;

use super::controller::ControllerInfo;
use super::{BRANCH, CLUSTER, Check, INTENT_PATH, NOTES, REPO_DIR};
use crate::git::short_id;
use crate::git::verify::Verdict;
use crate::hydrate::{CommitOutcome, HydrateReport};

/// One commit the demo wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitLine {
    pub sha: String,
    pub subject: String,
    pub author: String,
    /// What the demo did: signed, not signed, hand-edited after signing.
    pub story: String,
    /// `verified` or `refused: <Reason>`.
    pub expected: String,
}

/// The trust policy, in one line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLine {
    pub signer: String,
    pub comment: String,
    pub fingerprint: String,
    pub mode: String,
}

/// One verdict of the verify step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyLine {
    pub sha: String,
    pub subject: String,
    pub ok: bool,
    pub signer: Option<String>,
    pub fingerprint: Option<String>,
    /// The verify reason (`Unsigned`, `BadSignature`, …) when refused.
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl VerifyLine {
    pub fn new(v: &Verdict, subject: String) -> Self {
        Self {
            sha: v.sha.clone(),
            subject,
            ok: v.ok,
            signer: v.signer.clone(),
            fingerprint: v.fingerprint.clone(),
            reason: v.reason.as_ref().map(|r| r.reason.as_str().to_string()),
            message: v.reason.as_ref().map(|r| r.message.clone()),
        }
    }
}

/// One intent and the objects it rendered to (`Kind namespace/name`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedIntent {
    pub intent: String,
    pub objects: Vec<String>,
}

/// The render step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderInfo {
    pub intents: Vec<RenderedIntent>,
    pub objects: usize,
    pub problems: Vec<String>,
}

/// Everything the demo did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cluster_id: String,
    /// Where everything was built.
    pub dir: String,
    /// Whether `dir` was kept (`--keep`) or removed.
    pub kept: bool,
    /// The commits of `main`, oldest first.
    pub commits: Vec<CommitLine>,
    pub policy: PolicyLine,
    /// The verdicts, oldest first.
    pub verify: Vec<VerifyLine>,
    /// The newest verified revision: what was rendered and hydrated.
    pub revision: String,
    pub render: RenderInfo,
    pub hydrate: HydrateReport,
    /// The key fingerprint the output commit verified with, when it did.
    pub output_signed_by: Option<String>,
    pub operator_key: String,
    /// The git command whose output `notes` is.
    pub notes_command: String,
    pub notes: String,
    pub pull: super::pull::PullInfo,
    pub controller: Option<ControllerInfo>,
    pub checks: Vec<Check>,
    /// Every check passed.
    pub ok: bool,
    pub seconds: f64,
}

impl Report {
    fn subject(&self, sha: &str) -> &str {
        self.commits
            .iter()
            .find(|c| c.sha == sha)
            .map_or("", |c| c.subject.as_str())
    }

    fn subject_width(&self) -> usize {
        self.commits
            .iter()
            .map(|c| c.subject.chars().count())
            .max()
            .unwrap_or(0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.subject_width();
        writeln!(
            f,
            "vworkspace-operator demo: cluster {CLUSTER}, intent path {INTENT_PATH}\n"
        )?;
        self.fmt_repo(f, w)?;
        self.fmt_verify(f, w)?;
        self.fmt_render(f)?;
        self.fmt_hydrate(f, w)?;
        self.fmt_notes(f)?;
        write!(f, "{}", self.pull)?;
        writeln!(f)?;

        if let Some(c) = &self.controller {
            write!(f, "{c}")?;
            writeln!(f)?;
        }
        self.fmt_result(f)?;
        self.fmt_explore(f)
    }
}

impl Report {
    /// 1. The cluster repo and the trust policy.
    fn fmt_repo(&self, f: &mut fmt::Formatter<'_>, w: usize) -> fmt::Result {
        writeln!(
            f,
            "1. The cluster repo: {BRANCH} has {} commits (oldest first), built from examples/cluster-repo",
            self.commits.len()
        )?;
        let aw = self
            .commits
            .iter()
            .map(|c| c.author.chars().count())
            .max()
            .unwrap_or(0);
        for c in &self.commits {
            writeln!(
                f,
                "   {}  {:w$}  {:aw$}  {}",
                short_id(&c.sha),
                c.subject,
                c.author,
                c.story
            )?;
        }
        writeln!(
            f,
            "   trust policy: mode {}, one SSH signer: {} ({}), key {}\n",
            self.policy.mode, self.policy.signer, self.policy.comment, self.policy.fingerprint
        )?;
        Ok(())
    }

    /// 2. The verdicts and the newest verified revision.
    fn fmt_verify(&self, f: &mut fmt::Formatter<'_>, w: usize) -> fmt::Result {
        writeln!(
            f,
            "2. verify: every commit of {BRANCH} that changed {INTENT_PATH}"
        )?;
        for v in &self.verify {
            if v.ok {
                writeln!(
                    f,
                    "   ✓ {}  {:w$}  signed by {}, key {}",
                    short_id(&v.sha),
                    v.subject,
                    v.signer.as_deref().unwrap_or("?"),
                    v.fingerprint.as_deref().unwrap_or("?")
                )?;
            } else {
                writeln!(
                    f,
                    "   ✗ {}  {:w$}  refused: {}: {}",
                    short_id(&v.sha),
                    v.subject,
                    v.reason.as_deref().unwrap_or("?"),
                    v.message.as_deref().unwrap_or("")
                )?;
            }
        }
        writeln!(
            f,
            "   newest verified revision: {} ({}); in range mode nothing from a refused commit on is acted on\n",
            short_id(&self.revision),
            self.subject(&self.revision)
        )?;
        Ok(())
    }

    /// 3. What each intent rendered to.
    fn fmt_render(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "3. render {}: {} intents → {} objects",
            short_id(&self.revision),
            self.render.intents.len(),
            self.render.objects
        )?;
        let iw = self
            .render
            .intents
            .iter()
            .map(|i| i.intent.chars().count())
            .max()
            .unwrap_or(0);
        for i in &self.render.intents {
            let objects = if i.objects.is_empty() {
                "(nothing: a placeholder)".to_string()
            } else {
                i.objects.join(", ")
            };
            writeln!(f, "   {:iw$}  → {objects}", i.intent)?;
        }
        for p in &self.render.problems {
            writeln!(f, "   problem: {p}")?;
        }
        writeln!(f)?;
        Ok(())
    }

    /// 4. The output commit and what became of each commit.
    fn fmt_hydrate(&self, f: &mut fmt::Formatter<'_>, w: usize) -> fmt::Result {
        let h = &self.hydrate;
        match &h.output_commit {
            Some(c) => writeln!(
                f,
                "4. hydrate: output commit {} on {} ({} files), signed by the operator's key {}",
                short_id(c),
                h.output,
                h.added.len() + h.changed.len(),
                match &self.output_signed_by {
                    Some(fp) => format!("{fp} ✓"),
                    None => format!("{} ✗ (does not verify)", self.operator_key),
                }
            )?,
            None => writeln!(f, "4. hydrate: no output commit ({} unchanged)", h.output)?,
        }
        for c in self.commits.iter() {
            let outcome = h
                .commits
                .iter()
                .find(|r| r.commit == c.sha)
                .map(|r| r.outcome);
            let note = h.notes.iter().find(|n| n.commit == c.sha).map_or_else(
                || "no note".to_string(),
                |n| format!("note {}/{}", n.outcome, n.reason),
            );
            let what = match outcome {
                Some(CommitOutcome::Rendered) => "rendered",
                Some(CommitOutcome::Refused) => "refused",
                Some(CommitOutcome::Invalid) => "invalid",
                Some(CommitOutcome::Waiting) => "waiting",
                None => "not processed",
            };
            writeln!(
                f,
                "   {}  {:w$}  {what:8}  {note}",
                short_id(&c.sha),
                c.subject
            )?;
        }
        writeln!(f)?;
        Ok(())
    }

    /// 5. The audit trail.
    fn fmt_notes(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "5. The audit trail (git notes on the intent commits): {}",
            self.notes_command
        )?;
        write!(f, "{}", self.notes)?;
        if !self.notes.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f)?;
        Ok(())
    }

    /// The self-checks' result and the time taken.
    fn fmt_result(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed: Vec<&Check> = self.checks.iter().filter(|c| !c.ok).collect();
        if failed.is_empty() {
            writeln!(
                f,
                "Result: as designed ({} checks). Verified and rendered: {} commits signed by {}; refused: {}.",
                self.checks.len(),
                self.verify.iter().filter(|v| v.ok).count(),
                self.policy.signer,
                self.verify
                    .iter()
                    .filter(|v| !v.ok)
                    .map(|v| format!("{} ({})", v.reason.as_deref().unwrap_or("?"), v.subject))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        } else {
            writeln!(
                f,
                "Result: NOT as designed: {} of {} checks failed:",
                failed.len(),
                self.checks.len()
            )?;
            for c in failed {
                writeln!(f, "   ✗ {}: got {}", c.what, c.got)?;
            }
        }
        writeln!(f, "Took {:.1} s.", self.seconds)?;
        Ok(())
    }

    /// Where to explore what was kept, or that nothing was.
    fn fmt_explore(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kept {
            let d = &self.dir;
            writeln!(f, "\nEverything is kept in {d}. Explore it:")?;
            writeln!(
                f,
                "   git -C {d}/{REPO_DIR} log --notes={NOTES} --format='%h %s%n%N' {BRANCH}"
            )?;
            writeln!(
                f,
                "   vworkspace-operator verify --repo {d}/{REPO_DIR} --policy {d}/policy.yaml --path {INTENT_PATH} {BRANCH}"
            )?;
            writeln!(
                f,
                "   vworkspace-operator render --repo {d}/{REPO_DIR} --rev {} --cluster-id {CLUSTER}",
                short_id(&self.revision)
            )?;
            writeln!(
                f,
                "   vworkspace-operator notes log --repo {d}/{REPO_DIR} --cluster-id {CLUSTER} --notes-key {d}/keys/operator.pub {BRANCH}"
            )?;
            writeln!(
                f,
                "   git -C {d}/{REPO_DIR} ls-tree -r --name-only hydrated/{CLUSTER}"
            )?;
        } else {
            writeln!(
                f,
                "The throwaway directory was removed; run `vworkspace-operator demo --keep DIR` to explore it."
            )?;
        }
        Ok(())
    }
}
