//! The hostile-container suite: from a default container every escape and privileged operation
//! of the confinement issue must fail, while ordinary work and ping still succeed;
//! `--privileged` and `--cap-drop ALL` behave as under Docker; every confinement option is
//! honoured (and shown by inspect) or refused with an error naming it.
//!
//! The probes themselves are `tests/confinement/probes.sh` (busybox sh) and the static
//! `probe` program built from `tests/confinement/probe.c`; `labs/11-confinement.sh` runs the
//! same probes and prints the table.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::{busybox_rootfs, Agent, Sandbox};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A busybox root filesystem with the probe program and script.
fn probe_rootfs(sb: &Sandbox) -> String {
    let root = busybox_rootfs(sb);
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/confinement");
    let probe = Path::new(&root).join("probe");
    if !probe.exists() {
        let out = std::process::Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&probe)
            .arg(here.join("probe.c"))
            .output()
            .expect("run cc (install gcc and libc6-dev)");
        assert!(out.status.success(), "cc -static probe.c: {}", err(&out));
        std::fs::copy(here.join("probes.sh"), Path::new(&root).join("probes.sh")).unwrap();
    }
    root
}

fn setup() -> (Sandbox, Agent, String) {
    let sb = Sandbox::with_pid_namespace();
    let agent = sb.start_agent(&[]);
    let root = probe_rootfs(&sb);
    (sb, agent, root)
}

/// Run the probes in a container made with `flags`: probe name → (allowed?, detail).
fn probes(
    sb: &Sandbox,
    agent: &Agent,
    root: &str,
    flags: &[&str],
    other_pid: &str,
) -> BTreeMap<String, (bool, String)> {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend(flags);
    args.extend([root, "sh", "/probes.sh", other_pid]);
    let out = sb.warren_ok(agent, &args);
    out.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '|');
            let (name, verdict, detail) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            Some((name.to_string(), (verdict == "allowed", detail.to_string())))
        })
        .collect()
}

