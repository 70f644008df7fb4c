//! The binary the agent re-executes as a container's shim and as the exec helper.
//!
//! Every process of a container starts as this binary (the init is a fork of the shim), so
//! `/proc/1/exe` inside a container points at it. Executed by its host path, that link would
//! show where Warren is installed, and a container process holding it open could write to the
//! agent's binary once nothing runs it (runc's CVE-2019-5736). So the agent executes a
//! read-only, detached bind mount of itself instead (`open_tree(OPEN_TREE_CLONE)` sealed
//! with `mount_setattr(MOUNT_ATTR_RDONLY)`): `/proc/1/exe` reads as `/`, and opening it for
//! writing fails. The mount is made once per agent, costs nothing per container and copies
//! nothing (runc's memfd copy would hold the whole binary in memory).
//!
//! The role is the process name (`argv[0]`): `warren-shim` (told its bundle on stdin) or
//! `warren-exec` (with the bundle as working directory), so no host path appears in a
//! container's `/proc/1/cmdline` either, and the environment is emptied so none appears in
//! `/proc/1/environ`.
//!
//! Shims are started ahead of need ([`ShimLauncher`]): executing the agent's binary is the
//! largest single cost of a container start on the path from the request to the running
//! command (measured ~1.5 ms of ~6 ms on a 2-core VM: exec, page faults of an 80 MB image,
//! the loader), so one shim always waits, already executed, for its next bundle.

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// `argv[0]` of the shim and of the exec helper.
pub const SHIM_NAME: &str = "warren-shim";
pub const EXEC_NAME: &str = "warren-exec";

#[derive(Debug)]
pub struct HelperBinary {
    /// The sealed detached mount of the binary, when the kernel allowed one.
    sealed: Option<OwnedFd>,
    path: PathBuf,
}

impl HelperBinary {
    /// The running binary, sealed when possible (kernel ≥ 5.12 and CAP_SYS_ADMIN); otherwise
    /// its path, with a warning.
    pub fn current() -> HelperBinary {
        Self::at(std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")))
    }

    fn at(path: PathBuf) -> HelperBinary {
        let sealed = seal(&path)
            .map_err(|e| {
                tracing::warn!(
                    binary = %path.display(),
                    "cannot seal the runtime binary ({e}); containers can see its host path"
                )
            })
            .ok();
        HelperBinary { sealed, path }
    }

    /// What to execute: the sealed mount through our own descriptor table, or the path.
    pub fn program(&self) -> PathBuf {
        match &self.sealed {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.path.clone(),
        }
    }

    /// A command running this binary as `role` in `bundle`, with an empty environment.
    pub fn command(&self, role: &str, bundle: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.program());
        cmd.arg0(role).current_dir(bundle).env_clear();
        cmd
    }
}

/// Hands out shims, keeping one spare executed (and detached) ahead of need. A spare holds
/// nothing but two pipes to the agent: when the agent exits, its stdin reaches EOF and it
/// exits without a trace.
#[derive(Debug)]
pub struct ShimLauncher {
    binary: Arc<HelperBinary>,
    spare: Mutex<Option<Shim>>,
}

/// A started shim's pipes: it reads its bundle from the first, reports on the second.
#[derive(Debug)]
struct Shim {
    bundle: std::fs::File,
    report: tokio::process::ChildStdout,
}

impl ShimLauncher {
    pub fn new(binary: Arc<HelperBinary>) -> ShimLauncher {
        ShimLauncher {
            binary,
            spare: Mutex::new(None),
        }
    }

    /// Start a shim for `bundle` (the spare when one waits, else a new one) and return the
    /// pipe it reports on (see [`super::bundle::Bundle::await_shim`]). Starts the next
    /// spare in the background.
    pub fn launch(self: &Arc<Self>, bundle: &Path) -> std::io::Result<tokio::process::ChildStdout> {
        let mut line = bundle.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
        let launcher = Arc::clone(self);
        tokio::spawn(async move { launcher.refill() });
        // A spare that died while waiting (someone killed it) is replaced by a new shim.
        if let Some(mut shim) = spare {
            if shim.bundle.write_all(&line).is_ok() {
                return Ok(shim.report);
            }
        }
        let mut shim = self.spawn()?;
        shim.bundle.write_all(&line)?;
        Ok(shim.report)
    }

    fn refill(&self) {
        if self
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        match self.spawn() {
            // A concurrent refill may have won; the loser's shim then exits on EOF.
            Ok(shim) => {
                let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
                if spare.is_none() {
                    *spare = Some(shim);
                }
            }
            Err(e) => tracing::warn!("cannot start a spare shim: {e}"),
        }
    }

    /// Execute a shim; its first process forks the detached shim and exits at once (reaped
    /// here in the background), the pipes stay with the detached one.
    fn spawn(&self) -> std::io::Result<Shim> {
        let mut first = self
            .binary
            .command(SHIM_NAME, Path::new("/"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Until it has a bundle (and its shim.log), the shim's errors go to the agent's.
            .stderr(Stdio::inherit())
            .spawn()?;
        let bundle = first
            .stdin
            .take()
            .expect("stdin is piped")
            .into_owned_fd()?;
        let report = first.stdout.take().expect("stdout is piped");
        tokio::spawn(async move { first.wait().await });
        Ok(Shim {
            bundle: std::fs::File::from(bundle),
            report,
        })
    }
}

fn seal(path: &Path) -> std::io::Result<OwnedFd> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    let fd = open_tree(
        rustix::fs::CWD,
        path,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    super::sys::seal_detached_mount(fd.as_fd())?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    #[test]
    fn the_sealed_binary_shows_no_path_and_cannot_be_written() {
        let bin = HelperBinary::at(PathBuf::from("/bin/sleep"));
        assert!(
            bin.sealed.is_some(),
            "tests run as root on a kernel with open_tree"
        );
        let mut child = std::process::Command::new(bin.program())
            .arg0("warren-test")
            .arg("30")
            .spawn()
            .unwrap();
        // The arguments appear a moment after spawn returns; wait for them.
        let mut cmdline = Vec::new();
        for _ in 0..100 {
            cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
            if !cmdline.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let exe = std::fs::read_link(format!("/proc/{}/exe", child.id()));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(exe.unwrap(), PathBuf::from("/"));
        assert_eq!(cmdline, b"warren-test\x0030\x00");
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(bin.program())
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    }
}
