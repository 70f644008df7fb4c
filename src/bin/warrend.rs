//! `warrend`: parse flags, run the agent, map the error's kind to the exit code.
//!
//! Two hidden first arguments turn the same binary into the runtime's helpers, dispatched
//! before clap and before any thread exists (they fork, unshare and setns): the per-container
//! shim (`__warren-shim BUNDLE`) and the exec helper (`__warren-exec BUNDLE SPEC`).
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some(warren::runtime::SHIM_ARG) if args.len() == 3 => {
            return exit(warren::runtime::shim::main(Path::new(&args[2])));
        }
        Some(warren::runtime::EXEC_ARG) if args.len() == 4 => {
            let spec = args[3].to_string_lossy();
            return exit(warren::runtime::exec::main(Path::new(&args[2]), &spec));
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