/// Compare probe results with the expected verdicts; one message listing every mismatch.
fn check(mode: &str, got: &BTreeMap<String, (bool, String)>, allowed: &[&str], denied: &[&str]) {
    let mut problems = Vec::new();
    for (names, want) in [(allowed, true), (denied, false)] {
        for name in names {
            match got.get(*name) {
                Some((is, _)) if *is == want => {}
                Some((_, detail)) => problems.push(format!(
                    "{name}: expected {}, got the opposite ({detail})",
                    if want { "allowed" } else { "denied" }
                )),
                None => problems.push(format!("{name}: no result")),
            }
        }
    }
    let table: String = got
        .iter()
        .map(|(n, (a, d))| {
            format!(
                "  {n:<20} {:<8} {d}\n",
                if *a { "allowed" } else { "denied" }
            )
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{mode}: {} probe(s) wrong:\n{}\nall results:\n{table}",
        problems.len(),
        problems.join("\n")
    );
}

/// Everything the issue lists must fail from a default container.
const ESCAPES: &[&str] = &[
    "mount-tmpfs",
    "mount-cgroup-v1",
    "remount-proc-sys",
    "remount-sys",
    "write-core-pattern",
    "umount-masked",
    "open-block-device",
    "open-dev-mem",
    "ip-addr-add",
    "ip-link-mtu",
    "unshare-user",
    "unshare-net",
    "unshare-mount",
    "nsenter-pid1",
    "keyctl",
    "ptrace-other",
    "reboot",
    "load-module",
    "set-clock",
    "write-cgroup",
];

#[test]
fn default_containers_are_confined_and_privileged_ones_are_not() {
    let (sb, agent, root) = setup();
    sb.warren_ok(
        &agent,
        &["run", "-d", "--name", "other", &root, "sleep", "1000"],
    );
    let other = sb.get_json(&agent, "/containers/other/json")["State"]["Pid"].to_string();
    assert_ne!(other, "0");

    let default = probes(&sb, &agent, &root, &[], &other);
    check(
        "default",
        &default,
        &["ping-gateway", "ordinary-work"],
        ESCAPES,
    );

    let none = probes(&sb, &agent, &root, &["--cap-drop", "ALL"], &other);
    let mut denied = ESCAPES.to_vec();
    denied.extend(["ping-gateway", "ordinary-work"]);
    check("--cap-drop ALL", &none, &[], &denied);

    // --privileged: what Docker's --privileged allows (every probe stops short of changing
    // the host); another container's processes stay out of sight (PID namespaces).
    let privileged = probes(&sb, &agent, &root, &["--privileged"], &other);
    let allowed: Vec<&str> = ESCAPES
        .iter()
        .copied()
        .filter(|p| *p != "ptrace-other")
        .chain(["ping-gateway", "ordinary-work"])
        .collect();
    check("--privileged", &privileged, &allowed, &["ptrace-other"]);
}

#[test]
fn the_release_agent_escape_fails() {
    let (sb, agent, root) = setup();
    let marker = sb.dir.path().join("escaped");
    // The classic escape: a cgroup v1 hierarchy of one's own, a release_agent pointing at a
    // script in the container's upper dir, and an emptied child cgroup.
    let script = format!(
        "set -e; mkdir -p /tmp/cgrp; mount -t cgroup -o memory cgroup /tmp/cgrp; \
         mkdir -p /tmp/cgrp/x; echo 1 > /tmp/cgrp/x/notify_on_release; \
         upper=$(sed -n 's/.*upperdir=\\([^,]*\\).*/\\1/p' /proc/mounts); \
         echo \"$upper/cmd\" > /tmp/cgrp/release_agent; \
         printf '#!/bin/sh\\ntouch {}\\n' > /cmd; chmod +x /cmd; \
         sh -c 'echo $$ > /tmp/cgrp/x/cgroup.procs'",
        marker.display()
    );
    let out = sb.warren(&agent, &["run", "--rm", &root, "sh", "-c", &script]);
    assert!(!out.status.success(), "the escape script ran through");
    assert!(
        err(&out).contains("mount") || text(&out).contains("mount"),
        "stopped elsewhere than at mount: {}{}",
        text(&out),
        err(&out)
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!marker.exists(), "code ran on the host");
    // The overlay names its directories relative to the data root: no host path to aim at.
    let mounts = sb.warren_ok(&agent, &["run", "--rm", &root, "cat", "/proc/mounts"]);
    let data_root = agent_data_root(&sb);
    assert!(
        !mounts.contains(&data_root),
        "host path {data_root} visible:\n{mounts}"
    );
}

/// The host's first block device: its /dev path and "major:minor".
fn host_disk() -> (String, String) {
    let mut disks: Vec<_> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| Path::new("/dev").join(name).exists())
        .collect();
    disks.sort();
    let name = disks.first().expect("a block device in /dev");
    let numbers = std::fs::read_to_string(format!("/sys/block/{name}/dev")).unwrap();
    (format!("/dev/{name}"), numbers.trim().to_string())
}

fn agent_data_root(sb: &Sandbox) -> String {
    sb.dir.path().display().to_string()
}

