#!/usr/bin/env bash
# Container start benchmark: `warren run --rm` of a busybox `true` container (--network none
# and on a user bridge network) against `crun run` of an OCI bundle of the same root
# filesystem and `podman run --rm` (--network none and podman's default bridge), all measured
# in the same run, interleaved in blocks (see bench.py).
#
#   cargo build --release --bins          # first: this script builds nothing
#   sudo labs/bench/start/run.sh [--n 100] [--podman-n 100] [--warmup 5] [--block 10]
#                                [--gap MS] [--json FILE] [--out FILE] [--workdir DIR]
#                                [--wait-quiet MAX_SECONDS] [--baseline BINDIR]
#
# --baseline BINDIR: also run the warren/warrend built from another commit (e.g. a worktree's
# target/release), interleaved, and report this build's p50 minus the baseline's.
#
# Everything runs in a throwaway sandbox: private network, mount and PID namespaces with
# tmpfs on /run (crun's, podman's and warrend's run state, /run/netns), /dev/shm (podman's
# lock file) and /var/lib/containers, so bridges, veths, namespaces, iptables/nft rules and
# every process die with it. What cannot be private is undone and checked afterwards: the cgroups podman
# leaves in the v1 hierarchies, and the hugetlb v1 mount crun 1.8 needs on this kind of
# hybrid-cgroup host (see labs/bench/README.md). The host's namespaces, links, nft tables,
# iptables rules and cgroup directories are compared before/after; a difference fails the run.
#
# Prints a table (and writes target/bench/start/results.json, + results-raw.json with every
# sample and results-warrend.log, the agent's log, from which the report takes per-container
# phases); --json FILE also writes the JSON document to FILE ("-" for stdout).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
py=(python3 "$here/bench.py")

# ---------------------------------------------------------------- inside the sandbox
if [ -n "${WARREN_START_BENCH_INNER:-}" ]; then
    # /run and /var/lib/containers: private tmpfs, so crun's and podman's default state
    # directories (/run/crun, /run/containers, /var/lib/containers/cache) never reach the host.
    mount -t tmpfs -o mode=0755 start-bench-run /run
    mkdir -p /run/netns /run/lock
    mount -t tmpfs -o mode=0700 start-bench-varlib /var/lib/containers
    mount -t tmpfs -o mode=1777 start-bench-shm /dev/shm   # podman's /dev/shm/libpod_lock
    ip link set lo up
    mounted=()
    # crun 1.8 refuses "hybrid" cgroups while the v2 hierarchy still owns a controller (on
    # this VM: hugetlb, every other controller is on v1). Mounting such a controller as a v1
    # hierarchy moves it off cgroup2 for the duration of the run; the mount is private to
    # this sandbox and undone below (and the outer script checks the hierarchy is gone).
    if [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then
        for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
            mountpoint -q "/sys/fs/cgroup/$c" && continue
            echo "note: cgroup2 owns '$c': mounting it as v1 at /sys/fs/cgroup/$c for crun" >&2
            mkdir "/sys/fs/cgroup/$c"
            mount -t cgroup -o "$c" "start-bench-$c" "/sys/fs/cgroup/$c"
            mounted+=("$c")
        done
    fi
    undo_mounts() {
        local c
        for c in "${mounted[@]}"; do
            # Child cgroups (podman's libpod_parent) would keep the hierarchy alive.
            find "/sys/fs/cgroup/$c" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
            umount "/sys/fs/cgroup/$c" || true
            rmdir "/sys/fs/cgroup/$c" || true
        done
    }
    trap undo_mounts EXIT
    "${py[@]}" measure "$@"
    exit $?
fi

# ---------------------------------------------------------------- outside
n=100 podman_n=100 warmup=5 block=10 gap=0 json="" workdir=/var/tmp wait_quiet=0 baseline=""
out="$repo/target/bench/start/results.json"
while (($#)); do
    case "$1" in
        --n) n=$2; shift 2 ;;
        --podman-n) podman_n=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --block) block=$2; shift 2 ;;
        --gap) gap=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --workdir) workdir=$2; shift 2 ;;
        --wait-quiet) wait_quiet=$2; shift 2 ;;
        --baseline) baseline=$(cd "$2" && pwd); shift 2 ;;
        -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
((n >= 20 && podman_n >= 5)) || { echo "--n must be at least 20, --podman-n at least 5" >&2; exit 2; }

[ "$(id -u)" = 0 ] || { echo "start bench: needs root" >&2; exit 1; }
bin_dir="${WARREN_BIN_DIR:-$repo/target/release}"
for b in warren warrend; do
    [ -x "$bin_dir/$b" ] || { echo "start bench: $bin_dir/$b missing; run 'cargo build --release --bins' first" >&2; exit 1; }
done

