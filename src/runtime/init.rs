//! The container's PID 1: joins the prepared network namespace, makes the container's own
//! mount, UTS, IPC and cgroup namespaces, its sysctls and root filesystem, gives up what the
//! container may not do (the init is confined like every other process of the container),
//! then starts the command. With the built-in init (the default) it stays as a tiny init —
//! reaps every zombie, forwards every signal to the command and exits with the command's exit
//! code — otherwise it execs the command itself, which then is PID 1 (Docker's
//! `--init=false`).
//!
//! Failures before the command runs are sent to the shim as one typed message over the sync
//! pipe; the pipe is close-on-exec, so EOF without a message means the command was exec'd.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::cgroups::Cgroup;
use super::confine::seccomp::Program;
use super::confine::{sysctl_path, CgroupnsMode};
use super::process::{self, Identity};
use super::spec::ContainerSpec;
use super::{io, os_err, rootfs, sys, RuntimeError};

/// Init → shim, over the sync pipe.
#[derive(Debug, Serialize, Deserialize)]
pub enum InitMessage {
    /// The container could not be set up or its command could not be exec'd.
    Failed(String),
}

/// The command's stdout/stderr (write ends of the shim's pipes) and the sync pipe.
#[derive(Debug)]
pub struct InitFds {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub sync: OwnedFd,
}

/// Exit codes when the command cannot be run (the shell's conventions).
const EXIT_SETUP_FAILED: i32 = 125;
const EXIT_CANNOT_EXEC: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

fn send(sync: &OwnedFd, msg: &InitMessage) {
    let mut line = serde_json::to_vec(msg).unwrap_or_default();
    line.push(b'\n');
    let _ = nix::unistd::write(sync, &line);
}

/// Runs in the freshly forked first process of the new PID namespace, born in the container's
/// v2 cgroup (`in_unified`: false when it had to be placed afterwards). Never returns.
pub fn run(spec: &ContainerSpec, cgroup: &Cgroup, in_unified: bool, fds: InitFds) -> ! {
    let identity = match setup(spec, cgroup, in_unified) {
        Ok(identity) => identity,
        Err(e) => {
            send(&fds.sync, &InitMessage::Failed(crate::error::chain(&e)));
            sys::exit_now(EXIT_SETUP_FAILED);
        }
    };
    if !spec.init {
        exec_command(spec, &identity, fds);
    }
    // Block everything before forking so no signal is lost before the loop waits for it;
    // the command unblocks in its own process.
    let all = SigSet::all();
    let _ = all.thread_block();
    match sys::fork() {
        Ok(ForkResult::Child) => exec_command(spec, &identity, fds),
        Ok(ForkResult::Parent { child }) => {
            drop(fds);
            let _ = nix::sys::prctl::set_name(c"warren-init");
            reap(child, &all)
        }
        Err(e) => {
            send(
                &fds.sync,
                &InitMessage::Failed(format!("fork the command: {e}")),
            );
            sys::exit_now(EXIT_SETUP_FAILED)
        }
    }
}

/// Everything done with full privileges, ending with giving them up; returns who the
/// command runs as.
fn setup(
    spec: &ContainerSpec,
    cgroup: &Cgroup,
    in_unified: bool,
) -> Result<Identity, RuntimeError> {
    let confinement = &spec.confinement;
    cgroup.join_self(!in_unified)?;
    // Read before pivot_root: the filter lives in the bundle, on the host's side.
    let seccomp = confinement
        .seccomp
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .map_err(io(format!("read {}", path.display())))
                .and_then(|bytes| {
                    Program::from_bytes(bytes).map_err(|e| {
                        RuntimeError::Invalid(format!("seccomp filter {}: {e}", path.display()))
                    })
                })
        })
        .transpose()?;
    if let Some(netns) = &spec.netns {
        let ns = File::open(netns).map_err(io(format!("open {}", netns.display())))?;
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(os_err(format!(
            "join network namespace {}",
            netns.display()
        )))?;
    }
    let mut namespaces =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    if confinement.cgroupns == CgroupnsMode::Private {
        namespaces |= CloneFlags::CLONE_NEWCGROUP;
    }
    unshare(namespaces).map_err(os_err("create the container's namespaces"))?;
    nix::unistd::sethostname(&spec.hostname).map_err(os_err("set the hostname"))?;
    // /proc/sys answers for the namespaces of the process that writes: ours now.
    for (key, value) in &confinement.sysctls {
        std::fs::write(sysctl_path(key), value)
            .map_err(|e| RuntimeError::StartFailed(format!("set sysctl {key}={value}: {e}")))?;
    }
    rootfs::build(spec, cgroup)?;
    let identity = Identity::resolve(Path::new("/"), &spec.process.user, &confinement.group_add)?;
    // Docker creates a missing working directory (as root, before the root may turn read-only).
    let cwd = if spec.process.cwd.is_empty() {
        "/"
    } else {
        &spec.process.cwd
    };
    std::fs::create_dir_all(cwd)
        .map_err(|e| RuntimeError::StartFailed(format!("create working directory {cwd}: {e}")))?;
    if confinement.read_only_rootfs {
        rootfs::make_root_read_only()?;
    }
    process::drop_privileges(
        &identity,
        confinement,
        confinement.capabilities,
        seccomp.as_ref(),
    )?;
    Ok(identity)
}

/// Become the command: signals back to defaults, stdio onto the shim's pipes, then exec.
fn exec_command(spec: &ContainerSpec, identity: &Identity, fds: InitFds) -> ! {
    let _ = SigSet::all().thread_unblock();
    sys::reset_signal_dispositions();
    let stdio = (|| -> Result<(), RuntimeError> {
        let null = File::open("/dev/null").map_err(io("open /dev/null"))?;
        nix::unistd::dup2_stdin(&null).map_err(os_err("set up stdin"))?;
        nix::unistd::dup2_stdout(&fds.stdout).map_err(os_err("set up stdout"))?;
        nix::unistd::dup2_stderr(&fds.stderr).map_err(os_err("set up stderr"))?;
        Ok(())
    })();
    let InitFds {
        stdout,
        stderr,
        sync,
    } = fds;
    drop((stdout, stderr));
    if let Err(e) = stdio {
        send(&sync, &InitMessage::Failed(crate::error::chain(&e)));
        sys::exit_now(EXIT_SETUP_FAILED);
    }
    sys::cloexec_from_3();
    let err = match process::exec(&spec.process, Some(&spec.hostname), &identity.home) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = match &err {
        RuntimeError::StartFailed(m) if m.contains("not found") => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXEC,
    };
    send(&sync, &InitMessage::Failed(crate::error::chain(&err)));
    sys::exit_now(code)
}

/// PID 1's loop: forward signals to the command, reap every child, and exit with the
/// command's status once it is gone (the kernel then kills whatever is left in the
/// namespace).
fn reap(command: Pid, signals: &SigSet) -> ! {
    loop {
        let sig = signals.wait().unwrap_or(Signal::SIGCHLD);
        if sig != Signal::SIGCHLD {
            let _ = kill(command, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == command => sys::exit_now(code),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == command => {
                    sys::exit_now(128 + s as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue, // an orphan reaped
            }
        }
    }
}
