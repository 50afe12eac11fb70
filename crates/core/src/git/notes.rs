//! git notes as the audit trail: one notes ref per cluster, `refs/notes/vworkspace/<cluster-id>`, each note a
//! JSON Lines list of outcome records on the intent commit.
//!
//! - [`OutcomeRecord`]: one outcome; its `id` is stable (sha256 of cluster, object uid, generation, outcome),
//!   so writing the same outcome twice is a no-op. The id is an identity, not a proof: [`auth`] signs each
//!   record with the operator's notes key, and [`judge`] tells readers genuine records from others.
//! - [`merge_note`]: the pure merge of a note's text with new records: existing lines are all kept, in order
//!   (only exact duplicates collapse); a new record is skipped only when [`auth::already_noted`] says so.
//! - [`write_batch`]: many records, on many commits, in ONE notes commit (gix notes-tree plumbing).
//! - [`NotesWriter`]: a pending store on disk, and delivery by fetch → merge → compare-and-swap push (git
//!   CLI, never forced) → retry with exponential backoff and jitter. A record leaves the pending store only
//!   once a fetch shows it on the remote.
//!
//! Blocking (gix fetch, git CLI push, sleeps between retries): call from `spawn_blocking`.

pub use super::pack::write_pack;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gix::ObjectId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::remote::{self, Credentials, PushOutcome, RemoteError};
use crate::secrets::{redact_text, redact_value};

pub mod auth;
pub mod judge;

/// Prefix of the notes refs; the cluster id follows.
pub const NOTES_REF_PREFIX: &str = "refs/notes/vworkspace/";
/// The glob naming every cluster's notes ref (for `git log --notes=…` and `notes show/log`).
pub const NOTES_REF_GLOB: &str = "refs/notes/vworkspace/*";
/// Who writes the notes commits.
pub const NOTES_AUTHOR_NAME: &str = "vworkspace-operator";
pub const NOTES_AUTHOR_EMAIL: &str = "vworkspace-operator@vworkspace.invalid";
/// The longest message kept in a record (bytes); longer messages are cut at a character boundary.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Errors of the audit trail. Messages name the notes ref, the commit or the state file involved.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    #[error(
        "invalid cluster id {0:?}: use letters, digits, '.', '_' or '-' (not starting with '.')"
    )]
    ClusterId(String),
    #[error("invalid outcome record: {0}")]
    Record(String),
    #[error("notes ref {notes_ref}: {message}")]
    Git { notes_ref: String, message: String },
    #[error("pending store {path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// The notes ref of a cluster, `refs/notes/vworkspace/<cluster-id>`.
pub fn notes_ref(cluster_id: &str) -> Result<String, NotesError> {
    let ok = !cluster_id.is_empty()
        && cluster_id.len() <= 253
        && !cluster_id.starts_with('.')
        && !cluster_id.ends_with(".lock")
        && !cluster_id.contains("..")
        && cluster_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(format!("{NOTES_REF_PREFIX}{cluster_id}"))
    } else {
        Err(NotesError::ClusterId(cluster_id.to_string()))
    }
}

/// One outcome of one object at one generation, as written in a note line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeRecord {
    /// sha256 (hex) of cluster, uid, generation and outcome: the identity of the record.
    pub id: String,
    pub cluster: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    /// Ready, Failed, Degraded, Succeeded, Cancelled, Rendered, Rejected, Blocked, …
    pub outcome: String,
    /// The condition reason (e.g. HelmReleaseReady, EngineFailed).
    pub reason: String,
    /// Human-readable detail, redacted with the inline-secret patterns.
    pub message: String,
    /// Children and facts: helmRelease, chartVersion, backupName, workflowName, …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub child_refs: BTreeMap<String, String>,
    /// RFC 3339.
    pub time: String,
    pub operator_version: String,
    /// The Ed25519 public key that signed the record (standard base64); absent in unsigned records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The signature over [`auth::signed_bytes`] (standard base64); absent in unsigned records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The fields of a new record; [`OutcomeRecord::new`] computes the id and redacts.
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    pub cluster: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    pub outcome: String,
    pub reason: String,
    pub message: String,
    pub child_refs: BTreeMap<String, String>,
    /// When the outcome was observed; `None` means now.
    pub time: Option<jiff::Timestamp>,
}

