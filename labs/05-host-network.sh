#!/usr/bin/env bash
# Lab 05: a container on the host network. With `--network host` Warren wires nothing: the
# container's init simply does not join another network namespace, so the container sees
# exactly the host's interfaces and a server in it listens on the host's own ports — while
# its PID, mount, UTS and IPC namespaces are still its own.
# Self-checking (non-zero exit with "FAIL: ..." on the first mismatch; "PASS" at the end) and
# self-cleaning. Run it in a sandbox: labs/run.sh labs/05-host-network.sh
set -euo pipefail
LAB=05
. "$(dirname "$0")/lib.sh"

PORT=18080
MARK="lab05-$$"

# link_names: the interface names of the current network namespace, sorted, one per line.
link_names() { ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort; }

say "1. Start a private agent and make a busybox root filesystem"
lab_start_agent
ROOT=$(busybox_rootfs)
mkdir -p "$ROOT/www" && echo "$MARK" >"$ROOT/www/index.html"
note "rootfs: $ROOT (busybox-static, applets as symlinks)"

say "2. The built-in 'host' network exists, with the host driver"
"$WARREN" network ls
has "$("$WARREN" network ls)" 'host +host' || fail "no built-in network 'host' with driver host"

say "3. A container on the host network sees the host's interfaces"
echo "   \$ warren run --rm --network host ROOTFS ip -o link"
inside=$(run_out --network host "$ROOT" ip -o link | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort)
host=$(link_names)
echo "$inside" | sed 's/^/   inside: /'
[ "$inside" = "$host" ] || fail "interfaces differ: inside [$inside] host [$host]"
has "$inside" '^warren0$' || fail "the container does not see the host's bridge warren0"
note "same interfaces inside and outside (warren0 included): one network namespace"
inside_ns=$(run_out --network host "$ROOT" readlink /proc/self/ns/net)
host_ns=$(readlink /proc/self/ns/net)
[ "$inside_ns" = "$host_ns" ] || fail "network namespace differs: $inside_ns vs $host_ns"
note "network namespace inside: $inside_ns = the host's"
inside_uts=$(run_out --network host "$ROOT" readlink /proc/self/ns/uts)
[ "$inside_uts" != "$(readlink /proc/self/ns/uts)" ] || fail "the UTS namespace should still be the container's own"
note "but its UTS namespace is its own: $inside_uts"

say "4. A server in the container binds a port of the host"
echo "   \$ warren run -d --name lab5-web --network host ROOTFS httpd -f -p 127.0.0.1:$PORT -h /www"
"$WARREN" run -d --name lab5-web --network host "$ROOT" httpd -f -p "127.0.0.1:$PORT" -h /www >/dev/null
defer "'$WARREN' rm -f lab5-web"
wait_for 5 http_get_host "http://127.0.0.1:$PORT/" || fail "nothing answers on the host's 127.0.0.1:$PORT"
body=$(http_get_host "http://127.0.0.1:$PORT/")
[ "$body" = "$MARK" ] || fail "got [$body] from 127.0.0.1:$PORT, expected the container's page"
note "GET http://127.0.0.1:$PORT/ on the host -> '$body' (served by the container)"
has "$("$WARREN" inspect lab5-web)" '"host": \{' || fail "inspect does not list the host network"
has "$("$WARREN" inspect lab5-web)" '"SandboxKey": ""' || fail "a host-network container has no namespace of its own"
note "inspect: Networks = {\"host\": …}, no sandbox namespace"
if "$WARREN" run --rm --network host "$ROOT" httpd -f -p "127.0.0.1:$PORT" -h /www 2>/dev/null; then
    fail "a second server could bind the same host port"
fi
note "a second container cannot bind 127.0.0.1:$PORT too: it is the host's port, and it is taken"

say "5. Stop and remove it: the port is free again"
"$WARREN" rm -f lab5-web >/dev/null
if http_get_host "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then fail "port $PORT still answers"; fi
note "port $PORT is closed"

lab_finish
