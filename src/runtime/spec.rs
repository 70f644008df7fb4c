//! What the shim needs to run one container, written by the agent into the bundle as
//! `config.json` (the runtime's counterpart of an OCI `config.json`, much smaller).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::confine::Confinement;
use super::process::ProcessSpec;

/// One container, as the shim and the init see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    /// Unpacked image layers, lowest first (overlayfs lower dirs).
    pub layers: Vec<PathBuf>,
    /// The container's own writable layer and overlayfs' work dir (same filesystem).
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the overlay is mounted (inside the container's mount namespace only).
    pub rootfs: PathBuf,
    pub process: ProcessSpec,
    pub hostname: String,
    /// The network namespace to join; `None` stays in the shim's (the host network).
    pub netns: Option<PathBuf>,
    /// Files bind-mounted over paths in the container (`/etc/hosts` ← bundle/hosts).
    pub mounts: Vec<BindFile>,
    pub limits: Limits,
    /// What the container's processes may do (capabilities, seccomp, devices, masked paths…).
    pub confinement: Confinement,
    /// PID 1 is the built-in init (reaps zombies, forwards signals); otherwise the command.
    pub init: bool,
    /// stdout/stderr of the command are appended here (JSON lines, see `logs`).
    pub log: PathBuf,
}

/// A host file bound over a path inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindFile {
    pub source: PathBuf,
    /// Absolute path inside the container, e.g. `/etc/resolv.conf`.
    pub target: String,
}

/// cgroup limits; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<i64>,
    pub pids: Option<i64>,
    /// CPU in units of 10⁻⁹ CPUs (Docker's NanoCpus): 1.5 CPUs = 1_500_000_000.
    pub nano_cpus: Option<i64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.pids.is_none() && self.nano_cpus.is_none()
    }
}
