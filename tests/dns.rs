//! Embedded DNS end to end: an agent in a sandbox, user networks, namespaces connected with
//! `warren network connect --netns`, and queries sent to 127.0.0.11 from inside them (busybox
//! nslookup, dig, and a small UDP/TCP probe of our own for what those tools cannot send).
mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{bin, busybox_rootfs as rootfs, Agent, Sandbox};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// Tests that do not exercise forwarding still give the agent an upstream inside the sandbox
/// (nothing listens on the sandbox's 127.0.0.1:53, so a forwarded name fails at once), so no
/// test ever depends on, or sends to, the machine's own resolvers.
const NO_UPSTREAM: &[&str] = &["--dns", "127.0.0.1"];

fn warren(sb: &Sandbox, agent: &Agent, args: &[&str]) -> String {
    let host = agent.host();
    let mut all = vec!["-H", host.as_str()];
    all.extend_from_slice(args);
    sb.ok(bin("warren"), &all)
}

/// A named namespace (lo up), connected to `network` with `aliases`; returns its address.
fn attach(sb: &Sandbox, agent: &Agent, ns: &str, network: &str, aliases: &[&str]) -> String {
    if !sb.run("ip", &["netns", "pids", ns]).status.success() {
        sb.sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    }
    let mut args = vec!["network", "connect"];
    for a in aliases {
        args.extend_from_slice(&["--alias", a]);
    }
    args.extend_from_slice(&[network, "--netns", ns]);
    warren(sb, agent, &args);
    address_on(sb, ns, network, agent)
}

