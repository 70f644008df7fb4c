#!/usr/bin/env bash
# Lab 07: the embedded DNS. Containers on a user-defined network find each other by name
# through a resolver that Warren runs at 127.0.0.11 inside each of their network namespaces;
# the default bridge has no such thing; an alias shared by three replicas answers with all
# three addresses in a changing order; names Warren does not know go to an upstream resolver
# (dnsmasq in an "outside" namespace here); and a container whose networks are all internal
# gets its peers' names but no forwarding.
# Self-checking (non-zero exit with "FAIL: ..." on the first mismatch; "PASS" at the end) and
# self-cleaning. Run it in a sandbox: labs/run.sh labs/07-dns.sh
set -euo pipefail
LAB=07
. "$(dirname "$0")/lib.sh"

UPSTREAM=198.51.100.2   # the outside resolver (dnsmasq)
WWW=198.51.100.80       # what it says www.example.lab is (a second address of the outside)
NET=lab7-net            # user-defined bridge, 10.77.0.0/24
SEALED=lab7-sealed      # internal network, 10.78.0.0/24

# ctr NAME [RUN OPTIONS...]: a long-running busybox container (sleep); removed at exit.
ctr() {
    local name=$1; shift
    "$WARREN" run -d --name "$name" "$@" "$ROOT" sleep 1000 >/dev/null || fail "warren run $name failed"
    defer "'$WARREN' rm -f '$name'"
}
# ctr_ip NAME [IF]: the IPv4 address of IF (default eth0) inside container NAME.
ctr_ip() {
    "$WARREN" exec "$1" ip -4 -o addr show dev "${2:-eth0}" | awk '{sub(/\/.*/, "", $4); print $4; exit}'
}
# lookup CTR QUERY [SERVER]: `nslookup QUERY SERVER` inside container CTR, SERVER being Warren's
# resolver 127.0.0.11 unless given; its output and, on a last line, "[exit N]", so that a
# failed lookup can be shown and checked too. The server is always named: without one,
# busybox's nslookup appends the search domains of resolv.conf (which Warren copies from the
# host, as Docker does) to a name without a dot, and then never asks for the name alone.
lookup() {
    local out rc=0
    out=$("$WARREN" exec "$1" nslookup -timeout=2 "$2" "${3:-127.0.0.11}" 2>&1) || rc=$?
    printf '%s\n[exit %s]\n' "$out" "$rc"
}
# answers TEXT: the addresses in nslookup's answer section, one a line. (The server's own
# line reads "Address:<TAB>127.0.0.11:53" and is not matched.)
answers() { sed -n 's/^Address: //p' <<<"$1"; }
# show TEXT: indent a command's output under the narration (blank lines dropped).
show() { sed -e '/^$/d' -e 's/^/     /' <<<"$1"; }
# log_mark / log_since MARK: the upstream's query log from a point on.
log_mark() { wc -l <"$LAB_DIR/dnsmasq.log"; }
log_since() { tail -n "+$(($1 + 1))" "$LAB_DIR/dnsmasq.log" | sed 's/^.*dnsmasq\[[0-9]*\]: //'; }
# log_has MARK REGEX: the log since MARK has a line matching REGEX (retried by wait_for: dnsmasq
# writes its log after it has answered).
log_has() { has "$(log_since "$1")" "$2"; }

say "1. An agent whose upstream resolver is in the outside world"
command -v dnsmasq >/dev/null || fail "'dnsmasq' not found on PATH (Debian package dnsmasq-base; scripts/deps.sh installs it)"
lab_start_agent "{\"dns\": [\"$UPSTREAM\"]}"
note "Its daemon.json names the upstream resolver (as dockerd's \"dns\" does):"
sed 's/^/     /' "$LAB_DIR/daemon.json"
ROOT=$(busybox_rootfs)
outside_add lab7-out lab7-out0 198.51.100.1/24 "$UPSTREAM/24"
ip -n lab7-out addr add "$WWW/24" dev eth0
note "The outside world is the namespace lab7-out on a veth from the host (198.51.100.1): it has"
note "$UPSTREAM, where dnsmasq runs, and $WWW, which is www.example.lab. dnsmasq answers for"
note "example.lab only, from its own records (no upstream of its own, no /etc/hosts), and logs"
note "every query it gets:"
echo "   \$ dnsmasq --keep-in-foreground --no-resolv --no-hosts --local=/example.lab/ --host-record=www.example.lab,$WWW ..."
# --conf-file=/dev/null: ignore /etc/dnsmasq.conf; --user=root: keep the rights to write the log
# under the lab's root-only directory; --pid-file there too, not in the host's /run.
ns_bg lab7-out dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --bind-interfaces --listen-address="$UPSTREAM" --user=root --pid-file="$LAB_DIR/dnsmasq.pid" \
    --local=/example.lab/ --host-record="www.example.lab,$WWW" \
    --log-queries --log-facility="$LAB_DIR/dnsmasq.log"
