//! `trace KIND/NAMESPACE/NAME`: why an intent is (not) running, from its source to its release (docs/trace.md).
//! Also run as the kubectl plugin `kubectl vwo trace …` (the binary installed or linked as `kubectl-vwo`).

use std::path::PathBuf;

use super::{EXIT_USAGE, ViewOutput};
use crate::trace::{RepoOptions, Target};

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
    pub output: ViewOutput,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let target = match Target::parse(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}", crate::escape::Esc(e));
            return Ok(EXIT_USAGE);
        }
    };
    let repo = RepoOptions {
        repo: args.repo,
        policy: args.policy,
    };
    super::show_view(args.output, crate::trace::text::text, async |client| {
        crate::trace::collect(client, &target, &repo).await
    })
}
