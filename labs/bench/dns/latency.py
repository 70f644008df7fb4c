#!/usr/bin/env python3
"""Closed-loop (one query outstanding) UDP DNS latency probe, the same for every server.

dnsperf cannot give unloaded per-query latency (it paces itself); this sends one A query,
waits for its answer, repeats for DURATION seconds and reports percentiles. Python adds tens
of microseconds per round trip, equally to every server measured.
Usage: latency.py SERVER NAMES_COMMA_SEPARATED DURATION_S
Prints one JSON object.
"""
import json
import math
import socket
import struct
import sys
import time


def query(qid, name):
    hdr = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD set
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\x00"
    return hdr + q + struct.pack("!HH", 1, 1)


def pct(s, p):
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


def main():
    server, names, dur = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.connect((server, 53))
    lat, timeouts, bad, qid = [], 0, 0, 0
    end = time.monotonic() + dur
    while time.monotonic() < end:
        qid = (qid + 1) & 0xFFFF
        pkt = query(qid, names[qid % len(names)])
        t0 = time.perf_counter_ns()
        s.send(pkt)
        try:
            while True:
                resp = s.recv(4096)
                if struct.unpack("!H", resp[:2])[0] == qid:
                    break
        except socket.timeout:
            timeouts += 1
            continue
        t1 = time.perf_counter_ns()
        if resp[3] & 0x0F != 0 or struct.unpack("!H", resp[6:8])[0] < 1:
            bad += 1
        lat.append(t1 - t0)
    srt = sorted(lat)
    out = {"n": len(srt), "timeouts": timeouts, "bad_answers": bad}
    if srt:
        out.update({"median_us": round(pct(srt, 50) / 1e3, 1), "p95_us": round(pct(srt, 95) / 1e3, 1),
                    "p99_us": round(pct(srt, 99) / 1e3, 1), "qps_closed_loop": round(len(srt) / dur, 1)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