fn status_field(sb: &Sandbox, agent: &Agent, flags: &[&str], field: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    let root = probe_rootfs(sb);
    args.extend([root.as_str(), "grep", field, "/proc/self/status"]);
    let out = sb.warren_ok(agent, &args);
    out.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn process_confinement_follows_the_options() {
    let (sb, agent, root) = setup();
    let cap = |flags: &[&str], field: &str| status_field(&sb, &agent, flags, field);
    // Docker's default set; nothing inheritable or ambient.
    assert_eq!(cap(&[], "CapEff:"), "00000000a80425fb");
    assert_eq!(cap(&[], "CapBnd:"), "00000000a80425fb");
    assert_eq!(cap(&[], "CapInh:"), "0000000000000000");
    assert_eq!(cap(&[], "CapAmb:"), "0000000000000000");
    assert_eq!(cap(&[], "Seccomp:"), "2");
    assert_eq!(cap(&[], "NoNewPrivs:"), "0");
    // A non-root user holds no capabilities, only the bounding set.
    assert_eq!(cap(&["-u", "65534"], "CapEff:"), "0000000000000000");
    assert_eq!(cap(&["-u", "65534"], "CapBnd:"), "00000000a80425fb");
    assert_eq!(cap(&["--cap-drop", "ALL"], "CapEff:"), "0000000000000000");
    assert_eq!(
        cap(&["--cap-drop", "all", "--cap-add", "net_raw"], "CapEff:"),
        "0000000000002000"
    );
    assert_eq!(
        cap(&["--cap-add", "CAP_NET_ADMIN"], "CapEff:"),
        "00000000a80435fb"
    );
    assert_eq!(cap(&["--cap-drop", "KILL"], "CapEff:"), "00000000a80425db");
    assert_eq!(
        cap(&["--security-opt", "seccomp=unconfined"], "Seccomp:"),
        "0"
    );
    assert_eq!(
        cap(&["--security-opt", "no-new-privileges"], "NoNewPrivs:"),
        "1"
    );
    assert_eq!(
        cap(&["--security-opt", "no-new-privileges:true"], "NoNewPrivs:"),
        "1"
    );
    assert_eq!(cap(&["--privileged"], "Seccomp:"), "0");
    let everything = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    assert_eq!(cap(&["--privileged"], "CapEff:"), everything);
    assert_eq!(cap(&["--cap-add", "ALL"], "CapEff:"), everything);

    // With CAP_NET_ADMIN the container may change its own interfaces.
    sb.warren_ok(
        &agent,
        &[
            "run",
            "--rm",
            "--cap-add",
            "NET_ADMIN",
            &root,
            "ip",
            "addr",
            "add",
            "192.0.2.9/32",
            "dev",
            "lo",
        ],
    );

    // Supplementary groups: --group-add by number and by name.
    let id = sb.warren_ok(
        &agent,
        &[
            "run",
            "--rm",
            "-u",
            "65534",
            "--group-add",
            "27",
            "--group-add",
            "nogroup",
            &root,
            "id",
        ],
    );
    assert!(id.contains("uid=65534") && id.contains("27"), "{id}");
    assert!(id.contains("65534(nogroup)"), "{id}");
    let out = sb.warren(
        &agent,
        &["run", "--rm", "--group-add", "nosuchgroup", &root, "true"],
    );
    assert!(
        err(&out).contains("Unable to find group nosuchgroup"),
        "{}",
        err(&out)
    );

    // A custom profile in Docker's format, read by the CLI and sent as JSON.
    let profile = sb.dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = sb.warren(
        &agent,
        &[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            &root,
            "mkdir",
            "/tmp/x",
        ],
    );
    assert!(!out.status.success());
    assert!(err(&out).contains("Permission denied") || text(&out).contains("Permission denied"));
    sb.warren_ok(&agent, &["run", "--rm", &root, "mkdir", "/tmp/x"]);

    // Resource limits.
    let limits = sb.warren_ok(
        &agent,
        &[
            "run",
            "--rm",
            "--ulimit",
            "nofile=100:200",
            &root,
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ],
    );
    assert_eq!(
        limits.split_whitespace().collect::<Vec<_>>(),
        ["100", "200"]
    );

    // Exec'd processes are confined like the container; exec --privileged gets everything.
    sb.warren_ok(
        &agent,
        &["run", "-d", "--name", "long", &root, "sleep", "1000"],
    );
    let exec_status = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend(extra);
        args.extend(["long", "grep", "-E", "CapEff|Seccomp:", "/proc/self/status"]);
        sb.warren_ok(&agent, &args)
    };
    let plain = exec_status(&[]);
    assert!(
        plain.contains("00000000a80425fb") && plain.contains("Seccomp:\t2"),
        "{plain}"
    );
    assert!(exec_status(&["--privileged"]).contains(&everything));
    assert!(exec_status(&["-u", "65534"]).contains("CapEff:\t0000000000000000"));
}

