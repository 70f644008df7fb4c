#!/usr/bin/env bash
# Lab 04: publishing a port. A web server in a namespace on a user network is published as
# host port 8080 (`-p 8080:80`) and reached from an outside host, from the host itself (by
# 127.0.0.1 and by its own address) and from the same namespace through the host (hairpin).
# After disconnect the port is gone.
# Self-checking (non-zero exit with "FAIL: ..." on the first mismatch; "PASS" at the end) and
# self-cleaning. Run it in a sandbox: labs/run.sh labs/04-port-publish.sh
set -euo pipefail
LAB=04
. "$(dirname "$0")/lib.sh"

NET=lab4-net
NS_WEB=lab4-web
NS_OUT=lab4-out
HOST_IF=lab4-out0
HOST_ADDR=198.51.100.1   # the lab host's address, as the outside world knows it
OUT_ADDR=198.51.100.2    # an outside client
HOST_PORT=8080
GW=10.40.0.1
TOKEN="lab04-$RANDOM$RANDOM"  # what the web server serves, so we know we reached *it*

# get_from WHERE URL: fetch URL from namespace WHERE, or from the host if WHERE is "host".
get_from() {
    if [ "$1" = host ]; then http_get_host "$2"; else http_get "$1" "$2"; fi
}
# expect_page WHERE HOST:PORT SOURCE: the page must be served, and the server must have seen
# the connection coming from SOURCE.
expect_page() {
    local where=$1 hostport=$2 source=$3 body seen
    body=$(get_from "$where" "http://$hostport/index.html") || fail "$where: http://$hostport/ does not answer"
    [ "$body" = "$TOKEN" ] || fail "$where: http://$hostport/ served '$body', expected '$TOKEN'"
    seen=$(get_from "$where" "http://$hostport/cgi-bin/ip") || fail "$where: http://$hostport/cgi-bin/ip does not answer"
    note "$where -> $hostport: got the page; the server saw the client as $seen"
    [ "$seen" = "$source" ] || fail "$where -> $hostport: the server should see $source, it saw '$seen'"
}
# expect_closed WHERE HOST:PORT: nothing may answer.
expect_closed() {
    if get_from "$1" "http://$2/index.html" >/dev/null 2>&1; then
        fail "$1: http://$2/ still answers"
    fi
    note "$1 -> $2: no answer (as it should be)"
}

say "1. Start a private agent, an 'outside' host ($OUT_ADDR) and a user network"
lab_start_agent
outside_add "$NS_OUT" "$HOST_IF" "$HOST_ADDR/24" "$OUT_ADDR/24"
net_create "$NET" --subnet 10.40.0.0/24 --gateway "$GW"
ns_add "$NS_WEB"
note "Before anything is published, port $HOST_PORT on the host is closed:"
expect_closed "$NS_OUT" "$HOST_ADDR:$HOST_PORT"

say "2. Connect $NS_WEB to $NET publishing host port $HOST_PORT to its port 80"
echo "   \$ warren network connect -p $HOST_PORT:80 $NET --netns $NS_WEB"
net_connect "$NET" "$NS_WEB" -p "$HOST_PORT:80"
WEB_IP=$(ns_ip "$NS_WEB")
has "$WEB_IP" '^10\.40\.0\.[0-9]+$' || fail "$NS_WEB got '$WEB_IP', not an address in 10.40.0.0/24"
note "$NS_WEB is $WEB_IP. It runs busybox httpd on port 80 serving index.html ('$TOKEN')"
note "and a CGI script that answers with the client's address (\$REMOTE_ADDR)."
www=$(web_root web)
printf '%s\n' "$TOKEN" >"$www/index.html"
cat >"$www/cgi-bin/ip" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$REMOTE_ADDR"
EOF
chmod +x "$www/cgi-bin/ip"
ns_bg "$NS_WEB" busybox httpd -f -p 0.0.0.0:80 -h "$www"
wait_for 5 http_get "$NS_WEB" http://127.0.0.1:80/index.html || fail "httpd in $NS_WEB does not answer on its own port 80"

