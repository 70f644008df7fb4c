//! The per-container shim: the agent's binary run as `warren-shim` (see `exe`). It reads its
//! bundle directory from stdin — so the agent can start it ahead of need (see
//! [`super::exe::ShimLauncher`]) — detaches from the agent (fork, setsid), creates the
//! container's cgroups and init (new PID namespace), reports readiness to the agent as one
//! typed message on stdout, then — single-threaded, in one poll loop — copies the command's
//! stdout/stderr into the log, keeps waiters' connections on `shim.sock` open, and on the
//! init's exit writes `exit.json` atomically, removes the cgroups and exits. It never needs
//! the agent again, so SIGKILL of `warrend` leaves the container running.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::bundle::{proc_stat, Bundle, ExitStatus, ShimState};
use super::cgroups::Cgroup;
use super::init::{self, InitFds, InitMessage};
use super::logs::{now_nanos, LogWriter, Stream};
use super::{io, os_err, sys, write_atomic, RuntimeError};

/// Shim → agent, one JSON line on the shim's stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShimReport {
    Ready { pid: i32 },
    Failed { message: String },
}

fn report(msg: &ShimReport) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, msg);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Entry point, called by `warrend` before anything else (single-threaded). Returns the
/// process exit code.
pub fn main() -> i32 {
    // First fork, before anything else: the agent reaps this parent at once; the child is
    // adopted by init (or a subreaper) and starts its own session, so neither the agent's
    // death nor its terminal's signals reach it. A spare shim does this ahead of need too.
    match sys::fork() {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            report(&ShimReport::Failed {
                message: format!("fork the shim: {e}"),
            });
            return 1;
        }
    }
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");
    let bundle_dir = match receive_bundle() {
        Ok(Some(dir)) => dir,
        // The agent went away (or dropped a spare shim) before it had a container for us.
        Ok(None) => return 0,
        Err(message) => {
            report(&ShimReport::Failed { message });
            return 1;
        }
    };
    let bundle = Bundle { dir: bundle_dir };
    match run(&bundle) {
        Ok(()) => 0,
        Err(e) => {
            let message = crate::error::chain(&e);
            eprintln!("shim: {message}");
            report(&ShimReport::Failed { message });
            1
        }
    }
}

/// Wait for the agent to name our bundle: one line on stdin (EOF: nothing to do). Then the
/// bundle's `shim.log` becomes stderr and stdin is let go.
fn receive_bundle() -> Result<Option<PathBuf>, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("read the bundle from stdin: {e}"))?;
    let Some(dir) = line.strip_suffix('\n').filter(|d| d.starts_with('/')) else {
        return if line.is_empty() {
            Ok(None)
        } else {
            Err(format!(
                "expected an absolute bundle path on stdin, got {line:?}"
            ))
        };
    };
    let dir = PathBuf::from(dir);
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"))
        .map_err(|e| format!("open {}/shim.log: {e}", dir.display()))?;
    let null = File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
    nix::unistd::dup2_stderr(&log).map_err(|e| format!("redirect stderr: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("redirect stdin: {e}"))?;
    Ok(Some(dir))
}

struct Pipes {
    read: [OwnedFd; 3],
    write: InitFds,
}

fn pipes() -> Result<Pipes, RuntimeError> {
    let p = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(os_err("create a pipe"));
    let (out_r, out_w) = p()?;
    let (err_r, err_w) = p()?;
    let (sync_r, sync_w) = p()?;
    Ok(Pipes {
        read: [out_r, err_r, sync_r],
        write: InitFds {
            stdout: out_w,
            stderr: err_w,
            sync: sync_w,
        },
    })
}

fn run(bundle: &Bundle) -> Result<(), RuntimeError> {
    let spec = bundle.read_spec()?;
    let socket = bundle.socket();
    let _ = std::fs::remove_file(&socket);
    let listener = bundle
        .short_socket()
        .and_then(|(_dir, short)| UnixListener::bind(short))
        .map_err(io(format!("listen on {}", socket.display())))?;
    listener
        .set_nonblocking(true)
        .map_err(io("set the socket non-blocking"))?;
    let mut log = LogWriter::open(&spec.log).map_err(io(format!("open {}", spec.log.display())))?;
    let cgroup = Cgroup::create(
        &spec.id,
        &spec.limits,
        spec.confinement.device_rules.as_deref(),
    )?;
    let started = start(bundle, &spec, &cgroup, listener, &mut log);
    if started.is_err() {
        cgroup.remove();
        let _ = std::fs::remove_file(&socket);
    }
    started
}

fn start(
    bundle: &Bundle,
    spec: &super::spec::ContainerSpec,
    cgroup: &Cgroup,
    listener: UnixListener,
    log: &mut LogWriter,
) -> Result<(), RuntimeError> {
    let Pipes { read, write } = pipes()?;
    // SIGCHLD is read from a signalfd in the loop; blocked before the fork so none is missed.
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    chld.thread_block().map_err(os_err("block SIGCHLD"))?;
    let sfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(os_err("create a signalfd"))?;
    // Our next child is PID 1 of a new PID namespace; the shim itself stays outside. It is
    // born in the container's v2 cgroup where the kernel allows (see cgroups).
    unshare(CloneFlags::CLONE_NEWPID).map_err(os_err("create a PID namespace"))?;
    let unified = cgroup
        .unified_dir()
        .transpose()
        .map_err(io("open the container's cgroup"))?;
    let (forked, in_unified) = match &unified {
        Some(dir) => match sys::fork_into_cgroup(dir.as_fd()) {
            Ok(forked) => (forked, true),
            // Kernels before 5.7 have no CLONE_INTO_CGROUP: the init joins it itself.
            Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::E2BIG) => (
                sys::fork().map_err(os_err("fork the container's init"))?,
                false,
            ),
            Err(e) => return Err(os_err("fork the container's init")(e)),
        },
        None => (
            sys::fork().map_err(os_err("fork the container's init"))?,
            true,
        ),
    };
    let child = match forked {
        ForkResult::Child => {
            drop((read, listener, sfd, unified));
            init::run(spec, cgroup, in_unified, write)
        }
        ForkResult::Parent { child } => child,
    };
    drop(unified);
    drop(write);
    let [out_r, err_r, sync_r] = read;
    let mut text = String::new();
    let _ = File::from(sync_r).read_to_string(&mut text);
    if let Some(msg) = text
        .lines()
        .find_map(|l| serde_json::from_str::<InitMessage>(l).ok())
    {
        let InitMessage::Failed(message) = msg;
        let code = wait_blocking(child);
        write_exit(bundle, code);
        return Err(RuntimeError::StartFailed(message));
    }
    let init_start = proc_stat(child.as_raw()).map(|s| s.0).unwrap_or(0);
    let shim_pid = nix::unistd::getpid().as_raw();
    let state = ShimState {
        shim_pid,
        init_pid: child.as_raw(),
        init_start,
        shim_start: proc_stat(shim_pid).map(|s| s.0).unwrap_or(0),
        started_at: now_nanos(),
        cgroup: cgroup.clone(),
    };
    let json = serde_json::to_vec(&state).expect("state serializes");
    write_atomic(&bundle.path("state.json"), &json).map_err(io("write state.json"))?;
    report(&ShimReport::Ready {
        pid: child.as_raw(),
    });
    // The agent stops listening after the report; nothing more goes to it on stdout.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    let (code, waiters) = supervise(child, [Some(out_r), Some(err_r)], &sfd, &listener, log);
    write_exit(bundle, code);
    cgroup.remove();
    let _ = std::fs::remove_file(bundle.socket());
    // Only now, with exit.json in place, do the waiters see EOF: that is their notification.
    drop(waiters);
    Ok(())
}

