//! `verify`: check commit signatures of a revision or range under a trust policy.
//!
//! One line (text) or one JSON object (json) per checked commit on stdout; a summary on stderr in text mode.
//! Exit 0 when every checked commit verified, 1 when one did not (or history could not be walked, or with
//! `--path` no commit in the range changes the path), 2 for usage errors, an unreadable repository or revision,
//! a `--path` that does not exist at the revision, and an unreadable or invalid policy.

use crate::escape::Esc;
use std::io::Write;
use std::path::PathBuf;

use gix::ObjectId;

use crate::git::policy::{Mode, TrustPolicy};
use crate::git::repo::Repo;
use crate::git::verify::{RangeReport, Verdict, Verifier};

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Verify commit signatures under a trust policy.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository (bare or not).
    #[arg(long)]
    pub repo: PathBuf,
    /// The trust policy file (YAML).
    #[arg(long)]
    pub policy: PathBuf,
    /// Only commits changing this path count in range mode (e.g. clusters/prod-1).
    #[arg(long)]
    pub path: Option<String>,
    /// Override the policy's mode.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// A revision (REV: all of its history in range mode) or BASE..HEAD (BASE excluded).
    pub revision: String,
}

/// Split `BASE..HEAD` or take `REV`.
pub fn parse_revision(spec: &str) -> Result<(Option<&str>, &str), String> {
    if spec.contains("...") {
        return Err(format!(
            "{spec:?}: symmetric differences (A...B) are not supported; use BASE..HEAD"
        ));
    }
    match spec.split_once("..") {
        None if spec.is_empty() => Err("empty revision".to_string()),
        None => Ok((None, spec)),
        Some((base, head)) if !base.is_empty() && !head.is_empty() => Ok((Some(base), head)),
        Some(_) => Err(format!("{spec:?}: both sides of BASE..HEAD must be given")),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let policy = match TrustPolicy::load(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {}", Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    let repo = match Repo::open(&args.repo) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    let (base, head) = match parse_revision(&args.revision) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}", Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    let resolve = |rev: &str| repo.resolve_commit(rev);
    let base = match base.map(resolve).transpose() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}", Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    let target = match resolve(head) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    if let Some(code) = path_missing(&repo, target, head, args.path.as_deref()) {
        return Ok(code);
    }
    let mode = args.mode.unwrap_or(policy.mode);
    let report = match Verifier::new(&repo, &policy).range(base, target, args.path.as_deref(), mode)
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", Esc(e));
            return Ok(EXIT_INVALID);
        }
    };

    let mut out = std::io::stdout().lock();
    for v in &report.verdicts {
        match args.output {
            Output::Text => writeln!(out, "{}", Esc(text_line(v)))?,
            Output::Json => writeln!(out, "{}", serde_json::to_string(&json_line(v))?)?,
        }
    }
    out.flush()?;
    if args.output == Output::Text {
        eprintln!("{}", Esc(summary(&report)));
    }
    if let Some(path) = &args.path
        && report.verdicts.is_empty()
    {
        // Nothing proven about the path is not "verified" (fail closed): a typo must not pass.
        eprintln!(
            "error: no commit in {} changes {path}: nothing was verified",
            args.revision
        );
        return Ok(EXIT_INVALID);
    }
    Ok(if report.ok() { EXIT_OK } else { EXIT_INVALID })
}

/// With `--path`, the path must exist at the revision verified: a path that does not (a typo) is an error
/// naming it, exit 2, never "nothing to verify". `None` when it exists (or no path was given).
fn path_missing(repo: &Repo, target: ObjectId, rev: &str, path: Option<&str>) -> Option<u8> {
    let path = path?;
    match repo.entry_id(target, path) {
        Ok(Some(_)) => None,
        Ok(None) => {
            eprintln!("error: path {path} does not exist at {rev} ({target})");
            Some(EXIT_USAGE)
        }
        // Over a bound: verification rejects the commit for it, with its reason.
        Err(e) if e.is_refusal() => None,
        Err(e) => {
            eprintln!("error: cannot read path {path} at {rev}: {e}");
            Some(EXIT_USAGE)
        }
    }
}

fn quoted(s: &str) -> String {
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains('"') {
        format!("{s:?}")
    } else {
        Esc(s).to_string()
    }
}

/// `<sha> verified kind=ssh signer=alice@example.com key=SHA256:…`,
/// `<sha> verified kind=x509 signer=alice@example.com issuer=https://accounts.google.com key=sha256:…` or
/// `<sha> rejected kind=ssh key=SHA256:… reason=KeyExpired: …`.
pub fn text_line(v: &Verdict) -> String {
    let mut line = format!("{} {}", v.sha, if v.ok { "verified" } else { "rejected" });
    if let Some(k) = v.kind {
        line.push_str(&format!(" kind={}", k.as_str()));
    }
    if let Some(s) = &v.signer {
        line.push_str(&format!(" signer={}", quoted(s)));
    }
    if let Some(i) = &v.issuer {
        line.push_str(&format!(" issuer={}", quoted(i)));
    }
    if let Some(f) = &v.fingerprint {
        line.push_str(&format!(" key={f}"));
    }
    if let Some(r) = &v.reason {
        line.push_str(&format!(" reason={}: {}", r.reason, r.message));
    }
    line
}

/// The JSON object printed for a verdict.
pub fn json_line(v: &Verdict) -> serde_json::Value {
    serde_json::json!({
        "sha": v.sha,
        "verdict": if v.ok { "verified" } else { "rejected" },
        "kind": v.kind.map(|k| k.as_str()),
        "signer": v.signer,
        "issuer": v.issuer,
        "fingerprint": v.fingerprint,
        "reason": v.reason.as_ref().map(|r| r.reason.as_str()),
        "message": v.reason.as_ref().map(|r| r.message.as_str()),
    })
}

fn summary(r: &RangeReport) -> String {
    let scope = match &r.path {
        Some(p) => format!("mode {}, path {p}", r.mode.as_str()),
        None => format!("mode {}", r.mode.as_str()),
    };
    let rejected = r.verdicts.iter().filter(|v| !v.ok).count();
    match (r.verdicts.len(), rejected) {
        (0, _) => format!("no commits to verify ({scope})"),
        (n, 0) => format!("{n} commit(s) verified ({scope})"),
        (n, k) => format!("{k} of {n} commit(s) rejected ({scope})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions() {
        assert_eq!(parse_revision("HEAD").unwrap(), (None, "HEAD"));
        assert_eq!(parse_revision("a..b").unwrap(), (Some("a"), "b"));
        assert_eq!(
            parse_revision("main~3..main").unwrap(),
            (Some("main~3"), "main")
        );
        assert!(parse_revision("a...b").is_err());
        assert!(parse_revision("..b").is_err());
        assert!(parse_revision("a..").is_err());
        assert!(parse_revision("").is_err());
    }
}
