"""Helpers shared by the benchmark drivers (stdlib only): percentiles and summaries of
durations in nanoseconds, and the installed version of a Debian package."""
import math
import subprocess


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
