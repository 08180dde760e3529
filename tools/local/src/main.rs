//! `ocrbridge-local`: the local stack's command line (the same commands as `ocrbridge local`;
//! see [`ocrbridge_local::cli`]).
//!
//! ```text
//! ocrbridge-local health
//! ocrbridge-local provision [--stack NAME] [--secret LOGICAL_ID=VALUE]... [--env-out FILE] [--vendor V]
//! ocrbridge-local demo [--docs DIR] [--out DIR] [--timeout SECS] [--keep] [--binaries DIR] [--vendor V]
//! ```
//! Every command takes `--endpoint URL` (moto; default `$OCRBRIDGE_MOTO_URL`) and `--template`.

use std::process::ExitCode;

use clap::Parser;
use ocrbridge_local::cli::{run, LocalCommand, LocalOptions};

#[derive(Debug, Parser)]
#[command(
    name = "ocrbridge-local",
    about = "The local stack: moto, provisioning, the demo"
)]
struct Cli {
    #[command(flatten)]
    options: LocalOptions,
    #[command(subcommand)]
    command: LocalCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli.options, cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocrbridge-local: {e}");
            ExitCode::FAILURE
        }
    }
}