fn write_exit(bundle: &Bundle, code: i32) {
    let status = ExitStatus {
        code,
        finished_at: now_nanos(),
    };
    let json = serde_json::to_vec(&status).expect("exit status serializes");
    if let Err(e) = write_atomic(&bundle.path("exit.json"), &json) {
        eprintln!("shim: write exit.json: {e}");
    }
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn wait_blocking(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(s) => {
                if let Some(code) = exit_code(s) {
                    return code;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}

/// The shim's loop: log output, hold waiters, notice the init's exit. Returns its code and
/// the waiters' connections, which the caller closes after recording the exit.
fn supervise(
    child: Pid,
    mut outputs: [Option<OwnedFd>; 2],
    sfd: &SignalFd,
    listener: &UnixListener,
    log: &mut LogWriter,
) -> (i32, Vec<UnixStream>) {
    let mut waiters: Vec<UnixStream> = Vec::new();
    let mut code: Option<i32> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(code) = code {
            let drained = outputs.iter().all(Option::is_none);
            if drained || drain_deadline.is_some_and(|d| Instant::now() >= d) {
                for s in [Stream::Stdout, Stream::Stderr] {
                    let _ = log.flush(s);
                }
                return (code, waiters);
            }
        }
        let timeout = if code.is_some() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        // Fixed slots: 0 stdout, 1 stderr, 2 signalfd, 3 listener, 4.. waiters.
        let mut fds: Vec<PollFd> = Vec::with_capacity(4 + waiters.len());
        for out in &outputs {
            match out {
                Some(fd) => fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
                None => fds.push(PollFd::new(sfd.as_fd(), PollFlags::empty())),
            }
        }
        fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        for w in &waiters {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("shim: poll: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if !ready[i] {
                continue;
            }
            let Some(fd) = &outputs[i] else { continue };
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EBADF) => {
                    let _ = log.flush(stream);
                    outputs[i] = None;
                }
                Ok(n) => {
                    if let Err(e) = log.write(stream, &buf[..n]) {
                        eprintln!("shim: write log: {e}");
                    }
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => outputs[i] = None,
            }
        }
        if ready[2] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(s) => {
                        if let Some(c) = exit_code(s) {
                            code = Some(c);
                            drain_deadline = Some(Instant::now() + Duration::from_secs(2));
                            break;
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => {
                        code.get_or_insert(255);
                        drain_deadline.get_or_insert(Instant::now());
                        break;
                    }
                }
            }
        }
        if ready[3] {
            while let Ok((stream, _)) = listener.accept() {
                waiters.push(stream);
            }
        }
        // A waiter that hung up (or sent anything) is dropped.
        let mut i = 0;
        waiters.retain(|_| {
            let keep = !ready.get(4 + i).copied().unwrap_or(false);
            i += 1;
            keep
        });
    }
}
