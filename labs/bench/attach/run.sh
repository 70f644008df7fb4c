#!/usr/bin/env bash
# Attach/detach latency benchmark: Warren (HTTP over its unix socket, and the CLI) against
# netavark 1.4 setup/teardown and the CNI bridge plugin ADD/DEL, measured in the same run.
#
# Every tool runs in its own throwaway sandbox (private network, mount and PID namespaces with a
# tmpfs on /run/netns, like labs/run.sh), so bridges, veths, nft/iptables rules and agents never
# touch the root namespace and die with the sandbox.
#
#   cargo build --release --bins          # first: this script builds nothing
#   sudo labs/bench/attach/run.sh [--n 1000] [--cli-n 100] [--peer-n 200] [--json]
#                                 [--out FILE] [--skip-peers] [--workdir DIR] [--nice ADJ]
#
# Prints a table (or, with --json, the JSON document) and writes labs/bench/attach/results.json
# (+ results-raw.json with every sample). See labs/bench/README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

n=1000 cli_n=100 peer_n=200 json=0 skip_peers=0 nice=0
out="$here/results.json"
workdir=/var/tmp
while (($#)); do
    case "$1" in
        --n) n=$2; shift 2 ;;
        --cli-n) cli_n=$2; shift 2 ;;
        --peer-n) peer_n=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --workdir) workdir=$2; shift 2 ;;
        --nice) nice=$2; shift 2 ;;
        --json) json=1; shift ;;
        --skip-peers) skip_peers=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
((n >= 20)) || { echo "--n must be at least 20 (first-10 vs last-10)" >&2; exit 2; }

[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces, nft)" >&2; exit 1; }
bin_dir="${WARREN_BIN_DIR:-$repo/target/release}"
for b in warren warrend; do
    [ -x "$bin_dir/$b" ] || { echo "bench: $bin_dir/$b missing; run 'cargo build --release --bins' first" >&2; exit 1; }
done

# Debian packages the peers and the sandbox need; apt-get only for what is missing.
need=()
for pkg in netavark containernetworking-plugins iptables nftables iproute2 util-linux; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((skip_peers)); then need=($(printf '%s\n' "${need[@]}" | grep -vE '^(netavark|containernetworking-plugins)$' || true)); fi
if ((${#need[@]})); then
    echo "bench: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" >&2 \
        || { apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
fi

tmp="$(mktemp -d /tmp/warren-attach-bench.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

# sandbox CMD...: run CMD in fresh namespaces; everything it creates dies with it.
sandbox() {
    nice -n "$nice" setpriv --pdeathsig KILL -- unshare --net --mount --pid --fork --kill-child --mount-proc \
        --propagation private -- \
        sh -c 'mount -t tmpfs -o mode=0755 bench-sandbox /run/netns && ip link set lo up && exec "$@"' sh "$@"
}

py=(python3 "$here/bench.py")
log() { if ((json)); then echo "$@" >&2; else echo "$@"; fi; }
log "== warren: N=$n HTTP attaches/detaches, $cli_n via the CLI (load $load_start)"
settle() { python3 "$here/../benchlib.py" settle; }
settle
sandbox "${py[@]}" warren --n "$n" --cli-n "$cli_n" --warren "$bin_dir" --workdir "$workdir" \
    --out "$tmp/warren.json" >&2
peers=()
if ((!skip_peers)); then
    log "== netavark $(/usr/lib/podman/netavark --version 2>/dev/null | awk '{print $2}'): N=$peer_n setup/teardown"
    settle
    sandbox "${py[@]}" netavark --n "$peer_n" --workdir "$workdir" --out "$tmp/netavark.json" >&2
    log "== CNI bridge + host-local (ipMasq): N=$peer_n ADD/DEL"
    settle
    sandbox "${py[@]}" cni --n "$peer_n" --workdir "$workdir" --out "$tmp/cni.json" >&2
    peers=(--netavark "$tmp/netavark.json" --cni "$tmp/cni.json")
fi
args=(report --warren "$tmp/warren.json" "${peers[@]}" --out "$out" --load-start "$load_start")
((json)) && args+=(--json)
"${py[@]}" "${args[@]}"