/// The stable id of a record: sha256 over the NUL-separated cluster, uid, generation and outcome.
pub fn record_id(cluster: &str, uid: &str, generation: i64, outcome: &str) -> String {
    let mut h = Sha256::new();
    for part in [cluster, uid, &generation.to_string(), outcome] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

impl OutcomeRecord {
    /// Build a record: compute its id, redact the message and the child refs, stamp the operator version.
    pub fn new(r: NewRecord) -> Result<Self, NotesError> {
        for (field, v) in [
            ("cluster", &r.cluster),
            ("kind", &r.kind),
            ("name", &r.name),
            ("uid", &r.uid),
            ("outcome", &r.outcome),
        ] {
            if v.is_empty() {
                return Err(NotesError::Record(format!("{field} is empty")));
            }
        }
        let mut message = redact_text(&r.message);
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let mut refs = serde_json::to_value(&r.child_refs)
            .map_err(|e| NotesError::Record(format!("childRefs: {e}")))?;
        redact_value(&mut refs);
        let child_refs: BTreeMap<String, String> = serde_json::from_value(refs)
            .map_err(|e| NotesError::Record(format!("childRefs: {e}")))?;
        let child_refs = child_refs
            .into_iter()
            .map(|(k, v)| (k, redact_text(&v)))
            .collect();
        Ok(Self {
            id: record_id(&r.cluster, &r.uid, r.generation, &r.outcome),
            cluster: r.cluster,
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
            uid: r.uid,
            generation: r.generation,
            outcome: r.outcome,
            reason: r.reason,
            message,
            child_refs,
            time: r.time.unwrap_or_else(jiff::Timestamp::now).to_string(),
            operator_version: env!("CARGO_PKG_VERSION").to_string(),
            key: None,
            signature: None,
        })
    }

    /// The record as one note line (compact JSON, no newline).
    pub fn to_line(&self) -> String {
        // Serializing a struct of strings, integers and a string map cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A record and the commit its note goes on (the intent commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteEntry {
    #[serde(with = "oid_hex")]
    pub commit: ObjectId,
    pub record: OutcomeRecord,
}

mod oid_hex {
    use gix::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        let s = String::deserialize(d)?;
        ObjectId::from_hex(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// One line of a note as read back: a record, or a line that is not one (kept verbatim, never dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteLine {
    Record(Box<OutcomeRecord>),
    Other(String),
}

/// Parse a note's text into lines (empty lines are skipped).
pub fn parse_note(text: &str) -> Vec<NoteLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<OutcomeRecord>(l) {
            Ok(r) => NoteLine::Record(Box::new(r)),
            Err(_) => NoteLine::Other(l.to_string()),
        })
        .collect()
}

/// Merge `records` into the text of the note on `commit`: every existing line is kept in its order (exact
/// duplicates collapse; two different lines with one id are both kept, for readers to flag), then each new
/// record that is not [`auth::already_noted`] by an existing record, in the given order. Returns `None` when
/// every record is already there.
pub fn merge_note<'a>(
    commit: &ObjectId,
    existing: &str,
    records: impl IntoIterator<Item = &'a OutcomeRecord>,
) -> Option<String> {
    let mut seen = HashSet::new();
    let mut out = String::with_capacity(existing.len() + 512);
    let mut present: Vec<OutcomeRecord> = Vec::new();
    for line in judge::note_lines(existing) {
        if seen.insert(line) {
            out.push_str(line);
            out.push('\n');
            if let Ok(r) = serde_json::from_str::<OutcomeRecord>(line) {
                present.push(r);
            }
        }
    }
    let before = out.len();
    for r in records {
        if !present.iter().any(|e| auth::already_noted(commit, e, r)) {
            out.push_str(&r.to_line());
            out.push('\n');
            present.push(r.clone());
        }
    }
    (out.len() != before).then_some(out)
}

fn git_err(notes_ref: &str, e: impl std::fmt::Display) -> NotesError {
    NotesError::Git {
        notes_ref: notes_ref.to_string(),
        message: e.to_string(),
    }
}

/// The result of [`write_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The new notes commit (its parent is the base), or `None` when every record was already present.
    pub commit: Option<ObjectId>,
    /// How many records were added (not already present).
    pub added: usize,
    /// How many notes (annotated commits) changed.
    pub notes_changed: usize,
    /// Records in the largest note this batch wrote: what the next batch on that commit reads and rewrites.
    pub largest_note: usize,
}

