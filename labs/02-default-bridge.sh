#!/usr/bin/env bash
# Lab 02: the default bridge network. Two namespaces attached to `bridge` (Linux bridge
# warren0, 172.17.0.0/16) talk by IP, and reach an "outside" web server through the host,
# which masquerades them: the server sees the host's address, never 172.17.x.y.
# Self-checking (non-zero exit with "FAIL: ..." on the first mismatch; "PASS" at the end) and
# self-cleaning. Run it in a sandbox: labs/run.sh labs/02-default-bridge.sh
set -euo pipefail
LAB=02
. "$(dirname "$0")/lib.sh"

NS_A=lab2-a
NS_B=lab2-b
NS_OUT=lab2-out
HOST_IF=lab2-out0
HOST_ADDR=198.51.100.1   # the lab host's address towards the outside world
OUT_ADDR=198.51.100.2    # the outside web server
PORT=8000

say "1. Start a private agent; the default network 'bridge' exists from the start"
lab_start_agent
"$WARREN" network ls
has "$("$WARREN" network ls)" ' bridge +bridge +local +172\.17\.0\.0/16' \
    || fail "'warren network ls' does not show the default network bridge 172.17.0.0/16"
note "Its Linux bridge is warren0; the bridge's own address is the containers' gateway:"
ip -br addr show warren0
has "$(ip -4 -o addr show dev warren0)" ' 172\.17\.0\.1/16 ' || fail "warren0 does not carry the gateway 172.17.0.1/16"

say "2. Attach two namespaces to the default bridge"
note "Each connect makes a veth pair: one end becomes eth0 in the namespace (with an address"
note "from the network's pool and a default route via the gateway), the other is plugged"
note "into warren0 on the host, like a cable into a switch."
ns_add "$NS_A"
ns_add "$NS_B"
net_connect bridge "$NS_A"
net_connect bridge "$NS_B"
IP_A=$(ns_ip "$NS_A")
IP_B=$(ns_ip "$NS_B")
for ns in "$NS_A" "$NS_B"; do
    ip -n "$ns" -br addr show eth0
    ip -n "$ns" route
    has "$(ip -n "$ns" -4 -o addr show eth0)" ' 172\.17\.[0-9]+\.[0-9]+/16 ' || fail "$ns: eth0 has no address in 172.17.0.0/16"
    has "$(ip -n "$ns" route show default)" '^default via 172\.17\.0\.1 dev eth0' || fail "$ns: no default route via 172.17.0.1"
done
[ "$IP_A" != "$IP_B" ] || fail "both namespaces got the same address $IP_A"
note "On the host, the other ends of the pairs are ports of warren0:"
ip -br link show master warren0
[ "$(ip -o link show master warren0 | wc -l)" -eq 2 ] || fail "warren0 should have exactly 2 ports"
inspect=$("$WARREN" network inspect bridge)
has "$inspect" "\"netns:$NS_A\"" && has "$inspect" "\"IPv4Address\": \"$IP_A/16\"" \
    || fail "'warren network inspect bridge' does not list $NS_A with $IP_A"
has "$inspect" "\"netns:$NS_B\"" && has "$inspect" "\"IPv4Address\": \"$IP_B/16\"" \
    || fail "'warren network inspect bridge' does not list $NS_B with $IP_B"

say "3. The two namespaces talk by IP, switched by warren0 ($IP_A <-> $IP_B)"
ping_ok "$NS_A" "$IP_B"
ping_ok "$NS_B" "$IP_A"
ping_ok "$NS_A" 172.17.0.1 "$NS_A (to its gateway)"

say "4. An 'outside world': namespace $NS_OUT on a veth to the host ($HOST_ADDR <-> $OUT_ADDR)"
note "It runs busybox httpd with a CGI script that answers with the caller's address"
note "(\$REMOTE_ADDR), so we can see which source address arrives out there."
outside_add "$NS_OUT" "$HOST_IF" "$HOST_ADDR/24" "$OUT_ADDR/24"
www=$(web_root out)
cat >"$www/cgi-bin/ip" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$REMOTE_ADDR"
EOF
chmod +x "$www/cgi-bin/ip"
ns_bg "$NS_OUT" busybox httpd -f -p "$OUT_ADDR:$PORT" -h "$www"
URL="http://$OUT_ADDR:$PORT/cgi-bin/ip"
wait_for 5 http_get_host "$URL" || fail "the outside web server does not answer the host on $URL"
note "The outside knows nothing about 172.17.0.0/16; its only route is its own link:"
ip -n "$NS_OUT" route
has "$(ip -n "$NS_OUT" route)" '172\.17\.' && fail "$NS_OUT should have no route to 172.17.0.0/16"
got=$(http_get_host "$URL")
note "From the host itself, the server sees: $got"
[ "$got" = "$HOST_ADDR" ] || fail "a request from the host should come from $HOST_ADDR, the server saw '$got'"

say "5. From the containers: the server sees the host's address, not 172.17.x.y"
note "The packet leaves $NS_A from $IP_A, is routed by the host from warren0 to $HOST_IF, and"
note "on the way out Warren's postrouting rule masquerades it: source becomes $HOST_ADDR, the"
note "address of the outgoing interface. Conntrack remembers the mapping and un-NATs the reply."
for ns in "$NS_A" "$NS_B"; do
    got=$(http_get "$ns" "$URL") || fail "$ns cannot fetch $URL (is masquerade/forwarding in place?)"
    note "$ns ($(ns_ip "$ns")) -> $URL: the server saw $got"
    [ "$got" = "$HOST_ADDR" ] || fail "$ns: expected the server to see $HOST_ADDR (masquerade), it saw '$got'"
done

say "6. The nftables rules behind it (table inet warren)"
ID12=$("$WARREN" network inspect bridge | sed -n 's/^ *"Id": "\([0-9a-f]\{12\}\).*/\1/p')
[ -n "$ID12" ] || fail "could not read the bridge network's id from 'warren network inspect'"
note "postrouting dispatches on interface names through verdict maps ..."
nft list chain inet warren postrouting | grep -E 'vmap' | sed 's/^[[:space:]]*/     /'
nft list map inet warren nat_from | grep -E 'elements' | sed 's/^[[:space:]]*/     /'
note "... to one chain per network; for 'bridge' ($ID12) it is:"
chain=$(nft list chain inet warren "nw-$ID12-nat-from")
grep -E 'masquerade' <<<"$chain" | sed 's/^[[:space:]]*/     /'
has "$chain" 'ip saddr 172\.17\.0\.0/16 oifname != "warren0" masquerade' \
    || fail "no 'ip saddr 172.17.0.0/16 oifname != \"warren0\" masquerade' rule in nw-$ID12-nat-from"
has "$(nft list map inet warren nat_from)" "\"warren0\" : jump nw-$ID12-nat-from" \
    || fail "nat_from does not send warren0 traffic to nw-$ID12-nat-from"
note "'oifname != warren0': traffic between containers on the bridge is not NATed."

say "7. Disconnect both namespaces: their eth0 disappears and the network is empty again"
for ns in "$NS_A" "$NS_B"; do
    "$WARREN" network disconnect bridge --netns "$ns"
    refute "$ns still has eth0 after disconnect" ip -n "$ns" link show eth0
done
has "$("$WARREN" network inspect bridge)" '"Containers": \{\}' || fail "the bridge network still lists endpoints"
[ "$(ip -o link show master warren0 | wc -l)" -eq 0 ] || fail "warren0 still has ports after disconnect"

lab_finish
