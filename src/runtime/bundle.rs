//! A container's bundle: the directory under the exec root through which the agent and the
//! container's shim talk. The agent writes `config.json` and the generated /etc files and
//! spawns the shim; the shim writes `state.json` once the container runs and `exit.json`
//! (atomically) when it has exited, and listens on `shim.sock` in between, so waiting for
//! the exit is connecting and reading to EOF.
//!
//! ```text
//! <exec-root>/containers/<id>/
//!   config.json   ContainerSpec (agent → shim)
//!   hosts hostname resolv.conf
//!   rootfs/       mount point of the overlay (inside the container's mount namespace)
//!   state.json    ShimState (shim → agent), exit.json  ExitStatus, shim.sock, shim.log
//! ```

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use super::cgroups::Cgroup;
use super::shim::ShimReport;
use super::spec::ContainerSpec;
use super::{io, write_atomic, RuntimeError};

/// What the shim records once the container's init runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    pub shim_pid: i32,
    /// The container's PID 1, as seen from the host.
    pub init_pid: i32,
    /// Start time of the init in clock ticks since boot (/proc/PID/stat field 22): together
    /// with the pid it names the process even after pid reuse.
    pub init_start: u64,
    pub shim_start: u64,
    /// Unix nanoseconds.
    pub started_at: u128,
    pub cgroup: Cgroup,
}

/// How the container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The command's exit code; 128+N when killed by signal N.
    pub code: i32,
    /// Unix nanoseconds.
    pub finished_at: u128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub dir: PathBuf,
}

/// Start time (field 22) and state (field 3) of a process, if it exists.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// True when `pid` is still the process that started at `start` and has not exited.
pub fn alive(pid: i32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((s, state)) if s == start && state != 'Z' && state != 'X')
}

impl Bundle {
    pub fn new(exec_root: &Path, id: &str) -> Bundle {
        Bundle {
            dir: exec_root.join("containers").join(id),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn config(&self) -> PathBuf {
        self.path("config.json")
    }

    pub fn socket(&self) -> PathBuf {
        self.path("shim.sock")
    }

    /// The socket reached through an open descriptor of the bundle directory
    /// (`/proc/self/fd/N/shim.sock`): socket addresses are limited to 108 bytes and exec
    /// roots can be long. Keep the returned file open while binding or connecting.
    pub fn short_socket(&self) -> std::io::Result<(std::fs::File, PathBuf)> {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(&self.dir)?;
        let path = PathBuf::from(format!("/proc/self/fd/{}/shim.sock", dir.as_raw_fd()));
        Ok((dir, path))
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path("rootfs")
    }

    pub fn create(&self) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(self.rootfs()).map_err(io(format!("create {}", self.dir.display())))
    }

    pub fn write_spec(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let json = serde_json::to_vec_pretty(spec).expect("specs serialize");
        write_atomic(&self.config(), &json)
            .map_err(io(format!("write {}", self.config().display())))
    }

    pub fn read_spec(&self) -> Result<ContainerSpec, RuntimeError> {
        read_json(&self.config())?.ok_or_else(|| RuntimeError::ReadState {
            path: self.config(),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    pub fn state(&self) -> Option<ShimState> {
        read_json(&self.path("state.json")).ok().flatten()
    }

    pub fn exit_status(&self) -> Option<ExitStatus> {
        read_json(&self.path("exit.json")).ok().flatten()
    }

    /// Forget the previous run's state and exit files (before a new start).
    pub fn clear_run_files(&self) {
        for f in ["state.json", "exit.json", "shim.sock"] {
            let _ = std::fs::remove_file(self.path(f));
        }
    }

    /// The running container's state: the shim recorded it, has not recorded an exit and
    /// the init is still the process it recorded.
    pub fn running(&self) -> Option<ShimState> {
        let state = self.state()?;
        if self.exit_status().is_some() || !alive(state.init_pid, state.init_start) {
            return None;
        }
        Some(state)
    }

    /// True while the shim process itself is alive.
    pub fn shim_alive(&self) -> bool {
        self.state()
            .is_some_and(|s| alive(s.shim_pid, s.shim_start))
    }

    /// Send `signal` to the container's PID 1 (the init forwards it to the command).
    pub fn signal(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let state = self
            .running()
            .ok_or_else(|| RuntimeError::NotRunning { id: id.into() })?;
        match nix::sys::signal::kill(Pid::from_raw(state.init_pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::Sys {
                action: format!("send {signal} to container {id}"),
                source: e,
            }),
        }
    }

    /// Wait for the report of the shim launched for this bundle (`report` is its stdout; see
    /// [`super::exe::ShimLauncher::launch`]): the container's init pid, or why it could not
    /// start. The shim detaches itself (double fork, setsid), so it outlives the agent.
    pub async fn await_shim(
        &self,
        report: tokio::process::ChildStdout,
    ) -> Result<ShimState, RuntimeError> {
        let mut lines = tokio::io::BufReader::new(report).lines();
        let mut report = None;
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(io("read the shim's report"))?
        {
            if let Ok(r) = serde_json::from_str::<ShimReport>(&line) {
                report = Some(r);
                break;
            }
        }
        match report {
            Some(ShimReport::Ready { .. }) => self.state().ok_or_else(|| {
                RuntimeError::StartFailed("the shim reported ready but wrote no state".into())
            }),
            Some(ShimReport::Failed { message }) => Err(RuntimeError::StartFailed(message)),
            None => {
                let log = std::fs::read_to_string(self.path("shim.log")).unwrap_or_default();
                let last = log.lines().last().unwrap_or("no output").to_string();
                Err(RuntimeError::StartFailed(format!(
                    "the shim exited without reporting: {last}"
                )))
            }
        }
    }

    /// Wait until the container has exited and return its status. Connects to the shim's
    /// socket and reads until EOF (the shim closes it after writing `exit.json`); a shim
    /// that is gone without an exit file yields `None`.
    pub async fn wait_exit(&self) -> Option<ExitStatus> {
        if let Some(status) = self.exit_status() {
            return Some(status);
        }
        let connected = match self.short_socket() {
            Ok((_dir, path)) => tokio::net::UnixStream::connect(path).await.ok(),
            Err(_) => None,
        };
        if let Some(mut stream) = connected {
            let mut buf = [0u8; 64];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        } else {
            // No socket yet or any more: the shim may be between steps; poll briefly.
            for _ in 0..100 {
                if let Some(status) = self.exit_status() {
                    return Some(status);
                }
                if !self.shim_alive() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        self.exit_status()
    }

    /// Remove the bundle directory.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Io {
                action: format!("remove {}", self.dir.display()),
                source: e,
            }),
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RuntimeError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| RuntimeError::DecodeState {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RuntimeError::ReadState {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_stat_parses() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let (start, state) = proc_stat(pid).unwrap();
        assert!(state == 'R' || state == 'S');
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1));
    }
}
