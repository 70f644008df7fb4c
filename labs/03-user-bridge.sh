#!/usr/bin/env bash
# Lab 03: user-defined bridge networks. A network with a chosen subnet, gateway and bridge
# name; members talk to each other; a second network is isolated from the first; a running
# namespace is connected to and disconnected from a second network live; a network can be
# removed only once it is empty; and a big network grows extension bridges.
# Self-checking (non-zero exit with "FAIL: ..." on the first mismatch; "PASS" at the end) and
# self-cleaning. Run it in a sandbox: labs/run.sh labs/03-user-bridge.sh
set -euo pipefail
LAB=03
. "$(dirname "$0")/lib.sh"

NET1=lab3-one
NET2=lab3-two
NS_A=lab3-a
NS_B=lab3-b
NS_C=lab3-c

# inspect_field NET FIELD: the first "FIELD": "value" in `warren network inspect NET`.
inspect_field() {
    "$WARREN" network inspect "$1" | sed -n "s/^ *\"$2\": \"\\([^\"]*\\)\".*/\\1/p" | head -n 1
}

say "1. Start a private agent"
lab_start_agent

say "2. Create '$NET1' with our own subnet, gateway and bridge name"
echo "   \$ warren network create --subnet 10.30.0.0/24 --gateway 10.30.0.1 -o com.docker.network.bridge.name=br-lab $NET1"
net_create "$NET1" --subnet 10.30.0.0/24 --gateway 10.30.0.1 -o com.docker.network.bridge.name=br-lab
note "Warren made a Linux bridge called br-lab and gave it the gateway address:"
ip link show br-lab || fail "no link br-lab after creating $NET1"
has "$(ip -d link show br-lab)" ' bridge ' || fail "br-lab is not a bridge"
ip -br addr show br-lab
has "$(ip -4 -o addr show dev br-lab)" ' 10\.30\.0\.1/24 ' || fail "br-lab does not carry 10.30.0.1/24"
[ "$(inspect_field "$NET1" Subnet)" = 10.30.0.0/24 ] || fail "inspect: Subnet of $NET1 is not 10.30.0.0/24"
[ "$(inspect_field "$NET1" Gateway)" = 10.30.0.1 ] || fail "inspect: Gateway of $NET1 is not 10.30.0.1"
ID1=$(inspect_field "$NET1" Id | cut -c1-12)

say "3. Two namespaces on '$NET1' talk to each other"
ns_add "$NS_A"
ns_add "$NS_B"
net_connect "$NET1" "$NS_A"
net_connect "$NET1" "$NS_B"
IP_A=$(ns_ip "$NS_A")
IP_B=$(ns_ip "$NS_B")
note "$NS_A: eth0 $IP_A   $NS_B: eth0 $IP_B"
for ip in "$IP_A" "$IP_B"; do
    has "$ip" '^10\.30\.0\.[0-9]+$' || fail "endpoint address '$ip' is not in 10.30.0.0/24"
done
has "$(ip -n "$NS_A" route show default)" '^default via 10\.30\.0\.1 dev eth0' || fail "$NS_A: no default route via 10.30.0.1"
ping_ok "$NS_A" "$IP_B"
ping_ok "$NS_B" "$IP_A"

say "4. A second network '$NET2' (subnet from the default pool) with its own member"
net_create "$NET2"
SUBNET2=$(inspect_field "$NET2" Subnet)
GW2=$(inspect_field "$NET2" Gateway)
ID2=$(inspect_field "$NET2" Id | cut -c1-12)
BR2="br-$ID2"
note "$NET2 got $SUBNET2 (gateway $GW2); without a name option its bridge is br-<id12> = $BR2"
[ -n "$SUBNET2" ] && [ -n "$GW2" ] || fail "inspect shows no subnet/gateway for $NET2"
[ "$SUBNET2" != 10.30.0.0/24 ] || fail "$NET2 got the same subnet as $NET1"
ip -br addr show "$BR2" || fail "no bridge $BR2 for $NET2"
has "$(ip -4 -o addr show dev "$BR2")" " $GW2/" || fail "$BR2 does not carry the gateway $GW2"
ns_add "$NS_C"
net_connect "$NET2" "$NS_C"
IP_C=$(ns_ip "$NS_C")
note "$NS_C: eth0 $IP_C"
ping_ok "$NS_C" "$GW2" "$NS_C (to its own gateway)"

say "5. Isolation: members of different networks cannot reach each other"
note "Both bridges hang off the same host, which routes between them, so without a rule these"
note "pings would work. Warren's forward chain lets a packet enter a network's bridge only if it"
note "comes from that same bridge (or was DNATed to a published port):"
nft list chain inet warren "nw-$ID1-to" | grep -E 'iifname|ct status|drop' | sed 's/^[[:space:]]*/     /'
ping_blocked "$NS_A" "$IP_C"
ping_blocked "$NS_C" "$IP_A"
ping_blocked "$NS_C" "$IP_B"

say "6. Live connect: attach the running namespace $NS_A to '$NET2' as well"
ns_bg "$NS_A" sleep 600
SLEEP_PID=$BG_PID
note "A process (sleep, pid $SLEEP_PID) is running inside $NS_A. Connecting adds a second veth;"
note "its namespace end appears as eth1 right away, no restart of anything needed."
echo "   \$ warren network connect $NET2 --netns $NS_A"
"$WARREN" network connect "$NET2" --netns "$NS_A" || fail "connect $NET2 --netns $NS_A failed"
note "What the running process sees in its namespace (nsenter --net=/proc/$SLEEP_PID/ns/net):"
nsenter --net="/proc/$SLEEP_PID/ns/net" ip -br addr | sed 's/^/     /'
IP_A2=$(ns_ip "$NS_A" eth1)
[ -n "$IP_A2" ] || fail "no IPv4 address on eth1 in $NS_A right after connect"
has "$(nsenter --net="/proc/$SLEEP_PID/ns/net" ip -4 -o addr show dev eth1)" " $IP_A2/" \
    || fail "the process running in $NS_A does not see eth1"
