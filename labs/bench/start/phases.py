#!/usr/bin/python3
"""Where the time of one `warren run --rm` goes, seen from the client: the same API calls the
CLI makes, each timed, over the agent's unix socket (stdlib only, no tracing overhead).

  phases.py --sock /path/warren.sock --image IMG [--network none|NET] [--n 50] [--cli DIR]

Per run: POST /containers/create, POST .../wait?condition=removed (headers), POST .../attach
(headers), POST .../start (answered once the shim reports the command started), then the
wait result (the command ran and exited, the agent noticed, --rm removed the container).
With --cli, `warren version` (process start-up of the CLI plus one request) and `warren run
--rm` itself are timed too, so the CLI's own share shows. Medians in ms.
Run it where the agent runs (labs/bench/start/run.sh does not call it; see the README).
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import time

API = "/v1.50"


class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.unix_path)
        self.sock = s


def med(v):
    v = sorted(v)
    return round(v[len(v) // 2] / 1e6, 2) if v else None


def p95(v):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * 0.95))] / 1e6, 2) if v else None


def one(sock, image, network):
    t = [time.perf_counter_ns()]
    c = Conn(sock)
    body = {"Image": image, "Cmd": ["true"],
            "HostConfig": {"NetworkMode": network, "AutoRemove": True},
            "NetworkingConfig": {"EndpointsConfig": {} if network == "none" else {network: {}}}}
    c.request("POST", API + "/containers/create", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    cid = json.loads(r.read())["Id"]
    t.append(time.perf_counter_ns())
    w = Conn(sock)
    w.request("POST", "%s/containers/%s/wait?condition=removed" % (API, cid))
    wr = w.getresponse()
    a = Conn(sock)
    a.request("POST", "%s/containers/%s/attach?stream=1&stdout=1&stderr=1" % (API, cid))
    ar = a.getresponse()
    t.append(time.perf_counter_ns())
    s = Conn(sock)
    s.request("POST", "%s/containers/%s/start" % (API, cid), "{}", {"Content-Type": "application/json"})
    sr = s.getresponse()
    sr.read()
    if sr.status >= 300:
        raise RuntimeError("start: %d" % sr.status)
    t.append(time.perf_counter_ns())
    ar.read()
    t.append(time.perf_counter_ns())
    result = json.loads(wr.read())
    t.append(time.perf_counter_ns())
    for x in (c, w, a, s):
        x.close()
    if result.get("StatusCode") != 0:
        raise RuntimeError("exit status %s" % result)
    return [b - a for a, b in zip(t, t[1:])] + [t[-1] - t[0]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sock", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--network", default="none")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--cli", help="directory with the warren CLI: also time it")
    a = ap.parse_args()
    names = ["create", "wait+attach (headers)", "start", "attach EOF after start", "wait result (exit+remove)", "total (API)"]
    for _ in range(3):
        one(a.sock, a.image, a.network)
    cols = [[] for _ in names]
    cli_run, cli_version = [], []
    cli = [os.path.join(a.cli, "warren"), "-H", "unix://" + a.sock] if a.cli else None
    for _ in range(a.n):
        for i, v in enumerate(one(a.sock, a.image, a.network)):
            cols[i].append(v)
        if cli:
            t0 = time.perf_counter_ns()
            subprocess.run(cli + ["version"], stdout=subprocess.DEVNULL, check=True)
            cli_version.append(time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            subprocess.run(cli + ["run", "--rm", "--network", a.network, a.image, "true"], check=True)
            cli_run.append(time.perf_counter_ns() - t0)
    out = {n: {"p50_ms": med(c), "p95_ms": p95(c)} for n, c in zip(names, cols)}
    if cli:
        out["cli: warren version"] = {"p50_ms": med(cli_version), "p95_ms": p95(cli_version)}
        out["cli: warren run --rm"] = {"p50_ms": med(cli_run), "p95_ms": p95(cli_run)}
    print(json.dumps({"network": a.network, "n": a.n, "load": os.getloadavg()[0], "phases": out}, indent=1))


if __name__ == "__main__":
    main()