fn address_on(sb: &Sandbox, ns: &str, network: &str, agent: &Agent) -> String {
    let out = warren(sb, agent, &["network", "inspect", network]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
    let containers = v[0]["Containers"].as_object().expect("Containers");
    let key = format!("netns:{ns}");
    let ep = containers
        .iter()
        .find(|(k, c)| *k == &key || c["Name"] == key.as_str())
        .unwrap_or_else(|| panic!("{ns} not on {network}: {out}"))
        .1;
    ep["IPv4Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// `dig` inside `ns` against the embedded resolver; returns stdout.
fn dig(sb: &Sandbox, ns: &str, args: &str) -> String {
    sb.sh(&format!(
        "ip netns exec {ns} dig @127.0.0.11 +time=2 +tries=1 {args}"
    ))
}

fn dig_addrs(sb: &Sandbox, ns: &str, name: &str) -> Vec<String> {
    dig(sb, ns, &format!("+short {name}"))
        .lines()
        .map(str::to_string)
        .collect()
}

fn status(sb: &Sandbox, ns: &str, args: &str) -> String {
    let out = dig(sb, ns, &format!("+noall +comments {args}"));
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in {out}"))
        .to_string()
}

/// The namespace file of a named namespace made in the sandbox, reachable from the test
/// process through the holder's root (the sandbox's /run/netns is a private tmpfs).
fn ns_path(sb: &Sandbox, ns: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root/run/netns/{ns}", sb.pid()))
}

/// Send `request` over UDP from inside `ns` to `to`; the answer, or None after `wait`.
fn udp_probe(
    sb: &Sandbox,
    ns: &str,
    to: SocketAddr,
    request: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = warren::netns::run_in(&ns_path(sb, ns), || UdpSocket::bind("0.0.0.0:0"))
        .expect("enter namespace")
        .expect("bind probe socket");
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(request, to).ok()?;
    let mut buf = vec![0u8; 65535];
    match socket.recv(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

fn resolver() -> SocketAddr {
    "127.0.0.11:53".parse().unwrap()
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

/// Something listening on UDP 127.0.0.11:53 inside `ns`?
fn listens(sb: &Sandbox, ns: &str) -> bool {
    let out = sb.sh(&format!("ip netns exec {ns} ss -Hlnu 'sport = :53'"));
    out.contains("127.0.0.11:53")
}

#[test]
fn names_aliases_qualified_names_and_ptr() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(NO_UPSTREAM);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.61.0.0/24", "front"],
    );
    attach(&sb, &agent, "client", "front", &[]);
    let web = attach(&sb, &agent, "web", "front", &["www", "Site.Example"]);

    // busybox nslookup, as a container image would have it.
    let out = sb.sh("ip netns exec client busybox nslookup web 127.0.0.11");
    assert!(out.contains(&format!("Address: {web}")), "{out}");
    assert_eq!(dig_addrs(&sb, "client", "www"), [web.as_str()]);
    assert_eq!(
        dig_addrs(&sb, "client", "site.example"),
        [web.as_str()],
        "aliases ignore case"
    );
    assert_eq!(
        dig_addrs(&sb, "client", "WEB.front"),
        [web.as_str()],
        "name.network"
    );
    // The endpoint's short id resolves too.
    let inspect = warren(&sb, &agent, &["network", "inspect", "front"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let ep_id = v[0]["Containers"]["netns:web"]["EndpointID"]
        .as_str()
        .expect("EndpointID")
        .to_string();
    assert_eq!(dig_addrs(&sb, "client", &ep_id[..12]), [web.as_str()]);
    // PTR of an endpoint address: name.network.
    assert_eq!(
        dig_addrs(&sb, "client", &format!("-x {web}")),
        ["web.front."]
    );
    // Unknown single-label name: NXDOMAIN, answered here (never forwarded).
    assert_eq!(status(&sb, "client", "nosuch"), "NXDOMAIN");
    assert_eq!(status(&sb, "client", "nosuch.front"), "NXDOMAIN");
    // A name that exists without the asked type: NOERROR, no answers.
    assert_eq!(status(&sb, "client", "web AAAA"), "NOERROR");
    assert!(dig_addrs(&sb, "client", "web AAAA").is_empty());
}

#[test]
fn alias_on_three_replicas_round_robins() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(NO_UPSTREAM);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.62.0.0/24", "app"],
    );
    attach(&sb, &agent, "client", "app", &[]);
    let replicas: BTreeSet<String> = (1..=3)
        .map(|i| attach(&sb, &agent, &format!("api{i}"), "app", &["api"]))
        .collect();
    let mut orders = BTreeSet::new();
    for _ in 0..20 {
        let got = dig_addrs(&sb, "client", "api");
        assert_eq!(
            got.iter().cloned().collect::<BTreeSet<_>>(),
            replicas,
            "{got:?}"
        );
        assert_eq!(got.len(), 3);
        orders.insert(got);
    }
    assert!(orders.len() > 1, "the order never changed in 20 answers");
}

#[test]
fn scope_is_the_networks_a_namespace_is_on() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(NO_UPSTREAM);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.63.0.0/24", "front"],
    );
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.64.0.0/24", "back"],
    );
    let web = attach(&sb, &agent, "web", "front", &[]);
    let db = attach(&sb, &agent, "db", "back", &[]);
    attach(&sb, &agent, "app", "front", &[]);
    attach(&sb, &agent, "app", "back", &[]);
    assert_eq!(
        status(&sb, "web", "db"),
        "NXDOMAIN",
        "db is on another network"
    );
    assert_eq!(status(&sb, "db", "web"), "NXDOMAIN");
    assert_eq!(dig_addrs(&sb, "app", "db"), [db.as_str()]);
    assert_eq!(dig_addrs(&sb, "app", "web"), [web.as_str()]);
    // PTR is scoped too: web cannot learn db's name from its address.
    assert_eq!(status(&sb, "db", &format!("-x {web}")), "NXDOMAIN");
    // Not reachable from outside the namespace: nothing listens on the client's own address,
    // and the sandbox host has no 127.0.0.11 listener.
    let q = query("db.", RecordType::A);
    let from_web = udp_probe(
        &sb,
        "web",
        SocketAddr::new(db.parse().unwrap(), 53),
        &q,
        Duration::from_millis(500),
    );
    assert!(from_web.is_none(), "an outside client got an answer");
    let host = sb.run("dig", &["@127.0.0.11", "+time=1", "+tries=1", "db"]);
    assert!(!host.status.success(), "the host namespace got an answer");
}

#[test]
fn tcp_and_truncation_for_large_answers() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(NO_UPSTREAM);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.65.0.0/24", "many"],
    );
    attach(&sb, &agent, "client", "many", &[]);
    // 36 A records (16 bytes each with a compressed name) do not fit 512 bytes.
    for i in 0..36 {
        attach(&sb, &agent, &format!("r{i}"), "many", &["crowd"]);
    }
    let udp = dig(&sb, "client", "+noedns +ignore crowd");
    assert!(
        udp.contains(" tc"),
        "expected TC over UDP without EDNS: {udp}"
    );
    assert!(udp.contains("ANSWER: 0"), "{udp}");
    let tcp = dig(&sb, "client", "+tcp +short crowd");
    assert_eq!(tcp.lines().count(), 36, "{tcp}");
    // dig's own fallback (UDP, TC, then TCP) gets everything too.
    assert_eq!(dig_addrs(&sb, "client", "+noedns crowd").len(), 36);
    // EDNS0 with a large payload fits over UDP.
    let big = dig(&sb, "client", "+bufsize=4096 +ignore crowd");
    assert!(!big.contains(" tc") && big.contains("ANSWER: 36"), "{big}");
}

