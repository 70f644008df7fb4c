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
