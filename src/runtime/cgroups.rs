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
//! Only controllers with a limit get a cgroup: a container without limits costs no mkdir.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spec::Limits;
use super::{io, RuntimeError};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// CFS period used for --cpus (Docker's).
const CPU_PERIOD_US: i64 = 100_000;

/// The cgroup directories of one container, one per hierarchy that carries a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub dirs: Vec<PathBuf>,
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

impl Cgroup {
    /// Create the container's cgroups and write its limits. On failure nothing is left.
    pub fn create(id: &str, limits: &Limits) -> Result<Cgroup, RuntimeError> {
        let mut cgroup = Cgroup::default();
        if limits.is_empty() {
            return Ok(cgroup);
        }
        let short = &id[..id.len().min(12)];
        let result = (|| {
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
                    Hierarchy::V1(mount) => mount
                        .join(own_v1_path(controller).trim_start_matches('/'))
                        .join(format!("warren-{short}")),
                    Hierarchy::V2(mount) => {
                        enable_v2(mount, controller)?;
                        mount.join("warren").join(short)
                    }
                };
                if !cgroup.dirs.contains(&dir) {
                    fs::create_dir_all(&dir)
                        .map_err(io(format!("create cgroup {}", dir.display())))?;
                    cgroup.dirs.push(dir.clone());
                }
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

    /// Move the calling process into every cgroup of the container ("0" means "me").
    pub fn join_self(&self) -> Result<(), RuntimeError> {
        for dir in &self.dirs {
            fs::write(dir.join("cgroup.procs"), "0")
                .map_err(io(format!("join cgroup {}", dir.display())))?;
        }
        Ok(())
    }

    /// Move `pid` into the container's cgroups (for `exec`).
    pub fn add(&self, pid: u32) -> Result<(), RuntimeError> {
        for dir in &self.dirs {
            fs::write(dir.join("cgroup.procs"), pid.to_string())
                .map_err(io(format!("join cgroup {}", dir.display())))?;
        }
        Ok(())
    }

    /// Remove the cgroups (after the container's processes are gone). Retries briefly: the
    /// kernel releases a cgroup a moment after its last task is reaped.
    pub fn remove(&self) {
        for dir in &self.dirs {
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
