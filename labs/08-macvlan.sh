#!/usr/bin/env bash
# Lab 08: macvlan — containers directly on a LAN, each with its own MAC address, no bridge and
# no NAT. A "LAN" namespace plays the physical network (a host at 192.168.77.1 behind a veth
# whose other end, in the lab's host namespace, is the macvlan parent). Two namespaces on a
# bridge-mode network reach the LAN host and each other; private mode blocks them from each
# other; the host cannot reach its own macvlan children through the parent (kernel
# behaviour), and a macvlan of its own on the same parent works around that.
# Self-checking (non-zero exit with "FAIL: ..." on the first mismatch; "PASS" at the end) and
# self-cleaning. Run it in a sandbox: labs/run.sh labs/08-macvlan.sh
set -euo pipefail
LAB=08
. "$(dirname "$0")/lib.sh"

LAN=lab8-lan
C1=lab8-c1
C2=lab8-c2
C3=lab8-c3
PARENT=lab8par0        # host end of the LAN cable: the macvlan parent
HOSTMV=lab8host0       # the host's own macvlan (the workaround)
LAN_IP=192.168.77.1
HOST_IP=192.168.77.254
NET=lab8

mac_of() { ip -n "$1" -o link show "${2:-eth0}" | grep -oE 'link/ether [0-9a-f:]+' | cut -d' ' -f2; }
link_names() { ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort; }

say "1. Start a private agent"
lab_start_agent

say "2. The LAN: namespace $LAN with a host at $LAN_IP/24, cabled to $PARENT here"
ns_add "$LAN"
ip link add "$PARENT" type veth peer name lan0 netns "$LAN"
defer "ip link del '$PARENT'"
ip link set "$PARENT" up
ip -n "$LAN" addr add "$LAN_IP/24" dev lan0
ip -n "$LAN" link set lan0 up
note "$PARENT has no address: to the host it is just a cable to the LAN."

say "3. A macvlan network on parent $PARENT (bridge mode is the default)"
echo "   \$ warren network create -d macvlan --subnet 192.168.77.0/24 --gateway $LAN_IP -o parent=$PARENT $NET"
links_before=$(link_names)
net_create "$NET" -d macvlan --subnet 192.168.77.0/24 --gateway "$LAN_IP" -o parent="$PARENT"
has "$("$WARREN" network inspect "$NET")" '"Driver": "macvlan"' || fail "inspect does not show driver macvlan"
ns_add "$C1"
ns_add "$C2"
net_connect "$NET" "$C1"
net_connect "$NET" "$C2"
ip -n "$C1" -br addr show eth0
ip -n "$C2" -br addr show eth0
has "$(ip -n "$C1" -d link show eth0)" 'macvlan mode bridge' || fail "eth0 in $C1 is not a bridge-mode macvlan"
has "$(ip -n "$C1" route)" "^default via $LAN_IP dev eth0" || fail "$C1 has no default route via $LAN_IP"
note "Each eth0 was born inside its namespace (one netlink request): the host gained no link."
[ "$(link_names)" = "$links_before" ] || fail "new links appeared in the host namespace"
IP1=$(ns_ip "$C1")
IP2=$(ns_ip "$C2")

say "4. Both reach the LAN host and each other directly"
ping_ok "$C1" "$LAN_IP"
ping_ok "$C2" "$LAN_IP"
ping_ok "$C1" "$IP2"
ping_ok "$C2" "$IP1"
note "The LAN host sees each container with its own MAC (no NAT, no shared address):"
ip -n "$LAN" neigh show dev lan0
neigh=$(ip -n "$LAN" neigh show dev lan0)
for ns in "$C1" "$C2"; do
    mac=$(mac_of "$ns")
    has "$neigh" "lladdr $mac" || fail "MAC $mac of $ns is not in the LAN host's neighbour table"
done

