//! Containers end to end: lifecycle and exit codes, `--rm`, logs, exec, hot-plugged networks,
//! a shim that survives SIGKILL of the agent, cgroup limits, namespaces and zombie reaping,
//! and bad input. Every test runs in its own sandbox with a PID namespace, so the shims it
//! starts die with it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{busybox_rootfs as rootfs, Agent, Sandbox};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn setup() -> (Sandbox, Agent, String) {
    let sb = Sandbox::with_pid_namespace();
    let agent = sb.start_agent(&[]);
    let root = rootfs(&sb);
    (sb, agent, root)
}

fn inspect(sb: &Sandbox, agent: &Agent, name: &str) -> serde_json::Value {
    sb.get_json(agent, &format!("/containers/{name}/json"))
}

fn ip_of(sb: &Sandbox, agent: &Agent, name: &str, network: &str) -> String {
    inspect(sb, agent, name)["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

/// True when `dir` is missing or has no entries.
fn dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    }
}

/// Named namespaces and links in the sandbox, to prove nothing is left behind.
fn kernel_objects(sb: &Sandbox) -> String {
    sb.sh("ip netns list | sort; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort")
}

#[test]
fn lifecycle_exit_codes_rm_and_logs() {
    let (sb, agent, root) = setup();
    let out = sb.warren(&agent, &["run", "--rm", &root, "echo", "hi"]);
    assert_eq!(
        (code(&out), text(&out).as_str()),
        (0, "hi\n"),
        "{}",
        err(&out)
    );
    let out = sb.warren(
        &agent,
        &[
            "run",
            "--rm",
            &root,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(code(&out), 3, "{}", err(&out));
    assert_eq!(text(&out), "out\n");
    assert_eq!(err(&out), "err\n");
    // --rm removed both, and their directories (deleted in the background via the trash).
    let ps = sb.warren_ok(&agent, &["ps", "-a", "-q"]);
    assert_eq!(ps.trim(), "", "--rm left containers: {ps}");
    eventually("the removed containers' directories are deleted", || {
        [
            "data/containers",
            "data/trash",
            "run/containers",
            "run/trash",
        ]
        .iter()
        .all(|d| dir_is_empty(&sb.dir.path().join(d)))
    });

    // Detached: running, logs, stop (the init forwards SIGTERM), exit code kept, rm.
    let before = kernel_objects(&sb);
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            &root,
            "sh",
            "-c",
            "echo started; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done",
        ],
    );
    eventually("ticker logs 'started'", || {
        text(&sb.warren(&agent, &["logs", "ticker"])).contains("started")
    });
    let ps = sb.warren_ok(&agent, &["ps"]);
    assert!(ps.contains("ticker") && ps.contains("Up "), "{ps}");
    let state = &inspect(&sb, &agent, "ticker")["State"];
    assert_eq!(state["Status"], "running");
    assert!(state["Pid"].as_i64().unwrap() > 0);
    sb.warren_ok(&agent, &["stop", "-t", "5", "ticker"]);
    let state = &inspect(&sb, &agent, "ticker")["State"];
    assert_eq!(
        (state["Status"].as_str(), state["ExitCode"].as_i64()),
        (Some("exited"), Some(7))
    );
    let status = sb.warren_ok(
        &agent,
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "ticker",
        ],
    );
    assert_eq!(status, "exited 7\n");
    let logs = sb.warren_ok(&agent, &["logs", "ticker"]);
    assert_eq!(logs, "started\nbye\n");
    let tail = sb.warren_ok(&agent, &["logs", "--tail", "1", "-t", "ticker"]);
    assert!(tail.ends_with(" bye\n") && tail.starts_with("20"), "{tail}");
    let ps = sb.warren_ok(&agent, &["ps", "-a"]);
    assert!(ps.contains("Exited (7)"), "{ps}");
    assert_eq!(text(&sb.warren(&agent, &["wait", "ticker"])).trim(), "7");
    // Restart an exited container: same log, new run.
    sb.warren_ok(&agent, &["start", "ticker"]);
    eventually("second start logged", || {
        sb.warren_ok(&agent, &["logs", "ticker"])
            .matches("started")
            .count()
            == 2
    });
    sb.warren_ok(&agent, &["kill", "ticker"]);
    assert_eq!(inspect(&sb, &agent, "ticker")["State"]["ExitCode"], 137);
    sb.warren_ok(&agent, &["rm", "ticker"]);
    assert_eq!(
        kernel_objects(&sb),
        before,
        "rm left namespaces or links behind"
    );
    assert_eq!(
        sb.api(&agent, "GET", "/containers/ticker/json", None)
            .status,
        404
    );
}

