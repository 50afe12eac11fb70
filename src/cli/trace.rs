//! `trace KIND/NAMESPACE/NAME`: why an intent is (not) running, from its source to its release (docs/trace.md).
//! Also run as the kubectl plugin `kubectl vwo trace …` (the binary installed or linked as `kubectl-vwo`).

use std::path::PathBuf;

use super::{EXIT_INVALID, EXIT_OK, EXIT_USAGE};
use crate::trace::{RepoOptions, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Follow one intent from its source to its release, and say what to do next.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `ApplicationInstance/NAMESPACE/NAME` or `Operation/NAMESPACE/NAME` (also `ai/…`, `op/…`).
    pub target: String,
    /// A clone of the cluster repo: shows the intent commit's subject, author and signature, and its notes.
    #[arg(long, value_name = "PATH", env = "VWORKSPACE_REPO")]
    pub repo: Option<PathBuf>,
    /// The trust policy: judges the commit's signature and the notes' authenticity (with --repo).
    #[arg(long, value_name = "FILE", env = "VWORKSPACE_POLICY")]
    pub policy: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let target = match Target::parse(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", crate::escape::Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    crate::report::install_crypto_provider();
    let repo = RepoOptions {
        repo: args.repo,
        policy: args.policy,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let trace = rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to the API server: {e}"))?;
        crate::trace::collect(client, &target, &repo).await
    });
    let trace = match trace {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", crate::escape::Lines(format!("{e:#}")));
            return Ok(EXIT_INVALID);
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&trace)?),
        Output::Text => print!("{}", crate::trace::text::text(&trace)),
    }
    Ok(EXIT_OK)
}
