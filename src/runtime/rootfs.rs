//! The container's root filesystem, built inside its fresh mount namespace: overlayfs of the
//! image layers plus the container's upper dir, a fresh /proc, a minimal /dev (plus the
//! `--device` nodes, or every host device when privileged), /sys (read-only unless
//! privileged), the container's own cgroups at /sys/fs/cgroup (read-only), the generated /etc
//! files, the masked and read-only paths; then `pivot_root(".", ".")` and the old root
//! detached.
//!
//! Everything here runs while the init still holds every capability; the confinement that
//! follows (no CAP_SYS_ADMIN, seccomp) is what keeps the container from undoing any of it:
//! it cannot unmount a mask, remount /proc/sys or mount anything of its own.
//!
//! Mount points inside the rootfs come from the image, so before anything is mounted on one
//! we make sure it is a real directory or file and not a symlink: a symlink would make the
//! mount land on the host.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::cgroups::Cgroup;
use super::confine::devices::{DeviceNode, DeviceType};
use super::spec::ContainerSpec;
use super::{io, os_err, RuntimeError};

/// The device nodes every container's /dev has (name, major, minor), all mode 0666.
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
/// Host /dev entries a privileged container does not copy (they are made fresh, or are links).
const PRIVILEGED_DEV_SKIP: &[&str] = &["pts", "shm", "mqueue", "fd", "ptmx", "console", "core"];

/// Build the root filesystem at `spec.rootfs` and switch to it. Runs in the init, after
/// `unshare(CLONE_NEWNS)` (and `CLONE_NEWCGROUP`, when private).
pub fn build(spec: &ContainerSpec, cgroup: &Cgroup) -> Result<(), RuntimeError> {
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
    let confinement = &spec.confinement;
    mount_overlay(spec)?;
    mount_proc(root)?;
    mount_dev(root)?;
    if confinement.privileged {
        copy_host_devices(root)?;
    }
    for node in &confinement.devices {
        make_device(root, node)?;
    }
    let sys_dir = dir_in(root, "sys")?;
    let mut sys_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if !confinement.privileged {
        sys_flags |= MsFlags::MS_RDONLY;
    }
    mount(
        Some("sysfs"),
        &sys_dir,
        Some("sysfs"),
        sys_flags,
        None::<&str>,
    )
    .map_err(os_err("mount sysfs"))?;
    mount_cgroups(root, cgroup, !confinement.privileged)?;
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
    for path in &confinement.masked_paths {
        mask(root, path)?;
    }
    for path in &confinement.readonly_paths {
        read_only(root, path)?;
    }
    pivot(root)
}

/// `--read-only`: the root itself becomes read-only; /dev, /proc, /dev/shm and the /etc files
/// are mounts of their own and stay writable, as under Docker.
pub fn make_root_read_only() -> Result<(), RuntimeError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(os_err("make the root filesystem read-only"))
}

fn mount_overlay(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    for dir in [&spec.upper, &spec.work, &spec.rootfs] {
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    }
    if spec.layers.is_empty() {
        return Err(RuntimeError::Invalid("the image has no layers".into()));
    }
    // The directories are named relative to their common ancestor, entered first: overlayfs
    // resolves them at mount time and shows them as given in the container's mountinfo, so
    // the host's data root stays out of sight (and long layer lists stay within the option
    // page). overlayfs lists lower dirs top first.
    let all: Vec<&Path> = spec
        .layers
        .iter()
        .chain([&spec.upper, &spec.work])
        .map(PathBuf::as_path)
        .collect();
    let base = common_ancestor(&all);
    let relative = |p: &Path| escape_overlay_path(p.strip_prefix(&base).unwrap_or(p));
    let lower: Vec<String> = spec.layers.iter().rev().map(|p| relative(p)).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        relative(&spec.upper),
        relative(&spec.work)
    );
    nix::unistd::chdir(&base).map_err(os_err(format!("enter {}", base.display())))?;
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

/// The deepest directory containing every path (all absolute).
fn common_ancestor(paths: &[&Path]) -> PathBuf {
    let mut base = paths
        .first()
        .and_then(|p| p.parent())
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    while !paths.iter().all(|p| p.starts_with(&base)) {
        if !base.pop() {
            return PathBuf::from("/");
        }
    }
    base
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
    .map_err(os_err("mount proc"))
}

/// Hide `path` (absolute, in the container): a file behind /dev/null, a directory behind an
/// empty read-only tmpfs (Docker's masked paths). A path this kernel lacks is skipped.
fn mask(root: &Path, path: &str) -> Result<(), RuntimeError> {
    let target = safe_path(root, path)?;
    let Ok(meta) = fs::symlink_metadata(&target) else {
        return Ok(());
    };
    let result = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some(&root.join("dev/null")),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(os_err(format!("mask {path}")))
}

