//! cgroup limits (memory, pids, cpu) written straight into cgroupfs, on whichever hierarchy
//! has the controller: a v1 hierarchy mounted at /sys/fs/cgroup/<controller>, or the v2
//! unified hierarchy when it has the controller enabled (pure v2 at /sys/fs/cgroup, or hybrid
//! at /sys/fs/cgroup/unified). Detected per controller at run time.
//!
//! Placement: on v1, `<the shim's own cgroup>/warren-<id12>` in each hierarchy (v1 allows
//! processes in inner nodes, and nesting keeps any limit the agent itself runs under). On v2,
//! `/warren/<id12>` under the root, because v2 forbids enabling controllers for children of a
//! cgroup that has processes of its own (the root is exempt).
//!
//! Every container gets a directory in the v2 hierarchy (where there is one: at
//! /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host) even without limits: device
//! rules are enforced there and it is the root of the container's cgroup namespace. The init
//! is born into it (clone3 with CLONE_INTO_CGROUP), which is nearly free. Docker's default
//! device rules are one BPF program attached once to the parent, `<v2>/warren`, as the
//! subtree's default (loading and attaching a program costs about a millisecond, mostly the
//! verifier); only a container with rules of its own (`--device`, `--device-cgroup-rule`,
//! `--privileged`) gets a program on its own directory, which overrides the default. v1 hierarchies get a cgroup only for a controller that carries a limit:
//! moving a process into a v1 cgroup means writing `cgroup.procs`, which takes the kernel's
//! cgroup-wide threadgroup lock for writing and costs about a millisecond per hierarchy here.
//! Without a v2 hierarchy, device rules go to the v1 devices controller instead.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::confine::devices::{self, DeviceFilter, DeviceRule};
use super::spec::Limits;
use super::{io, RuntimeError};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// CFS period used for --cpus (Docker's).
const CPU_PERIOD_US: i64 = 100_000;

/// The cgroup directories of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// v1 directories (one per hierarchy that carries a limit, or the devices controller when
    /// there is no v2 hierarchy), joined by writing `cgroup.procs`.
    pub dirs: Vec<PathBuf>,
    /// The container's v2 directory: its processes are born into it, its device filter and
    /// any v2 limits live there.
    #[serde(default)]
    pub unified: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hierarchy {
    /// v1: the hierarchy's mount point.
    V1(PathBuf),
    /// v2: the unified mount point.
    V2(PathBuf),
}

/// Where `controller` lives on this machine, if anywhere.
fn find(controller: &str) -> Option<Hierarchy> {
    let v1 = Path::new(CGROUP_ROOT).join(controller);
    if v1.join("cgroup.procs").exists() && !v1.join("cgroup.controllers").exists() {
        return Some(Hierarchy::V1(v1));
    }
    for unified in [
        PathBuf::from(CGROUP_ROOT),
        Path::new(CGROUP_ROOT).join("unified"),
    ] {
        let controllers =
            fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == controller) {
            return Some(Hierarchy::V2(unified));
        }
    }
    None
}

/// This process's cgroup path in the v1 hierarchy of `controller` ("/" when unknown).
fn own_v1_path(controller: &str) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into())
}

