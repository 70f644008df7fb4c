//! Root integration tests for the nftables firewall: real bridges, veths and namespaces inside
//! a private sandbox "host", real traffic (ping, busybox httpd/wget) across them.
mod common;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};

use common::Sandbox;
use nix::sched::CloneFlags;
use warren::firewall::{required_sysctls, Firewall, NetworkPolicy, PortMapping, Proto};
use warren::{ErrorKind, HasKind};

const NET1: &str = "0123456789ab";
const NET2: &str = "ba9876543210";
const HOST: &str = "192.0.2.1";

/// Run `f` on a short-lived thread inside the sandbox's network namespace, so the `nft` it
/// spawns programs the sandbox, never the root namespace.
fn in_sandbox<T: Send>(sb: &Sandbox, f: impl FnOnce() -> T + Send) -> T {
    let path = sb.netns_path();
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            let ns = std::fs::File::open(&path).expect("open sandbox netns");
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into sandbox");
            f()
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Long-running helpers (httpd) started by a test; killed when the test ends, even on panic.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn policy(id: &str, bridge: &str, subnet: &str) -> NetworkPolicy {
    NetworkPolicy {
        id: id.into(),
        bridge: bridge.into(),
        subnets: vec![subnet.parse().unwrap()],
        internal: false,
        icc: true,
        masquerade: true,
        host_binding_ipv4: None,
    }
}

fn publish(host_port: u16, container_ip: &str, container_port: u16) -> PortMapping {
    PortMapping {
        network_id: NET1.into(),
        proto: Proto::Tcp,
        host_ip: None,
        host_port,
        container_ip: container_ip.parse::<IpAddr>().unwrap(),
        container_port,
    }
}

/// The sandbox topology:
///   br-t1 10.31.0.1/24 ── c1 10.31.0.2, c2 10.31.0.3 (httpd :80 "hello-c2")
///   br-t2 10.32.0.1/24 ── c3 10.32.0.2
///   v-out 192.0.2.1/24 ── out 192.0.2.2 (httpd :9000, CGI echoes the peer address), which
///   routes the container subnets via the host so that only the firewall keeps it out.
fn topology(sb: &Sandbox) -> Daemons {
    sb.sh("set -e
         echo 1 > /proc/sys/net/ipv4/ip_forward
         # Prove nothing depends on br_netfilter: bridged frames skip the inet hooks.
         echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables
         echo 0 > /proc/sys/net/bridge/bridge-nf-call-ip6tables
         bridge() { ip link add $1 type bridge; ip addr add $2 dev $1; ip link set $1 up; }
         member() { # ns bridge addr gw
           ip netns add $1
           ip link add v-$1 type veth peer name eth0 netns $1
           ip link set v-$1 master $2 up
           ip -n $1 link set lo up
           ip -n $1 addr add $3 dev eth0
           ip -n $1 link set eth0 up
           ip -n $1 route add default via $4
         }
         bridge br-t1 10.31.0.1/24
         bridge br-t2 10.32.0.1/24
         member c1 br-t1 10.31.0.2/24 10.31.0.1
         member c2 br-t1 10.31.0.3/24 10.31.0.1
         member c3 br-t2 10.32.0.2/24 10.32.0.1
         ip netns add out
         ip link add v-out type veth peer name eth0 netns out
         ip addr add 192.0.2.1/24 dev v-out
         ip link set v-out up
         ip -n out link set lo up
         ip -n out addr add 192.0.2.2/24 dev eth0
         ip -n out link set eth0 up
         ip -n out route add 10.31.0.0/16 via 192.0.2.1
         ip -n out route add 10.32.0.0/16 via 192.0.2.1");
    let www = sb.dir.path().join("www-c2");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello-c2\n").unwrap();
    let peer = sb.dir.path().join("www-out");
    std::fs::create_dir_all(peer.join("cgi-bin")).unwrap();
    let cgi = peer.join("cgi-bin/peer");
    std::fs::write(
        &cgi,
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemons = Daemons(vec![
        httpd(sb, "c2", "80", &www),
        httpd(sb, "out", "9000", &peer),
    ]);
    wait_for(sb, "c2", "http://10.31.0.3/");
    wait_for(sb, "out", "http://192.0.2.2:9000/cgi-bin/peer");
    daemons
}

fn httpd(sb: &Sandbox, ns: &str, port: &str, dir: &Path) -> Child {
    sb.cmd("ip")
        .args([
            "netns", "exec", ns, "busybox", "httpd", "-f", "-p", port, "-h",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start busybox httpd")
}

fn wait_for(sb: &Sandbox, ns: &str, url: &str) {
    for _ in 0..100 {
        if fetch(sb, Some(ns), url).is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("httpd in {ns} does not answer {url}");
}

/// GET `url` from namespace `ns` (None = the sandbox host); the body, or None on failure.
fn fetch(sb: &Sandbox, ns: Option<&str>, url: &str) -> Option<String> {
    let mut args = vec![];
    if let Some(ns) = ns {
        args.extend(["ip", "netns", "exec", ns]);
    }
    // busybox 1.35 wget segfaults with -T, so coreutils timeout bounds it.
    args.extend(["timeout", "3", "busybox", "wget", "-q", "-O-", url]);
    let out = sb.run(args[0], &args[1..]);
    // httpd listens dual-stack, so IPv4 peers show up as [::ffff:a.b.c.d].
    out.status.success().then(|| {
        let body = String::from_utf8_lossy(&out.stdout);
        let body = body.trim();
        body.strip_prefix("[::ffff:")
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(body)
            .to_string()
    })
}

fn ping(sb: &Sandbox, ns: &str, addr: &str) -> bool {
    sb.run("ip", &["netns", "exec", ns, "ping", "-c1", "-W1", addr])
        .status
        .success()
}

fn set_sysctls(sb: &Sandbox, net: &NetworkPolicy) {
    for (key, value) in required_sysctls(net) {
        sb.sh(&format!("echo {value} > /proc/sys/{key}"));
    }
}

#[test]
fn isolation_masquerade_and_published_ports() {
    let sb = Sandbox::new();
    let _daemons = topology(&sb);
    let (n1, n2) = (
        policy(NET1, "br-t1", "10.31.0.0/24"),
        policy(NET2, "br-t2", "10.32.0.0/24"),
    );
    set_sysctls(&sb, &n1);
    set_sysctls(&sb, &n2);
    // Before the firewall, plain routing connects everything (so the checks below test it).
    assert!(ping(&sb, "c1", "10.32.0.2"));
    assert_eq!(
        fetch(&sb, Some("out"), "http://10.31.0.3/").as_deref(),
        Some("hello-c2")
    );

    let fw = Firewall::new("wtest");
    in_sandbox(&sb, || {
        fw.add_network(&n1).unwrap();
        fw.add_network(&n2).unwrap();
        fw.add_ports(&[publish(8080, "10.31.0.3", 80)]).unwrap();
    });

    // Same network talks; across networks is blocked both ways.
    assert!(ping(&sb, "c1", "10.31.0.3"));
    assert!(!ping(&sb, "c1", "10.32.0.2"));
    assert!(!ping(&sb, "c3", "10.31.0.2"));
    // Outbound leaves with the host's address.
    let peer = "http://192.0.2.2:9000/cgi-bin/peer";
    assert_eq!(fetch(&sb, Some("c1"), peer).as_deref(), Some(HOST));
    assert_eq!(fetch(&sb, Some("c3"), peer).as_deref(), Some(HOST));
    // Containers are not directly reachable from outside, published ports are.
    assert_eq!(fetch(&sb, Some("out"), "http://10.31.0.3/"), None);
    let published = format!("http://{HOST}:8080/");
    assert_eq!(
        fetch(&sb, Some("out"), &published).as_deref(),
        Some("hello-c2")
    );
    // From the host itself: a host address and loopback.
    assert_eq!(fetch(&sb, None, &published).as_deref(), Some("hello-c2"));
    assert_eq!(
        fetch(&sb, None, "http://127.0.0.1:8080/").as_deref(),
        Some("hello-c2")
    );
    // Hairpin: the publishing container itself and its neighbour, via the host address.
    assert_eq!(
        fetch(&sb, Some("c2"), &published).as_deref(),
        Some("hello-c2")
    );
    assert_eq!(
        fetch(&sb, Some("c1"), &published).as_deref(),
        Some("hello-c2")
    );
    // Another network reaches it too, through the host (like docker).
    assert_eq!(
        fetch(&sb, Some("c3"), &published).as_deref(),
        Some("hello-c2")
    );

    // Unpublishing is elements only and takes effect at once.
    in_sandbox(&sb, || fw.remove_ports(&[publish(8080, "10.31.0.3", 80)])).unwrap();
    assert_eq!(fetch(&sb, Some("out"), &published), None);
}

#[test]
fn internal_network_cannot_leave_or_be_entered() {
    let sb = Sandbox::new();
    let _daemons = topology(&sb);
    let n1 = policy(NET1, "br-t1", "10.31.0.0/24");
    let mut n2 = policy(NET2, "br-t2", "10.32.0.0/24");
    n2.internal = true;
    set_sysctls(&sb, &n1);
    set_sysctls(&sb, &n2);
    assert!(required_sysctls(&n2).is_empty());
    let fw = Firewall::new("wtest");
    in_sandbox(&sb, || fw.replace_all(&[n1, n2], &[])).unwrap();

    let peer = "http://192.0.2.2:9000/cgi-bin/peer";
    assert_eq!(
        fetch(&sb, Some("c3"), peer),
        None,
        "internal member reached outside"
    );
    assert!(
        !ping(&sb, "out", "10.32.0.2"),
        "outside reached internal member"
    );
    assert!(!ping(&sb, "c3", "10.31.0.2"));
    assert!(!ping(&sb, "c1", "10.32.0.2"));
    // Its gateway (the host) still answers; the other network still gets out.
    assert!(ping(&sb, "c3", "10.32.0.1"));
    assert_eq!(fetch(&sb, Some("c1"), peer).as_deref(), Some(HOST));
}

#[test]
fn icc_false_blocks_members_but_not_gateway_or_published_ports() {
    let sb = Sandbox::new();
    let _daemons = topology(&sb);
    let mut n1 = policy(NET1, "br-t1", "10.31.0.0/24");
    n1.icc = false;
    set_sysctls(&sb, &n1);
    assert!(ping(&sb, "c1", "10.31.0.3"));
    let fw = Firewall::new("wtest");
    in_sandbox(&sb, || {
        fw.replace_all(&[n1.clone()], &[publish(8080, "10.31.0.3", 80)])
    })
    .unwrap();

    assert!(!ping(&sb, "c1", "10.31.0.3"));
    assert_eq!(fetch(&sb, Some("c1"), "http://10.31.0.3/"), None);
    assert!(ping(&sb, "c1", "10.31.0.1"));
    let published = format!("http://{HOST}:8080/");
    assert_eq!(
        fetch(&sb, Some("c1"), &published).as_deref(),
        Some("hello-c2")
    );
    assert_eq!(
        fetch(&sb, Some("out"), &published).as_deref(),
        Some("hello-c2")
    );

    // Turning icc back on is a network rewrite, not a per-container change.
    n1.icc = true;
    in_sandbox(&sb, || fw.add_network(&n1)).unwrap();
    assert!(ping(&sb, "c1", "10.31.0.3"));
}

#[test]
fn replace_all_is_atomic_idempotent_and_spares_other_tables() {
    let sb = Sandbox::new();
    sb.sh("nft add table ip other
         nft add chain ip other c '{ type filter hook forward priority 10; }'
         nft add rule ip other c counter accept");
    let nets = [
        policy(NET1, "br-t1", "10.31.0.0/24"),
        policy(NET2, "br-t2", "10.32.0.0/24"),
    ];
    let base_ports = [publish(8080, "10.31.0.3", 80)];
    let more: Vec<PortMapping> = (0..50)
        .map(|i| publish(9000 + i, "10.31.0.2", 80))
        .collect();
    let fw = Firewall::new("wtest");

    in_sandbox(&sb, || {
        assert!(!fw.table_exists().unwrap());
        fw.replace_all(&nets, &base_ports).unwrap();
        assert!(fw.table_exists().unwrap());
        let rules = fw.rule_count().unwrap();
        assert!(rules > 0);
        fw.replace_all(&nets, &base_ports).unwrap();
        assert_eq!(fw.rule_count().unwrap(), rules, "replace_all is idempotent");

        // Ports are elements only: 50 more change no rule.
        fw.add_ports(&more).unwrap();
        assert_eq!(fw.rule_count().unwrap(), rules);
        fw.add_ports(&more).unwrap(); // identical again: no-op
                                      // The same host port to a different container is a conflict, and changes nothing.
        let clash = publish(9000, "10.31.0.3", 81);
        let err = fw
            .add_ports(&[publish(9100, "10.31.0.2", 80), clash])
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "{}",
            warren::error::chain(&err)
        );
        // 9100 was not half-applied: binding it elsewhere now is no conflict.
        fw.add_ports(&[publish(9100, "10.31.0.3", 99)]).unwrap();
        fw.remove_ports(&more).unwrap();
        fw.remove_ports(&more).unwrap(); // already gone: no error
        assert_eq!(fw.rule_count().unwrap(), rules);

        // Networks: remove is idempotent, add restores the same rule count.
        fw.remove_network(&nets[1]).unwrap();
        let fewer = fw.rule_count().unwrap();
        assert!(fewer < rules);
        fw.remove_network(&nets[1]).unwrap();
        assert_eq!(fw.rule_count().unwrap(), fewer);
        fw.add_network(&nets[1]).unwrap();
        fw.add_network(&nets[1]).unwrap();
        assert_eq!(fw.rule_count().unwrap(), rules);

        // Someone flushes our table: replace_all restores it.
        fw.delete_table().unwrap();
        fw.delete_table().unwrap();
        assert!(!fw.table_exists().unwrap());
        assert_eq!(fw.rule_count().unwrap(), 0);
        fw.replace_all(&nets, &base_ports).unwrap();
        assert_eq!(fw.rule_count().unwrap(), rules);
        // A second agent's table with another name is independent.
        let other = Firewall::new("wtest2");
        other.replace_all(&nets[..1], &[]).unwrap();
        other.delete_table().unwrap();
        assert_eq!(fw.rule_count().unwrap(), rules);
    });

    let listing = sb.ok("nft", &["list", "table", "ip", "other"]);
    assert!(
        listing.contains("counter"),
        "foreign table was touched:\n{listing}"
    );
}
