#!/usr/bin/python3
"""How the kernel alone scales when N veth ports join one Linux bridge (profiling aid, not part
of the benchmark): the attach sequence Warren performs, done with `ip`, with the same choices
(IPv6 off on both ends, bridge with its own MAC and multicast snooping off, one queue per veth
end), timed per step and summarised per tenth of the run.

  sudo labs/bench/attach/kernel_baseline.py [--n 1000] [--leaf-size K]

With --leaf-size K the ports do not join the bridge itself but hidden leaf bridges of at most K
ports, each hanging off the main bridge by a veth pair: one L2 segment as a tree of bridges,
which bounds the per-port kernel work by K instead of N (a design option, not what Warren
does). The run ends by pinging from the first namespace to the last, across the tree.

Runs itself in a throwaway sandbox (private network, mount and PID namespaces, tmpfs
/run/netns), so nothing touches the root namespace. Absolute times include starting `ip`
(printed as the spawn floor); what matters is how each column grows from the first row to the
last. Output: one line per tenth, then the spawn floor.
"""
import argparse
import os
import subprocess
import sys
import time

SANDBOX_ENV = "WARREN_KERNEL_BASELINE_SANDBOX"


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def timed(*argv):
    t0 = time.perf_counter()
    sh(*argv)
    return time.perf_counter() - t0


def p50_ms(vals):
    vals = sorted(vals)
    return vals[len(vals) // 2] * 1e3


ONE_QUEUE = ["numtxqueues", "1", "numrxqueues", "1"]


def add_bridge(name, index):
    sh("ip", "link", "add", name, "address", "02:42:00:00:%02x:%02x" % (index >> 8, index & 255),
       "type", "bridge", "mcast_snooping", "0")
    sh("ip", "link", "set", name, "up")


def leaf_for(port, leaf_size):
    """The bridge port number `port` (from 1) joins; leaves are made as they are needed."""
    if not leaf_size:
        return "br0"
    leaf = (port - 1) // leaf_size
    name = "lb%d" % leaf
    if (port - 1) % leaf_size == 0:
        add_bridge(name, leaf + 1)
        sh("ip", "link", "add", "up%d" % leaf, *ONE_QUEUE, "master", "br0", "type", "veth",
           "peer", "name", "dn%d" % leaf, *ONE_QUEUE)
        sh("ip", "link", "set", "dn%d" % leaf, "master", name)
        for end in ("up%d" % leaf, "dn%d" % leaf):
            sh("ip", "link", "set", end, "up")
    return name


def measure(n, leaf_size):
    sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
    add_bridge("br0", 0)
    steps = []
    for i in range(1, n + 1):
        ns, host = "c%d" % i, "vh%d" % i
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        master = leaf_for(i, leaf_size)
        create = timed("ip", "link", "add", host, *ONE_QUEUE, "master", master, "type", "veth",
                       "peer", "name", "eth0", "netns", ns, *ONE_QUEUE)
        host_up = timed("ip", "link", "set", host, "up")
        # nsenter, not `ip -n`: ip also remounts /sys for the namespace, a cost of its own.
        peer_up = timed("nsenter", "--net=/run/netns/" + ns, "ip", "link", "set", "eth0", "up")
        steps.append((create, host_up, peer_up))
    tenth = max(1, n // 10)
    print("ports        create+enslave  host end up  container end up  total   (p50 ms)")
    for k in range(0, n, tenth):
        w = steps[k:k + tenth]
        print("%4d-%-4d    %8.2f      %8.2f      %8.2f      %8.2f" % (
            k + 1, k + len(w), p50_ms([c for c, _, _ in w]), p50_ms([h for _, h, _ in w]),
            p50_ms([p for _, _, p in w]), p50_ms([sum(s) for s in w])))
    print("spawn floor (ip -V): %.2f ms" % p50_ms([timed("ip", "-V") for _ in range(50)]))
    for i, addr in ((1, "10.99.0.1/16"), (n, "10.99.255.254/16")):
        sh("ip", "-n", "c%d" % i, "addr", "add", addr, "dev", "eth0")
    reached = subprocess.run(["ip", "netns", "exec", "c1", "ping", "-c1", "-W2", "10.99.255.254"],
                             stdout=subprocess.DEVNULL).returncode == 0
    print("first namespace reaches the last: %s" % ("yes" if reached else "NO"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--leaf-size", type=int, default=0, help="ports per leaf bridge (0: one bridge)")
    a = ap.parse_args()
    if os.environ.get(SANDBOX_ENV):
        measure(a.n, a.leaf_size)
        return
    if os.getuid() != 0:
        sys.exit("kernel_baseline: needs root (namespaces)")
    env = dict(os.environ, **{SANDBOX_ENV: "1"})
    script = ("mount -t tmpfs -o mode=0755 kernel-baseline /run/netns && ip link set lo up && "
              'exec "$@"')
    sys.exit(subprocess.run(
        ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--net", "--mount", "--pid", "--fork",
         "--kill-child", "--mount-proc", "--propagation", "private", "--", "sh", "-c", script, "sh",
         sys.executable, os.path.abspath(__file__), "--n", str(a.n), "--leaf-size", str(a.leaf_size)],
        env=env).returncode)


if __name__ == "__main__":
    main()