/// Write `entries` on top of the notes commit `base` (`None`: an empty notes history) as ONE new notes
/// commit, without moving any ref. Records already present (same id on the same commit) are skipped.
///
/// The new objects (note blobs, notes trees, the commit) are built in memory and written as a single pack,
/// not as thousands of loose objects: writing is one file, and `git push` sends them by copying the packed
/// data instead of re-compressing every object.
pub fn write_batch(
    repo: &gix::Repository,
    notes_ref: &str,
    base: Option<ObjectId>,
    entries: &[NoteEntry],
) -> Result<Batch, NotesError> {
    let mut mem = repo.clone().with_object_memory();
    let batch = build_batch(&mem, notes_ref, base, entries)?;
    if let Some(objects) = mem.objects.take_object_memory()
        && batch.commit.is_some()
    {
        write_pack(repo, &objects).map_err(|e| git_err(notes_ref, e))?;
    }
    Ok(batch)
}

fn build_batch(
    repo: &gix::Repository,
    notes_ref: &str,
    base: Option<ObjectId>,
    entries: &[NoteEntry],
) -> Result<Batch, NotesError> {
    let err = |e: &dyn std::fmt::Display| git_err(notes_ref, e);
    let root_tree = match base {
        Some(id) => repo
            .find_commit(id)
            .map_err(|e| err(&e))?
            .tree_id()
            .map_err(|e| err(&e))?
            .detach(),
        None => ObjectId::empty_tree(repo.object_hash()),
    };
    let mut by_commit: Vec<(ObjectId, Vec<&OutcomeRecord>)> = Vec::new();
    let mut index: HashMap<ObjectId, usize> = HashMap::new();
    for e in entries {
        let i = *index.entry(e.commit).or_insert_with(|| {
            by_commit.push((e.commit, Vec::new()));
            by_commit.len() - 1
        });
        by_commit[i].1.push(&e.record);
    }
    let mut state = gix::note::plumbing::State::new(root_tree, repo).map_err(|e| err(&e))?;
    let (mut added, mut notes_changed, mut largest_note) = (0, 0, 0);
    for (commit, records) in &by_commit {
        let existing = match state.get(commit, repo).map_err(|e| err(&e))? {
            Some(blob) => {
                let blob = repo.find_blob(blob).map_err(|e| err(&e))?;
                String::from_utf8_lossy(&blob.data).into_owned()
            }
            None => String::new(),
        };
        let existing_lines = existing
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<HashSet<_>>()
            .len();
        if let Some(text) = merge_note(commit, &existing, records.iter().copied()) {
            let lines = text.lines().count();
            added += lines.saturating_sub(existing_lines);
            largest_note = largest_note.max(lines);
            let blob = repo.write_blob(text.as_bytes()).map_err(|e| err(&e))?;
            state
                .edit(*commit, Some(blob.detach()), repo)
                .map_err(|e| err(&e))?;
            notes_changed += 1;
        }
    }
    if notes_changed == 0 {
        return Ok(Batch {
            commit: None,
            added: 0,
            notes_changed: 0,
            largest_note: 0,
        });
    }
    let tree = state.write(repo).map_err(|e| err(&e))?;
    let time = gix::date::Time::now_utc();
    let sig = gix::actor::SignatureRef {
        name: NOTES_AUTHOR_NAME.into(),
        email: NOTES_AUTHOR_EMAIL.into(),
        time: &time.to_string(),
    };
    let message = format!(
        "vworkspace: {added} outcome record(s) on {notes_changed} commit(s)\n\nWritten by vworkspace-operator {}.\n",
        env!("CARGO_PKG_VERSION")
    );
    let commit = repo
        .new_commit_as(sig, sig, message, tree, base)
        .map_err(|e| err(&e))?;
    Ok(Batch {
        commit: Some(commit.id),
        added,
        notes_changed,
        largest_note,
    })
}

/// Every note line on `commit` in the notes refs matching `refs` (literal refs or globs such as
/// [`NOTES_REF_GLOB`]), with the ref each came from.
pub fn read_notes(
    repo: &gix::Repository,
    refs: &[String],
    commit: ObjectId,
) -> Result<Vec<(String, Vec<NoteLine>)>, NotesError> {
    let joined = refs.join(",");
    let mut platform = repo
        .notes()
        .and_then(|p| p.with_refs(refs.iter().map(String::as_str)))
        .map_err(|e| git_err(&joined, e))?;
    let notes = platform.get(commit).map_err(|e| git_err(&joined, e))?;
    Ok(notes
        .into_iter()
        .map(|n| {
            (
                n.reference.to_string(),
                parse_note(&String::from_utf8_lossy(&n.blob.data)),
            )
        })
        .collect())
}

