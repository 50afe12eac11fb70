//! `hydrate`: render the verified intent of a cluster and commit the manifests to an output branch or path
//! (see [`crate::hydrate`] and docs/hydrate.md).
//!
//! Exit codes: 0 when every new intent commit verified and rendered (or there was nothing to do), 1 when
//! something was refused or did not render (what was verifiable is still committed), 2 for usage errors,
//! unreadable configuration, and failures to reach or update the repo. With `--interval` the command runs
//! until SIGINT or SIGTERM and exits 0; each pass is reported, and a failing pass is retried next interval.

use std::path::PathBuf;
use std::time::Duration;

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::escape::{Esc, Lines};
use crate::git::policy::TrustPolicy;
use crate::hydrate::{HydrateError, HydrateOptions, HydrateReport, OutTarget, hydrate_once};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Render verified intent and commit the manifests for Flux to sync.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("out").args(["out_branch", "out_path"])))]
#[command(group(clap::ArgGroup::new("schedule").args(["once", "interval"])))]
pub struct Args {
    /// The cluster repo: a local path, file://, https://, ssh:// or user@host:path. It is fetched into a
    /// cache under --state-dir and pushed to (never checked out).
    #[arg(long, value_name = "PATH|URL", env = "VWORKSPACE_REPO_URL")]
    pub repo: String,
    /// The cluster id: intents must carry app.vworkspace.io/cluster-id=<id>.
    #[arg(long, env = "VWORKSPACE_CLUSTER_ID")]
    pub cluster_id: String,
    /// Trust policy file (YAML; see docs/trust-policy.md).
    #[arg(long, value_name = "FILE", env = "VWORKSPACE_POLICY")]
    pub policy: PathBuf,
    /// The intent branch.
    #[arg(long, default_value = crate::hydrate::DEFAULT_BRANCH, env = "VWORKSPACE_BRANCH")]
    pub branch: String,
    /// Commit the manifests to the root of this branch [default: hydrated/<cluster-id>].
    #[arg(long, value_name = "B")]
    pub out_branch: Option<String>,
    /// Commit the manifests under this path of the intent branch instead (outside the intent path).
    #[arg(long, value_name = "P")]
    pub out_path: Option<String>,
    /// The operator's own key that signs output commits: an OpenSSH private key or an armored OpenPGP
    /// secret key, without passphrase.
    #[arg(long, value_name = "FILE", env = "VWORKSPACE_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// The operator's notes key that signs every outcome record: an unencrypted OpenSSH Ed25519 private key
    /// (docs/audit-trail.md#authenticity). Without it records are unsigned and readers show them unverified.
    #[arg(long, value_name = "FILE", env = "VWORKSPACE_NOTES_SIGNING_KEY")]
    pub notes_signing_key: Option<PathBuf>,
    /// Path of this cluster's intent in the repo [default: clusters/<cluster-id>].
    #[arg(long, value_name = "P", env = "VWORKSPACE_REPO_PATH")]
    pub repo_path: Option<String>,
    /// Git credentials directory (see docs/install.md): https username/password or token, or an ssh key.
    #[arg(long, value_name = "DIR", env = "VWORKSPACE_GIT_CREDENTIALS")]
    pub git_credentials: Option<PathBuf>,
    /// A directory whose templates override the embedded ones.
    #[arg(long, value_name = "DIR", env = "VWORKSPACE_TEMPLATES")]
    pub templates: Option<PathBuf>,
    /// Namespace of Velero (where Backups and Restores go).
    #[arg(long, default_value = "velero", env = "VWORKSPACE_VELERO_NAMESPACE")]
    pub velero_namespace: String,
    /// The repo cache and undelivered notes live in <state-dir>/hydrate-<cluster-id>.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/vworkspace-operator",
        env = "VWORKSPACE_STATE_DIR"
    )]
    pub state_dir: PathBuf,
    /// Author and committer name of output commits.
    #[arg(long, default_value = crate::git::notes::NOTES_AUTHOR_NAME)]
    pub author_name: String,
    /// Author and committer email of output commits.
    #[arg(long, default_value = crate::git::notes::NOTES_AUTHOR_EMAIL)]
    pub author_email: String,
    /// Run one pass and exit (the default).
    #[arg(long)]
    pub once: bool,
    /// Run a pass every interval (e.g. 30s, 5m) until SIGINT or SIGTERM.
    #[arg(long, value_name = "D", value_parser = super::run::parse_duration)]
    pub interval: Option<Duration>,
    /// Allow an output commit that empties a non-empty output (Flux then prunes every object).
    #[arg(long)]
    pub allow_empty: bool,
    /// The namespaces intents may be in (comma-separated or repeated); default: any that is not reserved.
    #[arg(
        long,
        value_name = "NS",
        value_delimiter = ',',
        env = "VWORKSPACE_NAMESPACES"
    )]
    pub namespaces: Vec<String>,
    #[command(flatten)]
    pub chart_hosts: super::ChartHostArgs,
    #[command(flatten)]
    pub engine: super::EngineArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Log format (logs go to stderr; RUST_LOG sets the level).
    #[arg(long, default_value = "text", value_parser = ["json", "text"], env = "VWORKSPACE_LOG_FORMAT")]
    pub log_format: String,
}

