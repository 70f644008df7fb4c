//! Root integration tests for `warren netns …` and the netns/netlink library, each inside its
//! own sandbox (private netns + mount ns with a private /run/netns), so nothing touches the
//! root namespace and tests run in parallel.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{bin, Sandbox};

fn warren(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd(bin("warren"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn warren")
}

/// Run warren in the sandbox and insist it succeeds; returns stdout.
fn warren_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = warren(sb, args);
    assert!(
        out.status.success(),
        "warren {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Named namespaces, links and addresses of the sandbox and of every namespace in it, as
/// `ip` sees them: names only, so link state changes do not count, and without IPv6
/// link-local addresses, which the kernel adds and renews on its own schedule.
fn kernel_state(sb: &Sandbox) -> String {
    sb.sh(
        "addrs() { ip \"$@\" -o addr | awk '$4 !~ /^fe80:/ {print $2,$4}'; }; \
         ip netns list | sort; echo ==; ip -o link | awk '{print $2}'; addrs; \
         for n in $(ip netns list | awk '{print $1}'); do echo \"== $n\"; \
         ip -n \"$n\" -o link | awk '{print $2}'; addrs -n \"$n\"; done",
    )
}

/// Exit codes of the CLI (ErrorKind::exit_code).
const NOT_FOUND: i32 = 3;
const CONFLICT: i32 = 4;
const INVALID: i32 = 5;

/// A bad request: exits with `code`, prints one `warren: …` line containing `needle`, and
/// leaves namespaces, links and addresses exactly as they were.
fn expect_failure(sb: &Sandbox, args: &[&str], code: i32, needle: &str) {
    let before = kernel_state(sb);
    let out = warren(sb, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "warren {args:?}: wrong exit status; stderr: {stderr}"
    );
    let line = stderr.trim_end();
    assert!(
        line.starts_with("warren: ") && !line.contains('\n'),
        "warren {args:?}: expected one 'warren: …' line, got {stderr:?}"
    );
    assert!(
        line.contains(needle),
        "warren {args:?}: {line:?} does not mention {needle:?}"
    );
    assert_eq!(
        kernel_state(sb),
        before,
        "warren {args:?} changed kernel state although it failed"
    );
}

fn json_list(sb: &Sandbox) -> Vec<serde_json::Value> {
    let out = warren_ok(sb, &["netns", "ls", "--format", "json"]);
    serde_json::from_str(&out).expect("ls --format json prints a JSON array")
}

/// Kills a process this test started, even when an assertion fails first.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn add_list_delete_round_trip() {
    let sb = Sandbox::new();
    warren_ok(&sb, &["netns", "add", "red"]);
    warren_ok(&sb, &["netns", "add", "blue"]);
    let table = warren_ok(&sb, &["netns", "ls"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{table}");
    let names: Vec<_> = lines
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["blue", "red"]);
    let list = json_list(&sb);
    assert_eq!(list[1]["name"], "red");
    assert_eq!(list[1]["path"], "/run/netns/red");
    // The namespace is real: it has its own lo, down.
    assert!(sb.sh("ip -n red -o link").contains("lo:"));

    warren_ok(&sb, &["netns", "del", "red", "blue"]);
    assert!(json_list(&sb).is_empty());
    assert_eq!(sb.sh("ip netns list"), "");
}

#[test]
fn namespaces_are_shared_with_ip_netns() {
    let sb = Sandbox::new();
    sb.ok("ip", &["netns", "add", "from-ip"]);
    warren_ok(&sb, &["netns", "add", "from-warren"]);
    let table = warren_ok(&sb, &["netns", "ls"]);
    assert!(table.contains("from-ip"), "{table}");
    let ip_list = sb.sh("ip netns list");
    assert!(ip_list.contains("from-warren"), "{ip_list}");
    // iproute2 can enter and delete ours, and we can delete theirs.
    assert!(sb
        .sh("ip netns exec from-warren ip -o link")
        .contains("lo:"));
    sb.ok("ip", &["netns", "del", "from-warren"]);
    warren_ok(&sb, &["netns", "del", "from-ip"]);
    assert_eq!(sb.sh("ip netns list"), "");
}

#[test]
fn list_shows_netns_id_and_processes() {
    let sb = Sandbox::new();
    warren_ok(&sb, &["netns", "add", "busy"]);
    warren_ok(&sb, &["netns", "add", "idle"]);
    sb.ok("ip", &["netns", "set", "busy", "7"]);
    // exec replaces warren itself, so the child's pid is the sleeper's.
    let sleeper = Reap(
        sb.cmd(bin("warren"))
            .args(["netns", "exec", "busy", "--", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleeper"),
    );
    let pid = u64::from(sleeper.0.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let busy = loop {
        let list = json_list(&sb);
        let busy = list.into_iter().find(|n| n["name"] == "busy").unwrap();
        if busy["pids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_u64() == Some(pid))
            || std::time::Instant::now() > deadline
        {
            break busy;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(busy["id"], 7);
    assert!(
        busy["pids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_u64() == Some(pid)),
        "pid {pid} not listed: {busy}"
    );
    let table = warren_ok(&sb, &["netns", "ls"]);
    let idle = table.lines().find(|l| l.starts_with("idle")).unwrap();
    assert_eq!(
        idle.split_whitespace().collect::<Vec<_>>(),
        ["idle", "-", "-"]
    );
    let busy_line = table.lines().find(|l| l.starts_with("busy")).unwrap();
    assert!(
        busy_line.contains(" 7 ") && busy_line.contains(&pid.to_string()),
        "{table}"
    );
}

#[test]
fn veth_connects_two_namespaces() {
    let sb = Sandbox::new();
    warren_ok(&sb, &["netns", "add", "a"]);
    warren_ok(&sb, &["netns", "add", "b"]);
    warren_ok(
        &sb,
        &[
            "netns",
            "veth",
            "a:e0",
            "b:e1",
            "--addr",
            "10.200.1.1/24",
            "--peer-addr",
            "10.200.1.2/24",
        ],
    );
    assert!(sb.sh("ip -n b -br addr show e1").contains("10.200.1.2/24"));
    assert!(sb.sh("ip -n a -br addr show e0").contains("10.200.1.1/24"));
    for (ns, link) in [("a", "e0"), ("b", "e1"), ("a", "lo"), ("b", "lo")] {
        let flags = sb.sh(&format!("ip -n {ns} -o link show {link}"));
        assert!(flags.contains(",UP"), "{link} in {ns} is not up: {flags}");
    }
    sb.sh("ip netns exec a ping -c 1 -W 2 10.200.1.2");
    sb.sh("ip netns exec b ping -c 1 -W 2 10.200.1.1");
    // Nothing landed in the sandbox's own namespace.
    assert_eq!(sb.sh("ip -o link | awk '{print $2}'"), "lo:\n");
}

#[test]
fn veth_to_the_host_namespace_with_default_names_and_mtu() {
    let sb = Sandbox::new();
    warren_ok(&sb, &["netns", "add", "c1"]);
    warren_ok(
        &sb,
        &[
            "netns",
            "veth",
            "-",
            "c1",
            "--addr",
            "10.200.2.1/24",
            "--peer-addr",
            "10.200.2.2/24",
            "--mtu",
            "1400",
        ],
    );
    assert!(sb.sh("ip -o link show veth0").contains("mtu 1400"));
    assert!(sb.sh("ip -n c1 -o link show veth1").contains("mtu 1400"));
    sb.sh("ping -c 1 -W 2 10.200.2.2");
    // `addr` and `up` work on an existing link / namespace and are idempotent.
    warren_ok(&sb, &["netns", "addr", "c1", "veth1", "fd00:200::2/64"]);
    warren_ok(&sb, &["netns", "addr", "c1", "veth1", "fd00:200::2/64"]);
    warren_ok(&sb, &["netns", "up", "c1"]);
    assert!(sb
        .sh("ip -n c1 -br addr show veth1")
        .contains("fd00:200::2/64"));
}

#[test]
fn exec_runs_inside_with_its_own_sys() {
    let sb = Sandbox::new();
    warren_ok(&sb, &["netns", "add", "inner"]);
    warren_ok(&sb, &["netns", "veth", "inner:wa0", "host:hb0"]);
    let sys = warren_ok(
        &sb,
        &["netns", "exec", "inner", "--", "ls", "/sys/class/net"],
    );
    let mut devices: Vec<_> = sys.split_whitespace().collect();
    devices.sort_unstable();
    assert_eq!(
        devices,
        ["lo", "wa0"],
        "/sys inside shows the namespace's devices"
    );
    let links = warren_ok(&sb, &["netns", "exec", "inner", "ip", "-br", "link"]);
    assert!(links.contains("wa0") && !links.contains("hb0"), "{links}");
    // The command's exit status becomes warren's.
    let out = warren(&sb, &["netns", "exec", "inner", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    // An absolute namespace path works too.
    let by_path = warren_ok(
        &sb,
        &["netns", "exec", "/run/netns/inner", "ls", "/sys/class/net"],
    );
    assert!(by_path.contains("wa0"));
}

#[test]
fn bad_input_fails_cleanly_and_changes_nothing() {
    let sb = Sandbox::new();
    warren_ok(&sb, &["netns", "add", "a"]);
    warren_ok(&sb, &["netns", "add", "b"]);
    warren_ok(&sb, &["netns", "veth", "a:e0", "b:e1"]);
    let long_name = "n".repeat(256);

    expect_failure(&sb, &["netns", "add", ""], INVALID, "must not be empty");
    expect_failure(
        &sb,
        &["netns", "add", "x/y"],
        INVALID,
        "must not contain '/'",
    );
    expect_failure(
        &sb,
        &["netns", "add", ".."],
        INVALID,
        "invalid network namespace name",
    );
    expect_failure(
        &sb,
        &["netns", "add", &long_name],
        INVALID,
        "longer than 255 bytes",
    );
    expect_failure(&sb, &["netns", "add", "a"], CONFLICT, "already exists");
    expect_failure(&sb, &["netns", "del", "ghost"], NOT_FOUND, "not found");
    // All names are checked first: "a" survives a typo later in the list.
    expect_failure(&sb, &["netns", "del", "a", "ghost"], NOT_FOUND, "ghost");
    expect_failure(
        &sb,
        &["netns", "veth", "a:sixteen-bytes-xx", "b"],
        INVALID,
        "longer than 15 bytes",
    );
    expect_failure(
        &sb,
        &["netns", "veth", "a:x", "b:y", "--addr", "10.0.0.300/24"],
        INVALID,
        "invalid CIDR",
    );
    expect_failure(
        &sb,
        &["netns", "veth", "a:x", "b:y", "--peer-addr", "10.0.0.1"],
        INVALID,
        "invalid CIDR",
    );
    expect_failure(
        &sb,
        &["netns", "veth", "a:x", "ghost:y"],
        NOT_FOUND,
        "not found",
    );
    expect_failure(
        &sb,
        &["netns", "veth", "a:x", "a:x"],
        INVALID,
        "same namespace",
    );
    // The peer name is taken in b: refused before anything is created in a.
    expect_failure(
        &sb,
        &["netns", "veth", "a:fresh", "b:e1"],
        CONFLICT,
        "e1 already exists",
    );
    expect_failure(
        &sb,
        &["netns", "addr", "a", "e0", "not-a-cidr"],
        INVALID,
        "invalid CIDR",
    );
    expect_failure(
        &sb,
        &["netns", "addr", "a", "nosuch", "10.0.0.1/24"],
        NOT_FOUND,
        "nosuch not found",
    );
    expect_failure(
        &sb,
        &["netns", "exec", "ghost", "--", "true"],
        NOT_FOUND,
        "not found",
    );
    expect_failure(&sb, &["netns", "up", "ghost"], NOT_FOUND, "not found");
}

#[test]
fn lab_01_passes_in_a_sandbox() {
    let sb = Sandbox::new();
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/01-netns-veth.sh");
    let out = sb
        .cmd("bash")
        .arg(&lab)
        .env("WARREN", bin("warren"))
        .stdin(Stdio::null())
        .output()
        .expect("run lab 01");
    assert!(
        out.status.success(),
        "lab 01 failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.sh("ip netns list"), "", "lab 01 left namespaces behind");
}

/// The library API, driven from this (root-namespace) test process but acting only inside
/// sandboxes: sockets and sysctls are bound to the sandbox by path, never by moving a thread
/// of ours.
#[test]
fn library_acts_only_inside_the_given_namespace() {
    use warren::netlink::{Netlink, VethSpec};
    let host = Sandbox::new();
    let peer = Sandbox::new();
    let host_ns: PathBuf = host.netns_path();
    let peer_ns: PathBuf = peer.netns_path();

    warren::netns::sysctl_set(Some(&host_ns), "net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(host.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        warren::netns::sysctl_get(Some(&peer_ns), "net.ipv4.ip_forward").unwrap(),
        "0"
    );
    // Sysctls are opened through a private procfs mount that is replaced every few dozen
    // opens (src/netns/sysctl.rs); what an open shows must follow the opener's namespace
    // across those replacements.
    for _ in 0..100 {
        for (ns, want) in [(&host_ns, "1"), (&peer_ns, "0")] {
            assert_eq!(
                warren::netns::sysctl_get(Some(ns), "net.ipv4.ip_forward").unwrap(),
                want
            );
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let nl = Netlink::in_netns(&host_ns).await.unwrap();
        let br = nl.ensure_bridge("br-test", Some(1450), true).await.unwrap();
        assert_eq!(
            nl.ensure_bridge("br-test", Some(1450), true).await.unwrap(),
            br
        );
        let bridge_details = || -> serde_json::Value {
            serde_json::from_str(&host.sh("ip -j -d link show br-test")).unwrap()
        };
        let before = bridge_details();
        assert_eq!(before[0]["linkinfo"]["info_data"]["mcast_snooping"], 0);

        let peer_file = std::fs::File::open(&peer_ns).unwrap();
        let spec = VethSpec {
            peer_netns: Some(std::os::fd::AsFd::as_fd(&peer_file)),
            master: Some(br),
            mtu: Some(1450),
            peer_mac: Some([0x02, 0, 0, 0, 0, 0x42]),
            ..VethSpec::new("vh-test", "eth0")
        };
        let vh = nl.create_veth(&spec).await.unwrap();
        let dup = nl.create_veth(&spec).await.unwrap_err();
        assert_eq!(warren::HasKind::kind(&dup), warren::ErrorKind::Conflict);
        assert_eq!(dup.errno(), Some(nix::errno::Errno::EEXIST));

        let links = nl.links().await.unwrap();
        let vh_info = links.iter().find(|l| l.index == vh).unwrap();
        assert_eq!(vh_info.master, Some(br));
        assert!(vh_info.up);
        assert_eq!(vh_info.kind.as_deref(), Some("veth"));
        let br_info = links.iter().find(|l| l.index == br).unwrap();
        assert_eq!(br_info.kind.as_deref(), Some("bridge"));
        // The bridge keeps a MAC of its own (the gateway's) whatever its ports' MACs are.
        let own_mac = before[0]["address"].as_str().unwrap().to_owned();
        assert!(own_mac.starts_with("02:42:"), "{own_mac}");
        assert_eq!(bridge_details()[0]["address"], own_mac.as_str());
        nl.set_bridge_port_hairpin(vh, true).await.unwrap();

        let subnet: ipnetwork::IpNetwork = "10.201.0.1/24".parse().unwrap();
        nl.add_address(br, subnet).await.unwrap();
        nl.add_address(br, subnet).await.unwrap();
        let far: ipnetwork::IpNetwork = "10.202.0.0/16".parse().unwrap();
        nl.add_route(far, Some("10.201.0.9".parse().unwrap()), None)
            .await
            .unwrap();
        nl.add_route(far, Some("10.201.0.9".parse().unwrap()), None)
            .await
            .unwrap();
        let routes = nl.routes().await.unwrap();
        assert!(routes.contains(&far), "{routes:?}");
        assert!(
            routes.contains(&"10.201.0.0/24".parse().unwrap()),
            "{routes:?}"
        );
        assert!(nl.del_address(br, subnet).await.unwrap());
        assert!(!nl.del_address(br, subnet).await.unwrap());

        let pl = Netlink::in_netns(&peer_ns).await.unwrap();
        let eth0 = pl
            .link("eth0")
            .await
            .unwrap()
            .expect("peer born in its namespace");
        assert_eq!(eth0.mac, Some([0x02, 0, 0, 0, 0, 0x42]));
        assert_eq!(eth0.mtu, 1450);

        assert!(nl.delete_link("vh-test").await.unwrap());
        assert!(!nl.delete_link("vh-test").await.unwrap());
        assert_eq!(pl.link_index("eth0").await.unwrap(), None);
    });
    // The root namespace never saw any of it.
    let root_links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let root_links = String::from_utf8_lossy(&root_links.stdout);
    assert!(!root_links.contains("br-test") && !root_links.contains("vh-test"));
}