say "5. The host itself cannot reach its macvlan children through the parent"
note "The kernel does not switch frames between a macvlan and its parent: what the host"
note "sends on $PARENT goes out on the wire only, and what the children send goes to the wire"
note "or to sibling macvlans, never up the parent's own stack. Give the parent an address:"
ip addr add "$HOST_IP/24" dev "$PARENT"
check "the host cannot reach the LAN host through $PARENT" ping -c 1 -W 2 "$LAN_IP"
note "host -> LAN host $LAN_IP: reply"
refute "the host reached $C1 ($IP1) through the parent (expected not to)" ping -c 2 -i 0.2 -W 1 "$IP1"
note "host -> $C1 ($IP1) through $PARENT: no reply (as the kernel promises)"
ping_blocked "$C1" "$HOST_IP"
ip addr del "$HOST_IP/24" dev "$PARENT"

say "6. Workaround: the host gets its own macvlan on the same parent, and routes through it"
echo "   \$ ip link add $HOSTMV link $PARENT type macvlan mode bridge"
echo "   \$ ip addr add $HOST_IP/24 dev $HOSTMV && ip link set $HOSTMV up"
note "(Or a /32 address on it plus one route per container: ip route add $IP1/32 dev $HOSTMV.)"
ip link add "$HOSTMV" link "$PARENT" type macvlan mode bridge
defer "ip link del '$HOSTMV'"
ip addr add "$HOST_IP/24" dev "$HOSTMV"
ip link set "$HOSTMV" up
wait_for 3 ping -c 1 -W 1 "$IP1" || fail "the host cannot reach $C1 through $HOSTMV"
note "host ($HOSTMV) -> $C1: reply"
ping_ok "$C2" "$HOST_IP"
ip link del "$HOSTMV"

say "7. Private mode: the LAN yes, each other no"
"$WARREN" network disconnect "$NET" --netns "$C1"
"$WARREN" network disconnect "$NET" --netns "$C2"
"$WARREN" network rm "$NET"
echo "   \$ warren network create -d macvlan ... -o parent=$PARENT -o macvlan_mode=private $NET"
net_create "$NET" -d macvlan --subnet 192.168.77.0/24 --gateway "$LAN_IP" \
    -o parent="$PARENT" -o macvlan_mode=private
net_connect "$NET" "$C1"
net_connect "$NET" "$C2"
has "$(ip -n "$C1" -d link show eth0)" 'macvlan mode private' || fail "eth0 in $C1 is not a private-mode macvlan"
ping_ok "$C1" "$LAN_IP"
ping_ok "$C2" "$LAN_IP"
ping_blocked "$C1" "$(ns_ip "$C2")" "$C1 (private mode)"

say "8. Publishing a port is refused: macvlan endpoints are outside Warren's NAT"
ns_add "$C3"
if out=$("$WARREN" network connect -p 8080:80 "$NET" --netns "$C3" 2>&1); then
    fail "publishing a port on a macvlan network succeeded"
fi
note "$out"
has "$out" "no NAT" || fail "unclear error for port publishing: $out"

say "9. An 802.1Q parent ($PARENT.10) is made with the network when the kernel has 802.1Q"
if out=$("$WARREN" network create -d macvlan --subnet 192.168.78.0/24 -o parent="$PARENT.10" lab8v 2>&1); then
    has "$(ip -d link show "$PARENT.10")" 'vlan protocol 802.1Q id 10' || fail "$PARENT.10 is not VLAN 10"
    "$WARREN" network rm lab8v
    refute "$PARENT.10 (made by Warren) survived network rm" ip link show "$PARENT.10"
    note "$PARENT.10 was created with the network and removed with it"
else
    has "$out" "no 802.1Q support" || fail "VLAN parent failed for another reason: $out"
    refute "a failed VLAN network left $PARENT.10 behind" ip link show "$PARENT.10"
    note "NOT EXERCISED HERE: this kernel has no 802.1Q (8021q) support. Warren refused cleanly:"
    note "$out"
fi

say "10. Disconnect and remove: nothing of the network is left in the namespaces"
"$WARREN" network disconnect "$NET" --netns "$C1"
"$WARREN" network disconnect "$NET" --netns "$C2"
"$WARREN" network rm "$NET"
for ns in "$C1" "$C2"; do
    [ "$(ip -n "$ns" -br link | awk '{print $1}')" = "lo" ] || fail "$ns still has links besides lo"
done
[ "$(link_names)" = "$links_before" ] || fail "host links changed"

lab_finish
