//! `exec`: run another process in a running container. The agent is multi-threaded and must
//! not setns (the namespace/thread trap; setns into a mount namespace even fails in a
//! threaded process), so it spawns `warrend __warren-exec BUNDLE SPEC` with pipes for stdio.
//! That helper is single-threaded: it opens the init's namespaces, joins the container's
//! cgroups, enters the namespaces, forks (a PID namespace applies to children) and the child
//! execs; the helper exits with the child's exit code.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

use super::bundle::Bundle;
use super::process::{self, ProcessSpec};
use super::{io, os_err, sys, RuntimeError};

/// Exit code of the helper when it could not even start the process (Docker's 126/127
/// convention is used for exec failures of the command itself).
pub const EXIT_HELPER_FAILED: i32 = 125;

/// Entry point of the helper (single-threaded). Returns the process exit code.
pub fn main(bundle_dir: &Path, spec_json: &str) -> i32 {
    match run(bundle_dir, spec_json) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warren exec: {}", crate::error::chain(&e));
            EXIT_HELPER_FAILED
        }
    }
}

fn run(bundle_dir: &Path, spec_json: &str) -> Result<i32, RuntimeError> {
    let bundle = Bundle {
        dir: bundle_dir.to_path_buf(),
    };
    let exec: ProcessSpec = serde_json::from_str(spec_json)
        .map_err(|e| RuntimeError::Invalid(format!("malformed exec spec: {e}")))?;
    let container = bundle.read_spec()?;
    let state = bundle.running().ok_or_else(|| RuntimeError::NotRunning {
        id: container.id.clone(),
    })?;
    // Open every namespace first: once in the container's mount namespace, /proc is its own.
    let kinds = ["ipc", "uts", "net", "pid", "mnt"];
    let files = kinds
        .iter()
        .map(|k| {
            let path = format!("/proc/{}/ns/{k}", state.init_pid);
            File::open(&path).map_err(io(format!("open {path}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    state.cgroup.join_self()?;
    for (kind, file) in kinds.iter().zip(&files) {
        setns(file, CloneFlags::empty()).map_err(os_err(format!("enter the {kind} namespace")))?;
    }
    drop(files);
    let mut env = container.process.env.clone();
    env.extend(exec.env.iter().cloned());
    let process = ProcessSpec {
        args: exec.args.clone(),
        env,
        cwd: if exec.cwd.is_empty() {
            container.process.cwd.clone()
        } else {
            exec.cwd.clone()
        },
        user: if exec.user.is_empty() {
            container.process.user.clone()
        } else {
            exec.user.clone()
        },
    };
    match sys::fork().map_err(os_err("fork"))? {
        ForkResult::Child => {
            sys::reset_signal_dispositions();
            sys::cloexec_from_3();
            let err = match process::exec(&process, Some(&container.hostname)) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            eprintln!("{}", crate::error::chain(&err));
            let code = if err.to_string().contains("not found") {
                127
            } else {
                126
            };
            sys::exit_now(code)
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(RuntimeError::Sys {
                        action: "wait for the process".into(),
                        source: e,
                    })
                }
            }
        },
    }
}
