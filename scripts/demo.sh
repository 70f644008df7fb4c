#!/usr/bin/env bash
# Warren in one command (as root): install what is needed, build, start the agent on its
# embedded defaults (/var/lib/warren, unix:///run/warren/warren.sock), then show two
# "containers" talking over a user-defined network, and the firewall isolating another one.
#
#   sudo scripts/demo.sh          # build, start warrend, run the demo; the agent keeps running
#   sudo scripts/demo.sh --stop   # stop the agent started by the demo
#
# The demo's namespaces stand in for containers (the same wiring `warren run` will use); they
# are removed at the end. The agent, its default bridge (warren0) and its nftables table stay
# until you stop it.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates bridges and namespaces)" >&2; exit 1; }
pidfile=/run/warren/demo-warrend.pid
if [ "${1:-}" = "--stop" ]; then
  if [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; then
    echo "demo: warrend stopped"; rm -f "$pidfile"
  else
    echo "demo: no warrend started by the demo is running"
  fi
  exit 0
fi

. scripts/deps.sh
echo "== building Warren (release)"
cargo build --release --locked --bins
bin=$PWD/target/release
export PATH="$bin:$PATH"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

if ! warren info >/dev/null 2>&1; then
  say "Starting warrend (log: /run/warren/warrend.log)"
  mkdir -p /run/warren
  nohup "$bin/warrend" >/run/warren/warrend.log 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 100); do warren info >/dev/null 2>&1 && break; sleep 0.1; done
  warren info >/dev/null || { cat /run/warren/warrend.log; exit 1; }
fi
warren version

made_ns=() made_net=()
cleanup() {
  [ -n "${web_pid:-}" ] && kill "$web_pid" 2>/dev/null
  for ns in "${made_ns[@]}"; do
    for net in "${made_net[@]}"; do warren network disconnect "$net" --netns "$ns" >/dev/null 2>&1; done
    warren netns del "$ns" >/dev/null 2>&1
  done
  for net in "${made_net[@]}"; do warren network rm "$net" >/dev/null 2>&1; done
  return 0
}
trap cleanup EXIT

say "1. A user-defined network: warren network create --subnet 10.10.0.0/24 demo"
warren network create --subnet 10.10.0.0/24 demo >/dev/null; made_net+=(demo)
warren network ls

say "2. Two 'containers' (network namespaces) join it"
for ns in demo-web demo-client; do warren netns add "$ns"; made_ns+=("$ns"); done
warren network connect --alias web demo --netns demo-web
warren network connect demo --netns demo-client
web_ip=$(ip -n demo-web -4 -o addr show eth0 | awk '{split($4,a,"/"); print a[1]}')
echo "demo-web is $web_ip:"; ip -n demo-web -br addr show eth0

say "3. demo-web serves HTTP; demo-client fetches it over the network"
mkdir -p /run/warren/demo-www && echo "hello from demo-web" > /run/warren/demo-www/index.html
ip netns exec demo-web busybox httpd -f -p 80 -h /run/warren/demo-www & web_pid=$!
sleep 0.3
reply=$(ip netns exec demo-client busybox wget -qO- "http://$web_ip/")
echo "demo-client got: $reply"
[ "$reply" = "hello from demo-web" ] || { echo "demo: unexpected reply" >&2; exit 1; }

say "4. Another network is isolated from it (nftables, table inet warren)"
warren network create --subnet 10.20.0.0/24 other >/dev/null; made_net+=(other)
warren netns add demo-intruder; made_ns+=(demo-intruder)
warren network connect other --netns demo-intruder
if ip netns exec demo-intruder ping -c1 -W1 "$web_ip" >/dev/null 2>&1; then
  echo "demo: isolation failed" >&2; exit 1
fi
echo "demo-intruder (network other) cannot reach $web_ip: isolated."

say "Done. The agent keeps running: try 'warren network ls', 'docker -H unix:///run/warren/warren.sock network ls'."
echo "Stop it with: sudo scripts/demo.sh --stop"
