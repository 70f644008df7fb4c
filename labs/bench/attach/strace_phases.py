#!/usr/bin/python3
"""Per-request phase breakdown of a warrend strace (profiling aid, not part of the benchmark).

  WARREN_BENCH_STRACE="-f -T -tt -y -s 120 --seccomp-bpf \
      -e trace=recvfrom,writev,openat,clone3,setns,sendto,fdatasync,socket,execve -o /tmp/trace" \
      labs/bench/attach/run.sh --skip-peers --cli-n 10 --out /tmp/prof.json
  python3 labs/bench/attach/strace_phases.py /tmp/trace

Only a few syscalls are traced (seccomp-bpf filter), so the O(N) statx/scan work runs at full
speed and shows up as the gap before the first netns openat. Attach requests with a published
port are skipped. Times are ms, medians per group of 100 requests.
"""
import re
import statistics as st
import sys


def ts(line):
    h, m, s = line.split()[1].split(":")
    return (int(h) * 3600 + int(m) * 60 + float(s)) * 1e3


def main(path):
    attach, detach, cur, kind = [], [], None, None
    for l in open(path, errors="replace"):
        if "recvfrom(" in l and "POST /v1.50/networks/benchnet/connect" in l:
            cur, kind = {"recv": ts(l), "port": "Publish" in l, "open": []}, "a"
            continue
        if "recvfrom(" in l and "POST /v1.50/networks/benchnet/disconnect" in l:
            cur, kind = {"recv": ts(l)}, "d"
            continue
        if cur is None:
            continue
        if "recvfrom(" in l and "Publish" in l:
            cur["port"] = True
        if "openat(" in l and "/run/netns/" in l and kind == "a":
            cur["open"].append(ts(l))
        if "fdatasync(" in l and "fsync_start" not in cur:
            cur["fsync_start"] = ts(l)
        m = re.search(r"fdatasync.*<([\d.]+)>$", l)
        if m:
            cur["fsync"] = float(m.group(1)) * 1e3
        if "sendto(" in l and "nlmsg_type=0x11" in l and "dellink" not in cur:
            cur["dellink"] = ts(l)
        if "recvfrom(" in l and "RTM_DELLINK" in l and "dellink_done" not in cur:
            cur["dellink_done"] = ts(l)
        if "sendto(" in l and "NLM_F_EXCL|NLM_F_CREATE" in l and "newlink" not in cur:
            cur["newlink"] = ts(l)
        if "writev(" in l and "HTTP/1.1" in l:
            cur["resp"] = ts(l)
            (attach if kind == "a" else detach).append(cur)
            cur = None

    def table(rows, cols):
        print("%-10s" % "requests" + "".join("%14s" % c for c, _ in cols))
        for lo in range(0, len(rows), 100):
            g = rows[lo:lo + 100]
            vals = []
            for _, f in cols:
                v = [x for x in (safe(f, r) for r in g) if x is not None]
                vals.append("%14.2f" % st.median(v) if v else "%14s" % "-")
            print("%-10s" % ("%d-%d" % (lo + 1, lo + len(g))) + "".join(vals))

    def safe(f, r):
        try:
            return f(r)
        except (KeyError, IndexError):
            return None

    a = [r for r in attach if not r["port"] and len(r["open"]) >= 3]
    print("attach (no port): lookup = recv -> first netns open (find endpoint among N);")
    print("ifname+ipam = netns thread + link dump + IPAM plan + store writes; veth = after fsync -> RTM_NEWLINK;")
    print("inside = last netns open -> response (2nd netns thread, addr/up/lo/route round trips)")
    table(a, [("total", lambda r: r["resp"] - r["recv"]),
              ("lookup", lambda r: r["open"][0] - r["recv"]),
              ("ifname+ipam", lambda r: r["fsync_start"] - r["open"][0]),
              ("fsync", lambda r: r["fsync"]),
              ("veth", lambda r: r["newlink"] - r["fsync_start"] - r["fsync"]),
              ("inside", lambda r: r["resp"] - r["open"][-1])])
    print("\ndetach: lookup = recv -> RTM_DELLINK sent; dellink = kernel deleting the veth pair")
    table(detach, [("total", lambda r: r["resp"] - r["recv"]),
                   ("lookup", lambda r: r["dellink"] - r["recv"]),
                   ("dellink", lambda r: r["dellink_done"] - r["dellink"]),
                   ("fsync", lambda r: r["fsync"])])


if __name__ == "__main__":
    main(sys.argv[1])