kill -0 "$SLEEP_PID" 2>/dev/null || fail "the process in $NS_A died on connect"
note "eth1 has $IP_A2 from $NET2 ($SUBNET2); the default route stays on the first network:"
ip -n "$NS_A" route | sed 's/^/     /'
ping_ok "$NS_A" "$IP_C" "$NS_A (through eth1)"
ping_ok "$NS_C" "$IP_A2"
ping_ok "$NS_A" "$IP_B" "$NS_A (still, through eth0)"
note "$NS_B is not on $NET2, so it still cannot reach $NS_C:"
ping_blocked "$NS_B" "$IP_C"

say "7. Live disconnect: eth1 and its address go away, the process keeps running"
echo "   \$ warren network disconnect $NET2 --netns $NS_A"
"$WARREN" network disconnect "$NET2" --netns "$NS_A" || fail "disconnect $NET2 --netns $NS_A failed"
ip -n "$NS_A" -br addr | sed 's/^/     /'
refute "eth1 still exists in $NS_A after disconnect" ip -n "$NS_A" link show eth1
has "$(ip -n "$NS_A" -4 -o addr)" " $IP_A2/" && fail "$IP_A2 is still assigned in $NS_A after disconnect"
kill -0 "$SLEEP_PID" 2>/dev/null || fail "the process in $NS_A died on disconnect"
has "$("$WARREN" network inspect "$NET2")" "\"netns:$NS_A\"" && fail "$NET2 still lists $NS_A"
ping_blocked "$NS_A" "$IP_C"
ping_ok "$NS_A" "$IP_B" "$NS_A (through eth0)"

say "8. Removing networks: refused while endpoints exist, done once empty"
echo "   \$ warren network rm $NET1      (while $NS_A and $NS_B are attached)"
if out=$("$WARREN" network rm "$NET1" 2>&1); then
    fail "'warren network rm $NET1' succeeded although $NS_A and $NS_B are attached"
fi
note "refused: $out"
has "$out" "active endpoints" || fail "the refusal does not say why (expected 'active endpoints'): $out"
ip link show br-lab >/dev/null 2>&1 || fail "br-lab vanished after a refused rm"
has "$("$WARREN" network ls)" " $NET1 " || fail "$NET1 vanished after a refused rm"
ping_ok "$NS_A" "$IP_B" "$NS_A (after the refused rm)"
for ns in "$NS_A" "$NS_B"; do "$WARREN" network disconnect "$NET1" --netns "$ns"; done
"$WARREN" network disconnect "$NET2" --netns "$NS_C"
echo "   \$ warren network rm $NET1 $NET2   (now empty)"
"$WARREN" network rm "$NET1" "$NET2" || fail "'warren network rm' of the empty networks failed"
refute "br-lab still exists after rm" ip link show br-lab
refute "$BR2 still exists after rm" ip link show "$BR2"
refute "the chain nw-$ID1-to is left in nftables after rm" nft list chain inet warren "nw-$ID1-to"
has "$("$WARREN" network ls)" " $NET1 | $NET2 " && fail "'warren network ls' still lists a removed network"
"$WARREN" network ls

say "9. A big network is a stack of switches: extension bridges"
note "One Linux bridge gets slower to extend with every port, so past 32 endpoints (here, to"
note "see it with three namespaces: past 2) Warren hangs extension bridges off the main one."
echo "   \$ warren network create --subnet 10.31.0.0/24 -o com.docker.network.bridge.name=br-big -o warren.bridge.ports_per_bridge=2 lab3-big"
net_create lab3-big --subnet 10.31.0.0/24 -o com.docker.network.bridge.name=br-big -o warren.bridge.ports_per_bridge=2
ID8=$(inspect_field lab3-big Id | cut -c1-8)
for ns in lab3-d lab3-e lab3-f; do
    ns_add "$ns"
    net_connect lab3-big "$ns"
done
note "bridge link: two endpoints and an uplink (wz…) on br-big; the third endpoint and the"
note "uplink's other end (wy…) on the extension bridge wx$ID8-1:"
bridge link | grep -E "master (br-big|wx$ID8-1)" | sed 's/^/     /'
[ "$(ip -o link show master br-big | wc -l)" -eq 3 ] || fail "br-big should have 2 endpoints and 1 uplink"
[ "$(ip -o link show master "wx$ID8-1" | wc -l)" -eq 2 ] || fail "wx$ID8-1 should have 1 endpoint and its uplink"
IP_F=$(ns_ip lab3-f)
ping_ok lab3-d "$IP_F" "lab3-d (main bridge -> extension)"
ping_ok lab3-f 10.31.0.1 "lab3-f (to the gateway on br-big)"
note "The last endpoint leaves the extension: it is removed (in the background)."
"$WARREN" network disconnect lab3-big --netns lab3-f
check "wx$ID8-1 outlived its last endpoint" wait_for 5 sh -c "! ip link show wx$ID8-1"
refute "the uplink wz$ID8-1 outlived the extension" ip link show "wz$ID8-1"

lab_finish