DNSMASQ_PID=$BG_PID
if ! wait_for 5 busybox nslookup www.example.lab "$UPSTREAM"; then
    kill -0 "$DNSMASQ_PID" 2>/dev/null || fail "dnsmasq exited at start: $(cat "$LAB_DIR/dnsmasq.log" 2>/dev/null)"
    fail "dnsmasq (pid $DNSMASQ_PID) does not answer www.example.lab on $UPSTREAM"
fi
note "dnsmasq (pid $DNSMASQ_PID) answers the host directly:"
show "$(busybox nslookup www.example.lab "$UPSTREAM")"
note "(busybox asks for A and AAAA; 'Non-authoritative answer:' heads the empty AAAA reply)"

say "2. By name on a user-defined network"
net_create "$NET" --subnet 10.77.0.0/24
echo "   \$ warren run -d --name lab7-web --network $NET ROOTFS sleep 1000   (and lab7-client)"
ctr lab7-web --network "$NET"
ctr lab7-client --network "$NET"
WEB_IP=$(ctr_ip lab7-web)
CLIENT_IP=$(ctr_ip lab7-client)
note "lab7-web: $WEB_IP   lab7-client: $CLIENT_IP"
resolv=$("$WARREN" exec lab7-client cat /etc/resolv.conf)
note "The client's /etc/resolv.conf, written by Warren:"
show "$resolv"
has "$resolv" '^nameserver 127\.0\.0\.11$' || fail "the resolv.conf of a container on $NET does not point at 127.0.0.11"
[ "$(grep -c '^nameserver' <<<"$resolv")" = 1 ] || fail "the resolv.conf lists more than one nameserver"
SANDBOX=$("$WARREN" inspect lab7-client | sed -n 's/^ *"SandboxKey": "\(.*\)".*/\1/p')
[ -e "$SANDBOX" ] || fail "no network namespace '$SANDBOX' for lab7-client"
sockets=$(nsenter --net="$SANDBOX" ss -Hlnup; nsenter --net="$SANDBOX" ss -Hlntp)
note "Who listens on 127.0.0.11:53 in the client's network namespace ($SANDBOX):"
show "$sockets"
has "$sockets" "^UNCONN .* 127\.0\.0\.11:53 .*\"warrend\",pid=$LAB_AGENT_PID," || fail "no UDP socket of warrend on 127.0.0.11:53 in lab7-client's namespace"
has "$sockets" "^LISTEN .* 127\.0\.0\.11:53 .*\"warrend\",pid=$LAB_AGENT_PID," || fail "no TCP socket of warrend on 127.0.0.11:53 in lab7-client's namespace"
note "warrend's own sockets (UDP and TCP), opened inside the container's namespace: no process"
note "runs in the container for this, and 127.0.0.11 is on the container's own lo."
echo "   \$ warren exec lab7-client ping -c 1 lab7-web"
out=$("$WARREN" exec lab7-client ping -c 1 -W 2 lab7-web) || fail "lab7-client cannot ping lab7-web by name"
show "$(head -n 2 <<<"$out")"
has "$out" "^PING lab7-web \($WEB_IP\)" || fail "ping lab7-web did not resolve to $WEB_IP"
out=$("$WARREN" exec lab7-web ping -c 1 -W 2 lab7-client) || fail "lab7-web cannot ping lab7-client by name"
has "$out" "^PING lab7-client \($CLIENT_IP\)" || fail "ping lab7-client did not resolve to $CLIENT_IP"
note "and back: lab7-web pings lab7-client ($CLIENT_IP) by name"
note "nslookup asks the resolver directly. (This lab always names the server: without one,"
note "busybox's nslookup tries only NAME.DOMAIN for each domain of a 'search' line in resolv.conf,"
note "which Warren copies from the host. ping's C library honours 'ndots:0' and asks NAME first.)"
echo "   \$ warren exec lab7-client nslookup lab7-web 127.0.0.11"
out=$(lookup lab7-client lab7-web)
show "$out"
[ "$(answers "$out")" = "$WEB_IP" ] || fail "nslookup lab7-web from lab7-client did not answer $WEB_IP"
echo "   \$ warren run --rm --network $NET ROOTFS nslookup lab7-web.$NET"
out=$(run_out --network "$NET" "$ROOT" nslookup "lab7-web.$NET") || fail "no output from a one-shot container's nslookup"
[ "$(answers "$out")" = "$WEB_IP" ] || fail "a one-shot container on $NET did not resolve lab7-web.$NET to $WEB_IP: $out"
note "a fresh one-shot container resolves it too (through its resolv.conf), also as NAME.NETWORK:"
note "lab7-web.$NET -> $(answers "$out")"