/// How often and how patiently to retry a rejected push.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per [`NotesWriter::flush`] (fetch, merge, push); at least 1.
    pub max_attempts: u32,
    /// The first backoff; doubles on every rejection.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter: a random delay in `[delay/2, delay]` where
    /// `delay = min(max_delay, base_delay * 2^attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let cap = exp.min(self.max_delay);
        let half = cap / 2;
        half + Duration::from_nanos(fastrand::u64(0..=(cap - half).as_nanos() as u64))
    }
}

/// What a [`NotesWriter::flush`] achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Records confirmed on the remote during this flush (the compare-and-swap push was accepted, or the
    /// fetched notes ref holds them).
    pub delivered: usize,
    /// Records still waiting (kept in the pending store).
    pub pending: usize,
    /// Push attempts made (rejections included).
    pub attempts: u32,
    /// Pushes the remote rejected (another writer was first, or a hook refused).
    pub rejections: u32,
    /// Records in the largest note the last push carried (0 when nothing was pushed): a commit's note holds
    /// a record per intent, and each push rewrites it whole, so the worker spaces pushes by it.
    pub largest_note: usize,
}

/// Delivers outcome records to the notes ref of one cluster on one remote.
pub struct NotesWriter {
    repo_path: PathBuf,
    remote_url: String,
    notes_ref: String,
    store_path: PathBuf,
    creds: Credentials,
    retry: RetryPolicy,
    pending: Vec<NoteEntry>,
    signer: Option<std::sync::Arc<auth::NotesSigner>>,
}

