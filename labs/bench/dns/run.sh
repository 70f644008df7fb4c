#!/usr/bin/env bash
# DNS benchmark: Warren's embedded DNS against dnsmasq 2.90 and aardvark-dns 1.4 (through
# netavark with dns_enabled), in one run on this machine, each serving the same ten names.
#   - throughput: dnsperf -l SECONDS -q 100 with 1, 4 and 16 clients, interleaved per count
#   - latency: one query outstanding (latency.py), the same probe for all three
#   - RSS of each server process after the load
# Everything runs in a private sandbox (net, mount, pid namespaces; tmpfs /run/netns; its own
# /etc/resolv.conf pointing nowhere), so nothing is left behind and no query leaves it.
# Prints a table and one JSON line; exits 1 if a target is missed (see report.py).
# Usage: labs/bench/dns/run.sh      env: DNS_BENCH_SECONDS (10), DNS_BENCH_OUT (target/bench/dns)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
DUR="${DNS_BENCH_SECONDS:-10}"
OUT="${DNS_BENCH_OUT:-$root/target/bench/dns}"
NETAVARK=/usr/lib/podman/netavark
AARDVARK=/usr/lib/podman/aardvark-dns
K=10 # names served by each server: pbc1..pbc10

if [ -z "${WARREN_DNS_BENCH_INNER:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "dns bench: run as root" >&2; exit 1; }
  need=()
  for p in dnsperf dnsmasq-base aardvark-dns netavark dnsutils iptables; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if ((${#need[@]})); then
    echo "dns bench: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  [ -x "$root/target/release/warrend" ] || (cd "$root" && cargo build --release --bins)
  rm -rf "$OUT" && mkdir -p "$OUT" /run/netns
  exec setpriv --pdeathsig KILL -- unshare --net --mount --pid --fork --kill-child --mount-proc \
    --propagation private -- env WARREN_DNS_BENCH_INNER=1 bash "$0" "$@"
fi

# ---- inside the sandbox
mount -t tmpfs -o mode=0755 dns-bench /run/netns
ip link set lo up
T="$(mktemp -d /tmp/warren-dns-bench.XXXXXX)"
trap 'rm -rf "$T"' EXIT
echo "nameserver 127.0.0.1" > "$T/resolv.conf"
mount --bind "$T/resolv.conf" /etc/resolv.conf
: > "$OUT/queries.txt"
for i in $(seq 1 $K); do echo "pbc$i A" >> "$OUT/queries.txt"; done
NAMES=$(seq -s, -f "pbc%g" 1 $K)

check() { # label netns server
  local got
  got=$(ip netns exec "$2" dig +short +time=1 +tries=1 @"$3" pbc7 A)
  echo "$1: pbc7 -> $got"
  [ -n "$got" ] || { echo "dns bench: $1 does not answer" >&2; exit 1; }
}

# Warren: the agent in the sandbox's namespace, ten namespaces on one user network; the
# client asks 127.0.0.11 inside its own namespace.
W="$root/target/release/warren -H unix://$T/w.sock"
echo '{}' > "$T/daemon.json"
"$root/target/release/warrend" --config-file "$T/daemon.json" --data-root "$T/w/data" \
  --exec-root "$T/w/run" -H "unix://$T/w.sock" > "$OUT/warrend.log" 2>&1 &
WARREN_PID=$!
for _ in $(seq 100); do [ -S "$T/w.sock" ] && break; sleep 0.1; done
$W network create --subnet 10.90.0.0/24 wbench >/dev/null
for i in $(seq 1 $K); do ip netns add "pbc$i"; $W network connect wbench --netns "pbc$i"; done
check warren pbc1 127.0.0.11

# dnsmasq: static host records on 127.0.0.1 in its own namespace.
ip netns add pb-dnsm && ip -n pb-dnsm link set lo up
HR=(); for i in $(seq 1 $K); do HR+=("--host-record=pbc$i,10.91.0.$((i + 1))"); done
ip netns exec pb-dnsm dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --listen-address=127.0.0.1 --bind-interfaces --port=53 --user=root --cache-size=150 \
  --pid-file="$T/dnsmasq.pid" "${HR[@]}" > "$OUT/dnsmasq.log" 2>&1 &
DNSMASQ_PID=$!
sleep 0.5
check dnsmasq pb-dnsm 127.0.0.1

# aardvark-dns: spawned by netavark (dns_enabled) in its own host namespace; it listens on
# the bridge gateway and containers ask it across their veth.
ip netns add pb-dnshost && ip -n pb-dnshost link set lo up
mkdir -p "$T/netavark"
for i in $(seq 1 $K); do
  ip netns add "pb-dns-c$i" && ip -n "pb-dns-c$i" link set lo up
  python3 - "$i" <<'PY' | ip netns exec pb-dnshost "$NETAVARK" --config "$T/netavark" -a "$AARDVARK" setup "/run/netns/pb-dns-c$i" >/dev/null
import json, sys
i = int(sys.argv[1])
print(json.dumps({
    "container_id": "%064x" % (0xC0FFEE0000 + i), "container_name": "pbc%d" % i,
    "networks": {"pbnet": {"interface_name": "eth0", "static_ips": ["10.89.0.%d" % (i + 1)]}},
    "network_info": {"pbnet": {"name": "pbnet", "id": "%064x" % 0xBEEF, "driver": "bridge",
        "network_interface": "pbbr0", "subnets": [{"subnet": "10.89.0.0/16", "gateway": "10.89.0.1"}],
        "ipv6_enabled": False, "internal": False, "dns_enabled": True}},
    "port_mappings": None}))
PY
done
sleep 0.5
AARDVARK_PID=$(cat "$T/netavark/aardvark-dns/aardvark.pid")
check aardvark pb-dns-c1 10.89.0.1

target() { case $1 in warren) echo "pbc1 127.0.0.11";; dnsmasq) echo "pb-dnsm 127.0.0.1";; aardvark) echo "pb-dns-c1 10.89.0.1";; esac; }

for s in warren dnsmasq aardvark; do
  read -r ns srv <<<"$(target $s)"
  echo "-- latency $s (${DUR}s, one outstanding)"
  ip netns exec "$ns" python3 "$here/latency.py" "$srv" "$NAMES" "$DUR" | tee "$OUT/latency_$s.json"
done
for c in 1 4 16; do
  for s in warren dnsmasq aardvark; do
    read -r ns srv <<<"$(target $s)"
    ip netns exec "$ns" dnsperf -s "$srv" -d "$OUT/queries.txt" -l "$DUR" -c "$c" -q 100 -T 1 \
      > "$OUT/${s}_c$c.txt" 2>&1 || true
    echo "-- dnsperf $s -c $c: $(grep -E 'Queries per second' "$OUT/${s}_c$c.txt" | tr -s ' ')"
  done
done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
printf '{"warrend": %s, "dnsmasq": %s, "aardvark-dns": %s}\n' \
  "$(rss $WARREN_PID)" "$(rss $DNSMASQ_PID)" "$(rss "$AARDVARK_PID")" > "$OUT/rss.json"
python3 "$here/report.py" "$OUT"
