# Shared helpers for the labs that need the agent (02 and later). Source it after setting
# LAB (two digits) and `set -euo pipefail`:
#
#   LAB=02; . "$(dirname "$0")/lib.sh"
#
# It gives: narration (say/note), checks (fail/has/check), a LIFO cleanup stack run on every
# exit (defer), a private warrend (lab_start_agent), namespace/network helpers that register
# their own undo, and lab_finish, which cleans up, checks that the host is as it was before
# the lab, and prints PASS.
#
# Binaries come from $WARREN / $WARREND (default: `warren` / `warrend` on PATH).

WARREN=${WARREN:-warren}
WARREND=${WARREND:-warrend}
LAB=${LAB:-??}

say()  { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
fail() {
    printf 'FAIL: lab %s: %s\n' "$LAB" "$*" >&2
    exit 1
}
# has TEXT REGEX: match without a pipe, so an early-exiting grep cannot SIGPIPE the writer
# and trip pipefail.
has() { grep -qE -- "$2" <<<"$1"; }
# check MESSAGE CMD...: run CMD (output shown); fail with MESSAGE if it fails.
check() {
    local msg=$1; shift
    "$@" || fail "$msg"
}
# refute MESSAGE CMD...: CMD must fail (output hidden); fail with MESSAGE if it succeeds.
refute() {
    local msg=$1; shift
    if "$@" >/dev/null 2>&1; then fail "$msg"; fi
}
# wait_for SECONDS CMD...: retry CMD (quietly) every 0.1 s until it succeeds or time runs out.
wait_for() {
    local tries=$(($1 * 10)); shift
    while ((tries-- > 0)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# ---- cleanup stack -------------------------------------------------------------------------
# Each `defer CMD` is run (in reverse order, errors ignored) when the lab exits, whatever the
# reason, so a failing lab leaves nothing behind either.
_deferred=()
defer() { _deferred+=("$*"); }
_run_deferred() {
    local i
    for ((i = ${#_deferred[@]} - 1; i >= 0; i--)); do
        eval "${_deferred[i]}" >/dev/null 2>&1 || true
    done
    _deferred=()
}
_on_exit() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)) && [ -n "${LAB_DIR:-}" ] && [ -s "$LAB_DIR/warrend.log" ]; then
        printf '\n-- last lines of the agent log (%s):\n' "$LAB_DIR/warrend.log" >&2
        tail -n 15 "$LAB_DIR/warrend.log" >&2 || true
    fi
    _run_deferred
    exit "$rc"
}
trap _on_exit EXIT
# A command that fails outside any check still stops the lab (set -e); say which one.
trap 'printf "FAIL: lab %s: unexpected error at line %s: %s\n" "$LAB" "$LINENO" "$BASH_COMMAND" >&2' ERR

# ---- what the host looks like, to prove the lab left nothing --------------------------------
host_snapshot() {
    echo "netns:"; ip netns list | awk '{print "  " $1}' | sort
    echo "links:"; ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print "  " $2}' | sort
    echo "nft:"; nft list tables | sort | sed 's/^/  /'
}

# ---- the agent -----------------------------------------------------------------------------
# lab_start_agent [DAEMON_JSON]: run a private warrend (own data/exec root, socket, and a config
# file holding DAEMON_JSON, `{}` by default) in the background, export WARREN_HOST for the CLI
# and wait until it answers. The default network's bridge (warren0) and Warren's nftables
# tables are kernel state that the agent deliberately keeps when it stops (so containers survive
# an agent restart); this lab's cleanup removes them because it owns the agent. To stay honest
# about that it refuses to start where they exist.
lab_start_agent() {
    [ "$(id -u)" = 0 ] || fail "labs need root (they create namespaces, bridges and nft tables)"
    local tool
    for tool in "$WARREN" "$WARREND" ip nft ping busybox; do
        command -v "$tool" >/dev/null || fail "'$tool' not found on PATH"
    done
    if ip link show warren0 >/dev/null 2>&1 || has "$(nft list tables)" ' warren$'; then
        fail "warren0 or an nft table 'warren' already exists here: another agent owns them; run the lab in a sandbox (labs/run.sh)"
    fi
    LAB_BEFORE=$(host_snapshot)
    LAB_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)

    LAB_DIR=$(mktemp -d /tmp/warren-lab$LAB.XXXXXX)
    defer "rm -rf '$LAB_DIR'"
    printf '%s\n' "${1:-"{}"}" >"$LAB_DIR/daemon.json"
    export WARREN_HOST="unix://$LAB_DIR/warren.sock"
    "$WARREND" --data-root "$LAB_DIR/data" --exec-root "$LAB_DIR/run" \
        -H "$WARREN_HOST" --config-file "$LAB_DIR/daemon.json" >"$LAB_DIR/warrend.log" 2>&1 &
    LAB_AGENT_PID=$!
    # Undo in this order (the stack runs bottom-up): stop the agent, then remove the kernel
    # state it keeps on purpose, then restore ip_forward, which it turned on.
    defer "echo '$LAB_FORWARD' >/proc/sys/net/ipv4/ip_forward"
    defer "nft delete table bridge warren"
    defer "nft delete table inet warren"
    defer "ip link del warren0"
    defer "kill $LAB_AGENT_PID; wait $LAB_AGENT_PID"

    local tries=100
    until "$WARREN" info >/dev/null 2>&1; do
        kill -0 "$LAB_AGENT_PID" 2>/dev/null || fail "warrend exited at start (log: $LAB_DIR/warrend.log)"
        ((tries-- > 0)) || fail "warrend did not answer on $WARREN_HOST within 10 s"
        sleep 0.1
    done
    note "warrend (pid $LAB_AGENT_PID) answers on $WARREN_HOST"
}

# ---- namespaces, networks, processes --------------------------------------------------------
# ns_add NAME: a fresh named namespace with lo up; deleted at exit.
ns_add() {
    local ns=$1
    [ ! -e "/run/netns/$ns" ] || fail "namespace $ns already exists (left over from an earlier run?)"
    "$WARREN" netns add "$ns"
    defer "ip netns del '$ns'"
    "$WARREN" netns up "$ns"
}

# ns_ip NS [IF]: the IPv4 address (without prefix) of IF (default eth0) in NS, or nothing.
ns_ip() {
    { ip -n "$1" -4 -o addr show dev "${2:-eth0}" 2>/dev/null || true; } | awk '{sub(/\/.*/, "", $4); print $4; exit}'
}

# net_create NAME ARGS...: `warren network create`; removed at exit.
net_create() {
    local name=$1; shift
    "$WARREN" network create "$@" "$name" >/dev/null || fail "warren network create $* $name failed"
    defer "'$WARREN' network rm '$name'"
}

# net_connect NET NS ARGS...: attach namespace NS to network NET; detached at exit (a no-op
# if the lab already did it).
net_connect() {
    local net=$1 ns=$2; shift 2
    "$WARREN" network connect "$@" "$net" --netns "$ns" || fail "warren network connect $* $net --netns $ns failed"
    defer "'$WARREN' network disconnect '$net' --netns '$ns'"
}

# ns_bg NS CMD...: start CMD in the background inside NS; killed at exit. Sets BG_PID.
ns_bg() {
    local ns=$1; shift
    ip netns exec "$ns" "$@" >/dev/null 2>&1 &
    BG_PID=$!
    defer "kill $BG_PID; wait $BG_PID"
}

# outside_add NAME HOST_IF HOST_CIDR PEER_CIDR: a namespace standing for "the outside world",
# joined to the lab host by a veth pair (HOST_IF here, eth0 there).
outside_add() {
    local ns=$1 host_if=$2 host_cidr=$3 peer_cidr=$4
    ns_add "$ns"
    "$WARREN" netns veth "host:$host_if" "$ns:eth0" --addr "$host_cidr" --peer-addr "$peer_cidr"
    defer "ip link del '$host_if'"
}

# web_root DIR: a busybox httpd document root under the lab dir (prints its path).
web_root() {
    local dir="$LAB_DIR/www-$1"
    mkdir -p "$dir/cgi-bin"
    printf '%s\n' "$dir"
}

# http_get NS URL: fetch URL from inside NS with busybox wget, body on stdout, at most 3 s.
# (`timeout`, not wget -T: the -T option of Debian's busybox-static 1.35 wget segfaults.)
http_get() { ip netns exec "$1" timeout 3 busybox wget -q -O - "$2"; }
# http_get_host URL: the same from the lab host itself.
http_get_host() { timeout 3 busybox wget -q -O - "$1"; }

# lab_finish: clean up now, check the host is back to how it was, print PASS.
lab_finish() {
    say "Clean up: everything this lab made is removed, the host is as before"
    _run_deferred
    local after
    after=$(host_snapshot)
    if [ "$after" != "$LAB_BEFORE" ]; then
        diff <(echo "$LAB_BEFORE") <(echo "$after") >&2 || true
        fail "the lab left something behind (diff above: < before, > after)"
    fi
    note "namespaces, links and nft tables are the same as before the lab"
    echo PASS
}

# ping_ok NS IP [WHAT]: one ping from NS to IP must be answered.
ping_ok() {
    ip netns exec "$1" ping -c 1 -W 2 "$2" >/dev/null 2>&1 || fail "${3:-$1} cannot ping $2"
    note "ping $1 -> $2: reply"
}
# ping_blocked NS IP [WHAT]: pings from NS to IP must go unanswered.
ping_blocked() {
    if ip netns exec "$1" ping -c 2 -i 0.2 -W 1 "$2" >/dev/null 2>&1; then
        fail "${3:-$1} can ping $2, but it must not"
    fi
    note "ping $1 -> $2: no reply (as it should be)"
}

# ---- containers ----------------------------------------------------------------------------
# busybox_rootfs: a root filesystem directory with the host's busybox-static and its applets
# (an image for `warren run`: an absolute path runs as a one-layer image). Prints its path.
busybox_rootfs() {
    local root="$LAB_DIR/rootfs"
    if [ ! -x "$root/bin/busybox" ]; then
        mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
        cp "$(command -v busybox)" "$root/bin/busybox"
        chroot "$root" /bin/busybox --install -s /bin
        echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
        echo 'root:x:0:' >"$root/etc/group"
    fi
    printf '%s\n' "$root"
}

# add_host_binary ROOT PATH: copy a dynamically linked host binary and its libraries into ROOT.
add_host_binary() {
    local root=$1 bin=$2 lib
    mkdir -p "$root$(dirname "$bin")"
    cp "$bin" "$root$bin"
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# run_out ARGS…: `warren run --rm ARGS…` and its output, which must not be empty (an
# attached client must get all of a short-lived container's output before `--rm` deletes it).
run_out() {
    local out
    out=$("$WARREN" run --rm "$@") || return
    [ -n "$out" ] || fail "no output from 'warren run --rm $*'"
    printf '%s\n' "$out"
}
