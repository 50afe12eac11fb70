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
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", crate::escape::Lines(format!("{e:#}")));
            ExitCode::from(EXIT_USAGE)
        }
    }
}