say "3. No names on the default 'bridge' network"
echo "   \$ warren run -d --name lab7-plain1 ROOTFS sleep 1000   (and lab7-plain2; no --network)"
ctr lab7-plain1
ctr lab7-plain2
PLAIN2_IP=$(ctr_ip lab7-plain2)
has "$PLAIN2_IP" '^172\.17\.' || fail "lab7-plain2 is not on the default bridge (got '$PLAIN2_IP')"
"$WARREN" exec lab7-plain1 ping -c 1 -W 2 "$PLAIN2_IP" >/dev/null || fail "lab7-plain1 cannot ping lab7-plain2 by address"
note "lab7-plain1 pings lab7-plain2 by address ($PLAIN2_IP): they are connected, by the same bridge"
resolv=$("$WARREN" exec lab7-plain1 cat /etc/resolv.conf)
note "but this resolv.conf lists the upstream itself, not 127.0.0.11:"
show "$resolv"
has "$resolv" "^nameserver $UPSTREAM\$" || fail "the default-bridge container's resolv.conf does not list the upstream $UPSTREAM"
has "$resolv" '127\.0\.0\.11' && fail "a default-bridge container's resolv.conf points at 127.0.0.11"
echo "   \$ warren exec lab7-plain1 ping -c 1 lab7-plain2"
out=$("$WARREN" exec lab7-plain1 ping -c 1 -W 1 lab7-plain2 2>&1) && fail "lab7-plain1 pinged lab7-plain2 by name"
show "$out"
has "$out" "bad address 'lab7-plain2'" || fail "ping lab7-plain2 should fail to resolve the name"
echo "   \$ warren exec lab7-plain1 nslookup lab7-plain2 $UPSTREAM"
out=$(lookup lab7-plain1 lab7-plain2 "$UPSTREAM")
show "$out"
has "$out" '^\[exit 0\]$' && fail "lab7-plain2 resolved on the default bridge"
has "$out" "can't find lab7-plain2: REFUSED" || fail "expected the upstream to refuse lab7-plain2 (it knows no container names)"
note "the upstream has never heard of lab7-plain2 (and is no resolver for names outside example.lab)"
echo "   \$ warren exec lab7-plain1 nslookup lab7-plain2 127.0.0.11"
out=$(lookup lab7-plain1 lab7-plain2)
show "$out"
has "$out" '^\[exit 0\]$' && fail "something answered on 127.0.0.11 on the default bridge"
[ -z "$(nsenter --net="$("$WARREN" inspect lab7-plain1 | sed -n 's/^ *"SandboxKey": "\(.*\)".*/\1/p')" ss -Hlnu)" ] \
    || fail "something listens on UDP in lab7-plain1's namespace"
note "nothing listens on 127.0.0.11 there: Warren opens its resolver only in namespaces attached"
note "to a user-defined network, as Docker does"

say "4. Round-robin: three replicas share the alias 'api'"
for i in 1 2 3; do
    echo "   \$ warren run -d --name lab7-api$i --network $NET --network-alias api ROOTFS sleep 1000"
    ctr "lab7-api$i" --network "$NET" --network-alias api
done
API_IPS=$(for i in 1 2 3; do ctr_ip "lab7-api$i"; done | sort)
note "replicas: $(echo $API_IPS)"
echo "   \$ warren exec lab7-client nslookup api 127.0.0.11"
out=$(lookup lab7-client api)
show "$out"
[ "$(answers "$out" | sort)" = "$API_IPS" ] || fail "nslookup api did not answer exactly the three replicas' addresses"
for i in 1 2 3; do
    [ "$(answers "$(lookup lab7-client "lab7-api$i")")" = "$(ctr_ip "lab7-api$i")" ] \
        || fail "lab7-api$i does not resolve to its own address"
