//! Network sysctls of a given namespace. /proc/sys/net files show the namespace of whoever
//! *opens* them, so the open happens on a thread inside the target namespace.
//!
//! The files are opened through a private procfs instance, not /proc. Every namespace's
//! `sys/net/ipv6` (and `ipv4`, `core`, …) is a dentry of the same name under the same parent
//! of a procfs mount, and a path lookup compares itself against each in turn: after sysctl
//! writes in 1000 namespaces through one mount, every later open costs ~0.3 ms instead of
//! ~20 µs, and the agent writes one per attach. A detached procfs mount (fsopen/fsmount: no
//! mount point, invisible to everyone else), replaced after [`OPENS_PER_MOUNT`] opens, keeps
//! that list short. Where a private mount is refused (an unprivileged container), /proc it is.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{fsconfig_create, fsmount, fsopen, FsMountFlags, FsOpenFlags, MountAttrFlags};

use super::{run_in, NetnsError};

/// `/proc/sys/...` for a key in dotted (`net.ipv4.ip_forward`) or slashed
/// (`net/ipv4/conf/eth0.100/forwarding`) form. The slashed form lets a component contain a
/// dot, as interface names may. No component may be empty, `.` or `..`.
pub fn sysctl_path(key: &str) -> Result<PathBuf, NetnsError> {
    Ok(Path::new("/proc").join(proc_relative_path(key)?))
}

/// The same path relative to a procfs root: `sys/...`.
fn proc_relative_path(key: &str) -> Result<PathBuf, NetnsError> {
    let invalid = |reason| NetnsError::InvalidSysctlKey {
        key: key.to_owned(),
        reason,
    };
    if key.contains('\0') {
        return Err(invalid("must not contain NUL"));
    }
    let separator = if key.contains('/') { '/' } else { '.' };
    let mut path = PathBuf::from("sys");
    for part in key.split(separator) {
        match part {
            "" => return Err(invalid("empty component")),
            "." | ".." => return Err(invalid("must not contain \".\" or \"..\" components")),
            _ => path.push(part),
        }
    }
    Ok(path)
}

/// Opens through one private procfs mount before the next one replaces it: short enough
/// that its per-namespace dentry lists stay a few entries long, long enough that the mount
/// (~0.1 ms) costs ~2 µs per open.
const OPENS_PER_MOUNT: u32 = 64;

enum ProcRoot {
    Private {
        mount: Arc<OwnedFd>,
        opens: u32,
    },
    /// Private mounts were refused once; use /proc from now on.
    Shared,
}

static PROC_ROOT: Mutex<Option<ProcRoot>> = Mutex::new(None);

/// The private procfs root to open sysctls under, or `None` for /proc.
fn private_proc_root() -> Option<Arc<OwnedFd>> {
    let mut root = PROC_ROOT.lock().unwrap_or_else(PoisonError::into_inner);
    match &mut *root {
        Some(ProcRoot::Shared) => return None,
        Some(ProcRoot::Private { mount, opens }) if *opens < OPENS_PER_MOUNT => {
            *opens += 1;
            return Some(Arc::clone(mount));
        }
        _ => {}
    }
    let mounted = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).and_then(|context| {
        fsconfig_create(&context)?;
        fsmount(
            &context,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::empty(),
        )
    });
    match mounted {
        Ok(mount) => {
            let mount = Arc::new(mount);
            let old = root.replace(ProcRoot::Private {
                mount: Arc::clone(&mount),
                opens: 1,
            });
            // Unmounting waits for an RCU grace period (~1 ms): not on this caller's time.
            if let Some(old) = old {
                let _ = std::thread::Builder::new()
                    .name("warren-procfs".into())
                    .spawn(move || drop(old));
            }
            Some(mount)
        }
        Err(errno) => {
            tracing::debug!(error = %errno, "no private procfs mount; sysctls go through /proc");
            *root = Some(ProcRoot::Shared);
            None
        }
    }
}

fn open_sysctl(relative: &Path, write: bool) -> io::Result<File> {
    match private_proc_root() {
        Some(root) => {
            let access = if write {
                OFlags::WRONLY
            } else {
                OFlags::RDONLY
            };
            let fd = rustix::fs::openat(&*root, relative, access | OFlags::CLOEXEC, Mode::empty())?;
            Ok(File::from(fd))
        }
        None => OpenOptions::new()
            .read(!write)
            .write(write)
            .open(Path::new("/proc").join(relative)),
    }
}

fn in_ns<T: Send>(
    ns: Option<&Path>,
    f: impl FnOnce() -> Result<T, NetnsError> + Send,
) -> Result<T, NetnsError> {
    match ns {
        Some(path) => run_in(path, f)?,
        None => f(),
    }
}

/// Write a sysctl inside the namespace at `ns` (`None`: the caller's own namespace).
pub fn sysctl_set(ns: Option<&Path>, key: &str, value: &str) -> Result<(), NetnsError> {
    let path = proc_relative_path(key)?;
    in_ns(ns, || {
        open_sysctl(&path, true)
            .and_then(|mut file| file.write_all(value.as_bytes()))
            .map_err(|source| NetnsError::WriteSysctl {
                key: key.to_owned(),
                source,
            })
    })
}

/// Turn IPv6 off on the interface `ifname` of the caller's namespace (before it comes up, so
/// the kernel never starts address configuration on it). A kernel without IPv6 has nothing to
/// turn off: not an error.
pub fn disable_ipv6(ifname: &str) -> Result<(), NetnsError> {
    match sysctl_set(None, &format!("net.ipv6.conf.{ifname}.disable_ipv6"), "1") {
        Err(e) if crate::error::HasKind::kind(&e) == crate::error::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Read a sysctl (trimmed) inside the namespace at `ns` (`None`: the caller's own).
pub fn sysctl_get(ns: Option<&Path>, key: &str) -> Result<String, NetnsError> {
    let path = proc_relative_path(key)?;
    in_ns(ns, || {
        let mut value = String::new();
        open_sysctl(&path, false)
            .and_then(|mut file| file.read_to_string(&mut value))
            .map(|_| value.trim_end().to_owned())
            .map_err(|source| NetnsError::ReadSysctl {
                key: key.to_owned(),
                source,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, HasKind};

    #[test]
    fn keys_map_to_proc_sys_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
    }

    #[test]
    fn traversal_and_empty_components_are_invalid() {
        for key in [
            "",
            "net..ipv4",
            "net/../etc",
            "../x",
            "net.ipv4.",
            "/net/ipv4",
            "a\0b",
        ] {
            let err = sysctl_path(key).expect_err(key);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{key:?}");
        }
    }

    #[test]
    fn reads_own_namespace() {
        let v = sysctl_get(Some(Path::new("/proc/self/ns/net")), "net.ipv4.ip_forward").unwrap();
        assert!(v == "0" || v == "1");
        let err = sysctl_get(None, "net.ipv4.no_such_key").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}