say "3. The DNAT map: publishing a port is one map element, not a new rule"
note "nat prerouting/output: 'fib daddr type local jump published' (only packets for one of the"
note "host's own addresses); there 'dnat ip to meta l4proto . th dport map @pub4_any_addr: ...'"
for map in pub4_any_addr pub4_any_port; do
    elems=$(nft list map inet warren "$map" | grep elements || true)
    printf '     %-14s %s\n' "$map" "$(sed 's/^[[:space:]]*//' <<<"$elems")"
done
has "$(nft list map inet warren pub4_any_addr)" "tcp \. $HOST_PORT : $WEB_IP" \
    || fail "pub4_any_addr has no element 'tcp . $HOST_PORT : $WEB_IP'"
has "$(nft list map inet warren pub4_any_port)" "tcp \. $HOST_PORT : 80" \
    || fail "pub4_any_port has no element 'tcp . $HOST_PORT : 80'"

say "4. From the outside: $OUT_ADDR -> $HOST_ADDR:$HOST_PORT"
note "prerouting DNATs to $WEB_IP:80, forward lets it into the network ('ct status dnat accept')."
note "No source NAT: the server sees the real client address."
expect_page "$NS_OUT" "$HOST_ADDR:$HOST_PORT" "$OUT_ADDR"
note "The container's address itself is not reachable from outside (no route there):"
expect_closed "$NS_OUT" "$WEB_IP:80"

say "5. From the host itself, by its own address and by 127.0.0.1"
note "Locally generated packets take the nat output hook, where the same DNAT applies."
expect_page host "$HOST_ADDR:$HOST_PORT" "$HOST_ADDR"
note "127.0.0.1 needs two extras: route_localnet on the bridge (so a 127.x source may be routed"
note "at all) and a masquerade, because the container could not answer 127.0.0.1 itself:"
note "the server sees the gateway $GW."
br=$(ip -o route get "$WEB_IP" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
[ "$(cat "/proc/sys/net/ipv4/conf/$br/route_localnet")" = 1 ] || fail "route_localnet is not 1 on $br"
note "(net.ipv4.conf.$br.route_localnet = 1)"
expect_page host "127.0.0.1:$HOST_PORT" "$GW"

say "6. Hairpin: $NS_WEB reaches its own published port through the host address"
note "The packet goes out to the host, is DNATed back to $WEB_IP and sent back into the same"
note "bridge. Without source NAT the server would answer itself directly and the client would"
note "drop that reply; Warren masquerades DNATed traffic from the network's own subnet."
# The host end of the namespace's eth0 (eth0@ifN: N is the peer's ifindex here).
peer_idx=$(ip -n "$NS_WEB" -o link show eth0 | sed -n 's/^[0-9]*: eth0@if\([0-9]*\):.*/\1/p')
PORT_IF=$(ip -o link show | awk -F': ' -v i="$peer_idx" '$1 == i {sub(/@.*/, "", $2); print $2}')
[ -n "$PORT_IF" ] || fail "cannot find the host end of $NS_WEB's eth0"
note "With br_netfilter active the DNAT happens while the frame is still being bridged, so the"
note "bridge must send it back out of the port it came in on: Warren puts every endpoint's"
note "bridge port in hairpin mode, as Docker does."
hairpin=$(ip -d link show "$PORT_IF" | grep -o 'hairpin [a-z]*' || true)
[ "$hairpin" = "hairpin on" ] || fail "bridge port $PORT_IF is not in hairpin mode ($hairpin)"
note "($PORT_IF: $hairpin)"
expect_page "$NS_WEB" "$HOST_ADDR:$HOST_PORT" "$GW"

say "7. Disconnect: the endpoint and its published port go away together"
echo "   \$ warren network disconnect $NET --netns $NS_WEB"
"$WARREN" network disconnect "$NET" --netns "$NS_WEB"
has "$(nft list map inet warren pub4_any_addr)" "tcp \. $HOST_PORT :" && fail "pub4_any_addr still maps port $HOST_PORT"
expect_closed "$NS_OUT" "$HOST_ADDR:$HOST_PORT"
expect_closed host "127.0.0.1:$HOST_PORT"
expect_closed host "$HOST_ADDR:$HOST_PORT"
note "(The server itself still runs in $NS_WEB, now with only lo:)"
wait_for 2 http_get "$NS_WEB" http://127.0.0.1:80/index.html || fail "httpd in $NS_WEB stopped answering on lo"
"$WARREN" network rm "$NET" >/dev/null

lab_finish
