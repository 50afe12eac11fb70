//! `render`: the PR-review command. Renders a directory or a git revision exactly as the controller would
//! apply it, or the unified diff of the rendered output between two revisions.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::Value;

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::escape::Esc;
use crate::git::repo::{Repo, RepoError, load_rev};
use crate::intent::source::{SourceError, load_dir};
use crate::tree::{TreeRender, render_tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

/// Validate and render intents; print the rendered objects (or a diff). Exit 0 when everything rendered,
/// 1 when any intent is invalid (every problem is printed to stderr), 2 for usage errors.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["dir", "repo"])))]
pub struct Args {
    /// A directory of manifests (searched recursively; multi-document files allowed).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// A git repository; with --rev or --diff, manifests are read from git objects (no checkout).
    #[arg(long, value_name = "PATH", requires = "revision")]
    pub repo: Option<PathBuf>,
    /// The revision to render (with --repo).
    #[arg(long, value_name = "REV", group = "revision")]
    pub rev: Option<String>,
    /// Print the unified diff of the rendered output between two revisions (with --repo).
    #[arg(long, value_name = "BASE..HEAD", group = "revision")]
    pub diff: Option<String>,
    /// Path inside the repository to read (default: clusters/<cluster-id> with --cluster-id, else the whole tree).
    #[arg(long, value_name = "P")]
    pub path: Option<String>,
    /// The cluster id the intents must be labelled with (default: taken from each path's clusters/<id>/).
    #[arg(long, env = "VWORKSPACE_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// A directory whose templates override the embedded ones (same relative paths).
    #[arg(long, value_name = "DIR", env = "VWORKSPACE_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Namespace of Velero (where Backups and Restores are created).
    #[arg(long, default_value = "velero", env = "VWORKSPACE_VELERO_NAMESPACE")]
    pub velero_namespace: String,
    #[command(flatten)]
    pub chart_hosts: super::ChartHostArgs,
    #[command(flatten)]
    pub engine: super::EngineArgs,
    /// The cluster's trust policy (YAML; docs/trust-policy.md): its `charts` section decides which chart
    /// sources verify signatures and which charts are refused. Without it, charts render unverified.
    #[arg(long, value_name = "FILE", env = "VWORKSPACE_POLICY")]
    pub policy: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "yaml")]
    pub output: Output,
}

/// The rendered objects of a tree as multi-document YAML, each preceded by a comment naming its intent.
pub fn to_yaml(result: &TreeRender) -> anyhow::Result<String> {
    // Each intent's documents on their own (on every core), then joined in order.
    let parts = crate::par::map(&result.intents, |intent| -> anyhow::Result<String> {
        let mut out = String::new();
        for object in &intent.objects {
            out.push_str("---\n");
            // One comment line: the location and key are escaped, so no name can end the comment and
            // start a document of its own.
            out.push_str(&format!(
                "# Source: {} ({})\n",
                Esc(&intent.location),
                Esc(&intent.key)
            ));
            out.push_str(&serde_saphyr::to_string(object)?);
        }
        Ok(out)
    });
    parts.into_iter().collect()
}

/// The rendered objects of a tree as a JSON list.
pub fn to_json(result: &TreeRender) -> anyhow::Result<String> {
    let objects: Vec<&Value> = result.objects().collect();
    Ok(serde_json::to_string_pretty(&objects)? + "\n")
}