done
note "one answer, three A records; each replica still has its own name too"
note "20 more queries from one shell in lab7-client (the addresses of each answer, in order):"
orders=$("$WARREN" exec lab7-client sh -c \
    'for i in $(seq 20); do nslookup api 127.0.0.11 | sed -n "s/^Address: //p" | tr "\n" " "; echo; done')
[ "$(grep -c . <<<"$orders")" = 20 ] || fail "expected 20 answers, got: $orders"
show "$(head -n 6 <<<"$orders")"
note "..."
while read -r line; do
    [ "$(tr ' ' '\n' <<<"$line" | grep . | sort)" = "$API_IPS" ] \
        || fail "an answer did not hold the three replicas exactly once: '$line'"
done <<<"$orders"
firsts=$(awk '{print $1}' <<<"$orders" | sort | uniq -c | awk '{printf "%s%s %s times", (NR > 1 ? ", " : ""), $2, $1}')
note "every answer holds all three; first address: $firsts"
[ "$(awk '{print $1}' <<<"$orders" | sort -u | wc -l)" -gt 1 ] \
    || fail "the first address was the same in all 20 answers: no round-robin"
note "$(sort -u <<<"$orders" | wc -l) different orders in 20 answers. The records are shuffled for every"
note "answer, so clients that take the first address spread over the replicas. (By chance the"
note "same first address would come 20 times in a row once in 3^19, about 10^9, runs of the lab.)"

say "5. Outside names go to the upstream resolver"
mark=$(log_mark)
echo "   \$ warren exec lab7-client nslookup www.example.lab 127.0.0.11"
out=$(lookup lab7-client www.example.lab)
show "$out"
[ "$(answers "$out")" = "$WWW" ] || fail "www.example.lab did not resolve to $WWW through the upstream"
wait_for 2 log_has "$mark" 'query\[A\] www\.example\.lab' || true
seen=$(log_since "$mark")
note "what dnsmasq logged meanwhile:"
show "$seen"
has "$seen" "^query\\[A\\] www\\.example\\.lab from 198\\.51\\.100\\.1\$" \
    || fail "the upstream did not get the A query for www.example.lab from the host (198.51.100.1)"
has "$seen" 'from 10\.77\.' && fail "the upstream saw the container's own address"
note "The query reached dnsmasq from 198.51.100.1, the host: Warren's resolver (in the client's"
note "namespace) forwards from the agent's side, so the client's address never leaves the host."
out=$("$WARREN" exec lab7-client ping -c 1 -W 2 www.example.lab) || fail "lab7-client cannot ping www.example.lab"
has "$out" "^PING www\.example\.lab \($WWW\)" || fail "ping www.example.lab did not go to $WWW"
note "and lab7-client pings www.example.lab ($WWW) by name (out through the host's masquerade)"
mark=$(log_mark)
out=$(lookup lab7-client nosuch)
has "$out" "can't find nosuch: NXDOMAIN" || fail "an unknown single-label name should be NXDOMAIN: $out"
out=$(lookup lab7-client nosuch.example.lab)
has "$out" "can't find nosuch.example.lab: NXDOMAIN" || fail "nosuch.example.lab should be NXDOMAIN (from upstream): $out"
wait_for 2 log_has "$mark" 'nosuch\.example\.lab' || fail "the upstream never saw nosuch.example.lab"
has "$(log_since "$mark")" 'query\[[A-Z]*\] nosuch from' && fail "the single-label name 'nosuch' was forwarded"
note "unknown names: 'nosuch' gets NXDOMAIN from Warren itself (single-label names are container"
note "names, never forwarded), 'nosuch.example.lab' gets NXDOMAIN from the upstream"