/// dnsmasq in an "outside" namespace behind a veth from the sandbox host, answering
/// `ext.example.test` and logging every query it gets.
struct Upstream {
    child: Child,
    log: PathBuf,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UPSTREAM_IP: &str = "198.18.0.2";

fn start_upstream(sb: &Sandbox) -> Upstream {
    sb.sh("ip netns add outside && ip -n outside link set lo up && \
         ip link add wout type veth peer name eth0 netns outside && \
         ip addr add 198.18.0.1/30 dev wout && ip link set wout up && \
         ip -n outside addr add 198.18.0.2/30 dev eth0 && ip -n outside link set eth0 up");
    let log = sb.dir.path().join("dnsmasq.log");
    let child = sb
        .cmd("ip")
        .args([
            "netns",
            "exec",
            "outside",
            "dnsmasq",
            "--keep-in-foreground",
        ])
        .args([
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args(["--listen-address", UPSTREAM_IP, "--port=53", "--user=root"])
        .args(["--address=/ext.example.test/203.0.113.7", "--log-queries"])
        .arg(format!("--log-facility={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq (apt-get install dnsmasq-base)");
    let up = Upstream { child, log };
    for _ in 0..100 {
        let out = sb.run(
            "dig",
            &[
                &format!("@{UPSTREAM_IP}"),
                "+time=1",
                "+tries=1",
                "+short",
                "ext.example.test",
            ],
        );
        if String::from_utf8_lossy(&out.stdout).contains("203.0.113.7") {
            return up;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("dnsmasq did not start");
}

fn upstream_saw(up: &Upstream, name: &str) -> bool {
    std::fs::read_to_string(&up.log)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("query[") && l.contains(name))
}

#[test]
fn forwards_to_upstream_except_from_internal_networks() {
    let sb = Sandbox::new();
    let mut up = start_upstream(&sb);
    let agent = sb.start_agent(&["--dns", UPSTREAM_IP]);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.66.0.0/24", "front"],
    );
    warren(
        &sb,
        &agent,
        &[
            "network",
            "create",
            "--internal",
            "--subnet",
            "10.67.0.0/24",
            "sealed",
        ],
    );
    attach(&sb, &agent, "client", "front", &[]);
    attach(&sb, &agent, "locked", "sealed", &[]);

    assert_eq!(
        dig_addrs(&sb, "client", "ext.example.test"),
        ["203.0.113.7"]
    );
    assert_eq!(
        dig_addrs(&sb, "client", "+tcp ext.example.test"),
        ["203.0.113.7"]
    );
    assert!(upstream_saw(&up, "ext.example.test"));

    // Internal network only: refused here, never sent upstream.
    assert_eq!(status(&sb, "locked", "other.example.test"), "REFUSED");
    assert!(
        !upstream_saw(&up, "other.example.test"),
        "internal client was forwarded"
    );
    // Its own names still resolve.
    attach(&sb, &agent, "peer", "sealed", &[]);
    assert_eq!(dig_addrs(&sb, "locked", "peer").len(), 1);

    // Upstream gone: SERVFAIL, promptly.
    let _ = up.child.kill();
    let _ = up.child.wait();
    assert_eq!(status(&sb, "client", "ext.example.test"), "SERVFAIL");
}

#[test]
fn default_bridge_has_no_resolver() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(NO_UPSTREAM);
    attach(&sb, &agent, "plain", "bridge", &[]);
    assert!(!listens(&sb, "plain"), "a listener on the default bridge");
    let out = sb.run(
        "ip",
        &[
            "netns",
            "exec",
            "plain",
            "dig",
            "@127.0.0.11",
            "+time=1",
            "+tries=1",
            "plain",
        ],
    );
    assert!(!out.status.success(), "got an answer on the default bridge");
    // Joining a user network brings the resolver; its names only.
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.68.0.0/24", "user"],
    );
    attach(&sb, &agent, "plain", "user", &[]);
    assert!(listens(&sb, "plain"));
    assert_eq!(
        dig_addrs(&sb, "plain", "plain").len(),
        1,
        "only the user network's address"
    );
}

#[test]
fn disconnect_is_seen_by_the_next_query_and_closes_the_listener() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(NO_UPSTREAM);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.69.0.0/24", "front"],
    );
    attach(&sb, &agent, "client", "front", &[]);
    let b = attach(&sb, &agent, "b", "front", &["bee"]);
    assert_eq!(dig_addrs(&sb, "client", "bee"), [b]);
    assert!(listens(&sb, "b"));
    warren(
        &sb,
        &agent,
        &["network", "disconnect", "front", "--netns", "b"],
    );
    assert_eq!(status(&sb, "client", "bee"), "NXDOMAIN");
    assert_eq!(status(&sb, "client", "b"), "NXDOMAIN");
    assert!(
        !listens(&sb, "b"),
        "listener left in a namespace without user networks"
    );
    // Reconnecting reopens it at once (the port is free again).
    let b = attach(&sb, &agent, "b", "front", &[]);
    assert!(listens(&sb, "b"));
    assert_eq!(dig_addrs(&sb, "b", "b"), [b]);
}