/// `run --rm` of a command that exits at once: the container (and its log) is removed right
/// after the exit, and the attached client must still get every byte of the output.
#[test]
fn short_lived_rm_runs_never_lose_output() {
    let (sb, agent, root) = setup();
    std::thread::scope(|s| {
        // The teardown after the exit differs per network kind.
        for network in ["host", "none", "bridge"] {
            let (sb, agent, root) = (&sb, &agent, &root);
            s.spawn(move || {
                for i in 0..15 {
                    let word = format!("{network}-{i}");
                    let out = sb.warren(
                        agent,
                        &["run", "--rm", "--network", network, root, "echo", &word],
                    );
                    assert_eq!(
                        (code(&out), text(&out)),
                        (0, format!("{word}\n")),
                        "{}",
                        err(&out)
                    );
                }
            });
        }
    });
    let ps = sb.warren_ok(&agent, &["ps", "-a", "-q"]);
    assert_eq!(ps.trim(), "", "--rm left containers: {ps}");
}

#[test]
fn exec_and_hot_plugged_networks() {
    let (sb, agent, root) = setup();
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.77.0.0/24", "front"],
    );
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.78.0.0/24", "back"],
    );
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "front",
            "--ip",
            "10.77.0.10",
            &root,
            "sleep",
            "1000",
        ],
    );
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "back",
            &root,
            "sleep",
            "1000",
        ],
    );
    let addrs = sb.warren_ok(&agent, &["exec", "web", "ip", "-4", "addr"]);
    assert!(
        addrs.contains("10.77.0.10/24") && addrs.contains("eth0"),
        "{addrs}"
    );
    assert_eq!(ip_of(&sb, &agent, "web", "front"), "10.77.0.10");
    // A short-lived container on the same network reaches web; one on another does not.
    let ping_web = |network: &str| {
        let args = [
            "run",
            "--rm",
            "--network",
            network,
            &root,
            "ping",
            "-c1",
            "-W1",
            "10.77.0.10",
        ];
        code(&sb.warren(&agent, &args))
    };
    assert_eq!(
        ping_web("front"),
        0,
        "run --rm --network front cannot ping web"
    );
    assert_ne!(
        ping_web("back"),
        0,
        "a container on back reached web on front"
    );

    // Hot-plug: connect web to back; eth1 appears at once and reaches db.
    sb.warren_ok(&agent, &["network", "connect", "back", "web"]);
    let addrs = sb.warren_ok(&agent, &["exec", "web", "ip", "-4", "addr"]);
    assert!(
        addrs.contains("eth1") && addrs.contains("10.78.0."),
        "{addrs}"
    );
    let db_ip = ip_of(&sb, &agent, "db", "back");
    let out = sb.warren(
        &agent,
        &["exec", "web", "ping", "-c", "1", "-W", "2", &db_ip],
    );
    assert_eq!(
        code(&out),
        0,
        "ping db from web: {}{}",
        text(&out),
        err(&out)
    );
    // A --rm container on the same network reaches it too.
    let out = sb.warren(
        &agent,
        &[
            "run",
            "--rm",
            "--network",
            "back",
            &root,
            "ping",
            "-c1",
            "-W1",
            &db_ip,
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", text(&out), err(&out));
    sb.warren_ok(&agent, &["network", "disconnect", "back", "web"]);
    let addrs = sb.warren_ok(&agent, &["exec", "web", "ip", "-4", "addr"]);
    assert!(!addrs.contains("eth1"), "{addrs}");

    // exec: environment, working dir, user, exit code, /etc files.
    let out = sb.warren_ok(
        &agent,
        &[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "web",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)",
        ],
    );
    assert_eq!(out, "1 /tmp 65534\n");
    let out = sb.warren(&agent, &["exec", "web", "sh", "-c", "exit 5"]);
    assert_eq!(code(&out), 5);
    let out = sb.warren(&agent, &["exec", "web", "no-such-cmd"]);
    assert_eq!(code(&out), 127, "{}", err(&out));
    let hosts = sb.warren_ok(
        &agent,
        &[
            "exec",
            "web",
            "cat",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
        ],
    );
    assert!(
        hosts.contains("10.77.0.10\t") && hosts.contains("nameserver 127.0.0.11"),
        "{hosts}"
    );
    sb.warren_ok(&agent, &["rm", "-f", "web", "db"]);
    sb.warren_ok(&agent, &["network", "rm", "front", "back"]);
}