fn format(result: &TreeRender, output: Output) -> anyhow::Result<String> {
    match output {
        Output::Yaml => to_yaml(result),
        Output::Json => to_json(result),
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let renderer = crate::render::renderer(
        args.templates.as_deref(),
        args.cluster_id.as_deref(),
        &args.velero_namespace,
    )?
    .with_allowed_chart_hosts(args.chart_hosts.allow_chart_host.clone())
    .with_helm_engine(args.engine.helm_engine()?);
    let renderer = match &args.policy {
        Some(path) => renderer.with_chart_trust(crate::charts::ChartTrustCell::new(
            crate::git::policy::TrustPolicy::load(path)?
                .charts()
                .clone(),
        )),
        None => renderer,
    };
    let cluster_id = args.cluster_id.as_deref();
    let prefix = args
        .path
        .clone()
        .or_else(|| cluster_id.map(|id| format!("clusters/{id}")))
        .unwrap_or_default();
    let stdout = std::io::stdout();
    let mut stderr = std::io::stderr().lock();
    if let Some(dir) = &args.dir {
        let files = match load_dir(dir) {
            Ok(files) => files,
            Err(e) => {
                return refused_or(e.into(), &mut stderr)
                    .with_context(|| format!("reading {}", dir.display()));
            }
        };
        let result = render_tree(&files, &renderer, cluster_id);
        stdout
            .lock()
            .write_all(format(&result, args.output)?.as_bytes())?;
        return Ok(report(&result, "", &mut stderr));
    }
    let Some(repo_path) = &args.repo else {
        return Ok(EXIT_USAGE);
    };
    let repo = Repo::open(repo_path)?;
    let load = |rev: &str| load_rev(&repo, rev, &prefix);
    if let Some(rev) = &args.rev {
        let files = match load(rev) {
            Ok(files) => files,
            Err(e) => return refused_or(e.into(), &mut stderr),
        };
        let result = render_tree(&files, &renderer, cluster_id);
        stdout
            .lock()
            .write_all(format(&result, args.output)?.as_bytes())?;
        return Ok(report(&result, "", &mut stderr));
    }
    let Some(range) = &args.diff else {
        return Ok(EXIT_USAGE);
    };
    let Some((base, head)) = range
        .split_once("..")
        .filter(|(b, h)| !b.is_empty() && !h.is_empty() && !h.starts_with('.'))
    else {
        eprintln!("error: --diff takes BASE..HEAD, got \"{}\"", Esc(range));
        return Ok(EXIT_USAGE);
    };
    let (before_files, after_files) = match (load(base), load(head)) {
        (Ok(b), Ok(h)) => (b, h),
        (Err(e), _) | (_, Err(e)) => return refused_or(e.into(), &mut stderr),
    };
    let before = render_tree(&before_files, &renderer, cluster_id);
    let after = render_tree(&after_files, &renderer, cluster_id);
    let (a, b) = (
        format(&before, Output::Yaml)?,
        format(&after, Output::Yaml)?,
    );
    let diff = similar::TextDiff::from_lines(&a, &b);
    let text = diff
        .unified_diff()
        .context_radius(4)
        .header(&format!("a/{}", Esc(base)), &format!("b/{}", Esc(head)))
        .to_string();
    stdout.lock().write_all(text.as_bytes())?;
    let base_code = report(&before, &format!("{base}: "), &mut stderr);
    let head_code = report(&after, &format!("{head}: "), &mut stderr);
    Ok(base_code.max(head_code))
}

/// A refused tree entry (symlink, escaping path, submodule), a bound exceeded (crate::git::bounds) or a path
/// missing at the revision makes the input invalid (exit 1); any other loading error is an error of the
/// command (exit 2).
fn refused_or(e: Loading, err: &mut impl Write) -> anyhow::Result<u8> {
    let refused = match &e {
        Loading::Dir(e) => matches!(e, SourceError::Symlink { .. }),
        Loading::Rev(e) => e.is_refusal(),
    };
    if refused {
        let _ = writeln!(err, "{}", Esc(&e));
        return Ok(EXIT_INVALID);
    }
    Err(e.into())
}

/// Why the input tree could not be read: from a directory or from a git revision.
#[derive(Debug, thiserror::Error)]
enum Loading {
    #[error(transparent)]
    Dir(#[from] SourceError),
    #[error(transparent)]
    Rev(#[from] RepoError),
}

/// Print every problem to stderr; the exit code for the result.
fn report(result: &TreeRender, prefix: &str, err: &mut impl Write) -> u8 {
    for p in &result.problems {
        let _ = writeln!(err, "{}{}", Esc(prefix), Esc(p));
    }
    if result.problems.is_empty() {
        EXIT_OK
    } else {
        let _ = writeln!(
            err,
            "{}{} problem(s); {} intent(s) rendered",
            Esc(prefix),
            result.problems.len(),
            result.intents.len()
        );
        EXIT_INVALID
    }
}