#[test]
fn listeners_come_back_after_an_agent_restart() {
    let sb = Sandbox::new();
    let mut agent = sb.start_agent(NO_UPSTREAM);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.70.0.0/24", "front"],
    );
    attach(&sb, &agent, "client", "front", &[]);
    let web = attach(&sb, &agent, "web", "front", &[]);
    agent.kill9();
    assert!(!listens(&sb, "client"), "sockets die with the agent");
    let _agent = sb.start_agent(NO_UPSTREAM);
    // The API socket is bound before reconciliation ends: give it a moment.
    let reopened = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        listens(&sb, "client")
    });
    assert!(reopened, "listener not reopened after restart");
    assert_eq!(dig_addrs(&sb, "client", "web"), [web]);
}

#[test]
fn garbage_gets_no_answer_and_does_not_hurt() {
    let sb = Sandbox::new();
    let mut agent = sb.start_agent(NO_UPSTREAM);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.71.0.0/24", "front"],
    );
    let me = attach(&sb, &agent, "client", "front", &[]);
    let valid = query("client.", RecordType::A);
    let mut packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 3],
        vec![0; 12],
        valid[..valid.len() - 3].to_vec(),
        {
            let mut response = valid.clone();
            response[2] |= 0x80; // QR: a response, never answered
            response
        },
        {
            let mut loop_ptr = valid[..12].to_vec();
            loop_ptr[5] = 1; // one question whose name points at itself
            loop_ptr.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            loop_ptr
        },
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for len in [1usize, 13, 40, 300, 1400, 4000] {
        packets.push(
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed.to_le_bytes()[0]
                })
                .collect(),
        );
    }
    for p in &packets {
        let got = udp_probe(&sb, "client", resolver(), p, Duration::from_millis(300));
        if let Some(answer) = got {
            // Random bytes may happen to form a query; then it must be a proper answer to it.
            let m = Message::from_vec(&answer).expect("an answer parses");
            assert_eq!(m.message_type, MessageType::Response);
            assert_ne!(
                m.response_code,
                ResponseCode::NoError,
                "garbage answered NOERROR: {p:?}"
            );
        } else {
            assert!(
                p.len() < 12 || Message::from_vec(p).is_err() || p[2] & 0x80 != 0,
                "no answer to {p:?}"
            );
        }
    }
    // Garbage over TCP closes that connection only.
    sb.sh("ip netns exec client sh -c 'head -c 300 /dev/urandom | busybox nc -w 1 127.0.0.11 53 >/dev/null || true'");
    // Still alive and answering.
    let answer =
        udp_probe(&sb, "client", resolver(), &valid, Duration::from_secs(2)).expect("answer");
    let m = Message::from_vec(&answer).unwrap();
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data.to_string(), me);
    assert!(agent.pid() > 0);
    assert_eq!(dig_addrs(&sb, "client", "client"), [me]);
    assert_eq!(
        agent.stop().code(),
        Some(0),
        "agent exits cleanly after the abuse"
    );
}