impl std::fmt::Debug for NotesWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotesWriter")
            .field("repo_path", &self.repo_path)
            .field("remote_url", &remote::display_url(&self.remote_url))
            .field("notes_ref", &self.notes_ref)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl NotesWriter {
    /// A writer for `cluster_id`'s notes on `remote_url`, working in the local repository `local_repo` (a
    /// bare cache is fine; the intent commits need not be there) and keeping undelivered records in
    /// `state_dir/notes-pending-<cluster-id>.jsonl`. Records left there by an earlier process are loaded.
    pub fn new(
        local_repo: impl Into<PathBuf>,
        remote_url: impl Into<String>,
        cluster_id: &str,
        state_dir: impl AsRef<Path>,
    ) -> Result<Self, NotesError> {
        let notes_ref = notes_ref(cluster_id)?;
        let state_dir = state_dir.as_ref();
        std::fs::create_dir_all(state_dir).map_err(|e| NotesError::Store {
            path: state_dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let store_path = state_dir.join(format!("notes-pending-{cluster_id}.jsonl"));
        let pending = load_store(&store_path)?;
        Ok(Self {
            repo_path: local_repo.into(),
            remote_url: remote_url.into(),
            notes_ref,
            store_path,
            creds: Credentials::None,
            retry: RetryPolicy::default(),
            pending,
            signer: None,
        })
    }

    /// Authenticate to the remote with these credentials.
    pub fn with_credentials(mut self, creds: Credentials) -> Self {
        self.creds = creds;
        self
    }

    /// Sign every record with the operator's notes key (the pending ones too). Without a signer records are
    /// written unsigned, and readers show them as unverified.
    pub fn with_signer(mut self, signer: std::sync::Arc<auth::NotesSigner>) -> Self {
        for e in &mut self.pending {
            signer.sign(&e.commit, &mut e.record);
        }
        self.signer = Some(signer);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The notes ref written.
    pub fn notes_ref(&self) -> &str {
        &self.notes_ref
    }

    /// Records not yet confirmed on the remote.
    pub fn pending(&self) -> &[NoteEntry] {
        &self.pending
    }

    /// Add records to the pending store (persisted before this returns). A record already pending (same
    /// commit and id) is not added twice. When the store cannot be written the records are still pending in
    /// memory and the error is returned.
    pub fn enqueue(
        &mut self,
        entries: impl IntoIterator<Item = NoteEntry>,
    ) -> Result<(), NotesError> {
        let known: HashSet<(ObjectId, String)> = self
            .pending
            .iter()
            .map(|e| (e.commit, e.record.id.clone()))
            .collect();
        let mut fresh = Vec::new();
        let mut seen = known;
        for mut e in entries {
            if seen.insert((e.commit, e.record.id.clone())) {
                if let Some(signer) = &self.signer {
                    signer.sign(&e.commit, &mut e.record);
                }
                fresh.push(e);
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        // Pending in memory whatever happens to the store: a store that cannot be written loses durability
        // across a restart (the controller re-derives outcomes from object status), not the records.
        let stored = append_store(&self.store_path, &fresh);
        self.pending.extend(fresh);
        stored
    }

    /// Deliver the pending records: fetch the notes ref, merge the records in as one notes commit, push it
    /// with compare-and-swap, and repeat (with backoff after a rejection) until the push is accepted (or a
    /// fetch shows every record on the remote already) or the attempts run out. Records confirmed on the
    /// remote leave the pending store; the others stay for the next flush (or the next process).
    pub fn flush(&mut self) -> Result<FlushReport, NotesError> {
        let mut report = FlushReport {
            pending: self.pending.len(),
            ..Default::default()
        };
        if self.pending.is_empty() {
            return Ok(report);
        }
        let repo_err = |e: &dyn std::fmt::Display| git_err(&self.notes_ref, e);
        let refspec = format!("+{0}:{0}", self.notes_ref);
        let total = self.pending.len();
        loop {
            // 1. What is on the remote now (the local ref mirrors it after the fetch).
            let fetched =
                remote::fetch(&self.repo_path, &self.remote_url, &[&refspec], &self.creds)?;
            let remote_tip = fetched
                .remote_refs
                .iter()
                .find(|(name, _)| *name == self.notes_ref)
                .map(|(_, id)| *id);
            let repo = super::bounds::open(&self.repo_path).map_err(|e| repo_err(&e))?;
            // 2. Merge the pending records onto it. Nothing to add means every record is on the remote.
            let batch = write_batch(&repo, &self.notes_ref, remote_tip, &self.pending)?;
            let Some(new) = batch.commit else {
                return self.delivered(report, total);
            };
            report.largest_note = batch.largest_note;
            if report.attempts >= self.retry.max_attempts.max(1) {
                return Ok(report);
            }
            if report.rejections > 0 {
                std::thread::sleep(self.retry.delay(report.rejections - 1));
            }
            // 3. Compare-and-swap push: only if the remote ref is still what we merged onto.
            report.attempts += 1;
            match remote::push_cas(
                &self.repo_path,
                &self.remote_url,
                new,
                &self.notes_ref,
                remote_tip,
                &self.creds,
            )? {
                // The remote ref moved from what we merged onto to `new`, which holds every pending record:
                // delivered, without a fetch to confirm it.
                PushOutcome::Accepted => {
                    tracing::debug!(notes_ref = %self.notes_ref, commit = %new, added = batch.added, "notes pushed");
                    return self.delivered(report, total);
                }
                PushOutcome::Rejected { reason } => {
                    report.rejections += 1;
                    tracing::debug!(notes_ref = %self.notes_ref, %reason, "notes push rejected; retrying");
                }
            }
            // 4. Rejected: the next fetch shows what the other writer pushed.
        }
    }

    /// Every pending record is on the remote: they leave the pending store.
    fn delivered(
        &mut self,
        mut report: FlushReport,
        total: usize,
    ) -> Result<FlushReport, NotesError> {
        self.pending.clear();
        rewrite_store(&self.store_path, &self.pending)?;
        if report.attempts > 0 {
            housekeeping(&self.repo_path);
        }
        report.delivered = total;
        report.pending = 0;
        Ok(report)
    }
}

/// Every batch writes one pack (and a rejected attempt leaves an unreachable one): let git consolidate them
/// when its usual thresholds are crossed (`gc.autoPackLimit`, 50 packs by default). Failure only warns.
fn housekeeping(repo_path: &Path) {
    let result = std::process::Command::new("git")
        .arg("-C")
        .arg(repo_path)
        .args(["gc", "--auto", "--quiet"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output();
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => tracing::warn!(
            repo = %repo_path.display(),
            stderr = %String::from_utf8_lossy(&out.stderr).trim(),
            "git gc --auto failed"
        ),
        Err(e) => {
            tracing::warn!(repo = %repo_path.display(), error = %e, "cannot run git gc --auto")
        }
    }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> NotesError {
    NotesError::Store {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Load the pending store. A line that does not parse (e.g. torn by a crash mid-append) is skipped with a
/// warning: the records it held are recomputed from object status by the controller.
fn load_store(path: &Path) -> Result<Vec<NoteEntry>, NotesError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(store_err(path, e)),
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<NoteEntry>(line) {
            Ok(e) => {
                if seen.insert((e.commit, e.record.id.clone())) {
                    out.push(e);
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping unreadable pending notes record");
            }
        }
    }
    Ok(out)
}

fn entries_text(entries: &[NoteEntry]) -> Result<String, NotesError> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(|e| NotesError::Record(e.to_string()))?);
        text.push('\n');
    }
    Ok(text)
}

fn append_store(path: &Path, entries: &[NoteEntry]) -> Result<(), NotesError> {
    let text = entries_text(entries)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| store_err(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| store_err(path, e))
}

/// Replace the store atomically (write a temporary file, fsync, rename).
fn rewrite_store(path: &Path, entries: &[NoteEntry]) -> Result<(), NotesError> {
    let text = entries_text(entries)?;
    let tmp = path.with_extension("jsonl.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| store_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uid: &str, generation: i64, outcome: &str) -> OutcomeRecord {
        OutcomeRecord::new(NewRecord {
            cluster: "c1".into(),
            kind: "ApplicationInstance".into(),
            namespace: "ns".into(),
            name: "app".into(),
            uid: uid.into(),
            generation,
            outcome: outcome.into(),
            reason: "HelmReleaseReady".into(),
            message: "ok".into(),
            child_refs: BTreeMap::from([("helmRelease".into(), "app".into())]),
            time: Some("2026-01-02T03:04:05Z".parse().unwrap()),
        })
        .unwrap()
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = record("u1", 3, "Ready");
        let mut later = a.clone();
        later.time = "2030-01-01T00:00:00Z".into();
        assert_eq!(a.id, record("u1", 3, "Ready").id);
        assert_eq!(a.id.len(), 64);
        assert_ne!(a.id, record("u1", 4, "Ready").id);
        assert_ne!(a.id, record("u1", 3, "Failed").id);
        assert_ne!(a.id, record("u2", 3, "Ready").id);
        // The separator keeps ("a", "bc") and ("ab", "c") apart.
        assert_ne!(record_id("a", "bc", 1, "x"), record_id("ab", "c", 1, "x"));
    }

    #[test]
    fn messages_and_child_refs_are_redacted() {
        let r = OutcomeRecord::new(NewRecord {
            cluster: "c".into(),
            kind: "Operation".into(),
            namespace: "n".into(),
            name: "op".into(),
            uid: "u".into(),
            generation: 1,
            outcome: "Failed".into(),
            reason: "EngineFailed".into(),
            message: "login with password=hunter2 failed".into(),
            child_refs: BTreeMap::from([
                ("jobName".into(), "op-job".into()),
                ("apiKey".into(), "abc".into()),
            ]),
            time: None,
        })
        .unwrap();
        assert_eq!(r.message, "login with password=[REDACTED] failed");
        assert_eq!(r.child_refs["apiKey"], "[REDACTED]");
        assert_eq!(r.child_refs["jobName"], "op-job");
        assert!(!r.to_line().contains("hunter2"));
        assert!(r.time.ends_with('Z'), "{}", r.time);
        let long = OutcomeRecord::new(NewRecord {
            message: "é".repeat(MAX_MESSAGE_BYTES),
            ..NewRecord {
                cluster: "c".into(),
                kind: "k".into(),
                name: "n".into(),
                uid: "u".into(),
                outcome: "o".into(),
                ..Default::default()
            }
        })
        .unwrap();
        assert!(long.message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(OutcomeRecord::new(NewRecord::default()).is_err());
    }

    #[test]
    fn record_lines_round_trip_with_camel_case_fields() {
        let r = record("u1", 3, "Ready");
        let line = r.to_line();
        for field in [
            "\"id\"",
            "\"cluster\"",
            "\"kind\"",
            "\"namespace\"",
            "\"name\"",
            "\"uid\"",
            "\"generation\"",
            "\"outcome\"",
            "\"reason\"",
            "\"message\"",
            "\"childRefs\"",
            "\"time\"",
            "\"operatorVersion\"",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
        assert_eq!(parse_note(&line), vec![NoteLine::Record(Box::new(r))]);
    }

    #[test]
    fn merge_is_a_set_union_in_stable_order() {
        let commit = ObjectId::from_hex(b"0123456789012345678901234567890123456789").unwrap();
        let (a, b, c) = (
            record("u1", 1, "Ready"),
            record("u2", 1, "Ready"),
            record("u3", 1, "Failed"),
        );
        let first = merge_note(&commit, "", [&a, &b]).unwrap();
        assert_eq!(first, format!("{}\n{}\n", a.to_line(), b.to_line()));
        // Same records again (even with another time): no change.
        let mut a_later = a.clone();
        a_later.time = "2031-01-01T00:00:00Z".into();
        assert_eq!(merge_note(&commit, &first, [&a_later, &b]), None);
        // A human line is kept verbatim; new records go after existing lines.
        let with_human = format!("reviewed by alice\n{first}");
        let merged = merge_note(&commit, &with_human, [&c, &a]).unwrap();
        assert_eq!(
            merged,
            format!(
                "reviewed by alice\n{}\n{}\n{}\n",
                a.to_line(),
                b.to_line(),
                c.to_line()
            )
        );
        // Exact duplicate lines (two writers merged by hand) collapse; two different lines with one id are
        // both kept: which one is genuine is for the reader to judge, never for the merge to decide.
        let dup = format!("{}\n{}\n{}\n", a.to_line(), a.to_line(), a_later.to_line());
        assert_eq!(
            merge_note(&commit, &dup, [&b]).unwrap(),
            format!("{}\n{}\n{}\n", a.to_line(), a_later.to_line(), b.to_line())
        );
    }

    #[test]
    fn a_signed_record_is_not_suppressed_by_a_foreign_one_with_its_id() {
        let commit = ObjectId::from_hex(b"0123456789012345678901234567890123456789").unwrap();
        let signer = auth::NotesSigner::from_bytes(&[9; 32]);
        let mut ours = record("u1", 1, "Rejected");
        signer.sign(&commit, &mut ours);
        // Someone without the key takes the id: an unsigned record, and one signed by another key.
        let mut forged = record("u1", 1, "Rejected");
        forged.outcome = "Rendered".into();
        let mut other = record("u1", 1, "Rejected");
        auth::NotesSigner::from_bytes(&[1; 32]).sign(&commit, &mut other);
        for existing in [record("u1", 1, "Rejected"), forged, other] {
            let note = format!("{}\n", existing.to_line());
            let merged = merge_note(&commit, &note, [&ours]).expect("ours is written");
            assert_eq!(
                merged,
                format!("{}\n{}\n", existing.to_line(), ours.to_line())
            );
            assert_eq!(merge_note(&commit, &merged, [&ours]), None);
        }
        // Our own record copied onto another commit does not stand for it there.
        let elsewhere = ObjectId::from_hex(b"1123456789012345678901234567890123456789").unwrap();
        let note = format!("{}\n", ours.to_line());
        let mut resigned = ours.clone();
        signer.sign(&elsewhere, &mut resigned);
        assert!(merge_note(&elsewhere, &note, [&resigned]).is_some());
    }

    #[test]
    fn cluster_ids_are_checked() {
        assert_eq!(
            notes_ref("prod-eu.1").unwrap(),
            "refs/notes/vworkspace/prod-eu.1"
        );
        for bad in ["", ".x", "a/b", "a..b", "x.lock", "a b", "a:b"] {
            assert!(notes_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let d0 = p.delay(0);
            assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
            let d9 = p.delay(40);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn store_survives_reload_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let e = |uid: &str| NoteEntry {
            commit: ObjectId::from_hex(b"0123456789012345678901234567890123456789").unwrap(),
            record: record(uid, 1, "Ready"),
        };
        append_store(&path, &[e("a"), e("b")]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"commit\": \"01234")
            .unwrap();
        let loaded = load_store(&path).unwrap();
        assert_eq!(loaded, vec![e("a"), e("b")]);
        rewrite_store(&path, &loaded[1..]).unwrap();
        assert_eq!(load_store(&path).unwrap(), vec![e("b")]);
    }
}
