#!/usr/bin/python3
"""Container start latency: `warren run --rm` against `crun run` and `podman run --rm` (stdlib only).

run.sh starts `measure` inside its sandbox (private network, mount and PID namespaces, tmpfs on
/run and /var/lib/containers); `report` runs outside and turns the raw samples into the table.

  bench.py measure --work DIR --tar ROOTFS.tar --warren BINDIR --out RAW.json
                   [--baseline BINDIR] [--n 100] [--podman-n 100] [--warmup 5] [--block 10]
                   [--gap MS] [--seed 1]
  bench.py report  --raw RAW.json [--out results.json] [--json FILE|-] [--load-start "L1 L5 L15"]

Each sample is the wall time of one command (fork/exec included, like a user typing it),
measured with perf_counter_ns; summaries are in milliseconds, nearest-rank percentiles.
Variants are interleaved in blocks: every round runs each variant --block times (10) back to
back, in a shuffled (seeded) order of variants, after one untimed run of that variant. Blocks,
because back-to-back runs are what `crun run` was measured as (the peer reference: 9 ms) and
what sequential use looks like: the same crun took 7 ms back to back, 21 ms with 50 ms pauses
and 16 ms when it always followed podman (not investigated; probably the cgroup rwsem waiting
for an RCU grace period after an idle moment, as crun moves its processes into every v1
hierarchy). The untimed first run absorbs the previous variant's aftermath (its
network namespace being torn down, podman's cleanup process, Warren's background deletion).
Rounds spread the variants over the whole run, so load from elsewhere hits all alike.

--baseline BINDIR adds a second agent built from another commit (in a network namespace of
its own, so the two default bridges and nft tables do not meet) and its two `warren run`
variants, interleaved with the rest: the difference is what a change costs a container start
(issue 12's budget for confinement: at most 1 ms).
"""
import argparse
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import deb_version, summary  # noqa: E402

API = "/v1.50"
IMAGE_W = "wsb-bb:1"           # warren's name for the imported busybox tarball
IMAGE_P = "localhost/wsb-bb"   # podman's
NET_W = "wsbnet"               # warren's user bridge network
SUBNET_W = "10.93.0.0/24"
# This VM's hard rlimits are below podman's defaults and root lacks CAP_SYS_RESOURCE, so
# podman needs explicit, lower ones (the peer run used the same).
PODMAN_ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]

# name, label, peer group (for ratios)
VARIANTS = [
    ("crun", "crun run (new empty netns)"),
    ("warren_none", "warren run --rm --network none"),
    ("warren_bridge", "warren run --rm --network <user bridge>"),
    ("podman_none", "podman run --rm --network none"),
    ("podman_bridge", "podman run --rm (default bridge)"),
]
BASELINE_VARIANTS = [
    ("baseline_none", "baseline: warren run --rm --network none"),
    ("baseline_bridge", "baseline: warren run --rm --network <bridge>"),
]
# (name, this build's variant, the baseline's, limit in ms of p50 difference)
BASELINE_TARGETS = [
    ("warren --network none p50 - baseline p50 (ms)", "warren_none", "baseline_none", 1.0),
    ("warren --network <bridge> p50 - baseline p50 (ms)", "warren_bridge", "baseline_bridge", 1.0),
]
TARGETS = [  # (name, numerator, denominator, limit)
    ("warren --network none p50 / crun run p50", "warren_none", "crun", 3.0),
    ("warren --network <bridge> p50 / crun run p50", "warren_bridge", "crun", 4.0),
]
# A round in which others used more than this share of the machine is "disturbed".
FOREIGN_BUSY_PCT = 15
SECONDARY = [
    ("warren none / podman none (p50)", "warren_none", "podman_none"),
    ("warren bridge / podman bridge (p50)", "warren_bridge", "podman_bridge"),
    ("warren bridge - warren none (ms, p50)", "warren_bridge", "warren_none"),
    ("podman none / crun (p50)", "podman_none", "crun"),
]


# ---------------------------------------------------------------- statistics

HZ = os.sysconf("SC_CLK_TCK")


def own_cpu_jiffies(pids):
    """CPU used by this driver, every descendant it has reaped (RUSAGE_CHILDREN counts the
    orphans it reaped as a subreaper too) and the still-running `pids` (warrend), in jiffies."""
    t = os.times()
    own = (t.user + t.system + t.children_user + t.children_system) * HZ
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            own += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return own


