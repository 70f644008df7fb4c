//! `warrend`: parse flags, run the agent, map the error's kind to the exit code.
//!
//! Two process names turn the same binary into the runtime's helpers, dispatched before clap
//! and before any thread exists (they fork, unshare and setns): the per-container shim
//! (`warren-shim`, told its bundle on stdin) and the exec helper (`warren-exec SPEC`, started
//! with the container's bundle as working directory); see `runtime::exe`.
use std::process::ExitCode;

use clap::Parser;
use warren::runtime::exe::{EXEC_NAME, SHIM_NAME};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let role = args.first().and_then(|a| a.to_str());
    match (role, args.len()) {
        (Some(SHIM_NAME), 1) => return exit(warren::runtime::shim::main()),
        (Some(EXEC_NAME), 2) => {
            let Ok(bundle) = std::env::current_dir() else {
                eprintln!("warrend: {EXEC_NAME}: cannot read the working directory");
                return ExitCode::from(125);
            };
            return exit(warren::runtime::exec::main(
                &bundle,
                &args[1].to_string_lossy(),
            ));
        }
        (Some(name @ (SHIM_NAME | EXEC_NAME)), _) => {
            eprintln!("warrend: {name}: unexpected arguments");
            return ExitCode::from(125);
        }
        _ => {}
    }
    let args = warren::cli::daemon::DaemonArgs::parse();
    match warren::cli::daemon::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("warrend: {err}");
            ExitCode::from(err.kind().exit_code().max(1))
        }
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}
