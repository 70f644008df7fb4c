#!/usr/bin/python3
"""Attach/detach latency: Warren against netavark 1.4 and the CNI bridge plugin (stdlib only).

run.sh starts each subcommand in its own sandbox (private network, mount and PID namespaces
with a tmpfs on /run/netns); this file never touches the root namespace by itself.

  bench.py warren   --out W.json [--n 1000] [--cli-n 100] [--warren DIR]
  bench.py netavark --out N.json [--n 200]
  bench.py cni      --out C.json [--n 200]
  bench.py report   --warren W.json --netavark N.json --cni C.json [--out results.json] [--json]

Durations are measured with perf_counter_ns around exactly one operation and kept in
nanoseconds; summaries are in milliseconds (nearest-rank percentiles).
"""
import argparse
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import deb_version, settle, summary  # noqa: E402

NETAVARK = "/usr/lib/podman/netavark"
CNI_DIR = "/usr/lib/cni"
API = "/v1.50"
PORT_BASE = 20000  # every 10th attach publishes PORT_BASE + i -> 80/tcp


# ---------------------------------------------------------------- statistics

def slope_ms(vals_ns):
    """Least-squares slope of duration against index, ms per additional item."""
    n = len(vals_ns)
    if n < 2:
        return None
    mx, my = (n + 1) / 2.0, sum(vals_ns) / n
    den = sum((x - mx) ** 2 for x in range(1, n + 1))
    num = sum((x - mx) * (y - my) for x, y in zip(range(1, n + 1), vals_ns))
    return round(num / den / 1e6, 6)