#[test]
fn containers_survive_an_agent_crash_and_are_readopted() {
    let (sb, mut agent, root) = setup();
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.79.0.0/24", "lab"],
    );
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "keep",
            "--network",
            "lab",
            &root,
            "sh",
            "-c",
            "echo up; exec sleep 1000",
        ],
    );
    let ip = ip_of(&sb, &agent, "keep", "lab");
    let ping = |sb: &Sandbox| {
        sb.run("ping", &["-c", "1", "-W", "1", &ip])
            .status
            .success()
    };
    eventually("the container answers on its IP", || ping(&sb));

    agent.kill9();
    assert!(
        ping(&sb),
        "the container stopped answering when the agent died"
    );
    // A removal the crash interrupted left a directory in the trash: the next start deletes it.
    let stale = sb.dir.path().join("data/trash/0123abcd/upper/etc");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("hosts"), "x").unwrap();
    agent = sb.start_agent(&[]);
    eventually("the trash is emptied at start", || {
        dir_is_empty(&sb.dir.path().join("data/trash"))
    });
    let ps = sb.warren_ok(&agent, &["ps"]);
    assert!(
        ps.contains("keep") && ps.contains("Up "),
        "not re-adopted: {ps}"
    );
    assert!(ping(&sb), "not answering after the agent restarted");
    // Its endpoint was kept, not re-made: same address, and no address handed out twice.
    assert_eq!(ip_of(&sb, &agent, "keep", "lab"), ip);
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "other",
            "--network",
            "lab",
            &root,
            "sleep",
            "1000",
        ],
    );
    assert_ne!(ip_of(&sb, &agent, "other", "lab"), ip);
    // The re-adopted container is fully manageable: exec, logs, stop with its exit recorded.
    assert_eq!(
        sb.warren_ok(&agent, &["exec", "keep", "echo", "ok"]),
        "ok\n"
    );
    assert_eq!(sb.warren_ok(&agent, &["logs", "keep"]), "up\n");
    sb.warren_ok(&agent, &["stop", "-t", "1", "keep"]);
    assert_eq!(inspect(&sb, &agent, "keep")["State"]["Status"], "exited");

    // A container that exits while the agent is down is recorded as exited on restart.
    agent.kill9();
    let state_file = sb.dir.path().join("run/containers");
    let other_id = std::fs::read_dir(&state_file)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|id| {
            std::fs::read_to_string(state_file.join(id).join("config.json"))
                .unwrap_or_default()
                .contains("\"sleep\"")
        })
        .expect("bundle of other");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state_file.join(&other_id).join("state.json")).unwrap(),
    )
    .unwrap();
    sb.sh(&format!("kill -KILL {}", state["init_pid"]));
    eventually("the shim records the exit", || {
        state_file.join(&other_id).join("exit.json").exists()
    });
    agent = sb.start_agent(&[]);
    let st = &inspect(&sb, &agent, "other")["State"];
    assert_eq!(
        (st["Status"].as_str(), st["ExitCode"].as_i64()),
        (Some("exited"), Some(137))
    );
    sb.warren_ok(&agent, &["rm", "keep", "other"]);
}

