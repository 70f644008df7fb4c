//! The container's root filesystem, built inside its fresh mount namespace: overlayfs of the
//! image layers plus the container's upper dir, a fresh /proc (with the usual masked paths),
//! a minimal /dev, a read-only /sys, the generated /etc files; then `pivot_root(".", ".")` and
//! the old root detached.
//!
//! Mount points inside the rootfs come from the image, so before anything is mounted on one
//! we make sure it is a real directory or file and not a symlink: a symlink would make the
//! mount land on the host.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::spec::ContainerSpec;
use super::{io, os_err, RuntimeError};

/// Device files bound from the host's /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// /proc files hidden behind /dev/null (Docker's masked paths).
const MASKED: &[&str] = &[
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "acpi",
    "scsi",
];
/// /proc paths made read-only (Docker's read-only paths).
const READ_ONLY: &[&str] = &["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// Build the root filesystem at `spec.rootfs` and switch to it. Runs in the init, after
/// `unshare(CLONE_NEWNS)`.
pub fn build(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    // Nothing we mount from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(os_err("make / private"))?;
    let root = &spec.rootfs;
    mount_overlay(spec)?;
    mount_proc(root)?;
    mount_dev(root)?;
    let sys_dir = dir_in(root, "sys")?;
    mount(
        Some("sysfs"),
        &sys_dir,
        Some("sysfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(os_err("mount sysfs"))?;
    for bind in &spec.mounts {
        let target = file_in(root, &bind.target)?;
        mount(
            Some(&bind.source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(os_err(format!("bind {}", bind.target)))?;
    }
    pivot(root)
}

fn mount_overlay(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    for dir in [&spec.upper, &spec.work, &spec.rootfs] {
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    }
    if spec.layers.is_empty() {
        return Err(RuntimeError::Invalid("the image has no layers".into()));
    }
    // overlayfs lists lower dirs top first.
    let lower: Vec<String> = spec
        .layers
        .iter()
        .rev()
        .map(|p| escape_overlay_path(p))
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape_overlay_path(&spec.upper),
        escape_overlay_path(&spec.work)
    );
    mount(
        Some("overlay"),
        &spec.rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(os_err(format!(
        "mount overlay on {}",
        spec.rootfs.display()
    )))
}

/// overlayfs splits its options on ',' and lower dirs on ':'; both are escaped with '\'.
fn escape_overlay_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn mount_proc(root: &Path) -> Result<(), RuntimeError> {
    let proc_dir = dir_in(root, "proc")?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(os_err("mount proc"))?;
    for name in MASKED {
        let path = proc_dir.join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let result = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                &path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.map_err(os_err(format!("mask /proc/{name}")))?;
    }
    for name in READ_ONLY {
        let path = proc_dir.join(name);
        if fs::symlink_metadata(&path).is_err() {
            continue;
        }
        mount(
            Some(&path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| {
            mount(
                None::<&str>,
                &path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
                None::<&str>,
            )
        })
        .map_err(os_err(format!("make /proc/{name} read-only")))?;
    }
    Ok(())
}

fn mount_dev(root: &Path) -> Result<(), RuntimeError> {
    let dev = dir_in(root, "dev")?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(os_err("mount /dev"))?;
    for name in DEVICES {
        let target = dev.join(name);
        fs::write(&target, b"").map_err(io(format!("create /dev/{name}")))?;
        mount(
            Some(&Path::new("/dev").join(name)),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(os_err(format!("bind /dev/{name}")))?;
    }
    let pts = dev.join("pts");
    fs::create_dir(&pts).map_err(io("create /dev/pts"))?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(os_err("mount /dev/pts"))?;
    let shm = dev.join("shm");
    fs::create_dir(&shm).map_err(io("create /dev/shm"))?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(os_err("mount /dev/shm"))?;
    let mqueue = dev.join("mqueue");
    fs::create_dir(&mqueue).map_err(io("create /dev/mqueue"))?;
    // Best effort: the POSIX message queues of the container's own IPC namespace.
    let _ = mount(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(link)).map_err(io(format!("link /dev/{link}")))?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` stacks the old root under the new one; detaching it leaves only
/// the container's tree (runc's trick, no temporary directory needed).
fn pivot(root: &Path) -> Result<(), RuntimeError> {
    nix::unistd::chdir(root).map_err(os_err("enter the rootfs"))?;
    nix::unistd::pivot_root(".", ".").map_err(os_err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(os_err("detach the old root"))?;
    nix::unistd::chdir("/").map_err(os_err("chdir /"))
}

/// `root/rel` as a real directory (created if missing; a symlink in its place is replaced).
fn dir_in(root: &Path, rel: &str) -> Result<PathBuf, RuntimeError> {
    let path = safe_path(root, rel)?;
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => return Ok(path),
        Ok(_) => fs::remove_file(&path).map_err(io(format!("replace /{rel}")))?,
        Err(_) => {}
    }
    fs::create_dir(&path).map_err(io(format!("create /{rel}")))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .map_err(io(format!("chmod /{rel}")))?;
    Ok(path)
}

/// `root/rel` as a regular file to mount over (created if missing, symlinks replaced).
fn file_in(root: &Path, rel: &str) -> Result<PathBuf, RuntimeError> {
    let rel = rel.trim_start_matches('/');
    if let Some(parent) = Path::new(rel)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        dir_in(root, &parent.to_string_lossy())?;
    }
    let path = safe_path(root, rel)?;
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => return Ok(path),
        Ok(m) if m.is_dir() => {
            return Err(RuntimeError::Invalid(format!(
                "/{rel} is a directory in the image"
            )))
        }
        Ok(_) => fs::remove_file(&path).map_err(io(format!("replace /{rel}")))?,
        Err(_) => {}
    }
    fs::write(&path, b"").map_err(io(format!("create /{rel}")))?;
    Ok(path)
}

/// Join `rel` under `root`, refusing `..` and symlinked parent directories, so nothing we
/// mount can land outside the rootfs.
fn safe_path(root: &Path, rel: &str) -> Result<PathBuf, RuntimeError> {
    let mut path = root.to_path_buf();
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            return Err(RuntimeError::Invalid(format!(
                "path {rel:?} leaves the rootfs"
            )));
        }
        path.push(part);
        let last = i + 1 == parts.len();
        if !last {
            if let Ok(meta) = fs::symlink_metadata(&path) {
                if !meta.is_dir() {
                    return Err(RuntimeError::Invalid(format!(
                        "/{} is not a directory in the image",
                        parts[..=i].join("/")
                    )));
                }
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_paths_are_escaped() {
        assert_eq!(escape_overlay_path(Path::new("/a,b:c")), "/a\\,b\\:c");
    }

    #[test]
    fn safe_paths_refuse_escapes_and_symlinked_parents() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/etc", dir.path().join("etc")).unwrap();
        assert!(safe_path(dir.path(), "etc/hosts").is_err());
        assert!(safe_path(dir.path(), "../x").is_err());
        assert_eq!(
            safe_path(dir.path(), "/proc").unwrap(),
            dir.path().join("proc")
        );
        // A symlink as the last component is replaced, never followed.
        let f = file_in(dir.path(), "etc").unwrap();
        assert!(fs::symlink_metadata(&f).unwrap().is_file());
    }
}
