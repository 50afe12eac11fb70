//! `notes`: read the audit trail (`refs/notes/vworkspace/<cluster-id>`) of a repository.
//!
//! - `notes show --repo PATH [--cluster-id ID] REV`: the outcome records on one commit; exit 1 when there
//!   are none.
//! - `notes log --repo PATH [--cluster-id ID] [REV-RANGE]`: every commit of the range (default `HEAD`;
//!   `BASE..TIP` excludes BASE's history) that carries records, newest first.
//!
//! Without `--cluster-id`, every `refs/notes/vworkspace/*` ref is read. `--output json` prints one JSON
//! object for `show`, and JSON Lines (one object per commit) for `log`.
//!
//! Every record is judged ([`crate::git::notes::judge`]): genuine only when signed by a notes key given with
//! `--notes-key` or the `--policy`'s `notesKeys`; otherwise unverified, or conflicting when it carries the id
//! of another record on the same commit. Nothing is hidden: every line of every note is printed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::git::notes::auth::{NotesKey, NotesTrust, parse_public_key};
use crate::git::notes::judge::{RefNotes, Status, read_judged};
use crate::git::notes::{NOTES_REF_GLOB, notes_ref};
use crate::git::policy::TrustPolicy;
use crate::git::repo::Repo;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: NotesCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum NotesCommand {
    /// Show the outcome records on one commit.
    Show(ShowArgs),
    /// List the commits of a range that carry outcome records, newest first.
    Log(LogArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// The repository (bare or not).
    #[arg(long)]
    pub repo: PathBuf,
    /// Read only this cluster's notes ref; default: every `refs/notes/vworkspace/*`.
    #[arg(long)]
    pub cluster_id: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// A public key whose records are genuine: an `ssh-ed25519 AAAA…` line, the base64 of its 32 bytes, or
    /// a file holding one such key per line (e.g. a `.pub` file). Repeatable.
    #[arg(long, value_name = "KEY|FILE")]
    pub notes_key: Vec<String>,
    /// A trust policy whose `notesKeys` are trusted too.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub common: Common,
    /// The commit (any revision naming one).
    pub rev: String,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub common: Common,
    /// Stop after this many commits with notes.
    #[arg(long)]
    pub max_count: Option<usize>,
    /// `REV` (its whole history) or `BASE..TIP`; default `HEAD`.
    pub range: Option<String>,
}

/// The notes of one commit, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitNotes {
    pub commit: String,
    pub notes: Vec<RefNotes>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.command {
        NotesCommand::Show(a) => show(a),
        NotesCommand::Log(a) => log(a),
    }
}

fn refs_of(common: &Common) -> anyhow::Result<Option<Vec<String>>> {
    Ok(Some(match &common.cluster_id {
        Some(id) => match notes_ref(id) {
            Ok(r) => vec![r],
            Err(e) => {
                eprintln!("error: {}", crate::escape::Esc(e));
                return Ok(None);
            }
        },
        None => vec![NOTES_REF_GLOB.to_string()],
    }))
}

/// The notes keys the reader trusts: `--notes-key` values and the policy's `notesKeys`.
/// Largest `--notes-key` file read (a list of public keys).
const MAX_NOTES_KEY_FILE_BYTES: u64 = 1 << 20;

pub fn trust_of(common: &Common) -> anyhow::Result<NotesTrust> {
    let mut trust = match &common.policy {
        Some(p) => TrustPolicy::load(p)?.notes_keys().clone(),
        None => NotesTrust::default(),
    };
    for (i, arg) in common.notes_key.iter().enumerate() {
        let direct = arg.trim_start().starts_with("ssh-") || parse_public_key(arg).is_ok();
        let text = if direct {
            arg.clone()
        } else {
            // A key file is a few hundred bytes; a FIFO, a device or a huge file is refused, not read.
            crate::git::bounded::read_to_string(std::path::Path::new(arg), MAX_NOTES_KEY_FILE_BYTES)
                .with_context(|| {
                    format!("--notes-key {arg:?}: neither a key nor a readable key file")
                })?
        };
        for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let key = parse_public_key(line)
                .map_err(|e| anyhow::anyhow!("--notes-key {arg:?}, key {}: {e}", n + 1))?;
            trust.push(NotesKey {
                name: format!("notes-key-{}", i + 1),
                key,
            });
        }
    }
    Ok(trust)
}

/// The notes of `commit` in `refs`, grouped per ref, every record judged with `trust`.
pub fn commit_notes(
    repo: &Repo,
    refs: &[String],
    commit: gix::ObjectId,
    trust: &NotesTrust,
) -> anyhow::Result<CommitNotes> {
    Ok(CommitNotes {
        commit: commit.to_string(),
        notes: read_judged(repo.gix(), refs, commit, trust)?,
    })
}

