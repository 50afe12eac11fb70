//! The text form of a pass report (`hydrate --output text`). Names from the repository and signatures are
//! escaped ([`crate::escape`]).

use std::fmt;

use super::{CommitOutcome, HydrateReport};
use crate::escape::Esc;
use crate::git::short_id;

impl fmt::Display for HydrateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hydrate {}: {} at {} ({}), last hydrated {}",
            self.cluster_id,
            self.intent_branch,
            short_id(&self.intent_head),
            self.intent_path,
            self.last_hydrated.as_deref().map_or("never", short_id),
        )?;
        for c in &self.commits {
            let v = &c.verdict;
            let who = match (&v.kind, &v.signer, &v.fingerprint) {
                (Some(k), Some(s), Some(fp)) => format!(" ({} {}, key {fp})", k.as_str(), Esc(s)),
                _ => String::new(),
            };
            match c.outcome {
                CommitOutcome::Rendered => writeln!(f, "  {} verified{who}: rendered", c.commit)?,
                CommitOutcome::Waiting => writeln!(
                    f,
                    "  {} verified{who}: waiting (not rendered: see above)",
                    c.commit
                )?,
                CommitOutcome::Invalid => writeln!(
                    f,
                    "  {} verified{who}: REJECTED, the revision does not render",
                    c.commit
                )?,
                CommitOutcome::Refused => {
                    let why = v
                        .reason
                        .as_ref()
                        .map(|r| format!("{}: {}", r.reason, Esc(&r.message)))
                        .unwrap_or_default();
                    writeln!(f, "  {} REFUSED: {why}", c.commit)?
                }
            }
        }
        for p in &self.problems {
            writeln!(f, "  problem: {}", Esc(p))?;
        }
        match &self.revision {
            None => writeln!(f, "nothing rendered: no verified revision to render")?,
            Some(rev) if self.problems.is_empty() => writeln!(
                f,
                "rendered {}: {} object(s); files +{} ~{} -{}",
                short_id(rev),
                self.objects,
                self.added.len(),
                self.changed.len(),
                self.removed.len()
            )?,
            Some(rev) => writeln!(
                f,
                "revision {} does not render: {} problem(s); nothing committed",
                short_id(rev),
                self.problems.len()
            )?,
        }
        match (&self.output_commit, &self.not_committed) {
            (Some(c), _) => writeln!(f, "output: committed {c} to {}", self.output)?,
            (None, Some(why)) => writeln!(f, "output: not committed: {}", Esc(why))?,
            (None, None) => writeln!(f, "output: {} unchanged", self.output)?,
        }
        write!(
            f,
            "notes: {} record(s) written",
            self.notes.len().saturating_sub(self.notes_pending)
        )?;
        if self.notes_pending > 0 {
            write!(f, ", {} pending", self.notes_pending)?;
        }
        Ok(())
    }
}
