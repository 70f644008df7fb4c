//! `netns exec`: replace this process with a command running inside a namespace, the way
//! `ip netns exec` does (private mount tree, a /sys that shows the namespace's devices,
//! /etc/netns/NAME/* bound over /etc/*).
//!
//! This is the one place that moves the *process*: it must be called from the main thread of
//! a process that has started no other thread (the CLI dispatches `netns exec` before it
//! builds any runtime), because unshare(CLONE_NEWNS) fails in a multi-threaded process and
//! setns on one thread of many would leave the others behind.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::{self, File};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::execvp;

use super::{resolve, NetnsError};

/// Enter the namespace `name_or_path` and exec `argv` (searched in PATH). Returns only on
/// failure. See the module docs for the single-thread requirement.
pub fn exec(name_or_path: &str, argv: &[String]) -> Result<Infallible, NetnsError> {
    let program = argv.first().ok_or(NetnsError::InvalidCommand {
        reason: "no command given",
    })?;
    let args = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| NetnsError::InvalidCommand {
            reason: "arguments must not contain NUL",
        })?;
    let path = resolve(name_or_path)?;
    let threads = thread_count();
    if threads != 1 {
        return Err(NetnsError::NotSingleThreaded { threads });
    }

    let ns = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter {
        path: path.clone(),
        source,
    })?;
    drop(ns);
    // A private mount namespace whose changes do not leak back, but which still sees mounts
    // made later on the host (slave, like iproute2).
    unshare(CloneFlags::CLONE_NEWNS).map_err(|source| NetnsError::PrivateMounts { source })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|source| NetnsError::PrivateMounts { source })?;
    remount_sys()?;
    if !name_or_path.starts_with('/') {
        bind_etc(name_or_path);
    }

    let err = match execvp(&args[0], &args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    Err(NetnsError::Exec {
        program: program.clone(),
        source: err,
    })
}

fn thread_count() -> usize {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// sysfs shows the devices of the namespace that mounted it, so mount a fresh one.
fn remount_sys() -> Result<(), NetnsError> {
    let mut flags = MsFlags::empty();
    if umount2("/sys", MntFlags::MNT_DETACH).is_err() {
        // Could not unmount (or nothing mounted): we overlay instead, and a read-only sysfs
        // cannot be shadowed by a read-write one.
        if statvfs("/sys").is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY)) {
            flags |= MsFlags::MS_RDONLY;
        }
    }
    mount(Some("sysfs"), "/sys", Some("sysfs"), flags, None::<&str>)
        .map_err(|source| NetnsError::RemountSys { source })
}

/// Per-namespace /etc overrides (e.g. resolv.conf), as iproute2 does. Best effort like
/// iproute2: a file that cannot be bound is reported and skipped.
fn bind_etc(name: &str) {
    let dir = Path::new("/etc/netns").join(name);
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if file_name == "." || file_name == ".." {
            continue;
        }
        let src = entry.path();
        let dst = Path::new("/etc").join(&file_name);
        if let Err(e) = mount(
            Some(&src),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            tracing::warn!(src = %src.display(), dst = %dst.display(), error = %e, "bind /etc/netns entry failed");
        }
    }
}