/// Make `path` (absolute, in the container) read-only: bind it over itself, then remount.
fn read_only(root: &Path, path: &str) -> Result<(), RuntimeError> {
    let target = safe_path(root, path)?;
    if fs::symlink_metadata(&target).is_err() {
        return Ok(());
    }
    mount(
        Some(&target),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .and_then(|()| remount_read_only(&target))
    .map_err(os_err(format!("make {path} read-only")))
}

/// Remount a bind mount of /proc, /sys or cgroupfs read-only (and nosuid, nodev, noexec, as
/// those are mounted).
fn remount_read_only(target: &Path) -> nix::Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// The container's own cgroups at /sys/fs/cgroup, read-only unless privileged: where the v2
/// hierarchy is mounted there, its directory; on a v1 or hybrid host a tmpfs holding one
/// directory per hierarchy the container has a cgroup in (`unified` for v2). Only the
/// container's own directories are shown — in a hierarchy where it has none it runs in the
/// shim's cgroup, which is not its to see.
fn mount_cgroups(root: &Path, cgroup: &Cgroup, read_only_mounts: bool) -> Result<(), RuntimeError> {
    let target = dir_in(root, "sys/fs/cgroup")?;
    let host_root = Path::new(super::cgroups::CGROUP_ROOT);
    let bind = |source: &Path, target: &Path| -> Result<(), RuntimeError> {
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .and_then(|()| {
            if read_only_mounts {
                remount_read_only(target)
            } else {
                Ok(())
            }
        })
        .map_err(os_err(format!("mount cgroup {}", source.display())))
    };
    let pure_v2 = cgroup
        .unified
        .as_ref()
        .is_some_and(|u| u.parent().and_then(Path::parent) == Some(host_root));
    if let (true, Some(unified)) = (pure_v2, &cgroup.unified) {
        return bind(unified, &target);
    }
    mount(
        Some("tmpfs"),
        &target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(os_err("mount /sys/fs/cgroup"))?;
    let hierarchies = cgroup
        .dirs
        .iter()
        .chain(cgroup.unified.iter())
        .filter_map(|dir| {
            let rel = dir.strip_prefix(host_root).ok()?;
            let name = rel.components().next()?.as_os_str().to_str()?.to_string();
            Some((name, dir))
        });
    for (name, dir) in hierarchies {
        let mount_point = target.join(&name);
        fs::create_dir_all(&mount_point).map_err(io(format!("create /sys/fs/cgroup/{name}")))?;
        bind(dir, &mount_point)?;
    }
    if read_only_mounts {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(os_err("make /sys/fs/cgroup read-only"))?;
    }
    Ok(())
}

/// Create a `--device` node in the container's /dev (the init holds CAP_MKNOD here).
fn make_device(root: &Path, node: &DeviceNode) -> Result<(), RuntimeError> {
    let rel = node.container_path.trim_start_matches('/');
    if let Some(parent) = Path::new(rel).parent() {
        let mut dir = PathBuf::new();
        for part in parent.components() {
            dir.push(part);
            dir_in(root, &dir.to_string_lossy())?;
        }
    }
    let path = safe_path(root, rel)?;
    if fs::symlink_metadata(&path).is_ok() {
        fs::remove_file(&path).map_err(io(format!("replace {}", node.container_path)))?;
    }
    let kind = match node.kind {
        DeviceType::Block => nix::sys::stat::SFlag::S_IFBLK,
        _ => nix::sys::stat::SFlag::S_IFCHR,
    };
    nix::sys::stat::mknod(
        &path,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(node.mode & 0o7777),
        nix::sys::stat::makedev(u64::from(node.major), u64::from(node.minor)),
    )
    .map_err(os_err(format!("create device {}", node.container_path)))?;
    nix::unistd::chown(
        &path,
        Some(nix::unistd::Uid::from_raw(node.uid)),
        Some(nix::unistd::Gid::from_raw(node.gid)),
    )
    .map_err(os_err(format!("chown device {}", node.container_path)))
}

/// `--privileged`: every device node of the host's /dev, recreated in the container's.
fn copy_host_devices(root: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut pending = vec![PathBuf::from("/dev")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix("/dev").unwrap_or(&path).to_path_buf();
            let first = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            if first
                .as_deref()
                .is_some_and(|f| PRIVILEGED_DEV_SKIP.contains(&f) || f.starts_with('.'))
            {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                pending.push(path);
                continue;
            }
            if !(ft.is_char_device() || ft.is_block_device()) {
                continue;
            }
            let container_path = format!("/dev/{}", rel.display());
            if DEVICES.iter().any(|(d, _, _)| Path::new(d) == rel) {
                continue;
            }
            let rdev = meta.rdev();
            let node = DeviceNode {
                host_path: path.clone(),
                container_path,
                kind: if ft.is_block_device() {
                    DeviceType::Block
                } else {
                    DeviceType::Char
                },
                major: u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX),
                minor: u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX),
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                permissions: super::confine::devices::Access::ALL,
            };
            make_device(root, &node)?;
        }
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
    for (name, major, minor) in DEVICES {
        let target = dev.join(name);
        nix::sys::stat::mknod(
            &target,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(*major, *minor),
        )
        .map_err(os_err(format!("create /dev/{name}")))?;
        // mknod applies the umask.
        fs::set_permissions(&target, fs::Permissions::from_mode(0o666))
            .map_err(io(format!("chmod /dev/{name}")))?;
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
    fn overlay_directories_are_named_from_their_common_ancestor() {
        let paths = [
            Path::new("/data/images/layers/a"),
            Path::new("/data/images/layers/b"),
            Path::new("/data/containers/c/upper"),
        ];
        assert_eq!(common_ancestor(&paths), PathBuf::from("/data"));
        assert_eq!(common_ancestor(&[Path::new("/x/y")]), PathBuf::from("/x"));
        assert_eq!(
            common_ancestor(&[Path::new("/a/b"), Path::new("/c/d")]),
            PathBuf::from("/")
        );
    }

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
