//! The notes a pass writes on intent commits: `Rendered`, `Rejected` (refused or invalid), and which of them
//! are not written yet.

use std::collections::{BTreeMap, HashMap};

use gix::ObjectId;

use super::message::VerifiedIntent;
use crate::api::conditions::reasons;
use crate::git::notes::{self, NewRecord, NoteEntry, NoteLine, OutcomeRecord};
use crate::git::policy::Mode;
use crate::git::repo::Repo;
use crate::git::select::oid_of;
use crate::git::sigcheck::Reason;
use crate::git::verify::Verdict;
use crate::intent::Problem;

use super::setup::Setup;
use super::{HydrateError, OUTCOME_REJECTED, OUTCOME_RENDERED, RECORD_KIND};

impl Setup<'_> {
    pub(super) fn record(
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
    pub(super) fn rendered_record(
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
    pub(super) fn refused_record(&self, v: &Verdict) -> Result<Option<NoteEntry>, HydrateError> {
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
    pub(super) fn invalid_record(
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
    pub(super) fn unwritten(&self, repo: &Repo, entries: Vec<NoteEntry>) -> Vec<NoteEntry> {
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
pub(super) fn verified_intent(v: &Verdict) -> Option<VerifiedIntent> {
    Some(VerifiedIntent {
        commit: oid_of(v)?,
        kind: v.kind.map_or("unknown", |k| k.as_str()).to_string(),
        fingerprint: v.fingerprint.clone().unwrap_or_else(|| "-".to_string()),
        signer: v.signer.clone().unwrap_or_default(),
    })
}
