//! The bundled container runtime: container specs and bundles, the per-container shim, the
//! built-in init, the root filesystem, cgroups, logs and `exec`. Networking never depends on
//! it: the agent creates and wires a container's network namespace first and the runtime joins
//! it by path.
//!
//! Processes, from the agent down (every arrow is a fork or an exec of the same binary):
//!
//! ```text
//! warrend ──spawn, ahead of need──▶ warren-shim ──fork──▶ shim (setsid, survives the agent)
//!         ──bundle path on its stdin─────────────────────▶ │ unshare(NEWPID) + clone
//!                                                            ▼
//!           init (PID 1: setns net, NEWNS|NEWUTS|NEWIPC|NEWCGROUP, rootfs, pivot, confine)
//!                                                            │ fork + exec (with --init;
//!                                                            ▼   else PID 1 execs it)
//!                                                     the command (PID 2)
//! ```
//!
//! Why a shim that is the same binary: the container must outlive `warrend` (a restart or a
//! crash of the agent must not stop it), somebody must keep reading its stdout/stderr into the
//! log and collect its exit status, and a re-executed `warrend` is single-threaded, so it may
//! fork, unshare and setns freely — things a multi-threaded tokio process must not do (see the
//! namespace/thread trap in DESIGN.md). The shim reports readiness over a pipe with typed
//! one-way messages ([`shim::ShimReport`]) and from then on talks to the agent only through
//! files in the bundle: `state.json` (pids), `exit.json` (exit code, written atomically) and a
//! unix socket that it holds open while the container runs, so "wait" is "connect and read to
//! EOF" — no polling.
//!
//! Processes inside the container get PID, mount, UTS and IPC namespaces of their own and the
//! network namespace the agent prepared (none joined for the host network).

pub mod bundle;
pub mod cgroups;
pub mod confine;
pub mod exe;
pub mod exec;
pub mod image;
mod init;
pub mod logs;
pub mod process;
mod rootfs;
pub mod shim;
pub mod spec;
mod sys;

use std::path::PathBuf;

use nix::errno::Errno;

use crate::error::{ErrorKind, HasKind};

/// What went wrong in the runtime. Child-side failures travel to the agent as text (the
/// `ShimReport::Failed` message), so their variants matter mostly for the message.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{action}")]
    Sys {
        action: String,
        #[source]
        source: Errno,
    },
    #[error("{action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// The request cannot work as given (unknown user, missing executable, bad limit).
    #[error("{0}")]
    Invalid(String),
    /// The container's process could not be started; the message comes from inside.
    #[error("{0}")]
    StartFailed(String),
    #[error("container {id} is not running")]
    NotRunning { id: String },
    #[error("read {}", path.display())]
    ReadState {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("decode {}", path.display())]
    DecodeState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl HasKind for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Invalid(_) | RuntimeError::StartFailed(_) => ErrorKind::Invalid,
            RuntimeError::NotRunning { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}

/// `map_err` helper for nix calls: `mount(..).map_err(os_err("mount proc"))?`.
pub(crate) fn os_err(action: impl Into<String>) -> impl FnOnce(Errno) -> RuntimeError {
    let action = action.into();
    move |source| RuntimeError::Sys { action, source }
}

/// `map_err` helper for std::io calls.
pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let action = action.into();
    move |source| RuntimeError::Io { action, source }
}

/// Write a file atomically: temp file, fsync, rename (never rewrite a state file in place).
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}