fn show(a: ShowArgs) -> anyhow::Result<u8> {
    let Some(refs) = refs_of(&a.common)? else {
        return Ok(EXIT_USAGE);
    };
    let trust = trust_of(&a.common)?;
    let repo = Repo::open(&a.common.repo)?;
    let commit = repo.resolve_commit(&a.rev)?;
    let notes = commit_notes(&repo, &refs, commit, &trust)?;
    let mut out = std::io::stdout().lock();
    match a.common.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&notes)?)?,
        Output::Text => {
            if notes.notes.is_empty() {
                writeln!(out, "no vworkspace notes on {commit}")?;
            } else {
                write_text(&mut out, &notes)?;
            }
        }
    }
    Ok(if notes.notes.is_empty() {
        EXIT_INVALID
    } else {
        EXIT_OK
    })
}

fn log(a: LogArgs) -> anyhow::Result<u8> {
    let Some(refs) = refs_of(&a.common)? else {
        return Ok(EXIT_USAGE);
    };
    let trust = trust_of(&a.common)?;
    let repo = Repo::open(&a.common.repo)?;
    let range = a.range.as_deref().unwrap_or("HEAD");
    let (base, tip) = match range.split_once("..") {
        Some((b, t)) => (
            Some(repo.resolve_commit(if b.is_empty() { "HEAD" } else { b })?),
            repo.resolve_commit(if t.is_empty() { "HEAD" } else { t })?,
        ),
        None => (None, repo.resolve_commit(range)?),
    };
    let walk = repo
        .gix()
        .rev_walk([tip])
        .with_hidden(base)
        .sorting(gix::revision::walk::Sorting::ByCommitTime(
            gix::traverse::commit::simple::CommitTimeOrder::NewestFirst,
        ))
        .all()
        .with_context(|| format!("walking {range}"))?;
    let mut out = std::io::stdout().lock();
    let mut shown = 0usize;
    for info in walk {
        if a.max_count.is_some_and(|m| shown >= m) {
            break;
        }
        let info = info.with_context(|| format!("walking {range}"))?;
        let notes = commit_notes(&repo, &refs, info.id, &trust)?;
        if notes.notes.is_empty() {
            continue;
        }
        shown += 1;
        match a.common.output {
            Output::Json => writeln!(out, "{}", serde_json::to_string(&notes)?)?,
            Output::Text => {
                if shown > 1 {
                    writeln!(out)?;
                }
                write_text(&mut out, &notes)?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// Control and bidirectional characters from a note never reach the terminal (the crate's one escaping
/// helper).
fn clean(s: &str) -> String {
    crate::escape::one_line(s)
}

fn write_text(out: &mut impl Write, notes: &CommitNotes) -> anyhow::Result<()> {
    writeln!(out, "commit {}", notes.commit)?;
    for n in &notes.notes {
        let (genuine, unverified, conflicting) = n.counts();
        if unverified + conflicting > 0 || !n.other_lines.is_empty() {
            writeln!(
                out,
                "  [{}] {genuine} genuine, {unverified} unverified, {conflicting} conflicting record(s), {} other line(s)",
                clean(&n.cluster_id),
                n.other_lines.len()
            )?;
        }
        for j in &n.records {
            let r = &j.record;
            let v = &j.verification;
            let mut line = format!(
                "  [{}] {:<11} {}  {}/{}/{} gen {}  {}",
                clean(&n.cluster_id),
                v.status.as_str(),
                clean(&r.time),
                clean(&r.kind),
                clean(&r.namespace),
                clean(&r.name),
                r.generation,
                clean(&r.outcome),
            );
            if !r.reason.is_empty() {
                line.push_str(&format!("/{}", clean(&r.reason)));
            }
            if !r.message.is_empty() {
                line.push_str(&format!(": {}", clean(&r.message)));
            }
            if !r.child_refs.is_empty() {
                let refs: Vec<String> = r
                    .child_refs
                    .iter()
                    .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
                    .collect();
                line.push_str(&format!("  ({})", refs.join(", ")));
            }
            writeln!(out, "{line}")?;
            if v.conflict {
                writeln!(
                    out,
                    "      ^ CONFLICT: another, different record on this commit carries id {}",
                    clean(r.id.get(..16).unwrap_or(&r.id))
                )?;
            }
            if v.status != Status::Genuine
                && let Some(problem) = &v.problem
            {
                writeln!(out, "      ^ {}: {}", v.status.as_str(), clean(problem))?;
            }
        }
        for l in &n.other_lines {
            writeln!(
                out,
                "  [{}] {:<11} {}",
                clean(&n.cluster_id),
                "other",
                clean(l)
            )?;
        }
    }
    Ok(())
}