/// A busybox root filesystem (Debian's busybox-static) under the sandbox's temp dir.
#[test]
fn containers_resolve_each_other_on_user_networks_only() {
    let sb = Sandbox::with_pid_namespace();
    let agent = sb.start_agent(NO_UPSTREAM);
    let root = rootfs(&sb);
    warren(
        &sb,
        &agent,
        &["network", "create", "--subnet", "10.72.0.0/24", "app"],
    );
    for (name, extra) in [("alpha", vec![]), ("beta", vec!["--network-alias", "svc"])] {
        let mut args = vec!["run", "-d", "--name", name, "--network", "app"];
        args.extend(extra);
        args.extend([root.as_str(), "sleep", "1000"]);
        warren(&sb, &agent, &args);
    }
    // The container's resolv.conf points at the embedded resolver.
    assert!(
        warren(&sb, &agent, &["exec", "alpha", "cat", "/etc/resolv.conf"]).contains("127.0.0.11")
    );
    let b_ip = warren(
        &sb,
        &agent,
        &["exec", "beta", "ip", "-4", "-o", "addr", "show", "eth0"],
    );
    let b_ip = b_ip
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // nslookup names its server: without one, busybox's nslookup only asks NAME.DOMAIN for the
    // domains of a `search` line (copied from the host's resolv.conf) and never NAME itself.
    for name in ["beta", "svc"] {
        let out = warren(
            &sb,
            &agent,
            &["exec", "alpha", "nslookup", name, "127.0.0.11"],
        );
        assert!(out.contains(&format!("Address: {b_ip}")), "{name}: {out}");
    }
    // The C library's resolver (busybox ping) goes through resolv.conf; with `ndots:0` it asks
    // for the bare name first, search domains or not.
    let out = warren(
        &sb,
        &agent,
        &["exec", "alpha", "ping", "-c", "1", "-W", "2", "svc"],
    );
    assert!(out.contains(&format!("PING svc ({b_ip})")), "{out}");
    // Default bridge: no resolution between containers.
    for name in ["gamma", "delta"] {
        warren(
            &sb,
            &agent,
            &["run", "-d", "--name", name, &root, "sleep", "1000"],
        );
    }
    let host = agent.host();
    let out = sb.run(
        bin("warren"),
        &[
            "-H",
            &host,
            "exec",
            "gamma",
            "nslookup",
            "-timeout=1",
            "delta",
        ],
    );
    assert!(
        !out.status.success(),
        "delta resolved on the default bridge: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Removing a container removes its name at once.
    warren(&sb, &agent, &["rm", "-f", "beta"]);
    let out = sb.run(
        bin("warren"),
        &[
            "-H",
            &host,
            "exec",
            "alpha",
            "nslookup",
            "svc",
            "127.0.0.11",
        ],
    );
    assert!(!out.status.success(), "svc still resolves after rm");
}
