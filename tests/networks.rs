//! Networks end to end against a real `warrend` in a sandbox: the docker CLI, reachability and
//! isolation, filters, restart reconciliation, concurrency and crash safety. Bad input has its
//! own file (tests/networks_bad_input.rs).

mod common;

use std::collections::BTreeSet;
use std::process::Output;

use common::{urlencode, Agent, Sandbox};
use serde_json::Value;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The real docker CLI against the agent, with its config dir kept inside the test's temp dir.
fn docker(sb: &Sandbox, agent: &Agent, args: &[&str]) -> Output {
    sb.cmd("docker")
        .env("DOCKER_CONFIG", sb.dir.path().join("docker-config"))
        .arg("-H")
        .arg(agent.host())
        .args(args)
        .output()
        .expect("run docker CLI")
}

fn docker_ok(sb: &Sandbox, agent: &Agent, args: &[&str]) -> String {
    let out = docker(sb, agent, args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "docker {args:?} failed: {stderr}");
    stdout
}

fn inspect(sb: &Sandbox, agent: &Agent, network: &str) -> Value {
    sb.get_json(agent, &format!("/networks/{network}"))
}

/// IPv4 addresses (without prefix) of a network's endpoints, keyed by target name.
fn endpoint_ips(sb: &Sandbox, agent: &Agent, network: &str) -> Vec<(String, String)> {
    let net = inspect(sb, agent, network);
    let mut out: Vec<(String, String)> = net["Containers"]
        .as_object()
        .expect("Containers is an object")
        .values()
        .map(|c| {
            let ip = c["IPv4Address"].as_str().unwrap();
            let ip = ip.split('/').next().unwrap().to_string();
            (c["Name"].as_str().unwrap().to_string(), ip)
        })
        .collect();
    out.sort();
    out
}

fn ip_of(sb: &Sandbox, agent: &Agent, network: &str, ns: &str) -> String {
    let want = format!("netns:{ns}");
    endpoint_ips(sb, agent, network)
        .into_iter()
        .find(|(name, _)| *name == want)
        .unwrap_or_else(|| panic!("{ns} is not on {network}"))
        .1
}

fn connect(sb: &Sandbox, agent: &Agent, network: &str, ns: &str, extra: &[&str]) {
    let mut args = vec!["network", "connect"];
    args.extend_from_slice(extra);
    args.extend([network, "--netns", ns]);
    sb.warren_ok(agent, &args);
}

#[test]
fn docker_cli_creates_lists_inspects_and_removes_networks() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let id = docker_ok(
        &sb,
        &agent,
        &[
            "network",
            "create",
            "--subnet",
            "10.30.0.0/24",
            "--gateway",
            "10.30.0.1",
            "--ip-range",
            "10.30.0.128/25",
            "-o",
            "com.docker.network.bridge.name=br-lab",
            "--label",
            "team=a",
            "lab",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "docker printed the network id: {id:?}");
    // The bridge exists with the gateway address.
    let addr = sb.ok("ip", &["-o", "-4", "addr", "show", "dev", "br-lab"]);
    assert!(addr.contains("10.30.0.1/24"), "{addr}");

    let ls = docker_ok(
        &sb,
        &agent,
        &[
            "network",
            "ls",
            "--filter",
            "driver=bridge",
            "--format",
            "{{.Name}} {{.Driver}} {{.ID}}",
        ],
    );
    let names: Vec<&str> = ls.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["bridge", "lab"], "{ls}");
    assert!(ls.contains(&format!("lab bridge {}", &id[..12])), "{ls}");

    let out = docker_ok(&sb, &agent, &["network", "inspect", "lab"]);
    let nets: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    let net = &nets[0];
    assert_eq!(net["Id"], id);
    assert_eq!(net["Name"], "lab");
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["Scope"], "local");
    let config = &net["IPAM"]["Config"][0];
    assert_eq!(config["Subnet"], "10.30.0.0/24");
    assert_eq!(config["Gateway"], "10.30.0.1");
    assert_eq!(config["IPRange"], "10.30.0.128/25");
    assert_eq!(net["Labels"], serde_json::json!({"team": "a"}));
    // Options echo exactly what was passed (compose compares them key by key).
    assert_eq!(
        net["Options"],
        serde_json::json!({"com.docker.network.bridge.name": "br-lab"})
    );
    // The format template works on the same data.
    let subnet = docker_ok(
        &sb,
        &agent,
        &[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            "lab",
        ],
    );
    assert_eq!(subnet.trim(), "10.30.0.0/24");
    // Unknown network: docker reports it, exit status non-zero.
    let out = docker(&sb, &agent, &["network", "inspect", "nosuch"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("nosuch"), "{}", text(&out).1);

    let out = docker_ok(&sb, &agent, &["network", "rm", "lab"]);
    assert_eq!(out.trim(), "lab");
    assert!(!sb.run("ip", &["link", "show", "br-lab"]).status.success());

    // prune removes unused user networks only; the default bridge stays.
    docker_ok(&sb, &agent, &["network", "create", "p1"]);
    docker_ok(&sb, &agent, &["network", "create", "--label", "k=v", "p2"]);
    let out = docker_ok(&sb, &agent, &["network", "prune", "-f"]);
    assert!(out.contains("p1") && out.contains("p2"), "{out}");
    let ls = docker_ok(&sb, &agent, &["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "bridge");
    // Removing the builtin network is refused.
    let out = docker(&sb, &agent, &["network", "rm", "bridge"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("pre-defined"), "{}", text(&out).1);
}

/// Rules in Warren's inet table (lines carrying a handle); set and map elements are not rules.
fn rule_count(sb: &Sandbox) -> usize {
    sb.ok("nft", &["-a", "list", "table", "inet", "warren"])
        .lines()
        .filter(|l| l.contains("# handle") && !l.trim_start().starts_with("chain "))
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("set ") || t.starts_with("map ") || t.starts_with("table "))
        })
        .count()
}

