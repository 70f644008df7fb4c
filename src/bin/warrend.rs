//! `warrend`: parse flags, run the agent, map the error's kind to the exit code.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = warren::cli::daemon::DaemonArgs::parse();
    match warren::cli::daemon::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warrend: {err}");
            ExitCode::from(err.kind().exit_code().max(1))
        }
    }
}
