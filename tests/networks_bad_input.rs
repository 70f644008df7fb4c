//! Bad network requests, table-driven: each gets the right status (HTTP, or the CLI's exit
//! code), a message naming the problem, and changes nothing — the API's view of every network,
//! links and addresses of the sandbox and its namespaces, and the nftables ruleset are all
//! byte-for-byte what they were before.

mod common;

use common::{Agent, Sandbox};
use serde_json::{json, Value};

enum Request {
    /// Method, path, raw body.
    Api(&'static str, String, Option<String>),
    /// `warren` arguments (after -H).
    Cli(Vec<&'static str>),
}

struct Case {
    what: &'static str,
    request: Request,
    /// HTTP status for API requests, exit code for CLI ones.
    want: u16,
    /// Part of the error message.
    needle: &'static str,
}

fn api(method: &'static str, path: &str, body: Option<String>) -> Request {
    Request::Api(method, path.to_string(), body)
}

fn create(body: Value) -> Request {
    api("POST", "/networks/create", Some(body.to_string()))
}

/// A create request for `name` with one IPAM config entry.
fn create_ipam(name: &str, config: Value) -> Request {
    create(json!({"Name": name, "IPAM": {"Driver": "default", "Config": [config]}}))
}

fn create_opt(name: &str, key: &str, value: &str) -> Request {
    create(json!({"Name": name, "Options": {key: value}}))
}

fn connect(network: &str, body: Value) -> Request {
    api(
        "POST",
        &format!("/networks/{network}/connect"),
        Some(body.to_string()),
    )
}

fn connect_ip(network: &str, ns: &str, ip: &str) -> Request {
    connect(
        network,
        json!({"Container": format!("netns:{ns}"),
               "EndpointConfig": {"IPAMConfig": {"IPv4Address": ip}}}),
    )
}

fn publish(network: &str, ns: &str, spec: &str) -> Request {
    connect(
        network,
        json!({"Container": format!("netns:{ns}"), "Publish": [spec]}),
    )
}

fn case(what: &'static str, request: Request, want: u16, needle: &'static str) -> Case {
    Case {
        what,
        request,
        want,
        needle,
    }
}

/// Everything a failed request must leave alone.
fn snapshot(sb: &Sandbox, agent: &Agent) -> Vec<(String, String)> {
    let networks = sb.api(agent, "GET", "/networks", None);
    assert_eq!(networks.status, 200);
    let mut out = vec![
        ("GET /networks".into(), networks.body.to_string()),
        (
            "nft list ruleset".into(),
            sb.ok("nft", &["-s", "list", "ruleset"]),
        ),
        ("ip netns".into(), sb.ok("ip", &["netns", "list"])),
    ];
    let mut spaces = vec![None];
    spaces.extend(
        sb.ok("ip", &["netns", "list"])
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(|n| Some(n.to_string()))),
    );
    for ns in spaces {
        let mut base: Vec<&str> = Vec::new();
        if let Some(ns) = &ns {
            base.extend(["-n", ns]);
        }
        let label = ns.as_deref().unwrap_or("sandbox");
        for what in ["link", "addr"] {
            let mut args = base.clone();
            args.extend(["-o", what]);
            out.push((format!("ip -o {what} ({label})"), sb.ok("ip", &args)));
        }
    }
    out
}

/// Wait until the kernel is quiet: IPv6 duplicate address detection finished (no "tentative"
/// addresses) and links settled, so that snapshots differ only by what a request did.
fn settle(sb: &Sandbox, agent: &Agent) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = snapshot(sb, agent);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = snapshot(sb, agent);
        let quiet = now == last && !now.iter().any(|(_, s)| s.contains("tentative"));
        if quiet {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox does not settle: {now:?}"
        );
        last = now;
    }
}

