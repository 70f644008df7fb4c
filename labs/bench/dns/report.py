#!/usr/bin/env python3
"""Turn one benchmark run's dnsperf outputs and latency JSON into a table and a JSON summary.
Usage: report.py OUT_DIR   (reads OUT_DIR/{warren,aardvark,dnsmasq}_c{1,4,16}.txt,
OUT_DIR/latency_*.json, OUT_DIR/rss.json; writes OUT_DIR/summary.json)
Exits 1 if a target is missed: warren/dnsmasq >= 1.0 and warren/aardvark >= 2.0 q/s at every
client count, warren's median latency <= dnsmasq's."""
import json
import os
import re
import sys

SERVERS = ["warren", "dnsmasq", "aardvark"]
CLIENTS = [1, 4, 16]


def dnsperf(path):
    try:
        txt = open(path).read()
    except OSError:
        return {}
    d = {}
    for key, rx in [("qps", r"Queries per second:\s+([\d.]+)"), ("sent", r"Queries sent:\s+(\d+)"),
                    ("lost", r"Queries lost:\s+(\d+)"), ("avg_lat_s", r"Average Latency \(s\):\s+([\d.]+)")]:
        m = re.search(rx, txt)
        d[key] = float(m.group(1)) if m else None
    m = re.search(r"Response codes:\s+(.*)", txt)
    d["rcodes"] = m.group(1).strip() if m else None
    return d


def main():
    out = sys.argv[1]
    res = {"qps": {}, "latency": {}, "ratios": {}, "targets": {}}
    for s in SERVERS:
        res["qps"][s] = {str(c): dnsperf(os.path.join(out, "%s_c%d.txt" % (s, c))) for c in CLIENTS}
        try:
            res["latency"][s] = json.load(open(os.path.join(out, "latency_%s.json" % s)))
        except (OSError, ValueError):
            res["latency"][s] = {}
    try:
        res["rss_kib"] = json.load(open(os.path.join(out, "rss.json")))
    except (OSError, ValueError):
        res["rss_kib"] = {}
    ok = True
    print("%-8s %12s %12s %12s %12s %12s" % ("clients", "warren q/s", "dnsmasq q/s", "aardvark q/s",
                                             "w/dnsmasq", "w/aardvark"))
    for c in CLIENTS:
        q = {s: res["qps"][s][str(c)].get("qps") for s in SERVERS}
        rd = q["warren"] / q["dnsmasq"] if q["warren"] and q["dnsmasq"] else None
        ra = q["warren"] / q["aardvark"] if q["warren"] and q["aardvark"] else None
        res["ratios"]["c%d" % c] = {"warren_over_dnsmasq": rd and round(rd, 3),
                                   "warren_over_aardvark": ra and round(ra, 3)}
        good = rd is not None and ra is not None and rd >= 1.0 and ra >= 2.0
        res["targets"]["qps_c%d" % c] = good
        ok &= good
        fmt = lambda v: "%.0f" % v if v else "-"
        print("%-8d %12s %12s %12s %12s %12s" % (c, fmt(q["warren"]), fmt(q["dnsmasq"]), fmt(q["aardvark"]),
                                                 rd and "%.2f" % rd or "-", ra and "%.2f" % ra or "-"))
    lat = {s: res["latency"][s].get("median_us") for s in SERVERS}
    print("median latency (us, closed loop): " + ", ".join("%s %s" % (s, lat[s]) for s in SERVERS))
    good = lat["warren"] is not None and lat["dnsmasq"] is not None and lat["warren"] <= lat["dnsmasq"]
    res["targets"]["median_latency"] = good
    ok &= good
    print("RSS (KiB): " + ", ".join("%s %s" % kv for kv in res["rss_kib"].items()))
    res["all_targets_met"] = ok
    json.dump(res, open(os.path.join(out, "summary.json"), "w"), indent=2)
    print(json.dumps(res, separators=(",", ":")))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
