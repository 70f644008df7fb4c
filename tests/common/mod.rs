//! Shared integration-test harness: every test gets a private "host".
//!
//! A [`Sandbox`] is a holder process living in fresh network and mount namespaces. Everything a
//! test does in it (bridges, veths, nft tables, named namespaces under a private /run/netns,
//! the agent itself) exists only there and disappears with the holder, even when the test
//! panics or is killed: the holder gets SIGKILL when the test process dies (pdeathsig).
//! Tests therefore run in parallel without name clashes and leave the root namespace alone.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Fail loudly (never skip) when a root-only test runs without root.
pub fn require_root() {
    assert!(
        nix_is_root(),
        "this integration test needs root (network namespaces, netlink, nftables); run it as root"
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Path of a binary built by cargo for this package.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "warren" => PathBuf::from(env!("CARGO_BIN_EXE_warren")),
        "warrend" => PathBuf::from(env!("CARGO_BIN_EXE_warrend")),
        other => PathBuf::from(other),
    }
}

/// A private network + mount namespace standing in for a host.
pub struct Sandbox {
    holder: Child,
    pid: u32,
    /// The sandbox has its own PID namespace too (see [`Sandbox::with_pid_namespace`]).
    pid_ns: bool,
    /// A temporary directory on the real filesystem for data/exec roots and scratch files.
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::build(false)
    }

    /// A sandbox with its own PID namespace as well, for tests that start containers: their
    /// shims deliberately outlive the agent, and here they die with the sandbox (the PID
    /// namespace's init is killed with the holder) instead of lingering on the real host.
    pub fn with_pid_namespace() -> Sandbox {
        Sandbox::build(true)
    }

    fn build(pid_ns: bool) -> Sandbox {
        require_root();
        // /run/netns must exist as a mount point target; an empty directory is harmless.
        std::fs::create_dir_all("/run/netns").expect("create /run/netns");
        let dir = tempfile::Builder::new()
            .prefix("warren-test-")
            .tempdir()
            .expect("tempdir");
        // The holder: new netns + mount ns with private propagation; /run/netns is a private
        // tmpfs so named namespaces made by the test stay inside; lo is up like on a real host.
        let script = "mount -t tmpfs -o mode=0755 warren-sandbox /run/netns && \
                      ip link set lo up && echo ready && exec sleep 100000";
        let mut holder = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .args(["unshare", "--net", "--mount", "--propagation", "private"])
            .args(if pid_ns {
                &["--pid", "--fork", "--kill-child", "--mount-proc"][..]
            } else {
                &[][..]
            })
            .arg("--")
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sandbox holder (needs util-linux setpriv/unshare)");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().expect("holder stdout"))
            .read_line(&mut line)
            .expect("read holder readiness");
        assert_eq!(line.trim(), "ready", "sandbox holder failed to start");
        // With a PID namespace the holder is unshare; the namespaces are its forked child's.
        let pid = if pid_ns {
            let id = holder.id();
            std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
                .ok()
                .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
                .expect("the sandbox's init")
        } else {
            holder.id()
        };
        Sandbox {
            holder,
            pid,
            pid_ns,
            dir,
        }
    }

    /// PID of the holder process (its namespaces are the sandbox's).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Path of the sandbox's network namespace.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// A command that runs inside the sandbox (its netns and mount ns).
    pub fn cmd(&self, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid.to_string())
            .args(["--net", "--mount"])
            .args(if self.pid_ns { &["--pid"][..] } else { &[][..] })
            .arg("--")
            .arg(program.as_ref());
        c
    }

    /// Run a command in the sandbox and return its output (never panics on failure).
    pub fn run(&self, program: impl AsRef<Path>, args: &[&str]) -> Output {
        self.cmd(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn command in sandbox")
    }

    /// Run a command in the sandbox, panicking with its output unless it succeeds.
    pub fn ok(&self, program: impl AsRef<Path>, args: &[&str]) -> String {
        let out = self.run(program.as_ref(), args);
        assert!(
            out.status.success(),
            "`{} {}` failed ({}):\nstdout: {}\nstderr: {}",
            program.as_ref().display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sh -c SCRIPT` inside the sandbox; panics unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        self.ok("sh", &["-c", script])
    }

    /// Start `warrend` inside the sandbox with its own roots and socket; returns once it serves.
    pub fn start_agent(&self, extra_args: &[&str]) -> Agent {
        let mut agent = self.spawn_agent(extra_args);
        agent.wait_ready();
        agent
    }

    /// Launch `warrend` like [`Sandbox::start_agent`] without waiting for it to serve.
    pub fn spawn_agent(&self, extra_args: &[&str]) -> Agent {
        let data_root = self.dir.path().join("data");
        let exec_root = self.dir.path().join("run");
        let socket = exec_root.join("warren.sock");
        let log = self.dir.path().join("warrend.log");
        let config_file = self.dir.path().join("daemon.json");
        if !config_file.exists() {
            std::fs::write(&config_file, "{}\n").expect("write daemon.json");
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("agent log");
        // pdeathsig: the agent dies with the test even when the test process is killed.
        let mut cmd = self.cmd("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(bin("warrend"))
            .arg("--config-file")
            .arg(&config_file)
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--debug")
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log"))
            .stderr(log_file);
        let child = cmd.spawn().expect("spawn warrend");
        Agent {
            child: Some(child),
            socket,
            log,
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A running `warrend` inside a sandbox.
pub struct Agent {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Wait until the agent answers `GET /_ping`. A successful connect alone proves nothing: a
    /// child process the previous (killed) agent was forking can briefly hold its listening
    /// socket, and the agent binds before it has opened its store and reconciled.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                panic!(
                    "warrend exited ({status}) before serving {}; log:\n{}",
                    self.socket.display(),
                    self.log_text()
                );
            }
            if self.pings() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "warrend does not answer on {}; log:\n{}",
            self.socket.display(),
            self.log_text()
        );
    }

    /// One `GET /_ping` over the socket; true when it answered 200 OK.
    fn pings(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        if stream
            .write_all(b"GET /_ping HTTP/1.1\r\nHost: warren\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.1 200")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The agent's PID as seen from the root namespace (nsenter execs, so it is the agent).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The agent's exit status if it has exited (None while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stop with SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent already stopped");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().expect("wait warrend")
    }

    /// SIGKILL the agent (crash simulation).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Entering a PID namespace makes nsenter fork: the agent is its child then.
            let id = child.id();
            let comm = std::fs::read_to_string(format!("/proc/{id}/comm")).unwrap_or_default();
            if comm.trim() == "nsenter" {
                let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
                    .unwrap_or_default();
                for pid in children.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Agent {
    /// SIGTERM the agent and start a new one on the same roots (see [`Sandbox::start_agent`]).
    pub fn restart(&mut self, sb: &Sandbox) {
        let status = self.stop();
        assert!(
            status.success(),
            "warrend exited with {status} on SIGTERM; log:\n{}",
            self.log_text()
        );
        *self = sb.start_agent(&[]);
    }
}

/// What an API call answered: HTTP status and the body (JSON `null` when empty, a JSON string
/// when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Reply {
    /// Docker's error message (`{"message": …}`), or "" for a reply without one.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// Percent-encode a query value.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Sandbox {
    /// `warren -H <agent> ARGS` inside the sandbox.
    pub fn warren(&self, agent: &Agent, args: &[&str]) -> Output {
        self.cmd(bin("warren"))
            .arg("-H")
            .arg(agent.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn warren")
    }

    /// Like [`Sandbox::warren`], panicking unless it succeeds; returns stdout.
    pub fn warren_ok(&self, agent: &Agent, args: &[&str]) -> String {
        let out = self.warren(agent, args);
        assert!(
            out.status.success(),
            "warren {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The real docker CLI against the agent (its own config dir, so no user settings apply).
    pub fn docker(&self, agent: &Agent, args: &[&str]) -> Output {
        self.cmd("docker")
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .arg("-H")
            .arg(agent.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the docker CLI (install docker.io)")
    }

    /// A raw HTTP request to the agent's socket with curl; `body` is sent byte for byte.
    pub fn api(&self, agent: &Agent, method: &str, path: &str, body: Option<&str>) -> Reply {
        use std::io::Write;
        let mut cmd = self.cmd("curl");
        cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", "--unix-socket"])
            .arg(&agent.socket)
            .arg(format!("http://warren{path}"));
        if body.is_some() {
            cmd.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                "@-",
            ]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn curl");
        let mut stdin = child.stdin.take().expect("curl stdin");
        stdin
            .write_all(body.unwrap_or("").as_bytes())
            .expect("write request body");
        drop(stdin);
        let out = child.wait_with_output().expect("wait for curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "curl {method} {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
        let status = status.trim().parse().expect("numeric HTTP status");
        let body = if body.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::String(body.into()))
        };
        Reply { status, body }
    }

    /// `GET path`, insisting on 200; returns the JSON body.
    pub fn get_json(&self, agent: &Agent, path: &str) -> serde_json::Value {
        let reply = self.api(agent, "GET", path, None);
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        reply.body
    }

    /// Create a named network namespace (pinned under the sandbox's private /run/netns).
    pub fn netns_add(&self, name: &str) {
        self.ok("ip", &["netns", "add", name]);
    }

    /// Run a command inside a named namespace of the sandbox.
    pub fn in_ns(&self, ns: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        self.run("ip", &all)
    }

    /// Pings from `ns` to `addr` until one is answered, at most `tries` (1 s each).
    pub fn ping_within(&self, ns: &str, addr: &str, tries: u32) -> bool {
        (0..tries).any(|_| self.ping(ns, addr))
    }

    /// One ping from namespace `ns` to `addr` (1 s timeout); true when it got an answer.
    pub fn ping(&self, ns: &str, addr: &str) -> bool {
        self.in_ns(ns, &["ping", "-c", "1", "-W", "1", addr])
            .status
            .success()
    }
}

/// A busybox root filesystem (Debian's busybox-static) under the sandbox's temp dir.
pub fn busybox_rootfs(sb: &Sandbox) -> String {
    let root = sb.dir.path().join("rootfs");
    if !root.exists() {
        for d in ["bin", "etc", "tmp", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static installed");
        // The applet links are made here rather than by running the fresh copy: exec'ing a
        // file just written races with other test threads forking while it was open for
        // writing (ETXTBSY).
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        assert!(list.status.success(), "busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            let link = root.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", &link).unwrap();
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    }
    root.display().to_string()
}