/// Run one case; returns what went wrong (nothing when it behaved).
fn run_case(sb: &Sandbox, agent: &Agent, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let before = snapshot(sb, agent);
    let what = case.what;
    match &case.request {
        Request::Api(method, path, body) => {
            let reply = sb.api(agent, method, path, body.as_deref());
            if reply.status != case.want {
                problems.push(format!(
                    "{what}: {method} {path} {body:?}: status {} instead of {}: {:?}",
                    reply.status, case.want, reply.body
                ));
            } else if !reply.message().contains(case.needle) {
                problems.push(format!(
                    "{what}: message {:?} does not mention {:?}",
                    reply.message(),
                    case.needle
                ));
            }
        }
        Request::Cli(args) => {
            let out = sb.warren(agent, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = stderr.trim_end();
            if out.status.code() != Some(i32::from(case.want)) {
                problems.push(format!(
                    "{what}: warren {args:?}: exit {:?} instead of {}; stderr: {stderr}",
                    out.status.code(),
                    case.want
                ));
            } else if !line.starts_with("warren: ") || line.contains('\n') {
                problems.push(format!(
                    "{what}: expected one 'warren: …' line, got {stderr:?}"
                ));
            } else if !line.contains(case.needle) {
                problems.push(format!(
                    "{what}: {line:?} does not mention {:?}",
                    case.needle
                ));
            }
        }
    }
    let after = snapshot(sb, agent);
    if before.len() != after.len() {
        problems.push(format!("{what}: the set of namespaces changed"));
    }
    for ((label, a), (_, b)) in before.iter().zip(&after) {
        if a != b {
            problems.push(format!(
                "{what}: {label} changed although the request failed:\n--- before\n{a}\n--- after\n{b}"
            ));
        }
    }
    problems
}

#[test]
fn bad_requests_fail_clearly_and_change_nothing() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    sb.warren_ok(
        &agent,
        &[
            "network",
            "create",
            "--subnet",
            "10.40.0.0/24",
            "--gateway",
            "10.40.0.1",
            "--ip-range",
            "10.40.0.128/25",
            "-o",
            "com.docker.network.bridge.name=br-lab",
            "lab",
        ],
    );
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.41.0.0/24", "other"],
    );
    sb.netns_add("ns1");
    sb.netns_add("ns2");
    sb.warren_ok(
        &agent,
        &[
            "network", "connect", "-p", "8080:80", "--alias", "web", "lab", "--netns", "ns1",
        ],
    );
    let lab = sb.get_json(&agent, "/networks/lab");
    let ns1_ip = lab["Containers"]["netns:ns1"]["IPv4Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(ns1_ip, "10.40.0.128", "first address of the ip-range");
    // A leaked string is fine in a test: the case table wants 'static needles and requests.
    let ns1_ip: &'static str = Box::leak(ns1_ip.into_boxed_str());

    let cases = vec![
        // --- create: addresses
        case(
            "CIDR prefix > 32",
            create_ipam("n", json!({"Subnet": "10.50.0.0/33"})),
            400,
            "10.50.0.0/33",
        ),
        case(
            "CIDR garbage",
            create_ipam("n", json!({"Subnet": "bogus"})),
            400,
            "bogus",
        ),
        case(
            "subnet with host bits",
            create_ipam("n", json!({"Subnet": "10.50.0.1/24"})),
            400,
            "10.50.0.0/24",
        ),
        case(
            "gateway outside subnet",
            create_ipam(
                "n",
                json!({"Subnet": "10.50.0.0/24", "Gateway": "10.51.0.1"}),
            ),
            400,
            "10.51.0.1",
        ),
        case(
            "gateway not an IP",
            create_ipam(
                "n",
                json!({"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.x"}),
            ),
            400,
            "10.50.0.x",
        ),
        case(
            "gateway is the network address",
            create_ipam(
                "n",
                json!({"Subnet": "10.50.0.0/24", "Gateway": "10.50.0.0"}),
            ),
            400,
            "10.50.0.0",
        ),
        case(
            "ip-range outside subnet",
            create_ipam(
                "n",
                json!({"Subnet": "10.50.0.0/24", "IPRange": "10.50.1.0/25"}),
            ),
            400,
            "10.50.1.0/25",
        ),
        case(
            "ip-range larger than subnet",
            create_ipam(
                "n",
                json!({"Subnet": "10.50.0.0/24", "IPRange": "10.50.0.0/23"}),
            ),
            400,
            "10.50.0.0/23",
        ),
        case(
            "aux address outside subnet",
            create_ipam(
                "n",
                json!({"Subnet": "10.50.0.0/24", "AuxiliaryAddresses": {"router": "10.60.0.1"}}),
            ),
            400,
            "router",
        ),
        case(
            "gateway without subnet",
            create_ipam("n", json!({"Gateway": "10.50.0.1"})),
            400,
            "subnet",
        ),
        case(
            "same subnet as lab",
            create_ipam("n", json!({"Subnet": "10.40.0.0/24"})),
            409,
            "lab",
        ),
        case(
            "subnet containing lab's",
            create_ipam("n", json!({"Subnet": "10.40.0.0/16"})),
            409,
            "overlaps",
        ),
        case(
            "subnet inside lab's",
            create_ipam("n", json!({"Subnet": "10.40.0.64/26"})),
            409,
            "overlaps",
        ),
        case(
            "subnet inside the default bridge",
            create_ipam("n", json!({"Subnet": "172.17.5.0/24"})),
            409,
            "bridge",
        ),
        case(
            "/31 for a bridge",
            create_ipam("n", json!({"Subnet": "10.50.0.0/31"})),
            400,
            "/31",
        ),
        case(
            "/32 for a bridge",
            create_ipam("n", json!({"Subnet": "10.50.0.1/32"})),
            400,
            "/32",
        ),
        case(
            "IPAM driver",
            create(json!({"Name": "n", "IPAM": {"Driver": "dhcp"}})),
            400,
            "dhcp",
        ),
        // --- create: names, drivers, options
        case("duplicate name", create(json!({"Name": "lab"})), 409, "lab"),
        case(
            "name with a space",
            create(json!({"Name": "my net"})),
            400,
            "my net",
        ),
        case(
            "name with a slash",
            create(json!({"Name": "a/b"})),
            400,
            "a/b",
        ),
        case("empty name", create(json!({"Name": ""})), 400, "name"),
        case(
            "name too long",
            create(json!({"Name": "n".repeat(129)})),
            400,
            "name",
        ),
        case(
            "bridge name over 15 bytes",
            create_opt("n", "com.docker.network.bridge.name", "br-0123456789abc"),
            400,
            "br-0123456789abc",
        ),
        case(
            "bridge name with a slash",
            create_opt("n", "com.docker.network.bridge.name", "br/x"),
            400,
            "br/x",
        ),
        case(
            "bridge name of another network",
            create_opt("n", "com.docker.network.bridge.name", "br-lab"),
            409,
            "br-lab",
        ),
        case(
            "unknown driver",
            create(json!({"Name": "n", "Driver": "nosuch"})),
            404,
            "nosuch",
        ),
        case(
            "unknown option",
            create_opt("n", "com.example.colour", "red"),
            400,
            "com.example.colour",
        ),
        case(
            "mtu not a number",
            create_opt("n", "com.docker.network.driver.mtu", "big"),
            400,
            "mtu",
        ),
        case(
            "mtu too small",
            create_opt("n", "com.docker.network.driver.mtu", "10"),
            400,
            "mtu",
        ),
        case(
            "icc not a boolean",
            create_opt("n", "com.docker.network.bridge.enable_icc", "maybe"),
            400,
            "enable_icc",
        ),
        case(
            "ports per bridge beyond a Linux bridge's 1023",
            create_opt("n", "warren.bridge.ports_per_bridge", "1023"),
            400,
            "from 1 to 1022",
        ),
        case(
            "bridge name of Warren's own links",
            create_opt("n", "com.docker.network.bridge.name", "wx0123abcd-1"),
            400,
            "Warren's own links",
        ),
        case(
            "ports per bridge negative",
            create_opt("n", "warren.bridge.ports_per_bridge", "-1"),
            400,
            "ports_per_bridge",
        ),
        case(
            "host binding not an address",
            create_opt(
                "n",
                "com.docker.network.bridge.host_binding_ipv4",
                "everywhere",
            ),
            400,
            "host_binding_ipv4",
        ),
        case(
            "swarm scope",
            create(json!({"Name": "n", "Scope": "swarm"})),
            400,
            "swarm",
        ),
        // --- create: malformed bodies
        case(
            "malformed JSON",
            api("POST", "/networks/create", Some(r#"{"Name": "n""#.into())),
            400,
            "JSON",
        ),
        case(
            "empty body",
            api("POST", "/networks/create", Some(String::new())),
            400,
            "empty",
        ),
        case(
            "no body at all",
            api("POST", "/networks/create", None),
            400,
            "empty",
        ),
        case(
            "JSON null",
            api("POST", "/networks/create", Some("null".into())),
            400,
            "JSON",
        ),
        case(
            "Name is a number",
            create(json!({"Name": 5})),
            400,
            "invalid type: integer",
        ),
        case(
            "Labels is a list",
            create(json!({"Name": "n", "Labels": ["a=b"]})),
            400,
            "JSON",
        ),
        case(
            "IPAM.Config is an object",
            create(json!({"Name": "n", "IPAM": {"Config": {"Subnet": "10.50.0.0/24"}}})),
            400,
            "JSON",
        ),
        case(
            "Internal is a string",
            create(json!({"Name": "n", "Internal": "yes"})),
            400,
            "JSON",
        ),
        // --- connect
        case(
            "connect to unknown network",
            connect("nosuch", json!({"Container": "netns:ns2"})),
            404,
            "nosuch",
        ),
        case(
            "connect a missing namespace",
            connect("lab", json!({"Container": "netns:ghost"})),
            404,
            "ghost",
        ),
        case(
            "connect a missing namespace path",
            connect("lab", json!({"Container": "/run/netns/ghost"})),
            404,
            "ghost",
        ),
        case(
            "connect an unknown container",
            connect("lab", json!({"Container": "webapp"})),
            404,
            "webapp",
        ),
        case(
            "connect nothing",
            connect("lab", json!({"Container": ""})),
            400,
            "container",
        ),
        case(
            "connect twice",
            connect("lab", json!({"Container": "netns:ns1"})),
            409,
            "already",
        ),
        case(
            "static IP taken",
            connect_ip("lab", "ns2", ns1_ip),
            409,
            ns1_ip,
        ),
        case(
            "static IP outside ip-range",
            connect_ip("lab", "ns2", "10.40.0.10"),
            400,
            "10.40.0.10",
        ),
        case(
            "static IP outside subnet",
            connect_ip("lab", "ns2", "10.99.0.5"),
            400,
            "10.99.0.5",
        ),
        case(
            "static IP is the gateway",
            connect_ip("other", "ns2", "10.41.0.1"),
            400,
            "gateway",
        ),
        case(
            "static IP is the network address",
            connect_ip("other", "ns2", "10.41.0.0"),
            400,
            "10.41.0.0",
        ),
        case(
            "static IP is the broadcast address",
            connect_ip("other", "ns2", "10.41.0.255"),
            400,
            "10.41.0.255",
        ),
        case(
            "static IP garbage",
            connect_ip("other", "ns2", "10.41.0.x"),
            400,
            "10.41.0.x",
        ),
        case(
            "IPv6 address as IPv4",
            connect_ip("other", "ns2", "fd00::5"),
            400,
            "fd00::5",
        ),
        case(
            "bad alias",
            connect(
                "other",
                json!({"Container": "netns:ns2", "EndpointConfig": {"Aliases": ["no space"]}}),
            ),
            400,
            "no space",
        ),
        case(
            "port already published",
            publish("other", "ns2", "8080:80/tcp"),
            409,
            "8080",
        ),
        case(
            "port spec garbage",
            publish("other", "ns2", "80:abc"),
            400,
            "80:abc",
        ),
        case(
            "host port out of range",
            publish("other", "ns2", "70000:80"),
            400,
            "70000",
        ),
        case(
            "unknown protocol",
            publish("other", "ns2", "8081:80/sctpx"),
            400,
            "sctpx",
        ),
        case(
            "Publish is a string",
            connect(
                "other",
                json!({"Container": "netns:ns2", "Publish": "8081:80"}),
            ),
            400,
            "JSON",
        ),
        case(
            "Container is a number",
            connect("other", json!({"Container": 7})),
            400,
            "JSON",
        ),
        case(
            "connect with malformed JSON",
            api("POST", "/networks/other/connect", Some("{".into())),
            400,
            "JSON",
        ),
        case(
            "connect with empty body",
            api("POST", "/networks/other/connect", Some(String::new())),
            400,
            "empty",
        ),
        // --- disconnect, remove, prune
        case(
            "disconnect when not connected",
            api(
                "POST",
                "/networks/lab/disconnect",
                Some(json!({"Container": "netns:ns2"}).to_string()),
            ),
            404,
            "not connected",
        ),
        case(
            "disconnect from unknown network",
            api(
                "POST",
                "/networks/nosuch/disconnect",
                Some(json!({"Container": "netns:ns1"}).to_string()),
            ),
            404,
            "nosuch",
        ),
        case(
            "disconnect with wrong types",
            api(
                "POST",
                "/networks/lab/disconnect",
                Some(json!({"Container": "netns:ns1", "Force": "yes"}).to_string()),
            ),
            400,
            "JSON",
        ),
        case(
            "remove a network with endpoints",
            api("DELETE", "/networks/lab", None),
            409,
            "netns:ns1",
        ),
        case(
            "remove the default bridge",
            api("DELETE", "/networks/bridge", None),
            400,
            "pre-defined",
        ),
        case(
            "remove an unknown network",
            api("DELETE", "/networks/nosuch", None),
            404,
            "nosuch",
        ),
        case(
            "prune with until",
            api(
                "POST",
                "/networks/prune?filters=%7B%22until%22%3A%5B%221h%22%5D%7D",
                None,
            ),
            400,
            "until",
        ),
        case(
            "prune with unknown filter",
            api(
                "POST",
                "/networks/prune?filters=%7B%22driver%22%3A%5B%22bridge%22%5D%7D",
                None,
            ),
            400,
            "driver",
        ),
        // --- the CLI: exit codes NotFound 3, Conflict 4, Invalid 5
        case(
            "cli: invalid subnet",
            Request::Cli(vec!["network", "create", "--subnet", "bogus", "n"]),
            5,
            "bogus",
        ),
        case(
            "cli: overlapping subnet",
            Request::Cli(vec!["network", "create", "--subnet", "10.40.0.0/25", "n"]),
            4,
            "overlaps",
        ),
        case(
            "cli: invalid option value",
            Request::Cli(vec![
                "network",
                "create",
                "-o",
                "com.docker.network.driver.mtu=abc",
                "n",
            ]),
            5,
            "mtu",
        ),
        case(
            "cli: connect unknown network",
            Request::Cli(vec!["network", "connect", "nosuch", "--netns", "ns2"]),
            3,
            "nosuch",
        ),
        case(
            "cli: connect missing netns",
            Request::Cli(vec!["network", "connect", "lab", "--netns", "ghost"]),
            3,
            "ghost",
        ),
        case(
            "cli: connect twice",
            Request::Cli(vec!["network", "connect", "lab", "--netns", "ns1"]),
            4,
            "already",
        ),
        case(
            "cli: port already published",
            Request::Cli(vec![
                "network", "connect", "-p", "8080:80", "other", "--netns", "ns2",
            ]),
            4,
            "8080",
        ),
        case(
            "cli: static IP outside ip-range",
            Request::Cli(vec![
                "network",
                "connect",
                "--ip",
                "10.40.0.3",
                "lab",
                "--netns",
                "ns2",
            ]),
            5,
            "10.40.0.3",
        ),
        case(
            "cli: disconnect when not connected",
            Request::Cli(vec!["network", "disconnect", "lab", "--netns", "ns2"]),
            3,
            "not connected",
        ),
        case(
            "cli: rm with endpoints",
            Request::Cli(vec!["network", "rm", "lab"]),
            4,
            "netns:ns1",
        ),
        case(
            "cli: inspect unknown",
            Request::Cli(vec!["network", "inspect", "nosuch"]),
            3,
            "nosuch",
        ),
    ];
    assert!(cases.len() >= 30);
    settle(&sb, &agent);
    let problems: Vec<String> = cases
        .iter()
        .flat_map(|c| run_case(&sb, &agent, c))
        .collect();
    assert!(
        problems.is_empty(),
        "{} of {} cases misbehaved:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );

    // Several bad names: each error is printed once, the exit code is the last one's kind.
    let out = sb.warren(&agent, &["network", "rm", "nosuch1", "lab", "nosuch2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].contains("nosuch1")
            && lines[1].contains("netns:ns1")
            && lines[2].contains("nosuch2"),
        "{stderr}"
    );

    // Failed requests held no reservations: ns2 gets the first free address of each network,
    // and the host port refused above is still owned by ns1 only.
    sb.warren_ok(&agent, &["network", "connect", "other", "--netns", "ns2"]);
    sb.warren_ok(&agent, &["network", "connect", "lab", "--netns", "ns2"]);
    let other = sb.get_json(&agent, "/networks/other");
    assert_eq!(
        other["Containers"]["netns:ns2"]["IPv4Address"],
        "10.41.0.2/24"
    );
    let lab = sb.get_json(&agent, "/networks/lab");
    assert_eq!(
        lab["Containers"]["netns:ns2"]["IPv4Address"],
        "10.40.0.129/24"
    );
    // Names refused above are free for a valid request.
    sb.warren_ok(&agent, &["network", "create", "n"]);
}
