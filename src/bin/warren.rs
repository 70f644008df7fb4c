//! `warren`: parse, run, map the error's kind to the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = warren::cli::Cli::parse();
    match warren::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warren: {err}");
            ExitCode::from(err.kind().exit_code())
        }
    }
}