# Debian packages for the peers and the sandbox; apt-get only for what is missing.
need=()
for pkg in crun podman conmon netavark iptables nftables iproute2 util-linux busybox-static; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "start bench: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" >&2 \
        || { apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
fi

# What the host looks like; compared after the run. Cgroups: the names this benchmark's tools
# create (podman's libpod_parent, crun's wsb-*) directly under each hierarchy.
cgroup_dirs() {
    local h
    for h in /sys/fs/cgroup/*/; do
        find "$h" -mindepth 1 -maxdepth 2 -type d \( -name 'libpod_parent' -o -name 'conmon' -o -name 'wsb-*' \) 2>/dev/null
    done | sort
}
v2_only() { # controllers that live on no v1 hierarchy (0 in /proc/cgroups)
    awk 'NR > 1 && $2 == 0 {print $1}' /proc/cgroups | sort | tr '\n' ' '
}
snapshot() {
    echo "netns:"; ip netns list 2>/dev/null | awk '{print "  " $1}' | sort
    echo "links:"; ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print "  " $2}' | sort
    echo "nft:"; nft list tables | sort | sed 's/^/  /'
    echo "iptables:"; { iptables-save 2>/dev/null || true; } | grep -v '^#' | sed 's/^/  /'
    echo "cgroups:"; cgroup_dirs | sed 's/^/  /'
    echo "controllers on cgroup2 only: $(v2_only)"
    echo "cgroup mount points:"; ls /sys/fs/cgroup | sed 's/^/  /'
    echo "dirs: /var/lib/containers=$([ -e /var/lib/containers ] && echo yes || echo no)" \
        "/run/containers=$([ -e /run/containers ] && echo yes || echo no)" \
        "/run/crun=$([ -e /run/crun ] && echo yes || echo no)" \
        "/etc/containers/networks=$([ -e /etc/containers/networks ] && echo yes || echo no)" \
        "/dev/shm/libpod_lock=$([ -e /dev/shm/libpod_lock ] && echo yes || echo no)"
}
before="$(snapshot)"
cgroups_before="$(cgroup_dirs)"
v2_before="$(v2_only)"
made_varlib=0
[ -e /var/lib/containers ] || { mkdir -p /var/lib/containers; made_varlib=1; }   # a mount point
mkdir -p /run/netns

tmp="$(mktemp -d "$workdir/warren-start-bench.XXXXXX")"
# Outer cleanup, after the sandbox is gone (its mounts with it): what lives in global kernel
# state or on the host's file systems.
cleanup() {
    local rc=$? d c try
    set +e
    # podman (cgroupfs manager) leaves libpod_parent/conmon in every v1 hierarchy: remove the
    # ones that were not there before, only if empty.
    for d in $(cgroup_dirs | sort -r); do
        grep -qxF "$d" <<<"$cgroups_before" && continue
        [ -z "$(cat "$d/cgroup.procs" 2>/dev/null)" ] && rmdir "$d" 2>/dev/null
    done
    # A controller moved to v1 for crun only goes back to cgroup2 when its v1 hierarchy has no
    # child cgroup (not even a dying one) at unmount: remount privately, empty it, unmount, retry.
    for c in $v2_before; do
        for try in 1 2 3 4 5; do
            [ "$(awk -v c="$c" '$1 == c {print $2}' /proc/cgroups)" = 0 ] && break
            unshare --mount --propagation private sh -c '
                mkdir -p "/sys/fs/cgroup/$1" && mount -t cgroup -o "$1" start-bench "/sys/fs/cgroup/$1" &&
                find "/sys/fs/cgroup/$1" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
                sleep 1; umount "/sys/fs/cgroup/$1"; rmdir "/sys/fs/cgroup/$1"' sh "$c"
            sleep 2
        done
    done
    ((made_varlib)) && rmdir /var/lib/containers
    rm -rf "$tmp"
    local after
    after="$(snapshot)"
    if [ "$after" != "$before" ]; then
        echo "start bench: the host differs from before the run (< before, > after):" >&2
        diff <(echo "$before") <(echo "$after") >&2
        rc=1
    else
        echo "host check: netns, links, nft tables, iptables rules, cgroups and mounts as before" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT

labs_tar="$tmp/busybox.tar"
"$repo/labs/images/busybox.sh" "$labs_tar" 2>&1 | sed 's/^/  /' >&2
# Other work on the machine shows in every figure: optionally wait for 5 quiet seconds first.
((wait_quiet > 0)) && "${py[@]}" wait-quiet --max "$wait_quiet"
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== start bench: n=$n (podman $podman_n), warm-up $warmup, blocks of $block, gap $gap ms, load $load_start" >&2

setpriv --pdeathsig KILL -- unshare --net --mount --pid --fork --kill-child --mount-proc \
    --propagation private -- env WARREN_START_BENCH_INNER=1 bash "$0" \
    --work "$tmp" --tar "$labs_tar" --warren "$bin_dir" --n "$n" --podman-n "$podman_n" \
    --warmup "$warmup" --block "$block" --gap "$gap" --out "$tmp/raw.json" \
    ${baseline:+--baseline "$baseline"} >&2   # the agent log stays in $tmp/warrend.log

mkdir -p "$(dirname "$out")"
cp "$tmp/warrend.log" "${out%.json}-warrend.log"
args=(report --raw "$tmp/raw.json" --out "$out" --load-start "$load_start" --log "${out%.json}-warrend.log")
[ -n "$json" ] && args+=(--json "$json")
"${py[@]}" "${args[@]}"
