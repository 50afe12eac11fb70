//! Reading the audit trail with verdicts: every record of a note is judged on its own ([`super::auth::check`])
//! and against the other records of the same note. Nothing is dropped or merged away: two different records
//! that carry the same id are both returned, both flagged as a conflict, so a record written by someone
//! without the key can neither replace nor hide a genuine one.

use std::collections::HashMap;

use gix::ObjectId;
use serde::Serialize;

use super::auth::{Check, NotesTrust, check};
use super::{NOTES_REF_PREFIX, NoteLine, NotesError, OutcomeRecord, read_notes};

/// What a reader may conclude about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Signed by a trusted notes key for this commit and cluster, its id bound to its content.
    Genuine,
    /// Not shown to be genuine (unsigned legacy record, unknown key, bad signature, id not bound…).
    Unverified,
    /// Not genuine, and it carries the id of another, different record on the same commit: a forgery of that
    /// record, or a record trying to hide it.
    Conflicting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Genuine => "genuine",
            Status::Unverified => "unverified",
            Status::Conflicting => "conflicting",
        }
    }
}

/// The verdict on one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub status: Status,
    /// The name of the trusted key that signed it (genuine records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Why it is not genuine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Another, different record on the same commit carries the same id (genuine records too are flagged).
    pub conflict: bool,
}

/// A record and its verdict. In JSON, the record's fields and `verification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JudgedRecord {
    #[serde(flatten)]
    pub record: OutcomeRecord,
    pub verification: Verification,
}

/// Judge the records of one note on `commit`, read from the notes ref of `ref_cluster` (when known), in
/// their order. Records that are exactly equal are not a conflict; two different records with one id are.
pub fn judge(
    commit: &ObjectId,
    ref_cluster: Option<&str>,
    records: Vec<OutcomeRecord>,
    trust: &NotesTrust,
) -> Vec<JudgedRecord> {
    let mut variants: HashMap<&str, Vec<&OutcomeRecord>> = HashMap::new();
    for r in &records {
        let v = variants.entry(r.id.as_str()).or_default();
        if !v.contains(&r) {
            v.push(r);
        }
    }
    let conflicted: Vec<bool> = records
        .iter()
        .map(|r| variants.get(r.id.as_str()).is_some_and(|v| v.len() > 1))
        .collect();
    records
        .into_iter()
        .zip(conflicted)
        .map(|(record, conflict)| {
            let verification = match check(commit, &record, trust, ref_cluster) {
                Check::Genuine { signer } => Verification {
                    status: Status::Genuine,
                    signer: Some(signer),
                    problem: None,
                    conflict,
                },
                Check::Unverified { problem } => Verification {
                    status: if conflict {
                        Status::Conflicting
                    } else {
                        Status::Unverified
                    },
                    signer: None,
                    problem: Some(problem),
                    conflict,
                },
            };
            JudgedRecord {
                record,
                verification,
            }
        })
        .collect()
}

/// The notes of one commit in one notes ref, judged.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefNotes {
    /// The notes ref, e.g. `refs/notes/vworkspace/prod-1`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The cluster id taken from the ref name.
    pub cluster_id: String,
    pub records: Vec<JudgedRecord>,
    /// Lines that are not outcome records (e.g. added by hand), verbatim: never genuine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_lines: Vec<String>,
}

impl RefNotes {
    /// How many records are genuine, unverified and conflicting.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |s| {
            self.records
                .iter()
                .filter(|r| r.verification.status == s)
                .count()
        };
        (
            n(Status::Genuine),
            n(Status::Unverified),
            n(Status::Conflicting),
        )
    }
}

/// Every note on `commit` in the notes refs matching `refs` (literal refs or globs), each record judged
/// with `trust`.
pub fn read_judged(
    repo: &gix::Repository,
    refs: &[String],
    commit: ObjectId,
    trust: &NotesTrust,
) -> Result<Vec<RefNotes>, NotesError> {
    Ok(read_notes(repo, refs, commit)?
        .into_iter()
        .map(|(reference, lines)| {
            let cluster_id = reference
                .strip_prefix(NOTES_REF_PREFIX)
                .unwrap_or(&reference)
                .to_string();
            let mut records = Vec::new();
            let mut other_lines = Vec::new();
            for l in lines {
                match l {
                    NoteLine::Record(r) => records.push(*r),
                    NoteLine::Other(s) => other_lines.push(s),
                }
            }
            let records = judge(&commit, Some(&cluster_id), records, trust);
            RefNotes {
                reference,
                cluster_id,
                records,
                other_lines,
            }
        })
        .collect())
}

/// The non-blank lines of a note, each without its line ending: a trailing CR belongs to the line ending (it
/// could not survive a write and a read back), so a merge writes plain line ends.
pub fn note_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
}