say "6. An internal network: peers by name, no forwarding"
echo "   \$ warren network create --internal --subnet 10.78.0.0/24 $SEALED"
net_create "$SEALED" --internal --subnet 10.78.0.0/24
ctr lab7-locked --network "$SEALED"
echo "   \$ warren network connect --alias vault $SEALED lab7-web"
"$WARREN" network connect --alias vault "$SEALED" lab7-web || fail "connect lab7-web to $SEALED failed"
defer "'$WARREN' network disconnect '$SEALED' lab7-web"
VAULT_IP=$(ctr_ip lab7-web eth1)
has "$VAULT_IP" '^10\.78\.0\.' || fail "lab7-web has no address on $SEALED (eth1: '$VAULT_IP')"
note "lab7-locked lives on $SEALED only; the running lab7-web joined it too, as eth1 ($VAULT_IP),"
note "with the alias 'vault'"
routes=$("$WARREN" exec lab7-locked ip route)
note "lab7-locked's routes:"
show "$routes"
has "$routes" '^default' && fail "a container on the internal network $SEALED has a default route"
"$WARREN" exec lab7-locked ping -c 1 -W 1 "$UPSTREAM" >/dev/null 2>&1 && fail "lab7-locked can reach the outside"
note "no default route: lab7-locked cannot reach $UPSTREAM at all"
echo "   \$ warren exec lab7-locked nslookup vault 127.0.0.11"
out=$(lookup lab7-locked vault)
show "$out"
[ "$(answers "$out")" = "$VAULT_IP" ] || fail "vault did not resolve to $VAULT_IP on $SEALED"
[ "$(answers "$(lookup lab7-locked lab7-web)")" = "$VAULT_IP" ] \
    || fail "from lab7-locked, lab7-web should resolve to its $SEALED address $VAULT_IP"
"$WARREN" exec lab7-locked ping -c 1 -W 2 vault >/dev/null || fail "lab7-locked cannot ping vault"
note "vault and lab7-web resolve to $VAULT_IP (the address on $SEALED, not $WEB_IP) and answer ping"
out=$(lookup lab7-locked lab7-client)
has "$out" "can't find lab7-client: NXDOMAIN" || fail "lab7-client (not on $SEALED) should be NXDOMAIN for lab7-locked"
note "lab7-client is not on $SEALED: NXDOMAIN for lab7-locked"
mark=$(log_mark)
echo "   \$ warren exec lab7-locked nslookup www.example.lab 127.0.0.11"
out=$(lookup lab7-locked www.example.lab)
show "$out"
has "$out" '^\[exit 0\]$' && fail "lab7-locked resolved www.example.lab"
has "$out" "can't find www.example.lab: REFUSED" || fail "expected REFUSED for an outside name on an internal network"
note "REFUSED, answered by Warren: the namespace's networks are all internal, so it gets no"
note "recursion (forwarding would be a way out of a network that has none)"
echo "   \$ warren exec lab7-web nslookup www.example.lab 127.0.0.11   (lab7-web: on $NET and $SEALED)"
out=$(lookup lab7-web www.example.lab)
[ "$(answers "$out")" = "$WWW" ] || fail "lab7-web (on a non-internal network too) should resolve www.example.lab"
note "lab7-web is on $NET as well, so it can reach the outside anyway: it is forwarded for -> $WWW"
wait_for 2 log_has "$mark" 'query\[A\] www\.example\.lab' || fail "the upstream did not see lab7-web's query"
seen=$(log_since "$mark")
note "dnsmasq's log since lab7-locked asked:"
show "$seen"
[ "$(grep -c 'query\[A\] www\.example\.lab' <<<"$seen")" = 1 ] \
    || fail "the upstream got more than lab7-web's one A query: lab7-locked's was forwarded"
note "one A query, lab7-web's: lab7-locked's never left the host"

say "7. Names follow the containers"
"$WARREN" rm -f lab7-api2 >/dev/null
out=$(lookup lab7-client api)
got=$(answers "$out" | sort)
want=$(for i in 1 3; do ctr_ip "lab7-api$i"; done | sort)
[ "$got" = "$want" ] || fail "after removing lab7-api2, api should answer only lab7-api1 and lab7-api3 ($want), got: $got"
has "$(lookup lab7-client lab7-api2)" "can't find lab7-api2: NXDOMAIN" || fail "lab7-api2 still resolves after rm"
note "after 'warren rm -f lab7-api2' the very next answer for api has two addresses ($(echo $got)),"
note "and lab7-api2 is NXDOMAIN. (Warren's answers carry TTL 0, see docs/dns.md: no cache may"
note "keep a name that is gone.)"
"$WARREN" network disconnect "$SEALED" lab7-web
"$WARREN" rm -f lab7-web lab7-client lab7-plain1 lab7-plain2 lab7-api1 lab7-api3 lab7-locked >/dev/null
"$WARREN" network rm "$NET" "$SEALED" >/dev/null
note "containers and networks removed (dnsmasq, pid $DNSMASQ_PID, is stopped by the cleanup)"

lab_finish
