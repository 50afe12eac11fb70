//! One pass, step by step: fetch, find the last output, verify and select, render, plan, commit, push (with
//! compare-and-swap and retries) and note.

use std::collections::BTreeMap;

use gix::ObjectId;

use super::message::{OutputMessage, VerifiedIntent};
use super::plan::DesiredFile;
use super::{guard, message, plan};
use crate::git::notes::NoteEntry;
use crate::git::remote;
use crate::git::repo::Repo;
use crate::git::repo::load_rev;
use crate::git::select::{Selection, oid_of, range_graph};
use crate::git::verify::Verdict;
use crate::intent::Problem;
use crate::tree::render_tree;

use super::output::LastOutput;
use super::records::verified_intent;
use super::setup::Setup;
use super::{CommitOutcome, CommitReport, HydrateError, HydrateReport};

/// The files of a revision's rendering, or the problems that stop it.
pub(super) struct Rendering {
    /// Objects rendered (by the intents that rendered).
    pub(super) objects: usize,
    pub(super) desired: BTreeMap<String, DesiredFile>,
    /// Validation, render and naming problems: any of them means no output.
    pub(super) problems: Vec<Problem>,
}

impl Setup<'_> {
    /// Read the intents at `target` from git objects and render them (the function `render` and the
    /// controller use), then name their files.
    pub(super) fn render_at(
        &self,
        repo: &Repo,
        target: ObjectId,
    ) -> Result<Rendering, HydrateError> {
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
pub(super) struct Pass {
    pub(super) report: HydrateReport,
    /// The new output commit and the value the output ref must still have on the remote.
    pub(super) push: Option<(ObjectId, Option<ObjectId>)>,
    pub(super) notes: Vec<NoteEntry>,
}

/// The remote refs a pass starts from, as fetched.
struct Heads {
    /// The intent branch's head.
    head: ObjectId,
    /// The output ref's tip (the intent head in path mode), if there is one.
    out_tip: Option<ObjectId>,
    notes_on_remote: bool,
}

/// The last output commit, the intent commit it was made from, and what is verified since.
struct Since {
    last: Option<LastOutput>,
    /// The intent commit the last output names, if it is in the repository.
    last_intent: Option<ObjectId>,
    sel: Selection,
}

impl Setup<'_> {
    /// Fetch, verify, render and plan; write the output commit locally if something changed.
    pub(super) fn pass(&self) -> Result<Pass, HydrateError> {
        let heads = self.fetch_heads()?;
        let repo = Repo::open(&self.cache)?;
        let Since {
            last,
            last_intent,
            sel,
        } = self.select_since_last(&repo, &heads)?;
        let report = self.new_report(heads.head, last_intent, &sel);
        let notes = self.standing_records(last.as_ref(), &sel)?;
        let mut pass = Pass {
            report,
            push: None,
            notes,
        };
        if let Some(target) = sel.target {
            self.render_target(&repo, &heads, &sel, target, &mut pass)?;
        }
        report_refused_and_waiting(&mut pass.report, &sel);
        if heads.notes_on_remote {
            pass.notes = self.unwritten(&repo, std::mem::take(&mut pass.notes));
        }
        Ok(pass)
    }

    /// Fetch the intent ref, the notes ref and (unless in path mode) the output ref; the intent ref must
    /// exist on the remote.
    fn fetch_heads(&self) -> Result<Heads, HydrateError> {
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
        Ok(Heads {
            head,
            out_tip,
            notes_on_remote: remote_ref(&self.notes_ref).is_some(),
        })
    }

    /// Find the last output commit and verify what is new since the intent commit it vouches for (everything,
    /// when it is not signed by the operator's key).
    fn select_since_last(&self, repo: &Repo, heads: &Heads) -> Result<Since, HydrateError> {
        let last = match heads.out_tip {
            Some(tip) => self.last_output(repo, tip)?,
            None => None,
        };
        let last_intent = last
            .as_ref()
            .and_then(|l| l.trailers.intent_commit)
            .filter(|id| repo.gix().find_commit(*id).is_ok());
        // Only an output commit signed by the operator's key vouches for what was verified before.
        let base = last.as_ref().filter(|l| l.trusted).and(last_intent);
        let mut sel = self.select(repo, base, heads.head)?;
        if base.is_none()
            && let Some(seen) = last_intent
        {
            // Unsigned output: everything was verified again; report (and note) only what is new since
            // the last output commit.
            let (parents, _) = range_graph(repo, None, seen)?;
            let old = |v: &Verdict| oid_of(v).is_some_and(|id| parents.contains_key(&id));
            sel.processed.retain(|v| !old(v));
        }
        Ok(Since {
            last,
            last_intent,
            sel,
        })
    }

    /// The report of a pass before anything is rendered.
    fn new_report(
        &self,
        head: ObjectId,
        last_intent: Option<ObjectId>,
        sel: &Selection,
    ) -> HydrateReport {
        HydrateReport {
            cluster_id: self.opts.cluster_id.clone(),
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
        }
    }

    /// The records due whatever is rendered: the Rendered records of the last trusted output commit (healed:
    /// a crash may have lost them), then one per refused commit.
    fn standing_records(
        &self,
        last: Option<&LastOutput>,
        sel: &Selection,
    ) -> Result<Vec<NoteEntry>, HydrateError> {
        let mut notes = Vec::new();
        if let Some(l) = last.filter(|l| l.trusted)
            && let Some(rev) = l.trailers.intent_commit
        {
            for v in &l.trailers.verified {
                notes.push(self.rendered_record(v, rev, l.commit)?);
            }
        }
        for v in &sel.refused {
            notes.extend(self.refused_record(v)?);
        }
        Ok(notes)
    }

    /// Render `target` into `pass`: its problems (then nothing is committed), or the plan against the output.
    fn render_target(
        &self,
        repo: &Repo,
        heads: &Heads,
        sel: &Selection,
        target: ObjectId,
        pass: &mut Pass,
    ) -> Result<(), HydrateError> {
        let Rendering {
            objects,
            desired,
            problems,
        } = self.render_at(repo, target)?;
        pass.report.objects = objects;
        if !problems.is_empty() {
            pass.report.problems = problems.iter().map(ToString::to_string).collect();
            if let Some(newest) = sel.processed.first() {
                pass.notes
                    .extend(self.invalid_record(newest, target, &problems)?);
            }
            for (i, v) in sel.processed.iter().enumerate() {
                let outcome = if i == 0 {
                    CommitOutcome::Invalid
                } else {
                    CommitOutcome::Waiting
                };
                pass.report.commits.push(CommitReport {
                    commit: v.sha.clone(),
                    outcome,
                    verdict: v.clone(),
                });
            }
            return Ok(());
        }
        self.plan_output(repo, heads, sel, target, &desired, pass)
    }

    /// Plan the output of a rendering against the output's current entries; when something changes, write the
    /// output commit locally (to push) unless the intent head holds unverified commits in path mode. Then the
    /// Rendered records of the verified intents taken in, and the commits' outcomes.
    fn plan_output(
        &self,
        repo: &Repo,
        heads: &Heads,
        sel: &Selection,
        target: ObjectId,
        desired: &BTreeMap<String, DesiredFile>,
        pass: &mut Pass,
    ) -> Result<(), HydrateError> {
        let out_tip = heads.out_tip;
        let current = self.current_entries(repo, out_tip)?;
        let (path, out) = (&self.intent_path, &self.output_name);
        guard::refuse_empty(&self.opts.guards, desired, &current, path, out)?;
        let plan = plan::plan(desired, &current, repo.gix().object_hash());
        let verified: Vec<VerifiedIntent> =
            sel.processed.iter().filter_map(verified_intent).collect();
        let report = &mut pass.report;
        let mut output = out_tip;
        if !plan.is_empty() {
            if self.path_mode && target != heads.head {
                report.not_committed = Some(format!(
                    "the head of {} has intent commits that are not verified; an output commit signed \
                     on top of it would vouch for them",
                    self.branch
                ));
            } else {
                let text = message::format(&OutputMessage {
                    cluster: &self.opts.cluster_id,
                    intent_path: &self.intent_path,
                    intent_commit: target,
                    objects: desired.len(),
                    added: plan.added.len(),
                    changed: plan.changed.len(),
                    removed: plan.removed.len(),
                    verified: &verified,
                });
                let id = self.write_output(repo, out_tip, &plan, desired, text)?;
                pass.push = Some((id, out_tip));
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
                pass.notes.push(self.rendered_record(v, target, output)?);
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
        Ok(())
    }
}

/// Add the refused and the waiting commits to the report, then order all its commits newest first, as the
/// verification walked them.
fn report_refused_and_waiting(report: &mut HydrateReport, sel: &Selection) {
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
}
