//! manulctl: parses the command line, runs it on a single-threaded tokio runtime, prints the
//! error (if any) to stderr and exits non-zero with it.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use manul_ctl::{app, cli::Cli};

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(app::run(cli, &mut stdout)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}
