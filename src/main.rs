use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vworkspace_operator::cli::Cli::parse();
    vworkspace_operator::cli::run(cli)
}
