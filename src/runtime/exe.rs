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
//! The role is the process name (`argv[0]`): `warren-shim` or `warren-exec`, with the bundle
//! as working directory, so no host path appears in a container's `/proc/1/cmdline` either,
//! and the environment is emptied so none appears in `/proc/1/environ`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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
