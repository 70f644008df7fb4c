//! `exec`: run another process in a running container. The agent is multi-threaded and must
//! not setns (the namespace/thread trap; setns into a mount namespace even fails in a
//! threaded process), so it spawns `warrend __warren-exec BUNDLE SPEC` with pipes for stdio.
//! That helper is single-threaded: it opens the init's namespaces, joins the container's
//! cgroups, enters the namespaces, forks (a PID namespace applies to children) and the child
//! execs; the helper exits with the child's exit code.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;

use super::bundle::Bundle;
use super::confine::caps::CapSet;
use super::confine::seccomp::Program;
use super::process::{self, Identity, ProcessSpec};
use super::spec::ContainerSpec;
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
    let confinement = &container.confinement;
    // Everything from the host's side first: once in the container's mount namespace, /proc
    // and the bundle are out of reach.
    let seccomp = match (&confinement.seccomp, exec.privileged) {
        (Some(path), false) => Some(
            std::fs::read(path)
                .map_err(io(format!("read {}", path.display())))
                .and_then(|b| {
                    Program::from_bytes(b).map_err(|e| {
                        RuntimeError::Invalid(format!("seccomp filter {}: {e}", path.display()))
                    })
                })?,
        ),
        _ => None,
    };
    let kinds = ["ipc", "uts", "net", "cgroup", "pid", "mnt"];
    let files = kinds
        .iter()
        .map(|k| {
            let path = format!("/proc/{}/ns/{k}", state.init_pid);
            File::open(&path).map_err(io(format!("open {path}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let unified = state
        .cgroup
        .unified_dir()
        .transpose()
        .map_err(io("open the container's cgroup"))?;
    state.cgroup.join_self(false)?;
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
        privileged: exec.privileged,
    };
    // The child is born in the container's v2 cgroup (its device filter applies to it).
    let forked = match &unified {
        Some(dir) => match sys::fork_into_cgroup(dir.as_fd()) {
            Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::E2BIG) => {
                state.cgroup.join_self(true)?;
                sys::fork()
            }
            other => other,
        },
        None => sys::fork(),
    };
    match forked.map_err(os_err("fork"))? {
        ForkResult::Child => {
            drop(unified);
            sys::reset_signal_dispositions();
            sys::cloexec_from_3();
            let err = match become_process(&process, &container, seccomp.as_ref()) {
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

/// In the forked child, inside the container: the container's confinement (every capability
/// the container could be given for `exec --privileged`, as Docker), then exec.
fn become_process(
    process: &ProcessSpec,
    container: &ContainerSpec,
    seccomp: Option<&Program>,
) -> Result<std::convert::Infallible, RuntimeError> {
    let confinement = &container.confinement;
    let identity = Identity::resolve(Path::new("/"), &process.user, &confinement.group_add)?;
    let capabilities = if process.privileged {
        CapSet::own_bounding()
    } else {
        confinement.capabilities
    };
    process::drop_privileges(&identity, confinement, capabilities, seccomp)?;
    process::exec(process, Some(&container.hostname), &identity.home)
}
