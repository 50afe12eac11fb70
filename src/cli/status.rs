//! `status`: one screen for the cluster (docs/trace.md#status). Also `kubectl vwo status`.

use std::path::PathBuf;

use super::ViewOutput;
use crate::trace::cluster::StatusOptions;

/// The cluster at a glance: mode and connectivity, the verified view against Flux, the trust policy, intents by
/// state and the latest refusals, what is owed, the webhook certificate.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Cluster object (the cluster id); default: the only one.
    #[arg(long, env = "VWORKSPACE_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// The trust policy to show; default: the policy Secret beside the operator, when readable.
    #[arg(long, value_name = "FILE", env = "VWORKSPACE_POLICY")]
    pub policy: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: ViewOutput,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let opts = StatusOptions {
        cluster_id: args.cluster_id,
        policy: args.policy,
    };
    super::show_view(args.output, crate::trace::cluster::text, async |client| {
        crate::trace::cluster::collect(client, &opts).await
    })
}