#[test]
fn filesystem_device_and_namespace_options() {
    let (sb, agent, root) = setup();
    let run = |flags: &[&str], script: &str| {
        let mut args = vec!["run", "--rm"];
        args.extend(flags);
        args.extend([root.as_str(), "sh", "-c", script]);
        sb.warren(&agent, &args)
    };
    // --read-only: the root and /tmp refuse writes, /dev/shm does not.
    let out = run(
        &["--read-only"],
        "touch /x; touch /tmp/x; touch /dev/shm/x && echo shm-ok",
    );
    let all = format!("{}{}", text(&out), err(&out));
    assert_eq!(all.matches("Read-only file system").count(), 2, "{all}");
    assert!(all.contains("shm-ok"), "{all}");

    // The cgroup namespace: private by default, the host's on request.
    let private = text(&run(&[], "cat /proc/self/cgroup"));
    assert!(private.lines().all(|l| l.ends_with(":/")), "{private}");
    let mounts = text(&run(&[], "grep cgroup /proc/mounts"));
    assert!(
        mounts.contains("/sys/fs/cgroup") && mounts.contains(" ro,"),
        "{mounts}"
    );
    let host = text(&run(&["--cgroupns", "host"], "cat /proc/self/cgroup"));
    assert!(host.contains("/warren/"), "{host}");
    // Limits are visible inside, read-only.
    let pids = text(&run(
        &["--pids-limit", "50"],
        "cat /sys/fs/cgroup/pids/pids.max",
    ));
    assert_eq!(pids.trim(), "50");

    // Namespaced sysctls.
    let fwd = text(&run(
        &["--sysctl", "net.ipv4.ip_forward=1"],
        "cat /proc/sys/net/ipv4/ip_forward",
    ));
    assert_eq!(fwd.trim(), "1");
    let shm = text(&run(
        &["--sysctl", "kernel.shmmax=1000"],
        "cat /proc/sys/kernel/shmmax",
    ));
    assert_eq!(shm.trim(), "1000");

    // Devices: --device gives the node and read access only when asked so (the host's first
    // disk: opened, never read or written); --device-cgroup-rule opens a node to mknod'ed use.
    let (disk, numbers) = host_disk();
    let device = format!("{disk}:/dev/xvda:r");
    let out = run(
        &["--device", &device],
        "ls -l /dev/xvda; /probe open-r /dev/xvda; /probe open-w /dev/xvda",
    );
    let lines: Vec<String> = text(&out).lines().map(str::to_string).collect();
    assert!(
        lines.len() == 3 && lines[0].starts_with("b"),
        "{lines:?} {}",
        err(&out)
    );
    assert_eq!(lines[1], "allowed", "{lines:?}");
    assert_eq!(lines[2], "denied (EPERM)", "{lines:?}");
    let (major, minor) = numbers.split_once(':').unwrap();
    let mknod = format!("mknod /tmp/d b {major} {minor} && /probe open-r /tmp/d");
    assert_eq!(text(&run(&[], &mknod)).trim(), "denied (EPERM)");
    let rule = format!("b {numbers} r");
    assert_eq!(
        text(&run(&["--device-cgroup-rule", &rule], &mknod)).trim(),
        "allowed"
    );

    // /proc/1 shows nothing of the host: no path to the agent's binary, no host arguments or
    // environment.
    let out = text(&run(
        &[],
        "readlink /proc/1/exe; tr '\\0' ' ' </proc/1/cmdline; echo; wc -c </proc/1/environ",
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["/", "warren-shim ", "0"], "{out}");
}

#[test]
fn unsupported_or_bad_options_are_refused_and_leave_nothing() {
    let (sb, agent, root) = setup();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cap-add", "FOO"],
            "invalid CapAdd: unknown capability: \"CAP_FOO\"",
        ),
        (
            &["--cap-drop", "BAR"],
            "invalid CapDrop: unknown capability: \"CAP_BAR\"",
        ),
        (
            &["--security-opt", "apparmor=docker-default"],
            "apparmor=docker-default",
        ),
        (&["--security-opt", "label=type:spc_t"], "label=type:spc_t"),
        (
            &["--security-opt", "bogus"],
            "invalid --security-opt 1: \"bogus\"",
        ),
        (
            &["--security-opt", "no-new-privileges=maybe"],
            "no-new-privileges=maybe",
        ),
        (
            &["--sysctl", "kernel.hostname=x"],
            "sysctl \"kernel.hostname\" is not allowed",
        ),
        (
            &["--sysctl", "vm.swappiness=1"],
            "sysctl \"vm.swappiness\" is not allowed",
        ),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "host network",
        ),
        (
            &["--ulimit", "nofile=300:200"],
            "soft limit must be less than or equal to hard limit",
        ),
        (&["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (&["--device", "/dev/nonexistent"], "/dev/nonexistent"),
        (&["--device-cgroup-rule", "x 1:1 rwm"], "x 1:1 rwm"),
        (&["--cgroupns", "bogus"], "invalid cgroup namespace mode"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["create", "--name", "bad"];
        args.extend(*flags);
        args.extend([root.as_str(), "true"]);
        let out = sb.warren(&agent, &args);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{flags:?} should be refused: {}",
            err(&out)
        );
        assert!(err(&out).contains(message), "{flags:?}: {}", err(&out));
        let ps = sb.warren_ok(&agent, &["ps", "-a", "-q"]);
        assert!(
            ps.trim().is_empty(),
            "{flags:?} left a container behind: {ps}"
        );
    }
    // Through the API: user namespaces and a malformed seccomp profile.
    for (host_config, message) in [
        (r#"{"UsernsMode":"private"}"#, "user namespaces"),
        (
            r#"{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_BOGUS\"}"]}"#,
            "seccomp",
        ),
        (r#"{"MaskedPaths":["relative/path"]}"#, "relative/path"),
    ] {
        let body = format!(r#"{{"Image":"{root}","Cmd":["true"],"HostConfig":{host_config}}}"#);
        let reply = sb.api(&agent, "POST", "/containers/create", Some(&body));
        assert_eq!(reply.status, 400, "{host_config}: {}", reply.body);
        assert!(
            reply.message().contains(message),
            "{host_config}: {}",
            reply.body
        );
    }
    assert!(sb.warren_ok(&agent, &["ps", "-a", "-q"]).trim().is_empty());
}

#[test]
fn docker_cli_sets_and_inspects_the_security_options() {
    let (sb, agent, root) = setup();
    let tar = sb.dir.path().join("bb.tar");
    sb.ok(
        "tar",
        &["-C", &root, "-cf", &tar.display().to_string(), "."],
    );
    let ok = |args: &[&str]| {
        let out = sb.docker(&agent, args);
        assert!(out.status.success(), "docker {args:?}: {}", err(&out));
        text(&out)
    };
    ok(&["import", &tar.display().to_string(), "bb:1"]);
    assert_eq!(
        ok(&[
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "bb:1",
            "grep",
            "CapEff",
            "/proc/self/status"
        ])
        .trim(),
        "CapEff:\t0000000000000000"
    );
    ok(&[
        "create",
        "--name",
        "sec",
        "--cap-add",
        "net_admin",
        "--cap-drop",
        "chown",
        "--privileged",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--group-add",
        "27",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--ulimit",
        "nofile=100:200",
        "--cgroupns",
        "host",
        "bb:1",
        "true",
    ]);
    let host: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "-f", "{{json .HostConfig}}", "sec"])).unwrap();
    assert_eq!(host["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
    assert_eq!(host["CapDrop"], serde_json::json!(["CAP_CHOWN"]));
    assert_eq!(host["Privileged"], true);
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(host["ReadonlyRootfs"], true);
    assert_eq!(host["GroupAdd"], serde_json::json!(["27"]));
    assert_eq!(host["Sysctls"]["net.ipv4.ip_forward"], "1");
    assert_eq!(host["Ulimits"][0]["Soft"], 100);
    assert_eq!(host["CgroupnsMode"], "host");
    let plain: serde_json::Value = serde_json::from_str(&ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig}}",
        ok(&["create", "bb:1", "true"]).trim(),
    ]))
    .unwrap();
    assert_eq!(plain["CapAdd"], serde_json::Value::Null);
    assert_eq!(plain["Privileged"], false);
    assert_eq!(plain["CgroupnsMode"], "private");
    assert!(plain["MaskedPaths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/proc/kcore"));
    // The CLI's own checks aside, the agent refuses what it cannot do, naming it.
    let out = sb.docker(
        &agent,
        &[
            "run",
            "--rm",
            "--security-opt",
            "apparmor=foo",
            "bb:1",
            "true",
        ],
    );
    assert!(!out.status.success());
    assert!(err(&out).contains("apparmor=foo"), "{}", err(&out));
}
