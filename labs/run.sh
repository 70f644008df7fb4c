#!/usr/bin/env bash
# Run every lab (or the ones named) in its own sandbox: fresh network and mount namespaces with
# a private /run/netns, so labs never touch the host's networking and leave nothing behind.
# Usage: labs/run.sh [labs/NN-name.sh ...]
set -uo pipefail
cd "$(dirname "$0")/.."

bin_dir="${WARREN_BIN_DIR:-$PWD/target/release}"
[ -x "$bin_dir/warren" ] || { echo "labs: $bin_dir/warren not built (cargo build --release)" >&2; exit 1; }
export PATH="$bin_dir:$PATH"

if (($#)); then labs=("$@"); else labs=(labs/[0-9][0-9]-*.sh); fi
passed=0 failed=0 failed_names=()
for lab in "${labs[@]}"; do
  [ -f "$lab" ] || continue
  echo "-- $lab"
  mkdir -p /run/netns
  # A PID namespace too: when the lab's shell exits, every process it left (agents, servers)
  # dies with it, and so do the namespaces.
  if setpriv --pdeathsig KILL -- unshare --net --mount --pid --fork --kill-child --mount-proc \
       --propagation private -- \
       sh -c 'mount -t tmpfs -o mode=0755 lab-sandbox /run/netns && ip link set lo up && exec bash "$0"' "$lab"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failed_names+=("$lab")
  fi
done
echo "labs: $passed passed, $failed failed${failed_names:+ (${failed_names[*]})}"
echo "$passed passed, $failed failed"
((failed == 0))
