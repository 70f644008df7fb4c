//! Network namespaces: names and pinning under /run/netns (shared with iproute2) and running code inside one on a dedicated thread.
//!
//! This module owns the namespace *files*: creating a namespace and bind-mounting it at
//! `/run/netns/NAME` exactly like `ip netns add` does (so `ip netns` and warren see the same
//! namespaces), deleting, listing, resolving names, and entering a namespace safely.
//!
//! The thread rule (see DESIGN.md): `setns(2)` moves only the calling thread, so code that must
//! run inside a namespace runs on a short-lived dedicated thread ([`run_in`], [`run_in_async`]);
//! no tokio worker and no caller thread ever changes namespace. The one exception is [`exec`],
//! which replaces the whole (single-threaded) process.

mod exec;
mod nsid;
mod sysctl;
mod thread;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{ErrorKind, HasKind};

pub use exec::exec;
pub use sysctl::{disable_ipv6, sysctl_get, sysctl_path, sysctl_set};
pub use thread::{run_in, run_in_async};

/// Where named namespaces are pinned; iproute2's convention.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Longest namespace name accepted: a file name on every Linux filesystem (NAME_MAX).
const NAME_MAX: usize = 255;

/// What went wrong with a namespace operation.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("invalid network namespace name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("network namespace {name:?} already exists")]
    Exists { name: String },
    #[error("network namespace {} not found", path.display())]
    NotFound { path: PathBuf },
    #[error("create {}", path.display())]
    CreateRunDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("make {} a shared mount point", path.display())]
    ShareRunDir {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("create namespace file {}", path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create a new network namespace")]
    Unshare {
        #[source]
        source: Errno,
    },
    #[error("pin the new namespace at {}", path.display())]
    BindMount {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("unmount {}", path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("remove {}", path.display())]
    RemoveFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("enter network namespace {}", path.display())]
    Enter {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("start a thread to enter a namespace")]
    SpawnThread {
        #[source]
        source: io::Error,
    },
    #[error("list {}", path.display())]
    ReadRunDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("query namespace ids")]
    QueryNsid {
        #[source]
        source: io::Error,
    },
    #[error("invalid sysctl key {key:?}: {reason}")]
    InvalidSysctlKey { key: String, reason: &'static str },
    #[error("write sysctl {key}")]
    WriteSysctl {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("read sysctl {key}")]
    ReadSysctl {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid command: {reason}")]
    InvalidCommand { reason: &'static str },
    #[error(
        "entering a namespace for exec needs a single-threaded process, found {threads} threads"
    )]
    NotSingleThreaded { threads: usize },
    #[error("make the mount tree private to this command")]
    PrivateMounts {
        #[source]
        source: Errno,
    },
    #[error("mount a fresh /sys for the namespace")]
    RemountSys {
        #[source]
        source: Errno,
    },
    #[error("exec {program:?}")]
    Exec {
        program: String,
        #[source]
        source: Errno,
    },
}

impl HasKind for NetnsError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetnsError::InvalidName { .. }
            | NetnsError::InvalidSysctlKey { .. }
            | NetnsError::InvalidCommand { .. } => ErrorKind::Invalid,
            NetnsError::Exists { .. } => ErrorKind::Conflict,
            NetnsError::NotFound { .. } => ErrorKind::NotFound,
            // EINVAL from setns: the file is not a network namespace.
            NetnsError::Enter {
                source: Errno::EINVAL,
                ..
            } => ErrorKind::Invalid,
            NetnsError::Exec {
                source: Errno::ENOENT,
                ..
            } => ErrorKind::NotFound,
            NetnsError::WriteSysctl { source, .. } | NetnsError::ReadSysctl { source, .. }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                ErrorKind::NotFound
            }
            _ => ErrorKind::Internal,
        }
    }
}

/// A named namespace as `warren netns ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetnsInfo {
    pub name: String,
    pub path: PathBuf,
    /// The netnsid the *current* namespace assigned to it (like `ip netns list` "(id: N)");
    /// `None` when none is assigned.
    pub id: Option<u32>,
    /// Processes whose network namespace is this one.
    pub pids: Vec<u32>,
}