fn warren_tables() -> BTreeSet<String> {
    ["table inet warren", "table bridge warren"]
        .map(String::from)
        .into()
}

fn tables(sb: &Sandbox) -> BTreeSet<String> {
    sb.ok("nft", &["list", "tables"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn namespaces_on_one_network_talk_and_other_networks_are_isolated() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.31.0.0/24", "lab"],
    );
    sb.warren_ok(
        &agent,
        &["network", "create", "--subnet", "10.32.0.0/24", "other"],
    );
    for ns in ["a", "b", "c"] {
        sb.netns_add(ns);
    }
    connect(&sb, &agent, "lab", "a", &[]);
    connect(&sb, &agent, "lab", "b", &["--ip", "10.31.0.50"]);
    connect(&sb, &agent, "other", "c", &[]);
    let (a, b, c) = (
        ip_of(&sb, &agent, "lab", "a"),
        ip_of(&sb, &agent, "lab", "b"),
        ip_of(&sb, &agent, "other", "c"),
    );
    assert_eq!(b, "10.31.0.50");
    assert!(a.starts_with("10.31.0.") && c.starts_with("10.32.0."));
    // The namespace sees its interface, address and default route via the gateway.
    let route = sb.in_ns("a", &["ip", "-4", "route", "show", "default"]);
    assert!(
        text(&route).0.contains("via 10.31.0.1 dev eth0"),
        "{:?}",
        text(&route)
    );

    assert!(sb.ping("a", &b), "a cannot reach b on the same network");
    assert!(sb.ping("b", &a), "b cannot reach a on the same network");
    assert!(sb.ping("a", "10.31.0.1"), "a cannot reach its gateway");
    for (from, to) in [("c", &a), ("c", &b), ("a", &c), ("b", &c)] {
        assert!(
            !sb.ping(from, to),
            "{from} reached {to} across networks; isolation is broken"
        );
    }

    // Exactly Warren's tables, and a constant number of rules however many namespaces join.
    assert_eq!(tables(&sb), warren_tables());
    let rules_before = rule_count(&sb);
    assert!(rules_before > 0, "Warren's table has no rules");
    for i in 0..50 {
        let ns = format!("n{i}");
        sb.netns_add(&ns);
        connect(
            &sb,
            &agent,
            if i % 2 == 0 { "lab" } else { "other" },
            &ns,
            &[],
        );
    }
    assert_eq!(
        rule_count(&sb),
        rules_before,
        "connecting namespaces must add set elements, not rules"
    );
    assert_eq!(endpoint_ips(&sb, &agent, "lab").len(), 27);
    // Still reachable/isolated with the crowd.
    let n48 = ip_of(&sb, &agent, "lab", "n48");
    assert!(sb.ping("a", &n48));
    assert!(!sb.ping("c", &n48));
}

/// Names of the networks `GET /networks?filters=…` returns for a raw filters JSON.
fn filtered(sb: &Sandbox, agent: &Agent, filters: &str) -> Vec<String> {
    let body = sb.get_json(agent, &format!("/networks?filters={}", urlencode(filters)));
    body.as_array()
        .expect("a list")
        .iter()
        .map(|n| n["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_filters_are_applied_by_the_server() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let create = |name: &str, labels: &[&str]| -> String {
        let mut args = vec!["network", "create"];
        for l in labels {
            args.extend(["--label", l]);
        }
        args.push(name);
        sb.warren_ok(&agent, &args).trim().to_string()
    };
    let front = create("front", &["tier=web", "team=a"]);
    create("backend", &["tier=db"]);
    create("frontier", &["team=b"]);
    sb.netns_add("x");
    connect(&sb, &agent, "backend", "x", &[]);
    let bridge_id = inspect(&sb, &agent, "bridge")["Id"]
        .as_str()
        .unwrap()
        .to_string();

    let all = ["backend", "bridge", "front", "frontier"];
    let cases: &[(&str, &[&str])] = &[
        // map form (docker CLI)
        (r#"{"driver":{"bridge":true}}"#, &all),
        (r#"{"driver":{"macvlan":true}}"#, &[]),
        (r#"{"name":{"front":true}}"#, &["front", "frontier"]),
        (r#"{"name":{"ack":true}}"#, &["backend"]),
        (r#"{"label":{"tier":true}}"#, &["backend", "front"]),
        (r#"{"label":{"tier=web":true}}"#, &["front"]),
        (r#"{"label":{"tier":true,"team=a":true}}"#, &["front"]),
        (r#"{"label":{"team=c":true}}"#, &[]),
        (
            r#"{"type":{"custom":true}}"#,
            &["backend", "front", "frontier"],
        ),
        (r#"{"type":{"builtin":true}}"#, &["bridge"]),
        (r#"{"dangling":{"true":true}}"#, &["front", "frontier"]),
        (r#"{"dangling":{"false":true}}"#, &["backend", "bridge"]),
        (r#"{"scope":{"local":true}}"#, &all),
        (r#"{"scope":{"swarm":true}}"#, &[]),
        // list form (docker-py)
        (r#"{"name":["front"]}"#, &["front", "frontier"]),
        (r#"{"label":["team"]}"#, &["front", "frontier"]),
        (r#"{"label":["team=b"]}"#, &["frontier"]),
        (
            r#"{"type":["custom"],"label":["team"]}"#,
            &["front", "frontier"],
        ),
        (
            r#"{"driver":["bridge"],"dangling":["1"]}"#,
            &["front", "frontier"],
        ),
        // several values of one key: any matches
        (
            r#"{"name":["backend","frontier"]}"#,
            &["backend", "frontier"],
        ),
        // empty filters: everything
        ("{}", &all),
    ];
    for (filters, want) in cases {
        assert_eq!(filtered(&sb, &agent, filters), *want, "filters {filters}");
    }
    // id prefix, full id, and no match
    let id_cases = [
        (front[..6].to_string(), vec!["front"]),
        (front.clone(), vec!["front"]),
        (bridge_id[..12].to_string(), vec!["bridge"]),
        ("zzzz".to_string(), vec![]),
    ];
    for (prefix, want) in id_cases {
        let f = format!(r#"{{"id":{{"{prefix}":true}}}}"#);
        assert_eq!(filtered(&sb, &agent, &f), want, "filters {f}");
        let f = format!(r#"{{"id":["{prefix}"]}}"#);
        assert_eq!(filtered(&sb, &agent, &f), want, "filters {f}");
    }
    // The CLIs send the same filters.
    let out = sb.warren_ok(
        &agent,
        &[
            "network",
            "ls",
            "--filter",
            "label=team",
            "--format",
            "json",
        ],
    );
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&out)
        .unwrap()
        .iter()
        .map(|n| n["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["front", "frontier"]);
    let out = docker_ok(
        &sb,
        &agent,
        &[
            "network",
            "ls",
            "--filter",
            "type=custom",
            "--filter",
            "dangling=true",
            "--format",
            "{{.Name}}",
        ],
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["front", "frontier"]);

    // Unknown filter keys and malformed filters: 400 with a message naming the problem.
    for (filters, needle) in [
        (r#"{"colour":{"red":true}}"#, "colour"),
        (r#"{"until":["1h"]}"#, "until"),
        ("not json", "invalid filters"),
        (r#"["driver"]"#, "object"),
        (r#"{"driver":5}"#, "driver"),
    ] {
        let reply = sb.api(
            &agent,
            "GET",
            &format!("/networks?filters={}", urlencode(filters)),
            None,
        );
        assert_eq!(reply.status, 400, "filters {filters}: {reply:?}");
        assert!(
            reply.message().contains(needle),
            "filters {filters}: {:?} does not mention {needle}",
            reply.message()
        );
    }
    let out = sb.warren(&agent, &["network", "ls", "--filter", "colour=red"]);
    assert_eq!(out.status.code(), Some(5), "{:?}", text(&out));
}
