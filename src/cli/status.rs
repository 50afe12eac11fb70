//! `status`: one screen for the cluster (docs/trace.md#status). Also `kubectl vwo status`.

use std::path::PathBuf;

use super::{EXIT_INVALID, EXIT_OK};
use crate::trace::cluster::StatusOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

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
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    crate::report::install_crypto_provider();
    let opts = StatusOptions {
        cluster_id: args.cluster_id,
        policy: args.policy,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to the API server: {e}"))?;
        crate::trace::cluster::collect(client, &opts).await
    });
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", crate::escape::Lines(format!("{e:#}")));
            return Ok(EXIT_INVALID);
        }
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        Output::Text => print!("{}", crate::trace::cluster::text(&status)),
    }
    Ok(EXIT_OK)
}
