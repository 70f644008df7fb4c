#!/usr/bin/env bash
# Lab 08: macvlan — containers directly on a LAN, each with its own MAC address, no bridge and
# no NAT. A "LAN" namespace plays the physical network (a host at 192.168.77.1 behind a veth
# whose other end, in this lab's host namespace, is the macvlan parent). Self-checking: exits
# non-zero with a message on the first mismatch, and removes everything it made (even on
# failure). Starts its own warrend with private state; best run in a sandbox (labs/run.sh).
#
#   WARREN=/path/to/warren WARREND=/path/to/warrend bash labs/08-macvlan.sh
set -euo pipefail

WARREN=${WARREN:-warren}
WARREND=${WARREND:-warrend}
LAN=lab8-lan
C1=lab8-c1
C2=lab8-c2
PARENT=lab8par0        # host end of the LAN cable: the macvlan parent
HOSTMV=lab8host0       # the host's own macvlan (workaround, step 5)
LAN_IP=192.168.77.1
HOST_IP=192.168.77.254
NET=lab8
made_ns=()
made_links=()
tmp=$(mktemp -d /tmp/warren-lab08.XXXXXX)
agent_pid=

say()  { printf '\n== %s\n' "$*"; }
fail() { printf 'LAB 08 FAILED: %s\n' "$*" >&2; exit 1; }
has() { grep -qE -- "$2" <<<"$1"; }
w() { "$WARREN" -H "unix://$tmp/warren.sock" "$@"; }
pings() { ip netns exec "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1; }
mac_of() { ip -n "$1" -o link show "$2" | grep -oE 'link/ether [0-9a-f:]+' | cut -d' ' -f2; }
netns_names() { ip netns list | awk '{print $1}'; }
cleanup() {
    set +e
    if [ -n "$agent_pid" ]; then
        for ns in "$C1" "$C2"; do w network disconnect "$NET" --netns "$ns" >/dev/null 2>&1; done
        w network rm "$NET" >/dev/null 2>&1
        kill "$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null
    fi
    for l in "${made_links[@]}"; do ip link del "$l" 2>/dev/null; done
    for ns in "${made_ns[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

command -v "$WARREN" >/dev/null || fail "warren binary '$WARREN' not found (set WARREN=...)"
command -v "$WARREND" >/dev/null || fail "warrend binary '$WARREND' not found (set WARREND=...)"
for ns in "$LAN" "$C1" "$C2"; do
    has "$(netns_names)" "^${ns}\$" && fail "namespace $ns already exists; remove it with: ip netns del $ns"
done
for l in "$PARENT" "$HOSTMV"; do
    ip link show "$l" >/dev/null 2>&1 && fail "link $l already exists; remove it with: ip link del $l"
done

say "0. Start a private warrend (state in $tmp)"
echo '{}' >"$tmp/daemon.json"
"$WARREND" --config-file "$tmp/daemon.json" --data-root "$tmp/data" --exec-root "$tmp/run" \
    -H "unix://$tmp/warren.sock" >"$tmp/warrend.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do [ -S "$tmp/warren.sock" ] && break; sleep 0.1; done
[ -S "$tmp/warren.sock" ] || { cat "$tmp/warrend.log" >&2; fail "warrend did not start"; }

say "1. The LAN: namespace $LAN with a host at $LAN_IP/24, cabled to $PARENT here"
ip netns add "$LAN"; made_ns+=("$LAN")
ip link add "$PARENT" type veth peer name lan0 netns "$LAN"; made_links+=("$PARENT")
ip link set "$PARENT" up
ip -n "$LAN" addr add "$LAN_IP/24" dev lan0
ip -n "$LAN" link set lan0 up
ip -n "$LAN" link set lo up

say "2. A macvlan network on parent $PARENT (bridge mode is the default)"
links_before=$(ip -br link | awk '{print $1}' | sort)
w network create -d macvlan --subnet 192.168.77.0/24 --gateway "$LAN_IP" -o parent="$PARENT" "$NET"
w network inspect "$NET" | grep -q '"Driver": "macvlan"' || fail "inspect does not show driver macvlan"
ip netns add "$C1"; made_ns+=("$C1")
ip netns add "$C2"; made_ns+=("$C2")
w network connect "$NET" --netns "$C1"
w network connect "$NET" --netns "$C2"
ip -n "$C1" -br addr show eth0
ip -n "$C2" -br addr show eth0
has "$(ip -n "$C1" -d link show eth0)" 'macvlan mode bridge' || fail "eth0 in $C1 is not a bridge-mode macvlan"
echo "   Each endpoint was born inside its namespace: the host namespace gained no link."
[ "$(ip -br link | awk '{print $1}' | sort)" = "$links_before" ] || fail "new links appeared in the host namespace"
IP1=$(ip -n "$C1" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
IP2=$(ip -n "$C2" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
has "$(ip -n "$C1" route)" "^default via $LAN_IP dev eth0" || fail "$C1 has no default route via $LAN_IP"

say "3. Both reach the LAN host and each other directly"
pings "$C1" "$LAN_IP" || fail "$C1 cannot reach the LAN host"
pings "$C2" "$LAN_IP" || fail "$C2 cannot reach the LAN host"
pings "$C1" "$IP2" || fail "$C1 cannot reach $C2 ($IP2) in bridge mode"
pings "$C2" "$IP1" || fail "$C2 cannot reach $C1 ($IP1) in bridge mode"
echo "   The LAN host sees each container with its own MAC (no NAT, no shared address):"
ip -n "$LAN" neigh show dev lan0
neigh=$(ip -n "$LAN" neigh show dev lan0)
for ns in "$C1" "$C2"; do
    mac=$(mac_of "$ns" eth0)
    has "$neigh" "lladdr $mac" || fail "MAC $mac of $ns is not in the LAN host's neighbour table"
done

say "4. The host itself cannot reach its macvlan children through the parent"
echo "   The kernel does not switch frames between a macvlan and its parent: what the host"
echo "   sends on $PARENT goes out on the wire only, and what the children send goes to the wire"
echo "   or to sibling macvlans, never up the parent's own stack."
ip addr add "$HOST_IP/24" dev "$PARENT"
ping -c 1 -W 1 "$LAN_IP" >/dev/null || fail "the host cannot reach the LAN host through $PARENT"
echo "   host -> LAN host $LAN_IP: ok"
if ping -c 1 -W 1 "$IP1" >/dev/null 2>&1; then fail "the host reached $IP1 through the parent (expected not to)"; fi
echo "   host -> $C1 ($IP1) through $PARENT: no answer, as expected"
if pings "$C1" "$HOST_IP"; then fail "$C1 reached the host's parent address (expected not to)"; fi
ip addr del "$HOST_IP/24" dev "$PARENT"

say "5. Workaround: give the host its own macvlan on the same parent, and route through it"
echo "   ip link add $HOSTMV link $PARENT type macvlan mode bridge; address $HOST_IP/24 on it."
echo "   (For a single route instead of the whole subnet: ip route add $IP1/32 dev $HOSTMV.)"
ip link add "$HOSTMV" link "$PARENT" type macvlan mode bridge; made_links+=("$HOSTMV")
ip addr add "$HOST_IP/24" dev "$HOSTMV"
ip link set "$HOSTMV" up
ping -c 1 -W 2 "$IP1" >/dev/null || fail "the host cannot reach $C1 through $HOSTMV"
pings "$C2" "$HOST_IP" || fail "$C2 cannot reach the host through $HOSTMV"
echo "   host ($HOSTMV) <-> $C1, $C2: ok"
ip link del "$HOSTMV"; made_links=("$PARENT")

say "6. Private mode: the LAN yes, each other no"
w network disconnect "$NET" --netns "$C1"
w network disconnect "$NET" --netns "$C2"
w network rm "$NET"
w network create -d macvlan --subnet 192.168.77.0/24 --gateway "$LAN_IP" \
    -o parent="$PARENT" -o macvlan_mode=private "$NET"
w network connect "$NET" --netns "$C1"
w network connect "$NET" --netns "$C2"
has "$(ip -n "$C1" -d link show eth0)" 'macvlan mode private' || fail "eth0 in $C1 is not a private-mode macvlan"
IP1=$(ip -n "$C1" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
IP2=$(ip -n "$C2" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
pings "$C1" "$LAN_IP" || fail "$C1 cannot reach the LAN host in private mode"
pings "$C2" "$LAN_IP" || fail "$C2 cannot reach the LAN host in private mode"
if pings "$C1" "$IP2"; then fail "$C1 reached $C2 in private mode"; fi
echo "   $C1 -> $C2 ($IP2): blocked, as private mode promises"

say "7. Publishing a port is refused (no NAT on macvlan)"
ip netns add lab8-c3; made_ns+=(lab8-c3)
if out=$(w network connect -p 8080:80 "$NET" --netns lab8-c3 2>&1); then fail "publishing a port on macvlan succeeded"; fi
echo "   $out"
has "$out" "no NAT" || fail "unclear error for port publishing: $out"

say "8. 802.1Q parent ($PARENT.10): made on demand when the kernel has 802.1Q"
if out=$(w network create -d macvlan --subnet 192.168.78.0/24 -o parent="$PARENT.10" lab8v 2>&1); then
    has "$(ip -d link show "$PARENT.10")" 'vlan protocol 802.1Q id 10' || fail "$PARENT.10 is not VLAN 10"
    w network rm lab8v
    ip link show "$PARENT.10" >/dev/null 2>&1 && fail "$PARENT.10 (made by Warren) survived network rm"
    echo "   $PARENT.10 created with the network and removed with it"
else
    has "$out" "no 802.1Q support" || fail "VLAN parent failed for another reason: $out"
    ip link show "$PARENT.10" >/dev/null 2>&1 && fail "a failed VLAN network left $PARENT.10 behind"
    echo "   NOT EXERCISED HERE: this kernel has no 802.1Q (8021q) support; Warren refused cleanly:"
    echo "   $out"
fi

say "9. Disconnect and remove: nothing of the network is left"
w network disconnect "$NET" --netns "$C1"
w network disconnect "$NET" --netns "$C2"
w network rm "$NET"
for ns in "$C1" "$C2"; do
    [ "$(ip -n "$ns" -br link | awk '{print $1}')" = "lo" ] || fail "$ns still has links besides lo"
done
[ "$(ip -br link | awk '{print $1}' | sort)" = "$links_before" ] || fail "host links changed"
has "$(w network ls)" " $NET " && fail "network $NET still listed"

say "Lab 08 passed"
