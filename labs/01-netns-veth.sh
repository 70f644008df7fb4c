#!/usr/bin/env bash
# Lab 01: two network namespaces joined by a veth pair, built with warren and checked with
# iproute2. Self-checking: exits non-zero with a message on the first mismatch, and removes
# everything it made (even on failure). Safe in the root namespace or inside a sandbox.
#
#   WARREN=/path/to/warren bash labs/01-netns-veth.sh    (default: `warren` on PATH)
set -euo pipefail

WARREN=${WARREN:-warren}
NS_A=lab1-a
NS_B=lab1-b
ADDR_A=10.200.1.1/24
ADDR_B=10.200.1.2/24
made=()

say()  { printf '\n== %s\n' "$*"; }
fail() { printf 'LAB 01 FAILED: %s\n' "$*" >&2; exit 1; }
# has TEXT REGEX: match without a pipe, so an early-exiting grep cannot SIGPIPE the writer
# and trip pipefail.
has() { grep -qE -- "$2" <<<"$1"; }
netns_names() { ip netns list | awk '{print $1}'; }
cleanup() {
    # Only what this run created; a namespace that already existed is never touched.
    for ns in "${made[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap cleanup EXIT

command -v "$WARREN" >/dev/null || fail "warren binary '$WARREN' not found (set WARREN=...)"
for ns in "$NS_A" "$NS_B"; do
    if has "$(netns_names)" "^${ns}\$"; then
        fail "namespace $ns already exists (left over from an earlier run?); remove it with: ip netns del $ns"
    fi
done

say "1. Create namespace $NS_A with warren and $NS_B with iproute2"
echo "   A named namespace is a file under /run/netns that keeps the namespace alive;"
echo "   warren and 'ip netns' use the same directory, so each sees the other's."
"$WARREN" netns add "$NS_A"; made+=("$NS_A")
ip netns add "$NS_B"; made+=("$NS_B")
has "$(netns_names)" "^${NS_A}\$" || fail "'ip netns list' does not show $NS_A made by warren"
has "$("$WARREN" netns ls | awk 'NR>1 {print $1}')" "^${NS_B}\$" || fail "'warren netns ls' does not show $NS_B made by ip"
"$WARREN" netns ls

say "2. A fresh namespace has only a loopback device, and it is down"
ip -n "$NS_A" -br link
"$WARREN" netns up "$NS_A"
"$WARREN" netns up "$NS_B"
has "$(ip -n "$NS_A" -o link show lo)" ',UP' || fail "lo is not up in $NS_A"

say "3. Connect them with a veth pair: a virtual cable, one end in each namespace"
echo "   warren creates the pair in one netlink request with each end born in its namespace."
"$WARREN" netns veth "$NS_A:veth0" "$NS_B:veth1" --addr "$ADDR_A" --peer-addr "$ADDR_B"
ip -n "$NS_A" -br addr show veth0
ip -n "$NS_B" -br addr show veth1

say "4. Check the addresses, both through 'ip netns exec' and 'warren netns exec'"
has "$(ip netns exec "$NS_B" ip -br addr)" "^veth1.* ${ADDR_B}( |\$)" || fail "$NS_B does not have $ADDR_B"
has "$("$WARREN" netns exec "$NS_A" -- ip -br addr)" "^veth0.* ${ADDR_A}( |\$)" || fail "$NS_A does not have $ADDR_A"
echo "   Inside, /sys shows the namespace's own devices:"
"$WARREN" netns exec "$NS_B" -- ls /sys/class/net | tr '\n' ' '; echo
[ "$("$WARREN" netns exec "$NS_B" -- ls /sys/class/net | sort | tr '\n' ' ')" = "lo veth1 " ] \
    || fail "/sys/class/net inside $NS_B should list exactly lo and veth1"

say "5. Ping across the cable"
ip netns exec "$NS_A" ping -c 1 -W 2 "${ADDR_B%/*}" || fail "$NS_A cannot reach ${ADDR_B%/*}"
"$WARREN" netns exec "$NS_B" -- ping -c 1 -W 2 "${ADDR_A%/*}" || fail "$NS_B cannot reach ${ADDR_A%/*}"

say "6. Delete both namespaces; the veth pair goes with them"
"$WARREN" netns del "$NS_A" "$NS_B"
made=()
if has "$(netns_names)" "^(${NS_A}|${NS_B})\$"; then
    fail "namespaces still listed after delete"
fi
[ ! -e "/run/netns/$NS_A" ] && [ ! -e "/run/netns/$NS_B" ] || fail "files under /run/netns left behind"

say "Lab 01 passed"