/// Check a namespace name: it becomes a file name under /run/netns.
pub fn validate_name(name: &str) -> Result<(), NetnsError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name == "." || name == ".." {
        Some("must not be \".\" or \"..\"")
    } else if name.contains('/') {
        Some("must not contain '/'")
    } else if name.contains('\0') {
        Some("must not contain NUL")
    } else if name.len() > NAME_MAX {
        Some("longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetnsError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `/run/netns/NAME` for a valid name.
pub fn path_of(name: &str) -> Result<PathBuf, NetnsError> {
    validate_name(name)?;
    Ok(Path::new(NETNS_RUN_DIR).join(name))
}

/// A bare name means `/run/netns/NAME`; an absolute path (e.g. `/proc/123/ns/net`) is used as
/// is. Either must exist.
pub fn resolve(name_or_path: &str) -> Result<PathBuf, NetnsError> {
    let path = if name_or_path.starts_with('/') {
        PathBuf::from(name_or_path)
    } else {
        path_of(name_or_path)?
    };
    match fs::symlink_metadata(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(NetnsError::NotFound { path }),
        Err(source) => Err(NetnsError::Open { path, source }),
    }
}

/// Create a named namespace pinned at `/run/netns/NAME` (like `ip netns add`).
/// On any failure nothing is left behind.
pub fn add(name: &str) -> Result<PathBuf, NetnsError> {
    let path = path_of(name)?;
    let dir = Path::new(NETNS_RUN_DIR);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| NetnsError::CreateRunDir {
            path: dir.to_owned(),
            source,
        })?;
    ensure_shared_mount(dir)?;
    // O_EXCL: the file is the name, so an existing file is a clash with someone's namespace.
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
    {
        Ok(file) => drop(file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(NetnsError::Exists {
                name: name.to_owned(),
            })
        }
        Err(source) => return Err(NetnsError::CreateFile { path, source }),
    }
    if let Err(e) = pin_new_netns(&path) {
        // The bind mount is the last step, so only the empty file can exist here.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// Make the run dir a shared mount point, as iproute2 does, so a namespace pinned here is
/// visible from mount namespaces created later (e.g. by `netns exec`) and peers.
fn ensure_shared_mount(dir: &Path) -> Result<(), NetnsError> {
    let share = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match share() {
        Ok(()) => return Ok(()),
        // EINVAL: not a mount point yet; bind it onto itself and retry once.
        Err(Errno::EINVAL) => {}
        Err(source) => {
            return Err(NetnsError::ShareRunDir {
                path: dir.to_owned(),
                source,
            })
        }
    }
    mount(
        Some(dir),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .and_then(|()| share())
    .map_err(|source| NetnsError::ShareRunDir {
        path: dir.to_owned(),
        source,
    })
}

/// Create a network namespace on a throwaway thread and bind its ns file onto `path`; the
/// mount keeps the namespace alive after the thread exits.
fn pin_new_netns(path: &Path) -> Result<(), NetnsError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("warren-netns-add".into())
            .spawn_scoped(scope, || {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetnsError::Unshare { source })?;
                let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
                mount(
                    Some(own.as_str()),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|source| NetnsError::BindMount {
                    path: path.to_owned(),
                    source,
                })
            })
            .map_err(|source| NetnsError::SpawnThread { source })?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Delete a named namespace (like `ip netns del`). The namespace itself disappears once no
/// process or mount holds it any more.
pub fn delete(name: &str) -> Result<(), NetnsError> {
    let path = path_of(name)?;
    if let Err(e) = fs::symlink_metadata(&path) {
        return Err(if e.kind() == io::ErrorKind::NotFound {
            NetnsError::NotFound { path }
        } else {
            NetnsError::Open { path, source: e }
        });
    }
    match umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not mounted (a stale file from an interrupted add); just remove it.
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(source) => return Err(NetnsError::Unmount { path, source }),
    }
    fs::remove_file(&path).map_err(|source| NetnsError::RemoveFile { path, source })
}

/// The named namespaces under /run/netns, sorted by name, with their id and processes.
pub fn list() -> Result<Vec<NetnsInfo>, NetnsError> {
    let dir = Path::new(NETNS_RUN_DIR);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetnsError::ReadRunDir {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NetnsError::ReadRunDir {
            path: dir.to_owned(),
            source,
        })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();

    let pids = pids_by_netns();
    let nsids = nsid::NsidQuery::new().map_err(|source| NetnsError::QueryNsid { source })?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        // A file that is not (or no longer) a namespace still shows, like in `ip netns list`.
        let (id, pids) = match File::open(&path) {
            Ok(file) => {
                let id = nsids.id_of(&file).unwrap_or(None);
                let pids = file
                    .metadata()
                    .ok()
                    .and_then(|m| pids.get(&(m.dev(), m.ino())).cloned())
                    .unwrap_or_default();
                (id, pids)
            }
            Err(_) => (None, Vec::new()),
        };
        out.push(NetnsInfo {
            name,
            path,
            id,
            pids,
        });
    }
    Ok(out)
}

/// Processes grouped by the (dev, inode) of their network namespace. Processes that exit
/// while we scan, or that we may not inspect, are skipped.
fn pids_by_netns() -> HashMap<(u64, u64), Vec<u32>> {
    let mut map: HashMap<(u64, u64), Vec<u32>> = HashMap::new();
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(meta) = fs::metadata(format!("/proc/{pid}/ns/net")) {
            map.entry((meta.dev(), meta.ino())).or_default().push(pid);
        }
    }
    for pids in map.values_mut() {
        pids.sort_unstable();
    }
    map
}

/// True when two namespace files name the same namespace (same nsfs dev and inode).
pub fn same_namespace(a: &Path, b: &Path) -> Result<bool, NetnsError> {
    let stat = |p: &Path| {
        fs::metadata(p).map_err(|source| NetnsError::Open {
            path: p.to_owned(),
            source,
        })
    };
    let (ma, mb) = (stat(a)?, stat(b)?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["a", "lab1-a", "ns.1", "x_y", "with:colon", &"n".repeat(255)] {
            assert!(validate_name(name).is_ok(), "{name:?} should be valid");
        }
    }

    #[test]
    fn rejects_bad_names_as_invalid() {
        for name in ["", ".", "..", "a/b", "/abs", "nul\0byte", &"n".repeat(256)] {
            let err = validate_name(name).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{name:?}");
        }
    }

    #[test]
    fn resolve_keeps_absolute_paths_and_maps_names() {
        assert_eq!(
            resolve("/proc/self/ns/net").unwrap(),
            PathBuf::from("/proc/self/ns/net")
        );
        let err = resolve("warren-unit-test-no-such-ns").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err
            .to_string()
            .contains("/run/netns/warren-unit-test-no-such-ns"));
        assert_eq!(resolve("a/b").unwrap_err().kind(), ErrorKind::Invalid);
    }

    #[test]
    fn own_namespace_is_the_same_as_itself() {
        assert!(same_namespace(
            Path::new("/proc/self/ns/net"),
            Path::new("/proc/thread-self/ns/net")
        )
        .unwrap());
    }
}