def cpu_sample():
    """(wall, system-wide busy jiffies, total jiffies, loadavg) from global /proc files
    (visible inside a PID namespace too)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return time.time(), sum(v) - idle, sum(v), os.getloadavg()


def cpu_window(a, b):
    busy, tot = b[1] - a[1], b[2] - a[2]
    return {"seconds": round(b[0] - a[0], 1),
            "machine_cpu_busy_pct": round(100.0 * busy / tot, 1) if tot else None,
            "loadavg_start": [round(x, 2) for x in a[3]],
            "loadavg_end": [round(x, 2) for x in b[3]]}


def series(name, vals_ns):
    """Summary plus first/last-10 medians and slope of one per-operation series."""
    out = summary(vals_ns)
    out["first10_p50_ms"] = summary(vals_ns[:10]).get("p50_ms")
    out["last10_p50_ms"] = summary(vals_ns[-10:]).get("p50_ms")
    out["slope_ms_per_item"] = slope_ms(vals_ns)
    out["raw_ns"] = vals_ns
    return out


def run(argv, stdin=None, env=None, check=True):
    cp = subprocess.run(argv, input=stdin, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and cp.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (" ".join(argv), cp.returncode,
                                                      cp.stderr.decode(errors="replace")[-1500:]))
    return cp


def timed(argv, stdin=None, env=None):
    t0 = time.perf_counter_ns()
    cp = run(argv, stdin, env)
    return time.perf_counter_ns() - t0, cp


def netns_add(name):
    run(["ip", "netns", "add", name])


def netns_del(name):
    run(["ip", "netns", "del", name], check=False)


def ruleset_lines():
    """Rule-like lines of the whole ruleset (same heuristic as the peer scripts)."""
    text = run(["nft", "list", "ruleset"]).stdout.decode()
    return sum(1 for ln in text.splitlines() if "counter" in ln or "jump" in ln or "masquerade" in ln)


def nft_rule_objects(family, table):
    cp = run(["nft", "-j", "list", "table", family, table], check=False)
    if cp.returncode != 0:
        return None
    return sum(1 for o in json.loads(cp.stdout)["nftables"] if "rule" in o)


def ping(ns, ip):
    if not shutil.which("ping"):
        return None
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-i0.2", "-w3", ip],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def write_json(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def become_subreaper():
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


# ---------------------------------------------------------------- Warren

class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX: one persistent (keep-alive) connection to the agent."""

    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Agent:
    def __init__(self, sock_path):
        self.path = sock_path
        self.conn = UnixHTTPConnection(sock_path)

    def call(self, method, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, url, body=data, headers=headers)
        resp = self.conn.getresponse()
        payload = resp.read()  # always drain, so the connection stays usable
        if resp.will_close:
            self.conn.close()
            self.conn = UnixHTTPConnection(self.path)
        return resp.status, payload

    def ok(self, method, url, body=None):
        status, payload = self.call(method, url, body)
        if status >= 300:
            raise RuntimeError("%s %s -> %d %s" % (method, url, status, payload[:500]))
        return payload

    def probe(self, method, url, body=None, expect=200, reps=20):
        """Median ns of `reps` identical requests that must answer `expect` (diagnostics)."""
        out = []
        for _ in range(reps):
            data = None if body is None else json.dumps(body).encode()
            t0 = time.perf_counter_ns()
            self.conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            payload = resp.read()
            out.append(time.perf_counter_ns() - t0)
            if resp.status != expect:
                raise RuntimeError("%s %s -> %d (wanted %d) %s" % (method, url, resp.status, expect, payload[:300]))
        return round(sorted(out)[len(out) // 2] / 1e6, 3)

    def timed(self, method, url, body=None):
        data = json.dumps(body).encode()
        t0 = time.perf_counter_ns()
        self.conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        payload = resp.read()
        dt = time.perf_counter_ns() - t0
        if resp.status >= 300:
            raise RuntimeError("%s %s -> %d %s" % (method, url, resp.status, payload[:500]))
        if resp.will_close:
            raise RuntimeError("agent closed the keep-alive connection")
        return dt


def start_warrend(bin_dir, workdir):
    sock = os.path.join(workdir, "warren.sock")
    cfg = os.path.join(workdir, "daemon.json")
    with open(cfg, "w") as f:
        f.write("{}\n")
    log = open(os.path.join(workdir, "warrend.log"), "w")
    argv = [os.path.join(bin_dir, "warrend"), "--config-file", cfg, "-H", "unix://" + sock,
            "--data-root", os.path.join(workdir, "data"), "--exec-root", os.path.join(workdir, "exec")]
    if os.environ.get("WARREN_BENCH_STRACE"):
        # Profiling aid: WARREN_BENCH_STRACE="-f -T -tt -o /path/trace" (skews timings)
        argv = ["strace"] + os.environ["WARREN_BENCH_STRACE"].split() + argv
    elif os.environ.get("WARREN_BENCH_WRAP"):
        # Profiling aid: any command prefix, e.g. WARREN_BENCH_WRAP="perf record -F 999 -g -o F --"
        argv = os.environ["WARREN_BENCH_WRAP"].split() + argv
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("warrend exited with %s; see %s" % (proc.returncode, log.name))
        if os.path.exists(sock):
            try:
                status, _ = Agent(sock).call("GET", "/_ping")
                if status == 200:
                    return proc, sock
            except OSError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("warrend did not answer on %s within 30 s" % sock)


def bench_warren(a):
    become_subreaper()
    n, cli_n = a.n, a.cli_n
    work = tempfile.mkdtemp(prefix="warren-bench.", dir=a.workdir)
    proc, sock = start_warrend(a.warren, work)
    agent = Agent(sock)
    net = "benchnet"
    res = {"tool": "warren", "n": n, "cli_n": cli_n, "workdir": work}
    c0 = cpu_sample()
    try:
        version = json.loads(agent.ok("GET", API + "/version"))
        res["version"] = {k: version.get(k) for k in ("Version", "ApiVersion", "GitCommit")}
        agent.ok("POST", API + "/networks/create",
                 {"Name": net, "Driver": "bridge",
                  "IPAM": {"Config": [{"Subnet": "10.91.0.0/16", "Gateway": "10.91.0.1"}]}})
        url_c = "%s/networks/%s/connect" % (API, net)
        url_d = "%s/networks/%s/disconnect" % (API, net)

        # HTTP round-trip floor: the cheapest request on the same keep-alive connection.
        floor = []
        for _ in range(200):
            t0 = time.perf_counter_ns()
            agent.ok("GET", "/_ping")
            floor.append(time.perf_counter_ns() - t0)
        res["http_ping_floor"] = summary(floor)

        # Diagnostics, at N=10 and N=n: a disconnect of a namespace that is not connected walks
        # the endpoint lookup and answers 404 (cost of finding an endpoint among N); inspecting
        # the network lists all N endpoints.
        netns_add("bw-probe")
        probes = {}

        def probe(at):
            probes["disconnect_404_p50_ms_at_%d" % at] = agent.probe(
                "POST", "%s/networks/%s/disconnect" % (API, net), {"Container": "netns:bw-probe"}, expect=404)
            probes["inspect_p50_ms_at_%d" % at] = agent.probe("GET", "%s/networks/%s" % (API, net), reps=10)

        # HTTP attach: fresh namespace (untimed), one timed POST .../connect.
        attach, attach_port, attach_noport = [], [], []
        names = ["bw-c%d" % i for i in range(1, n + 1)]
        for i, name in enumerate(names, 1):
            netns_add(name)
            body = {"Container": "netns:" + name}
            if i % 10 == 0:
                body["Publish"] = ["%d:80/tcp" % (PORT_BASE + i)]
            dt = agent.timed("POST", url_c, body)
            attach.append(dt)
            (attach_port if i % 10 == 0 else attach_noport).append(dt)
            if i == 10:
                res["nft_rules_at_10"] = nft_rule_objects("inet", "warren")
                res["ruleset_lines_at_10"] = ruleset_lines()
                probe(10)
        res["nft_rules_at_n"] = nft_rule_objects("inet", "warren")
        res["ruleset_lines_at_n"] = ruleset_lines()
        probe(n)
        res["probes"] = probes
        info = json.loads(agent.ok("GET", "%s/networks/%s" % (API, net)))
        ips = {c.get("Name"): c.get("IPv4Address", "").split("/")[0]
               for c in (info.get("Containers") or {}).values()}
        res["endpoints_listed"] = len(ips)
        last_ip = ips.get("netns:" + names[-1]) or next(iter(ips.values()), "")
        res["ping_first_to_last_ok"] = ping(names[0], last_ip) if last_ip else None
        c1 = cpu_sample()

        # HTTP detach, in attach order.
        detach = []
        for name in names:
            detach.append(agent.timed("POST", url_d, {"Container": "netns:" + name}))
        res["nft_rules_after_detach"] = nft_rule_objects("inet", "warren")
        for name in names:
            netns_del(name)
        c2 = cpu_sample()
        # The kernel tears the n namespaces down in the background; let it finish first.
        res["settle_s_before_cli"] = settle()
        c2_cli = cpu_sample()

        # CLI subset (process spawn included), like-for-like with netavark/CNI.
        cli = [os.path.join(a.warren, "warren"), "-H", "unix://" + sock, "network"]
        cli_attach, cli_detach = [], []
        cnames = ["bwcli-c%d" % i for i in range(1, cli_n + 1)]
        for i, name in enumerate(cnames, 1):
            netns_add(name)
            argv = cli + ["connect", net, "--netns", name]
            if i % 10 == 0:
                argv[-2:-2] = ["-p", "%d:80/tcp" % (PORT_BASE + n + i)]
            cli_attach.append(timed(argv)[0])
        for name in cnames:
            cli_detach.append(timed(cli + ["disconnect", net, "--netns", name])[0])
            netns_del(name)
        true_floor = [timed(["/bin/true"])[0] for _ in range(50)]
        c3 = cpu_sample()

        res["attach"] = series("attach", attach)
        res["attach_with_port"] = summary(attach_port)
        res["attach_without_port"] = summary(attach_noport)
        res["detach"] = series("detach", detach)
        res["cli_attach"] = series("cli_attach", cli_attach)
        res["cli_detach"] = series("cli_detach", cli_detach)
        res["spawn_floor_bin_true"] = summary(true_floor)
        res["cpu"] = {"attach": cpu_window(c0, c1), "detach": cpu_window(c1, c2),
                      "cli": cpu_window(c2_cli, c3)}
        agent.ok("DELETE", "%s/networks/%s" % (API, net))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    write_json(a.out, res)
    print("warren: attach p50 %.3f ms, detach p50 %.3f ms, cli attach p50 %.3f ms, rules %s -> %s"
          % (res["attach"]["p50_ms"], res["detach"]["p50_ms"], res["cli_attach"]["p50_ms"],
             res["nft_rules_at_10"], res["nft_rules_at_n"]), flush=True)


# ---------------------------------------------------------------- netavark

def netavark_options(i, ports):
    opts = {
        "container_id": "%064x" % (0xC0FFEE0000 + i),
        "container_name": "nvc%d" % i,
        "networks": {"nvnet": {"interface_name": "eth0",
                               "static_ips": ["10.89.%d.%d" % ((i + 1) // 256, (i + 1) % 256)]}},
        "network_info": {"nvnet": {
            "name": "nvnet", "id": "%064x" % 0xBEEF, "driver": "bridge",
            "network_interface": "nvbr0",
            "subnets": [{"subnet": "10.89.0.0/16", "gateway": "10.89.0.1"}],
            "ipv6_enabled": False, "internal": False, "dns_enabled": False,
        }},
        "port_mappings": None,
    }
    if ports:
        opts["port_mappings"] = [{"host_ip": "", "container_port": 80, "host_port": PORT_BASE + i,
                                  "range": 1, "protocol": "tcp"}]
    return opts


def bench_netavark(a):
    become_subreaper()
    work = tempfile.mkdtemp(prefix="netavark-bench.", dir=a.workdir)
    names = ["nv-c%d" % i for i in range(1, a.n + 1)]
    payloads = [json.dumps(netavark_options(i, i % 10 == 0)).encode() for i in range(1, a.n + 1)]
    setup, teardown = [], []
    c0 = cpu_sample()
    try:
        for i, name in enumerate(names, 1):
            netns_add(name)
            dt, _ = timed([NETAVARK, "--config", work, "setup", "/run/netns/" + name], payloads[i - 1])
            setup.append(dt)
        rules = ruleset_lines()
        ok = ping(names[0], "10.89.%d.%d" % ((a.n + 1) // 256, (a.n + 1) % 256))
        c1 = cpu_sample()
        for i, name in enumerate(names, 1):
            dt, _ = timed([NETAVARK, "--config", work, "teardown", "/run/netns/" + name], payloads[i - 1])
            teardown.append(dt)
            netns_del(name)
        c2 = cpu_sample()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {"tool": "netavark", "n": a.n,
           "version": run([NETAVARK, "--version"], check=False).stdout.decode().strip(),
           "deb_version": deb_version("netavark"), "iptables": deb_version("iptables"),
           "config": "one bridge network 10.89.0.0/16, static IPs, dns off, iptables(-nft) driver, "
                     "every 10th container with one TCP port mapping",
           "setup": series("setup", setup), "teardown": series("teardown", teardown),
           "setup_first_ms": round(setup[0] / 1e6, 3),
           "setup_with_port": summary(setup[9::10]),
           "setup_without_port": summary([v for i, v in enumerate(setup, 1) if i % 10]),
           "ruleset_lines_at_n": rules, "ping_first_to_last_ok": ok,
           "cpu": {"setup": cpu_window(c0, c1), "teardown": cpu_window(c1, c2)}}
    write_json(a.out, res)
    print("netavark: setup p50 %.3f ms, teardown p50 %.3f ms" % (res["setup"]["p50_ms"], res["teardown"]["p50_ms"]),
          flush=True)


# ---------------------------------------------------------------- CNI

def cni_netconf(datadir):
    return {
        "cniVersion": "1.0.0", "name": "bcninet", "type": "bridge", "bridge": "bcni0",
        "isGateway": True, "ipMasq": True, "hairpinMode": False,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.90.0.0/16", "gateway": "10.90.0.1"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": datadir},
    }


def bench_cni(a):
    work = tempfile.mkdtemp(prefix="cni-bench.", dir=a.workdir)
    conf = json.dumps(cni_netconf(os.path.join(work, "ipam"))).encode()
    plugin = os.path.join(CNI_DIR, "bridge")
    names = ["cni-c%d" % i for i in range(1, a.n + 1)]

    def env(cmd, i, name):
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": cmd,
                "CNI_CONTAINERID": "bcni%060x" % i, "CNI_NETNS": "/run/netns/" + name,
                "CNI_IFNAME": "eth0", "CNI_PATH": CNI_DIR}

    add, dele, ips = [], [], []
    c0 = cpu_sample()
    try:
        for i, name in enumerate(names, 1):
            netns_add(name)
            dt, cp = timed([plugin], conf, env("ADD", i, name))
            add.append(dt)
            ips.append(json.loads(cp.stdout)["ips"][0]["address"].split("/")[0])
        rules = ruleset_lines()
        ok = ping(names[0], ips[-1])
        c1 = cpu_sample()
        for i, name in enumerate(names, 1):
            dt, _ = timed([plugin], conf, env("DEL", i, name))
            dele.append(dt)
            netns_del(name)
        c2 = cpu_sample()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {"tool": "cni bridge+host-local", "n": a.n,
           "deb_version": deb_version("containernetworking-plugins"), "iptables": deb_version("iptables"),
           "config": "bridge plugin, isGateway, ipMasq:true, host-local 10.90.0.0/16 (no port mappings: "
                     "the bridge plugin has none)",
           "add": series("add", add), "del": series("del", dele),
           "ruleset_lines_at_n": rules, "ping_first_to_last_ok": ok,
           "cpu": {"add": cpu_window(c0, c1), "del": cpu_window(c1, c2)}}
    write_json(a.out, res)
    print("cni: ADD p50 %.3f ms, DEL p50 %.3f ms" % (res["add"]["p50_ms"], res["del"]["p50_ms"]), flush=True)


# ---------------------------------------------------------------- report

def ratio(num, den):
    return round(num / den, 4) if num is not None and den else None


def target(name, value, limit, detail):
    return {"name": name, "value": value, "target": limit,
            "pass": value is not None and value <= limit, "detail": detail}


def strip_raw(obj):
    if isinstance(obj, dict):
        return {k: strip_raw(v) for k, v in obj.items() if not k.endswith("raw_ns")}
    return obj


def report(a):
    w = json.load(open(a.warren))
    nv = json.load(open(a.netavark)) if a.netavark and os.path.exists(a.netavark) else None
    cni = json.load(open(a.cni)) if a.cni and os.path.exists(a.cni) else None
    get = lambda d, *path: None if d is None else (d.get(path[0]) if len(path) == 1 else get(d.get(path[0]), *path[1:]))
    wa, wd = w["attach"]["p50_ms"], w["detach"]["p50_ms"]
    targets = [
        target("warren attach p50 / netavark setup p50", ratio(wa, get(nv, "setup", "p50_ms")), 0.1,
               "%s ms / %s ms" % (wa, get(nv, "setup", "p50_ms"))),
        target("warren attach p50 / CNI ADD p50", ratio(wa, get(cni, "add", "p50_ms")), 0.125,
               "%s ms / %s ms" % (wa, get(cni, "add", "p50_ms"))),
        target("warren detach p50 / netavark teardown p50", ratio(wd, get(nv, "teardown", "p50_ms")), 0.25,
               "%s ms / %s ms" % (wd, get(nv, "teardown", "p50_ms"))),
        target("warren attach last-10 p50 / first-10 p50",
               ratio(w["attach"]["last10_p50_ms"], w["attach"]["first10_p50_ms"]), 1.2,
               "%s ms / %s ms" % (w["attach"]["last10_p50_ms"], w["attach"]["first10_p50_ms"])),
    ]
    r10, rn = w.get("nft_rules_at_10"), w.get("nft_rules_at_n")
    targets.append({"name": "nft rules (inet warren) at N=10 == at N=%d" % w["n"], "value": [r10, rn],
                    "target": "equal", "pass": r10 is not None and r10 == rn,
                    "detail": "%s vs %s rule objects" % (r10, rn)})
    info = {
        "cli attach p50 / netavark setup p50": ratio(w["cli_attach"]["p50_ms"], get(nv, "setup", "p50_ms")),
        "cli attach p50 / CNI ADD p50": ratio(w["cli_attach"]["p50_ms"], get(cni, "add", "p50_ms")),
        "cli detach p50 / netavark teardown p50": ratio(w["cli_detach"]["p50_ms"], get(nv, "teardown", "p50_ms")),
        "cli detach p50 / CNI DEL p50": ratio(w["cli_detach"]["p50_ms"], get(cni, "del", "p50_ms")),
        "warren detach p50 / CNI DEL p50": ratio(wd, get(cni, "del", "p50_ms")),
    }
    out = {"benchmark": "attach", "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "host": {"kernel": os.uname().release, "nproc": os.cpu_count()},
           "loadavg": {"start": a.load_start, "end": " ".join("%.2f" % x for x in os.getloadavg())},
           "targets": targets, "all_pass": all(t["pass"] for t in targets),
           "secondary_ratios": info,
           "warren": strip_raw(w), "netavark": strip_raw(nv), "cni": strip_raw(cni)}
    if a.out:
        write_json(a.out, out)
        raw = {"warren": w, "netavark": nv, "cni": cni}
        write_json(a.out.replace(".json", "-raw.json"), raw)
    if a.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return
    f = lambda v: "-" if v is None else ("%.3f" % v if isinstance(v, float) else str(v))
    rows = [("warren attach (HTTP, keep-alive)", w["attach"]),
            ("  with 1 published port", w["attach_with_port"]),
            ("  without ports", w["attach_without_port"]),
            ("warren detach (HTTP)", w["detach"]),
            ("warren attach (CLI, spawn incl.)", w["cli_attach"]),
            ("warren detach (CLI)", w["cli_detach"]),
            ("warren GET /_ping floor", w["http_ping_floor"]),
            ("/bin/true spawn floor", w["spawn_floor_bin_true"])]
    if nv:
        rows += [("netavark setup", nv["setup"]), ("  with 1 port mapping", nv["setup_with_port"]),
                 ("  without ports", nv["setup_without_port"]), ("netavark teardown", nv["teardown"])]
    if cni:
        rows += [("CNI bridge ADD (ipMasq)", cni["add"]), ("CNI bridge DEL", cni["del"])]
    print("\n%-36s %6s %9s %9s %9s %9s %9s" % ("operation", "n", "p50 ms", "p95 ms", "first10", "last10", "max ms"))
    for name, s in rows:
        print("%-36s %6s %9s %9s %9s %9s %9s" % (name, s.get("n"), f(s.get("p50_ms")), f(s.get("p95_ms")),
                                                  f(s.get("first10_p50_ms")), f(s.get("last10_p50_ms")),
                                                  f(s.get("max_ms"))))
    print("\nnft rule objects in 'inet warren': N=10: %s, N=%d: %s, after detach: %s"
          % (r10, w["n"], rn, w.get("nft_rules_after_detach")))
    if w.get("probes"):
        print("diagnostics (p50 ms): " + ", ".join("%s %s" % kv for kv in sorted(w["probes"].items())))
    print("ruleset rule lines: warren N=%d %s | netavark N=%s %s | CNI N=%s %s"
          % (w["n"], w.get("ruleset_lines_at_n"), get(nv, "n"), get(nv, "ruleset_lines_at_n"),
             get(cni, "n"), get(cni, "ruleset_lines_at_n")))
    print("reachability (ping first -> last): warren %s, netavark %s, cni %s"
          % (w.get("ping_first_to_last_ok"), get(nv, "ping_first_to_last_ok"), get(cni, "ping_first_to_last_ok")))
    print("\n%-48s %10s %8s  %s" % ("target", "value", "limit", "result"))
    for t in targets:
        v = t["value"] if not isinstance(t["value"], float) else "%.4f" % t["value"]
        print("%-48s %10s %8s  %s  (%s)" % (t["name"], v, t["target"], "PASS" if t["pass"] else "FAIL", t["detail"]))
    print("\nsecondary (no target): " + ", ".join("%s = %s" % (k, f(v)) for k, v in info.items()))
    print("loadavg: start %s, end %s" % (out["loadavg"]["start"], out["loadavg"]["end"]))
    for tool, d in (("warren", w), ("netavark", nv), ("cni", cni)):
        if d:
            print("machine CPU busy %s: %s" % (tool, ", ".join(
                "%s %s%% (%ss)" % (k, v["machine_cpu_busy_pct"], v["seconds"]) for k, v in d["cpu"].items())))
    if a.out:
        print("\nwrote %s (and %s with raw samples)" % (a.out, a.out.replace(".json", "-raw.json")))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, n in (("warren", 1000), ("netavark", 200), ("cni", 200)):
        p = sub.add_parser(name)
        p.add_argument("--n", type=int, default=n)
        p.add_argument("--out", required=True)
        p.add_argument("--workdir", default="/var/tmp")
        if name == "warren":
            p.add_argument("--cli-n", type=int, default=100)
            p.add_argument("--warren", required=True, help="directory with warren and warrend")
            p.add_argument("--keep", action="store_true", help="keep the agent's work directory")
    p = sub.add_parser("report")
    p.add_argument("--warren", required=True)
    p.add_argument("--netavark")
    p.add_argument("--cni")
    p.add_argument("--out")
    p.add_argument("--json", action="store_true")
    p.add_argument("--load-start", default="")
    a = ap.parse_args()
    {"warren": bench_warren, "netavark": bench_netavark, "cni": bench_cni, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