#[test]
fn namespaces_limits_and_zombie_reaping() {
    let (sb, agent, root) = setup();
    // UTS, PID and mount isolation; the built-in init is PID 1 and the command its child.
    let out = sb.warren_ok(
        &agent,
        &[
            "run",
            "--rm",
            "--hostname",
            "box",
            &root,
            "sh",
            "-c",
            "hostname; echo $$; ls /proc | grep -c '^[0-9]'",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "box");
    assert_eq!(lines[1], "2", "the command should be PID 2 under the init");
    // Without the init the command itself is PID 1 (Docker's --init=false).
    let out = sb.warren_ok(
        &agent,
        &["run", "--rm", "--init=false", &root, "sh", "-c", "echo $$"],
    );
    assert_eq!(out, "1\n");
    // /sys is read-only, /dev minimal.
    let out = sb.warren(&agent, &["run", "--rm", &root, "sh", "-c", "touch /sys/x"]);
    assert_ne!(code(&out), 0);
    let devs = sb.warren_ok(&agent, &["run", "--rm", &root, "ls", "/dev"]);
    for d in ["null", "zero", "urandom", "pts", "shm"] {
        assert!(devs.lines().any(|l| l == d), "/dev lacks {d}: {devs}");
    }
    assert!(!devs.lines().any(|l| l == "sda" || l == "vda"), "{devs}");

    // Zombies: an orphan that exits is reaped by the init.
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "zomb",
            &root,
            "sh",
            "-c",
            "sh -c 'sleep 0.2 &' ; exec sleep 1000",
        ],
    );
    std::thread::sleep(Duration::from_millis(800));
    let states = sb.warren_ok(
        &agent,
        &[
            "exec",
            "zomb",
            "sh",
            "-c",
            "cat /proc/[0-9]*/stat | awk '{print $3}'",
        ],
    );
    assert!(!states.contains('Z'), "zombie left: {states}");

    // cgroup limits: read the files of the container's cgroups.
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "lim",
            "--memory",
            "64m",
            "--pids-limit",
            "20",
            "--cpus",
            "0.5",
            &root,
            "sleep",
            "1000",
        ],
    );
    let pid = inspect(&sb, &agent, "lim")["State"]["Pid"]
        .as_i64()
        .unwrap();
    let cgroups = sb.sh(&format!("cat /proc/{pid}/cgroup"));
    let path_of = |controller: &str| -> PathBuf {
        let line = cgroups
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == controller))
            })
            .unwrap_or_else(|| panic!("no {controller} line in {cgroups}"));
        let rel = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    };
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        assert_eq!(
            read(path_of("memory").join("memory.limit_in_bytes")).trim(),
            "67108864"
        );
        assert_eq!(read(path_of("pids").join("pids.max")).trim(), "20");
        assert_eq!(
            read(path_of("cpu").join("cpu.cfs_quota_us")).trim(),
            "50000"
        );
        assert!(path_of("memory").to_string_lossy().contains("warren-"));
    } else {
        let unified = cgroups.lines().find(|l| l.starts_with("0::")).unwrap();
        let dir = Path::new("/sys/fs/cgroup").join(unified[3..].trim_start_matches('/'));
        assert_eq!(read(dir.join("memory.max")).trim(), "67108864");
        assert_eq!(read(dir.join("pids.max")).trim(), "20");
        assert_eq!(read(dir.join("cpu.max")).trim(), "50000 100000");
    }
    // The pids limit bites.
    let out = sb.warren(
        &agent,
        &[
            "exec",
            "lim",
            "sh",
            "-c",
            "for i in $(seq 30); do sleep 5 & done; wait",
        ],
    );
    assert!(
        err(&out).contains("fork") || err(&out).contains("Resource") || code(&out) != 0,
        "pids limit not enforced: {}",
        err(&out)
    );
    let memory_dir = path_of("memory");
    sb.warren_ok(&agent, &["rm", "-f", "zomb", "lim"]);
    eventually("the container's cgroups are removed", || {
        !memory_dir.exists()
    });
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let (sb, agent, root) = setup();
    let before = kernel_objects(&sb);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["run", "--rm", "/no/such/rootfs", "true"],
            3,
            "No such image",
        ),
        (
            &["run", "--rm", "no-such-image:1", "true"],
            3,
            "No such image",
        ),
        (
            &["run", "--rm", "-p", "80:eighty", &root, "true"],
            5,
            "80:eighty",
        ),
        (
            &["run", "--rm", "-p", "99999:80", &root, "true"],
            5,
            "99999",
        ),
        (
            &["run", "--rm", "--memory", "lots", &root, "true"],
            5,
            "memory",
        ),
        (
            &["run", "--rm", "--memory", "1k", &root, "true"],
            5,
            "Minimum memory",
        ),
        (&["run", "--rm", "--cpus", "fast", &root, "true"], 5, "cpus"),
        (
            &["run", "--rm", "--cpus", "1000", &root, "true"],
            5,
            "Range of CPUs",
        ),
        (
            &["run", "--rm", "--network", "nonet", &root, "true"],
            3,
            "nonet",
        ),
        (
            &["run", "--rm", "--name", "bad name", &root, "true"],
            5,
            "Invalid container name",
        ),
        (&["stop", "nosuch"], 3, "No such container"),
        (&["rm", "nosuch"], 3, "No such container"),
        (&["exec", "nosuch", "true"], 3, "No such container"),
    ];
    for (args, want, msg) in cases {
        let out = sb.warren(&agent, args);
        assert_eq!(code(&out), *want, "warren {args:?}: {}", err(&out));
        assert!(err(&out).contains(msg), "warren {args:?}: {}", err(&out));
    }
    assert_eq!(sb.warren_ok(&agent, &["ps", "-a", "-q"]).trim(), "");
    assert_eq!(kernel_objects(&sb), before);

    // A name in use: 409, and the first container is untouched.
    sb.warren_ok(
        &agent,
        &["run", "-d", "--name", "one", &root, "sleep", "1000"],
    );
    let out = sb.warren(&agent, &["run", "-d", "--name", "one", &root, "true"]);
    assert_eq!(code(&out), 4, "{}", err(&out));
    assert!(err(&out).contains("already in use"), "{}", err(&out));
    let reply = sb.api(
        &agent,
        "POST",
        "/containers/create?name=one",
        Some(&format!(r#"{{"Image":"{root}","Cmd":["true"]}}"#)),
    );
    assert_eq!(reply.status, 409, "{reply:?}");
    // rm of a running container without -f: 409.
    let reply = sb.api(&agent, "DELETE", "/containers/one", None);
    assert_eq!(reply.status, 409, "{reply:?}");
    assert!(
        reply.message().contains("container is running"),
        "{reply:?}"
    );
    assert_eq!(inspect(&sb, &agent, "one")["State"]["Status"], "running");
    // Stop of an unknown container: 404; exec in a stopped container: 409.
    assert_eq!(
        sb.api(&agent, "POST", "/containers/nosuch/stop", None)
            .status,
        404
    );
    sb.warren_ok(&agent, &["stop", "-t", "0", "one"]);
    let out = sb.warren(&agent, &["exec", "one", "true"]);
    assert_eq!(code(&out), 4, "{}", err(&out));
    assert!(err(&out).contains("not running"), "{}", err(&out));
    // A command that does not exist: docker's 127, the container exited, nothing else left.
    let out = sb.warren(&agent, &["run", "--rm", &root, "no-such-cmd"]);
    assert_eq!(code(&out), 127, "{}", err(&out));
    assert!(
        err(&out).contains("executable file not found"),
        "{}",
        err(&out)
    );
    sb.warren_ok(&agent, &["rm", "one"]);
    eventually("--rm of the failed container", || {
        sb.warren_ok(&agent, &["ps", "-a", "-q"]).trim().is_empty()
    });
    // Detached veth pairs are freed by a background task (the kernel takes ~20 ms per pair),
    // so the host's links return to their old state shortly after the request.
    eventually("the removed containers' veths are freed", || {
        kernel_objects(&sb) == before
    });
    assert_eq!(kernel_objects(&sb), before);
}

/// The real docker CLI against Warren: the commands of the runtime issue, with their results.
#[test]
fn docker_cli_runs_containers() {
    let (sb, agent, root) = setup();
    let tar = sb.dir.path().join("bb.tar");
    sb.ok(
        "tar",
        &["-C", &root, "-cf", &tar.display().to_string(), "."],
    );
    let docker = |args: &[&str]| {
        sb.cmd("docker")
            .env("DOCKER_CONFIG", sb.dir.path().join("docker-config"))
            .arg("-H")
            .arg(agent.host())
            .args(args)
            .output()
            .expect("run docker CLI")
    };
    let ok = |args: &[&str]| {
        let out = docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", err(&out));
        text(&out)
    };
    ok(&["import", &tar.display().to_string(), "bb:1"]);
    ok(&["network", "create", "lab"]);
    ok(&["network", "create", "other"]);
    ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "lab",
        "--network-alias",
        "www",
        "-p",
        "8080:80",
        "bb:1",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    assert!(ok(&["ps", "-a"]).contains("web"));
    ok(&["logs", "web"]);
    assert!(ok(&["exec", "web", "ip", "addr"]).contains("eth0"));
    ok(&["network", "connect", "other", "web"]);
    assert!(ok(&["exec", "web", "ip", "addr"]).contains("eth1"));
    let nets = ok(&[
        "inspect",
        "web",
        "--format",
        "{{range $k,$v := .NetworkSettings.Networks}}{{$k}} {{end}}",
    ]);
    assert_eq!(nets.trim(), "lab other");
    // The published port reaches httpd (404: it answers, there is no index page).
    let out = sb.run(
        "busybox",
        &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
    );
    assert!(err(&out).contains("404"), "{}", err(&out));
    assert_eq!(ok(&["run", "--rm", "bb:1", "echo", "hi"]), "hi\n");
    assert_eq!(
        code(&docker(&["run", "--rm", "bb:1", "sh", "-c", "exit 3"])),
        3
    );
    ok(&["stop", "web"]);
    ok(&["rm", "-f", "web"]);
    assert_eq!(ok(&["ps", "-aq"]).trim(), "");
}

/// As in Docker, a container's names resolve only while it runs: not once merely created, not
/// after it stops, again as soon as it starts (before its process: its own first lookup works),
/// and the same after an agent restart. Its address stays reserved meanwhile.
#[test]
fn names_resolve_only_while_the_container_runs() {
    let (sb, mut agent, root) = setup();
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.79.0.0/24", "names"],
    );
    let (r, net) = (root.as_str(), "names");
    sb.warren_ok(
        &agent,
        &[
            "create",
            "--name",
            "idle",
            "--network",
            net,
            "--network-alias",
            "quiet",
            r,
            "sleep",
            "1000",
        ],
    );
    sb.warren_ok(
        &agent,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            net,
            r,
            "sleep",
            "1000",
        ],
    );
    sb.netns_add("probe");
    sb.warren_ok(&agent, &["network", "connect", "names", "--netns", "probe"]);
    let lookup = |name: &str| {
        sb.sh(&format!(
            "ip netns exec probe dig @127.0.0.11 +time=2 +tries=1 +short {name}"
        ))
        .trim()
        .to_string()
    };
    let web = ip_of(&sb, &agent, "web", "names");
    let idle = ip_of(&sb, &agent, "idle", "names");
    assert!(!web.is_empty() && !idle.is_empty(), "both have addresses");
    assert_eq!(lookup("web"), web);
    assert_eq!(lookup("idle"), "", "a created container resolved");
    assert_eq!(lookup("quiet"), "", "a created container's alias resolved");

    sb.warren_ok(&agent, &["stop", "-t", "0", "web"]);
    eventually("a stopped container's name to go", || {
        lookup("web").is_empty()
    });
    assert_eq!(
        ip_of(&sb, &agent, "web", "names"),
        web,
        "address kept while stopped"
    );
    sb.warren_ok(&agent, &["start", "web"]);
    assert_eq!(lookup("web"), web, "not resolvable right after start");
    // idle's first lookup, the moment it starts, finds web.
    sb.warren_ok(&agent, &["start", "idle"]);
    assert_eq!(lookup("quiet"), idle);
    let inside = sb.warren_ok(&agent, &["exec", "idle", "nslookup", "web", "127.0.0.11"]);
    assert!(inside.contains(&web), "{inside}");

    // Stop and start back to back many times: the name is there after every start.
    for round in 0..5 {
        sb.warren_ok(&agent, &["stop", "-t", "0", "web"]);
        sb.warren_ok(&agent, &["start", "web"]);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            lookup("web"),
            web,
            "round {round}: name lost after a restart"
        );
    }

    // Across an agent crash and start: stopped stays unresolvable, running stays resolvable.
    sb.warren_ok(&agent, &["stop", "-t", "0", "web"]);
    agent.kill9();
    agent = sb.start_agent(&[]);
    assert_eq!(lookup("web"), "");
    assert_eq!(lookup("idle"), idle);
    sb.warren_ok(&agent, &["rm", "-f", "web", "idle"]);
}