/// The files to write for `limits`, per controller.
fn files(limits: &Limits, v2: bool) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    if let Some(m) = limits.memory {
        if v2 {
            out.push(("memory", "memory.max", m.to_string()));
            out.push(("memory", "memory.swap.max", "0".to_string()));
        } else {
            out.push(("memory", "memory.limit_in_bytes", m.to_string()));
        }
    }
    if let Some(p) = limits.pids {
        let value = if p <= 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        out.push(("pids", "pids.max", value));
    }
    if let Some(n) = limits.nano_cpus {
        let quota = n.saturating_mul(CPU_PERIOD_US) / 1_000_000_000;
        if v2 {
            out.push(("cpu", "cpu.max", format!("{quota} {CPU_PERIOD_US}")));
        } else {
            out.push(("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
            out.push(("cpu", "cpu.cfs_quota_us", quota.to_string()));
        }
    }
    out
}

/// The v2 hierarchy's mount point: /sys/fs/cgroup itself, or /sys/fs/cgroup/unified on a
/// hybrid host.
fn unified_mount() -> Option<PathBuf> {
    [
        PathBuf::from(CGROUP_ROOT),
        Path::new(CGROUP_ROOT).join("unified"),
    ]
    .into_iter()
    .find(|m| m.join("cgroup.controllers").exists())
}

impl Cgroup {
    /// Create the container's cgroups, write its limits and install its device rules
    /// (`None`: every device allowed). On failure nothing is left.
    pub fn create(
        id: &str,
        limits: &Limits,
        device_rules: Option<&[DeviceRule]>,
    ) -> Result<Cgroup, RuntimeError> {
        let mut cgroup = Cgroup::default();
        let short = &id[..id.len().min(12)];
        let result = (|| {
            if let Some(mount) = unified_mount() {
                let dir = mount.join("warren").join(short);
                fs::create_dir_all(&dir).map_err(io(format!("create cgroup {}", dir.display())))?;
                cgroup.unified = Some(dir);
            }
            for controller in ["memory", "pids", "cpu"] {
                let Some(h) = find(controller) else { continue };
                let v2 = matches!(h, Hierarchy::V2(_));
                let wanted: Vec<_> = files(limits, v2)
                    .into_iter()
                    .filter(|(c, _, _)| *c == controller)
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                let dir = match &h {
                    Hierarchy::V1(mount) => cgroup.v1_dir(mount, controller, short)?,
                    Hierarchy::V2(mount) => {
                        enable_v2(mount, controller)?;
                        cgroup
                            .unified
                            .clone()
                            .unwrap_or_else(|| mount.join("warren").join(short))
                    }
                };
                for (_, file, value) in wanted {
                    // memory.swap.max is absent without swap accounting: best effort.
                    let r = fs::write(dir.join(file), &value);
                    if file != "memory.swap.max" {
                        r.map_err(io(format!("write {value} to {}", dir.join(file).display())))?;
                    }
                }
            }
            let missing: Vec<&str> = files(limits, false)
                .iter()
                .map(|(c, _, _)| *c)
                .filter(|c| find(c).is_none())
                .collect();
            if !missing.is_empty() {
                return Err(RuntimeError::Invalid(format!(
                    "this host has no {} cgroup controller; the limit cannot be applied",
                    missing.join(", ")
                )));
            }
            cgroup.restrict_devices(device_rules, short)?;
            Ok(())
        })();
        match result {
            Ok(()) => Ok(cgroup),
            Err(e) => {
                cgroup.remove();
                Err(e)
            }
        }
    }

    /// `<the shim's own cgroup>/warren-<id12>` in a v1 hierarchy, created and remembered.
    fn v1_dir(
        &mut self,
        mount: &Path,
        controller: &str,
        short: &str,
    ) -> Result<PathBuf, RuntimeError> {
        let dir = mount
            .join(own_v1_path(controller).trim_start_matches('/'))
            .join(format!("warren-{short}"));
        if !self.dirs.contains(&dir) {
            fs::create_dir_all(&dir).map_err(io(format!("create cgroup {}", dir.display())))?;
            self.dirs.push(dir.clone());
        }
        Ok(dir)
    }

    /// Allow exactly `rules` (`None`: every device): Docker's defaults through the parent's
    /// program (installed here if missing), anything else through a program on the
    /// container's own v2 directory; on a host without v2, the v1 devices controller.
    fn restrict_devices(
        &mut self,
        rules: Option<&[DeviceRule]>,
        short: &str,
    ) -> Result<(), RuntimeError> {
        let failed =
            |e: devices::DeviceError| RuntimeError::Invalid(format!("restrict devices: {e}"));
        let everything = [DeviceRule {
            kind: devices::DeviceType::All,
            major: None,
            minor: None,
            access: devices::Access::ALL,
        }];
        if let Some(dir) = &self.unified {
            let rules = rules.unwrap_or(&everything);
            let parent = dir.parent().unwrap_or(dir);
            if rules == devices::default_rules().as_slice() {
                if !devices::has_filter(parent).map_err(failed)? {
                    install_default_device_filter(parent).map_err(failed)?;
                }
                return Ok(());
            }
            return DeviceFilter::load(rules)
                .and_then(|filter| filter.attach(dir))
                .map_err(failed);
        }
        let Some(rules) = rules else {
            return Ok(()); // the shim's own devices cgroup: every device
        };
        match find("devices") {
            Some(Hierarchy::V1(mount)) => {
                let dir = self.v1_dir(&mount, "devices", short)?;
                devices::apply_v1(&dir, rules).map_err(failed)
            }
            _ => Err(RuntimeError::Invalid(
                "this host has neither a cgroup v2 hierarchy nor the v1 devices controller; \
                 device access cannot be restricted (only --privileged containers can run)"
                    .into(),
            )),
        }
    }

    /// The v2 directory, opened for `clone3(CLONE_INTO_CGROUP)`.
    pub fn unified_dir(&self) -> Option<std::io::Result<fs::File>> {
        self.unified.as_ref().map(|dir| {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(dir)
        })
    }

    /// Move the calling process into the container's v1 cgroups ("0" means "me"), and into
    /// its v2 one when `unified_too` (a process that was not born there).
    pub fn join_self(&self, unified_too: bool) -> Result<(), RuntimeError> {
        let unified = self.unified.iter().filter(|_| unified_too);
        for dir in self.dirs.iter().chain(unified) {
            fs::write(dir.join("cgroup.procs"), "0")
                .map_err(io(format!("join cgroup {}", dir.display())))?;
        }
        Ok(())
    }

    /// Remove the cgroups (after the container's processes are gone). Retries briefly: the
    /// kernel releases a cgroup a moment after its last task is reaped.
    pub fn remove(&self) {
        for dir in self.dirs.iter().chain(self.unified.iter()) {
            for _ in 0..50 {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
    }
}

/// Attach Docker's default device rules to `parent` (`<v2>/warren`) for every container
/// cgroup below it; attaching again replaces the program.
fn install_default_device_filter(parent: &Path) -> Result<(), devices::DeviceError> {
    DeviceFilter::load(&devices::default_rules())?.attach_as_default(parent)
}

/// The agent's part, once at start: `<v2>/warren` with the default device rules of this
/// version attached (replacing an older agent's), so that no container start pays for it.
/// Nothing to do on a host without a v2 hierarchy.
pub fn prepare() -> Result<(), RuntimeError> {
    let Some(mount) = unified_mount() else {
        return Ok(());
    };
    let parent = mount.join("warren");
    fs::create_dir_all(&parent).map_err(io(format!("create cgroup {}", parent.display())))?;
    install_default_device_filter(&parent)
        .map_err(|e| RuntimeError::Invalid(format!("restrict devices: {e}")))
}

/// v2: a controller must be enabled in every ancestor's subtree_control.
fn enable_v2(mount: &Path, controller: &str) -> Result<(), RuntimeError> {
    let parent = mount.join("warren");
    fs::create_dir_all(&parent).map_err(io(format!("create cgroup {}", parent.display())))?;
    for dir in [mount, parent.as_path()] {
        let control = dir.join("cgroup.subtree_control");
        let current = fs::read_to_string(&control).unwrap_or_default();
        if !current.split_whitespace().any(|c| c == controller) {
            fs::write(&control, format!("+{controller}"))
                .map_err(io(format!("enable {controller} in {}", control.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_files_for_v1_and_v2() {
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(20),
            nano_cpus: Some(1_500_000_000),
        };
        let v1 = files(&limits, false);
        assert!(v1.contains(&("memory", "memory.limit_in_bytes", "67108864".into())));
        assert!(v1.contains(&("cpu", "cpu.cfs_quota_us", "150000".into())));
        assert!(v1.contains(&("pids", "pids.max", "20".into())));
        let v2 = files(&limits, true);
        assert!(v2.contains(&("cpu", "cpu.max", "150000 100000".into())));
        assert!(v2.contains(&("memory", "memory.max", "67108864".into())));
    }
}
