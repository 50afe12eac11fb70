//! The command line: one file per subcommand, each with `Args` and `run()`.
//!
//! Exit codes: 0 success, 1 when the input is invalid or did not verify, 2 for usage errors and
//! unreadable configuration.

pub mod crdgen;
pub mod demo;
pub mod hydrate;
pub mod notes;
pub mod render;
pub mod run;
pub mod sign_job;
pub mod status;
pub mod trace;
pub mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: everything succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: some input is invalid, did not render, or did not verify.
pub const EXIT_INVALID: u8 = 1;
/// Exit code: usage error or unreadable configuration.
pub const EXIT_USAGE: u8 = 2;

/// `--allow-chart-host`: one flag, flattened into `run`, `render` and `hydrate`, so that the three judge chart
/// hosts alike.
#[derive(Debug, Clone, clap::Args)]
pub struct ChartHostArgs {
    /// A chart host allowed although it is loopback, link-local, a metadata address or a cluster-internal
    /// name (repeat, or comma-separate); give `render` and `hydrate` the operator's list. Refused otherwise.
    #[arg(
        long,
        value_name = "HOST",
        value_delimiter = ',',
        env = "VWORKSPACE_ALLOW_CHART_HOSTS"
    )]
    pub allow_chart_host: Vec<String>,
}

/// `--engine` and `--argocd-namespace`: one pair, flattened into `run`, `render` and `hydrate`, so that a
/// review renders what the cluster's engine will get.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// What installs an ApplicationInstance's chart: `flux` (a HelmRelease and its chart source) or `argocd`
    /// (an Argo CD Application and its AppProject). One engine per cluster.
    #[arg(long, value_name = "ENGINE", default_value = "flux", value_parser = ["flux", "argocd"], env = "VWORKSPACE_ENGINE")]
    pub engine: String,
    /// Argo CD's namespace, where the AppProjects go (`--engine argocd`).
    #[arg(long, value_name = "NS", default_value = crate::render::DEFAULT_ARGOCD_NAMESPACE, env = "VWORKSPACE_ARGOCD_NAMESPACE")]
    pub argocd_namespace: String,
}

impl EngineArgs {
    /// The engine these flags name.
    pub fn helm_engine(&self) -> anyhow::Result<crate::render::HelmEngine> {
        if !crate::render::is_dns_label(&self.argocd_namespace) {
            anyhow::bail!(
                "--argocd-namespace {:?}: not a valid namespace name",
                self.argocd_namespace
            );
        }
        crate::render::HelmEngine::parse(&self.engine, &self.argocd_namespace)
            .map_err(|e| anyhow::anyhow!("--engine: {e}"))
    }
}

#[derive(Debug, Parser)]
#[command(name = "vworkspace-operator", version = env!("VWO_VERSION_LINE"), about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions of the API as YAML.
    Crdgen(crdgen::Args),
    /// The tour: verify, render, hydrate and audit a throwaway cluster repo (and run the controller with
    /// --kubeconfig); no cluster or network needed.
    Demo(demo::Args),
    /// Validate and render intents for review: a directory, a git revision, or the diff between two.
    Render(render::Args),
    /// Render verified intent and commit the manifests to an output branch or path for Flux.
    Hydrate(Box<hydrate::Args>),
    /// Read the audit trail: outcome records written as git notes.
    Notes(notes::Args),
    /// Run the operator: verify intent from the cluster repo, render and apply it, report outcomes.
    Run(Box<run::Args>),
    /// Sign Pull-mode jobs with a control-plane key (for the control plane, tests and the demo).
    SignJob(sign_job::Args),
    /// Add Push mode's signature annotation to an intent with a control-plane key.
    SignIntent(sign_job::IntentArgs),
    /// Verify commit signatures of a revision or range under a trust policy.
    Verify(verify::Args),
    /// Follow one intent from its source to its release: why it is (not) running, and what to do next.
    Trace(trace::Args),
    /// The cluster at a glance: connectivity, the verified view, the policy, intents, refusals, what is owed.
    Status(status::Args),
}

/// How `trace` and `status` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewOutput {
    Text,
    Json,
}

/// Collect a read-only view of the cluster (`trace`, `status`) with a client of `$KUBECONFIG` (or the Pod's
/// account) and print it: text or JSON, exit 0; when it cannot be collected, the reason on stderr, exit 1.
fn show_view<T, F, Fut>(
    output: ViewOutput,
    text: fn(&T) -> String,
    collect: F,
) -> anyhow::Result<u8>
where
    T: serde::Serialize,
    F: FnOnce(kube::Client) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    crate::report::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let view = rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("connecting to the API server: {e}"))?;
        collect(client).await
    });
    match view {
        Ok(v) => {
            match output {
                ViewOutput::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                ViewOutput::Text => print!("{}", text(&v)),
            }
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {}", crate::escape::Lines(format!("{e:#}")));
            Ok(EXIT_INVALID)
        }
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Crdgen(args) => crdgen::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Render(args) => render::run(args),
        Command::Hydrate(args) => hydrate::run(*args),
        Command::Notes(args) => notes::run(args),
        Command::Verify(args) => verify::run(args),
        Command::SignJob(args) => sign_job::run(args),
        Command::SignIntent(args) => sign_job::run_intent(args),
        Command::Run(args) => run::run(*args),
        Command::Trace(args) => trace::run(args),
        Command::Status(args) => status::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", crate::escape::Lines(format!("{e:#}")));
            ExitCode::from(EXIT_USAGE)
        }
    }
}