def cpu_sample(pids=()):
    """(wall, machine-wide busy jiffies, total jiffies, loadavg, our jiffies); /proc/stat is
    global, so this works inside the sandbox's PID namespace."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return time.time(), sum(v) - idle, sum(v), os.getloadavg(), own_cpu_jiffies(pids)


def cpu_window(a, b):
    """Machine CPU busy share over a window, and the share used by others than this benchmark
    (busy minus ours; kernel work on our behalf in kworkers counts as foreign, so a few % of
    "foreign" is normal). 100 % = both cores."""
    busy, tot, ours = b[1] - a[1], b[2] - a[2], b[4] - a[4]
    return {"seconds": round(b[0] - a[0], 1),
            "machine_cpu_busy_pct": round(100.0 * busy / tot, 1) if tot else None,
            "foreign_cpu_pct": round(max(0.0, 100.0 * (busy - ours) / tot), 1) if tot else None,
            "loadavg_start": [round(x, 2) for x in a[3]],
            "loadavg_end": [round(x, 2) for x in b[3]]}


# ---------------------------------------------------------------- processes

class Reaper:
    """We are a subreaper: shims, conmon and podman's cleanup processes are re-parented to
    us when their parents exit. Reap those zombies between samples, but never warrend (whose
    status Popen wants) or a child we are running."""

    def __init__(self):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        self.keep = set()

    def reap(self):
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in self.keep:
                return
            try:
                os.waitpid(info.si_pid, 0)
            except ChildProcessError:
                pass


def run(argv, check=True, env=None):
    cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if check and cp.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (" ".join(argv), cp.returncode,
                                                      cp.stderr.decode(errors="replace")[-1500:]))
    return cp


def write_json(path, obj):
    if path == "-":
        json.dump(obj, sys.stdout, indent=1)
        print()
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def start_warrend(bin_dir, data_root, exec_root, work, netns=None):
    sock = os.path.join(exec_root, "warren.sock")
    cfg = os.path.join(work, "daemon.json")
    with open(cfg, "w") as f:
        f.write("{}\n")
    log = open(os.path.join(work, "warrend.log"), "w")
    argv = [os.path.join(bin_dir, "warrend"), "--config-file", cfg, "-H", "unix://" + sock,
            "--data-root", data_root, "--exec-root", exec_root]
    if netns:
        argv = ["nsenter", "--net=" + netns] + argv
    if os.environ.get("WARREN_BENCH_WRAP"):
        # Profiling aid: any command prefix, e.g. WARREN_BENCH_WRAP="strace -f -tt -o F"
        argv = os.environ["WARREN_BENCH_WRAP"].split() + argv
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    cli = [os.path.join(bin_dir, "warren"), "-H", "unix://" + sock]
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("warrend exited with %s; see %s" % (proc.returncode, log.name))
        if os.path.exists(sock) and run(cli + ["info"], check=False).returncode == 0:
            return proc, cli
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("warrend did not answer on %s within 30 s" % sock)


# ---------------------------------------------------------------- measure

def measure(a):
    reaper = Reaper()
    work = a.work
    res = {"n": a.n, "podman_n": a.podman_n, "warmup": a.warmup, "block": a.block, "gap_ms": a.gap,
           "seed": a.seed,
           "versions": {p: deb_version(p) for p in ("crun", "podman", "conmon", "netavark",
                                                     "iptables", "busybox-static")}}

    # crun: an OCI bundle of the same root filesystem, `crun spec` defaults (new pid, net,
    # ipc, uts, mount namespaces; read-only rootfs), the command `true`, no terminal.
    bundle = os.path.join(work, "bundle")
    os.makedirs(os.path.join(bundle, "rootfs"))
    run(["tar", "-C", os.path.join(bundle, "rootfs"), "-xf", a.tar])
    subprocess.run(["crun", "spec"], cwd=bundle, check=True)
    cfg_path = os.path.join(bundle, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["process"]["args"] = ["true"]
    cfg["process"]["terminal"] = False
    json.dump(cfg, open(cfg_path, "w"), indent=1)
    res["crun_namespaces"] = [ns["type"] for ns in cfg["linux"]["namespaces"]]
    crun_root = "/run/wsb-crun"  # tmpfs of the sandbox
    crun = ["crun", "--root", crun_root]

    # podman: private storage (on the work directory's disk, like /var/lib/containers) and run
    # state (tmpfs), its own network config dir, cgroupfs, no events; image imported offline.
    pod_env = dict(os.environ, TMPDIR=os.path.join(work, "podman-tmp"))
    os.makedirs(pod_env["TMPDIR"])
    podman = ["podman", "--root", os.path.join(work, "podman"), "--runroot", "/run/wsb-podman",
              "--tmpdir", "/run/wsb-podman-tmp", "--network-config-dir", os.path.join(work, "podman-net"),
              "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    run(podman + ["import", a.tar, IMAGE_P], env=pod_env)
    info = run(podman + ["info", "--format", "{{.Host.OCIRuntime.Name}} {{.Host.NetworkBackend}} "
                         "{{.Store.GraphDriverName}} {{.Host.CgroupManager}} cgroups {{.Host.CgroupsVersion}}"],
               env=pod_env)
    res["podman_info"] = info.stdout.decode().strip()

    # warren: a private agent (data root on the work directory's disk, exec root on tmpfs, like
    # /var/lib/warren and /run/warren), the same tarball imported, one user bridge network.
    proc, w = start_warrend(a.warren, os.path.join(work, "warren-data"), "/run/wsb-warren", work)
    reaper.keep.add(proc.pid)
    res["warren_version"] = run(w + ["version"], check=False).stdout.decode().strip().splitlines()[:3]
    variants = list(VARIANTS)
    agents = [proc]
    failures = {}
    try:
        run(w + ["image", "import", a.tar, IMAGE_W])
        run(w + ["network", "create", "--subnet", SUBNET_W, NET_W])
        base = None
        if a.baseline:
            base_work = os.path.join(work, "baseline")
            os.makedirs(base_work)
            run(["ip", "netns", "add", "wsb-base"])
            run(["ip", "netns", "exec", "wsb-base", "ip", "link", "set", "lo", "up"])
            base_proc, base = start_warrend(a.baseline, os.path.join(base_work, "data"),
                                            "/run/wsb-warren-base", base_work, netns="/run/netns/wsb-base")
            agents.append(base_proc)
            reaper.keep.add(base_proc.pid)
            res["baseline_version"] = run(base + ["version"], check=False).stdout.decode().strip().splitlines()[:3]
            run(base + ["image", "import", a.tar, IMAGE_W])
            run(base + ["network", "create", "--subnet", SUBNET_W, NET_W])
            variants += BASELINE_VARIANTS

        argv = {
            "crun": crun + ["run", "--bundle", bundle, "wsb-crun-{i}"],
            "warren_none": w + ["run", "--rm", "--network", "none", IMAGE_W, "true"],
            "warren_bridge": w + ["run", "--rm", "--network", NET_W, IMAGE_W, "true"],
            "podman_none": podman + ["run", "--rm", "--network", "none"] + PODMAN_ULIMITS + [IMAGE_P, "true"],
            "podman_bridge": podman + ["run", "--rm"] + PODMAN_ULIMITS + [IMAGE_P, "true"],
        }
        if base:
            argv["baseline_none"] = base + ["run", "--rm", "--network", "none", IMAGE_W, "true"]
            argv["baseline_bridge"] = base + ["run", "--rm", "--network", NET_W, IMAGE_W, "true"]
        res["commands"] = {k: " ".join(v) for k, v in argv.items()}
        want = {k: (a.podman_n if k.startswith("podman") else a.n) for k, _ in variants}
        counter = [0]

        def once(name):
            counter[0] += 1
            cmd = [x.replace("{i}", str(counter[0])) for x in argv[name]]
            env = pod_env if name.startswith("podman") else None
            t0 = time.perf_counter_ns()
            cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            dt = time.perf_counter_ns() - t0
            reaper.reap()
            if cp.returncode != 0:
                failures.setdefault(name, []).append(
                    "rc %d: %s" % (cp.returncode, cp.stderr.decode(errors="replace").strip()[-300:]))
                if len(failures[name]) > 5:
                    raise RuntimeError("%s keeps failing: %s" % (name, failures[name][-1]))
                return None
            return dt

        # Warm-up (untimed): page cache, podman's first network setup, the agent's first run.
        for name, _ in variants:
            for _ in range(a.warmup):
                once(name)
        # Spawn floor: /bin/true from this driver.
        res["spawn_floor_bin_true"] = summary([t for t in (once_floor() for _ in range(50))])

        samples = {k: [] for k, _ in variants}
        sample_rounds = {k: [] for k, _ in variants}
        order = [k for k, _ in variants]
        shuffle = random.Random(a.seed).shuffle
        pids = tuple(p.pid for p in agents)
        c0 = cpu_sample(pids)
        windows, cw, first = [], c0, 0
        rounds = -(-max(want.values()) // a.block)
        for r in range(rounds):
            shuffle(order)
            for name in order:
                todo = min(a.block, want[name] - len(samples[name]))
                if todo <= 0:
                    continue
                once(name)  # untimed: the previous variant's aftermath lands here
                for _ in range(todo):
                    time.sleep(a.gap / 1000.0)
                    dt = once(name)
                    if dt is not None:
                        samples[name].append(dt)
                        sample_rounds[name].append(r)
            c = cpu_sample(pids)
            windows.append(dict(cpu_window(cw, c), rounds=[first, r]))
            cw, first = c, r + 1
            print("  round %d/%d: p50 so far %s | load %.2f, foreign CPU %s%%" % (
                r + 1, rounds, ", ".join("%s %.1f" % (k, sorted(v)[len(v) // 2] / 1e6)
                                         for k, v in samples.items() if v),
                os.getloadavg()[0], windows[-1]["foreign_cpu_pct"]), file=sys.stderr, flush=True)
        c1 = cpu_sample(pids)
        res["cpu"] = cpu_window(c0, c1)
        res["cpu_windows"] = windows
        res["samples_ns"] = samples
        res["sample_rounds"] = sample_rounds
        res["failures"] = failures

        # Nothing may be left: containers of all three, warren's network goes.
        res["leftovers"] = {
            "crun": run(crun + ["list", "-q"], check=False).stdout.decode().split(),
            "warren": run(w + ["ps", "-aq"], check=False).stdout.decode().split(),
            "baseline": run(base + ["ps", "-aq"], check=False).stdout.decode().split() if base else [],
            "podman": run(podman + ["ps", "-aq"], check=False, env=pod_env).stdout.decode().split(),
        }
        run(w + ["network", "rm", NET_W], check=False)
        if base:
            run(base + ["network", "rm", NET_W], check=False)
    finally:
        for p in agents:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if a.baseline:
            run(["ip", "netns", "del", "wsb-base"], check=False)
        # podman's storage holds overlay mounts (private to the sandbox); release them.
        run(podman + ["rm", "-af"], check=False, env=pod_env)
        run(podman + ["system", "reset", "-f"], check=False, env=pod_env)
        reaper.keep.clear()
        reaper.reap()
        if a.log_out:
            shutil.copyfile(os.path.join(work, "warrend.log"), a.log_out)
    write_json(a.out, res)


def once_floor():
    t0 = time.perf_counter_ns()
    subprocess.run(["/bin/true"])
    return time.perf_counter_ns() - t0


# ---------------------------------------------------------------- wait for a quiet machine

def wait_quiet(a):
    """Block until the machine was below FOREIGN_BUSY_PCT busy for `--quiet` seconds in a
    row, at most `--max` seconds (then go on anyway, saying so)."""
    deadline, quiet, last = time.time() + a.max, 0, cpu_sample()
    while quiet < a.quiet:
        if time.time() > deadline:
            print("wait-quiet: still busy after %d s; measuring anyway" % a.max, file=sys.stderr)
            return
        time.sleep(1)
        now = cpu_sample()
        busy = cpu_window(last, now)["machine_cpu_busy_pct"] or 0
        quiet = quiet + 1 if busy < FOREIGN_BUSY_PCT else 0
        last = now
    print("wait-quiet: machine quiet for %d s (load %.2f)" % (a.quiet, os.getloadavg()[0]), file=sys.stderr)


# ---------------------------------------------------------------- agent log phases

def log_phases(path):
    """Per-container phases from the agent's INFO lines (timestamps in µs): create request
    committed and wired -> "created"; start (bundle, shim, init, exec) -> "started"; the
    command runs -> "exited" (the agent noticed); --rm teardown -> "removed". Returns, per
    network mode, the median of each phase in ms (warm-up containers included)."""
    import re
    from datetime import datetime
    ts = lambda line: datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    # Generated names repeat over hundreds of containers: an event belongs to the latest
    # container created under that name ("exited" names the id instead).
    records, by_name, by_short = [], {}, {}
    for line in open(path, errors="replace"):
        m = re.search(r"container (created|started|exited|removed) container=(\S+)", line)
        if not m or len(line) < 27:
            continue
        event, who = m.group(1), m.group(2)
        if event == "created":
            idm, netm = re.search(r" id=(\S+)", line), re.search(r" network=(\S+)", line)
            rec = {"network": netm.group(1) if netm else "?", "created": ts(line)}
            records.append(rec)
            by_name[who] = rec
            by_short[idm.group(1) if idm else ""] = rec
        elif event == "exited":
            if who[:12] in by_short:
                by_short[who[:12]]["exited"] = ts(line)
        elif who in by_name:
            by_name[who][event] = ts(line)
    phases = {}
    for c in records:
        if not all(k in c for k in ("created", "started", "exited", "removed")):
            continue
        p = phases.setdefault(c["network"], {"start": [], "run": [], "remove": []})
        p["start"].append(c["started"] - c["created"])
        p["run"].append(c["exited"] - c["started"])
        p["remove"].append(c["removed"] - c["exited"])
    med = lambda v: round(sorted(v)[len(v) // 2] * 1000, 2)
    return {net: dict({k: med(v) for k, v in p.items()}, n=len(p["start"])) for net, p in phases.items()}


# ---------------------------------------------------------------- report

def ratio(num, den):
    return round(num / den, 3) if num is not None and den else None


def report(a):
    raw = json.load(open(a.raw))
    s = {k: summary(v) for k, v in raw["samples_ns"].items()}
    p50 = lambda k: s.get(k, {}).get("p50_ms")
    p95 = lambda k: s.get(k, {}).get("p95_ms")
    targets = []
    for name, num, den, limit in TARGETS:
        v = ratio(p50(num), p50(den))
        targets.append({"name": name, "value": v, "target": limit,
                        "pass": v is not None and v <= limit,
                        "p95_ratio": ratio(p95(num), p95(den)),
                        "detail": "%s ms / %s ms" % (p50(num), p50(den))})
    baseline = []
    for name, new, old, limit in BASELINE_TARGETS:
        if p50(old) is None:
            continue
        d = round(p50(new) - p50(old), 2)
        baseline.append({"name": name, "value": d, "target": limit, "pass": d <= limit,
                         "detail": "%s ms - %s ms" % (p50(new), p50(old))})
    secondary = {}
    for name, num, den in SECONDARY:
        if name.startswith("warren bridge - "):
            secondary[name] = None if p50(num) is None or p50(den) is None else round(p50(num) - p50(den), 3)
        else:
            secondary[name] = ratio(p50(num), p50(den))
    out = {"benchmark": "start", "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "host": {"kernel": os.uname().release, "nproc": os.cpu_count()},
           "loadavg": {"start": a.load_start, "end": " ".join("%.2f" % x for x in os.getloadavg())},
           "cpu_during_measurement": raw.get("cpu"),
           "versions": raw.get("versions"), "podman_info": raw.get("podman_info"),
           "warren_version": raw.get("warren_version"), "crun_namespaces": raw.get("crun_namespaces"),
           "commands": raw.get("commands"), "n": raw.get("n"), "podman_n": raw.get("podman_n"),
           "warmup": raw.get("warmup"), "block": raw.get("block"),
           "gap_ms": raw.get("gap_ms"), "seed": raw.get("seed"),
           "summary": s, "spawn_floor_bin_true": raw.get("spawn_floor_bin_true"),
           "targets": targets, "all_pass": all(t["pass"] for t in targets + baseline),
           "baseline": baseline, "baseline_version": raw.get("baseline_version"),
           "secondary": secondary, "failures": raw.get("failures"), "leftovers": raw.get("leftovers")}
    f = lambda v: "-" if v is None else ("%.1f" % v if isinstance(v, float) else str(v))
    print("\n%-42s %5s %8s %8s %8s %8s" % ("variant", "n", "p50 ms", "p95 ms", "min ms", "max ms"))
    for k, label in VARIANTS + BASELINE_VARIANTS:
        if k not in s:
            continue
        x = s.get(k, {})
        print("%-42s %5s %8s %8s %8s %8s" % (label, x.get("n"), f(x.get("p50_ms")), f(x.get("p95_ms")),
                                             f(x.get("min_ms")), f(x.get("max_ms"))))
    fl = raw.get("spawn_floor_bin_true") or {}
    print("%-42s %5s %8s %8s" % ("/bin/true spawn floor", fl.get("n"), f(fl.get("p50_ms")), f(fl.get("p95_ms"))))
    print("\n%-46s %7s %7s %8s  %s" % ("target", "p50", "limit", "p95", "result"))
    for t in targets:
        print("%-46s %7s %7s %8s  %s  (%s)" % (t["name"], f(t["value"]), t["target"], f(t["p95_ratio"]),
                                               "PASS" if t["pass"] else "MISS", t["detail"]))
    for t in baseline:
        print("%-46s %7s %7s %8s  %s  (%s)" % (t["name"], f(t["value"]), t["target"], "",
                                               "PASS" if t["pass"] else "MISS", t["detail"]))
    print("\nsecondary: " + ", ".join("%s = %s" % (k, f(v)) for k, v in secondary.items()))
    cpu = raw.get("cpu") or {}
    wins = raw.get("cpu_windows") or []
    busy_wins = [w for w in wins if (w.get("foreign_cpu_pct") or 0) > FOREIGN_BUSY_PCT]
    out["disturbed_windows"] = "%d of %d" % (len(busy_wins), len(wins))
    print("loadavg: start %s, end %s; during the measurement (%ss): machine CPU busy %s%%, foreign %s%% "
          "(100 %% = both cores); rounds with foreign CPU > %d%%: %d of %d"
          % (out["loadavg"]["start"], out["loadavg"]["end"], cpu.get("seconds"), cpu.get("machine_cpu_busy_pct"),
             cpu.get("foreign_cpu_pct"), FOREIGN_BUSY_PCT, len(busy_wins), len(wins)))
    # The same figures over the undisturbed rounds only (others used < FOREIGN_BUSY_PCT).
    quiet = {w["rounds"][1] for w in wins if w.get("foreign_cpu_pct") is not None
             and w["foreign_cpu_pct"] <= FOREIGN_BUSY_PCT}
    if quiet and len(quiet) < len(wins):
        block = raw.get("block") or 1
        qs = {}
        for k, vals in raw["samples_ns"].items():
            rounds_of = raw.get("sample_rounds", {}).get(k) or [i // block for i in range(len(vals))]
            qs[k] = summary([v for v, r in zip(vals, rounds_of) if r in quiet])
        qt = {t["name"]: ratio(qs.get(num, {}).get("p50_ms"), qs.get(den, {}).get("p50_ms"))
              for (t, (_, num, den, _l)) in zip(targets, TARGETS)}
        out["quiet_rounds"] = {"rounds": sorted(quiet), "summary": qs, "target_ratios": qt}
        print("undisturbed rounds only (%d of %d): p50 (p95) ms: %s; ratios: %s" % (
            len(quiet), len(wins),
            ", ".join("%s %s (%s)" % (k, v.get("p50_ms"), v.get("p95_ms")) for k, v in qs.items()),
            ", ".join("%s %s" % (n.split(" p50")[0], f(v)) for n, v in qt.items())))
    if a.log and os.path.exists(a.log):
        out["agent_log_phases_ms"] = log_phases(a.log)
        print("agent log, median ms per container (created->started / started->exited / exited->removed): "
              + "; ".join("--network %s: %s / %s / %s (n=%d)" % (net, p["start"], p["run"], p["remove"], p["n"])
                          for net, p in sorted(out["agent_log_phases_ms"].items())))
    if a.out:
        write_json(a.out, out)
        write_json(a.out.replace(".json", "-raw.json"), raw)
    if a.json:
        write_json(a.json, out)
    if any(raw.get("failures", {}).values()):
        print("FAILURES: %s" % json.dumps(raw["failures"]))
    left = {k: v for k, v in (raw.get("leftovers") or {}).items() if v}
    if left:
        print("LEFTOVER CONTAINERS: %s" % left)
    if a.out:
        print("wrote %s (and %s with every sample)" % (a.out, a.out.replace(".json", "-raw.json")))
    if left or any(raw.get("failures", {}).values()):
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("measure")
    p.add_argument("--work", required=True)
    p.add_argument("--tar", required=True)
    p.add_argument("--warren", required=True, help="directory with warren and warrend")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--podman-n", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--block", type=int, default=10, help="timed runs per variant per round")
    p.add_argument("--gap", type=float, default=0, help="ms of pause before each sample")
    p.add_argument("--seed", type=int, default=1, help="seed of the per-round order")
    p.add_argument("--log-out", help="copy the agent's log here (phases per container)")
    p.add_argument("--baseline", help="directory with the warren and warrend of another commit")
    p = sub.add_parser("report")
    p.add_argument("--raw", required=True)
    p.add_argument("--out")
    p.add_argument("--json")
    p.add_argument("--load-start", default="")
    p.add_argument("--log", help="the agent's log (from measure --log-out): phase breakdown")
    p = sub.add_parser("wait-quiet")
    p.add_argument("--max", type=int, default=600)
    p.add_argument("--quiet", type=int, default=5)
    a = ap.parse_args()
    {"measure": measure, "report": report, "wait-quiet": wait_quiet}[a.cmd](a)


if __name__ == "__main__":
    main()
