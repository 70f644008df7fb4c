//! macvlan networks end to end (root, each test in its own sandbox): bridge and private modes
//! against a "LAN" namespace, validation that changes nothing, cleanup on `network rm`,
//! internal networks without a parent, 802.1Q parents, and the docker CLI.

mod common;

use std::process::Output;

use common::{bin, Agent, Sandbox};

const LAN_IP: &str = "192.168.77.1";
const SUBNET: &str = "192.168.77.0/24";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Start the agent and wait until it serves requests (it listens before it has reconciled,
/// e.g. made its default bridge).
fn start(sb: &Sandbox) -> Agent {
    let agent = sb.start_agent(&[]);
    warren_ok(sb, &agent, &["network", "ls"]);
    agent
}

fn warren(sb: &Sandbox, agent: &Agent, args: &[&str]) -> Output {
    let host = agent.host();
    let mut all = vec!["-H", host.as_str()];
    all.extend_from_slice(args);
    sb.run(bin("warren"), &all)
}

fn warren_ok(sb: &Sandbox, agent: &Agent, args: &[&str]) -> String {
    let out = warren(sb, agent, args);
    assert!(
        out.status.success(),
        "warren {args:?} failed: {}\nagent log:\n{}",
        text(&out),
        agent.log_text()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A LAN namespace `lan` with a host at 192.168.77.1/24, cabled by a veth to `parent` (up)
/// in the sandbox's host namespace.
fn lan(sb: &Sandbox, parent: &str) {
    sb.sh(&format!(
        "ip netns add lan && ip link add {parent} type veth peer name lan0 netns lan && \
         ip link set {parent} up && ip -n lan addr add {LAN_IP}/24 dev lan0 && \
         ip -n lan link set lan0 up && ip -n lan link set lo up"
    ));
}

fn pings(sb: &Sandbox, ns: &str, ip: &str) -> bool {
    sb.run(
        "ip",
        &["netns", "exec", ns, "ping", "-c", "1", "-W", "1", ip],
    )
    .status
    .success()
}

fn ipv4_of(sb: &Sandbox, ns: &str) -> String {
    sb.sh(&format!(
        "ip -n {ns} -4 -o addr show eth0 | awk '{{print $4}}' | cut -d/ -f1"
    ))
    .trim()
    .to_string()
}

fn mac_of(sb: &Sandbox, ns: &str) -> String {
    sb.sh(&format!(
        "ip -n {ns} -o link show eth0 | grep -oE 'link/ether [0-9a-f:]+' | cut -d' ' -f2"
    ))
    .trim()
    .to_string()
}

/// Everything a refused request must leave unchanged: host links, every namespace's links
/// and routes, and the network list.
fn snapshot(sb: &Sandbox, agent: &Agent) -> String {
    // Link names, IPv4 addresses and routes; not operstate or IPv6 link-local addresses,
    // which the kernel settles asynchronously after a link comes up.
    let kernel = sb.sh(
        "state() { ip $1 -o link | awk -F': ' '{sub(/@.*/, \"\", $2); print $2}' | sort; \
                   ip $1 -4 -o addr | awk '{print $2, $4}' | sort; ip $1 route; }; \
         state; for ns in $(ip netns list | awk '{print $1}' | sort); do \
         echo \"== $ns\"; state \"-n $ns\"; done",
    );
    let networks = warren_ok(sb, agent, &["network", "ls", "-q", "--no-trunc"]);
    format!("{kernel}\n-- networks\n{networks}")
}

fn create_lan_network(sb: &Sandbox, agent: &Agent, parent: &str, mode: &str) {
    let parent_opt = format!("parent={parent}");
    let mode_opt = format!("macvlan_mode={mode}");
    warren_ok(
        sb,
        agent,
        &[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            SUBNET,
            "--gateway",
            LAN_IP,
            "-o",
            &parent_opt,
            "-o",
            &mode_opt,
            "lan",
        ],
    );
}

#[test]
fn bridge_mode_reaches_the_lan_and_siblings_directly() {
    let sb = Sandbox::new();
    let agent = start(&sb);
    lan(&sb, "par0");
    let host_links = sb.sh("ip -br link | awk '{print $1}' | sort");
    create_lan_network(&sb, &agent, "par0", "bridge");
    sb.sh("ip netns add c1 && ip netns add c2");
    for ns in ["c1", "c2"] {
        warren_ok(&sb, &agent, &["network", "connect", "lan", "--netns", ns]);
        let link = sb.sh(&format!("ip -n {ns} -d link show eth0"));
        assert!(link.contains("macvlan mode bridge"), "{link}");
        let routes = sb.sh(&format!("ip -n {ns} route"));
        assert!(
            routes.contains(&format!("default via {LAN_IP} dev eth0")),
            "{routes}"
        );
    }
    assert_eq!(
        sb.sh("ip -br link | awk '{print $1}' | sort"),
        host_links,
        "endpoints are born inside their namespaces: no link in the host namespace"
    );
    let (ip1, ip2) = (ipv4_of(&sb, "c1"), ipv4_of(&sb, "c2"));
    assert!(pings(&sb, "c1", LAN_IP) && pings(&sb, "c2", LAN_IP));
    assert!(pings(&sb, "c1", &ip2) && pings(&sb, "c2", &ip1));
    let neigh = sb.sh("ip -n lan neigh show dev lan0");
    for ns in ["c1", "c2"] {
        let mac = mac_of(&sb, ns);
        assert!(
            neigh.contains(&format!("lladdr {mac}")),
            "{ns}'s MAC {mac} not in {neigh}"
        );
    }
    // The record keeps the MAC Warren chose, and inspect shows the driver.
    let inspect = warren_ok(&sb, &agent, &["network", "inspect", "lan"]);
    assert!(inspect.contains("\"Driver\": \"macvlan\""), "{inspect}");
    assert!(inspect.contains(&mac_of(&sb, "c1")), "{inspect}");
}

#[test]
fn private_mode_blocks_siblings_but_not_the_lan() {
    let sb = Sandbox::new();
    let agent = start(&sb);
    lan(&sb, "par0");
    create_lan_network(&sb, &agent, "par0", "private");
    sb.sh("ip netns add c1 && ip netns add c2");
    for ns in ["c1", "c2"] {
        warren_ok(&sb, &agent, &["network", "connect", "lan", "--netns", ns]);
    }
    let link = sb.sh("ip -n c1 -d link show eth0");
    assert!(link.contains("macvlan mode private"), "{link}");
    assert!(pings(&sb, "c1", LAN_IP) && pings(&sb, "c2", LAN_IP));
    let ip2 = ipv4_of(&sb, "c2");
    assert!(!pings(&sb, "c1", &ip2), "private mode let c1 reach c2");
}

/// Run a request that must fail: check exit code and message, and that nothing changed.
#[track_caller]
fn refused(sb: &Sandbox, agent: &Agent, args: &[&str], code: i32, message: &str) {
    let before = snapshot(sb, agent);
    let out = warren(sb, agent, args);
    let said = text(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "warren {args:?}: wrong exit code: {said}"
    );
    assert!(
        said.contains(message),
        "warren {args:?}: {said:?} lacks {message:?}"
    );
    assert_eq!(snapshot(sb, agent), before, "warren {args:?} changed state");
}

#[test]
fn invalid_requests_are_refused_with_clear_errors_and_change_nothing() {
    let sb = Sandbox::new();
    let agent = start(&sb);
    lan(&sb, "par0");
    sb.sh("ip link add par1 type veth peer name par1x && ip link add par2 type veth peer name par2x && ip link set par2 up && ip link set par2x up");
    let create = |parent: &str, subnet: &str, extra: &[&str], name: &str| -> Vec<String> {
        let mut v: Vec<String> = ["network", "create", "-d", "macvlan", "--subnet", subnet]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !parent.is_empty() {
            v.push("-o".into());
            v.push(format!("parent={parent}"));
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(name.into());
        v
    };
    let check = |args: Vec<String>, code: i32, message: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&sb, &agent, &args, code, message);
    };
    // Parent problems, found before anything is made.
    check(
        create("nosuch0", SUBNET, &[], "n1"),
        3,
        "parent interface nosuch0 does not exist",
    );
    check(
        create("nosuch0.10", SUBNET, &[], "n1"),
        3,
        "parent interface nosuch0 does not exist",
    );
    check(
        create("par1", SUBNET, &[], "n1"),
        4,
        "parent interface par1 is down",
    );
    check(
        create("lo", SUBNET, &[], "n1"),
        5,
        "loopback device cannot carry macvlan",
    );
    // Options.
    check(
        create("par0", SUBNET, &["-o", "mode=bridge"], "n1"),
        5,
        "unknown option \"mode\" for the macvlan driver",
    );
    check(
        create("par0", SUBNET, &["-o", "macvlan_mode=switch"], "n1"),
        5,
        "expected bridge, private, vepa or passthru",
    );
    check(
        create(
            "par0",
            SUBNET,
            &["-o", "macvlan_mode=passthru", "-o", "parent="],
            "n1",
        ),
        5,
        "passthru needs a parent",
    );
    // Gateway outside the subnet: the CLI pairs it with no subnet; the API checks it too.
    check(
        create("par0", SUBNET, &["--gateway", "10.9.9.1"], "n1"),
        5,
        "no matching subnet for gateway 10.9.9.1",
    );
    let before = snapshot(&sb, &agent);
    let sock = agent.socket.to_str().unwrap().to_string();
    let body = format!(
        r#"{{"Name":"n1","Driver":"macvlan","Options":{{"parent":"par0"}},"IPAM":{{"Config":[{{"Subnet":"{SUBNET}","Gateway":"10.9.9.1"}}]}}}}"#
    );
    let out = sb.ok(
        "curl",
        &[
            "-sS",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            &sock,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            "http://w/v1.44/networks/create",
        ],
    );
    assert!(out.ends_with("\n400"), "{out}");
    assert!(out.contains("10.9.9.1") && out.contains(SUBNET), "{out}");
    assert_eq!(snapshot(&sb, &agent), before);

    // One network per parent, and subnets never overlap (whatever the parent).
    create_lan_network(&sb, &agent, "par0", "bridge");
    check(
        create("par0", "192.168.88.0/24", &[], "n2"),
        4,
        "interface par0 is already used by network lan",
    );
    check(
        create("par2", "192.168.77.128/25", &[], "n2"),
        4,
        "overlaps 192.168.77.0/24",
    );

    // No NAT: publishing is refused, naming the reason.
    sb.sh("ip netns add c1 && ip netns add c2");
    check(
        [
            "network", "connect", "-p", "8080:80", "lan", "--netns", "c1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        5,
        "the macvlan driver has no NAT",
    );

    // passthru: the first endpoint takes the parent, a second is refused.
    warren_ok(
        &sb,
        &agent,
        &[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "192.168.90.0/24",
            "-o",
            "parent=par2",
            "-o",
            "macvlan_mode=passthru",
            "pt",
        ],
    );
    warren_ok(&sb, &agent, &["network", "connect", "pt", "--netns", "c1"]);
    let link = sb.sh("ip -n c1 -d link show eth0");
    assert!(link.contains("macvlan mode passthru"), "{link}");
    check(
        ["network", "connect", "pt", "--netns", "c2"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        4,
        "passthru mode and already has its one endpoint",
    );
}

#[test]
fn internal_network_without_parent_and_cleanup_on_rm() {
    let sb = Sandbox::new();
    let mut agent = start(&sb);
    let host_links = sb.sh("ip -br link | awk '{print $1}' | sort");
    let id = warren_ok(
        &sb,
        &agent,
        &[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "10.77.0.0/24",
            "inner",
        ],
    );
    let hidden = format!("wm-{}", &id.trim()[..10]);
    let link = sb.sh(&format!("ip -d link show {hidden}"));
    assert!(
        link.contains("bridge"),
        "hidden parent {hidden} is a bridge: {link}"
    );
    sb.sh("ip netns add c1 && ip netns add c2");
    for ns in ["c1", "c2"] {
        warren_ok(&sb, &agent, &["network", "connect", "inner", "--netns", ns]);
        let routes = sb.sh(&format!("ip -n {ns} route"));
        assert!(
            !routes.contains("default"),
            "internal: no default route in {ns}: {routes}"
        );
    }
    assert!(
        pings(&sb, "c1", &ipv4_of(&sb, "c2")),
        "siblings talk through the hidden parent"
    );
    // A hidden parent that no network explains (a crash between making it and recording the
    // network) is removed at the next start; the live one stays.
    sb.sh("ip link add wm-00deadbeef type bridge");
    agent.restart(&sb);
    let links = sb.sh("ip -br link | awk '{print $1}'");
    assert!(!links.contains("wm-00deadbeef"), "orphan kept: {links}");
    assert!(
        links.contains(&hidden),
        "live hidden parent removed: {links}"
    );
    assert!(
        pings(&sb, "c1", &ipv4_of(&sb, "c2")),
        "siblings still talk after the restart"
    );
    // rm with endpoints is refused; after disconnecting, rm removes the hidden bridge too.
    let out = warren(&sb, &agent, &["network", "rm", "inner"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    for ns in ["c1", "c2"] {
        warren_ok(
            &sb,
            &agent,
            &["network", "disconnect", "inner", "--netns", ns],
        );
        assert_eq!(
            sb.sh(&format!("ip -n {ns} -br link | awk '{{print $1}}'"))
                .trim(),
            "lo"
        );
    }
    warren_ok(&sb, &agent, &["network", "rm", "inner"]);
    assert_eq!(sb.sh("ip -br link | awk '{print $1}' | sort"), host_links);

    // A namespace deleted under an endpoint: forced disconnect still cleans up.
    lan(&sb, "par0");
    create_lan_network(&sb, &agent, "par0", "bridge");
    warren_ok(&sb, &agent, &["network", "connect", "lan", "--netns", "c1"]);
    sb.sh("ip netns del c1");
    warren_ok(
        &sb,
        &agent,
        &["network", "disconnect", "-f", "lan", "netns:c1"],
    );
    warren_ok(&sb, &agent, &["network", "rm", "lan"]);
    assert!(
        sb.sh("ip link show par0").contains("par0"),
        "a user's parent is never removed"
    );
}

/// Whether the sandbox's kernel can make 802.1Q links (`ip link add … type vlan`).
fn kernel_has_8021q(sb: &Sandbox) -> bool {
    sb.sh("ip link add probe0 type veth peer name probe1");
    let ok = sb
        .run(
            "ip",
            &[
                "link", "add", "link", "probe0", "name", "probe0.5", "type", "vlan", "id", "5",
            ],
        )
        .status
        .success();
    sb.sh("ip link del probe0");
    ok
}

const VLAN_NOT_RUN: &str = "NOT RUN: 802.1Q sub-interface creation could not be exercised: this \
    kernel has no 8021q support (creating a vlan link fails with EOPNOTSUPP). Only the refusal \
    path was tested.";

/// With 8021q: `parent=par0.10` makes par0.10 and `network rm` removes it, while a
/// sub-interface the user made is kept. Without it: the request fails cleanly (Unavailable,
/// exit 6, a message naming 802.1Q) and leaves nothing behind.
#[test]
fn vlan_parent_is_made_and_removed_or_refused_cleanly_without_8021q() {
    let sb = Sandbox::new();
    let agent = start(&sb);
    lan(&sb, "par0");
    let args = [
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        SUBNET,
        "--gateway",
        LAN_IP,
        "-o",
        "parent=par0.10",
        "v10",
    ];
    if !kernel_has_8021q(&sb) {
        refused(&sb, &agent, &args, 6, "this kernel has no 802.1Q support");
        assert!(!sb.sh("ip -br link").contains("par0.10"));
        eprintln!("{VLAN_NOT_RUN}");
        return;
    }
    vlan_lifecycle(&sb, &agent, &args);
}

/// The 802.1Q path proper; on a kernel without 8021q this fails (it never passes by skipping).
/// Ignored by default because this project's CI kernel lacks 8021q: run with `--ignored`.
#[test]
#[ignore = "needs a kernel with 802.1Q (8021q); run with --ignored where it is available"]
fn vlan_parent_lifecycle_needs_8021q() {
    let sb = Sandbox::new();
    let agent = start(&sb);
    lan(&sb, "par0");
    assert!(kernel_has_8021q(&sb), "{VLAN_NOT_RUN}");
    let args = [
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        SUBNET,
        "--gateway",
        LAN_IP,
        "-o",
        "parent=par0.10",
        "v10",
    ];
    vlan_lifecycle(&sb, &agent, &args);
}

fn vlan_lifecycle(sb: &Sandbox, agent: &Agent, args: &[&str]) {
    warren_ok(sb, agent, args);
    let link = sb.sh("ip -d link show par0.10");
    assert!(link.contains("vlan protocol 802.1Q id 10"), "{link}");
    assert!(
        link.contains("warren macvlan network"),
        "ownership marker: {link}"
    );
    sb.sh("ip netns add c1");
    warren_ok(sb, agent, &["network", "connect", "v10", "--netns", "c1"]);
    warren_ok(
        sb,
        agent,
        &["network", "disconnect", "v10", "--netns", "c1"],
    );
    warren_ok(sb, agent, &["network", "rm", "v10"]);
    assert!(
        !sb.sh("ip -br link").contains("par0.10"),
        "Warren's sub-interface is removed"
    );
    // One the user made stays.
    sb.sh("ip link add link par0 name par0.20 type vlan id 20 && ip link set par0.20 up");
    warren_ok(
        sb,
        agent,
        &[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            SUBNET,
            "-o",
            "parent=par0.20",
            "v20",
        ],
    );
    warren_ok(sb, agent, &["network", "rm", "v20"]);
    assert!(
        sb.sh("ip -br link").contains("par0.20"),
        "the user's sub-interface is kept"
    );
}

#[test]
fn docker_cli_creates_and_inspects_a_macvlan_network() {
    let sb = Sandbox::new();
    let agent = start(&sb);
    lan(&sb, "par0");
    // Like a real LAN uplink, the parent has an address in the subnet (the host routes it
    // on-link); macvlan networks may still use that subnet.
    sb.sh("ip addr add 192.168.77.250/24 dev par0");
    let docker = |args: &[&str]| -> Output {
        sb.cmd("docker")
            .env("DOCKER_CONFIG", sb.dir.path().join("docker-config"))
            .arg("-H")
            .arg(agent.host())
            .args(args)
            .output()
            .expect("run docker CLI")
    };
    let out = docker(&[
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        SUBNET,
        "--gateway",
        LAN_IP,
        "-o",
        "parent=par0",
        "lan",
    ]);
    assert!(
        out.status.success(),
        "docker network create: {}\n{}",
        text(&out),
        agent.log_text()
    );
    let out = docker(&["network", "inspect", "lan"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect is JSON");
    assert_eq!(v[0]["Driver"], "macvlan", "{v}");
    assert_eq!(v[0]["Options"]["parent"], "par0", "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], SUBNET, "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], LAN_IP, "{v}");
    let out = docker(&[
        "network",
        "ls",
        "--filter",
        "driver=macvlan",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lan");
    let out = docker(&["network", "rm", "lan"]);
    assert!(out.status.success(), "{}", text(&out));
}