fn options(args: &Args) -> anyhow::Result<Result<HydrateOptions, String>> {
    let policy = match TrustPolicy::load(&args.policy) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let credentials = match super::run::load_credentials(args.git_credentials.as_deref()) {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("{e:#}"))),
    };
    let mut opts = HydrateOptions::new(
        args.repo.clone(),
        args.cluster_id.clone(),
        policy,
        args.state_dir.join(format!("hydrate-{}", args.cluster_id)),
    );
    opts.branch = Some(args.branch.clone());
    opts.out = match (&args.out_branch, &args.out_path) {
        (Some(b), _) => Some(OutTarget::Branch(b.clone())),
        (None, Some(p)) => Some(OutTarget::Path(p.clone())),
        (None, None) => None,
    };
    opts.signing_key = args.signing_key.clone();
    opts.notes_signing_key = args.notes_signing_key.clone();
    opts.repo_path = args.repo_path.clone();
    opts.templates = args.templates.clone();
    opts.velero_namespace = args.velero_namespace.clone();
    opts.helm_engine = match args.engine.helm_engine() {
        Ok(e) => e,
        Err(e) => return Ok(Err(e.to_string())),
    };
    opts.credentials = credentials;
    opts.author_name = args.author_name.clone();
    opts.author_email = args.author_email.clone();
    opts.guards = crate::hydrate::guard::Guards {
        allow_empty: args.allow_empty,
        namespaces: args.namespaces.clone(),
        allowed_chart_hosts: args.chart_hosts.allow_chart_host.clone(),
    };
    Ok(Ok(opts))
}

fn print(report: &HydrateReport, output: Output) {
    match output {
        Output::Text => println!("{}", Lines(report)),
        Output::Json => match serde_json::to_string(report) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("error: cannot print the report: {e}"),
        },
    }
}

/// One pass: its exit code.
fn pass(opts: &HydrateOptions, output: Output) -> u8 {
    match hydrate_once(opts) {
        Ok(report) => {
            print(&report, output);
            if report.ok() { EXIT_OK } else { EXIT_INVALID }
        }
        Err(e) => {
            report_error(&e);
            EXIT_USAGE
        }
    }
}

fn report_error(e: &HydrateError) {
    eprintln!("error: {}", Esc(e));
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    super::run::init_tracing(&args.log_format);
    let opts = match options(&args)? {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {}", Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    let Some(interval) = args.interval else {
        return Ok(pass(&opts, args.output));
    };
    if interval.is_zero() {
        eprintln!("error: --interval must be more than 0");
        return Ok(EXIT_USAGE);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed before the first pass: a signal during a pass ends the loop once the pass is done.
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let output = args.output;
        loop {
            let o = opts.clone();
            match tokio::task::spawn_blocking(move || hydrate_once(&o)).await {
                Ok(Ok(report)) => print(&report, output),
                Ok(Err(e)) if e.is_config() => {
                    report_error(&e);
                    return Ok(EXIT_USAGE);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "hydrate pass failed; retrying next interval");
                    report_error(&e);
                }
                Err(e) => tracing::error!(error = %e, "hydrate pass did not finish"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
            }
        }
        tracing::info!("stopping");
        Ok(EXIT_OK)
    })
}
