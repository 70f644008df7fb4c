"""Helpers shared by the benchmark drivers (stdlib only): percentiles and summaries of
durations in nanoseconds, the installed version of a Debian package, and `settle` (wait for
the kernel to finish an earlier run's namespace teardown; also `python3 benchlib.py settle`)."""
import math
import subprocess
import time


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def summary(vals_ns):
    """n, p50/p95/p99, min, max and mean of durations given in ns, in ms."""
    s = sorted(vals_ns)
    if not s:
        return {"n": 0}
    ms = lambda v: round(v / 1e6, 3)
    return {"n": len(s), "p50_ms": ms(pct(s, 50)), "p95_ms": ms(pct(s, 95)),
            "p99_ms": ms(pct(s, 99)), "min_ms": ms(s[0]), "max_ms": ms(s[-1]),
            "mean_ms": ms(sum(s) / len(s))}


def deb_version(pkg):
    """The installed version of Debian package `pkg`, or None."""
    cp = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL)
    return cp.stdout.decode() or None


def _netns_alive():
    """Network namespaces the kernel still holds (net_namespace slab objects), or None."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("net_namespace "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _cpu_idle_fraction(interval):
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)  # idle + iowait, total
    i0, t0 = sample()
    time.sleep(interval)
    i1, t1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


def settle(timeout=120.0, poll=0.5):
    """Wait until the kernel has finished tearing down the namespaces of an earlier run and the
    CPUs are idle. Deleting a namespace returns at once; its devices are destroyed later in the
    background, under the global rtnl lock and with RCU waits, which would slow whatever is
    measured next (for 1000 namespaces, tens of seconds). Returns the seconds waited."""
    start = time.monotonic()
    last, steady = _netns_alive(), 0
    while time.monotonic() - start < timeout:
        idle = _cpu_idle_fraction(poll)
        now = _netns_alive()
        steady = steady + 1 if (now == last and idle >= 0.9) else 0
        last = now
        if steady >= 4:
            break
    return round(time.monotonic() - start, 1)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["settle"]:
        print("settled after %.1f s" % settle(), file=sys.stderr)
    else:
        sys.exit("usage: benchlib.py settle")
